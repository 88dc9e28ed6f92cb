package bearer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // registers SHA-384 and SHA-512 for RS384, PS512, ES384...
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
)

// MinRefetchInterval is the shortest time between two JWKS fetches. An
// unknown kid triggers a fetch (so a key rotation is followed without a
// restart), but tokens with random kids cannot make Gatehouse hammer the
// issuer.
const MinRefetchInterval = 30 * time.Second

const (
	maxJWKSBytes      = 1 << 20
	maxJWKSKeys       = 100
	fetchTimeout      = 10 * time.Second
	minRSABits        = 2048
	maxRSABits        = 16384
	maxDiscoveryBytes = 1 << 20
)

var b64 = base64.RawURLEncoding.Strict()

// publicKey is one usable key of a JWKS.
type publicKey struct {
	kid string
	alg string // the JWK's alg, "" when it names none
	rsa *rsa.PublicKey
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

// accepts reports whether the key can verify alg.
func (k *publicKey) accepts(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return k.rsa != nil
	case "ES256":
		return k.ec != nil && k.ec.Curve == elliptic.P256()
	case "ES384":
		return k.ec != nil && k.ec.Curve == elliptic.P384()
	case "ES512":
		return k.ec != nil && k.ec.Curve == elliptic.P521()
	case "EdDSA":
		return k.ed != nil
	}
	return false
}

func (k *publicKey) kind() string {
	switch {
	case k.rsa != nil:
		return "RSA"
	case k.ec != nil:
		return "EC " + k.ec.Curve.Params().Name
	}
	return "Ed25519"
}

// keys is one fetched JWKS.
type keys struct {
	list    []*publicKey
	fetched time.Time
	// gen changes when the set of keys changes; cached tokens verified
	// under an older generation are verified again.
	gen         uint64
	fingerprint [sha256.Size]byte
}

// find returns the key for a token's kid and alg. A token without kid is
// accepted only when exactly one key can verify its alg.
func (ks *keys) find(kid, alg string) (*publicKey, error) {
	var cands []*publicKey
	for _, k := range ks.list {
		if kid == "" || k.kid == kid {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 {
		return nil, errNoKey
	}
	var match []*publicKey
	for _, k := range cands {
		if k.accepts(alg) {
			match = append(match, k)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) == 0 && kid != "":
		return nil, refuse(ErrAlgorithm, "%s token for kid %q, a %s key", alg, kid, cands[0].kind())
	case len(match) == 0:
		return nil, refuse(ErrUnknownKey, "token has no kid and no key verifies %s", alg)
	case kid == "":
		return nil, refuse(ErrUnknownKey, "token has no kid and %d keys verify %s", len(match), alg)
	}
	return nil, refuse(ErrUnknownKey, "kid %q names %d keys for %s", kid, len(match), alg)
}

var errNoKey = errors.New("no key with this kid")

// keySet fetches and caches an issuer's JWKS.
type keySet struct {
	provider string
	issuer   string
	jwksURL  string // configured; "" means discovery
	refresh  time.Duration
	client   *http.Client
	now      func() time.Time
	log      *zap.Logger

	cur         atomic.Pointer[keys]
	lastAttempt atomic.Int64 // unix nanoseconds of the last fetch attempt, 0 before any
	refreshing  atomic.Bool

	mu         sync.Mutex // one fetch at a time; guards the fields below
	discovered string
	gen        uint64
	lastErr    error
}

// generation is the generation of the keys in use, 0 before any. When
// they are older than the refresh period it starts a background refresh,
// so that a key the issuer withdrew stops being trusted (and the tokens it
// verified leave the cache) even when every request hits the cache.
func (s *keySet) generation() uint64 {
	ks := s.cur.Load()
	if ks == nil {
		return 0
	}
	if s.now().Sub(ks.fetched) >= s.refresh {
		s.refreshAsync()
	}
	return ks.gen
}

// lookup finds the key for kid and alg, fetching the JWKS when there is
// none yet or the kid is unknown (at most once per MinRefetchInterval),
// and refreshing it in the background when older than the refresh period.
func (s *keySet) lookup(ctx context.Context, kid, alg string) (*publicKey, *keys, error) {
	ks := s.cur.Load()
	if ks != nil {
		if s.now().Sub(ks.fetched) >= s.refresh {
			s.refreshAsync()
		}
		k, err := ks.find(kid, alg)
		if err != errNoKey {
			return k, ks, err
		}
	}
	if err := s.fetch(ctx, ks); err != nil {
		if ks == nil {
			return nil, nil, refuse(ErrUnavailable, "no keys for issuer %s: %v", s.issuer, err)
		}
		return nil, nil, refuse(ErrUnknownKey, "kid %q not in the JWKS (refetch: %v)", kid, err)
	}
	ks = s.cur.Load()
	if ks == nil {
		return nil, nil, refuse(ErrUnavailable, "no keys for issuer %s", s.issuer)
	}
	k, err := ks.find(kid, alg)
	if err == errNoKey {
		return nil, nil, refuse(ErrUnknownKey, "kid %q not in the JWKS, even after a refetch", kid)
	}
	return k, ks, err
}

var errRateLimited = errors.New("rate-limited: the JWKS was fetched less than 30s ago")

// fetch fetches the JWKS again unless another fetch replaced seen
// meanwhile (then the caller just looks again) or the last attempt is
// younger than MinRefetchInterval.
func (s *keySet) fetch(ctx context.Context, seen *keys) error {
	if last := s.lastAttempt.Load(); last != 0 && s.now().UnixNano()-last < int64(MinRefetchInterval) {
		if s.cur.Load() != seen {
			return nil
		}
		return errRateLimited
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur.Load() != seen {
		return nil
	}
	now := s.now()
	if last := s.lastAttempt.Load(); last != 0 && now.UnixNano()-last < int64(MinRefetchInterval) {
		return errRateLimited
	}
	s.lastAttempt.Store(now.UnixNano())
	// The fetch outlives the request that triggered it: a client hanging
	// up must not waste the fetch for everyone else.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	ks, err := s.load(ctx)
	if err != nil {
		s.lastErr = err
		s.log.Warn("fetching JWKS failed", zap.String("provider", s.provider), zap.String("issuer", s.issuer), zap.Error(err))
		return err
	}
	ks.fetched = now
	if prev := s.cur.Load(); prev != nil && prev.fingerprint == ks.fingerprint {
		ks.gen = prev.gen
	} else {
		s.gen++
		ks.gen = s.gen
		if prev != nil {
			s.log.Info("JWKS changed", zap.String("provider", s.provider), zap.Int("keys", len(ks.list)))
		}
	}
	s.lastErr = nil
	s.cur.Store(ks)
	return nil
}

// refreshAsync fetches the JWKS in the background (one at a time, and
// not at all within MinRefetchInterval of the last attempt).
func (s *keySet) refreshAsync() {
	if last := s.lastAttempt.Load(); last != 0 && s.now().UnixNano()-last < int64(MinRefetchInterval) {
		return
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	seen := s.cur.Load()
	go func() {
		defer s.refreshing.Store(false)
		s.fetch(context.Background(), seen)
	}()
}

// ready reports whether keys were fetched, starting a fetch if not.
func (s *keySet) ready() error {
	if s.cur.Load() != nil {
		return nil
	}
	s.refreshAsync()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr != nil {
		return fmt.Errorf("JWKS not fetched yet: %v", s.lastErr)
	}
	return errors.New("JWKS not fetched yet")
}

// load fetches (after discovery, when needed) and parses the JWKS. It runs
// with s.mu held.
func (s *keySet) load(ctx context.Context) (*keys, error) {
	u := s.jwksURL
	if u == "" {
		if s.discovered == "" {
			d, err := s.discover(ctx)
			if err != nil {
				return nil, err
			}
			s.discovered = d
		}
		u = s.discovered
	}
	body, err := get(ctx, s.client, u, maxJWKSBytes)
	if err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	ks, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", u, err)
	}
	for _, reason := range skipped {
		s.log.Debug("JWKS key skipped", zap.String("provider", s.provider), zap.String("reason", reason))
	}
	return ks, nil
}

// discover finds jwks_uri in the issuer's OpenID Connect discovery
// document, or else in its RFC 8414 authorization server metadata. The
// document's issuer must equal the configured one exactly (OpenID Connect
// Discovery section 4.3), and jwks_uri must be https (or loopback http).
func (s *keySet) discover(ctx context.Context) (string, error) {
	var urls []string
	urls = append(urls, strings.TrimSuffix(s.issuer, "/")+"/.well-known/openid-configuration")
	if iu, err := url.Parse(s.issuer); err == nil && iu.Host != "" {
		urls = append(urls, iu.Scheme+"://"+iu.Host+"/.well-known/oauth-authorization-server"+strings.TrimSuffix(iu.EscapedPath(), "/"))
	}
	var errs []error
	for _, u := range urls {
		body, err := get(ctx, s.client, u, maxDiscoveryBytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		doc, err := decodeObject(body)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", u, err))
			continue
		}
		iss, _, _ := doc.str("issuer")
		if iss != s.issuer {
			errs = append(errs, fmt.Errorf("%s: issuer %q, want %q", u, iss, s.issuer))
			continue
		}
		ju, _, _ := doc.str("jwks_uri")
		if msg := config.FetchURLProblem(ju); msg != "" {
			errs = append(errs, fmt.Errorf("%s: jwks_uri %q: %s", u, ju, msg))
			continue
		}
		return ju, nil
	}
	return "", fmt.Errorf("discovery: %w", errors.Join(errs...))
}

// get fetches u, requiring 200 and at most limit bytes.
func get(ctx context.Context, c *http.Client, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("GET %s: status %d", u, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", u, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("GET %s: more than %d bytes", u, limit)
	}
	return body, nil
}

// parseJWKS parses a JWK Set (RFC 7517), keeping the signature keys it can
// use: RSA of 2048 bits or more, EC P-256/P-384/P-521, Ed25519. Keys for
// encryption, of other types, or malformed are skipped (with a reason);
// it is an error when none is left.
func parseJWKS(body []byte) (*keys, []string, error) {
	doc, err := decodeObject(body)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := doc["keys"]
	if !ok || len(raw) == 0 || raw[0] != '[' {
		return nil, nil, errors.New("no keys array")
	}
	var rawKeys []json.RawMessage
	if err := json.Unmarshal(raw, &rawKeys); err != nil {
		return nil, nil, err
	}
	if len(rawKeys) > maxJWKSKeys {
		return nil, nil, fmt.Errorf("%d keys, at most %d are accepted", len(rawKeys), maxJWKSKeys)
	}
	ks := &keys{}
	var skipped []string
	h := sha256.New()
	for i, rk := range rawKeys {
		k, err := parseJWK(rk)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if k == nil {
			continue
		}
		ks.list = append(ks.list, k)
		fmt.Fprintf(h, "%q %q %s\n", k.kid, k.alg, rk)
	}
	if len(ks.list) == 0 {
		return nil, skipped, fmt.Errorf("no usable signature key (%s)", strings.Join(skipped, "; "))
	}
	copy(ks.fingerprint[:], h.Sum(nil))
	return ks, skipped, nil
}

// parseJWK returns the key, nil for a key that is not for signatures, or
// an error saying why it cannot be used.
func parseJWK(raw []byte) (*publicKey, error) {
	o, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	get := func(name string) string { s, _, _ := o.str(name); return s }
	if use := get("use"); use != "" && use != "sig" {
		return nil, nil
	}
	if ops, ok, _ := o.strs("key_ops", false); ok && !slices.Contains(ops, "verify") {
		return nil, nil
	}
	k := &publicKey{kid: get("kid"), alg: get("alg")}
	if k.alg != "" && !slices.Contains(config.JWTAlgorithms, k.alg) {
		return nil, fmt.Errorf("kid %q: alg %q is not a signature algorithm Gatehouse accepts", k.kid, k.alg)
	}
	switch kty := get("kty"); kty {
	case "RSA":
		n, errN := b64.DecodeString(get("n"))
		e, errE := b64.DecodeString(get("e"))
		if errN != nil || errE != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("kid %q: bad RSA n or e", k.kid)
		}
		mod := new(big.Int).SetBytes(n)
		exp := int(new(big.Int).SetBytes(e).Int64())
		if bits := mod.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("kid %q: RSA key of %d bits (%d to %d accepted)", k.kid, bits, minRSABits, maxRSABits)
		}
		if exp < 3 || exp%2 == 0 {
			return nil, fmt.Errorf("kid %q: bad RSA exponent %d", k.kid, exp)
		}
		k.rsa = &rsa.PublicKey{N: mod, E: exp}
		if k.alg != "" && !k.accepts(k.alg) {
			return nil, fmt.Errorf("kid %q: RSA key with alg %q", k.kid, k.alg)
		}
	case "EC":
		var curve elliptic.Curve
		switch crv := get("crv"); crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("kid %q: unsupported curve %q", k.kid, crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64.DecodeString(get("x"))
		y, errY := b64.DecodeString(get("y"))
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("kid %q: EC coordinates must be %d bytes of base64url", k.kid, size)
		}
		point := make([]byte, 0, 1+2*size)
		point = append(append(append(point, 4), x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("kid %q: %v", k.kid, err)
		}
		k.ec = pub
		if k.alg != "" && !k.accepts(k.alg) {
			return nil, fmt.Errorf("kid %q: %s key with alg %q", k.kid, curve.Params().Name, k.alg)
		}
	case "OKP":
		if crv := get("crv"); crv != "Ed25519" {
			return nil, fmt.Errorf("kid %q: unsupported OKP curve %q", k.kid, crv)
		}
		x, err := b64.DecodeString(get("x"))
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("kid %q: Ed25519 x must be 32 bytes of base64url", k.kid)
		}
		k.ed = ed25519.PublicKey(x)
		if k.alg != "" && k.alg != "EdDSA" {
			return nil, fmt.Errorf("kid %q: Ed25519 key with alg %q", k.kid, k.alg)
		}
	default:
		return nil, fmt.Errorf("kid %q: unsupported key type %q", k.kid, kty)
	}
	return k, nil
}

// verifySignature checks sig over signed with key for alg (already
// checked to be compatible with the key).
func verifySignature(k *publicKey, alg, signed string, sig []byte) error {
	var h crypto.Hash
	switch alg[2:] {
	case "256":
		h = crypto.SHA256
	case "384":
		h = crypto.SHA384
	case "512":
		h = crypto.SHA512
	}
	if alg == "EdDSA" {
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k.ed, []byte(signed), sig) {
			return refuse(ErrSignature, "EdDSA signature does not verify with kid %q", k.kid)
		}
		return nil
	}
	hh := h.New()
	io.WriteString(hh, signed)
	digest := hh.Sum(nil)
	switch alg[:2] {
	case "RS":
		if err := rsa.VerifyPKCS1v15(k.rsa, h, digest, sig); err != nil {
			return refuse(ErrSignature, "%s signature does not verify with kid %q", alg, k.kid)
		}
	case "PS":
		if err := rsa.VerifyPSS(k.rsa, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			return refuse(ErrSignature, "%s signature does not verify with kid %q", alg, k.kid)
		}
	case "ES":
		size := (k.ec.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return refuse(ErrSignature, "%s signature of %d bytes, want %d", alg, len(sig), 2*size)
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k.ec, digest, r, s) {
			return refuse(ErrSignature, "%s signature does not verify with kid %q", alg, k.kid)
		}
	default:
		return refuse(ErrAlgorithm, "%q", alg)
	}
	return nil
}
