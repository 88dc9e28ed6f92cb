package local

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/store"
)

var (
	formRE   = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)">(.*?)</form>`)
	secretRE = regexp.MustCompile(`<code class="secret">([A-Z2-7 ]+)</code>`)
	codeRE   = regexp.MustCompile(`<li><code>([a-z2-7-]+)</code></li>`)
)

// formOp returns the action and hidden fields of the page's form whose op
// is op ("" for the first form).
func (h *harness) formOp(page resp, op string) (string, url.Values) {
	h.t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(page.body, -1) {
		if op != "" && !strings.Contains(m[2], `name="op" value="`+op+`"`) {
			continue
		}
		v := url.Values{}
		for _, f := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			v.Set(f[1], htmlUnescape(f[2]))
		}
		return h.srv.URL + htmlUnescape(m[1]), v
	}
	h.t.Fatalf("no form %q on the page (%d):\n%s", op, page.status, page.body)
	return "", nil
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func (h *harness) submitOp(page resp, op string, fields ...string) resp {
	h.t.Helper()
	action, v := h.formOp(page, op)
	for i := 0; i+1 < len(fields); i += 2 {
		v.Set(fields[i], fields[i+1])
	}
	return h.post(action, v)
}

// security signs in on the security page (password only: no factor yet).
func (h *harness) security(email, password string) resp {
	h.t.Helper()
	page := h.get(h.srv.URL + Prefix + "local/acme/security")
	if page.status != 200 || !strings.Contains(page.body, "Sign in again to manage") {
		h.t.Fatalf("security entrance %d:\n%s", page.status, page.body)
	}
	return h.submit(page, "email", email, "password", password)
}

// code is the TOTP code of secret at the provider's clock, shifted by
// steps.
func (h *harness) code(secret []byte, steps int) string {
	return totpAt(secret, uint64(h.p.now().Unix()/totpPeriod+int64(steps)))
}

// enrol turns TOTP on and returns the secret and the recovery codes.
func (h *harness) enrol(email string) ([]byte, []string) {
	h.t.Helper()
	settings := h.security(email, goodPassword)
	if settings.status != 200 || !strings.Contains(settings.body, "Set up an authenticator app") {
		h.t.Fatalf("settings %d:\n%s", settings.status, settings.body)
	}
	setup := h.submitOp(settings, "totp-start")
	m := secretRE.FindStringSubmatch(setup.body)
	if setup.status != 200 || m == nil || !strings.Contains(setup.body, "otpauth://totp/") || !strings.Contains(setup.body, "<svg") {
		h.t.Fatalf("setup page %d:\n%s", setup.status, setup.body)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(m[1], " ", ""))
	if err != nil || len(secret) != totpSecretSize {
		h.t.Fatalf("secret %q: %v", m[1], err)
	}
	// A wrong code is refused and nothing is stored.
	bad := h.submitOp(setup, "totp-confirm", "code", "000000")
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, "not valid") {
		h.t.Fatalf("wrong first code: %d\n%s", bad.status, bad.body)
	}
	acct, _ := h.db.AccountByEmail(context.Background(), email)
	if mfa, _ := h.db.AccountMFA(context.Background(), acct.ID); mfa.HasTOTP() {
		h.t.Fatal("TOTP on after a wrong code")
	}
	done := h.submitOp(bad, "totp-confirm", "code", h.code(secret, 0))
	codes := codeRE.FindAllStringSubmatch(done.body, -1)
	if done.status != 200 || len(codes) != recoveryCodes || !strings.Contains(done.body, "Two-step verification is on") {
		h.t.Fatalf("confirm: %d\n%s", done.status, done.body)
	}
	var out []string
	for _, c := range codes {
		out = append(out, c[1])
	}
	if mfa, _ := h.db.AccountMFA(context.Background(), acct.ID); !mfa.HasTOTP() || mfa.RecoveryCodes != recoveryCodes {
		h.t.Fatalf("stored: %+v", mfa)
	}
	return secret, out
}

func TestTOTPEnrolAndSignIn(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("mfa@example.com", goodPassword)
	secret, _ := h.enrol("mfa@example.com")

	// The password alone no longer signs in: the code is asked.
	step := h.signIn("mfa@example.com", goodPassword)
	if step.status != 200 || !strings.Contains(step.body, "Two-step verification") || strings.Contains(step.body, `name="proof"`) {
		t.Fatalf("after the password: %d\n%s", step.status, step.body)
	}
	wrong := h.submit(step, "code", "123456")
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.body, "not valid") {
		t.Fatalf("wrong code: %d\n%s", wrong.status, wrong.body)
	}
	// The code used to confirm the enrolment (same step) is spent: wait a step.
	h.advance(totpPeriod * time.Second)
	code := h.code(secret, 0)
	auto := h.submit(wrong, "code", code)
	id, res := h.complete(auto)
	if id == nil {
		t.Fatalf("complete: %d %s\n%s", res.status, res.body, auto.body)
	}
	if strings.Join(id.AMR, ",") != "pwd,otp" || id.ACR != ACRMFA || !id.HasMFA() {
		t.Fatalf("identity amr=%v acr=%q", id.AMR, id.ACR)
	}
	if !(&providers.StepUp{MFA: true}).SatisfiedBy(id, time.Now()) {
		t.Fatal("step-up MFA not satisfied")
	}

	// Replay: the same code in another sign-in is refused.
	step2 := h.signIn("mfa@example.com", goodPassword)
	replay := h.submit(step2, "code", code)
	if replay.status != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d\n%s", replay.status, replay.body)
	}
	// The second-factor page's token is single use too.
	h.advance(totpPeriod * time.Second)
	ok := h.submit(replay, "code", h.code(secret, 0))
	if !strings.Contains(ok.body, `name="proof"`) {
		t.Fatalf("next step's code: %d\n%s", ok.status, ok.body)
	}
	h.advance(totpPeriod * time.Second)
	again := h.submit(replay, "code", h.code(secret, 0))
	if again.status != http.StatusBadRequest || strings.Contains(again.body, `name="proof"`) {
		t.Fatalf("second-factor token reused: %d\n%s", again.status, again.body)
	}
}

func TestTOTPSkewWindow(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("skew@example.com", goodPassword)
	secret, _ := h.enrol("skew@example.com")
	h.advance(10 * totpPeriod * time.Second)
	for _, tc := range []struct {
		steps int
		ok    bool
	}{{-2, false}, {2, false}, {-1, true}, {1, true}} {
		step := h.signIn("skew@example.com", goodPassword)
		res := h.submit(step, "code", h.code(secret, tc.steps))
		if got := strings.Contains(res.body, `name="proof"`); got != tc.ok {
			t.Errorf("code %+d steps away: accepted=%v, want %v (%d)", tc.steps, got, tc.ok, res.status)
		}
	}
}

func TestRecoveryCodeSingleUse(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("rec@example.com", goodPassword)
	_, codes := h.enrol("rec@example.com")
	step := h.signIn("rec@example.com", goodPassword)
	auto := h.submit(step, "code", strings.ToUpper(strings.ReplaceAll(codes[3], "-", " ")))
	id, res := h.complete(auto)
	if id == nil || !id.HasMFA() {
		t.Fatalf("recovery code sign-in: %d %s\n%s", res.status, res.body, auto.body)
	}
	step = h.signIn("rec@example.com", goodPassword)
	if res := h.submit(step, "code", codes[3]); res.status != http.StatusUnauthorized {
		t.Fatalf("recovery code used twice: %d\n%s", res.status, res.body)
	}
	acct, _ := h.db.AccountByEmail(context.Background(), "rec@example.com")
	if m, _ := h.db.AccountMFA(context.Background(), acct.ID); m.RecoveryCodes != recoveryCodes-1 {
		t.Fatalf("codes left: %d", m.RecoveryCodes)
	}
}

// securityWithCode opens the security page of an account with TOTP.
func (h *harness) securityWithCode(email string, code string) resp {
	h.t.Helper()
	step := h.security(email, goodPassword)
	if !strings.Contains(step.body, `name="code"`) {
		h.t.Fatalf("security re-authentication must ask for the code:\n%s", step.body)
	}
	return h.submit(step, "code", code)
}

func TestDisableRequiresCode(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("off@example.com", goodPassword)
	secret, codes := h.enrol("off@example.com")
	h.advance(totpPeriod * time.Second)
	settings := h.securityWithCode("off@example.com", h.code(secret, 0))
	if settings.status != 200 || !strings.Contains(settings.body, "Turn off two-step verification") {
		t.Fatalf("settings: %d\n%s", settings.status, settings.body)
	}
	if res := h.submitOp(settings, "totp-disable", "code", "000000"); res.status != http.StatusUnauthorized {
		t.Fatalf("disable with a wrong code: %d\n%s", res.status, res.body)
	}
	if res := h.submitOp(settings, "totp-disable", "code", ""); res.status != http.StatusUnauthorized {
		t.Fatalf("disable without a code: %d\n%s", res.status, res.body)
	}
	// The page's token works in this browser only.
	action, v := h.formOp(settings, "totp-disable")
	v.Set("code", codes[0])
	other := &http.Client{}
	req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if res, err := other.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("another browser: %v %v", res.StatusCode, err)
	}
	off := h.submitOp(settings, "totp-disable", "code", codes[0])
	if off.status != 200 || !strings.Contains(off.body, "Two-step verification is off") {
		t.Fatalf("disable with a recovery code: %d\n%s", off.status, off.body)
	}
	acct, _ := h.db.AccountByEmail(context.Background(), "off@example.com")
	if m, _ := h.db.AccountMFA(context.Background(), acct.ID); m.HasTOTP() || m.RecoveryCodes != 0 {
		t.Fatalf("after disable: %+v", m)
	}
	auto := h.signIn("off@example.com", goodPassword)
	if id, _ := h.complete(auto); id == nil || strings.Join(id.AMR, ",") != "pwd" || id.ACR != "" {
		t.Fatalf("password-only sign-in after disable: %+v", id)
	}
}

func TestStepUpWithoutSecondFactor(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("up@example.com", goodPassword)
	a := &providers.Attempt{State: "step-up-state-0123456789", Provider: "acme", Audience: identity.Customer,
		ReturnURL: "https://app.example.com/admin", StepUp: &providers.StepUp{MFA: true}, Created: time.Now()}
	red, err := h.p.Begin(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.attempts[a.State] = a
	h.mu.Unlock()
	page := h.get(h.srv.URL + red.URL)
	res := h.submit(page, "email", "up@example.com", "password", goodPassword)
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "requires two-step verification") ||
		strings.Contains(res.body, `name="proof"`) || !strings.Contains(res.body, "Set up two-step verification now") {
		t.Fatalf("step-up without a factor: %d\n%s", res.status, res.body)
	}
	// The page leads straight to the setup, no second password needed.
	setup := h.submitOp(res, "totp-start")
	if setup.status != 200 || !strings.Contains(setup.body, "otpauth://totp/") {
		t.Fatalf("setup from the step-up page: %d\n%s", setup.status, setup.body)
	}
}

func TestRequiredMFA(t *testing.T) {
	h := newHarness(t, config.LocalProvider{MFA: config.LocalMFA{Required: true, Issuer: "Acme Shop"}})
	h.register("req@example.com", goodPassword)
	res := h.signIn("req@example.com", goodPassword)
	if res.status != http.StatusForbidden || !strings.Contains(res.body, "must use two-step verification") {
		t.Fatalf("required MFA without a factor: %d\n%s", res.status, res.body)
	}
	setup := h.submitOp(res, "totp-start")
	if !strings.Contains(setup.body, "otpauth://totp/Acme%20Shop:req@example.com?") || !strings.Contains(setup.body, "issuer=Acme&#43;Shop") {
		t.Fatalf("issuer label:\n%s", setup.body)
	}
}

func TestTOTPSecretEncryptedAtRest(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	h.register("rest@example.com", goodPassword)
	secret, codes := h.enrol("rest@example.com")
	db, ok := store.RawDB(h.db)
	if !ok {
		t.Fatal("no raw database")
	}
	var sealed []byte
	if err := db.QueryRow(`SELECT secret FROM account_totp`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)
	if bytes.Contains(sealed, secret) || bytes.Contains(sealed, []byte(enc)) {
		t.Fatal("the stored secret contains the raw secret")
	}
	rows, err := db.Query(`SELECT code_hash FROM account_recovery_codes`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var hsh string
		rows.Scan(&hsh)
		for _, c := range codes {
			if strings.Contains(hsh, c) || strings.Contains(hsh, strings.ReplaceAll(c, "-", "")) {
				t.Fatal("a recovery code is stored in clear")
			}
		}
	}
	rows.Close()
	// The sealed value opens only for its account.
	if _, err := h.p.open("totp", "acct_other", sealed); err == nil {
		t.Fatal("sealed secret opened for another account")
	}
	if got, err := h.p.open("totp", mustAccount(t, h, "rest@example.com"), sealed); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %v", err)
	}
	// Nowhere in the database files either.
	dir := filepath.Dir(dbPath(t, db))
	h.db.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "accounts.db*"))
	if len(files) == 0 {
		t.Fatal("database files not found")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, secret) || bytes.Contains(b, []byte(enc)) {
			t.Fatalf("raw secret in %s", f)
		}
	}
}

func mustAccount(t *testing.T, h *harness, email string) string {
	a, err := h.db.AccountByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// dbPath finds the SQLite file behind db.
func dbPath(t *testing.T, db *sql.DB) string {
	var seq int
	var name, file string
	if err := db.QueryRow(`PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestMFACodeRateLimitAndLockout(t *testing.T) {
	h := newHarness(t, config.LocalProvider{Lockout: config.LocalLockout{MaxFailures: 3}})
	h.register("lock@example.com", goodPassword)
	secret, _ := h.enrol("lock@example.com")
	step := h.signIn("lock@example.com", goodPassword)
	for range 3 {
		step = h.submit(step, "code", "999999")
	}
	h.advance(totpPeriod * time.Second)
	res := h.submit(step, "code", h.code(secret, 0))
	if strings.Contains(res.body, `name="proof"`) {
		t.Fatalf("locked account signed in with a code: %d\n%s", res.status, res.body)
	}
}
