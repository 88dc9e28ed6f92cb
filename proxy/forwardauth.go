package proxy

// Forward-auth mode: a front proxy (nginx auth_request, Traefik
// forwardAuth, Caddy forward_auth, Envoy ext_authz over HTTP) asks
// /.gatehouse/auth whether a request it holds may pass, and Gatehouse
// answers from the same policy, sessions and identity headers as in
// reverse-proxy mode:
//
//	200  allowed; the identity headers and the signed assertion the route
//	     would send upstream are in the answer, for the proxy to copy
//	401  sign-in needed (or step-up); Location names the sign-in URL for
//	     browsers, JSON for API clients; 302 instead with ?redirect=1
//	403  denied (or no route, or an unknown method)
//	400  the original request is not described, ambiguously described,
//	     or its path is invalid
//
// Only a peer in server.trusted_proxies may ask. Any other peer is
// refused with 403, whatever it sends: the answer carries a signed
// assertion (a bearer credential for the upstreams) and tells whether an
// arbitrary request would be allowed, neither of which a client may
// obtain by calling the endpoint itself. Ignoring the description and
// judging the subrequest as it stands would answer a meaningless question
// and hide a missing trusted_proxies entry behind puzzling decisions.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
)

// forwardAuthPath is the forward-auth endpoint. forwardAuthPath + "/<path>"
// is its Envoy form: ext_authz appends the original path to path_prefix.
const forwardAuthPath = Prefix + "auth"

// The headers in which front proxies describe the original request.
// Traefik and Caddy send X-Forwarded-Method and X-Forwarded-Uri (with
// X-Forwarded-Proto and X-Forwarded-Host); nginx setups send X-Original-URL
// (absolute) and X-Original-Method, or X-Original-URI with
// X-Forwarded-Host. The sanitizer strips all five from every request (they
// are path and method overrides), so ServeHTTP keeps them aside first.
const (
	hdrForwardedURI    = "X-Forwarded-Uri"
	hdrForwardedMethod = "X-Forwarded-Method"
	hdrOriginalURL     = "X-Original-Url"
	hdrOriginalURI     = "X-Original-Uri"
	hdrOriginalMethod  = "X-Original-Method"
)

// described holds the values of those headers as a trusted peer sent them.
type described struct {
	fwdURI, fwdMethod, origURL, origURI, origMethod []string
}

type describedKey struct{}

// keepDescribed keeps a trusted peer's description of the original
// request before the sanitizer removes it. ServeHTTP calls it only for
// requests to forwardAuthPath, so the proxy path never pays for it.
func keepDescribed(r *http.Request) *http.Request {
	h := r.Header
	d := &described{
		fwdURI: h.Values(hdrForwardedURI), fwdMethod: h.Values(hdrForwardedMethod),
		origURL: h.Values(hdrOriginalURL), origURI: h.Values(hdrOriginalURI), origMethod: h.Values(hdrOriginalMethod),
	}
	if d.fwdURI == nil && d.fwdMethod == nil && d.origURL == nil && d.origURI == nil && d.origMethod == nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), describedKey{}, d))
}

// original is the request a front proxy asks about.
type original struct {
	method, scheme, host  string
	escapedPath, rawQuery string
}

// forwardAuth answers a forward-auth subrequest.
func (g *Gateway) forwardAuth(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord) {
	w.Header().Set("Cache-Control", "no-store")
	if _, trusted := s.peer(r.RemoteAddr); !trusted {
		rec.reason = "forward_auth_untrusted_peer"
		g.log.Warn("forward-auth request from a peer not in server.trusted_proxies: refused",
			zap.String("request_id", rec.rid), zap.String("peer", rec.peer.String()))
		g.fail(s, w, r, rec, http.StatusForbidden, "Forbidden", "Only a trusted front proxy may ask this.")
		return
	}
	o, reason := s.describedRequest(r)
	if reason != "" {
		rec.reason = "forward_auth_" + reason
		g.log.Warn("forward-auth request does not describe an original request", zap.String("request_id", rec.rid), zap.String("reason", reason))
		g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "The request to check is not described.")
		return
	}
	// The path is normalized exactly as a proxied request's would be.
	path, err := policy.NormalizePath(o.escapedPath)
	if err != nil {
		rec.reason = "bad_path"
		var pe *policy.PathError
		if errors.As(err, &pe) {
			rec.reason = "bad_path:" + pe.Reason
		}
		g.fail(s, w, r, rec, http.StatusBadRequest, "Bad request", "The address of this request is not valid.")
		return
	}
	if g.log.Core().Enabled(zap.DebugLevel) {
		g.log.Debug("forward-auth", zap.String("request_id", rec.rid), zap.String("method", o.method),
			zap.String("host", o.host), zap.String("path", path))
	}

	// Metrics and the access line carry the original request's route and
	// decision, as for a proxied request ("" when no route matches).
	rec.route = ""
	who, ok := g.judge(s, w, r, rec, policy.Request{Host: o.host, Path: path, Method: o.method})
	if !ok {
		return
	}
	d := &rec.decision
	switch d.Effect {
	case policy.Allow:
		// The route's privacy settings apply here exactly as when
		// proxying: region, consent, minimized identity.
		who, ok := g.privacyGate(s, w, r, rec, d, who, path, &o)
		if !ok {
			return
		}
		if err := s.setIdentity(w.Header(), d, who); err != nil {
			g.log.Error("assertion signing failed", zap.String("request_id", rec.rid), zap.Error(err))
			g.fail(s, w, r, rec, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
			return
		}
		w.WriteHeader(http.StatusOK)
	case policy.NeedLogin, policy.NeedStepUp:
		g.forwardAuthLogin(s, w, r, rec, d, o, path)
	default:
		if wantsJSON(r, d.Route) {
			if d.Reason == policy.ReasonInsufficientScope {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="insufficient_scope", scope="`+d.MatchedValue+`"`)
			}
			writeJSONError(w, http.StatusForbidden, string(d.Reason), publicReason(d), rec.rid)
			return
		}
		// No route and unknown methods are 403 too: front proxies treat
		// anything but 2xx, 401 and 403 as a failure of the auth service.
		s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusForbidden, Title: "Access denied",
			Message: "You are signed in, but this page is not available to you.", RequestID: rec.rid, SignOutURL: Prefix + "logout"})
	}
}

// forwardAuthLogin answers a request that needs a sign-in (or a stronger
// one): JSON for API clients; for browsers the audience's sign-in URL,
// carrying the original absolute URL as the validated return URL, in
// Location of a 401 (or of a 302 when the front proxy asked with
// ?redirect=1 because it passes answers through to the client).
func (g *Gateway) forwardAuthLogin(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, d *policy.Decision, o original, path string) {
	if wantsJSON(r, d.Route) {
		challenge, code, msg := `Bearer realm="gatehouse"`, "unauthenticated", "sign-in required"
		if d.Effect == policy.NeedStepUp {
			challenge = `Bearer realm="gatehouse", error="insufficient_user_authentication"`
			code, msg = "step_up_required", "a stronger or more recent authentication is required"
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSONError(w, http.StatusUnauthorized, code, msg, rec.rid)
		return
	}
	rd, origin, ok := g.originalReturn(s, w, r, rec, o, path)
	if !ok {
		return
	}
	g.forwardAuthSend(s, w, r, rec, o, origin+s.loginURL(&http.Request{URL: &url.URL{}}, d, rd))
}

// originalReturn is the validated absolute URL of the original request and
// its origin, where the gateway's own pages (sign-in, consent) must run so
// that cookies land where the browser sends them again. When the URL is
// refused (a forged X-Forwarded-Host on a route without host) it answers
// the request itself and returns false.
func (g *Gateway) originalReturn(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, o original, path string) (rd, origin string, ok bool) {
	back := o.scheme + "://" + o.host + (&url.URL{Path: path}).EscapedPath()
	if o.rawQuery != "" {
		back += "?" + o.rawQuery
	}
	rd, err := s.redirects.Validate(back)
	if err != nil {
		rec.reason = "forward_auth_return_url_refused"
		g.log.Warn("forward-auth: refused return URL, no redirect", zap.String("request_id", rec.rid), zap.String("rd", truncate(back, 200)), zap.Error(err))
		s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusUnauthorized, Title: "Please sign in",
			Message: "You need to sign in to see this page.", RequestID: rec.rid})
		return "", "", false
	}
	origin = rd
	if i := strings.Index(rd, "://"); i >= 0 {
		if j := strings.IndexByte(rd[i+3:], '/'); j >= 0 {
			origin = rd[:i+3+j]
		}
	}
	return rd, origin, true
}

// forwardAuthConsent sends a browser to the consent page, the forward-auth
// way (401 with Location, or 302 with ?redirect=1).
func (g *Gateway) forwardAuthConsent(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, d *policy.Decision, o original, path string) {
	rd, origin, ok := g.originalReturn(s, w, r, rec, o, path)
	if !ok {
		return
	}
	g.forwardAuthSend(s, w, r, rec, o, origin+Prefix+"me/consent?route="+queryEscape(d.Route.Name)+"&rd="+queryEscape(rd))
}

// forwardAuthSend answers a browser that must go to target (an absolute
// URL on the original origin) before the original request can pass.
func (g *Gateway) forwardAuthSend(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord, o original, login string) {
	replayable := o.method == http.MethodGet || o.method == http.MethodHead
	if replayable && r.URL.Query().Get("redirect") == "1" {
		http.Redirect(w, r, login, http.StatusFound)
		return
	}
	if replayable {
		// nginx: auth_request_set $gatehouse_login $upstream_http_location.
		w.Header().Set("Location", login)
	}
	// A request with a body cannot be replayed after sign-in: a page with
	// a link, as in reverse-proxy mode.
	s.opts.Pages.Error(w, pages.ErrorPage{Status: http.StatusUnauthorized, Title: "Please sign in",
		Message: "You need to sign in before doing this. Sign in, then try again.", RequestID: rec.rid, RetryURL: login})
}

// describedRequest reads the original request from the conventions front
// proxies use. Exactly one description of the target must be present:
// X-Forwarded-Uri, X-Original-Url, X-Original-Uri, or the Envoy path
// suffix; two of them, or a header given twice, is refused rather than
// guessed at. It returns a short reason when the description is unusable.
func (s *snapshot) describedRequest(r *http.Request) (original, string) {
	d, _ := r.Context().Value(describedKey{}).(*described)
	if d == nil {
		d = &described{}
	}
	var envoyPath string
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), forwardAuthPath+"/"); ok {
		envoyPath = "/" + rest
	}
	n := 0
	for _, v := range [][]string{d.fwdURI, d.origURL, d.origURI} {
		if len(v) > 1 {
			return original{}, "repeated_header"
		}
		if len(v) == 1 {
			n++
		}
	}
	if envoyPath != "" {
		n++
	}
	switch {
	case n == 0:
		return original{}, "not_described"
	case n > 1:
		return original{}, "ambiguous"
	}

	o := original{method: r.Method}
	// The method: X-Forwarded-Method or X-Original-Method (they must agree
	// when both are sent), else the subrequest's own (nginx and Envoy use
	// the original method).
	var methods []string
	for _, v := range [][]string{d.fwdMethod, d.origMethod} {
		if len(v) > 1 {
			return original{}, "repeated_header"
		}
		methods = append(methods, v...)
	}
	if len(methods) == 2 && methods[0] != methods[1] {
		return original{}, "ambiguous_method"
	}
	if len(methods) > 0 {
		o.method = methods[0]
	}
	if !validMethod(o.method) {
		return original{}, "bad_method"
	}

	if len(d.origURL) == 1 {
		u, err := url.ParseRequestURI(d.origURL[0])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
			return original{}, "bad_original_url"
		}
		o.scheme, o.host, o.escapedPath, o.rawQuery = u.Scheme, u.Host, u.EscapedPath(), u.RawQuery
		if !validHost(o.host) {
			return original{}, "bad_host"
		}
		return o, ""
	}

	// A request target, parsed exactly as net/http parses a request line.
	switch {
	case envoyPath != "":
		o.escapedPath, o.rawQuery = envoyPath, r.URL.RawQuery
	default:
		var uri string
		if len(d.fwdURI) == 1 {
			uri = d.fwdURI[0]
		} else {
			uri = d.origURI[0]
		}
		if !strings.HasPrefix(uri, "/") {
			return original{}, "bad_uri"
		}
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			return original{}, "bad_uri"
		}
		o.escapedPath, o.rawQuery = u.EscapedPath(), u.RawQuery
	}
	// The host: X-Forwarded-Host, else the subrequest's Host (Envoy sends
	// the original one).
	o.host = r.Host
	if v := r.Header.Values("X-Forwarded-Host"); len(v) > 0 {
		if len(v) > 1 || strings.Contains(v[0], ",") {
			return original{}, "ambiguous_host"
		}
		o.host = strings.TrimSpace(v[0])
	}
	if !validHost(o.host) {
		return original{}, "bad_host"
	}
	// The scheme: X-Forwarded-Proto, else the public URL's.
	o.scheme = "http"
	if strings.HasPrefix(s.issuer, "https:") {
		o.scheme = "https"
	}
	if v := r.Header.Values("X-Forwarded-Proto"); len(v) > 0 {
		if len(v) > 1 || (v[0] != "http" && v[0] != "https") {
			return original{}, "bad_proto"
		}
		o.scheme = v[0]
	}
	return o, ""
}

// validMethod accepts an HTTP method token of reasonable length.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validHost accepts host[:port] made of the characters a host name, an IP
// literal and a port use. Whether the host is served is the policy's
// question (route hosts) and the redirect validator's.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}
