package local

// Progressive profiling: the provider declares extra profile fields
// (config profile: [{id: phone, ...}]) and asks for one only when a route
// needs it. The gateway's sign-in for such a route carries the claims in
// the attempt's StepUp; Begin passes them to the pages as "claims", and
// right before the sign-in proof the person is shown a form with only the
// fields their account lacks. The values are saved with the account and
// Complete puts every declared field the account has into the identity's
// Extra claims under the field's id, where routes can forward them
// (forward.claims).

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/store"
)

// ViewProfile asks for missing profile fields before signing in.
const ViewProfile = "profile"

const (
	// purposeProfile is a checked sign-in waiting for profile fields.
	purposeProfile = "profile"
	// profileTTL bounds the time to fill in the profile form.
	profileTTL = 15 * time.Minute
	// DefaultProfileMax is a profile field's default maximum length.
	DefaultProfileMax = 64
	// maxFlowClaims bounds the claims a sign-in flow may carry.
	maxFlowClaims = 16
)

// ProfileField is one field of the profile page (ViewProfile); its input
// is posted as "profile_" + ID.
type ProfileField struct {
	ID, Label, Hint string
	// Type, InputMode and Autocomplete are the input's attributes.
	Type, InputMode, Autocomplete string
	Max                           int
	Value                         string // what the person typed (shown again with Error)
	Error                         string // what is wrong with it
	Focus                         bool   // the field to focus first
}

// profileField is a compiled config.ProfileField.
type profileField struct {
	id, label, kind, hint string
	max                   int
	pattern               *regexp.Regexp
}

// compileProfile builds the provider's profile fields from its settings.
func compileProfile(fields []config.ProfileField) ([]profileField, error) {
	out := make([]profileField, 0, len(fields))
	for i, f := range fields {
		if !config.ValidClaimName(f.ID) {
			return nil, fmt.Errorf("profile[%d].id: invalid id %q", i, f.ID)
		}
		pf := profileField{id: f.ID, label: strings.TrimSpace(f.Label), kind: f.Kind, hint: f.Hint, max: f.Max}
		if pf.kind == "" {
			pf.kind = "text"
		}
		if pf.max <= 0 {
			pf.max = DefaultProfileMax
		}
		if pf.label == "" {
			pf.label = f.ID
		}
		if f.Pattern != "" {
			re, err := config.CompileProfilePattern(f.Pattern)
			if err != nil {
				return nil, fmt.Errorf("profile[%d].pattern: %w", i, err)
			}
			pf.pattern = re
		}
		out = append(out, pf)
	}
	return out, nil
}

// profileField returns the declared field with that id, or nil.
func (p *Provider) profileField(id string) *profileField {
	for i := range p.profile {
		if p.profile[i].id == id {
			return &p.profile[i]
		}
	}
	return nil
}

// beginClaims passes the claims an attempt asks for, and this provider
// declares, to the sign-in pages.
func (p *Provider) beginClaims(q url.Values, a *providers.Attempt) {
	if a.StepUp == nil {
		return
	}
	var ids []string
	for _, c := range a.StepUp.Claims {
		if p.profileField(c) != nil {
			ids = append(ids, c)
		}
	}
	if len(ids) > 0 {
		q.Set("claims", strings.Join(ids, ","))
	}
}

// cleanClaims keeps the well-formed, distinct claim names of a flow's
// "claims" parameter (comma-separated).
func cleanClaims(v string) string {
	if v == "" || len(v) > 1024 {
		return ""
	}
	var out []string
	for _, c := range strings.Split(v, ",") {
		if config.ValidClaimName(c) && len(out) < maxFlowClaims && !contains(out, c) {
			out = append(out, c)
		}
	}
	return strings.Join(out, ",")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// profileClaims puts the declared profile fields the account has into the
// identity's extra claims.
func (p *Provider) profileClaims(id *identity.Identity, acct *store.Account) {
	for _, f := range p.profile {
		if v := acct.Profile[f.id]; v != "" {
			if id.Extra == nil {
				id.Extra = map[string]string{}
			}
			id.Extra[f.id] = v
		}
	}
}

// missingProfile returns the declared fields among claims (comma-separated)
// the account has no value for, in the order of the settings.
func (p *Provider) missingProfile(acct *store.Account, claims string) []*profileField {
	if claims == "" {
		return nil
	}
	asked := strings.Split(claims, ",")
	var out []*profileField
	for i := range p.profile {
		f := &p.profile[i]
		if contains(asked, f.id) && acct.Profile[f.id] == "" {
			out = append(out, f)
		}
	}
	return out
}

// needsProfile is called before the sign-in proof: when the sign-in asks
// for profile fields the account lacks, it shows the profile form (the
// proof follows its post) and returns true.
func (p *Provider) needsProfile(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, amr []string) bool {
	if f.state == "" {
		return false
	}
	missing := p.missingProfile(acct, f.claims)
	if len(missing) == 0 {
		return false
	}
	tok := p.tokens.issue(claims{Purpose: purposeProfile, Account: acct.ID, PwdAt: acct.PasswordChanged.UnixNano(), State: f.state,
		Audience: f.aud, ReturnURL: f.rd, StepUp: f.stepUp, Fields: f.claims, AMR: amr}, profileTTL)
	p.showProfile(w, r, f, tok, missing, nil, nil, http.StatusOK)
	return true
}

func (p *Provider) showProfile(w http.ResponseWriter, r *http.Request, f flow, tok string, missing []*profileField, values, errs map[string]string, status int) {
	pg := p.form(w, r, ViewProfile, "profile", f)
	pg.Title, pg.Token, pg.Status = "A few more details", tok, status
	focus := -1
	for i, m := range missing {
		pg.Profile = append(pg.Profile, m.view(values[m.id], errs[m.id]))
		if focus < 0 && (len(errs) == 0 || errs[m.id] != "") {
			focus = i
		}
	}
	if focus >= 0 {
		pg.Profile[focus].Focus = true
	}
	if len(errs) > 0 {
		pg.Error = "Please check the highlighted fields."
	}
	p.page(w, r, pg)
}

// view is the field as the page shows it.
func (f *profileField) view(value, errMsg string) ProfileField {
	v := ProfileField{ID: f.id, Label: f.label, Hint: f.hint, Max: f.max, Value: value, Error: errMsg, Type: "text"}
	switch f.kind {
	case "tel":
		v.Type, v.InputMode, v.Autocomplete = "tel", "tel", "tel"
	case "email":
		v.Type, v.InputMode, v.Autocomplete = "email", "email", "email"
	case "url":
		v.Type, v.InputMode, v.Autocomplete = "url", "url", "url"
	case "country":
		v.Autocomplete = "country"
	case "date":
		v.Type = "date"
	}
	return v
}

// check validates and normalizes a submitted value: it returns the value
// to store, or a message for the person.
func (f *profileField) check(raw string) (string, string) {
	v := strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, raw))
	if v == "" {
		return "", "Please fill in this field."
	}
	if n := utf8.RuneCountInString(v); n > f.max {
		return "", fmt.Sprintf("Please use at most %d characters.", f.max)
	}
	switch f.kind {
	case "tel":
		digits := 0
		for i, r := range v {
			switch {
			case r >= '0' && r <= '9':
				digits++
			case r == '+' && i == 0, r == ' ', r == '-', r == '(', r == ')', r == '.', r == '/':
			default:
				return "", "Please enter a phone number: digits, spaces and an optional leading +."
			}
		}
		if digits < 4 || digits > 20 {
			return "", "Please enter a complete phone number."
		}
	case "email":
		e := store.NormalizeEmail(v)
		if e == "" {
			return "", msgBadEmail
		}
		v = e
	case "url":
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", "Please enter a web address starting with https://."
		}
	case "country":
		v = strings.ToUpper(v)
		if len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
			return "", "Please enter a two-letter country code, such as DE or US."
		}
	case "date":
		if _, err := time.Parse("2006-01-02", v); err != nil {
			return "", "Please enter a date as YYYY-MM-DD."
		}
	}
	if f.pattern != nil && !f.pattern.MatchString(v) {
		msg := "Please check the format of this field."
		if f.hint != "" {
			msg += " " + f.hint
		}
		return "", msg
	}
	return v, ""
}

// serveProfile saves the profile form and ends the sign-in with its proof.
func (p *Provider) serveProfile(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgSignInAgain, p.links(readFlow(r)))
		return
	}
	if !p.parse(w, r) {
		return
	}
	expired := func(pg Page) Page {
		pg.View, pg.Title, pg.Body = ViewNotice, "Sign in", msgFormExpired+" "+msgSignInAgain
		return pg
	}
	if !p.post(w, r, "profile", expired) {
		return
	}
	tok := r.PostFormValue("token")
	c, f, acct, err := p.openStep(r, tok, purposeProfile, "profile")
	again := p.refuseStep(w, r, f, "local provider: profile step refused")
	if err != nil {
		again(err)
		return
	}
	missing := p.missingProfile(acct, c.Fields)
	values, errs := map[string]string{}, map[string]string{}
	update := maps.Clone(acct.Profile)
	if update == nil {
		update = map[string]string{}
	}
	for _, m := range missing {
		raw := r.PostFormValue("profile_" + m.id)
		if len(raw) > 4*m.max+64 {
			raw = raw[:4*m.max+64]
		}
		v, msg := m.check(raw)
		if msg != "" {
			values[m.id], errs[m.id] = raw, msg
			continue
		}
		values[m.id], update[m.id] = v, v
	}
	if len(errs) > 0 {
		p.showProfile(w, r, f, tok, missing, values, errs, http.StatusBadRequest)
		return
	}
	if !p.useOnce(w, r, purposeProfile, c, f, "profile token used twice", again) {
		return
	}
	if len(missing) > 0 {
		if err := p.accounts.UpdateProfile(r.Context(), acct.ID, update); err != nil {
			p.log.Error("local provider: cannot save profile fields", zap.String("account", acct.ID), zap.Error(err))
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		acct.Profile = update
		p.log.Info("local provider: profile fields saved", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Int("fields", len(missing)))
	}
	p.issueProof(w, r, acct, f, c.AMR)
}
