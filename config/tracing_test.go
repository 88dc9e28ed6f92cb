package config

import (
	"errors"
	"strings"
	"testing"
)

// withTracing is the minimal policy with a tracing section.
func withTracing(section string) string { return minimal + "tracing:\n" + section }

func TestTracingOffByDefault(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := cfg.Tracing
	if tr.Enabled || tr.SampleRate() != DefaultTraceSampleRatio || tr.Service() != "gatehouse" {
		t.Fatalf("tracing defaults: %+v rate %v service %q", tr, tr.SampleRate(), tr.Service())
	}
}

func TestTracingParses(t *testing.T) {
	src := withTracing(`  enabled: true
  endpoint: https://otlp.example.com
  sample_ratio: 0.25
  service_name: edge-gateway
  headers:
    Authorization: "Bearer ${OTLP_TOKEN}"
    X-Tenant: ops
`)
	cfg, err := Parse("p.yaml", []byte(src), env(map[string]string{"OTLP_TOKEN": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	tr := cfg.Tracing
	if !tr.Enabled || tr.SampleRate() != 0.25 || tr.Service() != "edge-gateway" || tr.Headers["Authorization"] != "Bearer s3cret" || tr.Headers["X-Tenant"] != "ops" {
		t.Fatalf("parsed %+v", tr)
	}
	if got := tr.ExportURL(); got != "https://otlp.example.com/v1/traces" {
		t.Errorf("ExportURL %q", got)
	}
	// A ratio of 0 is kept (only trusted parents' sampled traces), not
	// replaced by the default.
	cfg, err = Parse("p.yaml", []byte(withTracing("  sample_ratio: 0\n")), nil)
	if err != nil || cfg.Tracing.SampleRate() != 0 {
		t.Fatalf("ratio 0: %v %v", err, cfg.Tracing.SampleRate())
	}
}

func TestTracingExportURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:4318":               "http://localhost:4318/v1/traces",
		"http://localhost:4318/":              "http://localhost:4318/v1/traces",
		"https://otlp.example.com/otlp/v1/tr": "https://otlp.example.com/otlp/v1/tr",
	} {
		tr := Tracing{Endpoint: in}
		if got := tr.ExportURL(); got != want {
			t.Errorf("ExportURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTracingPlainHTTP(t *testing.T) {
	for _, ok := range []string{
		"  enabled: true\n  endpoint: http://127.0.0.1:4318\n",
		"  enabled: true\n  endpoint: http://localhost:4318\n",
		"  enabled: true\n  endpoint: http://[::1]:4318\n",
		"  enabled: true\n  endpoint: http://otel-collector:4318\n  insecure: true\n",
	} {
		if _, err := Parse("p.yaml", []byte(withTracing(ok)), nil); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestTracingDiagnostics(t *testing.T) {
	cases := []struct{ section, want string }{
		{"  enabled: true\n", "tracing.endpoint: tracing is enabled but has no endpoint"},
		{"  endpoint: otel-collector:4318\n", `tracing.endpoint: "otel-collector:4318" is not an absolute URL`},
		{"  endpoint: collector\n", `tracing.endpoint: "collector" is not an absolute URL`},
		{"  endpoint: grpc://collector:4317\n", `unsupported scheme "grpc"`},
		{"  endpoint: http://collector:4318\n", `tracing.endpoint: plain http endpoint "collector:4318" is not on a loopback address`},
		{"  endpoint: https://user:pw@collector\n", "tracing.endpoint: endpoint must not have user info"},
		{"  endpoint: https://collector/v1/traces?x=1\n", "endpoint must not have a query or fragment"},
		{"  endpoint: https://collector\n  insecure: true\n", "tracing.insecure: insecure is set for an https endpoint"},
		{"  sample_ratio: 1.5\n", "tracing.sample_ratio: sample_ratio 1.5 is out of range"},
		{"  sample_ratio: -0.1\n", "out of range"},
		{"  sample_ratio: ten percent\n", `tracing.sample_ratio: sample_ratio "ten percent" is not a number`},
		{"  sample_ratio: .nan\n", "is not a number"},
		{"  service_name: \"bad\\nname\"\n", "tracing.service_name: invalid service name"},
		{"  headers: { \"Bad Header\": x }\n", `invalid header name "Bad Header"`},
		{"  headers: { Authorization: \"Bearer a\\r\\nX-Evil: 1\" }\n", "tracing.headers.Authorization: invalid value for header Authorization"},
		{"  headers: { Authorization: \"Bearer ${NOPE}\" }\n", "environment variable NOPE is not set"},
		{"  enabled: yes\n", "expected a boolean"},
		{"  sampler: always\n", `unknown key "sampler"`},
	}
	for _, c := range cases {
		ds := diagnostics(t, withTracing(c.section), nil)
		if !strings.Contains(strings.Join(ds, "\n"), c.want) {
			t.Errorf("%q: diagnostics %q lack %q", c.section, ds, c.want)
		}
	}
}

// Diagnostics point at the line of the offending key and never echo a
// header value (a secret).
func TestTracingDiagnosticPositionAndSecrets(t *testing.T) {
	src := withTracing("  endpoint: https://otlp.example.com\n  headers:\n    Authorization: \"Bearer top\\nsecret\"\n")
	_, err := Parse("p.yaml", []byte(src), nil)
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 {
		t.Fatalf("want one diagnostic, got %v", err)
	}
	wantLine := strings.Count(minimal, "\n") + 4
	if ds[0].Line != wantLine || ds[0].Path != "tracing.headers.Authorization" {
		t.Errorf("diagnostic at line %d path %q, want line %d", ds[0].Line, ds[0].Path, wantLine)
	}
	if strings.Contains(ds[0].Error(), "top") || strings.Contains(ds[0].Error(), "secret") {
		t.Errorf("diagnostic echoes the header value: %s", ds[0].Error())
	}
}

func TestTracingEqual(t *testing.T) {
	a := Tracing{Enabled: true, Endpoint: "https://c", SampleRatio: "0.5", Headers: map[string]string{"A": "1"}}
	b := a
	b.SampleRatio = "0.50"
	b.Headers = map[string]string{"A": "1"}
	if !a.Equal(&b) {
		t.Error("same settings differ")
	}
	b.Headers["A"] = "2"
	if a.Equal(&b) {
		t.Error("a header change is not seen")
	}
	var zero Tracing
	if !zero.Equal(&Tracing{ServiceName: "gatehouse", SampleRatio: "0.1"}) {
		t.Error("defaults spelled out differ from defaults")
	}
}
