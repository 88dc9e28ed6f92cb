package session

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

var (
	key1 = bytes.Repeat([]byte("k1-secret-"), 4) // 40 bytes
	key2 = bytes.Repeat([]byte("k2-secret-"), 4)
)

// t0 is the fake clock's starting point: whole seconds, UTC.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// clock is an adjustable time source for Options.Now.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestStore returns a Secure host-only store on a fake clock; mod may
// adjust the options first.
func newTestStore(t testing.TB, mod func(*Options)) (*CookieStore, *clock) {
	t.Helper()
	clk := &clock{t: t0}
	o := Options{Keys: [][]byte{key1}, Secure: true, Now: clk.Now}
	if mod != nil {
		mod(&o)
	}
	s, err := NewCookieStore(o)
	if err != nil {
		t.Fatalf("NewCookieStore: %v", err)
	}
	return s, clk
}

// jar is a minimal browser cookie jar: it applies Set-Cookie headers and
// produces requests carrying the cookies it holds, in insertion order.
type jar struct {
	names  []string
	values map[string]string
}

func newJar() *jar { return &jar{values: map[string]string{}} }

// apply stores or deletes the cookies set by rec and returns them parsed.
func (j *jar) apply(t testing.TB, rec *httptest.ResponseRecorder) []*http.Cookie {
	t.Helper()
	var out []*http.Cookie
	for _, line := range rec.Result().Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("unparsable Set-Cookie %q: %v", line, err)
		}
		out = append(out, c)
		if c.MaxAge < 0 {
			j.del(c.Name)
			continue
		}
		j.set(c.Name, c.Value)
	}
	return out
}

func (j *jar) set(name, value string) {
	if _, ok := j.values[name]; !ok {
		j.names = append(j.names, name)
	}
	j.values[name] = value
}

func (j *jar) del(name string) {
	if _, ok := j.values[name]; !ok {
		return
	}
	delete(j.values, name)
	for i, n := range j.names {
		if n == name {
			j.names = append(j.names[:i], j.names[i+1:]...)
			break
		}
	}
}

func (j *jar) rename(from, to string) {
	v := j.values[from]
	j.del(from)
	j.set(to, v)
}

func (j *jar) request() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
	var parts []string
	for _, n := range j.names {
		parts = append(parts, n+"="+j.values[n])
	}
	if len(parts) > 0 {
		r.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	return r
}

// testPayload returns a payload of audience aud with a handful of claims.
func testPayload(aud identity.Audience) *Payload {
	return &Payload{
		ID: NewID(),
		Identity: identity.Identity{
			Subject:       "00u1a2b3c4d5e6f7g8h9",
			Issuer:        "https://login.example.com/oauth2/default",
			Provider:      "okta",
			Audience:      aud,
			Email:         "ada@example.com",
			EmailVerified: true,
			Name:          "Ada Lovelace",
			Groups:        []string{"engineering", "admins", "oncall"},
			AMR:           []string{"pwd", "otp"},
			ACR:           "urn:okta:loa:2fa:any",
			AuthTime:      t0.Add(-time.Minute),
		},
		Tokens: map[string]string{"refresh": "rt-0123456789"},
	}
}

// bigPayload returns a payload with n long group names.
func bigPayload(aud identity.Audience, n int) *Payload {
	p := testPayload(aud)
	p.Identity.Groups = nil
	for i := range n {
		p.Identity.Groups = append(p.Identity.Groups, fmt.Sprintf("corp-app-%04d-readers-and-contributors", i))
	}
	return p
}

// save saves p through s into a fresh recorder, applies it to j and returns
// the cookies written.
func save(t testing.TB, s *CookieStore, j *jar, p *Payload) []*http.Cookie {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := s.Save(rec, j.request(), p); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return j.apply(t, rec)
}

// isSentinel reports whether err is one of the package's load errors.
func isSentinel(err error) bool {
	return errors.Is(err, ErrNoSession) || errors.Is(err, ErrExpired) || errors.Is(err, ErrInvalid)
}
