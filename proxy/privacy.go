package proxy

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
	"github.com/gatehouse-dev/gatehouse/session"
)

// Privacy bookkeeping a customer session carries, under reserved names in
// its token map (never forwarded, never shown):
const (
	// tokRegion is the customer's region: where their data lives.
	tokRegion = "gh_region"
	// tokGranted lists the purposes granted ("purpose:version", comma
	// separated): the consent header and assertion claim.
	tokGranted = "gh_granted"
	// tokMissing lists the purposes the customer has not granted (of all
	// the policy defines), so a route's consent check needs no store read.
	tokMissing = "gh_missing"
	// tokConsentAt is when tokGranted and tokMissing were read (Unix
	// seconds); they are read again after consentFresh.
	tokConsentAt = "gh_consent_at"
)

// consentFresh bounds how long a session trusts its copy of the consent
// state. A withdrawal on another device reaches this one within it; one
// made here (the account page) takes effect at once.
const consentFresh = 5 * time.Minute

// ConsentHeader carries the granted purposes upstream ("purpose:version",
// comma separated). Clients can never send it: it is stripped like every
// identity header.
const ConsentHeader = "X-Gatehouse-Consent"

// privacyOn reports whether customer sessions are subject to the privacy
// policy: purposes and a store to keep them.
func (s *snapshot) privacyOn() bool {
	return s.opts.Privacy != nil && s.opts.Privacy.Regions() != nil
}

// subjectKey is the customer's key in the privacy stores.
func subjectKey(id *identity.Identity) string { return privacy.SubjectKey(id) }

// privacySignIn runs at a customer's sign-in: their region is resolved
// (sticky: where their data already is), the profile and a sign_in audit
// event are written there, and the consent state is read into the session.
// A store failure is logged and does not block the sign-in (the consent
// check then asks again on the next request).
func (g *Gateway) privacySignIn(s *snapshot, r *http.Request, rec *accessRecord, sess *session.Payload) {
	if !s.privacyOn() || sess.Identity.Audience != identity.Customer {
		return
	}
	pp := s.opts.Privacy
	_, trusted := s.peer(r.RemoteAddr)
	region, err := pp.Regions().Resolve(r.Context(), &sess.Identity, r, trusted)
	if err != nil {
		g.log.Error("privacy: cannot resolve the customer's region; using the default", zap.String("request_id", rec.rid), zap.Error(err))
		region = pp.Regions().Default()
	}
	if sess.Tokens == nil {
		sess.Tokens = map[string]string{}
	}
	sess.Tokens[tokRegion] = region
	if err := pp.SignIn(r.Context(), &sess.Identity, region, rec.rid); err != nil {
		g.log.Error("privacy: cannot record the sign-in", zap.String("request_id", rec.rid), zap.String("region", region), zap.Error(err))
	}
	g.readConsent(s, r.Context(), sess)
}

// readConsent refreshes the session's copy of the consent state from the
// customer's region. On error the copy is left as it was, marked stale.
func (g *Gateway) readConsent(s *snapshot, ctx context.Context, sess *session.Payload) error {
	pp := s.opts.Privacy
	key, region := subjectKey(&sess.Identity), sess.Tokens[tokRegion]
	granted, err := pp.Granted(ctx, key, region)
	if err != nil {
		return err
	}
	var all []string
	for _, pu := range pp.Purposes() {
		all = append(all, pu.ID)
	}
	missing, err := pp.Missing(ctx, key, region, all)
	if err != nil {
		return err
	}
	ids := make([]string, len(missing))
	for i, m := range missing {
		ids[i] = m.ID
	}
	sess.Tokens[tokGranted] = strings.Join(granted, ",")
	sess.Tokens[tokMissing] = strings.Join(ids, ",")
	sess.Tokens[tokConsentAt] = strconv.FormatInt(g.now().Unix(), 10)
	return nil
}

// consentStale reports whether the session's consent copy must be read
// again.
func (g *Gateway) consentStale(sess *session.Payload) bool {
	at, err := strconv.ParseInt(sess.Tokens[tokConsentAt], 10, 64)
	return err != nil || g.now().Sub(time.Unix(at, 0)) > consentFresh
}

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// privacyGate applies a route's privacy settings to an allowed request of
// a customer session, before it is forwarded: the customer's region must
// be served by the route, the purposes the route requires must be granted
// (else the consent page, or 403 consent_required for API clients), and
// the identity is minimized to what the route may receive. It returns the
// principal to forward with, and false when it has answered the request.
//
// fa, when set, is the original request a forward-auth subrequest
// describes; the consent page is then reached the forward-auth way.
func (g *Gateway) privacyGate(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, d *policy.Decision, who principal, path string, fa *original) (principal, bool) {
	pp := s.opts.Privacy
	if pp == nil || who.id == nil {
		return who, true
	}
	rp := pp.Route(d.Route.Name)
	if rp == nil {
		return who, true
	}
	sess := who.session
	if who.id.Audience == identity.Customer && sess != nil && s.privacyOn() {
		if sess.Tokens == nil {
			sess.Tokens = map[string]string{}
		}
		region := sess.Tokens[tokRegion]
		if region == "" {
			// A session from before privacy was configured.
			g.privacySignIn(s, r, rec, sess)
			region = sess.Tokens[tokRegion]
			s.opts.Store.Save(w, r, sess)
		}
		if !rp.AllowsRegion(region) {
			rec.reason = "privacy_region"
			g.refuse(s, w, r, rec, http.StatusForbidden, "region_not_served", "Not available in your region", "This service is not available for accounts in your region.")
			return who, false
		}
		if len(rp.Consent) > 0 {
			if g.consentStale(sess) {
				if err := g.readConsent(s, r.Context(), sess); err != nil {
					rec.reason = "privacy_store_unavailable"
					g.log.Error("privacy: cannot read the customer's consent", zap.String("request_id", rec.rid), zap.Error(err))
					g.unavailable(s, w, r, rec)
					return who, false
				}
				if err := s.opts.Store.Save(w, r, sess); err != nil {
					g.log.Warn("privacy: cannot save the consent state in the session", zap.String("request_id", rec.rid), zap.Error(err))
				}
			}
			missing := splitList(sess.Tokens[tokMissing])
			var need []string
			for _, id := range rp.Consent {
				if slices.Contains(missing, id) {
					need = append(need, id)
				}
			}
			if len(need) > 0 {
				rec.reason = "consent_required"
				if wantsJSON(r, d.Route) {
					writeJSONError(w, http.StatusForbidden, "consent_required", "the customer has not granted: "+strings.Join(need, ", "), rec.rid)
					return who, false
				}
				if fa != nil {
					g.forwardAuthConsent(s, w, r, rec, d, *fa, path)
					return who, false
				}
				back := path
				if r.URL.RawQuery != "" {
					back += "?" + r.URL.RawQuery
				}
				u := Prefix + "me/consent?route=" + queryEscape(d.Route.Name) + "&rd=" + queryEscape(back)
				if r.Method != http.MethodGet && r.Method != http.MethodHead {
					s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusForbidden, Title: "Your consent is needed",
						Message: "This service needs your consent before it can be used.", RequestID: rec.rid, RetryURL: u})
					return who, false
				}
				http.Redirect(w, r, u, http.StatusSeeOther)
				return who, false
			}
		}
		who.consent = splitList(sess.Tokens[tokGranted])
	}
	min := pp.Minimize(who.id, rp)
	who.id = &min
	// The assertion cache key must change with what the assertion says.
	who.key += "\x00" + strings.Join(who.consent, ",")
	return who, true
}

// refuse answers a refusal as JSON for API clients and as a page for
// browsers.
func (g *Gateway) refuse(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, status int, code, title, msg string) {
	if wantsJSON(r, nil) {
		writeJSONError(w, status, code, msg, rec.rid)
		return
	}
	s.opts.Pages.Error(w, pages.ErrorPage{Status: status, Title: title, Message: msg, RequestID: rec.rid})
}
