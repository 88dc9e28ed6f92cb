package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// discovered is what discovery found: the provider's endpoints and a
// verifier bound to its key set.
type discovered struct {
	op       *gooidc.Provider
	issuer   string // the iss ID tokens carry (a template for multi-tenant Microsoft)
	verifier *gooidc.IDTokenVerifier
	endpoint oauth2.Endpoint
	meta     metadata
}

// metadata is the part of the discovery document go-oidc does not expose.
type metadata struct {
	Issuer                string   `json:"issuer"`
	JWKSURI               string   `json:"jwks_uri"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	IssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	ResponseModes         []string `json:"response_modes_supported"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
}

// errNotYet is Ready's answer before the first discovery finished.
var errNotYet = errors.New("discovery has not completed yet")

// Discover runs discovery now (or waits for the one running) and returns
// its error. Gatehouse never needs to call it: Begin, Complete and Ready
// discover on demand. It is there for callers that want to warm up.
func (p *Provider) Discover(ctx context.Context) error {
	_, err := p.discovery(ctx)
	return err
}

// Ready returns nil once discovery and the key set succeeded. Before that
// it starts a discovery in the background (at most one at a time, and not
// sooner than the retry interval after a failure) and returns why the
// provider is not ready yet, so a readiness probe both reports and heals.
func (p *Provider) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return nil
	}
	p.startLocked()
	if p.lastErr != nil {
		return fmt.Errorf("discovery of %s failed: %w", p.s.discoveryURL, p.lastErr)
	}
	return errNotYet
}

// discovery returns the discovered provider, discovering first when
// needed. A failure less than the retry interval ago is returned as is,
// so a provider that is down is not hammered by every sign-in.
func (p *Provider) discovery(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	if p.disc != nil {
		d := p.disc
		p.mu.Unlock()
		return d, nil
	}
	p.startLocked()
	ch, lastErr := p.inflight, p.lastErr
	p.mu.Unlock()
	if ch == nil { // failed recently and not retried yet
		return nil, fmt.Errorf("discovery of %s failed (retrying later): %w", p.s.discoveryURL, lastErr)
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return p.disc, nil
	}
	return nil, fmt.Errorf("discovery of %s failed: %w", p.s.discoveryURL, p.lastErr)
}

// startLocked starts a background discovery unless one runs or the last
// failure is too recent.
func (p *Provider) startLocked() {
	if p.disc != nil || p.inflight != nil {
		return
	}
	if p.lastErr != nil && time.Since(p.lastTry) < p.retry {
		return
	}
	ch := make(chan struct{})
	p.inflight = ch
	p.lastTry = time.Now()
	go func() {
		// Not tied to any request: a browser that gives up must not
		// cancel the discovery everybody else waits for.
		ctx, cancel := context.WithTimeout(context.Background(), p.s.timeout)
		d, err := p.discover(ctx)
		cancel()
		p.mu.Lock()
		if err != nil {
			p.lastErr = err
			p.log.Warn("OIDC discovery failed; sign-ins through this provider fail until it succeeds", zap.String("issuer", p.s.discoveryURL), zap.Error(err))
		} else {
			p.disc, p.lastErr = d, nil
			p.log.Info("OIDC provider discovered", zap.String("issuer", d.issuer))
		}
		p.inflight = nil
		p.mu.Unlock()
		close(ch)
	}()
}

// discover reads the discovery document and the key set once.
func (p *Provider) discover(ctx context.Context) (*discovered, error) {
	ctx = gooidc.ClientContext(ctx, p.env.HTTPClient)
	override := p.s.issuer != p.s.discoveryURL
	if override {
		// Microsoft: the discovery URL names a tenant alias while the
		// document names a tenant id or a template; checked below.
		ctx = gooidc.InsecureIssuerURLContext(ctx, p.s.issuer)
	}
	op, err := gooidc.NewProvider(ctx, p.s.discoveryURL)
	if err != nil {
		return nil, err
	}
	var meta metadata
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery document: %w", err)
	}
	issuer := p.s.issuer
	switch {
	case p.s.issuerFromDiscovery != nil:
		if issuer, err = p.s.issuerFromDiscovery(meta.Issuer); err != nil {
			return nil, err
		}
	case override && meta.Issuer != p.s.issuer:
		return nil, fmt.Errorf("discovered issuer %q, want %q", meta.Issuer, p.s.issuer)
	}
	ep := op.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" || meta.JWKSURI == "" {
		return nil, errors.New("discovery document lacks authorization_endpoint, token_endpoint or jwks_uri")
	}
	if len(meta.CodeChallengeMethods) > 0 && !slices.Contains(meta.CodeChallengeMethods, "S256") {
		p.log.Warn("provider does not list PKCE S256 in code_challenge_methods_supported; sending it anyway")
	}
	if p.s.formPost && len(meta.ResponseModes) > 0 && !slices.Contains(meta.ResponseModes, "form_post") {
		return nil, errors.New("response_mode form_post is configured but the provider does not support it")
	}
	if p.s.clientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	if err := p.checkJWKS(ctx, meta.JWKSURI); err != nil {
		return nil, err
	}
	keys := gooidc.NewRemoteKeySet(gooidc.ClientContext(context.Background(), p.env.HTTPClient), meta.JWKSURI)
	v := gooidc.NewVerifier(issuer, keys, &gooidc.Config{
		ClientID:             p.s.clientID,
		SupportedSigningAlgs: p.s.algorithms,
		SkipIssuerCheck:      p.s.tenantIssuer != nil, // checked against the token's tid
		Now:                  p.env.Now,
	})
	return &discovered{op: op, issuer: issuer, verifier: v, endpoint: ep, meta: meta}, nil
}

// checkJWKS fetches the key set once, so that readiness means the keys are
// reachable too. (The verifier keeps its own cache, refetched when a token
// names an unknown key: that is how key rotation is followed.)
func (p *Provider) checkJWKS(ctx context.Context, uri string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := p.env.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jwks: %s", resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	if len(set.Keys) == 0 {
		return errors.New("jwks: the key set is empty")
	}
	return nil
}
