package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/providers/static"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// privacyPolicy: two regions (one SQLite store each), a provider per
// region, purposes, and routes that need consent, minimize claims, use a
// pseudonym, or serve one region only.
const privacyPolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
{{SERVER_EXTRA}}
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

// TestPrivacyEndToEndBothBackends is the privacy issue's whole story in one
// test, with the EU region on PostgreSQL and the US region on SQLite: a
// customer signs in, is asked for consent, grants it, reaches the upstream
// (only the allowed claims, a pairwise subject), exports their data (the
// grant is in it), withdraws and is asked again, and deletes the account.
// Afterwards no row of either database holds their subject or email, the
// signed deletion webhook arrived, and the audit holds a tombstone. A store
// that is down gets a clear error and changes nothing.
func TestPrivacyEndToEndBothBackends(t *testing.T) {
	pg := storetest.PostgresDSN(t)
	dir := t.TempDir()
	hookSecret := "webhook-secret-0123456789abcdef0123456789"
	var hookMu sync.Mutex
	var hookBodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := privacy.VerifySignature([]byte(hookSecret), r.Header.Get("Gatehouse-Signature"), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		hookMu.Lock()
		hookBodies = append(hookBodies, body)
		hookMu.Unlock()
	}))
	defer hook.Close()
	pol := strings.ReplaceAll(privacyPolicy, `eu: "sqlite://{{DIR}}/eu.db"`, `eu: "`+pg+`"`)
	pol = strings.ReplaceAll(pol, "{{DIR}}", dir)
	pol = strings.Replace(pol, "  regions:\n", "  webhooks: [ { name: crm, url: \""+hook.URL+"\", secret: \""+hookSecret+"\", events: [deletion] } ]\n  regions:\n", 1)
	e := newEnvWith(t, envConfig{policy: pol})
	const key, email = "static:shoppers-eu|c-1001", "dana@mail.example"

	b := e.browser()
	b.signInAs("/shop", "shoppers-eu", "c-1001")
	// Consent.
	page := b.get(b.get("/shop").location())
	form := formFields(page.body)
	form.Del("decline")
	form.Set("purpose", "terms:2")
	action := strings.ReplaceAll(regexp.MustCompile(`<form[^>]*action="([^"]+)"`).FindStringSubmatch(page.body)[1], "&amp;", "&")
	if r := b.postForm(action, form); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent: %d", r.StatusCode)
	}
	// The upstream: allowed claims only, a pairwise subject.
	h := b.get("/shop").echo(t).Header
	if h.Get("X-Shop-Email") != email || h.Get("X-Shop-Name") != "" || h.Get("X-Shop-User") == "c-1001" || h.Get("X-Shop-User") == "" {
		t.Errorf("upstream saw email %q name %q user %q", h.Get("X-Shop-Email"), h.Get("X-Shop-Name"), h.Get("X-Shop-User"))
	}
	// Export: the grant is in it.
	if ex := b.get(proxy.Prefix + "me/export"); !strings.Contains(ex.body, `"purpose": "terms"`) || !strings.Contains(ex.body, `"decision": "grant"`) {
		t.Errorf("export lacks the grant:\n%.800s", ex.body)
	}
	// Withdraw: asked again.
	tok := formFields(b.get(proxy.Prefix + "me").body).Get("csrf_token")
	b.postForm(proxy.Prefix+"me/consents", url.Values{"csrf_token": {tok}, "purpose": {"terms:2"}, "decision": {"withdraw"}})
	if r := b.get("/shop"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("after withdrawal: %d, want the consent page", r.StatusCode)
	}

	// A store that is down: a clear error, nothing changed.
	eu := e.opts.Privacy.Regions().Store("eu")
	before, _ := eu.ConsentHistory(context.Background(), key)
	eu.Close() // the gateway's handle on the EU database is gone
	r := b.postForm(proxy.Prefix+"me/consents", url.Values{"csrf_token": {tok}, "purpose": {"terms:2"}, "decision": {"grant"}})
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(r.body, "Nothing was changed") {
		t.Errorf("consent with the store down: %d %.300s", r.StatusCode, r.body)
	}
	after := openPG(t, pg)
	if hist, _ := after.ConsentHistory(context.Background(), key); len(hist) != len(before) {
		t.Errorf("the failed write changed the ledger: %d entries, had %d", len(hist), len(before))
	}
	// A new gateway on the same databases (as after a restart) serves on.
	e2 := newEnvWith(t, envConfig{policy: pol})
	b2 := e2.browser()
	b2.signInAs("/eu", "shoppers-eu", "c-1001")

	// Before the deletion the scan finds the customer (it can fail).
	if findInAllRows(t, after, "c-1001") == "" || findInAllRows(t, after, email) == "" {
		t.Fatal("the row scan does not find the customer before the deletion")
	}
	// Delete the account.
	del := b2.get(proxy.Prefix + "me/delete")
	tok = formFields(del.body).Get("csrf_token")
	r = b2.postForm(proxy.Prefix+"me/delete", url.Values{"csrf_token": {tok}, "confirm": {email}})
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "tomb:") {
		t.Fatalf("deletion: %d %.300s", r.StatusCode, r.body)
	}
	tomb := regexp.MustCompile(`tomb:[0-9a-f]+`).FindString(r.body)
	// The deletion notice goes out (the serve loop runs this every 5 s).
	if rep, err := e2.opts.Privacy.Deliver(context.Background(), hook.Client()); err != nil {
		t.Fatalf("deliver: %+v %v", rep, err)
	}
	hookMu.Lock()
	if len(hookBodies) != 1 || !strings.Contains(string(hookBodies[0]), "c-1001") {
		t.Errorf("webhook bodies: %q", hookBodies)
	}
	hookMu.Unlock()

	// No row in either database holds the subject or the email.
	for name, s := range map[string]store.Store{"postgres": after, "sqlite": openStore(t, filepath.Join(dir, "us.db"))} {
		for _, needle := range []string{"c-1001", email} {
			if where := findInAllRows(t, s, needle); where != "" {
				t.Errorf("%s still holds %q in %s", name, needle, where)
			}
		}
	}
	// The audit shows the tombstone.
	events, err := after.AuditEvents(context.Background(), tomb, 100)
	if err != nil || len(events) == 0 {
		t.Errorf("no audit events under the tombstone %s: %v", tomb, err)
	}
}

// openPG opens a PostgreSQL store for the test.
func openPG(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// findInAllRows returns "table" when any column of any row of any table
// contains needle (as text), or "".
func findInAllRows(t *testing.T, s store.Store, needle string) string {
	t.Helper()
	db, ok := store.RawDB(s)
	if !ok {
		t.Fatal("no raw database handle")
	}
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if s.Kind() == "postgres" {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatal("no tables found")
	}
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM ` + table)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			for _, v := range vals {
				var text string
				switch x := v.(type) {
				case []byte:
					text = string(x)
				case string:
					text = x
				default:
					text = fmt.Sprint(x)
				}
				if strings.Contains(text, needle) {
					rows.Close()
					return table
				}
			}
		}
		rows.Close()
	}
	return ""
}

// TestCustomerLogsFollowPrivacy: with privacy.logs.personal_data omit, no
// log line names the customer, even hashed, although log.user is plain for
// everyone else.
func TestCustomerLogsFollowPrivacy(t *testing.T) {
	dir := t.TempDir()
	pol := strings.ReplaceAll(privacyPolicy, "{{DIR}}", dir)
	pol = strings.Replace(pol, "privacy:\n", "log: { user: plain }\nprivacy:\n  logs: { personal_data: omit }\n", 1)
	e := newEnvWith(t, envConfig{policy: pol})
	b := e.browser()
	b.signInAs("/eu", "shoppers-eu", "c-1001")
	b.get("/eu")
	if len(e.logs.All()) == 0 {
		t.Fatal("no logs")
	}
	for _, le := range e.logs.All() {
		for _, f := range le.Context {
			if f.Key == "user_hash" || f.Key == "user" || strings.Contains(f.String, "c-1001") || strings.Contains(f.String, "dana@") {
				t.Errorf("log %q names the customer: %s=%q", le.Message, f.Key, f.String)
			}
		}
	}
}

// TestReadinessReflectsPrivacyStores: a region's store that is down makes
// the gateway not ready.
func TestReadinessReflectsPrivacyStores(t *testing.T) {
	e, _ := newPrivacyEnv(t)
	if err := e.gw.Ready(); err != nil {
		t.Fatalf("ready with both stores up: %v", err)
	}
	e.opts.Privacy.Regions().Store("us").Close()
	if err := e.gw.Ready(); err == nil || !strings.Contains(err.Error(), "region us") {
		t.Errorf("readiness with the US store closed: %v", err)
	}
}

// TestForwardAuthAppliesPrivacy: in forward-auth mode a route's privacy
// settings hold as when proxying: the region, the consent page (reached
// the forward-auth way), the minimized identity and the consent header.
func TestForwardAuthAppliesPrivacy(t *testing.T) {
	dir := t.TempDir()
	pol := strings.ReplaceAll(privacyPolicy, "{{DIR}}", dir)
	e := newEnvWith(t, envConfig{policy: pol, serverExtra: `  trusted_proxies: ["127.0.0.1/32"]`})
	us := e.browser()
	us.signInAs("/shop", "shoppers-us", "c-2002")
	if r := us.ask("", e.traefik("GET", "/eu")...); r.StatusCode != http.StatusForbidden || !strings.Contains(r.body, "region") {
		t.Errorf("forward-auth, US customer on the EU route: %d, want 403", r.StatusCode)
	}
	r := us.ask("", e.traefik("GET", "/shop/cart")...)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.location(), "/.gatehouse/me/consent?route=shop") {
		t.Fatalf("forward-auth without consent: %d %q, want 401 to the consent page: %s", r.StatusCode, r.location(), regexp.MustCompile(`<h1>[^<]*</h1>|<p[^>]*>[^<]*</p>`).FindAllString(r.body, -1))
	}
	if r.Header.Get("X-Shop-User") != "" || r.Header.Get("X-Shop-Email") != "" {
		t.Error("identity headers sent without consent")
	}
	// Grant through the gateway's page, then forward-auth passes with the
	// minimized identity.
	page := us.get(proxy.Prefix + "me/consent?route=shop&rd=/shop/cart")
	form := formFields(page.body)
	form.Del("decline")
	form.Set("purpose", "terms:2")
	if r := us.postForm(proxy.Prefix+"me/consent?route=shop", form); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent: %d", r.StatusCode)
	}
	r = us.ask("", e.traefik("GET", "/shop/cart")...)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("forward-auth after consent: %d", r.StatusCode)
	}
	if u := r.Header.Get("X-Shop-User"); u == "" || u == "c-2002" || r.Header.Get("X-Shop-Name") != "" || r.Header.Get("X-Gatehouse-Consent") != "terms:2" {
		t.Errorf("forward-auth answer: user %q name %q consent %q", u, r.Header.Get("X-Shop-Name"), r.Header.Get("X-Gatehouse-Consent"))
	}
}

// TestSignOutAfterDeletionWritesNothing: a second device of a deleted
// customer signing out must not write their key back into the audit.
func TestSignOutAfterDeletionWritesNothing(t *testing.T) {
	e, dir := newPrivacyEnv(t)
	phone, laptop := e.browser(), e.browser()
	phone.signInAs("/shop", "shoppers-eu", "c-1001")
	laptop.signInAs("/shop", "shoppers-eu", "c-1001")
	tok := formFields(phone.get(proxy.Prefix + "me/delete").body).Get("csrf_token")
	if r := phone.postForm(proxy.Prefix+"me/delete", url.Values{"csrf_token": {tok}, "confirm": {"DELETE"}}); r.StatusCode != http.StatusOK {
		t.Fatalf("deletion: %d", r.StatusCode)
	}
	lt := csrfToken(t, laptop.get(proxy.Prefix+"logout").body)
	laptop.postForm(proxy.Prefix+"logout", url.Values{"csrf_token": {lt}})
	eu := openStore(t, filepath.Join(dir, "eu.db"))
	if where := findInAllRows(t, eu, "c-1001"); where != "" {
		t.Errorf("after the second device signed out, %s holds the erased customer's key", where)
	}
}

// TestConsentFormsNameTheVersionShown: a decision without the version the
// customer saw (version 0 would mean "the current one") is refused.
func TestConsentFormsNameTheVersionShown(t *testing.T) {
	e, _ := newPrivacyEnv(t)
	b := e.browser()
	b.signInAs("/shop", "shoppers-eu", "c-1001")
	tok := formFields(b.get(proxy.Prefix + "me").body).Get("csrf_token")
	if r := b.postForm(proxy.Prefix+"me/consents", url.Values{"csrf_token": {tok}, "purpose": {"marketing:0"}, "decision": {"grant"}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("account page grant of version 0: %d, want 400", r.StatusCode)
	}
	if r := b.postForm(proxy.Prefix+"me/consent?route=shop", url.Values{"csrf_token": {tok}, "purpose": {"terms:0"}, "return_to": {"/shop"}}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("consent page grant of version 0: %d, want 400", r.StatusCode)
	}
}

// inFlightShoppers is a static provider whose account deletion, which
// self-service deletion runs after the erasure and before its re-check,
// first writes under the customer's key: a deterministic stand-in for a
// request in flight (a sign-out on another device) committing after the
// erasure.
type inFlightShoppers struct {
	*static.Provider
	write func(ctx context.Context, subject string) error
	mu    sync.Mutex
	calls int
}

func (p *inFlightShoppers) DeleteAccount(ctx context.Context, subject string) error {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	return p.write(ctx, subject)
}

// TestDeletionSweepsWritesMadeMeanwhile: self-service deletion looks for
// the customer again after the erasure and tombstones what was written
// meanwhile under the same receipt.
func TestDeletionSweepsWritesMadeMeanwhile(t *testing.T) {
	dir := t.TempDir()
	var prov *inFlightShoppers
	e := newEnvWith(t, envConfig{policy: strings.ReplaceAll(privacyPolicy, "{{DIR}}", dir), edit: func(o *proxy.Options) {
		pp := o.Privacy
		prov = &inFlightShoppers{Provider: o.Providers["shoppers-eu"].(*static.Provider), write: func(ctx context.Context, subject string) error {
			return pp.Audit(ctx, privacy.KindSignOut, "static:shoppers-eu|"+subject, "eu", "in-flight", map[string]string{"provider": "shoppers-eu"})
		}}
		o.Providers["shoppers-eu"] = prov
	}})
	b := e.browser()
	b.signInAs("/shop", "shoppers-eu", "c-1001")
	tok := formFields(b.get(proxy.Prefix + "me/delete").body).Get("csrf_token")
	r := b.postForm(proxy.Prefix+"me/delete", url.Values{"csrf_token": {tok}, "confirm": {"DELETE"}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("deletion: %d %.400s", r.StatusCode, r.body)
	}
	prov.mu.Lock()
	calls := prov.calls
	prov.mu.Unlock()
	if calls != 1 {
		t.Fatalf("DeleteAccount called %d times, want 1", calls)
	}
	receipt := regexp.MustCompile(`tomb:[0-9a-f]{32}`).FindString(r.body)
	if receipt == "" {
		t.Fatalf("no receipt on the page: %.400s", r.body)
	}
	eu := openStore(t, filepath.Join(dir, "eu.db"))
	ctx := context.Background()
	const key = "static:shoppers-eu|c-1001"
	if found, err := eu.HasSubject(ctx, key); err != nil || found {
		t.Fatalf("HasSubject after deletion = %v, %v: the write made meanwhile was not swept", found, err)
	}
	if where := findInAllRows(t, eu, "c-1001"); where != "" {
		t.Errorf("%s still holds the deleted customer's key", where)
	}
	// The late row joined the customer's one receipt, and the sweep is on
	// record there.
	evs, err := eu.AuditEvents(ctx, receipt, 0)
	if err != nil {
		t.Fatal(err)
	}
	var late, sweep bool
	for _, ev := range evs {
		late = late || (ev.Kind == privacy.KindSignOut && ev.RequestID == "in-flight")
		sweep = sweep || (ev.Kind == privacy.KindDelete && ev.Detail["pass"] == "sweep" && ev.Detail["audits"] == "1")
	}
	if !late || !sweep {
		t.Errorf("under the receipt: late event %v, sweep event %v; events %+v", late, sweep, evs)
	}
}
