package proxy

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
	"github.com/gatehouse-dev/gatehouse/session"
)

// loginTTL bounds how long a sign-in may take from start to callback.
const loginTTL = 10 * time.Minute

// serveGatehouse serves the reserved endpoints under /.gatehouse/.
func (g *Gateway) serveGatehouse(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, path string) {
	name := strings.TrimPrefix(path, Prefix)
	switch {
	case name == "healthz":
		writeText(w, http.StatusOK, "ok\n")
	case name == "readyz":
		if err := g.Ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready\n")
			return
		}
		writeText(w, http.StatusOK, "ready\n")
	case name == "jwks.json":
		if s.opts.Signer == nil {
			writeJSONError(w, http.StatusNotFound, "not_found", "assertions are disabled", rec.rid)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(s.opts.Signer.JWKS())
	case name == "login":
		g.login(s, w, r, rec)
	case strings.HasPrefix(name, "callback/"):
		g.callback(s, w, r, rec, strings.TrimPrefix(name, "callback/"))
	case s.callbacks[name] != "":
		g.callback(s, w, r, rec, s.callbacks[name])
	case s.scim != nil && (name == "scim/v2" || strings.HasPrefix(name, "scim/v2/")):
		rec.reason = "scim"
		s.scim.ServeHTTP(w, r)
	case s.logouts[name] != "":
		g.receiveLogout(s, w, r, rec, s.logouts[name])
	case s.endpoints[name] != nil:
		rec.reason = "provider_endpoint"
		s.endpoints[name].ServeHTTP(w, r)
	case strings.HasPrefix(name, "static/"):
		g.staticPicker(s, w, r, rec, strings.TrimPrefix(name, "static/"))
	case name == "logout":
		g.logout(s, w, r, rec)
	case name == "whoami":
		g.whoami(s, w, r)
	case name == "me" || strings.HasPrefix(name, "me/"):
		g.serveMe(s, w, r, rec, name)
	case name == "auth" || strings.HasPrefix(name, "auth/"): // "auth/<path>": Envoy ext_authz
		g.forwardAuth(s, w, r, rec)
	default:
		rec.reason = "gatehouse_not_found"
		g.fail(s, w, r, rec, http.StatusNotFound, "Not found", "There is nothing here.")
	}
}

// Ready reports whether every provider that depends on fetched material
// (metadata, JWKS) has it.
func (g *Gateway) Ready() error {
	s := g.cur.Load()
	for _, name := range sortedNames(s.opts.Providers) {
		if rc, ok := s.opts.Providers[name].(providers.ReadinessChecker); ok {
			if err := rc.Ready(); err != nil {
				return errors.New(name + ": " + err.Error())
			}
		}
	}
	for _, name := range sortedNames(s.opts.Bearer) {
		if rc, ok := s.opts.Bearer[name].(providers.ReadinessChecker); ok {
			if err := rc.Ready(); err != nil {
				return errors.New(name + ": " + err.Error())
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.opts.Shared.Ping(ctx); err != nil {
		return fmt.Errorf("shared state (%s): %w", s.opts.Shared.Kind(), err)
	}
	if s.privacyOn() {
		rg := s.opts.Privacy.Regions()
		for _, name := range rg.Names() {
			if err := rg.Store(name).Ping(ctx); err != nil {
				return fmt.Errorf("privacy store of region %s: %w", name, err)
			}
		}
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// origin is the scheme://host the browser is on, when that host is one the
// gateway serves (public URL, route host or allow-listed); otherwise the
// public URL. Callback URLs are built from it, never from an arbitrary Host.
func (s *snapshot) origin(r *http.Request) string {
	if !s.redirects.AllowHost(r.Host) {
		return s.issuer
	}
	scheme := "http"
	if r.TLS != nil || strings.HasPrefix(s.issuer, "https:") {
		scheme = "https"
	}
	if _, trusted := s.peer(r.RemoteAddr); trusted {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
	}
	return scheme + "://" + r.Host
}

// returnURL validates the rd parameter; anything unsafe becomes "/".
func (g *Gateway) returnURL(s *snapshot, raw string, rec *accessRecord) string {
	if raw == "" {
		return "/"
	}
	v, err := s.redirects.Validate(raw)
	if err != nil {
		g.log.Warn("refused return URL", zap.String("request_id", rec.rid), zap.String("rd", truncate(raw, 200)), zap.Error(err))
		return "/"
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// login starts a sign-in for an audience: straight to the provider when
// there is one (or one was chosen), otherwise the chooser page.
func (g *Gateway) login(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		g.fail(s, w, r, rec, http.StatusMethodNotAllowed, "Not allowed", "Sign-in starts with a link.")
		return
	}
	q := r.URL.Query()
	aud := identity.Audience(q.Get("audience"))
	provs := s.pol.Providers(aud)
	if aud == identity.Public || aud == identity.API || len(provs) == 0 {
		rec.reason = "login_bad_audience"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "This sign-in link is not valid.")
		return
	}
	rd := g.returnURL(s, q.Get("rd"), rec)
	var step *providers.StepUp
	claims := loginClaims(q.Get("claims"))
	if q.Get("mfa") == "1" || q.Get("max_age") != "" || q.Has("acr") || len(claims) > 0 {
		step = &providers.StepUp{MFA: q.Get("mfa") == "1", ACR: q["acr"], Claims: claims}
		if n, err := strconv.Atoi(q.Get("max_age")); err == nil && n > 0 {
			step.MaxAge = time.Duration(n) * time.Second
		}
	}
	chosen := q.Get("provider")
	if chosen == "" && len(provs) == 1 {
		chosen = provs[0]
	}
	if chosen == "" {
		page := pages.ChooserPage{Audience: string(aud), Heading: "Sign in", RequestID: rec.rid}
		if step != nil && step.Strong() {
			page.Message = "Please sign in again to continue."
		}
		for _, name := range provs {
			p := s.opts.Providers[name]
			u := url.Values{"audience": {string(aud)}, "provider": {name}, "rd": {rd}}
			for k, v := range q {
				if k == "mfa" || k == "max_age" || k == "acr" || k == "claims" {
					u[k] = v
				}
			}
			c := pages.Choice{ID: name, Label: p.DisplayName(), Kind: p.Type(), URL: Prefix + "login?" + u.Encode()}
			if su, ok := p.(providers.SignUpper); ok && su.SignsUp() && (step == nil || !step.Strong()) {
				u.Set("prompt", "create")
				c.SignupURL = Prefix + "login?" + u.Encode()
			}
			page.Choices = append(page.Choices, c)
		}
		rec.reason = "login_chooser"
		s.opts.Pages.Chooser(w, page)
		return
	}
	p, ok := s.opts.Providers[chosen]
	if !ok || !contains(provs, chosen) {
		rec.reason = "login_bad_provider"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "This sign-in option is not available.")
		return
	}
	a := &providers.Attempt{
		State:       randomToken(32),
		Nonce:       randomToken(24),
		Provider:    chosen,
		Audience:    aud,
		CallbackURL: s.origin(r) + Prefix + callbackPath(p),
		ReturnURL:   rd,
		StepUp:      step,
		Prompt:      q.Get("prompt"),
		LoginHint:   loginHint(q.Get("login_hint")),
		Created:     g.now(),
	}
	red, err := p.Begin(r.Context(), a)
	if err != nil {
		g.loginFailed(s, w, r, rec, chosen, err, rd, string(aud))
		return
	}
	a.Data = red.Data
	if err := s.opts.Sessions.SetTransient(w, attemptCookie(a.State), a, loginTTL, attemptCookieOptions(p)...); err != nil {
		g.loginFailed(s, w, r, rec, chosen, err, rd, string(aud))
		return
	}
	rec.reason = "login_started:" + chosen
	if red.Form != nil {
		g.postForm(s, w, red)
		return
	}
	http.Redirect(w, r, red.URL, http.StatusFound)
}

// postForm sends the browser to a provider by POST (SAML HTTP-POST
// binding): a form with a button, submitted at once by a nonce'd script.
func (g *Gateway) postForm(s *snapshot, w http.ResponseWriter, red *providers.Redirect) {
	var b strings.Builder
	nonce := randomToken(16)
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Signing in…</title></head><body><form method="post" action="`)
	b.WriteString(htmlEscape(red.URL))
	b.WriteString(`">`)
	for _, k := range sortedNames(red.Form) {
		b.WriteString(`<input type="hidden" name="` + htmlEscape(k) + `" value="` + htmlEscape(red.Form[k]) + `">`)
	}
	b.WriteString(`<noscript><p>JavaScript is off: press the button to continue.</p></noscript><button type="submit">Continue to sign in</button></form><script nonce="` + nonce + `">document.forms[0].submit()</script></body></html>`)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The form may only go to the provider it names.
	target := "'none'"
	if u, err := url.Parse(red.URL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		target = u.Scheme + "://" + u.Host
	}
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+target+"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(b.String()))
}

func htmlEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;")
	return r.Replace(s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// attemptCookie names the cookie of one sign-in attempt, so that sign-ins
// in several tabs do not overwrite each other.
func attemptCookie(state string) string {
	if len(state) > 16 {
		state = state[:16]
	}
	return "login-" + state
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// callback finishes a sign-in: the attempt must exist in this browser,
// match the echoed state exactly, be unexpired and unused.
func (g *Gateway) callback(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, name string) {
	p, ok := s.opts.Providers[name]
	if !ok {
		rec.reason = "callback_unknown_provider"
		g.fail(s, w, r, rec, http.StatusNotFound, "Not found", "There is nothing here.")
		return
	}
	state := p.CallbackState(r)
	if uc, ok := p.(providers.UnsolicitedCompleter); ok && state == "" {
		g.unsolicited(s, w, r, rec, name, uc)
		return
	}
	if state == "" {
		rec.reason = "callback_no_state"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-in failed", "This sign-in response is incomplete. Please start again.")
		return
	}
	var a providers.Attempt
	cookie := attemptCookie(state)
	err := s.opts.Sessions.GetTransient(r, cookie, &a)
	s.opts.Sessions.ClearTransient(w, cookie, attemptCookieOptions(p)...)
	switch {
	case errors.Is(err, session.ErrExpired):
		rec.reason = "callback_attempt_expired"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-in took too long", "Your sign-in expired before it finished. Please start again.")
		return
	case err != nil:
		rec.reason = "callback_no_attempt"
		g.log.Warn("sign-in callback without a matching attempt", zap.String("request_id", rec.rid), zap.String("provider", name), zap.Error(err))
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-in failed", "This sign-in was not started in this browser, or was already used. Please start again.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(a.State), []byte(state)) != 1 || a.Provider != name || g.now().Sub(a.Created) > loginTTL {
		rec.reason = "callback_state_mismatch"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-in failed", "This sign-in response does not belong to this browser. Please start again.")
		return
	}
	first, err := s.opts.Shared.Once().Claim(r.Context(), "attempt:"+a.State, a.Created.Add(loginTTL))
	if err != nil {
		rec.reason = "state_unavailable"
		g.log.Error("cannot record the sign-in attempt as used", zap.String("request_id", rec.rid), zap.Error(err))
		g.unavailable(s, w, r, rec)
		return
	}
	if !first {
		rec.reason = "callback_replayed"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-in failed", "This sign-in response was already used. Please start again.")
		return
	}
	var id *identity.Identity
	var tokens map[string]string
	if tc, ok := p.(providers.TokenCompleter); ok {
		id, tokens, err = tc.CompleteWithTokens(r.Context(), r, &a)
	} else {
		id, err = p.Complete(r.Context(), r, &a)
	}
	if err != nil {
		g.loginFailed(s, w, r, rec, name, err, a.ReturnURL, string(a.Audience))
		return
	}
	id.Audience = a.Audience
	id.Provider = name
	if id.AuthTime.IsZero() {
		id.AuthTime = g.now()
	}
	stepUpUnmet := a.StepUp != nil && !a.StepUp.SatisfiedBy(id, g.now())
	kept := keptTokens(tokens)
	if s.keepsTokens(name) {
		kept = keptTokensForwarding(tokens)
	}
	if err := g.startSession(s, w, r, rec, name, id, kept); err != nil {
		g.loginFailed(s, w, r, rec, name, err, a.ReturnURL, string(a.Audience))
		return
	}
	if stepUpUnmet {
		// The provider did not deliver the stronger sign-in that was asked
		// for. Going back to the page would ask again, in a loop: say what
		// is missing instead.
		rec.reason = "step_up_unmet:" + name
		g.log.Warn("step-up not satisfied by the provider", zap.String("request_id", rec.rid), zap.String("provider", name), zap.Strings("amr", id.AMR), zap.String("acr", id.ACR))
		title, msg := stepUpUnmetPage(a.StepUp, id, g.now())
		s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusForbidden, Title: title,
			Message: msg, RequestID: rec.rid, SignOutURL: Prefix + "logout"})
		return
	}
	http.Redirect(w, r, a.ReturnURL, http.StatusSeeOther)
}

// startSession saves a new session for a fresh identity. A new session id
// at every sign-in is the session fixation defence.
func (g *Gateway) startSession(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, name string, id *identity.Identity, tokens map[string]string) error {
	sess := &session.Payload{ID: session.NewID(), Identity: *id, Created: g.now(), Tokens: tokens}
	g.privacySignIn(s, r, rec, sess)
	if err := s.opts.Store.Save(w, r, sess); err != nil {
		return err
	}
	rec.user = &sess.Identity
	rec.reason = "login_ok:" + name
	s.opts.Metrics.SignIn(name, "ok")
	g.log.Info("sign-in", append([]zap.Field{zap.String("request_id", rec.rid), zap.String("provider", name), zap.String("audience", string(id.Audience))}, s.userFields(id)...)...)
	return nil
}

// unsolicited accepts a sign-in nobody started here (SAML IdP-initiated)
// from a provider whose policy allows it. The session goes to the first
// audience that lists the provider; the return URL is validated like any.
func (g *Gateway) unsolicited(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, name string, uc providers.UnsolicitedCompleter) {
	var aud identity.Audience
	for _, a := range []identity.Audience{identity.Workforce, identity.Customer} {
		if contains(s.pol.Providers(a), name) {
			aud = a
			break
		}
	}
	if aud == "" {
		rec.reason = "callback_no_audience"
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-in failed", "This sign-in response is not expected here.")
		return
	}
	id, rd, err := uc.CompleteUnsolicited(r.Context(), r)
	if err != nil {
		g.loginFailed(s, w, r, rec, name, err, "/", string(aud))
		return
	}
	id.Audience, id.Provider = aud, name
	if id.AuthTime.IsZero() {
		id.AuthTime = g.now()
	}
	if err := g.startSession(s, w, r, rec, name, id, nil); err != nil {
		g.loginFailed(s, w, r, rec, name, err, "/", string(aud))
		return
	}
	http.Redirect(w, r, g.returnURL(s, rd, rec), http.StatusSeeOther)
}

// keptTokens is what the session keeps of a provider's tokens: the id_token
// (the hint for RP-initiated logout), the IdP session id "sid" (OIDC sid,
// SAML SessionIndex: back-channel and IdP-initiated logout) and the SAML
// NameID details a LogoutRequest must repeat ("saml_*"). Access and
// refresh tokens are not kept until a route asks to forward them, so
// cookies stay small and nothing leaks by default.
func keptTokens(t map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range t {
		if v != "" && (k == "id_token" || k == "sid" || strings.HasPrefix(k, "saml_")) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// keptTokensForwarding is keptTokens plus the access and refresh tokens,
// for providers whose access token a route forwards.
func keptTokensForwarding(t map[string]string) map[string]string {
	out := keptTokens(t)
	for _, k := range []string{tokAccess, tokRefresh, tokExpiry, tokType} {
		if v := t[k]; v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// loginHint accepts a short, printable login_hint, dropping anything else.
func loginHint(h string) string {
	if len(h) > 256 {
		return ""
	}
	for i := 0; i < len(h); i++ {
		if h[i] < 0x20 || h[i] == 0x7f {
			return ""
		}
	}
	return h
}

// callbackPath is a provider's callback path relative to Prefix.
func callbackPath(p providers.Provider) string {
	if cp, ok := p.(providers.CallbackPather); ok {
		return cp.CallbackPath()
	}
	return "callback/" + p.Name()
}

// attemptCookieOptions makes the attempt cookie SameSite=None for
// providers whose callback is a cross-site POST.
func attemptCookieOptions(p providers.Provider) []session.TransientOption {
	if cs, ok := p.(providers.CrossSiteCallback); ok && cs.CrossSiteCallback() {
		return []session.TransientOption{session.WithSameSite(http.SameSiteNoneMode)}
	}
	return nil
}

// loginFailed logs the precise reason and shows a friendly page.
func (g *Gateway) loginFailed(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, provider string, err error, rd, aud string) {
	reason, public := "error", "Signing in did not work. Please try again."
	var le *providers.LoginError
	if errors.As(err, &le) {
		reason = le.Reason
		if le.Public != "" {
			public = le.Public
		}
	}
	rec.reason = "login_failed:" + reason
	s.opts.Metrics.SignIn(provider, reason)
	g.log.Warn("sign-in failed", zap.String("request_id", rec.rid), zap.String("provider", provider), zap.String("reason", reason), zap.Error(err))
	retry := Prefix + "login?" + url.Values{"audience": {aud}, "rd": {rd}}.Encode()
	if wantsJSON(r, nil) {
		writeJSONError(w, http.StatusUnauthorized, "login_failed", public, rec.rid)
		return
	}
	s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusUnauthorized, Title: "Sign-in failed", Message: public, RequestID: rec.rid, RetryURL: retry})
}

// staticPicker shows the DEMO-ONLY user picker of a static provider.
func (g *Gateway) staticPicker(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, name string) {
	sp, ok := s.opts.Providers[name].(interface {
		DisplayName() string
		Users() []config.StaticUser
	})
	state := r.URL.Query().Get("state")
	if !ok || state == "" || r.Method != http.MethodGet {
		g.fail(s, w, r, rec, http.StatusNotFound, "Not found", "There is nothing here.")
		return
	}
	page := pages.StaticLoginPage{Provider: sp.DisplayName(), Action: Prefix + "callback/" + name, State: state}
	for _, u := range sp.Users() {
		page.Users = append(page.Users, pages.StaticUser{ID: u.Subject, Name: u.Name, Email: u.Email, Groups: u.Groups})
	}
	rec.reason = "static_picker"
	s.opts.Pages.StaticLogin(w, page)
}

// logout ends sessions. GET shows a confirmation form; POST (with the
// form's CSRF token, same-origin) clears the sessions, so a cross-site link
// or image cannot sign anyone out.
func (g *Gateway) logout(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord) {
	store := s.opts.Store
	var auds []string
	for _, a := range []identity.Audience{identity.Workforce, identity.Customer} {
		if len(s.pol.Providers(a)) > 0 {
			auds = append(auds, string(a))
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rd := g.returnURL(s, r.URL.Query().Get("rd"), rec)
		tok := randomToken(24)
		if err := s.opts.Sessions.SetTransient(w, "csrf-logout", tok, loginTTL); err != nil {
			g.fail(s, w, r, rec, http.StatusInternalServerError, "Something went wrong", "Please try again.")
			return
		}
		// Browsers apply form-action to the redirect that follows the POST,
		// so the IdPs' origins (where single logout goes) must be allowed.
		var origins []string
		for _, name := range sortedNames(s.opts.Providers) {
			p := s.opts.Providers[name]
			if iss, ok := p.(interface{ Issuer() string }); ok {
				if u, err := url.Parse(iss.Issuer()); err == nil && u.Host != "" {
					origins = append(origins, u.Scheme+"://"+u.Host)
				}
			}
			if lo, ok := p.(providers.LogoutOriginer); ok {
				origins = append(origins, lo.LogoutOrigins()...)
			}
		}
		s.opts.Pages.Logout(w, pages.LogoutPage{Action: Prefix + "logout", CSRFToken: tok, Audiences: auds, ReturnURL: rd, FormOrigins: origins})
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		var want string
		err := s.opts.Sessions.GetTransient(r, "csrf-logout", &want)
		got := r.PostFormValue(pages.FieldCSRFToken)
		if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			rec.reason = "logout_csrf"
			g.fail(s, w, r, rec, http.StatusForbidden, "Sign-out not confirmed", "Please use the sign-out button to sign out.")
			return
		}
		s.opts.Sessions.ClearTransient(w, "csrf-logout")
		chosen := r.PostForm[pages.FieldAudience]
		if len(chosen) == 0 {
			chosen = auds
		}
		rd := g.returnURL(s, r.PostFormValue(pages.FieldReturnTo), rec)
		// Local sign-out always happens first and always works: the
		// cookie goes, and the session id is revoked so a copy of the
		// cookie is worthless on every replica. Then, if the provider has
		// single logout, the browser goes there too.
		var idpLogout *providers.Redirect
		var idpProvider string
		for _, a := range chosen {
			if !contains(auds, a) {
				continue
			}
			// A session already revoked (the account was deleted, the IdP
			// ended it) only loses its cookie: writing a sign-out event
			// would bring back the key of an erased person.
			if p := s.liveSession(r, identity.Audience(a)); p != nil {
				if err := g.revoke(r.Context(), s, "sid:"+p.ID); err != nil {
					g.log.Error("cannot revoke the session in the shared state; the cookie is cleared but a copy stays valid until it expires", zap.String("request_id", rec.rid), zap.Error(err))
				}
				g.auditSignOut(s, r.Context(), rec, p)
				if idpLogout == nil {
					idpLogout, idpProvider = g.providerLogout(s, r, rec, p, rd)
				}
				g.log.Info("sign-out", append([]zap.Field{zap.String("request_id", rec.rid), zap.String("audience", a), zap.String("provider", p.Identity.Provider)}, s.userFields(&p.Identity)...)...)
			}
			store.Clear(w, r, identity.Audience(a))
		}
		rec.reason = "logout"
		if idpLogout != nil {
			if len(idpLogout.Data) > 0 {
				// The IdP answers at the provider's logout endpoint; keep
				// what is needed to check that answer and where to go next.
				keep := logoutAttempt{Provider: idpProvider, ReturnURL: rd, Data: idpLogout.Data, Created: g.now()}
				if err := s.opts.Sessions.SetTransient(w, logoutCookie, keep, loginTTL, session.WithSameSite(http.SameSiteNoneMode)); err != nil {
					g.log.Warn("cannot keep the single-logout state; signed out locally only", zap.String("request_id", rec.rid), zap.Error(err))
					idpLogout = nil
				}
			}
		}
		if idpLogout != nil {
			rec.reason = "logout_idp:" + idpProvider
			if idpLogout.Form != nil {
				g.postForm(s, w, idpLogout)
				return
			}
			http.Redirect(w, r, idpLogout.URL, http.StatusSeeOther)
			return
		}
		if rd != "/" {
			http.Redirect(w, r, rd, http.StatusSeeOther)
			return
		}
		s.opts.Pages.Notice(w, pages.NoticePage{Title: "Signed out", Message: "You are signed out. You can close this window.", LinkURL: "/", LinkLabel: "Sign in again", RequestID: rec.rid})
	default:
		g.fail(s, w, r, rec, http.StatusMethodNotAllowed, "Not allowed", "This kind of request is not supported.")
	}
}

// providerLogout asks the session's provider where to end the IdP session
// (OIDC end_session_endpoint, SAML SLO); nil when it has none or fails,
// which never blocks the local sign-out.
func (g *Gateway) providerLogout(s *snapshot, r *http.Request, rec *accessRecord, p *session.Payload, rd string) (*providers.Redirect, string) {
	prov, ok := s.opts.Providers[p.Identity.Provider]
	if !ok {
		return nil, ""
	}
	back := rd
	if strings.HasPrefix(back, "/") {
		back = s.origin(r) + back
	}
	var red *providers.Redirect
	var u string
	var err error
	switch lp := prov.(type) {
	case providers.SingleLogout:
		red, err = lp.StartLogout(r.Context(), &p.Identity, p.Tokens, back)
	case providers.TokenLogoutProvider:
		u, err = lp.LogoutWithTokens(r.Context(), &p.Identity, p.Tokens, back)
	case providers.LogoutProvider:
		u, err = lp.Logout(r.Context(), &p.Identity, back)
	default:
		return nil, ""
	}
	if err != nil {
		g.log.Warn("single logout at the provider failed; signed out locally", zap.String("request_id", rec.rid), zap.String("provider", prov.Name()), zap.Error(err))
		return nil, ""
	}
	if u != "" {
		red = &providers.Redirect{URL: u}
	}
	if red == nil || red.URL == "" {
		return nil, ""
	}
	return red, prov.Name()
}

// logoutCookie keeps a single logout this gateway started, until the IdP
// answers at the provider's logout endpoint.
const logoutCookie = "slo"

// logoutAttempt is what logoutCookie holds.
type logoutAttempt struct {
	Provider  string            `json:"prov"`
	ReturnURL string            `json:"rd"`
	Data      map[string]string `json:"data,omitempty"`
	Created   time.Time         `json:"created"`
}

// receiveLogout serves a provider's logout endpoint: an IdP telling us a
// person signed out there (SAML LogoutRequest, OIDC back-channel logout
// token), or answering a logout we started (SAML LogoutResponse). The
// sessions it names end on every replica, through revocations.
func (g *Gateway) receiveLogout(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, name string) {
	prov := s.opts.Providers[name]
	lr := prov.(providers.LogoutReceiver)
	var kept logoutAttempt
	var data map[string]string
	if err := s.opts.Sessions.GetTransient(r, logoutCookie, &kept); err == nil && kept.Provider == name && g.now().Sub(kept.Created) <= loginTTL {
		data = kept.Data
	}
	notice, err := lr.ReceiveLogout(r.Context(), r, data)
	if err != nil {
		reason := "logout_refused"
		var le *providers.LoginError
		if errors.As(err, &le) {
			reason = "logout_refused:" + le.Reason
		}
		rec.reason = reason
		g.log.Warn("logout message refused", zap.String("request_id", rec.rid), zap.String("provider", name), zap.Error(err))
		if data != nil {
			s.opts.Sessions.ClearTransient(w, logoutCookie, session.WithSameSite(http.SameSiteNoneMode))
			// Our own logout: the local session is gone whatever the IdP said.
			s.opts.Pages.Notice(w, pages.NoticePage{Title: "Signed out here", Message: "You are signed out of this site, but your identity provider reported a problem ending its own session. Close the browser to be sure.", LinkURL: "/", LinkLabel: "Home", RequestID: rec.rid})
			return
		}
		msg := "This sign-out message could not be accepted."
		if le != nil && le.Public != "" {
			msg = le.Public
		}
		g.fail(s, w, r, rec, http.StatusBadRequest, "Sign-out failed", msg)
		return
	}
	if notice.Completed {
		s.opts.Sessions.ClearTransient(w, logoutCookie, session.WithSameSite(http.SameSiteNoneMode))
		rec.reason = "logout_completed:" + name
		rd := "/"
		if data != nil {
			rd = g.returnURL(s, kept.ReturnURL, rec)
		}
		if rd != "/" {
			http.Redirect(w, r, rd, http.StatusSeeOther)
			return
		}
		s.opts.Pages.Notice(w, pages.NoticePage{Title: "Signed out", Message: "You are signed out, here and at your identity provider.", LinkURL: "/", LinkLabel: "Sign in again", RequestID: rec.rid})
		return
	}
	var keys []string
	switch {
	case len(notice.SessionIDs) > 0:
		for _, sid := range notice.SessionIDs {
			keys = append(keys, "psid:"+name+"\x00"+sid)
		}
	case notice.Subject != "":
		keys = append(keys, "sub:"+name+"\x00"+notice.Subject)
	}
	var ended error
	if len(keys) == 0 {
		ended = errors.New("the logout message names no session")
	} else {
		ended = g.revoke(r.Context(), s, keys...)
	}
	// The browser that carried the message (front channel) loses its
	// cookies for the provider's audiences at once.
	for _, a := range []identity.Audience{identity.Workforce, identity.Customer} {
		if contains(s.pol.Providers(a), name) {
			if p, _, err := s.opts.Store.Load(r, a); err == nil && p.Identity.Provider == name {
				s.opts.Store.Clear(w, r, a)
			}
		}
	}
	rec.reason = "logout_idp_initiated:" + name
	if ended != nil {
		rec.reason = "logout_idp_initiated_failed:" + name
		g.log.Error("IdP logout: sessions not ended", zap.String("request_id", rec.rid), zap.String("provider", name), zap.Error(ended))
	} else {
		g.log.Info("IdP logout: sessions ended", zap.String("request_id", rec.rid), zap.String("provider", name), zap.Int("keys", len(keys)))
	}
	if notice.Respond != nil {
		notice.Respond(w, r, ended)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if ended != nil {
		writeJSONError(w, http.StatusServiceUnavailable, "logout_failed", "the sessions could not be ended", rec.rid)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// whoamiSession is one audience's session as /.gatehouse/whoami shows it.
// It never includes tokens.
type whoamiSession struct {
	Audience      identity.Audience `json:"audience"`
	Subject       string            `json:"sub"`
	Provider      string            `json:"provider"`
	Email         string            `json:"email,omitempty"`
	EmailVerified bool              `json:"email_verified,omitempty"`
	Name          string            `json:"name,omitempty"`
	Groups        []string          `json:"groups,omitempty"`
	Roles         []string          `json:"roles,omitempty"`
	AMR           []string          `json:"amr,omitempty"`
	ACR           string            `json:"acr,omitempty"`
	AuthTime      time.Time         `json:"auth_time,omitzero"`
	Created       time.Time         `json:"session_created,omitzero"`
}

// whoami shows the caller's sessions as JSON (no tokens, ever).
func (g *Gateway) whoami(s *snapshot, w http.ResponseWriter, r *http.Request) {
	out := struct {
		Sessions []whoamiSession `json:"sessions"`
	}{Sessions: []whoamiSession{}}
	for _, a := range []identity.Audience{identity.Workforce, identity.Customer} {
		p := s.liveSession(r, a)
		if p == nil {
			continue
		}
		id := &p.Identity
		out.Sessions = append(out.Sessions, whoamiSession{
			Audience: a, Subject: id.Subject, Provider: id.Provider, Email: id.Email, EmailVerified: id.EmailVerified,
			Name: id.Name, Groups: id.Groups, Roles: s.pol.RoleNames(s.pol.Roles(id)), AMR: id.AMR, ACR: id.ACR,
			AuthTime: id.AuthTime, Created: p.Created,
		})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}
