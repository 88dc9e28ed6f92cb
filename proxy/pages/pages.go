// Package pages renders Gatehouse's own HTML pages: the error page, the
// sign-in chooser, the sign-out confirmation, the demo-only user picker
// of the static test provider, and the customers' privacy self-service
// pages (account, consent, account deletion; see privacy.go).
//
// Every page is a single self-contained document: one small inline
// stylesheet allowed by a per-response CSP nonce, no JavaScript and no
// external assets (no fonts, no CDN, no remote images). Pages work from
// 320px wide to desktop, honour prefers-color-scheme, and are built from
// semantic, keyboard-friendly HTML.
//
// # Branding
//
// A Brand from the policy sets the title, an optional logo (a base64
// data:image URI or a same-origin path such as "/assets/logo.svg"), the
// accent colour and the page background. Colours must be #rgb or #rrggbb;
// anything invalid falls back to the default and is reported by
// Renderer.Warnings. Link, focus and button text colours are derived from
// the brand so that they keep WCAG AA contrast in light and dark mode.
//
// # Template overrides
//
// New may be given a directory. Any of these files found there replaces the
// embedded one of the same name; the others stay embedded:
//
//	layout.html         defines the "top" and "bottom" partials every page uses
//	error.html          Renderer.Error
//	chooser.html        Renderer.Chooser
//	logout.html         Renderer.Logout
//	static_login.html   Renderer.StaticLogin
//	notice.html         Renderer.Notice
//	me.html             Renderer.Me
//	consent.html        Renderer.Consent
//	delete_account.html Renderer.DeleteAccount
//	deleted.html        Renderer.Deleted
//	style.css           the stylesheet (the brand's colour variables are prepended)
//	privacy.css         extra rules appended to style.css on the privacy pages only
//
// Templates are html/template files, parsed and test-rendered once in New;
// a file that fails either makes New fail with an error naming it. Each page
// template is parsed together with layout.html and executed by its file
// name. Every page receives these fields:
//
//	.Nonce      CSP nonce; put it on the <style> element: <style nonce="{{.Nonce}}">
//	.CSS        the stylesheet, brand variables included (and privacy.css on the privacy pages)
//	.Brand      .Brand.Title (never empty), .Brand.Logo (empty when none)
//	.PageTitle  text for <title>
//	.RequestID  may be empty
//	.Demo       true only on the static picker
//
// and in addition:
//
//	error.html         .Status .StatusText .Title .Message .RetryURL .SignOutURL
//	chooser.html       .Audience (CSS-safe) .Heading .Message .Choices
//	                   (each .ID .Label .URL .Kind (CSS-safe) .Badge .SignupURL)
//	                   .Signups (the choices with a sign-up screen: .ID .Label .URL .Kind)
//	logout.html        .Action .CSRFToken .ReturnURL .Audiences (each .Value .Label)
//	static_login.html  .Provider .Action .State .Users (each .ID .Name .Email .Groups)
//	notice.html        .Title .Message .LinkURL .LinkLabel
//
// The privacy pages receive, besides the common fields, .Heading .Message
// and (each purpose: .N .Title .Description .Basis .Version .Value
// .Required .Granted .State .Date .Decision .Button .Warn):
//
//	me.html              .Name .Email .Provider .Action (consent forms)
//	                     .CSRFToken .Purposes .Sessions (each .Device .Created
//	                     .CreatedISO .LastSeen .SeenISO .Current) .ExportURL
//	                     .DeleteURL .SignOutURL
//	consent.html         .Service .Action .CSRFToken .ReturnURL .AccountURL
//	                     .Purposes .Required .Optional
//	delete_account.html  .Email .ConfirmWord .Action .CSRFToken .Wrong
//	                     .NeedsReauth .ReauthURL .CancelURL .Deletes .Keeps
//	deleted.html         .ReceiptID .HomeURL
//
// Override templates must not load anything from another origin: the
// Content-Security-Policy sent with every page blocks it.
package pages

import (
	"bytes"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Brand is the look of the pages as configured in the policy. Empty or
// invalid fields fall back to Gatehouse defaults; see New.
type Brand struct {
	// Title is the product or company name shown in the header and the
	// window title. Default "Gatehouse".
	Title string
	// LogoURL is a base64 data:image URI (png, gif, jpeg, webp, svg+xml; at
	// most 32 KiB) or a same-origin path starting with "/". Anything else,
	// notably an http(s) URL on another host, is dropped.
	LogoURL string
	// PrimaryColor is the accent for buttons and links, #rgb or #rrggbb.
	PrimaryColor string
	// BackgroundColor is the page background in light mode, #rgb or #rrggbb.
	// In dark mode it is kept only if it is itself dark.
	BackgroundColor string
}

// Form field names used by the pages that post forms. Handlers read the
// submitted values under these names.
const (
	// FieldCSRFToken carries LogoutPage.CSRFToken.
	FieldCSRFToken = "csrf_token"
	// FieldReturnTo carries LogoutPage.ReturnURL when it is set.
	FieldReturnTo = "return_to"
	// FieldAudience is repeated once per LogoutPage.Audiences entry.
	FieldAudience = "audience"
	// FieldState carries StaticLoginPage.State.
	FieldState = "state"
	// FieldUser carries the StaticUser.ID of the user that was picked.
	FieldUser = "user"
)

// Names of the shared template files; the page files are in pageFiles.
const (
	fileLayout       = "layout.html"
	fileStyle        = "style.css"
	filePrivacyStyle = "privacy.css"
)

type pageID int

const (
	pageError pageID = iota
	pageChooser
	pageLogout
	pageStatic
	pageNotice
	pageMe
	pageConsent
	pageDelete
	pageDeleted
	numPages
)

var pageFiles = [numPages]string{"error.html", "chooser.html", "logout.html", "static_login.html", "notice.html",
	"me.html", "consent.html", "delete_account.html", "deleted.html"}

//go:embed templates
var embedded embed.FS

// Renderer renders the pages with one brand and one template set. It is
// built once by New (templates parsed, brand validated) and is safe for
// concurrent use by any number of goroutines.
type Renderer struct {
	tmpl  [numPages]*template.Template
	brand brandView
	css   template.CSS
	// privacyCSS is css plus privacy.css, for the privacy pages only.
	privacyCSS template.CSS
	warnings   []string
	// nonce returns a fresh CSP nonce (base64 or base32 characters only).
	// Tests replace it to get stable output.
	nonce func() string
}

// New validates brand and parses the page templates. With templateDir ""
// only the embedded templates are used; otherwise each recognised file in
// templateDir (see the package documentation) replaces its embedded
// counterpart. New fails if templateDir is not a readable directory, or if
// a template or style.css cannot be read, parsed, or test-rendered; the
// error names the file. Invalid brand values do not fail New: they fall
// back to defaults and are listed by Warnings.
func New(brand Brand, templateDir string) (*Renderer, error) {
	bv, vars, warn := validateBrand(brand)
	r := &Renderer{brand: bv, warnings: warn, nonce: rand.Text}

	if templateDir != "" {
		st, err := os.Stat(templateDir)
		if err != nil {
			return nil, fmt.Errorf("pages: template directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("pages: template directory %s is not a directory", templateDir)
		}
	}
	// load returns a file's text and a name for it in errors.
	load := func(name string) (string, string, error) {
		if templateDir != "" {
			p := filepath.Join(templateDir, name)
			b, err := os.ReadFile(p)
			if err == nil {
				return string(b), p, nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", p, fmt.Errorf("pages: read %s: %w", p, err)
			}
		}
		b, err := embedded.ReadFile("templates/" + name)
		return string(b), "embedded " + name, err
	}

	style, stylePath, err := load(fileStyle)
	if err != nil {
		return nil, err
	}
	if strings.Contains(strings.ToLower(style), "</style") {
		return nil, fmt.Errorf("pages: %s: stylesheet must not contain \"</style\"", stylePath)
	}
	r.css = template.CSS(minifyCSS(vars + style)) // our own variables plus a trusted operator file
	privStyle, privPath, err := load(filePrivacyStyle)
	if err != nil {
		return nil, err
	}
	if strings.Contains(strings.ToLower(privStyle), "</style") {
		return nil, fmt.Errorf("pages: %s: stylesheet must not contain \"</style\"", privPath)
	}
	r.privacyCSS = template.CSS(minifyCSS(vars + style + "\n" + privStyle)) // trusted files, as above

	layout, layoutPath, err := load(fileLayout)
	if err != nil {
		return nil, err
	}
	for id := pageID(0); id < numPages; id++ {
		src, path, err := load(pageFiles[id])
		if err != nil {
			return nil, err
		}
		t, err := template.New(pageFiles[id]).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("pages: parse %s: %w", path, err)
		}
		if _, err := t.New(fileLayout).Parse(layout); err != nil {
			return nil, fmt.Errorf("pages: parse %s: %w", layoutPath, err)
		}
		// Execute once with every optional field set so escaping problems
		// and references to unknown fields surface now, not per request.
		if err := t.Execute(&bytes.Buffer{}, r.sampleFor(id)); err != nil {
			return nil, fmt.Errorf("pages: render %s (with %s): %w", path, layoutPath, err)
		}
		r.tmpl[id] = t
	}
	return r, nil
}

// Warnings lists, in plain words, the brand values New ignored (an invalid
// colour, a refused logo URL, a shortened title), so the caller can log
// them at load. It is empty when the brand was used as given.
func (r *Renderer) Warnings() []string {
	return append([]string(nil), r.warnings...)
}

// bufPool holds render buffers; a page is a few KiB.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf keeps one unusually large render from pinning memory.
const maxPooledBuf = 64 << 10

// fallbackHTML is sent when a template fails at request time. It needs no
// template, no style and no data, so it cannot fail in turn.
const fallbackHTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Something went wrong</title></head>
<body><main><h1>Something went wrong</h1><p>This page could not be shown. Please try again in a moment.</p></main></body>
</html>
`

const fallbackCSP = "default-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// render executes page id into a pooled buffer and only then writes the
// headers, status and body; on a template error it writes the static 500
// page instead, so a client never sees half a page.
func (r *Renderer) render(w http.ResponseWriter, status int, id pageID, data any, nonce string, formOrigins []string) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	h := w.Header()
	if err := r.tmpl[id].Execute(buf, data); err != nil {
		setHeaders(h, fallbackCSP, len(fallbackHTML))
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, fallbackHTML)
		return
	}
	setHeaders(h, buildCSP(nonce, formOrigins), buf.Len())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func setHeaders(h http.Header, csp string, n int) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(n))
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	// Stale validators or encodings from earlier handler code would
	// describe some other body.
	h.Del("Content-Encoding")
	h.Del("ETag")
	h.Del("Last-Modified")
}

// buildCSP returns the page policy: nothing but the nonce'd inline style,
// same-origin or data: images, and forms that post to this origin or to
// the listed origins.
func buildCSP(nonce string, formOrigins []string) string {
	var b strings.Builder
	b.Grow(200)
	b.WriteString("default-src 'none'; style-src 'nonce-")
	b.WriteString(nonce)
	b.WriteString("'; img-src 'self' data:; form-action 'self'")
	for _, o := range formOrigins {
		b.WriteByte(' ')
		b.WriteString(o)
	}
	b.WriteString("; frame-ancestors 'none'; base-uri 'none'")
	return b.String()
}

// formOrigins returns the distinct origins (scheme://host[:port]) of the
// absolute http(s) URLs among urls; relative URLs need only 'self', and
// anything unparsable or of another scheme is left out (the browser then
// refuses to post there, which is the safe failure).
func formOrigins(urls ...string) []string {
	var out []string
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			continue
		}
		host := strings.ToLower(u.Host)
		ok := true
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		o := u.Scheme + "://" + host
		dup := false
		for _, e := range out {
			dup = dup || e == o
		}
		if !dup {
			out = append(out, o)
		}
	}
	return out
}

// minifyCSS strips comments and needless whitespace from trusted CSS.
func minifyCSS(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '/' && i+1 < len(s) && s[i+1] == '*' {
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				break
			}
			i += end + 3
			space = true
			continue
		}
		if c == ' ' || c == '\n' || c == '\t' || c == '\r' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			prev := b.String()[b.Len()-1]
			if !strings.ContainsRune("{};,:>", rune(prev)) && !strings.ContainsRune("{};,>", rune(c)) {
				b.WriteByte(' ')
			}
		}
		space = false
		b.WriteByte(c)
	}
	return b.String()
}
