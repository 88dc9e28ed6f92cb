package config

import (
	"strings"
	"testing"
	"time"
)

const privacyBase = `version: 1
server: { trusted_proxies: [10.0.0.0/8] }
audiences:
  customer: { providers: [google-eu, google-us] }
providers:
  google-eu: { type: static, users: [{ sub: alice }] }
  google-us: { type: static, users: [{ sub: bob }] }
`

const privacyGood = privacyBase + `privacy:
  purposes:
    - { id: terms, description: "Terms of service", legal_basis: contract, version: 3, required: true }
    - { id: marketing, description: "Product news by email", legal_basis: consent }
    - { id: fraud, description: "Fraud prevention", legal_basis: legitimate_interest }
  pseudonym_key: ${PSEUDO}
  logs: { personal_data: omit }
  regions:
    default: eu
    from:
      - { claim: region }
      - { header: X-Edge-Region }
      - provider: { google-us: us }
    stores: { eu: "sqlite:///var/lib/gatehouse/eu.db", us: "postgres://gh:${PGPASS}@db.us.internal/gatehouse" }
  retention: { sign_in: 90d, consent: 6y, export: 1y, delete: 6y, admin: 2y, policy_reload: 8760h }
  webhooks:
    - { name: crm, url: "https://crm.example.com/hooks", secret: "${HOOK}", events: [deletion], pseudonym: shop }
routes:
  - name: shop
    match: { host: shop.example.com }
    audience: customer
    allow: { authenticated: true }
    upstream: http://127.0.0.1:3000
    privacy: { consent: [marketing], claims: [email, name, loyalty_tier], pseudonym: shop, regions: [eu] }
  - name: blog
    match: { host: blog.example.com }
    audience: customer
    allow: { authenticated: true }
    upstream: http://127.0.0.1:3001
    privacy: { claims: [] }
`

var privacyEnv = env(map[string]string{
	"PSEUDO": strings.Repeat("p", 32), "HOOK": strings.Repeat("h", 40), "PGPASS": "secret",
})

func TestPrivacyGoodPolicy(t *testing.T) {
	cfg, err := Parse("gatehouse.yaml", []byte(privacyGood), privacyEnv)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Privacy
	if len(p.Purposes) != 3 || p.Purposes[0].Version != 3 || !p.Purposes[0].Required || p.Purposes[1].Version != 0 {
		t.Fatalf("purposes = %+v", p.Purposes)
	}
	if p.Regions.DefaultRegion() != "eu" || len(p.Regions.From) != 3 || p.Regions.From[2].Provider["google-us"] != "us" {
		t.Fatalf("regions = %+v", p.Regions)
	}
	if d, err := p.Retention["consent"].Duration(); err != nil || d != 6*365*24*time.Hour {
		t.Fatalf("consent retention = %v, %v", d, err)
	}
	if d, _ := p.Retention["policy_reload"].Duration(); d != 8760*time.Hour {
		t.Fatalf("policy_reload retention = %v", d)
	}
	rp := cfg.Routes[0].Privacy
	if rp == nil || rp.Pseudonym != "shop" || len(rp.Claims) != 3 || rp.Regions[0] != "eu" {
		t.Fatalf("route privacy = %+v", rp)
	}
	// claims: [] is "send no claims", distinct from omitting the key.
	if c := cfg.Routes[1].Privacy.Claims; c == nil || len(c) != 0 {
		t.Fatalf("claims: [] decoded as %#v", c)
	}
	if cfg.Privacy.Webhooks[0].Events[0] != "deletion" {
		t.Fatalf("webhook = %+v", cfg.Privacy.Webhooks[0])
	}
}

func TestPrivacySingleRegionDefault(t *testing.T) {
	src := privacyBase + "privacy:\n  purposes: [{ id: terms, description: T, legal_basis: contract }]\n  regions: { stores: { eu: \"sqlite:///tmp/x.db\" } }\n"
	cfg, err := Parse("gatehouse.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Privacy.Regions.DefaultRegion(); got != "eu" {
		t.Fatalf("default region = %q", got)
	}
}

func TestPeriod(t *testing.T) {
	for in, want := range map[Period]time.Duration{"90d": 90 * 24 * time.Hour, "6w": 42 * 24 * time.Hour, "2y": 730 * 24 * time.Hour, "36h": 36 * time.Hour} {
		if got, err := in.Duration(); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []Period{"", "d", "ninety days", "-1d", "99999999y", "1.5d"} {
		if _, err := bad.Duration(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestPrivacyDiagnostics checks each bad field is reported at its key path.
func TestPrivacyDiagnostics(t *testing.T) {
	route := func(priv string) string {
		return "routes:\n  - { name: r, audience: customer, upstream: \"http://u\", allow: { authenticated: true }, privacy: " + priv + " }\n"
	}
	store := "  regions: { stores: { eu: \"sqlite:///tmp/eu.db\" } }\n"
	cases := []struct{ name, src, want string }{
		{"purpose no id", "privacy:\n  purposes: [{ description: d, legal_basis: consent }]\n" + store,
			"privacy.purposes[0].id: purpose has no id"},
		{"purpose bad id", "privacy:\n  purposes: [{ id: \"a b\", description: d, legal_basis: consent }]\n" + store,
			`privacy.purposes[0].id: invalid purpose id "a b"`},
		{"purpose duplicate", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: consent }, { id: a, description: d, legal_basis: consent }]\n" + store,
			`privacy.purposes[1].id: duplicate purpose id "a"`},
		{"purpose no description", "privacy:\n  purposes: [{ id: a, legal_basis: consent }]\n" + store,
			"privacy.purposes[0].description: purpose has no description"},
		{"purpose bad basis", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: consnet }]\n" + store,
			`privacy.purposes[0].legal_basis: unknown value "consnet" (did you mean "consent"?)`},
		{"purpose no basis", "privacy:\n  purposes: [{ id: a, description: d }]\n" + store,
			"privacy.purposes[0].legal_basis: purpose has no legal_basis"},
		{"purpose negative version", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: consent, version: -2 }]\n" + store,
			"privacy.purposes[0].version: negative version -2"},
		{"purpose version not int", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: consent, version: v2 }]\n" + store,
			`privacy.purposes[0].version: expected a whole number, got "v2"`},
		{"required legal obligation", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: legal_obligation, required: true }]\n" + store,
			"privacy.purposes[0].required: required has no effect"},
		{"short pseudonym key", "privacy:\n  pseudonym_key: short\n",
			"privacy.pseudonym_key: pseudonym key is 5 bytes; at least 32 are required"},
		{"log mode plain", "privacy:\n  logs: { personal_data: plain }\n",
			`privacy.logs.personal_data: unknown value "plain"`},
		{"unknown privacy key", "privacy:\n  purpose: []\n",
			`privacy.purpose: unknown key "purpose" in privacy (did you mean "purposes"?)`},
		{"store missing", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: consent }]\n",
			"privacy.regions.stores: consent, webhooks, retention and route regions need at least one region store"},
		{"bad region name", "privacy:\n  regions: { stores: { EU: \"sqlite:///tmp/eu.db\" } }\n",
			`privacy.regions.stores.EU: invalid region name "EU"`},
		{"bad dsn", "privacy:\n  regions: { stores: { eu: \"mysql://x\" } }\n",
			`privacy.regions.stores.eu: unsupported store DSN "mysql://x"`},
		{"relative sqlite", "privacy:\n  regions: { stores: { eu: \"sqlite:eu.db\" } }\n",
			`privacy.regions.stores.eu: invalid sqlite DSN "sqlite:eu.db"`},
		{"shared store", "privacy:\n  regions: { default: eu, stores: { eu: \"sqlite:///tmp/a.db\", us: \"sqlite:///tmp/a.db\" } }\n",
			`privacy.regions.stores.us: region "us" uses the same store as region "eu"`},
		{"dsn password redacted", "privacy:\n  regions: { stores: { eu: \"postgres://u:hunter2@\" } }\n",
			`privacy.regions.stores.eu: invalid postgres DSN "postgres://u:xxxxx@"`},
		{"default unknown", "privacy:\n  regions: { default: eu-west, stores: { eu: \"sqlite:///tmp/a.db\" } }\n",
			`privacy.regions.default: unknown region "eu-west"`},
		{"default required", "privacy:\n  regions: { stores: { eu: \"sqlite:///tmp/a.db\", us: \"sqlite:///tmp/b.db\" } }\n",
			"privacy.regions.default: regions.default is required with more than one region"},
		{"source two kinds", "privacy:\n  regions: { from: [{ claim: region, header: X-Region }], stores: { eu: \"sqlite:///tmp/a.db\" } }\n",
			"privacy.regions.from[0]: a region source needs exactly one of claim, header or provider (has 2)"},
		{"source none", "privacy:\n  regions: { from: [{}], stores: { eu: \"sqlite:///tmp/a.db\" } }\n",
			"privacy.regions.from[0]: a region source needs exactly one"},
		{"source bad header", "privacy:\n  regions: { from: [{ header: \"X Region\" }], stores: { eu: \"sqlite:///tmp/a.db\" } }\n",
			`privacy.regions.from[0].header: invalid header name "X Region"`},
		{"source unknown provider", "privacy:\n  regions: { from: [{ provider: { gogle-us: eu } }], stores: { eu: \"sqlite:///tmp/a.db\" } }\n",
			`privacy.regions.from[0].provider.gogle-us: unknown provider "gogle-us" (did you mean "google-us"?)`},
		{"source unknown region", "privacy:\n  regions: { from: [{ provider: { google-us: us } }], stores: { eu: \"sqlite:///tmp/a.db\" } }\n",
			`privacy.regions.from[0].provider.google-us: unknown region "us"`},
		{"retention unknown kind", "privacy:\n  retention: { signin: 90d }\n" + store,
			`privacy.retention.signin: unknown audit kind "signin" (did you mean "sign_in"?)`},
		{"retention bad period", "privacy:\n  retention: { sign_in: 3 months }\n" + store,
			`privacy.retention.sign_in: "3 months" is not a duration`},
		{"retention too short", "privacy:\n  retention: { sign_in: 1h }\n" + store,
			"privacy.retention.sign_in: retention 1h0m0s is shorter than a day"},
		{"webhook no name", "privacy:\n  webhooks: [{ url: \"https://x\", secret: \"" + strings.Repeat("s", 32) + "\", events: [deletion] }]\n" + store,
			"privacy.webhooks[0].name: webhook has no name"},
		{"webhook duplicate", "privacy:\n  webhooks: [{ name: a, url: \"https://x\", secret: \"" + strings.Repeat("s", 32) + "\", events: [deletion] }, { name: a, url: \"https://y\", secret: \"" + strings.Repeat("s", 32) + "\", events: [deletion] }]\n" + store,
			`privacy.webhooks[1].name: duplicate webhook name "a"`},
		{"webhook http", "privacy:\n  webhooks: [{ name: a, url: \"http://crm.example.com/h\", secret: \"" + strings.Repeat("s", 32) + "\", events: [deletion] }]\n" + store,
			"privacy.webhooks[0].url: webhook url must use https"},
		{"webhook short secret", "privacy:\n  webhooks: [{ name: a, url: \"https://x\", secret: s, events: [deletion] }]\n" + store,
			"privacy.webhooks[0].secret: webhook secret is 1 bytes; at least 32 are required"},
		{"webhook unknown event", "privacy:\n  webhooks: [{ name: a, url: \"https://x\", secret: \"" + strings.Repeat("s", 32) + "\", events: [delete] }]\n" + store,
			`privacy.webhooks[0].events: unknown value "delete" (one of: deletion)`},
		{"webhook no events", "privacy:\n  webhooks: [{ name: a, url: \"https://x\", secret: \"" + strings.Repeat("s", 32) + "\" }]\n" + store,
			"privacy.webhooks[0].events: webhook subscribes to no events"},
		{"webhook pseudonym without key", "privacy:\n  webhooks: [{ name: a, url: \"https://x\", secret: \"" + strings.Repeat("s", 32) + "\", events: deletion, pseudonym: shop }]\n" + store,
			"privacy.webhooks[0].pseudonym: pairwise subjects need a pseudonym key"},
		{"route unknown purpose", "privacy:\n  purposes: [{ id: marketing, description: d, legal_basis: consent }]\n" + store + route("{ consent: [marketting] }"),
			`routes[0].privacy.consent[0]: unknown purpose "marketting" (did you mean "marketing"?)`},
		{"route legal obligation", "privacy:\n  purposes: [{ id: tax, description: d, legal_basis: legal_obligation }]\n" + store + route("{ consent: [tax] }"),
			`routes[0].privacy.consent[0]: purpose "tax" has legal_basis legal_obligation`},
		{"route sub claim", route("{ claims: [sub] }"),
			"routes[0].privacy.claims[0]: sub cannot be removed"},
		{"route claim typo", route("{ claims: [emial] }"),
			`routes[0].privacy.claims[0]: unknown claim "emial" (did you mean "email"?)`},
		{"route pseudonym without key", route("{ pseudonym: shop }"),
			"routes[0].privacy.pseudonym: pairwise subjects need a pseudonym key"},
		{"route unknown region", "privacy:\n" + store + route("{ regions: [us] }"),
			`routes[0].privacy.regions[0]: unknown region "us"`},
		{"route regions without stores", route("{ regions: [us] }"),
			"privacy.regions.stores: consent, webhooks, retention and route regions need at least one region store"},
		{"route unknown key", route("{ claim: [email] }"),
			`routes[0].privacy.claim: unknown key "claim" in routes[0].privacy (did you mean "claims"?)`},
		{"consent on workforce route", "privacy:\n  purposes: [{ id: a, description: d, legal_basis: consent }]\n" + store +
			"routes:\n  - { name: r, audience: public, upstream: \"http://u\", privacy: { consent: [a] } }\n",
			"routes[0].privacy: route privacy consent/regions need a customer audience"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := diagnostics(t, privacyBase+c.src, nil)
			joined := strings.Join(got, "\n")
			if !strings.Contains(joined, c.want) {
				t.Fatalf("want a diagnostic containing\n  %s\ngot:\n  %s", c.want, strings.Join(got, "\n  "))
			}
			for _, d := range got {
				if strings.Contains(d, c.want) && !strings.HasPrefix(d, "gatehouse.yaml:") {
					t.Fatalf("diagnostic has no position: %s", d)
				}
			}
		})
	}
}

// TestPrivacyDiagnosticPosition pins one diagnostic to its line and column.
func TestPrivacyDiagnosticPosition(t *testing.T) {
	src := privacyBase + "privacy:\n  regions:\n    stores: { eu: \"sqlite:///tmp/a.db\" }\n  retention:\n    sign_in: 1h\n"
	got := diagnostics(t, src, nil)
	want := `gatehouse.yaml:12:5: privacy.retention.sign_in: retention 1h0m0s is shorter than a day (use at least 1d)`
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPrivacySchema(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"pseudonym_key"`, `"personal_data"`, `"legal_basis"`, `"pseudonym"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("schema lacks %s", key)
		}
	}
}
