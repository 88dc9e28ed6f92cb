// Package proxy is Gatehouse's request path: it sanitizes each request,
// matches it to a route, authenticates it from the audience's session,
// asks the policy for a decision, and either forwards it upstream with
// identity headers and a signed assertion or answers it (sign-in redirect,
// 401/403 JSON, friendly page). It also serves the reserved /.gatehouse/
// endpoints. One place, respond, maps decisions and errors to responses.
package proxy

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
	"github.com/gatehouse-dev/gatehouse/proxy/headers"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
	"github.com/gatehouse-dev/gatehouse/proxy/redirect"
	"github.com/gatehouse-dev/gatehouse/proxy/scim"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/state"
)

// Prefix is the reserved path prefix of the gateway's own endpoints.
const Prefix = "/.gatehouse/"

// Options are the parts a Gateway is built from. Everything is built at
// load time; the request path only reads.
type Options struct {
	Policy    *policy.Policy
	Providers map[string]providers.Provider
	// Sessions keeps sign-in attempts and other transient cookies, and,
	// unless Store is set, the sessions themselves.
	Sessions *session.CookieStore
	// Store, when set, keeps sessions instead of Sessions (the
	// server-side store: the cookie carries only an opaque id).
	Store session.Store
	// Shared is the state replicas share: single-use sign-in states,
	// session revocations. nil means this process's memory.
	Shared state.Shared
	// Privacy, when set, applies the policy's privacy section to customer
	// sessions: regions, consent, minimization, the /.gatehouse/me pages.
	Privacy *privacy.Policy
	// Bearer authenticates API requests, by provider name (the api
	// audience's providers).
	Bearer map[string]providers.BearerAuthenticator
	Signer *assertion.Signer
	Pages  *pages.Renderer
	Logger *zap.Logger
	// Transport is the upstream round tripper; nil means a tuned clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// UserKey keys the hash of user identifiers in access logs.
	UserKey []byte
	// Metrics, when set, receives request and sign-in metrics.
	Metrics *Metrics
	// TracerProvider, when set, traces requests (tracing.go); nil means
	// no tracing and no per-request cost.
	TracerProvider trace.TracerProvider
}

// Gateway is the http.Handler of the public listener. Its configuration is
// one immutable snapshot swapped atomically by Reload.
type Gateway struct {
	cur atomic.Pointer[snapshot]
	log *zap.Logger
	now func() time.Time
	// mem is the shared state used when Options.Shared is nil; it lives
	// as long as the gateway, across reloads.
	mem *state.Memory
	// refresh runs token refreshes once per refresh token.
	refresh *refresher
	ridSeq  atomic.Uint64
	ridPfx  string
}

// snapshot is everything a request needs, compiled once per policy.
type snapshot struct {
	opts      Options
	pol       *policy.Policy
	sanitizer *headers.Sanitizer
	redirects *redirect.Validator
	trusted   []netip.Prefix
	proxies   []*httputil.ReverseProxy // by route index
	cache     *assertion.Cache
	issuer    string
	userLog   string
	userKey   []byte
	// cookiePrefix starts the names of Gatehouse's own cookies
	// ("gatehouse-"); they are removed before forwarding.
	cookiePrefix string
	// publicHost is the host[:port] of the public URL.
	publicHost string
	// callbacks maps custom callback paths (relative to Prefix) to
	// provider names; endpoints holds providers' extra endpoints.
	callbacks map[string]string
	endpoints map[string]http.Handler
	// logouts maps providers' logout endpoints (relative to Prefix) to
	// provider names.
	logouts map[string]string
	// tokenProviders are the providers whose sessions keep access and
	// refresh tokens (a route of their audience forwards the token).
	tokenProviders map[string]bool
	// clear caches "not revoked" answers of a shared state on a server
	// (nil with the in-memory state).
	clear *clearCache
	// scim serves /.gatehouse/scim/v2 when the policy sets scim.token.
	scim http.Handler
	// tracer starts request spans; nil when tracing is off.
	tracer trace.Tracer
	// roleNames memoizes role headers by role set (see roleHeader).
	roleNames    sync.Map
	roleNamesLen atomic.Int64
	// limits are the compiled rate limits; nil when the policy sets none
	// (ratelimit.go).
	limits *rateLimits
}

// New builds a Gateway.
func New(o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var pfx [4]byte
	rand.Read(pfx[:])
	g := &Gateway{log: o.Logger, now: o.Now, ridPfx: hex.EncodeToString(pfx[:]), refresh: newRefresher()}
	if err := g.Reload(o); err != nil {
		return nil, err
	}
	o.Metrics.watchProviders(g)
	return g, nil
}

// Reload swaps in a new configuration. On error the running one stays.
func (g *Gateway) Reload(o Options) error {
	if o.Logger == nil {
		o.Logger = g.log
	}
	if o.Now == nil {
		o.Now = g.now
	}
	s, err := g.build(o)
	if err != nil {
		return err
	}
	g.cur.Store(s)
	return nil
}

// Policy returns the policy currently served.
func (g *Gateway) Policy() *policy.Policy { return g.cur.Load().pol }

func (g *Gateway) build(o Options) (*snapshot, error) {
	if o.Shared == nil {
		if g.mem == nil {
			g.mem = state.NewMemory(o.Now)
		}
		o.Shared = g.mem
	}
	if o.Store == nil {
		o.Store = o.Sessions
	}
	cfg := o.Policy.Config
	strip := append(o.Policy.HeaderNames(), cfg.Server.StripHeaders...)
	strip = append(strip, ConsentHeader)
	san, err := headers.NewSanitizer(strip)
	if err != nil {
		return nil, fmt.Errorf("identity headers: %w", err)
	}
	hosts := append(append([]string(nil), cfg.Server.AllowedRedirectHosts...), o.Policy.RouteHosts()...)
	rv, err := redirect.NewValidator(cfg.Server.PublicURL, hosts)
	if err != nil {
		return nil, fmt.Errorf("redirect hosts: %w", err)
	}
	s := &snapshot{
		opts: o, pol: o.Policy, sanitizer: san, redirects: rv,
		issuer: cfg.Server.PublicURL, userLog: cfg.Log.User, userKey: o.UserKey,
		cookiePrefix: cfg.Session.CookieName + "-",
	}
	if u, err := url.Parse(cfg.Server.PublicURL); err == nil {
		s.publicHost = u.Host
	}
	for _, p := range cfg.Server.TrustedProxies {
		pfx, err := config.ParsePrefix(p)
		if err != nil {
			return nil, err
		}
		s.trusted = append(s.trusted, pfx)
	}
	if o.Signer != nil {
		s.cache = assertion.NewCache(o.Signer, 100_000)
	}
	s.callbacks, s.endpoints, s.logouts = map[string]string{}, map[string]http.Handler{}, map[string]string{}
	for name, p := range o.Providers {
		if gb, ok := p.(providers.GatewayBinder); ok {
			gb.BindGateway(g)
		}
		if lr, ok := p.(providers.LogoutReceiver); ok {
			path := lr.LogoutPath()
			if _, dup := s.logouts[path]; dup || path == "" || strings.Contains(path, "..") {
				return nil, fmt.Errorf("provider %s: logout endpoint %q is taken or invalid", name, path)
			}
			s.logouts[path] = name
		}
		if cp, ok := p.(providers.CallbackPather); ok {
			s.callbacks[cp.CallbackPath()] = name
		}
		if ep, ok := p.(providers.EndpointProvider); ok {
			for path, h := range ep.Endpoints() {
				if _, dup := s.endpoints[path]; dup || strings.Contains(path, "..") {
					return nil, fmt.Errorf("provider %s: endpoint %q is taken or invalid", name, path)
				}
				s.endpoints[path] = h
			}
		}
	}
	if tok := cfg.SCIM.Token; tok != "" {
		h, err := scim.New(scim.Options{Token: tok, Revoke: g.RevokeUser, Logger: o.Logger, Now: o.Now})
		if err != nil {
			return nil, fmt.Errorf("scim: %w", err)
		}
		s.scim = http.StripPrefix(Prefix+"scim/v2", h)
	}
	if o.Shared.Kind() != "memory" {
		s.clear = newClearCache()
	}
	s.tokenProviders = map[string]bool{}
	for _, r := range o.Policy.Routes() {
		if r.Forward.AccessToken == "" {
			continue
		}
		for _, a := range r.Audiences {
			for _, name := range o.Policy.Providers(a) {
				s.tokenProviders[name] = true
			}
		}
	}
	if o.TracerProvider != nil {
		s.tracer = o.TracerProvider.Tracer(TracerName)
	}
	base := o.Transport
	for _, r := range o.Policy.Routes() {
		s.proxies = append(s.proxies, newReverseProxy(s, r, base))
	}
	s.limits = newRateLimits(o)
	return s, nil
}

// ServeHTTP runs the request path: sanitize, normalize, match,
// authenticate, decide, then respond or forward.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := g.cur.Load()
	start := g.now()
	peer, trustedPeer := s.peer(r.RemoteAddr)
	rec := &accessRecord{start: start, peer: peer}
	rec.rid = g.requestID(r, trustedPeer)
	w.Header().Set("X-Request-Id", rec.rid)
	var span trace.Span // nil unless tracing (tracing.go)
	if s.tracer != nil {
		r, span = s.startSpan(r, trustedPeer)
	}
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		g.logAccess(s, r, sw, rec)
		decision := "gatehouse"
		if rec.decided {
			decision = rec.decision.Effect.String()
		} else if rec.route == "" {
			decision = "refused"
		}
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		s.opts.Metrics.observe(rec, decision, code, g.now().Sub(start))
		if span != nil {
			s.endSpan(span, r, rec, decision, code)
		}
	}()

	// 1. Sanitize: hop-by-hop, Connection-named, identity and (from
	// untrusted peers) forwarding headers go before anything reads them.
	// A trusted front proxy's forward-auth subrequest describes the
	// original request in override headers the sanitizer removes: they
	// are kept aside for forwardAuth first (forwardauth.go).
	if trustedPeer && strings.HasPrefix(r.URL.Path, forwardAuthPath) {
		r = keepDescribed(r)
	}
	s.sanitizer.Sanitize(r.Header, trustedPeer)
	s.sanitizer.SanitizeTrailers(r)
	scrubTraceContext(r.Header, trustedPeer)
	r.Header.Set("X-Request-Id", rec.rid)
	if s.limits != nil && !g.limitAddr(s, sw, r, rec, nil) {
		return // server.rate_limit.per_ip (ratelimit.go)
	}

	// 2. Normalize the path once; the same path is judged and forwarded.
	path, err := policy.NormalizePath(r.URL.EscapedPath())
	if err != nil {
		rec.reason = "bad_path"
		var pe *policy.PathError
		if errors.As(err, &pe) {
			rec.reason = "bad_path:" + pe.Reason
		}
		g.fail(s, sw, r, rec, http.StatusBadRequest, "Bad request", "The address of this request is not valid.")
		return
	}
	if strings.HasPrefix(path, Prefix) || path == strings.TrimSuffix(Prefix, "/") {
		rec.route = "gatehouse"
		g.serveGatehouse(s, sw, r, rec, path)
		return
	}

	// 3. Match, 4. authenticate and 5. decide.
	who, ok := g.judge(s, sw, r, rec, policy.Request{Host: r.Host, Path: path, Method: r.Method})
	if !ok {
		return
	}
	g.respond(s, sw, r, rec, &rec.decision, who, path)
}

// judge matches a request to a route, authenticates it for that route (a
// bearer token for API audiences, the audience's session for browsers)
// and decides, leaving the decision in rec. It is shared by the proxy path
// and forward-auth (which judges the request a front proxy describes).
// When authentication itself fails (invalid token, shared state
// unreachable) it answers and returns false.
func (g *Gateway) judge(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, req policy.Request) (principal, bool) {
	route := s.pol.Match(req)
	var who principal
	if route != nil {
		rec.route = route.Name
		if s.limits != nil && !g.limitAddr(s, w, r, rec, route) {
			return who, false
		}
		var err error
		who, err = g.authenticate(s, w, r, route, rec)
		if errors.Is(err, errStateUnavailable) {
			rec.reason = reasonStateUnavailable
			g.unavailable(s, w, r, rec)
			return who, false
		}
		if err != nil {
			rec.reason = "invalid_token"
			g.log.Info("bearer token refused", zap.String("request_id", rec.rid), zap.String("route", route.Name), zap.Error(err))
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="invalid_token"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired", rec.rid)
			return who, false
		}
		rec.user = who.id
		if s.limits != nil && who.id != nil && !g.limitUser(s, w, r, rec, route, who.id) {
			return who, false
		}
	}
	rec.decision = s.pol.Decide(route, who.id, req, rec.start)
	rec.decided = true
	return who, true
}

// principal is who a request authenticated as: a browser session or a
// bearer token. key identifies it for the assertion cache (session id, or
// a hash of the token).
type principal struct {
	id      *identity.Identity
	session *session.Payload
	key     string
	// consent lists the purposes a customer grants ("purpose:version"),
	// set by the privacy gate for routes with privacy settings.
	consent []string
}

// authenticate finds the request's identity for a route. API audiences
// read Authorization: Bearer through the configured authenticators; an
// invalid token is an error (401 invalid_token), never anonymity. Browser
// audiences load the first valid session; expired and invalid cookies are
// cleared, and a session old enough is re-saved to slide its idle window.
func (g *Gateway) authenticate(s *snapshot, w http.ResponseWriter, r *http.Request, route *policy.Route, rec *accessRecord) (principal, error) {
	for _, aud := range route.Audiences {
		if aud != identity.API {
			continue
		}
		// Every api provider gets its say (two issuers, or JWT beside
		// introspection): the first that accepts the token wins; the token
		// is refused only when it is present and nobody accepts it.
		var refusal error
		for _, name := range s.pol.Providers(identity.API) {
			b, ok := s.opts.Bearer[name]
			if !ok {
				continue
			}
			id, err := b.Authenticate(r.Context(), r)
			if err != nil {
				refusal = errors.Join(refusal, fmt.Errorf("%s: %w", name, err))
				continue
			}
			if id != nil {
				id.Audience = identity.API
				if id.Provider == "" {
					id.Provider = name
				}
				return principal{id: id, key: "bearer\x00" + name + "\x00" + tokenKey(r)}, nil
			}
		}
		if refusal != nil {
			return principal{}, refusal
		}
	}
	store := s.opts.Store
	for _, aud := range route.Audiences {
		if aud == identity.API {
			continue
		}
		p, touched, err := store.Load(r, aud)
		if err == nil {
			revoked, rerr := s.isRevoked(r.Context(), p)
			switch {
			case rerr != nil:
				g.log.Error("cannot check session revocation: refusing the session", zap.String("request_id", rec.rid), zap.Error(rerr))
				return principal{}, fmt.Errorf("%w: %w", errStateUnavailable, rerr)
			case revoked:
				rec.sessionNote = "revoked"
				store.Clear(w, r, aud)
				continue
			}
		}
		if err == nil && s.tokenProviders[p.Identity.Provider] {
			before := p
			if p = g.maybeRefresh(s, w, r, rec, p); p == nil {
				continue
			}
			touched = touched && p == before // a refresh saved it already
		}
		switch {
		case err == nil:
			if touched {
				if err := store.Save(w, r, p); err != nil {
					g.log.Warn("session refresh failed", zap.String("request_id", rec.rid), zap.Error(err))
				}
			}
			return principal{id: &p.Identity, session: p, key: p.ID}, nil
		case errors.Is(err, session.ErrNoSession):
		case errors.Is(err, session.ErrExpired):
			rec.sessionNote = "expired"
			store.Clear(w, r, aud)
		case errors.Is(err, state.ErrUnavailable):
			// The server-side store is down: keep the cookie, fail closed.
			g.log.Error("session store unavailable", zap.String("request_id", rec.rid), zap.Error(err))
			return principal{}, fmt.Errorf("%w: %w", errStateUnavailable, err)
		default:
			rec.sessionNote = "invalid"
			g.log.Warn("invalid session cookie", zap.String("request_id", rec.rid), zap.String("audience", string(aud)), zap.Error(err))
			store.Clear(w, r, aud)
		}
	}
	return principal{}, nil
}

// tokenKey is a hash of the request's bearer token, so the assertion cache
// never holds the token itself.
func tokenKey(r *http.Request) string {
	sum := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	return hex.EncodeToString(sum[:16])
}

// respond is the one place that turns a decision into a response.
func (g *Gateway) respond(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, d *policy.Decision, who principal, path string) {
	switch d.Effect {
	case policy.Allow:
		who, ok := g.privacyGate(s, w, r, rec, d, who, path, nil)
		if !ok {
			return
		}
		g.forward(s, w, r, d, who, path)
	case policy.NeedLogin, policy.NeedStepUp:
		if wantsJSON(r, d.Route) {
			challenge := `Bearer realm="gatehouse"`
			code := "unauthenticated"
			if d.Effect == policy.NeedStepUp {
				challenge = `Bearer realm="gatehouse", error="insufficient_user_authentication"`
				code = "step_up_required"
			}
			w.Header().Set("WWW-Authenticate", challenge)
			msg := "sign-in required"
			if d.Effect == policy.NeedStepUp {
				msg = "a stronger or more recent authentication is required"
			}
			writeJSONError(w, http.StatusUnauthorized, code, msg, rec.rid)
			return
		}
		login := s.loginURL(r, d, path)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// A request with a body cannot be replayed after sign-in.
			s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusUnauthorized, Title: "Please sign in",
				Message: "You need to sign in before doing this. Sign in, then try again.", RequestID: rec.rid, RetryURL: login})
			return
		}
		http.Redirect(w, r, login, http.StatusFound)
	default:
		status, title, msg := http.StatusForbidden, "Access denied", "You are signed in, but this page is not available to you."
		switch d.Reason {
		case policy.ReasonNoRoute:
			status, title, msg = http.StatusNotFound, "Not found", "There is nothing here."
		case policy.ReasonUnknownMethod:
			status, title, msg = http.StatusMethodNotAllowed, "Not allowed", "This kind of request is not supported."
		}
		if wantsJSON(r, d.Route) {
			code := string(d.Reason)
			if d.Reason == policy.ReasonInsufficientScope {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="insufficient_scope", scope="`+d.MatchedValue+`"`)
			}
			writeJSONError(w, status, code, publicReason(d), rec.rid)
			return
		}
		p := pages.ErrorPage{Status: status, Title: title, Message: msg, RequestID: rec.rid}
		if status == http.StatusForbidden {
			p.SignOutURL = Prefix + "logout"
		}
		s.opts.Pages.Error(w, p)
	}
}

// publicReason is what a JSON client is told about a denial: the stable
// code's meaning, never the policy's internals (role names, rules).
func publicReason(d *policy.Decision) string {
	switch d.Reason {
	case policy.ReasonNoRoute:
		return "no route matches this request"
	case policy.ReasonUnknownMethod:
		return "method not supported"
	case policy.ReasonInsufficientScope:
		return "the access token lacks a required scope"
	}
	return "access denied by policy"
}

// loginURL is where a browser without an acceptable session goes: the
// audience's sign-in, carrying the validated URL to come back to.
func (s *snapshot) loginURL(r *http.Request, d *policy.Decision, path string) string {
	q := make([]string, 0, 4)
	q = append(q, "audience="+string(d.Audience))
	back := path
	if r.URL.RawQuery != "" {
		back += "?" + r.URL.RawQuery
	}
	q = append(q, "rd="+queryEscape(back))
	if d.Effect == policy.NeedStepUp {
		req := d.Requirement
		if req.MFA || len(req.AMR) > 0 {
			q = append(q, "mfa=1")
		}
		if req.MaxAuthAge > 0 {
			q = append(q, "max_age="+strconv.Itoa(int(req.MaxAuthAge.Seconds())))
		}
		for _, a := range req.ACR {
			q = append(q, "acr="+queryEscape(a))
		}
	}
	if c := claimsQuery(d); c != "" {
		q = append(q, c)
	}
	return Prefix + "login?" + strings.Join(q, "&")
}

// peer returns the client address and whether it is a trusted proxy.
func (s *snapshot) peer(remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		host, _, err2 := net.SplitHostPort(remote)
		if err2 != nil {
			return netip.Addr{}, false
		}
		a, err3 := netip.ParseAddr(host)
		if err3 != nil {
			return netip.Addr{}, false
		}
		return a, s.isTrusted(a)
	}
	a := ap.Addr().Unmap()
	return a, s.isTrusted(a)
}

func (s *snapshot) isTrusted(a netip.Addr) bool {
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requestID keeps a trusted peer's X-Request-Id (if sane) or makes one.
func (g *Gateway) requestID(r *http.Request, trustedPeer bool) string {
	if trustedPeer {
		if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 64 && isPrintableToken(v) {
			return v
		}
	}
	n := g.ridSeq.Add(1)
	var b [24]byte
	copy(b[:8], g.ridPfx)
	hex.Encode(b[8:], []byte{byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	return string(b[:])
}

func isPrintableToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// wantsJSON tells API and script clients (JSON errors, never a redirect)
// from browser navigations.
func wantsJSON(r *http.Request, route *policy.Route) bool {
	if route != nil {
		for _, a := range route.Audiences {
			if a == identity.API && len(route.Audiences) == 1 {
				return true
			}
		}
	}
	if r.Header.Get("Authorization") != "" {
		return true
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" {
		return true
	}
	if r.Header.Get("X-Requested-With") == "XMLHttpRequest" {
		return true
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

// unavailable answers 503 when the shared state (sessions, revocations,
// single-use states) cannot be reached: the gateway fails closed.
func (g *Gateway) unavailable(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord) {
	w.Header().Set("Retry-After", "5")
	g.fail(s, w, r, rec, http.StatusServiceUnavailable, "Temporarily unavailable", "Sign-in is briefly unavailable. Please try again in a moment.")
}

func (g *Gateway) fail(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, status int, title, msg string) {
	if wantsJSON(r, nil) {
		writeJSONError(w, status, strings.ReplaceAll(strings.ToLower(title), " ", "_"), msg, rec.rid)
		return
	}
	s.opts.Pages.Error(w, pages.ErrorPage{Status: status, Title: title, Message: msg, RequestID: rec.rid})
}
