package assertion

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// counter wraps claims in a build function that counts its calls.
func counter(c Claims) (func() Claims, *atomic.Int64) {
	n := new(atomic.Int64)
	return func() Claims { n.Add(1); return c }, n
}

func TestCacheReuse(t *testing.T) {
	clock := newClock(t0)
	s := newSigner(t, clock, Key{Signer: newEdKey(t)})
	v := newVerifier(t, s, clock)
	c := NewCache(s, 100)
	build, calls := counter(fullClaims())

	first, err := c.Get("sess1\x00wiki", build)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(first, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	minRemaining := s.TTL() / 4
	refreshAt := claims.Expiry.Add(-minRemaining)

	// Served from the cache until exactly refreshAt.
	for _, at := range []time.Time{t0, t0.Add(10 * time.Second), refreshAt.Add(-time.Nanosecond)} {
		clock.Set(at)
		got, err := c.Get("sess1\x00wiki", build)
		if err != nil || got != first {
			t.Fatalf("at %v: Get = new token (%v), want the cached one", at.Sub(t0), err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("build called %d times, want 1", calls.Load())
	}

	clock.Set(refreshAt)
	second, err := c.Get("sess1\x00wiki", build)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || calls.Load() != 2 {
		t.Fatalf("at exp-minRemaining: same token or build not called (%d)", calls.Load())
	}
	claims2, err := v.Verify(second, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	if !claims2.Expiry.After(claims.Expiry) {
		t.Errorf("refreshed token expires %v, not after %v", claims2.Expiry, claims.Expiry)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d after refreshing one key", c.Len())
	}
}

// TestCacheNeverStale walks the clock across many TTLs in uneven steps and
// checks every returned token has at least a quarter of the TTL left.
func TestCacheNeverStale(t *testing.T) {
	clock := newClock(t0)
	s := newSigner(t, clock, Key{Signer: newECKey(t)})
	v := newVerifier(t, s, clock)
	c := NewCache(s, 10)
	build, calls := counter(fullClaims())
	minRemaining := s.TTL() / 4
	for i := 0; i < 600; i++ {
		clock.Advance(time.Duration(i%7+1) * 997 * time.Millisecond / 3)
		tok, err := c.Get("k", build)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := v.Verify(tok, "wiki")
		if err != nil {
			t.Fatal(err)
		}
		if left := claims.Expiry.Sub(clock.Now()); left < minRemaining {
			t.Fatalf("step %d: token with %v left, minimum %v", i, left, minRemaining)
		}
	}
	// One signature per refresh interval (three quarters of the TTL), give
	// or take the rounding of exp.
	elapsed := clock.Now().Sub(t0)
	want := int64(elapsed / (s.TTL() - minRemaining))
	if n := calls.Load(); n < want-1 || n > want+2 {
		t.Errorf("build called %d times over %v, want about %d", n, elapsed, want)
	}
}

func TestCacheDistinctKeys(t *testing.T) {
	s := newSigner(t, newClock(t0), Key{Signer: newECKey(t)})
	c := NewCache(s, 100)
	seen := make(map[string]string)
	for _, key := range []string{"s1\x00wiki", "s1\x00admin", "s2\x00wiki", ""} {
		tok, err := c.Get(key, func() Claims { return fullClaims() })
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[tok]; dup {
			t.Fatalf("keys %q and %q share a token", key, other)
		}
		seen[tok] = key
		again, _ := c.Get(key, func() Claims { t.Fatal("build called on a hit"); return Claims{} })
		if again != tok {
			t.Fatalf("key %q: second Get returned another token", key)
		}
	}
}

// nullSigner claims an Ed25519 public key but signs with zeros: tokens do
// not verify, but cost nothing to make, for tests that churn the cache
// (signing is slow under the race detector).
type nullSigner struct{ pub ed25519.PublicKey }

func (n nullSigner) Public() crypto.PublicKey { return n.pub }
func (n nullSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return make([]byte, ed25519.SignatureSize), nil
}

func newNullSigner(t testing.TB, clock *fakeClock) *Signer {
	return newSigner(t, clock, Key{Signer: nullSigner{newEdKey(t).Public().(ed25519.PublicKey)}})
}

func TestCacheBounded(t *testing.T) {
	for _, max := range []int{1, 3, 8, 200, 1000, 5000} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			clock := newClock(t0)
			s := newNullSigner(t, clock)
			c := NewCache(s, max)
			total := 0
			for i := range c.shards {
				total += c.shards[i].max
			}
			if total != max {
				t.Fatalf("shard capacities sum to %d, want %d", total, max)
			}
			n := min(3*max, 1500)
			for i := 0; i < n; i++ {
				if _, err := c.Get(fmt.Sprint("key", i), fullClaims); err != nil {
					t.Fatal(err)
				}
				if l := c.Len(); l > max {
					t.Fatalf("after %d inserts Len = %d > %d", i+1, l, max)
				}
				clock.Advance(10 * time.Millisecond)
			}
		})
	}
	if c := NewCache(newSigner(t, nil, Key{Signer: newEdKey(t)}), 0); cap(c.shards) == 0 || c.shards[0].max*len(c.shards) > DefaultCacheEntries {
		t.Error("default capacity not applied")
	}
}

func TestCacheEvictionOrder(t *testing.T) {
	clock := newClock(t0)
	s := newSigner(t, clock, Key{Signer: newEdKey(t)})
	c := NewCache(s, 3) // small enough for a single shard
	if len(c.shards) != 1 {
		t.Fatalf("%d shards", len(c.shards))
	}
	hit := func(key string) bool {
		t.Helper()
		miss := false
		if _, err := c.Get(key, func() Claims { miss = true; return fullClaims() }); err != nil {
			t.Fatal(err)
		}
		return !miss
	}
	for _, k := range []string{"a", "b", "c"} {
		hit(k)
		clock.Advance(time.Second)
	}
	hit("a") // a hit does not make an entry younger
	hit("d") // full: evicts the oldest, a
	if !hit("b") || !hit("c") || !hit("d") {
		t.Fatal("b, c or d was evicted instead of a")
	}
	if hit("a") {
		t.Fatal("a survived eviction")
	}
	// a replaced b (the oldest then): c, d and a remain, c signed a second
	// before the others. Advance until only c is stale: inserting e drops c
	// and evicts nothing fresh.
	clock.Advance(s.TTL() * 3 / 4)
	hit("e")
	if c.Len() != 3 || !hit("d") || !hit("a") || !hit("e") {
		t.Fatalf("Len = %d; want c swept and d, a, e kept", c.Len())
	}
	// Now d and a go stale too: the next insert sweeps them.
	clock.Advance(2 * time.Second)
	hit("f")
	if c.Len() != 2 || !hit("e") || !hit("f") {
		t.Fatalf("Len = %d; want only e and f", c.Len())
	}
}

func TestCacheSignError(t *testing.T) {
	s := newSigner(t, nil, Key{Signer: newEdKey(t)})
	c := NewCache(s, 10)
	if _, err := c.Get("k", func() Claims { return Claims{Issuer: testIssuer} }); err == nil {
		t.Fatal("Get returned a token for claims without audience")
	}
	if c.Len() != 0 {
		t.Fatal("failed signature was cached")
	}
}

// TestCacheConcurrent has many goroutines share a few keys while the clock
// moves, and checks each token they get verifies for its own route with at
// least a quarter of the TTL left.
func TestCacheConcurrent(t *testing.T) {
	clock := newClock(t0)
	s := newSigner(t, clock, Key{Signer: newECKey(t)})
	v := newVerifier(t, s, clock)
	routes := []string{"wiki", "admin", "grafana", "ci", "docs"}
	c := NewCache(s, 8)
	runConcurrent(t, c, clock, routes, 32, 300, 20*time.Second, func(tok, route string) (time.Time, error) {
		claims, err := v.Verify(tok, route)
		if err != nil {
			return time.Time{}, err
		}
		return claims.Expiry, nil
	})
}

// TestCacheConcurrentEviction has goroutines fight over more keys than the
// cache holds, and checks the bound and that no key gets another's token.
func TestCacheConcurrentEviction(t *testing.T) {
	clock := newClock(t0)
	s := newNullSigner(t, clock)
	routes := []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"}
	const max = 3
	c := NewCache(s, max)
	runConcurrent(t, c, clock, routes, 16, 300, 5*time.Second, func(tok, route string) (time.Time, error) {
		if l := c.Len(); l > max {
			return time.Time{}, fmt.Errorf("Len = %d > %d", l, max)
		}
		payload, err := b64.DecodeString(strings.Split(tok, ".")[1])
		if err != nil {
			return time.Time{}, err
		}
		var m struct {
			Aud string
			Exp int64
		}
		if err := json.Unmarshal(payload, &m); err != nil || m.Aud != route {
			return time.Time{}, fmt.Errorf("got token for %q (%v)", m.Aud, err)
		}
		return time.Unix(m.Exp, 0), nil
	})
}

// runConcurrent runs goroutines that each call Get iterations times, cycling
// through routes. Goroutine 0 advances the clock by tick every 25 of its
// iterations; the others hold a read lock from Get through their checks, so
// each token is judged at the instant it was handed out. check returns the
// token's expiry, whose distance from the clock must stay above a quarter
// of the TTL.
func runConcurrent(t *testing.T, c *Cache, clock *fakeClock, routes []string, goroutines, iterations int,
	tick time.Duration, check func(tok, route string) (exp time.Time, err error)) {
	minRemaining := c.signer.TTL() / 4
	var (
		world sync.RWMutex
		wg    sync.WaitGroup
	)
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			expiry := make(map[string]time.Time) // tokens already checked
			for i := range iterations {
				if g == 0 && i%25 == 0 {
					world.Lock()
					clock.Advance(tick)
					world.Unlock()
				}
				route := routes[(g+i)%len(routes)]
				err := func() error {
					world.RLock()
					defer world.RUnlock()
					tok, err := c.Get("sess\x00"+route, func() Claims {
						cl := fullClaims()
						cl.Audience = route
						return cl
					})
					if err != nil {
						return err
					}
					exp, seen := expiry[tok]
					if !seen {
						if exp, err = check(tok, route); err != nil {
							return err
						}
						expiry[tok] = exp
					}
					if left := exp.Sub(clock.Now()); left < minRemaining {
						return fmt.Errorf("token with %v left", left)
					}
					return nil
				}()
				if err != nil {
					errs <- fmt.Errorf("%s: %w", route, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkCacheHit(b *testing.B) {
	s := newSigner(b, nil, Key{Signer: newECKey(b)})
	c := NewCache(s, 10000)
	key := "0123456789abcdef0123456789abcdef\x00wiki"
	claims := fullClaims()
	build := func() Claims { return claims }
	if _, err := c.Get(key, build); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(key, build); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheHitParallel(b *testing.B) {
	s := newSigner(b, nil, Key{Signer: newECKey(b)})
	c := NewCache(s, 10000)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("session-%02d\x00wiki", i)
		if _, err := c.Get(keys[i], fullClaims); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := c.Get(keys[i&63], fullClaims); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func TestCacheHitDoesNotAllocate(t *testing.T) {
	s := newSigner(t, nil, Key{Signer: newEdKey(t)})
	c := NewCache(s, 1000)
	key := "session\x00wiki"
	if _, err := c.Get(key, fullClaims); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { c.Get(key, fullClaims) }); n != 0 {
		t.Errorf("cache hit allocates %v times", n)
	}
}
