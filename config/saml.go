package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// SAMLProvider is a SAML 2.0 identity provider (Okta, Entra ID, ADFS,
// Keycloak, Shibboleth, Google Workspace, ...) with Gatehouse as the
// service provider. Defaults are applied by the provider when it is built.
type SAMLProvider struct {
	ProviderCommon `yaml:",inline"`

	IdPMetadataURL  string   `yaml:"idp_metadata_url" doc:"URL of the IdP's SAML metadata (https, or http on a loopback address only). Fetched at start with metadata_timeout, then every metadata_refresh; the last good copy is kept when a refresh fails. Exactly one of idp_metadata_url, idp_metadata_file and idp_metadata."`
	IdPMetadataFile string   `yaml:"idp_metadata_file" doc:"Path to the IdP's SAML metadata XML, relative to the policy file's folder. Read at start and on reload."`
	IdPMetadata     string   `yaml:"idp_metadata" doc:"The IdP's SAML metadata XML, inline."`
	MetadataRefresh Duration `yaml:"metadata_refresh" doc:"How often idp_metadata_url is fetched again. Default 1h, at least 1m."`
	MetadataTimeout Duration `yaml:"metadata_timeout" doc:"Time limit for one fetch of idp_metadata_url. Default 10s."`

	EntityID   string `yaml:"entity_id" doc:"This service provider's entity ID (the Audience the IdP must name). Default <public_url>/.gatehouse/saml/<provider>/metadata."`
	SPCertFile string `yaml:"sp_cert_file" doc:"PEM certificate of the service provider's key pair, published in the SP metadata (relative to the policy file's folder). Make one with 'gatehouse keys saml'."`
	SPKeyFile  string `yaml:"sp_key_file" doc:"PEM private key (RSA or ECDSA) that signs AuthnRequests and, when RSA, decrypts encrypted assertions (relative to the policy file's folder)."`

	Binding           string   `yaml:"binding" doc:"How the AuthnRequest reaches the IdP: redirect (default, HTTP-Redirect) or post (HTTP-POST). Responses always arrive by HTTP-POST."`
	SignRequests      *bool    `yaml:"sign_requests" doc:"Sign AuthnRequests with sp_key_file. Default true."`
	AllowIdPInitiated bool     `yaml:"allow_idp_initiated" doc:"Accept unsolicited (IdP-initiated) sign-ins at the ACS. Default false. They are still checked for signature, audience, recipient, validity and replay."`
	ClockSkew         Duration `yaml:"clock_skew" doc:"Tolerated clock difference with the IdP when checking NotBefore, NotOnOrAfter and IssueInstant. Default 2m, at most 3m."`
	NameIDFormat      string   `yaml:"name_id_format" doc:"NameID format to ask for: email, persistent, transient or unspecified (default: the IdP chooses). The NameID becomes the subject: prefer persistent."`

	SingleLogout *bool  `yaml:"single_logout" doc:"SAML single logout (SLO): signing out here also ends the IdP session (a signed LogoutRequest sent with the browser), and a signed LogoutRequest from the IdP ends the sessions it names here. Default true; it takes effect only when the IdP metadata lists a SingleLogoutService. The SP metadata then lists the SLO endpoint <public_url>/.gatehouse/saml/<provider>/slo."`
	SLOBinding   string `yaml:"slo_binding" doc:"How the LogoutRequest reaches the IdP: redirect (HTTP-Redirect) or post (HTTP-POST). Default: the same as binding; the other one is used when the IdP offers only that."`

	MFAAuthnContexts []string       `yaml:"mfa_authn_contexts" doc:"AuthnContextClassRef values requested when a route requires MFA and accepted as MFA. Default [https://refeds.org/profile/mfa, http://schemas.microsoft.com/claims/multipleauthn]."`
	Attributes       SAMLAttributes `yaml:"attributes" doc:"Which SAML attributes give the email, display name, groups and extra facts."`
}

// SAMLAttributes names the SAML attributes (by their Name, never their
// FriendlyName) that the identity is built from.
type SAMLAttributes struct {
	Email  string   `yaml:"email" doc:"Attribute with the email address; its presence marks the email verified. Default: the first present of mail, email, emailAddress, urn:oid:0.9.2342.19200300.100.1.3 and http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress."`
	Name   string   `yaml:"name" doc:"Attribute with the display name. Default: the first present of displayName, name, cn, urn:oid:2.16.840.1.113730.3.1.241, urn:oid:2.5.4.3 and http://schemas.microsoft.com/identity/claims/displayname."`
	Groups string   `yaml:"groups" doc:"Multi-valued attribute with the groups. Default: the first present of memberOf, groups, urn:oid:1.3.6.1.4.1.5923.1.5.1.1, http://schemas.microsoft.com/ws/2008/06/identity/claims/groups and http://schemas.xmlsoap.org/claims/Group."`
	Extra  []string `yaml:"extra" doc:"More attributes to keep as extra claims, under their attribute name; several values are joined with commas."`
}

// SAMLMaxClockSkew is the largest clock_skew accepted: the SAML library
// itself never tolerates more than three minutes.
const SAMLMaxClockSkew = 3 * time.Minute

// Validate checks the settings without reading any file or network.
func (s *SAMLProvider) Validate() []FieldError {
	var errs []FieldError
	add := func(key, hint, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	n := 0
	for _, v := range []string{s.IdPMetadataURL, s.IdPMetadataFile, s.IdPMetadata} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		add("idp_metadata_url", "give exactly one of idp_metadata_url, idp_metadata_file and idp_metadata", "a SAML provider needs exactly one source of IdP metadata, got %d", n)
	}
	if s.IdPMetadataURL != "" {
		u, err := url.Parse(s.IdPMetadataURL)
		switch {
		case err != nil || !u.IsAbs() || u.Host == "":
			add("idp_metadata_url", "e.g. https://idp.example.com/metadata", "%q is not an absolute URL", s.IdPMetadataURL)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			add("idp_metadata_url", "metadata carries the IdP's signing keys: fetch it over https, or download it and use idp_metadata_file", "plain http is only allowed on a loopback address")
		case u.Scheme != "http" && u.Scheme != "https":
			add("idp_metadata_url", "use https", "unsupported scheme %q", u.Scheme)
		}
	}
	if s.IdPMetadata != "" && !strings.HasPrefix(strings.TrimSpace(s.IdPMetadata), "<") {
		add("idp_metadata", "paste the metadata XML (it starts with <), or use idp_metadata_url or idp_metadata_file", "inline metadata is not XML")
	}
	if s.MetadataRefresh != 0 && s.MetadataRefresh.D() < time.Minute {
		add("metadata_refresh", "e.g. 1h", "refresh interval %s is shorter than 1m", s.MetadataRefresh.D())
	}
	if s.MetadataTimeout != 0 && (s.MetadataTimeout.D() < time.Second || s.MetadataTimeout.D() > 2*time.Minute) {
		add("metadata_timeout", "between 1s and 2m", "timeout %s out of range", s.MetadataTimeout.D())
	}
	if s.EntityID != "" && !strings.Contains(s.EntityID, ":") {
		add("entity_id", "an entity ID is a URI, e.g. https://apps.example.com/saml or urn:example:gatehouse", "%q is not a URI", s.EntityID)
	}
	if s.SPCertFile == "" {
		add("sp_cert_file", "make a key pair with 'gatehouse keys saml'", "a SAML provider needs sp_cert_file")
	}
	if s.SPKeyFile == "" {
		add("sp_key_file", "make a key pair with 'gatehouse keys saml'", "a SAML provider needs sp_key_file")
	}
	enum := func(key, val string, allowed ...string) {
		if val == "" {
			return
		}
		for _, a := range allowed {
			if val == a {
				return
			}
		}
		add(key, didYouMean(val, allowed), "unknown value %q", val)
	}
	enum("binding", s.Binding, "redirect", "post")
	enum("slo_binding", s.SLOBinding, "redirect", "post")
	if s.SingleLogout != nil && !*s.SingleLogout && s.SLOBinding != "" {
		add("slo_binding", "remove slo_binding, or set single_logout: true", "slo_binding is set but single_logout is false")
	}
	enum("name_id_format", s.NameIDFormat, "email", "persistent", "transient", "unspecified")
	if s.ClockSkew.D() > SAMLMaxClockSkew {
		add("clock_skew", "at most 3m; fix the clocks (NTP) rather than widen the window", "clock skew %s is too large", s.ClockSkew.D())
	}
	for i, c := range s.MFAAuthnContexts {
		if strings.TrimSpace(c) == "" {
			add(fmt.Sprintf("mfa_authn_contexts[%d]", i), "", "empty authentication context class")
		}
	}
	seen := map[string]bool{}
	for i, a := range s.Attributes.Extra {
		key := fmt.Sprintf("attributes.extra[%d]", i)
		switch {
		case strings.TrimSpace(a) == "":
			add(key, "", "empty attribute name")
		case seen[a]:
			add(key, "", "duplicate attribute %q", a)
		}
		seen[a] = true
	}
	return errs
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
