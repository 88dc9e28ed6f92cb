package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

type pathKind uint8

const (
	kindPrefix pathKind = iota
	kindRegex
	kindExact
)

func (k pathKind) String() string {
	switch k {
	case kindExact:
		return "exact"
	case kindRegex:
		return "regex"
	}
	return "prefix"
}

// methodSet is a bitset over config.StandardMethods; 0 means any method.
type methodSet uint16

var methodBits = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

func methodMask(methods []string) methodSet {
	var m methodSet
	for _, s := range methods {
		m |= methodBit(s)
	}
	return m
}

// methodBit returns the bit of a standard method (case-insensitive), or 0
// for an unknown one.
func methodBit(s string) methodSet {
	for i, m := range methodBits {
		if len(s) == len(m) && asciiEqualFold(s, m) {
			return 1 << i
		}
	}
	return 0
}

func (m methodSet) allows(bit methodSet) bool { return m == 0 || m&bit != 0 }

func (m methodSet) String() string {
	if m == 0 {
		return "any"
	}
	var out []string
	for i, s := range methodBits {
		if m&(1<<i) != 0 {
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}

// pathMatcher matches a normalized path.
type pathMatcher struct {
	kind    pathKind
	path    string // literal path, or a regex's literal prefix
	re      *regexp.Regexp
	fold    bool
	methods methodSet
}

func (m *pathMatcher) matches(path string) bool {
	switch m.kind {
	case kindExact:
		if m.fold {
			return asciiEqualFold(path, m.path)
		}
		return path == m.path
	case kindRegex:
		return m.re.MatchString(path)
	}
	if m.fold {
		return PathHasPrefixFold(path, m.path)
	}
	return PathHasPrefix(path, m.path)
}

// rank orders matchers by specificity: exact beats the rest; then the
// longer literal; on equal literals a regex beats a prefix (it constrains
// more); then a method-restricted matcher beats an any-method one. Route
// order breaks remaining ties, so matching is total and deterministic.
func (m *pathMatcher) rank() (int, int, int, int) {
	kind := 0
	switch m.kind {
	case kindExact:
		kind = 2
	case kindRegex:
		kind = 1
	}
	lit := len(m.path)
	if m.kind == kindPrefix && m.path == "/" {
		lit = 0
	}
	spec := 0
	if m.methods != 0 {
		spec = 1
	}
	exact := 0
	if m.kind == kindExact {
		exact = 1
	}
	return exact, lit, kind, spec
}

func moreSpecific(a *pathMatcher, ai int, b *pathMatcher, bi int) bool {
	a1, a2, a3, a4 := a.rank()
	b1, b2, b3, b4 := b.rank()
	switch {
	case a1 != b1:
		return a1 > b1
	case a2 != b2:
		return a2 > b2
	case a3 != b3:
		return a3 > b3
	case a4 != b4:
		return a4 > b4
	}
	return ai < bi
}

// bucket holds the routes of one host pattern, indexed for matching.
type bucket struct {
	exact map[string][]*Route // case-sensitive exact paths
	trie  *trieNode           // case-sensitive prefixes
	other []*Route            // regex and case-insensitive routes, most specific first
}

type trieNode struct {
	children map[string]*trieNode
	routes   []*Route // prefix routes ending here, method-restricted first
}

func newBucket() *bucket {
	return &bucket{exact: map[string][]*Route{}, trie: &trieNode{}}
}

type wildcardBucket struct {
	suffix string // ".example.com"
	b      *bucket
}

func (b *bucket) add(r *Route) {
	m := &r.match
	switch {
	case m.fold || m.kind == kindRegex:
		b.other = append(b.other, r)
	case m.kind == kindExact:
		b.exact[m.path] = append(b.exact[m.path], r)
	default:
		n := b.trie
		for seg := range segments(m.path) {
			if n.children == nil {
				n.children = map[string]*trieNode{}
			}
			c := n.children[seg]
			if c == nil {
				c = &trieNode{}
				n.children[seg] = c
			}
			n = c
		}
		n.routes = append(n.routes, r)
	}
}

func (b *bucket) finish() {
	bySpec := func(rs []*Route) {
		sort.SliceStable(rs, func(i, j int) bool {
			return moreSpecific(&rs[i].match, rs[i].Index, &rs[j].match, rs[j].Index)
		})
	}
	for _, rs := range b.exact {
		bySpec(rs)
	}
	bySpec(b.other)
	var walk func(n *trieNode)
	walk = func(n *trieNode) {
		bySpec(n.routes)
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(b.trie)
}

// segments yields the non-empty segments of a normalized path.
func segments(p string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(p) > 0 {
			if p[0] == '/' {
				p = p[1:]
				continue
			}
			i := strings.IndexByte(p, '/')
			if i < 0 {
				i = len(p)
			}
			if !yield(p[:i]) {
				return
			}
			p = p[i:]
		}
	}
}

// lookup finds the most specific route of the bucket for a path and method.
func (b *bucket) lookup(path string, method methodSet) *Route {
	var best *Route
	if rs, ok := b.exact[path]; ok {
		for _, r := range rs {
			if r.match.methods.allows(method) {
				return r // an exact literal match is the most specific there is
			}
		}
	}
	// Walk the prefix trie without allocating; remember the deepest node
	// holding a route that accepts the method.
	n := b.trie
	best = firstAllowing(n.routes, method)
	p := path
	for n != nil && len(p) > 0 {
		if p[0] == '/' {
			p = p[1:]
			continue
		}
		i := strings.IndexByte(p, '/')
		if i < 0 {
			i = len(p)
		}
		n = n.children[p[:i]]
		p = p[i:]
		if n != nil {
			if r := firstAllowing(n.routes, method); r != nil {
				best = r
			}
		}
	}
	for _, r := range b.other {
		if best != nil && !moreSpecific(&r.match, r.Index, &best.match, best.Index) {
			break // b.other is sorted: nothing after r can beat best either
		}
		if r.match.methods.allows(method) && r.match.matches(path) {
			return r
		}
	}
	return best
}

func firstAllowing(rs []*Route, method methodSet) *Route {
	for _, r := range rs {
		if r.match.methods.allows(method) {
			return r
		}
	}
	return nil
}

// index builds the host buckets and refuses routes that would match the
// same requests (same host, same path and kind, overlapping methods):
// ambiguity is found at load, never at request time.
func (p *Policy) index(c *compiler) {
	type key struct {
		host, path string
		kind       pathKind
		fold       bool
	}
	seen := map[key][]*Route{}
	bucketFor := func(h string) *bucket {
		switch {
		case h == "":
			return p.anyHost
		case strings.HasPrefix(h, "*."):
			for _, w := range p.wildcards {
				if w.suffix == h[1:] {
					return w.b
				}
			}
			b := newBucket()
			p.wildcards = append(p.wildcards, wildcardBucket{suffix: h[1:], b: b})
			return b
		}
		b := p.hosts[h]
		if b == nil {
			b = newBucket()
			p.hosts[h] = b
		}
		return b
	}
	for _, r := range p.routes {
		hosts := r.hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			mpath := r.match.path
			if r.match.kind == kindRegex {
				mpath = r.match.re.String()
			}
			k := key{h, mpath, r.match.kind, r.match.fold}
			for _, o := range seen[k] {
				if r.match.methods == o.match.methods || r.match.methods&o.match.methods != 0 {
					c.add(fmt.Sprintf("routes[%d].match", r.Index),
						"give them different hosts, paths or methods, or merge them with nested rules",
						"route %q matches the same requests as route %q (routes[%d])", r.Name, o.Name, o.Index)
				}
			}
			seen[k] = append(seen[k], r)
			bucketFor(h).add(r)
		}
	}
	sort.SliceStable(p.wildcards, func(i, j int) bool { return len(p.wildcards[i].suffix) > len(p.wildcards[j].suffix) })
	p.anyHost.finish()
	for _, b := range p.hosts {
		b.finish()
	}
	for _, w := range p.wildcards {
		w.b.finish()
	}
}

// Request is what the policy judges: the host without port, the
// normalized path (see NormalizePath) and the method.
type Request struct {
	Host   string
	Path   string
	Method string
}

// Match returns the route for a request, or nil when none matches. Host
// specificity comes first (exact host, then the longest wildcard suffix, then
// routes without host), then path specificity within the host. The host is
// compared case-insensitively; a trailing dot and a port are ignored.
func (p *Policy) Match(req Request) *Route {
	method := methodBit(req.Method)
	if method == 0 {
		return nil // unknown methods match no route and so are denied
	}
	host := canonicalHost(req.Host)
	if b, ok := p.hosts[host]; ok {
		if r := b.lookup(req.Path, method); r != nil {
			return r
		}
	}
	for _, w := range p.wildcards {
		if len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			if r := w.b.lookup(req.Path, method); r != nil {
				return r
			}
		}
	}
	return p.anyHost.lookup(req.Path, method)
}

// canonicalHost lower-cases a host and strips a port and a trailing dot. It
// allocates only when the host has upper-case letters.
func canonicalHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimPrefix(strings.TrimSuffix(h, "]"), "[")
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// subRule returns the most specific nested rule matching the request.
func (r *Route) subRule(path string, method methodSet) *SubRule {
	var best *SubRule
	for _, s := range r.rules {
		if !s.match.methods.allows(method) || !s.match.matches(path) {
			continue
		}
		if best == nil || moreSpecific(&s.match, s.index, &best.match, best.index) {
			best = s
		}
	}
	return best
}
