package bearer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// JWT verifies JWT access tokens against an issuer's JWKS.
type JWT struct {
	name    string
	issuer  string
	algs    []string
	skew    time.Duration
	maxSize int
	mapping *mapping
	keys    *keySet
	cache   *cache
	now     func() time.Time
	// verified counts tokens verified without the cache.
	verified atomic.Int64
}

var (
	_ providers.BearerAuthenticator = (*JWT)(nil)
	_ providers.ReadinessChecker    = (*JWT)(nil)
)

// NewJWT builds a JWT authenticator from validated settings. It does no
// I/O: the JWKS is fetched by the first request or the first Ready call.
func NewJWT(name string, cfg *config.JWTProvider, env Env) (*JWT, error) {
	env = env.withDefaults()
	if cfg.Issuer == "" {
		return nil, errors.New("bearer: jwt provider needs an issuer")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("bearer: jwt provider needs audiences")
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = config.DefaultJWTAlgorithms
	}
	for _, a := range algs {
		if !slices.Contains(config.JWTAlgorithms, a) {
			// none and HS* are not in the list: never accepted, whatever
			// the policy says.
			return nil, fmt.Errorf("bearer: algorithm %q is not allowed", a)
		}
	}
	jwksURL := cfg.JWKSURL
	probe := jwksURL
	if probe == "" {
		probe = cfg.Issuer
	}
	if msg := config.FetchURLProblem(probe); msg != "" {
		return nil, fmt.Errorf("bearer: cannot fetch keys from %q: %s", probe, msg)
	}
	refresh := cfg.JWKSRefresh.D()
	if refresh <= 0 {
		refresh = config.DefaultJWKSRefresh
	}
	j := &JWT{
		name:    name,
		issuer:  cfg.Issuer,
		algs:    slices.Clone(algs),
		skew:    durationOr(cfg.ClockSkew.D(), config.DefaultBearerClockSkew),
		maxSize: intOr(cfg.MaxTokenSize, config.DefaultBearerMaxTokenSize),
		mapping: newMapping(&cfg.BearerCommon),
		cache:   newCache(name, intOr(cfg.CacheSize, config.DefaultBearerCacheSize)),
		now:     env.Now,
		keys: &keySet{
			provider: name, issuer: cfg.Issuer, jwksURL: jwksURL, refresh: refresh,
			client: env.HTTPClient, now: env.Now, log: env.Logger,
		},
	}
	return j, nil
}

func durationOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func intOr(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Name returns the provider's policy name.
func (j *JWT) Name() string { return j.name }

// Type returns "jwt".
func (j *JWT) Type() string { return "jwt" }

// Ready returns nil once the JWKS has been fetched; before that it starts
// a fetch (rate-limited) and reports the last failure.
func (j *JWT) Ready() error { return j.keys.ready() }

// Authenticate verifies the request's bearer token. It returns (nil, nil)
// without one, and an *Error wrapping providers.ErrInvalidToken when the
// token is refused. The identity is the caller's to modify, except its
// slices and Extra map, which are shared with the cache and read-only.
func (j *JWT) Authenticate(ctx context.Context, r *http.Request) (*identity.Identity, error) {
	tok, err := bearerToken(r, j.maxSize)
	if err != nil || tok == "" {
		return nil, err
	}
	now := j.now()
	k := j.cache.key(tok)
	if id := j.cache.get(k, now, j.keys.generation()); id != nil {
		return id, nil
	}
	j.verified.Add(1)
	id, exp, gen, err := j.verify(ctx, tok, now)
	if err != nil {
		return nil, err
	}
	j.cache.put(k, id, exp, now, gen)
	cp := *id
	return &cp, nil
}

// verify checks a compact JWS access token. It returns the identity, the
// token's exp (how long it may be cached) and the JWKS generation whose
// key verified it.
func (j *JWT) verify(ctx context.Context, tok string, now time.Time) (*identity.Identity, time.Time, uint64, error) {
	var zero time.Time
	// Size was checked by bearerToken; the shape is checked before any
	// decoding (go-jose CVE-2025-27144: many dots made splitting costly).
	if n := strings.Count(tok, "."); n != 2 {
		return nil, zero, 0, refuse(ErrMalformed, "%d dots, a JWS has 2 (JWE and other forms are refused)", n)
	}
	dot1 := strings.IndexByte(tok, '.')
	dot2 := strings.LastIndexByte(tok, '.')
	hdrSeg, payloadSeg, sigSeg := tok[:dot1], tok[dot1+1:dot2], tok[dot2+1:]

	hdrJSON, err := b64.DecodeString(hdrSeg)
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "header encoding: %v", err)
	}
	hdr, err := decodeObject(hdrJSON)
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "header: %v", err)
	}
	alg, _, err := hdr.str("alg")
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "header: %v", err)
	}
	switch {
	case alg == "" || strings.EqualFold(alg, "none"):
		return nil, zero, 0, refuse(ErrAlgorithm, "alg %q: unsigned tokens are never accepted", alg)
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return nil, zero, 0, refuse(ErrAlgorithm, "alg %q: HMAC is never accepted (its key would be the issuer's public key)", alg)
	case !slices.Contains(j.algs, alg):
		return nil, zero, 0, refuse(ErrAlgorithm, "alg %q is not in %q", alg, j.algs)
	}
	if _, ok := hdr["crit"]; ok {
		return nil, zero, 0, refuse(ErrMalformed, "header has crit")
	}
	if typ, ok, err := hdr.str("typ"); err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "header: %v", err)
	} else if ok && !validTyp(typ) {
		return nil, zero, 0, refuse(ErrMalformed, "header typ %q is not JWT or at+jwt", typ)
	}
	kid, _, err := hdr.str("kid")
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "header: %v", err)
	}
	sig, err := b64.DecodeString(sigSeg)
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "signature encoding: %v", err)
	}
	// jwk, jku, x5c and x5u in the header are ignored: keys come from the
	// configured JWKS only.
	key, ks, err := j.keys.lookup(ctx, kid, alg)
	if err != nil {
		return nil, zero, 0, err
	}
	if err := verifySignature(key, alg, tok[:dot2], sig); err != nil {
		return nil, zero, 0, err
	}

	payload, err := b64.DecodeString(payloadSeg)
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "payload encoding: %v", err)
	}
	claims, err := decodeObject(payload)
	if err != nil {
		return nil, zero, 0, refuse(ErrMalformed, "payload: %v", err)
	}
	iss, ok, err := claims.str("iss")
	switch {
	case err != nil:
		return nil, zero, 0, refuse(ErrIssuer, "%v", err)
	case !ok:
		return nil, zero, 0, refuse(ErrIssuer, "no iss")
	case iss != j.issuer:
		return nil, zero, 0, refuse(ErrIssuer, "iss %q, want %q", iss, j.issuer)
	}
	if err := j.mapping.checkAudience(claims); err != nil {
		return nil, zero, 0, err
	}
	exp, err := checkTimes(claims, now, j.skew, true)
	if err != nil {
		return nil, zero, 0, err
	}
	id, err := j.mapping.identity(claims)
	if err != nil {
		return nil, zero, 0, err
	}
	id.Issuer = iss
	id.Provider = j.name
	return id, exp, ks.gen, nil
}

// validTyp accepts the typ values of JWT access tokens: JWT (RFC 7519) and
// at+jwt (RFC 9068), with or without the application/ prefix.
func validTyp(typ string) bool {
	t := strings.ToLower(strings.TrimPrefix(strings.ToLower(typ), "application/"))
	return t == "jwt" || t == "at+jwt"
}
