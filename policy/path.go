package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathLength bounds the escaped path accepted (8192 bytes): both the path
// as received and the normalized path re-escaped for forwarding must fit,
// otherwise NormalizePath refuses it with reason "too_long".
const MaxPathLength = 8192

// ErrInvalidPath is matched (errors.Is) by every error NormalizePath returns.
var ErrInvalidPath = errors.New("invalid request path")

// The stable Reason codes a PathError carries. Callers may log, count or
// compare them; they never change meaning.
const (
	// PathReasonNotAbsolute: the path is empty or does not start with "/".
	PathReasonNotAbsolute = "not_absolute"
	// PathReasonTooLong: the path as received, or the normalized path
	// re-escaped for forwarding, is longer than MaxPathLength bytes.
	PathReasonTooLong = "too_long"
	// PathReasonBadEscape: a '%' is not followed by two hex digits.
	PathReasonBadEscape = "bad_escape"
	// PathReasonEncodedSlash: %2F or %5C (either case) appears in the path.
	PathReasonEncodedSlash = "encoded_slash"
	// PathReasonBackslash: a literal '\' appears in the path.
	PathReasonBackslash = "backslash"
	// PathReasonDoubleEncoding: a '%' remains after decoding (from %25).
	PathReasonDoubleEncoding = "double_encoding"
	// PathReasonControlChar: a byte below 0x20 or 0x7F, literal or decoded.
	PathReasonControlChar = "control_char"
	// PathReasonFragment: a '#', literal or decoded from %23.
	PathReasonFragment = "fragment"
	// PathReasonSemicolon: a ';' (path parameter), literal or decoded from %3B.
	PathReasonSemicolon = "semicolon"
	// PathReasonEncodedQuery: a '?' inside the path, decoded from %3F (or literal).
	PathReasonEncodedQuery = "encoded_query"
	// PathReasonInvalidUTF8: the decoded path is not valid UTF-8 (overlong
	// forms such as %C0%AF, surrogates, stray continuation bytes).
	PathReasonInvalidUTF8 = "invalid_utf8"
	// PathReasonDotAboveRoot: a ".." segment would climb above "/".
	PathReasonDotAboveRoot = "dot_above_root"
)

// PathError says why a path was refused; Reason is a short stable code (one
// of the PathReason constants, e.g. "encoded_slash"), Detail a sentence for
// logs. Detail quotes attacker-controlled bytes with %q, so it is safe to log
// but its wording may change; match on Reason, never on Detail.
type PathError struct {
	Reason string
	Detail string
}

// Error returns "invalid request path (<reason>): <detail>".
func (e *PathError) Error() string {
	if e.Detail == "" {
		return ErrInvalidPath.Error() + " (" + e.Reason + ")"
	}
	return ErrInvalidPath.Error() + " (" + e.Reason + "): " + e.Detail
}

// Is reports whether target is ErrInvalidPath, so that
// errors.Is(err, ErrInvalidPath) holds for every *PathError.
func (e *PathError) Is(target error) bool {
	return target == ErrInvalidPath
}

func pathErr(reason, format string, args ...any) error {
	return &PathError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// NormalizePath takes the escaped path exactly as the client sent it (what
// r.URL.EscapedPath() returns, never the already-decoded r.URL.Path), decodes
// it exactly once and returns the canonical decoded path, or a *PathError
// (which matches ErrInvalidPath).
//
// The gateway must judge the returned path and forward exactly that path
// upstream (for example as url.URL{Path: out} with RawPath empty, whose
// EscapedPath re-encodes it faithfully), so that the policy matcher and the
// upstream cannot disagree about which resource is asked for.
//
// Rules. Length and shape are checked first; then the path is scanned left
// to right and decoded, and the first offending byte decides the reason;
// then UTF-8 validity, then segments, then the forwarded length:
//
//   - not_absolute: the path is empty or does not start with "/".
//   - too_long: the path as received is longer than MaxPathLength bytes.
//   - bad_escape: a '%' is not followed by two hex digits ("%zz", "%4" at
//     the end, IIS-style "%u002e").
//   - encoded_slash: %2F, %2f, %5C or %5c, an encoded slash or backslash
//     that the matcher would see as part of a name but an upstream may
//     split on.
//   - backslash: a literal backslash, which some upstreams treat as '/'.
//   - double_encoding: a '%' that survives the single decoding (from %25),
//     i.e. double encoding such as %252e%252e, or any encoded percent.
//   - control_char: a byte below 0x20 or 0x7F (NUL, CR, LF, TAB...),
//     literal or decoded.
//   - fragment: a '#', literal or from %23.
//   - semicolon: a ';', literal or from %3B (path parameters such as
//     /admin;x=1 or /public/..;/admin that Java servers strip).
//   - encoded_query: a '?' inside the path, from %3F (or literal).
//   - invalid_utf8: the decoded bytes are not valid UTF-8: overlong forms
//     such as %C0%AF and %C0%AE, surrogates, stray bytes. Valid non-ASCII
//     is accepted ("/caf%C3%A9" → "/café").
//   - Segments are resolved on the decoded path, so dots that arrived
//     encoded (%2e%2e, .%2e, %2E.) count like literal ones. Empty segments
//     are dropped (duplicate slashes collapse: "//admin" → "/admin"), "."
//     segments are removed and ".." removes the previous segment. Only the
//     exact segments "." and ".." are dot segments; "...", ".well-known"
//     and "..foo" are ordinary names.
//   - dot_above_root: a ".." with nothing left to remove would climb above
//     the root; it is refused, never clamped to "/".
//   - Trailing slash (the RFC 3986 §5.2.4 convention): the result ends in
//     "/" when the decoded path ended in "/" or its last segment was "." or
//     "..", since those name a directory. So "/a/b/" stays "/a/b/", "/a/./"
//     and "/a/." become "/a/", "/a/./b/." becomes "/a/b/", "/a/b/.."
//     becomes "/a/" and "/a/.." becomes "/"; "/" stays "/".
//   - too_long, again: the result re-escaped for forwarding,
//     (&url.URL{Path: out}).EscapedPath(), is longer than MaxPathLength.
//     Raw bytes such as '{', '!' or non-ASCII grow to "%XX" there, and a
//     path the gateway accepted must be accepted again, unchanged, by any
//     hop applying the same bound.
//
// A successful result therefore starts with "/", has no empty, "." or ".."
// segment, contains no '%', '\', ';', '#', '?' or control byte, is valid
// UTF-8, and is a fixed point: normalizing it (or its re-escaped form) again
// returns it unchanged.
//
// When the input is already canonical (printable ASCII, no '%', no "//", no
// "." or ".." segment, no refused byte) NormalizePath returns the input
// string itself and does not allocate.
func NormalizePath(escaped string) (string, error) {
	if escaped == "" {
		return "", pathErr(PathReasonNotAbsolute, "path is empty")
	}
	if escaped[0] != '/' {
		return "", pathErr(PathReasonNotAbsolute, "path starts with %q, not '/'", escaped[:1])
	}
	if len(escaped) > MaxPathLength {
		return "", pathErr(PathReasonTooLong, "path is %d bytes, the limit is %d", len(escaped), MaxPathLength)
	}
	if n := canonicalEscapedLen(escaped); n >= 0 {
		if n > MaxPathLength {
			return "", forwardedTooLong(n)
		}
		return escaped, nil
	}
	return normalizeSlow(escaped)
}

// forwardedTooLong is the error for a path that fits MaxPathLength as
// received but not once re-escaped for forwarding.
func forwardedTooLong(n int) error {
	return pathErr(PathReasonTooLong, "path re-escaped for forwarding is %d bytes, the limit is %d", n, MaxPathLength)
}

// plainPathByte[c] is true for bytes that may appear in a canonical path
// unchanged: printable ASCII other than '%', '\', ';', '#' and '?'.
var plainPathByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = true
	}
	for _, c := range []byte{'%', '\\', ';', '#', '?'} {
		t[c] = false
	}
	return t
}()

// escapedWidth[c] is how many bytes c takes in the path's forwarded form,
// (&url.URL{Path: p}).EscapedPath(): 1 for the bytes net/url leaves alone in
// a path (RFC 3986 unreserved characters, "$&+,;=" and '/', ':', '@'), 3
// ("%XX") for every other byte. The fuzz test checks this against net/url.
var escapedWidth = func() (t [256]uint8) {
	for c := range t {
		t[c] = 3
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = 1
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 1
		t[c-'a'+'A'] = 1
	}
	for _, c := range []byte("-_.~$&+,/:;=@") {
		t[c] = 1
	}
	return t
}()

// escapedPathLen returns len((&url.URL{Path: string(p)}).EscapedPath())
// without building it.
func escapedPathLen(p []byte) int {
	n := 0
	for _, c := range p {
		n += int(escapedWidth[c])
	}
	return n
}

// canonicalEscapedLen returns -1 unless s (which starts with '/') is already
// its own normalization and contains only plain ASCII, so that no decoding,
// UTF-8 check or segment work is needed. For such an s it returns the length
// of its forwarded form (see escapedPathLen).
func canonicalEscapedLen(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !plainPathByte[c] {
			return -1
		}
		n += int(escapedWidth[c])
		if c != '/' || i+1 == len(s) {
			continue
		}
		switch s[i+1] {
		case '/':
			return -1 // empty segment
		case '.':
			j := i + 2
			if j == len(s) || s[j] == '/' {
				return -1 // "." segment
			}
			if s[j] == '.' && (j+1 == len(s) || s[j+1] == '/') {
				return -1 // ".." segment
			}
		}
	}
	return n
}

// Classes of bytes that may not appear in a decoded path, whether literal
// or percent-encoded. byteOK is every other byte.
const (
	byteOK uint8 = iota
	byteControl
	bytePercent
	byteHash
	byteSemicolon
	byteQuestion
	byteBackslash
	byteSlash
)

// decodedByteClass classifies every byte value for the decoding pass; a
// table keeps the common (byteOK) case to one load.
var decodedByteClass = func() (t [256]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = byteControl
	}
	t[0x7f] = byteControl
	t['%'] = bytePercent
	t['#'] = byteHash
	t[';'] = byteSemicolon
	t['?'] = byteQuestion
	t['\\'] = byteBackslash
	t['/'] = byteSlash
	return t
}()

// refusal returns the reason code and a description for a refused class.
func refusal(class uint8) (reason, what string) {
	switch class {
	case byteControl:
		return PathReasonControlChar, "control character"
	case bytePercent:
		return PathReasonDoubleEncoding, "percent sign after decoding (double encoding)"
	case byteHash:
		return PathReasonFragment, "fragment marker '#'"
	case byteSemicolon:
		return PathReasonSemicolon, "path parameter marker ';'"
	case byteQuestion:
		return PathReasonEncodedQuery, "query marker '?' inside the path"
	}
	panic("policy: no refusal for byte class")
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normalizeSlow decodes s (which starts with '/' and is at most
// MaxPathLength bytes) and resolves its segments in place in one buffer.
func normalizeSlow(s string) (string, error) {
	// Small paths are decoded in a stack buffer, so the only allocation is
	// the returned string.
	var stack [256]byte
	var buf []byte
	if len(s) <= len(stack) {
		buf = stack[:0]
	} else {
		buf = make([]byte, 0, len(s))
	}

	// Pass 1: decode once, refusing the first offending byte.
	for i := 0; i < len(s); i++ {
		c := s[i]
		class := decodedByteClass[c]
		switch class {
		case byteOK, byteSlash:
		case bytePercent:
			if i+2 >= len(s) {
				return "", pathErr(PathReasonBadEscape, "truncated percent-escape %q at byte %d", s[i:], i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", pathErr(PathReasonBadEscape, "malformed percent-escape %q at byte %d", s[i:i+3], i)
			}
			c = hi<<4 | lo
			switch class = decodedByteClass[c]; class {
			case byteOK:
			case byteSlash, byteBackslash:
				return "", pathErr(PathReasonEncodedSlash, "percent-encoded %q (%q) at byte %d", string(rune(c)), s[i:i+3], i)
			default:
				reason, what := refusal(class)
				return "", pathErr(reason, "percent-encoded %s (%q) at byte %d", what, s[i:i+3], i)
			}
			i += 2
		case byteBackslash:
			return "", pathErr(PathReasonBackslash, "backslash at byte %d", i)
		default:
			reason, what := refusal(class)
			return "", pathErr(reason, "%s (0x%02x) at byte %d", what, c, i)
		}
		buf = append(buf, c)
	}

	// Pass 2: the decoded bytes must be valid UTF-8.
	if !utf8.Valid(buf) {
		off := 0
		for off < len(buf) {
			r, size := utf8.DecodeRune(buf[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return "", pathErr(PathReasonInvalidUTF8, "decoded path is not valid UTF-8 at decoded byte %d (overlong or malformed sequence)", off)
	}

	// Pass 3: resolve segments in place. buf[0] is the literal leading '/'
	// (an encoded one was refused above). The output buf[:w] is always "/"
	// or "/seg/.../seg" without a trailing slash; it never overtakes the
	// reader r, because every copied segment was preceded by at least one
	// '/' in the input that pays for the separator written before it.
	n := len(buf)
	last := n - 1
	for buf[last] != '/' {
		last--
	}
	tail := buf[last+1:]
	endsDir := len(tail) == 0 || string(tail) == "." || string(tail) == ".."

	w := 1
	for r := 1; r < n; {
		if buf[r] == '/' {
			r++
			continue
		}
		end := r + 1
		for end < n && buf[end] != '/' {
			end++
		}
		seg := buf[r:end]
		switch {
		case len(seg) == 1 && seg[0] == '.':
			// "." names the current segment: drop it.
		case len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			if w == 1 {
				return "", pathErr(PathReasonDotAboveRoot, "'..' segment ending at decoded byte %d climbs above the root", end)
			}
			for w > 1 && buf[w-1] != '/' {
				w--
			}
			if w > 1 {
				w-- // drop the separator too, unless it is the root
			}
		default:
			if w > 1 {
				buf[w] = '/'
				w++
			}
			w += copy(buf[w:], seg)
		}
		r = end
	}
	if endsDir && w > 1 {
		buf[w] = '/'
		w++
	}
	if n := escapedPathLen(buf[:w]); n > MaxPathLength {
		return "", forwardedTooLong(n)
	}
	return string(buf[:w]), nil
}

// PathHasPrefix reports whether the normalized path lies at or below prefix,
// matching on segment boundaries: it is true when prefix is "/", when path
// equals prefix, or when path starts with prefix and either prefix ends in
// '/' or the next byte of path is '/'. So "/admin" matches "/admin",
// "/admin/" and "/admin/users" but not "/administrator"; "/admin/" matches
// "/admin/users" but not "/admin". An empty prefix matches nothing.
// The comparison is byte-exact; see PathHasPrefixFold for case-insensitive
// upstreams. Both arguments should be outputs of NormalizePath.
func PathHasPrefix(path, prefix string) bool {
	if prefix == "" {
		return false
	}
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// PathHasPrefixFold is PathHasPrefix with ASCII case folding ('A'-'Z' equal
// 'a'-'z'), for rules that must also catch "/ADMIN" when the upstream treats
// paths case-insensitively. Bytes outside ASCII are compared exactly (no
// Unicode folding). It does not allocate.
func PathHasPrefixFold(path, prefix string) bool {
	if prefix == "" {
		return false
	}
	if prefix == "/" {
		return true
	}
	if len(path) < len(prefix) || !asciiEqualFold(path[:len(prefix)], prefix) {
		return false
	}
	return len(path) == len(prefix) || prefix[len(prefix)-1] == '/' || path[len(prefix)] == '/'
}

// asciiEqualFold reports whether a and b, of equal length, are equal under
// ASCII case folding.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
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
