package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/state/redis/redistest"
)

// spyBackend wraps a state.Sessions, counting calls, remembering what was
// written and failing on demand.
type spyBackend struct {
	state.Sessions
	gets, sets, dels atomic.Int32
	fail             atomic.Bool

	mu      sync.Mutex
	written map[string][]byte
}

var errDown = errors.New("backend down (test)")

func newSpy(inner state.Sessions) *spyBackend {
	return &spyBackend{Sessions: inner, written: map[string][]byte{}}
}

func (b *spyBackend) Get(ctx context.Context, id string) ([]byte, error) {
	b.gets.Add(1)
	if b.fail.Load() {
		return nil, errDown
	}
	return b.Sessions.Get(ctx, id)
}

func (b *spyBackend) Set(ctx context.Context, id string, v []byte, ttl time.Duration) error {
	b.sets.Add(1)
	if b.fail.Load() {
		return errDown
	}
	b.mu.Lock()
	b.written[id] = append([]byte(nil), v...)
	b.mu.Unlock()
	return b.Sessions.Set(ctx, id, v, ttl)
}

func (b *spyBackend) Delete(ctx context.Context, id string) error {
	b.dels.Add(1)
	if b.fail.Load() {
		return errDown
	}
	return b.Sessions.Delete(ctx, id)
}

// newServerTestStore returns a ServerStore over a Secure CookieStore and a
// memory backend sharing one fake clock.
func newServerTestStore(t testing.TB, mod func(*Options)) (*ServerStore, *spyBackend, *clock) {
	t.Helper()
	cs, clk := newTestStore(t, mod)
	spy := newSpy(state.NewMemory(clk.Now).Sessions())
	return NewServerStore(cs, spy), spy, clk
}

func saveServer(t testing.TB, s *ServerStore, j *jar, p *Payload) []*http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := s.Save(rec, j.request(), p); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return j.apply(t, rec)
}

// tokenOf returns the token in j's cookie for aud.
func tokenOf(t testing.TB, s *ServerStore, j *jar, aud identity.Audience) []byte {
	t.Helper()
	ref, err := s.readRef(j.request(), s.CookieName(aud))
	if err != nil {
		t.Fatalf("readRef: %v", err)
	}
	return ref.token
}

func (j *jar) clone() *jar {
	c := newJar()
	for _, n := range j.names {
		c.set(n, j.values[n])
	}
	return c
}

func TestServerRoundTrip(t *testing.T) {
	for _, aud := range identity.Audiences {
		t.Run(string(aud), func(t *testing.T) {
			s, spy, _ := newServerTestStore(t, nil)
			j := newJar()
			want := testPayload(aud)
			cookies := saveServer(t, s, j, want)
			if len(cookies) != 1 {
				t.Fatalf("cookies = %v, want one", cookies)
			}
			c := cookies[0]
			if c.Name != "__Host-gatehouse-"+string(aud) || c.Name != s.c.CookieName(aud) {
				t.Errorf("cookie name %q, want the CookieStore's", c.Name)
			}
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("cookie attributes %+v", c)
			}
			if c.MaxAge != int(DefaultLifetime/time.Second) {
				t.Errorf("Max-Age = %d, want the lifetime %d", c.MaxAge, int(DefaultLifetime/time.Second))
			}
			if len(c.Value) > maxRefCookie || len(c.Value) < 100 {
				t.Errorf("cookie value is %d bytes", len(c.Value))
			}
			if want.Created != t0 || want.LastSeen != t0 || want.ID == "" {
				t.Errorf("Save did not fill in the payload: %+v", want)
			}
			got, touched, err := s.Load(j.request(), aud)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if touched {
				t.Error("fresh session reported touched")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if spy.sets.Load() != 1 || spy.gets.Load() != 1 {
				t.Errorf("backend calls: %d sets, %d gets; want 1, 1", spy.sets.Load(), spy.gets.Load())
			}
		})
	}
}

func TestServerCookieAttributesFollowCookieStore(t *testing.T) {
	s, _, _ := newServerTestStore(t, func(o *Options) {
		o.Secure = false
		o.Name = "gh"
		o.Domain = "example.com"
		o.SameSite = http.SameSiteStrictMode
	})
	j := newJar()
	c := saveServer(t, s, j, testPayload(identity.Customer))[0]
	if c.Name != "gh-customer" || c.Secure || c.Domain != "example.com" || c.SameSite != http.SameSiteStrictMode || !c.HttpOnly {
		t.Errorf("cookie %+v", c)
	}
}

func TestServerNoSession(t *testing.T) {
	s, spy, _ := newServerTestStore(t, nil)
	j := newJar()
	j.set("other", "value")
	for _, aud := range identity.Audiences {
		if _, _, err := s.Load(j.request(), aud); !errors.Is(err, ErrNoSession) {
			t.Errorf("Load(%s) = %v, want ErrNoSession", aud, err)
		}
	}
	if _, _, err := s.Load(j.request(), "robots"); err == nil || isSentinel(err) {
		t.Errorf("Load of unknown audience = %v, want a usage error", err)
	}
	if spy.gets.Load() != 0 {
		t.Errorf("%d backend lookups without a cookie", spy.gets.Load())
	}
}

func TestServerAudienceSeparation(t *testing.T) {
	s, _, _ := newServerTestStore(t, nil)
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	if _, _, err := s.Load(j.request(), identity.Customer); !errors.Is(err, ErrNoSession) {
		t.Errorf("customer Load with a workforce session = %v, want ErrNoSession", err)
	}
	j.rename(s.CookieName(identity.Workforce), s.CookieName(identity.Customer))
	if _, _, err := s.Load(j.request(), identity.Customer); !errors.Is(err, ErrInvalid) {
		t.Errorf("workforce cookie presented as customer = %v, want ErrInvalid", err)
	}
}

func TestServerRecordMovedToAnotherKey(t *testing.T) {
	s, spy, _ := newServerTestStore(t, nil)
	ja, jb := newJar(), newJar()
	saveServer(t, s, ja, testPayload(identity.Workforce))
	pb := testPayload(identity.Workforce)
	pb.Identity.Email = "mallory@example.com"
	saveServer(t, s, jb, pb)
	ka := backendKey(tokenOf(t, s, ja, identity.Workforce))
	kb := backendKey(tokenOf(t, s, jb, identity.Workforce))
	// Put A's record under B's key: B's cookie must not load it.
	spy.mu.Lock()
	recA := spy.written[ka]
	spy.mu.Unlock()
	if err := spy.Sessions.Set(t.Context(), kb, recA, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(jb.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
		t.Errorf("Load of a record moved to another key = %v, want ErrInvalid", err)
	}
	// A record that is not sealed at all.
	if err := spy.Sessions.Set(t.Context(), kb, []byte("garbage"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(jb.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
		t.Errorf("Load of a garbage record = %v, want ErrInvalid", err)
	}
	if _, _, err := s.Load(ja.request(), identity.Workforce); err != nil {
		t.Errorf("A's own session: %v", err)
	}
}

func TestServerTamperedCookie(t *testing.T) {
	s, spy, _ := newServerTestStore(t, nil)
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	name := s.CookieName(identity.Workforce)
	orig := j.values[name]
	spy.gets.Store(0)
	// The last characters may carry unused base64 bits; stop short of them.
	for i := 0; i < len(orig)-4; i += 7 {
		b := []byte(orig)
		b[i] ^= 0x01
		j.set(name, string(b))
		if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
			t.Fatalf("cookie altered at %d: %v, want ErrInvalid", i, err)
		}
	}
	for _, v := range []string{"x", strings.Repeat("A", 2000), orig[:len(orig)/2], "3." + orig} {
		j.set(name, v)
		if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
			t.Errorf("cookie %.20q…: %v, want ErrInvalid", v, err)
		}
	}
	if n := spy.gets.Load(); n != 0 {
		t.Errorf("%d backend lookups for tampered cookies, want 0", n)
	}
	// A cookie sealed with other keys.
	other, _, _ := newServerTestStore(t, func(o *Options) { o.Keys = [][]byte{key2} })
	j2 := newJar()
	saveServer(t, other, j2, testPayload(identity.Workforce))
	if _, _, err := s.Load(j2.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
		t.Errorf("cookie of another key: %v, want ErrInvalid", err)
	}
}

func TestServerKeyRotation(t *testing.T) {
	old, spy, clk := newServerTestStore(t, nil)
	j := newJar()
	want := testPayload(identity.Workforce)
	saveServer(t, old, j, want)
	cs, err := NewCookieStore(Options{Keys: [][]byte{key2, key1}, Secure: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	rotated := NewServerStore(cs, spy)
	if got, _, err := rotated.Load(j.request(), identity.Workforce); err != nil || got.ID != want.ID {
		t.Fatalf("Load after rotation: %v, %v", got, err)
	}
}

func TestServerCookieStoreCookiesDoNotMix(t *testing.T) {
	s, _, _ := newServerTestStore(t, nil)
	// A session kept by CookieStore under the same name (a deployment
	// switching stores) is not a server-side cookie.
	j := newJar()
	save(t, s.c, j, testPayload(identity.Workforce))
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
		t.Errorf("CookieStore session read by ServerStore: %v, want ErrInvalid", err)
	}
	// Saving over it replaces it and removes any chunks.
	jb := newJar()
	save(t, s.c, jb, bigPayload(identity.Workforce, 200))
	if len(jb.names) < 2 {
		t.Fatalf("big session used %d cookies", len(jb.names))
	}
	saveServer(t, s, jb, testPayload(identity.Workforce))
	if len(jb.names) != 1 {
		t.Errorf("cookies after a server-side save: %v, want only the session cookie", jb.names)
	}
	if _, _, err := s.Load(jb.request(), identity.Workforce); err != nil {
		t.Errorf("Load: %v", err)
	}
	// And the other way round.
	js := newJar()
	saveServer(t, s, js, testPayload(identity.Workforce))
	if _, _, err := s.c.Load(js.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
		t.Errorf("ServerStore cookie read by CookieStore: %v, want ErrInvalid", err)
	}
}

func TestServerClearEndsCopiedCookie(t *testing.T) {
	s, _, _ := newServerTestStore(t, nil)
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	stolen := j.clone()
	rec := httptest.NewRecorder()
	s.Clear(rec, j.request(), identity.Workforce)
	cookies := j.apply(t, rec)
	if len(cookies) != 1 || cookies[0].MaxAge >= 0 || cookies[0].Name != s.CookieName(identity.Workforce) {
		t.Errorf("Clear wrote %v, want one expired session cookie", cookies)
	}
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrNoSession) {
		t.Errorf("Load after Clear: %v, want ErrNoSession", err)
	}
	// The difference from cookie sessions: a copy of the cookie is dead too.
	if _, _, err := s.Load(stolen.request(), identity.Workforce); !errors.Is(err, ErrNoSession) {
		t.Errorf("Load with a cookie copied before Clear: %v, want ErrNoSession", err)
	}
	// Clearing again, or without a session, is harmless.
	s.Clear(httptest.NewRecorder(), stolen.request(), identity.Workforce)
	s.Clear(httptest.NewRecorder(), newJar().request(), identity.Customer)
	s.Clear(httptest.NewRecorder(), newJar().request(), "robots")
}

func TestServerTokenRotation(t *testing.T) {
	s, spy, clk := newServerTestStore(t, nil)
	j := newJar()
	p := testPayload(identity.Workforce)
	saveServer(t, s, j, p)
	tok1 := tokenOf(t, s, j, identity.Workforce)

	// A refresh of the same session keeps the token.
	clk.Advance(2 * time.Minute)
	got, touched, err := s.Load(j.request(), identity.Workforce)
	if err != nil || !touched {
		t.Fatalf("Load: touched %v, %v", touched, err)
	}
	saveServer(t, s, j, got)
	if tok := tokenOf(t, s, j, identity.Workforce); !bytes.Equal(tok, tok1) {
		t.Error("a refresh of the same session changed the token")
	}

	// A new sign-in in the same browser gets a new token; the old
	// session's record is deleted, so a copy of the old cookie is dead.
	old := j.clone()
	np := testPayload(identity.Workforce)
	np.ID = ""
	saveServer(t, s, j, np)
	tok2 := tokenOf(t, s, j, identity.Workforce)
	if bytes.Equal(tok2, tok1) {
		t.Fatal("a new sign-in kept the previous token")
	}
	if _, _, err := s.Load(old.request(), identity.Workforce); !errors.Is(err, ErrNoSession) {
		t.Errorf("old session after a new sign-in: %v, want ErrNoSession", err)
	}
	if got, _, err := s.Load(j.request(), identity.Workforce); err != nil || got.ID != np.ID {
		t.Errorf("new session: %v, %v", got, err)
	}
	if spy.dels.Load() != 1 {
		t.Errorf("%d deletes, want 1 (the previous session)", spy.dels.Load())
	}
}

// TestServerFixation plants an attacker's valid cookie in the victim's
// browser before the victim signs in.
func TestServerFixation(t *testing.T) {
	s, _, _ := newServerTestStore(t, nil)
	attacker := newJar()
	saveServer(t, s, attacker, testPayload(identity.Workforce))
	victim := attacker.clone()
	vp := testPayload(identity.Workforce)
	vp.ID = ""
	vp.Identity.Email = "victim@example.com"
	saveServer(t, s, victim, vp)
	if bytes.Equal(tokenOf(t, s, victim, identity.Workforce), tokenOf(t, s, attacker, identity.Workforce)) {
		t.Fatal("the planted token was promoted to the victim's session")
	}
	if got, _, err := s.Load(attacker.request(), identity.Workforce); err == nil && got.Identity.Email == "victim@example.com" {
		t.Fatal("the attacker's cookie loads the victim's session")
	}
}

func TestServerIdleExpiry(t *testing.T) {
	s, _, clk := newServerTestStore(t, nil) // Idle 30m, Touch 1m
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))

	clk.Advance(30 * time.Second)
	if _, touched, err := s.Load(j.request(), identity.Workforce); err != nil || touched {
		t.Fatalf("after 30s: touched %v, %v; want not touched", touched, err)
	}
	// Sliding: touch every 20 minutes for an hour.
	for range 3 {
		clk.Advance(20 * time.Minute)
		p, touched, err := s.Load(j.request(), identity.Workforce)
		if err != nil || !touched {
			t.Fatalf("after 20m: touched %v, %v", touched, err)
		}
		saveServer(t, s, j, p)
	}
	clk.Advance(DefaultIdle + time.Second)
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrExpired) {
		t.Errorf("after the idle timeout: %v, want ErrExpired", err)
	}
}

func TestServerIdleCheckedOnRecord(t *testing.T) {
	// A backend that keeps records longer than asked (another clock)
	// must not extend the idle timeout.
	cs, clk := newTestStore(t, nil)
	mem := state.NewMemory(nil) // real clock: never expires during the test
	s := NewServerStore(cs, mem.Sessions())
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	clk.Advance(DefaultIdle + time.Second)
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrExpired) {
		t.Errorf("after the idle timeout with the record still stored: %v, want ErrExpired", err)
	}
}

func TestServerAbsoluteExpiry(t *testing.T) {
	s, _, clk := newServerTestStore(t, func(o *Options) {
		o.Lifetime = 2 * time.Hour
		o.Idle = 30 * time.Minute
	})
	j := newJar()
	p := testPayload(identity.Workforce)
	saveServer(t, s, j, p)
	// Stay active: the lifetime still ends.
	for range 4 {
		clk.Advance(25 * time.Minute)
		got, _, err := s.Load(j.request(), identity.Workforce)
		if err != nil {
			t.Fatalf("Load at %v: %v", clk.t.Sub(t0), err)
		}
		c := saveServer(t, s, j, got)
		if clk.t.Sub(t0) == 100*time.Minute && c[0].MaxAge != 20*60 {
			t.Errorf("Max-Age at 100m = %d, want the remaining 1200s", c[0].MaxAge)
		}
	}
	clk.Advance(21 * time.Minute) // 2h01m after login, 21m after the last use
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrExpired) {
		t.Errorf("after the lifetime: %v, want ErrExpired", err)
	}
	if err := s.Save(httptest.NewRecorder(), j.request(), p); !errors.Is(err, ErrExpired) {
		t.Errorf("Save after the lifetime: %v, want ErrExpired", err)
	}
}

func TestServerRecordTTL(t *testing.T) {
	cs, clk := newTestStore(t, func(o *Options) { o.Lifetime = time.Hour; o.Idle = 30 * time.Minute })
	var ttls []time.Duration
	s := NewServerStore(cs, ttlRecorder{state.NewMemory(clk.Now).Sessions(), &ttls})
	j := newJar()
	p := testPayload(identity.Workforce)
	saveServer(t, s, j, p)
	clk.Advance(50 * time.Minute)
	saveServer(t, s, j, p)
	if len(ttls) != 2 || ttls[0] != 30*time.Minute || ttls[1] != 10*time.Minute {
		t.Errorf("record TTLs = %v, want [30m 10m] (idle, then the remaining lifetime)", ttls)
	}
}

type ttlRecorder struct {
	state.Sessions
	ttls *[]time.Duration
}

func (r ttlRecorder) Set(ctx context.Context, id string, v []byte, ttl time.Duration) error {
	*r.ttls = append(*r.ttls, ttl)
	return r.Sessions.Set(ctx, id, v, ttl)
}

func TestServerBackendOutage(t *testing.T) {
	s, spy, _ := newServerTestStore(t, nil)
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	spy.fail.Store(true)

	_, _, err := s.Load(j.request(), identity.Workforce)
	if !errors.Is(err, state.ErrUnavailable) || !errors.Is(err, errDown) {
		t.Errorf("Load during an outage: %v, want an error wrapping state.ErrUnavailable and the cause", err)
	}
	if errors.Is(err, ErrInvalid) || errors.Is(err, ErrNoSession) || errors.Is(err, ErrExpired) {
		t.Errorf("Load during an outage: %v must not look like a bad or missing session", err)
	}

	rec := httptest.NewRecorder()
	if err := s.Save(rec, j.request(), testPayload(identity.Workforce)); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("Save during an outage: %v, want ErrUnavailable", err)
	}
	if h := rec.Result().Header.Values("Set-Cookie"); len(h) != 0 {
		t.Errorf("Save during an outage wrote cookies: %q", h)
	}

	rec = httptest.NewRecorder()
	if err := s.Delete(rec, j.request(), identity.Workforce); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("Delete during an outage: %v, want ErrUnavailable", err)
	}
	if c := rec.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Errorf("Delete during an outage must still expire the cookie; wrote %v", c)
	}

	spy.fail.Store(false)
	if _, _, err := s.Load(j.request(), identity.Workforce); err != nil {
		t.Errorf("Load after the outage: %v", err)
	}
}

func TestServerLoadUsesRequestContext(t *testing.T) {
	s, _, _ := newServerTestStore(t, nil)
	var seen context.Context
	s.backend = ctxRecorder{s.backend, &seen}
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	type key struct{}
	r := j.request()
	r = r.WithContext(context.WithValue(r.Context(), key{}, "marker"))
	if _, _, err := s.Load(r, identity.Workforce); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Value(key{}) != "marker" {
		t.Error("Load did not pass r.Context() to the backend")
	}
}

type ctxRecorder struct {
	state.Sessions
	seen *context.Context
}

func (c ctxRecorder) Get(ctx context.Context, id string) ([]byte, error) {
	*c.seen = ctx
	return c.Sessions.Get(ctx, id)
}

// sensitive lists strings of testPayload that must never be readable in
// the backend.
var sensitive = []string{"ada@example.com", "Ada Lovelace", "rt-0123456789", "00u1a2b3c4d5e6f7g8h9", "engineering"}

func TestServerBackendHoldsNoPlaintext(t *testing.T) {
	s, spy, _ := newServerTestStore(t, nil)
	j := newJar()
	saveServer(t, s, j, testPayload(identity.Workforce))
	token := tokenOf(t, s, j, identity.Workforce)
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if len(spy.written) != 1 {
		t.Fatalf("%d records written", len(spy.written))
	}
	for k, v := range spy.written {
		checkNoPlaintext(t, k, v, token)
	}
}

func checkNoPlaintext(t *testing.T, key string, v, token []byte) {
	t.Helper()
	for _, s := range sensitive {
		if bytes.Contains(v, []byte(s)) {
			t.Errorf("the stored record contains %q in clear", s)
		}
	}
	if len(key) != 64 || strings.Trim(key, "0123456789abcdef") != "" {
		t.Errorf("backend key %q is not a hex SHA-256", key)
	}
	if bytes.Contains([]byte(key), token) || bytes.Contains(v, token) ||
		strings.Contains(key, encodeTok(token)) || bytes.Contains(v, []byte(encodeTok(token))) {
		t.Error("the backend holds the session token")
	}
}

func encodeTok(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestServerRedis runs the main paths against Redis (skipped, loudly,
// when Redis is unreachable; see package redistest).
func TestServerRedis(t *testing.T) {
	rs := redistest.Open(t)
	cs, _ := newTestStore(t, func(o *Options) { o.Now = time.Now })
	s := NewServerStore(cs, rs.Sessions())
	j := newJar()
	want := testPayload(identity.Workforce)
	saveServer(t, s, j, want)
	got, _, err := s.Load(j.request(), identity.Workforce)
	if err != nil || got.ID != want.ID || got.Identity.Email != want.Identity.Email {
		t.Fatalf("Load: %+v, %v", got, err)
	}
	token := tokenOf(t, s, j, identity.Workforce)
	keys := redistest.Keys(t, rs)
	if len(keys) != 1 {
		t.Fatalf("Redis keys: %q", keys)
	}
	v, err := rs.Client().Get(t.Context(), keys[0]).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, strings.TrimPrefix(keys[0], rs.KeyPrefix()+"sess:"), v, token)
	if ttl := rs.Client().PTTL(t.Context(), keys[0]).Val(); ttl <= 0 || ttl > DefaultIdle {
		t.Errorf("record TTL %v, want in (0, %v]", ttl, DefaultIdle)
	}

	stolen := j.clone()
	rec := httptest.NewRecorder()
	s.Clear(rec, j.request(), identity.Workforce)
	if _, _, err := s.Load(stolen.request(), identity.Workforce); !errors.Is(err, ErrNoSession) {
		t.Errorf("copied cookie after Clear: %v, want ErrNoSession", err)
	}
	if keys := redistest.Keys(t, rs); len(keys) != 0 {
		t.Errorf("keys left after Clear: %q", keys)
	}
}

// BenchmarkServerStoreLoad measures ServerStore.Load of a typical session
// with the memory backend: cookie authentication, lookup and record
// decryption.
func BenchmarkServerStoreLoad(b *testing.B) {
	s, _, _ := newServerTestStore(b, nil)
	j := newJar()
	saveServer(b, s, j, testPayload(identity.Workforce))
	r := j.request()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Load(r, identity.Workforce); err != nil {
			b.Fatal(err)
		}
	}
}
