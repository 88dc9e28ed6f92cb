// Package redistest opens Redis-backed stores for tests, with the skip
// rule every Gatehouse Redis test follows: the server is taken from
// GATEHOUSE_TEST_REDIS (default redis://127.0.0.1:6379/0); when it cannot
// be reached the test is skipped with a loud message, or fails when
// GATEHOUSE_REQUIRE_REDIS=1.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/state/redis"
)

// DefaultURL is used when GATEHOUSE_TEST_REDIS is empty.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the Redis URL for tests.
func URL() string {
	if u := os.Getenv("GATEHOUSE_TEST_REDIS"); u != "" {
		return u
	}
	return DefaultURL
}

// Required reports whether GATEHOUSE_REQUIRE_REDIS=1 forbids skipping.
func Required() bool { return os.Getenv("GATEHOUSE_REQUIRE_REDIS") == "1" }

// SkipOrFail skips t with msg, or fails it when Redis is required.
func SkipOrFail(t testing.TB, msg string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (GATEHOUSE_REQUIRE_REDIS=1)", msg)
	}
	t.Skip("SKIPPED: " + msg + "; set GATEHOUSE_TEST_REDIS to a reachable server (GATEHOUSE_REQUIRE_REDIS=1 turns this skip into a failure)")
}

// Open returns a Store on the test server under a random key prefix, and
// deletes every key under that prefix when t ends. It skips t (or fails
// it, see [Required]) when Redis cannot be reached.
func Open(t testing.TB) *redis.Store {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	prefix := "gatehouse-test:" + hex.EncodeToString(b[:]) + ":"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, URL(), redis.Options{KeyPrefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		SkipOrFail(t, "Redis tests need a Redis server: "+err.Error())
	}
	t.Cleanup(func() {
		Cleanup(t, s)
		_ = s.Close()
	})
	return s
}

// Cleanup deletes every key under the store's prefix (on a single server;
// SCAN on a cluster client sees one node only). Errors are logged.
func Cleanup(t testing.TB, s *redis.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := scan(ctx, s)
	if err != nil {
		t.Logf("redistest: scanning test keys: %v", err)
		return
	}
	for _, k := range keys {
		// One DEL per key: on a cluster they live in different slots.
		if err := s.Client().Del(ctx, k).Err(); err != nil {
			t.Logf("redistest: deleting test keys: %v", err)
			return
		}
	}
}

// Keys returns every key under the store's prefix, for tests that inspect
// what was written.
func Keys(t testing.TB, s *redis.Store) []string {
	t.Helper()
	keys, err := scan(t.Context(), s)
	if err != nil {
		t.Fatalf("redistest: scan: %v", err)
	}
	return keys
}

func scan(ctx context.Context, s *redis.Store) ([]string, error) {
	var keys []string
	iter := s.Client().Scan(ctx, 0, escapeGlob(s.KeyPrefix())+"*", 500).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// escapeGlob escapes the characters SCAN MATCH treats specially.
func escapeGlob(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
