package e2e

// Browser test of passkeys on a local-accounts provider: chromium's
// virtual authenticator (DevTools WebAuthn domain) answers the pages'
// navigator.credentials calls.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/proxy"
)

const passkeyPolicy = `version: 1
server:
  listen: "127.0.0.1:0"
  public_url: "PUBLIC"
  admin_listen: ""
  trusted_proxies: []
audiences:
  customer: { providers: [accounts] }
providers:
  accounts:
    type: local
    display_name: "Passkey test accounts"
    store: "sqlite://DIR/accounts.db"
    mail:
      from: "Test <no-reply@test.example>"
      outbox: "DIR/outbox"
    mfa: { passkeys: true }
routes:
  - name: app
    match: { path: /app }
    audience: customer
    allow: { authenticated: true }
    rules:
      - { name: secure, path: /app/secure, allow: { authenticated: true }, require: { mfa: true } }
    upstream: "UPSTREAM"
    forward: { user: X-App-User, email: X-App-Email }
`

// startPasskeyGateway runs a gateway with one local provider (passkeys on,
// mail to an outbox) in front of the echo app, at http://localhost:PORT:
// passkeys need a host name, not an IP address.
func startPasskeyGateway(t *testing.T) string {
	t.Helper()
	dir := filepath.ToSlash(t.TempDir())
	return startEchoGateway(t, "passkeys.yaml", func(public, upstream string) string {
		return strings.NewReplacer("PUBLIC", public, "DIR", dir, "UPSTREAM", upstream).Replace(passkeyPolicy)
	})
}

// TestPasskeyBrowser: a customer creates an account, confirms it through
// the outbox, signs in with the password, adds a passkey on the security
// page (the virtual authenticator answers), signs out, and signs in again
// with password and passkey to reach a route that requires MFA; then
// signs out and in with the passkey alone (passwordless).
func TestPasskeyBrowser(t *testing.T) {
	chromiumPath(t)
	public := startPasskeyGateway(t)
	ctx := newPhoneBrowser(t)
	tr := traceNavigations(ctx)
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("browser navigations:\n%s", tr)
		}
	}()
	var authID webauthn.AuthenticatorID
	err := chromedp.Run(ctx,
		webauthn.Enable().WithEnableUI(false),
		chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			authID, err = webauthn.AddVirtualAuthenticator(&webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Transport: webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			}).Do(ctx)
			return err
		}),
	)
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	base := public + proxy.Prefix + "local/accounts/"
	email := fmt.Sprintf("pat.%d@mail.example", time.Now().UnixNano()%1e6)
	const password = "passkey-demo-passw0rd"

	// Sign-up and confirmation.
	signUp := public + proxy.Prefix + "login?audience=customer&provider=accounts&prompt=create&rd=" + public + "/app"
	err = chromedp.Run(ctx,
		chromedp.Navigate(signUp),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="email"]`, email, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the check-your-email notice", `document.querySelector("h1")?.textContent === "Check your email"`),
	)
	if err != nil {
		t.Fatalf("sign-up: %v", err)
	}
	verify, err := outboxLink(ctx, base+"dev/outbox", email, "/verify?token=")
	if err != nil {
		t.Fatal(err)
	}
	signIn := func() chromedp.Action {
		return chromedp.Tasks{
			chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
			chromedp.SetValue(`input[name="email"]`, email, chromedp.ByQuery),
			chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
			chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		}
	}
	var app1 string
	err = chromedp.Run(ctx,
		chromedp.Navigate(verify),
		chromedp.WaitVisible(`input[name="password"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the confirmed notice", `document.querySelector("h1")?.textContent === "Email address confirmed"`),
		// Password only: /app does not require MFA.
		chromedp.Navigate(public+"/app"),
		signIn(),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Text(`body`, &app1, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("confirm and first sign-in: %v", err)
	}
	if !strings.Contains(app1, email) {
		t.Errorf("upstream after the first sign-in:\n%s", app1)
	}

	// The security page: sign in again there, add a passkey.
	var added string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"security"),
		signIn(),
		chromedp.WaitVisible(`input[name="name"]`, chromedp.ByQuery),
		chromedp.SendKeys(`input[name="name"]`, "Virtual key", chromedp.ByQuery),
		shot(t, ctx, "passkey-security-phone.png"),
		chromedp.Click(`//button[text()="Add a passkey"]`, chromedp.BySearch),
		chromedp.WaitVisible(`form[data-passkey="create"] button`, chromedp.ByQuery),
		shot(t, ctx, "passkey-add-phone.png"),
		chromedp.Click(`form[data-passkey="create"] button`, chromedp.ByQuery),
		waitUntil("the passkey in the list", `document.body.textContent.includes("Remove Virtual key")`),
		chromedp.Text(`body`, &added, chromedp.ByQuery),
		shot(t, ctx, "passkey-added-phone.png"),
	)
	if err != nil {
		var body string
		chromedp.Run(ctx, chromedp.Text(`body`, &body, chromedp.ByQuery))
		t.Fatalf("adding a passkey: %v\n%s", err, body)
	}
	if !strings.Contains(added, "added") || !strings.Contains(added, "never used") {
		t.Errorf("security page after adding:\n%s", added)
	}
	creds, err := credentials(ctx, authID)
	if err != nil || len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("virtual authenticator credentials: %+v, %v", creds, err)
	}

	// Sign out; sign in again to the MFA route: password, then passkey.
	var secure, landed string
	err = chromedp.Run(ctx,
		chromedp.Navigate(public+"/.gatehouse/logout"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the signed-out notice", `document.querySelector("h1")?.textContent === "Signed out"`),
		chromedp.Navigate(public+"/app/secure"),
		signIn(),
		chromedp.WaitVisible(`#use-passkey`, chromedp.ByQuery),
		viewportWidth(t, 390),
		shot(t, ctx, "passkey-mfa-phone.png"),
		chromedp.Click(`#use-passkey`, chromedp.ByQuery),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Location(&landed),
		chromedp.Text(`body`, &secure, chromedp.ByQuery),
		shot(t, ctx, "passkey-upstream-phone.png"),
	)
	if err != nil {
		var body string
		chromedp.Run(ctx, chromedp.Text(`body`, &body, chromedp.ByQuery))
		t.Fatalf("sign-in with a passkey: %v\n%s", err, body)
	}
	if landed != public+"/app/secure" || !strings.Contains(secure, email) {
		t.Errorf("landed on %s:\n%s", landed, secure)
	}
	creds, err = credentials(ctx, authID)
	if err != nil || len(creds) != 1 || creds[0].SignCount == 0 {
		t.Errorf("credential after use: %+v, %v", creds, err)
	}

	// Passwordless: sign out, then "Sign in with a passkey" alone (the
	// authenticator verifies the person, which satisfies the MFA route).
	var again string
	err = chromedp.Run(ctx,
		chromedp.Navigate(public+"/.gatehouse/logout"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the signed-out notice", `document.querySelector("h1")?.textContent === "Signed out"`),
		chromedp.Navigate(public+"/app/secure"),
		chromedp.WaitVisible(`#passkey-signin`, chromedp.ByQuery),
		shot(t, ctx, "passkey-signin-phone.png"),
		chromedp.Click(`#passkey-signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Location(&landed),
		chromedp.Text(`body`, &again, chromedp.ByQuery),
	)
	if err != nil {
		var body string
		chromedp.Run(ctx, chromedp.Text(`body`, &body, chromedp.ByQuery))
		t.Fatalf("passwordless sign-in: %v\n%s", err, body)
	}
	if landed != public+"/app/secure" || !strings.Contains(again, email) {
		t.Errorf("passwordless: landed on %s:\n%s", landed, again)
	}
}

// credentials lists the virtual authenticator's credentials.
func credentials(ctx context.Context, id webauthn.AuthenticatorID) ([]*webauthn.Credential, error) {
	var out []*webauthn.Credential
	err := chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		out, err = webauthn.GetCredentials(id).Do(ctx)
		return err
	}))
	return out, err
}
