// Package session keeps browser sessions for Gatehouse.
//
// A session is a [Payload]: the normalized [identity.Identity] of the person
// who signed in plus the bookkeeping needed to expire it. Each audience has
// its own session and its own cookie, so a customer session never satisfies a
// workforce route: the audience is part of the cookie name, the cookie name is
// covered by the cookie's MAC, and the decoded identity's audience is checked
// again on load.
//
// [CookieStore] keeps the whole payload in the browser, encrypted (AES-256-CTR)
// and authenticated (HMAC-SHA256) with gorilla/securecookie, split across
// several cookies when it is large. Nothing is kept on the server, which has a
// consequence worth knowing: [Store.Clear] removes the browser's copy only. A
// cookie copied before logout stays valid until its idle timeout or absolute
// lifetime runs out. A server-side store implementing [Store] (a later
// change) can revoke sessions outright; the cookie then carries only an
// opaque id.
//
// Transient cookies ([CookieStore.SetTransient]) carry short-lived login
// state (OAuth state and nonce, PKCE verifier, return URL) bound to the
// browser that started the login.
package session

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// Errors returned by [Store.Load], [CookieStore.GetTransient] and related
// functions. Match them with errors.Is; the returned errors may wrap them with
// detail for logs.
var (
	// ErrNoSession means the request carries no session (or transient
	// cookie) of the requested kind. It is the normal case for a visitor
	// who has not signed in.
	ErrNoSession = errors.New("session: no session")
	// ErrExpired means the session existed but its idle timeout or
	// absolute lifetime has run out (or a transient cookie outlived its
	// ttl). The person has to sign in again.
	ErrExpired = errors.New("session: expired")
	// ErrInvalid means a cookie was present but failed authentication or
	// decryption, was truncated, or belongs to another audience. Honest
	// browsers produce it only after a key was dropped from Options.Keys,
	// so it is worth logging.
	ErrInvalid = errors.New("session: invalid")
	// ErrTooLarge means a session or transient value does not fit in the
	// cookies allowed for it (MaxChunks chunks of ChunkSize bytes for a
	// session, one cookie for a transient value). A session usually grows
	// this large because of a very long group list; filter groups in the
	// provider's configuration.
	ErrTooLarge = errors.New("session: too large for cookies")
)

// Payload is what a session holds.
//
// Created and LastSeen survive encoding with one-second precision, and
// Tokens comes back nil when it was empty.
type Payload struct {
	// ID is a random 128-bit identifier (see [NewID]), new at every login so
	// that a session identifier planted before login is never promoted
	// (session fixation). Save fills it in when empty.
	ID string
	// Identity is the signed-in person. Identity.Audience decides which
	// audience's session this is.
	Identity identity.Identity
	// Created is the login time; the absolute lifetime counts from here.
	// Save sets it to the current time when it is zero.
	Created time.Time
	// LastSeen is the time of last activity; the idle timeout counts from
	// here. Save sets it to the current time.
	LastSeen time.Time
	// Tokens holds optional provider tokens (for example refresh tokens)
	// keyed by a name the provider chooses. It may be nil.
	Tokens map[string]string
}

// Store keeps one session per audience for a browser. The proxy talks to
// sessions only through Store; [CookieStore] implements it by keeping
// everything in cookies, and a server-side store can implement it later by
// keeping only an opaque id in the cookie.
//
// Implementations are safe for concurrent use.
type Store interface {
	// Load returns the session of audience aud carried by r.
	//
	// It returns ErrNoSession when there is none, ErrExpired when the idle
	// timeout or absolute lifetime ran out, and ErrInvalid when a cookie
	// fails authentication or decryption or belongs to another audience
	// (log-worthy). p is nil whenever err is not nil. touched is true when
	// the session is old enough that the caller should Save it again to
	// slide the idle window; most requests get touched == false and need
	// no Set-Cookie.
	Load(r *http.Request, aud identity.Audience) (p *Payload, touched bool, err error)
	// Save writes p as the session of audience p.Identity.Audience,
	// setting p.LastSeen to the current time (and p.ID and p.Created when
	// they are empty). r is the request being answered; it is used to find
	// stale cookies that must be removed. Call Save before the response
	// header is written.
	Save(w http.ResponseWriter, r *http.Request, p *Payload) error
	// Clear removes the session of audience aud (logout). It never fails:
	// removing a session that does not exist is not an error.
	Clear(w http.ResponseWriter, r *http.Request, aud identity.Audience)
}

// NewID returns a new random session identifier: 128 bits from crypto/rand,
// encoded as 22 characters of unpadded base64url.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand aborts the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}
