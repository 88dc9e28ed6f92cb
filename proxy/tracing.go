package proxy

// OpenTelemetry tracing of the request path. It is off unless the server
// hands the gateway a TracerProvider (Options.TracerProvider): then each
// request gets a server span and each upstream round trip a client span,
// whose W3C trace context the upstream receives.
//
// Trust: an incoming traceparent/tracestate is believed only from a
// trusted proxy (server.trusted_proxies). From anyone else it is removed
// before anything reads it, whether tracing is on or off, so that a
// client can neither join an existing trace nor plant trace ids in the
// upstream's traces. With tracing off, a trusted proxy's trace context
// passes through unchanged; with tracing on, the upstream receives the
// gateway's own span context instead (same trace id when a trusted proxy
// started the trace).
//
// Privacy: span attributes carry the method, the normalized path (never
// the query), the route name, the status, the decision and its reason
// code, and the request id. Never a user id, an email, a name, a token,
// a cookie, or the client's address.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// TracerName is the instrumentation scope of the gateway's spans.
const TracerName = "github.com/gatehouse-dev/gatehouse/proxy"

// The W3C trace context headers, canonical spelling.
const (
	hdrTraceparent = "Traceparent"
	hdrTracestate  = "Tracestate"
)

// traceContext is the only propagator: W3C trace context. Baggage is not
// read or written (it would carry arbitrary client data).
var traceContext = propagation.TraceContext{}

// Span attribute keys (OpenTelemetry semantic conventions where they
// exist; gatehouse.* otherwise).
const (
	attrMethod     = attribute.Key("http.request.method")
	attrPath       = attribute.Key("url.path")
	attrRoute      = attribute.Key("http.route")
	attrStatus     = attribute.Key("http.response.status_code")
	attrServerAddr = attribute.Key("server.address")
	attrServerPort = attribute.Key("server.port")
	attrErrorType  = attribute.Key("error.type")
	attrDecision   = attribute.Key("gatehouse.decision")
	attrReason     = attribute.Key("gatehouse.reason")
	attrRequestID  = attribute.Key("gatehouse.request_id")
	attrAudience   = attribute.Key("gatehouse.audience")
)

// NewTracerProvider builds the tracer provider of the policy's tracing
// section: an OTLP/HTTP exporter behind a batch processor, a parent-based
// ratio sampler, and a resource naming the service. It returns nil, nil
// when tracing is disabled. Nothing is sent until a span ends; an
// unreachable collector only costs dropped spans and a logged warning.
// The caller must Shutdown the provider on exit to flush the last spans.
func NewTracerProvider(t *config.Tracing, version string, log *zap.Logger) (*sdktrace.TracerProvider, error) {
	if t == nil || !t.Enabled {
		return nil, nil
	}
	if log == nil {
		log = zap.NewNop()
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(t.ExportURL()),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
	}
	if len(t.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(t.Headers))
	}
	// New only configures the exporter: no connection is made here.
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", t.Service()),
		attribute.String("service.version", version),
	)
	// Export failures (collector down) reach the OpenTelemetry error
	// handler, which is process-wide: log them instead of printing to
	// stderr. Messages name the endpoint, never the export headers.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: export failed", zap.Error(err))
	}))
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(t.SampleRate()))),
	), nil
}

// scrubTraceContext removes the W3C trace context an untrusted peer sent.
// It runs on every request, tracing on or off: two map deletes.
func scrubTraceContext(h http.Header, trustedPeer bool) {
	if !trustedPeer {
		delete(h, hdrTraceparent)
		delete(h, hdrTracestate)
	}
}

// startSpan starts the request's server span, continuing a trusted
// proxy's trace. The span is named once the route is known (endSpan).
func (s *snapshot) startSpan(r *http.Request, trustedPeer bool) (*http.Request, trace.Span) {
	ctx := r.Context()
	if trustedPeer {
		ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))
	}
	ctx, span := s.tracer.Start(ctx, spanMethod(r.Method), trace.WithSpanKind(trace.SpanKindServer))
	return r.WithContext(ctx), span
}

// endSpan names the server span after its route or gateway endpoint,
// records the outcome and ends it.
func (s *snapshot) endSpan(span trace.Span, r *http.Request, rec *accessRecord, decision string, code int) {
	if !span.IsRecording() {
		span.End()
		return
	}
	method := spanMethod(r.Method)
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, attrMethod.String(method), attrStatus.Int(code), attrDecision.String(decision), attrRequestID.String(rec.rid), attrAudience.String(audienceLabel(rec)))
	name := method
	path, err := policy.NormalizePath(r.URL.EscapedPath())
	if err == nil {
		attrs = append(attrs, attrPath.String(path))
	}
	if err == nil && (strings.HasPrefix(path, Prefix) || path == strings.TrimSuffix(Prefix, "/")) {
		name = "gatehouse " + s.endpointName(path)
	} else if rec.route != "" {
		name = method + " " + rec.route
	}
	if rec.route != "" {
		attrs = append(attrs, attrRoute.String(rec.route))
	}
	reason := rec.reason
	if rec.decided && rec.decision.Reason != "" {
		reason = string(rec.decision.Reason)
	}
	if reason != "" {
		attrs = append(attrs, attrReason.String(reason))
	}
	span.SetName(name)
	span.SetAttributes(attrs...)
	if code >= 500 {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
	span.End()
}

// gatewayEndpoints are the first path segments of the gateway's own
// endpoints; anything else under the prefix is named "other", so that
// span names stay a small set whatever clients request.
var gatewayEndpoints = map[string]bool{
	"healthz": true, "readyz": true, "jwks.json": true, "login": true, "callback": true,
	"scim": true, "static": true, "logout": true, "whoami": true, "auth": true,
}

// endpointName is the low-cardinality name of a gateway endpoint path:
// its first segment when it is a known endpoint or one a provider serves.
func (s *snapshot) endpointName(path string) string {
	name := strings.TrimPrefix(strings.TrimPrefix(path, strings.TrimSuffix(Prefix, "/")), "/")
	first, _, _ := strings.Cut(name, "/")
	if gatewayEndpoints[first] {
		return first
	}
	if _, ok := s.callbacks[name]; ok {
		return first
	}
	if _, ok := s.logouts[name]; ok {
		return first
	}
	if _, ok := s.endpoints[name]; ok {
		return first
	}
	return "other"
}

// spanMethod is the method as the semantic conventions want it: a
// standard method, or _OTHER (an attacker picks the method).
func spanMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// tracedTransport wraps a route's upstream transport in a client span and
// hands the upstream the span's W3C trace context, replacing whatever
// trace context the forwarded request carried.
type tracedTransport struct {
	base   http.RoundTripper
	tracer trace.Tracer
	route  string
	host   string
	port   int
}

func newTracedTransport(base http.RoundTripper, tracer trace.Tracer, r *policy.Route) *tracedTransport {
	t := &tracedTransport{base: base, tracer: tracer, route: r.Name}
	if r.Upstream != nil {
		t.host = r.Upstream.Hostname()
		if p, err := strconv.Atoi(r.Upstream.Port()); err == nil {
			t.port = p
		} else if r.Upstream.Scheme == "https" {
			t.port = 443
		} else {
			t.port = 80
		}
	}
	return t
}

func (t *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	method := spanMethod(req.Method)
	ctx, span := t.tracer.Start(req.Context(), "upstream "+t.route, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	recording := span.IsRecording() // attributes only for sampled spans
	if recording {
		span.SetAttributes(attrMethod.String(method), attrRoute.String(t.route), attrServerAddr.String(t.host), attrServerPort.Int(t.port))
	}
	// A RoundTripper should leave its request alone, but this one only
	// ever gets the route's ReverseProxy's outgoing request, whose header
	// map is the proxy's own per-request copy: setting the trace context
	// there spares a second copy of every header.
	if req.Header == nil {
		req.Header = http.Header{}
	}
	delete(req.Header, hdrTraceparent)
	delete(req.Header, hdrTracestate)
	traceContext.Inject(ctx, propagation.HeaderCarrier(req.Header))
	res, err := t.base.RoundTrip(req)
	if !recording {
		return res, err
	}
	if err != nil {
		// Transport errors quote the upstream URL with its query: record a
		// class, never the message.
		class := upstreamErrorClass(err)
		span.SetAttributes(attrErrorType.String(class))
		span.SetStatus(codes.Error, "upstream "+class)
		return nil, err
	}
	span.SetAttributes(attrStatus.Int(res.StatusCode))
	if res.StatusCode >= 400 {
		span.SetAttributes(attrErrorType.String(strconv.Itoa(res.StatusCode)))
		span.SetStatus(codes.Error, http.StatusText(res.StatusCode))
	}
	return res, nil
}

// upstreamErrorClass sorts a round-trip error into a few stable words.
func upstreamErrorClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "connection"
}

// Helpers shared with metrics.go: the audience label, the reason that marks
// a shared-state failure, and the provider readiness collector.

// reasonStateUnavailable is the access-log reason of a request that failed
// closed because the shared state could not be reached.
const reasonStateUnavailable = "state_unavailable"

// audienceLabel is the audience a request authenticated in (workforce,
// customer, api), or anonymous: a bounded label, never an identity.
func audienceLabel(rec *accessRecord) string {
	if rec.user == nil {
		return "anonymous"
	}
	switch a := string(rec.user.Audience); a {
	case "workforce", "customer", "api", "public":
		return a
	}
	return "other"
}

// providerCollector reports gatehouse_provider_ready at scrape time from
// the providers' own readiness (metadata, discovery document, JWKS
// fetched): 0 while a provider's last fetch failed or has not finished.
type providerCollector struct {
	desc *prometheus.Desc
	gw   atomic.Pointer[Gateway]
}

func newProviderCollector() *providerCollector {
	return &providerCollector{desc: prometheus.NewDesc("gatehouse_provider_ready",
		"1 when the provider has the material it fetches (OIDC discovery, SAML metadata, JWKS), 0 while the fetch fails or is pending. Providers that fetch nothing report 1.",
		[]string{"provider"}, nil)}
}

// watchProviders makes the collector report g's providers.
func (m *Metrics) watchProviders(g *Gateway) {
	if m != nil {
		m.providers.gw.Store(g)
	}
}

func (c *providerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *providerCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.gw.Load()
	if g == nil {
		return
	}
	s := g.cur.Load()
	report := func(name string, p any) {
		v := 1.0
		if rc, ok := p.(providers.ReadinessChecker); ok && rc.Ready() != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name)
	}
	for _, name := range sortedNames(s.opts.Providers) {
		report(name, s.opts.Providers[name])
	}
	for _, name := range sortedNames(s.opts.Bearer) {
		if _, dup := s.opts.Providers[name]; !dup {
			report(name, s.opts.Bearer[name])
		}
	}
}
