package config

import (
	"strings"
	"testing"
)

const profilePolicy = `version: 1
audiences:
  customer: { providers: [accounts] }
providers:
  accounts:
    type: local
    mail: { outbox: outbox }
    profile:
      - { id: phone, label: "Phone number", kind: tel, max: 32, pattern: '\+?[0-9 ]{6,20}' }
      - { id: company, label: Company }
routes:
  - name: orders
    match: { host: shop.example.com, path: /orders }
    audience: customer
    allow: { authenticated: true }
    require: { claims: [phone] }
    forward: { claims: { X-Phone: phone } }
    upstream: http://127.0.0.1:3000
`

func TestProfileFieldsParse(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte(profilePolicy), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Providers["accounts"].Local
	if len(l.Profile) != 2 || l.Profile[0].ID != "phone" || l.Profile[0].Kind != "tel" || l.Profile[0].Max != 32 || l.Profile[1].Label != "Company" {
		t.Fatalf("profile decoded %+v", l.Profile)
	}
	if got := cfg.Routes[0].Require.Claims; len(got) != 1 || got[0] != "phone" {
		t.Fatalf("require.claims decoded %v", got)
	}
}

func TestProfileFieldsValidate(t *testing.T) {
	base := func() LocalProvider {
		return LocalProvider{Mail: LocalMail{Outbox: "outbox"}, Profile: []ProfileField{{ID: "phone", Label: "Phone", Kind: "tel"}}}
	}
	if p := base(); len(p.Validate()) != 0 {
		t.Fatalf("valid profile refused: %+v", p.Validate())
	}
	cases := []struct {
		key string
		mut func(*LocalProvider)
	}{
		{"profile[0].id", func(p *LocalProvider) { p.Profile[0].ID = "" }},
		{"profile[0].id", func(p *LocalProvider) { p.Profile[0].ID = "Phone-Number" }},
		{"profile[0].id", func(p *LocalProvider) { p.Profile[0].ID = "name" }},
		{"profile[1].id", func(p *LocalProvider) { p.Profile = append(p.Profile, ProfileField{ID: "phone", Label: "Again"}) }},
		{"profile[0].label", func(p *LocalProvider) { p.Profile[0].Label = " " }},
		{"profile[0].label", func(p *LocalProvider) { p.Profile[0].Label = "a\nb" }},
		{"profile[0].kind", func(p *LocalProvider) { p.Profile[0].Kind = "phone" }},
		{"profile[0].max", func(p *LocalProvider) { p.Profile[0].Max = 5000 }},
		{"profile[0].max", func(p *LocalProvider) { p.Profile[0].Max = -1 }},
		{"profile[0].pattern", func(p *LocalProvider) { p.Profile[0].Pattern = "([0-9]" }},
		{"profile[0].hint", func(p *LocalProvider) { p.Profile[0].Hint = strings.Repeat("h", 301) }},
	}
	for _, c := range cases {
		p := base()
		c.mut(&p)
		found := false
		for _, e := range p.Validate() {
			found = found || e.Key == c.key
		}
		if !found {
			t.Errorf("%s: want an error on that key, got %+v", c.key, p.Validate())
		}
	}
}

// TestProfileDiagnosticsPositioned: a bad field and a bad required claim
// are reported at their line in the policy file.
func TestProfileDiagnosticsPositioned(t *testing.T) {
	src := strings.Replace(profilePolicy, `pattern: '\+?[0-9 ]{6,20}'`, `pattern: '([0-9]'`, 1)
	src = strings.Replace(src, "claims: [phone] }", "claims: [phone, Phone] }", 1)
	out := strings.Join(diagnostics(t, src, env(nil)), "\n")
	for _, want := range []string{"gatehouse.yaml:9:", "profile[0].pattern", "invalid pattern", "gatehouse.yaml:16:", `invalid claim name "Phone"`} {
		if !strings.Contains(out, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, out)
		}
	}
}
