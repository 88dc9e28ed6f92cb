package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
	"github.com/gatehouse-dev/gatehouse/examples/quickstart/demoidp"
)

// lockedBuffer is a bytes.Buffer safe for the demo's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoPolicyValid: the embedded demo policy passes 'gatehouse
// validate' as a file, with the values 'gatehouse demo' gives it.
func TestDemoPolicyValid(t *testing.T) {
	dir := t.TempDir()
	// validate builds the SAML provider, which reads the SP key pair the
	// demo generates into its folder at start.
	key, cert, err := demoidp.NewKeyPair("test-sp")
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "saml-sp.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "saml-sp.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(policy, quickstart.DemoPolicy, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEMO_SESSION_KEY", strings.Repeat("k", 43))
	t.Setenv("DEMO_DIR", dir)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "-c", policy}, &stdout, &stderr); code != 0 {
		t.Fatalf("validate exited %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok (4 routes, 2 roles, 2 providers") {
		t.Errorf("validate said: %s", stdout.String())
	}
}

// TestDemoStartsAndStops runs the demo on free ports: it is ready within
// three seconds, prints the banner, serves the app, the IdP's DEMO ONLY
// login page and the metrics, and removes its folder when stopped.
func TestDemoStartsAndStops(t *testing.T) {
	parent := t.TempDir()
	t.Setenv("TMPDIR", parent)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	started := make(chan *quickstart.Demo, 1)
	done := make(chan error, 1)
	began := time.Now()
	go func() {
		done <- runDemo(ctx, quickstart.DemoOptions{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", UpstreamListen: "127.0.0.1:0", IdPListen: "127.0.0.1:0"},
			&stdout, &stderr, func(d *quickstart.Demo) { started <- d })
	}()
	var d *quickstart.Demo
	select {
	case d = <-started:
	case err := <-done:
		t.Fatalf("demo ended: %v\n%s", err, stdout.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("demo not started after 20s:\n%s", stdout.String())
	}
	took := time.Since(began)
	t.Logf("ready in %v", took.Round(time.Millisecond))
	if took > 3*time.Second {
		// Generating two RSA keys dominates; a loaded CI machine may be slower.
		t.Logf("WARNING: the demo took %v to be ready, more than 3s", took)
	}
	if !strings.HasPrefix(d.Dir, parent) || !d.Temporary {
		t.Errorf("demo folder %s (temporary %v), want a new one under %s", d.Dir, d.Temporary, parent)
	}
	banner := stderr.String()
	for _, want := range []string{"DEMO ONLY", d.PublicURL + "/shop/account", d.OutboxURL(), d.PublicURL + "/intranet/admin",
		d.IdPURL + "/", "alice  password alice-demo-password", "it-admins", d.AdminURL + "/metrics", d.Dir, "Ctrl-C"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	get := func(u string, client *http.Client) (int, string) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(d.PublicURL+"/", http.DefaultClient); code != 200 || !strings.Contains(body, "Echo app") {
		t.Errorf("home: %d\n%s", code, body)
	}
	if code, body := get(d.AdminURL+"/metrics", http.DefaultClient); code != 200 || !strings.Contains(body, "gatehouse_") {
		t.Errorf("metrics: %d", code)
	}
	if code, _ := get(d.AdminURL+"/readyz", http.DefaultClient); code != 200 {
		t.Errorf("readyz: %d", code)
	}
	// /intranet leads, through the gateway's login, to the IdP's login page.
	jar := &http.Client{}
	if code, body := get(d.PublicURL+"/intranet", jar); code != 200 || !strings.Contains(body, "DEMO ONLY") || !strings.Contains(body, `name="password"`) {
		t.Errorf("/intranet: %d\n%s", code, body)
	}
	if code, body := get(d.OutboxURL(), http.DefaultClient); code != 200 || !strings.Contains(body, "DEV ONLY") {
		t.Errorf("outbox: %d\n%s", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop")
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("demo folder %s still there after the demo stopped (%v)", d.Dir, err)
	}
	if !strings.Contains(stderr.String(), "removed "+d.Dir) {
		t.Errorf("stop message:\n%s", stderr.String())
	}
	if _, err := net.Dial("tcp", d.GatewayAddr); err == nil {
		t.Error("the gateway still listens after the demo stopped")
	}
}

// TestDemoPortTaken: a taken gateway port is reported clearly, with the
// flag to change it.
func TestDemoPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"demo", "-listen", ln.Addr().String(), "-admin-listen", "off", "-dir", t.TempDir()}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	msg := stderr.String()
	for _, want := range []string{"the gateway", ln.Addr().String(), "already in use", "-listen"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}

// TestDemoNonLoopbackRefused: the demo never listens beyond loopback.
func TestDemoNonLoopbackRefused(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"demo", "-listen", "0.0.0.0:0", "-dir", t.TempDir()}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "loopback") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
