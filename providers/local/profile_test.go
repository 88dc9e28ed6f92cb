package local

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

var profileSettings = config.LocalProvider{Profile: []config.ProfileField{
	{ID: "phone", Label: "Phone number", Kind: "tel", Max: 20, Pattern: `\+[0-9 ]+`, Hint: "International format, starting with +."},
	{ID: "country", Label: "Country", Kind: "country"},
	{ID: "company", Label: "Company"},
}}

// beginClaims starts an attempt whose step-up asks for profile claims and
// returns the sign-in page.
func (h *harness) beginWithClaims(claims ...string) resp {
	h.t.Helper()
	b := make([]byte, 18)
	rand.Read(b)
	a := &providers.Attempt{State: base64.RawURLEncoding.EncodeToString(b), Provider: "acme", Audience: identity.Customer,
		ReturnURL: "https://app.example.com/orders", StepUp: &providers.StepUp{Claims: claims}, Created: time.Now()}
	red, err := h.p.Begin(context.Background(), a)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.attempts[a.State] = a
	h.mu.Unlock()
	page := h.get(h.srv.URL + red.URL)
	if page.status != 200 {
		h.t.Fatalf("sign-in page %d:\n%s", page.status, page.body)
	}
	return page
}

func TestProfileAskedOnlyWhenNeededAndMissing(t *testing.T) {
	h := newHarness(t, profileSettings)
	acct := h.register("pat@example.com", goodPassword)

	// A sign-in that asks for nothing never shows the profile page, and
	// the identity has no extra claims.
	id, res := h.complete(h.signIn("pat@example.com", goodPassword))
	if id == nil || len(id.Extra) != 0 {
		t.Fatalf("plain sign-in: %+v %d %s", id, res.status, res.body)
	}

	// Asking for phone and country (and a claim the provider does not
	// declare): only the declared, missing fields are asked for.
	page := h.beginWithClaims("phone", "country", "loyalty_id")
	if !strings.Contains(page.body, `name="claims" value="phone,country"`) {
		t.Fatalf("sign-in page does not carry the declared claims:\n%s", page.body)
	}
	form := h.submit(page, "email", "pat@example.com", "password", goodPassword)
	if form.status != 200 || strings.Contains(form.body, `name="proof"`) ||
		!strings.Contains(form.body, `name="profile_phone" type="tel"`) || !strings.Contains(form.body, `name="profile_country"`) ||
		strings.Contains(form.body, "profile_company") || strings.Contains(form.body, "loyalty") ||
		!strings.Contains(form.body, "International format") {
		t.Fatalf("profile page %d:\n%s", form.status, form.body)
	}

	// Invalid input is refused field by field, and nothing is saved.
	for _, c := range []struct{ phone, country, want string }{
		{"call me", "DE", "Please enter a phone number"},
		{"030 1234567", "DE", "Please check the format of this field."},       // the pattern wants a leading +
		{"+49 30 1 2 3 4 5 6 7 8", "DE", "Please use at most 20 characters."}, // max
		{"+49 30 1234567", "Germany", "two-letter country code"},
		{"", "DE", "Please fill in this field."},
	} {
		bad := h.submit(form, "profile_phone", c.phone, "profile_country", c.country)
		if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, c.want) || !strings.Contains(bad.body, `aria-invalid="true"`) ||
			strings.Contains(bad.body, `name="proof"`) {
			t.Fatalf("%q/%q: %d\n%s", c.phone, c.country, bad.status, bad.body)
		}
	}
	if a, _ := h.db.AccountByID(context.Background(), acct.ID); a.Profile["phone"] != "" || a.Profile["country"] != "" {
		t.Fatalf("invalid input saved: %v", a.Profile)
	}

	// Valid input: saved (normalized), and the sign-in ends with the proof.
	auto := h.submit(form, "profile_phone", " +49 30 1234567 ", "profile_country", "de")
	id, res = h.complete(auto)
	if id == nil {
		t.Fatalf("after the profile: %d %s\n%s", res.status, res.body, auto.body)
	}
	if id.Extra["phone"] != "+49 30 1234567" || id.Extra["country"] != "DE" || id.Extra["company"] != "" || id.Name != "Zoë Test" {
		t.Fatalf("identity = %+v", id)
	}
	if !(&providers.StepUp{Claims: []string{"phone", "country"}}).SatisfiedBy(id, time.Now()) {
		t.Fatal("step-up claims not satisfied")
	}
	a, _ := h.db.AccountByID(context.Background(), acct.ID)
	if a.Profile["phone"] != "+49 30 1234567" || a.Profile["country"] != "DE" || a.Profile["name"] != "Zoë Test" {
		t.Fatalf("stored profile %v", a.Profile)
	}

	// The profile form's token is single use.
	again := h.submit(form, "profile_phone", "+1 555 0100", "profile_country", "US")
	if again.status != http.StatusBadRequest || strings.Contains(again.body, `name="proof"`) {
		t.Fatalf("profile token reused: %d\n%s", again.status, again.body)
	}

	// Asked again: the account has them, so straight to the proof; and the
	// identity of any later sign-in carries them.
	auto = h.submit(h.beginWithClaims("phone"), "email", "pat@example.com", "password", goodPassword)
	if !strings.Contains(auto.body, `name="proof"`) {
		t.Fatalf("second sign-in asks again: %d\n%s", auto.status, auto.body)
	}
	if id, _ = h.complete(auto); id == nil || id.Extra["phone"] != "+49 30 1234567" {
		t.Fatalf("identity = %+v", id)
	}

	// A new field needed later: only that one is asked for.
	form = h.submit(h.beginWithClaims("phone", "company"), "email", "pat@example.com", "password", goodPassword)
	if !strings.Contains(form.body, "profile_company") || strings.Contains(form.body, "profile_phone") {
		t.Fatalf("only the missing field: %d\n%s", form.status, form.body)
	}
	if id, _ = h.complete(h.submit(form, "profile_company", "Acme GmbH")); id == nil || id.Extra["company"] != "Acme GmbH" || id.Extra["phone"] == "" {
		t.Fatalf("identity = %+v", id)
	}
}

func TestProfileAfterSecondFactor(t *testing.T) {
	h := newHarness(t, profileSettings)
	h.register("two@example.com", goodPassword)
	secret, _ := h.enrol("two@example.com")
	h.advance(totpPeriod * time.Second)

	step := h.submit(h.beginWithClaims("company"), "email", "two@example.com", "password", goodPassword)
	if !strings.Contains(step.body, `name="code"`) {
		t.Fatalf("second factor first: %d\n%s", step.status, step.body)
	}
	form := h.submit(step, "code", h.code(secret, 0))
	if form.status != 200 || !strings.Contains(form.body, "profile_company") {
		t.Fatalf("profile after the code: %d\n%s", form.status, form.body)
	}
	id, res := h.complete(h.submit(form, "profile_company", "Initech"))
	if id == nil || strings.Join(id.AMR, ",") != "pwd,otp" || id.Extra["company"] != "Initech" {
		t.Fatalf("identity %+v (%d %s)", id, res.status, res.body)
	}
}

func TestProfileFormBoundToAttempt(t *testing.T) {
	h := newHarness(t, profileSettings)
	h.register("bind@example.com", goodPassword)
	form := h.submit(h.beginWithClaims("company"), "email", "bind@example.com", "password", goodPassword)
	action, v := h.form(form)
	v.Set("state", "another-attempt-state")
	v.Set("profile_company", "Evil Corp")
	res := h.post(action, v)
	if res.status != http.StatusBadRequest || strings.Contains(res.body, `name="proof"`) {
		t.Fatalf("profile token for another attempt: %d\n%s", res.status, res.body)
	}
	// GET shows no form.
	if res := h.get(action); res.status != http.StatusBadRequest {
		t.Fatalf("GET profile: %d", res.status)
	}
}

func TestCompileProfileDefaults(t *testing.T) {
	fs, err := compileProfile([]config.ProfileField{{ID: "nick", Label: " Nickname "}})
	if err != nil || fs[0].kind != "text" || fs[0].max != DefaultProfileMax || fs[0].label != "Nickname" {
		t.Fatalf("%+v %v", fs, err)
	}
	if _, err := compileProfile([]config.ProfileField{{ID: "x", Label: "X", Pattern: "("}}); err == nil {
		t.Fatal("bad pattern accepted")
	}
	for kind, cases := range map[string]map[string]bool{
		"email":   {"Ann@Example.com": true, "not-an-address": false},
		"url":     {"https://example.com/me": true, "javascript:alert(1)": false},
		"date":    {"2001-02-03": true, "03/02/2001": false},
		"text":    {"line\nbreak": true, "   ": false},
		"country": {"us": true, "USA": false},
	} {
		f := profileField{id: "f", kind: kind, max: 64}
		for in, ok := range cases {
			if _, msg := f.check(in); (msg == "") != ok {
				t.Errorf("%s %q: message %q, want ok=%v", kind, in, msg, ok)
			}
		}
	}
	if v, _ := (&profileField{kind: "text", max: 64}).check("a\x00b\nc"); v != "abc" {
		t.Errorf("control characters kept: %q", v)
	}
}
