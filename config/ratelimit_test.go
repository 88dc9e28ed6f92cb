package config

import (
	"strings"
	"testing"
	"time"
)

func TestRateLimitParses(t *testing.T) {
	src := `version: 1
server:
  rate_limit:
    per_ip: { requests: 100, per: 1m }
    per_user: { requests: 1000, per: 1h }
routes:
  - name: login-api
    audience: [public, customer]
    upstream: http://127.0.0.1:3000
    rate_limit:
      per_ip: { requests: 5, per: 10s }
  - name: plain
    audience: public
    upstream: http://127.0.0.1:3000
audiences:
  customer: { providers: [c] }
providers:
  c: { type: static, users: [{ sub: a }] }
`
	cfg, err := Parse("p.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server.RateLimit
	if s == nil || s.PerIP == nil || s.PerIP.Requests != 100 || s.PerIP.Per.D() != time.Minute ||
		s.PerUser == nil || s.PerUser.Requests != 1000 || s.PerUser.Per.D() != time.Hour {
		t.Fatalf("server rate_limit decoded as %+v", s)
	}
	r := cfg.Routes[0].RateLimit
	if r == nil || r.PerIP == nil || r.PerIP.Requests != 5 || r.PerIP.Per.D() != 10*time.Second || r.PerUser != nil {
		t.Fatalf("route rate_limit decoded as %+v", r)
	}
	if cfg.Routes[1].RateLimit != nil {
		t.Fatalf("a route without rate_limit got %+v", cfg.Routes[1].RateLimit)
	}
}

func TestRateLimitBounds(t *testing.T) {
	for _, per := range []string{"1s", "90s", "24h"} {
		src := "version: 1\nserver:\n  rate_limit: { per_ip: { requests: 1, per: " + per + " } }\n"
		if _, err := Parse("p.yaml", []byte(src), nil); err != nil {
			t.Errorf("per %s refused: %v", per, err)
		}
	}
}

func TestRateLimitDiagnostics(t *testing.T) {
	src := `version: 1
server:
  rate_limit:
    per_ip: { requests: 0, per: 1m }
    per_user: { requests: -3, per: 500ms }
routes:
  - name: a
    audience: public
    upstream: http://127.0.0.1:3000
    rate_limit:
      per_ip: { requests: 10, per: 25h }
      per_user: { requests: 10, per: 1m }
  - name: b
    audience: public
    upstream: http://127.0.0.1:3000
    rate_limit: {}
  - name: c
    audience: public
    upstream: http://127.0.0.1:3000
    rate_limit:
      per_ip: { requests: 10 }
      per_usr: { requests: 10, per: 1m }
`
	got := diagnostics(t, src, nil)
	// Positions are those of the keys; a missing key has its parent's.
	want := []string{
		`gatehouse.yaml:4:15: server.rate_limit.per_ip.requests: missing or zero requests: a limit allows at least 1 request per window (e.g. requests: 100)`,
		`gatehouse.yaml:5:17: server.rate_limit.per_user.requests: requests -3 is negative (a limit allows at least 1 request per window)`,
		`gatehouse.yaml:5:31: server.rate_limit.per_user.per: per 500ms out of range (give a window between 1s and 24h, e.g. 1m or 1h)`,
		`gatehouse.yaml:11:31: routes[0].rate_limit.per_ip.per: per 25h0m0s out of range (give a window between 1s and 24h, e.g. 1m or 1h)`,
		`gatehouse.yaml:12:7: routes[0].rate_limit.per_user: per_user never applies on this route (the route's only audience is public, so nobody is signed in on it; use per_ip)`,
		`gatehouse.yaml:16:5: routes[1].rate_limit: rate_limit sets no limit (give per_ip, per_user or both, e.g. per_ip: { requests: 100, per: 1m }; or remove rate_limit)`,
		`gatehouse.yaml:21:7: routes[2].rate_limit.per_ip.per: missing or zero window (give a window between 1s and 24h, e.g. per: 1m)`,
		`gatehouse.yaml:22:7: routes[2].rate_limit.per_usr: unknown key "per_usr" in routes[2].rate_limit (did you mean "per_user"?)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRateLimitShapeErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"not a mapping", "version: 1\nserver: { rate_limit: 100 }\n", `server.rate_limit: expected a mapping (key: value), got "100"`},
		{"requests not a number", "version: 1\nserver: { rate_limit: { per_ip: { requests: many, per: 1m } } }\n", `expected a whole number, got "many"`},
		{"per not a duration", "version: 1\nserver: { rate_limit: { per_ip: { requests: 5, per: minute } } }\n", `"minute" is not a duration`},
		{"unknown key", "version: 1\nserver: { rate_limit: { per_ip: { requests: 5, per: 1m, burst: 3 } } }\n", `unknown key "burst" in server.rate_limit.per_ip`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(diagnostics(t, tc.src, nil), "\n")
			if !strings.Contains(got, tc.want) {
				t.Fatalf("diagnostics:\n%s\nwant one containing %q", got, tc.want)
			}
		})
	}
}

func TestRateLimitInSchema(t *testing.T) {
	data, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"RateLimit"`, `"RateQuota"`, `"per_ip"`, `"per_user"`, `"requests"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("schema lacks %s", want)
		}
	}
}
