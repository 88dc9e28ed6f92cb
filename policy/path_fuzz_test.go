package policy

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

// knownPathReasons is every Reason NormalizePath may return.
var knownPathReasons = map[string]bool{
	PathReasonNotAbsolute:    true,
	PathReasonTooLong:        true,
	PathReasonBadEscape:      true,
	PathReasonEncodedSlash:   true,
	PathReasonBackslash:      true,
	PathReasonDoubleEncoding: true,
	PathReasonControlChar:    true,
	PathReasonFragment:       true,
	PathReasonSemicolon:      true,
	PathReasonEncodedQuery:   true,
	PathReasonInvalidUTF8:    true,
	PathReasonDotAboveRoot:   true,
}

// escapeForPath re-encodes a normalized path the way the proxy forwards it.
func escapeForPath(p string) string {
	return (&url.URL{Path: p}).EscapedPath()
}

func FuzzNormalizePath(f *testing.F) {
	for _, tc := range normalizeCases {
		f.Add(tc.in)
	}
	for _, c := range readAttackCases(f) {
		f.Add(c.in)
	}

	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePath(in)
		if err != nil {
			var pe *PathError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("NormalizePath(%q): error %v (%T) is not a *PathError matching ErrInvalidPath", in, err, err)
			}
			if !knownPathReasons[pe.Reason] {
				t.Fatalf("NormalizePath(%q): unknown reason %q", in, pe.Reason)
			}
			if out != "" {
				t.Fatalf("NormalizePath(%q) returned %q alongside an error", in, out)
			}
			return
		}

		// Shape of a canonical path.
		if !strings.HasPrefix(out, "/") {
			t.Fatalf("NormalizePath(%q) = %q: does not start with '/'", in, out)
		}
		if strings.Contains(out, "//") {
			t.Fatalf("NormalizePath(%q) = %q: contains \"//\"", in, out)
		}
		if strings.Contains(out, "/./") || strings.Contains(out, "/../") ||
			strings.HasSuffix(out, "/.") || strings.HasSuffix(out, "/..") {
			t.Fatalf("NormalizePath(%q) = %q: contains a dot segment", in, out)
		}
		if i := strings.IndexAny(out, "%\\;#?"); i >= 0 {
			t.Fatalf("NormalizePath(%q) = %q: contains refused byte %q", in, out, out[i])
		}
		if strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("NormalizePath(%q) = %q: contains a control character", in, out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("NormalizePath(%q) = %q: invalid UTF-8", in, out)
		}
		if len(out) > len(in) {
			t.Fatalf("NormalizePath(%q) = %q: longer than its input", in, out)
		}

		// Idempotence: what the proxy forwards normalizes to itself, both
		// re-escaped and as is.
		esc := escapeForPath(out)
		if n := escapedPathLen([]byte(out)); n != len(esc) || n > MaxPathLength {
			t.Fatalf("NormalizePath(%q) = %q: escapedPathLen = %d, re-escaped %q is %d bytes (limit %d)", in, out, n, esc, len(esc), MaxPathLength)
		}
		again, err := NormalizePath(esc)
		if err != nil || again != out {
			t.Fatalf("not idempotent: NormalizePath(%q) = %q, re-escaped %q normalizes to %q, %v", in, out, esc, again, err)
		}
		if again, err := NormalizePath(out); err != nil || again != out {
			t.Fatalf("not idempotent: NormalizePath(%q) = %q, which normalizes to %q, %v", in, out, again, err)
		}

		// Differential check against the standard library: a single
		// url.PathUnescape must succeed, and path.Clean of the decoded path
		// must agree with out up to the trailing slash (path.Clean clamps
		// ".." at the root, but a successful result never climbed).
		dec, err := url.PathUnescape(in)
		if err != nil {
			t.Fatalf("NormalizePath(%q) = %q but url.PathUnescape fails: %v", in, out, err)
		}
		if clean := path.Clean(dec); clean != strings.TrimSuffix(out, "/") && !(clean == "/" && out == "/") {
			t.Fatalf("NormalizePath(%q) = %q, path.Clean(%q) = %q", in, out, dec, clean)
		}
		lastSeg := dec[strings.LastIndexByte(dec, '/')+1:]
		wantSlash := out == "/" || lastSeg == "" || lastSeg == "." || lastSeg == ".."
		if strings.HasSuffix(out, "/") != wantSlash {
			t.Fatalf("NormalizePath(%q) = %q: trailing slash rule broken (decoded %q)", in, out, dec)
		}

		// Every normalized path lies at and below itself, and below "/"; in
		// ASCII, case folding finds it under its upper-cased spelling too.
		if !PathHasPrefix(out, out) || !PathHasPrefix(out, "/") || !PathHasPrefixFold(out, out) {
			t.Fatalf("PathHasPrefix(%q, itself) = false", out)
		}
		if isASCII(out) && !PathHasPrefixFold(out, strings.ToUpper(out)) {
			t.Fatalf("PathHasPrefixFold(%q, %q) = false", out, strings.ToUpper(out))
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// TestEscapedPathLenMatchesNetURL checks the escapedWidth table against
// net/url for every byte value, alone and inside a path.
func TestEscapedPathLenMatchesNetURL(t *testing.T) {
	for c := 0; c < 256; c++ {
		p := "/a" + string([]byte{byte(c)}) + "b"
		if got, want := escapedPathLen([]byte(p)), len(escapeForPath(p)); got != want {
			t.Errorf("byte 0x%02x: escapedPathLen = %d, net/url gives %d (%q)", c, got, want, escapeForPath(p))
		}
	}
}
