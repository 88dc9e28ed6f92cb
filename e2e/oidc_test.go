package e2e

// Interop with an independent, certified OpenID Provider: panva's
// oidc-provider (npm), run by e2e/idp/oidc/server.mjs on 127.0.0.1. The
// tests need node and e2e/idp/oidc/node_modules (npm ci --prefix
// e2e/idp/oidc); without them they are skipped loudly, and in CI they fail.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/providers/oidc"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

const (
	opClientID     = "gatehouse-e2e"
	opClientSecret = "e2e-secret-0123456789abcdef0123456789"
	// opCallback is the provider-level tests' redirect URI; nothing
	// listens there: the test stops the browser at the redirect.
	opCallback = "http://127.0.0.1:9/.gatehouse/callback/idp"
	opLogout   = "http://127.0.0.1:9/signed-out"
)

// nodeOP finds node and the OP's packages. In CI (CI set) their absence
// is a failure; elsewhere the tests are skipped with a loud message.
func nodeOP(t *testing.T) (node, dir string) {
	t.Helper()
	dir = filepath.Join("idp", "oidc")
	var missing string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node (apt-get install nodejs)"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		missing = "e2e/idp/oidc/node_modules (npm ci --prefix e2e/idp/oidc)"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("OIDC interop tests need %s: CI must install it", missing)
		}
		t.Skipf("SKIPPED: OIDC interop tests need %s", missing)
	}
	return node, dir
}

// startOP runs the independent OP and returns its issuer URL.
func startOP(t *testing.T, redirectURIs ...string) string {
	t.Helper()
	return startOPWith(t, redirectURIs, opLogout)
}

// startOPWith runs the independent OP with the given redirect and
// post-logout URIs and returns its issuer URL.
func startOPWith(t *testing.T, redirectURIs []string, postLogoutURI string, env ...string) string {
	t.Helper()
	node, dir := nodeOP(t)
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0", "CLIENT_ID="+opClientID, "CLIENT_SECRET="+opClientSecret,
		"REDIRECT_URI="+strings.Join(redirectURIs, ","), "POST_LOGOUT_REDIRECT_URI="+postLogoutURI,
		"NODE_NO_WARNINGS=1")
	cmd.Env = append(cmd.Env, env...)
	issuer := make(chan string, 1)
	cmd.Stdout = &announceWriter{prefix: "listening ", found: issuer}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("OP stderr:\n%s", stderr.String())
		}
	})
	select {
	case iss := <-issuer:
		return iss
	case <-time.After(30 * time.Second):
		t.Fatalf("the OP did not start in 30s; stderr:\n%s", stderr.String())
	}
	return ""
}

// announceWriter is the OP's stdout: it sends the rest of the first line
// starting with prefix.
type announceWriter struct {
	prefix string
	found  chan<- string
	mu     sync.Mutex
	line   []byte
	sent   bool
}

func (w *announceWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range p {
		if c != '\n' {
			if len(w.line) < 4096 {
				w.line = append(w.line, c)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(string(w.line), w.prefix); ok && !w.sent {
			w.found <- strings.TrimSpace(rest)
			w.sent = true
		}
		w.line = w.line[:0]
	}
	return len(p), nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// browser is an HTTP client with cookies that follows redirects by hand.
type browser struct {
	t *testing.T
	c *http.Client
}

func newHTTPBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// follow GETs u and follows redirects until one points under stop; it
// returns that URL. Any non-redirect answer before is a failure.
func (b *browser) follow(u, stop string) string {
	b.t.Helper()
	for hop := 0; hop < 20; hop++ {
		resp, err := b.c.Get(u)
		if err != nil {
			b.t.Fatalf("GET %s: %v", u, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == "" {
			b.t.Fatalf("GET %s: %d without redirect: %s", u, resp.StatusCode, body)
		}
		next, err := resp.Request.URL.Parse(loc)
		if err != nil {
			b.t.Fatal(err)
		}
		if strings.HasPrefix(next.String(), stop) {
			return next.String()
		}
		u = next.String()
	}
	b.t.Fatalf("more than 20 redirects from %s", u)
	return ""
}

func newInteropProvider(t *testing.T, issuer string, mod func(c *config.OIDCProvider)) *oidc.Provider {
	t.Helper()
	c := &config.OIDCProvider{Issuer: issuer}
	c.Type = "oidc"
	c.ClientID, c.ClientSecret = opClientID, opClientSecret
	c.Scopes = []string{"openid", "email", "profile", "groups"}
	if mod != nil {
		mod(c)
	}
	p, err := oidc.New("idp", c, oidc.Env{Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func interopAttempt() *providers.Attempt {
	return &providers.Attempt{State: randomText(), Nonce: randomText(), Provider: "idp", Audience: identity.Customer,
		CallbackURL: opCallback, ReturnURL: "/", Created: time.Now()}
}

func randomText() string {
	var b [18]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// signInAt runs Begin, the OP's pages (answered at once by the test OP) and
// returns the callback request.
func signInAt(t *testing.T, b *browser, p *oidc.Provider, a *providers.Attempt) *http.Request {
	t.Helper()
	red, err := p.Begin(context.Background(), a)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	a.Data = red.Data
	return httptest.NewRequest(http.MethodGet, b.follow(red.URL, opCallback), nil)
}

func wantLoginError(t *testing.T, err error, reason string) {
	t.Helper()
	var le *providers.LoginError
	if !errors.As(err, &le) || le.Reason != reason {
		t.Fatalf("error %v, want reason %q", err, reason)
	}
}

// TestOIDCInterop signs in through the independent OP with the provider
// alone: identity, userinfo, step-up, refresh, logout and refusals.
func TestOIDCInterop(t *testing.T) {
	issuer := startOP(t, opCallback)
	ctx := context.Background()

	p := newInteropProvider(t, issuer, nil)
	if err := p.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	b := newHTTPBrowser(t)
	a := interopAttempt()
	req := signInAt(t, b, p, a)
	if p.CallbackState(req) != a.State {
		t.Fatalf("CallbackState %q", p.CallbackState(req))
	}
	id, tokens, err := p.CompleteWithTokens(ctx, req, a)
	if err != nil {
		t.Fatal(err)
	}
	checkAlice(t, id, issuer)
	if id.ACR != "urn:gatehouse:test:pwd" || !slices.Equal(id.AMR, []string{"pwd"}) || id.AuthTime.IsZero() || time.Since(id.AuthTime) > time.Minute {
		t.Errorf("acr %q amr %v auth_time %v", id.ACR, id.AMR, id.AuthTime)
	}
	if tokens[oidc.TokenAccess] == "" || tokens[oidc.TokenID] == "" || tokens[oidc.TokenRefresh] == "" {
		t.Errorf("tokens: %v", keys(tokens))
	}

	t.Run("userinfo", func(t *testing.T) {
		on := true
		p := newInteropProvider(t, issuer, func(c *config.OIDCProvider) { c.UserInfo = &on })
		a := interopAttempt()
		id, err := p.Complete(ctx, signInAt(t, newHTTPBrowser(t), p, a), a)
		if err != nil {
			t.Fatal(err)
		}
		checkAlice(t, id, issuer)
	})
	t.Run("step-up met", func(t *testing.T) {
		a := interopAttempt()
		a.StepUp = &providers.StepUp{ACR: []string{"urn:gatehouse:test:mfa"}, MFA: true, MaxAge: 5 * time.Minute}
		id, err := p.Complete(ctx, signInAt(t, newHTTPBrowser(t), p, a), a)
		if err != nil {
			t.Fatal(err)
		}
		if id.ACR != "urn:gatehouse:test:mfa" || !id.HasMFA() || !a.StepUp.SatisfiedBy(id, time.Now()) {
			t.Errorf("acr %q amr %v", id.ACR, id.AMR)
		}
	})
	t.Run("step-up ignored by the OP", func(t *testing.T) {
		a := interopAttempt()
		a.StepUp = &providers.StepUp{ACR: []string{"urn:gatehouse:test:unknown"}}
		_, err := p.Complete(ctx, signInAt(t, newHTTPBrowser(t), p, a), a)
		wantLoginError(t, err, "step_up_not_met")
	})
	t.Run("refresh", func(t *testing.T) {
		id2, tokens2, err := p.Refresh(ctx, id, tokens)
		if err != nil {
			t.Fatal(err)
		}
		if tokens2[oidc.TokenAccess] == "" || tokens2[oidc.TokenAccess] == tokens[oidc.TokenAccess] {
			t.Error("no new access token")
		}
		if id2.Subject != id.Subject || id2.Issuer != id.Issuer || !slices.Equal(id2.Groups, id.Groups) || !id2.AuthTime.Equal(id.AuthTime) {
			t.Errorf("refreshed identity %+v", id2)
		}
		bad := map[string]string{oidc.TokenRefresh: "not-a-refresh-token"}
		_, _, err = p.Refresh(ctx, id, bad)
		wantLoginError(t, err, "refresh_revoked")
	})
	t.Run("tampered state", func(t *testing.T) {
		a := interopAttempt()
		req := signInAt(t, newHTTPBrowser(t), p, a)
		q := req.URL.Query()
		q.Set("state", q.Get("state")+"x")
		tampered := httptest.NewRequest(http.MethodGet, opCallback+"?"+q.Encode(), nil)
		_, err := p.Complete(ctx, tampered, a)
		wantLoginError(t, err, "state_mismatch")
	})
	t.Run("wrong nonce", func(t *testing.T) {
		a := interopAttempt()
		req := signInAt(t, newHTTPBrowser(t), p, a)
		a.Nonce = randomText() // another attempt's nonce
		_, err := p.Complete(ctx, req, a)
		wantLoginError(t, err, "nonce_mismatch")
	})
	t.Run("OP refuses a request without PKCE", func(t *testing.T) {
		a := interopAttempt()
		red, err := p.Begin(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		a.Data = red.Data
		u, _ := url.Parse(red.URL)
		q := u.Query()
		q.Del("code_challenge")
		q.Del("code_challenge_method")
		u.RawQuery = q.Encode()
		req := httptest.NewRequest(http.MethodGet, newHTTPBrowser(t).follow(u.String(), opCallback), nil)
		_, err = p.Complete(ctx, req, a)
		wantLoginError(t, err, "oauth_error")
	})
	t.Run("logout", func(t *testing.T) {
		u, err := p.LogoutWithTokens(ctx, id, tokens, opLogout)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u, issuer+"/session/end?") {
			t.Fatalf("logout URL %s", u)
		}
		// The OP asks to confirm (a form with its xsrf token); confirming
		// returns to post_logout_redirect_uri.
		resp, err := b.c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		action := regexp.MustCompile(`action="([^"]+)"`).FindSubmatch(page)
		xsrf := regexp.MustCompile(`name="xsrf" value="([^"]+)"`).FindSubmatch(page)
		if resp.StatusCode != 200 || action == nil || xsrf == nil {
			t.Fatalf("logout page %d: %s", resp.StatusCode, page)
		}
		target, _ := resp.Request.URL.Parse(html.UnescapeString(string(action[1])))
		resp, err = b.c.PostForm(target.String(), url.Values{"xsrf": {string(xsrf[1])}, "logout": {"yes"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, opLogout) {
			t.Errorf("after logout: %d to %q", resp.StatusCode, loc)
		}
	})
}

func checkAlice(t *testing.T, id *identity.Identity, issuer string) {
	t.Helper()
	if id.Subject != "alice-0001" || id.Issuer != issuer || id.Email != "alice@example.com" || !id.EmailVerified || id.Name != "Alice Example" || !slices.Equal(id.Groups, []string{"staff", "it-admins"}) {
		t.Errorf("identity %+v", id)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestOIDCGateway signs in through the whole gateway (policy loaded by
// app.Build, provider type oidc) and the independent OP; the upstream
// sees the identity.
func TestOIDCGateway(t *testing.T) {
	nodeOP(t)
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := fmt.Sprintf("http://localhost:%d", gwLn.Addr().(*net.TCPAddr).Port)
	issuer := startOP(t, public+"/.gatehouse/callback/idp")

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"user": r.Header.Get("X-Remote-User"), "email": r.Header.Get("X-Remote-Email"), "groups": r.Header.Get("X-Remote-Groups"),
		})
	}))
	t.Cleanup(upstream.Close)

	policy := `version: 1
server:
  public_url: "` + public + `"
session:
  keys: ["${SESSION_KEY}"]
audiences:
  customer: { providers: [idp] }
providers:
  idp:
    type: oidc
    display_name: Test OP
    issuer: "` + issuer + `"
    client_id: ` + opClientID + `
    client_secret: ${OIDC_SECRET}
    scopes: [openid, email, profile, groups]
routes:
  - name: app
    match: { path: / }
    audience: customer
    allow: { groups: [staff] }
    upstream: "` + upstream.URL + `"
    forward: { user: X-Remote-User, email: X-Remote-Email, groups: X-Remote-Groups }
`
	env := func(k string) (string, bool) {
		switch k {
		case "SESSION_KEY":
			return "e2e-session-key-0123456789abcdef0123456789", true
		case "OIDC_SECRET":
			return opClientSecret, true
		}
		return "", false
	}
	l, err := app.LoadBytes("oidc-e2e.yaml", []byte(policy), env)
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
	srv := &http.Server{Handler: gw}
	go srv.Serve(gwLn)
	t.Cleanup(func() { srv.Close() })

	b := newHTTPBrowser(t)
	b.c.CheckRedirect = func(_ *http.Request, via []*http.Request) error {
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		return nil
	}
	resp, err := b.c.Get(public + "/orders?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.String() != public+"/orders?x=1" {
		t.Fatalf("ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, body)
	}
	var seen map[string]string
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatalf("upstream answer %s: %v", body, err)
	}
	if seen["user"] != "alice-0001" || seen["email"] != "alice@example.com" || !strings.Contains(seen["groups"], "staff") {
		t.Errorf("upstream saw %v", seen)
	}
	if err := gw.Ready(); err != nil {
		t.Errorf("gateway not ready after a sign-in: %v", err)
	}
}
