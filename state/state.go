// Package state is the short-lived state Gatehouse replicas share: the
// single-use keys that stop replays (SAML assertion ids, sign-in states,
// logout token ids), session revocations, rate-limit counters and, for the
// server-side session store, session records.
//
// Each kind of state is a small interface with two implementations: the
// in-memory one in this package, right for one process, and the Redis one
// in state/redis, shared by every replica. Nothing here is durable data
// (accounts, consents and audit live in store/): losing it all logs people
// out and reopens nothing that has expired.
//
// Every method takes a context and returns an error, because the shared
// implementation talks to a server. Callers fail closed: an error means
// "not allowed" (a replay check that cannot run refuses the assertion, a
// revocation check that cannot run refuses the session).
package state

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable wraps errors from a shared store that cannot be reached.
// Callers turn it into a 503 with a clear message, never a crash.
var ErrUnavailable = errors.New("shared state unavailable")

// Once records single-use keys.
type Once interface {
	// Claim records key as used until the given time. It returns true the
	// first time a key is claimed and false while it is held. An error
	// means the claim could not be made; the caller must refuse.
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// Revocations remembers when things were revoked: one session (key
// "sid:<id>"), all of a person's sessions ("sub:<provider>\x00<subject>"),
// or the sessions of one IdP session ("psid:<provider>\x00<sid>"). A
// session is revoked when any of its keys was revoked at or after the
// session's creation (see [Revoked]).
type Revocations interface {
	// Revoke records that key was revoked at time at. The record is kept
	// for keep (the longest a session can live), then forgotten. Revoking
	// again moves the time forward, never back.
	Revoke(ctx context.Context, key string, at time.Time, keep time.Duration) error
	// RevokedAt returns the latest revocation time among keys, or the zero
	// time when none of them is revoked.
	RevokedAt(ctx context.Context, keys ...string) (time.Time, error)
}

// Revoked reports whether a session created at created, with the given
// revocation keys, has been revoked. Session creation times carry
// one-second precision, so a revocation in the same second as a sign-in
// also ends that sign-in: the safe side.
func Revoked(ctx context.Context, r Revocations, created time.Time, keys ...string) (bool, error) {
	at, err := r.RevokedAt(ctx, keys...)
	if err != nil {
		return true, err
	}
	return !at.IsZero() && !at.Before(created.Truncate(time.Second)), nil
}

// Limiter counts events in fixed windows for rate limits.
type Limiter interface {
	// Allow counts one event for key in the current window of the given
	// length and reports whether the count is within limit. When it is
	// not, retryAfter says when the window ends.
	Allow(ctx context.Context, key string, limit int, window time.Duration) (ok bool, retryAfter time.Duration, err error)
}

// Sessions keeps server-side session records, by opaque id.
type Sessions interface {
	// Get returns the record stored under id, or ErrNotFound.
	Get(ctx context.Context, id string) ([]byte, error)
	// Set stores value under id for ttl, replacing any earlier value.
	Set(ctx context.Context, id string, value []byte, ttl time.Duration) error
	// Delete removes id; deleting a missing id is not an error.
	Delete(ctx context.Context, id string) error
}

// ErrNotFound is returned by Sessions.Get for an unknown or expired id.
var ErrNotFound = errors.New("state: not found")

// Shared bundles the kinds of state a gateway uses. Close releases the
// connection of a shared implementation.
type Shared interface {
	Once() Once
	Revocations() Revocations
	Limiter() Limiter
	Sessions() Sessions
	// Ping reports whether the store answers (readiness).
	Ping(ctx context.Context) error
	// Kind is "memory" or "redis", for logs and metrics.
	Kind() string
	Close() error
}
