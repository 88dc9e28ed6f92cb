package oidc

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-dev/gatehouse/config"
)

// fuzzProvider is a provider whose discovery is done by hand: issuer
// https://op.example.com, client "c", keys held in memory.
func fuzzProvider(t testing.TB) (*Provider, *discovered, *testKey) {
	c := &config.OIDCProvider{Issuer: "https://op.example.com"}
	c.ClientID = "c"
	p, err := New("corp", c, Env{})
	if err != nil {
		t.Fatal(err)
	}
	k := &testKey{kid: "k1", alg: "RS256", priv: rsaKey(t, 0)}
	keys := &gooidc.StaticKeySet{PublicKeys: []crypto.PublicKey{k.priv.Public()}}
	v := gooidc.NewVerifier(c.Issuer, keys, &gooidc.Config{ClientID: "c", SupportedSigningAlgs: DefaultAlgorithms})
	return p, &discovered{issuer: c.Issuer, verifier: v}, k
}

// FuzzOIDCVerifyIDToken feeds arbitrary ID tokens to the verifier: it
// must never panic, and whatever it accepts is signed by the provider's
// key for this client and issuer, with a subject.
func FuzzOIDCVerifyIDToken(f *testing.F) {
	p, d, k := fuzzProvider(f)
	now := time.Now()
	good := signJWT(f, k, "RS256", nil, map[string]any{"iss": "https://op.example.com", "aud": "c", "sub": "s", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nonce": "n"})
	f.Add(good)
	f.Add(signJWT(f, k, "none", nil, map[string]any{"iss": "https://op.example.com", "aud": "c", "sub": "s", "exp": now.Add(time.Hour).Unix()}))
	f.Add(signJWT(f, k, "HS256", publicKeyDER(f, k), map[string]any{"iss": "https://op.example.com", "aud": "c", "sub": "s", "exp": now.Add(time.Hour).Unix()}))
	f.Add("a.b.c")
	f.Add("")
	f.Add(strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, raw string) {
		tok, claims, err := p.verifyIDToken(context.Background(), d, raw)
		if err != nil {
			return
		}
		if tok.Issuer != "https://op.example.com" || tok.Subject == "" || claims["sub"] != tok.Subject {
			t.Fatalf("accepted %q: iss %q sub %q", raw, tok.Issuer, tok.Subject)
		}
	})
}

// FuzzOIDCClaims maps arbitrary claim sets to identities: never a panic,
// never a verified email without an email.
func FuzzOIDCClaims(f *testing.F) {
	p, _, _ := fuzzProvider(f)
	p.s.claims.Extra = []string{"tenant", "a.b"}
	p.s.claims.Groups = "realm_access.roles"
	f.Add([]byte(`{"sub":"s","email":"a@example.com","email_verified":true,"groups":["x"],"amr":"pwd","auth_time":1700000000}`))
	f.Add([]byte(`{"email_verified":"true","realm_access":{"roles":["r",1,null]},"tenant":{"x":[1,2]},"a":{"b":1e400}}`))
	f.Add([]byte(`{"auth_time":-1,"amr":[null],"acr":5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&c) != nil {
			return
		}
		id := p.identity("https://op.example.com", "s", c)
		if id.EmailVerified && id.Email == "" {
			t.Fatal("verified without an email")
		}
		if id.Subject != "s" || id.Issuer != "https://op.example.com" {
			t.Fatal("identity not keyed on iss and sub")
		}
	})
}
