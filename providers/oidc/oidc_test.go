package oidc

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/providers"
)

func TestOIDCHappyPath(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)
	a := newAttempt()
	req := authorize(t, p, a)

	// The authorization request: code flow, PKCE S256, the attempt's
	// state and nonce, the default scopes.
	q := op.lastAuth
	for k, want := range map[string]string{"response_type": "code", "client_id": op.clientID, "redirect_uri": testCallback,
		"scope": "openid email profile", "state": a.State, "nonce": a.Nonce, "code_challenge_method": "S256"} {
		if got := q.Get(k); got != want {
			t.Errorf("authorization request %s = %q, want %q", k, got, want)
		}
	}
	if q.Has("prompt") || q.Has("acr_values") || q.Has("max_age") || q.Has("response_mode") {
		t.Errorf("unexpected parameters in %v", q)
	}
	if p.CallbackState(req) != a.State {
		t.Fatal("CallbackState does not return the state")
	}
	id, tokens, err := p.CompleteWithTokens(context.Background(), req, a)
	if err != nil {
		t.Fatal(err)
	}
	// The PKCE verifier went to the token endpoint and matches the challenge.
	v := op.lastToken.Get("code_verifier")
	sum := sha256.Sum256([]byte(v))
	if v == "" || v != a.Data[DataVerifier] || b64(sum[:]) != q.Get("code_challenge") {
		t.Errorf("code_verifier %q does not match the challenge %q", v, q.Get("code_challenge"))
	}
	if id.Subject != "user-123" || id.Issuer != op.issuer() || id.Provider != "corp" {
		t.Errorf("identity keyed on %q at %q (%q)", id.Subject, id.Issuer, id.Provider)
	}
	if id.Email != "alice@example.com" || !id.EmailVerified || id.Name != "Alice" {
		t.Errorf("email %q verified %v name %q", id.Email, id.EmailVerified, id.Name)
	}
	if !slices.Equal(id.Groups, []string{"staff", "admins"}) || !slices.Equal(id.AMR, []string{"pwd"}) || id.ACR != "silver" {
		t.Errorf("groups %q amr %q acr %q", id.Groups, id.AMR, id.ACR)
	}
	if d := time.Since(id.AuthTime); d < 5*time.Second || d > time.Minute {
		t.Errorf("auth_time %v", id.AuthTime)
	}
	if id.Extra != nil {
		t.Errorf("extra %v without claims.extra", id.Extra)
	}
	if !strings.HasPrefix(tokens[TokenAccess], "at-") || !strings.HasPrefix(tokens[TokenRefresh], "rt-") || tokens[TokenID] == "" || tokens[TokenType] != "Bearer" || TokenExpiryOf(tokens).IsZero() {
		t.Errorf("tokens %v", tokens)
	}
	// Complete (the Provider interface) gives the same identity, no tokens.
	a2 := newAttempt()
	if id2, err := signIn(t, p, a2); err != nil || id2.Subject != id.Subject {
		t.Fatalf("second sign-in: %v %v", id2, err)
	}
	if p.Ready() != nil {
		t.Errorf("Ready() = %v after a sign-in", p.Ready())
	}
	if p.Type() != "oidc" || p.Name() != "corp" || p.DisplayName() == "" || p.CrossSiteCallback() {
		t.Errorf("type %q name %q display %q", p.Type(), p.Name(), p.DisplayName())
	}
}

func TestOIDCAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "PS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			op := newFakeOP(t)
			k := newKey(t, alg, "k-"+alg)
			op.keys, op.signer = []*testKey{k}, k
			if _, err := signIn(t, newTestProvider(t, op), newAttempt()); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("not allowed by the policy", func(t *testing.T) {
		op := newFakeOP(t)
		k := newKey(t, "ES256", "k-es")
		op.keys, op.signer = []*testKey{k}, k
		p := newTestProvider(t, op, func(c *config.OIDCProvider) { c.AllowedAlgorithms = []string{"RS256"} })
		_, err := signIn(t, p, newAttempt())
		wantReason(t, err, "bad_id_token")
	})
}

// TestOIDCBadIDTokens: every ID token that must be refused is refused,
// while the same flow with a good token passes (TestOIDCHappyPath).
func TestOIDCBadIDTokens(t *testing.T) {
	cases := []struct {
		name   string
		setup  func(op *fakeOP)
		reason string
	}{
		{"nonce mismatch", func(op *fakeOP) { op.mutate = func(c map[string]any) { c["nonce"] = "another-nonce" } }, "nonce_mismatch"},
		{"nonce missing", func(op *fakeOP) { op.mutate = func(c map[string]any) { delete(c, "nonce") } }, "nonce_mismatch"},
		{"wrong aud", func(op *fakeOP) { op.mutate = func(c map[string]any) { c["aud"] = "another-client" } }, "bad_id_token"},
		{"wrong iss", func(op *fakeOP) { op.mutate = func(c map[string]any) { c["iss"] = "https://evil.example.com" } }, "bad_id_token"},
		{"expired", func(op *fakeOP) {
			op.mutate = func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }
		}, "bad_id_token"},
		{"issued in the future", func(op *fakeOP) {
			op.mutate = func(c map[string]any) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() }
		}, "bad_id_token"},
		{"not yet valid", func(op *fakeOP) {
			op.mutate = func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }
		}, "bad_id_token"},
		{"no sub", func(op *fakeOP) { op.mutate = func(c map[string]any) { delete(c, "sub") } }, "bad_id_token"},
		{"alg none", func(op *fakeOP) { op.signAlg = "none" }, "bad_id_token"},
		{"HS256 keyed with the RSA public key", func(op *fakeOP) {
			op.signAlg, op.hsSecret = "HS256", publicKeyDER(t, op.signer)
		}, "bad_id_token"},
		{"HS256 keyed with the client secret", func(op *fakeOP) {
			op.signAlg, op.hsSecret = "HS256", []byte(op.clientSecret)
		}, "bad_id_token"},
		{"signed by another key with a published kid", func(op *fakeOP) {
			op.signer = &testKey{kid: "k1", alg: "RS256", priv: rsaKey(t, 1)}
		}, "bad_id_token"},
		{"unknown kid", func(op *fakeOP) {
			op.signer = &testKey{kid: "k-unknown", alg: "RS256", priv: rsaKey(t, 1)}
		}, "bad_id_token"},
		{"tampered payload", func(op *fakeOP) {
			op.rawIDToken = func(c map[string]any) string {
				good := signJWT(t, op.signer, "RS256", nil, c)
				c["sub"] = "admin"
				forged := signJWT(t, op.signer, "RS256", nil, c)
				parts, fparts := strings.Split(good, "."), strings.Split(forged, ".")
				return parts[0] + "." + fparts[1] + "." + parts[2]
			}
		}, "bad_id_token"},
		{"several audiences without azp", func(op *fakeOP) {
			op.mutate = func(c map[string]any) { c["aud"] = []string{op.clientID, "other-client"} }
		}, "bad_id_token"},
		{"azp names another client", func(op *fakeOP) {
			op.mutate = func(c map[string]any) { c["aud"] = []string{op.clientID, "other-client"}; c["azp"] = "other-client" }
		}, "bad_id_token"},
		{"azp alone names another client", func(op *fakeOP) { op.mutate = func(c map[string]any) { c["azp"] = "other-client" } }, "bad_id_token"},
		{"at_hash mismatch", func(op *fakeOP) { op.mutate = func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" } }, "bad_id_token"},
		{"no id_token", func(op *fakeOP) { op.rawIDToken = func(map[string]any) string { return "" } }, "bad_id_token"},
		{"garbage id_token", func(op *fakeOP) { op.rawIDToken = func(map[string]any) string { return "a.b.c" } }, "bad_id_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			op := newFakeOP(t)
			tc.setup(op)
			_, err := signIn(t, newTestProvider(t, op), newAttempt())
			wantReason(t, err, tc.reason)
		})
	}
	t.Run("several audiences with azp = this client", func(t *testing.T) {
		op := newFakeOP(t)
		op.mutate = func(c map[string]any) { c["aud"] = []string{op.clientID, "other-client"}; c["azp"] = op.clientID }
		if _, err := signIn(t, newTestProvider(t, op), newAttempt()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOIDCCallbackErrors(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)

	t.Run("state mismatch", func(t *testing.T) {
		a := newAttempt()
		req := authorize(t, p, a)
		other := *a
		other.State = "another-state-of-another-attempt"
		_, err := p.Complete(context.Background(), req, &other)
		wantReason(t, err, "state_mismatch")
	})
	t.Run("provider error", func(t *testing.T) {
		a := newAttempt()
		req := httptest.NewRequest(http.MethodGet, testCallback+"?"+url.Values{"state": {a.State}, "error": {"access_denied"}, "error_description": {"user said no\x00"}}.Encode(), nil)
		_, err := p.Complete(context.Background(), req, a)
		le := wantReason(t, err, "oauth_error")
		if !strings.Contains(le.Err.Error(), "access_denied") || strings.Contains(le.Public, "access_denied") || strings.ContainsRune(le.Err.Error(), 0) {
			t.Errorf("error %q public %q", le.Err, le.Public)
		}
	})
	t.Run("no code", func(t *testing.T) {
		a := newAttempt()
		req := httptest.NewRequest(http.MethodGet, testCallback+"?state="+url.QueryEscape(a.State), nil)
		_, err := p.Complete(context.Background(), req, a)
		wantReason(t, err, "missing_code")
	})
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		a := newAttempt()
		req := authorize(t, p, a)
		a.Data = map[string]string{DataVerifier: "not-the-verifier-not-the-verifier-not-the-verifier"}
		_, err := p.Complete(context.Background(), req, a)
		le := wantReason(t, err, "code_exchange")
		if !strings.Contains(le.Err.Error(), "invalid_grant") {
			t.Errorf("error %q lacks the token endpoint's code", le.Err)
		}
	})
	t.Run("no PKCE verifier", func(t *testing.T) {
		a := newAttempt()
		req := authorize(t, p, a)
		a.Data = nil
		_, err := p.Complete(context.Background(), req, a)
		wantReason(t, err, "pkce_missing")
	})
	t.Run("code used twice", func(t *testing.T) {
		a := newAttempt()
		req := authorize(t, p, a)
		if _, err := p.Complete(context.Background(), req, a); err != nil {
			t.Fatal(err)
		}
		_, err := p.Complete(context.Background(), httptest.NewRequest(http.MethodGet, req.URL.String(), nil), a)
		wantReason(t, err, "code_exchange")
	})
	t.Run("POST callback in query mode", func(t *testing.T) {
		a := newAttempt()
		req := httptest.NewRequest(http.MethodPost, testCallback, strings.NewReader("state="+url.QueryEscape(a.State)+"&code=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if p.CallbackState(req) != "" {
			t.Error("CallbackState read a POST in query mode")
		}
		_, err := p.Complete(context.Background(), req, a)
		wantReason(t, err, "bad_method")
	})
	t.Run("attempt without nonce", func(t *testing.T) {
		a := newAttempt()
		a.Nonce = ""
		_, err := p.Begin(context.Background(), a)
		wantReason(t, err, "bad_attempt")
	})
}

func TestOIDCIssParameter(t *testing.T) {
	op := newFakeOP(t)
	op.issParam = true
	p := newTestProvider(t, op)
	a := newAttempt()
	req := authorize(t, p, a)
	if _, err := p.Complete(context.Background(), req, a); err != nil {
		t.Fatal(err)
	}
	// A response naming another issuer (mix-up), or none although the
	// provider promises one, is refused.
	for _, iss := range []string{"https://evil.example.com", ""} {
		a := newAttempt()
		req := authorize(t, p, a)
		q := req.URL.Query()
		q.Set("iss", iss)
		if iss == "" {
			q.Del("iss")
		}
		_, err := p.Complete(context.Background(), httptest.NewRequest(http.MethodGet, testCallback+"?"+q.Encode(), nil), a)
		wantReason(t, err, "issuer_mismatch")
	}
}

func TestOIDCEmailVerified(t *testing.T) {
	for _, tc := range []struct {
		name     string
		verified any
		want     bool
	}{
		{"false", false, false}, {"absent", nil, false}, {"string true", "true", true}, {"string false", "false", false},
		{"number 1", 1, false}, {"true", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := newFakeOP(t)
			op.mutate = func(c map[string]any) {
				delete(c, "email_verified")
				if tc.verified != nil {
					c["email_verified"] = tc.verified
				}
			}
			id, err := signIn(t, newTestProvider(t, op), newAttempt())
			if err != nil {
				t.Fatal(err)
			}
			if id.Email != "alice@example.com" || id.EmailVerified != tc.want {
				t.Errorf("email %q verified %v, want %v", id.Email, id.EmailVerified, tc.want)
			}
		})
	}
}

func TestOIDCClaimMapping(t *testing.T) {
	t.Run("groups as a string", func(t *testing.T) {
		op := newFakeOP(t)
		op.mutate = func(c map[string]any) { c["groups"] = "staff" }
		id, err := signIn(t, newTestProvider(t, op), newAttempt())
		if err != nil || !slices.Equal(id.Groups, []string{"staff"}) {
			t.Fatalf("groups %v, %v", id.Groups, err)
		}
	})
	t.Run("groups as an array with junk", func(t *testing.T) {
		op := newFakeOP(t)
		op.mutate = func(c map[string]any) { c["groups"] = []any{"a", 7, "", "b", map[string]any{"x": 1}} }
		id, err := signIn(t, newTestProvider(t, op), newAttempt())
		if err != nil || !slices.Equal(id.Groups, []string{"a", "b"}) {
			t.Fatalf("groups %v, %v", id.Groups, err)
		}
	})
	t.Run("configured claim names, nested path, namespaced claim, extra", func(t *testing.T) {
		op := newFakeOP(t)
		op.mutate = func(c map[string]any) {
			c["realm_access"] = map[string]any{"roles": []string{"r1", "r2"}}
			c["https://example.com/email"] = "bob@example.com"
			c["mail_ok"] = true
			c["nick"] = "Bobby"
			c["tenant"] = "acme"
			c["employee_id"] = 12345678901234
			c["teams"] = []string{"x", "y"}
		}
		p := newTestProvider(t, op, func(c *config.OIDCProvider) {
			c.Claims = config.OIDCClaims{Email: "https://example.com/email", EmailVerified: "mail_ok", Name: "nick", Groups: "realm_access.roles", Extra: []string{"tenant", "employee_id", "teams", "missing"}}
		})
		id, err := signIn(t, p, newAttempt())
		if err != nil {
			t.Fatal(err)
		}
		if id.Email != "bob@example.com" || !id.EmailVerified || id.Name != "Bobby" || !slices.Equal(id.Groups, []string{"r1", "r2"}) {
			t.Errorf("identity %+v", id)
		}
		want := map[string]string{"tenant": "acme", "employee_id": "12345678901234", "teams": "x,y"}
		if len(id.Extra) != len(want) {
			t.Errorf("extra %v, want %v", id.Extra, want)
		}
		for k, v := range want {
			if id.Extra[k] != v {
				t.Errorf("extra %s = %q, want %q", k, id.Extra[k], v)
			}
		}
	})
}

func TestOIDCUserInfo(t *testing.T) {
	userinfo := func(c *config.OIDCProvider) { on := true; c.UserInfo = &on }
	t.Run("merged", func(t *testing.T) {
		op := newFakeOP(t)
		op.claims = map[string]any{} // a bare ID token: everything from userinfo
		op.userinfo = func(sub string) map[string]any {
			return map[string]any{"sub": sub, "email": "u@example.com", "email_verified": true, "groups": []string{"g1"}, "name": "U", "acr": "gold", "iss": "https://evil.example.com"}
		}
		id, err := signIn(t, newTestProvider(t, op, userinfo), newAttempt())
		if err != nil {
			t.Fatal(err)
		}
		if id.Email != "u@example.com" || !id.EmailVerified || id.Name != "U" || !slices.Equal(id.Groups, []string{"g1"}) {
			t.Errorf("identity %+v", id)
		}
		if id.ACR != "" || id.Issuer != op.issuer() {
			t.Errorf("userinfo set protocol claims: acr %q iss %q", id.ACR, id.Issuer)
		}
	})
	t.Run("ID token email keeps its own verification", func(t *testing.T) {
		op := newFakeOP(t)
		op.claims = map[string]any{"email": "idt@example.com"} // no email_verified
		op.userinfo = func(sub string) map[string]any {
			return map[string]any{"sub": sub, "email": "other@example.com", "email_verified": true}
		}
		id, err := signIn(t, newTestProvider(t, op, userinfo), newAttempt())
		if err != nil {
			t.Fatal(err)
		}
		if id.Email != "idt@example.com" || id.EmailVerified {
			t.Errorf("email %q verified %v: verification borrowed from userinfo", id.Email, id.EmailVerified)
		}
	})
	t.Run("sub mismatch", func(t *testing.T) {
		op := newFakeOP(t)
		op.userinfo = func(string) map[string]any { return map[string]any{"sub": "someone-else", "email": "x@example.com"} }
		_, err := signIn(t, newTestProvider(t, op, userinfo), newAttempt())
		wantReason(t, err, "userinfo_sub_mismatch")
	})
	t.Run("off by default", func(t *testing.T) {
		op := newFakeOP(t)
		op.userinfo = func(string) map[string]any { return map[string]any{"sub": "someone-else"} }
		if _, err := signIn(t, newTestProvider(t, op), newAttempt()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOIDCStepUp(t *testing.T) {
	t.Run("acr requested and met", func(t *testing.T) {
		op := newFakeOP(t)
		op.claims["acr"] = "gold"
		a := newAttempt()
		a.StepUp = &providers.StepUp{ACR: []string{"gold", "platinum"}}
		id, err := signIn(t, newTestProvider(t, op), a)
		if err != nil {
			t.Fatal(err)
		}
		if op.lastAuth.Get("acr_values") != "gold platinum" || id.ACR != "gold" {
			t.Errorf("acr_values %q, acr %q", op.lastAuth.Get("acr_values"), id.ACR)
		}
	})
	t.Run("acr ignored by the provider", func(t *testing.T) {
		op := newFakeOP(t) // answers acr silver whatever was asked
		a := newAttempt()
		a.StepUp = &providers.StepUp{ACR: []string{"gold"}}
		_, err := signIn(t, newTestProvider(t, op), a)
		wantReason(t, err, "step_up_not_met")
	})
	t.Run("max_age sends prompt=login and checks auth_time", func(t *testing.T) {
		op := newFakeOP(t)
		op.mutate = func(c map[string]any) { c["auth_time"] = time.Now().Add(-time.Hour).Unix() }
		a := newAttempt()
		a.StepUp = &providers.StepUp{MaxAge: 5 * time.Minute}
		_, err := signIn(t, newTestProvider(t, op), a)
		wantReason(t, err, "step_up_not_met")
		if op.lastAuth.Get("max_age") != "300" || op.lastAuth.Get("prompt") != "login" {
			t.Errorf("max_age %q prompt %q", op.lastAuth.Get("max_age"), op.lastAuth.Get("prompt"))
		}
		op.set(func(op *fakeOP) { op.mutate = nil }) // auth_time 10 s ago
		a = newAttempt()
		a.StepUp = &providers.StepUp{MaxAge: 5 * time.Minute}
		if _, err := signIn(t, newTestProvider(t, op), a); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("max_age without auth_time", func(t *testing.T) {
		op := newFakeOP(t)
		op.mutate = func(c map[string]any) { delete(c, "auth_time") }
		p := newTestProvider(t, op, func(c *config.OIDCProvider) { c.MaxAge = config.Duration(time.Hour) })
		_, err := signIn(t, p, newAttempt())
		wantReason(t, err, "step_up_not_met")
		if op.lastAuth.Get("max_age") != "3600" {
			t.Errorf("max_age %q", op.lastAuth.Get("max_age"))
		}
	})
	t.Run("mfa through amr", func(t *testing.T) {
		op := newFakeOP(t)
		a := newAttempt()
		a.StepUp = &providers.StepUp{MFA: true}
		_, err := signIn(t, newTestProvider(t, op), a)
		wantReason(t, err, "step_up_not_met")
		op.set(func(op *fakeOP) { op.claims["amr"] = []string{"pwd", "otp"} })
		a = newAttempt()
		a.StepUp = &providers.StepUp{MFA: true}
		if _, err := signIn(t, newTestProvider(t, op), a); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mfa through mfa_acr_values", func(t *testing.T) {
		op := newFakeOP(t)
		op.claims["acr"] = "urn:mfa"
		p := newTestProvider(t, op, func(c *config.OIDCProvider) { c.MFAACRValues = []string{"urn:mfa"} })
		a := newAttempt()
		a.StepUp = &providers.StepUp{MFA: true}
		id, err := signIn(t, p, a)
		if err != nil {
			t.Fatal(err)
		}
		if op.lastAuth.Get("acr_values") != "urn:mfa" || !id.HasMFA() || !a.StepUp.SatisfiedBy(id, time.Now()) {
			t.Errorf("acr_values %q amr %v", op.lastAuth.Get("acr_values"), id.AMR)
		}
	})
}

func TestOIDCAuthorizationParameters(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op, func(c *config.OIDCProvider) {
		c.Scopes = []string{"openid", "email", "offline_access"}
		c.Prompt = "select_account"
		c.ACRValues = []string{"silver"}
		c.AuthParams = map[string]string{"ui_locales": "fr", "audience": "https://api.example.com"}
	})
	a := newAttempt()
	if _, err := signIn(t, p, a); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"scope": "openid email offline_access", "prompt": "select_account", "acr_values": "silver", "ui_locales": "fr", "audience": "https://api.example.com"} {
		if got := op.lastAuth.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// The attempt's prompt wins; "create" sends signup_prompt.
	a = newAttempt()
	a.Prompt = "login"
	authorize(t, p, a)
	if op.lastAuth.Get("prompt") != "login" {
		t.Errorf("prompt %q", op.lastAuth.Get("prompt"))
	}
	a = newAttempt()
	a.Prompt = "create"
	authorize(t, p, a)
	if op.lastAuth.Get("prompt") != "create" {
		t.Errorf("create: prompt %q", op.lastAuth.Get("prompt"))
	}
	p2 := newTestProvider(t, op, func(c *config.OIDCProvider) { c.SignupPrompt = "screen_hint=signup" })
	a = newAttempt()
	a.Prompt = "create"
	authorize(t, p2, a)
	if op.lastAuth.Get("screen_hint") != "signup" || op.lastAuth.Has("prompt") {
		t.Errorf("signup params %v", op.lastAuth)
	}
}

func TestOIDCFormPost(t *testing.T) {
	op := newFakeOP(t)
	op.responseModes = []string{"query", "form_post"}
	p := newTestProvider(t, op, func(c *config.OIDCProvider) { c.ResponseMode = "form_post" })
	if !p.CrossSiteCallback() {
		t.Fatal("form_post provider does not ask for a cross-site callback cookie")
	}
	a := newAttempt()
	get := authorize(t, p, a) // the fake answers by redirect; turn it into the POST a form_post OP makes
	if op.lastAuth.Get("response_mode") != "form_post" {
		t.Errorf("response_mode %q", op.lastAuth.Get("response_mode"))
	}
	if p.CallbackState(get) != "" {
		t.Error("CallbackState accepted a GET in form_post mode")
	}
	post := httptest.NewRequest(http.MethodPost, testCallback, strings.NewReader(get.URL.RawQuery))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if p.CallbackState(post) != a.State {
		t.Fatal("CallbackState did not read the POST body")
	}
	id, err := p.Complete(context.Background(), post, a)
	if err != nil || id.Subject != "user-123" {
		t.Fatalf("%v %v", id, err)
	}
}

func TestOIDCKeyRotation(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)
	if _, err := signIn(t, p, newAttempt()); err != nil {
		t.Fatal(err)
	}
	hits := op.jwksHits
	// Signed with the cached key: no refetch.
	if _, err := signIn(t, p, newAttempt()); err != nil {
		t.Fatal(err)
	}
	if op.jwksHits != hits {
		t.Errorf("JWKS fetched again for a known key (%d → %d)", hits, op.jwksHits)
	}
	// The provider rotates: new key k2 published, old one gone.
	k2 := &testKey{kid: "k2", alg: "RS256", priv: rsaKey(t, 2)}
	op.set(func(op *fakeOP) { op.keys, op.signer = []*testKey{k2}, k2 })
	if _, err := signIn(t, p, newAttempt()); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if op.jwksHits != hits+1 {
		t.Errorf("JWKS hits %d → %d, want one refetch", hits, op.jwksHits)
	}
	// A token signed by the retired key is refused now.
	op.set(func(op *fakeOP) { op.signer = &testKey{kid: "k1", alg: "RS256", priv: rsaKey(t, 0)} })
	_, err := signIn(t, p, newAttempt())
	wantReason(t, err, "bad_id_token")
}

func TestOIDCLazyDiscovery(t *testing.T) {
	op := newFakeOP(t)
	op.down = true
	p := newTestProvider(t, op) // no I/O: succeeds while the provider is down
	p.retry = 50 * time.Millisecond
	if p.Ready() == nil {
		t.Fatal("ready before discovery")
	}
	waitFor(t, func() bool { return p.Ready() != nil && strings.Contains(p.Ready().Error(), "503") })
	_, err := p.Begin(context.Background(), newAttempt())
	wantReason(t, err, "discovery")
	op.set(func(op *fakeOP) { op.down = false })
	waitFor(t, func() bool { return p.Ready() == nil })
	if _, err := signIn(t, p, newAttempt()); err != nil {
		t.Fatal(err)
	}
}

func TestOIDCDiscoveryChecks(t *testing.T) {
	t.Run("issuer mismatch", func(t *testing.T) {
		op := newFakeOP(t)
		op.discoveryIssuer = "https://other.example.com"
		err := newTestProvider(t, op).Discover(context.Background())
		if err == nil || !strings.Contains(err.Error(), "other.example.com") {
			t.Fatalf("Discover: %v", err)
		}
	})
	t.Run("form_post unsupported", func(t *testing.T) {
		op := newFakeOP(t)
		op.responseModes = []string{"query"}
		err := newTestProvider(t, op, func(c *config.OIDCProvider) { c.ResponseMode = "form_post" }).Discover(context.Background())
		if err == nil {
			t.Fatal("form_post accepted by a provider without it")
		}
	})
	t.Run("empty key set", func(t *testing.T) {
		op := newFakeOP(t)
		op.keys = nil
		if err := newTestProvider(t, op).Discover(context.Background()); err == nil || !strings.Contains(err.Error(), "jwks") {
			t.Fatalf("Discover: %v", err)
		}
	})
}

func TestOIDCRefresh(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)
	a := newAttempt()
	id, tokens, err := p.CompleteWithTokens(context.Background(), authorize(t, p, a), a)
	if err != nil {
		t.Fatal(err)
	}
	op.set(func(op *fakeOP) { op.claims["groups"] = []string{"staff", "new-group"}; op.claims["acr"] = "gold" })
	id2, tokens2, err := p.Refresh(context.Background(), id, tokens)
	if err != nil {
		t.Fatal(err)
	}
	if tokens2[TokenAccess] == tokens[TokenAccess] || tokens2[TokenRefresh] != tokens[TokenRefresh] || tokens2[TokenID] == tokens[TokenID] {
		t.Errorf("tokens %v → %v", tokens, tokens2)
	}
	if !slices.Equal(id2.Groups, []string{"staff", "new-group"}) || id2.ACR != "silver" || !id2.AuthTime.Equal(id.AuthTime) || id2.Subject != id.Subject {
		t.Errorf("refreshed identity %+v", id2)
	}
	if !slices.Equal(id.Groups, []string{"staff", "admins"}) {
		t.Errorf("Refresh changed the old identity: %v", id.Groups)
	}

	t.Run("another subject", func(t *testing.T) {
		op.set(func(op *fakeOP) { op.sub = "user-999"; op.refresh[tokens[TokenRefresh]] = "user-999" })
		defer op.set(func(op *fakeOP) { op.sub = "user-123" })
		_, _, err := p.Refresh(context.Background(), id, tokens)
		wantReason(t, err, "refresh_subject_mismatch")
	})
	t.Run("no new ID token", func(t *testing.T) {
		op.set(func(op *fakeOP) { op.refreshIDTokens = false })
		defer op.set(func(op *fakeOP) { op.refreshIDTokens = true })
		id3, t3, err := p.Refresh(context.Background(), id, tokens)
		if err != nil || t3[TokenID] != tokens[TokenID] || !slices.Equal(id3.Groups, id.Groups) {
			t.Fatalf("%v %v %v", id3, t3, err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		op.set(func(op *fakeOP) { op.refreshFail = "invalid_grant" })
		defer op.set(func(op *fakeOP) { op.refreshFail = "" })
		_, _, err := p.Refresh(context.Background(), id, tokens)
		wantReason(t, err, "refresh_revoked")
	})
	t.Run("provider trouble", func(t *testing.T) {
		op.set(func(op *fakeOP) { op.refreshFail = "temporarily_unavailable" })
		defer op.set(func(op *fakeOP) { op.refreshFail = "" })
		_, _, err := p.Refresh(context.Background(), id, tokens)
		wantReason(t, err, "refresh_failed")
	})
	t.Run("no refresh token", func(t *testing.T) {
		_, _, err := p.Refresh(context.Background(), id, map[string]string{TokenAccess: "x"})
		wantReason(t, err, "refresh_unavailable")
	})
}

func TestOIDCLogout(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)
	a := newAttempt()
	id, tokens, err := p.CompleteWithTokens(context.Background(), authorize(t, p, a), a)
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.LogoutWithTokens(context.Background(), id, tokens, "https://gw.example.com/bye")
	if err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(u)
	q := lu.Query()
	if !strings.HasPrefix(u, op.issuer()+"/logout?") || q.Get("id_token_hint") != tokens[TokenID] || q.Get("client_id") != op.clientID || q.Get("post_logout_redirect_uri") != "https://gw.example.com/bye" {
		t.Errorf("logout URL %s", u)
	}
	u, err = p.Logout(context.Background(), id, "")
	if err != nil || strings.Contains(u, "id_token_hint") || !strings.Contains(u, "client_id=") {
		t.Errorf("Logout without tokens: %s %v", u, err)
	}
}

func TestOIDCBackChannelLogoutToken(t *testing.T) {
	op := newFakeOP(t)
	p := newTestProvider(t, op)
	mk := func(mod func(c map[string]any)) string {
		c := map[string]any{"iss": op.issuer(), "aud": op.clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "jti": randText(),
			"sub": "user-123", "sid": "sid-1", "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
		if mod != nil {
			mod(c)
		}
		return signJWT(t, op.signer, "RS256", nil, c)
	}
	lt, err := p.VerifyLogoutToken(context.Background(), mk(nil))
	if err != nil || lt.Subject != "user-123" || lt.SessionID != "sid-1" || lt.Issuer != op.issuer() || lt.TokenID == "" {
		t.Fatalf("%+v %v", lt, err)
	}
	for name, mod := range map[string]func(c map[string]any){
		"nonce":     func(c map[string]any) { c["nonce"] = "n" },
		"no events": func(c map[string]any) { delete(c, "events") },
		"wrong aud": func(c map[string]any) { c["aud"] = "other" },
		"expired":   func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() },
	} {
		if _, err := p.VerifyLogoutToken(context.Background(), mk(mod)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
