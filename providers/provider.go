// Package providers defines how Gatehouse talks to identity providers: the
// Provider interface every protocol implements (start a sign-in, finish it
// into a normalized identity.Identity), optional extra interfaces for
// refresh, logout and readiness, and the login-attempt types the proxy keeps
// between the two halves of a sign-in. Providers never import the proxy,
// the session store or the policy.
package providers

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// Provider signs people in through one identity provider.
//
// An error from Begin or Complete means the sign-in failed (a technical
// failure or a refused response), never "not allowed": authorization is the
// policy's job. Errors should be *LoginError so that the person sees a
// friendly message while the log gets the precise reason.
type Provider interface {
	// Name is the provider's name in the policy.
	Name() string
	// Type is the provider type ("static", "saml", "oidc", ...).
	Type() string
	// DisplayName is shown on the sign-in chooser.
	DisplayName() string
	// Begin starts a sign-in and says where to send the browser. Data it
	// returns in the Redirect is kept with the attempt and handed back to
	// Complete.
	Begin(ctx context.Context, a *Attempt) (*Redirect, error)
	// CallbackState extracts the attempt key the provider echoed back to the
	// callback (an OIDC state, a SAML RelayState, a form field). It must not
	// consume the request body beyond what Complete can still read.
	CallbackState(r *http.Request) string
	// Complete finishes a sign-in from the callback request of the attempt.
	Complete(ctx context.Context, r *http.Request, a *Attempt) (*identity.Identity, error)
}

// Refresher is implemented by providers that can renew a session's
// identity without the person (OIDC refresh tokens).
type Refresher interface {
	Refresh(ctx context.Context, id *identity.Identity, tokens map[string]string) (*identity.Identity, map[string]string, error)
}

// TokenCompleter is implemented by providers that return tokens with the
// identity (OIDC: id_token, access and refresh tokens, the OP session id
// "sid"). Tokens are never part of the Identity; the proxy keeps only those
// it needs in the session.
type TokenCompleter interface {
	CompleteWithTokens(ctx context.Context, r *http.Request, a *Attempt) (*identity.Identity, map[string]string, error)
}

// TokenLogoutProvider is LogoutProvider with the session's tokens (an
// id_token_hint for OIDC RP-initiated logout).
type TokenLogoutProvider interface {
	LogoutWithTokens(ctx context.Context, id *identity.Identity, tokens map[string]string, returnURL string) (string, error)
}

// LogoutProvider is implemented by providers with single logout: it
// returns where to send the browser to end the IdP session, or "" when
// nothing is needed.
type LogoutProvider interface {
	Logout(ctx context.Context, id *identity.Identity, returnURL string) (string, error)
}

// ReadinessChecker is implemented by providers that depend on fetched
// material (metadata, JWKS); Ready returns nil once they can serve.
type ReadinessChecker interface {
	Ready() error
}

// CallbackPather is implemented by providers whose callback is not the
// default /.gatehouse/callback/<name>; CallbackPath is relative to
// /.gatehouse/ (for SAML: "saml/<name>/acs").
type CallbackPather interface {
	CallbackPath() string
}

// CrossSiteCallback is implemented by providers whose callback arrives as a
// cross-site POST (SAML HTTP-POST binding, OIDC response_mode=form_post):
// the attempt cookie is then SameSite=None (and Secure) so the browser
// sends it with that POST.
type CrossSiteCallback interface {
	CrossSiteCallback() bool
}

// EndpointProvider is implemented by providers that serve extra endpoints
// under /.gatehouse/ (SAML metadata and single logout). Keys are paths
// relative to /.gatehouse/ ("saml/corp/metadata"); handlers get the
// request as sent, already sanitized.
type EndpointProvider interface {
	Endpoints() map[string]http.Handler
}

// UnsolicitedCompleter is implemented by providers that can accept a
// sign-in nobody started here (SAML IdP-initiated), when their policy
// allows it. The proxy calls it when CallbackState finds no attempt key;
// it returns the identity and where to go next (a validated-by-the-proxy
// return URL, or "").
type UnsolicitedCompleter interface {
	CompleteUnsolicited(ctx context.Context, r *http.Request) (id *identity.Identity, returnURL string, err error)
}

// BearerAuthenticator authenticates API requests from their
// Authorization: Bearer token (JWT via JWKS, or RFC 7662 introspection).
// It returns (nil, nil) when the request carries no bearer token, and an
// error wrapping ErrInvalidToken when it carries a bad one.
type BearerAuthenticator interface {
	Name() string
	Authenticate(ctx context.Context, r *http.Request) (*identity.Identity, error)
}

// ErrInvalidToken is matched by errors for bearer tokens that are
// malformed, expired, wrongly signed or otherwise refused; the proxy
// answers 401 with WWW-Authenticate: Bearer error="invalid_token".
var ErrInvalidToken = errors.New("invalid bearer token")

// Attempt is one sign-in in progress, bound to the browser that started it
// (kept in an encrypted, short-lived cookie) and usable once.
type Attempt struct {
	// State is the opaque, single-use key of the attempt (never a URL).
	State string `json:"state"`
	// Nonce binds an ID token to this attempt (OIDC).
	Nonce string `json:"nonce,omitempty"`
	// Provider is the provider's name.
	Provider string `json:"prov"`
	// Audience is the audience the session will belong to.
	Audience identity.Audience `json:"aud"`
	// CallbackURL is the absolute URL of the callback endpoint.
	CallbackURL string `json:"cb"`
	// ReturnURL is the validated URL to go back to after sign-in.
	ReturnURL string `json:"rd"`
	// StepUp, when set, is what the sign-in must satisfy.
	StepUp *StepUp `json:"step_up,omitempty"`
	// Prompt asks the provider for a specific screen ("login", "create").
	Prompt string `json:"prompt,omitempty"`
	// LoginHint pre-fills the provider's sign-in (an email or username).
	LoginHint string `json:"login_hint,omitempty"`
	// Data is provider-private state from Begin (PKCE verifier, request id).
	Data map[string]string `json:"data,omitempty"`
	// Created is when the attempt started.
	Created time.Time `json:"created"`
}

// StepUp is a stronger-authentication request for a sign-in.
type StepUp struct {
	MFA    bool          `json:"mfa,omitempty"`
	ACR    []string      `json:"acr,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
	// Claims are profile claims the identity must carry (Identity.Extra,
	// non-empty): a provider that keeps a profile asks for the missing ones
	// (progressive profiling); others cannot supply what they lack.
	Claims []string `json:"claims,omitempty"`
}

// Strong reports whether the step-up asks for a stronger or more recent
// authentication, not only for profile claims.
func (s *StepUp) Strong() bool {
	return s.MFA || len(s.ACR) > 0 || s.MaxAge > 0
}

// MissingClaims returns the requested claims the identity lacks.
func (s *StepUp) MissingClaims(id *identity.Identity) []string {
	var out []string
	for _, c := range s.Claims {
		if id.Extra[c] == "" {
			out = append(out, c)
		}
	}
	return out
}

// SatisfiedBy reports whether an identity fresh from the provider meets
// the step-up request: MFA through its amr, an accepted acr, an
// authentication no older than MaxAge (with a minute of clock skew), and
// every requested profile claim.
func (s *StepUp) SatisfiedBy(id *identity.Identity, now time.Time) bool {
	if s.MFA && !id.HasMFA() {
		return false
	}
	if len(s.ACR) > 0 && !slices.Contains(s.ACR, id.ACR) {
		return false
	}
	if s.MaxAge > 0 && (id.AuthTime.IsZero() || now.Sub(id.AuthTime) > s.MaxAge+time.Minute) {
		return false
	}
	return len(s.MissingClaims(id)) == 0
}

// Redirect says where to send the browser to start a sign-in: a GET to URL,
// or, when Form is set, an auto-submitted POST of Form to URL (SAML
// HTTP-POST binding).
type Redirect struct {
	URL  string
	Form map[string]string
	// Data is kept with the attempt and returned to Complete.
	Data map[string]string
}

// ErrLoginFailed is matched (errors.Is) by every *LoginError.
var ErrLoginFailed = errors.New("sign-in failed")

// LoginError is a refused or failed sign-in. Reason is a stable code for
// logs and metrics; Public is safe to show a person; Err is the private
// detail, logged and never shown.
type LoginError struct {
	Reason string
	Public string
	Err    error
}

func (e *LoginError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

// Unwrap returns the private cause.
func (e *LoginError) Unwrap() error { return e.Err }

// Is makes every LoginError match ErrLoginFailed.
func (e *LoginError) Is(target error) bool { return target == ErrLoginFailed }

// Fail builds a *LoginError.
func Fail(reason, public string, err error) *LoginError {
	return &LoginError{Reason: reason, Public: public, Err: err}
}

// SignUpper is implemented by providers that can open their own sign-up
// screen (OIDC prompt=create or a provider-specific parameter): the
// chooser then offers "Create an account", a sign-in with Prompt "create".
type SignUpper interface {
	SignsUp() bool
}

// SingleLogout is implemented by providers whose single logout is a
// message the browser carries to the IdP and back (SAML SLO). StartLogout
// returns where to send the browser (a GET to URL, or an auto-submitted
// POST of Form); Data (the LogoutRequest id) is kept by the gateway in a
// short-lived cookie and handed to ReceiveLogout with the IdP's answer.
// The local session has already ended when StartLogout is called.
type SingleLogout interface {
	StartLogout(ctx context.Context, id *identity.Identity, tokens map[string]string, returnURL string) (*Redirect, error)
}

// Gateway is what the gateway offers providers that act on sessions or
// requests themselves (local accounts: end every session after a password
// reset; count attempts per client address).
type Gateway interface {
	// RevokeSubject ends every session of subject at provider, on every
	// replica.
	RevokeSubject(ctx context.Context, provider, subject string) error
	// ClientIP is the client's address as the gateway determined it
	// (trusted proxies applied), or "" when unknown.
	ClientIP(r *http.Request) string
}

// GatewayBinder is implemented by providers that need the Gateway; the
// gateway calls BindGateway when it takes the provider into service.
type GatewayBinder interface {
	BindGateway(Gateway)
}

// LogoutOriginer is implemented by providers whose single logout sends
// the browser to an origin other than their Issuer (SAML IdPs' SLO
// endpoints): the sign-out page's CSP form-action must allow them.
type LogoutOriginer interface {
	LogoutOrigins() []string
}

// LogoutReceiver is implemented by providers that receive logout messages
// from their IdP: SAML LogoutRequest (IdP-initiated, front channel) and
// LogoutResponse (the answer to StartLogout), OIDC back-channel logout
// tokens. The gateway serves LogoutPath (relative to /.gatehouse/), calls
// ReceiveLogout, ends the sessions the notice names on every replica, and
// then calls notice.Respond when set.
type LogoutReceiver interface {
	LogoutPath() string
	// ReceiveLogout validates the message in r (signature, issuer,
	// destination, freshness, replay). data is what StartLogout returned
	// when this browser began a logout here, or nil. An error refuses the
	// message: it should be a *LoginError whose Reason is logged.
	ReceiveLogout(ctx context.Context, r *http.Request, data map[string]string) (*LogoutNotice, error)
}

// LogoutNotice is what a valid logout message says.
type LogoutNotice struct {
	// Subject, when set, is the person (Identity.Subject) whose sessions
	// from this provider end. With SessionIDs, only those IdP sessions end.
	Subject string
	// SessionIDs are IdP session ids (SAML SessionIndex, OIDC sid); with
	// no Subject, every session carrying one of them ends.
	SessionIDs []string
	// Completed is true for the IdP's answer to a logout this gateway
	// started (a SAML LogoutResponse); nothing more ends, and the browser
	// goes back to the return URL kept when the logout began.
	Completed bool
	// Respond, when set, writes the answer the IdP expects (a SAML
	// LogoutResponse sent back with the browser). ended is nil when the
	// sessions ended, or why they could not. Without Respond the gateway
	// answers 200 with an empty body (back channel) or a notice page.
	Respond func(w http.ResponseWriter, r *http.Request, ended error)
}
