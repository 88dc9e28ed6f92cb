package assertion

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	ec, ed := newECKey(t), newEdKey(t)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		alg  string
	}{
		{"ES256", ec, "ES256"},
		{"EdDSA", ed, "EdDSA"},
		{"ES256/opaque", opaque{ec}, "ES256"},
		{"EdDSA/opaque", opaque{ed}, "EdDSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock(t0)
			s := newSigner(t, clock, Key{ID: "k1", Signer: tc.key})
			v := newVerifier(t, s, clock)

			in := fullClaims()
			in.IssuedAt = time.Unix(1, 0) // ignored by Sign
			in.ID = "caller-chosen"       // ignored by Sign
			tok, exp, err := s.Sign(in)
			if err != nil {
				t.Fatal(err)
			}
			hdr, _, sig := parts(t, tok)
			if want := map[string]any{"alg": tc.alg, "kid": "k1", "typ": "JWT"}; !reflect.DeepEqual(hdr, want) {
				t.Errorf("header = %v, want %v", hdr, want)
			}
			if len(sig) != 64 {
				t.Errorf("signature is %d bytes, want 64", len(sig))
			}
			// exp rounds up to whole seconds, so the token lives at least the TTL.
			if want := time.Unix(t0.Add(DefaultTTL).Unix()+1, 0); !exp.Equal(want) {
				t.Errorf("exp = %v, want %v", exp, want)
			}

			got, err := v.Verify(tok, "wiki")
			if err != nil {
				t.Fatal(err)
			}
			if len(got.ID) != 22 || got.ID == "caller-chosen" {
				t.Errorf("jti = %q, want 22 random base64url characters", got.ID)
			}
			want := fullClaims()
			want.IssuedAt = time.Unix(t0.Unix(), 0)
			want.NotBefore = want.IssuedAt
			want.Expiry = exp
			want.ID = got.ID
			want.AuthTime = time.Unix(want.AuthTime.Unix(), 0)
			if !reflect.DeepEqual(got, &want) {
				t.Errorf("claims differ:\n got %+v\nwant %+v", got, &want)
			}

			tok2, _, err := s.Sign(in)
			if err != nil {
				t.Fatal(err)
			}
			got2, err := v.Verify(tok2, "wiki")
			if err != nil {
				t.Fatal(err)
			}
			if got2.ID == got.ID {
				t.Error("two signatures share a jti")
			}
		})
	}
}

// TestES256Independent checks the ES256 encoding without the package's own
// verifier: the signature is raw r||s over SHA-256 of the signing input,
// and the JWKS coordinates and kid describe the signing key.
func TestES256Independent(t *testing.T) {
	key := newECKey(t)
	s := newSigner(t, nil, Key{Signer: key})
	tok, _, err := s.Sign(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	_, _, sig := parts(t, tok)
	if len(sig) != 64 {
		t.Fatalf("signature is %d bytes, want 64 (raw r||s, not DER)", len(sig))
	}
	digest := sha256.Sum256([]byte(tok[:strings.LastIndexByte(tok, '.')]))
	r, sv := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&key.PublicKey, digest[:], r, sv) {
		t.Fatal("ecdsa.Verify refuses the r||s signature")
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{r, sv})
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], der) {
		t.Fatal("ecdsa.VerifyASN1 refuses the signature converted to DER")
	}

	var doc struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(s.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(doc.Keys))
	}
	k := doc.Keys[0]
	for member, want := range map[string]string{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256"} {
		if k[member] != want {
			t.Errorf("JWK %s = %q, want %q", member, k[member], want)
		}
	}
	x, errX := base64.RawURLEncoding.DecodeString(k["x"])
	y, errY := base64.RawURLEncoding.DecodeString(k["y"])
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		t.Fatalf("x, y = %q, %q", k["x"], k["y"])
	}
	if new(big.Int).SetBytes(x).Cmp(key.X) != 0 || new(big.Int).SetBytes(y).Cmp(key.Y) != 0 {
		t.Error("JWKS coordinates differ from the key's")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("JWKS coordinates do not rebuild the public key: %v", err)
	}

	// RFC 7638: SHA-256 over the required members in lexicographic order.
	canon, _ := json.Marshal(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
		Y   string `json:"y"`
	}{"P-256", "EC", k["x"], k["y"]})
	sum := sha256.Sum256(canon)
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); k["kid"] != want || s.KeyID() != want {
		t.Errorf("kid = %q (KeyID %q), want thumbprint %q", k["kid"], s.KeyID(), want)
	}
	hdr, _, _ := parts(t, tok)
	if hdr["kid"] != k["kid"] {
		t.Errorf("token kid %v, JWKS kid %q", hdr["kid"], k["kid"])
	}
}

// TestEdDSAVectors checks RFC 8037 appendix A: the thumbprint of the
// example key (A.3) and the deterministic signature of the example JWS (A.4).
func TestEdDSAVectors(t *testing.T) {
	seed, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	if got := base64.RawURLEncoding.EncodeToString(pub); got != "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" {
		t.Fatalf("x = %s", got)
	}
	tp, err := Thumbprint(pub)
	if err != nil || tp != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Errorf("Thumbprint = %q, %v", tp, err)
	}
	const input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
	const want = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
	for _, signer := range []crypto.Signer{key, opaque{key}} {
		s := newSigner(t, nil, Key{Signer: signer})
		sig, err := s.keys[0].sign([]byte(input))
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.RawURLEncoding.EncodeToString(sig); got != want {
			t.Errorf("%T: signature = %s, want %s", signer, got, want)
		}
	}
	s := newSigner(t, nil, Key{Signer: key})
	var doc map[string][]map[string]string
	if err := json.Unmarshal(s.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	want2 := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
		"kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "use": "sig", "alg": "EdDSA"}
	if !reflect.DeepEqual(doc["keys"], []map[string]string{want2}) {
		t.Errorf("JWKS = %s", s.JWKS())
	}
}

func TestVerifyRefuses(t *testing.T) {
	ec, ed := newECKey(t), newEdKey(t)
	clock := newClock(t0)
	s := newSigner(t, clock, Key{ID: "ec", Signer: ec}, Key{ID: "ed", Signer: ed})
	v := newVerifier(t, s, clock)
	good, exp, err := s.Sign(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(good, "wiki"); err != nil {
		t.Fatalf("baseline token refused: %v", err)
	}
	p := strings.Split(good, ".")
	hdrEC := `{"alg":"ES256","kid":"ec","typ":"JWT"}`
	payload := mustJSON(t, payloadMap(t0))
	withPayload := func(edit func(map[string]any)) string {
		m := payloadMap(t0)
		edit(m)
		return signRaw(t, ec, hdrEC, mustJSON(t, m))
	}

	// HS256 forged with public material as the HMAC secret, the classic
	// algorithm-confusion attack.
	point, _ := ec.PublicKey.Bytes()
	var hsTokens []string
	for _, secret := range [][]byte{s.JWKS(), point, point[1:33]} {
		input := seg(`{"alg":"HS256","kid":"ec","typ":"JWT"}`) + "." + seg(payload)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		hsTokens = append(hsTokens, input+"."+base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
	}

	// The same signature with non-zero trailing bits: a second encoding of
	// the same bytes.
	last := p[2][len(p[2])-1]
	idx := strings.IndexByte(b64alphabet, last)
	malleable := p[0] + "." + p[1] + "." + p[2][:len(p[2])-1] + string(b64alphabet[idx|1])

	tampered := func() string {
		_, m, _ := parts(t, good)
		m["sub"] = "someone-else"
		return p[0] + "." + seg(mustJSON(t, m)) + "." + p[2]
	}()

	huge := withPayload(func(m map[string]any) { m["pad"] = strings.Repeat("x", MaxTokenSize) })

	derSig := func() string {
		_, _, sig := parts(t, good)
		der, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
		return p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(der)
	}()

	cases := []struct {
		name     string
		token    string
		audience string
		want     error
	}{
		{"tampered payload", tampered, "wiki", ErrSignature},
		{"signature from another token", p[0] + "." + p[1] + "." + strings.Split(signRaw(t, ec, hdrEC, payload), ".")[2], "wiki", ErrSignature},
		{"DER signature", derSig, "wiki", ErrSignature},
		{"truncated signature", p[0] + "." + p[1] + "." + p[2][:40], "wiki", ErrSignature},
		{"wrong kid", signRaw(t, ec, `{"alg":"ES256","kid":"other","typ":"JWT"}`, payload), "wiki", ErrUnknownKey},
		{"no kid", signRaw(t, ec, `{"alg":"ES256","typ":"JWT"}`, payload), "wiki", ErrUnknownKey},
		{"wrong aud", good, "admin", ErrAudience},
		{"aud prefix", good, "wik", ErrAudience},
		{"empty expected aud", good, "", ErrAudience},
		{"missing aud", withPayload(func(m map[string]any) { delete(m, "aud") }), "wiki", ErrAudience},
		{"aud array", withPayload(func(m map[string]any) { m["aud"] = []string{"wiki"} }), "wiki", ErrMalformed},
		{"wrong iss", withPayload(func(m map[string]any) { m["iss"] = "https://evil.example.com" }), "wiki", ErrIssuer},
		{"alg none", seg(`{"alg":"none","kid":"ec","typ":"JWT"}`) + "." + seg(payload) + ".", "wiki", ErrAlgorithm},
		{"alg None", seg(`{"alg":"None","kid":"ec"}`) + "." + seg(payload) + ".", "wiki", ErrAlgorithm},
		{"alg HS256 (JWKS secret)", hsTokens[0], "wiki", ErrAlgorithm},
		{"alg HS256 (point secret)", hsTokens[1], "wiki", ErrAlgorithm},
		{"alg HS256 (x secret)", hsTokens[2], "wiki", ErrAlgorithm},
		{"alg ES384", signRaw(t, ec, `{"alg":"ES384","kid":"ec"}`, payload), "wiki", ErrAlgorithm},
		{"alg missing", signRaw(t, ec, `{"kid":"ec"}`, payload), "wiki", ErrAlgorithm},
		{"alg/key mismatch EdDSA on EC", signRaw(t, ec, `{"alg":"EdDSA","kid":"ec"}`, payload), "wiki", ErrAlgorithm},
		{"alg/key mismatch ES256 on Ed25519", signRaw(t, ed, `{"alg":"ES256","kid":"ed"}`, payload), "wiki", ErrAlgorithm},
		{"4 segments", good + ".e30", "wiki", ErrMalformed},
		{"2 segments", p[0] + "." + p[1], "wiki", ErrMalformed},
		{"empty", "", "wiki", ErrMalformed},
		{"oversized", huge, "wiki", ErrTooLarge},
		{"padded signature", good + "==", "wiki", ErrMalformed},
		{"non-canonical base64", malleable, "wiki", ErrMalformed},
		{"standard base64 alphabet", p[0] + "." + p[1] + "." + p[2][:10] + "+" + p[2][11:], "wiki", ErrMalformed},
		{"header not JSON", seg("nope") + "." + p[1] + "." + p[2], "wiki", ErrMalformed},
		{"header duplicate alg", signRaw(t, ec, `{"alg":"ES256","alg":"none","kid":"ec"}`, payload), "wiki", ErrMalformed},
		{"header crit", signRaw(t, ec, `{"alg":"ES256","kid":"ec","crit":["exp"],"exp":1}`, payload), "wiki", ErrMalformed},
		{"header typ", signRaw(t, ec, `{"alg":"ES256","kid":"ec","typ":"at+jwt"}`, payload), "wiki", ErrMalformed},
		{"payload not object", signRaw(t, ec, hdrEC, `["wiki"]`), "wiki", ErrMalformed},
		{"payload trailing data", signRaw(t, ec, hdrEC, payload+"{}"), "wiki", ErrMalformed},
		{"payload duplicate aud", signRaw(t, ec, hdrEC, strings.Replace(payload, `"aud":"wiki"`, `"aud":"wiki","aud":"admin"`, 1)), "admin", ErrMalformed},
		{"sub null", withPayload(func(m map[string]any) { m["sub"] = nil }), "wiki", ErrMalformed},
		{"groups not strings", withPayload(func(m map[string]any) { m["groups"] = []any{"a", 1} }), "wiki", ErrMalformed},
		{"exp string", withPayload(func(m map[string]any) { m["exp"] = "2100-01-01" }), "wiki", ErrMalformed},
		{"exp missing", withPayload(func(m map[string]any) { delete(m, "exp") }), "wiki", ErrMalformed},
		{"exp huge", withPayload(func(m map[string]any) { m["exp"] = 1e300 }), "wiki", ErrMalformed},
		{"expired", withPayload(func(m map[string]any) { m["exp"] = t0.Add(-Leeway - time.Second).Unix() }), "wiki", ErrExpired},
		{"nbf future", withPayload(func(m map[string]any) { m["nbf"] = t0.Add(Leeway + 2*time.Second).Unix() }), "wiki", ErrNotYetValid},
		{"iat future", withPayload(func(m map[string]any) { m["iat"] = t0.Add(Leeway + 2*time.Second).Unix() }), "wiki", ErrNotYetValid},
		{"expired within leeway", withPayload(func(m map[string]any) { m["exp"] = t0.Add(-Leeway + 2*time.Second).Unix() }), "wiki", nil},
		{"nbf within leeway", withPayload(func(m map[string]any) { m["nbf"] = t0.Add(Leeway - 2*time.Second).Unix() }), "wiki", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.token, tc.audience)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want %v", c, err, tc.want)
			}
			if c != nil {
				t.Fatal("claims returned with an error")
			}
		})
	}

	// Expiry and nbf of a real token against a moving clock.
	clock.Set(exp.Add(Leeway - time.Second))
	if _, err := v.Verify(good, "wiki"); err != nil {
		t.Errorf("token refused within leeway after exp: %v", err)
	}
	clock.Set(exp.Add(Leeway))
	if _, err := v.Verify(good, "wiki"); !errors.Is(err, ErrExpired) {
		t.Errorf("token at exp+leeway: %v, want ErrExpired", err)
	}
	clock.Set(t0.Add(-Leeway + time.Second))
	if _, err := v.Verify(good, "wiki"); err != nil {
		t.Errorf("token refused within leeway before nbf: %v", err)
	}
	clock.Set(t0.Add(-Leeway - 2*time.Second))
	if _, err := v.Verify(good, "wiki"); !errors.Is(err, ErrNotYetValid) {
		t.Errorf("token before nbf-leeway: %v, want ErrNotYetValid", err)
	}
}

const b64alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestRotation(t *testing.T) {
	k1, k2 := newEdKey(t), newECKey(t)
	clock := newClock(t0)
	old := newSigner(t, clock, Key{ID: "k1", Signer: k1})
	rotated := newSigner(t, clock, Key{ID: "k2", Signer: k2}, Key{ID: "k1", Signer: k1})

	var doc map[string][]map[string]string
	if err := json.Unmarshal(rotated.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc["keys"]) != 2 || doc["keys"][0]["kid"] != "k2" || doc["keys"][1]["kid"] != "k1" {
		t.Fatalf("rotated JWKS = %s", rotated.JWKS())
	}
	v := newVerifier(t, rotated, clock)
	oldTok, _, err := old.Sign(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(oldTok, "wiki"); err != nil {
		t.Errorf("token of the old signer refused after rotation: %v", err)
	}
	newTok, _, err := rotated.Sign(fullClaims())
	if err != nil {
		t.Fatal(err)
	}
	if hdr, _, _ := parts(t, newTok); hdr["kid"] != "k2" || hdr["alg"] != "ES256" {
		t.Errorf("rotated signer header = %v, want kid k2", hdr)
	}
	if _, err := v.Verify(newTok, "wiki"); err != nil {
		t.Errorf("token of the rotated signer refused: %v", err)
	}
	// A verifier that only knows the old JWKS does not know k2.
	if _, err := newVerifier(t, old, clock).Verify(newTok, "wiki"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old verifier on new token: %v, want ErrUnknownKey", err)
	}
	if rotated.KeyID() != "k2" {
		t.Errorf("KeyID = %q", rotated.KeyID())
	}
}

func TestClaimsEncoding(t *testing.T) {
	s := newSigner(t, newClock(t0), Key{Signer: newEdKey(t)})
	minimal, _, err := s.Sign(Claims{Issuer: testIssuer, Audience: "wiki"})
	if err != nil {
		t.Fatal(err)
	}
	_, m, _ := parts(t, minimal)
	if len(m) != 6 || m["iss"] != testIssuer || m["aud"] != "wiki" || m["iat"] != m["nbf"] || m["jti"] == nil || m["exp"] == nil {
		t.Errorf("minimal payload = %v", m)
	}

	c := fullClaims()
	c.EmailVerified = false
	c.Scopes = []string{"read", "", "two words", `quo"te`, "tab\t", "write", "ünï"}
	c.Extra = map[string]string{
		"sub": "admin", "aud": "admin", "exp": "9999999999", "gh_aud": "workforce", "gh_anything": "x",
		"scope": "admin", "scp": "admin", "azp": "x", "": "empty", "team": "blue", "é\"\n": "ok",
		"Sub": "admin", "\u017fub": "admin", "EMAIL": "x", "GH_AUD": "x", "Gh_prov": "x",
	}
	tok, _, err := s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	_, m, _ = parts(t, tok)
	if m["sub"] != c.Subject || m["aud"] != "wiki" || m["gh_aud"] != "workforce" {
		t.Errorf("Extra overrode a registered claim: %v", m)
	}
	if _, ok := m["email_verified"]; ok {
		t.Error("email_verified false was emitted")
	}
	if m["scope"] != "read write" {
		t.Errorf("scope = %q, want invalid scope-tokens dropped", m["scope"])
	}
	for _, name := range []string{"gh_anything", "scp", "azp", "", "Sub", "\u017fub", "EMAIL", "GH_AUD", "Gh_prov"} {
		if _, ok := m[name]; ok {
			t.Errorf("reserved Extra %q emitted", name)
		}
	}
	if m["team"] != "blue" || m["é\"\n"] != "ok" {
		t.Errorf("unreserved Extra missing: %v", m)
	}
	// A case-insensitive decoder, like encoding/json into a struct, still
	// sees the real subject.
	var folded struct{ Sub, Email string }
	_, payload, _ := strings.Cut(tok, ".")
	payload, _, _ = strings.Cut(payload, ".")
	if raw, err := base64.RawURLEncoding.DecodeString(payload); err != nil || json.Unmarshal(raw, &folded) != nil ||
		folded.Sub != c.Subject || folded.Email != c.Email {
		t.Errorf("case-folding decoder sees sub %q, email %q", folded.Sub, folded.Email)
	}
	if arr, ok := m["groups"].([]any); !ok || len(arr) != 2 {
		t.Errorf("groups = %#v", m["groups"])
	}

	// Only invalid scopes: no scope claim at all.
	c.Scopes = []string{"", " "}
	tok, _, err = s.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, m, _ = parts(t, tok); m["scope"] != nil {
		t.Errorf("scope = %v, want none", m["scope"])
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `"quoted" \ back`, "ctl\x00\x01\x1f\x7f", "nl\n\r\t", "ünïcødé 😀", "\u2028\u2029", "<script>&"} {
		out := appendString(nil, s)
		if !json.Valid(out) {
			t.Errorf("%q: invalid JSON %s", s, out)
			continue
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil || back != s {
			t.Errorf("%q: round trip gave %q, %v", s, back, err)
		}
	}
	var back string
	if err := json.Unmarshal(appendString(nil, "bad\xffutf8"), &back); err != nil || back != "bad\ufffdutf8" {
		t.Errorf("invalid UTF-8: %q, %v", back, err)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\xff", "\u2028", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString(nil, s)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatal(err)
		}
		// Converting to []rune turns each invalid byte into U+FFFD, which is
		// what appendString does.
		if want := string([]rune(s)); back != want {
			t.Fatalf("round trip %q -> %q, want %q", s, back, want)
		}
	})
}

func FuzzVerify(f *testing.F) {
	key := newEdKey(f)
	clock := newClock(t0)
	s := newSigner(f, clock, Key{ID: "k", Signer: key})
	v := newVerifier(f, s, clock)
	tok, _, err := s.Sign(fullClaims())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("a.b.c")
	f.Add(seg(`{"alg":"none"}`) + "." + seg(`{}`) + ".")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.Verify(token, "wiki")
		if (c == nil) == (err == nil) {
			t.Fatalf("Verify = %v, %v", c, err)
		}
		if err == nil && token != tok {
			// Any other accepted token must still carry a valid signature,
			// which the fuzzer cannot forge; reaching here means a bug.
			t.Fatalf("accepted a token the signer never issued: %q", token)
		}
	})
}

func TestNewVerifier(t *testing.T) {
	ec := newECKey(t)
	s := newSigner(t, nil, Key{ID: "ec", Signer: ec})
	var doc map[string][]map[string]string
	json.Unmarshal(s.JWKS(), &doc)
	k := doc["keys"][0]
	build := func(keys ...map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	with := func(edit func(map[string]string)) map[string]string {
		c := make(map[string]string)
		for n, v := range k {
			c[n] = v
		}
		edit(c)
		return c
	}
	rsaJWK := map[string]string{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}
	offCurve := with(func(m map[string]string) {
		y, _ := base64.RawURLEncoding.DecodeString(m["y"])
		y[31] ^= 1
		m["y"] = base64.RawURLEncoding.EncodeToString(y)
	})
	for _, tc := range []struct {
		name   string
		doc    []byte
		issuer string
		ok     bool
	}{
		{"good", s.JWKS(), testIssuer, true},
		{"RSA key skipped", build(rsaJWK, k), testIssuer, true},
		{"enc key skipped", build(with(func(m map[string]string) { m["use"] = "enc" }), k), testIssuer, true},
		{"only enc key", build(with(func(m map[string]string) { m["use"] = "enc" })), testIssuer, false},
		{"only RSA", build(rsaJWK), testIssuer, false},
		{"empty issuer", s.JWKS(), "", false},
		{"not JSON", []byte("{"), testIssuer, false},
		{"off-curve point", build(offCurve), testIssuer, false},
		{"short x", build(with(func(m map[string]string) { m["x"] = m["x"][:40] })), testIssuer, false},
		{"wrong alg", build(with(func(m map[string]string) { m["alg"] = "ES384" })), testIssuer, false},
		{"duplicate kid", build(k, k), testIssuer, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.doc, tc.issuer, nil)
			if (err == nil) != tc.ok {
				t.Fatalf("NewVerifier: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// A key listed without kid is known by its thumbprint, as Signer names it.
	tp, _ := Thumbprint(ec.Public())
	v, err := NewVerifier(build(with(func(m map[string]string) { delete(m, "kid"); delete(m, "alg"); delete(m, "use") })), testIssuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := signRaw(t, ec, `{"alg":"ES256","kid":"`+tp+`"}`, mustJSON(t, payloadMap(time.Now())))
	if _, err := v.Verify(tok, "wiki"); err != nil {
		t.Errorf("kid-less JWK not found by thumbprint: %v", err)
	}
}

var rsaKeyOnce = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })

// testRSAKey returns an RSA key, made once: the package must refuse it.
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsaKeyOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewSignerErrors(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey := testRSAKey(t)
	ed := newEdKey(t)
	for _, tc := range []struct {
		name string
		keys []Key
		ttl  time.Duration
	}{
		{"no keys", nil, 0},
		{"nil signer", []Key{{ID: "x"}}, 0},
		{"P-384", []Key{{Signer: p384}}, 0},
		{"RSA", []Key{{Signer: rsaKey}}, 0},
		{"duplicate explicit kid", []Key{{ID: "a", Signer: ed}, {ID: "a", Signer: newEdKey(t)}}, 0},
		{"duplicate derived kid", []Key{{Signer: ed}, {Signer: ed}}, 0},
		{"negative ttl", []Key{{Signer: ed}}, -time.Second},
		{"sub-second ttl", []Key{{Signer: ed}}, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewSigner(tc.keys, tc.ttl, nil); err == nil {
				t.Fatal("NewSigner accepted it")
			}
		})
	}
	s, err := NewSigner([]Key{{Signer: ed}}, 0, nil)
	if err != nil || s.TTL() != DefaultTTL {
		t.Fatalf("default TTL: %v, %v", s, err)
	}
}

func TestSignErrors(t *testing.T) {
	s := newSigner(t, nil, Key{Signer: newECKey(t)})
	if _, _, err := s.Sign(Claims{Audience: "wiki"}); err == nil {
		t.Error("signed without issuer")
	}
	if _, _, err := s.Sign(Claims{Issuer: testIssuer}); err == nil {
		t.Error("signed without audience")
	}
	big := Claims{Issuer: testIssuer, Audience: "wiki", Groups: make([]string, 2000)}
	for i := range big.Groups {
		big.Groups[i] = "group-with-a-longish-name"
	}
	if tok, _, err := s.Sign(big); err == nil {
		t.Errorf("signed a %d-byte token", len(tok))
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	gen, err := GenerateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(gen); block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("GenerateKeyPEM output:\n%s", gen)
	}
	k, err := ParsePrivateKeyPEM(gen)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("generated key is %T", k)
	}

	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	sec1, _ := x509.MarshalECPrivateKey(ec)
	params, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7})
	ed := newEdKey(t)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384PKCS8, _ := x509.MarshalPKCS8PrivateKey(p384)
	p384SEC1, _ := x509.MarshalECPrivateKey(p384)
	rsaKey := testRSAKey(t)
	rsaPKCS8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	x25519DER, _ := x509.MarshalPKCS8PrivateKey(x25519)
	pkix, _ := x509.MarshalPKIXPublicKey(ec.Public())

	for _, tc := range []struct {
		name    string
		in      []byte
		want    crypto.PublicKey // nil: error expected
		errText string
	}{
		{"SEC1", pemOf("EC PRIVATE KEY", sec1), ec.Public(), ""},
		{"openssl ecparam -genkey", append(pemOf("EC PARAMETERS", params), pemOf("EC PRIVATE KEY", sec1)...), ec.Public(), ""},
		{"PKCS8 Ed25519", pemOf("PRIVATE KEY", edDER), ed.Public(), ""},
		{"with certificate block", append(pemOf("CERTIFICATE", []byte{1}), gen...), ec.Public(), ""},
		{"P-384 PKCS8", pemOf("PRIVATE KEY", p384PKCS8), nil, "P-384"},
		{"P-384 SEC1", pemOf("EC PRIVATE KEY", p384SEC1), nil, "P-384"},
		{"RSA PKCS8", pemOf("PRIVATE KEY", rsaPKCS8), nil, "RSA"},
		{"RSA PKCS1", pemOf("RSA PRIVATE KEY", []byte{0}), nil, "RSA"},
		{"encrypted", pemOf("ENCRYPTED PRIVATE KEY", []byte{0}), nil, "encrypted"},
		{"X25519", pemOf("PRIVATE KEY", x25519DER), nil, "X25519"},
		{"public key only", pemOf("PUBLIC KEY", pkix), nil, "no private key"},
		{"not PEM", []byte("hello"), nil, "no PEM"},
		{"two keys", append(gen, pemOf("PRIVATE KEY", edDER)...), nil, "more than one"},
		{"garbage DER", pemOf("PRIVATE KEY", []byte{1, 2, 3}), nil, "PKCS#8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tc.in)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.errText) {
					t.Fatalf("ParsePrivateKeyPEM = %T, %v; want error mentioning %q", k, err, tc.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.want) {
				t.Fatal("wrong key")
			}
		})
	}
}
