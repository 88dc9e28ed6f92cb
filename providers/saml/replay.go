package saml

import (
	"sync"
	"time"

	crewjam "github.com/crewjam/saml"
)

// ReplayCache remembers the IDs of accepted assertions until they expire,
// so that each assertion signs somebody in once. Implementations must be
// safe for concurrent use and, once several replicas run, shared between
// them (a Redis implementation comes with the shared store). It is the
// same contract as crewjam/saml's AssertionReplayCache, which calls it.
type ReplayCache interface {
	// Consume atomically records id as used until expiresAt. It returns
	// ErrReplayed when id is already recorded, and any other error when it
	// cannot record it; any error refuses the assertion.
	Consume(id string, expiresAt time.Time) error
}

// ErrReplayed is returned by a ReplayCache for an id it already holds.
var ErrReplayed = crewjam.ErrAssertionReplayed

// minReplayTTL keeps an id at least this long, whatever expiry it comes
// with, so that a clock jump cannot reopen a just-used assertion.
const minReplayTTL = time.Minute

// MemoryReplayCache is a ReplayCache in this process's memory: right for
// one replica. Expired ids are swept as new ones arrive (when the set has
// doubled, or a minute after the last sweep).
type MemoryReplayCache struct {
	now func() time.Time

	mu        sync.Mutex
	ids       map[string]time.Time
	nextSweep int       // sweep when this many ids are held...
	lastSweep time.Time // ...or a minute after the last sweep
}

// NewMemoryReplayCache returns an empty in-memory cache. now is the clock
// (time.Now when nil).
func NewMemoryReplayCache(now func() time.Time) *MemoryReplayCache {
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{now: now, ids: map[string]time.Time{}, nextSweep: 1024}
}

// Consume records id until expiresAt, or returns ErrReplayed.
func (c *MemoryReplayCache) Consume(id string, expiresAt time.Time) error {
	now := c.now()
	if min := now.Add(minReplayTTL); expiresAt.Before(min) {
		expiresAt = min
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if exp, ok := c.ids[id]; ok && now.Before(exp) {
		return ErrReplayed
	}
	if len(c.ids) >= c.nextSweep || now.Sub(c.lastSweep) > time.Minute {
		c.lastSweep = now
		for k, exp := range c.ids {
			if !now.Before(exp) {
				delete(c.ids, k)
			}
		}
		// Sweep again when the live set has doubled: amortized O(1).
		c.nextSweep = max(1024, 2*len(c.ids))
	}
	c.ids[id] = expiresAt
	return nil
}

// Len returns the number of ids held (tests and metrics).
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// prefixedReplay keeps one provider's ids apart from another's in a shared
// cache.
type prefixedReplay struct {
	c      ReplayCache
	prefix string
}

func (p prefixedReplay) Consume(id string, expiresAt time.Time) error {
	return p.c.Consume(p.prefix+id, expiresAt)
}

var (
	processReplayOnce sync.Once
	processReplay     *MemoryReplayCache
)

// defaultReplay is the process-wide in-memory cache used when Env.Replay
// is nil. It outlives a provider, so a policy reload (which builds new
// providers) does not forget which assertions were used.
func defaultReplay() ReplayCache {
	processReplayOnce.Do(func() { processReplay = NewMemoryReplayCache(nil) })
	return processReplay
}
