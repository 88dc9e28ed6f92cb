package redirect

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

const testPublicURL = "https://gate.example.com"

var testAllowed = []string{"*.apps.example.com", "good.example.com"}

func newTestValidator(t testing.TB) *Validator {
	t.Helper()
	v, err := NewValidator(testPublicURL, testAllowed)
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	return v
}

// corpusLine is one entry of a testdata corpus.
type corpusLine struct {
	line   int
	fields []string
}

// readCorpus reads a testdata file: blank lines and lines starting with '#'
// are skipped, fields are tab-separated, and a field starting with '"' is a
// Go-quoted string.
func readCorpus(t *testing.T, name string) []corpusLine {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusLine
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		fields := strings.Split(text, "\t")
		for i, fld := range fields {
			if strings.HasPrefix(fld, `"`) {
				u, err := strconv.Unquote(fld)
				if err != nil {
					t.Fatalf("%s:%d: bad quoted field %s: %v", name, n, fld, err)
				}
				fields[i] = u
			}
		}
		out = append(out, corpusLine{n, fields})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestOpenRedirectCorpus(t *testing.T) {
	v := newTestValidator(t)
	lines := readCorpus(t, "testdata/open-redirects.txt")
	if len(lines) < 60 {
		t.Fatalf("open-redirects.txt has %d entries, want at least 60", len(lines))
	}
	for _, l := range lines {
		if len(l.fields) != 1 {
			t.Errorf("line %d: want one field, got %q", l.line, l.fields)
			continue
		}
		assertRefused(t, v, l.fields[0])
	}
}

func TestSafeRedirectCorpus(t *testing.T) {
	v := newTestValidator(t)
	lines := readCorpus(t, "testdata/safe-redirects.txt")
	if len(lines) == 0 {
		t.Fatal("safe-redirects.txt is empty")
	}
	for _, l := range lines {
		if len(l.fields) != 2 {
			t.Errorf("line %d: want target<TAB>cleaned, got %q", l.line, l.fields)
			continue
		}
		in, want := l.fields[0], l.fields[1]
		got, err := v.Validate(in)
		if err != nil {
			t.Errorf("line %d: Validate(%q): %v", l.line, in, err)
			continue
		}
		if got != want {
			t.Errorf("line %d: Validate(%q) = %q, want %q", l.line, in, got, want)
		}
		// The cleaned target is itself accepted unchanged.
		if again, err := v.Validate(got); err != nil || again != got {
			t.Errorf("line %d: Validate(%q) = %q, %v; want it unchanged", l.line, got, again, err)
		}
	}
}

func assertRefused(t *testing.T, v *Validator, in string) {
	t.Helper()
	got, err := v.Validate(in)
	if err == nil {
		t.Errorf("Validate(%q) = %q, want refusal", in, got)
		return
	}
	if !errors.Is(err, ErrUnsafeRedirect) {
		t.Errorf("Validate(%q) error %v does not wrap ErrUnsafeRedirect", in, err)
	}
	if got != "" {
		t.Errorf("Validate(%q) returned %q alongside an error", in, got)
	}
}

// TestGeneratedAttacks covers inputs too numerous or awkward for the corpus.
func TestGeneratedAttacks(t *testing.T) {
	v := newTestValidator(t)
	assertRefused(t, v, "")
	assertRefused(t, v, "/"+strings.Repeat("a", MaxLength))
	if _, err := v.Validate("/" + strings.Repeat("a", MaxLength-1)); err != nil {
		t.Errorf("path of exactly MaxLength bytes refused: %v", err)
	}
	// Every ASCII control character and space, at the start, inside the
	// authority, in the path and at the end.
	for c := 0; c <= 0x20; c++ {
		s := string(rune(c))
		for _, in := range []string{
			s + "/ok", "/" + s + "/evil.com", "/ok" + s,
			"https://gate.example.com" + s + ".evil.net/",
			"https://" + s + "gate.example.com/", "https://gate.example.com/" + s,
		} {
			assertRefused(t, v, in)
		}
	}
	assertRefused(t, v, "/ok\x7f")
	// A backslash anywhere, raw or encoded before the path.
	for _, in := range []string{
		"/ok\\", "/ok?x=\\", "/ok#\\", "https://gate.example.com/\\",
		"https://gate.example.com%5c@evil.com/", "https://gate.example.com%5C.evil.com/",
	} {
		assertRefused(t, v, in)
	}
	// Other schemes in many spellings.
	for _, scheme := range []string{"javascript", "JAVASCRIPT", "data", "vbscript", "file", "ftp", "mailto", "ws", "wss", "chrome", "about", "http2", "httpss"} {
		assertRefused(t, v, scheme+"://gate.example.com/")
		assertRefused(t, v, scheme+":alert(1)")
	}
}

func TestNewValidatorErrors(t *testing.T) {
	badPublic := []string{
		"", "gate.example.com", "ftp://gate.example.com", "https://", "https://user@gate.example.com",
		"https://gate.example.com/path", "https://gate.example.com?x", "https://gate.example.com#x",
		"https://gate example.com", "https://gate.example.com:0", "https://ｇate.example.com",
		"https:gate.example.com",
	}
	for _, p := range badPublic {
		if _, err := NewValidator(p, nil); err == nil {
			t.Errorf("NewValidator(%q) accepted a bad public URL", p)
		}
	}
	badPatterns := []string{
		"", "*", "*.", "*.com", "*.io", "fe80::1%eth0", "**.example.com", "*example.com", "a.*.example.com", "example.*",
		"https://app.example.com", "app.example.com/path", "user@app.example.com", "app example.com",
		"app.example.com:", "app.example.com:99999", "app.example.com:x", "*.10.0.0.1", "0x7f.1",
		"*.[::1]", "app..example.com", ".example.com", "ápp.example.com", "[::1", "[fe80::1%25eth0]",
	}
	for _, p := range badPatterns {
		if _, err := NewValidator(testPublicURL, []string{"ok.example.com", p}); err == nil {
			t.Errorf("NewValidator accepted pattern %q", p)
		}
	}
	good := []string{"app.example.com", "APP.Example.COM.", "app.example.com:8443", "*.example.com", "*.example.com:443", "10.0.0.5", "[::1]:8080", "::1", "*.localhost", "*.internal"}
	if _, err := NewValidator("http://gate.example.com:8080/", good); err != nil {
		t.Errorf("NewValidator(good patterns): %v", err)
	}
}

func TestAllowHost(t *testing.T) {
	v, err := NewValidator(testPublicURL, []string{
		"*.apps.example.com", "good.example.com", "port.example.com:8443",
		"*.ports.example.com:9443", "10.0.0.5", "[2001:db8::1]:8080",
		"2001:db8::2", "*.localhost",
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		hostport string
		want     bool
	}{
		{"gate.example.com", true},
		{"GATE.example.com.", true},
		{"gate.example.com:8443", true}, // pattern without port: any port
		{"good.example.com", true},
		{"x.apps.example.com", true},
		{"a.b.apps.example.com:444", true},
		{"apps.example.com", false},
		{"evilapps.example.com", false},
		{"x.apps.example.com.evil.net", false},
		{"good.example.com.evil.net", false},
		{"evilgood.example.com", false},
		{"port.example.com:8443", true},
		{"port.example.com", false}, // URL without port: port-less patterns only
		{"port.example.com:443", false},
		{"x.ports.example.com:9443", true},
		{"x.ports.example.com", false},
		{"10.0.0.5", true},
		{"10.0.0.5:80", true},
		{"010.0.0.5", false},
		{"10.0.5", false},
		{"[2001:db8::1]:8080", true},
		{"[2001:0db8:0:0::1]:8080", true},
		{"[2001:db8::1]", false},
		{"[2001:db8::2]", true}, // bare IPv6 pattern
		{"[2001:db8::2]:8443", true},
		{"x.dev.localhost", true},
		{"localhost", false},
		{"", false},
		{"gate.example.com:", false},
		{"gate.example.com:0", false},
		{"user@gate.example.com", false},
		{"gate.example.com/", false},
		{"ｇate.example.com", false},
	}
	for _, c := range cases {
		if got := v.AllowHost(c.hostport); got != c.want {
			t.Errorf("AllowHost(%q) = %v, want %v", c.hostport, got, c.want)
		}
	}
}

func TestValidatePorts(t *testing.T) {
	v, err := NewValidator("https://gate.example.com:8443", []string{"app.example.com:9000"})
	if err != nil {
		t.Fatal(err)
	}
	accept := map[string]string{
		"https://gate.example.com:8443/x": "https://gate.example.com:8443/x",
		"https://app.example.com:9000":    "https://app.example.com:9000/",
		"/x":                              "/x",
	}
	for in, want := range accept {
		if got, err := v.Validate(in); err != nil || got != want {
			t.Errorf("Validate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{
		"https://gate.example.com/x", "https://gate.example.com:443/x",
		"https://app.example.com/", "https://app.example.com:9001/",
	} {
		assertRefused(t, v, in)
	}
}

func TestPublicURLDefaultPort(t *testing.T) {
	v, err := NewValidator("https://gate.example.com:443/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Validate("https://gate.example.com/x"); err != nil || got != "https://gate.example.com/x" {
		t.Errorf("Validate = %q, %v; an explicit default port in the public URL must not demand one", got, err)
	}
}

func TestErrorReason(t *testing.T) {
	v := newTestValidator(t)
	_, err := v.Validate("https://good.example.com@evil.com")
	if err == nil || !strings.Contains(err.Error(), "userinfo") {
		t.Errorf("error %v does not name the reason", err)
	}
}

func BenchmarkValidate(b *testing.B) {
	v := newTestValidator(b)
	for _, in := range []string{"/app/settings?tab=profile", "https://x.apps.example.com/cb?code=abc"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Validate(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
