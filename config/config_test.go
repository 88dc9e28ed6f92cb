package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func env(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const minimal = `version: 1
audiences:
  workforce: { providers: [corp] }
providers:
  corp: { type: static, users: [{ sub: alice }] }
roles:
  admin: { groups: [it] }
routes:
  - name: app
    match: { host: app.example.com }
    audience: workforce
    allow: { roles: [admin] }
    upstream: http://127.0.0.1:3000
`

func TestParseMinimalAppliesDefaults(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != ":8080" || cfg.Session.Idle.D().String() != "30m0s" || cfg.Routes[0].Match.PathType != "prefix" {
		t.Fatalf("defaults not applied: %+v", cfg.Server)
	}
	if cfg.Providers["corp"].Static == nil || cfg.Providers["corp"].Static.Users[0].Subject != "alice" {
		t.Fatalf("static provider not decoded: %+v", cfg.Providers["corp"])
	}
	if got := cfg.Routes[0].Forward.User; got != "X-Gatehouse-User" {
		t.Fatalf("default forward user header %q", got)
	}
}

func diagnostics(t *testing.T, src string, e LookupEnv) []string {
	t.Helper()
	_, err := Parse("gatehouse.yaml", []byte(src), e)
	if err == nil {
		t.Fatal("expected diagnostics, got none")
	}
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("error %T is not Diagnostics: %v", err, err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.Error())
	}
	return out
}

func TestAllProblemsReportedWithPositions(t *testing.T) {
	src := `version: 1
server:
  listen: ":8080"
  publik_url: "http://localhost:8080"
session:
  idle: 30 minutes
audiences:
  workforce: { providers: [corp] }
providers:
  corp: { type: static, users: [{ sub: alice }] }
roles:
  admin: { groups: [it] }
routes:
  - name: app
    match: { host: app.example.com, methods: [GETT] }
    audience: workforce
    allow: { roles: [admn] }
    upstream: http://127.0.0.1:3000
`
	got := diagnostics(t, src, nil)
	want := []string{
		`gatehouse.yaml:4:3: server.publik_url: unknown key "publik_url" in server (did you mean "public_url"?)`,
		`gatehouse.yaml:6:9: session.idle: "30 minutes" is not a duration (use a duration like "30s", "15m" or "12h")`,
		`gatehouse.yaml:15:47: routes[0].match.methods[0]: unknown method "GETT" (did you mean "GET"?)`,
		`gatehouse.yaml:17:22: routes[0].allow.roles[0]: unknown role "admn" (did you mean "admin"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDiagnosticCases(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"missing version", "routes: []\n", "gatehouse.yaml:1:1: version: missing policy version"},
		{"wrong version", "version: 2\n", "unsupported policy version 2"},
		{"not a mapping", "- a\n- b\n", "expected a mapping (key: value), got a list"},
		{"empty file", "", "policy file is empty"},
		{"syntax", "version: 1\nroutes: [\n", "YAML syntax error"},
		{"two documents", "version: 1\n---\nversion: 1\n", "more than one YAML document"},
		{"duplicate key", "version: 1\nversion: 1\n", `duplicate key "version"`},
		{"bool typo", "version: 1\nsession: { insecure_cookies: yes }\n", `expected a boolean, got "yes"`},
		{"list expected", "version: 1\nserver: { trusted_proxies: 10.0.0.0/8 }\n", "expected a list"},
		{"bad cidr", "version: 1\nserver: { trusted_proxies: [10.0.0.0/33] }\n", `invalid CIDR "10.0.0.0/33"`},
		{"admin on public address", "version: 1\nserver: { listen: \":9000\", admin_listen: \":9000\" }\n", "admin_listen equals the public listen address"},
		{"short session key", "version: 1\nsession: { keys: [short] }\n", "session key is 5 bytes; at least 32 are required"},
		{"unknown provider type", "version: 1\nproviders: { x: { type: sammel } }\n", `unknown provider type "sammel"`},
		{"provider key of another type", "version: 1\nproviders: { x: { type: static, users: [{sub: a}], client_id: c } }\n", `unknown key "client_id" in providers.x`},
		{"unknown audience", "version: 1\naudiences: { workforse: {} }\n", `unknown audience "workforse" (did you mean "workforce"?)`},
		{"unknown provider ref", minimal + "  - { name: b, audience: customer, upstream: \"http://u\" }\n", `audience "customer" has no providers to sign in with`},
		{"duplicate route", minimal + "  - { name: app, audience: public, upstream: \"http://u\" }\n", `duplicate route name "app"`},
		{"bad upstream", "version: 1\nroutes: [{ name: a, audience: public, upstream: \"ftp://x\" }]\n", `invalid upstream "ftp://x"`},
		{"bad regex", "version: 1\nroutes: [{ name: a, audience: public, upstream: \"http://u\", match: { path: \"(\", path_type: regex } }]\n", "invalid regex"},
		{"bad header", "version: 1\nroutes: [{ name: a, audience: public, upstream: \"http://u\", forward: { user: \"X Bad\" } }]\n", `invalid header name "X Bad"`},
		{"external logo", "version: 1\nbranding: { logo: \"https://cdn.example/logo.png\" }\n", "logo must not be an external URL"},
		{"unset env", "version: 1\nsession: { keys: [\"${NOPE}\"] }\n", "environment variable NOPE is not set"},
		{"idle longer than lifetime", "version: 1\nsession: { idle: 2h, lifetime: 1h }\n", "idle (2h0m0s) is longer than lifetime (1h0m0s)"},
		{"unknown inherits", "version: 1\nroles: { a: { inherits: [bb] } }\n", `unknown role "bb"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(diagnostics(t, tc.src, nil), "\n")
			if !strings.Contains(got, tc.want) {
				t.Fatalf("diagnostics:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

func TestEnvExpansion(t *testing.T) {
	src := `version: 1
session:
  keys: ["${KEY}", "${OLD_KEY:-0123456789abcdef0123456789abcdef-old}"]
  idle: ${IDLE:-15m}
  insecure_cookies: ${INSECURE:-false}
branding:
  title: "Price $5 and $$HOME"
`
	cfg, err := Parse("p.yaml", []byte(src), env(map[string]string{"KEY": "null-0123456789abcdef0123456789ab"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Session.Keys[0] != "null-0123456789abcdef0123456789ab" || !strings.HasSuffix(cfg.Session.Keys[1], "-old") {
		t.Fatalf("keys %q", cfg.Session.Keys)
	}
	if cfg.Session.Idle.D().String() != "15m0s" || cfg.Session.InsecureCookies {
		t.Fatalf("idle %v insecure %v", cfg.Session.Idle.D(), cfg.Session.InsecureCookies)
	}
	if cfg.Branding.Title != "Price $5 and $HOME" {
		t.Fatalf("title %q", cfg.Branding.Title)
	}
}

// A secret whose value looks like YAML ("null", "true", "~") stays a string:
// values from the environment are never re-parsed as YAML.
func TestEnvValuesStayStrings(t *testing.T) {
	src := "version: 1\nbranding: { title: \"${T}\" }\n"
	for _, v := range []string{"null", "~", "true", "0x10", "{a: b}"} {
		cfg, err := Parse("p.yaml", []byte(src), env(map[string]string{"T": v}))
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if cfg.Branding.Title != v {
			t.Fatalf("title %q, want %q", cfg.Branding.Title, v)
		}
	}
}

func TestMergeKeysAndAliases(t *testing.T) {
	src := minimal + `  - <<: &base { audience: public, upstream: "http://127.0.0.1:1" }
    name: one
  - <<: *base
    name: two
    match: { path: /two }
`
	cfg, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 3 || cfg.Routes[2].Upstream != "http://127.0.0.1:1" || cfg.Routes[2].Audience[0] != "public" {
		t.Fatalf("merge keys not applied: %+v", cfg.Routes)
	}
}

func TestAliasBombRefused(t *testing.T) {
	src := `version: 1
x0: &a0 [b, b, b, b, b, b, b, b, b, b]
x1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]
x2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
x3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
x4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
x5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
server: { trusted_proxies: *a5 }
`
	got := strings.Join(diagnostics(t, src, nil), "\n")
	if !strings.Contains(got, "expands to more than") && !strings.Contains(got, "unknown key") {
		t.Fatalf("alias bomb not refused: %s", got)
	}
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct{ word, want string }{
		{"admn", "admin"}, {"employe", "employee"}, {"zzzzzz", ""}, {"ab", ""},
	} {
		if got := Suggest(tc.word, []string{"admin", "employee", "auditor"}); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestSchemaIsValidJSONAndStrict(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	props := s["properties"].(map[string]any)
	for _, key := range []string{"version", "server", "session", "routes", "roles", "providers", "audiences"} {
		if _, ok := props[key]; !ok {
			t.Errorf("schema lacks %q", key)
		}
	}
	if s["additionalProperties"] != false {
		t.Error("schema allows unknown top-level keys")
	}
	if !strings.Contains(string(b), `"Route"`) || !strings.Contains(string(b), "Unique route name") {
		t.Error("schema lacks Route definition or doc text")
	}
}

// TestSchemaEnumsMatchValidation: every enum the schema advertises for the
// SAML and OIDC settings is what validation accepts, and a value outside it
// is refused.
func TestSchemaEnumsMatchValidation(t *testing.T) {
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	var samlProps map[string]any
	for _, v := range s["properties"].(map[string]any)["providers"].(map[string]any)["additionalProperties"].(map[string]any)["oneOf"].([]any) {
		p := v.(map[string]any)["properties"].(map[string]any)
		if p["type"].(map[string]any)["const"] == "saml" {
			samlProps = p
		}
	}
	if samlProps == nil {
		t.Fatal("no saml provider in the schema")
	}
	for _, key := range []string{"binding", "slo_binding", "name_id_format"} {
		enum, _ := samlProps[key].(map[string]any)["enum"].([]any)
		if len(enum) == 0 {
			t.Errorf("saml %s has no enum in the schema", key)
		}
		for _, e := range enum {
			if errs := (&SAMLProvider{IdPMetadata: "<x/>", SPCertFile: "c", SPKeyFile: "k", Binding: pick(key == "binding", e), SLOBinding: pick(key == "slo_binding", e), NameIDFormat: pick(key == "name_id_format", e)}).Validate(); hasKey(errs, key) {
				t.Errorf("saml %s %q is in the schema but refused: %v", key, e, errs)
			}
		}
		bad := &SAMLProvider{IdPMetadata: "<x/>", SPCertFile: "c", SPKeyFile: "k", Binding: pick(key == "binding", "soap"), SLOBinding: pick(key == "slo_binding", "soap"), NameIDFormat: pick(key == "name_id_format", "soap")}
		if !hasKey(bad.Validate(), key) {
			t.Errorf("saml %s %q is accepted although outside the schema's enum", key, "soap")
		}
	}
}

func pick(on bool, v any) string {
	if !on {
		return ""
	}
	return v.(string)
}

func hasKey(errs []FieldError, key string) bool {
	for _, e := range errs {
		if e.Key == key {
			return true
		}
	}
	return false
}
