package proxy_test

// The end-to-end harness: a gateway built exactly as cmd/gatehouse builds it
// (app.LoadBytes, app.Build, proxy.New) and served over TLS by httptest, so
// that Secure and __Host- cookies work; an echo upstream that reports what
// it received as JSON; browsers with cookie jars that stop at every redirect;
// a raw TLS request writer for bytes Go's client would clean up; and the
// static provider's sign-in walked step by step.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
)

// mainPolicy is the policy most tests run. {{PUBLIC}}, {{UP}}, {{SLOW}},
// {{DOWN}} and {{SERVER_EXTRA}} are filled in by newEnv.
const mainPolicy = `
version: 1
server:
  public_url: "{{PUBLIC}}"
{{SERVER_EXTRA}}
session:
  keys: ["e2e-test-session-key-0123456789abcdef"]
audiences:
  workforce: { providers: [corp] }
  customer: { providers: [shoppers] }
providers:
  corp:
    type: static
    display_name: Corp test users
    users:
      - { sub: alice, name: Alice Employee, email: alice@corp.example, groups: [staff] }
      - { sub: bob, name: Bob Admin, email: bob@corp.example, groups: [staff, it-admins], amr: [pwd, otp] }
      - { sub: carol, name: Carol Contractor, email: carol@partner.example, groups: [staff, contractors] }
  shoppers:
    type: static
    users:
      - { sub: c-1001, name: Dana Customer, email: dana@mail.example }
roles:
  employee: { description: staff, groups: [staff] }
  admin: { description: IT admins, groups: [it-admins], inherits: [employee] }
routes:
  - name: public
    match: { path: /public }
    audience: public
    upstream: "{{UP}}"
  - name: shop
    match: { path: /shop }
    audience: [customer, public]
    rules:
      - { name: account, path: /shop/account, allow: { authenticated: true } }
    upstream: "{{UP}}"
    forward: { user: X-Shop-Customer, email: X-Shop-Email }
  - name: intranet
    match: { path: / }
    audience: workforce
    allow: { roles: [employee] }
    deny: { groups: [contractors] }
    rules:
      - { name: admin-area, path: /admin, allow: { roles: [admin] } }
      - { name: secure-area, path: /secure, require: { mfa: true } }
    upstream: "{{UP}}"
    forward:
      user: X-Remote-User
      email: X-Remote-Email
      name: X-Remote-Name
      groups: X-Remote-Groups
      roles: X-Remote-Roles
  - name: slow
    match: { path: /slow }
    audience: workforce
    allow: { authenticated: true }
    timeout: 200ms
    upstream: "{{SLOW}}"
  - name: down
    match: { path: /down }
    audience: workforce
    allow: { authenticated: true }
    upstream: "{{DOWN}}"
`

// echoed is what the echo upstream saw.
type echoed struct {
	Method      string      `json:"method"`
	Host        string      `json:"host"`
	Path        string      `json:"path"`
	EscapedPath string      `json:"escaped_path"`
	RequestURI  string      `json:"request_uri"`
	RawQuery    string      `json:"raw_query"`
	Header      http.Header `json:"header"`
	Trailer     http.Header `json:"trailer"`
	Body        string      `json:"body"`
}

// upstream is the echo application behind the gateway. Besides echoing it
// streams server-sent events on /stream/sse and tunnels a WebSocket-style
// upgrade on /stream/ws.
type upstream struct {
	srv *httptest.Server

	mu   sync.Mutex
	seen []echoed

	// sseGate holds the SSE handler between its first and second event.
	sseGate chan struct{}
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{sseGate: make(chan struct{})}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/stream/sse":
		u.record(r, "")
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-u.sseGate:
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "data: two\n\n")
		return
	case "/stream/ws":
		u.record(r, "")
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		fmt.Fprintf(brw, "user=%s\n", r.Header.Get("X-Remote-User"))
		brw.Flush()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				conn.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}
	if r.URL.Path == "/set-cookie" {
		// An upstream setting cookies, named by the query.
		for _, c := range r.URL.Query()["c"] {
			w.Header().Add("Set-Cookie", c)
		}
	}
	body, _ := io.ReadAll(r.Body)
	e := u.record(r, string(body))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", "echo")
	json.NewEncoder(w).Encode(e)
}

func (u *upstream) record(r *http.Request, body string) echoed {
	e := echoed{
		Method: r.Method, Host: r.Host, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(),
		RequestURI: r.RequestURI, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(),
		Trailer: r.Trailer.Clone(), Body: body,
	}
	u.mu.Lock()
	u.seen = append(u.seen, e)
	u.mu.Unlock()
	return e
}

// hits returns a copy of every request the upstream received so far.
func (u *upstream) hits() []echoed {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]echoed(nil), u.seen...)
}

// env is one gateway over TLS in front of the echo upstream.
type env struct {
	t      testing.TB
	srv    *httptest.Server
	gw     *proxy.Gateway
	opts   proxy.Options
	public string // https://127.0.0.1:port, also the public_url
	up     *upstream
	logs   *observer.ObservedLogs
	// release ends any handler of the slow upstream still waiting.
	release chan struct{}
}

type envConfig struct {
	policy      string // mainPolicy when empty
	serverExtra string // extra lines under server:, indented two spaces
	// logger replaces the in-memory observer (e.logs is then empty).
	logger *zap.Logger
	// edit, when set, changes the built options before the gateway is
	// made (replace a provider, the shared state, the session store).
	edit func(*proxy.Options)
}

func newEnv(t testing.TB) *env { return newEnvWith(t, envConfig{}) }

func newEnvWith(t testing.TB, c envConfig) *env {
	t.Helper()
	e := &env{t: t, up: newUpstream(t), release: make(chan struct{})}

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-e.release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(e.release) }) // runs before slow.Close

	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more

	e.srv = httptest.NewUnstartedServer(nil)
	e.public = "https://" + e.srv.Listener.Addr().String()

	pol := c.policy
	if pol == "" {
		pol = mainPolicy
	}
	pol = strings.NewReplacer(
		"{{PUBLIC}}", e.public,
		"{{UP}}", e.up.srv.URL,
		"{{SLOW}}", slow.URL,
		"{{DOWN}}", downURL,
		"{{SERVER_EXTRA}}", c.serverExtra,
	).Replace(pol)

	l, err := app.LoadBytes("test.yaml", []byte(pol), nil)
	if err != nil {
		t.Fatalf("LoadBytes: %v\n%s", err, pol)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	log := zap.New(core)
	if c.logger != nil {
		log = c.logger
	}
	opts, _, err := app.Build(l, log, nil)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if c.edit != nil {
		c.edit(&opts)
	}
	e.opts = opts
	gw, err := proxy.New(opts)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	e.gw = gw
	e.srv.Config.Handler = gw
	e.srv.Config.ErrorLog = nil
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

// cookieName is the session cookie name of an audience.
func (e *env) cookieName(aud identity.Audience) string { return e.opts.Sessions.CookieName(aud) }

// browser is one client with its own cookie jar; it never follows redirects.
type browser struct {
	e   *env
	jar *cookiejar.Jar
	c   *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar, c: &http.Client{
		Transport:     e.srv.Client().Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       20 * time.Second,
	}}
}

// resp is a response with its body read.
type resp struct {
	*http.Response
	body string
}

func (r *resp) location() string { return r.Header.Get("Location") }

// echo decodes the body as the echo upstream's report.
func (r *resp) echo(t testing.TB) echoed {
	t.Helper()
	if r.Header.Get("X-Upstream") != "echo" {
		t.Fatalf("response %d did not come from the upstream: %.400s", r.StatusCode, r.body)
	}
	var e echoed
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("decoding upstream echo: %v: %.400s", err, r.body)
	}
	return e
}

// do sends a request; target is a path or a full URL. hdr holds pairs of
// header name and value, set with the exact key given (no canonicalization).
func (b *browser) do(method, target string, body io.Reader, hdr ...string) *resp {
	b.e.t.Helper()
	u := target
	if strings.HasPrefix(target, "/") {
		u = b.e.public + target
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.e.t.Fatalf("NewRequest %s %s: %v", method, target, err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header[hdr[i]] = append(req.Header[hdr[i]], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		b.e.t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return &resp{Response: res, body: string(data)}
}

func (b *browser) get(target string, hdr ...string) *resp {
	b.e.t.Helper()
	return b.do(http.MethodGet, target, nil, append([]string{"Accept", "text/html"}, hdr...)...)
}

func (b *browser) postForm(target string, form url.Values, hdr ...string) *resp {
	b.e.t.Helper()
	return b.do(http.MethodPost, target, strings.NewReader(form.Encode()),
		append([]string{"Content-Type", "application/x-www-form-urlencoded", "Accept", "text/html", "Origin", b.e.public}, hdr...)...)
}

// cookie returns the jar's value of the named cookie, or "".
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.public)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// session returns the browser's session cookie for an audience.
func (b *browser) session(aud identity.Audience) string { return b.cookie(b.e.cookieName(aud)) }

// cookieHeader is the Cookie header the browser would send.
func (b *browser) cookieHeader() string {
	u, _ := url.Parse(b.e.public)
	var parts []string
	for _, c := range b.jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// startLogin follows GET login to the static picker and returns the
// provider name and state from the picker URL. login is the
// /.gatehouse/login?... URL.
func (b *browser) startLogin(login string) (provider, state string) {
	t := b.e.t
	t.Helper()
	r := b.get(login)
	if r.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: status %d, want 302: %.300s", login, r.StatusCode, r.body)
	}
	pick, err := url.Parse(r.location())
	if err != nil || !strings.HasPrefix(pick.Path, proxy.Prefix+"static/") || pick.Query().Get("state") == "" {
		t.Fatalf("login redirected to %q, want %sstatic/<provider>?state=...", r.location(), proxy.Prefix)
	}
	provider = strings.TrimPrefix(pick.Path, proxy.Prefix+"static/")
	state = pick.Query().Get("state")
	// The picker page itself, as a browser would show it.
	p := b.get(r.location())
	if p.StatusCode != http.StatusOK || !strings.Contains(p.body, state) {
		t.Fatalf("picker %s: status %d, state missing: %.300s", r.location(), p.StatusCode, p.body)
	}
	return provider, state
}

// callback posts the picker's form and returns the response.
func (b *browser) callback(provider, state, user string, extra ...string) *resp {
	b.e.t.Helper()
	form := url.Values{"state": {state}, "user": {user}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Add(extra[i], extra[i+1])
	}
	return b.postForm(proxy.Prefix+"callback/"+provider, form)
}

// signIn walks the whole browser sign-in from a protected URL and returns
// the URL the callback sent the browser back to.
//
//	GET path                    -> 302 /.gatehouse/login?audience=...&rd=...
//	GET /.gatehouse/login?...   -> 302 /.gatehouse/static/<prov>?state=S
//	POST /.gatehouse/callback/<prov> {state: S, user: sub} -> 303 back
func (b *browser) signIn(path, user string, extra ...string) string {
	t := b.e.t
	t.Helper()
	r := b.get(path)
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.location(), proxy.Prefix+"login?") {
		t.Fatalf("GET %s before sign-in: status %d Location %q, want 302 to the login", path, r.StatusCode, r.location())
	}
	return b.loginAt(r.location(), user, extra...)
}

// loginAt signs in from a /.gatehouse/login?... URL.
func (b *browser) loginAt(login, user string, extra ...string) string {
	t := b.e.t
	t.Helper()
	prov, state := b.startLogin(login)
	r := b.callback(prov, state, user, extra...)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback for %s: status %d, want 303: %.300s", user, r.StatusCode, r.body)
	}
	return r.location()
}

// rawResponse is the answer to a raw request.
type rawResponse struct {
	*http.Response
	body string
}

// raw sends request bytes exactly as given over a new TLS connection to
// the gateway and reads one response. The request must end its header
// block; a "Host" line is added after the request line when absent.
func (e *env) raw(request string) *rawResponse {
	e.t.Helper()
	conn, br := e.dialRaw()
	defer conn.Close()
	if !strings.Contains(strings.ToLower(request), "\r\nhost:") {
		line, rest, _ := strings.Cut(request, "\r\n")
		request = line + "\r\nHost: " + e.srv.Listener.Addr().String() + "\r\n" + rest
	}
	if _, err := io.WriteString(conn, request); err != nil {
		e.t.Fatalf("raw write: %v", err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		e.t.Fatalf("raw read response to %q: %v", firstLine(request), err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return &rawResponse{Response: res, body: string(data)}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// dialRaw opens a TLS connection to the gateway.
func (e *env) dialRaw() (net.Conn, *bufio.Reader) {
	e.t.Helper()
	cfg := e.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), cfg)
	if err != nil {
		e.t.Fatalf("tls dial: %v", err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, bufio.NewReader(conn)
}

// rawEcho decodes a raw response that must come from the upstream.
func (r *rawResponse) echo(t testing.TB) echoed {
	t.Helper()
	rr := &resp{Response: r.Response, body: r.body}
	return rr.echo(t)
}

// headerLines renders pairs as header lines.
func headerLines(pairs ...string) string {
	var b bytes.Buffer
	for i := 0; i+1 < len(pairs); i += 2 {
		b.WriteString(pairs[i] + ": " + pairs[i+1] + "\r\n")
	}
	return b.String()
}

// normName folds a header name the way CGI-style upstreams do.
func normName(n string) string {
	return strings.ReplaceAll(strings.ToLower(n), "_", "-")
}

// headerValues returns every value the upstream got under any spelling of
// name (any case, '_' for '-').
func headerValues(h http.Header, name string) []string {
	var out []string
	for k, v := range h {
		if normName(k) == normName(name) {
			out = append(out, v...)
		}
	}
	return out
}

var csrfField = regexp.MustCompile(`name="` + pages.FieldCSRFToken + `"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="` + pages.FieldCSRFToken + `"`)

// csrfToken extracts the logout form's CSRF token.
func csrfToken(t testing.TB, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf_token field in the logout page: %.600s", page)
	}
	if m[1] != "" {
		return m[1]
	}
	return m[2]
}

// logged reports whether any log entry has the given field value.
func (e *env) logged(field, value string) bool {
	for _, le := range e.logs.All() {
		for _, f := range le.Context {
			if f.Key == field && f.String == value {
				return true
			}
		}
	}
	return false
}

// loggedMsg reports whether a log entry with this message was written.
func (e *env) loggedMsg(msg string) bool {
	for _, le := range e.logs.All() {
		if le.Message == msg {
			return true
		}
	}
	return false
}
