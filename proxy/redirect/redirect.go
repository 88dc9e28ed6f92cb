// Package redirect decides whether a return URL handed to Gatehouse (after
// sign-in or sign-out) is safe to send the browser to. It accepts only paths
// on Gatehouse's own origin and http(s) URLs on hosts the operator listed,
// and it refuses anything a browser could read differently from Go's URL
// parser. Open redirects in authenticating gateways are a recurring bug
// class: oauth2-proxy CVE-2020-5233 and CVE-2021-21291, Authelia
// CVE-2021-29456, mod_auth_mellon CVE-2019-13038.
//
// It depends on the standard library only.
package redirect

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnsafeRedirect is returned, wrapped with the reason, for every return
// target Validate refuses. Test for it with errors.Is.
var ErrUnsafeRedirect = errors.New("unsafe redirect target")

// MaxLength is the longest return target, in bytes, that Validate accepts.
const MaxLength = 4096

// maxDecodeRounds bounds how many times Validate percent-decodes a path to
// see what a consumer that decodes again would make of it.
const maxDecodeRounds = 4

// hostPattern is one allowed host: an exact name or a "*." wildcard, with an
// optional port.
type hostPattern struct {
	// host is the normalized host for an exact pattern, or the suffix
	// starting with "." for a wildcard.
	host     string
	wildcard bool
	port     int // 0 matches any port
}

func (p hostPattern) match(host string, port int) bool {
	if p.port != 0 && p.port != port {
		return false
	}
	if p.wildcard {
		// p.host starts with '.', so "evilexample.com" and "example.com"
		// never match "*.example.com" (oauth2-proxy CVE-2021-21291).
		return len(host) > len(p.host) && strings.HasSuffix(host, p.host)
	}
	return host == p.host
}

// Validator decides whether a return URL is safe. Build it once with
// NewValidator; it is never modified afterwards, so its methods are safe for
// concurrent use.
type Validator struct {
	public   hostPattern
	patterns []hostPattern
}

// NewValidator builds a Validator for a gateway whose external URL is
// publicURL (an http or https URL of scheme, host and optional port; a path
// of "/" is tolerated, nothing else). allowedHosts lists further hosts that
// return URLs may name: exact ("app.example.com", optionally
// "app.example.com:8443") or wildcard ("*.example.com", which matches any
// subdomain at a dot boundary, but neither example.com itself nor
// evilexample.com). A pattern with a port matches only URLs with that port;
// a pattern without one matches the host on any port. Host names are
// case-insensitive and a trailing dot is ignored. NewValidator returns an
// error for a malformed public URL or pattern, including wildcards over a
// public top-level label ("*.com"; "*.internal" and other private labels
// are fine), over an IP address, or with "*" anywhere but as the whole
// first label. A pattern may also be a bare IPv6 address ("2001:db8::1").
func NewValidator(publicURL string, allowedHosts []string) (*Validator, error) {
	pub, err := parsePublicURL(publicURL)
	if err != nil {
		return nil, err
	}
	v := &Validator{public: pub}
	var errs []error
	for _, a := range allowedHosts {
		p, err := parsePattern(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v.patterns = append(v.patterns, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return v, nil
}

func parsePublicURL(s string) (hostPattern, error) {
	u, err := url.Parse(s)
	if err != nil {
		return hostPattern{}, fmt.Errorf("redirect: public URL %q: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return hostPattern{}, fmt.Errorf("redirect: public URL %q: scheme must be http or https", s)
	case u.User != nil:
		return hostPattern{}, fmt.Errorf("redirect: public URL %q has userinfo", s)
	case u.Host == "":
		return hostPattern{}, fmt.Errorf("redirect: public URL %q has no host", s)
	case u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return hostPattern{}, fmt.Errorf("redirect: public URL %q must be scheme and host only", s)
	}
	host, port, err := parseHostPort(u.Host)
	if err != nil {
		return hostPattern{}, fmt.Errorf("redirect: public URL %q: %w", s, err)
	}
	if (u.Scheme == "https" && port == 443) || (u.Scheme == "http" && port == 80) {
		// "https://gate:443" means the same as "https://gate"; treat it so,
		// rather than refuse every return URL that omits the port.
		port = 0
	}
	return hostPattern{host: host, port: port}, nil
}

func parsePattern(s string) (hostPattern, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Is6() && a.Zone() == "" {
		// A bare IPv6 address, as policy files may list route hosts.
		return hostPattern{host: "[" + a.String() + "]"}, nil
	}
	body, wildcard := strings.CutPrefix(s, "*.")
	if strings.Contains(body, "*") {
		return hostPattern{}, fmt.Errorf("redirect: host pattern %q: '*' is only allowed as the whole first label", s)
	}
	host, port, err := parseHostPort(body)
	if err != nil {
		return hostPattern{}, fmt.Errorf("redirect: host pattern %q: %w", s, err)
	}
	if !wildcard {
		return hostPattern{host: host, port: port}, nil
	}
	if host[0] == '[' || endsInNumber(host) {
		return hostPattern{}, fmt.Errorf("redirect: host pattern %q: wildcard over an IP address", s)
	}
	if !strings.Contains(host, ".") && !privateTLDs[host] {
		// "*.com" would allow every site in the zone.
		return hostPattern{}, fmt.Errorf("redirect: host pattern %q: wildcard over a public top-level label", s)
	}
	return hostPattern{host: "." + host, wildcard: true, port: port}, nil
}

// privateTLDs are single labels that are reserved or never delegated in the
// public DNS (RFC 2606, RFC 6761, RFC 6762, ICANN's .internal), so a wildcard
// over one of them covers only the operator's own names.
var privateTLDs = map[string]bool{
	"localhost": true, "test": true, "example": true, "invalid": true,
	"local": true, "internal": true, "lan": true, "home": true, "corp": true,
}

// parseHostPort splits and normalizes "host[:port]". The host is lowercased
// with one trailing dot removed; IPv6 literals are bracketed in canonical
// form. The port is 0 when absent.
func parseHostPort(hp string) (host string, port int, err error) {
	var rest string
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", 0, errors.New("unterminated IPv6 literal")
		}
		host, rest = hp[:end+1], hp[end+1:]
	} else if i := strings.IndexByte(hp, ':'); i >= 0 {
		host, rest = hp[:i], hp[i:]
	} else {
		host = hp
	}
	if rest != "" {
		digits, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", 0, errors.New("junk after host")
		}
		if port, err = parsePort(digits); err != nil {
			return "", 0, err
		}
	}
	host, err = normalizeHost(host)
	return host, port, err
}

func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 {
		return 0, errors.New("bad port")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("bad port")
		}
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, errors.New("port out of range")
	}
	return n, nil
}

// normalizeHost validates and normalizes a host name or IP literal. It
// accepts only ASCII letters, digits, '-', '_' and '.', so percent-encoded,
// fullwidth or other Unicode hosts, which browsers map through IDNA onto
// other names, are refused rather than guessed at.
func normalizeHost(h string) (string, error) {
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return "", errors.New("bad IPv6 literal")
		}
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errors.New("bad IPv6 literal")
		}
		return "[" + a.String() + "]", nil
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", errors.New("empty or overlong host")
	}
	b := []byte(h)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return "", fmt.Errorf("host has disallowed character %q", c)
		}
	}
	h = string(b)
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return "", errors.New("empty or overlong host label")
		}
	}
	// Browsers parse a host whose last label is numeric as an IPv4 address
	// in any of several notations (0x7f.1, 2130706433, 0177.0.0.1). Accept
	// only the canonical dotted quad, which means the same to everyone.
	if endsInNumber(h) {
		a, err := netip.ParseAddr(h)
		if err != nil || !a.Is4() {
			return "", errors.New("non-canonical numeric host")
		}
	}
	return h, nil
}

// endsInNumber reports whether the last label of h is what the WHATWG URL
// standard treats as a number: decimal digits, or "0x" and hex digits.
func endsInNumber(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if x, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(x, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// AllowHost reports whether hostport ("host" or "host:port") names the
// public host or matches an allowed pattern, under the same normalization
// and port rules as Validate. Malformed input is not allowed.
func (v *Validator) AllowHost(hostport string) bool {
	host, port, err := parseHostPort(hostport)
	if err != nil {
		return false
	}
	return v.allow(host, port)
}

func (v *Validator) allow(host string, port int) bool {
	if v.public.match(host, port) {
		return true
	}
	for _, p := range v.patterns {
		if p.match(host, port) {
			return true
		}
	}
	return false
}

func unsafe(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnsafeRedirect, reason)
}

// Validate returns the cleaned return target for raw, or an error wrapping
// ErrUnsafeRedirect with the reason.
//
// It accepts a path on Gatehouse's own origin, starting with exactly one
// "/" and optionally followed by a query and fragment, and an absolute
// http or https URL without userinfo whose host is the public URL's host or
// matches an allowed pattern (see NewValidator for the matching rules).
//
// It refuses: empty input and input over MaxLength bytes; any ASCII control
// character or whitespace anywhere, including the tab, CR and LF that
// browsers silently delete; any backslash; invalid UTF-8, Unicode spaces,
// invisible formatting characters and Unicode look-alikes of URL
// delimiters; malformed percent-encoding; scheme-relative "//host" and any
// path that becomes one after dot-segment removal or after further rounds
// of percent-decoding ("/%2f%2fevil", "/.//evil"); schemes other than http
// and https, and http(s) without "//" ("https:evil"); userinfo or any '@'
// or '%' in the authority; hosts that are not plain ASCII names, canonical
// dotted-quad IPv4 or bracketed IPv6; and hosts not allowed.
//
// The cleaned target has a lowercase scheme and host, no trailing dot on
// the host, dot segments removed from the path, a path of at least "/" for
// absolute URLs, and non-ASCII bytes, quotes, backquotes and angle brackets
// percent-encoded; it contains no control characters, spaces or
// backslashes, and Validate returns it unchanged.
func (v *Validator) Validate(raw string) (string, error) {
	switch {
	case raw == "":
		return "", unsafe("empty")
	case len(raw) > MaxLength:
		return "", unsafe("longer than " + strconv.Itoa(MaxLength) + " bytes")
	}
	if reason := checkChars(raw); reason != "" {
		return "", unsafe(reason)
	}
	if !validEscapes(raw) {
		return "", unsafe("malformed percent-encoding")
	}
	var out string
	if raw[0] == '/' {
		if len(raw) > 1 && raw[1] == '/' {
			// Browsers read "//host" as a URL on another origin.
			return "", unsafe("scheme-relative URL")
		}
		path, tail := splitPath(raw)
		clean, reason := cleanPath(path)
		if reason != "" {
			return "", unsafe(reason)
		}
		out = clean + tail
	} else {
		o, reason := v.validateAbsolute(raw)
		if reason != "" {
			return "", unsafe(reason)
		}
		out = o
	}
	out = escapeTarget(out)
	if len(out) > MaxLength {
		// Escaping can lengthen a target; the result must itself be
		// acceptable, so Validate stays idempotent.
		return "", unsafe("longer than " + strconv.Itoa(MaxLength) + " bytes once escaped")
	}
	if reason := v.recheck(out); reason != "" {
		return "", unsafe(reason)
	}
	return out, nil
}

// validateAbsolute handles every target not starting with "/".
func (v *Validator) validateAbsolute(raw string) (string, string) {
	scheme, rest, ok := cutScheme(raw)
	if !ok {
		return "", "neither an absolute path nor an http(s) URL"
	}
	if scheme != "http" && scheme != "https" {
		// javascript:, data:, vbscript: and everything else.
		return "", "scheme not allowed"
	}
	rest, ok = strings.CutPrefix(rest, "//")
	if !ok {
		// "https:evil.example" and "https:/evil.example" are read by
		// browsers as https://evil.example (or relative to the current
		// page); neither is what Go's parser says (mod_auth_mellon
		// CVE-2019-13038).
		return "", "http(s) URL without //"
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if authority == "" {
		// "https:///evil.example" is https://evil.example to a browser.
		return "", "empty authority"
	}
	if strings.Contains(authority, "@") {
		// "https://good@evil" goes to evil; no legitimate return URL
		// carries credentials.
		return "", "userinfo in authority"
	}
	if strings.Contains(authority, "%") {
		// Browsers percent-decode hosts; Go does too. Refuse both.
		return "", "percent-encoding in authority"
	}
	host, port, err := parseHostPort(authority)
	if err != nil {
		return "", err.Error()
	}
	if !v.allow(host, port) {
		// Every endpoint taking a return URL must check its host, the
		// sign-out one included (Authelia CVE-2021-29456).
		return "", "host not allowed"
	}
	path, qf := splitPath(tail)
	if path == "" {
		path = "/"
	}
	clean, reason := cleanPath(path)
	if reason != "" {
		return "", reason
	}
	var b strings.Builder
	b.Grow(len(raw) + 1)
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(port))
	}
	b.WriteString(clean)
	b.WriteString(qf)
	return b.String(), ""
}

// cutScheme splits "scheme:rest" when raw starts with a syntactically valid
// scheme, returning the scheme in lower case.
func cutScheme(raw string) (scheme, rest string, ok bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9', c == '+', c == '-', c == '.':
			if i == 0 {
				return "", "", false
			}
		case c == ':':
			if i == 0 {
				return "", "", false
			}
			return strings.ToLower(raw[:i]), raw[i+1:], true
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// splitPath splits s at the first '?' or '#' into the path and the rest.
func splitPath(s string) (path, tail string) {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// cleanPath removes dot segments from an absolute path and refuses paths
// that are, or could be turned into, a scheme-relative reference.
func cleanPath(path string) (string, string) {
	clean := removeDotSegments(path)
	if isSchemeRelative(clean) {
		return "", "path becomes scheme-relative after dot-segment removal"
	}
	// Some consumers decode a return URL once more before using it: check
	// what each further round of decoding would produce.
	p := path
	for range maxDecodeRounds {
		d := percentDecode(p)
		if d == p {
			break
		}
		// "/%09/evil" decodes to "/\t/evil", which a browser reads as
		// "//evil" (oauth2-proxy CVE-2020-11053).
		if strings.ContainsFunc(d, isASCIIControl) {
			return "", "path encodes a control character"
		}
		if reason := checkRunes(d); reason != "" {
			return "", "path encodes " + reason
		}
		// A browser reads '\' as '/' in an http(s) path.
		if isSchemeRelative(removeDotSegments(strings.ReplaceAll(d, "\\", "/"))) {
			return "", "path becomes scheme-relative when decoded"
		}
		p = d
	}
	return clean, ""
}

// isSchemeRelative reports whether a browser or a lenient server could read
// p as "//host": it starts with two slashes or a slash and a backslash.
func isSchemeRelative(p string) bool {
	return len(p) >= 2 && p[0] == '/' && (p[1] == '/' || p[1] == '\\')
}

// removeDotSegments applies RFC 3986 §5.2.4 as browsers do, also treating
// "%2e" (any case) as '.', to a path starting with "/".
func removeDotSegments(path string) string {
	if !strings.Contains(path, ".") && !strings.Contains(path, "%2") {
		return path
	}
	segs := strings.Split(path[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case isDot(s):
			if last {
				out = append(out, "")
			}
		case isDotDot(s):
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func isDot(s string) bool { return s == "." || strings.EqualFold(s, "%2e") }

func isDotDot(s string) bool {
	switch strings.ToLower(s) {
	case "..", ".%2e", "%2e.", "%2e%2e":
		return true
	}
	return false
}

// checkChars refuses ASCII control characters, whitespace and backslashes
// anywhere, and risky Unicode.
func checkChars(raw string) string {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c < 0x20 || c == 0x7f:
			// Browsers delete tab, CR and LF inside URLs and strip other
			// C0 controls at the ends, so "/\t/evil" becomes "//evil".
			return "control character"
		case c == ' ':
			return "whitespace"
		case c == '\\':
			// Browsers treat '\' as '/' in http(s) URLs: "/\evil" is
			// "//evil" to them (oauth2-proxy CVE-2020-5233), and
			// "https://evil\@good" is a URL on evil.
			return "backslash"
		}
	}
	return checkRunes(raw)
}

// checkRunes refuses invalid UTF-8 and Unicode characters that are invisible,
// count as whitespace, or that Unicode normalization or IDNA maps onto URL
// delimiters.
func checkRunes(s string) string {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return "invalid UTF-8"
		}
		if reason := riskyRune(r); reason != "" {
			return reason
		}
		i += size
	}
	return ""
}

func riskyRune(r rune) string {
	switch {
	case unicode.IsSpace(r):
		return "Unicode whitespace"
	case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
		// C1 controls; zero-width, bidi and other invisible formatting.
		return "invisible or control character"
	case 0xFF00 <= r && r <= 0xFFEF:
		// Fullwidth and halfwidth forms (／．＠ｇ) fold onto ASCII under
		// NFKC and IDNA.
		return "fullwidth or halfwidth character"
	case 0xFE10 <= r && r <= 0xFE1F, // vertical forms: ︓ ︒
		0xFE50 <= r && r <= 0xFE6F, // small forms: ﹒ ﹕ ﹨ ﹫
		0x2488 <= r && r <= 0x249B, // "digit full stop": ⒈ is "1."
		0x2024 <= r && r <= 0x2026, // dot leaders and ellipsis
		r == 0x3002, r == 0xFF61,   // ideographic full stops, mapped to '.' by IDNA
		r == 0x2044, r == 0x2215, r == 0x29F8, r == 0x29F9, // slash look-alikes
		r == 0x2100, r == 0x2101, r == 0x2105, r == 0x2106, // ℀ ℁ ℅ ℆ contain '/'
		r == 0x2236: // ratio, a colon look-alike
		return "Unicode look-alike of a URL delimiter"
	}
	return ""
}

func isASCIIControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validEscapes reports whether every '%' in s starts a "%XX" hex escape.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

// percentDecode decodes every valid "%XX" escape in s and leaves anything
// else as it is, the way a lenient consumer would.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// mustEscape reports whether escapeTarget percent-encodes byte c: every
// non-ASCII byte, as a browser does before sending a URL, and the quotes
// and angle brackets that could end an HTML attribute or script string if
// a caller ever embeds the target in a page.
func mustEscape(c byte) bool {
	return c >= utf8.RuneSelf || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`'
}

// escapeTarget percent-encodes the bytes mustEscape selects. Browsers and
// servers treat the encoded and raw forms of these bytes alike in paths,
// queries and fragments.
func escapeTarget(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !mustEscape(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(b)
}

// recheck parses the cleaned target with net/url, as the rest of Gatehouse
// will, and confirms it reads it the same way Validate did.
func (v *Validator) recheck(out string) string {
	if strings.ContainsAny(out, "\\ ") || strings.ContainsFunc(out, isASCIIControl) {
		return "cleaned target has forbidden characters"
	}
	u, err := url.Parse(out)
	if err != nil {
		return "cleaned target does not parse"
	}
	if u.User != nil || u.Opaque != "" {
		return "cleaned target has userinfo or opaque part"
	}
	if out[0] == '/' {
		if u.Scheme != "" || u.Host != "" || isSchemeRelative(out) {
			return "cleaned path parses as another origin"
		}
		return ""
	}
	if (u.Scheme != "http" && u.Scheme != "https") || !v.AllowHost(u.Host) {
		return "cleaned URL parses to a different origin"
	}
	return ""
}
