// Package examples holds copy-paste configurations. This test keeps the
// forward-auth front-proxy examples (nginx, Traefik, Caddy, Envoy) in step
// with Gatehouse's default identity header names and, when nginx is
// installed, checks the nginx one with nginx -t.
package examples

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/app"
)

// defaultHeaders are the identity headers a route without a forward:
// section sends, and the assertion header, as the policy compiler says.
func defaultHeaders(t *testing.T) []string {
	t.Helper()
	l, err := app.LoadBytes("defaults.yaml", []byte(`version: 1
session:
  keys: ["examples-test-session-key-0123456789abcdef"]
audiences:
  workforce: { providers: [corp] }
providers:
  corp:
    type: static
    users: [{ sub: alice }]
routes:
  - name: app
    match: { path: / }
    audience: workforce
    allow: { authenticated: true }
    upstream: "http://127.0.0.1:9"
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := l.Policy.Routes()[0].Forward
	var out []string
	for _, h := range []string{f.User, f.Email, f.Name, f.Groups, f.Roles, l.Config.Assertion.Header} {
		if h != "" {
			out = append(out, h)
		}
	}
	if len(out) < 2 {
		t.Fatalf("default identity headers: %v", out)
	}
	return out
}

func sameNames(t *testing.T, what string, got, want []string) {
	t.Helper()
	norm := func(in []string) []string {
		var out []string
		for _, s := range in {
			out = append(out, strings.ToLower(s))
		}
		slices.Sort(out)
		return out
	}
	if g, w := norm(got), norm(want); !slices.Equal(g, w) {
		t.Errorf("%s: %v, want Gatehouse's default identity headers %v", what, g, w)
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// dig walks maps and lists ("0" indexes a list).
func dig(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				t.Fatalf("no element %s in %v", p, x)
			}
			v = x[i]
		default:
			t.Fatalf("cannot find %q in %T (path %v)", p, v, path)
		}
	}
	return v
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestTraefikExample(t *testing.T) {
	want := defaultHeaders(t)
	m := readYAML(t, filepath.Join("traefik", "dynamic.yaml"))
	fa := dig(t, m, "http", "middlewares", "gatehouse", "forwardAuth").(map[string]any)
	sameNames(t, "traefik authResponseHeaders", strs(fa["authResponseHeaders"]), want)
	if fa["trustForwardHeader"] != false {
		t.Error("traefik: trustForwardHeader must be false (Traefik then sets X-Forwarded-* itself)")
	}
	if a, _ := fa["address"].(string); !strings.HasSuffix(a, "/.gatehouse/auth?redirect=1") {
		t.Errorf("traefik: address %q", a)
	}
	var stripped []string
	for k := range dig(t, m, "http", "middlewares", "strip-identity", "headers", "customRequestHeaders").(map[string]any) {
		stripped = append(stripped, k)
	}
	sameNames(t, "traefik strip-identity", stripped, want)
	rule, _ := dig(t, m, "http", "routers", "gatehouse-pages", "rule").(string)
	if !strings.Contains(rule, "!PathPrefix(`/.gatehouse/auth`)") {
		t.Errorf("traefik: the gatehouse-pages router must exclude /.gatehouse/auth: %q", rule)
	}
}

func TestEnvoyExample(t *testing.T) {
	want := defaultHeaders(t)
	m := readYAML(t, filepath.Join("envoy", "envoy.yaml"))
	hcm := dig(t, m, "static_resources", "listeners", "0", "filter_chains", "0", "filters", "0", "typed_config")
	var authz, mutation map[string]any
	for _, f := range dig(t, hcm, "http_filters").([]any) {
		switch f.(map[string]any)["name"] {
		case "envoy.filters.http.ext_authz":
			authz = f.(map[string]any)["typed_config"].(map[string]any)
			if mutation == nil {
				t.Error("envoy: header_mutation must come before ext_authz")
			}
		case "envoy.filters.http.header_mutation":
			mutation = f.(map[string]any)["typed_config"].(map[string]any)
		}
	}
	if authz == nil || mutation == nil {
		t.Fatal("envoy: ext_authz or header_mutation filter missing")
	}
	if p := dig(t, authz, "http_service", "path_prefix"); p != "/.gatehouse/auth" {
		t.Errorf("envoy: path_prefix %v", p)
	}
	exacts := func(v any) []string {
		var out []string
		for _, p := range v.([]any) {
			out = append(out, p.(map[string]any)["exact"].(string))
		}
		return out
	}
	sameNames(t, "envoy allowed_upstream_headers", exacts(dig(t, authz, "http_service", "authorization_response", "allowed_upstream_headers", "patterns")), want)
	if got := exacts(dig(t, authz, "http_service", "authorization_request", "allowed_headers", "patterns")); !slices.Contains(got, "cookie") {
		t.Errorf("envoy: allowed_headers %v must include cookie", got)
	}
	var removed []string
	for _, r := range dig(t, mutation, "mutations", "request_mutations").([]any) {
		removed = append(removed, r.(map[string]any)["remove"].(string))
	}
	sameNames(t, "envoy header_mutation removals", removed, want)
}

func TestCaddyExample(t *testing.T) {
	want := defaultHeaders(t)
	data, err := os.ReadFile(filepath.Join("caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	m := regexp.MustCompile(`(?m)^\s*copy_headers\s+(.+)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("caddy: no copy_headers line")
	}
	sameNames(t, "caddy copy_headers", strings.Fields(m[1]), want)
	for _, must := range []string{"uri /.gatehouse/auth?redirect=1", "request_header -X-Gatehouse-*", "handle /.gatehouse/auth* {"} {
		if !strings.Contains(text, must) {
			t.Errorf("caddy: missing %q", must)
		}
	}
	for _, h := range want {
		if !strings.HasPrefix(strings.ToLower(h), "x-gatehouse-") {
			t.Errorf("caddy: request_header -X-Gatehouse-* does not strip %s", h)
		}
	}
}

func TestNginxExample(t *testing.T) {
	want := defaultHeaders(t)
	data, err := os.ReadFile(filepath.Join("nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	site := string(data)
	var copied, passed []string
	for _, m := range regexp.MustCompile(`auth_request_set\s+\$(\w+)\s+\$upstream_http_(\w+);`).FindAllStringSubmatch(site, -1) {
		if m[2] == "location" || m[2] == "set_cookie" {
			continue
		}
		copied = append(copied, strings.ReplaceAll(m[2], "_", "-"))
		if !regexp.MustCompile(`proxy_set_header\s+[\w-]+\s+\$` + m[1] + `;`).MatchString(site) {
			t.Errorf("nginx: $%s is set but not passed upstream", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`proxy_set_header\s+(X-Gatehouse-[\w-]+)\s`).FindAllStringSubmatch(site, -1) {
		passed = append(passed, m[1])
	}
	sameNames(t, "nginx auth_request_set", copied, want)
	sameNames(t, "nginx proxy_set_header", passed, want)
	for _, must := range []string{"location ^~ /.gatehouse/auth {", "internal;", "error_page 401 = @gatehouse_login;", "proxy_set_header X-Original-URL $scheme://$http_host$request_uri;"} {
		if !strings.Contains(site, must) {
			t.Errorf("nginx: missing %q", must)
		}
	}

	bin := "/usr/sbin/nginx"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("nginx"); err != nil {
			t.Skip("nginx not installed: nginx -t on the example skipped")
		}
	}
	dir := t.TempDir()
	// Upstream host names are resolved by nginx -t; the certificate must
	// exist: test a copy on loopback without TLS.
	site = strings.NewReplacer("listen 443 ssl;", "listen 127.0.0.1:18443;").Replace(site)
	site = regexp.MustCompile(`(?m)^\s*ssl_certificate.*$`).ReplaceAllString(site, "")
	main := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nevents {}\nhttp {\n" +
		"    access_log " + dir + "/access.log;\n" +
		"    client_body_temp_path " + dir + "/body;\n    proxy_temp_path " + dir + "/proxy;\n" +
		"    fastcgi_temp_path " + dir + "/fastcgi;\n    uwsgi_temp_path " + dir + "/uwsgi;\n    scgi_temp_path " + dir + "/scgi;\n" +
		"    include " + dir + "/gatehouse.conf;\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "gatehouse.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}
