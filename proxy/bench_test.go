package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// benchUpstream answers every request with a small fixed body.
func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"ok":true}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// runProxyBench serves a prepared request through h once per iteration,
// with a fresh clone of the request and a fresh recorder, as a server
// would.
func runProxyBench(b *testing.B, h http.Handler, base *http.Request) {
	b.Helper()
	check := func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, base.Clone(base.Context()))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %.300s", w.Code, w.Body.String())
		}
	}
	check()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, base.Clone(base.Context()))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		io.Copy(io.Discard, w.Body)
	}
}

// BenchmarkProxyRequest is one full request through the gateway: sanitize,
// normalize, match, session cookie decode, decide, identity headers, cached
// assertion, reverse proxy to a loopback upstream, and the access log line
// (JSON to io.Discard, as cmd/gatehouse logs in production).
func BenchmarkProxyRequest(b *testing.B) {
	up := benchUpstream(b)
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	e := newEnvWith(b, envConfig{policy: strings.ReplaceAll(mainPolicy, "{{UP}}", up.URL), logger: log})
	br := e.browser()
	br.signIn("/", "alice")
	cookie := e.cookieName(identity.Workforce) + "=" + br.session(identity.Workforce)

	req := httptest.NewRequest(http.MethodGet, e.public+"/docs/page?q=1", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("User-Agent", "bench")
	runProxyBench(b, e.gw, req)
}

// BenchmarkBareReverseProxy is the same request through a bare
// httputil.ReverseProxy, the floor the gateway's overhead is measured from.
func BenchmarkBareReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{
		Transport: benchTransport(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
	}
	req := httptest.NewRequest(http.MethodGet, "https://gw.example/docs/page?q=1", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Cookie", "__Host-gatehouse-workforce=not-decoded-here")
	req.Header.Set("Accept", "text/html")
	req.Header.Set("User-Agent", "bench")
	runProxyBench(b, rp, req)
}

// cannedTransport answers every round trip in memory, so that a benchmark
// measures the proxy's own work without the loopback network.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(`{"ok":true}`)),
		ContentLength: 11, Request: r,
	}, nil
}

// BenchmarkOverheadInMemory is BenchmarkProxyRequest and
// BenchmarkBareReverseProxy with an in-memory upstream: the difference is
// the gateway's own CPU and allocation cost per request.
func BenchmarkOverheadInMemory(b *testing.B) {
	enc := zap.NewProductionEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	e := newEnvWith(b, envConfig{logger: log})
	br := e.browser()
	br.signIn("/", "alice")
	cookie := e.cookieName(identity.Workforce) + "=" + br.session(identity.Workforce)
	opts := e.opts
	opts.Transport = cannedTransport{}
	gw, err := proxy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	newReq := func(target string) *http.Request {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("User-Agent", "bench")
		return req
	}
	b.Run("gateway", func(b *testing.B) {
		runProxyBench(b, gw, newReq(e.public+"/docs/page?q=1"))
	})
	b.Run("bare", func(b *testing.B) {
		target, _ := url.Parse("http://upstream.invalid")
		rp := &httputil.ReverseProxy{Transport: cannedTransport{}, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		}}
		runProxyBench(b, rp, newReq("https://gw.example/docs/page?q=1"))
	})
}
