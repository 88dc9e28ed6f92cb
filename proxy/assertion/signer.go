package assertion

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// signingKey is a Key prepared for signing.
type signingKey struct {
	id     string
	alg    string
	header string // base64url of {"alg":…,"kid":…,"typ":"JWT"}
	signer crypto.Signer
	ed     ed25519.PrivateKey // set for the common case, to skip the interface
}

// sign returns the JWS signature of input: raw r||s (32 bytes each) for
// ES256 per RFC 7518 section 3.4, the 64-byte Ed25519 signature for EdDSA.
func (k *signingKey) sign(input []byte) ([]byte, error) {
	if k.alg == algEdDSA {
		if k.ed != nil {
			return ed25519.Sign(k.ed, input), nil
		}
		sig, err := k.signer.Sign(rand.Reader, input, crypto.Hash(0))
		if err != nil {
			return nil, err
		}
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("Ed25519 signer returned %d bytes", len(sig))
		}
		return sig, nil
	}
	digest := sha256.Sum256(input)
	der, err := k.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return derToRaw(der)
}

// derToRaw converts an ASN.1 DER ECDSA-Sig-Value, as crypto.Signer returns
// it, to the fixed-size r||s form JWS requires.
func derToRaw(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("ECDSA signer returned a malformed signature")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("ECDSA signer returned an out-of-range signature")
	}
	raw := make([]byte, 64)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	return raw, nil
}

// Signer signs assertions with the first of its keys and publishes all of
// them. To rotate, put the new key first and keep the old one listed (and
// so published) until every assertion it signed has expired: one TTL after
// the last gateway instance switched, plus however long upstreams cache the
// JWKS. A Signer is safe for concurrent use.
type Signer struct {
	keys []signingKey
	ttl  time.Duration
	now  func() time.Time
	jwks []byte
}

// NewSigner returns a Signer that signs with keys[0] and publishes all keys
// in its JWKS. Assertions are valid for ttl, which defaults to DefaultTTL
// when zero and is rounded up to whole seconds by the exp claim; a negative
// ttl or one under a second is an error. now is the clock, time.Now when
// nil. Keys must be P-256 or Ed25519, and their IDs (explicit or derived)
// distinct.
func NewSigner(keys []Key, ttl time.Duration, now func() time.Time) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("assertion: NewSigner needs at least one key")
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("assertion: assertion TTL %v is under one second", ttl)
	}
	if now == nil {
		now = time.Now
	}
	s := &Signer{ttl: ttl, now: now, keys: make([]signingKey, 0, len(keys))}
	doc := jwks{Keys: make([]jwk, 0, len(keys))}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		if k.Signer == nil {
			return nil, fmt.Errorf("assertion: key %d has no signer", i)
		}
		pub, alg, err := publicJWK(k.Signer.Public())
		if err != nil {
			return nil, fmt.Errorf("assertion: key %d: %w", i, err)
		}
		id := k.ID
		if id == "" {
			id = pub.thumbprint()
		}
		if seen[id] {
			return nil, fmt.Errorf("assertion: key %d: duplicate key id %q", i, id)
		}
		seen[id] = true
		pub.Kid, pub.Use, pub.Alg = id, "sig", alg
		doc.Keys = append(doc.Keys, pub)

		var hdr []byte
		hdr = append(hdr, `{"alg":"`...)
		hdr = append(hdr, alg...)
		hdr = append(hdr, `","kid":`...)
		hdr = appendString(hdr, id)
		hdr = append(hdr, `,"typ":"JWT"}`...)
		sk := signingKey{id: id, alg: alg, header: b64.EncodeToString(hdr), signer: k.Signer}
		if ed, ok := k.Signer.(ed25519.PrivateKey); ok {
			sk.ed = ed
		}
		s.keys = append(s.keys, sk)
	}
	var err error
	if s.jwks, err = json.Marshal(doc); err != nil {
		return nil, fmt.Errorf("assertion: encoding JWKS: %w", err)
	}
	return s, nil
}

// TTL returns the lifetime of the assertions s signs.
func (s *Signer) TTL() time.Duration { return s.ttl }

// KeyID returns the kid of the key s signs with.
func (s *Signer) KeyID() string { return s.keys[0].id }

// JWKS returns the JSON Web Key Set document listing the public keys of s,
// signing key first: {"keys":[{"kty","crv","x","y","kid","use":"sig","alg"}…]}.
// It is computed once by NewSigner; each call returns a fresh copy the
// caller may keep or modify. Serve it with JWKSContentType.
func (s *Signer) JWKS() []byte { return bytes.Clone(s.jwks) }

// Sign returns a compact JWS of c, signed with the first key of s, and its
// expiry. It sets iat and nbf to the current second, exp to now plus the
// TTL rounded up to a whole second, and jti to 128 random bits, ignoring any
// values of those fields in c. c.Issuer and c.Audience must be set: an
// assertion without an audience could be replayed against another route.
// Sign fails rather than produce a token longer than MaxTokenSize.
func (s *Signer) Sign(c Claims) (token string, exp time.Time, err error) {
	if c.Issuer == "" {
		return "", time.Time{}, errors.New("assertion: claims have no issuer")
	}
	if c.Audience == "" {
		return "", time.Time{}, errors.New("assertion: claims have no audience")
	}
	now := s.now()
	iat := now.Unix() // rounds down
	end := now.Add(s.ttl)
	expSec := end.Unix()
	if end.Nanosecond() != 0 {
		expSec++ // rounds up, so the token lives at least ttl
	}
	c.IssuedAt = time.Unix(iat, 0)
	c.NotBefore = c.IssuedAt
	c.Expiry = time.Unix(expSec, 0)
	var id [16]byte
	rand.Read(id[:])
	c.ID = b64.EncodeToString(id[:])

	payload := appendClaims(make([]byte, 0, 512), &c)
	k := &s.keys[0]
	tok := make([]byte, 0, len(k.header)+b64.EncodedLen(len(payload))+2+86)
	tok = append(tok, k.header...)
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, payload)
	sig, err := k.sign(tok)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("assertion: signing with key %q: %w", k.id, err)
	}
	tok = append(tok, '.')
	tok = b64.AppendEncode(tok, sig)
	if len(tok) > MaxTokenSize {
		return "", time.Time{}, fmt.Errorf("assertion: token of %d bytes exceeds MaxTokenSize", len(tok))
	}
	return string(tok), c.Expiry, nil
}
