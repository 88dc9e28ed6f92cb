package session

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// FuzzLoad feeds arbitrary values for a session's first and second cookie
// (raw, through the Cookie header parser) to Load and GetTransient. They
// must never panic and must fail with the sentinel errors only, unless the
// input still carries one of the seeds' genuine cookies (the cookie parser
// trims spaces and quotes, so mutations around them can still be valid).
//
// The seeds include real cookies of several kilobytes, which the fuzzing
// engine is slow to minimize; -fuzzminimizetime=5s keeps it exploring.
func FuzzLoad(f *testing.F) {
	s, _ := newTestStore(f, nil)
	name := s.CookieName(identity.Workforce)

	// Fixed ids: the fuzzing engine runs this setup in several processes
	// and passes seeds between them.
	smallP, bigP := testPayload(identity.Workforce), bigPayload(identity.Workforce, 70)
	smallP.ID, bigP.ID = "fuzz-small", "fuzz-big"
	ids := map[string]bool{smallP.ID: true, bigP.ID: true}
	small := newJar()
	save(f, s, small, smallP)
	big := newJar()
	if n := len(save(f, s, big, bigP)); n != 2 {
		f.Fatalf("big seed uses %d cookies, want 2", n)
	}
	good := small.values[name]
	f.Add(good, "")
	f.Add(good[:len(good)-1], "")
	f.Add(big.values[name], big.values[name+".1"])
	f.Add(big.values[name], "")
	f.Add("", "")
	f.Add("2.", "")
	f.Add("8.AAAA", "BBBB")
	f.Add("\x00\xff", "\"")
	f.Add(strings.Repeat("A", 5000), "")

	f.Fuzz(func(t *testing.T, v0, v1 string) {
		r := httptest.NewRequest(http.MethodGet, "https://app.example.com/", nil)
		r.Header.Set("Cookie", name+"="+v0+"; "+name+".1="+v1+"; "+s.TransientCookieName("state")+"="+v0)
		p, _, err := s.Load(r, identity.Workforce)
		switch {
		case err == nil && (p == nil || !ids[p.ID]):
			t.Fatalf("Load(%q, %q) accepted a forged session: %+v", v0, v1, p)
		case err != nil && (!isSentinel(err) || p != nil):
			t.Fatalf("Load(%q, %q) = %v, %v", v0, v1, p, err)
		}
		var dst map[string]any
		if err := s.GetTransient(r, "state", &dst); err == nil || !isSentinel(err) {
			t.Fatalf("GetTransient(%q) = %v", v0, err)
		}
	})
}
