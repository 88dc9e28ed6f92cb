package bearer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

const maxIntrospectionBytes = 1 << 20

// Introspection checks opaque access tokens at an RFC 7662 endpoint.
type Introspection struct {
	name         string
	endpoint     string
	clientID     string
	clientSecret string
	post         bool // client_secret_post instead of client_secret_basic
	issuer       string
	ttl          time.Duration
	timeout      time.Duration
	skew         time.Duration
	maxSize      int
	mapping      *mapping
	cache        *cache
	client       *http.Client
	now          func() time.Time

	mu       sync.Mutex
	inflight map[cacheKey]*call
}

// call is one introspection request that concurrent requests for the same
// token share.
type call struct {
	done chan struct{}
	id   *identity.Identity
	err  error
}

var _ providers.BearerAuthenticator = (*Introspection)(nil)

// NewIntrospection builds an introspection authenticator from validated
// settings. It does no I/O.
func NewIntrospection(name string, cfg *config.IntrospectionProvider, env Env) (*Introspection, error) {
	env = env.withDefaults()
	if msg := config.FetchURLProblem(cfg.URL); msg != "" {
		return nil, fmt.Errorf("bearer: introspection url %q: %s", cfg.URL, msg)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("bearer: introspection needs client_id and client_secret")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("bearer: introspection provider needs audiences")
	}
	// The token and the client's credentials are never re-sent to
	// wherever a redirect points.
	client := *env.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Introspection{
		name:         name,
		endpoint:     cfg.URL,
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		post:         cfg.AuthMethod == "client_secret_post",
		issuer:       cfg.Issuer,
		ttl:          durationOr(cfg.CacheTTL.D(), config.DefaultIntrospectionTTL),
		timeout:      durationOr(cfg.Timeout.D(), config.DefaultIntrospectionTimeout),
		skew:         durationOr(cfg.ClockSkew.D(), config.DefaultBearerClockSkew),
		maxSize:      intOr(cfg.MaxTokenSize, config.DefaultBearerMaxTokenSize),
		mapping:      newMapping(&cfg.BearerCommon),
		cache:        newCache(name, intOr(cfg.CacheSize, config.DefaultBearerCacheSize)),
		client:       &client,
		now:          env.Now,
		inflight:     map[cacheKey]*call{},
	}, nil
}

// Name returns the provider's policy name.
func (p *Introspection) Name() string { return p.name }

// Type returns "introspection".
func (p *Introspection) Type() string { return "introspection" }

// Authenticate checks the request's bearer token at the endpoint, or in
// the cache. It returns (nil, nil) without a token, and an *Error wrapping
// providers.ErrInvalidToken when the token is refused or cannot be
// checked. As with JWT, the identity's slices and Extra map are shared
// with the cache and read-only.
func (p *Introspection) Authenticate(ctx context.Context, r *http.Request) (*identity.Identity, error) {
	tok, err := bearerToken(r, p.maxSize)
	if err != nil || tok == "" {
		return nil, err
	}
	k := p.cache.key(tok)
	if id := p.cache.get(k, p.now(), 0); id != nil {
		return id, nil
	}

	// Concurrent requests with the same token share one call.
	p.mu.Lock()
	c, wait := p.inflight[k]
	if !wait {
		// A call that just ended has filled the cache.
		if id := p.cache.get(k, p.now(), 0); id != nil {
			p.mu.Unlock()
			return id, nil
		}
		c = &call{done: make(chan struct{})}
		p.inflight[k] = c
	}
	p.mu.Unlock()
	if wait {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, refuse(ErrUnavailable, "request ended while waiting for introspection: %v", ctx.Err())
		}
	} else {
		// The call outlives the request that started it: the others
		// waiting for it must not fail because this client hung up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		var exp time.Time
		c.id, exp, c.err = p.introspect(cctx, tok)
		cancel()
		if c.err == nil {
			p.cache.put(k, c.id, exp, p.now(), 0)
		}
		p.mu.Lock()
		delete(p.inflight, k)
		p.mu.Unlock()
		close(c.done)
	}
	if c.err != nil {
		return nil, c.err
	}
	cp := *c.id
	return &cp, nil
}

// introspect asks the endpoint about tok and checks the answer. It returns
// the identity and until when it may be cached: at most cache_ttl from
// now, and never past the token's exp.
func (p *Introspection) introspect(ctx context.Context, tok string) (*identity.Identity, time.Time, error) {
	var zero time.Time
	form := url.Values{"token": {tok}, "token_type_hint": {"access_token"}}
	if p.post {
		form.Set("client_id", p.clientID)
		form.Set("client_secret", p.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, zero, refuse(ErrUnavailable, "introspection request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if !p.post {
		// RFC 6749 section 2.3.1: form-encode both before Basic.
		req.SetBasicAuth(url.QueryEscape(p.clientID), url.QueryEscape(p.clientSecret))
	}
	res, err := p.client.Do(req)
	if err != nil {
		return nil, zero, refuse(ErrUnavailable, "introspection: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return nil, zero, refuse(ErrUnavailable, "introspection endpoint answered %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxIntrospectionBytes+1))
	if err != nil {
		return nil, zero, refuse(ErrUnavailable, "introspection response: %v", err)
	}
	if len(body) > maxIntrospectionBytes {
		return nil, zero, refuse(ErrUnavailable, "introspection response larger than %d bytes", maxIntrospectionBytes)
	}
	resp, err := decodeObject(body)
	if err != nil {
		return nil, zero, refuse(ErrUnavailable, "introspection response: %v", err)
	}
	now := p.now()
	return p.check(resp, now)
}

// check applies the policy to an introspection response.
func (p *Introspection) check(resp object, now time.Time) (*identity.Identity, time.Time, error) {
	var zero time.Time
	if raw := resp["active"]; string(raw) != "true" {
		return nil, zero, refuse(ErrInactive, "active is %s", orNothing(string(raw)))
	}
	if tt, _, _ := resp.str("token_type"); strings.Contains(strings.ToLower(tt), "refresh") {
		return nil, zero, refuse(ErrClaims, "token_type %q: only access tokens are accepted", tt)
	}
	iss, hasIss, err := resp.str("iss")
	if err != nil {
		return nil, zero, refuse(ErrIssuer, "%v", err)
	}
	if p.issuer != "" {
		if !hasIss {
			return nil, zero, refuse(ErrIssuer, "no iss in the introspection response")
		}
		if iss != p.issuer {
			return nil, zero, refuse(ErrIssuer, "iss %q, want %q", iss, p.issuer)
		}
	}
	if err := p.mapping.checkAudience(resp); err != nil {
		return nil, zero, err
	}
	exp, err := checkTimes(resp, now, p.skew, false)
	if err != nil {
		return nil, zero, err
	}
	id, err := p.mapping.identity(resp)
	if err != nil {
		return nil, zero, err
	}
	switch {
	case iss != "":
		id.Issuer = iss
	case p.issuer != "":
		id.Issuer = p.issuer
	default:
		id.Issuer = p.endpoint
	}
	id.Provider = p.name
	until := now.Add(p.ttl)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	return id, until, nil
}

func orNothing(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}
