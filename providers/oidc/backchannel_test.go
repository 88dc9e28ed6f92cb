package oidc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/providers"
)

func TestBackChannelLogoutReceiver(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)
	if got := p.LogoutPath(); got != "oidc/"+p.Name()+"/backchannel-logout" {
		t.Fatalf("LogoutPath = %q", got)
	}
	token := func(mod func(c map[string]any)) string {
		c := map[string]any{"iss": op.issuer(), "aud": op.clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "jti": randText(),
			"sub": "user-123", "sid": "sid-1", "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
		if mod != nil {
			mod(c)
		}
		return signJWT(t, op.signer, "RS256", nil, c)
	}
	post := func(body, ctype string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/.gatehouse/"+p.LogoutPath(), strings.NewReader(body))
		r.Header.Set("Content-Type", ctype)
		return r
	}
	form := func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }
	const formType = "application/x-www-form-urlencoded"

	tok := token(nil)
	n, err := p.ReceiveLogout(context.Background(), post(form(tok), formType), nil)
	if err != nil || n.Subject != "user-123" || len(n.SessionIDs) != 1 || n.SessionIDs[0] != "sid-1" || n.Completed || n.Respond != nil {
		t.Fatalf("valid logout token: %+v, %v", n, err)
	}
	// Without sid: every session of the subject.
	n, err = p.ReceiveLogout(context.Background(), post(form(token(func(c map[string]any) { delete(c, "sid") })), formType), nil)
	if err != nil || n.Subject != "user-123" || len(n.SessionIDs) != 0 {
		t.Fatalf("logout token without sid: %+v, %v", n, err)
	}

	reason := func(err error) string {
		var le *providers.LoginError
		if errors.As(err, &le) {
			return le.Reason
		}
		return "not a LoginError: " + err.Error()
	}
	cases := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"replayed token", post(form(tok), formType), "backchannel_replayed"},
		{"GET", httptest.NewRequest(http.MethodGet, "/x?logout_token="+url.QueryEscape(token(nil)), nil), "backchannel_method"},
		{"JSON body", post(`{"logout_token":"`+token(nil)+`"}`, "application/json"), "backchannel_malformed"},
		{"two tokens", post(url.Values{"logout_token": {token(nil), token(nil)}}.Encode(), formType), "backchannel_malformed"},
		{"no token", post("", formType), "backchannel_malformed"},
		{"oversized body", post("logout_token="+strings.Repeat("a", maxLogoutBody+1), formType), "backchannel_malformed"},
		{"expired", post(form(token(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), formType), "backchannel_invalid_token"},
		{"nonce", post(form(token(func(c map[string]any) { c["nonce"] = "n" })), formType), "backchannel_invalid_token"},
		{"wrong audience", post(form(token(func(c map[string]any) { c["aud"] = "someone-else" })), formType), "backchannel_invalid_token"},
		{"ID token, not a logout token", post(form(token(func(c map[string]any) { delete(c, "events") })), formType), "backchannel_invalid_token"},
		{"no jti", post(form(token(func(c map[string]any) { delete(c, "jti") })), formType), "backchannel_invalid_token"},
		{"alg none", post(form(strings.Join(strings.Split(token(nil), ".")[:2], ".")+"."), formType), "backchannel_invalid_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := p.ReceiveLogout(context.Background(), tc.req, nil)
			if err == nil {
				t.Fatalf("accepted: %+v", n)
			}
			if got := reason(err); got != tc.want {
				t.Errorf("reason %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}
