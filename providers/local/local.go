// Package local is Gatehouse's own email-and-password provider: people
// create an account (confirming their address by an emailed link), sign in
// with email and password, and reset a forgotten password by an emailed
// link.
//
// It works like the static provider: Begin sends the browser to the
// provider's own sign-in page under /.gatehouse/local/<name>/, which
// checks the password and then posts, to the gateway's callback, the
// attempt's state and a short-lived, signed, single-use proof naming the
// account. Complete trusts nothing else from the form: it verifies the
// proof (signature, purpose, expiry, the attempt it belongs to), claims it
// once in the shared state and reads the account again.
//
// Security properties:
//
//   - Passwords are hashed with argon2id (PHC strings); hashes made with
//     older parameters are upgraded at the next sign-in. The number of
//     concurrent hashes is bounded.
//   - No user enumeration: sign-in, sign-up and reset answer identically
//     for known and unknown addresses, and unknown ones burn the time of a
//     real hash. Sign-up of a taken address emails its owner instead.
//   - Rate limits per client IP and per address (state.Limiter), a lock
//     after repeated wrong passwords, and a cap on emails per address.
//   - Emailed links are HMAC-signed, expiring, single use (state.Once) and
//     bound to the password they were issued under; opening one shows a
//     confirmation form, so mail scanners that fetch links consume nothing.
//   - Confirming an address also takes the password chosen at sign-up
//     (counted like a sign-in: per-address limit, lockout), so that the
//     owner of an address cannot, by clicking a link they never asked
//     for, confirm an account someone else created with it.
//   - Every form carries a CSRF token bound to a cookie and cross-site
//     posts (Sec-Fetch-Site) are refused.
//   - A password reset calls Env.OnPasswordReset, which the gateway wires
//     to ending the person's sessions everywhere.
//   - Two-step verification (mfa.go, mfa_handlers.go): TOTP with single-use
//     codes and recovery codes, enrolled on the security page after signing
//     in again there; secrets are sealed with AES-GCM at rest.
package local

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/mail"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Defaults of the settings (config.LocalProvider).
const (
	DefaultStore       = "sqlite://gatehouse-accounts.db"
	DefaultMinLength   = 12
	DefaultMaxLength   = 256
	DefaultPerIP       = 30
	DefaultPerAccount  = 10
	DefaultEmails      = 3
	DefaultWindow      = 15 * time.Minute
	DefaultMaxFailures = 10
	DefaultLockFor     = 15 * time.Minute
	DefaultVerifyTTL   = 24 * time.Hour
	DefaultResetTTL    = time.Hour
	// ProofTTL bounds the time between a checked password and the callback.
	ProofTTL = 2 * time.Minute
)

// Prefix is the gateway's reserved path prefix.
const Prefix = "/.gatehouse/"

// Env is what the gateway gives the provider.
type Env struct {
	// PublicURL is the gateway's external base URL (emailed links).
	PublicURL string
	// BaseDir resolves relative paths of the settings (the policy's folder).
	BaseDir string
	Logger  *zap.Logger
	// Once makes links and sign-in proofs single use; Limiter counts
	// attempts. Both come from the shared state. Required.
	Once    state.Once
	Limiter state.Limiter
	// Keys are the session keys; the link key is derived from the first
	// when the settings give no link_secret (all are accepted on links).
	Keys [][]byte
	// Store holds the accounts. nil: opened from the settings' store DSN
	// (and closed by Close).
	Store store.Accounts
	// Mail sends email. nil: built from the settings' mail section.
	Mail mail.Sender
	// Renderer draws the pages. nil: NewDefaultRenderer().
	Renderer Renderer
	// OnPasswordReset is called after a password was reset, with the
	// identity's subject; the gateway ends every session of that subject.
	OnPasswordReset func(ctx context.Context, subject string)
	// ClientIP returns the client address the gateway resolved (trusted
	// proxies applied). nil: the host of RemoteAddr.
	ClientIP func(r *http.Request) string
	// CallbackPath is the gateway's callback for this provider. Default
	// /.gatehouse/callback/<name>.
	CallbackPath string
	// InsecureCookies drops the Secure attribute (and the __Host- prefix)
	// of the CSRF cookie, for plain-HTTP development. Default: Secure
	// unless PublicURL is http://.
	InsecureCookies *bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CheckOnly builds the provider to check its settings ('gatehouse
	// validate') without side effects: no store is opened or migrated, no
	// outbox folder is made. Such a provider must not serve.
	CheckOnly bool
}

// Provider is a local-accounts provider.
type Provider struct {
	name, display string
	registration  bool

	accounts store.Accounts
	closeDB  func() error
	sender   mail.Sender
	outbox   *mail.Outbox
	once     state.Once
	limiter  state.Limiter
	render   Renderer
	log      *zap.Logger
	now      func() time.Time

	hash   *hasher
	policy policy
	tokens signer
	csrf   csrf

	perIP, perAccount, emails int
	window                    time.Duration
	maxFailures               int
	lockFor                   time.Duration
	verifyTTL, resetTTL       time.Duration

	// Second factors (config mfa).
	totpOn      bool   // people may enrol TOTP
	mfaRequired bool   // every account must have a second factor
	issuer      string // otpauth issuer label

	profile []profileField // extra profile fields (profile.go)

	passkeys *passkeyRP // nil unless mfa.passkeys (passkey.go)

	publicURL    string
	base         string // /.gatehouse/local/<name>/
	callbackPath string
	clientIP     func(*http.Request) string
	envClientIP  func(*http.Request) string // as the Env gave it
	onReset      func(ctx context.Context, subject string)

	mailWG sync.WaitGroup
}

var (
	_ providers.Provider         = (*Provider)(nil)
	_ providers.EndpointProvider = (*Provider)(nil)
	_ providers.SignUpper        = (*Provider)(nil)
)

// New builds the provider from its settings. It opens the account store
// and the mail sender unless env supplies them, and reads the breached
// password list.
func New(name string, cfg *config.LocalProvider, env Env) (*Provider, error) {
	if env.Once == nil || env.Limiter == nil {
		return nil, errors.New("local provider needs the shared state (Once and Limiter)")
	}
	p := &Provider{
		name: name, display: cfg.DisplayName, registration: cfg.Registration == nil || *cfg.Registration,
		once: env.Once, limiter: env.Limiter, render: env.Renderer, log: env.Logger, now: env.Now,
		publicURL: strings.TrimSuffix(env.PublicURL, "/"), base: Prefix + "local/" + name + "/",
		callbackPath: env.CallbackPath, clientIP: env.ClientIP, envClientIP: env.ClientIP, onReset: env.OnPasswordReset,
	}
	if p.display == "" {
		p.display = "Email and password"
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.render == nil {
		p.render = NewDefaultRenderer()
	}
	if p.callbackPath == "" {
		p.callbackPath = Prefix + "callback/" + name
	}
	if p.clientIP == nil {
		p.clientIP = remoteIP
	}
	if p.publicURL == "" {
		p.publicURL = config.DefaultPublicURL
	}
	rel := func(path string) string {
		if path == "" || filepath.IsAbs(path) || env.BaseDir == "" {
			return path
		}
		return filepath.Join(env.BaseDir, path)
	}

	// Password policy and hashing.
	p.policy = policy{min: orInt(cfg.Password.MinLength, DefaultMinLength), max: orInt(cfg.Password.MaxLength, DefaultMaxLength)}
	if f := cfg.Password.BreachedList; f != "" {
		set, err := loadBreached(rel(f))
		if err != nil {
			return nil, fmt.Errorf("password.breached_list: %w", err)
		}
		p.policy.breached = set
	}
	ap := DefaultArgon2
	if cfg.Argon2.MemoryKiB > 0 {
		ap.MemoryKiB = uint32(cfg.Argon2.MemoryKiB)
	}
	if cfg.Argon2.Iterations > 0 {
		ap.Iterations = uint32(cfg.Argon2.Iterations)
	}
	if cfg.Argon2.Parallelism > 0 {
		ap.Parallelism = uint8(cfg.Argon2.Parallelism)
	}
	h, err := newHasher(ap, orInt(cfg.Argon2.Concurrency, runtime.NumCPU()))
	if err != nil {
		return nil, fmt.Errorf("argon2: %w", err)
	}
	p.hash = h

	// Limits and lifetimes.
	p.perIP = orInt(cfg.RateLimit.PerIP, DefaultPerIP)
	p.perAccount = orInt(cfg.RateLimit.PerAccount, DefaultPerAccount)
	p.emails = orInt(cfg.RateLimit.Emails, DefaultEmails)
	p.window = orDur(cfg.RateLimit.Window.D(), DefaultWindow)
	p.maxFailures = orInt(cfg.Lockout.MaxFailures, DefaultMaxFailures)
	p.lockFor = orDur(cfg.Lockout.Duration.D(), DefaultLockFor)
	p.verifyTTL = orDur(cfg.Links.VerifyTTL.D(), DefaultVerifyTTL)
	p.resetTTL = orDur(cfg.Links.ResetTTL.D(), DefaultResetTTL)
	if err := p.setupPasskeys(cfg.MFA.Passkeys); err != nil {
		return nil, err
	}
	p.totpOn, p.mfaRequired, p.issuer = cfg.MFA.TOTPEnabled(), cfg.MFA.Required, cfg.MFA.Issuer
	if p.profile, err = compileProfile(cfg.Profile); err != nil {
		return nil, err
	}
	if p.issuer == "" {
		p.issuer = strings.ReplaceAll(p.display, ":", " ")
	}

	// Keys: the link secret, or the session keys, or (with a warning) a
	// random key that dies with the process.
	var secrets [][]byte
	if cfg.LinkSecret != "" {
		secrets = [][]byte{[]byte(cfg.LinkSecret)}
	} else {
		secrets = env.Keys
	}
	if len(secrets) == 0 {
		k := make([]byte, 32)
		rand.Read(k)
		secrets = [][]byte{k}
		p.log.Warn("local provider without link_secret or session keys: emailed links stop working when Gatehouse restarts", zap.String("provider", name))
	}
	for _, s := range secrets {
		p.tokens.keys = append(p.tokens.keys, deriveKey(s, name))
	}
	p.tokens.now = p.now
	csrfKey := hmac.New(sha256.New, p.tokens.keys[0])
	csrfKey.Write([]byte("csrf"))
	secure := !strings.HasPrefix(p.publicURL, "http://")
	if env.InsecureCookies != nil {
		secure = !*env.InsecureCookies
	}
	p.csrf = csrf{key: csrfKey.Sum(nil), secure: secure}

	// Mail.
	p.sender = env.Mail
	if env.CheckOnly {
		return p, nil
	}
	if p.sender == nil {
		switch {
		case cfg.Mail.SMTP != nil:
			s := cfg.Mail.SMTP
			p.sender, err = mail.NewSMTP(mail.SMTPConfig{Host: s.Host, Port: s.Port, Username: s.Username, Password: s.Password,
				From: cfg.Mail.From, TLS: s.TLS, Timeout: s.Timeout.D()})
		case cfg.Mail.Outbox != "":
			p.outbox, err = mail.NewOutbox(rel(cfg.Mail.Outbox), cfg.Mail.From)
			p.sender = p.outbox
			p.log.Warn("local provider writes its mail to a development outbox instead of sending it: never use mail.outbox in production",
				zap.String("provider", name), zap.String("outbox", p.outbox.Dir()))
		default:
			err = errors.New("no mail sender configured")
		}
		if err != nil {
			return nil, fmt.Errorf("mail: %w", err)
		}
	}

	// Store.
	p.accounts = env.Store
	if p.accounts == nil {
		dsn := cfg.Store
		if dsn == "" {
			dsn = DefaultStore
		}
		if rest, ok := strings.CutPrefix(dsn, "sqlite://"); ok && !strings.HasPrefix(rest, "/") {
			dsn = "sqlite://" + rel(rest) // absolute once joined to the policy's folder
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := store.Open(ctx, dsn, store.Options{Logger: p.log})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		p.accounts, p.closeDB = s, s.Close
	}
	return p, nil
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func orDur(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// remoteIP is the host part of RemoteAddr.
func remoteIP(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// Close waits for mail being sent and closes the store if New opened it.
func (p *Provider) Close() error {
	p.mailWG.Wait()
	if p.closeDB != nil {
		return p.closeDB()
	}
	return nil
}

// Name returns the provider's policy name.
func (p *Provider) Name() string { return p.name }

// Type returns "local".
func (p *Provider) Type() string { return "local" }

// DisplayName returns the chooser label.
func (p *Provider) DisplayName() string { return p.display }

// SignsUp reports whether self-service sign-up is on (the chooser then
// offers "Create an account").
func (p *Provider) SignsUp() bool { return p.registration }

// Outbox returns the development outbox, or nil when mail goes out by
// SMTP. Its page is also served at /.gatehouse/local/<name>/dev/outbox.
func (p *Provider) Outbox() *mail.Outbox { return p.outbox }

// Begin sends the browser to the sign-in page (or the sign-up page for
// Prompt "create"), carrying the attempt's state and where to go after.
func (p *Provider) Begin(_ context.Context, a *providers.Attempt) (*providers.Redirect, error) {
	view := "signin"
	if a.Prompt == "create" && p.registration {
		view = "register"
	}
	q := url.Values{"state": {a.State}}
	if a.Audience != "" {
		q.Set("aud", string(a.Audience))
	}
	if a.ReturnURL != "" {
		q.Set("rd", a.ReturnURL)
	}
	if a.LoginHint != "" {
		q.Set("email", a.LoginHint)
	}
	if a.StepUp != nil && a.StepUp.MFA {
		// Only shapes the pages (a person without a second factor is
		// told to enrol instead of being signed in in vain): the gateway
		// checks the identity's amr itself.
		q.Set("mfa", "1")
	}
	p.beginClaims(q, a)
	return &providers.Redirect{URL: p.base + view + "?" + q.Encode()}, nil
}

// CallbackState reads the state field of the auto-posted proof form.
func (p *Provider) CallbackState(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	return r.PostFormValue("state")
}

// Complete verifies the sign-in proof and returns the account's identity.
func (p *Provider) Complete(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, error) {
	if r.Method != http.MethodPost {
		return nil, providers.Fail("bad_method", "Please sign in on the sign-in page.", errors.New("local callback needs POST"))
	}
	c, err := p.tokens.check(r.PostFormValue("proof"), purposeSignIn)
	if err != nil {
		return nil, providers.Fail("bad_proof", "Signing in did not work. Please try again.", err)
	}
	if !hmac.Equal([]byte(c.State), []byte(a.State)) {
		return nil, providers.Fail("proof_state_mismatch", "Signing in did not work. Please try again.", errors.New("sign-in proof belongs to another attempt"))
	}
	first, err := p.once.Claim(ctx, p.onceKey(purposeSignIn, c.Nonce), time.Unix(c.Expires, 0).Add(time.Minute))
	if err != nil {
		return nil, providers.Fail("state_unavailable", "Signing in is unavailable for a moment. Please try again.", err)
	}
	if !first {
		return nil, providers.Fail("proof_replayed", "Signing in did not work. Please try again.", errors.New("sign-in proof used twice"))
	}
	acct, err := p.accounts.AccountByID(ctx, c.Account)
	if err != nil {
		return nil, providers.Fail("unknown_account", "Signing in did not work. Please try again.", err)
	}
	if !acct.EmailVerified || acct.Locked(p.now()) {
		return nil, providers.Fail("account_not_ready", "Signing in did not work. Please try again.", errors.New("account unverified or locked since the password check"))
	}
	id := &identity.Identity{
		Subject:       acct.ID,
		Issuer:        "local:" + p.name,
		Provider:      p.name,
		Audience:      a.Audience,
		Email:         acct.Email,
		EmailVerified: true,
		Name:          acct.Profile["name"],
		AMR:           []string{AMRPassword},
		AuthTime:      time.Unix(c.Issued, 0),
	}
	if len(c.AMR) > 0 {
		id.AMR = append([]string(nil), c.AMR...)
	}
	if id.HasMFA() {
		id.ACR = ACRMFA
	}
	p.profileClaims(id, acct)
	return id, nil
}

// onceKey names a single-use claim of this provider.
func (p *Provider) onceKey(purpose, nonce string) string {
	return "local:" + p.name + ":" + purpose + ":" + nonce
}

// emailKey is a rate-limit key for an address that does not store it.
func (p *Provider) emailKey(kind, email string) string {
	sum := sha256.Sum256([]byte(p.name + "\x00" + email))
	return "local:" + p.name + ":" + kind + ":" + hex.EncodeToString(sum[:12])
}

// sendMail renders and sends a message in the background, so that the
// time of an answer never depends on whether mail was sent (or on the
// shared state's round trip for the cap). At most rate_limit.emails
// messages go to one address per window; the "password changed" notice
// is never capped.
func (p *Provider) sendMail(_ context.Context, kind string, to, link string, ttl time.Duration) {
	p.mailWG.Add(1)
	go func() {
		defer p.mailWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if kind != mail.KindChanged {
			ok, _, err := p.limiter.Allow(ctx, p.emailKey("mail", to), p.emails, p.window)
			if err != nil || !ok {
				p.log.Info("local provider: email not sent (per-address cap, or shared state unavailable)",
					zap.String("provider", p.name), zap.String("kind", kind), zap.Error(err))
				return
			}
		}
		m, err := mail.Render(kind, mail.Data{Product: p.display, Email: to, Link: link, ValidFor: humanDuration(ttl)})
		if err != nil {
			p.log.Error("local provider: cannot render email", zap.String("kind", kind), zap.Error(err))
			return
		}
		if err := p.sender.Send(ctx, m); err != nil {
			p.log.Error("local provider: sending email failed", zap.String("provider", p.name), zap.String("kind", kind), zap.Error(err))
		}
	}()
}

func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	default:
		return plural(int((d+time.Minute-1)/time.Minute), "minute")
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// BindGateway takes the gateway's session revocation and client-address
// resolution, unless the Env gave its own: after a password reset every
// session of the account ends, and rate limits count per real client
// behind trusted proxies.
func (p *Provider) BindGateway(g providers.Gateway) {
	if p.onReset == nil {
		p.onReset = func(ctx context.Context, subject string) {
			if err := g.RevokeSubject(ctx, p.name, subject); err != nil {
				p.log.Error("password reset: cannot end the account's sessions", zap.String("provider", p.name), zap.Error(err))
			}
		}
	}
	if p.envClientIP == nil {
		p.clientIP = func(r *http.Request) string {
			if ip := g.ClientIP(r); ip != "" {
				return ip
			}
			return remoteIP(r)
		}
	}
}

// DeleteAccount deletes the account whose identity subject is subject (the
// account id): the gateway calls it when the customer erases their account.
// A missing account is not an error.
func (p *Provider) DeleteAccount(ctx context.Context, subject string) error {
	if p.accounts == nil {
		return errors.New("local provider has no store")
	}
	if err := p.accounts.DeleteAccount(ctx, subject); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}
