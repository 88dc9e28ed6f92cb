package proxy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
	"github.com/gatehouse-dev/gatehouse/session"
)

// The customer's self-service pages under /.gatehouse/me (GDPR art. 7,
// 15, 17 and 20): the account page with consents, the consent page shown
// before a route, the data export and account deletion. Every state change
// is a POST with a CSRF token bound to this browser.

const (
	meCSRFCookie = "csrf-me"
	// deleteFreshness is how recent the sign-in must be to delete the
	// account: a borrowed, unlocked browser must not be enough.
	deleteFreshness = 10 * time.Minute
)

// DeletionNotifier is implemented by providers that keep their own account
// records (local accounts), which an erasure must delete too.
type DeletionNotifier interface {
	DeleteAccount(ctx context.Context, subject string) error
}

// serveMe dispatches /.gatehouse/me and below. name is the path relative
// to Prefix.
func (g *Gateway) serveMe(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, name string) {
	if !s.privacyOn() {
		rec.reason = "gatehouse_not_found"
		g.fail(s, w, r, rec, http.StatusNotFound, "Not found", "There is nothing here.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	sess := g.customerSession(s, w, r, rec)
	if sess == nil {
		rec.reason = "me_sign_in"
		if r.Method != http.MethodGet {
			g.fail(s, w, r, rec, http.StatusUnauthorized, "Please sign in", "Your session has ended. Sign in and try again.")
			return
		}
		http.Redirect(w, r, Prefix+"login?audience=customer&rd="+queryEscape(Prefix+name), http.StatusFound)
		return
	}
	if r.Method == http.MethodPost && !g.meCSRF(s, w, r, rec) {
		return
	}
	switch {
	case name == "me" && r.Method == http.MethodGet:
		g.mePage(s, w, r, rec, sess, "")
	case name == "me/consents" && r.Method == http.MethodPost:
		g.meChangeConsent(s, w, r, rec, sess)
	case name == "me/consent" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		g.meConsent(s, w, r, rec, sess)
	case name == "me/export" && r.Method == http.MethodGet:
		g.meExport(s, w, r, rec, sess)
	case name == "me/delete" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		g.meDelete(s, w, r, rec, sess)
	default:
		rec.reason = "gatehouse_not_found"
		g.fail(s, w, r, rec, http.StatusNotFound, "Not found", "There is nothing here.")
	}
}

// customerSession returns the browser's valid customer session, or nil.
func (g *Gateway) customerSession(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord) *session.Payload {
	p := s.liveSession(r, identity.Customer)
	if p == nil {
		return nil
	}
	if p.Tokens == nil {
		p.Tokens = map[string]string{}
	}
	if p.Tokens[tokRegion] == "" {
		g.privacySignIn(s, r, rec, p)
		s.opts.Store.Save(w, r, p)
	}
	rec.user = &p.Identity
	return p
}

// meToken returns this browser's CSRF token for the self-service forms,
// making one when needed.
func (g *Gateway) meToken(s *snapshot, w http.ResponseWriter, r *http.Request) string {
	var tok string
	if err := s.opts.Sessions.GetTransient(r, meCSRFCookie, &tok); err == nil && tok != "" {
		return tok
	}
	tok = randomToken(24)
	s.opts.Sessions.SetTransient(w, meCSRFCookie, tok, time.Hour)
	return tok
}

// meCSRF checks a self-service POST: the form's token must equal this
// browser's, and the request must not come from another site.
func (g *Gateway) meCSRF(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var want string
	err := s.opts.Sessions.GetTransient(r, meCSRFCookie, &want)
	got := r.PostFormValue(pages.FieldCSRFToken)
	if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		rec.reason = "me_csrf"
		g.fail(s, w, r, rec, http.StatusForbidden, "Not confirmed", "This form expired or did not come from this site. Please try again from your account page.")
		return false
	}
	return true
}

// purposesView lists every purpose with the customer's current decision.
func (g *Gateway) purposesView(s *snapshot, ctx context.Context, sess *session.Payload) ([]pages.ConsentPurpose, error) {
	pp := s.opts.Privacy
	st := pp.Regions().Store(sess.Tokens[tokRegion])
	if st == nil {
		return nil, errors.New("no store for the customer's region")
	}
	cur, err := st.CurrentConsents(ctx, subjectKey(&sess.Identity))
	if err != nil {
		return nil, err
	}
	neededBy := map[string][]string{}
	for _, r := range s.pol.Routes() {
		if rp := pp.Route(r.Name); rp != nil {
			for _, id := range rp.Consent {
				neededBy[id] = append(neededBy[id], r.Name)
			}
		}
	}
	var out []pages.ConsentPurpose
	for _, pu := range pp.Purposes() {
		c := pages.ConsentPurpose{ID: pu.ID, Description: pu.Description, LegalBasis: pu.LegalBasis, Version: pu.Version,
			Required: pu.Required || len(neededBy[pu.ID]) > 0, NeededBy: neededBy[pu.ID]}
		if e, ok := cur[pu.ID]; ok {
			c.Granted = e.Decision == "grant"
			c.GrantedVersion = e.Version
			c.DecidedAt = e.At
		} else if pu.LegalBasis == privacy.BasisLegitimateInterest {
			c.Granted = true // no objection
		}
		out = append(out, c)
	}
	return out, nil
}

func (g *Gateway) mePage(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, sess *session.Payload, msg string) {
	purposes, err := g.purposesView(s, r.Context(), sess)
	if err != nil {
		g.privacyFailed(s, w, r, rec, "me_page", err)
		return
	}
	id := &sess.Identity
	provider := id.Provider
	if p, ok := s.opts.Providers[id.Provider]; ok {
		provider = p.DisplayName()
	}
	rec.reason = "me"
	s.opts.Pages.Me(w, pages.MePage{
		Name: id.Name, Email: id.Email, Provider: provider, Message: msg, Purposes: purposes,
		ConsentAction: Prefix + "me/consents", CSRFToken: g.meToken(s, w, r),
		Sessions:  []pages.SessionInfo{{Device: deviceHint(r.UserAgent()), Created: sess.Created, LastSeen: sess.LastSeen, Current: true}},
		ExportURL: Prefix + "me/export", DeleteURL: Prefix + "me/delete", SignOutURL: Prefix + "logout",
		RequestID: rec.rid,
	})
}

// meChangeConsent records a grant or withdrawal from the account page.
func (g *Gateway) meChangeConsent(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, sess *session.Payload) {
	id, version, ok := pages.ParsePurposeValue(r.PostFormValue(pages.FieldPurpose))
	decision := r.PostFormValue(pages.FieldDecision)
	// Version 0 would mean "the current one" to the ledger: a form must say
	// which version the customer was shown.
	if !ok || version <= 0 || (decision != pages.DecisionGrant && decision != pages.DecisionWithdraw) {
		rec.reason = "me_bad_form"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "This form is not valid.")
		return
	}
	_, err := s.opts.Privacy.Record(r.Context(), subjectKey(&sess.Identity), sess.Tokens[tokRegion],
		[]privacy.Decision{{Purpose: id, Grant: decision == pages.DecisionGrant, Version: version}},
		privacy.RecordInfo{Source: "account_page", RequestID: rec.rid})
	switch {
	case errors.Is(err, privacy.ErrStaleVersion):
		g.mePage(s, w, r, rec, sess, "The text of this purpose changed while you were reading it. Please review it again.")
		return
	case errors.Is(err, privacy.ErrUnknownPurpose):
		rec.reason = "me_bad_form"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "This purpose does not exist.")
		return
	case err != nil:
		g.privacyFailed(s, w, r, rec, "consent_record", err)
		return
	}
	g.consentChanged(s, w, r, rec, sess)
	rec.reason = "consent_" + decision
	http.Redirect(w, r, Prefix+"me", http.StatusSeeOther)
}

// consentChanged refreshes the session's consent copy after a decision,
// so it applies at once.
func (g *Gateway) consentChanged(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, sess *session.Payload) {
	if err := g.readConsent(s, r.Context(), sess); err != nil {
		delete(sess.Tokens, tokConsentAt) // read again on the next request
		g.log.Warn("privacy: cannot read the consent state back", zap.String("request_id", rec.rid), zap.Error(err))
	}
	if err := s.opts.Store.Save(w, r, sess); err != nil {
		g.log.Warn("privacy: cannot save the session", zap.String("request_id", rec.rid), zap.Error(err))
	}
}

// meConsent is the consent page shown before a route whose purposes the
// customer has not granted, and its answer.
func (g *Gateway) meConsent(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, sess *session.Payload) {
	pp := s.opts.Privacy
	routeName := r.FormValue("route")
	rd := g.returnURL(s, r.FormValue("rd"), rec)
	if r.Method == http.MethodPost {
		rd = g.returnURL(s, r.PostFormValue(pages.FieldReturnTo), rec)
		if r.PostFormValue(pages.FieldDecline) == "1" {
			rec.reason = "consent_declined"
			s.opts.Pages.Notice(w, pages.NoticePage{Title: "Not continued", Message: "You did not give the consent this service needs, so it cannot be used. You can change your mind at any time.", LinkURL: Prefix + "me", LinkLabel: "Your account", RequestID: rec.rid})
			return
		}
		var ds []privacy.Decision
		for _, v := range r.PostForm[pages.FieldPurpose] {
			id, version, ok := pages.ParsePurposeValue(v)
			if !ok || version <= 0 {
				rec.reason = "me_bad_form"
				g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "This form is not valid.")
				return
			}
			ds = append(ds, privacy.Decision{Purpose: id, Grant: true, Version: version})
		}
		if len(ds) > 0 {
			_, err := pp.Record(r.Context(), subjectKey(&sess.Identity), sess.Tokens[tokRegion], ds, privacy.RecordInfo{Source: "consent_page", RequestID: rec.rid})
			switch {
			case errors.Is(err, privacy.ErrStaleVersion):
				// The text changed under the customer: show it again.
			case errors.Is(err, privacy.ErrUnknownPurpose):
				rec.reason = "me_bad_form"
				g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "This purpose does not exist.")
				return
			case err != nil:
				g.privacyFailed(s, w, r, rec, "consent_record", err)
				return
			}
		}
		g.consentChanged(s, w, r, rec, sess)
		if missingFor(pp, sess, routeName) == nil {
			rec.reason = "consent_granted"
			http.Redirect(w, r, rd, http.StatusSeeOther)
			return
		}
	}
	if g.consentStale(sess) {
		g.consentChanged(s, w, r, rec, sess)
	}
	need := missingFor(pp, sess, routeName)
	if need == nil && r.Method == http.MethodGet {
		http.Redirect(w, r, rd, http.StatusSeeOther)
		return
	}
	var ps []pages.ConsentPurpose
	for _, id := range need {
		pu, _ := pp.Purpose(id)
		ps = append(ps, pages.ConsentPurpose{ID: pu.ID, Description: pu.Description, LegalBasis: pu.LegalBasis, Version: pu.Version, Required: true})
	}
	rec.reason = "consent_page"
	msg := ""
	if r.Method == http.MethodPost {
		msg = "Please accept the required purposes to continue; their text may have changed."
	}
	s.opts.Pages.Consent(w, pages.ConsentPage{Service: routeName, Purposes: ps, Message: msg, Action: Prefix + "me/consent?route=" + queryEscape(routeName),
		CSRFToken: g.meToken(s, w, r), ReturnURL: rd, AccountURL: Prefix + "me", RequestID: rec.rid})
}

// missingFor lists the purposes route needs that the session's copy says
// are missing; nil when none (or the route needs none).
func missingFor(pp *privacy.Policy, sess *session.Payload, route string) []string {
	rp := pp.Route(route)
	if rp == nil {
		return nil
	}
	missing := splitList(sess.Tokens[tokMissing])
	var need []string
	for _, id := range rp.Consent {
		if slices.Contains(missing, id) {
			need = append(need, id)
		}
	}
	return need
}

// meExport downloads everything Gatehouse holds about the customer.
func (g *Gateway) meExport(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, sess *session.Payload) {
	doc, err := s.opts.Privacy.ExportFor(r.Context(), subjectKey(&sess.Identity), sess.Tokens[tokRegion],
		[]privacy.SessionInfo{sessionInfo(s, sess, r)}, rec.rid)
	if err != nil {
		g.privacyFailed(s, w, r, rec, "export", err)
		return
	}
	rec.reason = "export"
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="gatehouse-export.json"`)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(doc)
}

// sessionInfo describes a session for an export, never with its secret id.
func sessionInfo(s *snapshot, sess *session.Payload, r *http.Request) privacy.SessionInfo {
	return privacy.SessionInfo{ID: userHash(s.userKey, &identity.Identity{Subject: sess.ID}), Provider: sess.Identity.Provider,
		Created: sess.Created, LastSeen: sess.LastSeen, Expires: sess.Created.Add(s.pol.Config.Session.Lifetime.D()), Client: deviceHint(r.UserAgent())}
}

// meDelete is account deletion: a fresh sign-in, a typed confirmation,
// then every session ends, the data is erased or anonymized in the
// customer's region, providers with their own records delete them, the
// region is searched again and anything written meanwhile is swept under
// the same receipt, and the configured webhooks are told.
func (g *Gateway) meDelete(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, sess *session.Payload) {
	id := &sess.Identity
	fresh := !id.AuthTime.IsZero() && g.now().Sub(id.AuthTime) <= deleteFreshness
	page := pages.DeletePage{Email: id.Email, Action: Prefix + "me/delete", CSRFToken: g.meToken(s, w, r), CancelURL: Prefix + "me", RequestID: rec.rid}
	if !fresh {
		page.NeedsReauth = true
		page.ReauthURL = Prefix + "login?audience=customer&provider=" + queryEscape(id.Provider) + "&max_age=300&rd=" + queryEscape(Prefix+"me/delete")
	}
	if r.Method == http.MethodGet || !fresh {
		rec.reason = "delete_page"
		s.opts.Pages.DeleteAccount(w, page)
		return
	}
	typed := strings.TrimSpace(r.PostFormValue(pages.FieldConfirm))
	if typed != pages.ConfirmWord && (id.Email == "" || !strings.EqualFold(typed, id.Email)) {
		rec.reason = "delete_not_confirmed"
		page.Wrong = true
		s.opts.Pages.DeleteAccount(w, page)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	// Sessions first: nothing may act for the customer while the data goes.
	if err := g.revoke(ctx, s, "sub:"+id.Provider+"\x00"+id.Subject); err != nil {
		g.privacyFailed(s, w, r, rec, "delete_revoke", err)
		return
	}
	key, region := subjectKey(id), sess.Tokens[tokRegion]
	receipt, err := s.opts.Privacy.EraseReceipt(ctx, key, region, rec.rid)
	if err != nil {
		g.privacyFailed(s, w, r, rec, "erase", err)
		return
	}
	if dn, ok := s.opts.Providers[id.Provider].(DeletionNotifier); ok {
		if err := dn.DeleteAccount(ctx, id.Subject); err != nil {
			g.log.Error("privacy: the provider could not delete its account record", zap.String("request_id", rec.rid), zap.String("provider", id.Provider), zap.Error(err))
		}
	}
	// A request that was in flight when the sessions ended (a sign-out on
	// another device, a consent form) may have written under the key
	// after the erasure: look again and sweep under the same receipt. The
	// erasure itself is done, so a failure here is the operator's to
	// finish (POST /privacy/erase), not the customer's.
	if again, err := s.opts.Privacy.Regions().LocateIn(ctx, key, region); err != nil {
		g.log.Error("privacy: could not check for writes made during the deletion; erase the subject again", zap.String("request_id", rec.rid), zap.String("region", region), zap.String("receipt", receipt.Tombstone), zap.Error(err))
	} else if again {
		if receipt, err = s.opts.Privacy.EraseAgain(ctx, receipt, key, region, rec.rid); err != nil {
			g.log.Error("privacy: the sweep after the deletion failed; erase the subject again", zap.String("request_id", rec.rid), zap.String("region", region), zap.String("receipt", receipt.Tombstone), zap.Error(err))
		}
	}
	s.opts.Store.Clear(w, r, identity.Customer)
	s.opts.Sessions.ClearTransient(w, meCSRFCookie)
	rec.reason = "deleted"
	g.log.Info("customer account deleted", zap.String("request_id", rec.rid), zap.String("provider", id.Provider), zap.String("receipt", receipt.Tombstone))
	s.opts.Pages.Deleted(w, pages.DeletedPage{ReceiptID: receipt.Tombstone, HomeURL: "/", RequestID: rec.rid})
}

// auditSignOut records a customer's sign-out as a sign_out audit event in
// their region (the session carries it). A failure is logged; it never
// blocks the sign-out.
func (g *Gateway) auditSignOut(s *snapshot, ctx context.Context, rec *accessRecord, sess *session.Payload) {
	if !s.privacyOn() || sess.Identity.Audience != identity.Customer || sess.Tokens[tokRegion] == "" {
		return
	}
	region := sess.Tokens[tokRegion]
	if err := s.opts.Privacy.Audit(ctx, privacy.KindSignOut, subjectKey(&sess.Identity), region, rec.rid,
		map[string]string{"provider": sess.Identity.Provider}); err != nil {
		g.log.Warn("privacy: cannot record the sign-out", zap.String("request_id", rec.rid), zap.String("region", region), zap.Error(err))
	}
}

// privacyFailed answers a store failure of a self-service action: logged
// with its reason, a 503 page, nothing half done (each store operation is
// one transaction).
func (g *Gateway) privacyFailed(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, what string, err error) {
	rec.reason = "privacy_failed:" + what
	g.log.Error("privacy: "+what+" failed", zap.String("request_id", rec.rid), zap.Error(err))
	w.Header().Set("Retry-After", "30")
	g.fail(s, w, r, rec, http.StatusServiceUnavailable, "Temporarily unavailable", "Your request could not be completed. Nothing was changed; please try again in a moment.")
}

// deviceHint is a short description of a user agent for people, not a
// fingerprint: browser family and platform only.
func deviceHint(ua string) string {
	browser := ""
	for _, b := range []struct{ token, name string }{{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	platform := ""
	for _, p := range []struct{ token, name string }{{"Android", "Android"}, {"iPhone", "iOS"}, {"iPad", "iPadOS"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"}} {
		if strings.Contains(ua, p.token) {
			platform = p.name
			break
		}
	}
	switch {
	case browser != "" && platform != "":
		return browser + " on " + platform
	case browser != "":
		return browser
	}
	return platform
}
