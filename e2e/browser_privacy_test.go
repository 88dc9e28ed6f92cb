package e2e

// The customer's privacy journey in a real browser: sign in, the consent
// page before a route, the upstream with the granted purposes, the account
// page (grant and withdraw an optional purpose), the delete page and the
// receipt. Screenshots at phone (390x844) and desktop (1280x800) sizes go
// to $ARTIFACTS_DIR/screenshots as privacy-*-phone.png and -desktop.png.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func privacyBrowserPolicy(g *bidpGateway, dir string) string {
	return `version: 1
server:
  public_url: "` + g.public + `"
session:
  keys: ["${SESSION_KEY}"]
branding:
  title: Gatehouse e2e shop
audiences:
  customer: { providers: [shoppers] }
providers:
  shoppers:
    type: static
    display_name: Demo shoppers
    users:
      - { sub: c-1001, name: Dana Customer, email: dana@mail.example }
privacy:
  purposes:
    - { id: terms, description: "The shop's terms of service, version of 2026-01-15.", legal_basis: contract, required: true }
    - { id: marketing, description: "Offers and product news by email, at most twice a month.", legal_basis: consent }
  regions:
    stores: { eu: "sqlite://` + dir + `/eu.db" }
routes:
  - name: shop
    match: { path: /shop }
    audience: customer
    allow: { authenticated: true }
    upstream: "` + g.up + `"
    forward: { user: X-Remote-User, email: X-Remote-Email }
    privacy: { consent: [terms], claims: [email] }
`
}

// noHorizontalScroll fails the test when the page is wider than the
// viewport (the layout overflows sideways).
func noHorizontalScroll(t *testing.T, page string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var dims []int64
		if err := chromedp.Evaluate(`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`, &dims).Do(ctx); err != nil {
			return err
		}
		if len(dims) == 2 && dims[0] > dims[1] {
			t.Errorf("%s page scrolls sideways: scrollWidth %d > clientWidth %d", page, dims[0], dims[1])
		}
		return nil
	})
}

// purposeStateJS is a JavaScript expression: the state line of a purpose
// on the account page ("Granted ...", "Withdrawn ...", "Not granted"), ""
// when the page has none.
func purposeStateJS(value string) string {
	return fmt.Sprintf(`(() => {
		const f = document.querySelector('input[name="purpose"][value=%q]');
		const fs = f && f.closest('fieldset');
		const st = fs && fs.querySelector('p.state');
		return st ? st.textContent.trim() : '';
	})()`, value)
}

// purposeState reads the state line of a purpose on the account page.
func purposeState(value string, out *string) chromedp.Action {
	return chromedp.Evaluate(purposeStateJS(value), out)
}

func TestBrowserPrivacyJourney(t *testing.T) {
	chromiumPath(t)
	for _, size := range []struct {
		name          string
		width, height int64
	}{{"phone", 390, 844}, {"desktop", 1280, 800}} {
		t.Run(size.name, func(t *testing.T) {
			g := reserveGateway(t)
			g.serve(t, privacyBrowserPolicy(g, t.TempDir()))
			var ctx context.Context
			if size.name == "phone" {
				ctx = newPhoneBrowser(t)
			} else {
				ctx = newBrowser(t, int(size.width), int(size.height))
			}
			name := func(page string) string { return "privacy-" + page + "-" + size.name + ".png" }
			var consent, me, granted, withdrawn, del, deleted, after string
			var headers map[string]string
			var grantedState, withdrawnState, receipt string
			marketing := `form:has(input[name="purpose"][value="marketing:1"]) button[name="decision"]`
			marketingState := purposeStateJS("marketing:1")
			err := chromedp.Run(ctx,
				chromedp.Navigate(g.public+"/shop"),
				chromedp.WaitVisible(`button[name="user"][value="c-1001"]`, chromedp.ByQuery),
				chromedp.Click(`button[name="user"][value="c-1001"]`, chromedp.ByQuery),
				// The shop needs the terms: the consent page comes first.
				chromedp.WaitVisible(`fieldset.group`, chromedp.ByQuery),
				viewportWidth(t, size.width),
				chromedp.Text(`body`, &consent, chromedp.ByQuery),
				noHorizontalScroll(t, "consent"),
				shot(t, ctx, name("consent")),
				chromedp.Click(`form button.btn:not(.btn-alt)`, chromedp.ByQuery),
				// The upstream, with the granted purposes.
				chromedp.WaitVisible(`table`, chromedp.ByQuery),
				echoHeaders(&headers),
				// The account page.
				chromedp.Navigate(g.public+"/.gatehouse/me"),
				chromedp.WaitVisible(marketing, chromedp.ByQuery),
				chromedp.Text(`body`, &me, chromedp.ByQuery),
				noHorizontalScroll(t, "account"),
				shot(t, ctx, name("account")),
				// Grant marketing, then withdraw it.
				chromedp.Click(marketing, chromedp.ByQuery),
				waitUntil("marketing granted", marketingState+`.startsWith('Granted')`),
				purposeState("marketing:1", &grantedState),
				chromedp.Text(`body`, &granted, chromedp.ByQuery),
				shot(t, ctx, name("account-granted")),
				chromedp.Click(marketing, chromedp.ByQuery),
				waitUntil("marketing withdrawn", marketingState+`.startsWith('Withdrawn')`),
				purposeState("marketing:1", &withdrawnState),
				chromedp.Text(`body`, &withdrawn, chromedp.ByQuery),
				// The delete page, then the deletion.
				chromedp.Navigate(g.public+"/.gatehouse/me/delete"),
				chromedp.WaitVisible(`#confirm`, chromedp.ByQuery),
				chromedp.Text(`body`, &del, chromedp.ByQuery),
				noHorizontalScroll(t, "delete"),
				shot(t, ctx, name("delete")),
				chromedp.SendKeys(`#confirm`, "DELETE", chromedp.ByQuery),
				chromedp.Click(`button.btn-danger`, chromedp.ByQuery),
				chromedp.WaitVisible(`code.receipt`, chromedp.ByQuery),
				chromedp.Text(`code.receipt`, &receipt, chromedp.ByQuery),
				chromedp.Text(`body`, &deleted, chromedp.ByQuery),
				noHorizontalScroll(t, "deleted"),
				shot(t, ctx, name("deleted")),
				// Signed out: the shop asks for a sign-in again.
				chromedp.Navigate(g.public+"/shop"),
				chromedp.WaitVisible(`button[name="user"]`, chromedp.ByQuery),
				chromedp.Text(`body`, &after, chromedp.ByQuery),
			)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ page, text, want string }{
				{"consent", consent, "needs your permission"},
				{"consent", consent, "Required to continue"},
				{"consent", consent, "The shop's terms of service"},
				{"consent", consent, "Accept and continue"},
				{"account", me, "Dana Customer"},
				{"account", me, "dana@mail.example"},
				{"account", me, "Demo shoppers"},
				{"account", me, "Your consents"},
				{"account", me, "Offers and product news by email"},
				{"account", me, "Download my data"},
				{"account", me, "Delete my account"},
				{"delete", del, "This cannot be undone."},
				{"delete", del, "To confirm, type DELETE"},
				{"deleted", deleted, "Your deletion receipt"},
				{"after", after, "Dana Customer"},
			} {
				if !strings.Contains(c.text, c.want) {
					t.Errorf("%s page lacks %q:\n%s", c.page, c.want, c.text)
				}
			}
			if got := headers["X-Gatehouse-Consent"]; got != "terms:1" {
				t.Errorf("upstream X-Gatehouse-Consent = %q, want terms:1 (headers %v)", got, headers)
			}
			if got := headers["X-Remote-Email"]; got != "dana@mail.example" {
				t.Errorf("upstream X-Remote-Email = %q", got)
			}
			if !strings.HasPrefix(grantedState, "Granted") || !strings.HasPrefix(withdrawnState, "Withdrawn") {
				t.Errorf("marketing states: after grant %q, after withdrawal %q", grantedState, withdrawnState)
			}
			if !regexp.MustCompile(`^tomb:[0-9a-f]{32}$`).MatchString(strings.TrimSpace(receipt)) {
				t.Errorf("receipt %q", receipt)
			}
			if found, err := g.gw.Privacy().Regions().Locate(context.Background(), "static:shoppers|c-1001"); err != nil || len(found) != 0 {
				t.Errorf("after deletion the customer is still in %v (%v)", found, err)
			}
		})
	}
}
