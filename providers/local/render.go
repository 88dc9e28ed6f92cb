package local

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strconv"
)

// Views a Renderer must know.
const (
	ViewSignIn      = "signin"      // email + password form
	ViewRegister    = "register"    // sign-up form
	ViewReset       = "reset"       // "send me a reset link" form
	ViewNewPassword = "newpassword" // choose a new password (from a reset link)
	ViewConfirm     = "confirm"     // confirm an email address (from a link)
	ViewNotice      = "notice"      // a message with links ("check your email")
	ViewAutoPost    = "autopost"    // posts Fields to Action at once (the sign-in proof)
	ViewMFA         = "mfa"         // second factor: a TOTP or recovery code
	ViewMFANeeded   = "mfaneeded"   // a second factor is required and the account has none
	ViewSecurity    = "security"    // two-step verification settings
	ViewTOTPSetup   = "totpsetup"   // add an authenticator app: key, QR code, first code
	ViewRecovery    = "recovery"    // new recovery codes, shown once
)

// Page is everything a view shows. Form views post to Action and must
// send CSRF as the "csrf_token" field, and State, Audience and ReturnURL
// (when set) as "state", "aud" and "rd".
type Page struct {
	View     string
	Status   int
	Title    string
	Provider string // the provider's display name
	Error    string // what is wrong with the form, shown as an alert
	Message  string // a confirmation, shown as a status
	Body     string // the text of a notice

	Action    string
	CSRF      string
	State     string
	Audience  string
	ReturnURL string
	Token     string // an emailed link's token, posted back as "token"
	Email     string // prefilled email (never a password)
	Name      string
	MinLength int
	MaxLength int
	// Links: "signin", "register", "reset" when they apply.
	Links map[string]string
	// Fields are the hidden fields of the auto-posted form (ViewAutoPost).
	Fields map[string]string
	// StepUp is posted back as "mfa"="1": the sign-in asks for MFA.
	StepUp bool
	// Claims is posted back as "claims": the profile fields the sign-in
	// asks for (progressive profiling, profile.go).
	Claims string
	// Profile are the fields of ViewProfile.
	Profile []ProfileField
	// MFA is what the second-factor pages show.
	MFA MFAInfo
}

// MFAInfo is the content of the second-factor pages. Their forms post
// Token as "token" (the security pages' session), an "op" and, where
// asked, "code" and Enrol as "enrol".
type MFAInfo struct {
	TOTPOffered  bool // people may add an authenticator app
	TOTPOn       bool // the account has one
	RecoveryLeft int  // unused recovery codes
	// ViewTOTPSetup: the otpauth:// URI, the secret grouped for typing, a
	// QR code of the URI (inline SVG) and the sealed pending secret.
	URI    string
	Secret string
	QR     template.HTML
	Enrol  string
	// ViewRecovery: the codes, shown once.
	Codes []string
	// Continue is where to go on signing in, or "".
	Continue string
	// Passkey is the passkey part of the pages (passkey.go).
	Passkey PasskeyInfo
}

// Renderer writes pages. The gateway may supply one built on its own page
// renderer; the default is DefaultRenderer. The provider has already set
// Cache-Control: no-store, Referrer-Policy: no-referrer, X-Frame-Options
// and X-Content-Type-Options; a Renderer sets Content-Type and its own
// Content-Security-Policy, which must allow the nonce'd script of
// ViewAutoPost (or the person presses its button) and form-action 'self'.
type Renderer interface {
	Render(w http.ResponseWriter, r *http.Request, p Page)
}

//go:embed templates/*.html
var templateFS embed.FS

// DefaultRenderer renders the embedded templates: self-contained pages
// with an inline stylesheet and, on ViewAutoPost only, an inline script,
// both allowed by a per-response CSP nonce; no external assets.
type DefaultRenderer struct {
	views map[string]*template.Template
}

// NewDefaultRenderer parses the embedded templates.
func NewDefaultRenderer() *DefaultRenderer {
	d := &DefaultRenderer{views: map[string]*template.Template{}}
	for _, v := range []string{ViewSignIn, ViewRegister, ViewReset, ViewNewPassword, ViewConfirm, ViewNotice, ViewAutoPost,
		ViewMFA, ViewMFANeeded, ViewSecurity, ViewTOTPSetup, ViewRecovery, ViewPasskeyAdd, ViewPasskeyMFA, ViewProfile} {
		d.views[v] = template.Must(template.New(v+".html").ParseFS(templateFS, "templates/layout.html", "templates/passkey_parts.html", "templates/"+v+".html"))
	}
	return d
}

type renderData struct {
	Page
	Nonce string
}

// Render writes p with its status (200 when zero).
func (d *DefaultRenderer) Render(w http.ResponseWriter, _ *http.Request, p Page) {
	t := d.views[p.View]
	if t == nil {
		http.Error(w, "unknown page", http.StatusInternalServerError)
		return
	}
	nb := make([]byte, 18)
	rand.Read(nb)
	nonce := base64.RawStdEncoding.EncodeToString(nb)
	var b bytes.Buffer
	if err := t.Execute(&b, renderData{Page: p, Nonce: nonce}); err != nil {
		http.Error(w, "cannot render the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	status := p.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
