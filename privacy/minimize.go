package privacy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// PairwiseLength is the length of a pairwise subject: 22 base64url
// characters, 132 bits of the HMAC.
const PairwiseLength = 22

// PairwiseIssuerPrefix starts the Issuer of a minimized identity whose
// subject was replaced by a pairwise one, so that (iss, sub) never pairs the
// provider's issuer with a subject the provider did not issue.
const PairwiseIssuerPrefix = "urn:gatehouse:pairwise:"

// derive returns a subkey of key for one use, so that the pseudonym key is
// never used directly for two purposes.
func derive(key []byte, use string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("gatehouse privacy subkey\x00" + use))
	return m.Sum(nil)
}

// Pairwise returns the pairwise subject of subjectKey in a pseudonym group:
// base64url(HMAC-SHA256(key, group NUL issuer NUL subject)) cut to 22
// characters. The same customer gets the same value in one group on every
// replica and after restarts; values of two groups cannot be linked without
// the key. The input is the subject key (issuer and subject), not the
// provider name, so renaming a provider in the policy keeps pseudonyms.
func (p *Policy) Pairwise(group, subjectKey string) (string, error) {
	const op = "pairwise subject"
	if p.key == nil {
		return "", fmt.Errorf("privacy: %s: %w: no pseudonym key", op, ErrNotConfigured)
	}
	if group == "" {
		return "", invalid(op, "empty group")
	}
	iss, sub, ok := SplitSubjectKey(subjectKey)
	if !ok {
		return "", invalid(op, "subject key %q is not issuer|subject", subjectKey)
	}
	return pairwise(p.key, group, iss, sub), nil
}

func pairwise(key []byte, group, issuer, subject string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(group))
	m.Write([]byte{0})
	m.Write([]byte(issuer))
	m.Write([]byte{0})
	m.Write([]byte(subject))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:PairwiseLength]
}

// Minimize returns a copy of id carrying only what the route may receive.
// Authentication facts (audience, amr, acr, auth_time, scopes) and the
// provider are kept; email (with email_verified), name, groups and each
// extra claim are kept only when the route lists them. With a pseudonym
// group the subject is the pairwise one and the issuer
// PairwiseIssuerPrefix+group. A nil route policy, or one that does not list
// claims, keeps every claim. id is never modified; a nil id gives the zero
// Identity.
func (p *Policy) Minimize(id *identity.Identity, rp *RoutePolicy) identity.Identity {
	if id == nil {
		return identity.Identity{}
	}
	out := *id
	out.Groups = slices.Clone(id.Groups)
	out.AMR = slices.Clone(id.AMR)
	out.Scopes = slices.Clone(id.Scopes)
	out.Extra = maps.Clone(id.Extra)
	if rp == nil {
		return out
	}
	if rp.LimitClaims {
		allowed := func(c string) bool { return slices.Contains(rp.Claims, c) }
		if !allowed("email") {
			out.Email, out.EmailVerified = "", false
		}
		if !allowed("name") {
			out.Name = ""
		}
		if !allowed("groups") {
			out.Groups = nil
		}
		for k := range out.Extra {
			if !allowed(k) {
				delete(out.Extra, k)
			}
		}
		if len(out.Extra) == 0 {
			out.Extra = nil
		}
	}
	if rp.Pseudonym != "" {
		if p == nil || p.key == nil {
			// Never fall back to the real subject: send an empty one,
			// which upstreams reject, rather than leak it.
			out.Subject, out.Issuer = "", ""
			return out
		}
		out.Subject = pairwise(p.key, rp.Pseudonym, id.Issuer, id.Subject)
		out.Issuer = PairwiseIssuerPrefix + rp.Pseudonym
	}
	return out
}

// LogUser returns the zap fields identifying a customer in a log line, as
// privacy.logs.personal_data says: "user_hash" (a keyed hash of provider
// and subject, the same function as the access log's) or nothing. Without
// a key, hash mode degrades to nothing rather than to plain text.
func (p *Policy) LogUser(id *identity.Identity) []zap.Field {
	if id == nil || p == nil || p.logMode == "omit" || p.logKey == nil {
		return nil
	}
	m := hmac.New(sha256.New, p.logKey)
	m.Write([]byte(id.Provider))
	m.Write([]byte{0})
	m.Write([]byte(id.Subject))
	return []zap.Field{zap.String("user_hash", hex.EncodeToString(m.Sum(nil)[:8]))}
}

// LogMode is how customers appear in logs: "hash" or "omit".
func (p *Policy) LogMode() string { return p.logMode }

// LogValue returns how any other piece of personal data (an email in an
// error message, a subject key) may appear in logs: a keyed hash prefixed
// "h:" or "-" when omitted or no key is configured.
func (p *Policy) LogValue(v string) string {
	if p == nil || p.logMode == "omit" || p.logKey == nil || v == "" {
		return "-"
	}
	m := hmac.New(sha256.New, p.logKey)
	m.Write([]byte("value\x00"))
	m.Write([]byte(v))
	return "h:" + hex.EncodeToString(m.Sum(nil)[:8])
}
