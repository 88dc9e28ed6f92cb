package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
)

// defaultTransport is the upstream transport when none is given: bounded
// dial and TLS times, enough idle connections for a busy gateway.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	return t
}

// copyBuffers lends the reverse proxies their 32 KiB response-copy buffers,
// which they would otherwise allocate and zero for every response. A
// buffered channel, unlike sync.Pool behind this []byte interface, costs no
// allocation per Put.
var copyBuffers = &bufferPool{c: make(chan []byte, 512)}

type bufferPool struct{ c chan []byte }

func (b *bufferPool) Get() []byte {
	select {
	case buf := <-b.c:
		return buf
	default:
		return make([]byte, 32<<10)
	}
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != 32<<10 {
		return
	}
	select {
	case b.c <- buf[:cap(buf)]:
	default: // pool full: let the GC have it
	}
}

// newReverseProxy builds the route's single-shot reverse proxy. Its Rewrite
// hook only rewrites the address and forwarding headers: the decision and
// the identity headers were settled before it runs.
func newReverseProxy(s *snapshot, r *policy.Route, base http.RoundTripper) *httputil.ReverseProxy {
	target := r.Upstream
	preserveHost := r.PreserveHost
	transport := base
	if transport == nil {
		t := defaultTransport()
		t.ResponseHeaderTimeout = r.Timeout
		transport = t
	}
	if s.tracer != nil {
		transport = newTracedTransport(transport, s.tracer, r)
	}
	log := s.opts.Logger
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: copyBuffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			_, trusted := s.peer(pr.In.RemoteAddr)
			if trusted {
				// Keep the chain a trusted proxy reported (ReverseProxy
				// removed it from Out before calling Rewrite).
				if v := pr.In.Header["X-Forwarded-For"]; len(v) > 0 {
					pr.Out.Header["X-Forwarded-For"] = v
				}
			}
			pr.SetURL(target)
			pr.SetXForwarded()
			if pr.In.Host != s.publicHost && !s.redirects.AllowHost(pr.In.Host) {
				// A Host the gateway does not serve (a route without host
				// matched it) is not passed on as X-Forwarded-Host, where an
				// upstream might build links from it.
				pr.Out.Header.Set("X-Forwarded-Host", s.publicHost)
			}
			if trusted {
				if v := pr.In.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
					pr.Out.Header.Set("X-Forwarded-Proto", v)
				}
				if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
					pr.Out.Header.Set("X-Forwarded-Host", v)
				}
			}
			if preserveHost {
				pr.Out.Host = pr.In.Host
			}
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			status, title, msg := http.StatusBadGateway, "Service unavailable", "The application behind this gateway did not answer. Please try again in a moment."
			var ne net.Error
			if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
				status, title, msg = http.StatusGatewayTimeout, "Timed out", "The application behind this gateway took too long to answer. Please try again."
			}
			if errors.Is(err, context.Canceled) {
				status = 499 // client went away; nothing is written
			}
			rid := req.Header.Get("X-Request-Id")
			log.Warn("upstream error", zap.String("request_id", rid), zap.String("route", r.Name), zap.Int("status", status), zap.Error(err))
			if status == 499 {
				if sw, ok := w.(*statusWriter); ok {
					sw.status = 499
				}
				return
			}
			if wantsJSON(req, r) {
				writeJSONError(w, status, "upstream_unavailable", msg, rid)
				return
			}
			s.opts.Pages.Error(w, pages.ErrorPage{Status: status, Title: title, Message: msg, RequestID: rid})
		},
		// Only the gateway sets or clears its own cookies: an upstream
		// relaying Set-Cookie for them could plant a session of its choice.
		ModifyResponse: func(res *http.Response) error {
			dropOwnSetCookies(res.Header, s.cookiePrefix)
			return nil
		},
		ErrorLog: zap.NewStdLog(log.Named("reverseproxy")),
	}
}

// forward rewrites the request as judged (normalized path, identity
// headers, signed assertion) and hands it to the route's reverse proxy.
func (g *Gateway) forward(s *snapshot, w http.ResponseWriter, r *http.Request, d *policy.Decision, who principal, path string) {
	route := d.Route
	r.URL.Path = path
	r.URL.RawPath = ""
	stripOwnCookies(r.Header, s.cookiePrefix)
	if err := s.setIdentity(r.Header, d, who); err != nil {
		// Failing closed: an upstream that relies on the assertion must
		// not receive the request without it.
		g.log.Error("assertion signing failed", zap.String("request_id", r.Header.Get("X-Request-Id")), zap.Error(err))
		s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusInternalServerError, Title: "Something went wrong", Message: "Please try again in a moment.", RequestID: r.Header.Get("X-Request-Id")})
		return
	}
	s.proxies[route.Index].ServeHTTP(w, r)
}

// setIdentity sets in h the identity headers the decision's route
// defines and, when the route sends it, the signed assertion: what an
// upstream receives in reverse-proxy mode and what a forward-auth answer
// hands the front proxy. An anonymous principal sets nothing. The only
// error is a failure to sign the assertion.
func (s *snapshot) setIdentity(h http.Header, d *policy.Decision, who principal) error {
	id := who.id
	if id == nil {
		return nil
	}
	route := d.Route
	f := &route.Forward
	setHeader(h, f.User, userClaim(id, f.UserClaim))
	setHeader(h, f.Email, id.Email)
	setHeader(h, f.Name, id.Name)
	if f.Groups != "" {
		setHeader(h, f.Groups, strings.Join(id.Groups, ","))
	}
	if f.Roles != "" {
		setHeader(h, f.Roles, s.roleHeader(d.Roles))
	}
	for _, c := range f.Claims {
		setHeader(h, c[0], id.Extra[c[1]])
	}
	if f.AccessToken != "" {
		// Whatever the client sent under this name goes; the session's
		// token (if any) takes its place.
		delete(h, f.AccessToken)
		if who.session != nil {
			if tok := who.session.Tokens[tokAccess]; tok != "" {
				if f.AccessToken == "Authorization" {
					tok = "Bearer " + tok
				}
				setHeader(h, f.AccessToken, tok)
			}
		}
	}
	if len(who.consent) > 0 {
		setHeader(h, ConsentHeader, strings.Join(who.consent, ","))
	}
	if f.Assertion && s.cache != nil {
		key := who.key + "\x00" + route.Name
		tok, err := s.cache.Get(key, func() assertion.Claims {
			return assertion.Claims{
				Issuer: s.issuer, Subject: id.Subject, Audience: route.Name,
				IdentityAudience: string(id.Audience), Provider: id.Provider,
				Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name,
				Groups: id.Groups, Roles: s.pol.RoleNames(d.Roles), Scopes: id.Scopes,
				AMR: id.AMR, ACR: id.ACR, AuthTime: id.AuthTime, Consent: who.consent,
			}
		})
		if err != nil {
			return err
		}
		setHeader(h, s.pol.Config.Assertion.Header, tok)
	}
	return nil
}

// setHeader sets one identity header; name is already canonical (the
// policy canonicalizes names at load). The sanitizer already deleted every
// client spelling of the name; an empty value leaves the header absent.
func setHeader(h http.Header, name, value string) {
	if name == "" || value == "" {
		return
	}
	h[name] = []string{sanitizeValue(value)}
}

// sanitizeValue drops characters that cannot appear in a header value, so
// that an identity attribute can never split or end a header.
func sanitizeValue(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return strings.Map(func(r rune) rune {
				if r < ' ' && r != '\t' || r == 0x7f {
					return -1
				}
				return r
			}, v)
		}
	}
	return v
}

func userClaim(id *identity.Identity, claim string) string {
	switch claim {
	case "email":
		return id.Email
	case "name":
		return id.Name
	}
	return id.Subject
}

// stripOwnCookies removes Gatehouse's own cookies (sessions, sign-in
// attempts) from the Cookie header sent upstream: an upstream must never be
// able to replay a gateway session (Pomerium GHSA-rrqr-7w59-637v is the
// same lesson for tokens). Other cookies pass unchanged; the header is
// rebuilt only when one of ours is present.
func stripOwnCookies(h http.Header, prefix string) {
	vals := h["Cookie"]
	if len(vals) == 0 || prefix == "" {
		return
	}
	found := false
	for _, v := range vals {
		if strings.Contains(v, prefix) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	// One pass, one allocation: copy the pairs that are not ours.
	var b strings.Builder
	for _, v := range vals {
		for v != "" {
			var pair string
			pair, v, _ = strings.Cut(v, ";")
			pair = strings.TrimSpace(pair)
			if pair == "" {
				continue
			}
			name, _, _ := strings.Cut(pair, "=")
			if ownCookieName(strings.TrimSpace(name), prefix) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(pair)
		}
	}
	if b.Len() == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = []string{b.String()}
}

// ownCookieName reports whether a cookie name is one of Gatehouse's own.
func ownCookieName(name, prefix string) bool {
	return strings.HasPrefix(name, prefix) || strings.HasPrefix(name, "__Host-"+prefix) || strings.HasPrefix(name, "__Secure-"+prefix)
}

// dropOwnSetCookies removes from an upstream response every Set-Cookie that
// names one of Gatehouse's own cookies (see stripOwnCookies).
func dropOwnSetCookies(h http.Header, prefix string) {
	lines := h["Set-Cookie"]
	if len(lines) == 0 || prefix == "" {
		return
	}
	kept := lines[:0]
	for _, l := range lines {
		name, _, _ := strings.Cut(l, "=")
		if ownCookieName(strings.TrimSpace(name), prefix) {
			continue
		}
		kept = append(kept, l)
	}
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
		return
	}
	h["Set-Cookie"] = kept
}

// roleHeader is the comma-joined role names of a role set, memoized per
// set: role sets repeat across requests, and the policy behind a snapshot
// never changes.
func (s *snapshot) roleHeader(set policy.RoleSet) string {
	if v, ok := s.roleNames.Load(set); ok {
		return v.(string)
	}
	v := strings.Join(s.pol.RoleNames(set), ",")
	if s.roleNamesLen.Add(1) <= 4096 { // bounded: stop memoizing past 4096 sets
		s.roleNames.Store(set, v)
	}
	return v
}
