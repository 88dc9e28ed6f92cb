package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// tokenLen is the size in bytes of a server-side session token.
const tokenLen = 32

// maxRefCookie bounds the server-side session cookie accepted by Load. The
// cookies ServerStore writes are about 250 bytes; anything much larger
// (such as a session kept by CookieStore under the same name) is refused
// before decoding.
const maxRefCookie = 512

// ServerStore is a [Store] that keeps sessions in a [state.Sessions]
// backend (Redis, shared by every replica, or memory for one process). The
// browser's cookie carries only a random 256-bit token, so, unlike with
// [CookieStore], [ServerStore.Clear] ends a session everywhere: a copy of
// the cookie taken before logout no longer works.
//
// Cookie names, attributes (Secure, HttpOnly, SameSite, Domain, Path, the
// __Host- prefix), the idle timeout, absolute lifetime, Touch interval,
// clock and keys are those of the CookieStore given to [NewServerStore].
// Transient cookies are not handled here: use the CookieStore for them.
//
// The cookie value is sealed with the store's keys (securecookie, under the
// cookie name): it holds the token, a tag of the payload's ID and the
// session's deadlines. A forged or altered cookie is refused as ErrInvalid
// without asking the backend. The backend key is the hex SHA-256 of the
// token, never the token, so reading the backend yields no usable cookie.
// The record is the payload in the binary session format, encrypted and
// authenticated with the store's keys under a name made of the cookie name
// (hence the audience) and the backend key: the backend holds no readable
// personal data, and a record copied under another key or audience fails
// authentication.
//
// Load reports:
//   - ErrNoSession: no cookie, or the record is gone before its idle or
//     absolute deadline: the session was cleared (logout here or on another
//     device sharing the cookie), or the backend lost its data.
//   - ErrExpired: the idle timeout or absolute lifetime ran out. A record
//     the backend dropped at its TTL is reported so, from the deadlines
//     sealed in the cookie.
//   - ErrInvalid: a cookie that fails authentication or decryption, or
//     whose record does not match it.
//   - an error wrapping [state.ErrUnavailable] when the backend cannot
//     answer. It is neither ErrInvalid nor ErrNoSession: the cookie is fine
//     and must not be cleared because of an outage.
//
// A ServerStore is safe for concurrent use.
type ServerStore struct {
	c       *CookieStore
	backend state.Sessions
	// refs remembers recently verified id cookies by exact value, so a
	// browser's requests within cacheTTL cost one authenticated decode of
	// the cookie, not one each. The record is still read from the backend
	// every time (a cleared session ends at once); its decode is cached
	// the same way, by the exact bytes read (CookieStore's decodeCache).
	refMu sync.Mutex
	refs  map[string]refEntry
}

type refEntry struct {
	rf    ref
	until time.Time
}

var _ Store = (*ServerStore)(nil)

// NewServerStore returns a ServerStore using cookies for cookie names,
// attributes, lifetimes and keys, and backend for the records. It panics
// when either is nil.
func NewServerStore(cookies *CookieStore, backend state.Sessions) *ServerStore {
	if cookies == nil || backend == nil {
		panic("session: NewServerStore needs a CookieStore and a state.Sessions")
	}
	return &ServerStore{c: cookies, backend: backend}
}

// CookieName returns the name of the cookie holding aud's session token
// (see [CookieStore.CookieName]).
func (s *ServerStore) CookieName(aud identity.Audience) string { return s.c.CookieName(aud) }

// serverRef is what the cookie carries, JSON-encoded inside the sealed
// value's envelope (whose Exp is the end of the absolute lifetime, Unix
// seconds).
type serverRef struct {
	// Token is the session token, unpadded base64url.
	Token string `json:"t"`
	// Tag identifies the payload ID the token was issued for (see
	// idTag), so that Save can tell a new sign-in from a refresh.
	Tag string `json:"s"`
	// Idle is the idle deadline when the cookie was written, Unix
	// milliseconds. It only tells an idle-expired record from a deleted
	// one; the record decides whether a session is live.
	Idle int64 `json:"i"`
}

// ref is a decoded, authenticated cookie.
type ref struct {
	token []byte
	tag   string
	end   time.Time // end of the absolute lifetime
	idle  time.Time // idle deadline when the cookie was written
}

// Load implements [Store.Load]; see [ServerStore] for the errors. It uses
// r.Context() for the backend lookup.
func (s *ServerStore) Load(r *http.Request, aud identity.Audience) (*Payload, bool, error) {
	name, ok := s.c.names[aud]
	if !ok {
		return nil, false, fmt.Errorf("session: unknown audience %q", aud)
	}
	ref, err := s.readRef(r, name)
	if err != nil {
		return nil, false, err
	}
	now := s.c.o.Now()
	key := backendKey(ref.token)
	rec, err := s.backend.Get(r.Context(), key)
	if errors.Is(err, state.ErrNotFound) {
		if now.After(ref.idle) {
			return nil, false, fmt.Errorf("%w: idle for more than %v", ErrExpired, s.c.o.Idle)
		}
		return nil, false, fmt.Errorf("%w: session ended (cleared or lost by the backend)", ErrNoSession)
	}
	if err != nil {
		return nil, false, unavailable("load", err)
	}
	rname, rvalue := recordName(name, key), string(rec)
	p, hit := s.c.cache.get(rname, rvalue, now)
	if !hit {
		p = new(Payload)
		if err := securecookie.DecodeMulti(rname, rvalue, p, s.c.dec...); err != nil {
			return nil, false, fmt.Errorf("session record: %w", decodeError(err))
		}
		s.c.cache.put(rname, rvalue, p, now)
	}
	if p.Identity.Audience != aud {
		return nil, false, fmt.Errorf("%w: record of audience %q presented as %q", ErrInvalid, p.Identity.Audience, aud)
	}
	if p.ID == "" || idTag(p.ID) != ref.tag {
		return nil, false, fmt.Errorf("%w: record does not match its cookie", ErrInvalid)
	}
	if now.Sub(p.Created) > s.c.o.Lifetime {
		return nil, false, fmt.Errorf("%w: lifetime %v exceeded", ErrExpired, s.c.o.Lifetime)
	}
	if now.Sub(p.LastSeen) > s.c.o.Idle {
		return nil, false, fmt.Errorf("%w: idle for more than %v", ErrExpired, s.c.o.Idle)
	}
	return p, now.Sub(p.LastSeen) >= s.c.o.Touch, nil
}

// Save implements [Store.Save]. It stores p for the shorter of the idle
// timeout and the remaining lifetime, then sets the cookie. The token in
// r's cookie is kept when it was issued for the same payload ID; otherwise
// (a new sign-in) a new token is drawn, so a token planted in the browser
// before sign-in is never promoted, and the record of the browser's
// previous session is deleted. Save fails with ErrExpired when p's
// lifetime has run out, ErrTooLarge when the record would exceed
// MaxChunks*ChunkSize bytes, and an error wrapping state.ErrUnavailable
// when the backend fails; no cookie is written then.
func (s *ServerStore) Save(w http.ResponseWriter, r *http.Request, p *Payload) error {
	if p == nil {
		return errors.New("session: Save of nil payload")
	}
	name, ok := s.c.names[p.Identity.Audience]
	if !ok {
		return fmt.Errorf("session: payload has unknown audience %q", p.Identity.Audience)
	}
	now := s.c.o.Now()
	if p.ID == "" {
		p.ID = NewID()
	}
	if p.Created.IsZero() {
		p.Created = now
	}
	// Records keep whole seconds; count from what Load will see.
	created := time.Unix(p.Created.Unix(), 0)
	end := created.Add(s.c.o.Lifetime)
	remaining := end.Sub(now)
	if remaining <= 0 {
		return fmt.Errorf("%w: lifetime ended at %v", ErrExpired, end)
	}
	p.LastSeen = now

	tag := idTag(p.ID)
	var token, previous []byte
	switch old, err := s.readRef(r, name); {
	case err == nil && old.tag == tag:
		token = old.token // the same session: keep its token
	case old != nil:
		previous = old.token // another session of this browser (or expired)
	}
	if token == nil {
		token = make([]byte, tokenLen)
		rand.Read(token) // never fails (crypto/rand aborts the program instead)
	}
	key := backendKey(token)
	rec, err := s.c.enc.Encode(recordName(name, key), p)
	if err != nil {
		return fmt.Errorf("session: encode: %w", err)
	}
	if len(rec) > maxEncoded {
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTooLarge, len(rec), maxEncoded)
	}
	ctx := requestContext(r)
	if err := s.backend.Set(ctx, key, []byte(rec), min(s.c.o.Idle, remaining)); err != nil {
		return unavailable("save", err)
	}
	if previous != nil {
		// Best effort: that session is over for this browser either way.
		_ = s.backend.Delete(context.WithoutCancel(ctx), backendKey(previous))
	}

	idle := time.Unix(now.Unix(), 0).Add(s.c.o.Idle)
	value, err := json.Marshal(serverRef{
		Token: base64.RawURLEncoding.EncodeToString(token),
		Tag:   tag,
		Idle:  idle.UnixMilli(),
	})
	if err != nil {
		return fmt.Errorf("session: encode cookie: %w", err)
	}
	exp := end.Unix()
	if end.Nanosecond() != 0 {
		exp++
	}
	env := &transientEnvelope{Exp: exp, Value: value}
	encoded, err := s.c.enc.Encode(name, env)
	if err != nil {
		return fmt.Errorf("session: encode cookie: %w", err)
	}
	opts := s.c.options(min(s.c.ageSecs, ceilSeconds(remaining)), s.c.sameSite)
	http.SetCookie(w, sessions.NewCookie(name, encoded, opts))
	// Drop chunks left by a session CookieStore kept under the same name.
	s.c.expire(w, name, 1, presentChunks(r, name))
	return nil
}

// Clear implements [Store.Clear]: it deletes the record named by r's cookie
// and expires the cookie. A backend failure is ignored (the record then
// lives until its TTL); use [ServerStore.Delete] to learn about it.
func (s *ServerStore) Clear(w http.ResponseWriter, r *http.Request, aud identity.Audience) {
	_ = s.Delete(w, r, aud)
}

// Delete is Clear that reports a failure to delete the record, as an error
// wrapping state.ErrUnavailable. The cookie is expired in every case. The
// deletion is not cancelled when the client goes away (it is still bounded
// by the backend's own timeout).
func (s *ServerStore) Delete(w http.ResponseWriter, r *http.Request, aud identity.Audience) error {
	name, ok := s.c.names[aud]
	if !ok {
		return nil
	}
	var err error
	// An expired cookie still names a record worth deleting.
	if ref, _ := s.readRef(r, name); ref != nil {
		if derr := s.backend.Delete(context.WithoutCancel(requestContext(r)), backendKey(ref.token)); derr != nil {
			err = unavailable("clear", derr)
		}
	}
	s.c.expire(w, name, 0, presentChunks(r, name))
	return err
}

// readRef decodes and authenticates the cookie called name. It returns
// ErrNoSession without a cookie and ErrInvalid for a bad one. A cookie
// past its absolute lifetime comes back with ErrExpired, together with the
// ref (so that its record can still be deleted): a non-nil ref is always
// authenticated.
func (s *ServerStore) readRef(r *http.Request, name string) (*ref, error) {
	if r == nil {
		return nil, ErrNoSession
	}
	value := cookieValue(r.Header, name)
	if value == "" {
		return nil, ErrNoSession
	}
	if len(value) > maxRefCookie {
		return nil, fmt.Errorf("%w: oversized session cookie", ErrInvalid)
	}
	now := s.c.o.Now()
	ck := name + "\x00" + value
	s.refMu.Lock()
	e, ok := s.refs[ck]
	s.refMu.Unlock()
	if ok && now.Before(e.until) {
		rf := e.rf
		if now.After(rf.end) {
			return &rf, fmt.Errorf("%w: lifetime %v exceeded", ErrExpired, s.c.o.Lifetime)
		}
		return &rf, nil
	}
	var env transientEnvelope
	if err := securecookie.DecodeMulti(name, value, &env, s.c.dec...); err != nil {
		return nil, decodeError(err)
	}
	var sr serverRef
	if err := json.Unmarshal(env.Value, &sr); err != nil {
		return nil, fmt.Errorf("%w: session cookie: %v", ErrInvalid, err)
	}
	token, err := base64.RawURLEncoding.DecodeString(sr.Token)
	if err != nil || len(token) != tokenLen || sr.Tag == "" {
		return nil, fmt.Errorf("%w: malformed session cookie", ErrInvalid)
	}
	rf := &ref{token: token, tag: sr.Tag, end: time.Unix(env.Exp, 0), idle: time.UnixMilli(sr.Idle)}
	s.refMu.Lock()
	if s.refs == nil || len(s.refs) >= cacheShards*cacheShardLimit {
		s.refs = map[string]refEntry{}
	}
	s.refs[ck] = refEntry{rf: *rf, until: now.Add(cacheTTL)}
	s.refMu.Unlock()
	if now.After(rf.end) {
		return rf, fmt.Errorf("%w: lifetime %v exceeded", ErrExpired, s.c.o.Lifetime)
	}
	return rf, nil
}

// backendKey is the backend's key for a token: its hex SHA-256.
func backendKey(token []byte) string {
	sum := sha256.Sum256(token)
	return hex.EncodeToString(sum[:])
}

// recordName is the securecookie name a record is sealed under, binding it
// to the cookie name (which names the audience) and to its backend key.
func recordName(cookieName, key string) string {
	return cookieName + "#record#" + key
}

// idTag identifies a payload ID in the cookie without carrying the ID.
func idTag(id string) string {
	sum := sha256.Sum256([]byte("gatehouse session id\x00" + id))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// unavailable wraps a backend error so that it matches state.ErrUnavailable.
func unavailable(op string, err error) error {
	if errors.Is(err, state.ErrUnavailable) {
		return fmt.Errorf("session: %s: %w", op, err)
	}
	return fmt.Errorf("session: %s: %w: %w", op, state.ErrUnavailable, err)
}

func requestContext(r *http.Request) context.Context {
	if r == nil {
		return context.Background()
	}
	return r.Context()
}
