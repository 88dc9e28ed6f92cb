package redirect

import (
	"bufio"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
)

// addCorpusSeeds seeds f with the first field of every line in a testdata
// corpus.
func addCorpusSeeds(f *testing.F, name string) {
	file, err := os.Open(name)
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		text := sc.Text()
		if text == "" || text[0] == '#' {
			continue
		}
		first, _, _ := strings.Cut(text, "\t")
		if u, err := strconv.Unquote(first); err == nil {
			first = u
		}
		f.Add(first)
	}
}

func FuzzValidate(f *testing.F) {
	addCorpusSeeds(f, "testdata/open-redirects.txt")
	addCorpusSeeds(f, "testdata/safe-redirects.txt")
	v, err := NewValidator(testPublicURL, testAllowed)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, err := v.Validate(raw)
		if err != nil {
			if out != "" {
				t.Fatalf("Validate(%q) returned %q with error %v", raw, out, err)
			}
			return
		}
		// Browsers would agree: nothing they strip, delete or reinterpret.
		for i := 0; i < len(out); i++ {
			if c := out[i]; c <= ' ' || c == 0x7f || c == '\\' || c >= 0x80 {
				t.Fatalf("Validate(%q) = %q holds byte %#x", raw, out, c)
			}
		}
		if strings.HasPrefix(out, "/") {
			if strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\") {
				t.Fatalf("Validate(%q) = %q is scheme-relative", raw, out)
			}
			u, err := url.Parse(out)
			if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
				t.Fatalf("Validate(%q) = %q parses as %#v, %v", raw, out, u, err)
			}
		} else {
			u, err := url.Parse(out)
			if err != nil {
				t.Fatalf("Validate(%q) = %q does not parse: %v", raw, out, err)
			}
			if u.Scheme != "http" && u.Scheme != "https" {
				t.Fatalf("Validate(%q) = %q has scheme %q", raw, out, u.Scheme)
			}
			if u.User != nil || u.Opaque != "" {
				t.Fatalf("Validate(%q) = %q has userinfo or opaque part", raw, out)
			}
			if !v.AllowHost(u.Host) {
				t.Fatalf("Validate(%q) = %q names host %q, which AllowHost refuses", raw, out, u.Host)
			}
		}
		// The cleaned target is a fixed point.
		if again, err := v.Validate(out); err != nil || again != out {
			t.Fatalf("Validate(%q) = %q, but Validate(%q) = %q, %v", raw, out, out, again, err)
		}
	})
}
