// Package headers strips, from requests Gatehouse forwards upstream, every
// header a client could use to impersonate a user, spoof its origin, or make
// the upstream act on a different path or method than the one Gatehouse
// judged. It runs before Gatehouse sets its own identity headers, so nothing
// a client sends can remove or replace them later.
//
// Header names are compared after folding ASCII case and treating every
// character other than a letter or digit as '-': upstream stacks such as CGI,
// PHP, WSGI and nginx with underscores_in_headers map "X_Remote_User" onto the
// same variable as "X-Remote-User" (oauth2-proxy CVE-2025-64484).
//
// It depends on the standard library only.
package headers

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strings"
)

// DefaultIdentityHeaders lists identity header names commonly trusted by
// upstream applications because some authenticating proxy sets them. A client
// must never be able to supply any of them, whatever Gatehouse itself is
// configured to send, so NewSanitizer always includes this list. Entries
// ending in "*" are prefixes: "X-Auth-Request-*" covers
// "X-Auth-Request-Email" and every other name starting that way.
var DefaultIdentityHeaders = []string{
	// oauth2-proxy, and most forward-auth setups copying it.
	"X-Forwarded-User",
	"X-Forwarded-Email",
	"X-Forwarded-Groups",
	"X-Forwarded-Preferred-Username",
	"X-Forwarded-Access-Token",
	"X-Auth-Request-*",
	// Authelia, Authentik, Traefik forward-auth.
	"Remote-User",
	"Remote-Email",
	"Remote-Groups",
	"Remote-Name",
	// Apache-style and generic SSO proxies.
	"X-Remote-User",
	"X-Remote-Email",
	"X-Remote-Groups",
	"X-Remote-Roles",
	"X-Remote-Name",
	"X-Authenticated-User",
	"X-Authenticated-Userid",
	"X-Authenticated-Groups",
	"X-Authenticated-Scope",
	"X-User",
	"X-User-Id",
	"X-Email",
	"X-Userinfo",
	// Grafana's and others' auth-proxy defaults.
	"X-Webauth-User",
	"X-Webauth-Email",
	"X-Webauth-Name",
	// Gatehouse's own namespace.
	"X-Gatehouse-*",
	// Kong consumers.
	"X-Consumer-*",
	"X-Anonymous-Consumer",
	// Cloud identity-aware proxies.
	"X-Amzn-Oidc-*",
	"X-Ms-Client-Principal*",
	"X-Ms-Token-*",
	"X-Goog-Authenticated-User-*",
	"X-Goog-Iap-Jwt-Assertion",
	"Cf-Access-*",
	"X-Pomerium-*",
	"X-Vouch-*",
}

// hopByHopHeaders are the connection-specific headers of RFC 9110 §7.6.1,
// plus the legacy names Go's httputil also strips and HTTP2-Settings, which
// only serves an h2c upgrade.
var hopByHopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	"Http2-Settings",
}

// forwardingHeaders describe the client or the original request as some
// proxy saw it. Only a trusted peer may supply them. Entries ending in "*"
// are prefixes.
var forwardingHeaders = []string{
	"Forwarded",
	"X-Forwarded-For",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
	"X-Forwarded-Protocol",
	"X-Forwarded-Port",
	"X-Forwarded-Ssl",
	"X-Forwarded-Scheme",
	"X-Forwarded-Server",
	"X-Original-Forwarded-For",
	"X-Original-Host",
	"X-Host",
	"X-Url-Scheme",
	"Front-End-Https",
	"X-Real-Ip",
	"X-Client-Ip",
	"True-Client-Ip",
	"X-Cluster-Client-Ip",
	"Cf-Connecting-Ip",
	"Cf-Connecting-Ipv6",
	"Fastly-Client-Ip",
	// Client-certificate details passed on by a TLS-terminating proxy.
	"X-Forwarded-Client-Cert",
	"X-Forwarded-Tls-Client-Cert*",
	"X-Client-Cert*",
	"X-Ssl-Client-*",
	"Ssl-Client-*",
}

// overrideHeaders make some frameworks route on a path or method other than
// the request line's, so the upstream would act on a request Gatehouse never
// judged. Nobody may supply them, not even a trusted peer.
var overrideHeaders = []string{
	"X-Original-Url",
	"X-Rewrite-Url",
	"X-Original-Uri",
	"X-Original-Path",
	"X-Envoy-Original-Path",
	"X-Forwarded-Uri",
	"X-Forwarded-Prefix",
	"X-Forwarded-Path",
	"X-Forwarded-Method",
	"X-Original-Method",
	"X-Http-Method-Override",
	"X-Http-Method",
	"X-Method-Override",
}

// reservedNames may not be configured as identity headers: removing them
// would break framing or upgrades rather than protect anything.
var reservedNames = []string{
	"Host", "Content-Length", "Content-Type", "Transfer-Encoding",
	"Connection", "Upgrade", "Te", "Trailer",
}

// class tells why a header name is stripped.
type class uint8

const (
	classHop      class = 1 << iota // hop-by-hop: never forwarded as is
	classIdentity                   // identity: only Gatehouse sets these
	classForward                    // forwarding: only a trusted peer sets these
	classOverride                   // path or method override: never forwarded
)

// stripAlways is what goes whether or not the peer is trusted.
const stripAlways = classIdentity | classOverride

// prefix is a normalized name prefix and the class of names starting with it.
type prefix struct {
	norm string
	cls  class
}

// Sanitizer removes hop-by-hop, identity, forwarding and override headers.
// Build it once with NewSanitizer when policy loads; its methods are safe for
// concurrent use because nothing mutates it after construction.
type Sanitizer struct {
	exact    map[string]class // normalized name -> classes
	prefixes []prefix         // normalized prefixes, checked in order
	// firsts marks the first bytes of prefixes, so most names skip the
	// prefix scan entirely.
	firsts [256]bool
}

// NewSanitizer builds a Sanitizer that treats the given names, plus
// DefaultIdentityHeaders, as identity headers. A name is either exact
// ("X-Remote-User") or a prefix pattern ending in "*" ("X-Auth-Request-*").
// It returns an error when a name is empty, contains a character not allowed
// in an HTTP field name, has "*" anywhere but at the end, is a bare "*", or
// would match Host, Content-Length, Content-Type or a hop-by-hop header that
// Sanitize manages itself.
func NewSanitizer(identity []string) (*Sanitizer, error) {
	s := &Sanitizer{exact: make(map[string]class)}
	for _, n := range hopByHopHeaders {
		s.add(n, classHop)
	}
	for _, n := range forwardingHeaders {
		s.add(n, classForward)
	}
	for _, n := range overrideHeaders {
		s.add(n, classOverride)
	}
	for _, n := range DefaultIdentityHeaders {
		s.add(n, classIdentity)
	}
	var errs []error
	for _, n := range identity {
		if err := checkIdentityName(n); err != nil {
			errs = append(errs, err)
			continue
		}
		s.add(n, classIdentity)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// checkIdentityName reports why a configured identity name is unusable.
func checkIdentityName(n string) error {
	if n == "" {
		return errors.New("headers: empty identity header name")
	}
	body, isPrefix := strings.CutSuffix(n, "*")
	if body == "" {
		return fmt.Errorf("headers: identity header pattern %q would match every header", n)
	}
	for i := 0; i < len(body); i++ {
		if !isTokenChar(body[i]) || body[i] == '*' {
			return fmt.Errorf("headers: identity header name %q has invalid character %q", n, body[i])
		}
	}
	nb := normalizeString(body)
	for _, r := range reservedNames {
		nr := normalizeString(r)
		if nr == nb || (isPrefix && strings.HasPrefix(nr, nb)) {
			return fmt.Errorf("headers: identity header name %q would strip %s", n, r)
		}
	}
	return nil
}

// add records name n (exact or "Prefix*") under class c.
func (s *Sanitizer) add(n string, c class) {
	if body, ok := strings.CutSuffix(n, "*"); ok {
		nb := normalizeString(body)
		for i := range s.prefixes {
			if s.prefixes[i].norm == nb {
				s.prefixes[i].cls |= c
				return
			}
		}
		s.prefixes = append(s.prefixes, prefix{norm: nb, cls: c})
		s.firsts[nb[0]] = true
		return
	}
	nn := normalizeString(n)
	s.exact[nn] |= c
}

// normByte folds one byte of a header name: ASCII letters to lower case,
// digits unchanged, anything else to '-'. Folding '_' and '.' with '-'
// mirrors the CGI-style mappings upstream stacks apply
// (oauth2-proxy CVE-2025-64484).
func normByte(c byte) byte {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return c
	case 'A' <= c && c <= 'Z':
		return c + ('a' - 'A')
	default:
		return '-'
	}
}

// normalizeString returns the folded form of name; used at build time and
// for names too long for the stack buffer.
func normalizeString(name string) string {
	b := make([]byte, len(name))
	for i := 0; i < len(name); i++ {
		b[i] = normByte(name[i])
	}
	return string(b)
}

// normBufSize bounds names normalized without allocating; longer names take
// a slower, allocating path with the same result.
const normBufSize = 128

// classify returns the classes of name under any spelling.
func (s *Sanitizer) classify(name string) class {
	var buf [normBufSize]byte
	if len(name) > len(buf) {
		return s.classifyNorm(normalizeString(name))
	}
	n := len(name)
	for i := 0; i < n; i++ {
		buf[i] = normByte(name[i])
	}
	c := s.exact[string(buf[:n])] // no allocation: map index by converted bytes
	if n == 0 || !s.firsts[buf[0]] {
		return c
	}
	for _, p := range s.prefixes {
		if n >= len(p.norm) && string(buf[:len(p.norm)]) == p.norm {
			c |= p.cls
		}
	}
	return c
}

// classifyNorm is classify for an already normalized name.
func (s *Sanitizer) classifyNorm(norm string) class {
	c := s.exact[norm]
	for _, p := range s.prefixes {
		if strings.HasPrefix(norm, p.norm) {
			c |= p.cls
		}
	}
	return c
}

// IsIdentity reports whether name, in any spelling (any ASCII case, '_' or
// '.' for '-'), is one of the Sanitizer's identity headers, exact or by
// prefix.
func (s *Sanitizer) IsIdentity(name string) bool {
	return s.classify(name)&classIdentity != 0
}

// Sanitize removes from h, in place, everything a client must not be able to
// send upstream, and returns the upgrade protocol it kept ("websocket") or "".
// Call it on the inbound request's header before Gatehouse sets its own
// identity headers. It removes:
//
//   - every header named in a Connection header (any line, comma-separated,
//     any case), except Host, Content-Length, the headers Sanitize keeps
//     below, and, when trustedPeer is true, forwarding headers the peer set;
//   - every hop-by-hop header (Connection, Proxy-Connection, Keep-Alive,
//     Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
//     Transfer-Encoding, Upgrade, HTTP2-Settings) in any spelling;
//   - every spelling of every identity header;
//   - every path or method override (X-Original-Url, X-Http-Method-Override
//     and the like), trusted peer or not;
//   - when trustedPeer is false, every forwarding header (Forwarded,
//     X-Forwarded-For, X-Real-Ip and the like).
//
// Two hop-by-hop headers survive in a fixed form. A WebSocket handshake
// (Connection lists "upgrade" and Upgrade is exactly "websocket", any case)
// leaves exactly "Connection: Upgrade" and "Upgrade: websocket", which is the
// shape httputil.ReverseProxy recognizes to tunnel the upgrade and which names
// nothing else for it to delete. A TE header listing "trailers" becomes
// exactly "TE: trailers", which ReverseProxy re-sends so gRPC keeps working.
// Other upgrades, h2c above all, are removed: an h2c upgrade through a
// proxy lets the client speak HTTP/2 straight to the upstream on requests
// Gatehouse never sees.
//
// Upgrade detection reads only the canonical "Connection" and "Upgrade" keys,
// as ReverseProxy does. For the WebSocket case Sanitize reuses the existing
// value slices, so it does not allocate on any common request.
func (s *Sanitizer) Sanitize(h http.Header, trustedPeer bool) (upgrade string) {
	if len(h) == 0 {
		return ""
	}
	conn := h["Connection"]
	isUpgrade := isWebSocketUpgrade(conn, h["Upgrade"])
	keepTE := valuesContainToken(h["Te"], "trailers")

	// Headers named in Connection are hop-by-hop for the client's hop. The
	// Connection header itself goes below, so nothing later in the proxy
	// (httputil.ReverseProxy's own hop-by-hop removal after a Director set
	// identity headers) can be told to drop headers Gatehouse adds
	// (Traefik CVE-2024-45410, Caddy GHSA-7r4p-vjf4-gxv4).
	for _, line := range conn {
		for line != "" {
			var tok string
			tok, line, _ = strings.Cut(line, ",")
			tok = textproto.TrimString(tok)
			if tok == "" {
				continue
			}
			s.dropConnectionToken(h, tok, trustedPeer)
		}
	}

	strip := stripAlways
	if !trustedPeer {
		strip |= classForward
	}
	for k, v := range h {
		c := s.classify(k)
		if c == 0 {
			continue
		}
		if c&strip != 0 {
			delete(h, k)
			continue
		}
		if c&classHop == 0 {
			continue // a forwarding header from a trusted peer
		}
		switch {
		case isUpgrade && k == "Connection":
			v[0] = "Upgrade" // reuse the slice: no allocation
			h[k] = v[:1]
		case isUpgrade && k == "Upgrade":
			v[0] = "websocket"
			h[k] = v[:1]
		case keepTE && k == "Te":
			v[0] = "trailers"
			h[k] = v[:1]
		default:
			delete(h, k)
		}
	}
	if isUpgrade {
		return "websocket"
	}
	return ""
}

// dropConnectionToken deletes the header a Connection token names, unless
// Sanitize handles that name itself or must keep it.
func (s *Sanitizer) dropConnectionToken(h http.Header, tok string, trustedPeer bool) {
	c := s.classify(tok)
	if c&classHop != 0 {
		return // handled (or deliberately kept) by the main loop
	}
	if c&classForward != 0 && trustedPeer {
		// A trusted peer set it; a client naming it in Connection must not
		// be able to erase it (Traefik CVE-2024-45410).
		return
	}
	if c == 0 && isProtectedName(tok) {
		return
	}
	if _, ok := h[tok]; ok {
		delete(h, tok)
	}
	var buf [normBufSize]byte
	if len(tok) > len(buf) {
		h.Del(tok)
		return
	}
	n, ok := canonicalInto(buf[:], tok)
	if !ok {
		return
	}
	if _, ok := h[string(buf[:n])]; ok {
		delete(h, string(buf[:n]))
	}
}

// isProtectedName reports whether name is an end-to-end header a Connection
// token may not remove.
func isProtectedName(name string) bool {
	return asciiEqualFold(name, "Host") || asciiEqualFold(name, "Content-Length")
}

// canonicalInto writes textproto's canonical form of a valid field name into
// dst and returns its length. It reports false when name is not a valid
// token, in which case net/http would not have canonicalized it either.
func canonicalInto(dst []byte, name string) (int, bool) {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTokenChar(c) {
			return 0, false
		}
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst[i] = c
		upper = c == '-'
	}
	return len(name), true
}

// isWebSocketUpgrade reports whether the Connection values list "upgrade" and
// the Upgrade header asks for exactly the websocket protocol.
func isWebSocketUpgrade(conn, upgrade []string) bool {
	if len(upgrade) != 1 || !valuesContainToken(conn, "upgrade") {
		return false
	}
	return asciiEqualFold(textproto.TrimString(upgrade[0]), "websocket")
}

// valuesContainToken reports whether any comma-separated element of values
// equals token, ignoring ASCII case and surrounding blanks.
func valuesContainToken(values []string, token string) bool {
	for _, line := range values {
		for line != "" {
			var tok string
			tok, line, _ = strings.Cut(line, ",")
			if asciiEqualFold(textproto.TrimString(tok), token) {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold is strings.EqualFold restricted to ASCII, so that Unicode
// folding (e.g. the Kelvin sign for 'k') cannot make two names equal.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in an HTTP field name (RFC 9110
// tchar).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// SanitizeTrailers removes identity, forwarding, override and hop-by-hop
// names from r.Trailer, and arranges for the same removal to run again when
// the body ends, because net/http fills trailer values only when the body
// reaches EOF. It wraps r.Body when r.Trailer is non-nil, and also for any
// chunked HTTP/1 body: net/http merges trailers a client sends without
// declaring them into r.Trailer, creating the map at EOF if needed.
//
// Call it on the *http.Request the server passed to the handler (or one
// sharing its Trailer map), before the body is read, and forward that
// request's Body. The wrapped body runs the removal on any read error,
// including io.EOF, and on Close.
func (s *Sanitizer) SanitizeTrailers(r *http.Request) {
	s.cleanTrailer(r.Trailer)
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if r.Trailer == nil && !isChunked(r.TransferEncoding) {
		return
	}
	r.Body = &trailerBody{rc: r.Body, r: r, s: s}
}

// cleanTrailer deletes every name Sanitize would strip from a trailer map; a
// trailer is never a legitimate place for any of them.
func (s *Sanitizer) cleanTrailer(t http.Header) {
	for k := range t {
		if s.classify(k) != 0 {
			delete(t, k)
		}
	}
}

func isChunked(te []string) bool {
	for _, v := range te {
		if asciiEqualFold(v, "chunked") {
			return true
		}
	}
	return false
}

// trailerBody re-sanitizes the request's trailers once the body is done.
type trailerBody struct {
	rc io.ReadCloser
	r  *http.Request
	s  *Sanitizer
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil {
		b.s.cleanTrailer(b.r.Trailer)
	}
	return n, err
}

func (b *trailerBody) Close() error {
	err := b.rc.Close()
	b.s.cleanTrailer(b.r.Trailer)
	return err
}
