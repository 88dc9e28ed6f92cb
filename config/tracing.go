package config

import (
	"maps"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// Tracing defaults, applied by the accessors below (an unset field keeps
// its zero value in the Config so that "not set" stays visible).
const (
	DefaultTraceServiceName = "gatehouse"
	DefaultTraceSampleRatio = 0.1
	// DefaultTraceURLPath is appended to an endpoint given without a path:
	// the OTLP/HTTP receiver's traces path.
	DefaultTraceURLPath = "/v1/traces"
)

// Tracing configures OpenTelemetry tracing. It is off unless enabled: then
// every request gets a server span, exported over OTLP/HTTP. Changes take
// effect at the next start, never on reload.
type Tracing struct {
	Enabled     bool              `yaml:"enabled" doc:"Export OpenTelemetry traces of requests over OTLP/HTTP. Default false. Changing tracing settings needs a restart."`
	Endpoint    string            `yaml:"endpoint" doc:"OTLP/HTTP receiver, e.g. http://otel-collector:4318 (/v1/traces is appended when no path is given). Required when enabled. Plain http only to a loopback address unless insecure is true."`
	SampleRatio Ratio             `yaml:"sample_ratio" doc:"Fraction (0 to 1) of new traces that are recorded. Default 0.1. A trusted proxy's sampled traceparent is always followed."`
	ServiceName string            `yaml:"service_name" doc:"service.name of the spans. Default gatehouse."`
	Headers     map[string]string `yaml:"headers" doc:"Headers sent with every export, e.g. Authorization: \"Bearer ${OTLP_TOKEN}\". Use ${ENV} for secrets."`
	Insecure    bool              `yaml:"insecure" doc:"Allow a plain http:// endpoint that is not on a loopback address: spans then cross the network unencrypted. It never disables certificate checks."`
}

// Ratio is a number between 0 and 1 written in the policy as a plain number
// ("0.25"). It is kept as its text so that "not set" (empty) differs from 0.
type Ratio string

// Float returns the ratio, or def when it is not set (or not a number,
// which validation has refused already).
func (r Ratio) Float(def float64) float64 {
	if r == "" {
		return def
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(r)), 64)
	if err != nil || math.IsNaN(f) {
		return def
	}
	return f
}

// SampleRate is the fraction of new traces recorded (DefaultTraceSampleRatio
// when not set).
func (t *Tracing) SampleRate() float64 { return t.SampleRatio.Float(DefaultTraceSampleRatio) }

// Service is the service.name of the spans.
func (t *Tracing) Service() string {
	if t.ServiceName == "" {
		return DefaultTraceServiceName
	}
	return t.ServiceName
}

// ExportURL is the URL spans are posted to: the endpoint, with
// DefaultTraceURLPath when it has no path.
func (t *Tracing) ExportURL() string {
	u, err := url.Parse(t.Endpoint)
	if err != nil {
		return t.Endpoint
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = DefaultTraceURLPath
	}
	return u.String()
}

// Equal reports whether two tracing settings are the same (the server
// compares them on reload: tracing changes need a restart).
func (t *Tracing) Equal(o *Tracing) bool {
	return t.Enabled == o.Enabled && t.Endpoint == o.Endpoint && t.SampleRate() == o.SampleRate() &&
		t.Service() == o.Service() && t.Insecure == o.Insecure && maps.Equal(t.Headers, o.Headers)
}

// tracing checks the tracing section. Fields are checked even when tracing
// is disabled, so that a mistake shows before it is switched on.
func (v *validator) tracing() {
	t := &v.cfg.Tracing
	if t.Endpoint == "" {
		if t.Enabled {
			v.add("tracing.endpoint", "e.g. http://otel-collector:4318 (the collector's OTLP/HTTP receiver)", "tracing is enabled but has no endpoint")
		}
	} else {
		v.traceEndpoint(t)
	}
	if t.SampleRatio != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(string(t.SampleRatio)), 64)
		switch {
		case err != nil || math.IsNaN(f):
			v.add("tracing.sample_ratio", "a number from 0 to 1, e.g. 0.1 for one trace in ten", "sample_ratio %q is not a number", string(t.SampleRatio))
		case f < 0 || f > 1:
			v.add("tracing.sample_ratio", "a number from 0 to 1, e.g. 0.1 for one trace in ten", "sample_ratio %v is out of range", f)
		}
	}
	if n := t.ServiceName; n != "" && (len(n) > 128 || !isPrintableASCII(n)) {
		v.add("tracing.service_name", "printable ASCII, at most 128 characters", "invalid service name %q", n)
	}
	for _, name := range sortedKeys(t.Headers) {
		p := joinPath("tracing.headers", name)
		if !ValidHeaderName(name) {
			v.add(p, "e.g. Authorization or X-Api-Key", "invalid header name %q", name)
			continue
		}
		if !validHeaderValue(t.Headers[name]) {
			// The value is likely a secret: never echo it.
			v.add(p, "header values cannot contain line breaks or control characters", "invalid value for header %s", name)
		}
	}
}

func (v *validator) traceEndpoint(t *Tracing) {
	const hint = "e.g. http://otel-collector:4318 or https://otlp.example.com"
	u, err := url.Parse(t.Endpoint)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "":
		v.add("tracing.endpoint", hint, "%q is not an absolute URL", redactURL(t.Endpoint))
		return
	case u.Scheme != "http" && u.Scheme != "https":
		v.add("tracing.endpoint", "OTLP/HTTP takes http or https (gRPC is not supported)", "unsupported scheme %q", u.Scheme)
		return
	case u.User != nil:
		v.add("tracing.endpoint", "put credentials in tracing.headers (with ${ENV}), never in the URL", "endpoint must not have user info")
		return
	case u.RawQuery != "" || u.Fragment != "":
		v.add("tracing.endpoint", hint, "endpoint must not have a query or fragment")
		return
	}
	switch {
	case u.Scheme == "https" && t.Insecure:
		v.add("tracing.insecure", "insecure only allows plain http:// endpoints; it never disables certificate checks. Remove it", "insecure is set for an https endpoint")
	case u.Scheme == "http" && !t.Insecure && !loopbackHost(u.Hostname()):
		v.add("tracing.endpoint", "use https, or set tracing.insecure: true when the network path is private (e.g. a collector in the same pod or cluster)", "plain http endpoint %q is not on a loopback address", u.Host)
	}
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters (CR and LF above all); tabs
// are allowed.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
