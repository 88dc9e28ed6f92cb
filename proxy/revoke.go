package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/state"
)

// Sessions end early through revocations in the shared state, so that a
// session ends on every replica and a copied cookie stops working too
// (cookie sessions live in the browser and cannot be deleted). A session
// is revoked when one of its keys was revoked at or after its creation:
//
//	sid:<session id>                 one session (sign-out)
//	sub:<provider>\x00<subject>      everything of a person at a provider
//	                                 (admin, SAML LogoutRequest without
//	                                 SessionIndex, OIDC logout token by sub)
//	psid:<provider>\x00<IdP session> one IdP session (SAML SessionIndex,
//	                                 OIDC sid)
//	user:<lower-case name>           a person by email or subject, whatever
//	                                 the provider (SCIM deprovisioning, admin)

// errStateUnavailable means the shared state could not be asked whether a
// session is revoked; the request fails closed with a 503.
var errStateUnavailable = errors.New("shared state unavailable")

// revocationKeys returns the keys under which a session can be revoked.
func revocationKeys(p *session.Payload) []string {
	id := &p.Identity
	keys := make([]string, 0, 5)
	keys = append(keys, "sid:"+p.ID, "sub:"+id.Provider+"\x00"+id.Subject)
	if sid := p.Tokens["sid"]; sid != "" {
		keys = append(keys, "psid:"+id.Provider+"\x00"+sid)
	}
	keys = append(keys, "user:"+strings.ToLower(id.Subject))
	if id.Email != "" && !strings.EqualFold(id.Email, id.Subject) {
		keys = append(keys, "user:"+strings.ToLower(id.Email))
	}
	return keys
}

// revocationKeep is how long a revocation must be remembered: as long as a
// session it could end may live, plus a margin for clock differences.
func (s *snapshot) revocationKeep() time.Duration {
	return s.pol.Config.Session.Lifetime.D() + time.Minute
}

// isRevoked reports whether p has been revoked; an error means the shared
// state could not say.
func (s *snapshot) isRevoked(ctx context.Context, p *session.Payload) (bool, error) {
	if s.clear != nil && s.clear.fresh(p.ID, time.Now()) {
		return false, nil
	}
	revoked, err := state.Revoked(ctx, s.opts.Shared.Revocations(), p.Created, revocationKeys(p)...)
	if err == nil && !revoked && s.clear != nil {
		s.clear.note(p.ID, time.Now())
	}
	return revoked, err
}

// clearCacheTTL is how long a shared-state answer "not revoked" is reused
// for the same session. A browser loading a page sends its requests in a
// burst; asking Redis once per burst instead of once per request halves
// the round trips. It bounds how late a revocation made on another replica
// takes effect here (revocations made here drop the cache at once).
const clearCacheTTL = 250 * time.Millisecond

// clearCache remembers, per session id, until when "not revoked" holds.
// Only used with a shared state on a server (the memory state answers as
// fast as a cache would).
type clearCache struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func newClearCache() *clearCache { return &clearCache{m: map[string]time.Time{}} }

func (c *clearCache) fresh(id string, now time.Time) bool {
	c.mu.Lock()
	until, ok := c.m[id]
	c.mu.Unlock()
	return ok && now.Before(until)
}

func (c *clearCache) note(id string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 100_000 {
		for k, u := range c.m {
			if !now.Before(u) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= 100_000 {
			c.m = map[string]time.Time{} // a flood of sessions: start over
		}
	}
	c.m[id] = now.Add(clearCacheTTL)
}

// forget drops every cached answer: a revocation was made here.
func (c *clearCache) forget() {
	c.mu.Lock()
	c.m = map[string]time.Time{}
	c.mu.Unlock()
}

// liveSession returns the request's session of audience aud when it loads
// and is not revoked; nil otherwise (no session, expired, invalid, revoked,
// or the shared state could not say). For the gateway's own endpoints;
// the request path uses authenticate, which also answers each case.
func (s *snapshot) liveSession(r *http.Request, aud identity.Audience) *session.Payload {
	p, _, err := s.opts.Store.Load(r, aud)
	if err != nil {
		return nil
	}
	if revoked, err := s.isRevoked(r.Context(), p); revoked || err != nil {
		return nil
	}
	return p
}

// revoke records revocations of keys now.
func (g *Gateway) revoke(ctx context.Context, s *snapshot, keys ...string) error {
	if s.clear != nil {
		defer s.clear.forget() // after the revocation is recorded
	}
	now := g.now()
	var errs []error
	for _, k := range keys {
		if err := s.opts.Shared.Revocations().Revoke(ctx, k, now, s.revocationKeep()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RevokeSession ends one session, by its id, on every replica.
func (g *Gateway) RevokeSession(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("empty session id")
	}
	return g.revoke(ctx, g.cur.Load(), "sid:"+id)
}

// RevokeSubject ends every session of a person signed in through a
// provider, on every replica. Sessions started after it are not affected.
func (g *Gateway) RevokeSubject(ctx context.Context, provider, subject string) error {
	if provider == "" || subject == "" {
		return errors.New("provider and subject are required")
	}
	return g.revoke(ctx, g.cur.Load(), "sub:"+provider+"\x00"+subject)
}

// RevokeUser ends every session whose subject or email is name (compared
// without case), whatever the provider: SCIM deprovisioning and support
// requests name people that way.
func (g *Gateway) RevokeUser(ctx context.Context, name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return errors.New("empty user name")
	}
	return g.revoke(ctx, g.cur.Load(), "user:"+strings.ToLower(name))
}

// ClientIP is the client's address as the gateway determines it: the peer,
// or, behind trusted proxies, the nearest untrusted address of
// X-Forwarded-For. "" when the peer address cannot be read.
func (g *Gateway) ClientIP(r *http.Request) string {
	s := g.cur.Load()
	peer, _ := s.peer(r.RemoteAddr)
	if a, ok := s.clientAddr(peer, r.Header); ok {
		return a.String()
	}
	return ""
}

// Providers returns the providers of the running configuration.
func (g *Gateway) Providers() map[string]providers.Provider {
	return g.cur.Load().opts.Providers
}

// Privacy returns the running configuration's privacy policy, or nil.
func (g *Gateway) Privacy() *privacy.Policy {
	return g.cur.Load().opts.Privacy
}
