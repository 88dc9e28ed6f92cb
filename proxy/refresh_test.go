package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/providers/static"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// tokenPolicy has one route that forwards the access token and one that
// does not.
const tokenPolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
session:
  keys: ["e2e-test-session-key-0123456789abcdef"]
audiences:
  customer: { providers: [shoppers] }
providers:
  shoppers:
    type: static
    users:
      - { sub: c-1001, name: Dana Customer, email: dana@mail.example }
routes:
  - name: api-backed
    match: { path: /orders }
    audience: customer
    allow: { authenticated: true }
    upstream: "{{UP}}"
    forward: { user: X-User, access_token: Authorization }
  - name: plain
    match: { path: /plain }
    audience: customer
    allow: { authenticated: true }
    upstream: "{{UP}}"
    forward: { user: X-User }
`

// tokenShoppers is the static provider with OAuth tokens, the way an OIDC
// provider has them: the first access token expires in 30 s (inside the
// refresh window), refreshes hand out rotating refresh tokens.
type tokenShoppers struct {
	*static.Provider
	refreshes atomic.Int32
	revoked   atomic.Bool
	gate      chan struct{} // when set, Refresh waits on it
}

func (p *tokenShoppers) CompleteWithTokens(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, map[string]string, error) {
	id, err := p.Complete(ctx, r, a)
	if err != nil {
		return nil, nil, err
	}
	return id, map[string]string{"access_token": "at-0", "refresh_token": "rt-0", "token_type": "Bearer",
		"expiry": time.Now().Add(30 * time.Second).UTC().Format(time.RFC3339), "id_token": "idt", "sid": "op-session"}, nil
}

func (p *tokenShoppers) Refresh(ctx context.Context, id *identity.Identity, tokens map[string]string) (*identity.Identity, map[string]string, error) {
	if p.gate != nil {
		<-p.gate
	}
	if p.revoked.Load() {
		return nil, nil, providers.Fail("refresh_revoked", "Please sign in again.", errors.New("invalid_grant"))
	}
	n := p.refreshes.Add(1)
	if want := "rt-" + string(rune('0'+n-1)); tokens["refresh_token"] != want {
		return nil, nil, providers.Fail("refresh_revoked", "Please sign in again.", errors.New("reused refresh token "+tokens["refresh_token"]))
	}
	out := *id
	out.Name = "Dana Refreshed"
	return &out, map[string]string{"access_token": "at-" + string(rune('0'+n)), "refresh_token": "rt-" + string(rune('0'+n)),
		"expiry": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, nil
}

func newTokenEnv(t *testing.T, p **tokenShoppers) *env {
	return newEnvWith(t, envConfig{policy: tokenPolicy, edit: func(o *proxy.Options) {
		*p = &tokenShoppers{Provider: o.Providers["shoppers"].(*static.Provider)}
		o.Providers["shoppers"] = *p
	}})
}

func TestAccessTokenForwardedAndRefreshedBeforeExpiry(t *testing.T) {
	var p *tokenShoppers
	e := newTokenEnv(t, &p)
	b := e.browser()
	b.signIn("/orders", "c-1001")

	// The first request finds the token inside the refresh window.
	got := b.get("/orders", "Authorization", "Bearer forged-by-the-client").echo(t)
	if a := got.Header.Get("Authorization"); a != "Bearer at-1" {
		t.Fatalf("upstream Authorization %q, want the refreshed token", a)
	}
	if n := p.refreshes.Load(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	// Now valid for an hour: no more refreshes, the same token.
	for i := 0; i < 3; i++ {
		if a := b.get("/orders").echo(t).Header.Get("Authorization"); a != "Bearer at-1" {
			t.Fatalf("request %d: Authorization %q", i, a)
		}
	}
	if n := p.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes after the token was fresh, want 1", n)
	}
	// A route that does not forward the token never sees it, nor the
	// client's own Authorization... which is the client's to send there.
	if a := b.get("/plain").echo(t).Header.Get("Authorization"); a != "" {
		t.Errorf("route without access_token got Authorization %q", a)
	}
	// The session's identity was updated by the refresh.
	if who := b.get(proxy.Prefix + "whoami"); !strings.Contains(who.body, "Dana Refreshed") {
		t.Errorf("whoami after refresh: %s", who.body)
	}
}

func TestConcurrentRequestsRefreshOnce(t *testing.T) {
	var p *tokenShoppers
	e := newTokenEnv(t, &p)
	b := e.browser()
	b.signIn("/orders", "c-1001")
	p.gate = make(chan struct{})
	cookie := b.cookieHeader() // every request carries the old refresh token

	var wg sync.WaitGroup
	auth := make([]string, 8)
	for i := range auth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := replay(e, "/orders", cookie)
			if r.StatusCode == http.StatusOK {
				auth[i] = r.echo(t).Header.Get("Authorization")
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(p.gate)
	wg.Wait()
	if n := p.refreshes.Load(); n != 1 {
		t.Errorf("%d refreshes for 8 concurrent requests, want 1", n)
	}
	for i, a := range auth {
		if a != "Bearer at-1" {
			t.Errorf("request %d: Authorization %q, want Bearer at-1", i, a)
		}
	}
	// A late request with the old cookie still gets the remembered outcome
	// instead of reusing the rotated refresh token.
	if a := replay(e, "/orders", cookie).echo(t).Header.Get("Authorization"); a != "Bearer at-1" || p.refreshes.Load() != 1 {
		t.Errorf("late request with the old cookie: Authorization %q, %d refreshes", a, p.refreshes.Load())
	}
}

func TestRevokedGrantEndsTheSession(t *testing.T) {
	var p *tokenShoppers
	e := newTokenEnv(t, &p)
	b := e.browser()
	b.signIn("/orders", "c-1001")
	copied := b.cookieHeader()
	p.revoked.Store(true)
	r := b.get("/orders")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.location(), proxy.Prefix+"login?") {
		t.Fatalf("after the provider refused the refresh: status %d Location %q, want 302 to sign in", r.StatusCode, r.location())
	}
	if !e.loggedMsg("session ended: the provider refused to refresh it") {
		t.Error("not logged")
	}
	if r := replay(e, "/plain", copied); r.StatusCode != http.StatusFound {
		t.Errorf("copied cookie after the grant was revoked: status %d, want 302", r.StatusCode)
	}
}

func TestTokensNotKeptWithoutAForwardingRoute(t *testing.T) {
	var p *tokenShoppers
	pol := strings.Replace(tokenPolicy, "forward: { user: X-User, access_token: Authorization }", "forward: { user: X-User }", 1)
	e := newEnvWith(t, envConfig{policy: pol, edit: func(o *proxy.Options) {
		p = &tokenShoppers{Provider: o.Providers["shoppers"].(*static.Provider)}
		o.Providers["shoppers"] = p
	}})
	b := e.browser()
	b.signIn("/orders", "c-1001")
	got := b.get("/orders", "Authorization", "Bearer the-clients-own").echo(t)
	if a := got.Header.Get("Authorization"); a != "Bearer the-clients-own" {
		t.Errorf("Authorization %q: the client's header should pass untouched on a route that does not forward tokens", a)
	}
	if n := p.refreshes.Load(); n != 0 {
		t.Errorf("%d refreshes without a route that needs the token", n)
	}
	// Small cookie: no access or refresh token inside.
	if c := b.session(identity.Customer); len(c) > 700 {
		t.Errorf("session cookie is %d bytes; tokens seem to be kept", len(c))
	}
}
