package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// Effect is what a decision says to do.
type Effect uint8

// The effects of a decision.
const (
	// Deny refuses the request (403, or 404 for ReasonNoRoute).
	Deny Effect = iota
	// Allow forwards the request upstream.
	Allow
	// NeedLogin means no acceptable identity was presented: sign in
	// (browsers) or 401 (APIs).
	NeedLogin
	// NeedStepUp means the identity is allowed but its authentication is
	// not strong or recent enough: sign in again with the Requirement.
	NeedStepUp
)

func (e Effect) String() string {
	switch e {
	case Allow:
		return "allow"
	case NeedLogin:
		return "need-login"
	case NeedStepUp:
		return "need-step-up"
	}
	return "deny"
}

// Reason is a stable code for why a decision was made; logs and metrics use
// it as a label.
type Reason string

// The reasons a decision may give.
const (
	ReasonNoRoute           Reason = "no_route"
	ReasonUnknownMethod     Reason = "unknown_method"
	ReasonPublic            Reason = "public"
	ReasonAllowed           Reason = "allowed"
	ReasonUnauthenticated   Reason = "unauthenticated"
	ReasonWrongAudience     Reason = "wrong_audience"
	ReasonDenied            Reason = "denied_by_rule"
	ReasonNoAllowRule       Reason = "no_allow_rule"
	ReasonNotAllowed        Reason = "not_allowed"
	ReasonInsufficientScope Reason = "insufficient_scope"
	ReasonMFARequired       Reason = "mfa_required"
	ReasonACRRequired       Reason = "acr_required"
	ReasonAMRRequired       Reason = "amr_required"
	ReasonAuthTooOld        Reason = "auth_too_old"
	ReasonClaimsRequired    Reason = "claims_required"
)

// Decision is the outcome of Decide. It carries no allocation-heavy
// strings; String and Explain build the sentence when asked.
type Decision struct {
	Effect Effect
	Reason Reason
	// Route is the matched route (nil for ReasonNoRoute).
	Route *Route
	// Rule is the nested rule that applied, or nil for the route's own
	// allow/deny.
	Rule *SubRule
	// Audience is the audience to sign in to, for NeedLogin and NeedStepUp.
	Audience identity.Audience
	// Requirement is what the sign-in must satisfy, for NeedStepUp; for
	// NeedLogin it is the route's requirement, whose Claims the first
	// sign-in may already collect.
	Requirement Requirement
	// MatchedBy and MatchedValue say which criterion matched an allow or
	// deny ("role", "admin"), or what is missing ("scope", "orders:read").
	MatchedBy, MatchedValue string
	// Roles are the identity's roles under the policy.
	Roles RoleSet
}

// RuleName names the rule that applied: "routes.<name>" or
// "routes.<name>.rules.<rule>".
func (d *Decision) RuleName() string {
	if d.Route == nil {
		return ""
	}
	if d.Rule != nil {
		return d.Route.Name + " > " + d.Rule.Name
	}
	return d.Route.Name
}

// String is a human-readable sentence explaining the decision.
func (d *Decision) String() string {
	where := "route " + quote(d.RuleName())
	if d.Rule != nil {
		where = "route " + quote(d.Route.Name) + ", rule " + quote(d.Rule.Name)
	}
	switch d.Reason {
	case ReasonNoRoute:
		return "no route matches this host, path and method; denied by default"
	case ReasonUnknownMethod:
		return "the method is not a standard HTTP method; denied"
	case ReasonPublic:
		return where + " is public; anonymous access allowed"
	case ReasonAllowed:
		if d.MatchedBy == "authenticated" {
			return where + " allows any signed-in identity"
		}
		return fmt.Sprintf("%s allows %s %s", where, d.MatchedBy, quote(d.MatchedValue))
	case ReasonUnauthenticated:
		return fmt.Sprintf("%s needs a %s sign-in", where, d.Audience)
	case ReasonWrongAudience:
		return fmt.Sprintf("%s does not accept this session's audience; needs a %s sign-in", where, d.Audience)
	case ReasonDenied:
		if d.MatchedBy == "authenticated" {
			return where + " denies every signed-in identity"
		}
		return fmt.Sprintf("%s denies %s %s", where, d.MatchedBy, quote(d.MatchedValue))
	case ReasonNoAllowRule:
		return where + " has no allow rule; denied by default"
	case ReasonNotAllowed:
		return where + " allows nothing this identity has (roles, groups, email, subject); denied by default"
	case ReasonInsufficientScope:
		return fmt.Sprintf("%s needs scope %s, which the token lacks", where, quote(d.MatchedValue))
	case ReasonMFARequired:
		return where + " requires multi-factor authentication; sign in again with MFA"
	case ReasonACRRequired:
		return fmt.Sprintf("%s requires acr %s; sign in again", where, strings.Join(d.Requirement.ACR, " or "))
	case ReasonAMRRequired:
		return fmt.Sprintf("%s requires authentication method %s; sign in again", where, quote(d.MatchedValue))
	case ReasonAuthTooOld:
		return fmt.Sprintf("%s requires a sign-in within the last %s; sign in again", where, d.Requirement.MaxAuthAge)
	case ReasonClaimsRequired:
		return fmt.Sprintf("%s requires profile claim %s, which the identity lacks; sign in again to provide it", where, quote(d.MatchedValue))
	}
	return string(d.Reason)
}

func quote(s string) string { return `"` + s + `"` }

// Decide judges a request against a matched route (nil when Match found
// none) for an identity (nil when none was presented). It is pure and
// allocation-free: the proxy, forward-auth and `gatehouse explain` all call
// it. The order is fixed: no route or no identity first, then deny rules
// (which beat everything), then allow rules (nothing allowed means deny),
// then authentication-strength requirements.
func (p *Policy) Decide(route *Route, id *identity.Identity, req Request, now time.Time) Decision {
	return p.DecideWithRoles(route, id, req, now, RoleSet{})
}

// DecideWithRoles is Decide with extra roles granted to the identity on
// top of those the policy derives (for `gatehouse explain --roles`).
func (p *Policy) DecideWithRoles(route *Route, id *identity.Identity, req Request, now time.Time, extra RoleSet) Decision {
	if route == nil {
		if methodBit(req.Method) == 0 {
			return Decision{Effect: Deny, Reason: ReasonUnknownMethod}
		}
		return Decision{Effect: Deny, Reason: ReasonNoRoute}
	}
	d := Decision{Route: route}
	d.Rule = route.subRule(req.Path, methodBit(req.Method))

	if id == nil || !route.accepts(id.Audience) {
		// Anonymous access covers the route unless the nested rule that
		// applies has an allow of its own (a public shop's /account).
		if route.Anonymous && (d.Rule == nil || d.Rule.allow == nil) {
			return d.with(Allow, ReasonPublic)
		}
		d.Audience = route.loginAudience()
		if d.Audience == identity.Public {
			return d.with(Deny, ReasonNotAllowed) // nobody can sign in to satisfy it
		}
		// The first sign-in can already collect the profile claims the
		// route needs (progressive profiling), sparing a second one.
		d.Requirement = route.requirement(d.Rule)
		if id == nil {
			return d.with(NeedLogin, ReasonUnauthenticated)
		}
		return d.with(NeedLogin, ReasonWrongAudience)
	}
	d.Roles = p.Roles(id)
	d.Roles.union(&extra)

	for _, deny := range [2]*ruleSet{route.deny, d.Rule.denyRule()} {
		if deny == nil || !deny.identityCriteria {
			continue
		}
		if m, ok := deny.matchIdentity(p, id, &d.Roles); ok {
			d.MatchedBy, d.MatchedValue = m.by, m.value
			return d.with(Deny, ReasonDenied)
		}
	}

	allow := route.allow
	if d.Rule != nil && d.Rule.allow != nil {
		allow = d.Rule.allow
	}
	switch {
	case allow == nil && route.Anonymous:
		return d.with(Allow, ReasonPublic)
	case allow == nil:
		return d.with(Deny, ReasonNoAllowRule)
	}
	if allow.identityCriteria {
		m, ok := allow.matchIdentity(p, id, &d.Roles)
		if !ok {
			return d.with(Deny, ReasonNotAllowed)
		}
		d.MatchedBy, d.MatchedValue = m.by, m.value
	}
	if s := allow.missingScope(id); s != "" {
		d.MatchedBy, d.MatchedValue = "scope", s
		return d.with(Deny, ReasonInsufficientScope)
	}
	if !allow.identityCriteria {
		d.MatchedBy, d.MatchedValue = "scope", strings0(allow.scopes)
	}

	req2 := route.requirement(d.Rule)
	if reason, missing := unmet(req2, id, now); reason != "" {
		d.Audience = id.Audience
		d.Requirement = req2
		d.MatchedBy, d.MatchedValue = "requirement", missing
		return d.with(NeedStepUp, reason)
	}
	return d.with(Allow, ReasonAllowed)
}

// requirement is what a request under the nested rule (nil: none) must
// satisfy: the rule's requirement already includes the route's.
func (r *Route) requirement(rule *SubRule) Requirement {
	if rule != nil {
		return rule.require
	}
	return r.require
}

func strings0(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (d Decision) with(e Effect, r Reason) Decision {
	d.Effect, d.Reason = e, r
	return d
}

func (s *SubRule) denyRule() *ruleSet {
	if s == nil {
		return nil
	}
	return s.deny
}

func (r *Route) accepts(a identity.Audience) bool {
	for _, x := range r.Audiences {
		if x == a {
			return true
		}
	}
	return false
}

// loginAudience is the audience a person without a session signs in to:
// the route's first non-public audience.
func (r *Route) loginAudience() identity.Audience {
	if len(r.Audiences) > 0 {
		return r.Audiences[0]
	}
	return identity.Public
}

// unmet returns the first unmet requirement's reason and the missing value.
func unmet(req Requirement, id *identity.Identity, now time.Time) (Reason, string) {
	if req.MFA && !id.HasMFA() {
		return ReasonMFARequired, "mfa"
	}
	if len(req.ACR) > 0 {
		ok := false
		for _, a := range req.ACR {
			if a == id.ACR {
				ok = true
				break
			}
		}
		if !ok {
			return ReasonACRRequired, req.ACR[0]
		}
	}
	for _, m := range req.AMR {
		if !id.HasAMR(m) {
			return ReasonAMRRequired, m
		}
	}
	if req.MaxAuthAge > 0 {
		if id.AuthTime.IsZero() || now.Sub(id.AuthTime) > req.MaxAuthAge {
			return ReasonAuthTooOld, req.MaxAuthAge.String()
		}
	}
	for _, c := range req.Claims {
		if id.Extra[c] == "" {
			return ReasonClaimsRequired, c
		}
	}
	return "", ""
}
