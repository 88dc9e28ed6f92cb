// Package oidc signs people in through OpenID Connect providers (any
// OpenID Provider configured from discovery, and the google, microsoft and
// gitlab presets) and through GitHub (plain OAuth2 plus GitHub's API).
//
// The flow is the authorization code flow with PKCE (S256): Begin sends
// the browser to the provider with the attempt's state and nonce and keeps
// the PKCE verifier in the attempt's Data; Complete exchanges the code,
// verifies the ID token (signature through the provider's JWKS, cached and
// refetched when an unknown key appears; issuer; audience and azp; expiry;
// nonce), optionally merges userinfo (whose sub must match) and maps the
// claims to an identity keyed on (iss, sub), never on email.
//
// Discovery is lazy: building a provider does no I/O, so Gatehouse starts
// while the provider is down; the first sign-in (or a readiness probe)
// discovers, with a time limit, and a failure is retried later. Ready
// reports nil once discovery and the key set have been fetched.
//
// Tokens are never put in the identity. Callers that keep them (refresh,
// forwarding the access token, RP-initiated logout with id_token_hint) use
// CompleteWithTokens; Refresh and LogoutWithTokens take the same map.
package oidc

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/state"
)

// Env is what a provider needs from its surroundings. Zero values mean: no
// logging, an HTTP client with the provider's timeout, time.Now.
type Env struct {
	Logger     *zap.Logger
	HTTPClient *http.Client
	Now        func() time.Time
	// Replay records the ids (jti) of back-channel logout tokens, so each
	// is accepted once; shared between replicas when they share state.
	// Default: this process's memory.
	Replay state.Once
}

func (e Env) withDefaults(timeout time.Duration) Env {
	if e.Logger == nil {
		e.Logger = zap.NewNop()
	}
	if e.Replay == nil {
		e.Replay = state.NewMemory(e.Now).Once()
	}
	if e.HTTPClient == nil {
		e.HTTPClient = &http.Client{Timeout: timeout}
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// Defaults.
const (
	defaultTimeout = 10 * time.Second
	// clockSkew is tolerated on auth_time and max_age checks.
	clockSkew = time.Minute
	// retryInterval is the least time between two failed discoveries.
	retryInterval = 10 * time.Second
)

// DefaultAlgorithms are the ID token signature algorithms accepted unless
// the policy says otherwise. none and HMAC are never accepted.
var DefaultAlgorithms = []string{"RS256", "ES256", "PS256", "EdDSA"}

// Microsoft's fixed tenant of personal accounts.
const msConsumersTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

// Provider is an OpenID Connect relying party for one provider of the
// policy.
type Provider struct {
	name, typ, display string
	s                  settings
	env                Env
	log                *zap.Logger

	mu       sync.Mutex
	disc     *discovered   // set once discovery succeeded
	lastErr  error         // the last discovery failure
	lastTry  time.Time     // when the last discovery started
	inflight chan struct{} // closed when the running discovery ends
	retry    time.Duration // least time between failed discoveries
}

var (
	_ providers.Provider          = (*Provider)(nil)
	_ providers.Refresher         = (*Provider)(nil)
	_ providers.LogoutProvider    = (*Provider)(nil)
	_ providers.ReadinessChecker  = (*Provider)(nil)
	_ providers.CrossSiteCallback = (*Provider)(nil)
	_ providers.LogoutReceiver    = (*Provider)(nil)
	_ providers.SignUpper         = (*Provider)(nil)
)

// settings are a provider's resolved settings, defaults applied.
type settings struct {
	// discoveryURL is where /.well-known/openid-configuration is read.
	discoveryURL string
	// issuer is the iss every ID token must carry; for a multi-tenant
	// Microsoft provider it is the template with {tenantid}.
	issuer string
	// tenantIssuer, when set, checks iss itself (Microsoft common and
	// organizations): iss must be the template with the token's tid.
	tenantIssuer func(iss, tid string) error
	// issuerFromDiscovery, when set, accepts the issuer discovery names
	// (Microsoft tenant given by domain); issuer is "" until then.
	issuerFromDiscovery func(discovered string) (string, error)
	clientID            string
	clientSecret        string
	scopes              []string
	claims              config.OIDCClaims
	userinfo            bool
	prompt              string
	acrValues           []string
	maxAge              time.Duration
	signup              url.Values // nil: no sign-up screen
	authParams          map[string]string
	algorithms          []string
	formPost            bool
	mfaACR              []string
	timeout             time.Duration
	hostedDomain        string
	defaultDisplay      string
}

// New builds a provider of type oidc. It does no I/O: discovery happens on
// first use.
func New(name string, cfg *config.OIDCProvider, env Env) (*Provider, error) {
	if cfg == nil {
		return nil, errors.New("oidc: no settings")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fieldErrors(errs)
	}
	s := baseSettings(cfg.OAuthClient, cfg.OIDCOptions, "prompt=create", false)
	// iss must equal the configured issuer exactly, trailing slash
	// included (Auth0's has one): OpenID Connect Discovery section 4.3.
	s.discoveryURL, s.issuer = cfg.Issuer, cfg.Issuer
	return newProvider(name, "oidc", cfg.DisplayName, s, env), nil
}

// NewGoogle builds the google preset (issuer https://accounts.google.com).
func NewGoogle(name string, cfg *config.GoogleProvider, env Env) (*Provider, error) {
	return newGoogle(name, cfg, env, "https://accounts.google.com")
}

func newGoogle(name string, cfg *config.GoogleProvider, env Env, issuer string) (*Provider, error) {
	if cfg == nil {
		return nil, errors.New("oidc: no settings")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fieldErrors(errs)
	}
	s := baseSettings(cfg.OAuthClient, cfg.OIDCOptions, "none", false)
	s.discoveryURL, s.issuer = issuer, issuer
	s.hostedDomain = strings.ToLower(cfg.HostedDomain)
	s.defaultDisplay = "Continue with Google"
	return newProvider(name, "google", cfg.DisplayName, s, env), nil
}

// NewGitLab builds the gitlab preset (issuer https://gitlab.com or the
// configured base URL).
func NewGitLab(name string, cfg *config.GitLabProvider, env Env) (*Provider, error) {
	if cfg == nil {
		return nil, errors.New("oidc: no settings")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fieldErrors(errs)
	}
	base := strings.TrimSuffix(cfg.BaseURL, "/")
	if base == "" {
		base = "https://gitlab.com"
	}
	s := baseSettings(cfg.OAuthClient, cfg.OIDCOptions, "none", true)
	s.discoveryURL, s.issuer = base, base
	s.defaultDisplay = "Continue with GitLab"
	return newProvider(name, "gitlab", cfg.DisplayName, s, env), nil
}

// NewMicrosoft builds the microsoft preset. For tenant common and
// organizations the discovered issuer is a template,
// https://login.microsoftonline.com/{tenantid}/v2.0: the ID token's iss
// must then equal it with the token's own tid, and the tid must be one of
// allowed_tenants when they are set (organizations also refuses personal
// accounts). For consumers or one tenant, iss must equal that tenant's
// issuer exactly.
func NewMicrosoft(name string, cfg *config.MicrosoftProvider, env Env) (*Provider, error) {
	if cfg == nil {
		return nil, errors.New("oidc: no settings")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fieldErrors(errs)
	}
	authority := strings.TrimSuffix(cfg.Authority, "/")
	if authority == "" {
		authority = "https://login.microsoftonline.com"
	}
	tenant := cfg.Tenant
	if tenant == "" {
		tenant = "common"
	}
	s := baseSettings(cfg.OAuthClient, cfg.OIDCOptions, "none", false)
	s.discoveryURL = authority + "/" + tenant + "/v2.0"
	s.defaultDisplay = "Continue with Microsoft"
	switch {
	case tenant == "common" || tenant == "organizations":
		s.issuer = authority + "/{tenantid}/v2.0"
		allowed := append([]string(nil), cfg.AllowedTenants...)
		for i := range allowed {
			allowed[i] = strings.ToLower(allowed[i])
		}
		orgsOnly := tenant == "organizations"
		s.tenantIssuer = func(iss, tid string) error {
			tid = strings.ToLower(tid)
			if !config.IsTenantID(tid) {
				return fmt.Errorf("ID token has no valid tid claim (%q)", tid)
			}
			if want := authority + "/" + tid + "/v2.0"; iss != want {
				return fmt.Errorf("issuer %q does not match the token's tenant (want %q)", iss, want)
			}
			if orgsOnly && tid == msConsumersTenant {
				return errTenantNotAllowed{tid}
			}
			if len(allowed) > 0 && !contains(allowed, tid) {
				return errTenantNotAllowed{tid}
			}
			return nil
		}
	case tenant == "consumers":
		s.issuer = authority + "/" + msConsumersTenant + "/v2.0"
	case config.IsTenantID(tenant):
		s.issuer = authority + "/" + strings.ToLower(tenant) + "/v2.0"
	default:
		// A verified domain: discovery names the tenant id; the issuer it
		// returns must have the form authority/<guid>/v2.0.
		s.issuerFromDiscovery = func(discovered string) (string, error) {
			tid, ok := strings.CutPrefix(discovered, authority+"/")
			if tid, ok = strings.CutSuffix(tid, "/v2.0"); !ok || !config.IsTenantID(tid) {
				return "", fmt.Errorf("discovered issuer %q is not %s/<tenant id>/v2.0", discovered, authority)
			}
			return discovered, nil
		}
	}
	return newProvider(name, "microsoft", cfg.DisplayName, s, env), nil
}

type errTenantNotAllowed struct{ tid string }

func (e errTenantNotAllowed) Error() string { return "tenant " + e.tid + " is not allowed" }

// NewFromSettings builds the provider for any of the settings types of
// this package's provider types (config.Provider.Settings()).
func NewFromSettings(name string, settings any, env Env) (providers.Provider, error) {
	var (
		p   *Provider
		err error
	)
	switch c := settings.(type) {
	case *config.OIDCProvider:
		p, err = New(name, c, env)
	case *config.GoogleProvider:
		p, err = NewGoogle(name, c, env)
	case *config.MicrosoftProvider:
		p, err = NewMicrosoft(name, c, env)
	case *config.GitLabProvider:
		p, err = NewGitLab(name, c, env)
	case *config.GitHubProvider:
		g, err := NewGitHub(name, c, env)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return g, nil
	default:
		return nil, fmt.Errorf("oidc: unsupported settings %T", settings)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func baseSettings(c config.OAuthClient, o config.OIDCOptions, signupDefault string, userinfoDefault bool) settings {
	s := settings{
		clientID:     c.ClientID,
		clientSecret: c.ClientSecret,
		scopes:       append([]string(nil), c.Scopes...),
		claims:       o.Claims,
		userinfo:     userinfoDefault,
		prompt:       o.Prompt,
		acrValues:    append([]string(nil), o.ACRValues...),
		maxAge:       o.MaxAge.D(),
		authParams:   o.AuthParams,
		algorithms:   append([]string(nil), o.AllowedAlgorithms...),
		formPost:     o.ResponseMode == "form_post",
		mfaACR:       append([]string(nil), o.MFAACRValues...),
		timeout:      o.Timeout.D(),
	}
	s.claims.Extra = append([]string(nil), o.Claims.Extra...)
	if o.UserInfo != nil {
		s.userinfo = *o.UserInfo
	}
	if len(s.scopes) == 0 {
		s.scopes = []string{gooidc.ScopeOpenID, "email", "profile"}
	}
	if s.claims.Email == "" {
		s.claims.Email = "email"
	}
	if s.claims.EmailVerified == "" {
		s.claims.EmailVerified = "email_verified"
	}
	if s.claims.Name == "" {
		s.claims.Name = "name"
	}
	if s.claims.Groups == "" {
		s.claims.Groups = "groups"
	}
	if len(s.algorithms) == 0 {
		s.algorithms = append([]string(nil), DefaultAlgorithms...)
	}
	if s.timeout == 0 {
		s.timeout = defaultTimeout
	}
	signup := o.SignupPrompt
	if signup == "" {
		signup = signupDefault
	}
	if signup != "none" {
		s.signup, _ = url.ParseQuery(signup) // validated
	}
	return s
}

func newProvider(name, typ, display string, s settings, env Env) *Provider {
	if display == "" {
		display = s.defaultDisplay
	}
	if display == "" {
		display = name
	}
	env = env.withDefaults(s.timeout)
	return &Provider{name: name, typ: typ, display: display, s: s, env: env,
		log: env.Logger.With(zap.String("provider", name)), retry: retryInterval}
}

// fieldErrors turns Validate's findings into one error (the loader has
// reported them already with positions; this guards direct callers).
func fieldErrors(errs []config.FieldError) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Key + ": " + e.Msg
	}
	return errors.New("oidc: " + strings.Join(msgs, "; "))
}

// SignsUp reports whether the provider has a sign-up screen the chooser
// can offer (signup_prompt is not none).
func (p *Provider) SignsUp() bool { return p.s.signup != nil }

// Name returns the provider's policy name.
func (p *Provider) Name() string { return p.name }

// Type returns the policy type: oidc, google, microsoft or gitlab.
func (p *Provider) Type() string { return p.typ }

// DisplayName returns the chooser label.
func (p *Provider) DisplayName() string { return p.display }

// CrossSiteCallback is true with response_mode form_post: the provider then
// POSTs the response to the callback from its own site.
func (p *Provider) CrossSiteCallback() bool { return p.s.formPost }

// Issuer returns the issuer ID tokens must carry (for multi-tenant
// Microsoft, the template with {tenantid}; before discovery of a Microsoft
// tenant given by domain, "").
func (p *Provider) Issuer() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disc != nil {
		return p.disc.issuer
	}
	return p.s.issuer
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
