package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// Keys of the token map that CompleteWithTokens returns and Refresh and
// LogoutWithTokens take (the map of providers.Refresher).
const (
	TokenAccess  = "access_token"
	TokenRefresh = "refresh_token"
	TokenID      = "id_token"
	TokenType    = "token_type"
	TokenExpiry  = "expiry" // RFC 3339, of the access token
	TokenScope   = "scope"  // granted scopes, when the provider says
	TokenSID     = "sid"    // the provider's session id (back-channel logout)
)

// ErrNoRefreshToken is wrapped by Refresh's error when there is nothing to
// refresh with.
var ErrNoRefreshToken = errors.New("no refresh token")

func tokenMap(tok *oauth2.Token, rawID, sid string) map[string]string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set(TokenAccess, tok.AccessToken)
	set(TokenRefresh, tok.RefreshToken)
	set(TokenID, rawID)
	set(TokenType, tok.TokenType)
	if !tok.Expiry.IsZero() {
		m[TokenExpiry] = tok.Expiry.UTC().Format(time.RFC3339)
	}
	if s, _ := tok.Extra("scope").(string); s != "" {
		m[TokenScope] = s
	}
	set(TokenSID, sid)
	return m
}

// TokenExpiryOf returns the access token's expiry from a token map (zero
// when unknown), so a caller can refresh shortly before it.
func TokenExpiryOf(tokens map[string]string) time.Time {
	t, _ := time.Parse(time.RFC3339, tokens[TokenExpiry])
	return t
}

// Refresh renews a session's tokens with its refresh token. A new ID token
// is verified (signature, issuer, audience, azp, expiry) and must name the
// same issuer and subject; its claims (and userinfo's, when configured)
// update the email, name, groups and extra claims. A refresh is not a new
// authentication: amr, acr and auth_time stay as they were.
//
// Errors are *providers.LoginError: reason "refresh_revoked" when the
// provider refused the refresh token (invalid_grant: end the session),
// "refresh_failed" for anything transient, "refresh_unavailable" when the
// map holds no refresh token.
func (p *Provider) Refresh(ctx context.Context, id *identity.Identity, tokens map[string]string) (*identity.Identity, map[string]string, error) {
	rt := tokens[TokenRefresh]
	if rt == "" {
		return nil, nil, providers.Fail("refresh_unavailable", publicLoginAgain, ErrNoRefreshToken)
	}
	d, err := p.discovery(ctx)
	if err != nil {
		return nil, nil, providers.Fail("refresh_failed", publicUnavailable, err)
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	cfg := p.oauth2Config(d, "")
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "unauthorized_client") {
			return nil, nil, providers.Fail("refresh_revoked", publicLoginAgain, describeTokenError(err))
		}
		return nil, nil, providers.Fail("refresh_failed", publicExchange, describeTokenError(err))
	}
	out := *id
	out.Groups = append([]string(nil), id.Groups...)
	var claims map[string]any
	rawID, _ := tok.Extra("id_token").(string)
	if rawID != "" {
		t, c, err := p.verifyIDToken(ctx, d, rawID)
		if err != nil {
			return nil, nil, err
		}
		if t.Subject != id.Subject || p.identityIssuer(d, t.Issuer) != id.Issuer {
			return nil, nil, providers.Fail("refresh_subject_mismatch", publicLoginAgain, fmt.Errorf("refreshed ID token names %q at %q, the session %q at %q", clean(t.Subject), clean(t.Issuer), id.Subject, id.Issuer))
		}
		claims = c
	} else {
		rawID = tokens[TokenID] // keep the old one for id_token_hint
	}
	if p.s.userinfo && d.op.UserInfoEndpoint() != "" {
		if claims == nil {
			claims = map[string]any{}
		}
		if claims, err = p.mergeUserInfo(ctx, d, tok, id.Subject, claims); err != nil {
			return nil, nil, err
		}
	}
	if claims != nil {
		fresh := p.identity(id.Issuer, id.Subject, claims)
		out.Email, out.EmailVerified, out.Name, out.Groups, out.Extra = fresh.Email, fresh.EmailVerified, fresh.Name, fresh.Groups, fresh.Extra
	}
	m := tokenMap(tok, rawID, tokens[TokenSID])
	return &out, m, nil
}

// Logout returns the provider's end_session_endpoint URL for RP-initiated
// logout, with client_id and post_logout_redirect_uri (returnURL, which
// must be registered at the provider), or "" when the provider has none.
// Without an ID token some providers ask the person to confirm; prefer
// LogoutWithTokens when the session kept the ID token.
func (p *Provider) Logout(ctx context.Context, id *identity.Identity, returnURL string) (string, error) {
	return p.LogoutWithTokens(ctx, id, nil, returnURL)
}

// LogoutWithTokens is Logout with the session's tokens: the ID token is
// sent as id_token_hint (OpenID Connect RP-Initiated Logout 1.0).
func (p *Provider) LogoutWithTokens(ctx context.Context, id *identity.Identity, tokens map[string]string, returnURL string) (string, error) {
	d, err := p.discovery(ctx)
	if err != nil {
		return "", err
	}
	if d.meta.EndSessionEndpoint == "" {
		return "", nil
	}
	u, err := url.Parse(d.meta.EndSessionEndpoint)
	if err != nil {
		return "", fmt.Errorf("end_session_endpoint: %w", err)
	}
	q := u.Query()
	q.Set("client_id", p.s.clientID)
	if t := tokens[TokenID]; t != "" {
		q.Set("id_token_hint", t)
	}
	if returnURL != "" {
		q.Set("post_logout_redirect_uri", returnURL)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// LogoutToken is a verified back-channel logout token: end the sessions of
// Subject at Issuer, or the one whose sid (TokenSID) is SessionID.
type LogoutToken struct {
	Issuer, Subject, SessionID, TokenID string
}

// VerifyLogoutToken verifies a back-channel logout token (OpenID Connect
// Back-Channel Logout 1.0) POSTed by the provider as logout_token: its
// signature, issuer, audience, expiry, events claim and no nonce. The
// caller must also refuse a TokenID (jti) it has seen before.
func (p *Provider) VerifyLogoutToken(ctx context.Context, raw string) (*LogoutToken, error) {
	d, err := p.discovery(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	lt, err := d.verifier.VerifyLogout(ctx, raw)
	if err != nil {
		return nil, err
	}
	iss := lt.Issuer
	if p.s.tenantIssuer != nil {
		var c struct {
			TID string `json:"tid"`
		}
		if err := lt.Claims(&c); err != nil {
			return nil, err
		}
		if err := p.s.tenantIssuer(iss, c.TID); err != nil {
			return nil, err
		}
	}
	return &LogoutToken{Issuer: iss, Subject: lt.Subject, SessionID: lt.SessionID, TokenID: lt.TokenID}, nil
}
