package proxy_test

// Forward-auth mode (/.gatehouse/auth): a front proxy describes the
// original request in headers and Gatehouse answers 200 with identity
// headers, 401/302 towards sign-in, 403 or 400, from the same policy as
// in reverse-proxy mode. The harness client connects from 127.0.0.1, which
// the trusted environment lists in server.trusted_proxies.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
)

const faPath = "/.gatehouse/auth"

func newTrustedEnv(t *testing.T) *env {
	return newEnvWith(t, envConfig{serverExtra: `  trusted_proxies: ["127.0.0.1/32"]`})
}

// host is the gateway's host:port, the Host of every route here.
func (e *env) host() string { return e.srv.Listener.Addr().String() }

// traefik describes target (path and query) the way Traefik and Caddy do.
func (e *env) traefik(method, target string) []string {
	return []string{"X-Forwarded-Method", method, "X-Forwarded-Proto", "https", "X-Forwarded-Host", e.host(), "X-Forwarded-Uri", target}
}

// ask sends a forward-auth subrequest (GET, like Traefik and Caddy) with
// the browser's cookies and the given headers.
func (b *browser) ask(query string, hdr ...string) *resp {
	b.e.t.Helper()
	return b.do(http.MethodGet, faPath+query, nil, append([]string{"Accept", "text/html"}, hdr...)...)
}

// identityHeaders are the headers of the intranet route and the assertion.
var identityHeaders = []string{"X-Remote-User", "X-Remote-Email", "X-Remote-Name", "X-Remote-Groups", "X-Remote-Roles", assertion.DefaultHeader}

// accessLine finds the access log line of a request id.
func (e *env) accessLine(rid string) map[string]string {
	for _, le := range e.logs.All() {
		if le.Message != "request" {
			continue
		}
		m := map[string]string{}
		for _, f := range le.Context {
			m[f.Key] = f.String
		}
		if m["request_id"] == rid {
			return m
		}
	}
	return nil
}

func TestForwardAuthUntrustedPeerRefused(t *testing.T) {
	e := newEnv(t) // no trusted_proxies
	alice := e.browser()
	alice.signIn("/docs", "alice")
	for name, hdr := range map[string][]string{
		"traefik":     e.traefik("GET", "/docs"),
		"nginx":       {"X-Original-URL", "https://" + e.host() + "/docs", "X-Original-Method", "GET"},
		"undescribed": nil,
	} {
		r := alice.ask("", hdr...)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: untrusted peer got %d, want 403", name, r.StatusCode)
		}
		for _, h := range identityHeaders {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s: untrusted peer got %s = %q", name, h, v)
			}
		}
		if l := e.accessLine(r.Header.Get("X-Request-Id")); l == nil || l["reason"] != "forward_auth_untrusted_peer" {
			t.Errorf("%s: access line %v, want reason forward_auth_untrusted_peer", name, l)
		}
	}
	// Envoy's form too.
	if r := alice.do(http.MethodGet, faPath+"/docs", nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("envoy form from an untrusted peer: %d", r.StatusCode)
	}
}

func TestForwardAuthAllowReturnsIdentity(t *testing.T) {
	e := newTrustedEnv(t)
	v := fetchVerifier(t, e)
	alice := e.browser()
	alice.signIn("/docs", "alice")

	// What the upstream receives in reverse-proxy mode.
	proxied := alice.get("/docs?x=1").echo(t)

	conventions := map[string]func() *resp{
		"traefik/caddy": func() *resp { return alice.ask("", e.traefik("GET", "/docs?x=1")...) },
		"nginx X-Original-URL": func() *resp {
			return alice.ask("", "X-Original-URL", "https://"+e.host()+"/docs?x=1", "X-Original-Method", "GET")
		},
		"nginx X-Original-URI": func() *resp {
			return alice.ask("", "X-Original-URI", "/docs?x=1", "X-Forwarded-Host", e.host(), "X-Forwarded-Proto", "https")
		},
		// Envoy ext_authz: path_prefix /.gatehouse/auth plus the original
		// path, the original method and Host.
		"envoy": func() *resp { return alice.do(http.MethodGet, faPath+"/docs?x=1", nil, "X-Forwarded-Proto", "https") },
		// nginx auth_request keeps the original method on the subrequest.
		"subrequest method": func() *resp {
			return alice.do(http.MethodHead, faPath, nil, "X-Original-URI", "/docs?x=1", "X-Forwarded-Host", e.host())
		},
	}
	for name, ask := range conventions {
		t.Run(name, func(t *testing.T) {
			r := ask()
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200: %.300s", r.StatusCode, r.body)
			}
			if r.body != "" {
				t.Errorf("allow answer has a body: %q", r.body)
			}
			if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			for _, h := range identityHeaders {
				want := one(t, proxied.Header, h)
				if got := r.Header.Values(h); len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, reverse-proxy mode sends %q", h, got, want)
				}
			}
			c, err := v.Verify(r.Header.Get(assertion.DefaultHeader), "intranet")
			if err != nil || c.Subject != "alice" || !slices.Equal(c.Roles, []string{"employee"}) {
				t.Errorf("assertion: %v %+v", err, c)
			}
			for _, h := range []string{"X-Gatehouse-User", "X-Gatehouse-Email", "X-Shop-Customer"} {
				if v := r.Header.Get(h); v != "" {
					t.Errorf("%s = %q from a route that does not send it", h, v)
				}
			}
			l := e.accessLine(r.Header.Get("X-Request-Id"))
			if l == nil || l["route"] != "intranet" || l["decision"] != "allow" {
				t.Errorf("access line %v, want route intranet, decision allow", l)
			}
		})
	}

	// The shop route's own headers, for a customer.
	dana := e.browser()
	dana.signIn("/shop/account", "c-1001")
	r := dana.ask("", e.traefik("GET", "/shop/account")...)
	if r.StatusCode != http.StatusOK || r.Header.Get("X-Shop-Customer") != "c-1001" || r.Header.Get("X-Remote-User") != "" {
		t.Errorf("shop: %d X-Shop-Customer %q X-Remote-User %q", r.StatusCode, r.Header.Get("X-Shop-Customer"), r.Header.Get("X-Remote-User"))
	}
	// A public route: allowed, no identity.
	anon := e.browser()
	r = anon.ask("", e.traefik("GET", "/public/x")...)
	if r.StatusCode != http.StatusOK || r.Header.Get(assertion.DefaultHeader) != "" {
		t.Errorf("public: %d assertion %q", r.StatusCode, r.Header.Get(assertion.DefaultHeader))
	}
}

func TestForwardAuthAnonymousBrowser(t *testing.T) {
	e := newTrustedEnv(t)
	b := e.browser()
	wantLogin := "https://" + e.host() + "/.gatehouse/login?audience=workforce&rd=" + url.QueryEscape("https://"+e.host()+"/docs?x=1")

	// Default: 401, the sign-in URL in Location for nginx to redirect to.
	r := b.ask("", e.traefik("GET", "/docs?x=1")...)
	if r.StatusCode != http.StatusUnauthorized || r.location() != wantLogin {
		t.Fatalf("anonymous: status %d Location %q, want 401 %q", r.StatusCode, r.location(), wantLogin)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", r.Header.Get("Cache-Control"))
	}
	if l := e.accessLine(r.Header.Get("X-Request-Id")); l == nil || l["route"] != "intranet" || l["decision"] != "need-login" {
		t.Errorf("access line %v", l)
	}
	// ?redirect=1 (Traefik, Caddy pass the answer to the client): 302.
	r = b.ask("?redirect=1", e.traefik("GET", "/docs?x=1")...)
	if r.StatusCode != http.StatusFound || r.location() != wantLogin {
		t.Fatalf("redirect=1: status %d Location %q", r.StatusCode, r.location())
	}
	// The sign-in goes back to the original absolute URL.
	if back := b.loginAt(r.location(), "alice"); back != "https://"+e.host()+"/docs?x=1" {
		t.Errorf("callback sent the browser to %q", back)
	}
	if r := b.ask("", e.traefik("GET", "/docs?x=1")...); r.StatusCode != http.StatusOK || r.Header.Get("X-Remote-User") != "alice" {
		t.Errorf("after sign-in: %d %q", r.StatusCode, r.Header.Get("X-Remote-User"))
	}

	// A request with a body cannot be replayed: no redirect, a page.
	anon := e.browser()
	r = anon.ask("?redirect=1", e.traefik("POST", "/docs")...)
	if r.StatusCode != http.StatusUnauthorized || r.location() != "" {
		t.Errorf("POST: status %d Location %q, want 401 without Location", r.StatusCode, r.location())
	}

	// Step-up is answered like sign-in, with the step-up parameters.
	r = b.ask("?redirect=1", e.traefik("GET", "/secure/x")...)
	if r.StatusCode != http.StatusFound || !strings.Contains(r.location(), "mfa=1") {
		t.Errorf("step-up: status %d Location %q", r.StatusCode, r.location())
	}
}

func TestForwardAuthOpenRedirect(t *testing.T) {
	e := newTrustedEnv(t)
	b := e.browser()
	for name, hdr := range map[string][]string{
		"X-Forwarded-Host": {"X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example", "X-Forwarded-Uri", "/docs"},
		"X-Original-URL":   {"X-Original-URL", "https://evil.example/docs"},
		"userinfo":         {"X-Original-URL", "https://" + e.host() + "@evil.example/docs"},
		"port":             {"X-Forwarded-Host", e.host() + "1", "X-Forwarded-Uri", "/docs"},
	} {
		for _, q := range []string{"", "?redirect=1"} {
			r := b.ask(q, hdr...)
			if r.StatusCode == http.StatusOK || r.StatusCode == http.StatusFound {
				t.Errorf("%s%s: status %d", name, q, r.StatusCode)
			}
			if loc := r.location(); strings.Contains(loc, "evil") || loc != "" {
				t.Errorf("%s%s: Location %q", name, q, loc)
			}
			if strings.Contains(r.body, "evil.example") {
				t.Errorf("%s%s: body mentions the forged host", name, q)
			}
		}
	}
}

func TestForwardAuthAPIClient(t *testing.T) {
	e := newTrustedEnv(t)
	b := e.browser()
	r := b.do(http.MethodGet, faPath, nil, append(e.traefik("GET", "/docs"), "Accept", "application/json")...)
	var j struct{ Error, Message, RequestID string }
	if r.StatusCode != http.StatusUnauthorized || r.location() != "" || json.Unmarshal([]byte(r.body), &j) != nil || j.Error != "unauthenticated" {
		t.Fatalf("API client: status %d Location %q body %q", r.StatusCode, r.location(), r.body)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("API client: Content-Type %q WWW-Authenticate %q", r.Header.Get("Content-Type"), r.Header.Get("WWW-Authenticate"))
	}
	// ?redirect=1 never redirects an API client.
	r = b.do(http.MethodGet, faPath+"?redirect=1", nil, append(e.traefik("GET", "/docs"), "Sec-Fetch-Mode", "cors")...)
	if r.StatusCode != http.StatusUnauthorized || r.location() != "" {
		t.Errorf("fetch with redirect=1: status %d Location %q", r.StatusCode, r.location())
	}
	// Denied as JSON.
	carol := e.browser()
	carol.signIn("/", "carol")
	r = carol.do(http.MethodGet, faPath, nil, append(e.traefik("GET", "/docs"), "Accept", "application/json")...)
	if r.StatusCode != http.StatusForbidden || json.Unmarshal([]byte(r.body), &j) != nil || j.Error == "" || strings.Contains(r.body, "contractors") {
		t.Errorf("denied API client: status %d body %q", r.StatusCode, r.body)
	}
}

func TestForwardAuthDeny(t *testing.T) {
	e := newTrustedEnv(t)
	alice, carol := e.browser(), e.browser()
	alice.signIn("/", "alice")
	carol.signIn("/", "carol")
	cases := []struct {
		who  *browser
		path string
	}{
		{alice, "/admin/panel"}, // admin-area needs the admin role
		{carol, "/docs"},        // contractors are denied
	}
	for _, c := range cases {
		r := c.who.ask("", e.traefik("GET", c.path)...)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", c.path, r.StatusCode)
		}
		for _, h := range identityHeaders {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s: denied answer carries %s = %q", c.path, h, v)
			}
		}
		if l := e.accessLine(r.Header.Get("X-Request-Id")); l == nil || l["route"] != "intranet" || l["decision"] != "deny" {
			t.Errorf("%s: access line %v", c.path, l)
		}
	}
	// No route and unknown methods are 403 too (front proxies treat other
	// codes as a failure of the auth service).
	np := newEnvWith(t, envConfig{policy: onlyPublicPolicy, serverExtra: `  trusted_proxies: ["127.0.0.1/32"]`})
	if r := np.browser().ask("", np.traefik("GET", "/nowhere")...); r.StatusCode != http.StatusForbidden {
		t.Errorf("no route: status %d, want 403", r.StatusCode)
	}
	if r := alice.ask("", e.traefik("BREW", "/docs")...); r.StatusCode != http.StatusForbidden {
		t.Errorf("unknown method: status %d, want 403", r.StatusCode)
	}
}

// The original path is normalized and judged exactly as a proxied request:
// each forward-auth answer matches the reverse-proxy answer to the same
// request line (200 ~ 200, 302 to sign-in ~ 401, 403 ~ 403, 400 ~ 400).
func TestForwardAuthPathConfusion(t *testing.T) {
	e := newTrustedEnv(t)
	alice := e.browser()
	alice.signIn("/", "alice")
	paths := []string{
		"/public/../admin", "/public/%2e%2e/admin", "/public/%2E%2E/admin", "/admin%2F", "/public%2F..%2Fadmin",
		"/public/./x", "//admin", "/public//x", "/admin;x=1", "/public/x%00", "/public%23/x", "/../admin",
		"/ADMIN", "/public/%61dmin", "/%70ublic/x", "/public\\..\\admin", "/public/x?y=/../admin",
	}
	expect := map[int]int{http.StatusOK: http.StatusOK, http.StatusFound: http.StatusUnauthorized, http.StatusForbidden: http.StatusForbidden, http.StatusBadRequest: http.StatusBadRequest}
	for _, who := range []*browser{alice, e.browser()} {
		for _, p := range paths {
			pr := e.raw("GET " + p + " HTTP/1.1\r\nAccept: text/html\r\nCookie: " + who.cookieHeader() + "\r\n\r\n")
			want, ok := expect[pr.StatusCode]
			if !ok {
				t.Errorf("%s: reverse-proxy status %d not in the table", p, pr.StatusCode)
				continue
			}
			for name, hdr := range map[string][]string{
				"X-Forwarded-Uri": e.traefik("GET", p),
				"X-Original-URL":  {"X-Original-URL", "https://" + e.host() + p},
			} {
				r := who.ask("", hdr...)
				if r.StatusCode != want {
					t.Errorf("%s via %s (signed in: %v): status %d, reverse proxy %d so want %d", p, name, who == alice, r.StatusCode, pr.StatusCode, want)
				}
			}
		}
	}
}

func TestForwardAuthSpoofedIdentityNeverEchoed(t *testing.T) {
	e := newTrustedEnv(t)
	alice := e.browser()
	alice.signIn("/", "alice")
	spoof := []string{
		"X-Remote-User", "mallory", "X_Remote_User", "mallory", "x-remote-roles", "admin",
		"X-Gatehouse-User", "mallory", "X-Gatehouse-Email", "mallory@evil.example", "X-Gatehouse-Roles", "admin",
		assertion.DefaultHeader, "forged.token.value", "Remote-User", "mallory",
	}
	r := alice.ask("", append(e.traefik("GET", "/docs"), spoof...)...)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	if v := r.Header.Values("X-Remote-User"); len(v) != 1 || v[0] != "alice" {
		t.Errorf("X-Remote-User = %q", v)
	}
	if v := r.Header.Values("X-Remote-Roles"); len(v) != 1 || v[0] != "employee" {
		t.Errorf("X-Remote-Roles = %q", v)
	}
	if v := r.Header.Values(assertion.DefaultHeader); len(v) != 1 || v[0] == "forged.token.value" {
		t.Errorf("assertion = %q", v)
	}
	for k, v := range r.Header {
		for _, x := range v {
			if strings.Contains(x, "mallory") || x == "admin" {
				t.Errorf("answer echoes a client header: %s = %q", k, x)
			}
		}
	}
	// Anonymous on a public route: nothing that looks like an identity.
	r = e.browser().ask("", append(e.traefik("GET", "/public/x"), spoof...)...)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("public: status %d", r.StatusCode)
	}
	for _, h := range []string{"X-Remote-User", "X-Remote-Roles", "X-Gatehouse-User", "X-Gatehouse-Email", "Remote-User", assertion.DefaultHeader} {
		if v := r.Header.Values(h); len(v) != 0 {
			t.Errorf("public: answer has %s = %q", h, v)
		}
	}
}

func TestForwardAuthBadDescriptions(t *testing.T) {
	e := newTrustedEnv(t)
	alice := e.browser()
	alice.signIn("/", "alice")
	cases := map[string][]string{
		"none":                 nil,
		"two conventions":      {"X-Forwarded-Uri", "/public/x", "X-Original-URL", "https://" + e.host() + "/admin"},
		"repeated uri":         {"X-Forwarded-Uri", "/public/x", "X-Forwarded-Uri", "/admin"},
		"repeated host":        {"X-Forwarded-Uri", "/docs", "X-Forwarded-Host", e.host(), "X-Forwarded-Host", "other.example"},
		"host list":            {"X-Forwarded-Uri", "/docs", "X-Forwarded-Host", e.host() + ", other.example"},
		"methods disagree":     {"X-Forwarded-Uri", "/docs", "X-Forwarded-Method", "GET", "X-Original-Method", "DELETE"},
		"bad method":           {"X-Forwarded-Uri", "/docs", "X-Forwarded-Method", "G E T"},
		"relative uri":         {"X-Forwarded-Uri", "docs"},
		"absolute uri":         {"X-Forwarded-Uri", "https://" + e.host() + "/docs"},
		"original URL no host": {"X-Original-URL", "/docs"},
		"original URL scheme":  {"X-Original-URL", "ftp://" + e.host() + "/docs"},
		"bad proto":            {"X-Forwarded-Uri", "/docs", "X-Forwarded-Proto", "gopher"},
		"bad host":             {"X-Forwarded-Uri", "/docs", "X-Forwarded-Host", "a b"},
	}
	for name, hdr := range cases {
		r := alice.ask("", hdr...)
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, r.StatusCode)
		}
		if v := r.Header.Get("X-Remote-User"); v != "" {
			t.Errorf("%s: answer carries X-Remote-User", name)
		}
	}
}
