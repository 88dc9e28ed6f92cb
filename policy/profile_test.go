package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

const profileRoutes = `
routes:
  - name: shop
    match: { host: shop.example.com, path: / }
    audience: [public, customer]
    upstream: http://127.0.0.1:3000
    rules:
      - name: checkout
        path: /checkout
        allow: { authenticated: true }
        require: { claims: [phone, country] }
  - name: orders
    match: { host: shop.example.com, path: /orders }
    audience: customer
    allow: { authenticated: true }
    require: { claims: [phone] }
    upstream: http://127.0.0.1:3000
    rules:
      - name: invoices
        path: /orders/invoices
        allow: { authenticated: true }
        require: { claims: [vat_id, phone], mfa: true }
`

func TestDecideRequiredClaims(t *testing.T) {
	p := mustCompile(t, profileRoutes)
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	bare := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, AuthTime: now.Add(-time.Minute)}
	phone := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, AuthTime: now.Add(-time.Minute),
		Extra: map[string]string{"phone": "+49 30 1234567"}}
	phoneMFA := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, AMR: []string{"pwd", "otp"},
		Extra: map[string]string{"phone": "+49 30 1234567"}}
	empty := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, Extra: map[string]string{"phone": ""}}
	full := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, AMR: []string{"pwd", "otp"},
		Extra: map[string]string{"phone": "+1 555 0100", "country": "DE", "vat_id": "DE123"}}

	cases := []struct {
		name, path string
		id         *identity.Identity
		effect     Effect
		reason     Reason
		missing    string
		claims     []string
	}{
		{"no claim", "/orders", bare, NeedStepUp, ReasonClaimsRequired, "phone", []string{"phone"}},
		{"empty claim is missing", "/orders/1", empty, NeedStepUp, ReasonClaimsRequired, "phone", []string{"phone"}},
		{"claim present", "/orders", phone, Allow, ReasonAllowed, "", nil},
		{"mfa first", "/orders/invoices", phone, NeedStepUp, ReasonMFARequired, "mfa", []string{"phone", "vat_id"}},
		{"rule adds a claim", "/orders/invoices", phoneMFA, NeedStepUp, ReasonClaimsRequired, "vat_id", []string{"phone", "vat_id"}},
		{"all claims and mfa", "/orders/invoices", full, Allow, ReasonAllowed, "", nil},
		{"public route needs nothing", "/", nil, Allow, ReasonPublic, "", nil},
		{"anonymous login carries the claims", "/orders", nil, NeedLogin, ReasonUnauthenticated, "", []string{"phone"}},
		{"anonymous checkout carries the rule's claims", "/checkout", nil, NeedLogin, ReasonUnauthenticated, "", []string{"phone", "country"}},
		{"second claim missing", "/checkout", phone, NeedStepUp, ReasonClaimsRequired, "country", []string{"phone", "country"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := Request{Host: "shop.example.com", Path: c.path, Method: "GET"}
			d := p.Decide(p.Match(req), c.id, req, now)
			if d.Effect != c.effect || d.Reason != c.reason {
				t.Fatalf("got %s/%s (%s), want %s/%s", d.Effect, d.Reason, d.String(), c.effect, c.reason)
			}
			if c.missing != "" && (d.MatchedBy != "requirement" || d.MatchedValue != c.missing) {
				t.Errorf("missing = %s %q, want %q", d.MatchedBy, d.MatchedValue, c.missing)
			}
			if c.claims != nil && !slices.Equal(d.Requirement.Claims, c.claims) {
				t.Errorf("requirement claims = %v, want %v", d.Requirement.Claims, c.claims)
			}
			if c.effect == NeedStepUp && d.Audience != identity.Customer {
				t.Errorf("audience = %q", d.Audience)
			}
		})
	}

	req := Request{Host: "shop.example.com", Path: "/orders", Method: "GET"}
	d := p.Decide(p.Match(req), bare, req, now)
	if s := d.String(); !strings.Contains(s, `profile claim "phone"`) {
		t.Errorf("explanation %q does not name the claim", s)
	}
	if (Requirement{Claims: []string{"phone"}}).IsZero() {
		t.Error("a requirement of claims is not zero")
	}
}

func TestRequiredClaimsAllocFree(t *testing.T) {
	p := mustCompile(t, profileRoutes)
	now := time.Now()
	id := &identity.Identity{Subject: "c1", Provider: "shop", Audience: identity.Customer, Extra: map[string]string{"phone": "1"}}
	req := Request{Host: "shop.example.com", Path: "/orders/x", Method: "GET"}
	if n := testing.AllocsPerRun(100, func() {
		_ = p.Decide(p.Match(req), id, req, now)
	}); n != 0 {
		t.Errorf("Decide with claims allocates %v times", n)
	}
}

func TestRequiredClaimsValidated(t *testing.T) {
	msg := compileErr(t, strings.Replace(profileRoutes, "claims: [phone] }", "claims: [phone, Phone-No] }", 1))
	if !strings.Contains(msg, `invalid claim name "Phone-No"`) || !strings.Contains(msg, "routes[1].require.claims[1]") {
		t.Fatalf("error %q", msg)
	}
}
