package local

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/mail"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Messages shown to people. The sign-in failure is one sentence for every
// cause (unknown address, wrong password, locked account), so that the
// answer says nothing about whether an account exists.
const (
	msgSignInFailed = "That email and password do not match an account that can sign in. After several wrong attempts an account is locked for a while; resetting the password unlocks it."
	msgFormExpired  = "This form expired. Please try again."
	msgTooMany      = "Too many attempts. Please wait a few minutes and try again."
	msgUnavailable  = "This service is unavailable for a moment. Please try again shortly."
	msgBadEmail     = "Please enter a valid email address."
	msgBadLink      = "This link is not valid or has expired. Links work once and for a limited time: ask for a new one."
	msgNoAttempt    = "Please start signing in from the application you want to use."
)

// Endpoints returns the provider's pages, relative to /.gatehouse/.
func (p *Provider) Endpoints() map[string]http.Handler {
	b := "local/" + p.name + "/"
	m := map[string]http.Handler{
		b + "signin":          http.HandlerFunc(p.serveSignIn),
		b + "verify":          http.HandlerFunc(p.serveVerify),
		b + "reset":           http.HandlerFunc(p.serveReset),
		b + "reset/confirm":   http.HandlerFunc(p.serveResetConfirm),
		b + "mfa":             http.HandlerFunc(p.serveMFA),
		b + "security":        http.HandlerFunc(p.serveSecurity),
		b + "security/manage": http.HandlerFunc(p.serveManage),
		b + "profile":         http.HandlerFunc(p.serveProfile),
	}
	if p.registration {
		m[b+"register"] = http.HandlerFunc(p.serveRegister)
	}
	if p.outbox != nil {
		m[b+"dev/outbox"] = p.outbox
	}
	p.passkeyEndpoints(m, b)
	return m
}

// flow is the sign-in a page belongs to: the attempt's state and where to
// go after. It travels in query strings and hidden fields; the gateway
// validates aud and rd again, and the state is bound to the browser's
// attempt cookie.
type flow struct {
	state, aud, rd string
	stepUp         bool   // the attempt asks for MFA (Attempt.StepUp.MFA)
	claims         string // profile fields the attempt asks for (profile.go)
}

func readFlow(r *http.Request) flow {
	get := r.URL.Query().Get
	if r.Method == http.MethodPost {
		get = r.PostFormValue
	}
	f := flow{state: get("state"), aud: get("aud"), rd: get("rd"), stepUp: get("mfa") == "1", claims: cleanClaims(get("claims"))}
	if len(f.state) > 256 || len(f.aud) > 64 || len(f.rd) > 4096 {
		return flow{}
	}
	return f
}

func (f flow) query() string {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.state, "aud": f.aud, "rd": f.rd} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.stepUp {
		q.Set("mfa", "1")
	}
	if f.claims != "" {
		q.Set("claims", f.claims)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// links are the navigation between the provider's pages.
func (p *Provider) links(f flow) map[string]string {
	l := map[string]string{"signin": p.base + "signin" + f.query(), "reset": p.base + "reset" + f.query()}
	if f.state == "" {
		l["signin"] = p.loginURL(f.aud, f.rd)
	}
	if p.registration {
		l["register"] = p.base + "register" + f.query()
	}
	if l["signin"] == "" {
		delete(l, "signin")
	}
	return l
}

// loginURL starts a new sign-in at the gateway with this provider, or ""
// when the audience is unknown.
func (p *Provider) loginURL(aud, rd string) string {
	if aud == "" {
		return ""
	}
	q := url.Values{"audience": {aud}, "provider": {p.name}}
	if rd != "" {
		q.Set("rd", rd)
	}
	return Prefix + "login?" + q.Encode()
}

// page sets the headers every page needs and renders p.
func (p *Provider) page(w http.ResponseWriter, r *http.Request, pg Page) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	// Pages opened from emailed links carry a token in their URL.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	pg.Provider = p.display
	pg.MinLength, pg.MaxLength = p.policy.min, p.policy.max
	p.render.Render(w, r, pg)
}

func (p *Provider) notice(w http.ResponseWriter, r *http.Request, status int, title, body string, links map[string]string) {
	p.page(w, r, Page{View: ViewNotice, Status: status, Title: title, Body: body, Links: links})
}

// form prepares a form page: action, CSRF token and the flow.
func (p *Provider) form(w http.ResponseWriter, r *http.Request, view, action string, f flow) Page {
	return Page{View: view, Action: p.base + action, CSRF: p.csrf.token(w, r, action),
		State: f.state, Audience: f.aud, ReturnURL: f.rd, StepUp: f.stepUp, Claims: f.claims, Links: p.links(f)}
}

// parse reads a form post (POST only, at most 64 KiB). It answers and
// returns false when the request is not one.
func (p *Provider) parse(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return false
	}
	return true
}

// post checks a parsed form post: CSRF, then the per-IP limit. It
// answers (refill completes the form shown again) and returns false when
// the post must not go on.
func (p *Provider) post(w http.ResponseWriter, r *http.Request, action string, refill func(Page) Page) bool {
	f := readFlow(r)
	if !p.csrf.check(r, action) {
		p.log.Info("local provider: form refused (CSRF)", zap.String("provider", p.name), zap.String("form", action), zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")))
		pg := refill(p.form(w, r, viewOf(action), action, f))
		pg.Status, pg.Error = http.StatusForbidden, msgFormExpired
		p.page(w, r, pg)
		return false
	}
	return p.limit(w, r, "ip:"+p.clientIP(r), p.perIP, f)
}

func viewOf(action string) string {
	switch action {
	case "signin":
		return ViewSignIn
	case "register":
		return ViewRegister
	case "reset":
		return ViewReset
	case "reset/confirm":
		return ViewNewPassword
	case "verify":
		return ViewConfirm
	case "mfa":
		return ViewMFA
	case "security":
		return ViewSignIn
	}
	return ViewNotice
}

// limit counts one attempt under key and answers 429 (or 503 when the
// shared state cannot count) when it is over.
func (p *Provider) limit(w http.ResponseWriter, r *http.Request, key string, n int, f flow) bool {
	ok, retry, err := p.limiter.Allow(r.Context(), "local:"+p.name+":"+key, n, p.window)
	if err != nil {
		p.log.Error("local provider: rate limit unavailable", zap.String("provider", p.name), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return false
	}
	if !ok {
		if retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+0.999)))
		}
		p.notice(w, r, http.StatusTooManyRequests, "Too many attempts", msgTooMany, p.links(f))
		return false
	}
	return true
}

// ---- sign-in ----

func (p *Provider) serveSignIn(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		f := readFlow(r)
		if f.state == "" {
			p.notice(w, r, http.StatusBadRequest, "Sign in", msgNoAttempt, p.links(f))
			return
		}
		pg := p.form(w, r, ViewSignIn, "signin", f)
		pg.Title = "Sign in"
		if e := store.NormalizeEmail(r.URL.Query().Get("email")); e != "" {
			pg.Email = e
		}
		p.offerPasswordless(w, r, &pg)
		p.page(w, r, pg)
		return
	}
	acct, f, ok := p.passwordPost(w, r, "signin", "Sign in", true)
	if !ok {
		return
	}
	if !acct.EmailVerified {
		// Only someone who knows the password learns this.
		p.confirmFirst(w, r, acct, f, "sign in again")
		return
	}
	p.afterPassword(w, r, acct, f, "")
}

// passwordPost reads and checks a posted email-and-password form: the
// sign-in page (action "signin") and the security page's re-entrance
// ("security"), whose form shows title. With needAttempt, a post without
// the attempt's state is refused. It answers and returns ok false unless
// the password matches an account that can sign in.
func (p *Provider) passwordPost(w http.ResponseWriter, r *http.Request, action, title string, needAttempt bool) (*store.Account, flow, bool) {
	if !p.parse(w, r) {
		return nil, flow{}, false
	}
	email := store.NormalizeEmail(r.PostFormValue("email"))
	refill := func(pg Page) Page { pg.Title, pg.Email = title, email; return pg }
	if !p.post(w, r, action, refill) {
		return nil, flow{}, false
	}
	f := readFlow(r)
	password := r.PostFormValue("password")
	fail := func() {
		pg := refill(p.form(w, r, ViewSignIn, action, f))
		pg.Status, pg.Error = http.StatusUnauthorized, msgSignInFailed
		p.page(w, r, pg)
	}
	if needAttempt && f.state == "" {
		p.notice(w, r, http.StatusBadRequest, "Sign in", msgNoAttempt, p.links(f))
		return nil, f, false
	}
	if email == "" || password == "" || len(password) > 4*p.policy.max {
		fail()
		return nil, f, false
	}
	acct, ok := p.checkPassword(w, r, email, password, f, fail)
	return acct, f, ok
}

// confirmFirst answers a right password of an unconfirmed account: it
// sends a new confirmation link and asks to confirm, then to retry ("sign
// in again", "try again").
func (p *Provider) confirmFirst(w http.ResponseWriter, r *http.Request, acct *store.Account, f flow, retry string) {
	p.sendVerify(r.Context(), acct, f)
	p.notice(w, r, http.StatusForbidden, "Confirm your email address",
		"Please confirm your email address first: we have sent a new link to "+acct.Email+". Open it, then "+retry+".", p.links(f))
}

// checkPassword checks email and password (per-address limit, lockout,
// failure count, hash upgrade). It answers with fail (or an error page)
// and returns false when they do not match an account that can sign in.
func (p *Provider) checkPassword(w http.ResponseWriter, r *http.Request, email, password string, f flow, fail func()) (*store.Account, bool) {
	if !p.limit(w, r, p.passwordKey(email), p.perAccount, f) {
		return nil, false
	}
	ctx := r.Context()
	acct, err := p.accounts.AccountByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		p.hash.burn(ctx, password)
		fail()
		return nil, false
	case err != nil:
		p.log.Error("local provider: account lookup failed", zap.String("provider", p.name), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return nil, false
	}
	return p.checkAccountPassword(r, acct, password, fail)
}

// passwordKey is the per-address rate-limit key of password checks: the
// sign-in page and the confirmation page count in the same bucket.
func (p *Provider) passwordKey(email string) string {
	return "signin:" + p.emailKey("acct", email)
}

// checkAccountPassword checks the password of a known account (lockout,
// failure count, hash upgrade); the caller has counted the attempt against
// the per-address limit. It answers with fail and returns false when the
// password is wrong or the account is locked.
func (p *Provider) checkAccountPassword(r *http.Request, acct *store.Account, password string, fail func()) (*store.Account, bool) {
	ctx := r.Context()
	if acct.Locked(p.now()) {
		p.hash.burn(ctx, password)
		p.log.Info("local provider: sign-in to a locked account", zap.String("provider", p.name), zap.String("account", acct.ID))
		fail()
		return nil, false
	}
	ok, rehash, err := p.hash.verify(ctx, acct.PasswordHash, password)
	if err != nil {
		p.log.Error("local provider: stored password hash unusable", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Error(err))
		fail()
		return nil, false
	}
	if !ok {
		n, until, err := p.accounts.RecordFailure(ctx, acct.ID, p.maxFailures, p.lockFor)
		if err != nil {
			p.log.Error("local provider: cannot record a failed sign-in", zap.String("account", acct.ID), zap.Error(err))
		} else if !until.IsZero() {
			p.log.Warn("local provider: account locked after repeated wrong passwords", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Time("until", until))
		} else {
			p.log.Info("local provider: wrong password", zap.String("provider", p.name), zap.String("account", acct.ID), zap.Int("failures", n))
		}
		fail()
		return nil, false
	}
	if acct.FailedAttempts > 0 {
		if err := p.accounts.ResetFailures(ctx, acct.ID); err != nil {
			p.log.Warn("local provider: cannot reset the failure count", zap.String("account", acct.ID), zap.Error(err))
		}
	}
	if rehash {
		if nh, err := p.hash.hash(ctx, password); err == nil {
			if err := p.accounts.RehashPassword(ctx, acct.ID, acct.PasswordHash, nh); err != nil && !errors.Is(err, store.ErrNotFound) {
				p.log.Warn("local provider: cannot upgrade a password hash", zap.String("account", acct.ID), zap.Error(err))
			}
		}
	}
	return acct, true
}

func (p *Provider) sendVerify(ctx context.Context, acct *store.Account, f flow) {
	tok := p.tokens.issue(claims{Purpose: purposeVerify, Account: acct.ID, PwdAt: acct.PasswordChanged.UnixNano(), Audience: f.aud, ReturnURL: f.rd}, p.verifyTTL)
	p.sendMail(ctx, mail.KindVerify, acct.Email, p.publicURL+p.base+"verify?token="+url.QueryEscape(tok), p.verifyTTL)
}

func (p *Provider) sendReset(ctx context.Context, kind string, acct *store.Account, f flow) {
	tok := p.tokens.issue(claims{Purpose: purposeReset, Account: acct.ID, PwdAt: acct.PasswordChanged.UnixNano(), Audience: f.aud, ReturnURL: f.rd}, p.resetTTL)
	p.sendMail(ctx, kind, acct.Email, p.publicURL+p.base+"reset/confirm?token="+url.QueryEscape(tok), p.resetTTL)
}

// ---- registration ----

func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200])
	}
	return s
}

func (p *Provider) policyMessage(err error) string {
	switch err {
	case errTooShort:
		return "This password is too short: use at least " + strconv.Itoa(p.policy.min) + " characters."
	case errTooLong:
		return "This password is too long: use at most " + strconv.Itoa(p.policy.max) + " characters."
	case errBreached:
		return "This password appears in a list of leaked passwords. Please choose another one."
	case errIsEmail:
		return "Your password must not be your email address."
	}
	return "Please choose another password."
}

func (p *Provider) serveRegister(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		pg := p.form(w, r, ViewRegister, "register", readFlow(r))
		pg.Title = "Create an account"
		p.page(w, r, pg)
		return
	}
	if !p.parse(w, r) {
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("email"))
	name := cleanName(r.PostFormValue("name"))
	refill := func(pg Page) Page { pg.Title, pg.Email, pg.Name = "Create an account", raw, name; return pg }
	if !p.post(w, r, "register", refill) {
		return
	}
	f := readFlow(r)
	formErr := func(msg string) {
		pg := refill(p.form(w, r, ViewRegister, "register", f))
		pg.Status, pg.Error = http.StatusBadRequest, msg
		p.page(w, r, pg)
	}
	email := store.NormalizeEmail(raw)
	if email == "" {
		formErr(msgBadEmail)
		return
	}
	if !p.limit(w, r, "register:"+p.emailKey("acct", email), p.perAccount, f) {
		return
	}
	password := r.PostFormValue("password")
	if err := p.policy.check(password, email); err != nil {
		formErr(p.policyMessage(err))
		return
	}
	ctx := r.Context()
	acct, err := p.accounts.AccountByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		h, herr := p.hash.hash(ctx, password)
		if herr != nil {
			p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
			return
		}
		profile := map[string]string{}
		if name != "" {
			profile["name"] = name
		}
		acct, err = p.accounts.CreateAccount(ctx, store.Account{Email: email, PasswordHash: h, Profile: profile})
		if errors.Is(err, store.ErrExists) {
			// Registered by someone else in the meantime: tell the owner.
			if acct, err = p.accounts.AccountByEmail(ctx, email); err == nil {
				p.sendReset(ctx, mail.KindExists, acct, f)
			}
			break
		}
		if err == nil {
			p.sendVerify(ctx, acct, f)
		}
	case err != nil:
	default:
		// Taken, confirmed or not: cost the same as creating, and tell the
		// owner by mail (a reset link proves the mailbox and sets their
		// password). An unconfirmed account's password is never replaced
		// by a later sign-up: whoever registered second could otherwise
		// have the owner confirm an account with the newcomer's password.
		p.hash.burn(ctx, password)
		p.sendReset(ctx, mail.KindExists, acct, f)
	}
	if err != nil {
		p.log.Error("local provider: registration failed", zap.String("provider", p.name), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	p.notice(w, r, http.StatusOK, "Check your email",
		"We have sent a message to "+email+". Open the link in it to finish creating your account. If nothing arrives within a few minutes, check your spam folder or try again.", p.links(f))
}

// ---- emailed links ----

// linkAccount checks an emailed link's token and that the account still
// exists with the password the link was issued under.
func (p *Provider) linkAccount(ctx context.Context, tok, purpose string) (*claims, *store.Account, error) {
	c, err := p.tokens.check(tok, purpose)
	if err != nil {
		return nil, nil, err
	}
	acct, err := p.accounts.AccountByID(ctx, c.Account)
	if err != nil {
		return nil, nil, err
	}
	if acct.PasswordChanged.UnixNano() != c.PwdAt {
		return nil, nil, errors.New("the password changed since the link was sent")
	}
	return c, acct, nil
}

func (p *Provider) badLink(w http.ResponseWriter, r *http.Request, err error, f flow) {
	p.log.Info("local provider: link refused", zap.String("provider", p.name), zap.Error(err))
	p.notice(w, r, http.StatusBadRequest, "Link not valid", msgBadLink, p.links(f))
}

// useOnce uses up the single-use token c (of purpose). It answers (503
// when the shared state cannot tell; refuse with an error naming twice
// when the token was used before) and returns false when it cannot.
func (p *Provider) useOnce(w http.ResponseWriter, r *http.Request, purpose string, c *claims, f flow, twice string, refuse func(error)) bool {
	first, err := p.once.Claim(r.Context(), p.onceKey(purpose, c.Nonce), time.Unix(c.Expires, 0).Add(time.Minute))
	if err != nil {
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return false
	}
	if !first {
		refuse(errors.New(twice))
		return false
	}
	return true
}

// linkPost reads the form posted from an emailed link's page (action,
// whose form shows title): CSRF, the per-IP limit, then the link's token
// of purpose. It answers and returns ok false when the post must not go
// on; refill completes the link's form when it is shown again.
func (p *Provider) linkPost(w http.ResponseWriter, r *http.Request, action, purpose, title string) (c *claims, acct *store.Account, refill func(Page) Page, ok bool) {
	if !p.parse(w, r) {
		return nil, nil, nil, false
	}
	tok := r.PostFormValue("token")
	refill = func(pg Page) Page { pg.Title, pg.Token = title, tok; return pg }
	if !p.post(w, r, action, refill) {
		return nil, nil, nil, false
	}
	c, acct, err := p.linkAccount(r.Context(), tok, purpose)
	if err != nil {
		p.badLink(w, r, err, flow{})
		return nil, nil, nil, false
	}
	return c, acct, refill, true
}

func (p *Provider) serveVerify(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		// Opening the link only shows a button: mail scanners that fetch
		// links must not use them up.
		tok := r.URL.Query().Get("token")
		c, acct, err := p.linkAccount(ctx, tok, purposeVerify)
		if err != nil {
			p.badLink(w, r, err, flow{})
			return
		}
		f := flow{aud: c.Audience, rd: c.ReturnURL}
		if acct.EmailVerified {
			p.notice(w, r, http.StatusOK, "Email address confirmed", "This email address is already confirmed. You can sign in.", p.links(f))
			return
		}
		pg := p.form(w, r, ViewConfirm, "verify", flow{})
		pg.Title, pg.Token, pg.Email = "Confirm your email address", tok, acct.Email
		p.page(w, r, pg)
		return
	}
	c, acct, refill, ok := p.linkPost(w, r, "verify", purposeVerify, "Confirm your email address")
	if !ok {
		return
	}
	f := flow{aud: c.Audience, rd: c.ReturnURL}
	// The link alone does not confirm: whoever signed up must also give
	// the password they chose. Someone who signs up with another person's
	// address thus gets nothing when that person opens the link they never
	// asked for. A wrong password counts like one on the sign-in page (the
	// same per-address limit, the lockout) and leaves the link usable.
	password := r.PostFormValue("password")
	fail := func() {
		pg := refill(p.form(w, r, ViewConfirm, "verify", flow{}))
		pg.Email = acct.Email
		pg.Status, pg.Error = http.StatusUnauthorized, msgSignInFailed
		p.page(w, r, pg)
	}
	if password == "" || len(password) > 4*p.policy.max {
		fail()
		return
	}
	if !p.limit(w, r, p.passwordKey(acct.Email), p.perAccount, f) {
		return
	}
	if _, ok := p.checkAccountPassword(r, acct, password, fail); !ok {
		return
	}
	if !p.useOnce(w, r, purposeVerify, c, f, "confirmation link used twice", func(err error) { p.badLink(w, r, err, f) }) {
		return
	}
	if err := p.accounts.MarkVerified(ctx, acct.ID); err != nil {
		p.log.Error("local provider: cannot mark an account verified", zap.String("account", acct.ID), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	p.log.Info("local provider: email confirmed", zap.String("provider", p.name), zap.String("account", acct.ID))
	p.notice(w, r, http.StatusOK, "Email address confirmed", "Thank you: your email address is confirmed. You can now sign in.", p.links(f))
}

// ---- password reset ----

func (p *Provider) serveReset(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		pg := p.form(w, r, ViewReset, "reset", readFlow(r))
		pg.Title = "Reset your password"
		p.page(w, r, pg)
		return
	}
	if !p.parse(w, r) {
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("email"))
	refill := func(pg Page) Page { pg.Title, pg.Email = "Reset your password", raw; return pg }
	if !p.post(w, r, "reset", refill) {
		return
	}
	f := readFlow(r)
	email := store.NormalizeEmail(raw)
	if email == "" {
		pg := refill(p.form(w, r, ViewReset, "reset", f))
		pg.Status, pg.Error = http.StatusBadRequest, msgBadEmail
		p.page(w, r, pg)
		return
	}
	if !p.limit(w, r, "reset:"+p.emailKey("acct", email), p.perAccount, f) {
		return
	}
	ctx := r.Context()
	acct, err := p.accounts.AccountByEmail(ctx, email)
	switch {
	case err == nil:
		p.sendReset(ctx, mail.KindReset, acct, f)
	case !errors.Is(err, store.ErrNotFound):
		p.log.Error("local provider: account lookup failed", zap.String("provider", p.name), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	p.notice(w, r, http.StatusOK, "Check your email",
		"If an account exists for "+email+", we have sent it a link to choose a new password. The link works once, for "+humanDuration(p.resetTTL)+".", p.links(f))
}

func (p *Provider) serveResetConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		tok := r.URL.Query().Get("token")
		if _, _, err := p.linkAccount(ctx, tok, purposeReset); err != nil {
			p.badLink(w, r, err, flow{})
			return
		}
		pg := p.form(w, r, ViewNewPassword, "reset/confirm", flow{})
		pg.Title, pg.Token = "Choose a new password", tok
		p.page(w, r, pg)
		return
	}
	c, acct, refill, ok := p.linkPost(w, r, "reset/confirm", purposeReset, "Choose a new password")
	if !ok {
		return
	}
	f := flow{aud: c.Audience, rd: c.ReturnURL}
	password := r.PostFormValue("password")
	if err := p.policy.check(password, acct.Email); err != nil {
		pg := refill(p.form(w, r, ViewNewPassword, "reset/confirm", flow{}))
		pg.Status, pg.Error = http.StatusBadRequest, p.policyMessage(err)
		p.page(w, r, pg)
		return
	}
	h, err := p.hash.hash(ctx, password)
	if err != nil {
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	if !p.useOnce(w, r, purposeReset, c, f, "reset link used twice", func(err error) { p.badLink(w, r, err, f) }) {
		return
	}
	if err := p.accounts.SetPassword(ctx, acct.ID, h); err != nil {
		p.log.Error("local provider: cannot set a password", zap.String("account", acct.ID), zap.Error(err))
		p.notice(w, r, http.StatusServiceUnavailable, "Unavailable", msgUnavailable, p.links(f))
		return
	}
	if !acct.EmailVerified {
		// The link reached the mailbox: that confirms the address.
		if err := p.accounts.MarkVerified(ctx, acct.ID); err != nil {
			p.log.Warn("local provider: cannot mark an account verified", zap.String("account", acct.ID), zap.Error(err))
		}
	}
	if p.onReset != nil {
		p.onReset(ctx, acct.ID)
	}
	p.sendMail(ctx, mail.KindChanged, acct.Email, "", 0)
	p.log.Info("local provider: password reset", zap.String("provider", p.name), zap.String("account", acct.ID))
	p.notice(w, r, http.StatusOK, "Password changed",
		"Your password was changed, and every session signed in with the old one has ended. You can now sign in with the new password.", p.links(f))
}
