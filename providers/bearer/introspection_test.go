package bearer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

const (
	asClientID     = "gatehouse"
	asClientSecret = "s3cr:et%/+"
)

// authServer is a fake RFC 7662 endpoint: answers by token, counts calls,
// and checks the client's credentials.
type authServer struct {
	srv     *httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	answers map[string]string // token -> JSON response
	status  atomic.Int64      // non-zero: answer with this status
	gate    chan struct{}     // non-nil: wait for it before answering
	post    bool              // expect client_secret_post
}

func newAuthServer(t testing.TB) *authServer {
	t.Helper()
	as := &authServer{answers: map[string]string{}}
	as.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		as.calls.Add(1)
		if as.gate != nil {
			<-as.gate
		}
		if r.Method != http.MethodPost || r.URL.Path != "/introspect" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		var id, secret string
		if as.post {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		} else {
			u, p, ok := r.BasicAuth()
			if !ok {
				http.Error(w, "no client auth", http.StatusUnauthorized)
				return
			}
			id, _ = url.QueryUnescape(u)
			secret, _ = url.QueryUnescape(p)
		}
		if id != asClientID || secret != asClientSecret {
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		if s := as.status.Load(); s != 0 {
			http.Error(w, "broken", int(s))
			return
		}
		if r.PostForm.Get("token_type_hint") != "access_token" {
			http.Error(w, "no hint", http.StatusBadRequest)
			return
		}
		as.mu.Lock()
		ans, ok := as.answers[r.PostForm.Get("token")]
		as.mu.Unlock()
		if !ok {
			ans = `{"active":false}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(ans))
	}))
	t.Cleanup(as.srv.Close)
	return as
}

func (as *authServer) set(tok string, resp any) {
	s, ok := resp.(string)
	if !ok {
		s = mustJSON(resp)
	}
	as.mu.Lock()
	as.answers[tok] = s
	as.mu.Unlock()
}

func introspectionConfig(as *authServer) *config.IntrospectionProvider {
	return &config.IntrospectionProvider{
		ProviderCommon: config.ProviderCommon{Type: "introspection"},
		BearerCommon:   config.BearerCommon{Audiences: []string{testAud}, Claims: config.BearerClaims{Extra: []string{"client_id"}}},
		URL:            as.srv.URL + "/introspect",
		ClientID:       asClientID,
		ClientSecret:   asClientSecret,
		Issuer:         "https://as.example",
	}
}

func newIntrospectionFor(t testing.TB, name string, cfg *config.IntrospectionProvider, clock *fakeClock) *Introspection {
	t.Helper()
	p, err := NewIntrospection(name, cfg, Env{Now: clock.Now})
	if err != nil {
		t.Fatalf("NewIntrospection: %v", err)
	}
	return p
}

// active is a response for an active token valid at t0.
func active(extra map[string]any) map[string]any {
	m := map[string]any{
		"active": true, "iss": "https://as.example", "sub": "user-7", "aud": testAud, "client_id": "mobile-app",
		"scope": "orders:read", "exp": t0.Unix() + 3600, "iat": t0.Unix() - 10, "token_type": "Bearer",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func TestIntrospection(t *testing.T) {
	as := newAuthServer(t)
	clock := newClock()
	p := newIntrospectionFor(t, "opaque", introspectionConfig(as), clock)

	as.set("good-token", active(map[string]any{"scp": []string{"ignored"}, "email": "u@corp.example", "email_verified": true}))
	id := mustAccept(t, p, bearerReq("good-token"))
	want := identity.Identity{Subject: "user-7", Issuer: "https://as.example", Provider: "opaque", Audience: identity.API,
		Email: "u@corp.example", EmailVerified: true, Scopes: []string{"orders:read"}, AuthTime: t0.Add(-10 * time.Second),
		Extra: map[string]string{"client_id": "mobile-app"}}
	if mustJSON(id) != mustJSON(&want) {
		t.Errorf("identity\n got %s\nwant %s", mustJSON(id), mustJSON(&want))
	}

	for _, tc := range []struct {
		name   string
		resp   any
		reason error
	}{
		{"inactive", map[string]any{"active": false}, ErrInactive},
		{"active missing", active(map[string]any{"active": nil}), ErrInactive},
		{"active as a string", active(map[string]any{"active": "true"}), ErrInactive},
		{"active as a number", active(map[string]any{"active": 1}), ErrInactive},
		{"duplicate active", `{"active":false,"active":true,"sub":"x","aud":"` + testAud + `","iss":"https://as.example"}`, ErrUnavailable},
		{"not JSON", `<html>`, ErrUnavailable},
		{"expired", active(map[string]any{"exp": t0.Unix() - 60}), ErrExpired},
		{"not yet valid", active(map[string]any{"nbf": t0.Unix() + 60}), ErrNotYetValid},
		{"wrong iss", active(map[string]any{"iss": "https://evil.example"}), ErrIssuer},
		{"no iss", active(map[string]any{"iss": nil}), ErrIssuer},
		{"wrong aud", active(map[string]any{"aud": "https://other.example"}), ErrAudience},
		{"no aud", active(map[string]any{"aud": nil}), ErrAudience},
		{"empty aud", active(map[string]any{"aud": []string{}}), ErrAudience},
		{"refresh token", active(map[string]any{"token_type": "refresh_token"}), ErrClaims},
		{"no sub", active(map[string]any{"sub": nil}), ErrClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := "tok-" + strings.ReplaceAll(tc.name, " ", "-")
			as.set(tok, tc.resp)
			mustRefuse(t, p, bearerReq(tok), tc.reason)
		})
	}
	t.Run("aud array containing the audience", func(t *testing.T) {
		as.set("aud-array", active(map[string]any{"aud": []string{"x", testAud}}))
		mustAccept(t, p, bearerReq("aud-array"))
	})
	t.Run("no exp: cached for cache_ttl only", func(t *testing.T) {
		as.set("no-exp", active(map[string]any{"exp": nil}))
		mustAccept(t, p, bearerReq("no-exp"))
	})
	t.Run("unknown token", func(t *testing.T) {
		mustRefuse(t, p, bearerReq("never-issued"), ErrInactive)
	})
	t.Run("no token", func(t *testing.T) {
		n := as.calls.Load()
		if id, err := p.Authenticate(context.Background(), req()); id != nil || err != nil {
			t.Fatalf("(%v, %v), want (nil, nil)", id, err)
		}
		if id, err := p.Authenticate(context.Background(), httptest.NewRequest("GET", "/?access_token=good-token", nil)); id != nil || err != nil {
			t.Fatalf("token in query: (%v, %v), want (nil, nil)", id, err)
		}
		mustRefuse(t, p, req("Authorization", "Bearer good-token", "Authorization", "Bearer good-token"), ErrRequest)
		mustRefuse(t, p, req("Authorization", "Bearer a&b=c"), ErrRequest)
		mustRefuse(t, p, bearerReq(strings.Repeat("a", 9000)), ErrTooLarge)
		if as.calls.Load() != n {
			t.Error("the endpoint was called for requests without a usable token")
		}
	})
}

func TestIntrospectionEndpointFailures(t *testing.T) {
	as := newAuthServer(t)
	clock := newClock()
	as.set("t", active(nil))

	as.status.Store(http.StatusInternalServerError)
	p := newIntrospectionFor(t, "opaque", introspectionConfig(as), clock)
	mustRefuse(t, p, bearerReq("t"), ErrUnavailable)
	as.status.Store(0)
	mustAccept(t, p, bearerReq("t")) // failures are not cached

	cfg := introspectionConfig(as)
	cfg.ClientSecret = "wrong"
	mustRefuse(t, newIntrospectionFor(t, "wrong-secret", cfg, clock), bearerReq("t"), ErrUnavailable)

	// client_secret_post.
	as.post = true
	cfg = introspectionConfig(as)
	cfg.AuthMethod = "client_secret_post"
	mustAccept(t, newIntrospectionFor(t, "post", cfg, clock), bearerReq("t"))
	as.post = false

	// Unreachable.
	cfg = introspectionConfig(as)
	cfg.URL = "http://127.0.0.1:1/introspect"
	mustRefuse(t, newIntrospectionFor(t, "down", cfg, clock), bearerReq("t"), ErrUnavailable)

	// A slow endpoint hits the timeout.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)
	cfg = introspectionConfig(as)
	cfg.URL = slow.URL
	cfg.Timeout = config.Duration(100 * time.Millisecond)
	start := time.Now()
	mustRefuse(t, newIntrospectionFor(t, "slow", cfg, clock), bearerReq("t"), ErrUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}

	// Constructor refusals.
	for name, mod := range map[string]func(*config.IntrospectionProvider){
		"plain http":   func(c *config.IntrospectionProvider) { c.URL = "http://as.example.com/introspect" },
		"no secret":    func(c *config.IntrospectionProvider) { c.ClientSecret = "" },
		"no audiences": func(c *config.IntrospectionProvider) { c.Audiences = nil },
	} {
		c := introspectionConfig(as)
		mod(c)
		if _, err := NewIntrospection("x", c, Env{}); err == nil {
			t.Errorf("NewIntrospection with %s: no error", name)
		}
	}
}

func TestIntrospectionCache(t *testing.T) {
	as := newAuthServer(t)
	clock := newClock()
	cfg := introspectionConfig(as)
	cfg.CacheTTL = config.Duration(30 * time.Second)
	p := newIntrospectionFor(t, "opaque", cfg, clock)

	// A hit avoids a second call.
	as.set("t1", active(nil))
	for range 5 {
		id := mustAccept(t, p, bearerReq("t1"))
		id.Subject = "mutated" // the caller's copy; the cached one is untouched
		id.Audience = ""
	}
	if n := as.calls.Load(); n != 1 {
		t.Fatalf("%d calls for one token, want 1", n)
	}
	if id := mustAccept(t, p, bearerReq("t1")); id.Subject != "user-7" {
		t.Fatalf("cached identity mutated: %+v", id)
	}

	// cache_ttl: after 30s the endpoint is asked again (and may say the
	// token was revoked).
	clock.Advance(30 * time.Second)
	as.set("t1", map[string]any{"active": false})
	mustRefuse(t, p, bearerReq("t1"), ErrInactive)
	if n := as.calls.Load(); n != 2 {
		t.Fatalf("%d calls after cache_ttl, want 2", n)
	}

	// Never past exp: exp in 5s, cache_ttl 30s.
	as.set("t2", active(map[string]any{"exp": clock.Now().Unix() + 5}))
	mustAccept(t, p, bearerReq("t2"))
	mustAccept(t, p, bearerReq("t2"))
	calls := as.calls.Load()
	clock.Advance(5 * time.Second)
	as.set("t2", map[string]any{"active": false})
	mustRefuse(t, p, bearerReq("t2"), ErrInactive)
	if n := as.calls.Load(); n != calls+1 {
		t.Fatalf("cache outlived the token's exp: %d calls, want %d", n, calls+1)
	}

	// Keyed by provider: the same token at two providers is two calls,
	// and a provider with another audience does not reuse the answer.
	as.set("t3", active(map[string]any{"exp": clock.Now().Unix() + 600}))
	q := newIntrospectionFor(t, "opaque-2", introspectionConfig(as), clock)
	calls = as.calls.Load()
	mustAccept(t, p, bearerReq("t3"))
	mustAccept(t, q, bearerReq("t3"))
	mustAccept(t, p, bearerReq("t3"))
	mustAccept(t, q, bearerReq("t3"))
	if n := as.calls.Load(); n != calls+2 {
		t.Fatalf("two providers, one token: %d calls, want 2", n-calls)
	}
	cfgB := introspectionConfig(as)
	cfgB.Audiences = []string{"billing"}
	mustRefuse(t, newIntrospectionFor(t, "billing", cfgB, clock), bearerReq("t3"), ErrAudience)

	// Refusals are not cached as successes, and a refused answer is asked
	// again (never turned into an acceptance later by the cache).
	as.set("t4", active(map[string]any{"aud": "other"}))
	mustRefuse(t, p, bearerReq("t4"), ErrAudience)
	mustRefuse(t, p, bearerReq("t4"), ErrAudience)
}

// Concurrent requests with one uncached token make one call.
func TestIntrospectionSharedCall(t *testing.T) {
	as := newAuthServer(t)
	as.gate = make(chan struct{})
	clock := newClock()
	p := newIntrospectionFor(t, "opaque", introspectionConfig(as), clock)
	as.set("shared", active(nil))

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := p.Authenticate(context.Background(), bearerReq("shared"))
			if err == nil && id == nil {
				err = errors.New("no identity")
			}
			errs <- err
		}()
	}
	// Let the first call reach the server, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for as.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(as.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := as.calls.Load(); n != 1 {
		t.Fatalf("%d calls for 20 concurrent requests, want 1", n)
	}

	// A waiting request whose client hangs up returns at once.
	as2 := newAuthServer(t)
	as2.gate = make(chan struct{})
	defer close(as2.gate)
	p2 := newIntrospectionFor(t, "opaque2", introspectionConfig(as2), clock)
	go p2.Authenticate(context.Background(), bearerReq("x"))
	for as2.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p2.Authenticate(ctx, bearerReq("x"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled waiter: %v", err)
	}
}

// Scopes from a space-separated scope string and from an scp list.
func TestIntrospectionScopes(t *testing.T) {
	as := newAuthServer(t)
	clock := newClock()
	p := newIntrospectionFor(t, "opaque", introspectionConfig(as), clock)
	as.set("s1", active(map[string]any{"scope": "a  b c"}))
	as.set("s2", active(map[string]any{"scope": nil, "scp": []string{"x", "y"}}))
	if got := mustAccept(t, p, bearerReq("s1")).Scopes; !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("scope string: %q", got)
	}
	if got := mustAccept(t, p, bearerReq("s2")).Scopes; !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("scp list: %q", got)
	}
}

// Redirects: the introspection call never follows one (the token and the
// client secret stay with the configured endpoint); key fetches follow
// only https (or loopback) redirects.
func TestRedirects(t *testing.T) {
	as := newAuthServer(t)
	as.set("t", active(nil))
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := as.srv.URL + "/introspect"
		if r.URL.Path == "/jwks" {
			target = "http://keys.example.com/jwks"
		}
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	clock := newClock()
	cfg := introspectionConfig(as)
	cfg.URL = redir.URL + "/introspect"
	mustRefuse(t, newIntrospectionFor(t, "redirected", cfg, clock), bearerReq("t"), ErrUnavailable)
	if n := as.calls.Load(); n != 0 {
		t.Fatalf("the redirect was followed: %d calls", n)
	}

	keysForTests(t)
	p := newIDP(t, jwk("a", "", rsaA))
	jcfg := baseJWTConfig(p)
	jcfg.JWKSURL = redir.URL + "/jwks"
	j := newJWTFor(t, "redirected", jcfg, clock)
	mustRefuse(t, j, bearerReq(token(t, testKey{"a", "RS256", rsaA}, claims(p, nil))), ErrUnavailable)
	if err := j.Ready(); err == nil || !strings.Contains(err.Error(), "redirect to http://keys.example.com/jwks") {
		t.Fatalf("Ready = %v, want the refused redirect", err)
	}
}
