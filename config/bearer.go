package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Bearer-token provider types: "jwt" verifies JWT access tokens against the
// issuer's JWKS, "introspection" asks an RFC 7662 endpoint about opaque
// tokens. Both serve the api audience only; they never sign browsers in.
// Zero values mean "use the default" (the defaults are applied by
// providers/bearer, which owns the behaviour).

// Defaults of the bearer-token provider settings.
const (
	DefaultBearerClockSkew      = 30 * time.Second
	DefaultBearerMaxTokenSize   = 8 << 10
	DefaultBearerCacheSize      = 10_000
	DefaultJWKSRefresh          = time.Hour
	DefaultIntrospectionTTL     = 30 * time.Second
	DefaultIntrospectionTimeout = 5 * time.Second
)

// JWTAlgorithms are the signature algorithms a jwt provider may accept.
// "none" and the HMAC family (HS256, ...) are never accepted: an HMAC key
// would be the issuer's public key, known to everybody.
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultJWTAlgorithms is what a jwt provider accepts when algorithms is
// not set.
var DefaultJWTAlgorithms = []string{"RS256", "ES256", "PS256", "EdDSA"}

// BearerClaims maps token claims (or introspection response members) to
// identity facts.
type BearerClaims struct {
	Email         string   `yaml:"email" doc:"Claim holding the email address. Default email."`
	EmailVerified string   `yaml:"email_verified" doc:"Boolean claim saying the email is verified. Default email_verified. Without it the email counts as unverified and email rules ignore it."`
	Name          string   `yaml:"name" doc:"Claim holding the display name. Default name."`
	Groups        string   `yaml:"groups" doc:"Claim holding the groups (a list of strings, or one string). Default groups."`
	Extra         []string `yaml:"extra" doc:"More claims to keep for forward.claims headers (strings, numbers, booleans; lists of strings are joined with commas)."`
}

// BearerCommon holds the settings shared by the jwt and introspection
// provider types.
type BearerCommon struct {
	Audiences      []string              `yaml:"audiences" doc:"Accepted token audiences (aud). Required: the token's aud must contain one of them; a token without aud is refused."`
	ScopeClaim     string                `yaml:"scope_claim" doc:"Claim holding the scopes, a space-separated string or a list. Default scope (and scp when scope is absent)."`
	SubjectClaim   string                `yaml:"subject_claim" doc:"Claim identifying the caller. Default sub. A token without it is refused."`
	Claims         BearerClaims          `yaml:"claims" doc:"Which claims give the email, name, groups and extra facts."`
	RequiredClaims map[string]StringList `yaml:"required_claims" doc:"Claims that must be present, by name, with the accepted values (any of; for a list claim, any element). An empty list only requires presence."`
	ClockSkew      Duration              `yaml:"clock_skew" doc:"Tolerance for exp, nbf and iat. Default 30s, at most 5m."`
	MaxTokenSize   int                   `yaml:"max_token_size" doc:"Largest token accepted, in bytes; bigger ones are refused before decoding. Default 8192."`
	CacheSize      int                   `yaml:"cache_size" doc:"Verified tokens remembered (never past their exp). Default 10000."`
}

// JWTProvider verifies JWT access tokens (RFC 9068) signed by an issuer
// whose keys are published as a JWKS.
type JWTProvider struct {
	ProviderCommon `yaml:",inline"`
	BearerCommon   `yaml:",inline"`
	Issuer         string   `yaml:"issuer" doc:"Expected iss, compared exactly. Required. Tokens must also carry exp and a subject (see subject_claim). Without jwks_url it is also where the keys are discovered (/.well-known/openid-configuration, then /.well-known/oauth-authorization-server)."`
	JWKSURL        string   `yaml:"jwks_url" doc:"URL of the issuer's JSON Web Key Set. Default: the jwks_uri of the issuer's discovery document."`
	Algorithms     []string `yaml:"algorithms" doc:"Accepted signature algorithms. Default [RS256, ES256, PS256, EdDSA]. none and HS* are never accepted."`
	JWKSRefresh    Duration `yaml:"jwks_refresh" doc:"How long fetched keys are used before they are fetched again. Default 1h. An unknown kid also triggers a fetch, at most once per 30s."`
}

// IntrospectionProvider checks opaque access tokens at an OAuth 2.0 token
// introspection endpoint (RFC 7662).
type IntrospectionProvider struct {
	ProviderCommon `yaml:",inline"`
	BearerCommon   `yaml:",inline"`
	URL            string   `yaml:"url" doc:"The introspection endpoint (https, or http on a loopback address only)."`
	ClientID       string   `yaml:"client_id" doc:"Client id Gatehouse authenticates with at the endpoint."`
	ClientSecret   string   `yaml:"client_secret" doc:"Client secret (use ${ENV})."`
	AuthMethod     string   `yaml:"auth_method" doc:"How the client authenticates: client_secret_basic (default) or client_secret_post."`
	Issuer         string   `yaml:"issuer" doc:"When set, the response's iss must equal it (a response without iss is refused)."`
	CacheTTL       Duration `yaml:"cache_ttl" doc:"How long an answer is reused, never past the token's exp. Default 30s, at most 10m: a revoked token stays accepted this long."`
	Timeout        Duration `yaml:"timeout" doc:"Time limit of one introspection call. Default 5s."`
}

// Validate checks a jwt provider's settings (no I/O).
func (p *JWTProvider) Validate() []FieldError {
	var errs []FieldError
	add := func(key, hint, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	switch {
	case p.Issuer == "":
		add("issuer", "the exact iss of the tokens, e.g. https://login.example.com/", "a jwt provider needs an issuer")
	case p.JWKSURL == "":
		if msg := FetchURLProblem(p.Issuer); msg != "" {
			add("issuer", "set jwks_url, or give the issuer's https URL so that its keys can be discovered", "cannot discover keys from issuer %q: %s", p.Issuer, msg)
		}
	}
	if p.JWKSURL != "" {
		if msg := FetchURLProblem(p.JWKSURL); msg != "" {
			add("jwks_url", "e.g. https://login.example.com/.well-known/jwks.json", "invalid jwks_url %q: %s", p.JWKSURL, msg)
		}
	}
	// Keys are plain names (the loader knows their positions); list
	// indexes go in the message.
	for i, a := range p.Algorithms {
		switch {
		case strings.EqualFold(a, "none"):
			add("algorithms", "unsigned tokens are never accepted", "algorithms[%d]: algorithm %q is not allowed", i, a)
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			add("algorithms", "HMAC would be keyed with the issuer's public key, which anyone can read; use RS256, ES256, PS256 or EdDSA", "algorithms[%d]: algorithm %q is not allowed", i, a)
		case !contains(JWTAlgorithms, a):
			add("algorithms", didYouMean(a, JWTAlgorithms), "algorithms[%d]: unknown algorithm %q", i, a)
		}
	}
	if p.JWKSRefresh != 0 && (p.JWKSRefresh.D() < time.Minute || p.JWKSRefresh.D() > 7*24*time.Hour) {
		add("jwks_refresh", "between 1m and 168h", "jwks_refresh %s out of range", p.JWKSRefresh.D())
	}
	return append(errs, p.BearerCommon.validate()...)
}

// Validate checks an introspection provider's settings (no I/O).
func (p *IntrospectionProvider) Validate() []FieldError {
	var errs []FieldError
	add := func(key, hint, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	if p.URL == "" {
		add("url", "e.g. https://login.example.com/oauth2/introspect", "an introspection provider needs a url")
	} else if msg := FetchURLProblem(p.URL); msg != "" {
		add("url", "the client secret is sent there: use https (plain http only on a loopback address)", "invalid url %q: %s", p.URL, msg)
	}
	if p.ClientID == "" {
		add("client_id", "the endpoint must know who asks (RFC 7662 section 2.1)", "an introspection provider needs a client_id")
	}
	if p.ClientSecret == "" {
		add("client_secret", "use ${ENV} to keep it out of the file", "an introspection provider needs a client_secret")
	}
	if p.AuthMethod != "" && p.AuthMethod != "client_secret_basic" && p.AuthMethod != "client_secret_post" {
		add("auth_method", didYouMean(p.AuthMethod, []string{"client_secret_basic", "client_secret_post"}), "unknown value %q", p.AuthMethod)
	}
	if p.CacheTTL != 0 && (p.CacheTTL.D() < time.Second || p.CacheTTL.D() > 10*time.Minute) {
		add("cache_ttl", "between 1s and 10m: a revoked token stays accepted as long as its answer is cached", "cache_ttl %s out of range", p.CacheTTL.D())
	}
	if p.Timeout != 0 && (p.Timeout.D() < 100*time.Millisecond || p.Timeout.D() > time.Minute) {
		add("timeout", "between 100ms and 1m", "timeout %s out of range", p.Timeout.D())
	}
	return append(errs, p.BearerCommon.validate()...)
}

func (c *BearerCommon) validate() []FieldError {
	var errs []FieldError
	add := func(key, hint, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	if len(c.Audiences) == 0 {
		add("audiences", "the aud your API's tokens carry, e.g. [https://api.example.com]; without it a token minted for another API would pass", "a bearer provider needs audiences")
	}
	for i, a := range c.Audiences {
		if strings.TrimSpace(a) == "" {
			add("audiences", "", "audiences[%d] is empty", i)
		}
	}
	for name := range c.RequiredClaims {
		if strings.TrimSpace(name) == "" {
			add("required_claims", "", "empty claim name")
		}
	}
	for i, x := range c.Claims.Extra {
		if strings.TrimSpace(x) == "" {
			add("claims", "", "claims.extra[%d] is empty", i)
		}
	}
	if c.ClockSkew.D() > 5*time.Minute {
		add("clock_skew", "at most 5m; fix the clocks instead", "clock_skew %s is too large", c.ClockSkew.D())
	}
	if c.MaxTokenSize != 0 && (c.MaxTokenSize < 256 || c.MaxTokenSize > 32<<10) {
		add("max_token_size", "between 256 and 32768 bytes", "max_token_size %d out of range", c.MaxTokenSize)
	}
	if c.CacheSize < 0 || c.CacheSize > 1_000_000 {
		add("cache_size", "between 1 and 1000000 (0: the default)", "cache_size %d out of range", c.CacheSize)
	}
	return errs
}

// fetchURLProblem says what is wrong with a URL Gatehouse fetches keys
// from or sends secrets to, or "" when it is fine: it must be absolute,
// without user info or fragment, and https unless its host is loopback.
func FetchURLProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return "not an absolute URL"
	case u.User != nil || u.Fragment != "":
		return "user info and fragments are not allowed"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http":
		if IsLoopbackHost(u.Hostname()) {
			return ""
		}
		return "plain http is only allowed on a loopback address"
	}
	return fmt.Sprintf("unsupported scheme %q", u.Scheme)
}

// IsLoopbackHost reports whether host is localhost or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
