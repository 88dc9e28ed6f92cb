package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The settings of the OpenID Connect provider types: "oidc" (any OpenID
// Provider, configured through discovery) and the social presets "google",
// "microsoft", "gitlab" (OIDC with fixed issuers) and "github" (plain
// OAuth2 plus GitHub's API). Defaults are filled in by providers/oidc when
// it builds the provider; a zero value here means "not set".

// OAuthClient is the client registration at the provider.
type OAuthClient struct {
	ClientID     string   `yaml:"client_id" doc:"Client id registered at the provider."`
	ClientSecret string   `yaml:"client_secret" doc:"Client secret (use ${ENV}). Empty for a public client (PKCE only)."`
	Scopes       []string `yaml:"scopes" doc:"Scopes to request. Default [openid, email, profile] (github: [read:user, user:email], plus read:org for orgs or teams as groups)."`
}

// OIDCClaims names the ID token (or userinfo) claims Gatehouse reads.
type OIDCClaims struct {
	Email         string   `yaml:"email" doc:"Claim holding the email address. Default email."`
	EmailVerified string   `yaml:"email_verified" doc:"Claim saying whether the email is verified (true or \"true\"; anything else is unverified). Default email_verified."`
	Name          string   `yaml:"name" doc:"Claim holding the display name. Default name."`
	Groups        string   `yaml:"groups" doc:"Claim holding the groups, a string or a list of strings. Default groups. A dotted path (realm_access.roles) reaches into objects when no claim has that exact name."`
	Extra         []string `yaml:"extra" doc:"More claims to keep (for forward.claims and the assertion), by name."`
}

// OIDCOptions is how Gatehouse behaves as a relying party; shared by the
// generic oidc type and the OIDC presets.
type OIDCOptions struct {
	Claims            OIDCClaims        `yaml:"claims" doc:"Which claims hold the email, its verification, the name and the groups."`
	UserInfo          *bool             `yaml:"userinfo" doc:"Also read the userinfo endpoint and merge its claims (its sub must equal the ID token's). Default false (gitlab: true)."`
	Prompt            string            `yaml:"prompt" doc:"prompt sent on every sign-in: login, consent, select_account or none (space-separated for several)."`
	ACRValues         []string          `yaml:"acr_values" doc:"acr_values sent on every sign-in (a route's step-up replaces them)."`
	MaxAge            Duration          `yaml:"max_age" doc:"max_age sent on every sign-in; the ID token's auth_time must then be at most this old."`
	SignupPrompt      string            `yaml:"signup_prompt" doc:"Parameters sent for \"create account\", as a query string. Default prompt=create (google and gitlab: none). none: the provider has no sign-up screen."`
	AuthParams        map[string]string `yaml:"auth_params" doc:"Extra authorization request parameters (e.g. audience, resource, ui_locales). Protocol parameters cannot be overridden."`
	AllowedAlgorithms []string          `yaml:"allowed_algorithms" doc:"ID token signature algorithms accepted. Default [RS256, ES256, PS256, EdDSA]. none and HS* are never accepted."`
	ResponseMode      string            `yaml:"response_mode" doc:"query (default) or form_post (the callback arrives as a cross-site POST)."`
	MFAACRValues      []string          `yaml:"mfa_acr_values" doc:"acr_values to request when a route requires MFA; an ID token whose acr is one of them counts as MFA."`
	Timeout           Duration          `yaml:"timeout" doc:"Time limit of each call to the provider (discovery, keys, token, userinfo). Default 10s."`
}

// OIDCProvider is any OpenID Provider, configured from its discovery
// document (issuer + /.well-known/openid-configuration).
type OIDCProvider struct {
	ProviderCommon `yaml:",inline"`
	Issuer         string `yaml:"issuer" doc:"Issuer URL; discovery is read from issuer + /.well-known/openid-configuration and the ID token's iss must equal it."`
	OAuthClient    `yaml:",inline"`
	OIDCOptions    `yaml:",inline"`
}

// GoogleProvider is Google sign-in (issuer https://accounts.google.com).
type GoogleProvider struct {
	ProviderCommon `yaml:",inline"`
	OAuthClient    `yaml:",inline"`
	OIDCOptions    `yaml:",inline"`
	HostedDomain   string `yaml:"hosted_domain" doc:"Google Workspace domain: sent as hd and required in the ID token's hd claim."`
}

// MicrosoftProvider is the Microsoft identity platform (Entra ID, personal
// Microsoft accounts).
type MicrosoftProvider struct {
	ProviderCommon `yaml:",inline"`
	OAuthClient    `yaml:",inline"`
	OIDCOptions    `yaml:",inline"`
	Tenant         string   `yaml:"tenant" doc:"common (default: work, school and personal accounts), organizations, consumers, or a tenant id or domain."`
	AllowedTenants []string `yaml:"allowed_tenants" doc:"With common or organizations: tenant ids (GUIDs) whose accounts may sign in. Empty: any tenant."`
	Authority      string   `yaml:"authority" doc:"Login host for national clouds. Default https://login.microsoftonline.com."`
}

// GitLabProvider is GitLab sign-in (gitlab.com or a self-managed GitLab).
type GitLabProvider struct {
	ProviderCommon `yaml:",inline"`
	OAuthClient    `yaml:",inline"`
	OIDCOptions    `yaml:",inline"`
	BaseURL        string `yaml:"base_url" doc:"GitLab's URL, also its issuer. Default https://gitlab.com."`
}

// GitHubProvider is GitHub sign-in: plain OAuth2 (GitHub has no OpenID
// Connect for people), with the profile and verified primary email read
// from GitHub's API.
type GitHubProvider struct {
	ProviderCommon `yaml:",inline"`
	OAuthClient    `yaml:",inline"`
	BaseURL        string            `yaml:"base_url" doc:"GitHub's web URL (authorize and token endpoints; also the identities' issuer). Default https://github.com."`
	APIURL         string            `yaml:"api_url" doc:"GitHub's API URL. Default https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3)."`
	OrgsAsGroups   bool              `yaml:"orgs_as_groups" doc:"Use the person's organization logins as groups (asks read:org)."`
	TeamsAsGroups  bool              `yaml:"teams_as_groups" doc:"Use the person's teams as groups, spelled org/team-slug (asks read:org)."`
	AuthParams     map[string]string `yaml:"auth_params" doc:"Extra authorization request parameters (e.g. allow_signup: \"false\")."`
	Timeout        Duration          `yaml:"timeout" doc:"Time limit of each call to GitHub. Default 10s."`
}

// Validate checks an oidc provider's settings (no I/O).
func (p *OIDCProvider) Validate() []FieldError {
	var errs []FieldError
	if p.Issuer == "" {
		errs = append(errs, FieldError{"issuer", "an oidc provider needs an issuer", "e.g. https://accounts.example.com (discovery is read from issuer/.well-known/openid-configuration)"})
	} else {
		errs = append(errs, checkIssuerURL("issuer", p.Issuer)...)
	}
	errs = append(errs, p.OAuthClient.validate(true)...)
	errs = append(errs, p.OIDCOptions.validate()...)
	return errs
}

// Validate checks a google provider's settings (no I/O).
func (p *GoogleProvider) Validate() []FieldError {
	errs := append(p.OAuthClient.validate(true), p.OIDCOptions.validate()...)
	if p.HostedDomain != "" && !validHostPattern(strings.ToLower(p.HostedDomain), false) {
		errs = append(errs, FieldError{"hosted_domain", fmt.Sprintf("invalid domain %q", p.HostedDomain), "e.g. example.com"})
	}
	return errs
}

var tenantGUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsTenantID reports whether s is a Microsoft tenant id (a GUID).
func IsTenantID(s string) bool { return tenantGUID.MatchString(s) }

// Validate checks a microsoft provider's settings (no I/O).
func (p *MicrosoftProvider) Validate() []FieldError {
	errs := append(p.OAuthClient.validate(true), p.OIDCOptions.validate()...)
	switch t := p.Tenant; {
	case t == "", t == "common", t == "organizations", t == "consumers", IsTenantID(t):
	case validHostPattern(strings.ToLower(t), false) && !strings.HasPrefix(t, "*.") && strings.Contains(t, "."):
	default:
		errs = append(errs, FieldError{"tenant", fmt.Sprintf("invalid tenant %q", p.Tenant), "common, organizations, consumers, a tenant id (GUID) or a verified domain such as contoso.onmicrosoft.com"})
	}
	multi := p.Tenant == "" || p.Tenant == "common" || p.Tenant == "organizations"
	for _, t := range p.AllowedTenants {
		if !IsTenantID(t) {
			errs = append(errs, FieldError{"allowed_tenants", fmt.Sprintf("%q is not a tenant id", t), "a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47"})
		}
	}
	if len(p.AllowedTenants) > 0 && !multi {
		errs = append(errs, FieldError{"allowed_tenants", "allowed_tenants only applies to tenant common or organizations", "remove it, or set tenant: organizations"})
	}
	if p.Authority != "" {
		errs = append(errs, checkBaseURL("authority", p.Authority)...)
	}
	return errs
}

// Validate checks a gitlab provider's settings (no I/O).
func (p *GitLabProvider) Validate() []FieldError {
	errs := append(p.OAuthClient.validate(true), p.OIDCOptions.validate()...)
	if p.BaseURL != "" {
		errs = append(errs, checkIssuerURL("base_url", p.BaseURL)...)
	}
	return errs
}

// Validate checks a github provider's settings (no I/O).
func (p *GitHubProvider) Validate() []FieldError {
	errs := p.OAuthClient.validate(false)
	if p.ClientSecret == "" {
		errs = append(errs, FieldError{"client_secret", "a github provider needs a client_secret", "set it from the environment: client_secret: ${GITHUB_CLIENT_SECRET}"})
	}
	if p.BaseURL != "" {
		errs = append(errs, checkBaseURL("base_url", p.BaseURL)...)
	}
	if p.APIURL != "" {
		errs = append(errs, checkBaseURL("api_url", p.APIURL)...)
	}
	errs = append(errs, checkAuthParams(p.AuthParams)...)
	errs = append(errs, checkTimeout(p.Timeout)...)
	return errs
}

func (c *OAuthClient) validate(oidc bool) []FieldError {
	var errs []FieldError
	if c.ClientID == "" {
		errs = append(errs, FieldError{"client_id", "missing client_id", "the client id registered at the provider"})
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			errs = append(errs, FieldError{"scopes", fmt.Sprintf("invalid scope %q", s), "one scope per list item, without spaces"})
		}
	}
	if oidc && len(c.Scopes) > 0 && !contains(c.Scopes, "openid") {
		errs = append(errs, FieldError{"scopes", "scopes must include openid", "add openid to the list (or leave scopes out for [openid, email, profile])"})
	}
	return errs
}

// promptValues are the prompt values a policy may send (OpenID Connect
// Core and Initiating User Registration).
var promptValues = []string{"none", "login", "consent", "select_account", "create"}

// AllowedIDTokenAlgorithms are the signature algorithms an ID token may use.
var AllowedIDTokenAlgorithms = []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}

func (o *OIDCOptions) validate() []FieldError {
	var errs []FieldError
	for _, pair := range []struct{ key, val string }{
		{"email", o.Claims.Email}, {"email_verified", o.Claims.EmailVerified},
		{"name", o.Claims.Name}, {"groups", o.Claims.Groups},
	} {
		if strings.TrimSpace(pair.val) != pair.val {
			errs = append(errs, FieldError{"claims", fmt.Sprintf("claims.%s: claim name %q has surrounding spaces", pair.key, pair.val), ""})
		}
	}
	for _, c := range o.Claims.Extra {
		if c == "" || strings.TrimSpace(c) != c {
			errs = append(errs, FieldError{"claims", fmt.Sprintf("claims.extra: invalid claim name %q", c), ""})
		}
	}
	if o.Prompt != "" {
		vals := strings.Fields(o.Prompt)
		for _, v := range vals {
			if !contains(promptValues, v) {
				errs = append(errs, FieldError{"prompt", fmt.Sprintf("unknown prompt value %q", v), didYouMean(v, promptValues)})
			}
		}
		if contains(vals, "none") && len(vals) > 1 {
			errs = append(errs, FieldError{"prompt", "prompt none cannot be combined with other values", ""})
		}
		if contains(vals, "create") {
			errs = append(errs, FieldError{"prompt", "create is sent for \"create account\" only", "use signup_prompt to say what to send for sign-up"})
		}
	}
	for _, a := range o.ACRValues {
		if a == "" || strings.ContainsAny(a, " \t\r\n") {
			errs = append(errs, FieldError{"acr_values", fmt.Sprintf("invalid acr value %q", a), "one value per list item, without spaces"})
		}
	}
	for _, a := range o.MFAACRValues {
		if a == "" || strings.ContainsAny(a, " \t\r\n") {
			errs = append(errs, FieldError{"mfa_acr_values", fmt.Sprintf("invalid acr value %q", a), "one value per list item, without spaces"})
		}
	}
	if o.MaxAge != 0 && o.MaxAge.D() < time.Second {
		errs = append(errs, FieldError{"max_age", "max_age is below one second", "max_age is sent in whole seconds, e.g. 15m"})
	}
	if o.SignupPrompt != "" && o.SignupPrompt != "none" {
		q, err := url.ParseQuery(o.SignupPrompt)
		if err != nil || len(q) == 0 {
			errs = append(errs, FieldError{"signup_prompt", fmt.Sprintf("%q is not a query string", o.SignupPrompt), "e.g. prompt=create, screen_hint=signup, or none"})
		} else {
			for k := range q {
				if reservedAuthParam(k) && k != "prompt" {
					errs = append(errs, FieldError{"signup_prompt", fmt.Sprintf("signup_prompt cannot set %q", k), "Gatehouse sets the protocol parameters itself"})
				}
			}
		}
	}
	errs = append(errs, checkAuthParams(o.AuthParams)...)
	for _, a := range o.AllowedAlgorithms {
		switch {
		case strings.EqualFold(a, "none"):
			errs = append(errs, FieldError{"allowed_algorithms", "unsigned ID tokens (none) are never accepted", "remove it"})
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			errs = append(errs, FieldError{"allowed_algorithms", fmt.Sprintf("%s (HMAC) is never accepted for ID tokens", a), "use the provider's asymmetric keys: RS256, ES256, PS256 or EdDSA"})
		case !contains(AllowedIDTokenAlgorithms, a):
			errs = append(errs, FieldError{"allowed_algorithms", fmt.Sprintf("unknown algorithm %q", a), didYouMean(a, AllowedIDTokenAlgorithms)})
		}
	}
	switch o.ResponseMode {
	case "", "query", "form_post":
	default:
		errs = append(errs, FieldError{"response_mode", fmt.Sprintf("unknown response_mode %q", o.ResponseMode), didYouMean(o.ResponseMode, []string{"query", "form_post"})})
	}
	errs = append(errs, checkTimeout(o.Timeout)...)
	return errs
}

func checkTimeout(d Duration) []FieldError {
	if d != 0 && (d.D() < time.Second || d.D() > 2*time.Minute) {
		return []FieldError{{"timeout", fmt.Sprintf("timeout %s out of range", d.D()), "between 1s and 2m"}}
	}
	return nil
}

// reservedAuthParam reports whether an authorization request parameter is
// one Gatehouse sets itself.
func reservedAuthParam(k string) bool {
	switch strings.ToLower(k) {
	case "response_type", "client_id", "client_secret", "redirect_uri", "scope", "state", "nonce",
		"code_challenge", "code_challenge_method", "response_mode", "request", "request_uri",
		"prompt", "max_age", "acr_values", "hd":
		return true
	}
	return false
}

func checkAuthParams(m map[string]string) []FieldError {
	var errs []FieldError
	for _, k := range sortedKeys(m) {
		if k == "" {
			errs = append(errs, FieldError{"auth_params", "empty parameter name", ""})
		} else if reservedAuthParam(k) {
			errs = append(errs, FieldError{"auth_params", fmt.Sprintf("%q is set by Gatehouse and cannot be overridden", k), "use the dedicated setting (scopes, prompt, acr_values, max_age, response_mode) instead"})
		}
	}
	return errs
}

// checkIssuerURL accepts an https URL without query or fragment; plain
// http only for loopback hosts (tests and local development).
func checkIssuerURL(key, s string) []FieldError {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return []FieldError{{key, fmt.Sprintf("%q is not an absolute URL", s), "e.g. https://accounts.example.com"}}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return []FieldError{{key, "the URL must not have a query, fragment or user info", ""}}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return []FieldError{{key, "the provider must be reached over https", "plain http is accepted only for localhost, 127.0.0.1 or ::1"}}
		}
	default:
		return []FieldError{{key, fmt.Sprintf("unsupported scheme %q", u.Scheme), "use https"}}
	}
	return nil
}

// checkBaseURL is checkIssuerURL for service base URLs.
func checkBaseURL(key, s string) []FieldError { return checkIssuerURL(key, s) }

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
