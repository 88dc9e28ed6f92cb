package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/state"
)

// rlPolicy has a public route with its own per-IP limit, a plain public
// route and a workforce route with a per-user limit. Server limits come
// through {{SERVER_EXTRA}}.
const rlPolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
{{SERVER_EXTRA}}
session:
  keys: ["e2e-test-session-key-0123456789abcdef"]
audiences:
  workforce: { providers: [corp] }
providers:
  corp:
    type: static
    users:
      - { sub: alice, email: alice@corp.example, groups: [staff] }
      - { sub: bob, email: bob@corp.example, groups: [staff] }
routes:
  - name: login-api
    match: { path: /login-api }
    audience: public
    upstream: "{{UP}}"
    rate_limit:
      per_ip: { requests: 2, per: 1m }
  - name: public
    match: { path: /public }
    audience: public
    upstream: "{{UP}}"
  - name: app
    match: { path: /app }
    audience: workforce
    allow: { authenticated: true }
    upstream: "{{UP}}"
    rate_limit:
      per_user: { requests: 3, per: 1m }
`

// rlClock is a settable clock.
type rlClock struct {
	mu sync.Mutex
	t  time.Time
}

// newRLClock starts at the beginning of the current minute: never in the
// future (single-use sign-in states stay valid) and aligned on every
// window, so that Retry-After is exact.
func newRLClock() *rlClock { return &rlClock{t: time.Now().Truncate(time.Minute)} }

func (c *rlClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *rlClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rlLimiter wraps the memory Limiter: it records the keys it is asked
// about and fails while down is set.
type rlLimiter struct {
	inner state.Limiter
	mu    sync.Mutex
	keys  []string
	down  bool
	calls int
}

func (l *rlLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	l.mu.Lock()
	l.calls++
	l.keys = append(l.keys, key)
	down := l.down
	l.mu.Unlock()
	if down {
		return false, 0, fmt.Errorf("%w: dial tcp 10.0.0.1:6379: connection refused", state.ErrUnavailable)
	}
	return l.inner.Allow(ctx, key, limit, window)
}

func (l *rlLimiter) setDown(v bool) {
	l.mu.Lock()
	l.down = v
	l.mu.Unlock()
}

func (l *rlLimiter) stats() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls, append([]string(nil), l.keys...)
}

// rlShared is the memory state with the recording Limiter.
type rlShared struct {
	*state.Memory
	lim *rlLimiter
}

func (s rlShared) Limiter() state.Limiter { return s.lim }

type rlEnv struct {
	*env
	clock *rlClock
	lim   *rlLimiter
}

// newRLEnv serves rlPolicy (or policy) with server lines extra, the
// shared state on a settable clock; gatewayClock also gives the gateway
// that clock.
func newRLEnv(t testing.TB, policy, extra string, gatewayClock bool) *rlEnv {
	t.Helper()
	if policy == "" {
		policy = rlPolicy
	}
	clock := newRLClock()
	mem := state.NewMemory(clock.Now)
	lim := &rlLimiter{inner: mem.Limiter()}
	e := newEnvWith(t, envConfig{policy: policy, serverExtra: extra, edit: func(o *proxy.Options) {
		o.Shared = rlShared{Memory: mem, lim: lim}
		if gatewayClock {
			o.Now = clock.Now
		}
	}})
	return &rlEnv{env: e, clock: clock, lim: lim}
}

// serve sends a request straight to the gateway from remote (ip:port).
// hdr holds header name and value pairs.
func (e *rlEnv) serve(path, remote string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, e.public+path, nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html")
	}
	w := httptest.NewRecorder()
	e.gw.ServeHTTP(w, req)
	return w
}

// expect checks a sequence of statuses for the same request.
func (e *rlEnv) expect(path, remote string, want []int, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var w *httptest.ResponseRecorder
	for i, code := range want {
		w = e.serve(path, remote, hdr...)
		if w.Code != code {
			e.t.Fatalf("request %d to %s from %s: status %d, want %d: %.300s", i+1, path, remote, w.Code, code, w.Body.String())
		}
	}
	return w
}

func codes(n, code int, then ...int) []int {
	out := make([]int, 0, n+len(then))
	for range n {
		out = append(out, code)
	}
	return append(out, then...)
}

const serverPerIP3 = "  rate_limit:\n    per_ip: { requests: 3, per: 1m }\n"

func TestRateLimitPerIPExact(t *testing.T) {
	e := newRLEnv(t, "", serverPerIP3, false)
	w := e.expect("/public/x", "192.0.2.10:5555", codes(3, 200, 429))
	if got := w.Header().Get("Retry-After"); got != "60" {
		t.Fatalf("Retry-After %q, want 60 (the window began at the clock's minute)", got)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("browser got Content-Type %q, want the HTML page", ct)
	}
	if body := w.Body.String(); !strings.Contains(body, "Too many requests") || !strings.Contains(body, "60 seconds") {
		t.Fatalf("page does not explain the limit: %.600s", body)
	}
	if hits := len(e.up.hits()); hits != 3 {
		t.Fatalf("upstream got %d requests, want 3", hits)
	}
	if !e.logged("reason", "rate_limited:server.per_ip") {
		t.Fatal("access log lacks reason rate_limited:server.per_ip")
	}

	// An API client gets JSON.
	w = e.serve("/public/x", "192.0.2.10:5555", "Accept", "application/json")
	var j struct{ Error, Message, Request_ID string }
	if w.Code != http.StatusTooManyRequests || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("API client: status %d Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(w.Body.Bytes(), &j); err != nil || j.Error != "rate_limited" || j.Request_ID == "" || w.Header().Get("Retry-After") != "60" {
		t.Fatalf("API client body %s (err %v), Retry-After %q", w.Body.String(), err, w.Header().Get("Retry-After"))
	}

	// The gateway's own endpoints (sign-in: a brute-force target) count too.
	if w := e.serve(proxy.Prefix+"login?audience=workforce", "192.0.2.10:5555"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("sign-in endpoint over the limit: status %d, want 429", w.Code)
	}

	// The window ends: the counter starts again. Retry-After is rounded up.
	e.clock.Advance(30*time.Second + 200*time.Millisecond)
	if w := e.serve("/public/x", "192.0.2.10:5555"); w.Code != 429 || w.Header().Get("Retry-After") != "30" {
		t.Fatalf("29.8s before the window ends: status %d Retry-After %q, want 429 and 30", w.Code, w.Header().Get("Retry-After"))
	}
	e.clock.Advance(30 * time.Second)
	e.expect("/public/x", "192.0.2.10:5555", codes(3, 200, 429))
}

func TestRateLimitSeparateIPsAndIPv6Slash64(t *testing.T) {
	e := newRLEnv(t, "", serverPerIP3, false)
	e.expect("/public/", "192.0.2.10:1", codes(3, 200, 429))
	e.expect("/public/", "192.0.2.11:1", codes(3, 200, 429))
	// An IPv4-mapped IPv6 peer is the same IPv4 client.
	e.expect("/public/", "[::ffff:192.0.2.11]:2", []int{429})

	// Addresses in one /64 share a counter, whatever the interface id.
	e.expect("/public/", "[2001:db8:1:2::1]:1", codes(1, 200))
	e.expect("/public/", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:1", codes(1, 200))
	e.expect("/public/", "[2001:db8:1:2:ffff::9]:1", codes(1, 200, 429))
	// The next /64 is another client.
	e.expect("/public/", "[2001:db8:1:3::1]:1", codes(3, 200, 429))
}

func TestRateLimitBehindTrustedProxy(t *testing.T) {
	e := newRLEnv(t, "", "  trusted_proxies: [10.0.0.0/8]\n"+serverPerIP3, false)
	proxyPeer := "10.0.0.5:4000"
	// Clients behind the proxy are told apart by X-Forwarded-For.
	e.expect("/public/", proxyPeer, codes(3, 200, 429), "X-Forwarded-For", "198.51.100.7")
	e.expect("/public/", proxyPeer, codes(3, 200), "X-Forwarded-For", "198.51.100.8")
	// Entries left of the proxy's are the client's own words: rotating
	// them does not dodge the limit. Trusted hops on the right are skipped,
	// across header lines too.
	for i, xff := range []string{"1.1.1.1, 198.51.100.7", "8.8.8.8,198.51.100.7, 10.0.0.9", "garbage, 198.51.100.7"} {
		if w := e.serve("/public/", proxyPeer, "X-Forwarded-For", xff); w.Code != 429 {
			t.Fatalf("chain %d %q: status %d, want 429 (client 198.51.100.7)", i, xff, w.Code)
		}
	}
	if w := e.serve("/public/", proxyPeer, "X-Forwarded-For", "203.0.113.1", "X-Forwarded-For", "198.51.100.7:443"); w.Code != 429 {
		t.Fatalf("two header lines, port on the last: status %d, want 429", w.Code)
	}
	// Without X-Forwarded-For the proxy itself is the client.
	e.expect("/public/", proxyPeer, codes(3, 200, 429))
}

func TestRateLimitUntrustedForwardedForIgnored(t *testing.T) {
	e := newRLEnv(t, "", "  trusted_proxies: [10.0.0.0/8]\n"+serverPerIP3, false)
	for i := range 5 {
		w := e.serve("/public/", "203.0.113.9:4000", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1), "X-Real-Ip", fmt.Sprintf("198.51.100.%d", i+1))
		want := 200
		if i >= 3 {
			want = 429
		}
		if w.Code != want {
			t.Fatalf("request %d with a rotated X-Forwarded-For from an untrusted peer: status %d, want %d", i+1, w.Code, want)
		}
	}
}

func TestRateLimitRouteSeparateFromServer(t *testing.T) {
	e := newRLEnv(t, "", "  rate_limit:\n    per_ip: { requests: 5, per: 1m }\n", false)
	ip := "192.0.2.20:1"
	w := e.expect("/login-api", ip, codes(2, 200, 429)) // server count 3
	if w.Header().Get("Retry-After") != "60" {
		t.Fatalf("route limit Retry-After %q", w.Header().Get("Retry-After"))
	}
	if !e.logged("reason", "rate_limited:route.per_ip") {
		t.Fatal("access log lacks reason rate_limited:route.per_ip")
	}
	// Other routes only see the server limit: 2 more, then it refuses.
	e.expect("/public/", ip, codes(2, 200, 429))
	if !e.logged("reason", "rate_limited:server.per_ip") {
		t.Fatal("access log lacks reason rate_limited:server.per_ip")
	}
	// Another client is untouched by both.
	e.expect("/login-api", "192.0.2.21:1", codes(2, 200, 429))
	_, keys := e.lim.stats()
	var sawRoute bool
	for _, k := range keys {
		sawRoute = sawRoute || strings.HasPrefix(k, "r:login-api:ip:1m0s:")
	}
	if !sawRoute {
		t.Fatalf("no route counter key among %q", keys)
	}
}

func TestRateLimitPerUserAfterSignIn(t *testing.T) {
	// A generous server limit too: sign-in requests count per IP.
	e := newRLEnv(t, "", "  rate_limit:\n    per_ip: { requests: 1000, per: 1m }\n", false)
	alice := e.browser()
	alice.signIn("/app/", "alice")
	for i := range 3 {
		if r := alice.get("/app/"); r.StatusCode != 200 {
			t.Fatalf("alice request %d: status %d", i+1, r.StatusCode)
		}
	}
	r := alice.get("/app/")
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "60" {
		t.Fatalf("alice's 4th request: status %d Retry-After %q, want 429 and 60", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if !e.logged("reason", "rate_limited:route.per_user") {
		t.Fatal("access log lacks reason rate_limited:route.per_user")
	}
	// API-style request from the same person: JSON.
	r = alice.do(http.MethodGet, "/app/", nil, "Accept", "application/json")
	if j := decodeJSONError(t, r); r.StatusCode != 429 || j.Error != "rate_limited" {
		t.Fatalf("JSON client: status %d error %q", r.StatusCode, j.Error)
	}

	// Bob, from the same address, has his own counter; anonymous requests
	// (the redirects to sign-in) count only per IP.
	bob := e.browser()
	for range 5 {
		if r := bob.get("/app/"); r.StatusCode != http.StatusFound {
			t.Fatalf("anonymous request: status %d, want 302 to sign-in", r.StatusCode)
		}
	}
	bob.signIn("/app/", "bob")
	for i := range 3 {
		if r := bob.get("/app/"); r.StatusCode != 200 {
			t.Fatalf("bob request %d: status %d", i+1, r.StatusCode)
		}
	}

	// No address or user id appears in clear in any counter key.
	_, keys := e.lim.stats()
	for _, k := range keys {
		for _, secret := range []string{"alice", "bob", "corp", "127.0.0.1"} {
			if strings.Contains(k, secret) {
				t.Fatalf("counter key %q contains %q", k, secret)
			}
		}
	}
}

func TestRateLimitServerPerUser(t *testing.T) {
	e := newRLEnv(t, "", "  rate_limit:\n    per_user: { requests: 2, per: 1h }\n", false)
	b := e.browser()
	b.signIn("/app/", "alice")
	b.get("/app/")
	b.get("/app/")
	r := b.get("/app/")
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: status %d, want 429 (server per_user is stricter than the route's 3)", r.StatusCode)
	}
	if !e.logged("reason", "rate_limited:server.per_user") {
		t.Fatal("access log lacks reason rate_limited:server.per_user")
	}
}

func TestRateLimitFailsOpen(t *testing.T) {
	e := newRLEnv(t, "", serverPerIP3, true)
	e.lim.setDown(true)
	e.expect("/public/", "192.0.2.30:1", codes(6, 200))
	const warning = "rate limits not enforced: the shared state cannot count requests; letting requests through"
	count := func() int {
		n := 0
		for _, le := range e.logs.All() {
			if le.Message == warning {
				n++
			}
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d warnings for one outage, want 1", n)
	}
	// After a failure the limiter is left alone for a while.
	if calls, _ := e.lim.stats(); calls != 1 {
		t.Fatalf("limiter asked %d times during the pause, want 1", calls)
	}
	// The pause ends; still down: asked again, but no second warning
	// within 10 seconds.
	e.clock.Advance(6 * time.Second)
	e.expect("/public/", "192.0.2.30:1", codes(2, 200))
	if calls, _ := e.lim.stats(); calls != 2 || count() != 1 {
		t.Fatalf("after the pause: %d calls, %d warnings; want 2 and 1", calls, count())
	}
	e.clock.Advance(6 * time.Second)
	e.serve("/public/", "192.0.2.30:1")
	if count() != 2 {
		t.Fatalf("%d warnings 12s into the outage, want 2", count())
	}
	// The state is back: limits apply again once the pause is over.
	e.lim.setDown(false)
	e.clock.Advance(6 * time.Second)
	e.expect("/public/", "192.0.2.31:1", codes(3, 200, 429))
}

func TestRateLimitNoneConfiguredNeverCounts(t *testing.T) {
	pol := strings.NewReplacer("    rate_limit:\n      per_ip: { requests: 2, per: 1m }\n", "",
		"    rate_limit:\n      per_user: { requests: 3, per: 1m }\n", "").Replace(rlPolicy)
	e := newRLEnv(t, pol, "", false)
	e.expect("/public/", "192.0.2.40:1", codes(10, 200))
	b := e.browser()
	b.signIn("/app/", "alice")
	b.get("/app/")
	if calls, _ := e.lim.stats(); calls != 0 {
		t.Fatalf("limiter asked %d times without any rate_limit", calls)
	}
}

// Benchmarks: the whole request path (session route, in-memory upstream),
// without rate limits, with the server's per-IP limit, and with all four.
// The difference is the hook's cost.
func BenchmarkRateLimit(b *testing.B) {
	for _, bc := range []struct{ name, extra, route string }{
		{"none", "", ""},
		{"server_per_ip", "  rate_limit:\n    per_ip: { requests: 1000000000, per: 1h }\n", ""},
		{"all_four", "  rate_limit:\n    per_ip: { requests: 1000000000, per: 1h }\n    per_user: { requests: 1000000000, per: 1h }\n",
			"    rate_limit:\n      per_ip: { requests: 1000000000, per: 1h }\n      per_user: { requests: 1000000000, per: 1h }\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pol := strings.NewReplacer("    rate_limit:\n      per_ip: { requests: 2, per: 1m }\n", "",
				"    rate_limit:\n      per_user: { requests: 3, per: 1m }\n", bc.route).Replace(rlPolicy)
			e := newEnvWith(b, envConfig{policy: pol, serverExtra: bc.extra, logger: discardLog(), edit: func(o *proxy.Options) {
				o.Shared = state.NewMemory(nil)
				o.Transport = cannedTransport{}
			}})
			br := e.browser()
			br.signIn("/app/", "alice")
			cookie := br.cookieHeader()
			req := httptest.NewRequest(http.MethodGet, "https://gw.example/app/page", nil)
			req.RemoteAddr = "192.0.2.50:40000"
			req.Header.Set("Cookie", cookie)
			req.Header.Set("Accept", "text/html")
			runProxyBench(b, e.gw, req)
		})
	}
}

// discardLog logs JSON at info level to nowhere, as production would log
// to its collector.
func discardLog() *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
}
