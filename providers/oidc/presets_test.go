package oidc

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/providers"
)

const (
	tenantA = "11111111-2222-3333-4444-555555555555"
	tenantB = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
)

func newMicrosoft(t *testing.T, op *fakeOP, tenant string, allowed ...string) *Provider {
	t.Helper()
	c := &config.MicrosoftProvider{Tenant: tenant, AllowedTenants: allowed, Authority: op.srv.URL}
	c.Type = "microsoft"
	c.ClientID, c.ClientSecret = op.clientID, op.clientSecret
	p, err := NewMicrosoft("ms", c, Env{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMicrosoftMultiTenant: for tenant common the discovered issuer is a
// template; an ID token's iss must be the template filled with its own
// tid, and the tid may be restricted.
func TestOIDCMicrosoftMultiTenant(t *testing.T) {
	op := newFakeOPAt(t, "/common/v2.0")
	op.aliases = []string{"/organizations/v2.0"}
	op.discoveryIssuer = op.srv.URL + "/{tenantid}/v2.0"
	tokenFrom := func(iss, tid string) {
		op.set(func(op *fakeOP) {
			op.mutate = func(c map[string]any) {
				c["iss"] = iss
				if tid != "" {
					c["tid"] = tid
				} else {
					delete(c, "tid")
				}
			}
		})
	}
	issOf := func(tid string) string { return op.srv.URL + "/" + tid + "/v2.0" }

	p := newMicrosoft(t, op, "common")
	if p.Type() != "microsoft" || p.DisplayName() != "Continue with Microsoft" {
		t.Errorf("type %q display %q", p.Type(), p.DisplayName())
	}
	tokenFrom(issOf(tenantA), tenantA)
	id, err := signIn(t, p, newAttempt())
	if err != nil {
		t.Fatal(err)
	}
	if id.Issuer != issOf(tenantA) || id.Subject != "user-123" {
		t.Errorf("identity at %q / %q", id.Issuer, id.Subject)
	}
	if p.Issuer() != op.srv.URL+"/{tenantid}/v2.0" {
		t.Errorf("Issuer() = %q", p.Issuer())
	}

	for _, tc := range []struct {
		name, iss, tid, reason string
	}{
		{"iss of another tenant than tid", issOf(tenantB), tenantA, "bad_id_token"},
		{"no tid", issOf(tenantA), "", "bad_id_token"},
		{"the template itself", op.srv.URL + "/{tenantid}/v2.0", tenantA, "bad_id_token"},
		{"foreign host", "https://evil.example.com/" + tenantA + "/v2.0", tenantA, "bad_id_token"},
		{"tid not a GUID", issOf("common"), "common", "bad_id_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokenFrom(tc.iss, tc.tid)
			_, err := signIn(t, p, newAttempt())
			wantReason(t, err, tc.reason)
		})
	}

	t.Run("allowed tenants", func(t *testing.T) {
		p := newMicrosoft(t, op, "organizations", tenantA)
		tokenFrom(issOf(tenantA), tenantA)
		if _, err := signIn(t, p, newAttempt()); err != nil {
			t.Fatal(err)
		}
		tokenFrom(issOf(tenantB), tenantB)
		_, err := signIn(t, p, newAttempt())
		wantReason(t, err, "tenant_not_allowed")
	})
	t.Run("organizations refuses personal accounts", func(t *testing.T) {
		p := newMicrosoft(t, op, "organizations")
		tokenFrom(issOf(msConsumersTenant), msConsumersTenant)
		_, err := signIn(t, p, newAttempt())
		wantReason(t, err, "tenant_not_allowed")
	})
}

func TestOIDCMicrosoftSingleTenant(t *testing.T) {
	op := newFakeOPAt(t, "/"+tenantA+"/v2.0")
	p := newMicrosoft(t, op, tenantA)
	id, err := signIn(t, p, newAttempt())
	if err != nil || id.Issuer != op.srv.URL+"/"+tenantA+"/v2.0" {
		t.Fatalf("%v %v", id, err)
	}
	// Another tenant's token is refused, tid or not.
	op.set(func(op *fakeOP) {
		op.mutate = func(c map[string]any) { c["iss"] = op.srv.URL + "/" + tenantB + "/v2.0"; c["tid"] = tenantB }
	})
	_, err = signIn(t, p, newAttempt())
	wantReason(t, err, "bad_id_token")
}

func TestOIDCMicrosoftTenantByDomain(t *testing.T) {
	op := newFakeOPAt(t, "/contoso.onmicrosoft.com/v2.0")
	op.discoveryIssuer = op.srv.URL + "/" + tenantA + "/v2.0"
	op.mutate = func(c map[string]any) { c["iss"] = op.srv.URL + "/" + tenantA + "/v2.0" }
	p := newMicrosoft(t, op, "contoso.onmicrosoft.com")
	id, err := signIn(t, p, newAttempt())
	if err != nil || id.Issuer != op.srv.URL+"/"+tenantA+"/v2.0" {
		t.Fatalf("%v %v", id, err)
	}
	// Discovery naming something else than authority/<guid>/v2.0 fails.
	op2 := newFakeOPAt(t, "/contoso.onmicrosoft.com/v2.0")
	op2.discoveryIssuer = "https://evil.example.com/" + tenantA + "/v2.0"
	if err := newMicrosoft(t, op2, "contoso.onmicrosoft.com").Discover(context.Background()); err == nil {
		t.Fatal("foreign discovered issuer accepted")
	}
}

func TestOIDCGooglePreset(t *testing.T) {
	op := newFakeOP(t)
	op.claims["hd"] = "example.com"
	c := &config.GoogleProvider{HostedDomain: "example.com"}
	c.Type = "google"
	c.ClientID, c.ClientSecret = op.clientID, op.clientSecret
	p, err := newGoogle("google", c, Env{}, op.issuer())
	if err != nil {
		t.Fatal(err)
	}
	a := newAttempt()
	a.Prompt = "create" // Google has no sign-up parameter: nothing is sent
	id, err := signIn(t, p, a)
	if err != nil || id.Issuer != op.issuer() {
		t.Fatalf("%v %v", id, err)
	}
	if op.lastAuth.Get("hd") != "example.com" || op.lastAuth.Has("prompt") {
		t.Errorf("authorization request %v", op.lastAuth)
	}
	op.set(func(op *fakeOP) { op.claims["hd"] = "other.example" })
	_, err = signIn(t, p, newAttempt())
	wantReason(t, err, "hosted_domain")
	if gp, _ := NewGoogle("g", c, Env{}); gp.Issuer() != "https://accounts.google.com" {
		t.Errorf("google issuer %q", gp.Issuer())
	}
}

func TestOIDCGitLabPreset(t *testing.T) {
	op := newFakeOP(t)
	op.claims = map[string]any{} // GitLab's groups come from userinfo
	op.userinfo = func(sub string) map[string]any {
		return map[string]any{"sub": sub, "email": "dev@example.com", "email_verified": true, "groups": []string{"acme", "acme/devs"}}
	}
	c := &config.GitLabProvider{BaseURL: op.issuer()}
	c.Type = "gitlab"
	c.ClientID, c.ClientSecret = op.clientID, op.clientSecret
	p, err := NewGitLab("gitlab", c, Env{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := signIn(t, p, newAttempt())
	if err != nil || !slices.Equal(id.Groups, []string{"acme", "acme/devs"}) || !id.EmailVerified {
		t.Fatalf("%+v %v", id, err)
	}
}

// fakeGitHub is GitHub's OAuth endpoints and the few API calls used.
type fakeGitHub struct {
	srv       *httptest.Server
	mu        sync.Mutex
	challenge string
	emails    []githubEmail
	lastAuth  url.Values
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{emails: []githubEmail{
		{Email: "old@example.com", Primary: false, Verified: true},
		{Email: "octo@example.com", Primary: true, Verified: true},
		{Email: "unverified@example.com", Primary: false, Verified: false},
	}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get("Authorization") != "Bearer gho_token" {
		writeJSON(w, 401, map[string]any{"message": "Bad credentials"})
		return
	}
	switch r.URL.Path {
	case "/login/oauth/authorize":
		q := r.URL.Query()
		g.lastAuth = q
		g.challenge = q.Get("code_challenge")
		cb, _ := url.Parse(q.Get("redirect_uri"))
		cb.RawQuery = url.Values{"code": {"gh-code"}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, cb.String(), http.StatusFound)
	case "/login/oauth/access_token":
		r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("code") != "gh-code" || r.PostForm.Get("client_secret") != "gh-secret" || b64(sum[:]) != g.challenge {
			// GitHub answers errors with 200 and a form body.
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			w.Write([]byte("error=bad_verification_code&error_description=The+code+passed+is+incorrect"))
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.Write([]byte("access_token=gho_token&scope=read%3Aorg%2Cread%3Auser%2Cuser%3Aemail&token_type=bearer"))
	case "/api/user":
		writeJSON(w, 200, map[string]any{"id": 583231, "login": "octocat", "name": "The Octocat", "email": "public@example.com"})
	case "/api/user/emails":
		writeJSON(w, 200, g.emails)
	case "/api/user/orgs":
		if r.URL.Query().Get("page") == "2" {
			writeJSON(w, 200, []map[string]any{{"login": "org-three"}})
			return
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s/api/user/orgs?per_page=100&page=2>; rel="next", <%s/api/user/orgs?per_page=100&page=2>; rel="last"`, g.srv.URL, g.srv.URL))
		writeJSON(w, 200, []map[string]any{{"login": "org-one"}, {"login": "org-two"}})
	case "/api/user/teams":
		writeJSON(w, 200, []map[string]any{{"slug": "core", "organization": map[string]any{"login": "org-one"}}})
	default:
		http.NotFound(w, r)
	}
}

func newGitHubProvider(t *testing.T, g *fakeGitHub, mod func(c *config.GitHubProvider)) *GitHub {
	c := &config.GitHubProvider{BaseURL: g.srv.URL, APIURL: g.srv.URL + "/api"}
	c.Type = "github"
	c.ClientID, c.ClientSecret = "gh-client", "gh-secret"
	if mod != nil {
		mod(c)
	}
	p, err := NewGitHub("github", c, Env{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOIDCGitHub(t *testing.T) {
	g := newFakeGitHub(t)
	p := newGitHubProvider(t, g, func(c *config.GitHubProvider) { c.OrgsAsGroups, c.TeamsAsGroups = true, true })
	a := newAttempt()
	id, tokens, err := p.CompleteWithTokens(context.Background(), authorize(t, p, a), a)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "583231" || id.Issuer != g.srv.URL || id.Name != "The Octocat" || id.Extra["login"] != "octocat" {
		t.Errorf("identity %+v", id)
	}
	if id.Email != "octo@example.com" || !id.EmailVerified {
		t.Errorf("email %q verified %v: want the verified primary", id.Email, id.EmailVerified)
	}
	if want := []string{"org-one", "org-two", "org-three", "org-one/core"}; !slices.Equal(id.Groups, want) {
		t.Errorf("groups %v, want %v", id.Groups, want)
	}
	if g.lastAuth.Get("scope") != "read:user user:email read:org" || g.lastAuth.Get("code_challenge_method") != "S256" || g.lastAuth.Get("state") != a.State {
		t.Errorf("authorize request %v", g.lastAuth)
	}
	if tokens[TokenAccess] != "gho_token" || tokens[TokenID] != "" {
		t.Errorf("tokens %v", tokens)
	}
	if p.Type() != "github" || p.DisplayName() != "Continue with GitHub" {
		t.Errorf("type %q display %q", p.Type(), p.DisplayName())
	}

	t.Run("unverified primary email is ignored", func(t *testing.T) {
		g.mu.Lock()
		g.emails = []githubEmail{{Email: "primary@example.com", Primary: true, Verified: false}, {Email: "other@example.com", Verified: true}}
		g.mu.Unlock()
		id, err := signIn(t, newGitHubProvider(t, g, nil), newAttempt())
		if err != nil {
			t.Fatal(err)
		}
		if id.Email != "" || id.EmailVerified || id.Groups != nil {
			t.Errorf("email %q verified %v groups %v", id.Email, id.EmailVerified, id.Groups)
		}
	})
	t.Run("bad code", func(t *testing.T) {
		a := newAttempt()
		req := authorize(t, p, a)
		a.Data[DataVerifier] = "wrong-verifier-wrong-verifier-wrong-verifier-wrong"
		_, err := p.Complete(context.Background(), req, a)
		le := wantReason(t, err, "code_exchange")
		if !strings.Contains(le.Err.Error(), "bad_verification_code") {
			t.Errorf("error %v", le.Err)
		}
	})
	t.Run("state mismatch", func(t *testing.T) {
		a := newAttempt()
		req := authorize(t, p, a)
		a.State = "another"
		_, err := p.Complete(context.Background(), req, a)
		wantReason(t, err, "state_mismatch")
	})
	t.Run("step-up refused at once", func(t *testing.T) {
		a := newAttempt()
		a.StepUp = &providers.StepUp{MFA: true}
		_, err := p.Begin(context.Background(), a)
		wantReason(t, err, "step_up_not_met")
	})
}

// TestConfigThroughLoader: the provider types load from a policy with
// strict keys, and every setting reaches the provider.
func TestOIDCConfigThroughLoader(t *testing.T) {
	policy := `version: 1
audiences:
  customer: { providers: [corp, google, ms, gh, gl] }
providers:
  corp:
    type: oidc
    issuer: https://id.example.com/
    client_id: gatehouse
    client_secret: ${SECRET}
    scopes: [openid, email, offline_access]
    claims: { groups: realm_access.roles, extra: [tenant] }
    userinfo: true
    prompt: select_account
    acr_values: [silver]
    max_age: 1h
    signup_prompt: screen_hint=signup
    auth_params: { ui_locales: fr }
    allowed_algorithms: [RS256, ES256]
    response_mode: form_post
    mfa_acr_values: [urn:mfa]
    timeout: 5s
  google: { type: google, client_id: g, client_secret: s, hosted_domain: example.com }
  ms: { type: microsoft, client_id: m, client_secret: s, tenant: organizations, allowed_tenants: [` + tenantA + `] }
  gh: { type: github, client_id: h, client_secret: s, orgs_as_groups: true, api_url: https://ghe.example.com/api/v3 }
  gl: { type: gitlab, client_id: l, client_secret: s, base_url: https://gitlab.example.com }
routes:
  - { name: shop, match: { path: / }, audience: customer, allow: { authenticated: true }, upstream: "http://127.0.0.1:9" }
`
	cfg, err := config.Parse("p.yaml", []byte(policy), func(k string) (string, bool) { return "from-env", k == "SECRET" })
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.Providers["corp"].OIDC
	if o == nil || o.ClientSecret != "from-env" || o.Issuer != "https://id.example.com/" || o.MaxAge.D().String() != "1h0m0s" || !*o.UserInfo || o.ResponseMode != "form_post" {
		t.Fatalf("oidc settings %+v", o)
	}
	for name, typ := range map[string]string{"corp": "oidc", "google": "google", "ms": "microsoft", "gh": "github", "gl": "gitlab"} {
		pc := cfg.Providers[name]
		p, err := NewFromSettings(name, pc.Settings(), Env{})
		if err != nil || p.Type() != typ {
			t.Fatalf("%s: %v %v", name, p, err)
		}
	}
	corpCfg := cfg.Providers["corp"]
	corp, _ := NewFromSettings("corp", corpCfg.Settings(), Env{})
	if s := corp.(*Provider).s; !s.formPost || s.claims.Groups != "realm_access.roles" || s.claims.Email != "email" || s.signup.Get("screen_hint") != "signup" || s.timeout.String() != "5s" {
		t.Errorf("resolved settings %+v", s)
	}
}

func TestOIDCConfigValidate(t *testing.T) {
	bad := []struct {
		name string
		c    config.OIDCProvider
		key  string
	}{
		{"no issuer", config.OIDCProvider{OAuthClient: config.OAuthClient{ClientID: "x"}}, "issuer"},
		{"http issuer", config.OIDCProvider{Issuer: "http://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}}, "issuer"},
		{"issuer with query", config.OIDCProvider{Issuer: "https://id.example.com/?a=b", OAuthClient: config.OAuthClient{ClientID: "x"}}, "issuer"},
		{"no client id", config.OIDCProvider{Issuer: "https://id.example.com"}, "client_id"},
		{"scopes without openid", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x", Scopes: []string{"email"}}}, "scopes"},
		{"alg none", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}, OIDCOptions: config.OIDCOptions{AllowedAlgorithms: []string{"none"}}}, "allowed_algorithms"},
		{"alg HS256", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}, OIDCOptions: config.OIDCOptions{AllowedAlgorithms: []string{"RS256", "HS256"}}}, "allowed_algorithms"},
		{"response mode", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}, OIDCOptions: config.OIDCOptions{ResponseMode: "fragment"}}, "response_mode"},
		{"prompt", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}, OIDCOptions: config.OIDCOptions{Prompt: "none login"}}, "prompt"},
		{"reserved auth param", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}, OIDCOptions: config.OIDCOptions{AuthParams: map[string]string{"nonce": "x"}}}, "auth_params"},
		{"signup overriding state", config.OIDCProvider{Issuer: "https://id.example.com", OAuthClient: config.OAuthClient{ClientID: "x"}, OIDCOptions: config.OIDCOptions{SignupPrompt: "state=x"}}, "signup_prompt"},
	}
	for _, tc := range bad {
		errs := tc.c.Validate()
		if !slices.ContainsFunc(errs, func(e config.FieldError) bool { return e.Key == tc.key }) {
			t.Errorf("%s: errors %v, want one at %s", tc.name, errs, tc.key)
		}
	}
	good := config.OIDCProvider{Issuer: "http://127.0.0.1:5556/dex", OAuthClient: config.OAuthClient{ClientID: "x"}}
	if errs := good.Validate(); len(errs) > 0 {
		t.Errorf("loopback http issuer refused: %v", errs)
	}
	ms := config.MicrosoftProvider{Tenant: tenantA, AllowedTenants: []string{tenantB}, OAuthClient: config.OAuthClient{ClientID: "x"}}
	if errs := ms.Validate(); len(errs) != 1 || errs[0].Key != "allowed_tenants" {
		t.Errorf("microsoft: %v", errs)
	}
	ms = config.MicrosoftProvider{Tenant: "not a tenant", OAuthClient: config.OAuthClient{ClientID: "x"}}
	if errs := ms.Validate(); len(errs) != 1 || errs[0].Key != "tenant" {
		t.Errorf("microsoft: %v", errs)
	}
	gh := config.GitHubProvider{OAuthClient: config.OAuthClient{ClientID: "x"}}
	if errs := gh.Validate(); len(errs) != 1 || errs[0].Key != "client_secret" {
		t.Errorf("github: %v", errs)
	}
	if _, err := New("x", &config.OIDCProvider{}, Env{}); err == nil {
		t.Error("New accepted empty settings")
	}
}
