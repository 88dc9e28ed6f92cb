package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

// customerKey is the subject key of the static customer the tests sign in.
const customerKey = "static:shoppers|c-1001"

// privacyTestPolicy: one customer provider, two SQLite regions (the
// customer lands in eu, the default), purposes and a route.
func privacyTestPolicy(public, upstream, dir, extraServer string) string {
	return `version: 1
server: { public_url: "` + public + `"` + extraServer + ` }
audiences: { customer: { providers: [shoppers] } }
providers:
  shoppers: { type: static, users: [ { sub: c-1001, name: Dana Customer, email: dana@mail.example } ] }
privacy:
  purposes:
    - { id: terms, description: "Terms of service", legal_basis: contract, required: true }
    - { id: marketing, description: "Offers by email", legal_basis: consent }
  regions:
    default: eu
    stores: { eu: "sqlite://` + dir + `/eu.db", us: "sqlite://` + dir + `/us.db" }
routes:
  - { name: shop, match: { path: / }, audience: customer, allow: { authenticated: true }, upstream: "` + upstream + `" }
`
}

type privacyEnv struct {
	gw     *proxy.Gateway
	rt     *runtime
	srv    *httptest.Server
	admin  *httptest.Server
	client *http.Client
	dir    string
	path   string // the policy file
}

// newPrivacyEnv serves the privacy policy over TLS with its admin API and
// signs the customer in, accepting the terms.
func newPrivacyEnv(t *testing.T, extraServer string) *privacyEnv {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("shop")) }))
	t.Cleanup(up.Close)
	e := &privacyEnv{dir: t.TempDir()}
	e.srv = httptest.NewUnstartedServer(nil)
	pol := privacyTestPolicy("https://"+e.srv.Listener.Addr().String(), up.URL, e.dir, extraServer)
	e.path = filepath.Join(e.dir, "gatehouse.yaml")
	if err := os.WriteFile(e.path, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := app.Load(e.path)
	if err != nil {
		t.Fatal(err)
	}
	e.gw, e.rt, err = newGateway(l, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pp := e.gw.Privacy(); pp != nil {
			pp.Regions().Close()
		}
	})
	e.srv.Config.Handler = e.gw
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.admin = httptest.NewServer(adminHandler(e.gw, e.rt))
	t.Cleanup(e.admin.Close)
	e.client = e.signIn(t)
	return e
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// signIn signs the customer in and accepts the terms on the consent page.
func (e *privacyEnv) signIn(t *testing.T) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Get(e.srv.URL + "/.gatehouse/login?audience=customer&rd=/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	pick, _ := url.Parse(res.Header.Get("Location"))
	res, err = c.PostForm(e.srv.URL+"/.gatehouse/callback/shoppers", url.Values{"state": {pick.Query().Get("state")}, "user": {"c-1001"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: callback status %d", res.StatusCode)
	}
	// The terms are required: the consent page, then the shop.
	page := e.get(t, c, "/.gatehouse/me/consent?route=shop&rd=/")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("consent page without a form: %.500s", page)
	}
	res, err = c.PostForm(e.srv.URL+"/.gatehouse/me/consent?route=shop", url.Values{"csrf_token": {m[1]}, "return_to": {"/"}, "purpose": {"terms:1"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := appStatus(t, c, e.srv.URL); got != http.StatusOK {
		t.Fatalf("after consent: shop status %d", got)
	}
	return c
}

func (e *privacyEnv) get(t *testing.T, c *http.Client, path string) string {
	t.Helper()
	res, err := c.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// call posts body to an admin endpoint and decodes the JSON answer.
func (e *privacyEnv) call(t *testing.T, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.admin.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("%s: answer is not JSON: %v", path, err)
	}
	return res.StatusCode, out
}

func (e *privacyEnv) store(region string) store.Store {
	return e.gw.Privacy().Regions().Store(region)
}

func auditKinds(t *testing.T, s store.Store, key string) []string {
	t.Helper()
	evs, err := s.AuditEvents(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range slices.Backward(evs) {
		kinds = append(kinds, ev.Kind)
	}
	return kinds
}

func TestPrivacyAdminRefusals(t *testing.T) {
	e := newPrivacyEnv(t, `, admin_token: "`+adminToken+`"`)
	body := `{"subject_key":"` + customerKey + `"}`
	for _, path := range []string{"/privacy/export", "/privacy/erase"} {
		for _, tc := range []struct {
			name, token, body string
			want              int
			code              string
		}{
			{"no token", "", body, 401, "unauthorized"},
			{"wrong token", adminToken + "x", body, 401, "unauthorized"},
			{"not JSON", adminToken, `subject_key=x`, 400, "bad_request"},
			{"unknown field", adminToken, `{"subject":"` + customerKey + `"}`, 400, "bad_request"},
			{"no issuer", adminToken, `{"subject_key":"c-1001"}`, 400, "bad_subject_key"},
			{"tombstone", adminToken, `{"subject_key":"tomb:abc|x"}`, 400, "bad_subject_key"},
			{"unknown subject", adminToken, `{"subject_key":"static:shoppers|nobody"}`, 404, "subject_not_found"},
		} {
			status, out := e.call(t, path, tc.token, tc.body)
			if status != tc.want || out["error"] != tc.code || out["message"] == "" {
				t.Errorf("%s %s: %d %v, want %d %s", path, tc.name, status, out, tc.want, tc.code)
			}
		}
	}
	if appStatus(t, e.client, e.srv.URL) != http.StatusOK {
		t.Fatal("a refused admin call ended the session")
	}
	if regions, _ := e.gw.Privacy().Regions().Locate(context.Background(), customerKey); !slices.Equal(regions, []string{"eu"}) {
		t.Fatalf("a refused admin call changed the data: regions %v", regions)
	}
}

func TestPrivacyAdminDisabledWithoutToken(t *testing.T) {
	e := newPrivacyEnv(t, "")
	for _, path := range []string{"/privacy/export", "/privacy/erase"} {
		status, out := e.call(t, path, "anything", `{"subject_key":"`+customerKey+`"}`)
		if status != http.StatusForbidden || out["error"] != "admin_api_disabled" {
			t.Errorf("%s without a configured token: %d %v, want 403 admin_api_disabled", path, status, out)
		}
	}
	if appStatus(t, e.client, e.srv.URL) != http.StatusOK {
		t.Error("the session ended")
	}
}

func TestPrivacyExportAndEraseThroughCLI(t *testing.T) {
	e := newPrivacyEnv(t, `, admin_token: "`+adminToken+`"`)
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", adminToken)
	var out, errOut bytes.Buffer

	// Export to a file.
	file := filepath.Join(e.dir, "export.json")
	if code := run([]string{"privacy", "export", "--admin", e.admin.URL, "--subject", customerKey, "-o", file}, &out, &errOut); code != 0 {
		t.Fatalf("privacy export: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "exported 1 region(s): eu") {
		t.Errorf("export progress: %q", errOut.String())
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var exp exportResponse
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Exports) != 1 || exp.Exports[0].Region != "eu" || exp.Exports[0].Subject != customerKey ||
		exp.Exports[0].Profile == nil || exp.Exports[0].Profile.Claims["email"] != "dana@mail.example" ||
		!slices.Equal(exp.Exports[0].Current, []string{"terms:1"}) || !strings.HasPrefix(exp.RequestID, "admin-") {
		t.Fatalf("export: %s", raw)
	}
	kinds := auditKinds(t, e.store("eu"), customerKey)
	if !slices.Equal(kinds[len(kinds)-2:], []string{"export", "admin"}) {
		t.Errorf("audit after the export: %v, want ... export admin", kinds)
	}

	// Erase refuses without --yes, and without a subject key.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"privacy", "erase", "--admin", e.admin.URL, "--subject", customerKey}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--yes") {
		t.Errorf("erase without --yes: exit %d, stderr %q", code, errOut.String())
	}
	if code := run([]string{"privacy", "erase", "--admin", e.admin.URL, "--yes"}, &out, &errOut); code != 2 {
		t.Errorf("erase without --subject: exit %d", code)
	}
	if appStatus(t, e.client, e.srv.URL) != http.StatusOK {
		t.Fatal("a refused erase ended the session")
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"privacy", "erase", "--admin", e.admin.URL, "--subject", customerKey, "--yes"}, &out, &errOut); code != 0 {
		t.Fatalf("privacy erase: exit %d: %s", code, errOut.String())
	}
	receipt := regexp.MustCompile(`region eu: receipt (tomb:[0-9a-f]{32})`).FindStringSubmatch(out.String())
	if receipt == nil || !strings.Contains(out.String(), "sessions ended on every replica: provider:shoppers") ||
		!strings.Contains(out.String(), "profile deleted: 1") {
		t.Fatalf("erase output:\n%s", out.String())
	}
	// The session has ended, the data is gone from every region, and the
	// erasure is recorded under the receipt only.
	if got := appStatus(t, e.client, e.srv.URL); got != http.StatusFound {
		t.Errorf("after the erasure: shop status %d, want 302 to sign in", got)
	}
	if regions, err := e.gw.Privacy().Regions().Locate(context.Background(), customerKey); err != nil || len(regions) != 0 {
		t.Errorf("after the erasure the subject is still in %v (%v)", regions, err)
	}
	if kinds := auditKinds(t, e.store("eu"), customerKey); len(kinds) != 0 {
		t.Errorf("audit events still under the subject: %v", kinds)
	}
	if kinds := auditKinds(t, e.store("eu"), receipt[1]); !slices.Contains(kinds, "delete") || !slices.Contains(kinds, "admin") || !slices.Contains(kinds, "sign_in") {
		t.Errorf("audit events under the receipt: %v", kinds)
	}

	// A second erase finds nothing.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"privacy", "erase", "--admin", e.admin.URL, "--subject", customerKey, "--yes"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "subject_not_found") {
		t.Errorf("erasing again: exit %d, stderr %q", code, errOut.String())
	}
	// A wrong token is refused with the gateway's message.
	t.Setenv("GATEHOUSE_ADMIN_TOKEN", "wrong-token-0123456789abcdef0123456789")
	errOut.Reset()
	if code := run([]string{"privacy", "export", "--admin", e.admin.URL, "--subject", customerKey}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "unauthorized") {
		t.Errorf("wrong token: exit %d, stderr %q", code, errOut.String())
	}
}

func TestPrivacyEraseKeepsOtherCustomers(t *testing.T) {
	e := newPrivacyEnv(t, `, admin_token: "`+adminToken+`"`)
	ctx := context.Background()
	// Another customer of the same provider, in the other region, via the
	// policy directly.
	other := "static:shoppers|c-2002"
	if err := e.store("us").UpsertProfile(ctx, store.Profile{SubjectKey: other, Provider: "shoppers", Region: "us"}); err != nil {
		t.Fatal(err)
	}
	status, out := e.call(t, "/privacy/erase", adminToken, `{"subject_key":"`+customerKey+`"}`)
	if status != http.StatusOK {
		t.Fatalf("erase: %d %v", status, out)
	}
	if rs, _ := out["receipts"].([]any); len(rs) != 1 {
		t.Errorf("receipts: %v", out["receipts"])
	}
	if regions, _ := e.gw.Privacy().Regions().Locate(ctx, other); !slices.Equal(regions, []string{"us"}) {
		t.Errorf("the other customer's data: regions %v", regions)
	}
	status, out = e.call(t, "/privacy/export", adminToken, `{"subject_key":"`+other+`"}`)
	if status != http.StatusOK || !slices.Equal(toStrings(out["regions"]), []string{"us"}) {
		t.Errorf("export of the other customer: %d %v", status, out)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestPrivacySignOutAndReloadAudited(t *testing.T) {
	e := newPrivacyEnv(t, "")
	// Sign out through the confirmation form.
	page := e.get(t, e.client, "/.gatehouse/logout")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("logout page without a form: %.400s", page)
	}
	res, err := e.client.PostForm(e.srv.URL+"/.gatehouse/logout", url.Values{"csrf_token": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	kinds := auditKinds(t, e.store("eu"), customerKey)
	if len(kinds) == 0 || kinds[len(kinds)-1] != privacy.KindSignOut {
		t.Errorf("audit after sign-out: %v, want ... sign_out", kinds)
	}

	// A successful reload is recorded in every region, as a system event.
	old := e.gw.Policy().Hash
	data, _ := os.ReadFile(e.path)
	os.WriteFile(e.path, append(data, []byte("# changed\n")...), 0o600)
	next, err := reload(e.path, e.gw, e.rt)
	if err != nil {
		t.Fatal(err)
	}
	auditPolicyReload(e.gw, zap.NewNop(), old, next.Hash, "test")
	for _, region := range []string{"eu", "us"} {
		evs, err := e.store(region).AuditEvents(context.Background(), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != privacy.KindPolicyReload || evs[0].Detail["policy_sha256"] != next.Hash ||
			evs[0].Detail["previous_sha256"] != old || next.Hash == old {
			t.Errorf("region %s: system events %+v", region, evs)
		}
	}
}

func TestProvidersForIssuer(t *testing.T) {
	e := newPrivacyEnv(t, "")
	for _, tc := range []struct {
		issuer string
		want   []string
	}{
		{"static:shoppers", []string{"shoppers"}},
		{"local:shoppers", nil},
		{"static:other", nil},
		{"", nil},
	} {
		if got := e.gw.ProvidersForIssuer(tc.issuer); !slices.Equal(got, tc.want) {
			t.Errorf("ProvidersForIssuer(%q) = %v, want %v", tc.issuer, got, tc.want)
		}
	}
}
