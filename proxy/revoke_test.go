package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/providers/static"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/state"
)

// nextSecond waits for the next wall-clock second: session creation times
// have one-second precision, and a revocation ends sessions created in its
// own second too, so a sign-in meant to survive a revocation must come in
// a later second.
func nextSecond() {
	now := time.Now()
	time.Sleep(now.Truncate(time.Second).Add(time.Second + 10*time.Millisecond).Sub(now))
}

// replay sends a request with exactly the given Cookie header, from a
// client without a jar: a stolen or copied cookie.
func replay(e *env, path, cookie string) *resp {
	b := e.browser()
	return b.get(path, "Cookie", cookie)
}

func TestSignOutRevokesCopiedCookie(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn("/docs", "alice")
	copied := b.cookieHeader()
	if r := replay(e, "/docs", copied); r.StatusCode != http.StatusOK {
		t.Fatalf("copied cookie before sign-out: status %d, want 200", r.StatusCode)
	}
	tok := csrfToken(t, b.get(proxy.Prefix+"logout").body)
	if r := b.postForm(proxy.Prefix+"logout", url.Values{"csrf_token": {tok}}); r.StatusCode >= 400 {
		t.Fatalf("logout: status %d", r.StatusCode)
	}
	r := replay(e, "/docs", copied)
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.location(), proxy.Prefix+"login?") {
		t.Fatalf("copied cookie after sign-out: status %d Location %q, want 302 to sign in", r.StatusCode, r.location())
	}
	if !e.loggedMsg("sign-out") {
		t.Error("sign-out not logged")
	}
}

func TestRevokeSubjectEndsEverySessionOfThePerson(t *testing.T) {
	e := newEnv(t)
	alice1, alice2, bob := e.browser(), e.browser(), e.browser()
	alice1.signIn("/docs", "alice")
	alice2.signIn("/docs", "alice")
	bob.signIn("/docs", "bob")
	if err := e.gw.RevokeSubject(context.Background(), "corp", "alice"); err != nil {
		t.Fatal(err)
	}
	for i, b := range []*browser{alice1, alice2} {
		if r := b.get("/docs"); r.StatusCode != http.StatusFound {
			t.Errorf("alice's session %d after RevokeSubject: status %d, want 302", i+1, r.StatusCode)
		}
	}
	if r := bob.get("/docs"); r.StatusCode != http.StatusOK {
		t.Errorf("bob after alice's revocation: status %d, want 200", r.StatusCode)
	}
	// A later sign-in is not affected by the earlier revocation.
	nextSecond()
	alice1.signIn("/docs", "alice")
	if r := alice1.get("/docs"); r.StatusCode != http.StatusOK {
		t.Errorf("alice's new session after the revocation: status %d, want 200", r.StatusCode)
	}
	if err := e.gw.RevokeSubject(context.Background(), "", "alice"); err == nil {
		t.Error("RevokeSubject without a provider succeeded")
	}
}

func TestRevokeUserByEmailAnyProvider(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn("/docs", "carol") // a contractor: denied, but signed in
	c := e.browser()
	c.signIn("/docs", "alice")
	if err := e.gw.RevokeUser(context.Background(), "  ALICE@corp.example "); err != nil {
		t.Fatal(err)
	}
	if r := c.get("/docs"); r.StatusCode != http.StatusFound {
		t.Errorf("after RevokeUser by email: status %d, want 302", r.StatusCode)
	}
	if r := b.get("/docs"); r.StatusCode != http.StatusForbidden {
		t.Errorf("carol after alice's revocation: status %d, want 403 (still signed in)", r.StatusCode)
	}
	if err := e.gw.RevokeSession(context.Background(), ""); err == nil {
		t.Error("RevokeSession with an empty id succeeded")
	}
}

type brokenRevocations struct{}

func (brokenRevocations) Revoke(context.Context, string, time.Time, time.Duration) error {
	return state.ErrUnavailable
}
func (brokenRevocations) RevokedAt(context.Context, ...string) (time.Time, error) {
	return time.Time{}, state.ErrUnavailable
}

type brokenOnce struct{}

func (brokenOnce) Claim(context.Context, string, time.Time) (bool, error) {
	return false, state.ErrUnavailable
}

func TestSharedStateOutageFailsClosed(t *testing.T) {
	var broken bool
	mem := state.NewMemory(nil)
	e := newEnvWith(t, envConfig{edit: func(o *proxy.Options) { o.Shared = switchState{mem: mem, broken: &broken} }})
	b := e.browser()
	b.signIn("/docs", "alice")
	broken = true
	before := len(e.up.hits())
	r := b.get("/docs")
	if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("session check during an outage: status %d Retry-After %q, want 503 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if len(e.up.hits()) != before {
		t.Fatal("request forwarded during an outage")
	}
	if b.session(identity.Workforce) == "" {
		t.Fatal("the session cookie was cleared because of an outage")
	}
	// A sign-in cannot complete either: its single-use state cannot be
	// recorded.
	n := e.browser()
	login := n.get("/docs").location()
	prov, st := n.startLogin(login)
	if r := n.callback(prov, st, "bob"); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("callback during an outage: status %d, want 503", r.StatusCode)
	}
	// Public routes do not need the shared state.
	if r := n.get("/public/x"); r.StatusCode != http.StatusOK {
		t.Errorf("public route during an outage: status %d", r.StatusCode)
	}
	broken = false
	if r := b.get("/docs"); r.StatusCode != http.StatusOK {
		t.Errorf("after the outage: status %d, want 200", r.StatusCode)
	}
}

// switchState is the memory state, or a broken one while *broken is true.
type switchState struct {
	mem    *state.Memory
	broken *bool
}

func (s switchState) Once() state.Once {
	if *s.broken {
		return brokenOnce{}
	}
	return s.mem.Once()
}
func (s switchState) Revocations() state.Revocations {
	if *s.broken {
		return brokenRevocations{}
	}
	return s.mem.Revocations()
}
func (s switchState) Limiter() state.Limiter         { return s.mem.Limiter() }
func (s switchState) Sessions() state.Sessions       { return s.mem.Sessions() }
func (s switchState) Ping(ctx context.Context) error { return s.mem.Ping(ctx) }
func (s switchState) Kind() string                   { return "test" }
func (s switchState) Close() error                   { return nil }

// sloCorp is the static corp provider with single logout, the way a SAML
// or OIDC provider has it: sign-ins carry an IdP session id, StartLogout
// sends the browser to the IdP, and ReceiveLogout returns what the test
// sets.
type sloCorp struct {
	*static.Provider
	receive func(r *http.Request, data map[string]string) (*providers.LogoutNotice, error)
}

func (p *sloCorp) CompleteWithTokens(ctx context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, map[string]string, error) {
	id, err := p.Complete(ctx, r, a)
	if err != nil {
		return nil, nil, err
	}
	return id, map[string]string{"sid": "idp-session-" + id.Subject, "access_token": "never-kept"}, nil
}

func (p *sloCorp) StartLogout(_ context.Context, id *identity.Identity, tokens map[string]string, returnURL string) (*providers.Redirect, error) {
	return &providers.Redirect{URL: "https://idp.example/slo?sid=" + url.QueryEscape(tokens["sid"]), Data: map[string]string{"request_id": "req-" + id.Subject}}, nil
}

func (p *sloCorp) LogoutPath() string { return "slo/corp" }

func (p *sloCorp) ReceiveLogout(_ context.Context, r *http.Request, data map[string]string) (*providers.LogoutNotice, error) {
	return p.receive(r, data)
}

func newSLOEnv(t *testing.T, receive func(r *http.Request, data map[string]string) (*providers.LogoutNotice, error)) *env {
	return newEnvWith(t, envConfig{edit: func(o *proxy.Options) {
		o.Providers["corp"] = &sloCorp{Provider: o.Providers["corp"].(*static.Provider), receive: receive}
	}})
}

func TestIdPInitiatedLogoutBySessionIndex(t *testing.T) {
	var responded error = errors.New("Respond not called")
	e := newSLOEnv(t, func(r *http.Request, data map[string]string) (*providers.LogoutNotice, error) {
		sid := r.URL.Query().Get("sid")
		if sid == "" {
			return nil, providers.Fail("slo_malformed", "This sign-out message is incomplete.", errors.New("no sid"))
		}
		return &providers.LogoutNotice{Subject: "alice", SessionIDs: []string{sid}, Respond: func(w http.ResponseWriter, r *http.Request, ended error) {
			responded = ended
			http.Redirect(w, r, "https://idp.example/slo-done", http.StatusFound)
		}}, nil
	})
	alice, alice2, bob := e.browser(), e.browser(), e.browser()
	alice.signIn("/docs", "alice")
	bob.signIn("/docs", "bob")
	nextSecond()
	alice2.signIn("/docs", "alice") // the same IdP session id (the fake has one per user)
	copied := alice.cookieHeader()

	// The IdP sends alice's browser to our logout endpoint.
	r := alice.get(proxy.Prefix + "slo/corp?sid=idp-session-alice")
	if r.StatusCode != http.StatusFound || r.location() != "https://idp.example/slo-done" || responded != nil {
		t.Fatalf("IdP-initiated logout: status %d Location %q, Respond got %v", r.StatusCode, r.location(), responded)
	}
	if !strings.Contains(strings.Join(r.Header["Set-Cookie"], "\n"), e.cookieName(identity.Workforce)+"=;") &&
		alice.session(identity.Workforce) != "" {
		t.Error("the browser carrying the logout kept its session cookie")
	}
	for name, c := range map[string]string{"copied cookie": copied, "second browser": alice2.cookieHeader()} {
		if r := replay(e, "/docs", c); r.StatusCode != http.StatusFound {
			t.Errorf("%s of the ended IdP session: status %d, want 302", name, r.StatusCode)
		}
	}
	if r := bob.get("/docs"); r.StatusCode != http.StatusOK {
		t.Errorf("bob (another IdP session): status %d, want 200", r.StatusCode)
	}
	if !e.loggedMsg("IdP logout: sessions ended") {
		t.Error("IdP logout not logged")
	}

	// A refused message: 400, a friendly page, the reason in the log.
	r = bob.get(proxy.Prefix + "slo/corp")
	if r.StatusCode != http.StatusBadRequest || !strings.Contains(r.body, "This sign-out message is incomplete.") {
		t.Errorf("refused logout message: status %d body %.200s", r.StatusCode, r.body)
	}
	if !e.loggedMsg("logout message refused") {
		t.Error("refused logout message not logged")
	}
	if r := bob.get("/docs"); r.StatusCode != http.StatusOK {
		t.Errorf("bob after a refused logout message: status %d, want 200", r.StatusCode)
	}
}

func TestSPInitiatedSingleLogoutRoundTrip(t *testing.T) {
	e := newSLOEnv(t, func(r *http.Request, data map[string]string) (*providers.LogoutNotice, error) {
		if data == nil || data["request_id"] != r.URL.Query().Get("in_response_to") {
			return nil, providers.Fail("slo_unknown_request", "", errors.New("InResponseTo does not match"))
		}
		return &providers.LogoutNotice{Completed: true}, nil
	})
	b := e.browser()
	b.signIn("/docs", "alice")
	copied := b.cookieHeader()
	tok := csrfToken(t, b.get(proxy.Prefix+"logout?rd=/public/bye").body)
	r := b.postForm(proxy.Prefix+"logout", url.Values{"csrf_token": {tok}, "return_to": {"/public/bye"}})
	if r.StatusCode != http.StatusSeeOther || r.location() != "https://idp.example/slo?sid=idp-session-alice" {
		t.Fatalf("logout: status %d Location %q, want 303 to the IdP", r.StatusCode, r.location())
	}
	if r := replay(e, "/docs", copied); r.StatusCode != http.StatusFound {
		t.Errorf("session before the IdP answered: status %d, want 302 (local sign-out comes first)", r.StatusCode)
	}
	// Another browser cannot complete this logout.
	other := e.browser()
	if r := other.get(proxy.Prefix + "slo/corp?in_response_to=req-alice"); r.StatusCode != http.StatusBadRequest {
		t.Errorf("answer in a browser that did not start the logout: status %d, want 400", r.StatusCode)
	}
	// The IdP answers in this browser: back to the return URL.
	r = b.get(proxy.Prefix + "slo/corp?in_response_to=req-alice")
	if r.StatusCode != http.StatusSeeOther || r.location() != "/public/bye" {
		t.Fatalf("IdP answer: status %d Location %q, want 303 /public/bye: %.200s", r.StatusCode, r.location(), r.body)
	}
	// A wrong answer still leaves the person signed out, told so.
	b.signIn("/docs", "alice")
	tok = csrfToken(t, b.get(proxy.Prefix+"logout").body)
	b.postForm(proxy.Prefix+"logout", url.Values{"csrf_token": {tok}})
	r = b.get(proxy.Prefix + "slo/corp?in_response_to=forged")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.body, "signed out of this site") {
		t.Errorf("mismatched IdP answer: status %d body %.300s", r.StatusCode, r.body)
	}
	if r := b.get("/docs"); r.StatusCode != http.StatusFound {
		t.Errorf("after a failed IdP logout: status %d, want 302 (signed out locally)", r.StatusCode)
	}
}

func TestSCIMDeprovisioningEndsSessions(t *testing.T) {
	const token = "scim-token-0123456789abcdef0123456789"
	e := newEnvWith(t, envConfig{policy: mainPolicy + "scim: { token: \"" + token + "\" }\n"})
	alice, bob := e.browser(), e.browser()
	alice.signIn("/docs", "alice")
	bob.signIn("/docs", "bob")
	scimDo := func(method, path, body, tok string) *resp {
		return e.browser().do(method, proxy.Prefix+"scim/v2"+path, strings.NewReader(body),
			"Authorization", "Bearer "+tok, "Content-Type", "application/scim+json")
	}
	if r := scimDo("GET", "/Users", "", "wrong"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("SCIM with a wrong token: status %d", r.StatusCode)
	}
	// The IdP creates the user, then deactivates it (Okta's PATCH shape).
	r := scimDo("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@corp.example","active":true}`, token)
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("SCIM create: status %d %s", r.StatusCode, r.body)
	}
	if got := alice.get("/docs"); got.StatusCode != http.StatusOK {
		t.Fatalf("creating the user ended the session: %d", got.StatusCode)
	}
	var created struct {
		ID string `json:"id"`
	}
	if err := jsonUnmarshal(r.body, &created); err != nil || created.ID == "" {
		t.Fatalf("SCIM create answer %s: %v", r.body, err)
	}
	r = scimDo("PATCH", "/Users/"+created.ID, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`, token)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("SCIM deactivate: status %d %s", r.StatusCode, r.body)
	}
	if got := alice.get("/docs"); got.StatusCode != http.StatusFound {
		t.Errorf("alice after SCIM deactivation: status %d, want 302", got.StatusCode)
	}
	if got := bob.get("/docs"); got.StatusCode != http.StatusOK {
		t.Errorf("bob after alice's deactivation: status %d", got.StatusCode)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// countingState is the memory state posing as a server (Kind "redis"),
// counting revocation lookups.
type countingState struct {
	*state.Memory
	lookups atomic.Int32
}

func (c *countingState) Kind() string { return "redis" }
func (c *countingState) Revocations() state.Revocations {
	return countingRevocations{c.Memory.Revocations(), c}
}

type countingRevocations struct {
	state.Revocations
	c *countingState
}

func (r countingRevocations) RevokedAt(ctx context.Context, keys ...string) (time.Time, error) {
	r.c.lookups.Add(1)
	return r.Revocations.RevokedAt(ctx, keys...)
}

// TestRevocationAnswerReusedBriefly: with a shared state on a server, a
// burst of requests of one session asks it once; a revocation made here
// takes effect at once, and one made elsewhere within clearCacheTTL.
func TestRevocationAnswerReusedBriefly(t *testing.T) {
	cs := &countingState{Memory: state.NewMemory(nil)}
	e := newEnvWith(t, envConfig{edit: func(o *proxy.Options) { o.Shared = cs }})
	b := e.browser()
	b.signIn("/docs", "alice")
	cs.lookups.Store(0)
	for i := 0; i < 10; i++ {
		if r := b.get("/docs"); r.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d", i, r.StatusCode)
		}
	}
	if n := cs.lookups.Load(); n < 1 || n > 3 {
		t.Errorf("%d revocation lookups for a burst of 10 requests, want 1 (or a few if the burst outlasted 250ms)", n)
	}
	// Revoked here: the very next request is refused.
	if err := e.gw.RevokeSubject(context.Background(), "corp", "alice"); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/docs"); r.StatusCode != http.StatusFound {
		t.Errorf("right after a revocation on this replica: %d, want 302", r.StatusCode)
	}
	// Revoked elsewhere (straight into the shared state): refused within
	// the cache's lifetime.
	nextSecond()
	b.signIn("/docs", "alice")
	b.get("/docs")
	cs.Memory.Revocations().Revoke(context.Background(), "sub:corp\x00alice", time.Now(), time.Hour)
	time.Sleep(300 * time.Millisecond)
	if r := b.get("/docs"); r.StatusCode != http.StatusFound {
		t.Errorf("300ms after a revocation on another replica: %d, want 302", r.StatusCode)
	}
}
