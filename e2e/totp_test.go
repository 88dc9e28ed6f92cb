package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
)

// TestBrowserTOTP: in a phone-sized headless chromium against the demo, a
// customer signs up (confirming through the outbox), signs in, opens the
// local provider's security page (signing in again there), turns on an
// authenticator app with a code computed from the key the page shows,
// signs out, and signs in again with password and code to reach the shop;
// a wrong code is refused on the way.
func TestBrowserTOTP(t *testing.T) {
	chromiumPath(t)
	d := startDemo(t)
	ctx := newPhoneBrowser(t)
	tr := traceNavigations(ctx)
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("browser navigations:\n%s", tr)
		}
	}()
	email := fmt.Sprintf("tess.%d@mail.example", time.Now().UnixNano()%1e6)
	const password = "totp-demo-passw0rd-1"
	signIn := func(shot1 string) chromedp.Action {
		return chromedp.Tasks{
			chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
			chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
			chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
			shot(t, ctx, shot1),
			chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		}
	}

	// Sign up and confirm through the outbox.
	err := chromedp.Run(ctx,
		chromedp.Navigate(d.SignUpURL()),
		chromedp.WaitVisible(`input[name="name"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "Tess Totp", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the check-your-email notice", `document.querySelector("h1")?.textContent === "Check your email"`),
	)
	if err != nil {
		t.Fatalf("sign-up: %v", err)
	}
	verify, err := outboxLink(ctx, d.OutboxURL(), email, "/verify?token=")
	if err != nil {
		t.Fatal(err)
	}

	// Confirm, sign in, accept the terms: the shop.
	var landed string
	err = chromedp.Run(ctx,
		chromedp.Navigate(verify),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the confirmed notice", `document.querySelector("h1")?.textContent === "Email address confirmed"`),
		chromedp.Click(`//nav/a[text()="Sign in"]`, chromedp.BySearch),
		signIn("totp-signin-phone.png"),
		chromedp.WaitVisible(`form button.btn:not(.btn-alt)`, chromedp.ByQuery),
		chromedp.Click(`form button.btn:not(.btn-alt)`, chromedp.ByQuery),
		chromedp.WaitVisible(`table#headers`, chromedp.ByQuery),
		chromedp.Location(&landed),
	)
	if err != nil {
		t.Fatalf("first sign-in: %v", err)
	}
	if landed != d.PublicURL+"/shop/account" {
		t.Fatalf("first sign-in landed on %s", landed)
	}

	// The security page: sign in again there, then set up the app.
	var secret, setup string
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/.gatehouse/local/shoppers/security"),
		waitUntil("the security sign-in", `document.body?.textContent.includes("Sign in again to manage")`),
		signIn("totp-security-signin-phone.png"),
		chromedp.WaitVisible(`//button[text()="Set up an authenticator app"]`, chromedp.BySearch),
		viewportWidth(t, 390),
		shot(t, ctx, "totp-security-phone.png"),
		chromedp.Click(`//button[text()="Set up an authenticator app"]`, chromedp.BySearch),
		chromedp.WaitVisible(`input[name="code"]`, chromedp.ByQuery),
		chromedp.Text(`code.secret`, &secret, chromedp.ByQuery),
		chromedp.Text(`body`, &setup, chromedp.ByQuery),
		viewportWidth(t, 390),
		shot(t, ctx, "totp-setup-phone.png"),
	)
	if err != nil {
		t.Fatalf("security page: %v", err)
	}
	secret = strings.ReplaceAll(strings.TrimSpace(secret), " ", "")
	if len(secret) < 16 || !strings.Contains(setup, "otpauth://totp/") {
		t.Fatalf("setup page key %q:\n%s", secret, setup)
	}
	now := time.Now()
	code, err := totp.GenerateCode(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	var codes string
	err = chromedp.Run(ctx,
		chromedp.SendKeys(`input[name="code"]`, code, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the recovery codes", `document.body?.textContent.includes("Two-step verification is on")`),
		chromedp.Text(`body`, &codes, chromedp.ByQuery),
		shot(t, ctx, "totp-recovery-codes-phone.png"),
	)
	if err != nil {
		t.Fatalf("turning on TOTP: %v", err)
	}

	// Sign out, then sign in again: the code is asked after the password.
	var wrong string
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/.gatehouse/logout"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`a.btn:not(.btn-alt)`, chromedp.ByQuery),
		chromedp.Navigate(d.PublicURL+"/shop/account"),
		signIn("totp-signin-again-phone.png"),
		chromedp.WaitVisible(`input[name="code"][autocomplete="one-time-code"]`, chromedp.ByQuery),
		shot(t, ctx, "totp-code-phone.png"),
		chromedp.SendKeys(`input[name="code"]`, "000000", chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the wrong-code message", `document.querySelector('[role="alert"]')?.textContent.includes("not valid")`),
		chromedp.Text(`body`, &wrong, chromedp.ByQuery),
		shot(t, ctx, "totp-wrong-code-phone.png"),
	)
	if err != nil {
		t.Fatalf("sign-in with a wrong code: %v", err)
	}
	if strings.Contains(wrong, "X-Shop-Email") {
		t.Fatal("a wrong code reached the shop")
	}

	// The code used for the setup is spent: the next period's code (within
	// the accepted clock skew) signs in.
	next, err := totp.GenerateCode(secret, now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seen map[string]string
	err = chromedp.Run(ctx,
		// The refused page comes back with an empty code field.
		chromedp.SendKeys(`input[name="code"]`, next, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`table#headers`, chromedp.ByQuery),
		chromedp.Location(&landed),
		echoHeaders(&seen),
		shot(t, ctx, "totp-shop-phone.png"),
	)
	if err != nil {
		t.Fatalf("sign-in with the code: %v", err)
	}
	if landed != d.PublicURL+"/shop/account" || seen["X-Shop-Email"] != email {
		t.Errorf("after the code: landed on %s as %q", landed, seen["X-Shop-Email"])
	}
}
