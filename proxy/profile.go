package proxy

import (
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// Progressive profiling: a route may require profile claims
// (require: { claims: [phone] }). A session without them is sent to sign
// in again with "claims=phone" in the login URL; the attempt's StepUp
// carries them to the provider, which asks the person for what is
// missing (the local provider's profile page), and the callback checks
// the new identity has them like any step-up.

// maxLoginClaims bounds the claims a login URL may ask for.
const maxLoginClaims = 16

// claimsQuery is the login URL's claims parameter for a decision ("" when
// the route requires none): for NeedStepUp and, so that the first sign-in
// already collects them, NeedLogin.
func claimsQuery(d *policy.Decision) string {
	if len(d.Requirement.Claims) == 0 || (d.Effect != policy.NeedLogin && d.Effect != policy.NeedStepUp) {
		return ""
	}
	return "claims=" + queryEscape(strings.Join(d.Requirement.Claims, ","))
}

// loginClaims reads a login URL's claims parameter: comma-separated claim
// names; malformed names are dropped.
func loginClaims(v string) []string {
	if v == "" || len(v) > 1024 {
		return nil
	}
	var out []string
	for _, c := range strings.Split(v, ",") {
		if config.ValidClaimName(c) && !contains(out, c) && len(out) < maxLoginClaims {
			out = append(out, c)
		}
	}
	return out
}

// stepUpUnmetPage is the title and message of the page shown when a
// provider did not deliver what the sign-in asked for: a stronger
// sign-in, or profile information it does not have.
func stepUpUnmetPage(step *providers.StepUp, id *identity.Identity, now time.Time) (title, msg string) {
	strong := &providers.StepUp{MFA: step.MFA, ACR: step.ACR, MaxAge: step.MaxAge}
	if strong.SatisfiedBy(id, now) && len(step.MissingClaims(id)) > 0 {
		return "More information needed", "This page needs information about you (such as a phone number) that your sign-in provider did not supply. Sign in with an account that can provide it, or contact the site's administrator."
	}
	return "Stronger sign-in needed", "This page needs a stronger sign-in (for example multi-factor authentication) than your sign-in provided."
}
