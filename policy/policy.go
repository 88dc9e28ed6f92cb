// Package policy compiles a loaded configuration into an immutable decision
// structure and answers, for a request and an identity, which route applies
// and whether the request may pass. It is pure: no I/O, no logging, no
// globals, and no clock except the time passed to Decide. A *Policy is safe
// for concurrent use and is replaced as a whole on reload.
package policy

import (
	"fmt"
	"net/textproto"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// MaxRoles bounds how many roles a policy may define (RoleSet is a bitset).
const MaxRoles = 256

// Policy is a compiled gatehouse.yaml.
type Policy struct {
	// Config is the configuration the policy was compiled from. Treat it as
	// read-only.
	Config *config.Config
	// Hash identifies the policy source (set by the caller, e.g. a SHA-256
	// of the file), for metrics and the audit of reloads.
	Hash string

	routes    []*Route
	byName    map[string]*Route
	hosts     map[string]*bucket
	wildcards []wildcardBucket
	anyHost   *bucket
	roles     roleTable
	audiences map[identity.Audience][]string
}

// Route is a compiled route.
type Route struct {
	// Name is the route's unique name.
	Name string
	// Index is the route's position in the policy file.
	Index int
	// Audiences are the audiences whose sessions the route accepts, in
	// policy order, without Public.
	Audiences []identity.Audience
	// Anonymous is true when the route lists the public audience.
	Anonymous bool
	// Upstream is where allowed requests go.
	Upstream *url.URL
	// Timeout bounds the wait for upstream response headers.
	Timeout time.Duration
	// PreserveHost sends the client's Host upstream.
	PreserveHost bool
	// Forward names the identity headers to set.
	Forward Forward

	match   pathMatcher
	hosts   []string
	allow   *ruleSet
	deny    *ruleSet
	require Requirement
	rules   []*SubRule
}

// Forward is a route's compiled identity header configuration. Empty names
// are not sent.
type Forward struct {
	User, UserClaim, Email, Name, Groups, Roles string
	// Claims maps header names to extra claim names, sorted by header.
	Claims [][2]string
	// Assertion is true when the signed assertion header is sent.
	Assertion bool
	// AccessToken is the header carrying the session's access token
	// ("Authorization" means the Bearer form); "" means none.
	AccessToken string
}

// SubRule is a compiled nested rule of a route.
type SubRule struct {
	// Name names the rule in decisions.
	Name    string
	match   pathMatcher
	allow   *ruleSet
	deny    *ruleSet
	require Requirement // merged with the route's
	index   int
}

// Requirement is how strong an authentication must be.
type Requirement struct {
	MFA        bool
	ACR        []string // any of
	AMR        []string // all of
	MaxAuthAge time.Duration
	// Claims are profile claims the identity must carry (Identity.Extra,
	// non-empty), all of: progressive profiling asks the provider for them.
	Claims []string
}

// IsZero reports whether the requirement asks for nothing.
func (r Requirement) IsZero() bool {
	return !r.MFA && len(r.ACR) == 0 && len(r.AMR) == 0 && r.MaxAuthAge == 0 && len(r.Claims) == 0
}

// Routes returns the routes in policy order.
func (p *Policy) Routes() []*Route { return p.routes }

// Route returns the route with the given name, or nil.
func (p *Policy) Route(name string) *Route { return p.byName[name] }

// Providers returns the provider names an audience offers, in policy order.
func (p *Policy) Providers(a identity.Audience) []string { return p.audiences[a] }

// Compile builds a Policy from a validated configuration. Problems that need
// the whole picture (role inheritance cycles, overlapping routes, rule paths
// outside their route) come back as config.Diagnostics.
func Compile(cfg *config.Config) (*Policy, error) {
	c := &compiler{cfg: cfg, src: cfg.Source}
	p := &Policy{
		Config:    cfg,
		byName:    map[string]*Route{},
		hosts:     map[string]*bucket{},
		anyHost:   newBucket(),
		audiences: map[identity.Audience][]string{},
	}
	for name, a := range cfg.Audiences {
		p.audiences[identity.Audience(name)] = a.Providers
	}
	p.roles = c.roles()
	for i := range cfg.Routes {
		r := c.route(i, &cfg.Routes[i], &p.roles)
		if r == nil {
			continue
		}
		p.routes = append(p.routes, r)
		p.byName[r.Name] = r
	}
	if len(c.diags) == 0 {
		p.index(c)
	}
	if len(c.diags) > 0 {
		c.diags.Sort()
		return nil, c.diags
	}
	return p, nil
}

type compiler struct {
	cfg   *config.Config
	src   *config.Source
	diags config.Diagnostics
}

func (c *compiler) add(path, hint, format string, args ...any) {
	c.diags = append(c.diags, c.src.Diag(path, fmt.Sprintf(format, args...), hint))
}

func (c *compiler) route(i int, rc *config.Route, roles *roleTable) *Route {
	path := fmt.Sprintf("routes[%d]", i)
	r := &Route{
		Name:         rc.Name,
		Index:        i,
		Timeout:      rc.Timeout.D(),
		PreserveHost: rc.PreserveHost,
		hosts:        rc.Match.Host,
	}
	for _, a := range rc.Audience {
		if a == string(identity.Public) {
			r.Anonymous = true
			continue
		}
		r.Audiences = append(r.Audiences, identity.Audience(a))
	}
	u, err := url.Parse(rc.Upstream)
	if err != nil {
		c.add(path+".upstream", "", "invalid upstream: %v", err)
		return nil
	}
	r.Upstream = u
	m, ok := c.matcher(path+".match", rc.Match.Path, rc.Match.PathType, rc.Match.Methods, rc.Match.CaseInsensitive)
	if !ok {
		return nil
	}
	r.match = m
	r.allow = compileRule(rc.Allow, roles)
	r.deny = compileRule(rc.Deny, roles)
	r.require = compileRequire(rc.Require)
	if f := rc.Forward; f != nil {
		ck := textproto.CanonicalMIMEHeaderKey
		r.Forward = Forward{User: ck(f.User), UserClaim: f.UserClaim, Email: ck(f.Email), Name: ck(f.Name), Groups: ck(f.Groups), Roles: ck(f.Roles), Assertion: f.Assertion == nil || *f.Assertion, AccessToken: ck(f.AccessToken)}
		for h, claim := range f.Claims {
			r.Forward.Claims = append(r.Forward.Claims, [2]string{ck(h), claim})
		}
		sort.Slice(r.Forward.Claims, func(a, b int) bool { return r.Forward.Claims[a][0] < r.Forward.Claims[b][0] })
	}
	if c.cfg.Assertion.Disabled {
		r.Forward.Assertion = false
	}
	for j := range rc.Rules {
		sc := &rc.Rules[j]
		sp := fmt.Sprintf("%s.rules[%d]", path, j)
		sm, ok := c.matcher(sp, sc.Path, sc.PathType, sc.Methods, sc.CaseInsensitive)
		if !ok {
			continue
		}
		if sm.kind != kindRegex && m.kind != kindRegex && !PathHasPrefix(sm.path, m.path) && !(m.fold && PathHasPrefixFold(sm.path, m.path)) {
			c.add(sp+".path", fmt.Sprintf("nested rule paths are absolute and must lie inside the route's path %q", m.path), "path %q is outside its route", sc.Path)
			continue
		}
		if m.kind == kindExact && sm.kind != kindRegex && sm.path != m.path {
			c.add(sp+".path", "the route matches one exact path", "rule can never match")
			continue
		}
		req := compileRequire(sc.Require)
		r.rules = append(r.rules, &SubRule{
			Name:    sc.Name,
			match:   sm,
			allow:   compileRule(sc.Allow, roles),
			deny:    compileRule(sc.Deny, roles),
			require: mergeRequire(r.require, req),
			index:   j,
		})
	}
	return r
}

// matcher compiles a path match. Literal paths must already be in the
// normalized form requests are judged in; regexes are anchored.
func (c *compiler) matcher(path, p, typ string, methods []string, fold bool) (pathMatcher, bool) {
	m := pathMatcher{fold: fold, methods: methodMask(methods)}
	switch typ {
	case "exact":
		m.kind = kindExact
	case "regex":
		m.kind = kindRegex
	default:
		m.kind = kindPrefix
	}
	if m.kind == kindRegex {
		expr := p
		if fold {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(`^(?:` + expr + `)$`)
		if err != nil {
			c.add(path+".path", "", "invalid regex: %v", err)
			return m, false
		}
		m.re = re
		m.path = literalPrefix(p, fold)
		return m, true
	}
	norm, err := NormalizePath(p)
	if err != nil || norm != p {
		hint := "write the path as requests are judged: decoded, no dot segments or duplicate slashes"
		if err == nil {
			hint = fmt.Sprintf("write it as %q", norm)
		}
		c.add(path+".path", hint, "path %q is not in normalized form", p)
		return m, false
	}
	if m.kind == kindPrefix && len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	m.path = p
	return m, true
}

// literalPrefix returns the literal text every match of a regex starts
// with, used to rank regex routes against literal ones.
func literalPrefix(expr string, fold bool) string {
	if fold {
		return ""
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return ""
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return ""
	}
	lit, _ := prog.Prefix()
	return lit
}

func compileRequire(r *config.Require) Requirement {
	if r == nil {
		return Requirement{}
	}
	return Requirement{MFA: r.MFA, ACR: r.ACR, AMR: r.AMR, MaxAuthAge: r.MaxAuthAge.D(), Claims: r.Claims}
}

// mergeRequire combines a route's and a nested rule's requirements: both
// must hold.
func mergeRequire(a, b Requirement) Requirement {
	out := Requirement{MFA: a.MFA || b.MFA}
	switch {
	case len(a.ACR) == 0:
		out.ACR = b.ACR
	case len(b.ACR) == 0:
		out.ACR = a.ACR
	default: // both constrain: only values acceptable to both
		for _, x := range a.ACR {
			for _, y := range b.ACR {
				if x == y {
					out.ACR = append(out.ACR, x)
				}
			}
		}
		if len(out.ACR) == 0 {
			out.ACR = []string{"\x00unsatisfiable"}
		}
	}
	out.AMR = append(append([]string(nil), a.AMR...), b.AMR...)
	out.Claims = append([]string(nil), a.Claims...)
	for _, c := range b.Claims {
		if !slices.Contains(out.Claims, c) {
			out.Claims = append(out.Claims, c)
		}
	}
	out.MaxAuthAge = a.MaxAuthAge
	if b.MaxAuthAge != 0 && (out.MaxAuthAge == 0 || b.MaxAuthAge < out.MaxAuthAge) {
		out.MaxAuthAge = b.MaxAuthAge
	}
	return out
}

// HeaderNames returns every header name the policy may set upstream (all
// routes' forward headers), so the proxy strips client-sent copies of each.
func (p *Policy) HeaderNames() []string {
	seen := map[string]bool{}
	var out []string
	add := func(h string) {
		if h != "" && !seen[strings.ToLower(h)] {
			seen[strings.ToLower(h)] = true
			out = append(out, h)
		}
	}
	add(p.Config.Assertion.Header)
	for _, r := range p.routes {
		f := r.Forward
		add(f.User)
		add(f.Email)
		add(f.Name)
		add(f.Groups)
		add(f.Roles)
		for _, c := range f.Claims {
			add(c[0])
		}
		if f.AccessToken != "Authorization" {
			add(f.AccessToken)
		}
	}
	sort.Strings(out)
	return out
}

// RouteHosts returns the exact (non-wildcard) hosts named by routes, and the
// wildcard ones, for return-URL validation.
func (p *Policy) RouteHosts() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range p.routes {
		for _, h := range r.hosts {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	sort.Strings(out)
	return out
}
