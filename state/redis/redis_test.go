package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/state/redis"
	"github.com/gatehouse-dev/gatehouse/state/redis/redistest"
	"github.com/gatehouse-dev/gatehouse/state/statetest"
)

func TestRedisConformance(t *testing.T) {
	redistest.Open(t) // skips the whole test when Redis is unreachable
	statetest.Run(t, func(t *testing.T) state.Shared { return redistest.Open(t) })
}

func TestRedisKeysAreNamespaced(t *testing.T) {
	s := redistest.Open(t)
	ctx := t.Context()
	until := time.Now().Add(time.Minute)
	if _, err := s.Once().Claim(ctx, "assertion-1", until); err != nil {
		t.Fatal(err)
	}
	if err := s.Revocations().Revoke(ctx, "sub:okta\x00secret-subject", time.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Limiter().Allow(ctx, "login:203.0.113.9", 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Sessions().Set(ctx, strings.Repeat("f", 64), []byte("x"), time.Minute); err != nil {
		t.Fatal(err)
	}
	keys := redistest.Keys(t, s)
	if len(keys) != 4 {
		t.Fatalf("keys = %q, want 4", keys)
	}
	want := []string{"once:assertion-1", "rev:#", "rl:login:203.0.113.9:", "sess:" + strings.Repeat("f", 64)}
	for _, w := range want {
		found := false
		for _, k := range keys {
			rest, ok := strings.CutPrefix(k, s.KeyPrefix())
			if !ok {
				t.Errorf("key %q lacks the prefix %q", k, s.KeyPrefix())
			}
			if strings.HasPrefix(rest, w) {
				found = true
			}
			if strings.Contains(k, "secret-subject") || strings.ContainsRune(k, 0) {
				t.Errorf("key %q carries a raw binary key", k)
			}
		}
		if !found {
			t.Errorf("no key starting with %q in %q", w, keys)
		}
	}
	// Every key has a TTL.
	for _, k := range keys {
		ttl, err := s.Client().PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 {
			t.Errorf("PTTL(%q) = %v, %v; want a positive TTL", k, ttl, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	port := freePort(t)
	urls := []string{
		"redis://gh:hunter2@127.0.0.1:" + port + "/0",
		"redis+sentinel://gh:hunter2@127.0.0.1:" + port + "/mymaster/0",
		"redis+cluster://gh:hunter2@127.0.0.1:" + port,
		"redis://gh:hunter2@127.0.0.1:" + port + "/notanumber",
		"memcached://gh:hunter2@127.0.0.1:" + port,
	}
	for _, u := range urls {
		start := time.Now()
		s, err := redis.Open(context.Background(), u, redis.Options{Timeout: 500 * time.Millisecond})
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded against a closed port", u)
			continue
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Open(%s) took %v with a 500ms timeout", u, d)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open error reveals the password: %v", err)
		}
		t.Logf("%v", err)
	}
	_, err := redis.Open(context.Background(), "redis://127.0.0.1:"+port+"/0", redis.Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("connection failure %v does not match state.ErrUnavailable", err)
	}
}

// TestTimeoutOnHungServer checks that a server that accepts connections
// but never answers cannot hold an operation past the timeout.
func TestTimeoutOnHungServer(t *testing.T) {
	addr := hangingListener(t)
	start := time.Now()
	_, err := redis.Open(context.Background(), "redis://"+addr+"/0", redis.Options{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Open against a silent server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Open took %v with a 300ms timeout", d)
	}
}
