package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// DataVerifier is the key of the PKCE verifier in the attempt's Data.
const DataVerifier = "pkce"

// Friendly texts for people; the precise reason goes to the log.
const (
	publicUnavailable = "This sign-in option is unavailable right now. Please try again in a moment."
	publicForeign     = "This sign-in response does not belong to this browser. Please start again."
	publicIncomplete  = "This sign-in response is incomplete. Please start again."
	publicExchange    = "The sign-in could not be completed with the provider. Please try again."
	publicUnverified  = "The provider's answer could not be verified. Please try again."
	publicProfile     = "Your profile could not be read from the provider. Please try again."
	publicStepUp      = "This page needs a stronger sign-in (for example multi-factor authentication) than the provider performed."
	publicNotAllowed  = "Accounts from your organization cannot sign in here."
	publicDenied      = "The sign-in was cancelled or refused at the provider."
	publicLoginAgain  = "The provider needs you to sign in again. Please try again."
	publicBusy        = "The sign-in service is busy. Please try again in a moment."
	publicOAuth       = "The provider could not complete the sign-in. Please try again."
)

// Begin sends the browser to the provider's authorization endpoint: code
// flow, PKCE S256 (the verifier stays in the attempt's Data), the
// attempt's state and nonce, the policy's scopes and parameters, and what
// the attempt asks for (a prompt, a sign-up screen, a step-up).
func (p *Provider) Begin(ctx context.Context, a *providers.Attempt) (*providers.Redirect, error) {
	if a == nil || a.State == "" || a.Nonce == "" || a.CallbackURL == "" {
		return nil, providers.Fail("bad_attempt", publicOAuth, errors.New("attempt lacks state, nonce or callback URL"))
	}
	d, err := p.discovery(ctx)
	if err != nil {
		return nil, providers.Fail("discovery", publicUnavailable, err)
	}
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), gooidc.Nonce(a.Nonce)}
	for k, v := range p.authParams(a) {
		opts = append(opts, oauth2.SetAuthURLParam(k, v[0]))
	}
	cfg := p.oauth2Config(d, a.CallbackURL)
	return &providers.Redirect{URL: cfg.AuthCodeURL(a.State, opts...), Data: map[string]string{DataVerifier: verifier}}, nil
}

// authParams returns the authorization request parameters Begin adds to
// the protocol's own: the policy's, then what the attempt asks for.
func (p *Provider) authParams(a *providers.Attempt) url.Values {
	v := url.Values{}
	for k, val := range p.s.authParams {
		v.Set(k, val)
	}
	if p.s.hostedDomain != "" {
		v.Set("hd", p.s.hostedDomain)
	}
	if p.s.formPost {
		v.Set("response_mode", "form_post")
	}
	prompt, acr, maxAge := p.s.prompt, p.s.acrValues, p.s.maxAge
	switch a.Prompt {
	case "create":
		for k, vals := range p.s.signup {
			v.Set(k, vals[0])
		}
		if p.s.signup.Has("prompt") {
			prompt = p.s.signup.Get("prompt")
		}
	case "login", "consent", "select_account", "none":
		prompt = a.Prompt
	}
	if su := a.StepUp; su != nil {
		switch {
		case len(su.ACR) > 0:
			acr = su.ACR
		case su.MFA && len(p.s.mfaACR) > 0:
			acr = p.s.mfaACR
		}
		if su.MaxAge > 0 {
			if maxAge == 0 || su.MaxAge < maxAge {
				maxAge = su.MaxAge
			}
			prompt = "login"
		}
	}
	if prompt != "" {
		v.Set("prompt", prompt)
	}
	if a.LoginHint != "" {
		v.Set("login_hint", a.LoginHint)
	}
	if len(acr) > 0 {
		v.Set("acr_values", strings.Join(acr, " "))
	}
	if maxAge > 0 {
		v.Set("max_age", strconv.FormatInt(int64(maxAge/time.Second), 10))
	}
	return v
}

func (p *Provider) oauth2Config(d *discovered, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: p.s.clientID, ClientSecret: p.s.clientSecret, Endpoint: d.endpoint, RedirectURL: redirect, Scopes: p.s.scopes}
}

// CallbackState returns the state the provider echoed: from the query, or
// with response_mode form_post from the POST body (parsed once, at most
// 64 KiB; Complete reads the same parsed form).
func (p *Provider) CallbackState(r *http.Request) string {
	params, err := p.callbackParams(r)
	if err != nil {
		return ""
	}
	return params.Get("state")
}

func (p *Provider) callbackParams(r *http.Request) (url.Values, error) {
	if !p.s.formPost {
		if r.Method != http.MethodGet {
			return nil, fmt.Errorf("callback by %s; response_mode query expects GET", r.Method)
		}
		return r.URL.Query(), nil
	}
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("callback by %s; response_mode form_post expects POST", r.Method)
	}
	if r.PostForm == nil {
		r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
	}
	return r.PostForm, nil
}

// Complete finishes a sign-in; tokens are dropped. See CompleteWithTokens.
func (p *Provider) Complete(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, error) {
	id, _, err := p.CompleteWithTokens(ctx, r, a)
	return id, err
}

// CompleteWithTokens finishes a sign-in and also returns the provider's
// tokens as a map (keys TokenAccess, TokenRefresh, TokenID, TokenType,
// TokenExpiry, TokenScope, TokenSID), for callers that keep them for
// Refresh, LogoutWithTokens or forwarding. The identity never holds tokens.
func (p *Provider) CompleteWithTokens(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, map[string]string, error) {
	params, err := p.callbackParams(r)
	if err != nil {
		return nil, nil, providers.Fail("bad_method", publicIncomplete, err)
	}
	if a == nil || a.State == "" || subtle.ConstantTimeCompare([]byte(params.Get("state")), []byte(a.State)) != 1 {
		return nil, nil, providers.Fail("state_mismatch", publicForeign, errors.New("state of the response does not match the attempt"))
	}
	d, err := p.discovery(ctx)
	if err != nil {
		return nil, nil, providers.Fail("discovery", publicUnavailable, err)
	}
	// RFC 9207: the authorization response names its issuer, which defeats
	// mix-up attacks when several providers are configured.
	if iss := params.Get("iss"); iss != "" || d.meta.IssParameterSupported {
		if !p.issuerMatches(d, iss) {
			return nil, nil, providers.Fail("issuer_mismatch", publicForeign, fmt.Errorf("authorization response iss %q, want %q", clean(iss), d.issuer))
		}
	}
	if e := params.Get("error"); e != "" {
		return nil, nil, providers.Fail("oauth_error", oauthPublic(e), fmt.Errorf("provider returned error=%s: %s", clean(e), clean(params.Get("error_description"))))
	}
	code := params.Get("code")
	if code == "" {
		return nil, nil, providers.Fail("missing_code", publicIncomplete, errors.New("response has neither code nor error"))
	}
	verifier := a.Data[DataVerifier]
	if verifier == "" {
		return nil, nil, providers.Fail("pkce_missing", publicIncomplete, errors.New("attempt has no PKCE verifier"))
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	tok, err := p.oauth2Config(d, a.CallbackURL).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, nil, providers.Fail("code_exchange", publicExchange, describeTokenError(err))
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, nil, providers.Fail("bad_id_token", publicUnverified, errors.New("token response has no id_token"))
	}
	t, claims, err := p.verifyIDToken(ctx, d, rawID)
	if err != nil {
		return nil, nil, err
	}
	if t.Nonce == "" || subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(a.Nonce)) != 1 || a.Nonce == "" {
		return nil, nil, providers.Fail("nonce_mismatch", publicForeign, errors.New("ID token nonce does not match the attempt"))
	}
	if t.AccessTokenHash != "" {
		if err := t.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, nil, providers.Fail("bad_id_token", publicUnverified, fmt.Errorf("at_hash: %w", err))
		}
	}
	if claims, err = p.mergeUserInfo(ctx, d, tok, t.Subject, claims); err != nil {
		return nil, nil, err
	}
	id := p.identity(p.identityIssuer(d, t.Issuer), t.Subject, claims)
	if err := p.checkHostedDomain(claims); err != nil {
		return nil, nil, err
	}
	if len(p.s.mfaACR) > 0 && contains(p.s.mfaACR, id.ACR) && !id.HasMFA() {
		id.AMR = append(id.AMR, "mfa") // the policy says this acr is multi-factor
	}
	if err := p.checkAuthStrength(a, id); err != nil {
		return nil, nil, err
	}
	return id, tokenMap(tok, rawID, claimString(claims, "sid")), nil
}

// callContext bounds one round of calls to the provider and hands go-oidc
// and x/oauth2 the provider's HTTP client.
func (p *Provider) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, p.s.timeout)
	return gooidc.ClientContext(ctx, p.env.HTTPClient), cancel
}

// issuerMatches checks the iss parameter of an authorization response.
func (p *Provider) issuerMatches(d *discovered, iss string) bool {
	if p.s.tenantIssuer != nil {
		// Multi-tenant: the tenant is only known from the ID token, which
		// is checked strictly; here the template must fit.
		prefix, suffix, _ := strings.Cut(d.issuer, "{tenantid}")
		return strings.HasPrefix(iss, prefix) && strings.HasSuffix(iss, suffix) && len(iss) > len(prefix)+len(suffix)
	}
	return iss == d.issuer
}

// identityIssuer is the issuer people are keyed on: the configured one
// (Google's tokens may spell it without https://), or for multi-tenant
// Microsoft the token's own, already checked against its tid.
func (p *Provider) identityIssuer(d *discovered, tokenIss string) string {
	if p.s.tenantIssuer != nil {
		return tokenIss
	}
	return d.issuer
}

// verifyIDToken verifies an ID token: signature with an allowed algorithm
// and a key of the provider's key set (refetched for an unknown kid),
// issuer, audience, expiry (go-oidc); then the tenant of multi-tenant
// Microsoft, azp, and an issue time not in the future.
func (p *Provider) verifyIDToken(ctx context.Context, d *discovered, raw string) (*gooidc.IDToken, map[string]any, error) {
	t, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, nil, providers.Fail("bad_id_token", publicUnverified, err)
	}
	claims, err := rawClaims(t)
	if err != nil {
		return nil, nil, providers.Fail("bad_id_token", publicUnverified, err)
	}
	if p.s.tenantIssuer != nil {
		tid, _ := claims["tid"].(string)
		if err := p.s.tenantIssuer(t.Issuer, tid); err != nil {
			var na errTenantNotAllowed
			if errors.As(err, &na) {
				return nil, nil, providers.Fail("tenant_not_allowed", publicNotAllowed, err)
			}
			return nil, nil, providers.Fail("bad_id_token", publicUnverified, err)
		}
	}
	// OpenID Connect Core 3.1.3.7: with several audiences azp must be
	// present, and when present it must be this client.
	azp, hasAzp := claims["azp"].(string)
	if (len(t.Audience) > 1 && !hasAzp) || (hasAzp && azp != p.s.clientID) {
		return nil, nil, providers.Fail("bad_id_token", publicUnverified, fmt.Errorf("azp %q does not name this client (aud %q)", clean(azp), t.Audience))
	}
	if sub := t.Subject; sub == "" || len(sub) > 255 {
		return nil, nil, providers.Fail("bad_id_token", publicUnverified, errors.New("ID token has no valid sub"))
	}
	if !t.IssuedAt.IsZero() && t.IssuedAt.After(p.env.Now().Add(clockSkew)) {
		return nil, nil, providers.Fail("bad_id_token", publicUnverified, fmt.Errorf("ID token issued in the future (iat %s)", t.IssuedAt.UTC().Format(time.RFC3339)))
	}
	return t, claims, nil
}

// mergeUserInfo adds the userinfo claims when the policy asks for them.
// Its sub must be the ID token's. The ID token's claims win; email and
// email_verified are taken together from one source, so an unverified
// address never borrows another source's verification; protocol claims
// (iss, aud, acr, amr, auth_time, ...) come from the ID token only.
func (p *Provider) mergeUserInfo(ctx context.Context, d *discovered, tok *oauth2.Token, sub string, claims map[string]any) (map[string]any, error) {
	if !p.s.userinfo || d.op.UserInfoEndpoint() == "" {
		return claims, nil
	}
	ui, err := d.op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, providers.Fail("userinfo", publicProfile, err)
	}
	if ui.Subject != sub {
		return nil, providers.Fail("userinfo_sub_mismatch", publicUnverified, fmt.Errorf("userinfo sub %q differs from the ID token's %q", clean(ui.Subject), clean(sub)))
	}
	var uc map[string]any
	if err := decodeClaims(ui.Claims, &uc); err != nil {
		return nil, providers.Fail("userinfo", publicProfile, err)
	}
	return mergeClaims(claims, uc, p.s.claims.Email, p.s.claims.EmailVerified), nil
}

var protocolClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "nonce", "azp", "at_hash", "c_hash", "acr", "amr", "auth_time", "sid", "tid"}

func mergeClaims(idt, ui map[string]any, emailClaim, verifiedClaim string) map[string]any {
	out := make(map[string]any, len(idt)+len(ui))
	for k, v := range ui {
		if !contains(protocolClaims, k) {
			out[k] = v
		}
	}
	if _, ok := idt[emailClaim]; ok {
		delete(out, verifiedClaim) // the ID token's address, with its own verification only
	}
	for k, v := range idt {
		out[k] = v
	}
	return out
}

// checkHostedDomain enforces Google's hosted_domain (the hd claim).
func (p *Provider) checkHostedDomain(claims map[string]any) error {
	if p.s.hostedDomain == "" {
		return nil
	}
	if hd, _ := claims["hd"].(string); !strings.EqualFold(hd, p.s.hostedDomain) {
		return providers.Fail("hosted_domain", publicNotAllowed, fmt.Errorf("hd claim %q, want %q", clean(hd), p.s.hostedDomain))
	}
	return nil
}

// checkAuthStrength checks what was asked of the provider against what
// the ID token says it did: max_age needs auth_time (OpenID Connect Core
// 3.1.2.1) within that age, and a step-up needs its acr, MFA and recency.
func (p *Provider) checkAuthStrength(a *providers.Attempt, id *identity.Identity) error {
	now := p.env.Now()
	maxAge := p.s.maxAge
	if a.StepUp != nil && a.StepUp.MaxAge > 0 && (maxAge == 0 || a.StepUp.MaxAge < maxAge) {
		maxAge = a.StepUp.MaxAge
	}
	if maxAge > 0 {
		if id.AuthTime.IsZero() {
			return providers.Fail("step_up_not_met", publicStepUp, errors.New("max_age was sent but the ID token has no auth_time"))
		}
		if now.Sub(id.AuthTime) > maxAge+clockSkew {
			return providers.Fail("step_up_not_met", publicStepUp, fmt.Errorf("auth_time %s is older than max_age %s", id.AuthTime.UTC().Format(time.RFC3339), maxAge))
		}
	}
	su := a.StepUp
	if su == nil {
		return nil
	}
	if len(su.ACR) > 0 && !contains(su.ACR, id.ACR) {
		return providers.Fail("step_up_not_met", publicStepUp, fmt.Errorf("acr %q is not one of %q", clean(id.ACR), su.ACR))
	}
	if su.MFA && !id.HasMFA() {
		return providers.Fail("step_up_not_met", publicStepUp, fmt.Errorf("no multi-factor authentication in amr %q / acr %q", id.AMR, clean(id.ACR)))
	}
	if !su.SatisfiedBy(id, now) {
		return providers.Fail("step_up_not_met", publicStepUp, errors.New("step-up not satisfied"))
	}
	return nil
}

// oauthPublic is the friendly text for an OAuth error code.
func oauthPublic(code string) string {
	switch code {
	case "access_denied", "consent_required":
		return publicDenied
	case "login_required", "interaction_required", "account_selection_required":
		return publicLoginAgain
	case "temporarily_unavailable", "server_error":
		return publicBusy
	}
	return publicOAuth
}

// describeTokenError keeps the token endpoint's error code and description.
func describeTokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Errorf("token endpoint: error=%s: %s (HTTP %d)", clean(re.ErrorCode), clean(re.ErrorDescription), statusOf(re))
		}
		return fmt.Errorf("token endpoint: HTTP %d: %s", statusOf(re), clean(string(re.Body)))
	}
	return err
}

func statusOf(re *oauth2.RetrieveError) int {
	if re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// clean makes a provider- or attacker-supplied string safe for a log
// line: printable ASCII only, at most 200 bytes.
func clean(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < 200; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}
