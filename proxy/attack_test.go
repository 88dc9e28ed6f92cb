package proxy_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
)

// attackValues are the values an attacker puts in smuggled headers; the
// upstream must never see any of them.
var attackValues = []string{"admin", "evil", "forged", "it-admins", "attacker"}

// assertNoAttackValue scans every header value except the Cookie header
// and the assertion, whose random base64 could contain a short word by
// chance (both are checked on their own).
func assertNoAttackValue(t *testing.T, h http.Header) {
	t.Helper()
	for k, vs := range h {
		if k == "Cookie" || normName(k) == normName(assertion.DefaultHeader) {
			continue
		}
		for _, v := range vs {
			for _, a := range attackValues {
				if strings.Contains(v, a) {
					t.Errorf("upstream received attacker value in %s: %q", k, v)
				}
			}
		}
	}
}

// smuggleCases are header blocks (raw lines) an attacker sends to pose as
// another user or to make the gateway drop its own identity headers.
var smuggleCases = []struct {
	name  string
	lines string
}{
	{"x-forwarded-user", "X-Forwarded-User: admin\r\n"},
	{"underscore spelling", "X_Forwarded_User: admin\r\nX_Remote_User: admin\r\n"},
	{"lower case", "x-remote-user: admin\r\nx-remote-roles: admin\r\n"},
	{"upper case", "X-REMOTE-USER: admin\r\nX-REMOTE-GROUPS: it-admins\r\n"},
	{"mixed separators", "X-Remote_User: admin\r\nX_remote-Email: evil@example.com\r\n"},
	{"dot separator", "X.Remote.User: admin\r\n"},
	{"duplicates", "X-Remote-User: admin\r\nX-Remote-User: admin\r\nx-remote-user: admin\r\n"},
	{"forged assertion", "X-Gatehouse-Assertion: forged\r\nx_gatehouse_assertion: forged\r\n"},
	{"gatehouse namespace", "X-Gatehouse-User: admin\r\nX-Gatehouse-Roles: admin\r\n"},
	{"auth request", "X-Auth-Request-Email: evil@example.com\r\nX-Auth-Request-User: admin\r\n"},
	{"remote-user", "Remote-User: admin\r\nRemote-Email: evil@example.com\r\n"},
	{"other proxies", "X-Webauth-User: admin\r\nX-Authenticated-User: admin\r\nCf-Access-Authenticated-User-Email: evil@example.com\r\nX-Amzn-Oidc-Identity: admin\r\n"},
	{"shop header on the intranet", "X-Shop-Customer: admin\r\n"},
	{"request id", "X-Request-Id: attacker\r\n"},
	{"connection drops own header", "Connection: X-Remote-User\r\n"},
	{"connection drops several", "Connection: keep-alive, X-Remote-User, x-remote-roles, X-Gatehouse-Assertion, X-Request-Id\r\n"},
	{"connection list split", "Connection: X-Remote-User\r\nConnection: X-Gatehouse-Assertion\r\nX-Remote-User: admin\r\n"},
	{"connection plus value", "Connection: close, X-Remote-User\r\nX-Remote-User: admin\r\n"},
}

// 3. Header smuggling (ATTACKS #2): with and without a session the upstream
// never sees the attacker's values; with a session it sees exactly the
// gateway's.
func TestAttackHeaderSmuggling(t *testing.T) {
	e := newEnv(t)
	v := fetchVerifier(t, e)
	alice := e.browser()
	alice.signIn("/", "alice")
	cookie := "Cookie: " + alice.cookieHeader() + "\r\n"

	for _, tc := range smuggleCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("session", func(t *testing.T) {
				r := e.raw("GET /docs HTTP/1.1\r\n" + cookie + tc.lines + "\r\n")
				if r.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %.300s", r.StatusCode, r.body)
				}
				got := r.echo(t)
				assertNoAttackValue(t, got.Header)
				want := map[string]string{
					"X-Remote-User":   "alice",
					"X-Remote-Email":  "alice@corp.example",
					"X-Remote-Name":   "Alice Employee",
					"X-Remote-Groups": "staff",
					"X-Remote-Roles":  "employee",
				}
				for h, w := range want {
					if g := headerValues(got.Header, h); len(g) != 1 || g[0] != w {
						t.Errorf("upstream %s = %q, want exactly [%q]", h, g, w)
					}
				}
				toks := headerValues(got.Header, assertion.DefaultHeader)
				if len(toks) != 1 {
					t.Fatalf("upstream got %d assertions", len(toks))
				}
				if c, err := v.Verify(toks[0], "intranet"); err != nil || c.Subject != "alice" {
					t.Errorf("assertion: %v", err)
				}
				if rid := headerValues(got.Header, "X-Request-Id"); len(rid) != 1 || rid[0] != r.Header.Get("X-Request-Id") {
					t.Errorf("upstream X-Request-Id %q, response %q", rid, r.Header.Get("X-Request-Id"))
				}
				for _, h := range []string{"Connection", "X-Forwarded-User", "Remote-User", "X-Gatehouse-User", "X-Shop-Customer"} {
					if g := headerValues(got.Header, h); len(g) != 0 {
						t.Errorf("upstream got %s = %q", h, g)
					}
				}
			})
			t.Run("public route", func(t *testing.T) {
				r := e.raw("GET /public/x HTTP/1.1\r\n" + tc.lines + "\r\n")
				if r.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %.300s", r.StatusCode, r.body)
				}
				got := r.echo(t)
				assertNoAttackValue(t, got.Header)
				for _, h := range []string{"X-Remote-User", assertion.DefaultHeader, "X-Gatehouse-User"} {
					if g := headerValues(got.Header, h); len(g) != 0 {
						t.Errorf("public route: upstream got %s = %q", h, g)
					}
				}
			})
			t.Run("anonymous protected", func(t *testing.T) {
				before := len(e.up.hits())
				r := e.raw("GET /docs HTTP/1.1\r\nAccept: text/html\r\n" + tc.lines + "\r\n")
				if r.StatusCode != http.StatusFound {
					t.Errorf("status %d, want 302", r.StatusCode)
				}
				if len(e.up.hits()) != before {
					t.Error("anonymous request with smuggled identity reached the upstream")
				}
			})
		})
	}

	// Request trailers: a chunked body declaring X-Remote-User as a
	// trailer, and one sending it undeclared.
	for _, tc := range []struct{ name, req string }{
		{"declared trailer", "POST /docs HTTP/1.1\r\n" + cookie + "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nTrailer: X-Remote-User\r\nTE: trailers\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-Remote-User: admin\r\n\r\n"},
		{"undeclared trailer", "POST /docs HTTP/1.1\r\n" + cookie + "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-Remote-User: admin\r\nX-Gatehouse-Assertion: forged\r\n\r\n"},
		{"public declared trailer", "POST /public/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTrailer: X-Remote-User, X-Forwarded-For\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-Remote-User: admin\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.raw(tc.req)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %.300s", r.StatusCode, r.body)
			}
			got := r.echo(t)
			if got.Body != "hello" {
				t.Errorf("body %q", got.Body)
			}
			assertNoAttackValue(t, got.Header)
			assertNoAttackValue(t, got.Trailer)
			for k, vs := range got.Trailer {
				for _, v := range vs {
					if v != "" {
						t.Errorf("upstream received trailer %s: %q", k, v)
					}
				}
			}
			if strings.HasPrefix(tc.name, "public") {
				if xff := headerValues(got.Header, "X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
					t.Errorf("X-Forwarded-For %q", xff)
				}
				return
			}
			if u := headerValues(got.Header, "X-Remote-User"); len(u) != 1 || u[0] != "alice" {
				t.Errorf("X-Remote-User %q", u)
			}
		})
	}
}

// 4. Path confusion through the whole proxy (ATTACKS #3): the exact bytes of
// the request target are sent; none may reach the upstream at an admin
// path for a non-admin, and allowed requests arrive normalized.
func TestAttackPathConfusion(t *testing.T) {
	e := newEnv(t)
	alice := e.browser()
	alice.signIn("/", "alice")
	bob := e.browser()
	bob.signIn("/", "bob")
	aliceCookie := "Cookie: " + alice.cookieHeader() + "\r\n"
	bobCookie := "Cookie: " + bob.cookieHeader() + "\r\n"
	host := e.srv.Listener.Addr().String()

	refusedOrDenied := []string{
		"/admin",
		"/admin/",
		"/admin/users",
		"/%61dmin",
		"/%61%64%6d%69%6e/users",
		"/x/../admin",
		"/x/%2e%2e/admin",
		"/x/.%2E/admin",
		"/./admin",
		"//admin",
		"///admin//users",
		"/admin%2f",
		"/admin%2Fusers",
		"/public/..%2fadmin",
		"/public/..%5cadmin",
		"/public/..\\admin",
		"/%2561dmin",
		"/%252e%252e/admin",
		"/admin;x=1",
		"/public/..;/admin",
		"/admin%3bx=1",
		"/admin%00",
		"/admin%0d%0aX-Remote-User:%20admin",
		"/admin%23",
		"/admin%3f",
		"/%c0%ae%c0%ae/admin",
		"/..",
		"/../admin",
		"/x/../../admin",
		"https://" + host + "/x/../admin",
		"http://evil.example/admin",
	}
	for _, target := range refusedOrDenied {
		t.Run(target, func(t *testing.T) {
			before := len(e.up.hits())
			r := e.raw("GET " + target + " HTTP/1.1\r\nAccept: text/html\r\n" + aliceCookie + "\r\n")
			if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusForbidden {
				t.Errorf("GET %s as alice: status %d, want 400 or 403", target, r.StatusCode)
			}
			for _, h := range e.up.hits()[before:] {
				t.Errorf("GET %s reached the upstream as %q", target, h.RequestURI)
			}
		})
	}

	// Allowed requests arrive at exactly the normalized path.
	for _, tc := range []struct {
		cookie, target, wantPath, wantURI string
	}{
		{aliceCookie, "/x/../docs", "/docs", "/docs"},
		{aliceCookie, "//docs", "/docs", "/docs"},
		{aliceCookie, "/%64ocs/./a", "/docs/a", "/docs/a"},
		{aliceCookie, "/docs/a/", "/docs/a/", "/docs/a/"},
		{aliceCookie, "/docs/a/..", "/docs/", "/docs/"},
		{aliceCookie, "/ADMIN", "/ADMIN", "/ADMIN"},
		{aliceCookie, "/Admin/users", "/Admin/users", "/Admin/users"},
		{aliceCookie, "/administrator", "/administrator", "/administrator"},
		{aliceCookie, "/x/../docs?a=%2f&b=..%2f", "/docs", "/docs?a=%2f&b=..%2f"},
		{aliceCookie, "/caf%C3%A9", "/café", "/caf%C3%A9"},
		{aliceCookie, "/a%20b", "/a b", "/a%20b"},
		{aliceCookie, "https://" + host + "/x/../docs", "/docs", "/docs"},
		{bobCookie, "/x/../admin", "/admin", "/admin"},
		{bobCookie, "/%61dmin", "/admin", "/admin"},
	} {
		t.Run("allowed "+tc.target, func(t *testing.T) {
			r := e.raw("GET " + tc.target + " HTTP/1.1\r\n" + tc.cookie + "\r\n")
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %.200s", r.StatusCode, r.body)
			}
			got := r.echo(t)
			if got.Path != tc.wantPath || got.RequestURI != tc.wantURI {
				t.Errorf("upstream got path %q request URI %q, want %q and %q", got.Path, got.RequestURI, tc.wantPath, tc.wantURI)
			}
		})
	}

	// OPTIONS * is not a path: net/http answers it itself (or the gateway
	// refuses it); it is never forwarded.
	before := len(e.up.hits())
	if r := e.raw("OPTIONS * HTTP/1.1\r\n" + aliceCookie + "\r\n"); r.StatusCode != http.StatusOK && r.StatusCode != http.StatusBadRequest {
		t.Errorf("OPTIONS *: status %d", r.StatusCode)
	}
	if len(e.up.hits()) != before {
		t.Error("OPTIONS * reached the upstream")
	}
}

// forwardingAttack is a request full of forwarding and override headers.
const forwardingAttack = "X-Forwarded-For: 1.2.3.4\r\n" +
	"X-Forwarded-Host: evil.example\r\n" +
	"X-Forwarded-Proto: http\r\n" +
	"X-Forwarded-Port: 81\r\n" +
	"Forwarded: for=1.2.3.4;host=evil.example;proto=http\r\n" +
	"X-Real-IP: 1.2.3.4\r\n" +
	"True-Client-IP: 1.2.3.4\r\n" +
	"X-Original-URL: /admin\r\n" +
	"X-Rewrite-URL: /admin\r\n" +
	"X-Original-URI: /admin\r\n" +
	"X-Forwarded-Uri: /admin\r\n" +
	"X-Forwarded-Prefix: /admin\r\n" +
	"X-HTTP-Method-Override: DELETE\r\n" +
	"X-Method-Override: DELETE\r\n" +
	"X_Original_URL: /admin\r\n"

// 5. Forwarding headers (ATTACKS #1): an untrusted client's values are
// replaced; a trusted proxy's chain is kept and appended; overrides go
// whoever sends them.
func TestAttackForwardingHeaders(t *testing.T) {
	overrides := []string{"X-Original-Url", "X-Rewrite-Url", "X-Original-Uri", "X-Forwarded-Uri", "X-Forwarded-Prefix",
		"X-Http-Method-Override", "X-Method-Override"}

	t.Run("untrusted client", func(t *testing.T) {
		e := newEnv(t)
		alice := e.browser()
		alice.signIn("/", "alice")
		host := e.srv.Listener.Addr().String()
		for _, tc := range []struct{ name, req string }{
			{"session", "GET /docs HTTP/1.1\r\nCookie: " + alice.cookieHeader() + "\r\n" + forwardingAttack + "\r\n"},
			{"public", "GET /public/x HTTP/1.1\r\n" + forwardingAttack + "\r\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.raw(tc.req)
				if r.StatusCode != http.StatusOK {
					t.Fatalf("status %d", r.StatusCode)
				}
				got := r.echo(t)
				if got.Method != http.MethodGet || strings.Contains(got.Path, "admin") {
					t.Errorf("upstream got %s %s", got.Method, got.Path)
				}
				if xff := headerValues(got.Header, "X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
					t.Errorf("X-Forwarded-For = %q, want [127.0.0.1]", xff)
				}
				if v := headerValues(got.Header, "X-Forwarded-Host"); len(v) != 1 || v[0] != host {
					t.Errorf("X-Forwarded-Host = %q, want [%s]", v, host)
				}
				if v := headerValues(got.Header, "X-Forwarded-Proto"); len(v) != 1 || v[0] != "https" {
					t.Errorf("X-Forwarded-Proto = %q, want [https]", v)
				}
				if got.Host != strings.TrimPrefix(e.up.srv.URL, "http://") {
					t.Errorf("upstream Host %q, want its own %q", got.Host, e.up.srv.URL)
				}
				for _, h := range append([]string{"Forwarded", "X-Real-Ip", "True-Client-Ip", "X-Forwarded-Port"}, overrides...) {
					if v := headerValues(got.Header, h); len(v) != 0 {
						t.Errorf("upstream got %s = %q", h, v)
					}
				}
				assertNoAttackValue(t, got.Header)
				for k, vs := range got.Header {
					for _, v := range vs {
						if strings.Contains(v, "1.2.3.4") {
							t.Errorf("upstream got the client's address claim in %s: %q", k, v)
						}
					}
				}
			})
		}
	})

	t.Run("trusted proxy", func(t *testing.T) {
		e := newEnvWith(t, envConfig{serverExtra: `  trusted_proxies: ["127.0.0.1/32"]`})
		alice := e.browser()
		alice.signIn("/", "alice")
		r := e.raw("GET /docs HTTP/1.1\r\nCookie: " + alice.cookieHeader() + "\r\nX-Request-Id: edge-123\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 10.0.0.1\r\n" +
			"X-Forwarded-Host: apps.example.com\r\nX-Forwarded-Proto: https\r\n" +
			"X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-HTTP-Method-Override: DELETE\r\nX-Remote-User: admin\r\n\r\n")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status %d", r.StatusCode)
		}
		got := r.echo(t)
		if xff := strings.Join(headerValues(got.Header, "X-Forwarded-For"), ", "); xff != "1.2.3.4, 10.0.0.1, 127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want the chain plus 127.0.0.1", xff)
		}
		if v := headerValues(got.Header, "X-Forwarded-Host"); len(v) != 1 || v[0] != "apps.example.com" {
			t.Errorf("X-Forwarded-Host = %q", v)
		}
		if v := headerValues(got.Header, "X-Request-Id"); len(v) != 1 || v[0] != "edge-123" || r.Header.Get("X-Request-Id") != "edge-123" {
			t.Errorf("trusted X-Request-Id: upstream %q, response %q", v, r.Header.Get("X-Request-Id"))
		}
		for _, h := range overrides {
			if v := headerValues(got.Header, h); len(v) != 0 {
				t.Errorf("trusted peer: upstream got %s = %q", h, v)
			}
		}
		if v := headerValues(got.Header, "X-Remote-User"); len(v) != 1 || v[0] != "alice" {
			t.Errorf("trusted peer: X-Remote-User = %q", v)
		}
		// A trusted peer naming X-Forwarded-For in Connection cannot erase it.
		r = e.raw("GET /public/y HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nConnection: X-Forwarded-For\r\n\r\n")
		if xff := strings.Join(headerValues(r.echo(t).Header, "X-Forwarded-For"), ", "); xff != "1.2.3.4, 127.0.0.1" {
			t.Errorf("X-Forwarded-For with Connection: X-Forwarded-For = %q", xff)
		}
	})
}

// The gateway's own cookies (sessions, sign-in attempts) are credentials
// for every route; an upstream must not receive them. A session cookie an
// upstream logged or leaked would open every other route (admin areas
// included) until it expires, which defeats the short-lived, route-bound
// assertion. The application's own cookies pass through untouched.
func TestAttackSessionCookieNotForwarded(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn("/", "alice")
	sess := b.session(identity.Workforce)
	r := b.get("/docs", "Cookie", "app_pref=dark")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	got := r.echo(t)
	cookies := strings.Join(got.Header["Cookie"], "; ")
	if !strings.Contains(cookies, "app_pref=dark") {
		t.Errorf("the application's cookie was not forwarded: %q", cookies)
	}
	if strings.Contains(cookies, e.cookieName(identity.Workforce)) || strings.Contains(cookies, sess) {
		t.Errorf("upstream received the gateway session cookie %s", e.cookieName(identity.Workforce))
	}
}

// The mirror image: an upstream must not be able to set or clear the
// gateway's cookies in the browser. Otherwise a malicious or compromised
// application behind one route can plant a session of its choosing (an
// attacker's own, valid cookie) for every route, or sign people out; the
// session cookie's __Host- prefix only protects against other hosts, not
// against responses the gateway itself relays. Application cookies pass.
func TestAttackUpstreamCannotSetGatehouseCookies(t *testing.T) {
	e := newEnv(t)
	mallory := e.browser()
	mallory.signIn("/", "bob")
	planted := e.cookieName(identity.Workforce) + "=" + mallory.session(identity.Workforce) + "; Path=/; Secure; HttpOnly; SameSite=Lax"

	victim := e.browser()
	victim.signIn("/", "alice")
	q := url.Values{"c": {planted, "app_pref=dark; Path=/", e.cookieName(identity.Customer) + "=x; Path=/; Secure"}}
	r := victim.get("/set-cookie?" + q.Encode())
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d", r.StatusCode)
	}
	var app bool
	for _, c := range r.Cookies() {
		switch {
		case c.Name == "app_pref":
			app = true
		case strings.HasPrefix(c.Name, strings.TrimSuffix(e.cookieName(identity.Workforce), "workforce")):
			t.Errorf("the upstream set the gateway cookie %s in the browser", c.Name)
		}
	}
	if !app {
		t.Error("the application's own cookie did not reach the browser")
	}
	if who := whoami(t, victim); len(who) != 1 || who[0].Sub != "alice" {
		t.Errorf("after the upstream's Set-Cookie the victim is %+v, want alice", who)
	}
}
