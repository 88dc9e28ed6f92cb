// Package bearer authenticates API requests from their
// "Authorization: Bearer" token, for routes of the api audience:
//
//   - JWT verifies JWT access tokens (RFC 9068) against the issuer's JSON
//     Web Key Set: signature with an algorithm allow-list (never "none",
//     never HMAC), iss, aud, exp, nbf and iat, then scopes and claims;
//   - Introspection asks an RFC 7662 endpoint about opaque tokens.
//
// Both remember verified tokens in a bounded cache keyed by a hash of the
// provider name and the token, whose entries never outlive the token, so a
// repeated token costs a hash and a map lookup. Errors wrap
// providers.ErrInvalidToken and one of the Err* reasons below, with a
// precise private detail for the log.
package bearer

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// Env is what the authenticators need from the outside world.
type Env struct {
	// Logger receives key fetch problems; nil means no logging.
	Logger *zap.Logger
	// HTTPClient fetches discovery documents and JWKS and calls the
	// introspection endpoint; nil means a client with a 10 s timeout that
	// follows redirects only to https (or loopback http) URLs. The
	// introspection endpoint's redirects are never followed.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (e Env) withDefaults() Env {
	if e.Logger == nil {
		e.Logger = zap.NewNop()
	}
	if e.HTTPClient == nil {
		e.HTTPClient = &http.Client{
			Timeout: 10 * time.Second,
			CheckRedirect: func(r *http.Request, via []*http.Request) error {
				if msg := config.FetchURLProblem(r.URL.String()); msg != "" {
					return fmt.Errorf("redirect to %s: %s", r.URL.Redacted(), msg)
				}
				if len(via) >= 5 {
					return errors.New("too many redirects")
				}
				return nil
			},
		}
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// Refusal reasons. Every error Authenticate returns matches
// providers.ErrInvalidToken and exactly one of these (errors.Is).
var (
	// ErrRequest: the Authorization header itself is unusable (sent twice,
	// empty token, characters outside RFC 6750's b64token).
	ErrRequest = errors.New("bad authorization header")
	// ErrTooLarge: the token is longer than max_token_size.
	ErrTooLarge = errors.New("token too large")
	// ErrMalformed: not a compact JWS, bad base64url, bad JSON, duplicate
	// members, crit, or an unexpected typ.
	ErrMalformed = errors.New("malformed token")
	// ErrAlgorithm: alg outside the allow-list (none, HS*), or not the
	// algorithm of the key it names.
	ErrAlgorithm = errors.New("algorithm not allowed")
	// ErrUnknownKey: no key of the JWKS matches the token's kid.
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrSignature: the signature does not verify.
	ErrSignature = errors.New("bad signature")
	// ErrIssuer: iss is missing or not the configured issuer.
	ErrIssuer = errors.New("wrong issuer")
	// ErrAudience: aud is missing, empty, or names none of the accepted audiences.
	ErrAudience = errors.New("wrong audience")
	// ErrExpired: exp is past (beyond the clock skew).
	ErrExpired = errors.New("token expired")
	// ErrNotYetValid: nbf or iat is in the future (beyond the clock skew).
	ErrNotYetValid = errors.New("token not yet valid")
	// ErrClaims: a required claim (subject, exp, required_claims) is
	// missing or wrong, or a mapped claim has the wrong type.
	ErrClaims = errors.New("claims refused")
	// ErrInactive: the introspection endpoint says the token is not active.
	ErrInactive = errors.New("token not active")
	// ErrUnavailable: the keys or the introspection endpoint could not be
	// reached or answered nonsense; the token could not be checked.
	ErrUnavailable = errors.New("token could not be checked")
)

// Error is a refused bearer token: Reason is one of the Err* values,
// Detail the private explanation for the log (never shown to clients).
type Error struct {
	Reason error
	Detail string
}

func (e *Error) Error() string {
	return providers.ErrInvalidToken.Error() + ": " + e.Reason.Error() + ": " + e.Detail
}

// Unwrap lets errors.Is match both providers.ErrInvalidToken and Reason.
func (e *Error) Unwrap() []error { return []error{providers.ErrInvalidToken, e.Reason} }

func refuse(reason error, format string, args ...any) error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// bearerToken returns the request's bearer token, "" when it carries none.
// Only the Authorization header counts (never a query parameter or a form
// field, RFC 6750 section 2.3 is not supported), it must be sent once, and
// the scheme is case-insensitive. Another scheme (Basic) is not a bearer
// token.
func bearerToken(r *http.Request, maxSize int) (string, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", refuse(ErrRequest, "%d Authorization headers", len(vals))
	}
	v := vals[0]
	if len(v) < 6 || !strings.EqualFold(v[:6], "bearer") {
		return "", nil
	}
	if len(v) == 6 {
		return "", refuse(ErrRequest, "Bearer without a token")
	}
	if v[6] != ' ' {
		return "", nil // "Bearerish ..." is another scheme
	}
	tok := strings.TrimLeft(v[7:], " ")
	if tok == "" {
		return "", refuse(ErrRequest, "Bearer without a token")
	}
	if len(tok) > maxSize {
		return "", refuse(ErrTooLarge, "%d bytes, limit %d", len(tok), maxSize)
	}
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	i := 0
	for i < len(tok) && b64tokenChar[tok[i]] {
		i++
	}
	if i == 0 {
		return "", refuse(ErrRequest, "token starts with byte 0x%02x", tok[0])
	}
	for j := i; j < len(tok); j++ {
		if tok[j] != '=' {
			return "", refuse(ErrRequest, "byte 0x%02x at offset %d is not allowed in a bearer token", tok[j], j)
		}
	}
	return tok, nil
}

// b64tokenChar marks the characters of RFC 6750's b64token (before the
// trailing '=' padding).
var b64tokenChar = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", byte(c)) >= 0
	}
	return t
}()

// mapping turns verified claims into an identity.
type mapping struct {
	subject       string
	scope         string // "" means scope, then scp
	email         string
	emailVerified string
	name          string
	groups        string
	extra         []string
	required      map[string][]string
	audiences     []string
}

func newMapping(c *config.BearerCommon) *mapping {
	m := &mapping{
		subject:       or(c.SubjectClaim, "sub"),
		scope:         c.ScopeClaim,
		email:         or(c.Claims.Email, "email"),
		emailVerified: or(c.Claims.EmailVerified, "email_verified"),
		name:          or(c.Claims.Name, "name"),
		groups:        or(c.Claims.Groups, "groups"),
		extra:         slices.Clone(c.Claims.Extra),
		audiences:     slices.Clone(c.Audiences),
	}
	if len(c.RequiredClaims) > 0 {
		m.required = make(map[string][]string, len(c.RequiredClaims))
		for k, v := range c.RequiredClaims {
			m.required[k] = slices.Clone([]string(v))
		}
	}
	return m
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkAudience requires aud to be a non-empty string or a non-empty list
// of strings containing one of the accepted audiences. A missing or empty
// aud never passes (jwt-go CVE-2020-26160 accepted an empty one).
func (m *mapping) checkAudience(c object) error {
	auds, ok, err := c.strs("aud", false)
	switch {
	case err != nil:
		return refuse(ErrAudience, "%v", err)
	case !ok:
		return refuse(ErrAudience, "no aud")
	case len(auds) == 0:
		return refuse(ErrAudience, "empty aud")
	}
	for _, a := range auds {
		if a != "" && slices.Contains(m.audiences, a) {
			return nil
		}
	}
	return refuse(ErrAudience, "aud %q names none of %q", auds, m.audiences)
}

// checkTimes applies exp, nbf and iat with the clock skew. exp is required
// when needExp is set.
func checkTimes(c object, now time.Time, skew time.Duration, needExp bool) (exp time.Time, err error) {
	exp, hasExp, err := c.time("exp")
	if err != nil {
		return exp, refuse(ErrMalformed, "%v", err)
	}
	if !hasExp && needExp {
		return exp, refuse(ErrClaims, "no exp: tokens that never expire are refused")
	}
	if hasExp && !now.Before(exp.Add(skew)) {
		return exp, refuse(ErrExpired, "exp %s is before now %s (skew %s)", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	for _, name := range []string{"nbf", "iat"} {
		t, ok, err := c.time(name)
		if err != nil {
			return exp, refuse(ErrMalformed, "%v", err)
		}
		if ok && t.After(now.Add(skew)) {
			return exp, refuse(ErrNotYetValid, "%s %s is after now %s (skew %s)", name, t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
		}
	}
	return exp, nil
}

// identity builds the identity from verified claims, checking required
// claims and the types of mapped ones.
func (m *mapping) identity(c object) (*identity.Identity, error) {
	for _, name := range sortedKeys(m.required) {
		want := m.required[name]
		raw, ok := c[name]
		if !ok || isNull(raw) {
			return nil, refuse(ErrClaims, "required claim %q is missing", name)
		}
		if len(want) == 0 {
			continue
		}
		var have []string
		if len(raw) > 0 && (raw[0] == '"' || raw[0] == '[') {
			list, _, err := c.strs(name, false)
			if err != nil {
				return nil, refuse(ErrClaims, "required claim: %v", err)
			}
			have = list
		} else {
			have = []string{string(raw)} // a number or a boolean, as JSON text
		}
		if !slices.ContainsFunc(have, func(h string) bool { return slices.Contains(want, h) }) {
			return nil, refuse(ErrClaims, "required claim %q is %q, want one of %q", name, have, want)
		}
	}

	id := &identity.Identity{Audience: identity.API}
	var err error
	var ok bool
	if id.Subject, ok, err = c.str(m.subject); err != nil {
		return nil, refuse(ErrClaims, "subject: %v", err)
	} else if !ok || id.Subject == "" {
		return nil, refuse(ErrClaims, "no subject claim %q", m.subject)
	}
	if m.scope != "" {
		id.Scopes, _, err = c.strs(m.scope, true)
	} else {
		id.Scopes, ok, err = c.strs("scope", true)
		if err == nil && !ok {
			id.Scopes, _, err = c.strs("scp", true)
		}
	}
	if err != nil {
		return nil, refuse(ErrClaims, "scopes: %v", err)
	}
	if len(id.Scopes) == 0 {
		id.Scopes = nil
	}
	if id.Email, _, err = c.str(m.email); err != nil {
		return nil, refuse(ErrClaims, "email: %v", err)
	}
	if raw, ok := c[m.emailVerified]; ok && id.Email != "" {
		switch string(raw) {
		case "true", `"true"`: // some providers (Cognito) send a string
			id.EmailVerified = true
		case "false", `"false"`, "null":
		default:
			return nil, refuse(ErrClaims, "%s is not a boolean", m.emailVerified)
		}
	}
	if id.Name, _, err = c.str(m.name); err != nil {
		return nil, refuse(ErrClaims, "name: %v", err)
	}
	if id.Groups, _, err = c.strs(m.groups, false); err != nil {
		return nil, refuse(ErrClaims, "groups: %v", err)
	}
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	if id.ACR, _, err = c.str("acr"); err != nil {
		return nil, refuse(ErrClaims, "%v", err)
	}
	if id.AMR, _, err = c.strs("amr", false); err != nil {
		return nil, refuse(ErrClaims, "%v", err)
	}
	if t, ok, err := c.time("auth_time"); err != nil {
		return nil, refuse(ErrClaims, "%v", err)
	} else if ok {
		id.AuthTime = t
	} else if t, ok, _ := c.time("iat"); ok {
		id.AuthTime = t
	}
	for _, name := range m.extra {
		v, ok, err := c.scalarText(name)
		if err != nil {
			return nil, refuse(ErrClaims, "extra claim: %v", err)
		}
		if ok {
			if id.Extra == nil {
				id.Extra = make(map[string]string, len(m.extra))
			}
			id.Extra[name] = v
		}
	}
	// Cached identities are handed out as shallow copies whose slices and
	// map are shared and read-only; clipping makes an append by a caller
	// reallocate instead of writing into the cached backing array.
	id.Scopes, id.Groups, id.AMR = slices.Clip(id.Scopes), slices.Clip(id.Groups), slices.Clip(id.AMR)
	return id, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// New builds the authenticator of the bearer provider name (type jwt or
// introspection) of a loaded policy. Bearer providers check API tokens
// only: one listed under a browser audience (workforce, customer) is an
// error, since it cannot sign anybody in.
func New(cfg *config.Config, name string, env Env) (providers.BearerAuthenticator, error) {
	for _, aud := range sortedKeys(cfg.Audiences) {
		if aud != string(identity.API) && slices.Contains(cfg.Audiences[aud].Providers, name) {
			return nil, fmt.Errorf("provider %s checks API bearer tokens and cannot sign browsers in: list it under audiences.api, not audiences.%s", name, aud)
		}
	}
	p, ok := cfg.Providers[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("no provider %q", name)
	case p.JWT != nil:
		return NewJWT(name, p.JWT, env)
	case p.Introspection != nil:
		return NewIntrospection(name, p.Introspection, env)
	}
	return nil, fmt.Errorf("provider %s of type %q is not a bearer provider", name, p.Type)
}
