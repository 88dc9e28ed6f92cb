package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse-dev/gatehouse/internal/app"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func servePolicy(listen, upstream, extraRoute string) string {
	return fmt.Sprintf(`version: 1
server: { listen: %q, public_url: "http://localhost:8080", timeouts: { shutdown: 5s } }
routes:
  - { name: pub, match: { path: /pub }, audience: public, upstream: %q }
%s`, listen, upstream, extraRoute)
}

type serveHarness struct {
	addr   string
	file   string
	logs   *observer.ObservedLogs
	cancel context.CancelFunc
	rt     *runtime
	done   chan struct{} // closed when serve returns
	err    error         // serve's result, valid after done
}

func startServe(t *testing.T, upstream string, watch ...time.Duration) *serveHarness {
	t.Helper()
	h := &serveHarness{addr: freePort(t), file: filepath.Join(t.TempDir(), "gatehouse.yaml"), done: make(chan struct{})}
	if err := os.WriteFile(h.file, []byte(servePolicy(h.addr, upstream, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	h.logs = logs
	log := zap.New(core)
	l, err := app.Load(h.file)
	if err != nil {
		t.Fatal(err)
	}
	gw, rt, err := newGateway(l, log)
	if err != nil {
		t.Fatal(err)
	}
	h.rt = rt
	if len(watch) > 0 {
		rt.watch = watch[0]
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.err = serve(ctx, l, gw, rt, io.Discard); close(h.done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + h.addr + "/.gatehouse/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return h
}

func waitLog(t *testing.T, logs *observer.ObservedLogs, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if logs.FilterMessage(msg).Len() > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log %q; have %v", msg, logs.All())
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestReloadKeepsRunningPolicyOnError sends SIGHUP with a broken policy
// (refused, logged with file:line, old policy keeps serving), then with a
// good one (swapped in).
func TestReloadKeepsRunningPolicyOnError(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream "+r.URL.Path) }))
	defer up.Close()
	h := startServe(t, up.URL)

	if got := status(t, "http://"+h.addr+"/pub/x"); got != 200 {
		t.Fatalf("before reload: %d", got)
	}
	if got := status(t, "http://"+h.addr+"/new"); got != 404 {
		t.Fatalf("/new before reload: %d", got)
	}

	os.WriteFile(h.file, []byte("version: 1\nroutes:\n  - { name: x, audiance: public }\n"), 0o600)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitLog(t, h.logs, "policy reload refused; the running policy stays")
	entry := h.logs.FilterMessage("policy reload refused; the running policy stays").All()[0]
	errText := fmt.Sprint(entry.ContextMap()["error"])
	if !strings.Contains(errText, h.file+":3:16: routes[0].audiance: unknown key") {
		t.Fatalf("reload error does not name file:line and key: %s", errText)
	}
	if got := status(t, "http://"+h.addr+"/pub/x"); got != 200 {
		t.Fatalf("old policy stopped serving after a bad reload: %d", got)
	}

	os.WriteFile(h.file, []byte(servePolicy(h.addr, up.URL, fmt.Sprintf("  - { name: new, match: { path: /new }, audience: public, upstream: %q }\n", up.URL))), 0o600)
	syscall.Kill(syscall.Getpid(), syscall.SIGHUP)
	waitLog(t, h.logs, "policy reloaded")
	if got := status(t, "http://"+h.addr+"/new"); got != 200 {
		t.Fatalf("/new after good reload: %d", got)
	}
	var out strings.Builder
	rec := httptest.NewRecorder()
	adminHandler(nil, h.rt).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out.WriteString(rec.Body.String())
	for _, want := range []string{
		`gatehouse_policy_reloads_total{outcome="refused"} 1`,
		`gatehouse_policy_reloads_total{outcome="ok"} 1`,
		`gatehouse_requests_total{audience="anonymous",code="200",decision="allow",route="pub"}`,
		`gatehouse_requests_total{audience="anonymous",code="404",decision="deny",route="none"}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Count(out.String(), "gatehouse_policy_info{") != 2 || !strings.Contains(out.String(), "} 1\n") {
		t.Errorf("policy info should list the old (0) and new (1) hash:\n%s", out.String())
	}
}

// TestShutdownDrainsInFlight cancels serve while a request is in flight:
// the request completes, then the listener is closed.
func TestShutdownDrainsInFlight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-release
		io.WriteString(w, "finished")
	}))
	defer up.Close()
	h := startServe(t, up.URL)

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + h.addr + "/pub/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		res <- result{body: b.String()}
	}()
	<-entered
	h.cancel() // as SIGTERM does
	waitLog(t, h.logs, "shutting down: draining in-flight requests")
	time.Sleep(100 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", h.addr, time.Second); err == nil {
		t.Error("listener still accepts new connections while draining")
	}
	close(release)
	r := <-res
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request was not drained: %q %v", r.body, r.err)
	}
	select {
	case <-h.done:
		if h.err != nil {
			t.Fatalf("serve returned %v", h.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after draining")
	}
}

// TestReloadOnFileChange edits the policy file without a signal: a broken
// edit is refused once (not at every check) and the old policy serves; a
// good edit is swapped in.
func TestReloadOnFileChange(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") }))
	defer up.Close()
	h := startServe(t, up.URL, 20*time.Millisecond)

	writeAtomic(t, h.file, []byte("version: 1\nroutes:\n  - { name: x, audiance: public }\n"))
	waitLog(t, h.logs, "policy reload refused; the running policy stays")
	time.Sleep(200 * time.Millisecond) // ten more checks of the same broken file
	refused := h.logs.FilterMessage("policy reload refused; the running policy stays").All()
	if len(refused) != 1 || refused[0].ContextMap()["trigger"] != "file_change" {
		t.Fatalf("a broken file should be reported once, by file_change; got %d entries: %v", len(refused), refused)
	}
	if got := status(t, "http://"+h.addr+"/pub/x"); got != 200 {
		t.Fatalf("old policy stopped serving after a bad edit: %d", got)
	}

	writeAtomic(t, h.file, []byte(servePolicy(h.addr, up.URL, fmt.Sprintf("  - { name: new, match: { path: /new }, audience: public, upstream: %q }\n", up.URL))))
	waitLog(t, h.logs, "policy reloaded")
	if got := status(t, "http://"+h.addr+"/new"); got != 200 {
		t.Fatalf("/new after the edit: %d", got)
	}
	time.Sleep(100 * time.Millisecond)
	if n := h.logs.FilterMessage("policy reloaded").Len(); n != 1 {
		t.Errorf("one edit reloaded %d times", n)
	}
}

// writeAtomic replaces a file the way editors and Kubernetes do, so the
// watcher never reads half a file.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
