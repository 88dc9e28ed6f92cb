package proxy_test

import (
	"html"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/mail"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// Progressive profiling through the gateway: a route that requires the
// phone claim sends a local-account session back to sign in with
// claims=phone, the provider asks for the phone once, and the upstream
// receives it only on the route that forwards it.
const profilePolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
session:
  keys: ["e2e-test-session-key-0123456789abcdef"]
audiences:
  customer: { providers: [shop] }
  workforce: { providers: [corp] }
providers:
  corp:
    type: static
    users: [{ sub: alice, email: alice@corp.example }]
  shop:
    type: local
    store: "sqlite://{{DIR}}/accounts.db"
    argon2: { memory_kib: 19456, iterations: 1, parallelism: 1 }
    mail: { from: "Shop <no-reply@shop.example>", outbox: "{{DIR}}/outbox" }
    profile:
      - { id: phone, label: Phone number, kind: tel, max: 32 }
routes:
  - name: orders
    match: { path: /orders }
    audience: customer
    allow: { authenticated: true }
    require: { claims: [phone] }
    forward: { user: X-User, claims: { X-Phone: phone } }
    upstream: "{{UP}}"
  - name: staff
    match: { path: /staff }
    audience: workforce
    allow: { authenticated: true }
    require: { claims: [phone] }
    upstream: "{{UP}}"
  - name: home
    match: { path: / }
    audience: customer
    allow: { authenticated: true }
    forward: { user: X-User }
    upstream: "{{UP}}"
`

var (
	pageFormRE   = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	pageHiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submitPage posts the (first) form of a provider page with fields.
func (b *browser) submitPage(page *resp, fields ...string) *resp {
	t := b.e.t
	t.Helper()
	m := pageFormRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no form on the page (%d): %.1500s", page.StatusCode, page.body)
	}
	v := url.Values{}
	for _, f := range pageHiddenRE.FindAllStringSubmatch(page.body, -1) {
		v.Set(f[1], html.UnescapeString(f[2]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		v.Set(fields[i], fields[i+1])
	}
	return b.postForm(html.UnescapeString(m[1]), v)
}

// follow GETs redirects from r until a non-redirect answer.
func (b *browser) follow(r *resp) *resp {
	b.e.t.Helper()
	for i := 0; i < 10 && r.StatusCode >= 300 && r.StatusCode < 400; i++ {
		r = b.get(r.location())
	}
	return r
}

func TestProgressiveProfiling(t *testing.T) {
	dir := t.TempDir()
	e := newEnvWith(t, envConfig{policy: strings.ReplaceAll(profilePolicy, "{{DIR}}", filepath.ToSlash(dir))})
	outbox, err := mail.NewOutbox(filepath.Join(dir, "outbox"), "Shop <no-reply@shop.example>")
	if err != nil {
		t.Fatal(err)
	}
	const email, password = "pat@shop.example", "correct-horse-battery-staple"

	// Create and confirm an account.
	b := e.browser()
	reg := b.get(proxy.Prefix + "local/shop/register?aud=customer")
	if done := b.submitPage(reg, "email", email, "password", password); !strings.Contains(done.body, "Check your email") {
		t.Fatalf("register: %d %.800s", done.StatusCode, done.body)
	}
	var link string
	for deadline := time.Now().Add(10 * time.Second); link == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		msgs, _ := outbox.Messages()
		for _, m := range msgs {
			if m.To == email && m.Kind == mail.KindVerify && len(m.Links) > 0 {
				link = m.Links[0]
			}
		}
	}
	if link == "" {
		t.Fatal("no confirmation mail")
	}
	if ok := b.submitPage(b.get(link), "password", password); !strings.Contains(ok.body, "is confirmed") {
		t.Fatalf("confirm: %d %.800s", ok.StatusCode, ok.body)
	}

	// Sign in for the home page: no profile asked.
	r := b.get("/")
	if r.StatusCode != http.StatusFound || strings.Contains(r.location(), "claims=") {
		t.Fatalf("GET / : %d %q", r.StatusCode, r.location())
	}
	signin := b.follow(r)
	auto := b.submitPage(signin, "email", email, "password", password)
	if !strings.Contains(auto.body, `name="proof"`) {
		t.Fatalf("home sign-in: %d %.1500s", auto.StatusCode, auto.body)
	}
	if cb := b.submitPage(auto); cb.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d %.800s", cb.StatusCode, cb.body)
	}
	if h := b.get("/").echo(t).Header; h.Get("X-User") == "" || h.Get("X-Phone") != "" {
		t.Fatalf("home upstream headers: %v", h)
	}

	// /orders needs the phone: a step-up that asks the provider for it.
	r = b.get("/orders")
	if r.StatusCode != http.StatusFound || !strings.Contains(r.location(), "claims=phone") {
		t.Fatalf("GET /orders without phone: %d %q", r.StatusCode, r.location())
	}
	signin = b.follow(r)
	profile := b.submitPage(signin, "email", email, "password", password)
	if !strings.Contains(profile.body, `name="profile_phone"`) {
		t.Fatalf("profile page: %d %.1500s", profile.StatusCode, profile.body)
	}
	if bad := b.submitPage(profile, "profile_phone", "ring me"); bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad phone: %d", bad.StatusCode)
	}
	auto = b.submitPage(profile, "profile_phone", "+44 20 7946 0000")
	cb := b.submitPage(auto)
	if cb.StatusCode != http.StatusSeeOther || cb.location() != "/orders" {
		t.Fatalf("callback after profile: %d %q %.800s", cb.StatusCode, cb.location(), cb.body)
	}
	if h := b.get("/orders").echo(t).Header; h.Get("X-Phone") != "+44 20 7946 0000" {
		t.Fatalf("orders upstream headers: %v", h)
	}
	// The home route does not forward it.
	if h := b.get("/").echo(t).Header; h.Get("X-Phone") != "" || h.Get("X-User") == "" {
		t.Fatalf("home upstream headers: %v", h)
	}

	// Another browser: the first sign-in for /orders carries the claim
	// (no second sign-in), and the phone is known: no profile page.
	b2 := e.browser()
	r = b2.get("/orders")
	if r.StatusCode != http.StatusFound || !strings.Contains(r.location(), "claims=phone") {
		t.Fatalf("anonymous GET /orders: %d %q", r.StatusCode, r.location())
	}
	auto = b2.submitPage(b2.follow(r), "email", email, "password", password)
	if !strings.Contains(auto.body, `name="proof"`) {
		t.Fatalf("second sign-in asked again: %d %.1500s", auto.StatusCode, auto.body)
	}
	if cb := b2.submitPage(auto); cb.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d", cb.StatusCode)
	}
	if h := b2.get("/orders").echo(t).Header; h.Get("X-Phone") != "+44 20 7946 0000" {
		t.Fatalf("orders upstream headers: %v", h)
	}

	// A provider without the claim cannot satisfy it: a page that says
	// so, not a loop.
	b3 := e.browser()
	r = b3.get("/staff")
	if !strings.Contains(r.location(), "claims=phone") {
		t.Fatalf("GET /staff: %d %q", r.StatusCode, r.location())
	}
	prov, state := b3.startLogin(r.location())
	res := b3.callback(prov, state, "alice")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(res.body, "More information needed") {
		t.Fatalf("static provider without phone: %d %.800s", res.StatusCode, res.body)
	}
}
