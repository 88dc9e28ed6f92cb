package policy

import (
	"fmt"
	"math/bits"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// RoleSet is a set of roles of one policy, as a bitset indexed by the
// policy's role numbers. It is a value type: computing roles allocates
// nothing.
type RoleSet [MaxRoles / 64]uint64

func (s *RoleSet) add(i int)      { s[i/64] |= 1 << (i % 64) }
func (s *RoleSet) has(i int) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s *RoleSet) union(o *RoleSet) {
	for i := range s {
		s[i] |= o[i]
	}
}
func (s *RoleSet) intersects(o *RoleSet) bool {
	for i := range s {
		if s[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// Empty reports whether the set has no role.
func (s *RoleSet) Empty() bool { return *s == RoleSet{} }

// firstOf returns the lowest role index in s∩o, or -1.
func (s *RoleSet) firstOf(o *RoleSet) int {
	for i := range s {
		if w := s[i] & o[i]; w != 0 {
			return i*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

type provSub struct{ provider, subject string }

// roleTable maps identity facts to role sets, inheritance already applied.
type roleTable struct {
	names     []string // sorted; index = role number
	index     map[string]int
	closure   []RoleSet // role -> itself plus everything it inherits
	byGroup   map[string]RoleSet
	byDomain  map[string]RoleSet // lower-case
	byEmail   map[string]RoleSet // lower-case
	bySubject map[string]RoleSet
	byProvSub map[provSub]RoleSet
}

func (c *compiler) roles() roleTable {
	t := roleTable{
		index:     map[string]int{},
		byGroup:   map[string]RoleSet{},
		byDomain:  map[string]RoleSet{},
		byEmail:   map[string]RoleSet{},
		bySubject: map[string]RoleSet{},
		byProvSub: map[provSub]RoleSet{},
	}
	for name := range c.cfg.Roles {
		t.names = append(t.names, name)
	}
	sort.Strings(t.names)
	if len(t.names) > MaxRoles {
		c.add("roles", "", "%d roles defined; at most %d are supported", len(t.names), MaxRoles)
		t.names = t.names[:MaxRoles]
	}
	for i, n := range t.names {
		t.index[n] = i
	}
	t.closure = make([]RoleSet, len(t.names))
	// Depth-first search with colours finds inheritance cycles; each is
	// reported once with its full path.
	const (
		white = iota
		grey
		black
	)
	colour := make([]int, len(t.names))
	var stack []string
	var visit func(i int)
	visit = func(i int) {
		colour[i] = grey
		stack = append(stack, t.names[i])
		t.closure[i].add(i)
		for k, in := range c.cfg.Roles[t.names[i]].Inherits {
			j, ok := t.index[in]
			if !ok {
				continue // reported by config validation
			}
			switch colour[j] {
			case grey:
				start := 0
				for s, n := range stack {
					if n == in {
						start = s
					}
				}
				cycle := append(append([]string(nil), stack[start:]...), in)
				c.add(fmt.Sprintf("roles.%s.inherits[%d]", t.names[i], k), "inheritance must not loop; remove one link",
					"role inheritance cycle: %s", strings.Join(cycle, " -> "))
			case white:
				visit(j)
			}
			if colour[j] == black {
				t.closure[i].union(&t.closure[j])
			}
		}
		stack = stack[:len(stack)-1]
		colour[i] = black
	}
	for i := range t.names {
		if colour[i] == white {
			visit(i)
		}
	}
	grant := func(m map[string]RoleSet, key string, i int) {
		s := m[key]
		s.union(&t.closure[i])
		m[key] = s
	}
	for i, name := range t.names {
		r := c.cfg.Roles[name]
		for _, g := range r.Groups {
			grant(t.byGroup, g, i)
		}
		for _, d := range r.EmailDomains {
			grant(t.byDomain, strings.ToLower(d), i)
		}
		for _, e := range r.Emails {
			grant(t.byEmail, strings.ToLower(e), i)
		}
		for _, s := range r.Subjects {
			if prov, sub, ok := strings.Cut(s, "/"); ok {
				k := provSub{prov, sub}
				v := t.byProvSub[k]
				v.union(&t.closure[i])
				t.byProvSub[k] = v
			} else {
				grant(t.bySubject, s, i)
			}
		}
	}
	return t
}

// set returns the role set of role names (with inheritance).
func (t *roleTable) set(names []string) RoleSet {
	var s RoleSet
	for _, n := range names {
		if i, ok := t.index[n]; ok {
			s.union(&t.closure[i])
		}
	}
	return s
}

// Roles returns the roles an identity holds under the policy: granted by
// its groups, its verified email and email domain, or its subject, with
// inheritance. It allocates only when the email has upper-case letters.
func (p *Policy) Roles(id *identity.Identity) RoleSet {
	var s RoleSet
	if id == nil {
		return s
	}
	t := &p.roles
	for _, g := range id.Groups {
		if r, ok := t.byGroup[g]; ok {
			s.union(&r)
		}
	}
	if email, domain, ok := verifiedEmail(id); ok {
		if r, ok := t.byEmail[email]; ok {
			s.union(&r)
		}
		if r, ok := t.byDomain[domain]; ok {
			s.union(&r)
		}
	}
	if r, ok := t.bySubject[id.Subject]; ok {
		s.union(&r)
	}
	if len(t.byProvSub) > 0 {
		if r, ok := t.byProvSub[provSub{id.Provider, id.Subject}]; ok {
			s.union(&r)
		}
	}
	return s
}

// verifiedEmail returns the lower-cased email and its domain when the
// identity has a verified email with exactly one "@" and a non-empty local
// part and domain. "attacker@evil.example@corp.example" has no domain
// (oauth2-proxy CVE-2026-40574); an unverified email has none either
// ("nOAuth").
func verifiedEmail(id *identity.Identity) (email, domain string, ok bool) {
	e := id.Email
	if !id.EmailVerified || e == "" {
		return "", "", false
	}
	at := strings.IndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.IndexByte(e[at+1:], '@') >= 0 {
		return "", "", false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if c >= 'A' && c <= 'Z' {
			e = strings.ToLower(e)
			break
		}
		if c <= ' ' || c == 0x7f {
			return "", "", false
		}
	}
	return e, e[at+1:], true
}

// RoleNames lists the names of the roles in s, sorted.
func (p *Policy) RoleNames(s RoleSet) []string {
	var out []string
	for i, n := range p.roles.names {
		if s.has(i) {
			out = append(out, n)
		}
	}
	return out
}

// RolesFromNames returns the role set of the given role names (with
// inheritance); unknown names are ignored. Used by `gatehouse explain
// --roles`.
func (p *Policy) RolesFromNames(names []string) RoleSet { return p.roles.set(names) }

// ruleSet is a compiled allow or deny rule.
type ruleSet struct {
	authenticated bool
	roles         RoleSet
	hasRoles      bool
	groups        map[string]struct{}
	emails        map[string]struct{}
	domains       map[string]struct{}
	subjects      map[string]struct{}
	provSubjects  map[provSub]struct{}
	scopes        []string
	// identityCriteria is false when only scopes were given.
	identityCriteria bool
}

func compileRule(r *config.Rule, t *roleTable) *ruleSet {
	if r == nil {
		return nil
	}
	rs := &ruleSet{authenticated: r.Authenticated, scopes: r.Scopes}
	// A rule's roles match the role itself; inheritance is already in the
	// identity's role set (an admin holds employee), so no closure here.
	for _, n := range r.Roles {
		if i, ok := t.index[n]; ok {
			rs.roles.add(i)
			rs.hasRoles = true
		}
	}
	set := func(list []string, lower bool) map[string]struct{} {
		if len(list) == 0 {
			return nil
		}
		m := make(map[string]struct{}, len(list))
		for _, v := range list {
			if lower {
				v = strings.ToLower(v)
			}
			m[v] = struct{}{}
		}
		return m
	}
	rs.groups = set(r.Groups, false)
	rs.emails = set(r.Emails, true)
	rs.domains = set(r.EmailDomains, true)
	for _, s := range r.Subjects {
		if prov, sub, ok := strings.Cut(s, "/"); ok {
			if rs.provSubjects == nil {
				rs.provSubjects = map[provSub]struct{}{}
			}
			rs.provSubjects[provSub{prov, sub}] = struct{}{}
		} else {
			if rs.subjects == nil {
				rs.subjects = map[string]struct{}{}
			}
			rs.subjects[s] = struct{}{}
		}
	}
	rs.identityCriteria = rs.authenticated || rs.hasRoles || rs.groups != nil || rs.emails != nil ||
		rs.domains != nil || rs.subjects != nil || rs.provSubjects != nil
	return rs
}

// ruleMatch says which criterion of a rule matched.
type ruleMatch struct {
	by, value string
}

// matchIdentity reports whether any identity criterion matches, and which.
func (rs *ruleSet) matchIdentity(p *Policy, id *identity.Identity, roles *RoleSet) (ruleMatch, bool) {
	if rs.hasRoles {
		if i := roles.firstOf(&rs.roles); i >= 0 {
			return ruleMatch{"role", p.roles.names[i]}, true
		}
	}
	for _, g := range id.Groups {
		if _, ok := rs.groups[g]; ok {
			return ruleMatch{"group", g}, true
		}
	}
	if rs.emails != nil || rs.domains != nil {
		if email, domain, ok := verifiedEmail(id); ok {
			if _, ok := rs.emails[email]; ok {
				return ruleMatch{"email", id.Email}, true
			}
			if _, ok := rs.domains[domain]; ok {
				return ruleMatch{"email domain", domain}, true
			}
		}
	}
	if _, ok := rs.subjects[id.Subject]; ok {
		return ruleMatch{"subject", id.Subject}, true
	}
	if rs.provSubjects != nil {
		if _, ok := rs.provSubjects[provSub{id.Provider, id.Subject}]; ok {
			return ruleMatch{"subject", id.Subject}, true
		}
	}
	if rs.authenticated {
		return ruleMatch{"authenticated", ""}, true
	}
	return ruleMatch{}, false
}

// missingScope returns the first required scope the identity lacks, or "".
func (rs *ruleSet) missingScope(id *identity.Identity) string {
outer:
	for _, want := range rs.scopes {
		for _, have := range id.Scopes {
			if have == want {
				continue outer
			}
		}
		return want
	}
	return ""
}
