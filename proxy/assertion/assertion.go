// Package assertion produces and checks the signed identity assertion that
// Gatehouse attaches to every request it forwards upstream.
//
// After a request is authorized, the proxy sets a header (DefaultHeader
// unless configured otherwise) to a short-lived JWT signed by the gateway.
// An upstream application verifies it against the gateway's JSON Web Key
// Set, served at JWKSPath, and so learns both that the request went through
// Gatehouse and who made it. Tokens are signed with ES256 (ECDSA P-256) or
// EdDSA (Ed25519, RFC 8037); no other algorithm is produced or accepted.
//
// The pieces are:
//
//   - Signer signs Claims with the first of its keys and publishes all of
//     them as a JWKS document, which makes key rotation a matter of
//     reordering a list.
//   - Cache reuses a signed assertion for the same session and route while
//     enough of its lifetime is left, so the hot path costs a map lookup
//     instead of a signature.
//   - Verifier checks an assertion against a JWKS document; it is what an
//     upstream application (or a test) uses.
//
// The package depends on the standard library only.
package assertion

import (
	"errors"
	"strings"
	"time"
)

// DefaultHeader is the request header that carries the assertion upstream
// when the configuration does not name another. The proxy must delete any
// copy of this header sent by the client before setting its own.
const DefaultHeader = "X-Gatehouse-Assertion"

// JWKSPath is the path under the gateway's public URL where Signer.JWKS is
// served.
const JWKSPath = "/.gatehouse/jwks.json"

// JWKSContentType is the media type of the document returned by
// Signer.JWKS (RFC 7517 section 8.5).
const JWKSContentType = "application/jwk-set+json"

// MaxTokenSize is the largest assertion, in bytes, that Signer.Sign produces
// and Verifier.Verify accepts. It keeps the header well under common proxy
// and server header limits.
const MaxTokenSize = 16 << 10

// Leeway is the clock skew Verifier tolerates when checking exp, nbf and iat.
const Leeway = 30 * time.Second

// DefaultTTL is the assertion lifetime NewSigner uses when given a zero TTL.
const DefaultTTL = 60 * time.Second

// The algorithms, as they appear in the JWS "alg" header and the JWK "alg"
// member.
const (
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// Errors returned (wrapped) by Verifier.Verify; test for them with errors.Is.
var (
	// ErrMalformed means the token is not a well-formed JWS compact
	// serialization carrying a JSON object with correctly typed claims.
	ErrMalformed = errors.New("assertion: malformed token")
	// ErrTooLarge means the token is longer than MaxTokenSize.
	ErrTooLarge = errors.New("assertion: token too large")
	// ErrAlgorithm means the header names an algorithm other than ES256 or
	// EdDSA, or one that does not match the type of the key named by kid.
	ErrAlgorithm = errors.New("assertion: unacceptable algorithm")
	// ErrUnknownKey means the header's kid is missing or not in the JWKS.
	ErrUnknownKey = errors.New("assertion: unknown key id")
	// ErrSignature means the signature does not verify.
	ErrSignature = errors.New("assertion: invalid signature")
	// ErrIssuer means the iss claim is not the expected issuer.
	ErrIssuer = errors.New("assertion: wrong issuer")
	// ErrAudience means the aud claim is not exactly the expected audience.
	ErrAudience = errors.New("assertion: wrong audience")
	// ErrExpired means exp (plus Leeway) has passed.
	ErrExpired = errors.New("assertion: expired")
	// ErrNotYetValid means nbf or iat is later than now plus Leeway.
	ErrNotYetValid = errors.New("assertion: not yet valid")
)

// Claims are what an assertion says about a request. When signing, only
// non-empty fields are emitted; when verifying, absent claims leave their
// fields at the zero value.
type Claims struct {
	// Issuer (iss) is the gateway's public URL. Sign requires it.
	Issuer string
	// Subject (sub) is the identity's stable subject identifier.
	Subject string
	// Audience (aud) is the route name. It is always a single JSON string,
	// never an array. Sign requires it.
	Audience string
	// IdentityAudience (gh_aud) is the audience kind of the session:
	// workforce, customer, api or public.
	IdentityAudience string
	// Provider (gh_prov) is the name of the provider that authenticated the
	// identity.
	Provider string
	// Email (email) is the identity's email address.
	Email string
	// EmailVerified (email_verified) is emitted only when true.
	EmailVerified bool
	// Name (name) is a display name.
	Name string
	// Groups (groups) are the identity's group memberships.
	Groups []string
	// Roles (roles) are roles granted by the policy.
	Roles []string
	// Scopes (scope) are OAuth scopes, emitted as one space-separated
	// string. Sign drops any scope that is not a valid RFC 6749 scope-token
	// (empty, or containing a space, control character, '"' or '\'), so a
	// single odd scope can never turn into several.
	Scopes []string
	// AMR (amr) lists the authentication methods used (RFC 8176).
	AMR []string
	// ACR (acr) is the authentication context class reference.
	ACR string
	// AuthTime (auth_time) is when the person last actively authenticated;
	// omitted when zero.
	AuthTime time.Time
	// Consent (gh_consent) lists the consent purposes the customer grants,
	// as "purpose:version"; omitted when empty.
	Consent []string
	// Extra holds further top-level string claims. Sign drops entries whose
	// name is empty, is reserved (see IsReserved), or starts with "gh_", so
	// Extra can never override or impersonate a claim above. Verify fills it
	// with the unreserved claims whose values are strings; it is nil when
	// there are none.
	Extra map[string]string
	// IssuedAt (iat), NotBefore (nbf) and Expiry (exp) are set by the
	// signer; values passed to Sign are ignored.
	IssuedAt, NotBefore, Expiry time.Time
	// ID (jti) is a random token identifier set by the signer; a value
	// passed to Sign is ignored.
	ID string
}

// reservedClaims are the claim names Claims.Extra may not use.
var reservedClaims = []string{
	// Emitted from Claims fields, or registered by RFC 7519.
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"email", "email_verified", "name", "groups", "roles", "scope",
	"amr", "acr", "auth_time",
	// Given authorization meaning by common libraries.
	"azp", "client_id", "scp", "cnf", "act", "sid", "nonce",
}

// IsReserved reports whether name is a claim name that Claims.Extra may not
// use: a claim Claims itself emits, a JWT registered claim (RFC 7519), a
// claim with authorization meaning in common libraries (azp, client_id,
// scp, cnf, act, sid, nonce), or any name in Gatehouse's "gh_" namespace.
// The comparison ignores case, with Unicode folding, because some JSON
// decoders (Go's encoding/json among them) match member names that way: an
// Extra "Sub" or "ſub" could otherwise override "sub" in an upstream.
func IsReserved(name string) bool {
	for _, r := range reservedClaims {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return len(name) >= 3 && strings.EqualFold(name[:3], "gh_")
}

// validScope reports whether s is an RFC 6749 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
