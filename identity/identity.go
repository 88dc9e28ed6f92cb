// Package identity defines the normalized Identity that every provider
// produces and every policy decision consumes, and the audience kinds that
// partition Gatehouse's traffic. It depends on the standard library only.
package identity

import (
	"slices"
	"time"
)

// Audience is the kind of traffic a route serves and a session belongs to.
// A session is bound to exactly one audience: a customer session never
// satisfies a workforce route (ATTACKS.md #10, mod_auth_mellon CVE-2017-6807).
type Audience string

// The audience kinds Gatehouse knows.
const (
	// Workforce is employees and admins signing in through the company IdP.
	Workforce Audience = "workforce"
	// Customer is the public signing in with social or CIAM providers.
	Customer Audience = "customer"
	// API is machine clients presenting bearer tokens; never redirected.
	API Audience = "api"
	// Public means anonymous access is allowed; an identity is optional.
	Public Audience = "public"
)

// Audiences lists every audience kind in a stable order.
var Audiences = []Audience{Workforce, Customer, API, Public}

// Valid reports whether a is one of the known audience kinds.
func (a Audience) Valid() bool {
	return slices.Contains(Audiences, a)
}

// Identity is a person or client after authentication, normalized across
// providers. People are keyed on (Issuer, Subject), never on Email: an email
// claim can be unverified or mutable (ATTACKS.md #11).
type Identity struct {
	// Subject is the provider's stable identifier for the person or client.
	Subject string `json:"sub"`
	// Issuer identifies who vouched for Subject (an OIDC issuer, a SAML
	// entity id, or the provider name for local providers).
	Issuer string `json:"iss,omitempty"`
	// Provider is the name of the policy provider that authenticated this identity.
	Provider string `json:"prov,omitempty"`
	// Audience is the audience the identity's session belongs to.
	Audience Audience `json:"aud"`
	// Email is the person's email address as the provider asserted it.
	Email string `json:"email,omitempty"`
	// EmailVerified is true only when the provider asserted the email is verified.
	// Domain rules ignore unverified emails.
	EmailVerified bool `json:"email_verified,omitempty"`
	// Name is a display name.
	Name string `json:"name,omitempty"`
	// Groups are the IdP groups (or team memberships) the person belongs to.
	Groups []string `json:"groups,omitempty"`
	// AMR lists authentication methods (RFC 8176), e.g. "pwd", "mfa", "otp".
	AMR []string `json:"amr,omitempty"`
	// ACR is the authentication context class reference.
	ACR string `json:"acr,omitempty"`
	// AuthTime is when the person last actively authenticated.
	AuthTime time.Time `json:"auth_time,omitzero"`
	// Scopes are OAuth scopes granted to a bearer token (API audience).
	Scopes []string `json:"scopes,omitempty"`
	// Extra holds additional claims or attributes the policy asked to keep.
	Extra map[string]string `json:"extra,omitempty"`
}

// Key returns the identity's stable key, "issuer|subject".
func (id *Identity) Key() string {
	return id.Issuer + "|" + id.Subject
}

// HasAMR reports whether the identity authenticated with method m.
func (id *Identity) HasAMR(m string) bool {
	return slices.Contains(id.AMR, m)
}

// HasMFA reports whether the identity's authentication used more than one
// factor according to its amr claim (RFC 8176): either "mfa" itself, or
// methods from at least two factor categories (knowledge, possession,
// inherence).
func (id *Identity) HasMFA() bool {
	var cats uint8
	for _, m := range id.AMR {
		switch m {
		case "mfa":
			return true
		case "pwd", "pin", "kba":
			cats |= 1
		case "hwk", "swk", "otp", "sms", "tel", "sc":
			cats |= 2
		case "fpt", "face", "iris", "retina", "vbm":
			// "user" (RFC 8176: a presence test) is not a factor.
			cats |= 4
		}
	}
	return cats&(cats-1) != 0 // two or more bits set
}
