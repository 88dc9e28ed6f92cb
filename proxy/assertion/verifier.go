package assertion

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// verifyKey is one public key of a Verifier.
type verifyKey struct {
	alg string
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

// Verifier checks assertions against a JSON Web Key Set, for an upstream
// application behind Gatehouse (or a test). It is safe for concurrent use.
type Verifier struct {
	issuer string
	now    func() time.Time
	keys   map[string]verifyKey
}

// NewVerifier returns a Verifier for the JWKS document jwksDoc (as served
// at JWKSPath) that accepts only assertions whose iss is exactly issuer.
// now is the clock, time.Now when nil.
//
// Keys of other types (RSA, other curves) are skipped, as are keys whose
// "use" is not "sig"; a P-256 key whose "alg" is set must say ES256 and an
// Ed25519 key EdDSA. A key without kid gets its RFC 7638 thumbprint as kid,
// as Signer does. It is an error if issuer is empty, the document does not
// parse, a coordinate is invalid or not on the curve, two keys share a kid,
// or no usable key remains.
//
// The document is read once: to follow a rotation, build a new Verifier
// from a fresh copy of the document.
func NewVerifier(jwksDoc []byte, issuer string, now func() time.Time) (*Verifier, error) {
	if issuer == "" {
		return nil, errors.New("assertion: NewVerifier needs an issuer")
	}
	if now == nil {
		now = time.Now
	}
	var doc jwks
	if err := json.Unmarshal(jwksDoc, &doc); err != nil {
		return nil, fmt.Errorf("assertion: parsing JWKS: %w", err)
	}
	v := &Verifier{issuer: issuer, now: now, keys: make(map[string]verifyKey, len(doc.Keys))}
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var vk verifyKey
		switch {
		case k.Kty == "EC" && k.Crv == "P-256":
			if k.Alg != "" && k.Alg != algES256 {
				return nil, fmt.Errorf("assertion: JWKS key %d: P-256 key with alg %q", i, k.Alg)
			}
			x, errX := b64strict.DecodeString(k.X)
			y, errY := b64strict.DecodeString(k.Y)
			if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("assertion: JWKS key %d: P-256 coordinates must be 32 bytes of base64url", i)
			}
			point := make([]byte, 0, 65)
			point = append(append(append(point, 4), x...), y...)
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
			if err != nil {
				return nil, fmt.Errorf("assertion: JWKS key %d: %v", i, err)
			}
			vk = verifyKey{alg: algES256, ec: pub}
		case k.Kty == "OKP" && k.Crv == "Ed25519":
			if k.Alg != "" && k.Alg != algEdDSA {
				return nil, fmt.Errorf("assertion: JWKS key %d: Ed25519 key with alg %q", i, k.Alg)
			}
			x, err := b64strict.DecodeString(k.X)
			if err != nil || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("assertion: JWKS key %d: Ed25519 x must be 32 bytes of base64url", i)
			}
			vk = verifyKey{alg: algEdDSA, ed: ed25519.PublicKey(x)}
		default:
			continue
		}
		kid := k.Kid
		if kid == "" {
			kid = k.thumbprint()
		}
		if _, dup := v.keys[kid]; dup {
			return nil, fmt.Errorf("assertion: JWKS has two keys with kid %q", kid)
		}
		v.keys[kid] = vk
	}
	if len(v.keys) == 0 {
		return nil, errors.New("assertion: JWKS has no usable P-256 or Ed25519 signing key")
	}
	return v, nil
}

// Verify checks token and returns its claims. It accepts the token only if
// all of these hold:
//
//   - it is at most MaxTokenSize bytes and has exactly three dot-separated
//     segments of unpadded base64url;
//   - the header is a JSON object without duplicate members or "crit",
//     whose typ, if present, is JWT, whose kid names a key of the JWKS, and
//     whose alg is ES256 for a P-256 key or EdDSA for an Ed25519 key ("none",
//     HS256 and everything else are refused); keys embedded in or pointed
//     to by the header (jwk, jku, x5c, x5u) are ignored;
//   - the signature verifies (for ES256, a 64-byte r||s);
//   - the payload is a JSON object without duplicate members and with
//     correctly typed claims;
//   - iss equals the Verifier's issuer and aud, a single string, equals
//     audience, which must not be empty;
//   - exp is present and now is before exp plus Leeway, and neither nbf nor
//     iat is after now plus Leeway.
//
// Errors wrap one of ErrMalformed, ErrTooLarge, ErrAlgorithm, ErrUnknownKey,
// ErrSignature, ErrIssuer, ErrAudience, ErrExpired or ErrNotYetValid.
func (v *Verifier) Verify(token, audience string) (*Claims, error) {
	if audience == "" {
		return nil, fmt.Errorf("%w: no audience to check against", ErrAudience)
	}
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(token))
	}
	if strings.Count(token, ".") != 2 {
		return nil, fmt.Errorf("%w: want 3 segments", ErrMalformed)
	}
	dot1 := strings.IndexByte(token, '.')
	dot2 := strings.LastIndexByte(token, '.')
	hdrSeg, payloadSeg, sigSeg := token[:dot1], token[dot1+1:dot2], token[dot2+1:]

	hdrJSON, err := b64strict.DecodeString(hdrSeg)
	if err != nil {
		return nil, fmt.Errorf("%w: header encoding: %v", ErrMalformed, err)
	}
	hdr, err := decodeObject(hdrJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if _, ok := hdr["crit"]; ok {
		return nil, fmt.Errorf("%w: header has crit", ErrMalformed)
	}
	if typ, ok, err := memberString(hdr, "typ"); err != nil || (ok && !strings.EqualFold(typ, "JWT")) {
		return nil, fmt.Errorf("%w: header typ is not JWT", ErrMalformed)
	}
	alg, _, err := memberString(hdr, "alg")
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if alg != algES256 && alg != algEdDSA {
		return nil, fmt.Errorf("%w: %q", ErrAlgorithm, alg)
	}
	kid, ok, err := memberString(hdr, "kid")
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: header has no kid", ErrUnknownKey)
	}
	key, ok := v.keys[kid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
	}
	if alg != key.alg {
		return nil, fmt.Errorf("%w: %s token for a %s key", ErrAlgorithm, alg, key.alg)
	}

	sig, err := b64strict.DecodeString(sigSeg)
	if err != nil {
		return nil, fmt.Errorf("%w: signature encoding: %v", ErrMalformed, err)
	}
	signed := token[:dot2]
	switch alg {
	case algES256:
		if len(sig) != 64 {
			return nil, fmt.Errorf("%w: ES256 signature of %d bytes", ErrSignature, len(sig))
		}
		digest := sha256.Sum256([]byte(signed))
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(key.ec, digest[:], r, s) {
			return nil, ErrSignature
		}
	case algEdDSA:
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(key.ed, []byte(signed), sig) {
			return nil, ErrSignature
		}
	}

	payloadJSON, err := b64strict.DecodeString(payloadSeg)
	if err != nil {
		return nil, fmt.Errorf("%w: payload encoding: %v", ErrMalformed, err)
	}
	members, err := decodeObject(payloadJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	c, err := parseClaims(members)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c.Issuer != v.issuer {
		return nil, fmt.Errorf("%w: %q", ErrIssuer, c.Issuer)
	}
	if c.Audience != audience {
		return nil, fmt.Errorf("%w: %q", ErrAudience, c.Audience)
	}
	now := v.now()
	if c.Expiry.IsZero() {
		return nil, fmt.Errorf("%w: no exp", ErrMalformed)
	}
	if !now.Before(c.Expiry.Add(Leeway)) {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(Leeway)) {
		return nil, fmt.Errorf("%w: nbf %s", ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(Leeway)) {
		return nil, fmt.Errorf("%w: iat %s", ErrNotYetValid, c.IssuedAt.UTC().Format(time.RFC3339))
	}
	return c, nil
}
