package policy

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// normalizeCase is one NormalizePath expectation: either want (the exact
// normalized path) or reason (the exact PathError.Reason) is set.
type normalizeCase struct {
	in     string
	want   string
	reason string
}

// normalizeCases is shared by TestNormalizePath and the fuzz seeds.
var normalizeCases = []normalizeCase{
	// Canonical input comes back unchanged.
	{in: "/", want: "/"},
	{in: "/admin", want: "/admin"},
	{in: "/a/b/", want: "/a/b/"},
	{in: "/.well-known/x", want: "/.well-known/x"},
	{in: "/...", want: "/..."},
	{in: "/a/..b/.c", want: "/a/..b/.c"},
	{in: "/a b", want: "/a b"},

	// Decoding exactly once.
	{in: "/%61dmin", want: "/admin"},
	{in: "/%41DMIN", want: "/ADMIN"},
	{in: "/caf%C3%A9", want: "/café"},
	{in: "/café", want: "/café"},
	{in: "/a%20b", want: "/a b"},
	{in: "/%7e", want: "/~"},

	// Slashes and dot segments.
	{in: "//admin", want: "/admin"},
	{in: "///a//b///", want: "/a/b/"},
	{in: "/x/../admin", want: "/admin"},
	{in: "/public/%2e%2e/admin", want: "/admin"},
	{in: "/public/%2E%2E/admin", want: "/admin"},
	{in: "/public/.%2e/admin", want: "/admin"},
	{in: "/public/%2e./admin", want: "/admin"},
	{in: "/./admin", want: "/admin"},
	{in: "/.", want: "/"},
	{in: "/./", want: "/"},
	{in: "//", want: "/"},
	{in: "/a/.", want: "/a/"},
	{in: "/a/./", want: "/a/"},
	{in: "/a/./b/.", want: "/a/b/"},
	{in: "/a/b/..", want: "/a/"},
	{in: "/a/b/../", want: "/a/"},
	{in: "/a/..", want: "/"},
	{in: "/a/../", want: "/"},
	{in: "/a/%2e", want: "/a/"},
	{in: "/a/b/../c", want: "/a/c"},
	{in: "/a/bb/cc/../../d", want: "/a/d"},
	{in: "/a//../b", want: "/b"},

	// Refusals.
	{in: "", reason: PathReasonNotAbsolute},
	{in: "admin", reason: PathReasonNotAbsolute},
	{in: "%2fadmin", reason: PathReasonNotAbsolute},
	{in: "/admin%2f", reason: PathReasonEncodedSlash},
	{in: "/admin%2F", reason: PathReasonEncodedSlash},
	{in: "/admin%5c", reason: PathReasonEncodedSlash},
	{in: "/admin%5C", reason: PathReasonEncodedSlash},
	{in: "/public/..%2fadmin", reason: PathReasonEncodedSlash},
	{in: "/a\\b", reason: PathReasonBackslash},
	{in: "/%252e%252e/admin", reason: PathReasonDoubleEncoding},
	{in: "/100%25", reason: PathReasonDoubleEncoding},
	{in: "/admin%zz", reason: PathReasonBadEscape},
	{in: "/admin%4", reason: PathReasonBadEscape},
	{in: "/admin%", reason: PathReasonBadEscape},
	{in: "/admin%g0", reason: PathReasonBadEscape},
	{in: "/admin%00", reason: PathReasonControlChar},
	{in: "/admin%0a", reason: PathReasonControlChar},
	{in: "/admin%0D", reason: PathReasonControlChar},
	{in: "/admin%09", reason: PathReasonControlChar},
	{in: "/admin%7F", reason: PathReasonControlChar},
	{in: "/admin\x00", reason: PathReasonControlChar},
	{in: "/admin\n", reason: PathReasonControlChar},
	{in: "/admin\t", reason: PathReasonControlChar},
	{in: "/admin\x7f", reason: PathReasonControlChar},
	{in: "/admin%23x", reason: PathReasonFragment},
	{in: "/admin#x", reason: PathReasonFragment},
	{in: "/admin;jsessionid=1", reason: PathReasonSemicolon},
	{in: "/admin%3Bx=1", reason: PathReasonSemicolon},
	{in: "/admin%3Fx=1", reason: PathReasonEncodedQuery},
	{in: "/admin?x=1", reason: PathReasonEncodedQuery},
	{in: "/%c0%afadmin", reason: PathReasonInvalidUTF8},
	{in: "/%c0%ae%c0%ae/admin", reason: PathReasonInvalidUTF8},
	{in: "/%ed%a0%80", reason: PathReasonInvalidUTF8},
	{in: "/\xff", reason: PathReasonInvalidUTF8},
	{in: "/caf%C3", reason: PathReasonInvalidUTF8},
	{in: "/..", reason: PathReasonDotAboveRoot},
	{in: "/../", reason: PathReasonDotAboveRoot},
	{in: "/a/../../b", reason: PathReasonDotAboveRoot},
	{in: "/%2e%2e/admin", reason: PathReasonDotAboveRoot},
	{in: "/./../a", reason: PathReasonDotAboveRoot},

	// The first offending byte decides the reason.
	{in: "/%2f%00", reason: PathReasonEncodedSlash},
	{in: "/%00%2f", reason: PathReasonControlChar},
	{in: "/;%zz", reason: PathReasonSemicolon},
	{in: "/%zz;", reason: PathReasonBadEscape},
	{in: "/..;", reason: PathReasonSemicolon},
	{in: "/%ff/..", reason: PathReasonInvalidUTF8},
}

func TestNormalizePath(t *testing.T) {
	for _, tc := range normalizeCases {
		got, err := NormalizePath(tc.in)
		checkNormalize(t, tc.in, got, err, tc.want, tc.reason)
	}
}

// checkNormalize asserts that NormalizePath(in) returned exactly want, or
// failed with exactly reason.
func checkNormalize(t *testing.T, in, got string, err error, want, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("NormalizePath(%q) = error %v, want %q", in, err, want)
		} else if got != want {
			t.Errorf("NormalizePath(%q) = %q, want %q", in, got, want)
		}
		return
	}
	if err == nil {
		t.Errorf("NormalizePath(%q) = %q, want reason %q", in, got, reason)
		return
	}
	var pe *PathError
	if !errors.As(err, &pe) {
		t.Errorf("NormalizePath(%q) error %v (%T) is not a *PathError", in, err, err)
		return
	}
	if pe.Reason != reason {
		t.Errorf("NormalizePath(%q) reason = %q (%s), want %q", in, pe.Reason, pe.Detail, reason)
	}
	if got != "" {
		t.Errorf("NormalizePath(%q) returned %q alongside an error", in, got)
	}
}

func TestNormalizePathLength(t *testing.T) {
	atLimit := "/" + strings.Repeat("a", MaxPathLength-1)
	if got, err := NormalizePath(atLimit); err != nil || got != atLimit {
		t.Errorf("path of exactly MaxPathLength bytes: got %d bytes, err %v", len(got), err)
	}
	_, err := NormalizePath(atLimit + "a")
	checkNormalize(t, "MaxPathLength+1 bytes", "", err, "", PathReasonTooLong)

	// The limit is on the escaped form: an encoded path that decodes short
	// is still refused, and a long encoded path that fits is decoded
	// through the heap buffer.
	_, err = NormalizePath("/" + strings.Repeat("%61", MaxPathLength/3+1))
	checkNormalize(t, "long encoded path", "", err, "", PathReasonTooLong)
	// The forwarded form must fit too: raw bytes that net/url escapes grow
	// threefold (found by FuzzNormalizePath with a path of '{').
	for _, in := range []string{
		"/" + strings.Repeat("{", MaxPathLength-1),
		"/a" + strings.Repeat("{", 4000) + "/.",
		"/" + strings.Repeat("!", 3000),
		"/" + strings.Repeat("é", 2000),
	} {
		_, err = NormalizePath(in)
		checkNormalize(t, "path that grows when re-escaped", "", err, "", PathReasonTooLong)
	}
	fits := "/" + strings.Repeat("{", (MaxPathLength-1)/3)
	if got, err := NormalizePath(fits); err != nil || got != fits {
		t.Errorf("path whose re-escaped form fits: got %d bytes, err %v", len(got), err)
	}
	long := "/" + strings.Repeat("%61", (MaxPathLength-1)/3)
	want := "/" + strings.Repeat("a", (MaxPathLength-1)/3)
	if got, err := NormalizePath(long); err != nil || got != want {
		t.Errorf("long encoded path within the limit: got %d bytes, err %v", len(got), err)
	}
}

func TestNormalizePathReturnsInputWhenCanonical(t *testing.T) {
	for _, in := range []string{"/", "/admin", "/a/b/", "/.well-known/x", "/a-b_c~d/e.f"} {
		got, err := NormalizePath(in)
		if err != nil || got != in {
			t.Fatalf("NormalizePath(%q) = %q, %v", in, got, err)
		}
		if unsafe.StringData(got) != unsafe.StringData(in) {
			t.Errorf("NormalizePath(%q) returned a copy, want the input string itself", in)
		}
	}
}

func TestNormalizePathAllocs(t *testing.T) {
	for _, in := range []string{"/", "/admin", "/api/v1/users/42/", "/.well-known/openid-configuration"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(in) }); n != 0 {
			t.Errorf("NormalizePath(%q): %v allocs per run, want 0", in, n)
		}
	}
	// A short non-canonical path is decoded on the stack; the only
	// allocation is the result string.
	for _, in := range []string{"/%61dmin", "/a/./b/../c", "//a"} {
		if n := testing.AllocsPerRun(100, func() { _, _ = NormalizePath(in) }); n > 1 {
			t.Errorf("NormalizePath(%q): %v allocs per run, want at most 1", in, n)
		}
	}
}

func TestPathError(t *testing.T) {
	_, err := NormalizePath("/admin%2f")
	if !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("errors.Is(%v, ErrInvalidPath) = false", err)
	}
	var pe *PathError
	if !errors.As(err, &pe) {
		t.Fatalf("error %T is not a *PathError", err)
	}
	if pe.Detail == "" {
		t.Errorf("PathError.Detail is empty")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "invalid request path (encoded_slash): ") {
		t.Errorf("Error() = %q", msg)
	}
	if errors.Is(err, errors.New("invalid request path")) {
		t.Errorf("PathError matched an unrelated error with the same text")
	}
	if got := (&PathError{Reason: "x"}).Error(); got != "invalid request path (x)" {
		t.Errorf("Error() without detail = %q", got)
	}
	// Every refusal in the table matches ErrInvalidPath and carries a detail
	// that quotes attacker bytes safely (no raw control characters).
	for _, tc := range normalizeCases {
		if tc.reason == "" {
			continue
		}
		_, err := NormalizePath(tc.in)
		if !errors.Is(err, ErrInvalidPath) {
			t.Errorf("NormalizePath(%q): errors.Is(err, ErrInvalidPath) = false", tc.in)
			continue
		}
		if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("NormalizePath(%q): error text %q contains a control character", tc.in, err.Error())
		}
	}
}

// attackCase is one line of testdata/path-attacks.txt.
type attackCase struct {
	line   int
	in     string
	want   string
	reason string
}

// readAttackCases parses testdata/path-attacks.txt (format described at the
// top of that file).
func readAttackCases(tb testing.TB) []attackCase {
	tb.Helper()
	f, err := os.Open("testdata/path-attacks.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var cases []attackCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		in, expected, ok := strings.Cut(line, "\t")
		if !ok || expected == "" || strings.Contains(expected, "\t") {
			tb.Fatalf("path-attacks.txt:%d: want INPUT<TAB>EXPECTED, got %q", n, line)
		}
		c := attackCase{line: n, in: in}
		if reason, isErr := strings.CutPrefix(expected, "!"); isErr {
			c.reason = reason
		} else {
			c.want = expected
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(cases) == 0 {
		tb.Fatal("path-attacks.txt has no cases")
	}
	return cases
}

func TestPathAttacksFile(t *testing.T) {
	for _, c := range readAttackCases(t) {
		got, err := NormalizePath(c.in)
		checkNormalize(t, c.in, got, err, c.want, c.reason)
		// The security property, stated on its own: an attack line may only
		// reach /admin (in any ASCII case) when its expected column says so.
		if err == nil && PathHasPrefixFold(got, "/admin") && !PathHasPrefixFold(c.want, "/admin") {
			t.Errorf("path-attacks.txt:%d: %q reaches %q, but the line does not expect /admin", c.line, c.in, got)
		}
	}
}

func TestPathHasPrefix(t *testing.T) {
	tests := []struct {
		path, prefix string
		want, fold   bool
	}{
		{"/admin", "/admin", true, true},
		{"/admin/", "/admin", true, true},
		{"/admin/users", "/admin", true, true},
		{"/administrator", "/admin", false, false},
		{"/admin-panel", "/admin", false, false},
		{"/adm", "/admin", false, false},
		{"/ADMIN", "/admin", false, true},
		{"/Admin/users", "/admin", false, true},
		{"/ADMINISTRATOR", "/admin", false, false},
		{"/admin/users", "/admin/", true, true},
		{"/admin/", "/admin/", true, true},
		{"/admin", "/admin/", false, false},
		{"/ADMIN/x", "/admin/", false, true},
		{"/anything", "/", true, true},
		{"/", "/", true, true},
		{"/", "/admin", false, false},
		{"/api/v1/x", "/api/v1", true, true},
		{"/api/v10", "/api/v1", false, false},
		{"/admin", "", false, false},
		{"/café/x", "/CAFÉ", false, false}, // no Unicode folding
		{"/café/x", "/CAFé", false, true},
		{"/a[b", "/a{b", false, false}, // '[' and '{' are not a case pair
	}
	for _, tt := range tests {
		if got := PathHasPrefix(tt.path, tt.prefix); got != tt.want {
			t.Errorf("PathHasPrefix(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
		if got := PathHasPrefixFold(tt.path, tt.prefix); got != tt.fold {
			t.Errorf("PathHasPrefixFold(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.fold)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = PathHasPrefixFold("/ADMIN/users", "/admin") }); n != 0 {
		t.Errorf("PathHasPrefixFold: %v allocs per run, want 0", n)
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	benches := []struct{ name, in string }{
		{"clean", "/api/v1/organizations/acme/projects/42/settings"},
		{"encoded", "/api/v1/organizations/%61cme/projects/caf%C3%A9/settings"},
		{"dots", "/api/v1/./organizations//acme/../acme/projects/42/settings/."},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.in)))
			for b.Loop() {
				if _, err := NormalizePath(bb.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
