package e2e

// The three-replica test: three gatehouse processes (the real binary) on
// 127.0.0.1 share a private redis-server, with every request of one
// browser going to the next replica in turn. A sign-in on one is valid on
// the others, a revocation on one takes effect on all, killing a replica
// loses no session, and a Redis restart gives clear 503s (no panic) after
// which the replicas recover by themselves.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	replicaAdminToken = "replica-admin-token-0123456789abcdef0123"
	replicaSCIMToken  = "replica-scim-token-0123456789abcdef01234"
)

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func waitTCP(t *testing.T, addr string, what string, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s did not start: %v\n%s", what, addr, err, logs())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// proc is a child process with its output kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t *testing.T, name string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(p.kill)
	return p
}

// kill stops the process abruptly (SIGKILL: no draining) and reaps it.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	return p.cmd.ProcessState == nil && p.cmd.Process.Signal(syscall.Signal(0)) == nil
}

// rrBrowser is one browser whose requests go round-robin over the
// replicas. It keeps cookies itself (by name, as one host), since the
// replicas differ only by port.
type rrBrowser struct {
	t       *testing.T
	addrs   []string
	next    int
	cookies map[string]string
	client  *http.Client
}

func (b *rrBrowser) do(method, path string, form url.Values, to int) (*http.Response, string) {
	b.t.Helper()
	if to < 0 {
		to = b.next % len(b.addrs)
		b.next++
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "http://"+b.addrs[to]+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept", "text/html")
	var parts []string
	for k, v := range b.cookies {
		parts = append(parts, k+"="+v)
	}
	if len(parts) > 0 {
		req.Header.Set("Cookie", strings.Join(parts, "; "))
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s via replica %d: %v", method, path, to+1, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	return res, string(data)
}

// signIn walks the static provider's sign-in, each step on the next
// replica, and returns the replica that finished it.
func (b *rrBrowser) signIn(user string) {
	b.t.Helper()
	res, _ := b.do("GET", "/app/", nil, -1)
	if res.StatusCode != http.StatusFound {
		b.t.Fatalf("GET /app/ before sign-in: %d", res.StatusCode)
	}
	res, _ = b.do("GET", res.Header.Get("Location"), nil, -1)
	pick, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil || pick.Query().Get("state") == "" {
		b.t.Fatalf("login: status %d Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, body := b.do("POST", "/.gatehouse/callback/corp", url.Values{"state": {pick.Query().Get("state")}, "user": {user}}, -1)
	if res.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("callback: status %d: %.300s", res.StatusCode, body)
	}
}

func TestThreeReplicasShareRedis(t *testing.T) {
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server is not installed and GATEHOUSE_REQUIRE_REDIS=1")
		}
		t.Skip("SKIPPED: the three-replica test needs redis-server (Debian package redis-server)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gatehouse")
	build := exec.Command("go", "build", "-o", bin, "github.com/gatehouse-dev/gatehouse/cmd/gatehouse")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "user=%s", r.Header.Get("X-Remote-User"))
	}))
	defer up.Close()

	redisPort := freeLoopbackPort(t)
	startRedis := func() *proc {
		p := startProc(t, "redis", redisBin, "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		waitTCP(t, "127.0.0.1:"+redisPort, "redis-server", p.logs)
		return p
	}
	rds := startRedis()

	const n = 3
	addrs, admins := make([]string, n), make([]string, n)
	reps := make([]*proc, n)
	policyFor := func(i int) string {
		return `version: 1
server:
  listen: "` + addrs[i] + `"
  admin_listen: "` + admins[i] + `"
  admin_token: "` + replicaAdminToken + `"
  public_url: "http://` + addrs[0] + `"
  timeouts: { shutdown: 1s }
log: { level: info }
session:
  store: server
  keys: ["replica-test-session-key-0123456789abcdef"]
state:
  redis_url: "redis://127.0.0.1:` + redisPort + `/0"
  timeout: 300ms
audiences:
  workforce: { providers: [corp] }
providers:
  corp:
    type: static
    users:
      - { sub: alice, email: alice@corp.example }
      - { sub: bob, email: bob@corp.example }
scim: { token: "` + replicaSCIMToken + `" }
routes:
  - name: app
    match: { path: /app }
    audience: workforce
    allow: { authenticated: true }
    upstream: "` + up.URL + `"
    forward: { user: X-Remote-User }
`
	}
	for i := range n {
		addrs[i] = "127.0.0.1:" + freeLoopbackPort(t)
		admins[i] = "127.0.0.1:" + freeLoopbackPort(t)
	}
	startReplica := func(i int) {
		file := filepath.Join(dir, fmt.Sprintf("replica%d.yaml", i+1))
		if err := os.WriteFile(file, []byte(policyFor(i)), 0o600); err != nil {
			t.Fatal(err)
		}
		reps[i] = startProc(t, fmt.Sprintf("replica %d", i+1), bin, "serve", "-c", file)
		waitTCP(t, addrs[i], reps[i].name, reps[i].logs)
	}
	for i := range n {
		startReplica(i)
	}
	defer func() {
		if t.Failed() {
			for _, r := range reps {
				t.Logf("--- %s ---\n%s", r.name, r.logs())
			}
		}
	}()

	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	newBrowser := func() *rrBrowser {
		return &rrBrowser{t: t, addrs: addrs, cookies: map[string]string{}, client: client}
	}
	get := func(b *rrBrowser, to int) (int, string) {
		res, body := b.do("GET", "/app/x", nil, to)
		return res.StatusCode, body
	}

	// 1. A sign-in spread over three replicas is valid on each.
	alice, bob := newBrowser(), newBrowser()
	alice.signIn("alice")
	bob.signIn("bob")
	for i := range n {
		if code, body := get(alice, i); code != 200 || body != "user=alice" {
			t.Fatalf("alice via replica %d: %d %q", i+1, code, body)
		}
	}

	// 2. A revocation on replica 2 takes effect on all, within a second.
	req, _ := http.NewRequest("POST", "http://"+admins[1]+"/sessions/revoke", strings.NewReader(`{"user":"alice@corp.example"}`))
	req.Header.Set("Authorization", "Bearer "+replicaAdminToken)
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("admin revoke on replica 2: %v %v", res, err)
	}
	res.Body.Close()
	revoked := time.Now()
	for i := range n {
		for {
			code, _ := get(alice, i)
			if code == http.StatusFound {
				break
			}
			if time.Since(revoked) > time.Second {
				t.Fatalf("alice still served by replica %d %v after the revocation (status %d)", i+1, time.Since(revoked), code)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("revocation effective on all replicas %v after the admin call", time.Since(revoked).Round(time.Millisecond))
	for i := range n {
		if code, body := get(bob, i); code != 200 || body != "user=bob" {
			t.Errorf("bob via replica %d after alice's revocation: %d %q", i+1, code, body)
		}
	}

	// SCIM deactivation through replica 3 ends bob's sessions on all three
	// (the IdP's connector talks to whichever replica the balancer picks).
	carol := newBrowser()
	carol.signIn("bob")
	scimReq, _ := http.NewRequest("DELETE", "http://"+addrs[2]+"/.gatehouse/scim/v2/Users/u-"+base64.RawURLEncoding.EncodeToString([]byte("bob@corp.example")), nil)
	scimReq.Header.Set("Authorization", "Bearer "+replicaSCIMToken)
	if res, err := client.Do(scimReq); err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("SCIM DELETE on replica 3: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	deprovisioned := time.Now()
	for _, who := range []*rrBrowser{bob, carol} {
		for i := range n {
			for {
				code, _ := get(who, i)
				if code == http.StatusFound {
					break
				}
				if time.Since(deprovisioned) > time.Second {
					t.Fatalf("bob still served by replica %d %v after SCIM deprovisioning (status %d)", i+1, time.Since(deprovisioned), code)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	t.Logf("SCIM deprovisioning effective on all replicas %v after the call", time.Since(deprovisioned).Round(time.Millisecond))
	nextWallSecond() // a sign-in in the revocation's own second would be revoked too
	bob.signIn("bob")

	// 3. Killing a replica loses no session.
	reps[0].kill()
	for i := 1; i < n; i++ {
		if code, _ := get(bob, i); code != 200 {
			t.Errorf("bob via replica %d after replica 1 was killed: %d", i+1, code)
		}
	}
	startReplica(0)
	if code, body := get(bob, 0); code != 200 || body != "user=bob" {
		t.Errorf("bob via the restarted replica 1: %d %q", code, body)
	}

	// 4. Redis goes away: clear 503s, no panic, the replicas stay up.
	rds.kill()
	for i := range n {
		code, body := get(bob, i)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "briefly unavailable") {
			t.Errorf("via replica %d with Redis down: %d %.200s", i+1, code, body)
		}
	}
	for _, r := range reps {
		if !r.alive() {
			t.Fatalf("%s exited while Redis was down", r.name)
		}
	}
	// Readiness says so on the admin listener.
	if res, err := client.Get("http://" + admins[2] + "/readyz"); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readiness with Redis down: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	// 5. Redis comes back (empty: it keeps nothing on disk). The replicas
	// recover by themselves: the lost session means signing in again,
	// which works across replicas as before.
	startRedis()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get(bob, 0)
		if code == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica 1 did not recover after Redis came back: status %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	bob.signIn("bob")
	for i := range n {
		if code, body := get(bob, i); code != 200 || body != "user=bob" {
			t.Errorf("bob via replica %d after Redis came back: %d %q", i+1, code, body)
		}
	}
	for _, r := range reps {
		l := r.logs()
		if strings.Contains(l, "panic") || strings.Contains(l, "goroutine ") {
			t.Errorf("%s logged a panic or stack trace:\n%s", r.name, l)
		}
	}
	var sawUnavailable bool
	for _, r := range reps {
		for _, line := range strings.Split(r.logs(), "\n") {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["level"] == "error" && strings.Contains(fmt.Sprint(entry["error"]), "shared state unavailable") {
				sawUnavailable = true
			}
		}
	}
	if !sawUnavailable {
		t.Error("no replica logged a structured 'shared state unavailable' error during the Redis outage")
	}
}

// nextWallSecond waits for the next wall-clock second (session creation
// times and revocations compare at one-second precision).
func nextWallSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
}
