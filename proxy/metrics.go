package proxy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics. They are registered once
// per process and shared across policy reloads; the admin listener serves
// them, never the public one.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	signins  *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	policy   *prometheus.GaugeVec
	// stateErrors counts requests that failed closed because the shared
	// state was unreachable; providers reports provider readiness.
	stateErrors prometheus.Counter
	providers   *providerCollector
	limited     *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_requests_total",
			Help: "Requests by route, audience of the authenticated principal (anonymous when none), decision and status code.",
		}, []string{"route", "audience", "decision", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_request_duration_seconds",
			Help:    "Time from request to response headers written upstream-inclusive, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_signins_total",
			Help: "Sign-in outcomes by provider and reason (ok, or why it failed).",
		}, []string{"provider", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_policy_reloads_total",
			Help: "Policy reloads by outcome (ok, refused).",
		}, []string{"outcome"}),
		policy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_policy_info",
			Help: "The policy being served: 1 for its SHA-256, 0 for earlier ones.",
		}, []string{"sha256"}),
	}
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_rate_limited_total",
		Help: "Requests refused with 429 by a rate limit, by scope (server.per_ip, server.per_user, route.per_ip, route.per_user).",
	}, []string{"scope"})
	reg.MustRegister(m.requests, m.latency, m.signins, m.reloads, m.policy, m.limited)
	m.stateErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gatehouse_shared_state_errors_total",
		Help: "Requests that failed closed (503) because the shared state (Redis) could not be reached.",
	})
	m.providers = newProviderCollector()
	reg.MustRegister(m.stateErrors, m.providers)
	return m
}

// observe records one finished request.
func (m *Metrics) observe(rec *accessRecord, decision string, code int, d time.Duration) {
	if m == nil {
		return
	}
	route := rec.route
	if route == "" {
		route = "none"
	}
	m.requests.WithLabelValues(route, audienceLabel(rec), decision, statusLabel(code)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
	if rec.reason == reasonStateUnavailable {
		m.stateErrors.Inc()
	}
}

// statusLabel avoids a strconv allocation for the common codes.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 302:
		return "302"
	case 303:
		return "303"
	case 401:
		return "401"
	case 403:
		return "403"
	case 404:
		return "404"
	}
	return strconv.Itoa(code)
}

// rateLimited records a request refused by a rate limit of scope.
func (m *Metrics) rateLimited(scope string) {
	if m != nil {
		m.limited.WithLabelValues(scope).Inc()
	}
}

// SignIn records a sign-in outcome.
func (m *Metrics) SignIn(provider, outcome string) {
	if m != nil {
		m.signins.WithLabelValues(provider, outcome).Inc()
	}
}

// Reloaded records a reload outcome and, when it succeeded, the new
// policy hash.
func (m *Metrics) Reloaded(ok bool, oldHash, newHash string) {
	if m == nil {
		return
	}
	if !ok {
		m.reloads.WithLabelValues("refused").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.PolicyLoaded(oldHash, newHash)
}

// PolicyLoaded sets gatehouse_policy_info to the served policy.
func (m *Metrics) PolicyLoaded(oldHash, newHash string) {
	if m == nil {
		return
	}
	if oldHash != "" && oldHash != newHash {
		m.policy.WithLabelValues(oldHash).Set(0)
	}
	m.policy.WithLabelValues(newHash).Set(1)
}
