package bearer

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

const policyHead = `
version: 1
audiences:
  api: { providers: [%s] }
providers:
`

const policyTail = `
routes:
  - name: orders
    match: { path: /api }
    audience: api
    allow: { scopes: [orders:read] }
    upstream: http://127.0.0.1:3000
`

func parse(t *testing.T, names, providers string, env map[string]string) (*config.Config, error) {
	t.Helper()
	src := strings.Replace(policyHead, "%s", names, 1) + providers + policyTail
	return config.Parse("test.yaml", []byte(src), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// The policy's jwt and introspection types load into typed settings, and
// New builds the right authenticator from them.
func TestPolicyTypes(t *testing.T) {
	cfg, err := parse(t, "jwt1, opaque", `
  jwt1:
    type: jwt
    issuer: https://login.example.com/
    audiences: [https://api.example.com]
    algorithms: [ES256, EdDSA]
    clock_skew: 10s
    jwks_refresh: 15m
    scope_claim: scp
    subject_claim: client_id
    claims: { email: mail, groups: roles, extra: [tenant] }
    required_claims: { token_use: [access], tid: [] }
    max_token_size: 4096
    cache_size: 500
  opaque:
    type: introspection
    url: https://login.example.com/oauth2/introspect
    client_id: gatehouse
    client_secret: ${INTROSPECTION_SECRET}
    auth_method: client_secret_post
    audiences: [orders]
    cache_ttl: 1m
`, map[string]string{"INTROSPECTION_SECRET": "null"})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	j := cfg.Providers["jwt1"].JWT
	if j == nil || j.Issuer != "https://login.example.com/" || j.ClockSkew.D() != 10*time.Second || j.ScopeClaim != "scp" ||
		j.Claims.Groups != "roles" || len(j.RequiredClaims["token_use"]) != 1 || j.MaxTokenSize != 4096 || j.JWKSRefresh.D() != 15*time.Minute {
		t.Fatalf("jwt settings %+v", j)
	}
	in := cfg.Providers["opaque"].Introspection
	if in == nil || in.ClientSecret != "null" || in.AuthMethod != "client_secret_post" || in.CacheTTL.D() != time.Minute {
		t.Fatalf("introspection settings %+v", in)
	}
	a, err := New(cfg, "jwt1", Env{})
	if _, ok := a.(*JWT); err != nil || !ok {
		t.Fatalf("New(jwt1) = %T, %v", a, err)
	}
	a, err = New(cfg, "opaque", Env{})
	if _, ok := a.(*Introspection); err != nil || !ok {
		t.Fatalf("New(opaque) = %T, %v", a, err)
	}
}

// Validation reports each mistake with its key and a hint.
func TestPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		name, provider, want string
	}{
		{"no issuer", "type: jwt\n    audiences: [a]", "providers.p.issuer"},
		{"no audiences", "type: jwt\n    issuer: https://i.example", "providers.p.audiences"},
		{"empty audience", "type: jwt\n    issuer: https://i.example\n    audiences: ['']", "providers.p.audiences: audiences[0] is empty"},
		{"alg none", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    algorithms: [RS256, none]", `test.yaml:10:5: providers.p.algorithms: algorithms[1]: algorithm "none" is not allowed`},
		{"alg HS256", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    algorithms: [HS256]", "HMAC would be keyed with the issuer's public key"},
		{"alg typo", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    algorithms: [ES265]", `unknown algorithm "ES265"`},
		{"issuer not a URL without jwks_url", "type: jwt\n    issuer: corp\n    audiences: [a]", "cannot discover keys"},
		{"plain http jwks", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    jwks_url: http://keys.example.com/jwks", "plain http is only allowed on a loopback address"},
		{"huge skew", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    clock_skew: 1h", "providers.p.clock_skew"},
		{"tiny token size", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    max_token_size: 10", "providers.p.max_token_size"},
		{"unknown key", "type: jwt\n    issuer: https://i.example\n    audiences: [a]\n    jwks_uri: https://i.example/k", `unknown key "jwks_uri"`},
		{"introspection without url", "type: introspection\n    client_id: c\n    client_secret: s\n    audiences: [a]", "providers.p.url"},
		{"introspection over http", "type: introspection\n    url: http://as.example.com/i\n    client_id: c\n    client_secret: s\n    audiences: [a]", "plain http"},
		{"introspection without secret", "type: introspection\n    url: https://as.example.com/i\n    client_id: c\n    audiences: [a]", "providers.p.client_secret"},
		{"introspection without audiences", "type: introspection\n    url: https://as.example.com/i\n    client_id: c\n    client_secret: s", "providers.p.audiences"},
		{"introspection ttl too long", "type: introspection\n    url: https://as.example.com/i\n    client_id: c\n    client_secret: s\n    audiences: [a]\n    cache_ttl: 1h", "providers.p.cache_ttl"},
		{"introspection auth method", "type: introspection\n    url: https://as.example.com/i\n    client_id: c\n    client_secret: s\n    audiences: [a]\n    auth_method: basic", "providers.p.auth_method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, "p", "  p:\n    "+tc.provider+"\n", nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want %q", err, tc.want)
			}
		})
	}
	// Loopback http is fine for development.
	if _, err := parse(t, "p", "  p:\n    type: jwt\n    issuer: http://127.0.0.1:8081\n    audiences: [a]\n", nil); err != nil {
		t.Fatalf("loopback issuer: %v", err)
	}
}
