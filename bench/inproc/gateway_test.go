package inproc

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/session"
)

const body = "gatehouse bench upstream: fixed body of one hundred bytes for the loopback load harness ...........\n"

// stub is an upstream that answers every request at once with 200 and
// the fixed body, the way bench/upstream does over the network.
type stub struct{}

func (stub) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r,
	}, nil
}

const policy = `version: 1
server: { listen: "127.0.0.1:8080", public_url: "http://127.0.0.1:8080" }
log: { level: %s }
session:
  keys: ["0123456789abcdef0123456789abcdef0123456789abcdef"]
  insecure_cookies: true
audiences:
  workforce: { providers: [bench] }
providers:
  bench:
    type: static
    users:
      - { sub: bench-user, name: Bench User, email: bench@example.test, groups: [staff] }
routes:
  - name: app
    match: { path: / }
    audience: workforce
    allow: { authenticated: true }
    upstream: "http://127.0.0.1:9001"
`

// newGateway builds Gatehouse as `gatehouse serve` does, with the stub
// upstream, and returns it with a valid session cookie.
func newGateway(b *testing.B, level string, log *zap.Logger) (http.Handler, *http.Cookie) {
	b.Helper()
	l, err := app.LoadBytes("bench.yaml", []byte(strings.Replace(policy, "%s", level, 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	opts, _, err := app.Build(l, log, nil)
	if err != nil {
		b.Fatal(err)
	}
	opts.Transport = stub{}
	gw, err := proxy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p := &session.Payload{ID: session.NewID(), Created: time.Now(), Identity: identity.Identity{
		Subject: "bench-user", Issuer: "static:bench", Provider: "bench", Audience: identity.Workforce,
		Email: "bench@example.test", EmailVerified: true, Name: "Bench User", Groups: []string{"staff"},
		AMR: []string{"pwd"}, AuthTime: time.Now(),
	}}
	if err := opts.Sessions.Save(rec, httptest.NewRequest("GET", "/", nil), p); err != nil {
		b.Fatal(err)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == opts.Sessions.CookieName(identity.Workforce) {
			return gw, c
		}
	}
	b.Fatal("no session cookie")
	return nil, nil
}

func bareProxy() http.Handler {
	target, _ := url.Parse("http://127.0.0.1:9001")
	return &httputil.ReverseProxy{
		Transport: stub{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
	}
}

// run sends GET / with cookie (if any) to h in parallel and checks the
// first response.
func run(b *testing.B, h http.Handler, cookie *http.Cookie) {
	check := httptest.NewRecorder()
	h.ServeHTTP(check, newRequest(cookie))
	if check.Code != 200 || check.Body.String() != body {
		b.Fatalf("status %d, body %.200q", check.Code, check.Body.String())
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			w.reset()
			h.ServeHTTP(w, newRequest(cookie))
			if w.code != 200 {
				b.Errorf("status %d", w.code)
				return
			}
		}
	})
}

func newRequest(cookie *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "gatehouse-bench")
	r.Header.Set("Accept", "*/*")
	if cookie != nil {
		r.AddCookie(cookie)
	}
	return r
}

// discardWriter is a reusable ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
	buf  bytes.Buffer
}

func (w *discardWriter) reset() {
	clear(w.h)
	w.code = 0
}
func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}

// BenchmarkBareProxy is the baseline: httputil.ReverseProxy alone.
func BenchmarkBareProxy(b *testing.B) { run(b, bareProxy(), nil) }

// BenchmarkGateway is a signed-in request through Gatehouse, logging at
// warn level (no access log line).
func BenchmarkGateway(b *testing.B) {
	gw, c := newGateway(b, "warn", zap.NewNop())
	run(b, gw, c)
}

// BenchmarkGatewayAccessLog is the same with an info-level JSON access
// log written to io.Discard.
func BenchmarkGatewayAccessLog(b *testing.B) {
	gw, c := newGateway(b, "info", zap.New(zapcoreJSON(io.Discard)))
	run(b, gw, c)
}
