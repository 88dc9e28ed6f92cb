// Package e2e holds end-to-end tests that drive Gatehouse with real
// components: a real browser (Debian's chromium through chromedp), real
// HTTP listeners, the real upstream example app.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// chromiumPath finds Debian's chromium. In CI (CI=true) its absence is a
// failure; elsewhere the browser tests are skipped with a loud message.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: CI must install it (apt-get install chromium)")
	}
	t.Skip("SKIPPED: browser tests need chromium (apt-get install chromium)")
	return ""
}

// artifactDir is where screenshots are kept: $ARTIFACTS_DIR or ./artifacts.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	dir = filepath.Join(dir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startQuickstart runs the quickstart policy on free loopback ports: the
// echo app and the gateway, reached as http://localhost:PORT.
func startQuickstart(t *testing.T) string {
	t.Helper()
	return startEchoGateway(t, "quickstart.yaml", func(public, upstream string) string {
		return strings.NewReplacer(
			`"http://localhost:8080"`, `"`+public+`"`,
			"http://127.0.0.1:9001", upstream,
			`admin_listen: "127.0.0.1:9090"`, `admin_listen: ""`,
		).Replace(string(quickstart.Policy))
	})
}

// startEchoGateway serves, on free loopback ports, the echo app and a
// gateway built from the policy that policyFor writes for the gateway's
// public URL (http://localhost:PORT) and the echo app's URL. It returns
// the public URL.
func startEchoGateway(t *testing.T, name string, policyFor func(public, upstream string) string) string {
	t.Helper()
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := fmt.Sprintf("http://localhost:%d", gwLn.Addr().(*net.TCPAddr).Port)
	l, err := app.LoadBytes(name, []byte(policyFor(public, "http://"+upLn.Addr().String())), nil)
	if err != nil {
		t.Fatal(err)
	}
	opts, _, err := app.Build(l, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	echo := &quickstart.Echo{JWKSURL: "http://" + gwLn.Addr().String() + "/.gatehouse/jwks.json", Issuer: public}
	up := &http.Server{Handler: echo}
	srv := &http.Server{Handler: gw}
	go up.Serve(upLn)
	go srv.Serve(gwLn)
	t.Cleanup(func() { srv.Close(); up.Close() })
	return public
}

func newBrowser(t *testing.T, width, height int) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	// Not t.TempDir: its single RemoveAll runs right after chromium is
	// killed and sometimes fails ("directory not empty") while one of
	// chromium's helper processes still writes to the profile.
	dir, err := os.MkdirTemp("", "gatehouse-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(width, height),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelC()
		cancelB()
		cancelA() // kills chromium and waits for it
		for i := 0; os.RemoveAll(dir) != nil && i < 20; i++ {
			time.Sleep(50 * time.Millisecond)
		}
	})
	// The window size is not the viewport: headless chromium's window is
	// at least 500 pixels wide and its height includes the browser's bars.
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func shot(t *testing.T, ctx context.Context, name string) chromedp.Action {
	return chromedp.ActionFunc(func(c context.Context) error {
		var buf []byte
		if err := chromedp.FullScreenshot(&buf, 100).Do(c); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(artifactDir(t), name), buf, 0o644)
	})
}

// TestBrowserSignInFlow signs in as an employee in a phone-sized headless
// chromium, reaches the app with identity headers and a verified assertion,
// is denied the admin area, and signs out.
func TestBrowserSignInFlow(t *testing.T) {
	base := startQuickstart(t)
	ctx := newBrowser(t, 390, 844)

	var picker, app, denied, signedOut, after string
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`button[name="user"][value="alice"]`, chromedp.ByQuery),
		chromedp.Text(`body`, &picker, chromedp.ByQuery),
		shot(t, ctx, "static-picker-phone.png"),
		chromedp.Click(`button[name="user"][value="alice"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Text(`body`, &app, chromedp.ByQuery),
		shot(t, ctx, "echo-app-phone.png"),
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`body`, &denied, chromedp.ByQuery),
		shot(t, ctx, "denied-phone.png"),
		chromedp.Navigate(base+"/.gatehouse/logout"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		shot(t, ctx, "logout-phone.png"),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		// Not h1: the confirmation page being left has one too. The
		// notice's "Sign in again" link is on the signed-out page only.
		chromedp.WaitVisible(`a.btn:not(.btn-alt)[href="/"]`, chromedp.ByQuery),
		chromedp.Text(`body`, &signedOut, chromedp.ByQuery),
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`button[name="user"]`, chromedp.ByQuery),
		chromedp.Text(`body`, &after, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ page, text, want string }{
		{"picker", picker, "DEMO / TEST ONLY"},
		{"app", app, "X-Remote-User"},
		{"app", app, "alice"},
		{"app", app, "verified against the gateway's JWKS"},
		{"app", app, "employee"},
		{"denied", denied, "Access denied"},
		{"signed out", signedOut, "Signed out"},
		{"after sign-out", after, "Choose a test user"},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s page lacks %q:\n%s", c.page, c.want, c.text)
		}
	}
	if strings.Contains(app, "__Host-gatehouse") {
		t.Errorf("the upstream received Gatehouse's own session cookie:\n%s", app)
	}
	if strings.Contains(denied, "admin-area") || strings.Contains(denied, "role") {
		t.Errorf("denied page leaks policy internals:\n%s", denied)
	}
}
