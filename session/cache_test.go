package session

import (
	"errors"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// TestDecodeCache checks that cached hits behave exactly like decodes: each
// caller gets its own copy, expiry still applies, and only the exact
// verified bytes hit.
func TestDecodeCache(t *testing.T) {
	s, clk := newTestStore(t, nil)
	j := newJar()
	save(t, s, j, testPayload(identity.Workforce))

	p1, _, err := s.Load(j.request(), identity.Workforce)
	if err != nil {
		t.Fatal(err)
	}
	p1.LastSeen = time.Time{} // a caller modifying its copy
	p1.Identity.Subject = "mallory"
	p2, _, err := s.Load(j.request(), identity.Workforce)
	if err != nil {
		t.Fatal(err)
	}
	if p2.LastSeen.IsZero() || p2.Identity.Subject == "mallory" {
		t.Fatalf("a cached payload was shared between callers: %+v", p2)
	}

	// A cookie differing in one byte is decoded (and refused), not served
	// from the cache.
	name := s.CookieName(identity.Workforce)
	v := j.values[name]
	j.set(name, v[:len(v)-1]+string(v[len(v)-1]^1))
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tampered cookie: %v, want ErrInvalid", err)
	}
	j.set(name, v)

	// Expiry is checked on hits too.
	clk.Advance(s.o.Idle + time.Second)
	if _, _, err := s.Load(j.request(), identity.Workforce); !errors.Is(err, ErrExpired) {
		t.Fatalf("idle session served from the cache: %v", err)
	}
}
