package pages

import (
	"encoding/base64"
	"flag"
	"html"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// testLogo is a small same-document SVG logo (a gate) as a data: URI.
var testLogo = "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(
	`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#0a6e50"/>`+
		`<path d="M8 25V13a8 8 0 0 1 16 0v12h-4V13a4 4 0 0 0-8 0v12z" fill="#fff"/></svg>`))

var testBrand = Brand{Title: "Acme Corp", LogoURL: testLogo, PrimaryColor: "#0a6e50", BackgroundColor: "#eef2f5"}

const testNonce = "TESTNONCE0123456789"

// newTest returns a Renderer with a fixed nonce.
func newTest(t testing.TB, b Brand, dir string) *Renderer {
	t.Helper()
	r, err := New(b, dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.nonce = func() string { return testNonce }
	return r
}

// Sample pages, shared by the golden, header and size tests.
var (
	sampleError = ErrorPage{
		Status:     http.StatusForbidden,
		Title:      "Access denied",
		Message:    "Your account doesn't have access to Payroll. Ask your administrator to add you to the right group.",
		RequestID:  "01J9Z6Q3XKPM4V7H2D8C5N0RWT",
		RetryURL:   "/payroll/",
		SignOutURL: "/.gatehouse/logout",
	}
	sampleChooser = ChooserPage{
		Audience: "workforce",
		Heading:  "Sign in to Acme",
		Message:  "Your session has expired. Please sign in again to continue.",
		Choices: []Choice{
			{ID: "okta", Label: "Acme SSO", URL: "/.gatehouse/login/okta?rd=%2Fpayroll%2F", Kind: "saml"},
			{ID: "google", Label: "Google", URL: "/.gatehouse/login/google?rd=%2Fpayroll%2F", Kind: "google", SignupURL: "/.gatehouse/login?provider=google&prompt=create"},
			{ID: "github", Label: "Continue with GitHub", URL: "/.gatehouse/login/github?rd=%2Fpayroll%2F", Kind: "github"},
		},
		RequestID: "01J9Z6Q3XKPM4V7H2D8C5N0RWT",
	}
	sampleLogout = LogoutPage{
		Action:    "/.gatehouse/logout",
		CSRFToken: "c3JmLXRva2VuLWZvci10ZXN0cw",
		Audiences: []string{"workforce", "customer"},
		ReturnURL: "/payroll/",
	}
	sampleStatic = StaticLoginPage{
		Provider: "demo-users",
		Action:   "/.gatehouse/static/demo-users",
		State:    "st_9f8e7d6c5b4a",
		Users: []StaticUser{
			{ID: "alice", Name: "Alice Admin", Email: "alice@example.test", Groups: []string{"admins", "engineering"}},
			{ID: "bob", Name: "Bob Builder", Email: "bob@example.test", Groups: []string{"engineering"}},
			{ID: "carol", Name: "Carol Customer", Email: "carol@example.test"},
		},
	}
)

// pageCase renders one page into a recorder.
type pageCase struct {
	name   string
	render func(r *Renderer, w http.ResponseWriter)
}

var samplePages = []pageCase{
	{"error", func(r *Renderer, w http.ResponseWriter) { r.Error(w, sampleError) }},
	{"chooser", func(r *Renderer, w http.ResponseWriter) { r.Chooser(w, sampleChooser) }},
	{"logout", func(r *Renderer, w http.ResponseWriter) { r.Logout(w, sampleLogout) }},
	{"static_login", func(r *Renderer, w http.ResponseWriter) { r.StaticLogin(w, sampleStatic) }},
}

func render(r *Renderer, pc pageCase) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	pc.render(r, w)
	return w
}

func TestGolden(t *testing.T) {
	r := newTest(t, testBrand, "")
	if w := r.Warnings(); len(w) != 0 {
		t.Errorf("test brand produced warnings %q", w)
	}
	for _, pc := range samplePages {
		t.Run(pc.name, func(t *testing.T) {
			got := render(r, pc).Body.Bytes()
			path := filepath.Join("testdata", pc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./proxy/pages -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s; rerun with -update if the change is intended\n--- got ---\n%s", pc.name, path, got)
			}
		})
	}
}

// checkSecurityHeaders asserts the headers every page carries; nonce ""
// means the static fallback page, whose CSP allows nothing at all.
func checkSecurityHeaders(t *testing.T, h http.Header, nonce string) {
	t.Helper()
	want := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
		"X-Frame-Options":        "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	directives := []string{"default-src 'none'", "img-src 'self' data:", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"}
	if nonce == "" {
		directives = []string{"default-src 'none'", "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'"}
	}
	for _, d := range directives {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %q", csp, d)
		}
	}
	if nonce == "" && strings.Contains(csp, "style-src") || nonce != "" && !strings.Contains(csp, "style-src 'nonce-"+nonce+"'") {
		t.Errorf("CSP %q lacks the style nonce", csp)
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q loosens scripts or styles", csp)
	}
}

func TestSecurityHeaders(t *testing.T) {
	r := newTest(t, testBrand, "")
	for _, pc := range samplePages {
		t.Run(pc.name, func(t *testing.T) {
			w := render(r, pc)
			checkSecurityHeaders(t, w.Header(), testNonce)
			if !strings.Contains(w.Body.String(), `<style nonce="`+testNonce+`">`) {
				t.Error("inline style does not carry the CSP nonce")
			}
			if got := w.Header().Get("Content-Length"); got != strconv.Itoa(w.Body.Len()) {
				t.Errorf("Content-Length %s, body %d", got, w.Body.Len())
			}
		})
	}
}

func TestDefaultNonceIsFreshPerResponse(t *testing.T) {
	r, err := New(Brand{}, "")
	if err != nil {
		t.Fatal(err)
	}
	a, b := httptest.NewRecorder(), httptest.NewRecorder()
	r.Error(a, ErrorPage{Status: 500})
	r.Error(b, ErrorPage{Status: 500})
	ca, cb := a.Header().Get("Content-Security-Policy"), b.Header().Get("Content-Security-Policy")
	if ca == cb {
		t.Errorf("two responses share a nonce: %q", ca)
	}
	if !strings.Contains(ca, "style-src 'nonce-") || len(ca) < len(cb)-2 || len(cb) < 140 {
		t.Errorf("CSP %q", ca)
	}
}

func TestStatus(t *testing.T) {
	r := newTest(t, Brand{}, "")
	for in, want := range map[int]int{0: 500, 200: 500, 302: 500, 999: 500, 400: 400, 403: 403, 404: 404, 502: 502, 599: 599} {
		w := httptest.NewRecorder()
		r.Error(w, ErrorPage{Status: in})
		if w.Code != want {
			t.Errorf("Status %d sent as %d, want %d", in, w.Code, want)
		}
	}
	for _, pc := range samplePages[1:] {
		if w := render(r, pc); w.Code != http.StatusOK {
			t.Errorf("%s: status %d", pc.name, w.Code)
		}
	}
}

func TestErrorDefaults(t *testing.T) {
	r := newTest(t, Brand{}, "")
	w := httptest.NewRecorder()
	r.Error(w, ErrorPage{Status: 503})
	body := w.Body.String()
	for _, s := range []string{"<h1>Service unavailable</h1>", "temporarily unavailable", "Error 503"} {
		if !strings.Contains(body, s) {
			t.Errorf("body lacks %q", s)
		}
	}
	for _, s := range []string{"Try again", "Sign out", "Request ID"} {
		if strings.Contains(body, s) {
			t.Errorf("body shows %q although it was not asked for", s)
		}
	}
}

const evil = `<script>alert("x")</script>&'`

func TestEscaping(t *testing.T) {
	r := newTest(t, Brand{Title: evil}, "")
	pages := map[string]func(w http.ResponseWriter){
		"error": func(w http.ResponseWriter) {
			r.Error(w, ErrorPage{Status: 400, Title: evil, Message: evil, RequestID: evil, RetryURL: "javascript:alert(1)", SignOutURL: `/x"><script>`})
		},
		"chooser": func(w http.ResponseWriter) {
			r.Chooser(w, ChooserPage{Audience: evil, Heading: evil, Message: evil, RequestID: evil,
				Choices: []Choice{{ID: evil, Label: evil, URL: "javascript:alert(1)", Kind: evil, SignupURL: "javascript:alert(2)"}}})
		},
		"logout": func(w http.ResponseWriter) {
			r.Logout(w, LogoutPage{Action: "javascript:alert(1)", CSRFToken: evil, Audiences: []string{evil}, ReturnURL: `"><script>`})
		},
		"static_login": func(w http.ResponseWriter) {
			r.StaticLogin(w, StaticLoginPage{Provider: evil, Action: evil, State: evil,
				Users: []StaticUser{{ID: evil, Name: evil, Email: evil, Groups: []string{evil}}}})
		},
	}
	for name, f := range pages {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			f(w)
			body := w.Body.String()
			if w.Code == 500 && body == fallbackHTML {
				t.Fatal("rendering failed")
			}
			if strings.Contains(strings.ToLower(body), "<script") {
				t.Errorf("unescaped <script> in page:\n%s", body)
			}
			if strings.Contains(body, "javascript:") {
				t.Errorf("javascript: URL survived:\n%s", body)
			}
			if !strings.Contains(body, "&lt;script&gt;") {
				t.Errorf("escaped text missing:\n%s", body)
			}
		})
	}
}

func TestNoExternalAssets(t *testing.T) {
	brands := []Brand{testBrand, {}, {LogoURL: "https://cdn.example/logo.png"}, {LogoURL: "/static/logo.svg"}}
	for _, b := range brands {
		r := newTest(t, b, "")
		for _, pc := range samplePages {
			body := render(r, pc).Body.String()
			for _, s := range []string{"http://", "https://", "//cdn", "@import", "url("} {
				if strings.Contains(body, s) {
					t.Errorf("brand %+v, page %s: contains %q", b, pc.name, s)
				}
			}
		}
	}
}

func TestLogo(t *testing.T) {
	cases := map[string]bool{
		testLogo:                                   true,
		"/static/logo.svg":                         true,
		"/logo.png?v=3":                            true,
		"data:image/png;base64,iVBORw0KGgo=":       true,
		"https://cdn.example/logo.png":             false,
		"http://cdn.example/logo.png":              false,
		"//cdn.example/logo.png":                   false,
		`/\cdn.example/logo.png`:                   false,
		"logo.png":                                 false,
		"/":                                        false,
		"javascript:alert(1)":                      false,
		"data:text/html;base64,PHNjcmlwdD4=":       false,
		"data:image/svg+xml,<svg onload=alert(1)>": false,
		"data:image/png;base64,!!!":                false,
		"data:image/png;base64,":                   false,
		"/a b.png":                                 false,
		"/a\".png":                                 false,
	}
	for u, ok := range cases {
		if got := validLogo(u); got != ok {
			t.Errorf("validLogo(%q) = %v, want %v", u, got, ok)
		}
	}
	if validLogo("data:image/png;base64," + strings.Repeat("A", maxLogoDataURI)) {
		t.Error("oversized data: logo accepted")
	}

	// An external logo is dropped with a warning, and the page has no <img>.
	r := newTest(t, Brand{LogoURL: "https://cdn.example/logo.png"}, "")
	if len(r.Warnings()) != 1 || !strings.Contains(r.Warnings()[0], "logo") {
		t.Errorf("Warnings = %q", r.Warnings())
	}
	w := httptest.NewRecorder()
	r.Error(w, sampleError)
	if strings.Contains(w.Body.String(), "<img") || strings.Contains(w.Body.String(), "cdn.example") {
		t.Error("external logo rendered")
	}
	// An accepted one is rendered as given.
	r = newTest(t, Brand{LogoURL: "/static/logo.svg"}, "")
	w = httptest.NewRecorder()
	r.Error(w, sampleError)
	if !strings.Contains(w.Body.String(), `<img src="/static/logo.svg" alt="">`) {
		t.Error("same-origin logo missing")
	}
	r = newTest(t, testBrand, "")
	w = httptest.NewRecorder()
	r.Error(w, sampleError)
	if !strings.Contains(html.UnescapeString(w.Body.String()), `<img src="`+testLogo+`"`) {
		t.Error("data: logo missing or mangled")
	}
}

func TestBadColorsFallBack(t *testing.T) {
	def := newTest(t, Brand{}, "")
	for _, b := range []Brand{
		{PrimaryColor: "red", BackgroundColor: "#12345g"},
		{PrimaryColor: "#fff;}body{display:none", BackgroundColor: "rgb(0,0,0)"},
		{PrimaryColor: "#abcd", BackgroundColor: "f2f4f7"},
		{PrimaryColor: "#2b59c3 ", BackgroundColor: "#f2f4f7ff"},
	} {
		r := newTest(t, b, "")
		if r.css != def.css {
			t.Errorf("brand %+v: stylesheet differs from the default", b)
		}
		if len(r.Warnings()) != 2 {
			t.Errorf("brand %+v: warnings %q", b, r.Warnings())
		}
	}
	// Short and long forms of the same colour give the same result; case is ignored.
	a, b := newTest(t, Brand{PrimaryColor: "#0A6", BackgroundColor: "#FFF"}, ""), newTest(t, Brand{PrimaryColor: "#00aa66", BackgroundColor: "#ffffff"}, "")
	if a.css != b.css || len(a.Warnings()) != 0 {
		t.Errorf("#rgb not equal to #rrggbb, warnings %q", a.Warnings())
	}
	if !strings.Contains(string(a.css), "--accent:#00aa66") {
		t.Error("valid primary colour not used")
	}
}

func TestContrast(t *testing.T) {
	colors := []string{"#000", "#fff", "#777", "#ff0", "#0ff", "#3b82f6", "#e11d48", "#1a237e", "#f2f4f7", "#0e1115", "#808080", "#22c55e"}
	for _, pc := range colors {
		for _, bc := range colors {
			p, b := mustHex(pc), mustHex(bc)
			for _, dark := range []bool{false, true} {
				bg := b
				if dark {
					bg = darkPageBg
				}
				pal := makePalette(p, bg, dark)
				check := func(what string, fg, bg rgb) {
					if c := contrast(fg, bg); c < 4.5 {
						t.Errorf("primary %s bg %s dark=%v: %s contrast %.2f < 4.5", pc, bc, dark, what, c)
					}
				}
				check("link/surface", pal.link, pal.surface)
				check("text/surface", pal.text, pal.surface)
				check("muted/surface", pal.muted, pal.surface)
				check("on-accent/accent", pal.onAccent, pal.accent)
				check("on-bg/bg", pal.onBg, pal.bg)
				check("on-bg-muted/bg", pal.onBgMuted, pal.bg)
			}
		}
	}
}

func TestTitle(t *testing.T) {
	r := newTest(t, Brand{Title: "  Acme \n  Corp  "}, "")
	if r.brand.Title != "Acme Corp" {
		t.Errorf("title %q", r.brand.Title)
	}
	r = newTest(t, Brand{Title: strings.Repeat("é", 100)}, "")
	if n := len([]rune(r.brand.Title)); n != maxTitleRunes || len(r.Warnings()) != 1 {
		t.Errorf("long title: %d runes, warnings %q", n, r.Warnings())
	}
	w := httptest.NewRecorder()
	newTest(t, Brand{}, "").Chooser(w, ChooserPage{})
	if !strings.Contains(w.Body.String(), "<title>Sign in · Gatehouse</title>") {
		t.Error("default title/heading missing")
	}
}

func TestPageSize(t *testing.T) {
	r := newTest(t, testBrand, "")
	for _, pc := range samplePages {
		if n := render(r, pc).Body.Len(); n > 8<<10 {
			t.Errorf("%s is %d bytes, budget 8 KiB", pc.name, n)
		}
	}
}

func TestFormFields(t *testing.T) {
	r := newTest(t, testBrand, "")
	w := httptest.NewRecorder()
	r.Logout(w, sampleLogout)
	body := w.Body.String()
	for _, s := range []string{
		`<form method="post" action="/.gatehouse/logout">`,
		`name="` + FieldCSRFToken + `" value="c3JmLXRva2VuLWZvci10ZXN0cw"`,
		`name="` + FieldAudience + `" value="workforce"`,
		`name="` + FieldAudience + `" value="customer"`,
		`name="` + FieldReturnTo + `" value="/payroll/"`,
		`<button class="btn" type="submit">Sign out</button>`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("logout page lacks %s", s)
		}
	}
	w = httptest.NewRecorder()
	r.StaticLogin(w, sampleStatic)
	body = w.Body.String()
	for _, s := range []string{
		`<form method="post" action="/.gatehouse/static/demo-users">`,
		`name="` + FieldState + `" value="st_9f8e7d6c5b4a"`,
		`type="submit" name="` + FieldUser + `" value="alice"`,
		"DEMO / TEST ONLY — not for production",
		"<title>[DEMO] ",
	} {
		if !strings.Contains(body, s) {
			t.Errorf("static page lacks %s", s)
		}
	}
	for _, pc := range samplePages[:3] {
		if strings.Contains(render(r, pc).Body.String(), "DEMO") {
			t.Errorf("%s shows the demo banner", pc.name)
		}
	}
}

func TestFormOrigins(t *testing.T) {
	r := newTest(t, Brand{}, "")
	w := httptest.NewRecorder()
	r.StaticLogin(w, StaticLoginPage{Action: "https://Auth.Example.com:8443/static/x?y=1"})
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://auth.example.com:8443;") {
		t.Errorf("CSP %q", csp)
	}
	w = httptest.NewRecorder()
	r.Logout(w, LogoutPage{Action: "/logout", FormOrigins: []string{"https://idp.example.com/end", "https://idp.example.com", "javascript:x", "https://a b", "ftp://x.example", "https://x.example;script-src *"}})
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://idp.example.com;") {
		t.Errorf("CSP %q", csp)
	}
	w = httptest.NewRecorder()
	r.Logout(w, sampleLogout)
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
		t.Errorf("CSP %q", csp)
	}
}

func TestTemplateFailureWritesFallback(t *testing.T) {
	r := newTest(t, testBrand, "")
	broken := template.Must(template.New("error.html").Parse(`<!doctype html><main class="card">partial {{index .Title 99}}`))
	r.tmpl[pageError] = broken
	w := httptest.NewRecorder()
	w.Header().Set("ETag", `"stale"`)
	r.Error(w, sampleError)
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status %d", w.Code)
	}
	if w.Body.String() != fallbackHTML {
		t.Errorf("body %q", w.Body.String())
	}
	checkSecurityHeaders(t, w.Header(), "")
	if w.Header().Get("ETag") != "" {
		t.Error("stale ETag kept")
	}
	if strings.Contains(w.Body.String(), "index") || strings.Contains(w.Body.String(), "Access denied") {
		t.Error("fallback leaks the error or page data")
	}
}

func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOverrideReplacesOnePage(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "error.html", `{{template "top" .}}<h1>Custom: {{.Title}}</h1><p>{{.Message}}</p>{{template "bottom" .}}`)
	writeFile(t, dir, "README.txt", "not a template")
	r := newTest(t, testBrand, dir)
	def := newTest(t, testBrand, "")

	w := render(r, samplePages[0])
	if !strings.Contains(w.Body.String(), "<h1>Custom: Access denied</h1>") {
		t.Errorf("override not used:\n%s", w.Body.String())
	}
	if !strings.Contains(w.Body.String(), "Acme Corp") {
		t.Error("override lost the embedded layout")
	}
	checkSecurityHeaders(t, w.Header(), testNonce)
	for _, pc := range samplePages[1:] {
		if render(r, pc).Body.String() != render(def, pc).Body.String() {
			t.Errorf("%s changed although only error.html was overridden", pc.name)
		}
	}
}

func TestOverrideStyle(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "style.css", "body { color : var(--text) }\n/* note */ .x{ margin:0 }")
	r := newTest(t, testBrand, dir)
	if !strings.HasSuffix(string(r.css), "body{color :var(--text)}.x{margin:0}") {
		t.Errorf("css %q", r.css)
	}
	writeFile(t, dir, "style.css", "body{}</style><script>")
	if _, err := New(testBrand, dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "style.css")) {
		t.Errorf("err = %v", err)
	}
}

func TestBrokenOverride(t *testing.T) {
	for name, src := range map[string]string{
		"chooser.html":      `{{template "top" .}}{{range .Choices}}`,            // parse error
		"logout.html":       `{{template "top" .}}{{.NoSuchField}}`,              // fails the test render
		"layout.html":       `{{define "top"}}<a href="{{.Brand.Title}}>{{end}}`, // unterminated attribute
		"static_login.html": `{{template "nope" .}}`,                             // missing template
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, name, src)
			_, err := New(testBrand, dir)
			if err == nil {
				t.Fatal("New accepted a broken template")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, name)) {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
	if _, err := New(testBrand, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing template directory accepted")
	}
}

func TestConcurrent(t *testing.T) {
	r, err := New(testBrand, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				for _, pc := range samplePages {
					if w := render(r, pc); w.Code >= 500 && pc.name != "error" {
						t.Errorf("%s: %d", pc.name, w.Code)
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestMinifyCSS(t *testing.T) {
	got := minifyCSS("a , b > c {\n  color : red ;\n  margin: 0 auto; }\n@media (min-width: 40rem) { .x :focus { x: y } }")
	want := "a,b>c{color :red;margin:0 auto;}@media (min-width:40rem){.x :focus{x:y}}"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// discardWriter is a ResponseWriter that keeps one header map and drops the
// body, so the benchmark measures the renderer.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func BenchmarkError(b *testing.B) {
	r, err := New(testBrand, "")
	if err != nil {
		b.Fatal(err)
	}
	w := &discardWriter{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		r.Error(w, sampleError)
	}
}
