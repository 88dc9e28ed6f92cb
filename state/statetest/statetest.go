// Package statetest is a conformance suite for implementations of
// [state.Shared]. Each implementation's tests call [Run] with a function
// that opens a fresh, empty store; the suite checks the behaviour callers
// rely on, including expiry with short real durations (the whole suite
// takes a couple of seconds, its slow parts running in parallel).
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/state"
)

// Run runs the suite. open is called once per subtest and must return a
// store on the real clock that holds none of the keys the suite uses (a
// fresh store or a fresh key prefix); it should register its own cleanup
// with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) state.Shared) {
	t.Run("Basics", func(t *testing.T) { t.Parallel(); testBasics(t, open(t)) })
	t.Run("Once", func(t *testing.T) { t.Parallel(); testOnce(t, open(t)) })
	t.Run("OnceExpiry", func(t *testing.T) { t.Parallel(); testOnceExpiry(t, open(t)) })
	t.Run("OnceKeys", func(t *testing.T) { t.Parallel(); testOnceKeys(t, open(t)) })
	t.Run("OnceConcurrent", func(t *testing.T) { t.Parallel(); testOnceConcurrent(t, open(t)) })
	t.Run("Revocations", func(t *testing.T) { t.Parallel(); testRevocations(t, open(t)) })
	t.Run("RevocationsExpiry", func(t *testing.T) { t.Parallel(); testRevocationsExpiry(t, open(t)) })
	t.Run("Revoked", func(t *testing.T) { t.Parallel(); testRevoked(t, open(t)) })
	t.Run("Limiter", func(t *testing.T) { t.Parallel(); testLimiter(t, open(t)) })
	t.Run("LimiterWindow", func(t *testing.T) { t.Parallel(); testLimiterWindow(t, open(t)) })
	t.Run("LimiterConcurrent", func(t *testing.T) { t.Parallel(); testLimiterConcurrent(t, open(t)) })
	t.Run("Sessions", func(t *testing.T) { t.Parallel(); testSessions(t, open(t)) })
	t.Run("SessionsExpiry", func(t *testing.T) { t.Parallel(); testSessionsExpiry(t, open(t)) })
}

// unique returns a key no other subtest or run uses.
var seq atomic.Int64

func unique(name string) string {
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano(), seq.Add(1))
}

func ctx(t *testing.T) context.Context { return t.Context() }

func claim(t *testing.T, o state.Once, key string, until time.Time) bool {
	t.Helper()
	ok, err := o.Claim(ctx(t), key, until)
	if err != nil {
		t.Fatalf("Claim(%q): %v", printable(key), err)
	}
	return ok
}

func printable(k string) string {
	if len(k) > 40 {
		k = k[:40] + "…"
	}
	return strings.ToValidUTF8(k, "?")
}

func testBasics(t *testing.T, s state.Shared) {
	if s.Kind() == "" {
		t.Error("Kind() is empty")
	}
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if s.Once() == nil || s.Revocations() == nil || s.Limiter() == nil || s.Sessions() == nil {
		t.Fatal("a state accessor returned nil")
	}
}

func testOnce(t *testing.T, s state.Shared) {
	o := s.Once()
	until := time.Now().Add(time.Minute)
	a, b := unique("once-a"), unique("once-b")
	if !claim(t, o, a, until) {
		t.Fatal("first claim of a new key = false, want true")
	}
	if claim(t, o, a, until) {
		t.Fatal("second claim of a held key = true, want false")
	}
	if claim(t, o, a, until.Add(time.Hour)) {
		t.Fatal("claim of a held key with a later expiry = true, want false")
	}
	if !claim(t, o, b, until) {
		t.Fatal("claim of a different key = false, want true (keys must be independent)")
	}
}

func testOnceExpiry(t *testing.T, s state.Shared) {
	o := s.Once()
	k := unique("once-exp")
	// Implementations may hold a key for at least one second.
	until := time.Now().Add(1100 * time.Millisecond)
	if !claim(t, o, k, until) {
		t.Fatal("first claim = false")
	}
	if claim(t, o, k, until) {
		t.Fatal("claim before expiry = true")
	}
	time.Sleep(time.Until(until) + 150*time.Millisecond)
	if !claim(t, o, k, time.Now().Add(time.Minute)) {
		t.Fatal("claim after expiry = false, want true (the key should have been released)")
	}
	if claim(t, o, k, time.Now().Add(time.Minute)) {
		t.Fatal("claim right after re-claim = true")
	}
}

// testOnceKeys checks that long, binary and look-alike keys are told apart
// (implementations may hash keys).
func testOnceKeys(t *testing.T, s state.Shared) {
	o := s.Once()
	until := time.Now().Add(time.Minute)
	base := unique("k")
	long := strings.Repeat("x", 1000) + base
	keys := []string{
		base,
		base + "\x00a",
		base + "\x00b",
		long + "1",
		long + "2",
		"#" + base,
		base + " with space",
		base + "\xff\xfe",
		"sub:okta\x00" + base,
	}
	for _, k := range keys {
		if !claim(t, o, k, until) {
			t.Errorf("first claim of %q = false (collides with another key?)", printable(k))
		}
	}
	for _, k := range keys {
		if claim(t, o, k, until) {
			t.Errorf("second claim of %q = true", printable(k))
		}
	}
}

func testOnceConcurrent(t *testing.T, s state.Shared) {
	o := s.Once()
	k := unique("once-race")
	until := time.Now().Add(time.Minute)
	var wins, errs atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			ok, err := o.Claim(context.Background(), k, until)
			if err != nil {
				errs.Add(1)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if errs.Load() != 0 {
		t.Fatalf("%d concurrent claims failed", errs.Load())
	}
	if wins.Load() != 1 {
		t.Fatalf("%d of 50 concurrent claims won, want exactly 1", wins.Load())
	}
}

// ms returns t at millisecond precision, the precision implementations
// may keep revocation times at.
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }

func revokedAt(t *testing.T, r state.Revocations, keys ...string) time.Time {
	t.Helper()
	at, err := r.RevokedAt(ctx(t), keys...)
	if err != nil {
		t.Fatalf("RevokedAt: %v", err)
	}
	return at
}

func revoke(t *testing.T, r state.Revocations, key string, at time.Time, keep time.Duration) {
	t.Helper()
	if err := r.Revoke(ctx(t), key, at, keep); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
}

func testRevocations(t *testing.T, s state.Shared) {
	r := s.Revocations()
	sid, sub, psid := "sid:"+unique("s"), "sub:okta\x00"+unique("u"), "psid:okta\x00"+unique("p")
	if at := revokedAt(t, r); !at.IsZero() {
		t.Errorf("RevokedAt() with no keys = %v, want zero", at)
	}
	if at := revokedAt(t, r, sid, sub, psid); !at.IsZero() {
		t.Errorf("RevokedAt of unrevoked keys = %v, want zero", at)
	}
	now := ms(time.Now())
	revoke(t, r, sub, now.Add(-time.Hour), time.Hour)
	revoke(t, r, psid, now.Add(-time.Minute), time.Hour)
	if at := revokedAt(t, r, sid, sub, psid); !at.Equal(now.Add(-time.Minute)) {
		t.Errorf("RevokedAt = %v, want the latest, %v", at, now.Add(-time.Minute))
	}
	if at := revokedAt(t, r, sub); !at.Equal(now.Add(-time.Hour)) {
		t.Errorf("RevokedAt(sub) = %v, want %v", at, now.Add(-time.Hour))
	}
	// Never moves back.
	revoke(t, r, psid, now.Add(-2*time.Hour), time.Hour)
	if at := revokedAt(t, r, psid); !at.Equal(now.Add(-time.Minute)) {
		t.Errorf("after revoking at an earlier time, RevokedAt = %v, want %v", at, now.Add(-time.Minute))
	}
	// Moves forward.
	revoke(t, r, psid, now, time.Hour)
	if at := revokedAt(t, r, sid, sub, psid); !at.Equal(now) {
		t.Errorf("after revoking at a later time, RevokedAt = %v, want %v", at, now)
	}
	// Many keys, binary and long ones among them.
	keys := []string{sid}
	for i := range 20 {
		keys = append(keys, fmt.Sprintf("sid:%s-%d-%s", sid, i, strings.Repeat("z", 100)))
	}
	revoke(t, r, keys[7], now.Add(time.Second), time.Hour)
	if at := revokedAt(t, r, keys...); !at.Equal(now.Add(time.Second)) {
		t.Errorf("RevokedAt of 21 keys = %v, want %v", at, now.Add(time.Second))
	}
}

func testRevocationsExpiry(t *testing.T, s state.Shared) {
	r := s.Revocations()
	k, kept := "sid:"+unique("exp"), "sid:"+unique("kept")
	now := ms(time.Now())
	revoke(t, r, k, now, 300*time.Millisecond)
	revoke(t, r, kept, now, time.Hour)
	if at := revokedAt(t, r, k); !at.Equal(now) {
		t.Fatalf("RevokedAt = %v, want %v", at, now)
	}
	time.Sleep(500 * time.Millisecond)
	if at := revokedAt(t, r, k); !at.IsZero() {
		t.Errorf("RevokedAt after keep = %v, want zero (forgotten)", at)
	}
	if at := revokedAt(t, r, k, kept); !at.Equal(now) {
		t.Errorf("RevokedAt of a kept key = %v, want %v", at, now)
	}
	// Revoking again with a longer keep renews the record even when the
	// time does not move forward.
	revoke(t, r, kept, now.Add(-time.Minute), 300*time.Millisecond)
	revoke(t, r, kept, now.Add(-time.Minute), time.Hour)
	time.Sleep(400 * time.Millisecond)
	if at := revokedAt(t, r, kept); at.IsZero() {
		t.Error("revocation forgotten although the last Revoke asked to keep it an hour")
	}
}

func testRevoked(t *testing.T, s state.Shared) {
	r := s.Revocations()
	sec := time.Now().Truncate(time.Second)
	created := sec.Add(900 * time.Millisecond) // sign-in late in a second
	cases := []struct {
		name string
		at   time.Time // zero: not revoked
		want bool
	}{
		{"not revoked", time.Time{}, false},
		{"revoked before sign-in", sec.Add(-time.Minute), false},
		{"revoked just before the sign-in's second", sec.Add(-time.Millisecond), false},
		{"revoked earlier in the same second", sec.Add(100 * time.Millisecond), true},
		{"revoked at the start of the second", sec, true},
		{"revoked after sign-in", created.Add(time.Minute), true},
	}
	for _, c := range cases {
		k := "sid:" + unique("revoked")
		other := "sub:x\x00" + unique("other")
		if !c.at.IsZero() {
			revoke(t, r, k, c.at, time.Hour)
		}
		got, err := state.Revoked(ctx(t), r, created, other, k)
		if err != nil {
			t.Fatalf("%s: Revoked: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: Revoked = %v, want %v", c.name, got, c.want)
		}
	}
}

func allow(t *testing.T, l state.Limiter, key string, limit int, window time.Duration) (bool, time.Duration) {
	t.Helper()
	ok, retry, err := l.Allow(ctx(t), key, limit, window)
	if err != nil {
		t.Fatalf("Allow: %v", err)
	}
	return ok, retry
}

func testLimiter(t *testing.T, s state.Shared) {
	l := s.Limiter()
	// A one-hour window makes crossing a window boundary mid-test
	// vanishingly unlikely.
	const window = time.Hour
	k, other := unique("rl"), unique("rl-other")
	for i := range 5 {
		if ok, _ := allow(t, l, k, 5, window); !ok {
			t.Fatalf("event %d of 5 refused", i+1)
		}
	}
	for i := range 3 {
		ok, retry := allow(t, l, k, 5, window)
		if ok {
			t.Fatalf("event %d over a limit of 5 allowed", i+1)
		}
		if retry <= 0 || retry > window {
			t.Errorf("retryAfter = %v, want in (0, %v]", retry, window)
		}
	}
	if ok, _ := allow(t, l, other, 5, window); !ok {
		t.Error("a different key was refused: keys must be counted separately")
	}
	if ok, _ := allow(t, l, unique("rl-zero"), 0, window); ok {
		t.Error("limit 0 allowed an event")
	}
}

func testLimiterWindow(t *testing.T, s state.Shared) {
	l := s.Limiter()
	const window = 400 * time.Millisecond
	k := unique("rl-win")
	// Count until refused: at most limit+1 events, or a few more if a
	// window boundary passes meanwhile.
	var retry time.Duration
	refused := false
	for range 10 {
		var ok bool
		if ok, retry = allow(t, l, k, 2, window); !ok {
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("never refused with limit 2")
	}
	if retry <= 0 || retry > window {
		t.Fatalf("retryAfter = %v, want in (0, %v]", retry, window)
	}
	time.Sleep(retry + 30*time.Millisecond)
	if ok, _ := allow(t, l, k, 2, window); !ok {
		t.Error("refused after retryAfter: a new window should start a new count")
	}
}

func testLimiterConcurrent(t *testing.T, s state.Shared) {
	l := s.Limiter()
	k := unique("rl-race")
	var allowed, errs atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			ok, _, err := l.Allow(context.Background(), k, 10, time.Hour)
			if err != nil {
				errs.Add(1)
			}
			if ok {
				allowed.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if errs.Load() != 0 {
		t.Fatalf("%d concurrent Allow calls failed", errs.Load())
	}
	if allowed.Load() != 10 {
		t.Fatalf("%d of 50 concurrent events allowed with limit 10", allowed.Load())
	}
}

func get(t *testing.T, ss state.Sessions, id string) ([]byte, error) {
	t.Helper()
	v, err := ss.Get(ctx(t), id)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get: %v", err)
	}
	return v, err
}

func set(t *testing.T, ss state.Sessions, id string, v []byte, ttl time.Duration) {
	t.Helper()
	if err := ss.Set(ctx(t), id, v, ttl); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

func testSessions(t *testing.T, s state.Shared) {
	ss := s.Sessions()
	id, other := unique("sess"), unique("sess-other")
	if _, err := get(t, ss, id); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get of unknown id: err = %v, want ErrNotFound", err)
	}
	v1 := []byte("first\x00value\xff")
	set(t, ss, id, v1, time.Hour)
	got, err := get(t, ss, id)
	if err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("Get = %q, %v; want %q", got, err, v1)
	}
	got[0] ^= 0xff // the caller owns the returned slice
	if again, _ := get(t, ss, id); !bytes.Equal(again, v1) {
		t.Fatalf("modifying a returned value changed the stored one: %q", again)
	}
	v2 := bytes.Repeat([]byte("second "), 2000)
	set(t, ss, id, v2, time.Hour)
	if got, err := get(t, ss, id); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("after overwrite Get = %d bytes, %v; want %d bytes", len(got), err, len(v2))
	}
	if _, err := get(t, ss, other); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get of another id: %v, want ErrNotFound", err)
	}
	if err := ss.Delete(ctx(t), id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := get(t, ss, id); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := ss.Delete(ctx(t), id); err != nil {
		t.Fatalf("Delete of a missing id: %v, want nil", err)
	}
	long := strings.Repeat("L", 500)
	set(t, ss, long+"1", []byte("one"), time.Hour)
	set(t, ss, long+"2", []byte("two"), time.Hour)
	if got, _ := get(t, ss, long+"1"); string(got) != "one" {
		t.Errorf("long id 1 = %q, want one", got)
	}
	if got, _ := get(t, ss, long+"2"); string(got) != "two" {
		t.Errorf("long id 2 = %q, want two", got)
	}
}

func testSessionsExpiry(t *testing.T, s state.Shared) {
	ss := s.Sessions()
	short, long := unique("sess-short"), unique("sess-long")
	set(t, ss, short, []byte("v"), 200*time.Millisecond)
	set(t, ss, long, []byte("v"), time.Hour)
	if _, err := get(t, ss, short); err != nil {
		t.Fatalf("Get before ttl: %v", err)
	}
	time.Sleep(350 * time.Millisecond)
	if _, err := get(t, ss, short); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get after ttl: %v, want ErrNotFound", err)
	}
	if _, err := get(t, ss, long); err != nil {
		t.Errorf("Get of a live record: %v", err)
	}
	// Overwriting sets a new ttl.
	set(t, ss, long, []byte("v2"), 200*time.Millisecond)
	time.Sleep(350 * time.Millisecond)
	if _, err := get(t, ss, long); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("Get after the new, shorter ttl: %v, want ErrNotFound", err)
	}
}
