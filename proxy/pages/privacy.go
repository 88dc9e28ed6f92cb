package pages

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Privacy self-service pages (GDPR/CCPA): the customer's account page, the
// consent interstitial shown before a route, and the account deletion
// confirmation and receipt.
//
// Every URL these pages link or post to must be a same-origin path such as
// "/.gatehouse/me/export". A link URL that is anything else (another host,
// "//host", a javascript: URL, …) is dropped together with its link; a form
// action that is anything else makes the method write a generic 500 error
// page instead, because a form cannot safely post anywhere else.

// Form field names posted by the privacy pages, in addition to
// FieldCSRFToken and FieldReturnTo.
const (
	// FieldPurpose carries a purpose reference made by PurposeValue (id and
	// the version shown). The consent page repeats it once per accepted
	// purpose; an account-page form carries exactly one.
	FieldPurpose = "purpose"
	// FieldShown is repeated on the consent page once per purpose that was
	// displayed (PurposeValue), accepted or not, so the handler knows which
	// versions the customer saw and which optional ones were left unticked.
	FieldShown = "shown"
	// FieldDecision is DecisionGrant or DecisionWithdraw on an account-page
	// consent form.
	FieldDecision = "decision"
	// FieldDecline is "1" when the customer pressed Decline on the consent
	// page; the handler must then ignore any FieldPurpose values.
	FieldDecline = "decline"
	// FieldConfirm carries what the customer typed on the deletion page;
	// the handler accepts ConfirmWord or the account's email address.
	FieldConfirm = "confirm"
)

// Values of FieldDecision.
const (
	DecisionGrant    = "grant"
	DecisionWithdraw = "withdraw"
)

// ConfirmWord is what the deletion page asks the customer to type (the
// email address is accepted too). Handlers should compare it after
// strings.TrimSpace, case-sensitively.
const ConfirmWord = "DELETE"

// Legal bases, spelled as in the policy (and in package privacy).
const (
	basisConsent            = "consent"
	basisContract           = "contract"
	basisLegitimateInterest = "legitimate_interest"
	basisLegalObligation    = "legal_obligation"
)

// PurposeValue is the posted form of a purpose reference: "id:version".
func PurposeValue(id string, version int) string {
	return id + ":" + strconv.Itoa(version)
}

// ParsePurposeValue splits a FieldPurpose or FieldShown value made by
// PurposeValue. It splits at the last colon, so ids containing colons
// survive; ok is false when the id is empty or the version is not a
// non-negative decimal number.
func ParsePurposeValue(s string) (id string, version int, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 || len(s)-i > 10 {
		return "", 0, false
	}
	for _, c := range s[i+1:] {
		if c < '0' || c > '9' {
			return "", 0, false
		}
	}
	v, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return "", 0, false
	}
	return s[:i], v, true
}

// ConsentPurpose is one purpose shown on the consent page or the account
// page. All text is escaped.
type ConsentPurpose struct {
	// ID is the purpose id from the policy; it is posted back (see
	// PurposeValue) and never shown unless Title is empty.
	ID string
	// Title is a short name such as "Marketing emails". Empty shows the ID.
	Title string
	// Description says in a sentence or two what the data is used for.
	Description string
	// LegalBasis is "consent", "contract", "legitimate_interest" or
	// "legal_obligation" (as in the policy); it is shown in plain words.
	// Any other value is shown as given.
	LegalBasis string
	// Version is the current version of the purpose text, shown and posted
	// back so a decision is tied to the text the customer read.
	Version int
	// Required is true for purposes the service needs: on the consent page
	// they have no checkbox and are accepted by "Accept and continue"; on
	// the account page they are marked Required and withdrawing one warns
	// that the services needing it will ask again.
	Required bool

	// The fields below are used by the account page only.

	// Granted says the customer currently agrees (for a legitimate-interest
	// purpose: has not objected).
	Granted bool
	// GrantedVersion is the version the customer agreed to; when it is
	// lower than Version the page offers to accept the new version.
	// Zero means unknown (treated as current).
	GrantedVersion int
	// DecidedAt is when the customer last granted or withdrew; zero hides
	// the date.
	DecidedAt time.Time
	// NeededBy names the services that need this purpose, for the warning
	// shown next to a required purpose. Optional.
	NeededBy []string
}

// SessionInfo is one active session listed on the account page.
type SessionInfo struct {
	// Device is a short hint such as "Firefox on macOS". Empty shows
	// "Unknown device".
	Device string
	// Created is when the session started; LastSeen when it was last used.
	// Zero values are not shown.
	Created, LastSeen time.Time
	// Current marks the session of the browser viewing the page.
	Current bool
}

// MePage is the customer's account page (/.gatehouse/me).
type MePage struct {
	// Name, Email and Provider describe who is signed in. Provider is a
	// display label such as "Google". Empty fields are left out.
	Name, Email, Provider string
	// Message is an optional notice at the top, e.g. "Your choice was
	// saved." after a redirect.
	Message string
	// Purposes are the consent purposes in display order.
	Purposes []ConsentPurpose
	// ConsentAction is the same-origin path every per-purpose form POSTs
	// to, with FieldCSRFToken, FieldPurpose (PurposeValue of the purpose's
	// current Version) and FieldDecision. Required when Purposes lists a
	// purpose that can be changed.
	ConsentAction string
	// CSRFToken is posted back as FieldCSRFToken by every form.
	CSRFToken string
	// Sessions are the customer's active sessions; empty hides the list.
	Sessions []SessionInfo
	// ExportURL is the same-origin GET URL of the data export ("Download my
	// data"); DeleteURL the deletion page ("Delete my account");
	// SignOutURL the sign-out confirmation page. Each empty or unsafe URL
	// hides its link.
	ExportURL, DeleteURL, SignOutURL string
	// Location is the time zone for dates; nil means UTC.
	Location *time.Location
	// RequestID is shown in small print when set.
	RequestID string
}

// ConsentPage is the interstitial shown before a route when the customer
// has not yet agreed to purposes the route needs.
//
// Its one form POSTs to Action with FieldCSRFToken, FieldReturnTo (when
// ReturnURL is set), FieldShown for every purpose, and FieldPurpose for the
// required purposes plus the optional ones that were ticked. "Decline"
// submits the same form with FieldDecline=1. Optional purposes are never
// pre-ticked.
type ConsentPage struct {
	// Service is the name of what the customer is trying to open, e.g.
	// "Acme Shop". Empty means "this service".
	Service string
	// Purposes are the purposes asked for, in display order.
	Purposes []ConsentPurpose
	// Message is an optional notice, e.g. "Our terms changed since you
	// last agreed."
	Message string
	// Action is the same-origin path the form POSTs to.
	Action string
	// CSRFToken is posted back as FieldCSRFToken.
	CSRFToken string
	// ReturnURL is posted back as FieldReturnTo; a same-origin path, else
	// it is left out.
	ReturnURL string
	// AccountURL is the account page where consent can be withdrawn; when
	// set (same-origin) the page links to it.
	AccountURL string
	// RequestID is shown in small print when set.
	RequestID string
}

// DeletePage is the account deletion confirmation (/.gatehouse/me/delete).
// The form POSTs FieldCSRFToken and FieldConfirm to Action; the handler
// checks the confirmation and, when it is wrong, renders the page again
// with Wrong set.
type DeletePage struct {
	// Email is the account's email address: shown, and accepted by the
	// handler instead of ConfirmWord. Optional.
	Email string
	// Deletes lists what will be deleted, one item per line. Nil uses a
	// default list (profile, linked sign-ins, consents, sessions).
	Deletes []string
	// Keeps lists what is kept in anonymized form. Nil uses a default
	// (consent ledger and audit records with the customer replaced by an
	// anonymous identifier).
	Keeps []string
	// Action is the same-origin path the form POSTs to. Not needed when
	// NeedsReauth is set.
	Action string
	// CSRFToken is posted back as FieldCSRFToken.
	CSRFToken string
	// Wrong says the previous attempt's confirmation did not match; the
	// page then shows an error next to the field and is sent with status
	// 422.
	Wrong bool
	// NeedsReauth says the sign-in is not recent enough to delete: the page
	// then shows no form, only a "Sign in again" button to ReauthURL.
	NeedsReauth bool
	// ReauthURL starts a fresh sign-in that returns to this page.
	ReauthURL string
	// CancelURL is where "Cancel" leads, normally the account page.
	CancelURL string
	// FormOrigins lists further origins the POST may be redirected
	// through, such as an IdP's end-session endpoint (see
	// LogoutPage.FormOrigins).
	FormOrigins []string
	// RequestID is shown in small print when set.
	RequestID string
}

// DeletedPage confirms that an account was deleted.
type DeletedPage struct {
	// ReceiptID identifies the deletion (e.g. the audit event id) so the
	// former customer can quote it; the page asks them to keep it.
	ReceiptID string
	// HomeURL, if set (same-origin), adds a button back to the site.
	HomeURL string
	// RequestID is shown in small print when set.
	RequestID string
}

// privacyView is what the privacy page templates receive: the fields every
// page has (see view) plus those of the four privacy pages, flat for the
// same reason as view.
type privacyView struct {
	// Every page.
	Nonce     string
	CSS       template.CSS
	Brand     brandView
	PageTitle string
	RequestID string
	Demo      bool

	Heading, Message      string
	Action, CSRFToken     string
	Purposes              []purposeView
	Name, Email, Provider string // me.html
	Sessions              []sessionView
	ExportURL, DeleteURL  string
	SignOutURL            string
	Service               string // consent.html
	Required, Optional    []purposeView
	ReturnURL, AccountURL string
	ConfirmWord           string // delete_account.html
	Wrong, NeedsReauth    bool
	ReauthURL, CancelURL  string
	Deletes, Keeps        []string
	ReceiptID, HomeURL    string // deleted.html
}

type purposeView struct {
	// N numbers the purpose on its page, for element ids.
	N                  int
	Title, Description string
	Basis              string // plain words
	Version            int
	Value              string // PurposeValue
	Required           bool
	Granted            bool
	State              string // account page: "Granted on 3 Mar 2025"
	Date               string // ISO 8601 of DecidedAt, "" when unknown
	Decision, Button   string // account page: "" means no form
	Warn               string
}

type sessionView struct {
	Device              string
	Created, LastSeen   string
	CreatedISO, SeenISO string
	Current             bool
}

func (r *Renderer) privacyView(nonce, pageTitle, requestID string) *privacyView {
	return &privacyView{Nonce: nonce, CSS: r.privacyCSS, Brand: r.brand, PageTitle: pageTitle, RequestID: requestID}
}

// localURL reports whether u is a same-origin absolute path ("/x", never
// "//host" or "/\host"), without control characters, spaces or quotes.
func localURL(u string) bool {
	if u == "" || u[0] != '/' || len(u) > 1 && (u[1] == '/' || u[1] == '\\') {
		return false
	}
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c == 0x7f || c == '\\' || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' {
			return false
		}
	}
	pu, err := url.Parse(u)
	return err == nil && pu.Scheme == "" && pu.Host == "" && pu.User == nil
}

// link returns u when it is a same-origin path, else "" (no link).
func link(u string) string {
	if localURL(u) {
		return u
	}
	return ""
}

// badAction writes the generic error page for a form action that is not a
// same-origin path: a caller bug that must not turn into a form posting
// the CSRF token somewhere else.
func (r *Renderer) badAction(w http.ResponseWriter, requestID string) {
	r.Error(w, ErrorPage{Status: http.StatusInternalServerError, RequestID: requestID})
}

// basisWords says a legal basis in plain words.
func basisWords(b string) string {
	switch b {
	case basisConsent:
		return "Your consent"
	case basisContract:
		return "Needed to provide the service you signed up for"
	case basisLegitimateInterest:
		return "Our legitimate interest (you can object)"
	case basisLegalObligation:
		return "Required by law"
	}
	return upperFirst(strings.ReplaceAll(strings.TrimSpace(b), "_", " "))
}

// joinNames lists names in plain English: "A", "A and B", "A, B and C".
func joinNames(names []string) string {
	var n []string
	for _, s := range names {
		if s = strings.TrimSpace(s); s != "" {
			n = append(n, s)
		}
	}
	switch len(n) {
	case 0:
		return ""
	case 1:
		return n[0]
	}
	return strings.Join(n[:len(n)-1], ", ") + " and " + n[len(n)-1]
}

// basePurpose fills the fields both pages show.
func basePurpose(i int, p ConsentPurpose) purposeView {
	title := strings.TrimSpace(p.Title)
	if title == "" {
		title = p.ID
	}
	return purposeView{
		N: i, Title: title, Description: strings.TrimSpace(p.Description), Basis: basisWords(p.LegalBasis),
		Version: p.Version, Value: PurposeValue(p.ID, p.Version), Required: p.Required, Granted: p.Granted,
	}
}

const (
	dateLayout     = "2 Jan 2006"
	dateTimeLayout = "2 Jan 2006, 15:04 MST"
)

// accountPurpose adds the account page's state line, button and warning.
func accountPurpose(i int, p ConsentPurpose, loc *time.Location) purposeView {
	v := basePurpose(i, p)
	date := ""
	if !p.DecidedAt.IsZero() {
		t := p.DecidedAt.In(loc)
		date, v.Date = t.Format(dateLayout), t.Format(time.RFC3339)
	}
	on := func(s string) string {
		if date == "" {
			return s
		}
		return s + " on " + date
	}
	switch {
	case p.LegalBasis == basisLegalObligation:
		v.Granted, v.Date = true, ""
		v.State = "Always applies while you have an account. This cannot be withdrawn."
	case p.LegalBasis == basisLegitimateInterest:
		if p.Granted {
			v.State, v.Decision, v.Button = "Active. You have not objected.", DecisionWithdraw, "Object"
		} else {
			v.State, v.Decision, v.Button = on("You objected"), DecisionGrant, "Allow again"
		}
	case p.Granted && p.GrantedVersion > 0 && p.GrantedVersion < p.Version:
		v.Granted = false
		v.State = on("You agreed to version "+strconv.Itoa(p.GrantedVersion)) + ". This version needs your agreement."
		v.Decision, v.Button = DecisionGrant, "Accept version "+strconv.Itoa(p.Version)
	case p.Granted:
		v.State, v.Decision, v.Button = on("Granted"), DecisionWithdraw, "Withdraw"
	case date != "":
		v.State, v.Decision, v.Button = on("Withdrawn"), DecisionGrant, "Grant"
	default:
		v.State, v.Decision, v.Button = "Not granted", DecisionGrant, "Grant"
	}
	if p.Required && v.Decision == DecisionWithdraw {
		if who := joinNames(p.NeededBy); who != "" {
			v.Warn = "Needed by " + who + ". If you withdraw, you will be asked again before you can use it."
			if len(p.NeededBy) > 1 {
				v.Warn = "Needed by " + who + ". If you withdraw, you will be asked again before you can use them."
			}
		} else {
			v.Warn = "Some services need this. If you withdraw, they will ask you again before you can use them."
		}
	}
	return v
}

// Me writes the customer's account page with status 200 and the security
// headers. Every consent form posts only to p.ConsentAction (same origin);
// if a purpose can be changed and p.ConsentAction is not a same-origin
// path, a 500 error page is written instead.
func (r *Renderer) Me(w http.ResponseWriter, p MePage) {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	nonce := r.nonce()
	v := r.privacyView(nonce, "Your account", p.RequestID)
	v.Heading, v.Message = "Your account", strings.TrimSpace(p.Message)
	v.Name, v.Email, v.Provider = strings.TrimSpace(p.Name), strings.TrimSpace(p.Email), strings.TrimSpace(p.Provider)
	v.Action, v.CSRFToken = p.ConsentAction, p.CSRFToken
	v.Purposes = make([]purposeView, 0, len(p.Purposes))
	for i, pu := range p.Purposes {
		pv := accountPurpose(i, pu, loc)
		if pv.Decision != "" && !localURL(p.ConsentAction) {
			r.badAction(w, p.RequestID)
			return
		}
		v.Purposes = append(v.Purposes, pv)
	}
	for _, s := range p.Sessions {
		sv := sessionView{Device: strings.TrimSpace(s.Device), Current: s.Current}
		if sv.Device == "" {
			sv.Device = "Unknown device"
		}
		if !s.Created.IsZero() {
			t := s.Created.In(loc)
			sv.Created, sv.CreatedISO = t.Format(dateTimeLayout), t.Format(time.RFC3339)
		}
		if !s.LastSeen.IsZero() {
			t := s.LastSeen.In(loc)
			sv.LastSeen, sv.SeenISO = t.Format(dateTimeLayout), t.Format(time.RFC3339)
		}
		v.Sessions = append(v.Sessions, sv)
	}
	v.ExportURL, v.DeleteURL, v.SignOutURL = link(p.ExportURL), link(p.DeleteURL), link(p.SignOutURL)
	r.render(w, http.StatusOK, pageMe, v, nonce, nil)
}

// Consent writes the consent interstitial with status 200 and the security
// headers. If p.Action is not a same-origin path a 500 error page is
// written instead.
func (r *Renderer) Consent(w http.ResponseWriter, p ConsentPage) {
	if !localURL(p.Action) {
		r.badAction(w, p.RequestID)
		return
	}
	service := strings.TrimSpace(p.Service)
	nonce := r.nonce()
	title := "Before you continue"
	v := r.privacyView(nonce, title, p.RequestID)
	v.Heading, v.Service, v.Message = title, service, strings.TrimSpace(p.Message)
	v.Action, v.CSRFToken = p.Action, p.CSRFToken
	v.ReturnURL, v.AccountURL = link(p.ReturnURL), link(p.AccountURL)
	for i, pu := range p.Purposes {
		pv := basePurpose(i, pu)
		pv.Granted = false // optional purposes are never pre-ticked
		v.Purposes = append(v.Purposes, pv)
		if pv.Required {
			v.Required = append(v.Required, pv)
		} else {
			v.Optional = append(v.Optional, pv)
		}
	}
	r.render(w, http.StatusOK, pageConsent, v, nonce, nil)
}

// Default lists of the deletion page.
var (
	defaultDeletes = []string{
		"Your profile: name, email address and the other details we hold.",
		"The links between your account and the services you sign in with.",
		"Your consent choices and preferences.",
		"All your sessions: you will be signed out everywhere.",
	}
	defaultKeeps = []string{
		"Records of the consents you gave or withdrew, and audit records of actions on your account. " +
			"We must keep these to show we followed the law, but your name, email address and account id " +
			"are replaced by an anonymous identifier, so they no longer identify you.",
	}
)

// DeleteAccount writes the deletion confirmation with the security headers:
// status 200, or 422 when p.Wrong is set. With p.NeedsReauth it shows only
// the "sign in again" step. If the form is shown and p.Action is not a
// same-origin path, a 500 error page is written instead.
func (r *Renderer) DeleteAccount(w http.ResponseWriter, p DeletePage) {
	if !p.NeedsReauth && !localURL(p.Action) {
		r.badAction(w, p.RequestID)
		return
	}
	nonce := r.nonce()
	title := "Delete your account"
	v := r.privacyView(nonce, title, p.RequestID)
	v.Heading, v.Email, v.ConfirmWord = title, strings.TrimSpace(p.Email), ConfirmWord
	v.NeedsReauth, v.ReauthURL, v.CancelURL = p.NeedsReauth, link(p.ReauthURL), link(p.CancelURL)
	status := http.StatusOK
	var origins []string
	if !p.NeedsReauth {
		v.Action, v.CSRFToken, v.Wrong = p.Action, p.CSRFToken, p.Wrong
		v.Deletes, v.Keeps = nonEmpty(p.Deletes, defaultDeletes), nonEmpty(p.Keeps, defaultKeeps)
		origins = formOrigins(p.FormOrigins...)
		if p.Wrong {
			status = http.StatusUnprocessableEntity
		}
	}
	r.render(w, status, pageDelete, v, nonce, origins)
}

// nonEmpty returns the trimmed non-blank entries of list, or def when list
// is nil.
func nonEmpty(list, def []string) []string {
	if list == nil {
		return def
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Deleted writes the "your account was deleted" confirmation with status
// 200 and the security headers.
func (r *Renderer) Deleted(w http.ResponseWriter, p DeletedPage) {
	nonce := r.nonce()
	title := "Your account was deleted"
	v := r.privacyView(nonce, "Account deleted", p.RequestID)
	v.Heading, v.ReceiptID, v.HomeURL = title, strings.TrimSpace(p.ReceiptID), link(p.HomeURL)
	r.render(w, http.StatusOK, pageDeleted, v, nonce, nil)
}

// sampleFor returns the test-render data of page id (see sample).
func (r *Renderer) sampleFor(id pageID) any {
	v := r.privacyView("sample", "Sample", "req-1")
	pv := purposeView{N: 0, Title: "T", Description: "D", Basis: "B", Version: 1, Value: "t:1", Required: true,
		Granted: true, State: "S", Date: "2025-01-02T00:00:00Z", Decision: DecisionWithdraw, Button: "Withdraw", Warn: "W"}
	opt := pv
	opt.N, opt.Required, opt.Warn = 1, false, ""
	switch id {
	case pageMe:
		v.Heading, v.Message, v.Name, v.Email, v.Provider = "H", "M", "N", "e@example.test", "P"
		v.Action, v.CSRFToken, v.Purposes = "/c", "t", []purposeView{pv, opt}
		v.Sessions = []sessionView{{Device: "D", Created: "C", CreatedISO: "I", LastSeen: "L", SeenISO: "I", Current: true}}
		v.ExportURL, v.DeleteURL, v.SignOutURL = "/e", "/d", "/s"
	case pageConsent:
		v.Heading, v.Service, v.Message, v.Action, v.CSRFToken = "H", "S", "M", "/c", "t"
		v.Purposes, v.Required, v.Optional = []purposeView{pv, opt}, []purposeView{pv}, []purposeView{opt}
		v.ReturnURL, v.AccountURL = "/r", "/me"
	case pageDelete:
		v.Heading, v.Email, v.ConfirmWord, v.Action, v.CSRFToken, v.Wrong = "H", "e@example.test", ConfirmWord, "/d", "t", true
		v.Deletes, v.Keeps, v.ReauthURL, v.CancelURL = []string{"a"}, []string{"b"}, "/login", "/me"
	case pageDeleted:
		v.Heading, v.ReceiptID, v.HomeURL = "H", "R", "/"
	default:
		return r.sample(id)
	}
	return v
}
