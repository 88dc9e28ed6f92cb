package local

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/store"
)

const (
	msgPasskeyFailed = "The passkey was not accepted. Please try again, or use another passkey."
	msgPasskeyAdd    = "The passkey was not added. Please try again."
)

// passkeyEndpoints adds the passkey endpoints to m (b is the provider's
// folder relative to /.gatehouse/).
func (p *Provider) passkeyEndpoints(m map[string]http.Handler, b string) {
	if !p.passkeysOn() {
		return
	}
	m[b+"static/passkey.js"] = http.HandlerFunc(servePasskeyJS)
	m[b+"mfa/passkey"] = http.HandlerFunc(p.serveMFAPasskey)
	m[b+"signin/passkey"] = http.HandlerFunc(p.servePasswordless)
}

// passkeySection fills the passkey part of the security page.
func (p *Provider) passkeySection(r *http.Request, pg *Page, acct *store.Account) {
	if !p.passkeysOn() {
		return
	}
	keys, err := p.accounts.Passkeys(r.Context(), acct.ID)
	if err != nil {
		p.log.Error("local provider: cannot list passkeys", zap.String("account", acct.ID), zap.Error(err))
	}
	pg.MFA.Passkey.Offered = len(keys) < maxPasskeys
	pg.MFA.Passkey.List = passkeyItems(keys)
}

// managePasskey performs the security page's passkey operations (the
// page's token, CSRF and browser binding are already checked).
func (p *Provider) managePasskey(w http.ResponseWriter, r *http.Request, op string, acct *store.Account, f flow) {
	ctx := r.Context()
	if !p.passkeysOn() {
		p.showSecurity(w, r, acct, f, http.StatusConflict, "", "Passkeys are not available.")
		return
	}
	switch op {
	case "passkey-start":
		u, keys, err := p.passkeyUserOf(ctx, acct)
		if err != nil {
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		if len(keys) >= maxPasskeys {
			p.showSecurity(w, r, acct, f, http.StatusConflict, "", "This account has as many passkeys as it can have. Remove one first.")
			return
		}
		var exclude []protocol.CredentialDescriptor
		for _, c := range u.creds {
			exclude = append(exclude, c.Descriptor())
		}
		creation, session, err := p.passkeys.wa.BeginRegistration(u, webauthn.WithExclusions(exclude))
		if err != nil {
			p.log.Error("local provider: cannot begin a passkey registration", zap.String("account", acct.ID), zap.Error(err))
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		opts, _ := json.Marshal(creation)
		name := cleanPasskeyName(r.PostFormValue("name"))
		pg := p.securityPage(w, r, ViewPasskeyAdd, acct, f, MFAInfo{})
		pg.Title = "Add a passkey"
		pg.MFA.Passkey = PasskeyInfo{Options: string(opts), Name: name, Script: p.passkeyScript(),
			Ceremony: p.sealCeremony(ceremony{Kind: ceremonyRegister, Account: acct.ID, Bind: p.passkeyBind(w, r), Name: name, Session: *session})}
		p.page(w, r, pg)

	case "passkey-finish":
		c, err := p.openCeremony(r, ceremonyRegister, acct.ID)
		if err != nil {
			p.log.Info("local provider: passkey registration refused", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Error(err))
			p.showSecurity(w, r, acct, f, http.StatusBadRequest, "", msgPasskeyAdd)
			return
		}
		u, _, err := p.passkeyUserOf(ctx, acct)
		if err != nil {
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(r.PostFormValue("credential")))
		var cred *webauthn.Credential
		if err == nil {
			cred, err = p.passkeys.wa.CreateCredential(u, c.Session, parsed)
		}
		if err != nil {
			p.log.Info("local provider: passkey registration refused", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Error(describe(err)))
			p.showSecurity(w, r, acct, f, http.StatusBadRequest, "", msgPasskeyAdd)
			return
		}
		k := store.Passkey{CredentialID: cred.ID, AccountID: acct.ID, PublicKey: cred.PublicKey, SignCount: cred.Authenticator.SignCount,
			Flags: uint8(cred.Flags.ProtocolValue()), AAGUID: cred.Authenticator.AAGUID, AttestationType: cred.AttestationType,
			Name: c.Name, Created: p.now()}
		for _, t := range cred.Transport {
			k.Transports = append(k.Transports, string(t))
		}
		err = p.accounts.AddPasskey(ctx, k)
		if errors.Is(err, store.ErrExists) {
			p.showSecurity(w, r, acct, f, http.StatusConflict, "", "This passkey is already registered.")
			return
		}
		if err != nil {
			p.log.Error("local provider: cannot store a passkey", zap.String("account", acct.ID), zap.Error(err))
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		p.log.Info("local provider: passkey added", zap.String("provider", p.name), zap.String("account", acct.ID), zap.String("name", k.Name))
		p.showSecurity(w, r, acct, f, http.StatusOK, "Passkey “"+k.Name+"” added. Signing in now asks for it after your password.", "")

	case "passkey-remove":
		id, err := base64.RawURLEncoding.DecodeString(r.PostFormValue("credential_id"))
		if err == nil && len(id) > 0 && len(id) <= 1023 {
			err = p.accounts.DeletePasskey(ctx, acct.ID, id)
		} else {
			err = store.ErrNotFound
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			p.showSecurity(w, r, acct, f, http.StatusNotFound, "", "That passkey is not registered to this account.")
		case err != nil:
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		default:
			p.log.Info("local provider: passkey removed", zap.String("provider", p.name), zap.String("account", acct.ID))
			p.showSecurity(w, r, acct, f, http.StatusOK, "Passkey removed: it no longer signs in to this account.", "")
		}
	}
}

// describe adds go-webauthn's details (which check failed) to its error.
func describe(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return errors.New(pe.Error() + ": " + pe.DevInfo)
	}
	return err
}

// offerPasskey turns the second-factor page pg (after the password) into
// the passkey page when the account has passkeys: the browser is asked
// for one of them, and the code form stays for TOTP or recovery codes.
func (p *Provider) offerPasskey(w http.ResponseWriter, r *http.Request, pg *Page, acct *store.Account, m *store.MFA) {
	if !p.passkeysOn() || m.Passkeys == 0 {
		return
	}
	u, _, err := p.passkeyUserOf(r.Context(), acct)
	if err == nil && len(u.creds) == 0 {
		return
	}
	var assertion *protocol.CredentialAssertion
	var session *webauthn.SessionData
	if err == nil {
		assertion, session, err = p.passkeys.wa.BeginLogin(u)
	}
	if err != nil {
		p.log.Error("local provider: cannot begin a passkey sign-in", zap.String("account", acct.ID), zap.Error(err))
		return
	}
	opts, _ := json.Marshal(assertion)
	pg.View = ViewPasskeyMFA
	pg.MFA.Passkey = PasskeyInfo{Options: string(opts), Script: p.passkeyScript(), Action: p.base + "mfa/passkey",
		CSRF:     p.csrf.token(w, r, "mfa/passkey"),
		Ceremony: p.sealCeremony(ceremony{Kind: ceremonyMFA, Account: acct.ID, Bind: p.passkeyBind(w, r), Session: *session}),
		CodeToo:  m.HasTOTP() || m.RecoveryCodes > 0}
}

// serveMFAPasskey checks a passkey given as the second factor.
func (p *Provider) serveMFAPasskey(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgSignInAgain, p.links(readFlow(r)))
		return
	}
	if !p.parse(w, r) {
		return
	}
	refill := func(pg Page) Page {
		pg.View, pg.Title, pg.Body = ViewNotice, "Sign in", msgSignInAgain
		return pg
	}
	if !p.post(w, r, "mfa/passkey", refill) {
		return
	}
	tok := r.PostFormValue("token")
	c, f, acct, err := p.openStep(r, tok, purposeMFA, "second-factor")
	again := p.refuseStep(w, r, f, "local provider: passkey step refused")
	if err != nil {
		again(err)
		return
	}
	m, ok := p.secondFactorAttempt(w, r, acct, f)
	if !ok {
		return
	}
	// retry shows the step again (the token is not used up) with a new
	// challenge.
	retry := func(status int, msg string) {
		pg := p.form(w, r, ViewMFA, "mfa", f)
		pg.Title, pg.Token = "Two-step verification", tok
		p.offerPasskey(w, r, &pg, acct, m)
		pg.Status, pg.Error = status, msg
		p.page(w, r, pg)
	}
	cer, err := p.openCeremony(r, ceremonyMFA, acct.ID)
	if err != nil {
		p.log.Info("local provider: passkey step refused", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Error(err))
		retry(http.StatusBadRequest, msgPasskeyFailed)
		return
	}
	cred, err := p.checkAssertion(r, acct, cer)
	if errors.Is(err, store.ErrSignCount) {
		p.wrongCode(r, acct)
		retry(http.StatusUnauthorized, msgPasskeyFailed)
		return
	}
	if err != nil {
		p.log.Info("local provider: passkey refused", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Error(describe(err)))
		p.wrongCode(r, acct)
		retry(http.StatusUnauthorized, msgPasskeyFailed)
		return
	}
	if !p.useOnce(w, r, purposeMFA, c, f, "second-factor token used twice", again) {
		return
	}
	p.goodCode(r, acct)
	p.log.Info("local provider: passkey accepted", zap.String("provider", p.name), zap.String("account", acct.ID),
		zap.String("credential", base64.RawURLEncoding.EncodeToString(cred.ID)))
	p.afterSecondFactor(w, r, c, acct, f, passkeyAMR())
}

// checkAssertion verifies the posted assertion ("credential") against the
// account's passkeys and the ceremony, then records the new signature
// counter: a counter that went back (store.ErrSignCount) is refused and
// logged as a possibly cloned authenticator.
func (p *Provider) checkAssertion(r *http.Request, acct *store.Account, cer *ceremony) (*webauthn.Credential, error) {
	ctx := r.Context()
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		return nil, err
	}
	u, _, err := p.passkeyUserOf(ctx, acct)
	if err != nil {
		return nil, err
	}
	cred, err := p.passkeys.wa.ValidateLogin(u, cer.Session, parsed)
	if err != nil {
		return nil, err
	}
	err = p.accounts.UsePasskey(ctx, cred.ID, cred.Authenticator.SignCount)
	if errors.Is(err, store.ErrSignCount) {
		p.log.Warn("local provider: passkey signature counter went back: possibly a cloned authenticator; sign-in refused",
			zap.String("provider", p.name), zap.String("account", acct.ID),
			zap.String("credential", base64.RawURLEncoding.EncodeToString(cred.ID)), zap.Uint32("counter", cred.Authenticator.SignCount))
	}
	if err != nil {
		return nil, err
	}
	return cred, nil
}

// offerPasswordless adds "Sign in with a passkey" to the sign-in page: a
// discoverable-credential request whose answer names the account (the
// user handle is the account id).
func (p *Provider) offerPasswordless(w http.ResponseWriter, r *http.Request, pg *Page) {
	if !p.passkeysOn() || pg.State == "" {
		return
	}
	assertion, session, err := p.passkeys.wa.BeginDiscoverableLogin()
	if err != nil {
		p.log.Error("local provider: cannot begin a passkey sign-in", zap.Error(err))
		return
	}
	opts, _ := json.Marshal(assertion)
	pg.MFA.Passkey = PasskeyInfo{Options: string(opts), Script: p.passkeyScript(), Action: p.base + "signin/passkey",
		Ceremony: p.sealCeremony(ceremony{Kind: ceremonyPasswordless, Bind: p.passkeyBind(w, r), Session: *session})}
}

// servePasswordless signs in with a passkey alone. The form carries the
// sign-in form's CSRF token (both forms are on one page).
func (p *Provider) servePasswordless(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgNoAttempt, p.links(readFlow(r)))
		return
	}
	if !p.parse(w, r) {
		return
	}
	if !p.post(w, r, "signin", func(pg Page) Page { pg.Title = "Sign in"; return pg }) {
		return
	}
	f := readFlow(r)
	if f.state == "" {
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgNoAttempt, p.links(f))
		return
	}
	ctx := r.Context()
	var acct *store.Account
	fail := func(err error, msg string) {
		p.log.Info("local provider: passkey sign-in refused", zap.String("provider", p.name), zap.Error(describe(err)))
		if acct != nil {
			p.wrongCode(r, acct)
		}
		pg := p.form(w, r, ViewSignIn, "signin", f)
		pg.Title = "Sign in"
		p.offerPasswordless(w, r, &pg)
		pg.Status, pg.Error = http.StatusUnauthorized, msg
		p.page(w, r, pg)
	}
	cer, err := p.openCeremony(r, ceremonyPasswordless, "")
	if err != nil {
		fail(err, msgPasskeyFailed)
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(r.PostFormValue("credential")))
	if err != nil {
		fail(err, msgPasskeyFailed)
		return
	}
	owner := func(_, userHandle []byte) (webauthn.User, error) {
		a, err := p.accounts.AccountByID(ctx, string(userHandle))
		if err != nil {
			return nil, err
		}
		if !a.EmailVerified || a.Locked(p.now()) {
			return nil, errors.New("account unverified or locked")
		}
		u, _, err := p.passkeyUserOf(ctx, a)
		if err != nil {
			return nil, err
		}
		acct = a
		return u, nil
	}
	_, cred, err := p.passkeys.wa.ValidatePasskeyLogin(owner, cer.Session, parsed)
	if err == nil && !p.limit(w, r, "mfa:"+acct.ID, p.perAccount, f) {
		return
	}
	if err == nil {
		err = p.accounts.UsePasskey(ctx, cred.ID, cred.Authenticator.SignCount)
		if errors.Is(err, store.ErrSignCount) {
			p.log.Warn("local provider: passkey signature counter went back: possibly a cloned authenticator; sign-in refused",
				zap.String("provider", p.name), zap.String("account", acct.ID),
				zap.String("credential", base64.RawURLEncoding.EncodeToString(cred.ID)), zap.Uint32("counter", cred.Authenticator.SignCount))
		}
	}
	if err != nil {
		fail(err, msgPasskeyFailed)
		return
	}
	amr := []string{AMRHardwareKey, AMRUser}
	verified := parsed.Response.AuthenticatorData.Flags.HasUserVerified()
	if verified {
		amr = append(amr, AMRMultiFactor)
	}
	if !verified && (f.stepUp || p.mfaRequired) {
		// A passkey without user verification is one factor.
		acct = nil
		fail(errors.New("passkey without user verification where MFA is needed"),
			"This sign-in needs two-step verification: sign in with your password, then confirm with your passkey.")
		return
	}
	p.goodCode(r, acct)
	p.log.Info("local provider: passwordless passkey sign-in", zap.String("provider", p.name), zap.String("account", acct.ID),
		zap.Bool("user_verified", verified))
	p.issueProof(w, r, acct, f, amr)
}
