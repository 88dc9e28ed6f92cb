package e2e

// Browser tests of `gatehouse demo`: the demo is started in-process with
// quickstart.StartDemo (what the command runs) on free loopback ports and a
// temporary folder, and a phone-sized headless chromium goes through it as
// a customer (sign-up, confirmation through the outbox page, sign-in,
// consent, data export, password reset) and as employees (SAML sign-in at
// the demo IdP, the admin area). TOTP and passkeys are not covered here.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
)

// startDemo runs the demo on free ports until the test ends.
func startDemo(t *testing.T) *quickstart.Demo {
	t.Helper()
	var logs syncBuffer
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(&logs), zap.InfoLevel)
	began := time.Now()
	d, err := quickstart.StartDemo(quickstart.DemoOptions{
		Listen: "127.0.0.1:0", AdminListen: "off", UpstreamListen: "127.0.0.1:0", IdPListen: "127.0.0.1:0",
		Dir: t.TempDir(), Logger: zap.New(core),
	})
	if err != nil {
		t.Fatalf("starting the demo: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("closing the demo: %v", err)
		}
		if t.Failed() {
			t.Logf("demo log:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("demo ready in %v at %s (IdP %s)", time.Since(began).Round(time.Millisecond), d.PublicURL, d.IdPURL)
	return d
}

// outboxLink polls the outbox page at outbox (mail is sent in the
// background) for a link of a message to `to` containing want.
func outboxLink(ctx context.Context, outbox, to, want string) (string, error) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var links []string
		err := chromedp.Run(ctx,
			chromedp.Navigate(outbox),
			chromedp.WaitVisible(`h1`, chromedp.ByQuery),
			chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll('article')]
				.filter(a => a.querySelector('.meta').textContent.includes(%q))
				.flatMap(a => [...a.querySelectorAll('a')].map(l => l.href))`, to), &links),
		)
		if err != nil {
			return "", err
		}
		for _, l := range links {
			if strings.Contains(l, want) {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no link with %q for %s in the outbox (links %q)", want, to, links)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDemoCustomer: a customer signs up, confirms the address through the
// outbox page, signs in, accepts the terms, reaches the shop's account
// page with their identity, downloads their data export, then resets the
// password through the outbox: the old session ends and the new password
// signs in.
func TestDemoCustomer(t *testing.T) {
	chromiumPath(t)
	d := startDemo(t)
	ctx := newPhoneBrowser(t)
	tr := traceNavigations(ctx)
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("browser navigations:\n%s", tr)
		}
	}()
	email := fmt.Sprintf("dana.%d@mail.example", time.Now().UnixNano()%1e6)
	const first, second = "first-demo-passw0rd", "second-demo-passw0rd"

	// Sign-up.
	var checkMail string
	err := chromedp.Run(ctx,
		chromedp.Navigate(d.SignUpURL()),
		chromedp.WaitVisible(`input[name="name"]`, chromedp.ByQuery),
		viewportWidth(t, 390),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "Dana Customer", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, first, chromedp.ByQuery),
		shot(t, ctx, "demo-signup-phone.png"),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the check-your-email notice", `document.querySelector("h1")?.textContent === "Check your email"`),
		chromedp.Text(`body`, &checkMail, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sign-up: %v", err)
	}
	if !strings.Contains(checkMail, email) {
		t.Errorf("sign-up notice:\n%s", checkMail)
	}

	// The confirmation mail, on the outbox page.
	verify, err := outboxLink(ctx, d.OutboxURL(), email, "/verify?token=")
	if err != nil {
		t.Fatal(err)
	}
	var outbox string
	if err := chromedp.Run(ctx, chromedp.Text(`body`, &outbox, chromedp.ByQuery), shot(t, ctx, "demo-outbox-phone.png")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outbox, "DEV ONLY") {
		t.Errorf("outbox page is not marked DEV ONLY:\n%s", outbox)
	}
	if !strings.HasPrefix(verify, d.PublicURL+"/.gatehouse/local/shoppers/verify?") {
		t.Errorf("confirmation link %s", verify)
	}

	// Confirm, then sign in from the notice's link.
	var confirmed string
	err = chromedp.Run(ctx,
		chromedp.Navigate(verify),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, first, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the confirmed notice", `document.querySelector("h1")?.textContent === "Email address confirmed"`),
		chromedp.Text(`body`, &confirmed, chromedp.ByQuery),
		shot(t, ctx, "demo-confirmed-phone.png"),
		chromedp.Click(`//nav/a[text()="Sign in"]`, chromedp.BySearch),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, first, chromedp.ByQuery),
		shot(t, ctx, "demo-signin-phone.png"),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("confirm and sign in: %v", err)
	}

	// The terms are required on every customer route: the consent page.
	var consent, consentURL string
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(`form button.btn:not(.btn-alt)`, chromedp.ByQuery),
		chromedp.Location(&consentURL),
		chromedp.Text(`body`, &consent, chromedp.ByQuery),
		shot(t, ctx, "demo-consent-phone.png"),
		chromedp.Click(`form button.btn:not(.btn-alt)`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("consent page: %v", err)
	}
	if !strings.HasPrefix(consentURL, d.PublicURL+"/.gatehouse/me/consent?") || !strings.Contains(consent, "terms of service") {
		t.Errorf("consent page at %s:\n%s", consentURL, consent)
	}

	// The shop's account page, with the customer's identity.
	var seen map[string]string
	var landed, app string
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(`table#headers`, chromedp.ByQuery),
		chromedp.Location(&landed),
		chromedp.Text(`body`, &app, chromedp.ByQuery),
		echoHeaders(&seen),
		shot(t, ctx, "demo-shop-account-phone.png"),
	)
	if err != nil {
		t.Fatalf("shop account: %v", err)
	}
	if landed != d.PublicURL+"/shop/account" {
		t.Errorf("landed on %s, want /shop/account", landed)
	}
	if seen["X-Shop-Email"] != email || seen["X-Shop-Name"] != "Dana Customer" || seen["X-Shop-Customer"] == "" {
		t.Errorf("upstream saw customer %q email %q name %q", seen["X-Shop-Customer"], seen["X-Shop-Email"], seen["X-Shop-Name"])
	}
	if !strings.Contains(app, "verified against the gateway's JWKS") || !strings.Contains(app, "aud shop") {
		t.Errorf("the assertion did not verify at the upstream:\n%s", app)
	}
	if !strings.Contains(seen["X-Gatehouse-Consent"], "terms:1") {
		t.Errorf("upstream saw consent %q, want the terms granted", seen["X-Gatehouse-Consent"])
	}

	// The account page links to the export; it is fetched from Go with
	// the browser's cookies (the pages' CSP rules out a fetch from them).
	var me, exportHref string
	var cookies []*network.Cookie
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/.gatehouse/me"),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`body`, &me, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('a')].find(a => a.textContent.trim() === "Download my data")?.href ?? ""`, &exportHref),
		shot(t, ctx, "demo-me-phone.png"),
		chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			cookies, err = network.GetCookies().WithURLs([]string{d.PublicURL + "/"}).Do(ctx)
			return err
		}),
	)
	if err != nil {
		t.Fatalf("account page: %v", err)
	}
	if !strings.Contains(me, email) || !strings.Contains(me, "Your consents") {
		t.Errorf("account page:\n%s", me)
	}
	if exportHref != d.PublicURL+"/.gatehouse/me/export" {
		t.Fatalf("the account page's export link is %q", exportHref)
	}
	req, _ := http.NewRequest(http.MethodGet, exportHref, nil)
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc map[string]any
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("export: %s %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"), body)
	}
	if !strings.Contains(string(body), email) || !strings.Contains(string(body), `"terms"`) {
		t.Errorf("export lacks the email or the terms consent:\n%s", body)
	}
	if err := os.WriteFile(filepath.Join(artifactDir(t), "demo-export.json"), body, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("export: %d bytes, top-level keys %v", len(body), mapKeys(doc))

	// Password reset from the sign-in page: the link is in the outbox.
	var resetDone string
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/.gatehouse/login?audience=customer&provider=shoppers&rd=%2Fshop%2Faccount"),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.Click(`//nav/a[text()="Forgot your password?"]`, chromedp.BySearch),
		chromedp.WaitVisible(`input[name="email"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the reset notice", `document.querySelector("h1")?.textContent === "Check your email"`),
	)
	if err != nil {
		t.Fatalf("reset request: %v", err)
	}
	reset, err := outboxLink(ctx, d.OutboxURL(), email, "/reset/confirm?token=")
	if err != nil {
		t.Fatal(err)
	}
	err = chromedp.Run(ctx,
		shot(t, ctx, "demo-outbox-reset-phone.png"),
		chromedp.Navigate(reset),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, second, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the password-changed notice", `document.querySelector("h1")?.textContent === "Password changed"`),
		chromedp.Text(`body`, &resetDone, chromedp.ByQuery),
		shot(t, ctx, "demo-password-changed-phone.png"),
	)
	if err != nil {
		t.Fatalf("reset: %v", err)
	}

	// The session from before the reset has ended: the account page asks
	// for a sign-in again; the new password works (no consent page: the
	// terms were already accepted). Revocations are compared with session
	// start times at second precision, so a session started in the same
	// second as the reset counts as revoked too: wait for the next second,
	// as a person typing would.
	var again string
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/shop/account"),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.Location(&again),
		chromedp.Sleep(1100*time.Millisecond),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, second, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`table#headers`, chromedp.ByQuery),
		chromedp.Location(&landed),
		echoHeaders(&seen),
		shot(t, ctx, "demo-shop-after-reset-phone.png"),
	)
	if err != nil {
		t.Fatalf("sign-in after the reset: %v", err)
	}
	if !strings.HasPrefix(again, d.PublicURL+"/.gatehouse/local/shoppers/signin?") {
		t.Errorf("after the reset /shop/account went to %s, want the sign-in page (the old session must have ended)", again)
	}
	if landed != d.PublicURL+"/shop/account" || seen["X-Shop-Email"] != email {
		t.Errorf("after the reset: landed on %s as %q", landed, seen["X-Shop-Email"])
	}
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDemoEmployees: alice signs in at the demo IdP and reaches the
// intranet but gets 403 on its admin area; after signing out, bob signs in
// and reaches the admin area.
func TestDemoEmployees(t *testing.T) {
	chromiumPath(t)
	d := startDemo(t)
	ctx := newPhoneBrowser(t)
	tr := traceNavigations(ctx)
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("browser navigations:\n%s", tr)
		}
	}()

	signIn := func(user, password, shotName string) (login string) {
		t.Helper()
		err := chromedp.Run(ctx,
			chromedp.Navigate(d.PublicURL+"/intranet"),
			chromedp.WaitVisible(`input[name="user"]`, chromedp.ByQuery),
			chromedp.Text(`body`, &login, chromedp.ByQuery),
			chromedp.SendKeys(`input[name="user"]`, user, chromedp.ByQuery),
			chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
			shot(t, ctx, shotName),
			chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`table#headers`, chromedp.ByQuery),
		)
		if err != nil {
			t.Fatalf("SAML sign-in as %s: %v", user, err)
		}
		return login
	}
	pw := map[string]string{}
	for _, u := range d.Employees {
		pw[u.ID] = u.Password
	}

	login := signIn("alice", pw["alice"], "demo-idp-login-phone.png")
	if !strings.Contains(login, "DEMO ONLY") || !strings.Contains(login, pw["bob"]) {
		t.Errorf("IdP login page is not marked DEMO ONLY or lacks the demo users:\n%s", login)
	}
	if _, ok := tr.find(0, "GET", d.IdPURL+"/sso?"); !ok {
		t.Error("the sign-in did not go through the demo IdP's SSO endpoint")
	}
	if h, ok := tr.find(0, "POST", d.PublicURL+"/.gatehouse/saml/corp/acs"); !ok || h.Status != http.StatusSeeOther {
		t.Errorf("ACS POST: %v (found %v), want 303", h, ok)
	}
	var seen map[string]string
	var app string
	err := chromedp.Run(ctx,
		chromedp.Text(`body`, &app, chromedp.ByQuery),
		echoHeaders(&seen),
		shot(t, ctx, "demo-intranet-alice-phone.png"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if seen["X-Remote-User"] != "alice" || seen["X-Remote-Email"] != "alice@corp.example" || seen["X-Remote-Roles"] != "employee" || seen["X-Remote-Groups"] != "staff" {
		t.Errorf("upstream saw user %q email %q roles %q groups %q", seen["X-Remote-User"], seen["X-Remote-Email"], seen["X-Remote-Roles"], seen["X-Remote-Groups"])
	}
	if !strings.Contains(app, "verified against the gateway's JWKS") || !strings.Contains(app, "aud intranet") {
		t.Errorf("the assertion did not verify at the upstream:\n%s", app)
	}

	adminAt := tr.mark()
	var denied string
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/intranet/admin"),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`body`, &denied, chromedp.ByQuery),
		shot(t, ctx, "demo-admin-alice-denied-phone.png"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := tr.find(adminAt, "GET", d.PublicURL+"/intranet/admin"); !ok || h.Status != http.StatusForbidden {
		t.Errorf("alice on /intranet/admin: %v (found %v), want 403", h, ok)
	}
	if !strings.Contains(denied, "Access denied") {
		t.Errorf("denied page:\n%s", denied)
	}

	// Sign out (the demo IdP keeps no session), then bob.
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/.gatehouse/logout"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the signed-out notice", `document.querySelector("h1")?.textContent === "Signed out"`),
	)
	if err != nil {
		t.Fatalf("sign-out: %v", err)
	}
	signIn("bob", pw["bob"], "demo-idp-login-bob-phone.png")
	bobAt := tr.mark()
	err = chromedp.Run(ctx,
		chromedp.Navigate(d.PublicURL+"/intranet/admin"),
		chromedp.WaitVisible(`table#headers`, chromedp.ByQuery),
		echoHeaders(&seen),
		shot(t, ctx, "demo-admin-bob-phone.png"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := tr.find(bobAt, "GET", d.PublicURL+"/intranet/admin"); !ok || h.Status != http.StatusOK {
		t.Errorf("bob on /intranet/admin: %v (found %v), want 200", h, ok)
	}
	if seen["X-Remote-User"] != "bob" || !strings.Contains(seen["X-Remote-Roles"], "admin") {
		t.Errorf("upstream saw user %q roles %q", seen["X-Remote-User"], seen["X-Remote-Roles"])
	}
}
