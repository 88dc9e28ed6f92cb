package policy

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// FuzzLoadPolicy feeds arbitrary policy text to the loader and compiler:
// they must report diagnostics, never panic, and a policy that compiles
// must answer Match and Decide without panicking either.
func FuzzLoadPolicy(f *testing.F) {
	f.Add([]byte(header + hrPolicy))
	f.Add([]byte("version: 1\nroutes: [{ name: a, audience: public, upstream: \"http://u\", match: { path: \"/x[0-9]+\", path_type: regex } }]\n"))
	f.Add([]byte("version: 1\nroles: { a: { inherits: [a] } }\n"))
	f.Add([]byte("version: 1\nx: &a [*a]\n"))
	f.Add([]byte("version: 1\nsession: { keys: [\"${K:-x}\"] }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data, nil)
		if err != nil {
			return
		}
		p, err := Compile(cfg)
		if err != nil {
			return
		}
		id := &identity.Identity{Subject: "s", Audience: identity.Workforce, Groups: []string{"staff"}}
		for _, path := range []string{"/", "/admin", "/a/b/c"} {
			req := Request{Host: "hr.example.com", Path: path, Method: "GET"}
			_ = p.Decide(p.Match(req), id, req, time.Now())
			_ = p.Decide(p.Match(req), nil, req, time.Now())
		}
	})
}
