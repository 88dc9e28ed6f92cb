package assertion

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testIssuer = "https://gate.example.com"

// t0 is a fixed instant with a fractional second, to exercise rounding.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := new(fakeClock)
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }

// opaque hides the concrete key type, forcing the generic crypto.Signer path.
type opaque struct{ crypto.Signer }

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEdKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSigner(t testing.TB, clock *fakeClock, keys ...Key) *Signer {
	t.Helper()
	var now func() time.Time
	if clock != nil {
		now = clock.Now
	}
	s, err := NewSigner(keys, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, s *Signer, clock *fakeClock) *Verifier {
	t.Helper()
	var now func() time.Time
	if clock != nil {
		now = clock.Now
	}
	v, err := NewVerifier(s.JWKS(), testIssuer, now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fullClaims sets every caller-settable field.
func fullClaims() Claims {
	return Claims{
		Issuer:           testIssuer,
		Subject:          "00u1abcd",
		Audience:         "wiki",
		IdentityAudience: "workforce",
		Provider:         "okta",
		Email:            "ada@example.com",
		EmailVerified:    true,
		Name:             `Ada "the Countess" Lovelace`,
		Groups:           []string{"eng", "admins"},
		Roles:            []string{"editor"},
		Scopes:           []string{"read", "write"},
		AMR:              []string{"pwd", "otp"},
		ACR:              "urn:example:loa:2",
		AuthTime:         t0.Add(-time.Hour).Truncate(time.Second),
		Extra:            map[string]string{"department": "R&D", "tenant": "acme"},
	}
}

func seg(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signRaw builds a token from arbitrary header and payload JSON, signed
// correctly for the key's algorithm, so tests can probe checks that come
// after the signature.
func signRaw(t testing.TB, key crypto.Signer, header, payload string) string {
	t.Helper()
	_, alg, err := publicJWK(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sk := signingKey{alg: alg, signer: key}
	input := seg(header) + "." + seg(payload)
	sig, err := sk.sign([]byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// payloadMap returns a minimal valid payload for a token issued at now, as
// a map the test can edit before signing it with signRaw.
func payloadMap(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"sub": "00u1abcd",
		"aud": "wiki",
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Minute).Unix(),
		"jti": "j1",
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parts splits a token and decodes its header and payload.
func parts(t testing.TB, token string) (header, payload map[string]any, sig []byte) {
	t.Helper()
	p := strings.Split(token, ".")
	if len(p) != 3 {
		t.Fatalf("token has %d segments", len(p))
	}
	dec := func(s string, v any) {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		if v == nil {
			return
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%v in %s", err, b)
		}
	}
	dec(p[0], &header)
	dec(p[1], &payload)
	sig, err := base64.RawURLEncoding.DecodeString(p[2])
	if err != nil {
		t.Fatal(err)
	}
	return header, payload, sig
}
