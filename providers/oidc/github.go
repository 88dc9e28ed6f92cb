package oidc

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// GitHub signs people in with GitHub: plain OAuth2 (GitHub has no OpenID
// Connect for people) with PKCE, then GitHub's API for the profile, the
// verified primary email and, when the policy asks, organizations and
// teams as groups. People are keyed on GitHub's numeric user id (the
// login can be renamed) with issuer https://github.com (or base_url).
type GitHub struct {
	name, display string
	clientID      string
	clientSecret  string
	scopes        []string
	base, api     string
	orgs, teams   bool
	authParams    map[string]string
	timeout       time.Duration
	env           Env
	log           *zap.Logger
}

var (
	_ providers.Provider  = (*GitHub)(nil)
	_ providers.Refresher = (*GitHub)(nil)
)

// maxPages bounds the pages read from a paginated GitHub list (100 items
// each).
const maxPages = 10

// NewGitHub builds the github provider. It does no I/O.
func NewGitHub(name string, cfg *config.GitHubProvider, env Env) (*GitHub, error) {
	if cfg == nil {
		return nil, errors.New("github: no settings")
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fieldErrors(errs)
	}
	g := &GitHub{
		name: name, display: cfg.DisplayName, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret,
		scopes: append([]string(nil), cfg.Scopes...), base: strings.TrimSuffix(cfg.BaseURL, "/"), api: strings.TrimSuffix(cfg.APIURL, "/"),
		orgs: cfg.OrgsAsGroups, teams: cfg.TeamsAsGroups, authParams: cfg.AuthParams, timeout: cfg.Timeout.D(),
	}
	if g.display == "" {
		g.display = "Continue with GitHub"
	}
	if g.base == "" {
		g.base = "https://github.com"
	}
	if g.api == "" {
		g.api = "https://api.github.com"
	}
	if g.timeout == 0 {
		g.timeout = defaultTimeout
	}
	if len(g.scopes) == 0 {
		g.scopes = []string{"read:user", "user:email"}
		if g.orgs || g.teams {
			g.scopes = append(g.scopes, "read:org")
		}
	}
	g.env = env.withDefaults(g.timeout)
	g.log = g.env.Logger.With(zap.String("provider", name))
	return g, nil
}

// Name returns the provider's policy name.
func (g *GitHub) Name() string { return g.name }

// Type returns "github".
func (g *GitHub) Type() string { return "github" }

// DisplayName returns the chooser label.
func (g *GitHub) DisplayName() string { return g.display }

// Issuer returns the issuer of GitHub identities.
func (g *GitHub) Issuer() string { return g.base }

func (g *GitHub) oauth2Config(redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: g.clientID, ClientSecret: g.clientSecret, RedirectURL: redirect, Scopes: g.scopes,
		Endpoint: oauth2.Endpoint{AuthURL: g.base + "/login/oauth/authorize", TokenURL: g.base + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// Begin sends the browser to GitHub's authorize page with the attempt's
// state and a PKCE challenge. GitHub cannot attest MFA, an acr or a recent
// sign-in, so a step-up attempt is refused at once.
func (g *GitHub) Begin(_ context.Context, a *providers.Attempt) (*providers.Redirect, error) {
	if a == nil || a.State == "" || a.CallbackURL == "" {
		return nil, providers.Fail("bad_attempt", publicOAuth, errors.New("attempt lacks state or callback URL"))
	}
	if a.StepUp != nil {
		return nil, providers.Fail("step_up_not_met", "This page needs a stronger sign-in than GitHub can confirm. Please choose another way to sign in.", errors.New("github cannot attest MFA, acr or auth_time"))
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	for k, v := range g.authParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if a.Prompt == "select_account" || a.Prompt == "login" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	return &providers.Redirect{URL: g.oauth2Config(a.CallbackURL).AuthCodeURL(a.State, opts...), Data: map[string]string{DataVerifier: verifier}}, nil
}

// CallbackState returns the state from the callback's query.
func (g *GitHub) CallbackState(r *http.Request) string {
	if r.Method != http.MethodGet {
		return ""
	}
	return r.URL.Query().Get("state")
}

// Complete finishes a sign-in; tokens are dropped.
func (g *GitHub) Complete(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, error) {
	id, _, err := g.CompleteWithTokens(ctx, r, a)
	return id, err
}

// CompleteWithTokens exchanges the code and reads the person from GitHub's
// API; the token map is as for Provider.CompleteWithTokens (no ID token).
func (g *GitHub) CompleteWithTokens(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, map[string]string, error) {
	if r.Method != http.MethodGet {
		return nil, nil, providers.Fail("bad_method", publicIncomplete, fmt.Errorf("callback by %s", r.Method))
	}
	q := r.URL.Query()
	if a == nil || a.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(a.State)) != 1 {
		return nil, nil, providers.Fail("state_mismatch", publicForeign, errors.New("state of the response does not match the attempt"))
	}
	if e := q.Get("error"); e != "" {
		return nil, nil, providers.Fail("oauth_error", oauthPublic(e), fmt.Errorf("github returned error=%s: %s", clean(e), clean(q.Get("error_description"))))
	}
	code := q.Get("code")
	if code == "" {
		return nil, nil, providers.Fail("missing_code", publicIncomplete, errors.New("response has neither code nor error"))
	}
	verifier := a.Data[DataVerifier]
	if verifier == "" {
		return nil, nil, providers.Fail("pkce_missing", publicIncomplete, errors.New("attempt has no PKCE verifier"))
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.env.HTTPClient)
	tok, err := g.oauth2Config(a.CallbackURL).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, nil, providers.Fail("code_exchange", publicExchange, describeTokenError(err))
	}
	id, err := g.person(ctx, tok.AccessToken)
	if err != nil {
		return nil, nil, err
	}
	return id, tokenMap(tok, "", ""), nil
}

// Refresh renews a GitHub user token (GitHub Apps with expiring tokens)
// and reads the person again; the numeric id must not change.
func (g *GitHub) Refresh(ctx context.Context, id *identity.Identity, tokens map[string]string) (*identity.Identity, map[string]string, error) {
	rt := tokens[TokenRefresh]
	if rt == "" {
		return nil, nil, providers.Fail("refresh_unavailable", publicLoginAgain, ErrNoRefreshToken)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.env.HTTPClient)
	tok, err := g.oauth2Config("").TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "bad_refresh_token" || re.ErrorCode == "invalid_grant") {
			return nil, nil, providers.Fail("refresh_revoked", publicLoginAgain, describeTokenError(err))
		}
		return nil, nil, providers.Fail("refresh_failed", publicExchange, describeTokenError(err))
	}
	fresh, err := g.person(ctx, tok.AccessToken)
	if err != nil {
		return nil, nil, err
	}
	if fresh.Subject != id.Subject || fresh.Issuer != id.Issuer {
		return nil, nil, providers.Fail("refresh_subject_mismatch", publicLoginAgain, fmt.Errorf("refreshed token belongs to GitHub user %s, the session to %s", fresh.Subject, id.Subject))
	}
	out := *id
	out.Email, out.EmailVerified, out.Name, out.Groups, out.Extra = fresh.Email, fresh.EmailVerified, fresh.Name, fresh.Groups, fresh.Extra
	return &out, tokenMap(tok, "", ""), nil
}

type githubUser struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Name  string `json:"name"`
	Type  string `json:"type"`
}

type githubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

// person reads /user, /user/emails and, when configured, /user/orgs and
// /user/teams. Only the primary email, and only when GitHub has verified
// it, becomes the identity's email.
func (g *GitHub) person(ctx context.Context, token string) (*identity.Identity, error) {
	var u githubUser
	if _, err := g.get(ctx, token, g.api+"/user", &u); err != nil {
		return nil, providers.Fail("userinfo", publicProfile, fmt.Errorf("github /user: %w", err))
	}
	if u.ID <= 0 {
		return nil, providers.Fail("userinfo", publicProfile, errors.New("github /user has no id"))
	}
	id := &identity.Identity{
		Subject:  strconv.FormatInt(u.ID, 10),
		Issuer:   g.base,
		Provider: g.name,
		Name:     u.Name,
		Extra:    map[string]string{"login": u.Login},
	}
	if id.Name == "" {
		id.Name = u.Login
	}
	var emails []githubEmail
	status, err := g.get(ctx, token, g.api+"/user/emails", &emails)
	switch {
	case status == http.StatusForbidden || status == http.StatusNotFound:
		// A GitHub App without the email permission: no email.
		g.log.Warn("github /user/emails not readable; the identity has no email (grant the user:email scope or the email addresses permission)", zap.Int("status", status))
	case err != nil:
		return nil, providers.Fail("userinfo", publicProfile, fmt.Errorf("github /user/emails: %w", err))
	}
	for _, e := range emails {
		if e.Primary && e.Verified && e.Email != "" {
			id.Email, id.EmailVerified = e.Email, true
			break
		}
	}
	if g.orgs {
		var orgs []struct {
			Login string `json:"login"`
		}
		if err := g.list(ctx, token, g.api+"/user/orgs?per_page=100", &orgs); err != nil {
			return nil, providers.Fail("userinfo", publicProfile, fmt.Errorf("github /user/orgs: %w", err))
		}
		for _, o := range orgs {
			if o.Login != "" {
				id.Groups = append(id.Groups, o.Login)
			}
		}
	}
	if g.teams {
		var teams []struct {
			Slug string `json:"slug"`
			Org  struct {
				Login string `json:"login"`
			} `json:"organization"`
		}
		if err := g.list(ctx, token, g.api+"/user/teams?per_page=100", &teams); err != nil {
			return nil, providers.Fail("userinfo", publicProfile, fmt.Errorf("github /user/teams: %w", err))
		}
		for _, t := range teams {
			if t.Slug != "" && t.Org.Login != "" {
				id.Groups = append(id.Groups, t.Org.Login+"/"+t.Slug)
			}
		}
	}
	return id, nil
}

var nextLink = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// list reads a paginated list (following Link rel="next" on the API's own
// origin, at most maxPages pages) into out, a pointer to a slice.
func (g *GitHub) list(ctx context.Context, token, u string, out any) error {
	var all []json.RawMessage
	apiOrigin, _ := url.Parse(g.api)
	for page := 0; u != "" && page < maxPages; page++ {
		var items []json.RawMessage
		resp, err := g.do(ctx, token, u)
		if err != nil {
			return err
		}
		err = decodeBody(resp, &items)
		link := resp.Header.Get("Link")
		if err != nil {
			return err
		}
		all = append(all, items...)
		u = ""
		if m := nextLink.FindStringSubmatch(link); m != nil {
			if nu, err := url.Parse(m[1]); err == nil && apiOrigin != nil && nu.Scheme == apiOrigin.Scheme && nu.Host == apiOrigin.Host {
				u = nu.String()
			}
		}
	}
	b, _ := json.Marshal(all)
	return json.Unmarshal(b, out)
}

// get reads one JSON document; it returns the HTTP status with any error.
func (g *GitHub) get(ctx context.Context, token, u string, out any) (int, error) {
	resp, err := g.do(ctx, token, u)
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, decodeBody(resp, out)
}

func (g *GitHub) do(ctx context.Context, token, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "gatehouse")
	return g.env.HTTPClient.Do(req)
}

func decodeBody(resp *http.Response, out any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, clean(string(body)))
	}
	return json.Unmarshal(body, out)
}
