// Package redis implements [state.Shared] on Redis, so that every Gatehouse
// replica sees the same single-use keys, revocations, rate-limit counters
// and server-side sessions.
//
// Nothing stored here needs persistence: every key carries a TTL, and
// losing the data logs people out and reopens nothing that had expired.
// Every operation is bounded by [Options.Timeout]; when Redis cannot answer
// the error wraps [state.ErrUnavailable] and callers fail closed. The
// client reconnects by itself once Redis is back.
//
// Keys are "<KeyPrefix><kind>:<key>" with kind one of "once", "rev", "rl"
// and "sess". A key longer than 64 bytes, or one with bytes outside
// printable ASCII, or one starting with '#', is replaced by '#' and the hex
// SHA-256 of the key, so key sizes stay bounded and binary keys (such as
// revocation keys with a NUL separator) are safe in logs and tools.
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/state"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultTimeout bounds each operation when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Second

// maxPlainKey is the longest key used verbatim in a Redis key name.
const maxPlainKey = 64

// Options configures a Store.
type Options struct {
	// KeyPrefix is put before every key, for example "gatehouse:" to share
	// a Redis database with other applications.
	KeyPrefix string
	// Timeout bounds every operation, including connecting (default
	// DefaultTimeout).
	Timeout time.Duration
}

// Store is the Redis implementation of [state.Shared]. It is safe for
// concurrent use.
type Store struct {
	c       goredis.UniversalClient
	cluster bool
	prefix  string
	timeout time.Duration
	display string
}

var _ state.Shared = (*Store)(nil)

// Open connects to Redis at rawURL and checks the connection with one
// PING. The URL forms are:
//
//	redis://[user:pass@]host:port/db        (rediss:// for TLS)
//	redis+sentinel://[user:pass@]h1:p,h2:p/<master>/<db>
//	redis+cluster://[user:pass@]h1:p,h2:p
//
// redis:// and rediss:// accept the query parameters of go-redis's
// ParseURL. For Sentinel, the credentials are those of the master and
// replicas; sentinels that require their own are given with the query
// parameters sentinel_username and sentinel_password. Errors never contain
// the password.
func Open(ctx context.Context, rawURL string, o Options) (*Store, error) {
	if o.Timeout < 0 {
		return nil, errors.New("state/redis: Timeout must not be negative")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	s := &Store{prefix: o.KeyPrefix, timeout: o.Timeout, display: t.display}
	// Socket deadlines follow the context (ContextTimeoutEnabled), so the
	// per-operation timeout holds even while Redis hangs. Retries are few
	// and quick: a refused connection should fail fast, with its cause,
	// rather than spend the whole timeout; one retry still hides a pooled
	// connection that died with a restarted server.
	const (
		retries    = 1
		dialRetry  = 1
		dialBackof = 50 * time.Millisecond
	)
	to := o.Timeout
	switch t.kind {
	case "single":
		opt := t.single
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = to, to, to, true
		opt.MaxRetries, opt.DialerRetries, opt.DialerRetryTimeout = retries, dialRetry, dialBackof
		s.c = goredis.NewClient(opt)
	case "sentinel":
		opt := t.sentOpt
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = to, to, to, true
		opt.MaxRetries, opt.DialerRetries, opt.DialerRetryTimeout = retries, dialRetry, dialBackof
		s.c = goredis.NewFailoverClient(opt)
	case "cluster":
		opt := t.cluster
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = to, to, to, true
		opt.MaxRetries, opt.DialerRetries, opt.DialerRetryTimeout = retries, dialRetry, dialBackof
		s.c = goredis.NewClusterClient(opt)
		s.cluster = true
	}
	pctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.c.Ping(pctx).Err(); err != nil {
		_ = s.c.Close()
		return nil, fmt.Errorf("state/redis: cannot connect to %s: %w: %w", t.display, state.ErrUnavailable, err)
	}
	return s, nil
}

// Client returns the underlying go-redis client, for diagnostics and
// tests. Keys written by the Store are under Options.KeyPrefix.
func (s *Store) Client() goredis.UniversalClient { return s.c }

// KeyPrefix returns Options.KeyPrefix.
func (s *Store) KeyPrefix() string { return s.prefix }

// Once implements [state.Shared].
func (s *Store) Once() state.Once { return once{s} }

// Revocations implements [state.Shared].
func (s *Store) Revocations() state.Revocations { return revocations{s} }

// Limiter implements [state.Shared].
func (s *Store) Limiter() state.Limiter { return limiter{s} }

// Sessions implements [state.Shared].
func (s *Store) Sessions() state.Sessions { return sessions{s} }

// Ping sends one PING, bounded by the timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.c.Ping(ctx).Err(); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Kind returns "redis".
func (s *Store) Kind() string { return "redis" }

// Close closes the connections. Operations after Close fail with an error
// wrapping state.ErrUnavailable.
func (s *Store) Close() error { return s.c.Close() }

// String describes the server without credentials.
func (s *Store) String() string { return "redis " + s.display }

// fail wraps a Redis error for operation op. The message names the
// operation only: keys may be secret (session ids, token ids).
func (s *Store) fail(op string, err error) error {
	return fmt.Errorf("state/redis: %s: %w: %w", op, state.ErrUnavailable, err)
}

// key returns the Redis key for key of the given kind ("once", "rev", ...).
func (s *Store) key(kind, key string) string {
	if plainKey(key) {
		return s.prefix + kind + ":" + key
	}
	sum := sha256.Sum256([]byte(key))
	return s.prefix + kind + ":#" + hex.EncodeToString(sum[:])
}

// plainKey reports whether k may appear verbatim in a Redis key.
func plainKey(k string) bool {
	if len(k) > maxPlainKey || (k != "" && k[0] == '#') {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// op returns a context bounded by the store's timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// minHold is the shortest time a claimed single-use key is held.
const minHold = time.Second

type once struct{ s *Store }

// Claim sets the key with SET NX and an absolute expiry (PXAT), at least
// one second from now.
func (o once) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	s := o.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	at := max(until.UnixMilli(), time.Now().Add(minHold).UnixMilli())
	err := s.c.Do(ctx, "SET", s.key("once", key), "1", "NX", "PXAT", at).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, goredis.Nil):
		return false, nil
	}
	return false, s.fail("once claim", err)
}

// revokeScript stores max(current, ARGV[1]) (Unix milliseconds) and sets the
// TTL to ARGV[2] milliseconds.
var revokeScript = goredis.NewScript(`
local v = ARGV[1]
local old = redis.call('GET', KEYS[1])
if old and tonumber(old) and tonumber(old) > tonumber(v) then v = old end
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return 1
`)

type revocations struct{ s *Store }

// Revoke stores the revocation time in Unix milliseconds, keeping the
// later of the stored and the new time, and (re)sets the TTL to keep.
func (r revocations) Revoke(ctx context.Context, key string, at time.Time, keep time.Duration) error {
	s := r.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	ms := max(keep.Milliseconds(), 1)
	err := revokeScript.Run(ctx, s.c, []string{s.key("rev", key)}, at.UnixMilli(), ms).Err()
	if err != nil {
		return s.fail("revoke", err)
	}
	return nil
}

// RevokedAt reads all keys in one MGET (one pipelined GET per key on a
// cluster, where the keys live in different slots).
func (r revocations) RevokedAt(ctx context.Context, keys ...string) (time.Time, error) {
	s := r.s
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = s.key("rev", k)
	}
	vals := make([]string, 0, len(keys))
	if s.cluster {
		cmds := make([]*goredis.StringCmd, len(rkeys))
		_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range rkeys {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, goredis.Nil) {
			return time.Time{}, s.fail("revoked at", err)
		}
		for _, c := range cmds {
			v, err := c.Result()
			if errors.Is(err, goredis.Nil) {
				continue
			}
			if err != nil {
				return time.Time{}, s.fail("revoked at", err)
			}
			vals = append(vals, v)
		}
	} else {
		res, err := s.c.MGet(ctx, rkeys...).Result()
		if err != nil {
			return time.Time{}, s.fail("revoked at", err)
		}
		for _, v := range res {
			if str, ok := v.(string); ok {
				vals = append(vals, str)
			}
		}
	}
	var latest int64
	found := false
	for _, v := range vals {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			// Not written by Revoke: refuse rather than guess.
			return time.Time{}, s.fail("revoked at", errors.New("malformed revocation value"))
		}
		if !found || ms > latest {
			latest, found = ms, true
		}
	}
	if !found {
		return time.Time{}, nil
	}
	return time.UnixMilli(latest), nil
}

// countScript increments the window's counter and, on the first event,
// sets its expiry (ARGV[1] milliseconds).
var countScript = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// windowSlack keeps a window's counter a little past the window's end, so
// that replicas whose clocks differ slightly still share it.
const windowSlack = time.Second

type limiter struct{ s *Store }

// Allow counts in fixed windows aligned on multiples of window since the
// Unix epoch, by this process's clock; the counter's key names the window's
// start.
func (l limiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, time.Duration, error) {
	s := l.s
	if window < time.Millisecond {
		return false, 0, fmt.Errorf("state/redis: rate limit window %v is shorter than 1ms", window)
	}
	now := time.Now()
	start := now.Truncate(window)
	end := start.Add(window)
	k := s.key("rl", key) + ":" + strconv.FormatInt(start.UnixMilli(), 10)
	ctx, cancel := s.op(ctx)
	defer cancel()
	ttl := (end.Sub(now) + windowSlack).Milliseconds()
	n, err := countScript.Run(ctx, s.c, []string{k}, ttl).Int64()
	if err != nil {
		return false, 0, s.fail("rate limit", err)
	}
	if n > int64(limit) {
		return false, end.Sub(now), nil
	}
	return true, 0, nil
}

type sessions struct{ s *Store }

// Get implements [state.Sessions].
func (ss sessions) Get(ctx context.Context, id string) ([]byte, error) {
	s := ss.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	v, err := s.c.Get(ctx, s.key("sess", id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, state.ErrNotFound
	}
	if err != nil {
		return nil, s.fail("session get", err)
	}
	return v, nil
}

// Set implements [state.Sessions]. A ttl under one millisecond deletes the
// record, as it would be expired at once.
func (ss sessions) Set(ctx context.Context, id string, value []byte, ttl time.Duration) error {
	s := ss.s
	if ttl < time.Millisecond {
		return ss.Delete(ctx, id)
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.c.Set(ctx, s.key("sess", id), value, ttl).Err(); err != nil {
		return s.fail("session set", err)
	}
	return nil
}

// Delete implements [state.Sessions].
func (ss sessions) Delete(ctx context.Context, id string) error {
	s := ss.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.c.Del(ctx, s.key("sess", id)).Err(); err != nil {
		return s.fail("session delete", err)
	}
	return nil
}
