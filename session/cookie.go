package session

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// Cookie size limits. Browsers keep at least 4096 bytes per cookie (name,
// value and attributes together), so chunks stay well below that.
const (
	// ChunkSize is the largest cookie value CookieStore writes. A session
	// whose encoded form is longer is split across several cookies.
	ChunkSize = 3800
	// MaxChunks is the largest number of cookies one session may use:
	// "<cookie>", "<cookie>.1", ... "<cookie>.7". Saving a larger session
	// fails with ErrTooLarge. Note that proxies in front of Gatehouse may
	// limit the size of the Cookie request header below MaxChunks*ChunkSize.
	MaxChunks = 8
)

// Defaults applied by NewCookieStore to zero Options fields.
const (
	// DefaultName is the default cookie base name.
	DefaultName = "gatehouse"
	// DefaultIdle is the default idle timeout (capped at Lifetime).
	DefaultIdle = 30 * time.Minute
	// DefaultLifetime is the default absolute lifetime.
	DefaultLifetime = 12 * time.Hour
	// DefaultTouch is the default re-issue interval (capped at Idle/2).
	DefaultTouch = time.Minute
)

// maxEncoded bounds the encoded session (all chunks, without the chunk-count
// prefix of the first one).
const maxEncoded = MaxChunks * ChunkSize

// Options configures a CookieStore. Zero fields take the documented defaults.
type Options struct {
	// Name is the cookie base name, default "gatehouse". It may contain
	// ASCII letters, digits, '-' and '_'.
	Name string
	// Keys are the secrets, each at least MinKeyLen (32) bytes. The first
	// encrypts and authenticates new cookies; all of them are tried when
	// decoding, so a new key is rotated in by putting it first and the old
	// one is dropped once every cookie written with it has expired
	// (Lifetime). Each secret is expanded with HKDF-SHA256 into separate
	// HMAC and AES-256 keys.
	Keys [][]byte
	// Secure sets the Secure attribute. Policy turns it on by default; it
	// is required for SameSite=None and for the __Host- name prefix.
	Secure bool
	// SameSite is the SameSite attribute of session cookies, default Lax
	// (http.SameSiteDefaultMode also means Lax). None requires Secure.
	SameSite http.SameSite
	// Domain is the Domain attribute. Empty (the default) gives a
	// host-only cookie, which together with Secure and Path "/" earns the
	// __Host- prefix and cannot be overwritten from sibling subdomains.
	Domain string
	// Path is the Path attribute, default "/".
	Path string
	// Idle is the idle timeout, default 30m (or Lifetime if shorter): a
	// session unused for longer is expired. It must not exceed Lifetime.
	Idle time.Duration
	// Lifetime is the absolute lifetime counted from login, default 12h.
	// Session cookies get the remaining lifetime as Max-Age (Lifetime at
	// login), so browsers drop them when it ends; securecookie's codecs get
	// it as MaxAge.
	Lifetime time.Duration
	// Touch is how often, at most, a session is re-issued to slide
	// LastSeen, default 1m (or Idle/2 if shorter); it must be shorter than
	// Idle. Requests within Touch of the last write produce no Set-Cookie.
	Touch time.Duration
	// Now returns the current time, default time.Now. Tests inject a clock
	// here. (securecookie's own timestamp, checked only as a backstop
	// against Lifetime, always uses the real clock.)
	Now func() time.Time
}

// CookieStore is a [Store] that keeps sessions entirely in encrypted,
// authenticated cookies, one session (of up to MaxChunks cookies) per
// audience. It also issues transient cookies for login attempts. Its
// gorilla/sessions face is [CookieStore.Gorilla]. A CookieStore is safe for
// concurrent use.
//
// A session is encoded (a compact binary form, not gob), then encrypted and
// authenticated by securecookie under the audience's cookie name. When the
// result fits in ChunkSize bytes it is the value of the one cookie
// [CookieStore.CookieName]. Otherwise it is cut into n parts: the first
// cookie holds "<n>.<part 0>" and cookies "<name>.1" … "<name>.<n-1>" hold
// the rest. The count lets Load ignore stale chunks left by a larger
// session; the MAC over the whole value detects missing, reordered or
// altered chunks.
type CookieStore struct {
	o        Options
	enc      securecookie.Codec   // first key, no length limit
	dec      []securecookie.Codec // all keys, decode limit maxEncoded
	names    map[identity.Audience]string
	byName   map[string]identity.Audience
	cache    *decodeCache
	gorilla  GorillaStore
	ageSecs  int // Lifetime in whole seconds, rounded up
	sameSite http.SameSite
}

var (
	_ Store          = (*CookieStore)(nil)
	_ sessions.Store = (*GorillaStore)(nil)
)

// NewCookieStore validates o, fills in defaults and returns a CookieStore.
// It fails when there are no keys, a key is shorter than MinKeyLen, the name,
// domain or path is not usable in a cookie, a duration is negative, Touch is
// not shorter than Idle, Idle exceeds Lifetime, or SameSite is None without
// Secure.
func NewCookieStore(o Options) (*CookieStore, error) {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if !validName(o.Name) {
		return nil, fmt.Errorf("session: cookie name %q: use ASCII letters, digits, '-' and '_'", o.Name)
	}
	if strings.HasPrefix(o.Name, "__") {
		return nil, fmt.Errorf("session: cookie name %q must not start with \"__\" (prefixes are added automatically)", o.Name)
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.SameSite == 0 || o.SameSite == http.SameSiteDefaultMode {
		o.SameSite = http.SameSiteLaxMode
	}
	switch o.SameSite {
	case http.SameSiteLaxMode, http.SameSiteStrictMode:
	case http.SameSiteNoneMode:
		if !o.Secure {
			return nil, errors.New("session: SameSite=None requires Secure")
		}
	default:
		return nil, fmt.Errorf("session: unknown SameSite value %d", o.SameSite)
	}
	if o.Idle < 0 || o.Lifetime < 0 || o.Touch < 0 {
		return nil, errors.New("session: Idle, Lifetime and Touch must not be negative")
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Idle == 0 {
		o.Idle = min(DefaultIdle, o.Lifetime)
	}
	if o.Touch == 0 {
		o.Touch = min(DefaultTouch, o.Idle/2)
	}
	if o.Touch >= o.Idle {
		return nil, fmt.Errorf("session: Touch (%v) must be shorter than Idle (%v)", o.Touch, o.Idle)
	}
	if o.Idle > o.Lifetime {
		return nil, fmt.Errorf("session: Idle (%v) must not exceed Lifetime (%v)", o.Idle, o.Lifetime)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	pairs, err := deriveKeys(o.Keys)
	if err != nil {
		return nil, err
	}
	o.Keys = nil // only the derived keys are kept

	s := &CookieStore{
		o:        o,
		names:    make(map[identity.Audience]string, len(identity.Audiences)),
		byName:   make(map[string]identity.Audience, len(identity.Audiences)),
		ageSecs:  ceilSeconds(o.Lifetime),
		cache:    newDecodeCache(),
		sameSite: o.SameSite,
	}
	s.gorilla.s = s
	s.enc, s.dec = newCodecs(pairs, o.Lifetime, maxEncoded)
	for _, aud := range identity.Audiences {
		n := s.cookieName(string(aud))
		s.names[aud] = n
		s.byName[n] = aud
	}
	// Domain and Path are checked the way net/http will check them when
	// writing: an invalid attribute would otherwise be dropped silently.
	probe := &http.Cookie{Name: s.names[identity.Workforce], Value: "x", Path: o.Path, Domain: o.Domain}
	if err := probe.Valid(); err != nil {
		return nil, fmt.Errorf("session: cookie attributes: %w", err)
	}
	return s, nil
}

// CookieName returns the name of the (first) cookie holding aud's session:
// "__Host-<name>-<aud>" when the cookies are Secure, host-only (no Domain) and
// scoped to Path "/", else "<name>-<aud>". Further chunks append ".1", ".2", …
func (s *CookieStore) CookieName(aud identity.Audience) string {
	if n, ok := s.names[aud]; ok {
		return n
	}
	return s.cookieName(string(aud))
}

// cookieName applies the naming rule to a suffix.
func (s *CookieStore) cookieName(suffix string) string {
	if s.o.Secure && s.o.Domain == "" && s.o.Path == "/" {
		return "__Host-" + s.o.Name + "-" + suffix
	}
	return s.o.Name + "-" + suffix
}

// Load implements [Store.Load]. It shares its decoding with
// [GorillaStore.New] but skips building a sessions.Session, which would add
// four allocations to every proxied request for nothing.
func (s *CookieStore) Load(r *http.Request, aud identity.Audience) (*Payload, bool, error) {
	name, ok := s.names[aud]
	if !ok {
		return nil, false, fmt.Errorf("session: unknown audience %q", aud)
	}
	p, err := s.read(r, name, aud)
	if err != nil {
		return nil, false, err
	}
	return p, s.o.Now().Sub(p.LastSeen) >= s.o.Touch, nil
}

// Save implements [Store.Save] on top of [GorillaStore.Save]. It fails with
// ErrTooLarge when the session needs more than MaxChunks cookies and with
// ErrExpired when p's absolute lifetime has already run out; no cookie is
// written in either case.
func (s *CookieStore) Save(w http.ResponseWriter, r *http.Request, p *Payload) error {
	if p == nil {
		return errors.New("session: Save of nil payload")
	}
	name, ok := s.names[p.Identity.Audience]
	if !ok {
		return fmt.Errorf("session: payload has unknown audience %q", p.Identity.Audience)
	}
	sess := sessions.NewSession(&s.gorilla, name)
	sess.Values[PayloadKey] = p
	sess.ID = p.ID
	*sess.Options = *s.options(s.ageSecs, s.sameSite)
	return s.gorilla.Save(r, w, sess)
}

// Clear implements [Store.Clear] on top of [GorillaStore.Save] with a
// negative MaxAge: it expires the session's first cookie and every further
// chunk present in r, with the same attributes they were written with so
// that browsers match and delete them.
func (s *CookieStore) Clear(w http.ResponseWriter, r *http.Request, aud identity.Audience) {
	name, ok := s.names[aud]
	if !ok {
		return
	}
	sess := sessions.NewSession(&s.gorilla, name)
	*sess.Options = *s.options(-1, s.sameSite)
	_ = s.gorilla.Save(r, w, sess) // deleting never fails
}

// Gorilla returns the store's gorilla/sessions face.
func (s *CookieStore) Gorilla() *GorillaStore { return &s.gorilla }

// options returns cookie attributes with every field set explicitly.
func (s *CookieStore) options(maxAge int, sameSite http.SameSite) *sessions.Options {
	return &sessions.Options{
		Path:        s.o.Path,
		Domain:      s.o.Domain,
		MaxAge:      maxAge,
		Secure:      s.o.Secure,
		HttpOnly:    true,
		Partitioned: false,
		SameSite:    sameSite,
	}
}

// GorillaStore is the gorilla/sessions view of a [CookieStore]: it
// implements sessions.Store over the same keys, cookie names, attributes and
// chunking. Session names are cookie names as returned by
// [CookieStore.CookieName]; Values holds exactly one entry, PayloadKey, whose
// value is a *Payload. Obtain one with [CookieStore.Gorilla].
type GorillaStore struct {
	s *CookieStore
}

// Get returns the session named name decoded from r. Unlike gorilla's own
// stores it does not cache sessions in the per-request registry: it decodes
// the cookies on every call, exactly like New.
func (g *GorillaStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return g.New(r, name)
}

// New returns the session named name decoded from r. It never returns a nil
// session. When r carries no such session the session is empty, IsNew is
// true and the error is nil. When the cookies are present but expired or
// invalid, the session is empty and the error wraps ErrExpired or
// ErrInvalid. Otherwise Values[PayloadKey] is the *Payload, ID is its ID and
// Options are the attributes Save will use.
func (g *GorillaStore) New(r *http.Request, name string) (*sessions.Session, error) {
	s := g.s
	sess := sessions.NewSession(g, name)
	sess.IsNew = true
	aud, ok := s.byName[name]
	if !ok {
		return sess, fmt.Errorf("session: %q is not a session cookie name of this store", name)
	}
	*sess.Options = *s.options(s.ageSecs, s.sameSite)
	p, err := s.read(r, name, aud)
	if err != nil {
		if err == ErrNoSession {
			return sess, nil
		}
		return sess, err
	}
	sess.Values[PayloadKey] = p
	sess.ID = p.ID
	sess.IsNew = false
	return sess, nil
}

// Save writes sess to w. When sess.Options.MaxAge is negative (gorilla's
// convention for deletion) it expires the session's cookies instead. Other
// fields of sess.Options are ignored: every cookie carries the store's
// configured attributes, HttpOnly always set, and Max-Age equal to the
// remaining absolute lifetime (Lifetime at login). Save sets the payload's
// LastSeen to the current time, fills in an empty ID or zero Created, and
// expires chunks present in r that the new value no longer needs. It fails
// with ErrTooLarge or ErrExpired as [CookieStore.Save] does.
func (g *GorillaStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	s := g.s
	name := sess.Name()
	aud, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("session: %q is not a session cookie name of this store", name)
	}
	present := presentChunks(r, name)
	if sess.Options != nil && sess.Options.MaxAge < 0 {
		s.expire(w, name, 0, present)
		return nil
	}
	p, _ := sess.Values[PayloadKey].(*Payload)
	if p == nil || len(sess.Values) != 1 {
		return errors.New("session: Values must hold exactly one *Payload under PayloadKey")
	}
	if p.Identity.Audience != aud {
		return fmt.Errorf("session: payload of audience %q saved as %q", p.Identity.Audience, aud)
	}
	now := s.o.Now()
	if p.ID == "" {
		p.ID = NewID()
	}
	if p.Created.IsZero() {
		p.Created = now
	}
	// Cookies store whole seconds; count the remaining lifetime from the
	// value Load will see so that browser and server agree.
	remaining := time.Unix(p.Created.Unix(), 0).Add(s.o.Lifetime).Sub(now)
	if remaining <= 0 {
		return fmt.Errorf("%w: lifetime ended at %v", ErrExpired, p.Created.Add(s.o.Lifetime))
	}
	p.LastSeen = now
	sess.ID = p.ID

	encoded, err := s.enc.Encode(name, p)
	if err != nil {
		return fmt.Errorf("session: encode: %w", err)
	}
	if len(encoded) > maxEncoded {
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTooLarge, len(encoded), maxEncoded)
	}
	n := (len(encoded) + ChunkSize - 1) / ChunkSize
	opts := s.options(min(s.ageSecs, ceilSeconds(remaining)), s.sameSite)
	for i := range n {
		part := encoded[i*ChunkSize : min((i+1)*ChunkSize, len(encoded))]
		if i == 0 && n > 1 {
			// The first chunk says how many there are, so that stale
			// chunks left behind by a larger session are ignored.
			part = strconv.Itoa(n) + "." + part
		}
		http.SetCookie(w, sessions.NewCookie(chunkName(name, i), part, opts))
	}
	s.expire(w, name, n, present)
	return nil
}

// read decodes the session cookie(s) called name from r and checks the
// payload's audience, idle timeout and lifetime.
func (s *CookieStore) read(r *http.Request, name string, aud identity.Audience) (*Payload, error) {
	value := cookieValue(r.Header, name)
	if value == "" {
		return nil, ErrNoSession
	}
	if dot := strings.IndexByte(value, '.'); dot >= 0 {
		// Chunked: "<n>.<first part>", then "<name>.1" … "<name>.<n-1>".
		n, err := strconv.Atoi(value[:dot])
		if err != nil || n < 2 || n > MaxChunks || len(value)-dot-1 > ChunkSize {
			return nil, fmt.Errorf("%w: malformed chunk header", ErrInvalid)
		}
		var parts [MaxChunks]string
		parts[0] = value[dot+1:]
		size := len(parts[0])
		for i := 1; i < n; i++ {
			v := cookieValue(r.Header, chunkName(name, i))
			if v == "" || len(v) > ChunkSize {
				return nil, fmt.Errorf("%w: chunk %d of %d missing or oversized", ErrInvalid, i, n)
			}
			parts[i] = v
			size += len(v)
		}
		var b strings.Builder
		b.Grow(size)
		for _, part := range parts[:n] {
			b.WriteString(part)
		}
		value = b.String()
	} else if len(value) > ChunkSize {
		return nil, fmt.Errorf("%w: oversized cookie", ErrInvalid)
	}

	now := s.o.Now()
	p, hit := s.cache.get(name, value, now)
	if !hit {
		p = new(Payload)
		if err := securecookie.DecodeMulti(name, value, p, s.dec...); err != nil {
			return nil, decodeError(err)
		}
	}
	// The MAC covers the cookie name, which names the audience; checking
	// the payload as well keeps that binding if names ever change.
	if p.Identity.Audience != aud {
		return nil, fmt.Errorf("%w: session of audience %q presented as %q", ErrInvalid, p.Identity.Audience, aud)
	}
	if p.ID == "" {
		return nil, fmt.Errorf("%w: session without id", ErrInvalid)
	}
	if !hit {
		s.cache.put(name, value, p, now)
	}
	if now.Sub(p.Created) > s.o.Lifetime {
		return nil, fmt.Errorf("%w: lifetime %v exceeded", ErrExpired, s.o.Lifetime)
	}
	if now.Sub(p.LastSeen) > s.o.Idle {
		return nil, fmt.Errorf("%w: idle for more than %v", ErrExpired, s.o.Idle)
	}
	return p, nil
}

// cookieValue returns the value of the first cookie called name in the
// Cookie header lines of h, without surrounding double quotes, or "" when
// there is none. It splits the header the way net/http does but neither
// allocates nor validates the value's bytes: every value it returns is
// authenticated by its MAC before use, and Load runs on every request.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(strings.Trim(part, " \t"), "=")
			if !ok || strings.Trim(k, " \t") != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// expire writes deletion cookies for the first cookie (when from == 0) and
// for every chunk i >= max(from, 1) present in the request.
func (s *CookieStore) expire(w http.ResponseWriter, name string, from int, present uint16) {
	opts := s.options(-1, s.sameSite)
	for i := from; i < MaxChunks; i++ {
		if i == 0 || present&(1<<i) != 0 {
			http.SetCookie(w, sessions.NewCookie(chunkName(name, i), "", opts))
		}
	}
}

// presentChunks returns a bit set of the chunks of name present in r: bit 0
// for name itself, bit i for "<name>.<i>".
func presentChunks(r *http.Request, name string) uint16 {
	var set uint16
	if r == nil {
		return 0
	}
	for _, c := range r.Cookies() {
		rest, ok := strings.CutPrefix(c.Name, name)
		if !ok {
			continue
		}
		if rest == "" {
			set |= 1
			continue
		}
		if len(rest) == 2 && rest[0] == '.' && rest[1] >= '1' && rest[1] < '0'+MaxChunks {
			set |= 1 << (rest[1] - '0')
		}
	}
	return set
}

// chunkName returns the name of chunk i of cookie name.
func chunkName(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "." + strconv.Itoa(i)
}

// validName reports whether n is a non-empty run of ASCII letters, digits,
// '-' and '_' (a safe subset of the cookie-name token).
func validName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
