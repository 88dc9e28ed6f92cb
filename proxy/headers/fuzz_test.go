package headers

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// fuzzHeader turns fuzz input into a header: one "name: value" per line. A
// line starting with '~' keeps its name exactly as written; other names are
// canonicalized as net/http's server would.
func fuzzHeader(spec string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(spec, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		if rawName, isRaw := strings.CutPrefix(name, "~"); isRaw {
			h[rawName] = append(h[rawName], value)
		} else {
			h.Add(name, value)
		}
	}
	return h
}

func FuzzSanitize(f *testing.F) {
	seeds := []string{
		"Connection: X-Remote-User, close\nX-Remote-User: mallory\nAccept: */*",
		"Connection: Upgrade, X-Remote-User\nUpgrade: websocket\nX-Remote-User: m",
		"Connection: upgrade\nConnection: keep-alive, x-foo\nUpgrade: WebSocket\nX-Foo: 1",
		"Connection: Upgrade, HTTP2-Settings\nUpgrade: h2c\nHTTP2-Settings: AAA",
		"~x_forwarded_user: a\n~X-FORWARDED_USER: b\n~X.Forwarded.User: c\nX-Auth-Request-Email: d",
		"~x_auth_request_groups: admins\nX-Forwarded-For: 10.0.0.1\n~x_real_ip: 10.0.0.2",
		"Te: trailers\nConnection: TE, Host\nHost: gate\nContent-Length: 0",
		"~connection: upgrade\n~upgrade: websocket\nX-Original-Url: /admin",
		"~Connection: ,,,\n~Upgrade: \nX-Http-Method-Override: DELETE",
		"Connection: X-Forwarded-For, X-Real-Ip\nX-Forwarded-For: 1.2.3.4\nX-Real-Ip: 1.2.3.4",
	}
	for _, s := range seeds {
		f.Add(s, false, "X-Corp-User")
		f.Add(s, true, "X-Corp-*")
	}
	f.Fuzz(func(t *testing.T, spec string, trusted bool, extra string) {
		s, err := NewSanitizer([]string{extra})
		if err != nil {
			if s, err = NewSanitizer(nil); err != nil {
				t.Fatal(err)
			}
		}
		in := fuzzHeader(spec)
		h := in.Clone()
		up := s.Sanitize(h, trusted)

		named := connectionTokens(in["Connection"])
		for k, v := range h {
			if s.IsIdentity(k) {
				t.Errorf("identity header %q survived", k)
			}
			c := s.classify(k)
			if c&classOverride != 0 {
				t.Errorf("override header %q survived", k)
			}
			if c&classForward != 0 && !trusted {
				t.Errorf("forwarding header %q survived an untrusted peer", k)
			}
			if c&classHop != 0 {
				switch {
				case k == "Connection" && up == "websocket" && len(v) == 1 && v[0] == "Upgrade":
				case k == "Upgrade" && up == "websocket" && len(v) == 1 && v[0] == "websocket":
				case k == "Te" && len(v) == 1 && v[0] == "trailers":
				default:
					t.Errorf("hop-by-hop header %q: %q survived (upgrade %q)", k, v, up)
				}
			}
			if c == 0 && !reflect.DeepEqual(v, in[k]) {
				t.Errorf("end-to-end header %q changed from %q to %q", k, in[k], v)
			}
		}
		if up != "" && (len(h["Connection"]) != 1 || len(h["Upgrade"]) != 1) {
			t.Errorf("upgrade %q reported but header is %v", up, h)
		}
		// Nothing that is neither classified nor named in Connection
		// may disappear.
		for k := range in {
			if _, ok := h[k]; ok || s.classify(k) != 0 {
				continue
			}
			if !named[strings.ToLower(k)] {
				t.Errorf("end-to-end header %q was removed; Connection was %q", k, in["Connection"])
			}
		}
		// Sanitize is idempotent.
		again := h.Clone()
		if s.Sanitize(again, trusted); !reflect.DeepEqual(again, h) {
			t.Errorf("second Sanitize changed %v into %v", h, again)
		}
	})
}

// connectionTokens returns the lower-cased tokens the Connection values name.
func connectionTokens(values []string) map[string]bool {
	m := map[string]bool{}
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			m[strings.ToLower(strings.Trim(tok, " \t"))] = true
		}
	}
	return m
}
