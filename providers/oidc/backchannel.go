package oidc

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/providers"
)

// maxLogoutBody bounds a back-channel logout request body.
const maxLogoutBody = 64 << 10

// logoutTokenReplayTTL is how long a logout token's jti is remembered. A
// logout token is short-lived (its exp is checked), so this need only
// outlive the token's own lifetime plus clock skew.
const logoutTokenReplayTTL = 10 * time.Minute

// LogoutPath is where the provider posts back-channel logout tokens,
// relative to /.gatehouse/: register
// <public_url>/.gatehouse/oidc/<name>/backchannel-logout at the provider
// as the client's backchannel_logout_uri.
func (p *Provider) LogoutPath() string { return "oidc/" + p.name + "/backchannel-logout" }

// ReceiveLogout accepts an OpenID Connect Back-Channel Logout 1.0 request:
// a POST of application/x-www-form-urlencoded with one logout_token. The
// token is verified (signature through the provider's JWKS, issuer,
// audience, expiry, the back-channel event, no nonce) and its jti is
// accepted once. The notice names the OP session (sid) when the token has
// one, else every session of the subject.
func (p *Provider) ReceiveLogout(ctx context.Context, r *http.Request, _ map[string]string) (*providers.LogoutNotice, error) {
	const public = "This sign-out message could not be accepted."
	if r.Method != http.MethodPost {
		return nil, providers.Fail("backchannel_method", public, fmt.Errorf("method %s, want POST", r.Method))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, providers.Fail("backchannel_malformed", public, fmt.Errorf("content type %q", clean(r.Header.Get("Content-Type"))))
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		return nil, providers.Fail("backchannel_malformed", public, err)
	}
	raw := r.PostForm["logout_token"]
	if len(raw) != 1 || raw[0] == "" {
		return nil, providers.Fail("backchannel_malformed", public, fmt.Errorf("want exactly one logout_token, got %d", len(raw)))
	}
	lt, err := p.VerifyLogoutToken(ctx, raw[0])
	if err != nil {
		return nil, providers.Fail("backchannel_invalid_token", public, err)
	}
	if lt.TokenID == "" {
		return nil, providers.Fail("backchannel_invalid_token", public, errors.New("logout token without jti"))
	}
	first, err := p.env.Replay.Claim(ctx, "oidc-logout:"+p.name+"\x00"+lt.TokenID, p.env.Now().Add(logoutTokenReplayTTL))
	if err != nil {
		return nil, providers.Fail("backchannel_unavailable", public, err)
	}
	if !first {
		return nil, providers.Fail("backchannel_replayed", public, fmt.Errorf("logout token %q was used before", clean(lt.TokenID)))
	}
	n := &providers.LogoutNotice{Subject: lt.Subject}
	if lt.SessionID != "" {
		n.SessionIDs = []string{lt.SessionID}
	}
	p.log.Info("back-channel logout accepted", zap.Bool("by_sid", lt.SessionID != ""))
	return n, nil
}
