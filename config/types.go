package config

// The types below are the policy file's schema. Every field has a yaml tag
// (the one spelling of its key) and a doc tag that `gatehouse schema` turns
// into the JSON Schema description editors show. Defaults are applied by
// Load after validation; a zero value means "not set".

// Config is a whole gatehouse.yaml.
type Config struct {
	Version   int                 `yaml:"version" doc:"Policy format version. Must be 1."`
	Server    Server              `yaml:"server" doc:"Listeners, public URL, trusted proxies and timeouts."`
	Log       Log                 `yaml:"log" doc:"Logging format and how personal data appears in logs."`
	Session   Session             `yaml:"session" doc:"Browser sessions: keys, lifetimes and cookie attributes."`
	State     State               `yaml:"state" doc:"Where replicas share short-lived state (replay caches, revocations, rate limits, server-side sessions). Default: this process's memory."`
	Assertion Assertion           `yaml:"assertion" doc:"The signed identity assertion (a JWT) sent to upstreams."`
	Branding  Branding            `yaml:"branding" doc:"Look of the sign-in and error pages."`
	Audiences map[string]Audience `yaml:"audiences" doc:"How each audience (workforce, customer, api, public) signs in."`
	Providers map[string]Provider `yaml:"providers" doc:"Identity providers by name. The type key selects the provider's settings."`
	Roles     map[string]Role     `yaml:"roles" doc:"Roles, granted from IdP groups, email domains, emails or subjects, with inheritance."`
	Routes    []Route             `yaml:"routes" doc:"Routes: what is matched, who may reach it, and where it goes."`
	Tracing   Tracing             `yaml:"tracing" doc:"OpenTelemetry tracing (off by default); W3C traceparent is propagated upstream."`
	Privacy   Privacy             `yaml:"privacy" doc:"Privacy by design for customers: consent purposes, data minimization, pseudonymous subjects, regions, retention and deletion notices."`
	SCIM      SCIM                `yaml:"scim" doc:"A SCIM 2.0 /Users endpoint at /.gatehouse/scim/v2 through which an IdP deprovisions people (their sessions end on every replica)."`

	// Source records where each key came from, for diagnostics.
	Source *Source `yaml:"-"`
}

// Server holds listener and network settings.
type Server struct {
	Listen               string     `yaml:"listen" doc:"Public listen address. Default :8080."`
	PublicURL            string     `yaml:"public_url" doc:"External base URL of the gateway, used for callbacks and the assertion issuer. Default http://localhost:8080."`
	AdminListen          string     `yaml:"admin_listen" doc:"Address of the separate admin listener (metrics, health). Empty disables it. Never the public address."`
	AdminToken           string     `yaml:"admin_token" doc:"Bearer secret (at least 32 bytes; use ${ENV}) required by the admin listener's write endpoints (session revocation). Without it those endpoints are off."`
	TrustedProxies       []string   `yaml:"trusted_proxies" doc:"CIDRs or IPs of proxies whose X-Forwarded-* and Forwarded headers are believed."`
	AllowedRedirectHosts []string   `yaml:"allowed_redirect_hosts" doc:"Extra hosts (exact or *.example.com) that return URLs may point to. Route hosts are allowed already."`
	StripHeaders         []string   `yaml:"strip_headers" doc:"Extra client header names (or Prefix-* patterns) always removed before forwarding."`
	Timeouts             Timeouts   `yaml:"timeouts" doc:"Server and upstream timeouts."`
	RateLimit            *RateLimit `yaml:"rate_limit" doc:"Rate limits applied to every request (per client IP, per user), counted in the shared state."`
}

// Timeouts holds server-wide time limits.
type Timeouts struct {
	ReadHeader Duration `yaml:"read_header" doc:"Time to read request headers. Default 10s."`
	Idle       Duration `yaml:"idle" doc:"Keep-alive idle time. Default 120s."`
	Upstream   Duration `yaml:"upstream" doc:"Default time to wait for upstream response headers. Default 30s."`
	Shutdown   Duration `yaml:"shutdown" doc:"Time to drain in-flight requests on SIGTERM. Default 30s."`
}

// Log configures logging.
type Log struct {
	Format string `yaml:"format" doc:"json (default) or console."`
	Level  string `yaml:"level" doc:"debug, info (default), warn or error."`
	User   string `yaml:"user" doc:"How the user appears in access logs: hash (default, keyed hash), omit, or plain."`
}

// Session configures browser sessions.
type Session struct {
	Store           string   `yaml:"store" doc:"Session store: cookie (default: the encrypted session lives in the browser) or server (the cookie carries only an opaque id; the session lives in the shared state)."`
	CookieName      string   `yaml:"cookie_name" doc:"Base cookie name. Default gatehouse."`
	Keys            []string `yaml:"keys" doc:"Secrets of at least 32 bytes (use ${ENV}). The first encrypts new cookies, all decrypt. Generate with 'gatehouse keys'."`
	Idle            Duration `yaml:"idle" doc:"Idle timeout. Default 30m."`
	Lifetime        Duration `yaml:"lifetime" doc:"Absolute session lifetime. Default 12h."`
	SameSite        string   `yaml:"same_site" doc:"lax (default), strict or none."`
	Domain          string   `yaml:"domain" doc:"Cookie domain, to share sessions across subdomains. Empty: host-only (__Host- prefix)."`
	InsecureCookies bool     `yaml:"insecure_cookies" doc:"Drop the Secure attribute. Only for plain-HTTP development on a non-localhost name."`
}

// SCIM configures the deprovisioning endpoint.
type SCIM struct {
	Token string `yaml:"token" doc:"Bearer secret the IdP's provisioning connector sends (at least 32 bytes; use ${ENV}). Empty: no SCIM endpoint."`
}

// State configures the shared short-lived state.
type State struct {
	RedisURL  string   `yaml:"redis_url" doc:"Redis to share state through: redis://[user:password@]host:port/db, rediss:// for TLS, redis+sentinel://[user:password@]host1:port,host2:port/master/db, or redis+cluster://host1:port,host2:port. Empty: keep state in this process (one replica only)."`
	KeyPrefix string   `yaml:"key_prefix" doc:"Prefix of every Redis key. Default gatehouse:."`
	Timeout   Duration `yaml:"timeout" doc:"Time limit of one Redis operation. Default 500ms."`
}

// Assertion configures the signed identity assertion.
type Assertion struct {
	Disabled bool           `yaml:"disabled" doc:"Do not send the assertion header."`
	Header   string         `yaml:"header" doc:"Header carrying the assertion. Default X-Gatehouse-Assertion."`
	TTL      Duration       `yaml:"ttl" doc:"Assertion lifetime. Default 60s."`
	Keys     []AssertionKey `yaml:"keys" doc:"Signing keys (ES256 or Ed25519 PEM). The first signs, all are published in the JWKS. Without keys an ephemeral key is generated at start."`
}

// AssertionKey is one signing key, from a file or inline PEM.
type AssertionKey struct {
	ID   string `yaml:"id" doc:"Key id (kid). Default: the RFC 7638 thumbprint."`
	File string `yaml:"file" doc:"Path to a PEM private key."`
	PEM  string `yaml:"pem" doc:"Inline PEM private key (use ${ENV})."`
}

// Branding configures the gateway's pages.
type Branding struct {
	Title           string `yaml:"title" doc:"Product name shown on pages. Default Gatehouse."`
	Logo            string `yaml:"logo" doc:"Logo as a data: URI or a same-origin path."`
	PrimaryColor    string `yaml:"primary_color" doc:"Accent colour, #rgb or #rrggbb."`
	BackgroundColor string `yaml:"background_color" doc:"Page background colour, #rgb or #rrggbb."`
	Templates       string `yaml:"templates" doc:"Folder with template overrides (error.html, chooser.html, ...)."`
}

// Audience configures how one audience signs in.
type Audience struct {
	Providers []string `yaml:"providers" doc:"Providers offered to this audience, in display order."`
}

// Role grants a role from identity facts. Any listed fact grants it.
type Role struct {
	Description  string   `yaml:"description" doc:"What the role is for."`
	Groups       []string `yaml:"groups" doc:"IdP groups that grant the role."`
	EmailDomains []string `yaml:"email_domains" doc:"Verified email domains that grant the role."`
	Emails       []string `yaml:"emails" doc:"Verified email addresses that grant the role."`
	Subjects     []string `yaml:"subjects" doc:"Subjects (provider/sub or sub) that grant the role."`
	Inherits     []string `yaml:"inherits" doc:"Roles whose grants this role also carries (admin inherits employee)."`
}

// Route is one entry of the route table.
type Route struct {
	Name      string        `yaml:"name" doc:"Unique route name; the assertion's aud and the metrics label."`
	Match     Match         `yaml:"match" doc:"Which requests the route takes."`
	Audience  StringList    `yaml:"audience" doc:"Audience(s): workforce, customer, api, public. A string or a list."`
	Allow     *Rule         `yaml:"allow" doc:"Who may pass. Omitted: nobody, unless the audience is public."`
	Deny      *Rule         `yaml:"deny" doc:"Who may never pass; beats allow, also inside nested rules."`
	Require   *Require      `yaml:"require" doc:"Authentication strength required (MFA, ACR, recent sign-in)."`
	Rules     []SubRule     `yaml:"rules" doc:"Nested rules for sub-paths; the most specific matching one applies."`
	Upstream  string        `yaml:"upstream" doc:"Upstream base URL (http or https)."`
	Forward   *Forward      `yaml:"forward" doc:"Identity headers sent upstream. Omitted: the X-Gatehouse-* defaults."`
	Timeout   Duration      `yaml:"timeout" doc:"Upstream response-header timeout for this route."`
	RateLimit *RateLimit    `yaml:"rate_limit" doc:"Rate limits of this route (per client IP, per user), counted in the shared state."`
	Privacy   *RoutePrivacy `yaml:"privacy" doc:"Consent purposes the route requires, the identity claims it may receive, its pseudonymous subject group and its regions."`
	// PreserveHost sends the client's Host header upstream instead of the upstream's.
	PreserveHost bool `yaml:"preserve_host" doc:"Send the client's Host header upstream."`
}

// Match selects requests.
type Match struct {
	Host            StringList `yaml:"host" doc:"Host(s): exact (app.example.com) or wildcard (*.example.com). Omitted: any host."`
	Path            string     `yaml:"path" doc:"Path to match. Default /."`
	PathType        string     `yaml:"path_type" doc:"prefix (default, at segment boundaries), exact or regex (anchored, matched on the normalized path only)."`
	Methods         []string   `yaml:"methods" doc:"HTTP methods. Omitted: any standard method."`
	CaseInsensitive bool       `yaml:"case_insensitive" doc:"Match the path ignoring ASCII case. Default false (case-sensitive)."`
}

// Rule lists identity facts; a Rule matches when any one of them matches,
// except Scopes, which must all be present.
type Rule struct {
	Authenticated bool     `yaml:"authenticated" doc:"Any signed-in identity of the route's audiences."`
	Roles         []string `yaml:"roles" doc:"Roles from the roles section."`
	Groups        []string `yaml:"groups" doc:"IdP groups."`
	Emails        []string `yaml:"emails" doc:"Verified email addresses."`
	EmailDomains  []string `yaml:"email_domains" doc:"Verified email domains (exact, case-insensitive)."`
	Subjects      []string `yaml:"subjects" doc:"Subjects, as provider/sub or sub."`
	Scopes        []string `yaml:"scopes" doc:"OAuth scopes; all must be present (API tokens)."`
}

// Require states how strong the authentication must be.
type Require struct {
	MFA        bool     `yaml:"mfa" doc:"Require multi-factor authentication (amr)."`
	ACR        []string `yaml:"acr" doc:"Accepted acr values (any of)."`
	AMR        []string `yaml:"amr" doc:"Required amr values (all of)."`
	MaxAuthAge Duration `yaml:"max_auth_age" doc:"Maximum time since the person last authenticated."`
	Claims     []string `yaml:"claims" doc:"Profile claims the identity must carry (all of), e.g. [phone]: a session without one signs in again, and a local provider that declares the field in its profile asks for it once (progressive profiling)."`
}

// SubRule is a nested rule for a sub-path of a route. When it matches it
// replaces the route's allow; the route's deny still applies and
// requirements add up.
type SubRule struct {
	Name            string   `yaml:"name" doc:"Rule name, shown in decisions and logs. Default: the path."`
	Path            string   `yaml:"path" doc:"Absolute path inside the route."`
	PathType        string   `yaml:"path_type" doc:"prefix (default), exact or regex."`
	Methods         []string `yaml:"methods" doc:"Methods this rule covers. Omitted: all."`
	CaseInsensitive bool     `yaml:"case_insensitive" doc:"Match ignoring ASCII case."`
	Allow           *Rule    `yaml:"allow" doc:"Who may pass on this sub-path."`
	Deny            *Rule    `yaml:"deny" doc:"Who may never pass on this sub-path."`
	Require         *Require `yaml:"require" doc:"Extra requirements on this sub-path."`
}

// Forward names the identity headers an upstream receives. An empty header
// name means that fact is not sent.
type Forward struct {
	User      string            `yaml:"user" doc:"Header for the user identifier."`
	UserClaim string            `yaml:"user_claim" doc:"Which fact is the user identifier: sub (default), email or name."`
	Email     string            `yaml:"email" doc:"Header for the email address."`
	Name      string            `yaml:"name" doc:"Header for the display name."`
	Groups    string            `yaml:"groups" doc:"Header for the groups (comma-separated)."`
	Roles     string            `yaml:"roles" doc:"Header for the roles (comma-separated)."`
	Claims    map[string]string `yaml:"claims" doc:"More headers: header name to extra claim name."`
	Assertion *bool             `yaml:"assertion" doc:"Send the signed assertion header. Default true."`
	// AccessToken forwards the provider's access token (OIDC sessions).
	AccessToken string `yaml:"access_token" doc:"Header that carries the person's OIDC access token upstream: Authorization (sent as Bearer) or a name such as X-Forwarded-Access-Token. Omitted: never forwarded, and sessions keep no access or refresh token. When set, sessions of the route's providers keep their tokens and refresh them before they expire."`
}

// Provider is one identity provider. Type selects which of the typed
// settings below is filled; the loader checks keys against that type only.
type Provider struct {
	Type        string `yaml:"type"`
	DisplayName string `yaml:"display_name"`

	Static        *StaticProvider        `yaml:"-"`
	JWT           *JWTProvider           `yaml:"-"`
	Introspection *IntrospectionProvider `yaml:"-"`
	OIDC          *OIDCProvider          `yaml:"-"`
	Google        *GoogleProvider        `yaml:"-"`
	Microsoft     *MicrosoftProvider     `yaml:"-"`
	GitLab        *GitLabProvider        `yaml:"-"`
	GitHub        *GitHubProvider        `yaml:"-"`
	SAML          *SAMLProvider          `yaml:"-"`
	Local         *LocalProvider         `yaml:"-"`
}

// Settings returns the typed settings of the provider (a *StaticProvider,
// ...), or nil.
func (p *Provider) Settings() any {
	switch {
	case p.Static != nil:
		return p.Static
	case p.JWT != nil:
		return p.JWT
	case p.Introspection != nil:
		return p.Introspection
	case p.OIDC != nil:
		return p.OIDC
	case p.Google != nil:
		return p.Google
	case p.Microsoft != nil:
		return p.Microsoft
	case p.GitLab != nil:
		return p.GitLab
	case p.GitHub != nil:
		return p.GitHub
	case p.SAML != nil:
		return p.SAML
	case p.Local != nil:
		return p.Local
	}
	return nil
}

// FieldError is a problem a provider type's Validate method found, with the
// key path relative to the provider ("idp_metadata_url") and a hint.
type FieldError struct {
	Key, Msg, Hint string
}

// ProviderCommon holds the keys every provider type accepts.
type ProviderCommon struct {
	Type        string `yaml:"type" doc:"Provider type."`
	DisplayName string `yaml:"display_name" doc:"Name shown on the sign-in chooser."`
}

// StaticProvider is a fixed list of users picked on a form: for tests and
// demos only, never production.
type StaticProvider struct {
	ProviderCommon `yaml:",inline"`
	Users          []StaticUser `yaml:"users" doc:"The users offered on the picker."`
}

// StaticUser is one user of a static provider.
type StaticUser struct {
	Subject string   `yaml:"sub" doc:"Subject."`
	Name    string   `yaml:"name" doc:"Display name."`
	Email   string   `yaml:"email" doc:"Email (treated as verified)."`
	Groups  []string `yaml:"groups" doc:"Groups."`
	AMR     []string `yaml:"amr" doc:"Authentication methods to claim, e.g. [pwd, otp]."`
	ACR     string   `yaml:"acr" doc:"Authentication context class to claim."`
}

// providerTypes maps a provider type name to the struct holding its
// settings and the Provider field it is stored in. Later provider types
// register here.
var providerTypes = map[string]providerKind{
	"static":        {typ: typeOf[StaticProvider](), set: func(p *Provider, v any) { p.Static = v.(*StaticProvider) }},
	"jwt":           {typ: typeOf[JWTProvider](), set: func(p *Provider, v any) { p.JWT = v.(*JWTProvider) }},
	"introspection": {typ: typeOf[IntrospectionProvider](), set: func(p *Provider, v any) { p.Introspection = v.(*IntrospectionProvider) }},
	"oidc":          {typ: typeOf[OIDCProvider](), set: func(p *Provider, v any) { p.OIDC = v.(*OIDCProvider) }},
	"google":        {typ: typeOf[GoogleProvider](), set: func(p *Provider, v any) { p.Google = v.(*GoogleProvider) }},
	"microsoft":     {typ: typeOf[MicrosoftProvider](), set: func(p *Provider, v any) { p.Microsoft = v.(*MicrosoftProvider) }},
	"gitlab":        {typ: typeOf[GitLabProvider](), set: func(p *Provider, v any) { p.GitLab = v.(*GitLabProvider) }},
	"github":        {typ: typeOf[GitHubProvider](), set: func(p *Provider, v any) { p.GitHub = v.(*GitHubProvider) }},
	"saml":          {typ: typeOf[SAMLProvider](), set: func(p *Provider, v any) { p.SAML = v.(*SAMLProvider) }},
	"local":         {typ: typeOf[LocalProvider](), set: func(p *Provider, v any) { p.Local = v.(*LocalProvider) }},
}
