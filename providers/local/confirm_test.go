package local

import (
	"context"
	"html"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/mail"
	"github.com/gatehouse-dev/gatehouse/store"
)

const confirmHint = "Enter the password you chose when you signed up. If you did not sign up, ignore this email: nothing happens."

// signUp registers email with password without confirming it and returns
// the confirmation link.
func (h *harness) signUp(email, password string) string {
	h.t.Helper()
	res := h.submit(h.get(h.begin("create")), "email", email, "password", password)
	if res.status != http.StatusOK || !strings.Contains(res.body, "Check your email") {
		h.t.Fatalf("sign-up: %d\n%s", res.status, res.body)
	}
	m := h.lastMail(email, mail.KindVerify)
	if len(m.Links) != 1 {
		h.t.Fatalf("verify mail links = %v", m.Links)
	}
	return m.Links[0]
}

// account reads the account of email from the store.
func (h *harness) account(email string) *store.Account {
	h.t.Helper()
	a, err := h.db.AccountByEmail(context.Background(), email)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

// otherBrowser runs fn with a browser of its own (no cookies of h's).
func (h *harness) otherBrowser(fn func()) {
	h.t.Helper()
	jar, _ := cookiejar.New(nil)
	saved := h.client
	h.client = &http.Client{Jar: jar, Timeout: saved.Timeout}
	defer func() { h.client = saved }()
	fn()
}

// refused checks a confirmation post that must not confirm: the generic
// answer, a form to try again, and the account still unconfirmed.
func refused(t *testing.T, h *harness, res resp, email string) {
	t.Helper()
	if res.status != http.StatusUnauthorized || !strings.Contains(res.body, html.EscapeString(msgSignInFailed)) {
		t.Fatalf("confirmation: %d, want 401 with the sign-in failure text\n%s", res.status, res.body)
	}
	if !strings.Contains(res.body, `name="password"`) || !strings.Contains(res.body, `name="token"`) {
		t.Fatalf("the refused confirmation does not offer the form again:\n%s", res.body)
	}
	if a := h.account(email); a.EmailVerified {
		t.Fatal("account confirmed without its password")
	}
}

func TestConfirmAsksForThePassword(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	link := h.signUp("ask@example.com", goodPassword)

	page := h.get(link)
	if page.status != http.StatusOK || !strings.Contains(page.body, `type="password"`) ||
		!strings.Contains(page.body, html.EscapeString(confirmHint)) || !strings.Contains(page.body, "ask@example.com") {
		t.Fatalf("confirmation page %d:\n%s", page.status, page.body)
	}

	// No password, then a wrong one: refused, and only the wrong one
	// counts as a failure.
	refused(t, h, h.submit(page), "ask@example.com")
	if n := h.account("ask@example.com").FailedAttempts; n != 0 {
		t.Fatalf("an empty password counted as %d failures", n)
	}
	wrong := h.submit(page, "password", "not-the-password-1")
	refused(t, h, wrong, "ask@example.com")
	if n := h.account("ask@example.com").FailedAttempts; n != 1 {
		t.Fatalf("failures after a wrong password = %d, want 1", n)
	}

	// The link was not used up: the form shown again takes the right
	// password.
	done := h.submit(wrong, "password", goodPassword)
	if done.status != http.StatusOK || !strings.Contains(done.body, "is confirmed") {
		t.Fatalf("right password: %d\n%s", done.status, done.body)
	}
	a := h.account("ask@example.com")
	if !a.EmailVerified || a.FailedAttempts != 0 {
		t.Fatalf("after confirmation: verified %v, failures %d", a.EmailVerified, a.FailedAttempts)
	}
	// What follows is unchanged: the notice links to signing in, which
	// now works.
	if !strings.Contains(done.body, "You can now sign in") {
		t.Fatalf("confirmed notice:\n%s", done.body)
	}
	if id, res := h.complete(h.signIn("ask@example.com", goodPassword)); id == nil {
		t.Fatalf("sign-in after confirmation: %d %s", res.status, res.body)
	}
	// Used once it worked.
	if res := h.submit(page, "password", goodPassword); res.status != http.StatusBadRequest || !strings.Contains(res.body, "not valid") {
		t.Fatalf("link after a successful confirmation: %d %s", res.status, res.body)
	}
}

// TestConfirmOfSomeoneElsesSignUp: an attacker signs up with the victim's
// address; the victim opens the link they never asked for and clicks.
// Without the attacker's password nothing is confirmed, and the victim
// can still take the address over with a password reset.
func TestConfirmOfSomeoneElsesSignUp(t *testing.T) {
	h := newHarness(t, config.LocalProvider{})
	const victim, attackerPassword = "victim@example.com", "attacker-chose-this-1"
	link := h.signUp(victim, attackerPassword)

	h.otherBrowser(func() {
		page := h.get(link)
		if page.status != http.StatusOK {
			t.Fatalf("confirmation page: %d", page.status)
		}
		refused(t, h, h.submit(page), victim)
		refused(t, h, h.submit(page, "password", "the-victims-own-password"), victim)
	})

	// The attacker cannot sign in: the address is not confirmed.
	if res := h.signIn(victim, attackerPassword); res.status != http.StatusForbidden || strings.Contains(res.body, `name="proof"`) {
		t.Fatalf("attacker sign-in: %d\n%s", res.status, res.body)
	}

	// The victim signs up in turn: "you already have an account", with a
	// reset link that sets their password and confirms the address.
	h.otherBrowser(func() {
		if res := h.submit(h.get(h.begin("create")), "email", victim, "password", "the-victims-own-password"); res.status != http.StatusOK {
			t.Fatalf("victim sign-up: %d", res.status)
		}
		reset := h.lastMail(victim, mail.KindExists).Links[0]
		if res := h.submit(h.get(reset), "password", "the-victims-own-password"); res.status != http.StatusOK {
			t.Fatalf("victim reset: %d %s", res.status, res.body)
		}
	})
	if !h.account(victim).EmailVerified {
		t.Fatal("the reset did not confirm the address")
	}
	if res := h.signIn(victim, attackerPassword); res.status != http.StatusUnauthorized {
		t.Fatalf("the attacker's password after the reset: %d", res.status)
	}
	// The attacker's confirmation link died with their password.
	if res := h.get(link); res.status != http.StatusBadRequest {
		t.Fatalf("the first confirmation link after the reset: %d", res.status)
	}
}

func TestConfirmFailuresLockTheAccount(t *testing.T) {
	h := newHarness(t, config.LocalProvider{Lockout: config.LocalLockout{MaxFailures: 3, Duration: config.Duration(10 * time.Minute)}})
	locked := func(email string) {
		t.Helper()
		if a := h.account(email); !a.Locked(time.Now()) {
			t.Fatalf("%s not locked after 3 wrong passwords: %+v", email, a)
		}
	}

	// Three wrong passwords on the confirmation page lock the account.
	guess := h.get(h.signUp("guess@example.com", goodPassword))
	for i := 0; i < 3; i++ {
		refused(t, h, h.submit(guess, "password", "guess-number-"+string(rune('a'+i))+"-xyz"), "guess@example.com")
	}
	locked("guess@example.com")
	// Locked: the right password is refused too, with the same text.
	refused(t, h, h.submit(guess, "password", goodPassword), "guess@example.com")

	// Wrong passwords on the sign-in page and on the confirmation page
	// count towards the same lock.
	mixed := h.get(h.signUp("mixed@example.com", goodPassword))
	for i := 0; i < 2; i++ {
		if res := h.signIn("mixed@example.com", "wrong-sign-in-password"); res.status != http.StatusUnauthorized {
			t.Fatalf("wrong sign-in %d: %d", i, res.status)
		}
	}
	refused(t, h, h.submit(mixed, "password", "one-more-wrong-guess"), "mixed@example.com")
	locked("mixed@example.com")
	refused(t, h, h.submit(mixed, "password", goodPassword), "mixed@example.com")

	// After the lock the links still work with the right password.
	h.advance(11 * time.Minute)
	for _, page := range []resp{guess, mixed} {
		if res := h.submit(page, "password", goodPassword); res.status != http.StatusOK || !strings.Contains(res.body, "is confirmed") {
			t.Fatalf("after the lock: %d\n%s", res.status, res.body)
		}
	}
}

func TestConfirmFailuresCountTowardsTheRateLimit(t *testing.T) {
	h := newHarness(t, config.LocalProvider{RateLimit: config.LocalRateLimit{PerAccount: 3}})
	link := h.signUp("limited@example.com", goodPassword)
	page := h.get(link)
	refused(t, h, h.submit(page, "password", "wrong-guess-one-1"), "limited@example.com")
	refused(t, h, h.submit(page, "password", "wrong-guess-two-2"), "limited@example.com")
	// The sign-in page shares the per-address budget.
	if res := h.signIn("limited@example.com", "wrong-guess-three-3"); res.status != http.StatusUnauthorized {
		t.Fatalf("sign-in: %d", res.status)
	}
	res := h.submit(page, "password", goodPassword)
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("4th password attempt: %d %v", res.status, res.header)
	}
	if h.account("limited@example.com").EmailVerified {
		t.Fatal("confirmed over the limit")
	}
	if res := h.signIn("limited@example.com", goodPassword); res.status != http.StatusTooManyRequests {
		t.Fatalf("sign-in over the limit: %d", res.status)
	}
}
