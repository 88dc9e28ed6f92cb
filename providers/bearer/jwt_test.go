package bearer

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

var (
	kRS = testKey{"rsa-a", "RS256", nil}
	kPS = testKey{"rsa-a", "PS256", nil}
	kES = testKey{"ec-a", "ES256", nil}
	kED = testKey{"ed-a", "EdDSA", nil}
)

// jwtSetup is an issuer publishing an RSA key (no alg in its JWK), a P-256
// key and an Ed25519 key, and a JWT provider for it whose JWKS is loaded.
func jwtSetup(t testing.TB) (*idp, *JWT, *fakeClock) {
	t.Helper()
	keysForTests(t)
	kRS.priv, kPS.priv, kES.priv, kED.priv = rsaA, rsaA, ecA, edA
	p := newIDP(t, jwk("rsa-a", "", rsaA), jwk("ec-a", "ES256", ecA), jwk("ed-a", "EdDSA", edA))
	clock := newClock()
	j := newJWTFor(t, "api-tokens", baseJWTConfig(p), clock)
	waitReady(t, j)
	return p, j, clock
}

func waitReady(t testing.TB, j *JWT) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for j.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("JWKS never fetched: %v", j.Ready())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWTAccepts(t *testing.T) {
	p, j, _ := jwtSetup(t)
	type check func(t *testing.T, id *identity.Identity)
	scopes := func(want ...string) check {
		return func(t *testing.T, id *identity.Identity) {
			if !slices.Equal(id.Scopes, want) {
				t.Errorf("scopes %q, want %q", id.Scopes, want)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		key   testKey
		extra map[string]any
		hdr   string // raw header JSON instead of the default
		check check
	}{
		{name: "RS256", key: kRS, check: scopes("orders:read", "orders:write")},
		{name: "ES256", key: kES},
		{name: "PS256", key: kPS},
		{name: "EdDSA", key: kED},
		{name: "aud array containing the audience", key: kRS, extra: map[string]any{"aud": []string{"https://other.example", testAud}}},
		{name: "second configured audience", key: kRS, extra: map[string]any{"aud": "orders"}},
		{name: "scp array", key: kES, extra: map[string]any{"scope": nil, "scp": []string{"orders:read", "admin"}}, check: scopes("orders:read", "admin")},
		{name: "scope wins over scp", key: kES, extra: map[string]any{"scp": []string{"admin"}}, check: scopes("orders:read", "orders:write")},
		{name: "no scopes", key: kES, extra: map[string]any{"scope": nil}, check: scopes()},
		{name: "typ absent", key: kRS, hdr: `{"alg":"RS256","kid":"rsa-a"}`},
		{name: "typ JWT", key: kRS, hdr: `{"alg":"RS256","kid":"rsa-a","typ":"JWT"}`},
		{name: "typ application/at+jwt", key: kRS, hdr: `{"alg":"RS256","kid":"rsa-a","typ":"application/at+jwt"}`},
		{name: "no kid, one RSA key", key: kRS, hdr: `{"alg":"RS256"}`},
		{name: "header keys ignored", key: kRS, hdr: `{"alg":"RS256","kid":"rsa-a","jku":"https://evil.example/jwks","x5u":"https://evil.example/x"}`},
		{name: "expired within the clock skew", key: kRS, extra: map[string]any{"exp": t0.Unix() - 10}},
		{name: "nbf within the clock skew", key: kRS, extra: map[string]any{"nbf": t0.Unix() + 10}},
		{name: "fractional times", key: kRS, extra: map[string]any{"exp": float64(t0.Unix()) + 60.5, "iat": float64(t0.Unix()) - 0.25}},
		{name: "identity facts", key: kRS, extra: map[string]any{
			"email": "ops@corp.example", "email_verified": true, "name": "Ops Bot",
			"groups": []string{"ops", "billing"}, "tenant": "acme", "level": 3, "teams": []string{"a", "b"},
			"auth_time": t0.Unix() - 300, "acr": "urn:mfa", "amr": []string{"pwd", "otp"},
		}, check: func(t *testing.T, id *identity.Identity) {
			want := identity.Identity{
				Subject: "client-42", Issuer: p.issuer, Provider: "api-tokens", Audience: identity.API,
				Email: "ops@corp.example", EmailVerified: true, Name: "Ops Bot", Groups: []string{"ops", "billing"},
				ACR: "urn:mfa", AMR: []string{"pwd", "otp"}, AuthTime: t0.Add(-300 * time.Second),
				Scopes: []string{"orders:read", "orders:write"},
				Extra:  map[string]string{"tenant": "acme", "level": "3", "teams": "a,b"},
			}
			if got := jsonOf(id); got != jsonOf(&want) {
				t.Errorf("identity\n got %s\nwant %s", got, jsonOf(&want))
			}
		}},
		{name: "groups as one string, auth time from iat, unverified email", key: kES, extra: map[string]any{"groups": "ops", "email": "x@corp.example"},
			check: func(t *testing.T, id *identity.Identity) {
				if !slices.Equal(id.Groups, []string{"ops"}) || !id.AuthTime.Equal(t0.Add(-60*time.Second)) || id.EmailVerified {
					t.Errorf("groups %q auth_time %v email_verified %v", id.Groups, id.AuthTime, id.EmailVerified)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claims(p, tc.extra)
			var tok string
			if tc.hdr != "" {
				tok = signRaw(t, tc.key.priv, tc.key.alg, tc.hdr, mustJSON(c))
			} else {
				tok = token(t, tc.key, c)
			}
			id := mustAccept(t, j, bearerReq(tok))
			if id.Subject != "client-42" || id.Issuer != p.issuer || id.Audience != identity.API || id.Provider != "api-tokens" {
				t.Errorf("identity %+v", id)
			}
			if tc.check != nil {
				tc.check(t, id)
			}
		})
	}
}

func jsonOf(id *identity.Identity) string { return mustJSON(id) }

// flipTrailingBits makes the last base64url character of s non-canonical
// (unused low bits set), which a strict decoder refuses.
func flipTrailingBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|1])
}

func TestJWTRefuses(t *testing.T) {
	p, j, _ := jwtSetup(t)
	good := token(t, kRS, claims(p, nil))
	parts := strings.Split(good, ".")
	payload := mustJSON(claims(p, nil))
	hdrRS := `{"alg":"RS256","kid":"rsa-a"}`

	der, _ := x509.MarshalPKIXPublicKey(&rsaA.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON := mustJSON(jwk("rsa-a", "", rsaA))
	pkcs1 := x509.MarshalPKCS1PublicKey(&rsaA.PublicKey)

	asn1Sig := func() string {
		input := seg(`{"alg":"ES256","kid":"ec-a"}`) + "." + seg(payload)
		d := sha256.Sum256([]byte(input))
		s, _ := ecdsa.SignASN1(rand.Reader, ecA, d[:])
		return input + "." + base64.RawURLEncoding.EncodeToString(s)
	}()

	for _, tc := range []struct {
		name   string
		token  string
		reason error
	}{
		// Time.
		{"expired", token(t, kRS, claims(p, map[string]any{"exp": t0.Unix() - 31})), ErrExpired},
		{"expired long ago", token(t, kES, claims(p, map[string]any{"exp": 1000})), ErrExpired},
		{"nbf in the future", token(t, kRS, claims(p, map[string]any{"nbf": t0.Unix() + 120})), ErrNotYetValid},
		{"issued in the future", token(t, kRS, claims(p, map[string]any{"iat": t0.Unix() + 120})), ErrNotYetValid},
		{"no exp", token(t, kRS, claims(p, map[string]any{"exp": nil})), ErrClaims},
		{"exp not a number", token(t, kRS, claims(p, map[string]any{"exp": "tomorrow"})), ErrMalformed},
		{"exp negative", token(t, kRS, claims(p, map[string]any{"exp": -1})), ErrMalformed},
		{"exp beyond year 9999", token(t, kRS, claims(p, map[string]any{"exp": 1e12})), ErrMalformed},
		// Issuer.
		{"wrong iss", token(t, kRS, claims(p, map[string]any{"iss": "https://evil.example"})), ErrIssuer},
		{"iss with a trailing slash", token(t, kRS, claims(p, map[string]any{"iss": p.issuer + "/"})), ErrIssuer},
		{"no iss", token(t, kRS, claims(p, map[string]any{"iss": nil})), ErrIssuer},
		{"iss not a string", token(t, kRS, claims(p, map[string]any{"iss": []string{p.issuer}})), ErrIssuer},
		// Audience.
		{"wrong aud", token(t, kRS, claims(p, map[string]any{"aud": "https://other.example"})), ErrAudience},
		{"empty aud", token(t, kRS, claims(p, map[string]any{"aud": ""})), ErrAudience},
		{"empty aud array", token(t, kRS, claims(p, map[string]any{"aud": []string{}})), ErrAudience},
		{"aud array of an empty string", token(t, kRS, claims(p, map[string]any{"aud": []string{""}})), ErrAudience},
		{"no aud", token(t, kRS, claims(p, map[string]any{"aud": nil})), ErrAudience},
		{"aud array without the audience", token(t, kRS, claims(p, map[string]any{"aud": []string{"a", "b"}})), ErrAudience},
		{"aud prefix of the audience", token(t, kRS, claims(p, map[string]any{"aud": "https://api.example"})), ErrAudience},
		{"aud a number", token(t, kRS, claims(p, map[string]any{"aud": 1})), ErrAudience},
		{"aud array with a number", token(t, kRS, claims(p, map[string]any{"aud": []any{testAud, 1}})), ErrAudience},
		// Algorithms.
		{"alg none", seg(`{"alg":"none","kid":"rsa-a"}`) + "." + seg(payload) + ".", ErrAlgorithm},
		{"alg None", seg(`{"alg":"None"}`) + "." + seg(payload) + ".", ErrAlgorithm},
		{"alg none with a signature", seg(`{"alg":"none"}`) + "." + seg(payload) + "." + parts[2], ErrAlgorithm},
		{"no alg", signRaw(t, rsaA, "RS256", `{"kid":"rsa-a"}`, payload), ErrAlgorithm},
		{"HS256 keyed with the RSA public key PEM", hs256(`{"alg":"HS256","kid":"rsa-a"}`, payload, pemKey), ErrAlgorithm},
		{"HS256 keyed with the RSA public key DER", hs256(`{"alg":"HS256","kid":"rsa-a"}`, payload, der), ErrAlgorithm},
		{"HS256 keyed with the PKCS1 public key", hs256(`{"alg":"HS256"}`, payload, pkcs1), ErrAlgorithm},
		{"HS256 keyed with the JWK", hs256(`{"alg":"HS256","kid":"rsa-a"}`, payload, []byte(jwkJSON)), ErrAlgorithm},
		{"HS512 lower case", hs256(`{"alg":"hs512","kid":"rsa-a"}`, payload, der), ErrAlgorithm},
		{"RS384 not allowed by default", signRaw(t, rsaA, "RS384", `{"alg":"RS384","kid":"rsa-a"}`, payload), ErrAlgorithm},
		{"RS256 token naming the EC key", signRaw(t, rsaA, "RS256", `{"alg":"RS256","kid":"ec-a"}`, payload), ErrAlgorithm},
		{"EdDSA token naming the ES256 key", signRaw(t, edA, "EdDSA", `{"alg":"EdDSA","kid":"ec-a"}`, payload), ErrAlgorithm},
		{"alg not a string", signRaw(t, rsaA, "RS256", `{"alg":["RS256"],"kid":"rsa-a"}`, payload), ErrMalformed},
		// Signatures.
		{"signed by another key under a known kid", signRaw(t, rsaOther, "RS256", hdrRS, payload), ErrSignature},
		{"tampered payload", parts[0] + "." + seg(strings.Replace(payload, "orders:write", "orders:admin", 1)) + "." + parts[2], ErrSignature},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(token(t, kRS, claims(p, map[string]any{"sub": "x"})), ".")[2], ErrSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrSignature},
		{"ES256 signature in ASN.1", asn1Sig, ErrSignature},
		{"ES256 signed by another key", signRaw(t, ecOther, "ES256", `{"alg":"ES256","kid":"ec-a"}`, payload), ErrSignature},
		{"PS256 signature labelled RS256", parts[0] + "." + parts[1] + "." + strings.Split(token(t, kPS, claims(p, nil)), ".")[2], ErrSignature},
		// Shape and encoding.
		{"many dots", good + ".x.y", ErrMalformed},
		{"JWE compact form", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", ErrMalformed},
		{"only dots", "..", ErrMalformed},
		{"one segment", parts[0], ErrMalformed},
		{"thousands of dots", strings.Repeat("a.", 4000), ErrMalformed},
		{"oversized", parts[0] + "." + strings.Repeat("A", 9000) + "." + parts[2], ErrTooLarge},
		{"oversized many-dotted", strings.Repeat(".", 10000), ErrTooLarge},
		{"base64 with + in the header", "eyJ+" + good[4:], ErrMalformed},
		{"standard base64 in the signature", parts[0] + "." + parts[1] + "." + strings.ReplaceAll(strings.ReplaceAll(parts[2], "-", "+"), "_", "/") + "+/", ErrMalformed},
		{"non-canonical base64 header", flipTrailingBits(seg(hdrRS)) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"non-canonical base64 signature", parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2]), ErrMalformed},
		{"padded header", seg(`{"alg":"RS256","kid":"rsa-a"}`) + "==" + "." + parts[1] + "." + parts[2], ErrRequest},
		{"header not JSON", seg("RS256") + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header a JSON array", seg(`["RS256"]`) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header with duplicate alg", signRaw(t, rsaA, "RS256", `{"alg":"RS256","alg":"none","kid":"rsa-a"}`, payload), ErrMalformed},
		{"header with trailing data", signRaw(t, rsaA, "RS256", hdrRS+`{}`, payload), ErrMalformed},
		{"header with crit", signRaw(t, rsaA, "RS256", `{"alg":"RS256","kid":"rsa-a","crit":["exp"],"exp":1}`, payload), ErrMalformed},
		{"typ of a DPoP proof", signRaw(t, rsaA, "RS256", `{"alg":"RS256","kid":"rsa-a","typ":"dpop+jwt"}`, payload), ErrMalformed},
		{"kid not a string", signRaw(t, rsaA, "RS256", `{"alg":"RS256","kid":7}`, payload), ErrMalformed},
		{"payload not JSON", signRaw(t, rsaA, "RS256", hdrRS, `not json`), ErrMalformed},
		{"payload with duplicate aud", signRaw(t, rsaA, "RS256", hdrRS, strings.Replace(payload, `"aud":"`+testAud+`"`, `"aud":"evil","aud":"`+testAud+`"`, 1)), ErrMalformed},
		{"payload with duplicate sub", signRaw(t, rsaA, "RS256", hdrRS, strings.Replace(payload, `"sub":"client-42"`, `"sub":"client-42","sub":"admin"`, 1)), ErrMalformed},
		// Claims.
		{"no sub", token(t, kRS, claims(p, map[string]any{"sub": nil})), ErrClaims},
		{"empty sub", token(t, kRS, claims(p, map[string]any{"sub": ""})), ErrClaims},
		{"sub a number", token(t, kRS, claims(p, map[string]any{"sub": 42})), ErrClaims},
		{"scope a number", token(t, kRS, claims(p, map[string]any{"scope": 1})), ErrClaims},
		{"groups an object", token(t, kRS, claims(p, map[string]any{"groups": map[string]any{"a": 1}})), ErrClaims},
		{"email_verified a number", token(t, kRS, claims(p, map[string]any{"email": "a@b.example", "email_verified": 1})), ErrClaims},
		{"extra claim an object", token(t, kRS, claims(p, map[string]any{"tenant": map[string]any{}})), ErrClaims},
		// Keys.
		{"ES384 without kid", signRaw(t, ec384, "ES384", `{"alg":"ES384"}`, payload), ErrAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustRefuse(t, j, bearerReq(tc.token), tc.reason)
		})
	}
	mustAccept(t, j, bearerReq(good)) // the baseline still passes
}

// The Authorization header: exactly one, Bearer in any case, never a
// token elsewhere.
func TestJWTRequestShapes(t *testing.T) {
	p, j, _ := jwtSetup(t)
	good := token(t, kRS, claims(p, nil))
	for _, tc := range []struct {
		name   string
		r      *http.Request
		reason error // nil: accepted; errNone: no token (nil, nil)
	}{
		{"Bearer", bearerReq(good), nil},
		{"bearer lower case", req("Authorization", "bearer "+good), nil},
		{"BEARER", req("Authorization", "BEARER "+good), nil},
		{"two spaces", req("Authorization", "Bearer  "+good), nil},
		{"no header", req(), errNone},
		{"Basic", req("Authorization", "Basic YWxpY2U6c2VjcmV0"), errNone},
		{"Bearerish scheme", req("Authorization", "Bearerx "+good), errNone},
		{"token in the query", httptest.NewRequest(http.MethodGet, "/orders?access_token="+good, nil), errNone},
		{"token in a form body", formReq("access_token=" + good), errNone},
		{"token in another header", req("X-Access-Token", good), errNone},
		{"two Authorization headers", req("Authorization", "Bearer "+good, "Authorization", "Bearer "+good), ErrRequest},
		{"Bearer and Basic", req("Authorization", "Basic YWxpY2U6c2VjcmV0", "Authorization", "Bearer "+good), ErrRequest},
		{"Bearer without token", req("Authorization", "Bearer"), ErrRequest},
		{"Bearer and spaces", req("Authorization", "Bearer   "), ErrRequest},
		{"two tokens in one header", req("Authorization", "Bearer "+good+", Bearer "+good), ErrRequest},
		{"tab in token", req("Authorization", "Bearer a\tb"), ErrRequest},
		{"quote in token", req("Authorization", `Bearer "`+good+`"`), ErrRequest},
		{"non-ASCII token", req("Authorization", "Bearer é."+good), ErrRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.reason {
			case nil:
				mustAccept(t, j, tc.r)
			case errNone:
				id, err := j.Authenticate(context.Background(), tc.r)
				if id != nil || err != nil {
					t.Fatalf("got (%v, %v), want (nil, nil)", id, err)
				}
			default:
				mustRefuse(t, j, tc.r, tc.reason)
			}
		})
	}
}

var errNone = errors.New("no token")

func formReq(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// An unknown kid triggers one JWKS fetch, so a rotation is followed
// without a restart; further unknown kids within 30s fetch nothing.
func TestJWTKeyRotation(t *testing.T) {
	keysForTests(t)
	p := newIDP(t, jwk("a", "RS256", rsaA))
	clock := newClock()
	j := newJWTFor(t, "api", baseJWTConfig(p), clock)
	if p.jwksHits.Load() != 0 {
		t.Fatal("NewJWT fetched the JWKS: constructors must do no I/O")
	}
	ka, kb, kc := testKey{"a", "RS256", rsaA}, testKey{"b", "RS256", rsaB}, testKey{"c", "RS256", rsaC}
	tokA := token(t, ka, claims(p, nil))
	mustAccept(t, j, bearerReq(tokA))
	if n := p.jwksHits.Load(); n != 1 {
		t.Fatalf("first token: %d JWKS fetches, want 1", n)
	}
	mustAccept(t, j, bearerReq(tokA))
	if n := p.jwksHits.Load(); n != 1 {
		t.Fatalf("second token: %d JWKS fetches, want 1", n)
	}

	// The issuer starts signing with b, still within 30s of the fetch:
	// rate-limited, refused.
	p.publish(jwk("a", "RS256", rsaA), jwk("b", "RS256", rsaB))
	tokB := token(t, kb, claims(p, nil))
	clock.Advance(10 * time.Second)
	mustRefuse(t, j, bearerReq(tokB), ErrUnknownKey)
	if n := p.jwksHits.Load(); n != 1 {
		t.Fatalf("unknown kid within 30s: %d JWKS fetches, want 1", n)
	}

	// After 30s: one refetch, then b works.
	clock.Advance(21 * time.Second)
	mustAccept(t, j, bearerReq(tokB))
	if n := p.jwksHits.Load(); n != 2 {
		t.Fatalf("after rotation: %d JWKS fetches, want 2", n)
	}
	mustAccept(t, j, bearerReq(tokA)) // a is still published

	// A storm of random kids fetches nothing more.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := testKey{"random-" + string(rune('a'+i%26)), "RS256", rsaC}
			_, err := j.Authenticate(context.Background(), bearerReq(token(t, k, claims(p, nil))))
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("random kid: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := p.jwksHits.Load(); n != 2 {
		t.Fatalf("unknown-kid storm: %d JWKS fetches, want 2", n)
	}
	// 30s later, one more fetch for a still-unknown kid.
	clock.Advance(31 * time.Second)
	mustRefuse(t, j, bearerReq(token(t, kc, claims(p, nil))), ErrUnknownKey)
	mustRefuse(t, j, bearerReq(token(t, kc, claims(p, nil))), ErrUnknownKey)
	if n := p.jwksHits.Load(); n != 3 {
		t.Fatalf("unknown kid after 30s: %d JWKS fetches, want 3", n)
	}

	// The issuer withdraws a. Once the keys are refreshed (jwks_refresh,
	// 1h by default), a token signed with a is refused even though it was
	// cached.
	tokA2 := token(t, ka, claims(p, map[string]any{"exp": clock.Now().Unix() + 7200}))
	mustAccept(t, j, bearerReq(tokA2)) // now cached
	p.publish(jwk("b", "RS256", rsaB))
	clock.Advance(time.Hour)
	mustAccept(t, j, bearerReq(tokA2)) // a cache hit, which starts a background refresh
	deadline := time.Now().Add(5 * time.Second)
	for p.jwksHits.Load() < 4 || j.keys.refreshing.Load() {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh after jwks_refresh")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mustRefuse(t, j, bearerReq(tokA2), ErrUnknownKey)
	mustAccept(t, j, bearerReq(token(t, kb, claims(p, map[string]any{"exp": clock.Now().Unix() + 600}))))
}

func TestJWTDiscovery(t *testing.T) {
	keysForTests(t)
	clock := newClock()
	p := newIDP(t, jwk("a", "", rsaA))
	cfg := baseJWTConfig(p)
	cfg.JWKSURL = ""
	j := newJWTFor(t, "disc", cfg, clock)
	mustAccept(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p, nil))))
	if p.discHits.Load() != 1 || p.jwksHits.Load() != 1 {
		t.Errorf("discovery %d, jwks %d fetches, want 1 and 1", p.discHits.Load(), p.jwksHits.Load())
	}

	// A discovery document for another issuer is refused (mix-up).
	p2 := newIDP(t, jwk("a", "", rsaA))
	evil := mustJSON(map[string]any{"issuer": "https://evil.example", "jwks_uri": p2.srv.URL + "/jwks"})
	p2.discovery.Store(&evil)
	cfg2 := baseJWTConfig(p2)
	cfg2.JWKSURL = ""
	j2 := newJWTFor(t, "disc2", cfg2, clock)
	mustRefuse(t, j2, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p2, nil))), ErrUnavailable)
	if err := j2.Ready(); err == nil || !strings.Contains(err.Error(), "evil.example") {
		t.Errorf("Ready = %v, want the discovery failure", err)
	}

	// A jwks_uri over plain http to a non-loopback host is refused.
	p3 := newIDP(t, jwk("a", "", rsaA))
	insecure := mustJSON(map[string]any{"issuer": p3.issuer, "jwks_uri": "http://keys.example.com/jwks"})
	p3.discovery.Store(&insecure)
	cfg3 := baseJWTConfig(p3)
	cfg3.JWKSURL = ""
	j3 := newJWTFor(t, "disc3", cfg3, clock)
	mustRefuse(t, j3, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p3, nil))), ErrUnavailable)

	// RFC 8414 metadata when there is no OpenID configuration.
	keys := mustJSON(map[string]any{"keys": []any{jwk("a", "", rsaA)}})
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server/tenant":
			w.Write([]byte(mustJSON(map[string]any{"issuer": srv.URL + "/tenant", "jwks_uri": srv.URL + "/tenant/keys"})))
		case "/tenant/keys":
			w.Write([]byte(keys))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cfg4 := &config.JWTProvider{BearerCommon: config.BearerCommon{Audiences: []string{testAud}}, Issuer: srv.URL + "/tenant"}
	j4 := newJWTFor(t, "disc4", cfg4, clock)
	c := claims(p, map[string]any{"iss": srv.URL + "/tenant"})
	mustAccept(t, j4, bearerReq(token(t, testKey{"a", "RS256", rsaA}, c)))
}

func TestJWTReadyAndOutage(t *testing.T) {
	keysForTests(t)
	p := newIDP(t, jwk("a", "", rsaA))
	p.down.Store(true)
	clock := newClock()
	j := newJWTFor(t, "api", baseJWTConfig(p), clock)
	tok := token(t, testKey{"a", "RS256", rsaA}, claims(p, nil))
	mustRefuse(t, j, bearerReq(tok), ErrUnavailable)
	if err := j.Ready(); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Ready = %v, want the fetch failure", err)
	}
	// The issuer comes back; within 30s nothing is fetched.
	p.down.Store(false)
	mustRefuse(t, j, bearerReq(tok), ErrUnavailable)
	if n := p.jwksHits.Load(); n != 0 {
		t.Fatalf("%d JWKS fetches while rate-limited", n)
	}
	clock.Advance(MinRefetchInterval)
	waitReady(t, j) // Ready starts the fetch
	mustAccept(t, j, bearerReq(tok))

	// During a later outage the fetched keys keep working.
	p.down.Store(true)
	clock.Advance(2 * time.Hour)
	mustAccept(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p, map[string]any{"exp": clock.Now().Unix() + 60}))))
}

func TestJWTSettings(t *testing.T) {
	keysForTests(t)
	p := newIDP(t, jwk("a", "", rsaA), jwk("e", "", ecA), jwk("small", "", rsa1024))
	clock := newClock()

	// algorithms: [RS256] refuses ES256.
	cfg := baseJWTConfig(p)
	cfg.Algorithms = []string{"RS256"}
	j := newJWTFor(t, "rs-only", cfg, clock)
	mustAccept(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p, nil))))
	mustRefuse(t, j, bearerReq(token(t, testKey{"e", "ES256", ecA}, claims(p, nil))), ErrAlgorithm)
	// A 1024-bit RSA key in the JWKS is never used.
	mustRefuse(t, j, bearerReq(token(t, testKey{"small", "RS256", rsa1024}, claims(p, nil))), ErrUnknownKey)

	// required_claims, subject_claim, scope_claim and a claim mapping.
	cfg = baseJWTConfig(p)
	cfg.RequiredClaims = map[string]config.StringList{"token_use": {"access"}, "tenant": nil, "level": {"2", "3"}}
	cfg.SubjectClaim = "client_id"
	cfg.ScopeClaim = "permissions"
	cfg.Claims = config.BearerClaims{Email: "mail", Groups: "https://corp.example/roles"}
	j = newJWTFor(t, "custom", cfg, clock)
	ok := map[string]any{"token_use": "access", "tenant": "acme", "level": 3, "client_id": "svc-1",
		"permissions": []string{"orders:read"}, "mail": "svc@corp.example", "https://corp.example/roles": []string{"r1"}}
	id := mustAccept(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p, ok))))
	if id.Subject != "svc-1" || !slices.Equal(id.Scopes, []string{"orders:read"}) || id.Email != "svc@corp.example" || !slices.Equal(id.Groups, []string{"r1"}) {
		t.Errorf("identity %+v", id)
	}
	for name, change := range map[string]map[string]any{
		"required claim missing":        {"tenant": nil},
		"required claim null":           {"tenant": json.RawMessage("null")},
		"required claim wrong value":    {"token_use": "id"},
		"required number wrong":         {"level": 4},
		"required claim in a list":      {"token_use": []string{"refresh"}},
		"subject claim missing":         {"client_id": nil},
		"scope claim of the wrong type": {"permissions": map[string]any{}},
	} {
		t.Run(name, func(t *testing.T) {
			c := claims(p, ok)
			for k, v := range change {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
			mustRefuse(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, c)), ErrClaims)
		})
	}
	c := claims(p, ok)
	c["token_use"] = []string{"x", "access"}
	mustAccept(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, c)))

	// max_token_size.
	cfg = baseJWTConfig(p)
	cfg.MaxTokenSize = 300
	j = newJWTFor(t, "small", cfg, clock)
	mustRefuse(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p, nil))), ErrTooLarge)

	// Constructor refusals.
	for name, mod := range map[string]func(*config.JWTProvider){
		"HS256":        func(c *config.JWTProvider) { c.Algorithms = []string{"HS256"} },
		"none":         func(c *config.JWTProvider) { c.Algorithms = []string{"none"} },
		"no issuer":    func(c *config.JWTProvider) { c.Issuer = "" },
		"no audiences": func(c *config.JWTProvider) { c.Audiences = nil },
		"plain http":   func(c *config.JWTProvider) { c.JWKSURL = "http://keys.example.com/jwks" },
	} {
		c := baseJWTConfig(p)
		mod(c)
		if _, err := NewJWT("x", c, Env{}); err == nil {
			t.Errorf("NewJWT with %s: no error", name)
		}
	}
}

// The verified-token cache: a repeated token is verified once, an entry
// never outlives the token's exp, and a result is never reused by another
// provider (another audience check).
func TestJWTCache(t *testing.T) {
	keysForTests(t)
	p := newIDP(t, jwk("a", "", rsaA))
	clock := newClock()
	cfg := baseJWTConfig(p)
	cfg.ClockSkew = config.Duration(time.Nanosecond)
	j := newJWTFor(t, "api", cfg, clock)
	k := testKey{"a", "RS256", rsaA}

	tok := token(t, k, claims(p, map[string]any{"exp": t0.Unix() + 10}))
	for range 5 {
		id := mustAccept(t, j, bearerReq(tok))
		id.Subject = "mutated" // a caller changing its copy must not change the cache
		id.Audience = ""
	}
	if n := j.verified.Load(); n != 1 {
		t.Fatalf("%d verifications for one token, want 1", n)
	}
	if id := mustAccept(t, j, bearerReq(tok)); id.Subject != "client-42" || id.Audience != identity.API {
		t.Fatalf("cached identity was mutated: %+v", id)
	}
	clock.Advance(9 * time.Second)
	mustAccept(t, j, bearerReq(tok))
	clock.Advance(time.Second + time.Millisecond) // past exp (and the 1ns skew)
	mustRefuse(t, j, bearerReq(tok), ErrExpired)
	if n := j.verified.Load(); n != 2 {
		t.Fatalf("%d verifications, want 2 (the cache must not serve an expired token)", n)
	}

	// Same issuer and keys, another provider accepting another audience:
	// the token cached by the first is refused by the second.
	cfgB := baseJWTConfig(p)
	cfgB.Audiences = []string{"billing"}
	jb := newJWTFor(t, "billing", cfgB, clock)
	tok2 := token(t, k, claims(p, map[string]any{"exp": clock.Now().Unix() + 600}))
	mustAccept(t, j, bearerReq(tok2))
	mustRefuse(t, jb, bearerReq(tok2), ErrAudience)
	if j.cache.key(tok2) == jb.cache.key(tok2) {
		t.Error("two providers hash a token to the same cache key")
	}
	// Even two providers of the same name (a reload) do not share keys.
	j2 := newJWTFor(t, "api", cfg, clock)
	if j.cache.key(tok2) == j2.cache.key(tok2) {
		t.Error("cache keys are predictable across instances")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache("p", 64)
	id := &identity.Identity{Subject: "s"}
	for i := range 10_000 {
		c.put(c.key(strings.Repeat("x", i%50)+string(rune(i))), id, t0.Add(time.Hour), t0, 1)
	}
	if n := c.len(); n > 64+cacheShards {
		t.Fatalf("cache holds %d entries, bound 64", n)
	}
	k := c.key("tok")
	c.put(k, id, t0.Add(time.Second), t0, 1)
	if c.get(k, t0, 1) == nil {
		t.Fatal("fresh entry missing")
	}
	if c.get(k, t0, 2) != nil {
		t.Fatal("entry of another JWKS generation returned")
	}
	if c.get(k, t0.Add(time.Second), 1) != nil {
		t.Fatal("entry returned at its expiry")
	}
	c.put(c.key("old"), id, t0, t0, 1)
	if c.get(c.key("old"), t0.Add(-time.Second), 1) != nil {
		t.Fatal("an entry already expired when stored was kept")
	}
}

func TestJWTConcurrent(t *testing.T) {
	p, j, _ := jwtSetup(t)
	toks := []string{token(t, kRS, claims(p, nil)), token(t, kES, claims(p, nil)), token(t, kED, claims(p, map[string]any{"sub": "x"}))}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 200 {
				id, err := j.Authenticate(context.Background(), bearerReq(toks[(i+n)%len(toks)]))
				if err != nil || id == nil {
					t.Errorf("concurrent: %v", err)
					return
				}
				id.Audience = identity.API // as the proxy does, on its own copy
			}
		}()
	}
	wg.Wait()
}
