package proxy_test

// Bearer tokens for API routes, end to end: a gateway built by app.Build
// from a policy with a jwt provider (providers/bearer), an issuer serving
// its JWKS on 127.0.0.1, and the echo upstream.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/app"
)

const bearerPolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
session:
  keys: ["e2e-test-session-key-0123456789abcdef"]
audiences:
  api: { providers: [tokens] }
providers:
  tokens:
    type: jwt
    issuer: "{{ISSUER}}"
    audiences: [orders-api]
    jwks_url: "{{ISSUER}}/jwks"
    claims: { extra: [tenant] }
routes:
  - name: orders
    match: { path: /api/orders }
    audience: api
    allow: { scopes: ["orders:read"] }
    upstream: "{{UP}}"
    forward: { user: X-Api-Client, email: X-Api-Email, claims: { X-Tenant: tenant } }
`

// bearerIssuer is an OAuth issuer publishing one ES256 key.
type bearerIssuer struct {
	url      string
	key      *ecdsa.PrivateKey
	jwksHits atomic.Int64
}

func newBearerIssuer(t *testing.T) *bearerIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := &bearerIssuer{key: key}
	b, _ := key.PublicKey.Bytes()
	enc := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": enc(b[1:33]), "y": enc(b[33:]),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		iss.jwksHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}))
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	return iss
}

// token signs claims (over defaults valid now) as an ES256 access token;
// a nil value removes a default claim.
func (iss *bearerIssuer) token(t *testing.T, alg string, extra map[string]any) string {
	t.Helper()
	now := time.Now().Unix()
	c := map[string]any{"iss": iss.url, "sub": "svc-orders", "aud": "orders-api", "iat": now, "exp": now + 300,
		"scope": "orders:read orders:write", "tenant": "acme", "email": "svc@corp.example"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	hdr, _ := json.Marshal(map[string]any{"alg": alg, "kid": "k1", "typ": "at+jwt"})
	payload, _ := json.Marshal(c)
	enc := base64.RawURLEncoding.EncodeToString
	input := enc(hdr) + "." + enc(payload)
	if alg == "none" {
		return input + "."
	}
	d := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, iss.key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc(sig)
}

func TestE2EBearerAPI(t *testing.T) {
	iss := newBearerIssuer(t)
	e := newEnvWith(t, envConfig{policy: strings.ReplaceAll(bearerPolicy, "{{ISSUER}}", iss.url)})
	if _, ok := e.opts.Providers["tokens"]; ok {
		t.Fatal("a jwt provider was registered as a browser sign-in provider")
	}
	if _, ok := e.opts.Bearer["tokens"]; !ok {
		t.Fatal("the jwt provider is not among the bearer authenticators")
	}
	b := e.browser()
	good := iss.token(t, "ES256", nil)

	// 401 with a Bearer challenge and a JSON body, never a redirect.
	challenge := func(t *testing.T, r *resp, wantErr string) {
		t.Helper()
		if r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: %.300s", r.StatusCode, r.body)
		}
		if r.location() != "" {
			t.Errorf("API client redirected to %q", r.location())
		}
		wa := r.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(wa, "Bearer ") {
			t.Errorf("WWW-Authenticate = %q", wa)
		}
		if wantErr == "invalid_token" && !strings.Contains(wa, `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate = %q, want error=\"invalid_token\"", wa)
		}
		if j := decodeJSONError(t, r); j.Error != wantErr {
			t.Errorf("error %q, want %q", j.Error, wantErr)
		}
		assertNoInternals(t, "401 body", r.body)
	}

	t.Run("no token", func(t *testing.T) {
		challenge(t, b.do(http.MethodGet, "/api/orders", nil), "unauthenticated")
		// A browser navigation to an API route gets JSON too.
		challenge(t, b.get("/api/orders"), "unauthenticated")
		// A token in the query is not a token.
		challenge(t, b.do(http.MethodGet, "/api/orders?access_token="+good, nil), "unauthenticated")
	})
	for _, tc := range []struct{ name, header string }{
		{"garbage", "Bearer not-a-jwt"},
		{"alg none", "Bearer " + iss.token(t, "none", nil)},
		{"expired", "Bearer " + iss.token(t, "ES256", map[string]any{"exp": time.Now().Unix() - 3600})},
		{"wrong audience", "Bearer " + iss.token(t, "ES256", map[string]any{"aud": "billing-api"})},
		{"empty audience", "Bearer " + iss.token(t, "ES256", map[string]any{"aud": []string{}})},
		{"wrong issuer", "Bearer " + iss.token(t, "ES256", map[string]any{"iss": "https://evil.example"})},
		{"tampered", "Bearer " + strings.Replace(good, ".", ".eyJ", 1)},
		{"many dots", "Bearer " + good + strings.Repeat(".", 50)},
	} {
		t.Run("bad token "+tc.name, func(t *testing.T) {
			challenge(t, b.do(http.MethodGet, "/api/orders", nil, "Authorization", tc.header), "invalid_token")
		})
	}
	t.Run("two Authorization headers", func(t *testing.T) {
		challenge(t, b.do(http.MethodGet, "/api/orders", nil, "Authorization", "Bearer "+good, "Authorization", "Bearer "+good), "invalid_token")
	})

	t.Run("token without the scope", func(t *testing.T) {
		r := b.do(http.MethodGet, "/api/orders", nil, "Authorization", "Bearer "+iss.token(t, "ES256", map[string]any{"scope": "orders:write"}))
		if r.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403: %.300s", r.StatusCode, r.body)
		}
		if wa := r.Header.Get("WWW-Authenticate"); !strings.Contains(wa, `error="insufficient_scope"`) {
			t.Errorf("WWW-Authenticate = %q, want insufficient_scope", wa)
		}
		if j := decodeJSONError(t, r); j.Error != "insufficient_scope" {
			t.Errorf("error %q, want insufficient_scope", j.Error)
		}
	})
	if n := len(e.up.hits()); n != 0 {
		t.Fatalf("refused requests reached the upstream %d times", n)
	}

	t.Run("good token", func(t *testing.T) {
		v := fetchVerifier(t, e)
		for i := range 3 { // the second and third are served from the token cache
			r := b.do(http.MethodGet, "/api/orders?page=2", nil, "Authorization", "Bearer "+good,
				"X-Api-Client", "admin", "X-Tenant", "evil", "X-Api-Email", "ceo@corp.example") // smuggled identity headers
			if r.StatusCode != http.StatusOK {
				t.Fatalf("request %d: status %d: %.300s", i, r.StatusCode, r.body)
			}
			up := r.echo(t)
			if got := one(t, up.Header, "X-Api-Client"); got != "svc-orders" {
				t.Errorf("X-Api-Client = %q", got)
			}
			if got := one(t, up.Header, "X-Tenant"); got != "acme" {
				t.Errorf("X-Tenant = %q", got)
			}
			if got := one(t, up.Header, "X-Api-Email"); got != "svc@corp.example" {
				t.Errorf("X-Api-Email = %q", got)
			}
			c, err := v.Verify(one(t, up.Header, "X-Gatehouse-Assertion"), "orders")
			if err != nil {
				t.Fatalf("assertion: %v", err)
			}
			if c.Subject != "svc-orders" || c.IdentityAudience != "api" || c.Provider != "tokens" || !slices.Contains(c.Scopes, "orders:read") {
				t.Errorf("assertion claims %+v", c)
			}
		}
		if n := iss.jwksHits.Load(); n != 1 {
			t.Errorf("JWKS fetched %d times, want 1", n)
		}
	})
	t.Run("lower-case scheme", func(t *testing.T) {
		if r := b.do(http.MethodGet, "/api/orders", nil, "Authorization", "bearer "+good); r.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %.300s", r.StatusCode, r.body)
		}
	})
	t.Run("refusals are logged with their reason", func(t *testing.T) {
		found := false
		for _, le := range e.logs.All() {
			if le.Message != "bearer token refused" {
				continue
			}
			for _, f := range le.Context {
				if f.Key == "error" && strings.Contains(f.Interface.(error).Error(), "wrong audience") {
					found = true
				}
			}
		}
		if !found {
			t.Error("no log entry gives the private refusal reason")
		}
	})
}

// A jwt provider offered to a browser audience is refused at build time:
// it cannot sign anybody in.
func TestE2EBearerProviderNotForBrowsers(t *testing.T) {
	pol := strings.NewReplacer("{{ISSUER}}", "https://issuer.example", "{{PUBLIC}}", "https://gw.example", "{{UP}}", "http://127.0.0.1:9",
		"  api: { providers: [tokens] }", "  api: { providers: [tokens] }\n  workforce: { providers: [tokens] }").Replace(bearerPolicy)
	// Refused already by validation, with the file position of the entry.
	_, err := app.LoadBytes("test.yaml", []byte(pol), nil)
	if err == nil || !strings.Contains(err.Error(), `audiences.workforce.providers[0]: provider "tokens" (type jwt) has no browser sign-in`) {
		t.Fatalf("LoadBytes = %v, want a diagnostic for audiences.workforce.providers[0]", err)
	}
}
