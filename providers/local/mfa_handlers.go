package local

import (
	"crypto/hmac"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/store"
)

const (
	msgBadCode       = "That code is not valid. Check the time on your phone, and that each code is used only once; or use a recovery code."
	msgSignInAgain   = "This step expired. Please sign in again."
	msgManageExpired = "Your security page expired. Please confirm it is you again."
)

// afterPassword continues a checked password: with a second factor
// enrolled it asks for it; otherwise it signs in (next "") or opens the
// security page (next "manage"). A sign-in that needs MFA (the attempt's
// step-up, or mfa.required) from an account without a second factor
// ends on a page that offers to enrol, never in a proof the gateway would
// refuse (which would only loop back here).
func (p *Provider) afterPassword(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, next string) {
	m, err := p.accounts.AccountMFA(r.Context(), acct.ID)
	if err != nil {
		p.log.Error("local provider: cannot read second factors", zap.String("account", acct.ID), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	if m.HasTOTP() || m.RecoveryCodes > 0 || (p.passkeysOn() && m.Passkeys > 0) {
		tok := p.tokens.issue(claims{Purpose: purposeMFA, Account: acct.ID, PwdAt: acct.PasswordChanged.UnixNano(), State: f.state,
			Audience: f.aud, ReturnURL: f.rd, StepUp: f.stepUp, Fields: f.claims, Next: next}, mfaTTL)
		pg := p.form(w, r, ViewMFA, "mfa", f)
		pg.Title, pg.Token = "Two-step verification", tok
		p.offerPasskey(w, r, &pg, acct, m)
		p.page(w, r, pg)
		return
	}
	if next == "manage" {
		p.showSecurity(w, r, acct, f, http.StatusOK, "", "")
		return
	}
	if f.stepUp || p.mfaRequired {
		p.log.Info("local provider: sign-in needs a second factor the account does not have", zap.String("provider", p.name),
			zap.String("account", acct.ID), zap.Bool("step_up", f.stepUp))
		body := "Your account must use two-step verification, and it is not set up yet. Set it up now with an authenticator app; then sign in again with your password and a code."
		if f.stepUp {
			body = "The application you are signing in to requires two-step verification, and your account does not have it yet. Set it up now with an authenticator app; then sign in again with your password and a code."
		}
		if !p.totpOn && p.passkeysOn() {
			body = "Two-step verification is required, and your account does not have it yet. Add a passkey on the next page; then sign in again with your password and the passkey."
		} else if !p.totpOn {
			body = "The application you are signing in to requires two-step verification, which this account service does not offer. Please contact its administrator."
		}
		pg := p.form(w, r, ViewMFANeeded, "security/manage", f)
		pg.Status, pg.Title, pg.Body = http.StatusForbidden, "Two-step verification needed", body
		pg.Token = p.manageToken(r, acct, f)
		pg.MFA = MFAInfo{TOTPOffered: p.totpOn, Continue: p.continueURL(f), Passkey: PasskeyInfo{Offered: p.passkeysOn()}}
		p.page(w, r, pg)
		return
	}
	p.issueProof(w, r, acct, f, []string{AMRPassword})
}

// issueProof ends a sign-in: the auto-posted, signed, single-use proof.
func (p *Provider) issueProof(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, amr []string) {
	if p.needsProfile(w, r, acct, f, amr) {
		return
	}
	proof := p.tokens.issue(claims{Purpose: purposeSignIn, Account: acct.ID, State: f.state, AMR: amr}, ProofTTL)
	p.page(w, r, Page{View: ViewAutoPost, Title: "Signing in", Action: p.callbackPath,
		Fields: map[string]string{"state": f.state, "proof": proof}})
}

// stepAccount reads the account a token names and checks it can still
// sign in with the password the token was issued after.
func (p *Provider) stepAccount(r *http.Request, c *claims) (*store.Account, error) {
	acct, err := p.accounts.AccountByID(r.Context(), c.Account)
	if err != nil {
		return nil, err
	}
	if acct.PasswordChanged.UnixNano() != c.PwdAt {
		return nil, errors.New("the password changed")
	}
	if !acct.EmailVerified || acct.Locked(p.now()) {
		return nil, errors.New("account unverified or locked")
	}
	return acct, nil
}

// wrongCode counts a refused code like a wrong password (lockout).
func (p *Provider) wrongCode(r *http.Request, acct *store.Account) {
	n, until, err := p.accounts.RecordFailure(r.Context(), acct.ID, p.maxFailures, p.lockFor)
	switch {
	case err != nil:
		p.log.Error("local provider: cannot record a wrong code", zap.String("account", acct.ID), zap.Error(err))
	case !until.IsZero():
		p.log.Warn("local provider: account locked after repeated wrong codes", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Time("until", until))
	default:
		p.log.Info("local provider: wrong second-factor code", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Int("failures", n))
	}
}

func (p *Provider) goodCode(r *http.Request, acct *store.Account) {
	if acct.FailedAttempts > 0 {
		if err := p.accounts.ResetFailures(r.Context(), acct.ID); err != nil {
			p.log.Warn("local provider: cannot reset the failure count", zap.String("account", acct.ID), zap.Error(err))
		}
	}
}

// serveMFA checks the second factor after the password.
func (p *Provider) serveMFA(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		f := readFlow(r)
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgSignInAgain, p.links(f))
		return
	}
	if !p.parse(w, r) {
		return
	}
	tok := r.PostFormValue("token")
	refill := func(pg Page) Page { pg.Title, pg.Token = "Two-step verification", tok; return pg }
	if !p.post(w, r, "mfa", refill) {
		return
	}
	ctx := r.Context()
	c, f, acct, err := p.openStep(r, tok, purposeMFA, "second-factor")
	again := p.refuseStep(w, r, f, "local provider: second-factor step refused")
	if err != nil {
		again(err)
		return
	}
	m, ok := p.secondFactorAttempt(w, r, acct, f)
	if !ok {
		return
	}
	method, err := p.checkSecondFactor(ctx, acct.ID, m.TOTPSecret, r.PostFormValue("code"))
	if err != nil {
		p.log.Error("local provider: cannot check a second factor", zap.String("account", acct.ID), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	if method == "" {
		p.wrongCode(r, acct)
		pg := refill(p.form(w, r, ViewMFA, "mfa", f))
		pg.Status, pg.Error = http.StatusUnauthorized, msgBadCode
		p.offerPasskey(w, r, &pg, acct, m)
		p.page(w, r, pg)
		return
	}
	if !p.useOnce(w, r, purposeMFA, c, f, "second-factor token used twice", again) {
		return
	}
	p.goodCode(r, acct)
	p.afterSecondFactor(w, r, c, acct, f, []string{AMRPassword, method})
}

// openStep opens the token of a sign-in step after the password (purpose;
// what names the step in errors): the token must be valid, belong to the
// attempt of the posted form, and name an account that can still sign
// in. The flow returned is the token's once it belongs to the attempt,
// else the posted form's.
func (p *Provider) openStep(r *http.Request, tok, purpose, what string) (*claims, flow, *store.Account, error) {
	f := readFlow(r)
	c, err := p.tokens.check(tok, purpose)
	if err != nil {
		return nil, f, nil, err
	}
	if !hmac.Equal([]byte(c.State), []byte(f.state)) {
		return nil, f, nil, errors.New(what + " token belongs to another attempt")
	}
	f = flow{state: c.State, aud: c.Audience, rd: c.ReturnURL, stepUp: c.StepUp, claims: c.Fields}
	acct, err := p.stepAccount(r, c)
	return c, f, acct, err
}

// refuseStep returns the answer to a refused sign-in step after the
// password: it logs msg with the reason and asks to sign in again.
func (p *Provider) refuseStep(w http.ResponseWriter, r *http.Request, f flow, msg string) func(error) {
	return func(err error) {
		p.log.Info(msg, zap.String("provider", p.name), zap.Error(err))
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgSignInAgain, p.links(f))
	}
}

// secondFactorAttempt counts a second-factor attempt against the
// account's limit and reads the account's second factors. It answers and
// returns false when the attempt must not go on.
func (p *Provider) secondFactorAttempt(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow) (*store.MFA, bool) {
	if !p.limit(w, r, "mfa:"+acct.ID, p.perAccount, f) {
		return nil, false
	}
	m, err := p.accounts.AccountMFA(r.Context(), acct.ID)
	if err != nil {
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return nil, false
	}
	return m, true
}

// afterSecondFactor continues an accepted second factor (its token c is
// used up): it opens the security page when the step came from there,
// else it ends the sign-in with amr.
func (p *Provider) afterSecondFactor(w http.ResponseWriter, r *http.Request, c *claims, acct *store.Account, f flow, amr []string) {
	if c.Next == "manage" {
		p.showSecurity(w, r, acct, f, http.StatusOK, "", "")
		return
	}
	if f.state == "" {
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgNoAttempt, p.links(f))
		return
	}
	p.issueProof(w, r, acct, f, amr)
}

// ---- security page ----

// serveSecurity is the entrance of the security page: the person signs
// in again (password, then the second factor when one is enrolled) on
// this page, because the provider cannot see the gateway's session.
func (p *Provider) serveSecurity(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		pg := p.form(w, r, ViewSignIn, "security", readFlow(r))
		pg.Title, pg.Message = "Two-step verification", "Sign in again to manage two-step verification."
		if e := store.NormalizeEmail(r.URL.Query().Get("email")); e != "" {
			pg.Email = e
		}
		p.page(w, r, pg)
		return
	}
	acct, f, ok := p.passwordPost(w, r, "security", "Two-step verification", false)
	if !ok {
		return
	}
	if !acct.EmailVerified {
		p.confirmFirst(w, r, acct, f, "try again")
		return
	}
	p.afterPassword(w, r, acct, f, "manage")
}

// browserBind ties a security-page token to this browser's CSRF cookie.
func (p *Provider) browserBind(r *http.Request) string {
	ck, err := r.Cookie(p.csrf.cookieName())
	if err != nil || ck.Value == "" {
		return ""
	}
	return p.csrf.sign(ck.Value, "security-bind")
}

// manageToken opens the security page for a re-authenticated person for
// manageTTL, in this browser, while the password stays the same.
func (p *Provider) manageToken(r *http.Request, acct *store.Account, f flow) string {
	return p.tokens.issue(claims{Purpose: purposeManage, Account: acct.ID, PwdAt: acct.PasswordChanged.UnixNano(),
		State: f.state, Audience: f.aud, ReturnURL: f.rd, StepUp: f.stepUp, Bind: p.browserBind(r)}, manageTTL)
}

// continueURL goes back to signing in after the security page: a new
// sign-in at the gateway when the audience is known (the attempt may have
// expired meanwhile), else the attempt's sign-in page.
func (p *Provider) continueURL(f flow) string {
	if u := p.loginURL(f.aud, f.rd); u != "" {
		return u
	}
	if f.state != "" {
		return p.base + "signin" + f.query()
	}
	return ""
}

func (p *Provider) securityPage(w http.ResponseWriter, r *http.Request, view string, acct *store.Account, f flow, info MFAInfo) Page {
	pg := p.form(w, r, view, "security/manage", f)
	pg.Title, pg.Email, pg.Token = "Two-step verification", acct.Email, p.manageToken(r, acct, f)
	info.TOTPOffered, info.Continue = p.totpOn, p.continueURL(f)
	pg.MFA = info
	return pg
}

func (p *Provider) showSecurity(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, status int, msg, errMsg string) {
	m, err := p.accounts.AccountMFA(r.Context(), acct.ID)
	if err != nil {
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	pg := p.securityPage(w, r, ViewSecurity, acct, f, MFAInfo{TOTPOn: m.HasTOTP(), RecoveryLeft: m.RecoveryCodes})
	p.passkeySection(r, &pg, acct)
	pg.Status, pg.Message, pg.Error = status, msg, errMsg
	p.page(w, r, pg)
}

func (p *Provider) showSetup(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, secret []byte, enrol string, status int, errMsg string) {
	uri := p.otpauthURI(acct.Email, secret)
	pg := p.securityPage(w, r, ViewTOTPSetup, acct, f, MFAInfo{URI: uri, Secret: groupSecret(secret), QR: qrSVG(uri), Enrol: enrol})
	pg.Title = "Set up an authenticator app"
	pg.Status, pg.Error = status, errMsg
	p.page(w, r, pg)
}

func (p *Provider) showCodes(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, codes []string, msg string) {
	pg := p.securityPage(w, r, ViewRecovery, acct, f, MFAInfo{TOTPOn: true, Codes: codes})
	pg.Title, pg.Message = "Your recovery codes", msg
	p.page(w, r, pg)
}

// serveManage performs the security page's operations; every form
// carries the page's token.
func (p *Provider) serveManage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, p.base+"security"+readFlow(r).query(), http.StatusSeeOther)
		return
	}
	if !p.parse(w, r) {
		return
	}
	expired := func(pg Page) Page {
		pg.View, pg.Title, pg.Body = ViewNotice, "Two-step verification", msgManageExpired
		pg.Links = map[string]string{"signin": p.base + "security" + readFlow(r).query()}
		return pg
	}
	if !p.post(w, r, "security/manage", expired) {
		return
	}
	ctx := r.Context()
	c, err := p.tokens.check(r.PostFormValue("token"), purposeManage)
	var acct *store.Account
	if err == nil && (c.Bind == "" || !hmac.Equal([]byte(c.Bind), []byte(p.browserBind(r)))) {
		err = errors.New("security token of another browser")
	}
	if err == nil {
		acct, err = p.stepAccount(r, c)
	}
	if err != nil {
		p.log.Info("local provider: security page refused", zap.String("provider", p.name), zap.Error(err))
		pg := expired(Page{})
		pg.Status = http.StatusForbidden
		p.page(w, r, pg)
		return
	}
	f := flow{state: c.State, aud: c.Audience, rd: c.ReturnURL, stepUp: c.StepUp}
	m, err := p.accounts.AccountMFA(ctx, acct.ID)
	if err != nil {
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	code := r.PostFormValue("code")
	switch op := r.PostFormValue("op"); op {
	case "", "overview":
		p.showSecurity(w, r, acct, f, http.StatusOK, "", "")

	case "totp-start":
		if !p.totpOn || m.HasTOTP() {
			p.showSecurity(w, r, acct, f, http.StatusConflict, "", "An authenticator app cannot be added now.")
			return
		}
		secret, enrol := p.newEnrolment(acct.ID)
		p.showSetup(w, r, acct, f, secret, enrol, http.StatusOK, "")

	case "totp-confirm":
		enrol := r.PostFormValue("enrol")
		secret, err := p.openEnrolment(acct.ID, enrol)
		if err != nil || !p.totpOn {
			p.showSecurity(w, r, acct, f, http.StatusBadRequest, "", "The setup expired. Please start again.")
			return
		}
		if !p.limit(w, r, "mfa:"+acct.ID, p.perAccount, f) {
			return
		}
		ok, err := p.checkTOTP(ctx, acct.ID, secret, cleanCode(code))
		if err != nil {
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		if !ok {
			p.showSetup(w, r, acct, f, secret, enrol, http.StatusBadRequest,
				"That code is not valid. Type the code the app shows now (the phone's clock must be right), then try again.")
			return
		}
		codes, hashes := newRecoveryCodes(acct.ID)
		err = p.accounts.EnableTOTP(ctx, acct.ID, p.seal("totp", acct.ID, secret), hashes)
		if errors.Is(err, store.ErrExists) {
			p.showSecurity(w, r, acct, f, http.StatusConflict, "", "An authenticator app is already set up.")
			return
		}
		if err != nil {
			p.log.Error("local provider: cannot enable totp", zap.String("account", acct.ID), zap.Error(err))
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		p.log.Info("local provider: totp enabled", zap.String("provider", p.name), zap.String("account", acct.ID))
		p.showCodes(w, r, acct, f, codes, "Two-step verification is on.")

	case "totp-disable", "recovery-new":
		if !m.HasTOTP() {
			p.showSecurity(w, r, acct, f, http.StatusConflict, "", "Two-step verification is off.")
			return
		}
		if !p.limit(w, r, "mfa:"+acct.ID, p.perAccount, f) {
			return
		}
		method, err := p.checkSecondFactor(ctx, acct.ID, m.TOTPSecret, code)
		if err != nil {
			p.log.Error("local provider: cannot check a second factor", zap.String("account", acct.ID), zap.Error(err))
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		if method == "" {
			p.wrongCode(r, acct)
			p.showSecurity(w, r, acct, f, http.StatusUnauthorized, "", msgBadCode)
			return
		}
		p.goodCode(r, acct)
		if op == "totp-disable" {
			if err := p.accounts.DisableTOTP(ctx, acct.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
				p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
				return
			}
			p.log.Info("local provider: totp disabled", zap.String("provider", p.name), zap.String("account", acct.ID))
			p.showSecurity(w, r, acct, f, http.StatusOK, "Two-step verification is off. Your recovery codes no longer work.", "")
			return
		}
		codes, hashes := newRecoveryCodes(acct.ID)
		if err := p.accounts.SetRecoveryCodes(ctx, acct.ID, hashes); err != nil {
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		p.log.Info("local provider: recovery codes replaced", zap.String("provider", p.name), zap.String("account", acct.ID))
		p.showCodes(w, r, acct, f, codes, "New recovery codes made: the old ones no longer work.")

	case "passkey-start", "passkey-finish", "passkey-remove":
		p.managePasskey(w, r, op, acct, f)

	default:
		p.showSecurity(w, r, acct, f, http.StatusBadRequest, "", "Unknown request.")
	}
}
