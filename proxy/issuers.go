package proxy

import (
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/providers"
)

// ProvidersForIssuer returns the names (sorted) of the running providers
// whose identities carry issuer, the first half of a subject key
// ("issuer|subject"). Sessions are revoked per provider name, so an admin
// action that starts from a subject key needs this mapping.
//
// It knows the issuers that can be told without a sign-in: static and
// local providers ("static:<name>", "local:<name>") and providers that
// report their issuer (OIDC, including a multi-tenant Microsoft template
// with {tenantid}, and GitHub). A SAML provider's issuer is the IdP's
// entity ID from its metadata, which the provider does not expose, so
// SAML subjects are not found here: callers also use the provider recorded
// in the customer's privacy profile.
func (g *Gateway) ProvidersForIssuer(issuer string) []string {
	if issuer == "" {
		return nil
	}
	var out []string
	for name, p := range g.Providers() {
		if providerIssues(p, issuer) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func providerIssues(p providers.Provider, issuer string) bool {
	switch p.Type() {
	case "static", "local":
		return issuer == p.Type()+":"+p.Name()
	}
	ip, ok := p.(interface{ Issuer() string })
	if !ok {
		return false
	}
	want := ip.Issuer()
	if want == "" {
		return false
	}
	if before, after, tmpl := strings.Cut(want, "{tenantid}"); tmpl {
		mid, ok := strings.CutPrefix(issuer, before)
		if !ok {
			return false
		}
		tenant, ok := strings.CutSuffix(mid, after)
		return ok && tenant != "" && !strings.ContainsAny(tenant, "/?#")
	}
	return issuer == want
}
