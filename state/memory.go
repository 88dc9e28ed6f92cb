package state

import (
	"context"
	"sync"
	"time"
)

// Memory is the in-process implementation of every kind of state: right
// for one replica, lost on restart. Expired entries are swept as new ones
// arrive, so memory stays bounded by what is live.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	once    map[string]time.Time // key -> held until
	revoked map[string]revocation
	counts  map[string]window
	sess    map[string]record
	writes  int
}

type revocation struct{ at, until time.Time }
type window struct {
	n     int
	start time.Time
	end   time.Time
}
type record struct {
	v     []byte
	until time.Time
}

// NewMemory returns empty in-memory state. now is the clock (time.Now when
// nil).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, once: map[string]time.Time{}, revoked: map[string]revocation{},
		counts: map[string]window{}, sess: map[string]record{}}
}

func (m *Memory) Once() Once               { return memOnce{m} }
func (m *Memory) Revocations() Revocations { return memRevocations{m} }
func (m *Memory) Limiter() Limiter         { return memLimiter{m} }
func (m *Memory) Sessions() Sessions       { return memSessions{m} }
func (m *Memory) Ping(context.Context) error {
	return nil
}
func (m *Memory) Kind() string { return "memory" }
func (m *Memory) Close() error { return nil }

// wrote counts a write and sweeps expired entries every 4096 writes.
// Called with m.mu held.
func (m *Memory) wrote(now time.Time) {
	m.writes++
	if m.writes%4096 != 0 {
		return
	}
	for k, u := range m.once {
		if !now.Before(u) {
			delete(m.once, k)
		}
	}
	for k, r := range m.revoked {
		if !now.Before(r.until) {
			delete(m.revoked, k)
		}
	}
	for k, w := range m.counts {
		if !now.Before(w.end) {
			delete(m.counts, k)
		}
	}
	for k, r := range m.sess {
		if !now.Before(r.until) {
			delete(m.sess, k)
		}
	}
}

type memOnce struct{ m *Memory }

func (o memOnce) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	m := o.m
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if u, ok := m.once[key]; ok && now.Before(u) {
		return false, nil
	}
	m.once[key] = until
	m.wrote(now)
	return true, nil
}

type memRevocations struct{ m *Memory }

func (r memRevocations) Revoke(_ context.Context, key string, at time.Time, keep time.Duration) error {
	m := r.m
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.revoked[key]
	if ok && now.Before(old.until) && old.at.After(at) {
		at = old.at
	}
	m.revoked[key] = revocation{at: at, until: now.Add(keep)}
	m.wrote(now)
	return nil
}

func (r memRevocations) RevokedAt(_ context.Context, keys ...string) (time.Time, error) {
	m := r.m
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	var latest time.Time
	for _, k := range keys {
		if v, ok := m.revoked[k]; ok && now.Before(v.until) && v.at.After(latest) {
			latest = v.at
		}
	}
	return latest, nil
}

type memLimiter struct{ m *Memory }

func (l memLimiter) Allow(_ context.Context, key string, limit int, win time.Duration) (bool, time.Duration, error) {
	m := l.m
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.counts[key]
	if !ok || !now.Before(w.end) {
		start := now.Truncate(win)
		w = window{start: start, end: start.Add(win)}
	}
	w.n++
	m.counts[key] = w
	m.wrote(now)
	if w.n > limit {
		return false, w.end.Sub(now), nil
	}
	return true, 0, nil
}

type memSessions struct{ m *Memory }

func (s memSessions) Get(_ context.Context, id string) ([]byte, error) {
	m := s.m
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.sess[id]
	if !ok || !now.Before(r.until) {
		return nil, ErrNotFound
	}
	return append([]byte(nil), r.v...), nil
}

func (s memSessions) Set(_ context.Context, id string, v []byte, ttl time.Duration) error {
	m := s.m
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sess[id] = record{v: append([]byte(nil), v...), until: now.Add(ttl)}
	m.wrote(now)
	return nil
}

func (s memSessions) Delete(_ context.Context, id string) error {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sess, id)
	return nil
}
