package local

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/mail"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/store"
)

// fastArgon2 keeps the flow tests quick; the timing test and the rehash
// test pick their own.
var fastArgon2 = config.LocalArgon2{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}

// harness plays the gateway: it serves the provider's endpoints and a
// callback that keeps attempts by state and calls Complete.
type harness struct {
	t      *testing.T
	p      *Provider
	srv    *httptest.Server
	client *http.Client
	outbox *mail.Outbox
	db     store.Store

	mu       sync.Mutex
	attempts map[string]*providers.Attempt
	resets   []string
	offset   time.Duration // added to the provider's clock
}

func newHarness(t *testing.T, cfg config.LocalProvider) *harness {
	t.Helper()
	h := &harness{t: t, attempts: map[string]*providers.Attempt{}}
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "accounts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	h.outbox, err = mail.NewOutbox(filepath.Join(dir, "outbox"), "Acme <no-reply@example.com>")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Argon2 == (config.LocalArgon2{}) {
		cfg.Argon2 = fastArgon2
	}
	if cfg.RateLimit.PerAccount == 0 {
		cfg.RateLimit.PerAccount = 1000
	}
	if cfg.RateLimit.PerIP == 0 {
		cfg.RateLimit.PerIP = 1000
	}
	if cfg.RateLimit.Emails == 0 {
		cfg.RateLimit.Emails = 100
	}
	cfg.DisplayName = "Acme accounts"
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	insecure := true
	mem := state.NewMemory(nil)
	h.p, err = New("acme", &cfg, Env{
		PublicURL: h.srv.URL, Logger: zaptest.NewLogger(t), Once: mem.Once(), Limiter: mem.Limiter(),
		Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, Store: db, Mail: h.outbox,
		InsecureCookies: &insecure,
		Now: func() time.Time {
			h.mu.Lock()
			defer h.mu.Unlock()
			return time.Now().Add(h.offset)
		},
		OnPasswordReset: func(_ context.Context, sub string) {
			h.mu.Lock()
			h.resets = append(h.resets, sub)
			h.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.p.Close() })
	for path, hd := range h.p.Endpoints() {
		mux.Handle(Prefix+path, hd)
	}
	mux.HandleFunc(Prefix+"callback/acme", h.callback)
	jar, _ := cookiejar.New(nil)
	h.client = &http.Client{Jar: jar, Timeout: 30 * time.Second}
	return h
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.offset += d
	h.mu.Unlock()
}

// callback is the gateway's part: find the attempt, call Complete, answer
// the identity as JSON.
func (h *harness) callback(w http.ResponseWriter, r *http.Request) {
	st := h.p.CallbackState(r)
	h.mu.Lock()
	a := h.attempts[st]
	h.mu.Unlock()
	if a == nil {
		http.Error(w, "no attempt", http.StatusBadRequest)
		return
	}
	id, err := h.p.Complete(r.Context(), r, a)
	if err != nil {
		var le *providers.LoginError
		errors.As(err, &le)
		http.Error(w, "login failed: "+le.Reason, http.StatusUnauthorized)
		return
	}
	json.NewEncoder(w).Encode(id)
}

// begin starts an attempt and returns the URL Begin sends the browser to.
func (h *harness) begin(prompt string) string {
	b := make([]byte, 18)
	rand.Read(b)
	a := &providers.Attempt{State: base64.RawURLEncoding.EncodeToString(b), Provider: "acme", Audience: identity.Customer,
		ReturnURL: "https://app.example.com/home", Prompt: prompt, Created: time.Now()}
	red, err := h.p.Begin(context.Background(), a)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.attempts[a.State] = a
	h.mu.Unlock()
	return h.srv.URL + red.URL
}

type resp struct {
	status int
	body   string
	header http.Header
}

func (h *harness) do(req *http.Request) resp {
	h.t.Helper()
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

func (h *harness) get(u string) resp {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return h.do(req)
}

func (h *harness) post(u string, v url.Values, hdr ...string) resp {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return h.do(req)
}

var (
	actionRE = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// form returns the absolute action and hidden fields of the page's form.
func (h *harness) form(page resp) (string, url.Values) {
	h.t.Helper()
	m := actionRE.FindStringSubmatch(page.body)
	if m == nil {
		h.t.Fatalf("no form on the page (%d):\n%s", page.status, page.body)
	}
	v := url.Values{}
	for _, f := range hiddenRE.FindAllStringSubmatch(page.body, -1) {
		v.Set(f[1], html.UnescapeString(f[2]))
	}
	action := html.UnescapeString(m[1])
	if strings.HasPrefix(action, "/") {
		action = h.srv.URL + action
	}
	return action, v
}

// submit fills the page's form with fields and posts it.
func (h *harness) submit(page resp, fields ...string) resp {
	h.t.Helper()
	action, v := h.form(page)
	for i := 0; i+1 < len(fields); i += 2 {
		v.Set(fields[i], fields[i+1])
	}
	return h.post(action, v)
}

func (h *harness) mails() []mail.Stored {
	h.t.Helper()
	h.p.mailWG.Wait()
	msgs, err := h.outbox.Messages()
	if err != nil {
		h.t.Fatal(err)
	}
	return msgs
}

// lastMail returns the newest message to addr, which must be of kind.
func (h *harness) lastMail(addr, kind string) mail.Stored {
	h.t.Helper()
	for _, m := range h.mails() {
		if m.To == addr {
			if m.Kind != kind {
				h.t.Fatalf("newest mail to %s is %q, want %q", addr, m.Kind, kind)
			}
			return m
		}
	}
	h.t.Fatalf("no mail to %s", addr)
	return mail.Stored{}
}

func (h *harness) mailCount(addr string) int {
	n := 0
	for _, m := range h.mails() {
		if m.To == addr {
			n++
		}
	}
	return n
}

const goodPassword = "tangerine-orbit-lantern"

// register signs up and confirms the address; it returns the account.
func (h *harness) register(email, password string) *store.Account {
	h.t.Helper()
	page := h.get(h.begin("create"))
	if page.status != 200 || !strings.Contains(page.body, "Create an account") {
		h.t.Fatalf("register page %d:\n%s", page.status, page.body)
	}
	res := h.submit(page, "email", email, "password", password, "name", "Zoë Test")
	if res.status != 200 || !strings.Contains(res.body, "Check your email") {
		h.t.Fatalf("register: %d\n%s", res.status, res.body)
	}
	m := h.lastMail(store.NormalizeEmail(email), mail.KindVerify)
	if len(m.Links) != 1 {
		h.t.Fatalf("verify mail links = %v", m.Links)
	}
	confirm := h.get(m.Links[0])
	if confirm.status != 200 || !strings.Contains(confirm.body, "Confirm my email address") {
		h.t.Fatalf("confirm page %d:\n%s", confirm.status, confirm.body)
	}
	done := h.submit(confirm, "password", password)
	if done.status != 200 || !strings.Contains(done.body, "is confirmed") {
		h.t.Fatalf("confirm: %d\n%s", done.status, done.body)
	}
	a, err := h.db.AccountByEmail(context.Background(), email)
	if err != nil || !a.EmailVerified {
		h.t.Fatalf("account after confirmation: %+v, %v", a, err)
	}
	return a
}

// signIn posts the sign-in form of a new attempt and returns the answer
// (the auto-post page on success).
func (h *harness) signIn(email, password string) resp {
	h.t.Helper()
	page := h.get(h.begin(""))
	if page.status != 200 {
		h.t.Fatalf("sign-in page %d:\n%s", page.status, page.body)
	}
	return h.submit(page, "email", email, "password", password)
}

// complete posts the auto-post form to the callback.
func (h *harness) complete(auto resp) (*identity.Identity, resp) {
	h.t.Helper()
	res := h.submit(auto)
	if res.status != 200 {
		return nil, res
	}
	var id identity.Identity
	if err := json.Unmarshal([]byte(res.body), &id); err != nil {
		h.t.Fatalf("callback answer: %v\n%s", err, res.body)
	}
	return &id, res
}

func TestRegisterVerifySignIn(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	acct := h.register("Zoe@Example.com", goodPassword)
	if acct.Email != "zoe@example.com" {
		t.Fatalf("email stored as %q", acct.Email)
	}

	auto := h.signIn("zoe@EXAMPLE.com", goodPassword)
	if auto.status != 200 || !strings.Contains(auto.body, `name="proof"`) {
		t.Fatalf("sign-in: %d\n%s", auto.status, auto.body)
	}
	if csp := auto.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "form-action 'self'") {
		t.Fatalf("CSP = %q", csp)
	}
	id, res := h.complete(auto)
	if id == nil {
		t.Fatalf("callback: %d %s", res.status, res.body)
	}
	if id.Subject != acct.ID || id.Email != "zoe@example.com" || !id.EmailVerified || id.Name != "Zoë Test" ||
		len(id.AMR) != 1 || id.AMR[0] != "pwd" || id.Issuer != "local:acme" || id.AuthTime.IsZero() {
		t.Fatalf("identity = %+v", id)
	}

	// The same proof again: refused (single use).
	res = h.submit(auto)
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body, "proof_replayed") {
		t.Fatalf("replayed proof: %d %s", res.status, res.body)
	}
}

func TestProofBoundToAttemptAndSignature(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("bound@example.com", goodPassword)
	auto := h.signIn("bound@example.com", goodPassword)
	action, v := h.form(auto)

	// Another attempt's state with this proof.
	other := h.begin("")
	u, _ := url.Parse(other)
	w := url.Values{"state": {u.Query().Get("state")}, "proof": {v.Get("proof")}}
	if res := h.post(action, w); res.status != http.StatusUnauthorized || !strings.Contains(res.body, "proof_state_mismatch") {
		t.Fatalf("proof on another attempt: %d %s", res.status, res.body)
	}
	// A tampered proof.
	w = url.Values{"state": {v.Get("state")}, "proof": {v.Get("proof") + "x"}}
	if res := h.post(action, w); res.status != http.StatusUnauthorized || !strings.Contains(res.body, "bad_proof") {
		t.Fatalf("tampered proof: %d %s", res.status, res.body)
	}
	// A forged proof signed with another key.
	forged := signer{keys: [][]byte{deriveKey([]byte("another secret, 32 bytes long!!!"), "acme")}, now: time.Now}
	tok := forged.issue(claims{Purpose: purposeSignIn, Account: "acct_x", State: v.Get("state")}, time.Minute)
	if res := h.post(action, url.Values{"state": {v.Get("state")}, "proof": {tok}}); res.status != http.StatusUnauthorized {
		t.Fatalf("forged proof: %d %s", res.status, res.body)
	}
	// An expired proof.
	h.advance(ProofTTL + time.Second)
	if res := h.post(action, v); res.status != http.StatusUnauthorized || !strings.Contains(res.body, "bad_proof") {
		t.Fatalf("expired proof: %d %s", res.status, res.body)
	}
}

func TestUnverifiedCannotSignIn(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	page := h.get(h.begin("create"))
	h.submit(page, "email", "late@example.com", "password", goodPassword)
	h.lastMail("late@example.com", mail.KindVerify)
	res := h.signIn("late@example.com", goodPassword)
	if res.status != http.StatusForbidden || strings.Contains(res.body, "proof") {
		t.Fatalf("unverified sign-in: %d\n%s", res.status, res.body)
	}
	if n := h.mailCount("late@example.com"); n != 2 {
		t.Fatalf("%d mails; want a fresh confirmation link", n)
	}
	// A wrong password on an unverified account says nothing about it.
	res = h.signIn("late@example.com", "wrong-password-here")
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body, html.EscapeString(msgSignInFailed)) {
		t.Fatalf("wrong password: %d", res.status)
	}
}

func TestVerifyLinkSingleUseForgedExpired(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	page := h.get(h.begin("create"))
	h.submit(page, "email", "link@example.com", "password", goodPassword)
	link := h.lastMail("link@example.com", mail.KindVerify).Links[0]

	// Forged: signature changed.
	if res := h.get(link + "A"); res.status != http.StatusBadRequest {
		t.Fatalf("forged link: %d", res.status)
	}
	confirm := h.get(link)
	// A mail scanner fetching the link twice consumes nothing.
	h.get(link)
	if res := h.submit(confirm, "password", goodPassword); res.status != 200 {
		t.Fatalf("confirm: %d %s", res.status, res.body)
	}
	// Reused: the POST again is refused.
	if res := h.submit(confirm, "password", goodPassword); res.status != http.StatusBadRequest || !strings.Contains(res.body, "not valid") {
		t.Fatalf("reused link: %d %s", res.status, res.body)
	}

	// Expired.
	page = h.get(h.begin("create"))
	h.submit(page, "email", "slow@example.com", "password", goodPassword)
	link = h.lastMail("slow@example.com", mail.KindVerify).Links[0]
	confirm = h.get(link)
	h.advance(DefaultVerifyTTL + time.Minute)
	if res := h.submit(confirm, "password", goodPassword); res.status != http.StatusBadRequest {
		t.Fatalf("expired link: %d %s", res.status, res.body)
	}
	if res := h.get(link); res.status != http.StatusBadRequest {
		t.Fatalf("expired link GET: %d", res.status)
	}
}

// TestReRegistrationOfUnconfirmedKeepsTheOwnersPassword: a second sign-up
// for an address whose account is not confirmed yet must not replace its
// password (else the owner, clicking the newest confirmation mail, would
// confirm an account with the newcomer's password); the address gets the
// "you already have an account" mail with a reset link instead.
func TestReRegistrationOfUnconfirmedKeepsTheOwnersPassword(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	page := h.get(h.begin("create"))
	h.submit(page, "email", "twice@example.com", "password", "first-password-123")
	link := h.lastMail("twice@example.com", mail.KindVerify).Links[0]
	time.Sleep(2 * time.Millisecond)
	page = h.get(h.begin("create"))
	res := h.submit(page, "email", "twice@example.com", "password", "second-password-456")
	if res.status != http.StatusOK || !strings.Contains(res.body, "Check your email") {
		t.Fatalf("second sign-up: %d (the answer must not differ from a first sign-up)", res.status)
	}
	if m := h.lastMail("twice@example.com", mail.KindExists); len(m.Links) == 0 {
		t.Fatal("no 'account exists' mail with a reset link")
	}
	if res := h.submit(h.get(link), "password", "first-password-123"); res.status != 200 {
		t.Fatalf("the owner's confirmation link: %d", res.status)
	}
	if res := h.signIn("twice@example.com", "second-password-456"); res.status != http.StatusUnauthorized {
		t.Fatalf("the second registrant's password: %d, want 401", res.status)
	}
	if id, _ := h.complete(h.signIn("twice@example.com", "first-password-123")); id == nil {
		t.Fatal("the owner's password does not sign in")
	}
}

func TestPasswordReset(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	acct := h.register("reset@example.com", goodPassword)

	page := h.get(h.srv.URL + Prefix + "local/acme/reset")
	res := h.submit(page, "email", "RESET@example.com")
	if res.status != 200 || !strings.Contains(res.body, "If an account exists") {
		t.Fatalf("reset request: %d %s", res.status, res.body)
	}
	link := h.lastMail("reset@example.com", mail.KindReset).Links[0]
	if res := h.get(link + "x"); res.status != http.StatusBadRequest {
		t.Fatalf("forged reset link: %d", res.status)
	}
	form := h.get(link)
	if form.status != 200 || !strings.Contains(form.body, "New password") {
		t.Fatalf("reset form: %d %s", form.status, form.body)
	}
	// Policy is checked and the link survives a refused password.
	if res := h.submit(form, "password", "short"); res.status != http.StatusBadRequest || !strings.Contains(res.body, "too short") {
		t.Fatalf("short password: %d %s", res.status, res.body)
	}
	const newPassword = "marmalade-quartz-violin"
	if res := h.submit(form, "password", newPassword); res.status != 200 || !strings.Contains(res.body, "Password changed") {
		t.Fatalf("reset: %d %s", res.status, res.body)
	}
	h.mu.Lock()
	resets := append([]string(nil), h.resets...)
	h.mu.Unlock()
	if len(resets) != 1 || resets[0] != acct.ID {
		t.Fatalf("OnPasswordReset calls = %v, want [%s]", resets, acct.ID)
	}
	h.lastMail("reset@example.com", mail.KindChanged)

	// Reused link: refused, by the single-use claim and by the binding to
	// the old password.
	if res := h.submit(form, "password", "another-new-password-1"); res.status != http.StatusBadRequest {
		t.Fatalf("reused reset link: %d %s", res.status, res.body)
	}
	if res := h.get(link); res.status != http.StatusBadRequest {
		t.Fatalf("reused reset link GET: %d", res.status)
	}
	if res := h.signIn("reset@example.com", goodPassword); res.status != http.StatusUnauthorized {
		t.Fatalf("old password still works: %d", res.status)
	}
	if id, res := h.complete(h.signIn("reset@example.com", newPassword)); id == nil {
		t.Fatalf("new password: %d %s", res.status, res.body)
	}

	// Expired reset link.
	h.submit(h.get(h.srv.URL+Prefix+"local/acme/reset"), "email", "reset@example.com")
	link = h.lastMail("reset@example.com", mail.KindReset).Links[0]
	form = h.get(link)
	h.advance(DefaultResetTTL + time.Minute)
	if res := h.submit(form, "password", "late-password-12345"); res.status != http.StatusBadRequest {
		t.Fatalf("expired reset link: %d", res.status)
	}
}

func TestLockout(t *testing.T) {
	h := newHarness(t, config.LocalProvider{Lockout: config.LocalLockout{MaxFailures: 3, Duration: config.Duration(10 * time.Minute)}})
	h.register("lock@example.com", goodPassword)
	for i := 0; i < 3; i++ {
		if res := h.signIn("lock@example.com", "not-the-password"); res.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, res.status)
		}
	}
	res := h.signIn("lock@example.com", goodPassword)
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body, html.EscapeString(msgSignInFailed)) {
		t.Fatalf("right password on a locked account: %d", res.status)
	}
	h.advance(11 * time.Minute)
	if id, res := h.complete(h.signIn("lock@example.com", goodPassword)); id == nil {
		t.Fatalf("after the lock: %d %s", res.status, res.body)
	}
}

func TestRateLimits(t *testing.T) {
	h := newHarness(t, config.LocalProvider{RateLimit: config.LocalRateLimit{PerIP: 1000, PerAccount: 3, Emails: 2}})
	for i := 0; i < 3; i++ {
		if res := h.signIn("nobody@example.com", "whatever-password"); res.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, res.status)
		}
	}
	res := h.signIn("nobody@example.com", "whatever-password")
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("4th attempt: %d %v", res.status, res.header)
	}
	// Another address is not affected.
	if res := h.signIn("somebody@example.com", "whatever-password"); res.status != http.StatusUnauthorized {
		t.Fatalf("other address: %d", res.status)
	}
	// Mail cap: at most 2 reset mails to one address per window.
	h.register("capped@example.com", goodPassword) // 1 mail (verify)
	for i := 0; i < 2; i++ {
		h.submit(h.get(h.srv.URL+Prefix+"local/acme/reset"), "email", "capped@example.com")
	}
	if n := h.mailCount("capped@example.com"); n != 2 {
		t.Fatalf("%d mails to a capped address, want 2", n)
	}

	ip := newHarness(t, config.LocalProvider{RateLimit: config.LocalRateLimit{PerIP: 2}})
	page := ip.get(ip.begin(""))
	for i := 0; i < 2; i++ {
		ip.submit(page, "email", "a@example.com", "password", "x-password-long")
	}
	if res := ip.submit(page, "email", "b@example.com", "password", "x-password-long"); res.status != http.StatusTooManyRequests {
		t.Fatalf("per-IP limit: %d", res.status)
	}
}

func TestCSRF(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	page := h.get(h.begin(""))
	action, v := h.form(page)
	v.Set("email", "a@example.com")
	v.Set("password", "some-password-1")

	bad := url.Values{}
	for k, vs := range v {
		bad[k] = vs
	}
	bad.Del(FieldCSRF)
	if res := h.post(action, bad); res.status != http.StatusForbidden {
		t.Fatalf("no token: %d", res.status)
	}
	bad.Set(FieldCSRF, "AAAA")
	if res := h.post(action, bad); res.status != http.StatusForbidden {
		t.Fatalf("wrong token: %d", res.status)
	}
	if res := h.post(action, v, "Sec-Fetch-Site", "cross-site"); res.status != http.StatusForbidden {
		t.Fatalf("cross-site post: %d", res.status)
	}
	// A token for another form is refused.
	reg := h.get(h.begin("create"))
	_, rv := h.form(reg)
	v.Set(FieldCSRF, rv.Get(FieldCSRF))
	if res := h.post(action, v); res.status != http.StatusForbidden {
		t.Fatalf("token of another form: %d", res.status)
	}
	// Another browser (no cookie) with a valid-looking token.
	_, v2 := h.form(page)
	req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(url.Values{FieldCSRF: {v2.Get(FieldCSRF)}, "state": {v2.Get("state")}, "email": {"a@example.com"}, "password": {"x"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("no cookie: %d", res.StatusCode)
	}
	// And the normal post works.
	if res := h.post(action, func() url.Values { v.Set(FieldCSRF, v2.Get(FieldCSRF)); return v }()); res.status != http.StatusUnauthorized {
		t.Fatalf("valid post: %d", res.status)
	}
}

var nonceRE = regexp.MustCompile(`nonce="[^"]*"|nonce-[A-Za-z0-9+/=]+`)

// normalize removes what legitimately differs between two answers: the
// CSP nonce and the address typed in.
func normalize(body string, emails ...string) string {
	body = nonceRE.ReplaceAllString(body, "NONCE")
	for _, e := range emails {
		body = strings.ReplaceAll(body, e, "EMAIL")
	}
	return body
}

func TestNoEnumeration(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("known@example.com", goodPassword)

	// Sign-in: wrong password for a known address vs an unknown address.
	page := h.get(h.begin(""))
	known := h.submit(page, "email", "known@example.com", "password", "wrong-password-1")
	unknown := h.submit(page, "email", "unknown@example.com", "password", "wrong-password-1")
	if known.status != unknown.status || normalize(known.body, "known@example.com") != normalize(unknown.body, "unknown@example.com") {
		t.Fatalf("sign-in answers differ:\n%d %s\n---\n%d %s", known.status, known.body, unknown.status, unknown.body)
	}

	// Registration: taken vs new address.
	reg := h.get(h.begin("create"))
	taken := h.submit(reg, "email", "known@example.com", "password", "another-password-1")
	fresh := h.submit(reg, "email", "fresh@example.com", "password", "another-password-1")
	if taken.status != 200 || taken.status != fresh.status || normalize(taken.body, "known@example.com") != normalize(fresh.body, "fresh@example.com") {
		t.Fatalf("registration answers differ:\n%d %s\n---\n%d %s", taken.status, taken.body, fresh.status, fresh.body)
	}
	// The owner of the taken address is told by mail, with a reset link;
	// the password did not change.
	m := h.lastMail("known@example.com", mail.KindExists)
	if len(m.Links) != 1 || !strings.Contains(m.Links[0], "/reset/confirm?token=") {
		t.Fatalf("exists mail: %+v", m)
	}
	if id, _ := h.complete(h.signIn("known@example.com", goodPassword)); id == nil {
		t.Fatal("registration of a taken address changed its password")
	}

	// Reset: known vs unknown.
	rp := h.get(h.srv.URL + Prefix + "local/acme/reset")
	rk := h.submit(rp, "email", "known@example.com")
	ru := h.submit(rp, "email", "ghost@example.com")
	if rk.status != ru.status || normalize(rk.body, "known@example.com") != normalize(ru.body, "ghost@example.com") {
		t.Fatalf("reset answers differ:\n%s\n---\n%s", rk.body, ru.body)
	}
	if h.mailCount("ghost@example.com") != 0 {
		t.Fatal("mail sent to an address without an account")
	}
}

// TestSignInTiming checks that an unknown address costs about as much as
// a wrong password for a known one: both run one argon2id verification.
func TestSignInTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing measurement")
	}
	// 8 MiB keeps the test short (under -race too) while the hash still
	// dominates the request.
	params := config.LocalArgon2{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}
	h := newHarness(t, config.LocalProvider{Argon2: params, Lockout: config.LocalLockout{MaxFailures: 100000}})
	h.register("timing@example.com", goodPassword)
	page := h.get(h.begin(""))
	action, base := h.form(page)
	post := func(email string) time.Duration {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		v.Set("email", email)
		v.Set("password", "wrong-password-for-timing")
		start := time.Now()
		res := h.post(action, v)
		d := time.Since(start)
		if res.status != http.StatusUnauthorized {
			t.Fatalf("status %d", res.status)
		}
		return d
	}
	// Time one hash alone for the bound.
	hashStart := time.Now()
	h.p.hash.hash(context.Background(), "x")
	hashTime := time.Since(hashStart)

	const n = 30
	var known, unknown []time.Duration
	post("timing@example.com") // warm up
	post("warmup@example.com")
	for i := 0; i < n; i++ {
		known = append(known, post("timing@example.com"))
		unknown = append(unknown, post("nobody-"+string(rune('a'+i%26))+"@example.com"))
	}
	mk, mu := median(known), median(unknown)
	diff := mk - mu
	if diff < 0 {
		diff = -diff
	}
	t.Logf("sign-in timing over %d attempts each: known address (wrong password) median %v, unknown address median %v, difference %v; one hash alone %v",
		n, mk, mu, diff, hashTime)
	// Without the dummy hash the difference would be a whole hash.
	if bound := hashTime / 2; diff > bound {
		t.Fatalf("timing differs by %v (> %v, half a hash): an unknown address is distinguishable", diff, bound)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func TestRehashOnSignIn(t *testing.T) {
	h := newHarness(t, config.LocalProvider{Argon2: config.LocalArgon2{MemoryKiB: 2048, Iterations: 2, Parallelism: 1}})
	old, _ := newHasher(Argon2Params{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}, 1)
	oldHash, _ := old.hash(context.Background(), goodPassword)
	a, err := h.db.CreateAccount(context.Background(), store.Account{Email: "old@example.com", PasswordHash: oldHash, EmailVerified: true})
	if err != nil {
		t.Fatal(err)
	}
	if id, res := h.complete(h.signIn("old@example.com", goodPassword)); id == nil {
		t.Fatalf("sign-in with an old hash: %d %s", res.status, res.body)
	}
	got, _ := h.db.AccountByID(context.Background(), a.ID)
	if got.PasswordHash == oldHash || !strings.HasPrefix(got.PasswordHash, "$argon2id$v=19$m=2048,t=2,p=1$") {
		t.Fatalf("hash not upgraded: %s", got.PasswordHash)
	}
	if !got.PasswordChanged.Equal(a.PasswordChanged) {
		t.Fatal("a rehash must not count as a password change")
	}
	if id, _ := h.complete(h.signIn("old@example.com", goodPassword)); id == nil {
		t.Fatal("sign-in after the upgrade failed")
	}
}

func TestBreachedListAndPolicy(t *testing.T) {
	list := filepath.Join(t.TempDir(), "breached.txt")
	os.WriteFile(list, []byte("password1234567\r\ncorrect horse battery staple\n\n"), 0o600)
	h := newHarness(t, config.LocalProvider{Password: config.LocalPassword{BreachedList: list}})
	reg := h.get(h.begin("create"))
	for _, c := range []struct{ pw, want string }{
		{"correct horse battery staple", "leaked"},
		{"password1234567", "leaked"},
		{"short", "too short"},
		{strings.Repeat("x", DefaultMaxLength+1), "too long"},
		{"policy@example.com", "email address"},
	} {
		res := h.submit(reg, "email", "policy@example.com", "password", c.pw)
		if res.status != http.StatusBadRequest || !strings.Contains(res.body, c.want) {
			t.Errorf("password %q: %d, want 400 mentioning %q", c.pw[:min(len(c.pw), 20)], res.status, c.want)
		}
	}
	// Case-sensitive: a different capitalization is not on the list.
	if res := h.submit(reg, "email", "policy@example.com", "password", "Correct horse battery staple"); res.status != 200 {
		t.Fatalf("not on the list: %d %s", res.status, res.body)
	}
	if _, err := New("x", &config.LocalProvider{Password: config.LocalPassword{BreachedList: "/nonexistent"}, Mail: config.LocalMail{Outbox: t.TempDir()}},
		Env{Once: state.NewMemory(nil).Once(), Limiter: state.NewMemory(nil).Limiter()}); err == nil {
		t.Fatal("missing breached list accepted")
	}
}

func TestRegistrationDisabled(t *testing.T) {
	off := false
	h := newHarness(t, config.LocalProvider{Registration: &off})
	if h.p.SignsUp() {
		t.Fatal("SignsUp with registration off")
	}
	if _, ok := h.p.Endpoints()["local/acme/register"]; ok {
		t.Fatal("register endpoint served with registration off")
	}
	u := h.begin("create")
	if !strings.Contains(u, "/signin?") {
		t.Fatalf("Begin with prompt=create went to %s", u)
	}
}

func TestPHC(t *testing.T) {
	h, _ := newHasher(Argon2Params{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}, 2)
	enc, err := h.hash(context.Background(), "pässwörd ✓")
	if err != nil {
		t.Fatal(err)
	}
	if ok, rehash, err := h.verify(context.Background(), enc, "pässwörd ✓"); !ok || rehash || err != nil {
		t.Fatalf("verify = %v %v %v", ok, rehash, err)
	}
	if ok, _, _ := h.verify(context.Background(), enc, "pässwörd"); ok {
		t.Fatal("wrong password verified")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=1024,t=1,p=1$!!$aGFzaA"} {
		if _, _, err := h.verify(context.Background(), bad, "x"); err == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
}
