package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
	"github.com/gatehouse-dev/gatehouse/state"
)

// Rate limits (docs/rate-limits.md) are counted in the shared state's
// fixed-window Limiter, so replicas sharing Redis share the counters. Four
// scopes exist, each with its own counters:
//
//	server.per_ip    every request, /.gatehouse/ endpoints included, before
//	                 anything else reads it
//	route.per_ip     a route's requests, once matched, before authentication
//	server.per_user  every authenticated request on a route
//	route.per_user   a route's authenticated requests
//
// A request is refused (429) by the first limit it exceeds; every limit
// that applies counts it. Keys name the scope, the route and the window,
// then a keyed SHA-256 of the client's address (IPv4, or the IPv6 /64) or
// of the identity's provider and subject, so that the shared state holds
// no address or user id in clear.
//
// When the Limiter fails (shared state unreachable) limits fail open: the
// request goes on, a warning is logged at most every warnEvery, and the
// limiter is left alone for failOpenPause so that an unreachable Redis does
// not add its timeout to every request. Sessions still fail closed, as the
// revocation check refuses them; public routes stay up.

const (
	warnEvery     = 10 * time.Second
	failOpenPause = 5 * time.Second
)

// limitRule is one compiled limit.
type limitRule struct {
	scope  string // metric label: server.per_ip, route.per_user, ...
	reason string // access log reason: rate_limited:<scope>
	prefix string // key prefix: scope, route name and window
	limit  int
	window time.Duration
}

// limitPair is the per-IP and per-user limit of the server or a route; nil
// where not set.
type limitPair struct{ ip, user *limitRule }

// rateLimits is a snapshot's compiled rate limits; a snapshot without any
// has none (nil), and the request path then does no work for them.
type rateLimits struct {
	limiter state.Limiter
	server  limitPair
	routes  []limitPair // by policy route index
	salt    [32]byte    // keys the hashes in counter keys
	now     func() time.Time
	log     *zap.Logger

	// Fail-open bookkeeping (unix nanoseconds).
	pausedUntil atomic.Int64
	lastWarn    atomic.Int64
	failures    atomic.Int64
}

// newRateLimits compiles the policy's rate limits, or returns nil when it
// sets none.
func newRateLimits(o Options) *rateLimits {
	cfg := o.Policy.Config
	l := &rateLimits{now: o.Now, log: o.Logger}
	var found bool
	l.server, found = compileLimits("server", "s:", cfg.Server.RateLimit)
	l.routes = make([]limitPair, len(cfg.Routes))
	for i, r := range cfg.Routes {
		var set bool
		l.routes[i], set = compileLimits("route", "r:"+r.Name+":", r.RateLimit)
		found = found || set
	}
	if !found {
		return nil
	}
	l.limiter = o.Shared.Limiter()
	// The salt derives from the user-hash key, which derives from the
	// first session key: replicas sharing sessions share counters.
	h := sha256.New()
	h.Write([]byte("gatehouse rate limit keys\x00"))
	h.Write(o.UserKey)
	h.Sum(l.salt[:0])
	return l
}

func compileLimits(scope, prefix string, rl *config.RateLimit) (limitPair, bool) {
	if rl == nil {
		return limitPair{}, false
	}
	rule := func(kind string, q *config.RateQuota) *limitRule {
		if q == nil || q.Requests <= 0 || q.Per <= 0 {
			return nil
		}
		sc := scope + ".per_" + kind
		return &limitRule{scope: sc, reason: "rate_limited:" + sc,
			prefix: prefix + kind + ":" + q.Per.D().String() + ":",
			limit:  q.Requests, window: q.Per.D()}
	}
	p := limitPair{ip: rule("ip", rl.PerIP), user: rule("user", rl.PerUser)}
	return p, p.ip != nil || p.user != nil
}

func (l *rateLimits) route(r *policy.Route) limitPair {
	if r == nil || r.Index < 0 || r.Index >= len(l.routes) {
		return limitPair{}
	}
	return l.routes[r.Index]
}

// limitAddr counts the request against the per-IP limit of route, or the
// server's when route is nil. It answers 429 and returns false when the
// limit is exceeded.
func (g *Gateway) limitAddr(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, route *policy.Route) bool {
	l := s.limits
	rule := l.server.ip
	if route != nil {
		rule = l.route(route).ip
	}
	if rule == nil {
		return true
	}
	a, ok := s.clientAddr(rec.peer, r.Header)
	if !ok {
		return true // no IP peer (a Unix socket): nothing to count by
	}
	var buf [64]byte
	b := append(buf[:0], l.salt[:]...)
	if a.Is4() {
		v := a.As4()
		b = append(b, '4')
		b = append(b, v[:]...)
	} else {
		v := a.As16()
		b = append(b, '6')
		b = append(b, v[:8]...) // the /64: one host, however many addresses
	}
	return g.allow(s, w, r, rec, route, rule, keyOf(rule, b))
}

// limitUser counts an authenticated request against the server's and the
// route's per-user limits.
func (g *Gateway) limitUser(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, route *policy.Route, id *identity.Identity) bool {
	l := s.limits
	rp := l.route(route)
	if l.server.user == nil && rp.user == nil {
		return true
	}
	var buf [256]byte
	b := append(buf[:0], l.salt[:]...)
	b = append(b, 'u')
	b = append(b, id.Provider...)
	b = append(b, 0)
	b = append(b, id.Subject...)
	if rule := l.server.user; rule != nil && !g.allow(s, w, r, rec, route, rule, keyOf(rule, b)) {
		return false
	}
	if rule := rp.user; rule != nil && !g.allow(s, w, r, rec, route, rule, keyOf(rule, b)) {
		return false
	}
	return true
}

// keyOf is the counter key of rule for the salted subject b: the rule's
// prefix and 128 bits of SHA-256, in hex.
func keyOf(rule *limitRule, b []byte) string {
	sum := sha256.Sum256(b)
	var hx [32]byte
	hex.Encode(hx[:], sum[:16])
	return rule.prefix + string(hx[:])
}

// allow counts one request under key and answers 429 when rule's limit is
// exceeded. A Limiter error lets the request through (fail open).
func (g *Gateway) allow(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, route *policy.Route, rule *limitRule, key string) bool {
	l := s.limits
	if until := l.pausedUntil.Load(); until != 0 && l.now().UnixNano() < until {
		return true
	}
	ok, retry, err := l.limiter.Allow(r.Context(), key, rule.limit, rule.window)
	if err != nil {
		if r.Context().Err() == nil { // not merely a client that went away
			l.failed(err, rec.rid)
		}
		return true
	}
	if ok {
		return true
	}
	g.tooManyRequests(s, w, r, rec, route, rule, retry)
	return false
}

// failed records a Limiter failure: limits pause for failOpenPause, and a
// warning is logged at most every warnEvery.
func (l *rateLimits) failed(err error, rid string) {
	now := l.now().UnixNano()
	l.pausedUntil.Store(now + int64(failOpenPause))
	l.failures.Add(1)
	last := l.lastWarn.Load()
	if last != 0 && now-last < int64(warnEvery) {
		return
	}
	if !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("rate limits not enforced: the shared state cannot count requests; letting requests through",
		zap.String("request_id", rid), zap.Int64("failures", l.failures.Swap(0)),
		zap.Duration("paused_for", failOpenPause), zap.Error(err))
}

// tooManyRequests answers 429 with Retry-After: JSON for API clients, the
// error page for browsers.
func (g *Gateway) tooManyRequests(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, route *policy.Route, rule *limitRule, retry time.Duration) {
	secs := int((retry + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	rec.reason = rule.reason
	s.opts.Metrics.rateLimited(rule.scope)
	wait := strconv.Itoa(secs)
	w.Header().Set("Retry-After", wait)
	if wantsJSON(r, route) {
		writeJSONError(w, http.StatusTooManyRequests, "rate_limited", "too many requests; retry after "+wait+" s", rec.rid)
		return
	}
	unit := " seconds"
	if secs == 1 {
		unit = " second"
	}
	s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusTooManyRequests, Title: "Too many requests",
		Message: "There have been too many requests from you in a short time. Please wait " + wait + unit + ", then try again.", RequestID: rec.rid})
}

// clientAddr is the address a request came from: the peer's, or, when the
// peer is a trusted proxy, the nearest address in X-Forwarded-For (read
// from the right) that is not itself a trusted proxy. Entries left of it
// were written by the client and are never believed. An untrusted peer's
// X-Forwarded-For is ignored (the sanitizer has removed it already).
func (s *snapshot) clientAddr(peer netip.Addr, h http.Header) (netip.Addr, bool) {
	if !peer.IsValid() {
		return netip.Addr{}, false
	}
	if !s.isTrusted(peer) {
		return peer, true
	}
	client := peer
	lines := h["X-Forwarded-For"]
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for line != "" {
			var hop string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				hop, line = line[j+1:], line[:j]
			} else {
				hop, line = line, ""
			}
			hop = textproto.TrimString(hop)
			if hop == "" {
				continue
			}
			a, ok := parseHop(hop)
			if !ok {
				// A trusted proxy wrote something that is not an address:
				// count by the last address known for sure.
				return client, true
			}
			client = a
			if !s.isTrusted(a) {
				return a, true
			}
		}
	}
	return client, true
}

// parseHop parses one X-Forwarded-For entry: an address, or an address
// with a port ("192.0.2.1:443", "[2001:db8::1]:443").
func parseHop(v string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(v)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}
