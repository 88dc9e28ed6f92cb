package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// maxTransientName bounds transient cookie names.
const maxTransientName = 64

// TransientOption adjusts one transient cookie operation.
type TransientOption func(*transientConfig)

type transientConfig struct {
	sameSite http.SameSite
}

// WithSameSite sets the SameSite attribute of a transient cookie instead of
// the default Lax. Use http.SameSiteNoneMode for login state that must come
// back on a cross-site POST, such as a SAML HTTP-POST binding response: with
// Lax the browser would not send the cookie on that POST. None is accepted
// only when the store's cookies are Secure (browsers reject it otherwise).
// Pass the same option to [CookieStore.ClearTransient].
func WithSameSite(ss http.SameSite) TransientOption {
	return func(c *transientConfig) { c.sameSite = ss }
}

// TransientCookieName returns the cookie name of the transient value name:
// "__Host-<base>-t-<name>" under the same conditions as
// [CookieStore.CookieName], else "<base>-t-<name>".
func (s *CookieStore) TransientCookieName(name string) string {
	return s.cookieName("t-" + name)
}

// SetTransient stores v, JSON-encoded, encrypted and authenticated with the
// store's keys, in its own cookie named after name (see
// [CookieStore.TransientCookieName]), valid for ttl. It is meant for login
// attempts: OAuth state and nonce, PKCE verifier, the URL to return to. The
// value is bound to the browser that receives the cookie and to name (the
// cookie name is covered by the MAC), and expires after ttl both in the
// browser (Max-Age) and on decode (an expiry inside the encrypted value).
//
// The cookie is SameSite=Lax by default, which is sent on top-level
// cross-site GET navigations (an OIDC redirect back from the IdP) but not on
// cross-site POSTs: a SAML HTTP-POST binding callback, or OIDC
// response_mode=form_post, needs WithSameSite(http.SameSiteNoneMode), which
// requires Secure.
//
// name may contain ASCII letters, digits, '-' and '_' (at most 64). ttl must
// be positive and at most the store's Lifetime. The encoded value must fit in
// one cookie of ChunkSize bytes, else SetTransient fails with ErrTooLarge.
func (s *CookieStore) SetTransient(w http.ResponseWriter, name string, v any, ttl time.Duration, opts ...TransientOption) error {
	cfg, err := s.transientConfig(name, opts)
	if err != nil {
		return err
	}
	if ttl <= 0 || ttl > s.o.Lifetime {
		return fmt.Errorf("session: transient ttl %v must be in (0, %v]", ttl, s.o.Lifetime)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("session: transient %q: %w", name, err)
	}
	env := &transientEnvelope{Exp: s.o.Now().Add(ttl).Unix(), Value: raw}
	cookieName := s.TransientCookieName(name)
	encoded, err := s.enc.Encode(cookieName, env)
	if err != nil {
		return fmt.Errorf("session: transient %q: %w", name, err)
	}
	if len(encoded) > ChunkSize {
		return fmt.Errorf("%w: transient %q is %d bytes encoded, limit %d", ErrTooLarge, name, len(encoded), ChunkSize)
	}
	http.SetCookie(w, sessions.NewCookie(cookieName, encoded, s.options(ceilSeconds(ttl), cfg.sameSite)))
	return nil
}

// GetTransient decodes the transient value name from r into v (as
// json.Unmarshal would). It returns ErrNoSession when the cookie is absent,
// ErrExpired when its ttl has run out, and ErrInvalid when it fails
// authentication or decryption, was written under another name, or does not
// decode into v. GetTransient does not remove the cookie; call
// ClearTransient once the login attempt is over so it cannot be replayed.
func (s *CookieStore) GetTransient(r *http.Request, name string, v any) error {
	if _, err := s.transientConfig(name, nil); err != nil {
		return err
	}
	cookieName := s.TransientCookieName(name)
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return ErrNoSession
	}
	if len(c.Value) > ChunkSize {
		return fmt.Errorf("%w: oversized transient cookie", ErrInvalid)
	}
	var env transientEnvelope
	if err := securecookie.DecodeMulti(cookieName, c.Value, &env, s.dec...); err != nil {
		return decodeError(err)
	}
	if !s.o.Now().Before(time.Unix(env.Exp, 0)) {
		return fmt.Errorf("%w: transient %q expired", ErrExpired, name)
	}
	if err := json.Unmarshal(env.Value, v); err != nil {
		return fmt.Errorf("%w: transient %q: %v", ErrInvalid, name, err)
	}
	return nil
}

// ClearTransient expires the transient cookie name. Pass the options given
// to SetTransient so the deletion carries the same attributes.
func (s *CookieStore) ClearTransient(w http.ResponseWriter, name string, opts ...TransientOption) {
	cfg, err := s.transientConfig(name, opts)
	if err != nil {
		return // such a cookie cannot have been set
	}
	http.SetCookie(w, sessions.NewCookie(s.TransientCookieName(name), "", s.options(-1, cfg.sameSite)))
}

// transientConfig validates a transient name and applies opts.
func (s *CookieStore) transientConfig(name string, opts []TransientOption) (transientConfig, error) {
	cfg := transientConfig{sameSite: http.SameSiteLaxMode}
	if !validName(name) || len(name) > maxTransientName {
		return cfg, fmt.Errorf("session: transient name %q: use up to %d ASCII letters, digits, '-' and '_'", name, maxTransientName)
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch cfg.sameSite {
	case http.SameSiteLaxMode, http.SameSiteStrictMode:
	case http.SameSiteNoneMode:
		if !s.o.Secure {
			return cfg, errors.New("session: SameSite=None requires Secure cookies")
		}
	default:
		return cfg, fmt.Errorf("session: unsupported SameSite value %d for a transient cookie", cfg.sameSite)
	}
	return cfg, nil
}
