package main

import (
	"bytes"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

const adminToken = "admin-token-0123456789abcdef0123456789"

// signedInGateway serves a gateway with a static provider over TLS and
// returns it with a client signed in as alice.
func signedInGateway(t *testing.T, extraServer string) (*proxy.Gateway, *runtime, *httptest.Server, *http.Client) {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) }))
	t.Cleanup(up.Close)
	srv := httptest.NewUnstartedServer(nil)
	pol := `version: 1
server: { public_url: "https://` + srv.Listener.Addr().String() + `"` + extraServer + ` }
audiences: { workforce: { providers: [corp] } }
providers:
  corp: { type: static, users: [ { sub: alice, email: alice@corp.example } ] }
routes:
  - { name: app, match: { path: / }, audience: workforce, allow: { authenticated: true }, upstream: "` + up.URL + `" }
`
	l, err := app.LoadBytes("test.yaml", []byte(pol), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, rt, err := newGateway(l, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = gw
	srv.StartTLS()
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Get(srv.URL + "/.gatehouse/login?audience=workforce&rd=/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	pick, _ := url.Parse(res.Header.Get("Location"))
	res, err = c.PostForm(srv.URL+"/.gatehouse/callback/corp", url.Values{"state": {pick.Query().Get("state")}, "user": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || appStatus(t, c, srv.URL) != http.StatusOK {
		t.Fatalf("sign-in: callback status %d", res.StatusCode)
	}
	return gw, rt, srv, c
}

func appStatus(t *testing.T, c *http.Client, base string) int {
	t.Helper()
	res, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestAdminRevokeThroughCLI(t *testing.T) {
	gw, rt, srv, client := signedInGateway(t, `, admin_token: "`+adminToken+`"`)
	admin := httptest.NewServer(adminHandler(gw, rt))
	defer admin.Close()

	post := func(token, body string) int {
		req, _ := http.NewRequest(http.MethodPost, admin.URL+"/sessions/revoke", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tc := range []struct {
		name, token, body string
		want              int
	}{
		{"no token", "", `{"user":"alice"}`, 401},
		{"wrong token", adminToken + "x", `{"user":"alice"}`, 401},
		{"two kinds", adminToken, `{"user":"alice","session_id":"x"}`, 400},
		{"subject without provider", adminToken, `{"subject":"alice"}`, 400},
		{"unknown field", adminToken, `{"usr":"alice"}`, 400},
		{"not JSON", adminToken, `user=alice`, 400},
	} {
		if got := post(tc.token, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	if appStatus(t, client, srv.URL) != http.StatusOK {
		t.Fatal("a refused admin call ended the session")
	}

	var out, errOut bytes.Buffer
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", adminToken)
	if code := run([]string{"sessions", "revoke", "--admin", admin.URL, "--user", "ALICE@corp.example"}, &out, &errOut); code != 0 {
		t.Fatalf("sessions revoke: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "revoked (user)") {
		t.Errorf("CLI output %q", out.String())
	}
	if got := appStatus(t, client, srv.URL); got != http.StatusFound {
		t.Errorf("after revocation: status %d, want 302 to sign in", got)
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"sessions", "revoke", "--admin", admin.URL}, &out, &errOut); code != 2 {
		t.Errorf("revoke without a target: exit %d, want 2", code)
	}
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", "wrong-token-0123456789abcdef0123456789")
	if code := run([]string{"sessions", "revoke", "--admin", admin.URL, "--user", "x"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "refused") {
		t.Errorf("wrong token: exit %d, stderr %q", code, errOut.String())
	}
}

func TestAdminRevokeDisabledWithoutToken(t *testing.T) {
	gw, rt, srv, client := signedInGateway(t, "")
	admin := httptest.NewServer(adminHandler(gw, rt))
	defer admin.Close()
	req, _ := http.NewRequest(http.MethodPost, admin.URL+"/sessions/revoke", strings.NewReader(`{"user":"alice"}`))
	req.Header.Set("Authorization", "Bearer ")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("admin write without a configured token: status %d, want 403", res.StatusCode)
	}
	if appStatus(t, client, srv.URL) != http.StatusOK {
		t.Error("the session ended")
	}
}
