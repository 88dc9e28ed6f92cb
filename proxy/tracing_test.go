package proxy_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/state"
)

// A client's trace context, as a trusted proxy or an attacker would send it.
const (
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID      = "00f067aa0ba902b7"
	clientTraceparent = "00-" + clientTraceID + "-" + clientSpanID + "-01"
	clientTracestate  = "vendor=opaque"
)

// tracedEnv is the main test gateway with tracing into an in-memory
// exporter, every span sampled. serverExtra goes under server:.
func tracedEnv(t *testing.T, serverExtra string) (*env, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEnvWith(t, envConfig{serverExtra: serverExtra, edit: func(o *proxy.Options) { o.TracerProvider = tp }})
	return e, exp
}

// waitSpan returns the first ended span named name; the server span ends
// just after the response is written, so it may take a moment.
func waitSpan(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range exp.GetSpans() {
				names = append(names, s.Name)
			}
			t.Fatalf("no span %q; spans: %q", name, names)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// parseTraceparent splits a version-00 traceparent.
func parseTraceparent(t *testing.T, v string) (traceID, spanID, flags string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || p[0] != "00" || len(p[1]) != 32 || len(p[2]) != 16 {
		t.Fatalf("malformed traceparent %q", v)
	}
	return p[1], p[2], p[3]
}

func TestTracingRequestSpans(t *testing.T) {
	e, exp := tracedEnv(t, "")
	b := e.browser()
	b.signIn("/docs", "alice")
	exp.Reset()

	r := b.get("/docs/page/../guide?q=private-query")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	srv := waitSpan(t, exp, "GET intranet")
	if srv.SpanKind != trace.SpanKindServer {
		t.Errorf("server span kind %v", srv.SpanKind)
	}
	a := attrs(srv)
	for k, want := range map[attribute.Key]string{
		"http.request.method": "GET", "url.path": "/docs/guide", "http.route": "intranet",
		"gatehouse.decision": "allow", "gatehouse.request_id": r.Header.Get("X-Request-Id"), "gatehouse.audience": "workforce",
	} {
		if got := a[k].AsString(); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := a["http.response.status_code"].AsInt64(); got != 200 {
		t.Errorf("http.response.status_code = %d", got)
	}
	if _, ok := a["gatehouse.reason"]; !ok {
		t.Error("no gatehouse.reason")
	}
	if srv.Status.Code == otelcodes.Error {
		t.Errorf("a 200 is not an error: %+v", srv.Status)
	}

	// The upstream round trip is a client span under the server span, and
	// the upstream receives that span's context.
	up := waitSpan(t, exp, "upstream intranet")
	if up.SpanKind != trace.SpanKindClient || up.Parent.SpanID() != srv.SpanContext.SpanID() || up.SpanContext.TraceID() != srv.SpanContext.TraceID() {
		t.Errorf("upstream span kind %v parent %s, want a client child of %s", up.SpanKind, up.Parent.SpanID(), srv.SpanContext.SpanID())
	}
	if got := attrs(up)["http.response.status_code"].AsInt64(); got != 200 {
		t.Errorf("upstream span status code %d", got)
	}
	tid, sid, flags := parseTraceparent(t, r.echo(t).Header.Get("Traceparent"))
	if tid != srv.SpanContext.TraceID().String() || sid != up.SpanContext.SpanID().String() || flags != "01" {
		t.Errorf("upstream got traceparent %s-%s-%s, want the gateway's client span %s-%s", tid, sid, flags, up.SpanContext.TraceID(), up.SpanContext.SpanID())
	}
	for _, s := range exp.GetSpans() {
		for _, kv := range s.Attributes {
			if strings.Contains(kv.Value.Emit(), "private-query") {
				t.Errorf("span %q attribute %s carries the query", s.Name, kv.Key)
			}
		}
	}
}

func TestTracingEndpointAndOutcomeSpans(t *testing.T) {
	e, exp := tracedEnv(t, "")
	b := e.browser()
	b.signIn("/docs", "carol") // a contractor: signed in, then denied
	for _, name := range []string{"GET intranet", "gatehouse login", "gatehouse static", "gatehouse callback"} {
		waitSpan(t, exp, name)
	}
	cb := waitSpan(t, exp, "gatehouse callback")
	if got := attrs(cb)["gatehouse.reason"].AsString(); got != "login_ok:corp" {
		t.Errorf("callback reason %q", got)
	}
	exp.Reset()

	if r := b.get("/docs"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("carol: status %d", r.StatusCode)
	}
	deny := waitSpan(t, exp, "GET intranet")
	if a := attrs(deny); a["gatehouse.decision"].AsString() != "deny" || a["http.response.status_code"].AsInt64() != 403 {
		t.Errorf("denied request span: %v", deny.Attributes)
	}
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "upstream") {
			t.Errorf("a denied request has an upstream span %q", s.Name)
		}
	}

	// Unknown gateway paths all share one span name.
	exp.Reset()
	b.get("/.gatehouse/no-such-endpoint-7f3a")
	waitSpan(t, exp, "gatehouse other")
	exp.Reset()
	b.get("/.gatehouse/healthz")
	waitSpan(t, exp, "gatehouse healthz")

	// An unreachable upstream: the client span says why in a word, the
	// server span is an error.
	exp.Reset()
	if r := b.get("/down/x?q=private-query"); r.StatusCode != http.StatusBadGateway {
		t.Fatalf("/down: status %d", r.StatusCode)
	}
	up := waitSpan(t, exp, "upstream down")
	if up.Status.Code != otelcodes.Error || attrs(up)["error.type"].AsString() != "connection" || strings.Contains(up.Status.Description, "private-query") {
		t.Errorf("upstream error span: status %+v attrs %v", up.Status, up.Attributes)
	}
	srv := waitSpan(t, exp, "GET down")
	if srv.Status.Code != otelcodes.Error {
		t.Errorf("a 502 server span is not an error: %+v", srv.Status)
	}
}

// No span attribute, name, status or event carries who the user is, a
// cookie or a token.
func TestTracingNoPersonalData(t *testing.T) {
	e, exp := tracedEnv(t, "")
	b := e.browser()
	b.signIn("/docs", "bob", "mfa", "1")
	b.get("/docs/page")
	b.get("/admin/tools")
	b.get("/shop/account")
	b.get("/.gatehouse/whoami")
	waitSpan(t, exp, "gatehouse whoami")
	cookie := b.session(identity.Workforce)
	if cookie == "" {
		t.Fatal("no session cookie")
	}
	forbidden := []string{"bob", "Bob Admin", "bob@corp.example", "corp.example", cookie[:24], "eyJ"}
	spans := exp.GetSpans()
	if len(spans) < 8 {
		t.Fatalf("only %d spans", len(spans))
	}
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			texts = append(texts, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, ev := range s.Events {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Value.Emit())
			}
		}
		for _, txt := range texts {
			for _, f := range forbidden {
				if strings.Contains(txt, f) {
					t.Errorf("span %q carries %q in %q", s.Name, f, txt)
				}
			}
		}
	}
}

// A trusted proxy's trace is continued: the server span's parent is the
// proxy's span, and the upstream gets the same trace id and tracestate
// with the gateway's span id.
func TestTracingContinuesTrustedParent(t *testing.T) {
	e, exp := tracedEnv(t, `  trusted_proxies: ["127.0.0.1", "::1"]`)
	r := e.browser().get("/public/x", "Traceparent", clientTraceparent, "Tracestate", clientTracestate)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	srv := waitSpan(t, exp, "GET public")
	if srv.SpanContext.TraceID().String() != clientTraceID || srv.Parent.SpanID().String() != clientSpanID || !srv.Parent.IsRemote() {
		t.Errorf("server span trace %s parent %s, want trace %s parent %s", srv.SpanContext.TraceID(), srv.Parent.SpanID(), clientTraceID, clientSpanID)
	}
	up := waitSpan(t, exp, "upstream public")
	got := r.echo(t).Header
	tid, sid, _ := parseTraceparent(t, got.Get("Traceparent"))
	if tid != clientTraceID || sid != up.SpanContext.SpanID().String() {
		t.Errorf("upstream traceparent %q, want trace %s span %s", got.Get("Traceparent"), clientTraceID, up.SpanContext.SpanID())
	}
	if len(got.Values("Traceparent")) != 1 || got.Get("Tracestate") != clientTracestate {
		t.Errorf("upstream trace headers %q / %q", got.Values("Traceparent"), got.Values("Tracestate"))
	}
}

// An untrusted client's trace context is ignored and never reaches the
// upstream: the gateway starts a new trace.
func TestTracingIgnoresUntrustedParent(t *testing.T) {
	e, exp := tracedEnv(t, "")
	r := e.browser().get("/public/x", "Traceparent", clientTraceparent, "Tracestate", clientTracestate)
	srv := waitSpan(t, exp, "GET public")
	if srv.SpanContext.TraceID().String() == clientTraceID || srv.Parent.IsValid() {
		t.Errorf("server span joined the client's trace: trace %s parent %s", srv.SpanContext.TraceID(), srv.Parent.SpanID())
	}
	up := waitSpan(t, exp, "upstream public")
	got := r.echo(t).Header
	tid, sid, _ := parseTraceparent(t, got.Get("Traceparent"))
	if tid != srv.SpanContext.TraceID().String() || sid != up.SpanContext.SpanID().String() || len(got.Values("Traceparent")) != 1 {
		t.Errorf("upstream traceparent %q, want the gateway's %s-%s", got.Values("Traceparent"), srv.SpanContext.TraceID(), up.SpanContext.SpanID())
	}
	if v := got.Values("Tracestate"); len(v) != 0 {
		t.Errorf("the client's tracestate reached the upstream: %q", v)
	}
}

// With tracing off the gateway adds no trace context, passes a trusted
// proxy's unchanged, and drops an untrusted client's.
func TestTracingDisabledPropagation(t *testing.T) {
	untrusted := newEnv(t)
	b := untrusted.browser()
	if h := b.get("/public/x").echo(t).Header; h.Get("Traceparent") != "" || h.Get("Tracestate") != "" {
		t.Errorf("tracing off added trace context: %q %q", h.Get("Traceparent"), h.Get("Tracestate"))
	}
	if h := b.get("/public/x", "Traceparent", clientTraceparent, "Tracestate", clientTracestate).echo(t).Header; h.Get("Traceparent") != "" || h.Get("Tracestate") != "" {
		t.Errorf("an untrusted client's trace context reached the upstream: %q %q", h.Get("Traceparent"), h.Get("Tracestate"))
	}
	trusted := newEnvWith(t, envConfig{serverExtra: `  trusted_proxies: ["127.0.0.1", "::1"]`})
	h := trusted.browser().get("/public/x", "Traceparent", clientTraceparent, "Tracestate", clientTracestate).echo(t).Header
	if h.Get("Traceparent") != clientTraceparent || h.Get("Tracestate") != clientTracestate {
		t.Errorf("a trusted proxy's trace context changed: %q %q", h.Get("Traceparent"), h.Get("Tracestate"))
	}
}

// An unsampled trace still hands the upstream the gateway's context (with
// the sampled flag off), so the upstream does not sample it either.
func TestTracingUnsampledStillPropagates(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	e := newEnvWith(t, envConfig{edit: func(o *proxy.Options) { o.TracerProvider = tp }})
	h := e.browser().get("/public/x", "Traceparent", clientTraceparent).echo(t).Header
	tid, _, flags := parseTraceparent(t, h.Get("Traceparent"))
	if tid == clientTraceID || flags != "00" {
		t.Errorf("upstream traceparent %q", h.Get("Traceparent"))
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported from an unsampled trace", n)
	}
}

func TestNewTracerProvider(t *testing.T) {
	tp, err := proxy.NewTracerProvider(&config.Tracing{}, "test", nil)
	if tp != nil || err != nil {
		t.Fatalf("disabled: %v %v", tp, err)
	}
	// Enabled: nothing is contacted until spans end; the collector here
	// answers every export, and Shutdown flushes.
	got := make(chan http.Header, 4)
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == config.DefaultTraceURLPath {
			got <- r.Header.Clone()
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer col.Close()
	tp, err = proxy.NewTracerProvider(&config.Tracing{Enabled: true, Endpoint: col.URL, SampleRatio: "1", Headers: map[string]string{"Authorization": "Bearer collector-secret"}}, "test", nil)
	if err != nil || tp == nil {
		t.Fatalf("enabled: %v %v", tp, err)
	}
	_, span := tp.Tracer("t").Start(context.Background(), "one")
	span.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if h.Get("Authorization") != "Bearer collector-secret" {
			t.Errorf("export headers %v", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no export reached the collector")
	}
}

// ---- metrics ----

func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

func wantMetrics(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l+"\n") {
			t.Errorf("metrics lack %s", l)
		}
	}
}

func TestMetricsRequestsByAudience(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnvWith(t, envConfig{edit: func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) }})
	b := e.browser()
	b.signIn("/docs", "alice")
	b.get("/docs")
	b.get("/public/x")
	out := scrape(t, reg)
	wantMetrics(t, out,
		`gatehouse_requests_total{audience="workforce",code="200",decision="allow",route="intranet"} 1`,
		`gatehouse_requests_total{audience="anonymous",code="200",decision="allow",route="public"} 1`,
		`gatehouse_requests_total{audience="anonymous",code="302",decision="need-login",route="intranet"} 1`,
		`gatehouse_signins_total{outcome="ok",provider="corp"} 1`,
	)
	if !strings.Contains(out, `gatehouse_request_duration_seconds_count{route="intranet"}`) {
		t.Error("no latency histogram")
	}
}

func TestMetricsSignInFailureReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnvWith(t, envConfig{edit: func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) }})
	b := e.browser()
	prov, st := b.startLogin(b.get("/docs").location())
	if r := b.callback(prov, st, "nobody"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown user: status %d", r.StatusCode)
	}
	wantMetrics(t, scrape(t, reg), `gatehouse_signins_total{outcome="unknown_user",provider="corp"} 1`)
}

func TestMetricsSharedStateErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	var broken bool
	mem := state.NewMemory(nil)
	e := newEnvWith(t, envConfig{edit: func(o *proxy.Options) {
		o.Metrics = proxy.NewMetrics(reg)
		o.Shared = switchState{mem: mem, broken: &broken}
	}})
	b := e.browser()
	b.signIn("/docs", "alice")
	wantMetrics(t, scrape(t, reg), `gatehouse_shared_state_errors_total 0`)
	broken = true
	for range 2 {
		if r := b.get("/docs"); r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	wantMetrics(t, scrape(t, reg), `gatehouse_shared_state_errors_total 2`)
}

// notReady is a bearer provider whose key fetch failed.
type notReady struct{}

func (notReady) Name() string { return "keys-down" }
func (notReady) Authenticate(context.Context, *http.Request) (*identity.Identity, error) {
	return nil, nil
}
func (notReady) Ready() error { return errors.New("jwks fetch failed") }

func TestMetricsProviderReady(t *testing.T) {
	reg := prometheus.NewRegistry()
	newEnvWith(t, envConfig{edit: func(o *proxy.Options) {
		o.Metrics = proxy.NewMetrics(reg)
		o.Bearer["keys-down"] = notReady{}
	}})
	wantMetrics(t, scrape(t, reg),
		`gatehouse_provider_ready{provider="corp"} 1`,
		`gatehouse_provider_ready{provider="shoppers"} 1`,
		`gatehouse_provider_ready{provider="keys-down"} 0`,
	)
}

// BenchmarkTracingOverhead is BenchmarkOverheadInMemory's gateway request
// with tracing off, on with every trace sampled (batching into a no-op
// exporter, as production batches into OTLP), and on with none sampled.
func BenchmarkTracingOverhead(b *testing.B) {
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	e := newEnvWith(b, envConfig{logger: log})
	br := e.browser()
	br.signIn("/", "alice")
	cookie := e.cookieName(identity.Workforce) + "=" + br.session(identity.Workforce)
	req := httptest.NewRequest(http.MethodGet, e.public+"/docs/page?q=1", nil)
	req.RemoteAddr = "127.0.0.1:40000"
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("User-Agent", "bench")
	for _, c := range []struct {
		name    string
		sampler sdktrace.Sampler // nil: tracing off
	}{{"off", nil}, {"on-sampled", sdktrace.AlwaysSample()}, {"on-unsampled", sdktrace.NeverSample()}} {
		opts := e.opts
		opts.Transport = cannedTransport{}
		if c.sampler != nil {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(c.sampler))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			opts.TracerProvider = tp
		}
		gw, err := proxy.New(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) { runProxyBench(b, gw, req) })
	}
}
