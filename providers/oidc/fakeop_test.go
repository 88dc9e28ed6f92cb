package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// testKey is a signing key of the fake OP.
type testKey struct {
	kid, alg string
	priv     crypto.Signer
}

var (
	rsaKeyOnce sync.Once
	rsaKeys    []*rsa.PrivateKey
)

// rsaKey returns one of a few RSA keys generated once per test binary.
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	rsaKeyOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func newKey(t testing.TB, alg, kid string) *testKey {
	switch alg {
	case "RS256", "PS256":
		return &testKey{kid: kid, alg: alg, priv: rsaKey(t, 0)}
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return &testKey{kid: kid, alg: alg, priv: k}
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return &testKey{kid: kid, alg: alg, priv: k}
	}
	t.Fatalf("no key for %s", alg)
	return nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwk is the key's public JWK.
func (k *testKey) jwk() map[string]any {
	m := map[string]any{"kid": k.kid, "use": "sig", "alg": k.alg}
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		x, y := make([]byte, 32), make([]byte, 32)
		pub.X.FillBytes(x)
		pub.Y.FillBytes(y)
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64(x), b64(y)
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(pub)
	}
	return m
}

// signJWT signs claims as a compact JWS. alg may differ from the key's
// (for attacks): "none" leaves the signature empty, "HS256" uses hsSecret.
func signJWT(t testing.TB, k *testKey, alg string, hsSecret []byte, claims map[string]any) string {
	hdr := map[string]any{"alg": alg, "typ": "JWT"}
	if k != nil && k.kid != "" {
		hdr["kid"] = k.kid
	}
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch alg {
	case "none":
	case "HS256":
		m := hmac.New(sha256.New, hsSecret)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.priv.(*ecdsa.PrivateKey), digest[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case "EdDSA":
		sig = ed25519.Sign(k.priv.(ed25519.PrivateKey), []byte(input))
	default:
		t.Fatalf("cannot sign %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// grant is one authorization the fake OP handed out.
type grant struct {
	query url.Values
}

// fakeOP is an in-process OpenID Provider: discovery, JWKS, authorize
// (answers at once with a code), token (authorization_code with PKCE,
// refresh_token), userinfo and end_session. Tests change its fields to
// make it misbehave.
type fakeOP struct {
	t       testing.TB
	srv     *httptest.Server
	prefix  string   // path prefix of every endpoint ("/common/v2.0")
	aliases []string // more prefixes answering discovery the same way

	mu              sync.Mutex
	discoveryIssuer string // issuer in the discovery document; default the URL
	keys            []*testKey
	signer          *testKey
	signAlg         string // default signer.alg
	hsSecret        []byte
	clientID        string
	clientSecret    string
	sub             string
	claims          map[string]any                  // extra ID token claims
	mutate          func(c map[string]any)          // last change to the ID token claims
	rawIDToken      func(c map[string]any) string   // replaces the signed ID token
	userinfo        func(sub string) map[string]any // userinfo answer; default the claims
	down            bool                            // discovery answers 503
	issParam        bool                            // send iss in the authorization response
	responseModes   []string                        // advertised
	grants          map[string]*grant               // by code
	refresh         map[string]string               // refresh token → sub
	refreshFail     string                          // error code for refresh grants
	lastAuth        url.Values                      // last authorization request
	lastToken       url.Values                      // last token request (form)
	jwksHits        int
	tokenHook       func(form url.Values) (int, any) // overrides the token answer
	refreshIDTokens bool
}

func newFakeOP(t testing.TB) *fakeOP {
	return newFakeOPAt(t, "")
}

func newFakeOPAt(t testing.TB, prefix string) *fakeOP {
	op := &fakeOP{t: t, prefix: prefix, clientID: "gatehouse-test", clientSecret: "s3cret", sub: "user-123",
		grants: map[string]*grant{}, refresh: map[string]string{}, refreshIDTokens: true,
		claims: map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice", "groups": []string{"staff", "admins"}, "amr": []string{"pwd"}, "acr": "silver"}}
	k := newKey(t, "RS256", "k1")
	op.keys, op.signer = []*testKey{k}, k
	op.srv = httptest.NewServer(http.HandlerFunc(op.serve))
	t.Cleanup(op.srv.Close)
	return op
}

// issuer is the OP's issuer URL.
func (op *fakeOP) issuer() string { return op.srv.URL + op.prefix }

func (op *fakeOP) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, op.prefix)
	for _, alias := range op.aliases {
		if !ok {
			path, ok = strings.CutPrefix(r.URL.Path, alias)
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	switch path {
	case "/.well-known/openid-configuration":
		if op.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		iss := op.discoveryIssuer
		if iss == "" {
			iss = op.issuer()
		}
		writeJSON(w, 200, map[string]any{
			"issuer": iss, "authorization_endpoint": op.issuer() + "/authorize", "token_endpoint": op.issuer() + "/token",
			"jwks_uri": op.issuer() + "/jwks", "userinfo_endpoint": op.issuer() + "/userinfo", "end_session_endpoint": op.issuer() + "/logout",
			"code_challenge_methods_supported": []string{"S256"}, "response_modes_supported": op.responseModes,
			"authorization_response_iss_parameter_supported": op.issParam,
			"id_token_signing_alg_values_supported":          []string{"RS256", "ES256", "PS256", "EdDSA"},
		})
	case "/jwks":
		op.jwksHits++
		var keys []any
		for _, k := range op.keys {
			keys = append(keys, k.jwk())
		}
		writeJSON(w, 200, map[string]any{"keys": keys})
	case "/authorize":
		q := r.URL.Query()
		op.lastAuth = q
		cb, _ := url.Parse(q.Get("redirect_uri"))
		back := url.Values{"state": {q.Get("state")}}
		if op.issParam {
			back.Set("iss", op.issuer())
		}
		switch {
		case q.Get("client_id") != op.clientID:
			back.Set("error", "unauthorized_client")
		case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
			back.Set("error", "invalid_request")
		default:
			code := randText()
			op.grants[code] = &grant{query: q}
			back.Set("code", code)
		}
		cb.RawQuery = back.Encode()
		http.Redirect(w, r, cb.String(), http.StatusFound)
	case "/token":
		op.token(w, r)
	case "/userinfo":
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !strings.HasPrefix(tok, "at-") {
			writeJSON(w, 401, map[string]any{"error": "invalid_token"})
			return
		}
		c := op.idClaims(nil)
		if op.userinfo != nil {
			c = op.userinfo(op.sub)
		}
		writeJSON(w, 200, c)
	default:
		http.NotFound(w, r)
	}
}

func (op *fakeOP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, 400, map[string]any{"error": "invalid_request"})
		return
	}
	op.lastToken = r.PostForm
	if op.tokenHook != nil {
		status, body := op.tokenHook(r.PostForm)
		writeJSON(w, status, body)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != op.clientID || secret != op.clientSecret {
		writeJSON(w, 401, map[string]any{"error": "invalid_client"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		g := op.grants[r.PostForm.Get("code")]
		delete(op.grants, r.PostForm.Get("code")) // single use
		if g == nil {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "unknown or used code"})
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if b64(sum[:]) != g.query.Get("code_challenge") {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "PKCE verification failed"})
			return
		}
		if r.PostForm.Get("redirect_uri") != g.query.Get("redirect_uri") {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "redirect_uri mismatch"})
			return
		}
		rt := "rt-" + randText()
		op.refresh[rt] = op.sub
		writeJSON(w, 200, map[string]any{"access_token": "at-" + randText(), "token_type": "Bearer", "expires_in": 300,
			"refresh_token": rt, "id_token": op.idToken(g.query.Get("nonce")), "scope": g.query.Get("scope")})
	case "refresh_token":
		if op.refreshFail != "" {
			writeJSON(w, 400, map[string]any{"error": op.refreshFail})
			return
		}
		if _, ok := op.refresh[r.PostForm.Get("refresh_token")]; !ok {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant"})
			return
		}
		body := map[string]any{"access_token": "at-" + randText(), "token_type": "Bearer", "expires_in": 300}
		if op.refreshIDTokens {
			body["id_token"] = op.idToken("")
		}
		writeJSON(w, 200, body)
	default:
		writeJSON(w, 400, map[string]any{"error": "unsupported_grant_type"})
	}
}

// idClaims are the ID token claims (before mutate).
func (op *fakeOP) idClaims(extra map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": op.issuer(), "sub": op.sub, "aud": op.clientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "auth_time": now.Add(-10 * time.Second).Unix()}
	for k, v := range op.claims {
		c[k] = v
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func (op *fakeOP) idToken(nonce string) string {
	extra := map[string]any{}
	if nonce != "" {
		extra["nonce"] = nonce
	}
	c := op.idClaims(extra)
	if op.mutate != nil {
		op.mutate(c)
	}
	if op.rawIDToken != nil {
		return op.rawIDToken(c)
	}
	alg := op.signAlg
	if alg == "" {
		alg = op.signer.alg
	}
	return signJWT(op.t, op.signer, alg, op.hsSecret, c)
}

func (op *fakeOP) set(f func(op *fakeOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randText() string {
	b := make([]byte, 12)
	rand.Read(b)
	return b64(b)
}

// oidcConfig is a provider config for the fake OP.
func (op *fakeOP) config(mod ...func(c *config.OIDCProvider)) *config.OIDCProvider {
	c := &config.OIDCProvider{Issuer: op.issuer()}
	c.Type = "oidc"
	c.ClientID, c.ClientSecret = op.clientID, op.clientSecret
	for _, m := range mod {
		m(c)
	}
	return c
}

func newTestProvider(t testing.TB, op *fakeOP, mod ...func(c *config.OIDCProvider)) *Provider {
	t.Helper()
	p, err := New("corp", op.config(mod...), Env{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const testCallback = "https://gw.example.com/.gatehouse/callback/corp"

func newAttempt() *providers.Attempt {
	return &providers.Attempt{State: randText() + randText(), Nonce: randText(), Provider: "corp", Audience: identity.Customer,
		CallbackURL: testCallback, ReturnURL: "/", Created: time.Now()}
}

// noRedirects is a client that stops at the first redirect.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize runs Begin and the OP's authorize endpoint and returns the
// callback request the browser would make.
func authorize(t testing.TB, p providers.Provider, a *providers.Attempt) *http.Request {
	t.Helper()
	red, err := p.Begin(context.Background(), a)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	a.Data = red.Data
	resp, err := noRedirects.Get(red.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, testCallback) {
		t.Fatalf("authorize answered %d, Location %q", resp.StatusCode, loc)
	}
	return httptest.NewRequest(http.MethodGet, loc, nil)
}

// signIn runs a whole sign-in and returns Complete's result.
func signIn(t testing.TB, p providers.Provider, a *providers.Attempt) (*identity.Identity, error) {
	t.Helper()
	req := authorize(t, p, a)
	if got := p.CallbackState(req); got != a.State {
		t.Fatalf("CallbackState = %q, want the attempt's state", got)
	}
	return p.Complete(context.Background(), req, a)
}

// wantReason checks that err is a LoginError with that reason.
func wantReason(t testing.TB, err error, reason string) *providers.LoginError {
	t.Helper()
	var le *providers.LoginError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T), want a LoginError %q", err, err, reason)
	}
	if le.Reason != reason {
		t.Fatalf("reason %q (%v), want %q", le.Reason, le, reason)
	}
	if le.Public == "" {
		t.Fatalf("LoginError %q has no public text", reason)
	}
	return le
}

// publicKeyDER is what an HS256-with-the-public-key attack uses as secret.
func publicKeyDER(t testing.TB, k *testKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return der
}
