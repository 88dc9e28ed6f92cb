package headers

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// raw builds a header from key/value pairs without canonicalizing keys, so
// tests can hold the spellings a hand-built map or a lenient parser produces.
func raw(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1])
	}
	return h
}

// canon builds a header the way net/http's server does, canonicalizing keys.
func canon(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func newTestSanitizer(t testing.TB, extra ...string) *Sanitizer {
	t.Helper()
	s, err := NewSanitizer(extra)
	if err != nil {
		t.Fatalf("NewSanitizer(%q): %v", extra, err)
	}
	return s
}

// browserHeaders is a typical browser request over HTTP/1.1 with nothing to
// remove but the Connection header.
var browserKV = []string{
	"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
	"Accept-Encoding", "gzip, deflate, br",
	"Accept-Language", "en-US,en;q=0.5",
	"Cookie", "_gatehouse=abc; theme=dark",
	"Referer", "https://app.example.com/",
	"Sec-Fetch-Dest", "document",
	"Sec-Fetch-Mode", "navigate",
	"Sec-Fetch-Site", "same-origin",
	"Sec-Fetch-User", "?1",
	"Upgrade-Insecure-Requests", "1",
	"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Priority", "u=0, i",
}

func TestSanitize(t *testing.T) {
	type tc struct {
		name        string
		extra       []string // configured identity names
		in          http.Header
		trusted     bool
		want        http.Header
		wantUpgrade string
	}
	keep := []string{"Accept", "*/*", "User-Agent", "test"}
	with := func(kv ...string) []string { return append(slices.Clone(keep), kv...) }
	cases := []tc{
		{
			name: "browser request keeps everything",
			in:   canon(browserKV...),
			want: canon(browserKV...),
		},
		{
			name: "browser request over HTTP/1.1 loses only Connection",
			in:   canon(append(slices.Clone(browserKV), "Connection", "keep-alive")...),
			want: canon(browserKV...),
		},
		{
			name: "identity spellings (CVE-2025-64484)",
			in: raw(with(
				"X-Forwarded-User", "a",
				"X_Forwarded_User", "b",
				"x-forwarded-user", "c",
				"X-FORWARDED_USER", "d",
				"X.Forwarded.User", "e",
				"X_forwarded_user", "f",
				"Remote-User", "g",
				"REMOTE_USER", "h",
				"X-Remote-User", "i",
				"x_remote_groups", "j",
				"X-Forwarded-Email", "k",
				"X-Webauth-User", "l",
				"Cf-Access-Authenticated-User-Email", "m",
			)...),
			trusted: true,
			want:    raw(keep...),
		},
		{
			name: "default prefix patterns",
			in: raw(with(
				"X-Auth-Request-Email", "a",
				"x_auth_request_groups", "b",
				"X-Auth-Request-Access-Token", "c",
				"X-Ms-Client-Principal", "d",
				"X-Ms-Client-Principal-Name", "e",
				"X-Amzn-Oidc-Data", "f",
				"X-Gatehouse-Session", "g",
				"X-Auth-Requested", "kept: not at the dash boundary",
			)...),
			want: raw(with("X-Auth-Requested", "kept: not at the dash boundary")...),
		},
		{
			name:  "configured exact and prefix names",
			extra: []string{"X-Corp-User", "X-Corp-Attr-*"},
			in: raw(with(
				"X-Corp-User", "a",
				"x_corp_user", "b",
				"X-Corp-Attr-Dept", "c",
				"X_CORP_ATTR_COST_CENTER", "d",
				"X-Corp-Attribute", "kept",
			)...),
			want: raw(with("X-Corp-Attribute", "kept")...),
		},
		{
			name: "Connection names identity header and close",
			in: canon(with(
				"Connection", "X-Remote-User, close",
				"X-Remote-User", "mallory",
			)...),
			want: canon(keep...),
		},
		{
			name: "Connection names end-to-end headers",
			in: canon(with(
				"Connection", "X-Custom, x-lower,  X-Spaced  ,,",
				"X-Custom", "a",
				"X-Lower", "b",
				"X-Spaced", "c",
				"X-Other", "kept",
			)...),
			want: canon(with("X-Other", "kept")...),
		},
		{
			name: "two Connection lines",
			in: canon(with(
				"Connection", "X-One",
				"Connection", "x-two, Keep-Alive",
				"Keep-Alive", "timeout=5",
				"X-One", "1",
				"X-Two", "2",
				"X-Three", "3",
			)...),
			want: canon(with("X-Three", "3")...),
		},
		{
			name: "Connection cannot remove Host or Content-Length",
			in: canon(with(
				"Connection", "Host, content-length",
				"Host", "app.example.com",
				"Content-Length", "3",
			)...),
			want: canon(with("Host", "app.example.com", "Content-Length", "3")...),
		},
		{
			name: "Connection cannot remove a trusted peer's forwarding headers (CVE-2024-45410)",
			in: canon(with(
				"Connection", "X-Forwarded-For, X-Forwarded-Host, X-Real-Ip",
				"X-Forwarded-For", "203.0.113.7",
				"X-Forwarded-Host", "app.example.com",
				"X-Real-Ip", "203.0.113.7",
			)...),
			trusted: true,
			want: canon(with(
				"X-Forwarded-For", "203.0.113.7",
				"X-Forwarded-Host", "app.example.com",
				"X-Real-Ip", "203.0.113.7",
			)...),
		},
		{
			name: "WebSocket handshake keeps a clean upgrade",
			in: canon(with(
				"Connection", "keep-alive, Upgrade",
				"Upgrade", "websocket",
				"Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
				"Sec-Websocket-Version", "13",
				"Origin", "https://app.example.com",
			)...),
			want: canon(with(
				"Connection", "Upgrade",
				"Upgrade", "websocket",
				"Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25jZQ==",
				"Sec-Websocket-Version", "13",
				"Origin", "https://app.example.com",
			)...),
			wantUpgrade: "websocket",
		},
		{
			name: "WebSocket handshake whose Connection names identity and custom headers",
			in: canon(with(
				"Connection", "Upgrade, X-Remote-User",
				"Connection", "x-custom",
				"Upgrade", "WebSocket",
				"X-Remote-User", "mallory",
				"X-Custom", "gone",
				"Sec-Websocket-Version", "13",
			)...),
			want: canon(with(
				"Connection", "Upgrade",
				"Upgrade", "websocket",
				"Sec-Websocket-Version", "13",
			)...),
			wantUpgrade: "websocket",
		},
		{
			name: "h2c upgrade is removed with its settings",
			in: canon(with(
				"Connection", "Upgrade, HTTP2-Settings",
				"Upgrade", "h2c",
				"Http2-Settings", "AAMAAABkAARAAAAAAAIAAAAA",
			)...),
			want: canon(keep...),
		},
		{
			name: "Upgrade without Connection: upgrade is removed",
			in:   canon(with("Upgrade", "websocket")...),
			want: canon(keep...),
		},
		{
			name: "Upgrade listing two protocols is removed",
			in:   canon(with("Connection", "upgrade", "Upgrade", "websocket, h2c")...),
			want: canon(keep...),
		},
		{
			name: "non-canonical connection and upgrade keys are not an upgrade",
			in:   raw(with("connection", "upgrade", "upgrade", "websocket")...),
			want: raw(keep...),
		},
		{
			name: "TE: trailers survives in exact form, other codings go",
			in: canon(with(
				"Connection", "TE",
				"Te", "gzip, Trailers",
			)...),
			want: canon(with("Te", "trailers")...),
		},
		{
			name: "TE without trailers is removed",
			in:   canon(with("Te", "gzip")...),
			want: canon(keep...),
		},
		{
			name: "every hop-by-hop header",
			in: raw(with(
				"Connection", "close",
				"Proxy-Connection", "keep-alive",
				"Keep-Alive", "timeout=5",
				"Proxy-Authenticate", "Basic",
				"Proxy-Authorization", "Basic Zm9vOmJhcg==",
				"Trailer", "X-Checksum",
				"Transfer-Encoding", "chunked",
				"Transfer_Encoding", "chunked",
				"Upgrade", "websocket",
				"Http2-Settings", "AAA",
			)...),
			trusted: true,
			want:    raw(keep...),
		},
		{
			name: "untrusted peer loses forwarding headers in any spelling",
			in: raw(with(
				"Forwarded", "for=203.0.113.7",
				"X-Forwarded-For", "203.0.113.7",
				"X_Forwarded_For", "10.0.0.1",
				"X-Forwarded-Host", "evil.example",
				"X-Forwarded-Proto", "https",
				"X-Forwarded-Port", "443",
				"X-Forwarded-Ssl", "on",
				"X-Forwarded-Scheme", "https",
				"X-Real-Ip", "10.0.0.1",
				"x-real_ip", "10.0.0.1",
				"X-Client-Ip", "10.0.0.1",
				"True-Client-Ip", "10.0.0.1",
				"X-Cluster-Client-Ip", "10.0.0.1",
				"X-Forwarded-Client-Cert", "Hash=abc",
				"Ssl-Client-Subject-Dn", "CN=admin",
			)...),
			want: raw(keep...),
		},
		{
			name: "trusted peer keeps forwarding headers",
			in: raw(with(
				"Forwarded", "for=203.0.113.7",
				"X-Forwarded-For", "203.0.113.7",
				"X-Forwarded-Host", "app.example.com",
				"X-Forwarded-Proto", "https",
				"X-Forwarded-Port", "443",
				"X-Real-Ip", "203.0.113.7",
				"True-Client-Ip", "203.0.113.7",
			)...),
			trusted: true,
			want: raw(with(
				"Forwarded", "for=203.0.113.7",
				"X-Forwarded-For", "203.0.113.7",
				"X-Forwarded-Host", "app.example.com",
				"X-Forwarded-Proto", "https",
				"X-Forwarded-Port", "443",
				"X-Real-Ip", "203.0.113.7",
				"True-Client-Ip", "203.0.113.7",
			)...),
		},
		{
			name: "path and method overrides go even from a trusted peer",
			in: raw(with(
				"X-Original-Url", "/admin",
				"X-Rewrite-Url", "/admin",
				"X-Original-Uri", "/admin",
				"X-Forwarded-Uri", "/admin",
				"X-Forwarded-Prefix", "/admin",
				"X-Forwarded-Path", "/admin",
				"X-Forwarded-Method", "DELETE",
				"X-Original-Method", "DELETE",
				"X-Http-Method-Override", "DELETE",
				"X_HTTP_METHOD_OVERRIDE", "DELETE",
				"X-Http-Method", "DELETE",
				"X-Method-Override", "DELETE",
			)...),
			trusted: true,
			want:    raw(keep...),
		},
		{
			name: "empty header",
			in:   http.Header{},
			want: http.Header{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestSanitizer(t, c.extra...)
			got := c.in.Clone()
			up := s.Sanitize(got, c.trusted)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Sanitize(trusted=%v):\n got %v\nwant %v", c.trusted, got, c.want)
			}
			if up != c.wantUpgrade {
				t.Errorf("upgrade = %q, want %q", up, c.wantUpgrade)
			}
			// Sanitizing again changes nothing.
			again := got.Clone()
			if s.Sanitize(again, c.trusted); !reflect.DeepEqual(again, got) {
				t.Errorf("second Sanitize changed %v into %v", got, again)
			}
		})
	}
}

func TestIsIdentity(t *testing.T) {
	s := newTestSanitizer(t, "X-Corp-User", "X-Corp-Attr-*")
	yes := []string{
		"X-Forwarded-User", "x-forwarded-user", "X_FORWARDED_USER", "X-Forwarded_User",
		"Remote-User", "remote_user", "X-Auth-Request-User", "x_auth_request_groups",
		"X-Corp-User", "x.corp.user", "X-Corp-Attr-Dept", "X-Gatehouse-User",
		"X-Ms-Client-Principal", "X-Ms-Client-Principal-Idp", "Cf-Access-Jwt-Assertion",
		"X-Forwarded-Access-Token", strings.Repeat("X-Gatehouse-", 20) + "Long",
	}
	no := []string{
		"", "X-Forwarded-For", "Accept", "X-Forwarded-Users", "X-Forwarded-Use",
		"X-Auth-Request", "X-Corp-Attr", "Remote-Users", "XForwardedUser",
		strings.Repeat("X", 300), "X-Remote-User\u212a", // Kelvin sign must not fold
	}
	for _, n := range yes {
		if !s.IsIdentity(n) {
			t.Errorf("IsIdentity(%q) = false, want true", n)
		}
	}
	for _, n := range no {
		if s.IsIdentity(n) {
			t.Errorf("IsIdentity(%q) = true, want false", n)
		}
	}
}

func TestNewSanitizerErrors(t *testing.T) {
	bad := []string{
		"", "*", "X Remote", " X-User", "X-User ", "X-Us*er", "X-User**", "X-Üser",
		"X-User\r\n", "X:User", "Host", "host", "Content-Length", "content_length",
		"Content-*", "Con*", "Upgrade", "Transfer-Encoding", "Te", "Connection",
	}
	for _, n := range bad {
		if _, err := NewSanitizer([]string{"X-Fine", n}); err == nil {
			t.Errorf("NewSanitizer accepted %q", n)
		}
	}
	good := []string{"X-Corp-User", "X-Corp-*", "x_lower", "X-Forwarded-For", "Authorization"}
	if _, err := NewSanitizer(good); err != nil {
		t.Errorf("NewSanitizer(%q): %v", good, err)
	}
	if _, err := NewSanitizer(nil); err != nil {
		t.Errorf("NewSanitizer(nil): %v", err)
	}
}

// trailerFillingBody imitates net/http's chunked body: at EOF it stores the
// trailer values into the request, creating the map when it is nil.
type trailerFillingBody struct {
	r       *http.Request
	data    io.Reader
	trailer http.Header
	closed  bool
}

func (b *trailerFillingBody) Read(p []byte) (int, error) {
	n, err := b.data.Read(p)
	if err == io.EOF {
		if b.r.Trailer == nil {
			b.r.Trailer = http.Header{}
		}
		maps.Copy(b.r.Trailer, b.trailer)
	}
	return n, err
}

func (b *trailerFillingBody) Close() error { b.closed = true; return nil }

func TestSanitizeTrailers(t *testing.T) {
	s := newTestSanitizer(t)
	sent := http.Header{
		"X-Remote-User":          {"mallory"},
		"X_forwarded_email":      {"mallory@example.com"},
		"X-Forwarded-For":        {"10.0.0.1"},
		"X-Http-Method-Override": {"DELETE"},
		"X-Checksum":             {"abc123"},
	}
	want := http.Header{"X-Checksum": {"abc123"}}

	cases := []struct {
		name     string
		declared http.Header
		te       []string
	}{
		{"declared trailers", http.Header{"X-Remote-User": nil, "X-Checksum": nil, "X-Forwarded-For": nil}, nil},
		{"undeclared trailers on a chunked body", nil, []string{"chunked"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/upload", nil)
			r.Trailer = c.declared
			r.TransferEncoding = c.te
			body := &trailerFillingBody{r: r, data: strings.NewReader("payload"), trailer: sent.Clone()}
			r.Body = body
			s.SanitizeTrailers(r)
			if _, ok := r.Trailer["X-Remote-User"]; ok {
				t.Errorf("declared identity trailer kept before the body was read: %v", r.Trailer)
			}
			got, err := io.ReadAll(r.Body)
			if err != nil || string(got) != "payload" {
				t.Fatalf("ReadAll = %q, %v", got, err)
			}
			if !reflect.DeepEqual(r.Trailer, want) {
				t.Errorf("trailers after EOF = %v, want %v", r.Trailer, want)
			}
			if err := r.Body.Close(); err != nil || !body.closed {
				t.Errorf("Close = %v, closed = %v", err, body.closed)
			}
		})
	}

	t.Run("no trailers and a sized body is left unwrapped", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
		before := r.Body
		s.SanitizeTrailers(r)
		if r.Body != before {
			t.Error("body was wrapped although it cannot carry trailers")
		}
	})
	t.Run("nil body", func(t *testing.T) {
		r := &http.Request{Trailer: http.Header{"X-Remote-User": {"x"}}}
		s.SanitizeTrailers(r)
		if len(r.Trailer) != 0 || r.Body != nil {
			t.Errorf("Trailer = %v, Body = %v", r.Trailer, r.Body)
		}
	})
}

// TestSanitizeTrailersRealServer sends a chunked request with declared and
// undeclared trailers to a real net/http server.
func TestSanitizeTrailersRealServer(t *testing.T) {
	s := newTestSanitizer(t)
	type result struct {
		body    string
		trailer http.Header
	}
	got := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Sanitize(r.Header, false)
		s.SanitizeTrailers(r)
		b, _ := io.ReadAll(r.Body)
		got <- result{string(b), r.Trailer.Clone()}
	}))
	defer srv.Close()

	for _, declare := range []string{"Trailer: X-Remote-User, X-Checksum\r\n", ""} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: gate\r\nTransfer-Encoding: chunked\r\n%s\r\n"+
			"5\r\nhello\r\n0\r\nX-Remote-User: mallory\r\nX_Forwarded_User: mallory\r\nX-Checksum: abc\r\n\r\n", declare)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		conn.Close()
		res := <-got
		want := http.Header{"X-Checksum": {"abc"}}
		if res.body != "hello" || !reflect.DeepEqual(res.trailer, want) {
			t.Errorf("declare=%q: body %q trailers %v, want hello %v", declare, res.body, res.trailer, want)
		}
	}
}

// TestReverseProxyWebSocketAndIdentity runs the intended pipeline: Sanitize
// the inbound header, then let httputil.ReverseProxy's Director set the
// identity header. A client's Connection header must not erase it (Traefik
// CVE-2024-45410, Caddy GHSA-7r4p-vjf4-gxv4), and a WebSocket upgrade must
// still be tunnelled.
func TestReverseProxyWebSocketAndIdentity(t *testing.T) {
	s := newTestSanitizer(t)
	seen := make(chan http.Header, 4)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		if r.Header.Get("Upgrade") != "websocket" {
			fmt.Fprint(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo:" + line)
		brw.Flush()
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	director := rp.Director
	rp.Director = func(r *http.Request) {
		director(r)
		r.Header.Set("X-Remote-User", "alice")
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Sanitize(r.Header, false)
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()

	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", front.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}

	t.Run("plain request naming the identity header in Connection", func(t *testing.T) {
		conn, br := dial(t)
		defer conn.Close()
		fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: gate\r\nConnection: X-Remote-User, X-Forwarded-For\r\nX-Remote-User: mallory\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := <-seen
		if got := h.Values("X-Remote-User"); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("upstream X-Remote-User = %q, want [alice]", got)
		}
	})

	t.Run("WebSocket naming the identity header in Connection", func(t *testing.T) {
		conn, br := dial(t)
		defer conn.Close()
		fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: gate\r\nConnection: Upgrade, X-Remote-User\r\n"+
			"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"+
			"X-Remote-User: mallory\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		h := <-seen
		if got := h.Values("X-Remote-User"); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("upstream X-Remote-User = %q, want [alice]", got)
		}
		fmt.Fprint(conn, "ping\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "echo:ping\n" {
			t.Errorf("tunnel read %q, %v", line, err)
		}
	})
}

// TestSanitizeAllocs asserts that the per-request path does not allocate on
// typical browser requests, with and without a Connection header.
func TestSanitizeAllocs(t *testing.T) {
	s := newTestSanitizer(t)
	h := canon(browserKV...)
	if n := testing.AllocsPerRun(1000, func() { s.Sanitize(h, false) }); n != 0 {
		t.Errorf("Sanitize (HTTP/2 browser request) allocates %v times per call, want 0", n)
	}
	conn := []string{"keep-alive"}
	if n := testing.AllocsPerRun(1000, func() {
		h["Connection"] = conn
		s.Sanitize(h, true)
	}); n != 0 {
		t.Errorf("Sanitize (HTTP/1.1 browser request) allocates %v times per call, want 0", n)
	}
	ws := canon("Connection", "keep-alive, Upgrade", "Upgrade", "websocket", "Sec-Websocket-Version", "13")
	if n := testing.AllocsPerRun(1000, func() { s.Sanitize(ws, false) }); n != 0 {
		t.Errorf("Sanitize (WebSocket) allocates %v times per call, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { s.IsIdentity("X_Forwarded_User") }); n != 0 {
		t.Errorf("IsIdentity allocates %v times per call, want 0", n)
	}
}

func BenchmarkSanitize(b *testing.B) {
	s := newTestSanitizer(b)
	b.Run("browser", func(b *testing.B) {
		h := canon(browserKV...)
		b.ReportAllocs()
		for b.Loop() {
			s.Sanitize(h, false)
		}
	})
	b.Run("browser-http1", func(b *testing.B) {
		h := canon(browserKV...)
		conn := []string{"keep-alive"}
		b.ReportAllocs()
		for b.Loop() {
			h["Connection"] = conn
			s.Sanitize(h, false)
		}
	})
	b.Run("attack", func(b *testing.B) {
		in := raw(append(slices.Clone(browserKV),
			"Connection", "X-Remote-User, close",
			"X-Remote-User", "mallory",
			"X_Forwarded_User", "mallory",
			"X-Forwarded-For", "10.0.0.1",
			"X-Original-Url", "/admin")...)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			h := in.Clone()
			b.StartTimer()
			s.Sanitize(h, false)
		}
	})
}
