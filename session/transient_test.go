package session

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

type loginState struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	ReturnTo string `json:"return_to"`
}

func TestTransient(t *testing.T) {
	want := loginState{State: NewID(), Nonce: NewID(), ReturnTo: "/dashboard?tab=1"}
	tests := []struct {
		name    string
		advance time.Duration
		mutate  func(s *CookieStore, j *jar)
		getName string
		wantErr error
	}{
		{name: "round trip", advance: 9 * time.Minute},
		{name: "just before ttl", advance: 10*time.Minute - time.Second},
		{name: "at ttl", advance: 10 * time.Minute, wantErr: ErrExpired},
		{name: "after ttl", advance: time.Hour, wantErr: ErrExpired},
		{name: "absent", getName: "other", wantErr: ErrNoSession},
		{
			name: "renamed to another transient",
			mutate: func(s *CookieStore, j *jar) {
				j.rename(s.TransientCookieName("login"), s.TransientCookieName("other"))
			},
			getName: "other",
			wantErr: ErrInvalid,
		},
		{
			name: "session cookie presented as transient",
			mutate: func(s *CookieStore, j *jar) {
				sj := newJar()
				save(t, s, sj, testPayload(identity.Workforce))
				j.set(s.TransientCookieName("login"), sj.values[s.CookieName(identity.Workforce)])
			},
			wantErr: ErrInvalid,
		},
		{
			name: "tampered",
			mutate: func(s *CookieStore, j *jar) {
				n := s.TransientCookieName("login")
				j.set(n, flip(j.values[n], len(j.values[n])/2))
			},
			wantErr: ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, clk := newTestStore(t, nil)
			j := newJar()
			rec := httptest.NewRecorder()
			if err := s.SetTransient(rec, "login", want, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			j.apply(t, rec)
			if tt.mutate != nil {
				tt.mutate(s, j)
			}
			clk.Advance(tt.advance)
			name := tt.getName
			if name == "" {
				name = "login"
			}
			var got loginState
			err := s.GetTransient(j.request(), name, &got)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("GetTransient = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetTransient: %v", err)
			}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestTransientAttributes(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*Options)
		opts     []TransientOption
		wantLine string
	}{
		{
			name:     "default lax host-only",
			wantLine: "__Host-gatehouse-t-saml; Path=/; Max-Age=300; HttpOnly; Secure; SameSite=Lax",
		},
		{
			name:     "none for SAML POST",
			opts:     []TransientOption{WithSameSite(http.SameSiteNoneMode)},
			wantLine: "__Host-gatehouse-t-saml; Path=/; Max-Age=300; HttpOnly; Secure; SameSite=None",
		},
		{
			name:     "insecure domain",
			mod:      func(o *Options) { o.Secure = false; o.Domain = "example.com" },
			wantLine: "gatehouse-t-saml; Path=/; Domain=example.com; Max-Age=300; HttpOnly; SameSite=Lax",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t, tt.mod)
			rec := httptest.NewRecorder()
			if err := s.SetTransient(rec, "saml", "req-id", 5*time.Minute, tt.opts...); err != nil {
				t.Fatal(err)
			}
			lines := rec.Result().Header.Values("Set-Cookie")
			if len(lines) != 1 {
				t.Fatalf("Set-Cookie: %q", lines)
			}
			if got := normalize(lines[0]); got != tt.wantLine {
				t.Fatalf("Set-Cookie\n got %q\nwant %q", got, tt.wantLine)
			}

			rec = httptest.NewRecorder()
			s.ClearTransient(rec, "saml", tt.opts...)
			lines = rec.Result().Header.Values("Set-Cookie")
			wantDel := strings.Replace(tt.wantLine, "Max-Age=300", "Max-Age=0", 1)
			if len(lines) != 1 || normalize(lines[0]) != wantDel {
				t.Fatalf("ClearTransient wrote %q, want %q", lines, wantDel)
			}
		})
	}
}

// normalize drops the value and the Expires attribute of a Set-Cookie line.
func normalize(line string) string {
	var out []string
	for i, part := range strings.Split(line, "; ") {
		if i == 0 {
			name, _, _ := strings.Cut(part, "=")
			out = append(out, name)
			continue
		}
		if strings.HasPrefix(part, "Expires=") {
			continue
		}
		out = append(out, part)
	}
	return strings.Join(out, "; ")
}

func TestTransientErrors(t *testing.T) {
	s, _ := newTestStore(t, nil)
	insecure, _ := newTestStore(t, func(o *Options) { o.Secure = false })
	rec := httptest.NewRecorder()
	tests := []struct {
		name string
		err  error
	}{
		{"bad name", s.SetTransient(rec, "a.b", 1, time.Minute)},
		{"empty name", s.SetTransient(rec, "", 1, time.Minute)},
		{"long name", s.SetTransient(rec, strings.Repeat("n", 65), 1, time.Minute)},
		{"zero ttl", s.SetTransient(rec, "x", 1, 0)},
		{"ttl over lifetime", s.SetTransient(rec, "x", 1, 13*time.Hour)},
		{"unencodable", s.SetTransient(rec, "x", func() {}, time.Minute)},
		{"none insecure", insecure.SetTransient(rec, "x", 1, time.Minute, WithSameSite(http.SameSiteNoneMode))},
		{"too large", s.SetTransient(rec, "x", strings.Repeat("v", 4000), time.Minute)},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if !errors.Is(tests[len(tests)-1].err, ErrTooLarge) {
		t.Errorf("too large: %v, want ErrTooLarge", tests[len(tests)-1].err)
	}
	if n := len(rec.Result().Cookies()); n != 0 {
		t.Errorf("failed SetTransient calls wrote %d cookies", n)
	}
	var v int
	if err := s.GetTransient(newJar().request(), "a.b", &v); err == nil || isSentinel(err) {
		t.Errorf("GetTransient with bad name = %v, want a usage error", err)
	}
	// A value that does not decode into the destination is invalid.
	j := newJar()
	rec = httptest.NewRecorder()
	if err := s.SetTransient(rec, "x", "text", time.Minute); err != nil {
		t.Fatal(err)
	}
	j.apply(t, rec)
	if err := s.GetTransient(j.request(), "x", &v); !errors.Is(err, ErrInvalid) {
		t.Errorf("type mismatch = %v, want ErrInvalid", err)
	}
}
