package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Audience kinds, spelled as in the policy. (The identity package owns the
// typed constants; config stays dependency-free.)
var audienceKinds = []string{"workforce", "customer", "api", "public"}

// bearerTypes are the provider types that check API tokens rather than
// sign people in.
var bearerTypes = map[string]bool{"jwt": true, "introspection": true}

// StandardMethods are the request methods a route may name. Requests with
// any other method are denied (Keycloak Gatekeeper CVE-2020-14359).
var StandardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}

type validator struct {
	cfg   *Config
	src   *Source
	diags Diagnostics
}

func (v *validator) add(path, hint, format string, args ...any) {
	v.diags = append(v.diags, v.src.Diag(path, fmt.Sprintf(format, args...), hint))
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// validate checks everything that can be checked without I/O: enumerations,
// syntax of URLs, CIDRs and header names, and references between sections.
func validate(cfg *Config) Diagnostics {
	v := &validator{cfg: cfg, src: cfg.Source}
	if cfg.Version != 1 {
		if cfg.Version == 0 {
			v.add("version", "add 'version: 1' at the top", "missing policy version")
		} else {
			v.add("version", "this Gatehouse understands version 1", "unsupported policy version %d", cfg.Version)
		}
	}
	v.server()
	v.enum("log.format", cfg.Log.Format, "json", "console")
	v.enum("log.level", cfg.Log.Level, "debug", "info", "warn", "error")
	v.enum("log.user", cfg.Log.User, "hash", "omit", "plain")
	v.session()
	v.assertion()
	v.branding()
	v.providers()
	v.audiences()
	v.roles()
	v.routes()
	v.privacy()
	v.rateLimits()
	v.tracing()
	return v.diags
}

func (v *validator) enum(path, val string, allowed ...string) {
	if val == "" {
		return
	}
	for _, a := range allowed {
		if val == a {
			return
		}
	}
	v.add(path, didYouMean(val, allowed), "unknown value %q", val)
}

func (v *validator) server() {
	s := v.cfg.Server
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		switch {
		case err != nil || !u.IsAbs() || u.Host == "":
			v.add("server.public_url", "e.g. https://apps.example.com", "%q is not an absolute URL", s.PublicURL)
		case u.Scheme != "http" && u.Scheme != "https":
			v.add("server.public_url", "use http or https", "unsupported scheme %q", u.Scheme)
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.User != nil:
			v.add("server.public_url", "give only scheme://host[:port]", "public URL must not have a path, query, fragment or user info")
		}
	}
	if s.Listen != "" {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			v.add("server.listen", `e.g. ":8080" or "127.0.0.1:8080"`, "invalid listen address %q", s.Listen)
		}
	}
	if s.AdminListen != "" {
		if _, _, err := net.SplitHostPort(s.AdminListen); err != nil {
			v.add("server.admin_listen", `e.g. "127.0.0.1:9090"`, "invalid listen address %q", s.AdminListen)
		} else if s.AdminListen == s.Listen || (s.Listen == "" && s.AdminListen == ":8080") {
			v.add("server.admin_listen", "metrics and admin endpoints must never share the public listener", "admin_listen equals the public listen address")
		}
	}
	for i, p := range s.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			v.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "e.g. 10.0.0.0/8 or 192.0.2.7", "%v", err)
		}
	}
	for i, h := range s.AllowedRedirectHosts {
		if !validHostPattern(h, true) {
			v.add(fmt.Sprintf("server.allowed_redirect_hosts[%d]", i), "e.g. app.example.com or *.example.com", "invalid host pattern %q", h)
		}
	}
	for i, h := range s.StripHeaders {
		if !ValidHeaderName(strings.TrimSuffix(h, "*")) {
			v.add(fmt.Sprintf("server.strip_headers[%d]", i), "a header name such as X-Forwarded-User, or a prefix such as X-Auth-Request-*", "invalid header name %q", h)
		}
	}
}

// ParsePrefix parses a CIDR or a single IP address into a prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid IP address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ValidHeaderName reports whether s is a valid HTTP field name (RFC 9110 token).
func ValidHeaderName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

var hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// validHostPattern accepts "host", "host:port" (when withPort) and
// "*.suffix" with lower-case DNS labels, or an IP literal.
func validHostPattern(h string, withPort bool) bool {
	if withPort {
		if host, port, err := net.SplitHostPort(h); err == nil {
			if port == "" {
				return false
			}
			h = host
		}
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = strings.TrimPrefix(h, "*.")
	if h == "" || h != strings.ToLower(h) {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func (v *validator) session() {
	s := v.cfg.Session
	v.enum("session.store", s.Store, "cookie", "server")
	v.enum("session.same_site", s.SameSite, "lax", "strict", "none")
	for i, k := range s.Keys {
		if len(k) < 32 {
			v.add(fmt.Sprintf("session.keys[%d]", i), "generate one with 'gatehouse keys'", "session key is %d bytes; at least 32 are required", len(k))
		}
	}
	if s.SameSite == "none" && s.InsecureCookies {
		v.add("session.same_site", "browsers refuse SameSite=None without Secure", "same_site none requires secure cookies")
	}
	if s.Idle > 0 && s.Lifetime > 0 && s.Idle > s.Lifetime {
		v.add("session.idle", "the idle timeout can never fire after the absolute lifetime", "idle (%s) is longer than lifetime (%s)", s.Idle.D(), s.Lifetime.D())
	}
	if s.Domain != "" && !validHostPattern(strings.TrimPrefix(s.Domain, "."), false) {
		v.add("session.domain", "e.g. example.com", "invalid cookie domain %q", s.Domain)
	}
	if t := v.cfg.Server.AdminToken; t != "" && len(t) < 32 {
		v.add("server.admin_token", "generate one with 'gatehouse keys'", "admin token is %d bytes; at least 32 are required", len(t))
	}
	if t := v.cfg.SCIM.Token; t != "" && len(t) < 32 {
		v.add("scim.token", "generate one with 'gatehouse keys'", "SCIM token is %d bytes; at least 32 are required", len(t))
	}
	if u := v.cfg.State.RedisURL; u != "" {
		scheme, _, ok := strings.Cut(u, "://")
		if !ok || !slices.Contains([]string{"redis", "rediss", "redis+sentinel", "redis+cluster"}, scheme) {
			v.add("state.redis_url", "e.g. redis://127.0.0.1:6379/0", "unsupported Redis URL %q", redactURL(u))
		}
	}
}

func (v *validator) assertion() {
	a := v.cfg.Assertion
	if a.Header != "" && !ValidHeaderName(a.Header) {
		v.add("assertion.header", "", "invalid header name %q", a.Header)
	}
	if a.TTL != 0 && (a.TTL.D() < 5*time.Second || a.TTL.D() > time.Hour) {
		v.add("assertion.ttl", "keep assertions short-lived: between 5s and 1h", "ttl %s out of range", a.TTL.D())
	}
	ids := map[string]bool{}
	for i, k := range a.Keys {
		p := fmt.Sprintf("assertion.keys[%d]", i)
		if (k.File == "") == (k.PEM == "") {
			v.add(p, "give exactly one of file or pem", "a key needs a file or an inline pem")
		}
		if k.ID != "" {
			if ids[k.ID] {
				v.add(p+".id", "", "duplicate key id %q", k.ID)
			}
			ids[k.ID] = true
		}
	}
}

var colour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

func (v *validator) branding() {
	b := v.cfg.Branding
	if b.PrimaryColor != "" && !colour.MatchString(b.PrimaryColor) {
		v.add("branding.primary_color", "use #rgb or #rrggbb", "invalid colour %q", b.PrimaryColor)
	}
	if b.BackgroundColor != "" && !colour.MatchString(b.BackgroundColor) {
		v.add("branding.background_color", "use #rgb or #rrggbb", "invalid colour %q", b.BackgroundColor)
	}
	if b.Logo != "" && !strings.HasPrefix(b.Logo, "data:image/") && !(strings.HasPrefix(b.Logo, "/") && !strings.HasPrefix(b.Logo, "//")) {
		v.add("branding.logo", "pages load no external assets: use a data:image/... URI or a same-origin path", "logo must not be an external URL")
	}
}

func (v *validator) providers() {
	for _, name := range sortedKeys(v.cfg.Providers) {
		p := v.cfg.Providers[name]
		path := "providers." + name
		if !validName(name) {
			v.add(path, "use letters, digits, '-' and '_'", "invalid provider name %q", name)
		}
		if v2, ok := p.Settings().(interface{ Validate() []FieldError }); ok {
			for _, fe := range v2.Validate() {
				// Keys are paths relative to the provider (mail.smtp.host,
				// profile[0].id): joined as such, so they are positioned.
				v.add(path+"."+fe.Key, fe.Hint, "%s", fe.Msg)
			}
		}
		if p.Static != nil {
			subs := map[string]bool{}
			if len(p.Static.Users) == 0 {
				v.add(path+".users", "", "a static provider needs at least one user")
			}
			for i, u := range p.Static.Users {
				up := fmt.Sprintf("%s.users[%d]", path, i)
				if u.Subject == "" {
					v.add(up+".sub", "", "user has no sub")
				} else if subs[u.Subject] {
					v.add(up+".sub", "", "duplicate sub %q", u.Subject)
				}
				subs[u.Subject] = true
			}
		}
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

func (v *validator) audiences() {
	providers := sortedKeys(v.cfg.Providers)
	for _, name := range sortedKeys(v.cfg.Audiences) {
		path := "audiences." + name
		if !contains(audienceKinds, name) {
			v.add(path, didYouMean(name, audienceKinds), "unknown audience %q", name)
			continue
		}
		a := v.cfg.Audiences[name]
		if name == "public" && len(a.Providers) > 0 {
			v.add(path+".providers", "the public audience is anonymous", "public takes no providers")
		}
		for i, p := range a.Providers {
			pp := fmt.Sprintf("%s.providers[%d]", path, i)
			pc, ok := v.cfg.Providers[p]
			if !ok {
				v.add(pp, didYouMean(p, providers), "unknown provider %q", p)
				continue
			}
			bearer := bearerTypes[pc.Type]
			switch {
			case name == "api" && !bearer && pc.Type != "":
				v.add(pp, "the api audience takes bearer-token providers: type jwt or introspection", "provider %q (type %s) cannot check API tokens", p, pc.Type)
			case name != "api" && bearer:
				v.add(pp, "bearer-token providers only serve the api audience", "provider %q (type %s) has no browser sign-in", p, pc.Type)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (v *validator) roles() {
	names := sortedKeys(v.cfg.Roles)
	for _, name := range names {
		r := v.cfg.Roles[name]
		path := "roles." + name
		if !validName(name) {
			v.add(path, "use letters, digits, '-' and '_'", "invalid role name %q", name)
		}
		for i, in := range r.Inherits {
			if _, ok := v.cfg.Roles[in]; !ok {
				v.add(fmt.Sprintf("%s.inherits[%d]", path, i), didYouMean(in, names), "unknown role %q", in)
			}
		}
		for i, d := range r.EmailDomains {
			if !validHostPattern(strings.ToLower(d), false) || strings.HasPrefix(d, "*.") {
				v.add(fmt.Sprintf("%s.email_domains[%d]", path, i), "e.g. corp.example", "invalid email domain %q", d)
			}
		}
	}
}

func (v *validator) routes() {
	roles := sortedKeys(v.cfg.Roles)
	names := map[string]int{}
	for i, r := range v.cfg.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "":
			v.add(path+".name", "every route needs a unique name", "route has no name")
		case !validName(r.Name):
			v.add(path+".name", "use letters, digits, '-' and '_'", "invalid route name %q", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				v.add(path+".name", fmt.Sprintf("routes[%d] has it already", j), "duplicate route name %q", r.Name)
			}
			names[r.Name] = i
		}
		if len(r.Audience) == 0 {
			v.add(path+".audience", "one or more of: "+strings.Join(audienceKinds, ", "), "route has no audience")
		}
		for j, a := range r.Audience {
			ap := fmt.Sprintf("%s.audience", path)
			if len(r.Audience) > 1 {
				ap = fmt.Sprintf("%s[%d]", ap, j)
			}
			if !contains(audienceKinds, a) {
				v.add(ap, didYouMean(a, audienceKinds), "unknown audience %q", a)
				continue
			}
			if a != "public" && len(v.cfg.Audiences[a].Providers) == 0 {
				v.add(ap, fmt.Sprintf("add audiences.%s.providers", a), "audience %q has no providers to sign in with", a)
			}
		}
		for j, h := range r.Match.Host {
			hp := path + ".match.host"
			if len(r.Match.Host) > 1 {
				hp = fmt.Sprintf("%s[%d]", hp, j)
			}
			if !validHostPattern(h, false) {
				v.add(hp, "lower-case, no port: app.example.com or *.example.com", "invalid host %q", h)
			}
		}
		v.pathMatch(path+".match", r.Match.Path, r.Match.PathType, r.Match.Methods)
		if r.Upstream == "" {
			v.add(path+".upstream", "e.g. http://127.0.0.1:3000", "route has no upstream")
		} else if u, err := url.Parse(r.Upstream); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			v.add(path+".upstream", "an http:// or https:// URL without user info, query or fragment", "invalid upstream %q", r.Upstream)
		}
		v.rule(path+".allow", r.Allow, roles)
		v.rule(path+".deny", r.Deny, roles)
		v.require(path+".require", r.Require)
		for j, sr := range r.Rules {
			sp := fmt.Sprintf("%s.rules[%d]", path, j)
			if sr.Path == "" {
				v.add(sp+".path", "", "a nested rule needs a path")
			} else {
				v.pathMatch(sp, sr.Path, sr.PathType, sr.Methods)
			}
			if sr.Allow == nil && sr.Deny == nil && sr.Require == nil {
				v.add(sp, "give allow, deny or require", "nested rule does nothing")
			}
			v.rule(sp+".allow", sr.Allow, roles)
			v.rule(sp+".deny", sr.Deny, roles)
			v.require(sp+".require", sr.Require)
		}
		if f := r.Forward; f != nil {
			fp := path + ".forward"
			for key, h := range map[string]string{"user": f.User, "email": f.Email, "name": f.Name, "groups": f.Groups, "roles": f.Roles} {
				if h != "" && !ValidHeaderName(h) {
					v.add(fp+"."+key, "", "invalid header name %q", h)
				}
			}
			v.enum(fp+".user_claim", f.UserClaim, "sub", "email", "name")
			if f.AccessToken != "" {
				browser := false
				for _, a := range r.Audience {
					browser = browser || a == "workforce" || a == "customer"
				}
				switch {
				case !ValidHeaderName(f.AccessToken):
					v.add(fp+".access_token", "e.g. Authorization or X-Forwarded-Access-Token", "invalid header name %q", f.AccessToken)
				case !browser:
					v.add(fp+".access_token", "API clients send their own token, which is forwarded as they sent it", "access_token needs a workforce or customer audience")
				}
			}
			for _, h := range sortedKeys(f.Claims) {
				if !ValidHeaderName(h) {
					v.add(fp+".claims."+h, "", "invalid header name %q", h)
				}
			}
		}
	}
}

func (v *validator) pathMatch(path, p, typ string, methods []string) {
	v.enum(path+".path_type", typ, "prefix", "exact", "regex")
	switch {
	case typ == "regex":
		if p == "" {
			v.add(path+".path", "", "a regex match needs a path pattern")
		} else if _, err := regexp.Compile(p); err != nil {
			v.add(path+".path", "Go RE2 syntax; it is anchored and sees the path only, never the query", "invalid regex: %v", err)
		}
	case p != "" && !strings.HasPrefix(p, "/"):
		v.add(path+".path", "paths start with /", "invalid path %q", p)
	}
	for i, m := range methods {
		if !contains(StandardMethods, strings.ToUpper(m)) {
			v.add(fmt.Sprintf("%s.methods[%d]", path, i), didYouMean(strings.ToUpper(m), StandardMethods), "unknown method %q", m)
		}
	}
}

func (v *validator) rule(path string, r *Rule, roles []string) {
	if r == nil {
		return
	}
	for i, role := range r.Roles {
		if _, ok := v.cfg.Roles[role]; !ok {
			v.add(fmt.Sprintf("%s.roles[%d]", path, i), didYouMean(role, roles), "unknown role %q", role)
		}
	}
	for i, d := range r.EmailDomains {
		if !validHostPattern(strings.ToLower(d), false) || strings.HasPrefix(d, "*.") {
			v.add(fmt.Sprintf("%s.email_domains[%d]", path, i), "e.g. corp.example", "invalid email domain %q", d)
		}
	}
	for i, e := range r.Emails {
		if strings.Count(e, "@") != 1 || strings.HasPrefix(e, "@") || strings.HasSuffix(e, "@") {
			v.add(fmt.Sprintf("%s.emails[%d]", path, i), "", "invalid email %q", e)
		}
	}
}

func (v *validator) require(path string, r *Require) {
	if r == nil {
		return
	}
	if r.MaxAuthAge != 0 && r.MaxAuthAge.D() < time.Minute {
		v.add(path+".max_auth_age", "use at least 1m", "max_auth_age %s is too short to be satisfiable", r.MaxAuthAge.D())
	}
	v.requireClaims(path+".claims", r.Claims)
}

// Defaults.
const (
	DefaultListen          = ":8080"
	DefaultPublicURL       = "http://localhost:8080"
	DefaultCookieName      = "gatehouse"
	DefaultAssertionHeader = "X-Gatehouse-Assertion"
)

func applyDefaults(c *Config) {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.PublicURL == "" {
		s.PublicURL = DefaultPublicURL
	}
	s.PublicURL = strings.TrimSuffix(s.PublicURL, "/")
	setDur(&s.Timeouts.ReadHeader, 10*time.Second)
	setDur(&s.Timeouts.Idle, 120*time.Second)
	setDur(&s.Timeouts.Upstream, 30*time.Second)
	setDur(&s.Timeouts.Shutdown, 30*time.Second)
	setStr(&c.Log.Format, "json")
	setStr(&c.Log.Level, "info")
	setStr(&c.Log.User, "hash")
	setStr(&c.Session.Store, "cookie")
	setStr(&c.State.KeyPrefix, "gatehouse:")
	setDur(&c.State.Timeout, 500*time.Millisecond)
	setStr(&c.Session.CookieName, DefaultCookieName)
	setStr(&c.Session.SameSite, "lax")
	setDur(&c.Session.Idle, 30*time.Minute)
	setDur(&c.Session.Lifetime, 12*time.Hour)
	setStr(&c.Assertion.Header, DefaultAssertionHeader)
	setDur(&c.Assertion.TTL, 60*time.Second)
	setStr(&c.Branding.Title, "Gatehouse")
	for i := range c.Routes {
		r := &c.Routes[i]
		setStr(&r.Match.Path, "/")
		setStr(&r.Match.PathType, "prefix")
		if r.Timeout == 0 {
			r.Timeout = s.Timeouts.Upstream
		}
		for j := range r.Rules {
			setStr(&r.Rules[j].PathType, "prefix")
			setStr(&r.Rules[j].Name, r.Rules[j].Path)
		}
		if r.Forward == nil {
			r.Forward = &Forward{User: "X-Gatehouse-User", Email: "X-Gatehouse-Email", Roles: "X-Gatehouse-Roles"}
		}
		setStr(&r.Forward.UserClaim, "sub")
	}
}

func setStr(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDur(p *Duration, def time.Duration) {
	if *p == 0 {
		*p = Duration(def)
	}
}

// redactURL hides the password of a URL in error messages.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
	}
	return raw
}
