package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

const header = `
version: 1
audiences:
  workforce: { providers: [corp] }
  customer: { providers: [shop] }
  api: { providers: [tokens] }
providers:
  tokens: { type: jwt, issuer: "https://issuer.example", audiences: [orders] }
  corp: { type: static, users: [{ sub: u1 }] }
  shop: { type: static, users: [{ sub: c1 }] }
`

func mustCompile(t testing.TB, body string) *Policy {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(header+body), nil)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p
}

func compileErr(t *testing.T, body string) string {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(header+body), nil)
	if err != nil {
		return err.Error()
	}
	_, err = Compile(cfg)
	if err == nil {
		t.Fatalf("expected a compile error")
	}
	var ds config.Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("error is %T, want config.Diagnostics", err)
	}
	return err.Error()
}

const hrPolicy = `
roles:
  employee: { groups: [staff], email_domains: [corp.example] }
  admin: { groups: [it-admins], inherits: [employee] }
  auditor: { subjects: [corp/u-audit] }
routes:
  - name: hr
    match: { host: hr.example.com }
    audience: workforce
    allow: { roles: [employee] }
    deny: { groups: [suspended] }
    rules:
      - { name: admin-area, path: /admin, allow: { roles: [admin] }, require: { mfa: true } }
      - { name: reports, path: /reports, methods: [GET], allow: { roles: [auditor, admin] } }
      - { name: recent, path: /payroll, require: { max_auth_age: 10m } }
    upstream: http://127.0.0.1:9001
  - name: shop
    match: { host: shop.example.com }
    audience: [customer, public]
    rules:
      - { path: /account, allow: { authenticated: true } }
    upstream: http://127.0.0.1:9002
  - name: orders-api
    match: { host: api.example.com, path: /orders }
    audience: api
    allow: { scopes: ["orders:read"] }
    upstream: http://127.0.0.1:9003
  - name: wiki
    match: { host: "*.wiki.example.com" }
    audience: workforce
    allow: { authenticated: true }
    upstream: http://127.0.0.1:9004
`

func TestDecide(t *testing.T) {
	p := mustCompile(t, hrPolicy)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	staff := &identity.Identity{Subject: "u1", Provider: "corp", Audience: identity.Workforce, Groups: []string{"staff"}, AuthTime: now.Add(-time.Hour)}
	admin := &identity.Identity{Subject: "u2", Provider: "corp", Audience: identity.Workforce, Groups: []string{"it-admins"}, AuthTime: now.Add(-time.Minute)}
	adminMFA := &identity.Identity{Subject: "u2", Provider: "corp", Audience: identity.Workforce, Groups: []string{"it-admins"}, AMR: []string{"pwd", "otp"}, AuthTime: now.Add(-time.Minute)}
	suspended := &identity.Identity{Subject: "u3", Provider: "corp", Audience: identity.Workforce, Groups: []string{"staff", "suspended"}}
	byDomain := &identity.Identity{Subject: "u4", Provider: "corp", Audience: identity.Workforce, Email: "Ann@Corp.Example", EmailVerified: true}
	unverified := &identity.Identity{Subject: "u5", Provider: "corp", Audience: identity.Workforce, Email: "ann@corp.example"}
	twoAts := &identity.Identity{Subject: "u6", Provider: "corp", Audience: identity.Workforce, Email: "evil@evil.example@corp.example", EmailVerified: true}
	auditor := &identity.Identity{Subject: "u-audit", Provider: "corp", Audience: identity.Workforce}
	auditorOtherIdP := &identity.Identity{Subject: "u-audit", Provider: "other", Audience: identity.Workforce}
	customer := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, Groups: []string{"staff"}}
	token := &identity.Identity{Subject: "svc", Audience: identity.API, Scopes: []string{"orders:read"}}
	tokenNoScope := &identity.Identity{Subject: "svc", Audience: identity.API, Scopes: []string{"orders:write"}}

	cases := []struct {
		name, host, path, method string
		id                       *identity.Identity
		effect                   Effect
		reason                   Reason
		route, rule              string
	}{
		{"anonymous needs login", "hr.example.com", "/", "GET", nil, NeedLogin, ReasonUnauthenticated, "hr", ""},
		{"staff allowed", "hr.example.com", "/", "GET", staff, Allow, ReasonAllowed, "hr", ""},
		{"host is case-insensitive with port", "HR.Example.com:8443", "/x", "get", staff, Allow, ReasonAllowed, "hr", ""},
		{"deny beats allow", "hr.example.com", "/", "GET", suspended, Deny, ReasonDenied, "hr", ""},
		{"staff not admin", "hr.example.com", "/admin", "GET", staff, Deny, ReasonNotAllowed, "hr", "admin-area"},
		{"admin needs mfa", "hr.example.com", "/admin/users", "GET", admin, NeedStepUp, ReasonMFARequired, "hr", "admin-area"},
		{"admin with mfa", "hr.example.com", "/admin", "POST", adminMFA, Allow, ReasonAllowed, "hr", "admin-area"},
		{"administrator is not /admin", "hr.example.com", "/administrator", "GET", staff, Allow, ReasonAllowed, "hr", ""},
		{"inherited role allows route", "hr.example.com", "/", "GET", admin, Allow, ReasonAllowed, "hr", ""},
		{"verified domain grants role", "hr.example.com", "/", "GET", byDomain, Allow, ReasonAllowed, "hr", ""},
		{"unverified email grants nothing", "hr.example.com", "/", "GET", unverified, Deny, ReasonNotAllowed, "hr", ""},
		{"two @ grants nothing", "hr.example.com", "/", "GET", twoAts, Deny, ReasonNotAllowed, "hr", ""},
		{"provider-scoped subject", "hr.example.com", "/reports", "GET", auditor, Allow, ReasonAllowed, "hr", "reports"},
		{"same subject other IdP", "hr.example.com", "/reports", "GET", auditorOtherIdP, Deny, ReasonNotAllowed, "hr", "reports"},
		{"method-limited rule skipped", "hr.example.com", "/reports", "POST", staff, Allow, ReasonAllowed, "hr", ""},
		{"auth too old", "hr.example.com", "/payroll", "GET", staff, NeedStepUp, ReasonAuthTooOld, "hr", "recent"},
		{"recent auth ok", "hr.example.com", "/payroll", "GET", admin, Allow, ReasonAllowed, "hr", "recent"},
		{"customer session on workforce route", "hr.example.com", "/", "GET", customer, NeedLogin, ReasonWrongAudience, "hr", ""},
		{"public anonymous", "shop.example.com", "/", "GET", nil, Allow, ReasonPublic, "shop", ""},
		{"public with account rule", "shop.example.com", "/account", "GET", nil, NeedLogin, ReasonUnauthenticated, "shop", "/account"},
		{"customer account", "shop.example.com", "/account/orders", "GET", customer, Allow, ReasonAllowed, "shop", "/account"},
		{"api scope ok", "api.example.com", "/orders/7", "GET", token, Allow, ReasonAllowed, "orders-api", ""},
		{"api scope missing", "api.example.com", "/orders", "GET", tokenNoScope, Deny, ReasonInsufficientScope, "orders-api", ""},
		{"api path outside route", "api.example.com", "/ordersx", "GET", token, Deny, ReasonNoRoute, "", ""},
		{"wildcard host", "eng.wiki.example.com", "/page", "GET", staff, Allow, ReasonAllowed, "wiki", ""},
		{"wildcard needs a label", "wiki.example.com", "/page", "GET", staff, Deny, ReasonNoRoute, "", ""},
		{"unknown host", "evil.example", "/", "GET", staff, Deny, ReasonNoRoute, "", ""},
		{"unknown method", "hr.example.com", "/", "PROPFIND", staff, Deny, ReasonUnknownMethod, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Host: tc.host, Path: tc.path, Method: tc.method}
			r := p.Match(req)
			d := p.Decide(r, tc.id, req, now)
			if d.Effect != tc.effect || d.Reason != tc.reason {
				t.Fatalf("got %s/%s (%s), want %s/%s", d.Effect, d.Reason, d.String(), tc.effect, tc.reason)
			}
			gotRoute, gotRule := "", ""
			if d.Route != nil {
				gotRoute = d.Route.Name
			}
			if d.Rule != nil {
				gotRule = d.Rule.Name
			}
			if gotRoute != tc.route || gotRule != tc.rule {
				t.Fatalf("matched route %q rule %q, want %q %q", gotRoute, gotRule, tc.route, tc.rule)
			}
			if d.String() == "" {
				t.Fatal("empty explanation")
			}
		})
	}
}

func TestDecisionStringNamesRuleAndCriterion(t *testing.T) {
	p := mustCompile(t, hrPolicy)
	req := Request{Host: "hr.example.com", Path: "/", Method: "GET"}
	d := p.Decide(p.Match(req), &identity.Identity{Subject: "u3", Provider: "corp", Audience: identity.Workforce, Groups: []string{"staff", "suspended"}}, req, time.Now())
	if got, want := d.String(), `route "hr" denies group "suspended"`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMatchSpecificity(t *testing.T) {
	p := mustCompile(t, `
routes:
  - { name: root, match: { path: / }, audience: public, upstream: "http://u" }
  - { name: api, match: { path: /api }, audience: public, upstream: "http://u" }
  - { name: api-v1-users, match: { path: /api/v1/users }, audience: public, upstream: "http://u" }
  - { name: api-exact, match: { path: /api/health, path_type: exact }, audience: public, upstream: "http://u" }
  - { name: user-avatar, match: { path: "/api/v1/users/[0-9]+/avatar", path_type: regex }, audience: public, upstream: "http://u" }
  - { name: api-post, match: { path: /api, methods: [POST] }, audience: public, upstream: "http://u" }
  - { name: docs-ci, match: { path: /Docs, case_insensitive: true }, audience: public, upstream: "http://u" }
  - { name: host-root, match: { host: app.example.com }, audience: public, upstream: "http://u" }
  - { name: wild, match: { host: "*.example.com", path: /api }, audience: public, upstream: "http://u" }
  - { name: wilder, match: { host: "*.eu.example.com", path: /api }, audience: public, upstream: "http://u" }
`)
	cases := []struct{ host, path, method, want string }{
		{"x", "/", "GET", "root"},
		{"x", "/apix", "GET", "root"},
		{"x", "/api", "GET", "api"},
		{"x", "/api/", "GET", "api"},
		{"x", "/api/v1/users/7", "GET", "api-v1-users"},
		{"x", "/api/v1/users/7/avatar", "GET", "user-avatar"},
		{"x", "/api/v1/users/x/avatar", "GET", "api-v1-users"},
		{"x", "/api/health", "GET", "api-exact"},
		{"x", "/api/health/x", "GET", "api"},
		{"x", "/api/orders", "POST", "api-post"},
		{"x", "/api/orders", "DELETE", "api"},
		{"x", "/docs/intro", "GET", "docs-ci"},
		{"x", "/DOCS", "GET", "docs-ci"},
		{"app.example.com", "/api/v1/users", "GET", "host-root"},
		{"b.example.com", "/api/x", "GET", "wild"},
		{"b.eu.example.com", "/api/x", "GET", "wilder"},
		{"b.example.com", "/other", "GET", "root"},
	}
	for _, tc := range cases {
		r := p.Match(Request{Host: tc.host, Path: tc.path, Method: tc.method})
		got := "<nil>"
		if r != nil {
			got = r.Name
		}
		if got != tc.want {
			t.Errorf("%s %s%s: matched %s, want %s", tc.method, tc.host, tc.path, got, tc.want)
		}
	}
}

// TestPathConfusion judges the encoded variants of a denied path: after
// NormalizePath none of them may reach the public route's allow instead of
// the admin rule's deny.
func TestPathConfusion(t *testing.T) {
	p := mustCompile(t, `
roles:
  admin: { groups: [admins] }
routes:
  - name: site
    match: { host: site.example.com }
    audience: workforce
    allow: { authenticated: true }
    rules:
      - { name: admin, path: /admin, allow: { roles: [admin] } }
    upstream: http://u
`)
	user := &identity.Identity{Subject: "u", Audience: identity.Workforce}
	for _, raw := range []string{"/admin", "/%61dmin", "/x/../admin", "//admin", "/admin%2f", "/public/..%2fadmin",
		"/public/%2e%2e/admin", "/%2561dmin", "/admin/", "/./admin", "/admin;x=1", "/admin%00", "/ADMIN%2F..", "/admin%23"} {
		path, err := NormalizePath(raw)
		if err != nil {
			continue // refused before matching: 400
		}
		req := Request{Host: "site.example.com", Path: path, Method: "GET"}
		d := p.Decide(p.Match(req), user, req, time.Now())
		if d.Effect == Allow {
			t.Errorf("%q (normalized %q) was allowed: %s", raw, path, d.String())
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"cycle", `
roles:
  a: { inherits: [b] }
  b: { inherits: [c] }
  c: { inherits: [a] }
`, "role inheritance cycle: a -> b -> c -> a"},
		{"overlap", `
routes:
  - { name: one, match: { host: a.example.com, path: /x }, audience: public, upstream: "http://u" }
  - { name: two, match: { host: a.example.com, path: /x }, audience: public, upstream: "http://u" }
  - { name: three, match: { host: a.example.com, path: /y, methods: [GET, POST] }, audience: public, upstream: "http://u" }
  - { name: four, match: { host: a.example.com, path: /y, methods: [POST] }, audience: public, upstream: "http://u" }
`, `test.yaml:14:18: routes[1].match: route "two" matches the same requests as route "one" (routes[0])`},
		{"overlapping methods", `
routes:
  - { name: three, match: { host: a.example.com, path: /y, methods: [GET, POST] }, audience: public, upstream: "http://u" }
  - { name: four, match: { host: a.example.com, path: /y, methods: [post] }, audience: public, upstream: "http://u" }
`, `route "four" matches the same requests as route "three"`},
		{"unnormalized", `
routes:
  - { name: one, match: { path: "/a//b" }, audience: public, upstream: "http://u" }
`, `path "/a//b" is not in normalized form (write it as "/a/b")`},
		{"rule outside", `
routes:
  - { name: one, match: { path: /app }, audience: public, upstream: "http://u", rules: [{ path: /admin, allow: { authenticated: true } }] }
`, `path "/admin" is outside its route`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := compileErr(t, tc.body)
			if !strings.Contains(got, tc.want) {
				t.Fatalf("error:\n%s\nwant it to contain:\n%s", got, tc.want)
			}
		})
	}
}

func TestDisjointMethodsAreNotAmbiguous(t *testing.T) {
	p := mustCompile(t, `
routes:
  - { name: read, match: { path: /x, methods: [GET, HEAD] }, audience: public, upstream: "http://u" }
  - { name: write, match: { path: /x, methods: [POST] }, audience: public, upstream: "http://u" }
`)
	if r := p.Match(Request{Host: "h", Path: "/x", Method: "POST"}); r == nil || r.Name != "write" {
		t.Fatalf("POST matched %v", r)
	}
	if r := p.Match(Request{Host: "h", Path: "/x", Method: "PUT"}); r != nil {
		t.Fatalf("PUT matched %s, want none", r.Name)
	}
}

func TestRoleNamesAndHeaders(t *testing.T) {
	p := mustCompile(t, hrPolicy)
	id := &identity.Identity{Subject: "u2", Audience: identity.Workforce, Groups: []string{"it-admins"}}
	if got := strings.Join(p.RoleNames(p.Roles(id)), ","); got != "admin,employee" {
		t.Fatalf("roles %q", got)
	}
	h := strings.Join(p.HeaderNames(), ",")
	if !strings.Contains(h, "X-Gatehouse-Assertion") || !strings.Contains(h, "X-Gatehouse-User") {
		t.Fatalf("header names %q", h)
	}
}

func benchPolicy(b testing.TB, n int) (*Policy, Request, *identity.Identity) {
	var sb strings.Builder
	sb.WriteString("roles:\n  employee: { groups: [staff] }\n  admin: { groups: [admins], inherits: [employee] }\nroutes:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "  - name: r%d\n    match: { host: app%d.example.com, path: /svc%d }\n    audience: workforce\n    allow: { roles: [employee] }\n    rules: [{ path: /svc%d/admin, allow: { roles: [admin] } }]\n    upstream: http://127.0.0.1:9000\n", i, i%50, i, i)
	}
	p := mustCompile(b, sb.String())
	i := n - 1
	req := Request{Host: fmt.Sprintf("app%d.example.com", i%50), Path: fmt.Sprintf("/svc%d/orders/42", i), Method: "GET"}
	id := &identity.Identity{Subject: "u1", Provider: "corp", Audience: identity.Workforce, Groups: []string{"staff", "g1", "g2"}}
	return p, req, id
}

func BenchmarkMatchDecide(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			p, req, id := benchPolicy(b, n)
			now := time.Now()
			if d := p.Decide(p.Match(req), id, req, now); d.Effect != Allow {
				b.Fatalf("bench request not allowed: %s", d.String())
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				d := p.Decide(p.Match(req), id, req, now)
				if d.Effect != Allow {
					b.Fatal("not allowed")
				}
			}
		})
	}
}

func TestMatchDecideAllocs(t *testing.T) {
	p, req, id := benchPolicy(t, 1000)
	now := time.Now()
	allocs := testing.AllocsPerRun(200, func() { _ = p.Decide(p.Match(req), id, req, now) })
	if allocs != 0 {
		t.Fatalf("match+decide allocates %.1f times per call, want 0", allocs)
	}
}
