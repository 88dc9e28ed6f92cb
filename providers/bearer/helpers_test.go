package bearer

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
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// t0 is the tests' "now".
var t0 = time.Unix(1_900_000_000, 0)

type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t0.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// testKey is a signing key with its kid and algorithm.
type testKey struct {
	kid, alg string
	priv     crypto.Signer
}

var (
	keyOnce                    sync.Once
	rsaA, rsaB, rsaC, rsaOther *rsa.PrivateKey
	ecA, ecOther, ec384        *ecdsa.PrivateKey
	edA                        ed25519.PrivateKey
	rsa1024                    *rsa.PrivateKey
	keysOK                     bool
)

func keysForTests(t testing.TB) {
	t.Helper()
	keyOnce.Do(func() {
		gen := func(bits int) *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			return k
		}
		rsaA, rsaB, rsaC, rsaOther = gen(2048), gen(2048), gen(2048), gen(2048)
		rsa1024 = gen(1024)
		ecA, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ecOther, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ec384, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, edA, _ = ed25519.GenerateKey(rand.Reader)
		keysOK = true
	})
	if !keysOK {
		t.Fatal("key generation failed")
	}
}

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// signRaw signs header.payload (both JSON text) with k for alg.
func signRaw(t testing.TB, k crypto.Signer, alg, header, payload string) string {
	t.Helper()
	input := seg(header) + "." + seg(payload)
	return input + "." + base64.RawURLEncoding.EncodeToString(sigOver(t, k, alg, input))
}

func sigOver(t testing.TB, k crypto.Signer, alg, input string) []byte {
	t.Helper()
	var h crypto.Hash
	switch alg[len(alg)-3:] {
	case "256":
		h = crypto.SHA256
	case "384":
		h = crypto.SHA384
	case "512":
		h = crypto.SHA512
	}
	if alg == "EdDSA" {
		return ed25519.Sign(k.(ed25519.PrivateKey), []byte(input))
	}
	hh := h.New()
	hh.Write([]byte(input))
	digest := hh.Sum(nil)
	switch alg[:2] {
	case "RS":
		s, err := rsa.SignPKCS1v15(rand.Reader, k.(*rsa.PrivateKey), h, digest)
		if err != nil {
			t.Fatal(err)
		}
		return s
	case "PS":
		s, err := rsa.SignPSS(rand.Reader, k.(*rsa.PrivateKey), h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		return s
	case "ES":
		ek := k.(*ecdsa.PrivateKey)
		r, s, err := ecdsa.Sign(rand.Reader, ek, digest)
		if err != nil {
			t.Fatal(err)
		}
		size := (ek.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}
	t.Fatalf("sigOver: alg %s", alg)
	return nil
}

// hs256 signs with HMAC-SHA256 keyed with secret.
func hs256(header, payload string, secret []byte) string {
	input := seg(header) + "." + seg(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var _ = sha512.New // keep crypto/sha512 registered for SHA384/SHA512

// jwk renders the public JWK of a key.
func jwk(kid, alg string, k crypto.Signer) map[string]any {
	m := map[string]any{"use": "sig"}
	if kid != "" {
		m["kid"] = kid
	}
	if alg != "" {
		m["alg"] = alg
	}
	enc := base64.RawURLEncoding.EncodeToString
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = enc(p.N.Bytes())
		m["e"] = enc(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		m["kty"] = "EC"
		m["crv"] = p.Curve.Params().Name
		size := (p.Curve.Params().BitSize + 7) / 8
		b, err := p.Bytes()
		if err != nil {
			panic(err)
		}
		m["x"] = enc(b[1 : 1+size])
		m["y"] = enc(b[1+size:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = enc(p)
	}
	return m
}

// idp is a fake issuer: discovery, a JWKS that tests can rotate, and
// request counters.
type idp struct {
	srv       *httptest.Server
	issuer    string
	jwks      atomic.Pointer[string]
	jwksHits  atomic.Int64
	discHits  atomic.Int64
	discovery atomic.Pointer[string] // nil: the default document
	down      atomic.Bool
}

func newIDP(t testing.TB, keys ...map[string]any) *idp {
	t.Helper()
	p := &idp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			p.discHits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			if d := p.discovery.Load(); d != nil {
				w.Write([]byte(*d))
				return
			}
			w.Write([]byte(mustJSON(map[string]any{"issuer": p.issuer, "jwks_uri": p.srv.URL + "/jwks"})))
		case "/jwks":
			p.jwksHits.Add(1)
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Write([]byte(*p.jwks.Load()))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL
	p.publish(keys...)
	return p
}

func (p *idp) publish(keys ...map[string]any) {
	s := mustJSON(map[string]any{"keys": keys})
	p.jwks.Store(&s)
}

const testAud = "https://api.example.com"

// baseJWTConfig is a jwt provider for the idp with explicit jwks_url.
func baseJWTConfig(p *idp) *config.JWTProvider {
	return &config.JWTProvider{
		ProviderCommon: config.ProviderCommon{Type: "jwt"},
		BearerCommon: config.BearerCommon{
			Audiences: []string{testAud, "orders"},
			Claims:    config.BearerClaims{Extra: []string{"tenant", "level", "teams"}},
		},
		Issuer:  p.issuer,
		JWKSURL: p.srv.URL + "/jwks",
	}
}

func newJWTFor(t testing.TB, name string, cfg *config.JWTProvider, clock *fakeClock) *JWT {
	t.Helper()
	j, err := NewJWT(name, cfg, Env{Now: clock.Now})
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return j
}

// claims is a payload valid at t0 for the idp.
func claims(p *idp, extra map[string]any) map[string]any {
	c := map[string]any{
		"iss": p.issuer, "sub": "client-42", "aud": testAud,
		"iat": t0.Unix() - 60, "nbf": t0.Unix() - 60, "exp": t0.Unix() + 600,
		"scope": "orders:read orders:write",
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// token signs claims with k, with header {alg, kid, typ: at+jwt}.
func token(t testing.TB, k testKey, c map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": k.alg, "typ": "at+jwt"}
	if k.kid != "" {
		h["kid"] = k.kid
	}
	return signRaw(t, k.priv, k.alg, mustJSON(h), mustJSON(c))
}

func req(hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://api.example.com/orders", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func bearerReq(tok string) *http.Request { return req("Authorization", "Bearer "+tok) }

type authenticator interface {
	Authenticate(ctx context.Context, r *http.Request) (*identity.Identity, error)
}

// mustRefuse asserts that r is refused for reason.
func mustRefuse(t testing.TB, a authenticator, r *http.Request, reason error) {
	t.Helper()
	id, err := a.Authenticate(context.Background(), r)
	if err == nil {
		t.Fatalf("accepted (%+v), want refusal %v", id, reason)
	}
	if id != nil {
		t.Errorf("refusal came with an identity %+v", id)
	}
	if !errors.Is(err, providers.ErrInvalidToken) {
		t.Errorf("error %v does not match providers.ErrInvalidToken", err)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("error %q, want reason %q", err, reason)
	}
	var be *Error
	if !errors.As(err, &be) || be.Detail == "" {
		t.Errorf("error %v has no private detail", err)
	}
}

func mustAccept(t testing.TB, a authenticator, r *http.Request) *identity.Identity {
	t.Helper()
	id, err := a.Authenticate(context.Background(), r)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if id == nil {
		t.Fatal("no identity")
	}
	return id
}
