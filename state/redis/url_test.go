package redis

import (
	"slices"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	cases := []struct {
		url     string
		kind    string
		display string
		check   func(t *testing.T, tg *target)
	}{
		{"redis://127.0.0.1:6379/2", "single", "redis://127.0.0.1:6379/2", func(t *testing.T, tg *target) {
			if tg.single.DB != 2 || tg.single.Addr != "127.0.0.1:6379" {
				t.Errorf("options = %+v", tg.single)
			}
		}},
		{"rediss://u:p%40ss@cache.example:6380/0", "single", "rediss://cache.example:6380/0", func(t *testing.T, tg *target) {
			if tg.single.TLSConfig == nil || tg.single.Username != "u" || tg.single.Password != "p@ss" {
				t.Errorf("options = %+v", tg.single)
			}
		}},
		{"redis+sentinel://u:pw@s1:26379,s2:26379/mymaster/3?sentinel_password=sp", "sentinel", "redis+sentinel://s1:26379,s2:26379/mymaster/3", func(t *testing.T, tg *target) {
			o := tg.sentOpt
			if o.MasterName != "mymaster" || o.DB != 3 || o.Username != "u" || o.Password != "pw" ||
				o.SentinelPassword != "sp" || !slices.Equal(o.SentinelAddrs, []string{"s1:26379", "s2:26379"}) {
				t.Errorf("options = %+v", o)
			}
		}},
		{"redis+sentinel://s1:26379/mymaster", "sentinel", "redis+sentinel://s1:26379/mymaster/0", nil},
		{"redis+cluster://:secret@n1:7000,n2:7001,[::1]:7002", "cluster", "redis+cluster://n1:7000,n2:7001,[::1]:7002", func(t *testing.T, tg *target) {
			o := tg.cluster
			if o.Password != "secret" || len(o.Addrs) != 3 {
				t.Errorf("options = %+v", o)
			}
		}},
	}
	for _, c := range cases {
		tg, err := parseURL(c.url)
		if err != nil {
			t.Errorf("parseURL(%q): %v", c.url, err)
			continue
		}
		if tg.kind != c.kind || tg.display != c.display {
			t.Errorf("parseURL(%q) = kind %q display %q, want %q %q", c.url, tg.kind, tg.display, c.kind, c.display)
		}
		if c.check != nil {
			c.check(t, tg)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, u := range []string{
		"",
		"127.0.0.1:6379",
		"http://u:hunter2@h:1",
		"redis://u:hunter2@h:notaport/0",
		"redis+sentinel://u:hunter2@s1:26379", // no master
		"redis+sentinel://u:hunter2@s1:26379/m/x",    // bad db
		"redis+sentinel://u:hunter2@/m/0",            // no hosts
		"redis+sentinel://u:hunter2@s1/m/0",          // no port
		"redis+cluster://u:hunter2@n1:7000/1",        // cluster has db 0 only
		"redis+cluster://u:hunter2@n1:7000?foo=bar",  // unknown parameter
		"redis+cluster://u:hunter2@n1:99999",         // bad port
		"redis+sentinel://u:hunter2%zz@s1:26379/m/0", // bad escape
	} {
		_, err := parseURL(u)
		if err == nil {
			t.Errorf("parseURL(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("parseURL(%q) error reveals the password: %v", u, err)
		}
	}
}

func TestKey(t *testing.T) {
	s := &Store{prefix: "p:"}
	if got := s.key("once", "abc"); got != "p:once:abc" {
		t.Errorf("plain key = %q", got)
	}
	for _, k := range []string{strings.Repeat("a", 65), "a b", "sub:x\x00y", "#abc", "\xff", ""} {
		got := s.key("rev", k)
		if k == "" {
			if got != "p:rev:" {
				t.Errorf("empty key = %q", got)
			}
			continue
		}
		if !strings.HasPrefix(got, "p:rev:#") || len(got) != len("p:rev:#")+64 {
			t.Errorf("key(%q) = %q, want a hashed key", k, got)
		}
	}
	if s.key("rev", "#x") == s.key("rev", "x") {
		t.Error("'#'-prefixed key collides")
	}
}
