package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/session"
)

// Token names in a session's token map (the OIDC provider's names).
const (
	tokAccess  = "access_token"
	tokRefresh = "refresh_token"
	tokExpiry  = "expiry" // RFC 3339, of the access token
	tokType    = "token_type"
)

const (
	// refreshBefore is how long before the access token expires a request
	// refreshes it, so that an upstream never receives a token about to
	// lapse in flight.
	refreshBefore = time.Minute
	// refreshTimeout bounds one refresh at the provider.
	refreshTimeout = 10 * time.Second
	// refreshMemory is how long a refresh's outcome is remembered, keyed by
	// the refresh token it used. Browsers send several requests at once
	// with the same cookie; with rotating refresh tokens only the first
	// refresh may use the old token, so the others take its outcome (and
	// the fresh cookie) instead of failing with invalid_grant.
	refreshMemory = time.Minute
)

// refresher runs each session refresh once per process, however many
// requests need it at the same moment, and remembers the outcome briefly.
type refresher struct {
	mu    sync.Mutex
	calls map[[32]byte]*refreshCall
}

type refreshCall struct {
	done   chan struct{}
	id     *identity.Identity
	tokens map[string]string
	err    error
	until  time.Time // forgotten after this (set when done)
}

func newRefresher() *refresher { return &refresher{calls: map[[32]byte]*refreshCall{}} }

// do runs fn for the refresh token rt, or waits for the run already going
// on for it, or returns the outcome remembered from a recent run.
func (rf *refresher) do(rt string, now time.Time, fn func() (*identity.Identity, map[string]string, error)) (*identity.Identity, map[string]string, error) {
	key := sha256.Sum256([]byte(rt))
	rf.mu.Lock()
	if len(rf.calls) > 1024 {
		for k, c := range rf.calls {
			if !c.until.IsZero() && now.After(c.until) {
				delete(rf.calls, k)
			}
		}
	}
	c, ok := rf.calls[key]
	if ok && (c.until.IsZero() || now.Before(c.until)) {
		rf.mu.Unlock()
		<-c.done
		return c.id, c.tokens, c.err
	}
	c = &refreshCall{done: make(chan struct{})}
	rf.calls[key] = c
	rf.mu.Unlock()

	c.id, c.tokens, c.err = fn()
	rf.mu.Lock()
	c.until = now.Add(refreshMemory)
	rf.mu.Unlock()
	close(c.done)
	return c.id, c.tokens, c.err
}

// keepsTokens reports whether sessions from provider keep their access and
// refresh tokens: only when a route of one of its audiences forwards the
// access token.
func (s *snapshot) keepsTokens(provider string) bool { return s.tokenProviders[provider] }

// maybeRefresh renews a session's tokens shortly before its access token
// expires. It returns the session to use: the refreshed one (saved), the
// same one (nothing to do, or a transient failure), or nil when the
// provider revoked the grant and the session has ended.
func (g *Gateway) maybeRefresh(s *snapshot, w http.ResponseWriter, r *http.Request, rec *accessRecord, p *session.Payload) *session.Payload {
	rt := p.Tokens[tokRefresh]
	if rt == "" {
		return p
	}
	exp, err := time.Parse(time.RFC3339, p.Tokens[tokExpiry])
	now := g.now()
	if err == nil && exp.Sub(now) > refreshBefore {
		return p
	}
	rp, ok := s.opts.Providers[p.Identity.Provider].(providers.Refresher)
	if !ok {
		return p
	}
	id, tokens, err := g.refresh.do(rt, now, func() (*identity.Identity, map[string]string, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
		defer cancel()
		return rp.Refresh(ctx, &p.Identity, p.Tokens)
	})
	if err != nil {
		var le *providers.LoginError
		if errors.As(err, &le) && le.Reason == "refresh_revoked" {
			// The provider ended the grant (sign-out there, revoked
			// consent, disabled account): the session ends here too.
			rec.sessionNote = "refresh_revoked"
			g.log.Info("session ended: the provider refused to refresh it", zap.String("request_id", rec.rid), zap.String("provider", p.Identity.Provider), zap.Error(err))
			if err := g.revoke(r.Context(), s, "sid:"+p.ID); err != nil {
				g.log.Warn("cannot revoke the session in the shared state", zap.String("request_id", rec.rid), zap.Error(err))
			}
			s.opts.Store.Clear(w, r, p.Identity.Audience)
			return nil
		}
		rec.sessionNote = "refresh_failed"
		g.log.Warn("token refresh failed; keeping the session", zap.String("request_id", rec.rid), zap.String("provider", p.Identity.Provider), zap.Error(err))
		return p
	}
	next := *p
	next.Identity = *id
	next.Identity.Audience, next.Identity.Provider = p.Identity.Audience, p.Identity.Provider
	next.Tokens = map[string]string{}
	for k, v := range p.Tokens {
		next.Tokens[k] = v
	}
	for _, k := range []string{tokAccess, tokRefresh, tokExpiry, tokType, "id_token"} {
		if v := tokens[k]; v != "" {
			next.Tokens[k] = v
		} else if k == tokExpiry {
			delete(next.Tokens, k)
		}
	}
	if err := s.opts.Store.Save(w, r, &next); err != nil {
		g.log.Warn("cannot save the refreshed session", zap.String("request_id", rec.rid), zap.Error(err))
		return p
	}
	rec.sessionNote = "refreshed"
	return &next
}
