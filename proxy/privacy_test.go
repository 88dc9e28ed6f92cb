package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

// privacyPolicy: two regions (one SQLite store each), a provider per
// region, purposes, and routes that need consent, minimize claims, use a
// pseudonym, or serve one region only.
const privacyPolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
session:
  keys: ["e2e-test-session-key-0123456789abcdef"]
audiences:
  customer: { providers: [shoppers-eu, shoppers-us] }
providers:
  shoppers-eu:
    type: static
    users: [ { sub: c-1001, name: Dana Customer, email: dana@mail.example } ]
  shoppers-us:
    type: static
    users: [ { sub: c-2002, name: Sam Customer, email: sam@mail.example } ]
privacy:
  pseudonym_key: "pseudonym-key-0123456789abcdef0123456789"
  purposes:
    - { id: terms, description: "The shop's terms of service", legal_basis: contract, version: 2, required: true }
    - { id: marketing, description: "Offers by email", legal_basis: consent, version: 1 }
  regions:
    default: eu
    from: [ { provider: { shoppers-eu: eu, shoppers-us: us } } ]
    stores: { eu: "sqlite://{{DIR}}/eu.db", us: "sqlite://{{DIR}}/us.db" }
routes:
  - name: shop
    match: { path: /shop }
    audience: customer
    allow: { authenticated: true }
    upstream: "{{UP}}"
    forward: { user: X-Shop-User, email: X-Shop-Email, name: X-Shop-Name }
    privacy: { claims: [email], pseudonym: shop }
  - name: newsletter
    match: { path: /newsletter }
    audience: customer
    allow: { authenticated: true }
    upstream: "{{UP}}"
    privacy: { consent: [marketing] }
  - name: eu-only
    match: { path: /eu }
    audience: customer
    allow: { authenticated: true }
    upstream: "{{UP}}"
    privacy: { regions: [eu] }
`

func newPrivacyEnv(t *testing.T) (*env, string) {
	dir := t.TempDir()
	return newEnvWith(t, envConfig{policy: strings.ReplaceAll(privacyPolicy, "{{DIR}}", dir)}), dir
}

// signInAs signs in through the chooser with the given provider.
func (b *browser) signInAs(path, provider, user string) {
	t := b.e.t
	t.Helper()
	r := b.get(path)
	if r.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d", path, r.StatusCode)
	}
	login := r.location() + "&provider=" + provider
	b.loginAt(login, user)
}

var hiddenField = regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)

// formFields returns the hidden fields of a page.
func formFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		v.Add(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
	}
	return v
}

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "sqlite://"+path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConsentMinimizationExportAndDeletion(t *testing.T) {
	e, dir := newPrivacyEnv(t)
	b := e.browser()
	b.signInAs("/shop", "shoppers-eu", "c-1001")

	// The shop needs the required terms: the consent page comes first.
	r := b.get("/shop/cart")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.location(), proxy.Prefix+"me/consent?route=shop") {
		t.Fatalf("/shop without consent: %d %q, want 303 to the consent page", r.StatusCode, r.location())
	}
	page := b.get(r.location())
	if page.StatusCode != http.StatusOK || !strings.Contains(page.body, "The shop&#39;s terms of service") {
		t.Fatalf("consent page: %d %.400s", page.StatusCode, page.body)
	}
	form := formFields(page.body)
	form.Del("decline") // the Decline button's value, not a hidden field
	form.Set("purpose", "terms:2")
	action := regexp.MustCompile(`<form[^>]*action="([^"]+)"`).FindStringSubmatch(page.body)
	if action == nil {
		t.Fatalf("consent page has no form: %.600s", page.body)
	}
	// Without the browser's CSRF token the answer is refused.
	forged := url.Values{"purpose": {"terms:2"}, "return_to": {"/shop/cart"}}
	if r := e.browser().postForm(strings.ReplaceAll(action[1], "&amp;", "&"), forged); r.StatusCode != http.StatusUnauthorized && r.StatusCode != http.StatusForbidden {
		t.Errorf("consent POST without a session and token: %d", r.StatusCode)
	}
	bad := url.Values{"purpose": {"terms:2"}, "return_to": {"/shop/cart"}, "csrf_token": {"forged"}}
	if r := b.postForm(strings.ReplaceAll(action[1], "&amp;", "&"), bad); r.StatusCode != http.StatusForbidden {
		t.Errorf("consent POST with a forged token: %d, want 403", r.StatusCode)
	}
	r = b.postForm(strings.ReplaceAll(action[1], "&amp;", "&"), form)
	if r.StatusCode != http.StatusSeeOther || r.location() != "/shop/cart" {
		t.Fatalf("consent POST: %d %q: %.300s", r.StatusCode, r.location(), r.body)
	}

	// Now the shop is reached, with only the claims it may have, under its
	// pseudonym, with the consent in a header and in the assertion.
	got := b.get("/shop/cart", "X-Gatehouse-Consent", "marketing:1").echo(t)
	h := got.Header
	if h.Get("X-Gatehouse-Consent") != "terms:2" {
		t.Errorf("consent header %q, want terms:2 (never the client's)", h.Get("X-Gatehouse-Consent"))
	}
	if h.Get("X-Shop-Email") != "dana@mail.example" || h.Get("X-Shop-Name") != "" {
		t.Errorf("minimization: email %q name %q, want the email only", h.Get("X-Shop-Email"), h.Get("X-Shop-Name"))
	}
	pseudo := h.Get("X-Shop-User")
	if pseudo == "" || pseudo == "c-1001" {
		t.Errorf("shop user %q, want a pairwise subject", pseudo)
	}
	claims, err := fetchVerifier(t, e).Verify(h.Get("X-Gatehouse-Assertion"), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(claims.Consent, ",") != "terms:2" || claims.Subject != pseudo || claims.Name != "" {
		t.Errorf("assertion: consent %v sub %q name %q", claims.Consent, claims.Subject, claims.Name)
	}

	// The optional purpose: the newsletter asks for it separately.
	if r := b.get("/newsletter"); r.StatusCode != http.StatusSeeOther || !strings.Contains(r.location(), "route=newsletter") {
		t.Errorf("/newsletter without marketing consent: %d %q", r.StatusCode, r.location())
	}

	// Residency: the ledger is in the EU store only.
	eu, us := openStore(t, filepath.Join(dir, "eu.db")), openStore(t, filepath.Join(dir, "us.db"))
	key := "static:shoppers-eu|c-1001"
	if hist, err := eu.ConsentHistory(context.Background(), key); err != nil || len(hist) != 1 || hist[0].Purpose != "terms" || hist[0].Version != 2 || hist[0].Source != "consent_page" {
		t.Errorf("EU ledger: %+v %v", hist, err)
	}
	if hist, _ := us.ConsentHistory(context.Background(), key); len(hist) != 0 {
		t.Errorf("US ledger holds the EU customer's consent: %+v", hist)
	}

	// The account page: withdraw the terms, and the shop asks again.
	me := b.get(proxy.Prefix + "me")
	if me.StatusCode != http.StatusOK || !strings.Contains(me.body, "dana@mail.example") {
		t.Fatalf("account page: %d", me.StatusCode)
	}
	tok := formFields(me.body).Get("csrf_token")
	r = b.postForm(proxy.Prefix+"me/consents", url.Values{"csrf_token": {tok}, "purpose": {"terms:2"}, "decision": {"withdraw"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("withdraw: %d %.300s", r.StatusCode, r.body)
	}
	if r := b.get("/shop"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("/shop after withdrawing: %d, want the consent page again", r.StatusCode)
	}

	// Export: everything held, as JSON.
	ex := b.get(proxy.Prefix + "me/export")
	var doc struct {
		Format   string `json:"format"`
		Subject  string `json:"subject"`
		Region   string `json:"region"`
		Consents []struct {
			Purpose, Decision string
		} `json:"consents"`
		Audit []struct {
			Kind string `json:"kind"`
		} `json:"audit"`
	}
	if err := json.Unmarshal([]byte(ex.body), &doc); err != nil || doc.Subject != key || doc.Region != "eu" || len(doc.Consents) != 2 || len(doc.Audit) == 0 {
		t.Fatalf("export: %v %+v\n%.500s", err, doc, ex.body)
	}
	if !strings.Contains(ex.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export Content-Disposition %q", ex.Header.Get("Content-Disposition"))
	}

	// Deletion: confirm, then the data is gone and the session ended.
	copied := b.cookieHeader()
	del := b.get(proxy.Prefix + "me/delete")
	tok = formFields(del.body).Get("csrf_token")
	if r := b.postForm(proxy.Prefix+"me/delete", url.Values{"csrf_token": {tok}, "confirm": {"delete"}}); r.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("deletion with a wrong confirmation: %d, want 422", r.StatusCode)
	}
	r = b.postForm(proxy.Prefix+"me/delete", url.Values{"csrf_token": {tok}, "confirm": {"DELETE"}})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "tomb:") {
		t.Fatalf("deletion: %d %.500s", r.StatusCode, r.body)
	}
	if b.session(identity.Customer) != "" {
		t.Error("the session cookie survived the deletion")
	}
	if r := replay(e, "/eu", copied); r.StatusCode != http.StatusFound {
		t.Errorf("a copy of the deleted customer's cookie: %d, want 302", r.StatusCode)
	}
	if _, err := eu.Profile(context.Background(), key); err == nil {
		t.Error("the profile survived the deletion")
	}
	if hist, _ := eu.ConsentHistory(context.Background(), key); len(hist) != 0 {
		t.Errorf("ledger rows still under the customer's key: %+v", hist)
	}
}

func TestRouteRegionsAndSignInRegion(t *testing.T) {
	e, dir := newPrivacyEnv(t)
	us := e.browser()
	us.signInAs("/eu", "shoppers-us", "c-2002")
	if r := us.get("/eu"); r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "region") {
		t.Errorf("a US customer on an EU-only route: %d, want 403", r.StatusCode)
	}
	eu := e.browser()
	eu.signInAs("/eu", "shoppers-eu", "c-1001")
	// The EU customer passes the region check and meets the next one: the
	// required terms.
	if r := eu.get("/eu"); r.StatusCode != http.StatusSeeOther || !strings.Contains(r.location(), "me/consent?route=eu-only") {
		t.Errorf("an EU customer on the EU route: %d %q, want the consent page", r.StatusCode, r.location())
	}
	// Each sign-in wrote a profile and an audit event in its own region.
	usStore := openStore(t, filepath.Join(dir, "us.db"))
	if p, err := usStore.Profile(context.Background(), "static:shoppers-us|c-2002"); err != nil || p.Region != "us" {
		t.Errorf("US profile: %+v %v", p, err)
	}
	if _, err := usStore.Profile(context.Background(), "static:shoppers-eu|c-1001"); err == nil {
		t.Error("the EU customer's profile is in the US store")
	}
}
