package pages

import (
	"html/template"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// view is what every page template receives. It is one flat struct for all
// pages (fields a page does not use stay zero) because html/template looks
// fields up by name on every execution, and promoted fields of embedded
// structs take reflect's slow path.
type view struct {
	// Every page.
	Nonce     string
	CSS       template.CSS
	Brand     brandView
	PageTitle string
	RequestID string
	Demo      bool

	// error.html
	Status               int
	StatusText, Title    string
	Message              string // also chooser.html
	RetryURL, SignOutURL string
	Audience, Heading    string // chooser.html
	Choices, Signups     []choiceView
	Action               string // logout.html, static_login.html
	CSRFToken, ReturnURL string // logout.html
	Audiences            []audienceView
	Provider, State      string // static_login.html
	Users                []StaticUser
	LinkURL, LinkLabel   string // notice.html
}

func (r *Renderer) view(nonce, pageTitle, requestID string) *view {
	return &view{Nonce: nonce, CSS: r.css, Brand: r.brand, PageTitle: pageTitle, RequestID: requestID}
}

// ErrorPage describes an error shown to a person. All text is escaped; none
// of it may carry internals (Go error strings, stack traces, tokens).
type ErrorPage struct {
	// Status is the HTTP status to send. Values outside 400–599 are sent
	// as 500, so an error page is never served with a success status.
	Status int
	// Title is a short heading such as "Access denied". Empty means a
	// plain heading for the status ("Access denied" for 403, "Service
	// unavailable" for 502–504, else the standard status text).
	Title string
	// Message is one or two friendly sentences for a person. Empty means a
	// generic sentence chosen by status.
	Message string
	// RequestID is shown so support can find the log line; optional.
	RequestID string
	// RetryURL, if set, becomes a "Try again" link. The caller validates
	// it; unsafe schemes such as javascript: are neutralised regardless.
	RetryURL string
	// SignOutURL, if set, becomes a "Sign out" link (typically to the
	// sign-out confirmation page).
	SignOutURL string
}

// statusTitle is a plain heading for a status when the caller gave none.
func statusTitle(status int, text string) string {
	switch status {
	case http.StatusBadRequest:
		return "Bad request"
	case http.StatusUnauthorized:
		return "Sign-in required"
	case http.StatusForbidden:
		return "Access denied"
	case http.StatusNotFound:
		return "Page not found"
	case http.StatusTooManyRequests:
		return "Too many requests"
	case http.StatusInternalServerError:
		return "Something went wrong"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "Service unavailable"
	}
	return text
}

// defaultMessage is a plain sentence for a status when the caller gave none.
func defaultMessage(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "The request could not be understood. Please go back and try again."
	case http.StatusUnauthorized:
		return "You need to sign in to continue."
	case http.StatusForbidden:
		return "You don't have permission to open this page. If you think you should, contact your administrator."
	case http.StatusNotFound:
		return "The page you asked for could not be found."
	case http.StatusTooManyRequests:
		return "Too many requests. Please wait a moment and try again."
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "The service is temporarily unavailable. Please try again in a moment."
	}
	if status < 500 {
		return "The request could not be completed."
	}
	return "Something went wrong on our side. Please try again later."
}

// Error writes the error page with the security headers and p.Status
// (coerced into 400–599, default 500). It never writes half a page: on a
// template failure a minimal static 500 page is sent instead.
func (r *Renderer) Error(w http.ResponseWriter, p ErrorPage) {
	status := p.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	title := strings.TrimSpace(p.Title)
	if title == "" {
		title = statusTitle(status, text)
	}
	msg := strings.TrimSpace(p.Message)
	if msg == "" {
		msg = defaultMessage(status)
	}
	nonce := r.nonce()
	v := r.view(nonce, title, p.RequestID)
	v.Status, v.StatusText, v.Title, v.Message = status, text, title, msg
	v.RetryURL, v.SignOutURL = p.RetryURL, p.SignOutURL
	r.render(w, status, pageError, v, nonce, nil)
}

// Choice is one way to sign in offered by the chooser.
type Choice struct {
	// ID identifies the provider to the caller; templates may use it but
	// the embedded one does not show it.
	ID string
	// Label is the button text, e.g. "Acme SSO" or "Continue with GitHub".
	Label string
	// URL starts sign-in with this provider (a same-origin path normally).
	URL string
	// Kind is the provider type ("saml", "oidc", "google", "github",
	// "static", …). It only picks a small text badge and a CSS class.
	Kind string
	// SignupURL, when set, opens the provider's own sign-up screen; the
	// page lists it under "New here?".
	SignupURL string
}

// ChooserPage is the sign-in chooser shown when an audience offers several
// providers.
type ChooserPage struct {
	// Audience is "workforce" or "customer"; it only sets a CSS class.
	Audience string
	// Heading is the page heading. Empty means "Sign in".
	Heading string
	// Choices are the providers in display order. When empty, the page
	// says no sign-in method is available.
	Choices []Choice
	// Message is an optional notice above the choices, e.g. "Please sign
	// in again to continue."
	Message string
	// RequestID is shown in small print when set.
	RequestID string
}

type choiceView struct {
	ID, Label, URL, Kind, Badge, SignupURL string
}

// kindBadges are the badge texts of the provider kinds Gatehouse knows.
var kindBadges = map[string]string{
	"saml":      "SAML",
	"oidc":      "OIDC",
	"oauth2":    "OAuth",
	"google":    "Google",
	"github":    "GitHub",
	"microsoft": "Microsoft",
	"static":    "Test",
}

// cssToken reduces s to lowercase [a-z0-9-], at most 24 bytes, for use in
// a class name; "" when nothing is left.
func cssToken(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if b.Len() >= 24 {
			break
		}
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' {
			b.WriteRune(c)
		} else if c == '_' || c == ' ' {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// Chooser writes the sign-in chooser with status 200 and the security
// headers. Choice labels and messages are escaped; choice URLs with unsafe
// schemes are neutralised.
func (r *Renderer) Chooser(w http.ResponseWriter, p ChooserPage) {
	heading := strings.TrimSpace(p.Heading)
	if heading == "" {
		heading = "Sign in"
	}
	nonce := r.nonce()
	v := r.view(nonce, heading, p.RequestID)
	v.Audience, v.Heading, v.Message = cssToken(p.Audience), heading, strings.TrimSpace(p.Message)
	v.Choices = make([]choiceView, 0, len(p.Choices))
	for _, c := range p.Choices {
		kind := cssToken(c.Kind)
		badge, ok := kindBadges[kind]
		if !ok && kind != "" {
			badge = strings.ToUpper(kind[:1]) + kind[1:]
		}
		label := strings.TrimSpace(c.Label)
		if label == "" {
			label = c.ID
		}
		v.Choices = append(v.Choices, choiceView{ID: c.ID, Label: label, URL: c.URL, Kind: kind, Badge: badge, SignupURL: c.SignupURL})
		if c.SignupURL != "" {
			v.Signups = append(v.Signups, choiceView{ID: c.ID, Label: label, URL: c.SignupURL, Kind: kind})
		}
	}
	r.render(w, http.StatusOK, pageChooser, v, nonce, nil)
}

// LogoutPage is the sign-out confirmation. Sign-out happens only when the
// person submits the form, so a link or image cannot sign anyone out.
type LogoutPage struct {
	// Action is the URL the form POSTs to. If it is absolute, its origin
	// is added to the CSP form-action.
	Action string
	// CSRFToken is posted back as FieldCSRFToken.
	CSRFToken string
	// Audiences lists the sessions that will end ("workforce",
	// "customer"); they are shown and posted back as FieldAudience.
	Audiences []string
	// ReturnURL, if set, is posted back as FieldReturnTo and is the target
	// of the "Cancel" link.
	ReturnURL string
	// FormOrigins lists further origins ("https://idp.example.com") that
	// the POST may be redirected through, such as an IdP's end-session
	// endpoint: Chromium applies CSP form-action to every redirect after
	// a form submission. Entries that are not http(s) origins are ignored.
	FormOrigins []string
}

type audienceView struct{ Value, Label string }

// upperFirst capitalises the first letter for display ("workforce" → "Workforce").
func upperFirst(s string) string {
	c, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(c)) + s[n:]
}

// Logout writes the sign-out confirmation form with status 200 and the
// security headers. The CSP allows the form to post to 'self', to the
// origin of an absolute Action, and to p.FormOrigins.
func (r *Renderer) Logout(w http.ResponseWriter, p LogoutPage) {
	nonce := r.nonce()
	v := r.view(nonce, "Sign out", "")
	v.Action, v.CSRFToken, v.ReturnURL = p.Action, p.CSRFToken, p.ReturnURL
	for _, a := range p.Audiences {
		if a = strings.TrimSpace(a); a != "" {
			v.Audiences = append(v.Audiences, audienceView{Value: a, Label: upperFirst(a)})
		}
	}
	r.render(w, http.StatusOK, pageLogout, v, nonce, formOrigins(append([]string{p.Action}, p.FormOrigins...)...))
}

// StaticUser is one selectable identity of the static test provider.
type StaticUser struct {
	// ID is posted back as FieldUser when this user is picked.
	ID string
	// Name is the display name; empty shows the ID.
	Name string
	// Email is shown under the name; optional.
	Email string
	// Groups are shown as small tags; optional.
	Groups []string
}

// StaticLoginPage is the user picker of the static test provider. It exists
// for demos and tests only and always carries a warning banner.
type StaticLoginPage struct {
	// Provider is the provider name from the policy, shown on the page.
	Provider string
	// Action is the URL the picker POSTs to. If it is absolute, its origin
	// is added to the CSP form-action.
	Action string
	// State is posted back as FieldState.
	State string
	// Users are the selectable identities, in display order.
	Users []StaticUser
	// FormOrigins lists further origins the POST may be redirected
	// through (see LogoutPage.FormOrigins).
	FormOrigins []string
}

// StaticLogin writes the demo-only user picker with status 200 and the
// security headers. The page always shows a "DEMO / TEST ONLY — not for
// production" banner, and its window title starts with "[DEMO]". The CSP
// allows the form to post to 'self', to the origin of an absolute Action,
// and to p.FormOrigins.
func (r *Renderer) StaticLogin(w http.ResponseWriter, p StaticLoginPage) {
	nonce := r.nonce()
	v := r.view(nonce, "Choose a test user", "")
	v.Demo, v.Provider, v.Action, v.State = true, p.Provider, p.Action, p.State
	v.Users = make([]StaticUser, 0, len(p.Users))
	for _, u := range p.Users {
		if strings.TrimSpace(u.Name) == "" {
			u.Name = u.ID
		}
		v.Users = append(v.Users, u)
	}
	r.render(w, http.StatusOK, pageStatic, v, nonce, formOrigins(append([]string{p.Action}, p.FormOrigins...)...))
}

// NoticePage is an informational page with a success status, such as
// "You are signed out". All text is escaped.
type NoticePage struct {
	// Title is the heading, e.g. "Signed out".
	Title string
	// Message is one or two sentences for a person.
	Message string
	// LinkURL and LinkLabel, if both set, add one button (the caller
	// validates the URL; unsafe schemes are neutralised regardless).
	LinkURL, LinkLabel string
	// RequestID is shown in small print; optional.
	RequestID string
}

// Notice writes an informational page with status 200 and the usual
// security headers.
func (r *Renderer) Notice(w http.ResponseWriter, p NoticePage) {
	nonce := r.nonce()
	title := strings.TrimSpace(p.Title)
	v := r.view(nonce, title, p.RequestID)
	v.Title, v.Message = title, strings.TrimSpace(p.Message)
	if p.LinkURL != "" && p.LinkLabel != "" {
		v.LinkURL, v.LinkLabel = p.LinkURL, p.LinkLabel
	}
	r.render(w, http.StatusOK, pageNotice, v, nonce, nil)
}

// sample returns data for page id with every optional field set, used by
// New to test-render templates at load.
func (r *Renderer) sample(id pageID) any {
	v := r.view("sample", "Sample", "req-1")
	switch id {
	case pageError:
		v.Status, v.StatusText, v.Title, v.Message, v.RetryURL, v.SignOutURL = 403, "Forbidden", "T", "M", "/retry", "/signout"
	case pageChooser:
		v.Audience, v.Heading, v.Message = "workforce", "H", "M"
		v.Choices = []choiceView{{ID: "a", Label: "A", URL: "/a", Kind: "oidc", Badge: "OIDC"}, {ID: "b", Label: "B", URL: "/b"}}
	case pageNotice:
		v.Title, v.Message, v.LinkURL, v.LinkLabel = "T", "M", "/next", "Continue"
	case pageLogout:
		v.Action, v.CSRFToken, v.ReturnURL = "/logout", "t", "/"
		v.Audiences = []audienceView{{Value: "workforce", Label: "Workforce"}}
	default:
		v.Demo, v.Provider, v.Action, v.State = true, "p", "/static", "s"
		v.Users = []StaticUser{{ID: "u", Name: "U", Email: "u@example.test", Groups: []string{"g"}}, {ID: "v", Name: "V"}}
	}
	return v
}
