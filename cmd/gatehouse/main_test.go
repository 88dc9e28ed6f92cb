package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateReportsAllMistakesWithPositions(t *testing.T) {
	code, _, stderr := runCLI(t, "validate", "-c", "testdata/three-mistakes.yaml")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		`testdata/three-mistakes.yaml:4:3: server.publik_url: unknown key "publik_url" in server (did you mean "public_url"?)`,
		`testdata/three-mistakes.yaml:16:22: routes[0].allow.roles[0]: unknown role "employe" (did you mean "employee"?)`,
		`testdata/three-mistakes.yaml:18:77: routes[0].rules[0].require.max_auth_age: "10 minutes" is not a duration`,
		"3 problem(s) found",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestValidateOK(t *testing.T) {
	code, stdout, stderr := runCLI(t, "validate", "-c", "testdata/good.yaml")
	if code != 0 || !strings.Contains(stdout, "testdata/good.yaml: ok (1 routes, 2 roles, 1 providers") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}

func TestValidateMissingFile(t *testing.T) {
	code, _, stderr := runCLI(t, "validate", "-c", "testdata/nope.yaml")
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Fatalf("exit %d stderr %s", code, stderr)
	}
}

func TestExplain(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"allow", []string{"--url", "https://hr.example.com/payroll", "--user", "alice", "--groups", "staff"}, []string{
			"route     hr (routes[0], testdata/good.yaml:13)",
			"roles=employee",
			"decision  ALLOW (allowed)",
			`why       route "hr" allows role "employee"`,
		}},
		{"deny", []string{"--url", "https://hr.example.com/admin/users", "--user", "alice", "--groups", "staff"}, []string{
			"rule      admin-area",
			"decision  DENY (not_allowed)",
			`why       route "hr", rule "admin-area" allows nothing this identity has`,
		}},
		{"roles flag", []string{"--url", "https://hr.example.com/admin", "--roles", "admin"}, []string{
			"roles=admin,employee", "decision  ALLOW (allowed)",
		}},
		{"anonymous", []string{"--url", "https://hr.example.com/", "--anonymous"}, []string{
			"identity  none (anonymous)", "decision  NEED-LOGIN (unauthenticated)",
		}},
		{"no route", []string{"--url", "https://other.example.com/"}, []string{
			"route     none", "decision  DENY (no_route)",
		}},
		{"bad path", []string{"--url", "https://hr.example.com/admin%2f"}, []string{
			"path      refused", "encoded_slash",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"explain", "-c", "testdata/good.yaml"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestExplainNeedsURL(t *testing.T) {
	code, _, stderr := runCLI(t, "explain", "-c", "testdata/good.yaml")
	if code != 2 || !strings.Contains(stderr, "--url is required") {
		t.Fatalf("exit %d stderr %s", code, stderr)
	}
}

func TestKeys(t *testing.T) {
	code, stdout, _ := runCLI(t, "keys")
	if code != 0 || !strings.Contains(stdout, "GATEHOUSE_SESSION_KEY=") || !strings.Contains(stdout, "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("exit %d:\n%s", code, stdout)
	}
	line := stdout[strings.Index(stdout, "GATEHOUSE_SESSION_KEY=")+len("GATEHOUSE_SESSION_KEY="):]
	line = line[:strings.IndexByte(line, '\n')]
	if len(line) < 43 {
		t.Fatalf("session key %q too short", line)
	}
}

func TestSchemaCommand(t *testing.T) {
	code, stdout, _ := runCLI(t, "schema")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil || v["title"] != "Gatehouse policy" {
		t.Fatalf("exit %d, schema not JSON:\n%.200s", code, stdout)
	}
}

func TestUnknownCommandAndVersion(t *testing.T) {
	if code, _, stderr := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(stdout, "gatehouse ") {
		t.Fatalf("exit %d: %s", code, stdout)
	}
}

func TestKeysSAML(t *testing.T) {
	dir := t.TempDir()
	cert, key := dir+"/sp.crt", dir+"/sp.key"
	code, stdout, stderr := runCLI(t, "keys", "saml", "--cn", "gate.example.com", "--cert-out", cert, "--key-out", key)
	if code != 0 || !strings.Contains(stdout, "SAML SP key pair written") {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v mode %v", err, fi.Mode())
	}
	if code, _, stderr := runCLI(t, "keys", "saml", "--cert-out", cert, "--key-out", key); code != 1 || !strings.Contains(stderr, "refusing to overwrite") {
		t.Fatalf("overwrite: exit %d %s", code, stderr)
	}
}
