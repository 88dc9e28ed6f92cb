package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// TestOIDCBackChannelLogoutAndRefresh runs the gateway against the
// independent OP (oidc-provider) with back-channel logout and short-lived
// access tokens:
//
//   - a route forwards the access token: the session keeps the tokens and
//     refreshes them at the OP before they expire, and the forwarded token
//     is accepted by the OP's userinfo endpoint;
//   - signing out at the OP (not through the gateway) makes the OP post a
//     logout token to /.gatehouse/oidc/idp/backchannel-logout, which ends
//     the gateway session, including copies of its cookie.
func TestOIDCBackChannelLogoutAndRefresh(t *testing.T) {
	nodeOP(t)
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := fmt.Sprintf("http://localhost:%d", gwLn.Addr().(*net.TCPAddr).Port)
	issuer := startOPWith(t, []string{public + "/.gatehouse/callback/idp"}, "",
		// 127.0.0.1, not localhost: Node may resolve localhost to ::1 first,
		// where the gateway does not listen.
		"BACKCHANNEL_LOGOUT_URI=http://"+gwLn.Addr().String()+"/.gatehouse/oidc/idp/backchannel-logout", "ACCESS_TOKEN_TTL=30")

	var mu sync.Mutex
	var tokens []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokens = append(tokens, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprintf(w, "user=%s", r.Header.Get("X-Remote-User"))
	}))
	t.Cleanup(upstream.Close)

	policy := `version: 1
server:
  public_url: "` + public + `"
session:
  keys: ["e2e-session-key-0123456789abcdef0123456789"]
audiences:
  customer: { providers: [idp] }
providers:
  idp:
    type: oidc
    issuer: "` + issuer + `"
    client_id: ` + opClientID + `
    client_secret: "` + opClientSecret + `"
    scopes: [openid, offline_access, email, profile]
routes:
  - name: orders
    match: { path: /orders }
    audience: customer
    allow: { authenticated: true }
    upstream: "` + upstream.URL + `"
    forward: { user: X-Remote-User, access_token: Authorization }
`
	l, err := app.LoadBytes("backchannel.yaml", []byte(policy), nil)
	if err != nil {
		t.Fatal(err)
	}
	var logBuf syncBuffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logBuf), zap.DebugLevel)
	opts, _, err := app.Build(l, zap.New(core), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: gw}
	go srv.Serve(gwLn)
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logBuf.String())
		}
	})

	b := newHTTPBrowser(t)
	b.c.CheckRedirect = func(_ *http.Request, via []*http.Request) error {
		if len(via) > 20 {
			return errors.New("too many redirects")
		}
		return nil
	}
	get := func(c *http.Client, path string) (int, string) {
		res, err := c.Get(public + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	if code, body := get(b.c, "/orders"); code != 200 || body != "user=alice-0001" {
		t.Fatalf("sign-in through the OP: %d %q", code, body)
	}
	// The access token lives 30 s, inside the one-minute refresh window: the
	// very first request after sign-in refreshed it.
	if !strings.Contains(logBuf.String(), `"session":"refreshed"`) {
		t.Error("the session was not refreshed although its access token expires within a minute")
	}
	mu.Lock()
	forwarded := tokens[len(tokens)-1]
	mu.Unlock()
	if !strings.HasPrefix(forwarded, "Bearer ") {
		t.Fatalf("upstream Authorization %q", forwarded)
	}
	// The forwarded token is one the OP honours.
	req, _ := http.NewRequest("GET", issuer+"/me", nil)
	req.Header.Set("Authorization", forwarded)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var me map[string]any
	json.NewDecoder(res.Body).Decode(&me)
	res.Body.Close()
	if res.StatusCode != 200 || me["sub"] != "alice-0001" {
		t.Fatalf("the OP's userinfo with the forwarded token: %d %v", res.StatusCode, me)
	}

	// A copy of the session cookie, as an attacker or a second tab has it.
	pub, _ := url.Parse(public)
	copyJar := newHTTPBrowser(t)
	copyJar.c.Jar.SetCookies(pub, b.c.Jar.Cookies(pub))
	if code, _ := get(copyJar.c, "/orders"); code != 200 {
		t.Fatalf("copied cookie before the OP logout: %d", code)
	}

	// Sign out at the OP itself: its confirmation form, then the OP posts
	// the logout token to the gateway's back channel.
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err = b.c.Get(issuer + "/session/end")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	action := regexp.MustCompile(`action="([^"]+)"`).FindSubmatch(page)
	xsrf := regexp.MustCompile(`name="xsrf" value="([^"]+)"`).FindSubmatch(page)
	if action == nil || xsrf == nil {
		t.Fatalf("OP logout page without its form: %d %s", res.StatusCode, page)
	}
	target, _ := res.Request.URL.Parse(string(action[1]))
	res, err = b.c.PostForm(target.String(), url.Values{"xsrf": {string(xsrf[1])}, "logout": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode >= 400 {
		t.Fatalf("OP logout confirmation: %d", res.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logBuf.String(), "IdP logout: sessions ended") {
		if time.Now().After(deadline) {
			t.Fatal("the OP's back-channel logout did not reach the gateway")
		}
		time.Sleep(20 * time.Millisecond)
	}
	noFollow := func(c *http.Client) *http.Client {
		cc := *c
		cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return &cc
	}
	for name, c := range map[string]*http.Client{"the browser": b.c, "the copied cookie": copyJar.c} {
		res, err := noFollow(c).Get(public + "/orders")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || !strings.Contains(res.Header.Get("Location"), "/.gatehouse/login?") {
			t.Errorf("%s after the OP's back-channel logout: %d %q, want 302 to sign in", name, res.StatusCode, res.Header.Get("Location"))
		}
	}
	// Replaying a logout token is refused (the jti is single-use): the
	// gateway logged one acceptance only.
	if n := strings.Count(logBuf.String(), "back-channel logout accepted"); n != 1 {
		t.Errorf("%d back-channel logouts accepted, want 1", n)
	}
}
