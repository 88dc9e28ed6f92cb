package pages

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	day1 = time.Date(2025, 3, 3, 9, 30, 0, 0, time.UTC)
	day2 = time.Date(2025, 6, 14, 17, 5, 0, 0, time.UTC)

	sampleMe = MePage{
		Name:     "Carol Customer",
		Email:    "carol@example.test",
		Provider: "Google",
		Message:  "Your choice was saved.",
		Purposes: []ConsentPurpose{
			{ID: "terms", Title: "Terms of service", Description: "We use your account details to run the shop and deliver your orders.",
				LegalBasis: "contract", Version: 3, Required: true, Granted: true, GrantedVersion: 3, DecidedAt: day1, NeededBy: []string{"Acme Shop", "Billing"}},
			{ID: "marketing", Title: "Marketing emails", Description: "News and offers by email, at most twice a month.",
				LegalBasis: "consent", Version: 2, Granted: true, GrantedVersion: 1, DecidedAt: day1},
			{ID: "analytics", Title: "Product analytics", Description: "Anonymous usage statistics that help us improve the shop.",
				LegalBasis: "consent", Version: 1, DecidedAt: day2},
			{ID: "fraud", Title: "Fraud prevention", Description: "Checks on payments to protect you and us from fraud.",
				LegalBasis: "legitimate_interest", Version: 1, Granted: true},
			{ID: "tax", Title: "Invoices", Description: "Invoices are kept for ten years as tax law requires.",
				LegalBasis: "legal_obligation", Version: 1, Required: true, Granted: true},
		},
		ConsentAction: "/.gatehouse/me/consent",
		CSRFToken:     "c3JmLXRva2VuLWZvci10ZXN0cw",
		Sessions: []SessionInfo{
			{Device: "Firefox on macOS", Created: day1, LastSeen: day2, Current: true},
			{Device: "Safari on iPhone", Created: day1.Add(-72 * time.Hour), LastSeen: day2.Add(-26 * time.Hour)},
		},
		ExportURL:  "/.gatehouse/me/export",
		DeleteURL:  "/.gatehouse/me/delete",
		SignOutURL: "/.gatehouse/logout",
		RequestID:  "01J9Z6Q3XKPM4V7H2D8C5N0RWT",
	}
	sampleConsent = ConsentPage{
		Service: "Acme Shop",
		Purposes: []ConsentPurpose{
			{ID: "terms", Title: "Terms of service", Description: "We use your account details to run the shop and deliver your orders.",
				LegalBasis: "contract", Version: 3, Required: true},
			{ID: "marketing", Title: "Marketing emails", Description: "News and offers by email, at most twice a month.",
				LegalBasis: "consent", Version: 2},
		},
		Message:    "Our terms of service changed since you last agreed.",
		Action:     "/.gatehouse/consent",
		CSRFToken:  "c3JmLXRva2VuLWZvci10ZXN0cw",
		ReturnURL:  "/shop/cart?step=2",
		AccountURL: "/.gatehouse/me",
		RequestID:  "01J9Z6Q3XKPM4V7H2D8C5N0RWT",
	}
	sampleDelete = DeletePage{
		Email:     "carol@example.test",
		Action:    "/.gatehouse/me/delete",
		CSRFToken: "c3JmLXRva2VuLWZvci10ZXN0cw",
		Wrong:     true,
		CancelURL: "/.gatehouse/me",
		RequestID: "01J9Z6Q3XKPM4V7H2D8C5N0RWT",
	}
	sampleReauth = DeletePage{
		Email:       "carol@example.test",
		NeedsReauth: true,
		ReauthURL:   "/.gatehouse/login?prompt=login&rd=%2F.gatehouse%2Fme%2Fdelete",
		CancelURL:   "/.gatehouse/me",
	}
	sampleDeleted = DeletedPage{
		ReceiptID: "del_01J9Z7A2B3C4D5E6F7G8H9J0KM",
		HomeURL:   "/",
		RequestID: "01J9Z6Q3XKPM4V7H2D8C5N0RWT",
	}
)

var privacyPages = []pageCase{
	{"me", func(r *Renderer, w http.ResponseWriter) { r.Me(w, sampleMe) }},
	{"consent", func(r *Renderer, w http.ResponseWriter) { r.Consent(w, sampleConsent) }},
	{"delete_account", func(r *Renderer, w http.ResponseWriter) { r.DeleteAccount(w, sampleDelete) }},
	{"delete_reauth", func(r *Renderer, w http.ResponseWriter) { r.DeleteAccount(w, sampleReauth) }},
	{"deleted", func(r *Renderer, w http.ResponseWriter) { r.Deleted(w, sampleDeleted) }},
}

func TestPrivacyGolden(t *testing.T) {
	r := newTest(t, testBrand, "")
	for _, pc := range privacyPages {
		t.Run(pc.name, func(t *testing.T) {
			got := render(r, pc).Body.Bytes()
			path := filepath.Join("testdata", pc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./proxy/pages -update)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from %s; rerun with -update if the change is intended\n--- got ---\n%s", pc.name, path, got)
			}
		})
	}
}

func TestPrivacyHeadersAndStatus(t *testing.T) {
	r := newTest(t, testBrand, "")
	for _, pc := range privacyPages {
		t.Run(pc.name, func(t *testing.T) {
			w := render(r, pc)
			checkSecurityHeaders(t, w.Header(), testNonce)
			want := http.StatusOK
			if pc.name == "delete_account" {
				want = http.StatusUnprocessableEntity // sampleDelete.Wrong
			}
			if w.Code != want {
				t.Errorf("status %d, want %d", w.Code, want)
			}
			body := w.Body.String()
			if !strings.Contains(body, `<style nonce="`+testNonce+`">`) || !strings.Contains(body, `<html lang="en">`) {
				t.Error("page lacks the nonce'd style or the lang attribute")
			}
			if n := w.Body.Len(); n > 16<<10 {
				t.Errorf("%d bytes, budget 16 KiB", n)
			}
			// The privacy rules are on these pages only.
			if !strings.Contains(body, "--danger:") {
				t.Error("privacy.css missing")
			}
		})
	}
	for _, pc := range samplePages {
		if strings.Contains(render(r, pc).Body.String(), "--danger:") {
			t.Errorf("%s carries privacy.css", pc.name)
		}
	}
}

// privacyEvil fills every text field of the privacy pages with markup.
func privacyEvil() (MePage, ConsentPage, DeletePage, DeletePage, DeletedPage) {
	ep := ConsentPurpose{ID: evil, Title: evil, Description: evil, LegalBasis: evil, Version: 1, Required: true,
		Granted: true, DecidedAt: day1, NeededBy: []string{evil, evil}}
	opt := ep
	opt.Required, opt.Granted = false, false
	me := MePage{Name: evil, Email: evil, Provider: evil, Message: evil, Purposes: []ConsentPurpose{ep, opt},
		ConsentAction: "/.gatehouse/me/consent", CSRFToken: evil,
		Sessions:  []SessionInfo{{Device: evil, Created: day1, LastSeen: day2, Current: true}},
		ExportURL: "javascript:alert(1)", DeleteURL: `/x"><script>alert(1)</script>`, SignOutURL: "//evil.example/logout", RequestID: evil}
	consent := ConsentPage{Service: evil, Purposes: []ConsentPurpose{ep, opt}, Message: evil, Action: "/.gatehouse/consent",
		CSRFToken: evil, ReturnURL: "javascript:alert(1)", AccountURL: "https://evil.example/me", RequestID: evil}
	del := DeletePage{Email: evil, Deletes: []string{evil}, Keeps: []string{evil}, Action: "/.gatehouse/me/delete", CSRFToken: evil,
		Wrong: true, CancelURL: "javascript:alert(1)", RequestID: evil}
	reauth := DeletePage{Email: evil, NeedsReauth: true, ReauthURL: "javascript:alert(1)", CancelURL: `/\evil.example`, RequestID: evil}
	done := DeletedPage{ReceiptID: evil, HomeURL: "javascript:alert(1)", RequestID: evil}
	return me, consent, del, reauth, done
}

func TestPrivacyEscaping(t *testing.T) {
	r := newTest(t, Brand{Title: evil}, "")
	me, consent, del, reauth, done := privacyEvil()
	pages := map[string]func(w http.ResponseWriter){
		"me":             func(w http.ResponseWriter) { r.Me(w, me) },
		"consent":        func(w http.ResponseWriter) { r.Consent(w, consent) },
		"delete_account": func(w http.ResponseWriter) { r.DeleteAccount(w, del) },
		"delete_reauth":  func(w http.ResponseWriter) { r.DeleteAccount(w, reauth) },
		"deleted":        func(w http.ResponseWriter) { r.Deleted(w, done) },
	}
	for name, f := range pages {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			f(w)
			body := w.Body.String()
			if w.Code >= 500 {
				t.Fatalf("rendering failed: %d\n%s", w.Code, body)
			}
			if strings.Contains(strings.ToLower(body), "<script") {
				t.Errorf("unescaped <script> in page:\n%s", body)
			}
			for _, s := range []string{"javascript:", "evil.example"} {
				if strings.Contains(body, s) {
					t.Errorf("%q survived:\n%s", s, body)
				}
			}
			if !strings.Contains(body, "&lt;script&gt;") {
				t.Errorf("escaped text missing:\n%s", body)
			}
		})
	}
	// The refused links are left out, not rendered as dead links.
	w := httptest.NewRecorder()
	r.Me(w, me)
	for _, s := range []string{"Download my data", "Delete my account", ">Sign out<"} {
		if strings.Contains(w.Body.String(), s) {
			t.Errorf("me page shows %q for a refused URL", s)
		}
	}
	w = httptest.NewRecorder()
	r.DeleteAccount(w, reauth)
	if strings.Contains(w.Body.String(), "Sign in again</a>") || strings.Contains(w.Body.String(), "Cancel") {
		t.Error("reauth page links a refused URL")
	}
}

// TestPrivacyBadAction: a form action that is not a same-origin path gives
// the generic 500 page, never a form that posts the CSRF token elsewhere.
func TestPrivacyBadAction(t *testing.T) {
	r := newTest(t, testBrand, "")
	for _, action := range []string{"", "javascript:alert(1)", "https://evil.example/consent", "//evil.example/x", `/\evil.example`,
		"relative/path", "/a b", `/a"b`, "data:text/html,x"} {
		me := sampleMe
		me.ConsentAction = action
		consent := sampleConsent
		consent.Action = action
		del := sampleDelete
		del.Action = action
		for name, f := range map[string]func(w http.ResponseWriter){
			"me":      func(w http.ResponseWriter) { r.Me(w, me) },
			"consent": func(w http.ResponseWriter) { r.Consent(w, consent) },
			"delete":  func(w http.ResponseWriter) { r.DeleteAccount(w, del) },
		} {
			w := httptest.NewRecorder()
			f(w)
			body := w.Body.String()
			if w.Code != http.StatusInternalServerError || strings.Contains(body, "<form") || strings.Contains(body, sampleMe.CSRFToken) {
				t.Errorf("%s with action %q: status %d, body:\n%s", name, action, w.Code, body)
			}
			if !strings.Contains(body, sampleMe.RequestID) {
				t.Errorf("%s with action %q: error page lacks the request id", name, action)
			}
		}
	}
	// Without a changeable purpose the account page needs no action, and the
	// re-authentication step of the deletion page has no form.
	w := httptest.NewRecorder()
	r.Me(w, MePage{Name: "N", Purposes: []ConsentPurpose{{ID: "tax", LegalBasis: "legal_obligation", Version: 1}}})
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "<form") {
		t.Errorf("me without changeable purposes: %d", w.Code)
	}
	w = httptest.NewRecorder()
	r.DeleteAccount(w, sampleReauth)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "<form") || !strings.Contains(w.Body.String(), "Sign in again</a>") {
		t.Errorf("reauth page: %d\n%s", w.Code, w.Body.String())
	}
}

var (
	formRE   = regexp.MustCompile(`(?s)<form\b([^>]*)>(.*?)</form>`)
	attrRE   = regexp.MustCompile(`\b(method|action)="([^"]*)"`)
	nameRE   = regexp.MustCompile(`<(?:input|button)\b[^>]*\bname="([^"]*)"(?:[^>]*\bvalue="([^"]*)")?`)
	hrefRE   = regexp.MustCompile(`\b(?:href|src|action)="([^"]*)"`)
	idRE     = regexp.MustCompile(`\bid="([^"]*)"`)
	forRE    = regexp.MustCompile(`\b(?:for|aria-describedby)="([^"]*)"`)
	headRE   = regexp.MustCompile(`<h([1-6])\b`)
	inputRE  = regexp.MustCompile(`<input\b[^>]*>`)
	handlerR = regexp.MustCompile(`(?i)\son[a-z]+=`)
	// stateLinkRE matches a link labelled like a state change.
	stateLinkRE = regexp.MustCompile(`<a\b[^>]*>(Withdraw|Grant|Object|Allow again|Accept[^<]*|Decline)\b`)
)

// forms returns, per form, its method, action and posted field names (with
// values, "name=value").
func forms(body string) (out []struct {
	method, action string
	fields         []string
}) {
	for _, m := range formRE.FindAllStringSubmatch(body, -1) {
		var f struct {
			method, action string
			fields         []string
		}
		for _, a := range attrRE.FindAllStringSubmatch(m[1], -1) {
			if a[1] == "method" {
				f.method = a[2]
			} else {
				f.action = a[2]
			}
		}
		for _, n := range nameRE.FindAllStringSubmatch(m[2], -1) {
			f.fields = append(f.fields, n[1]+"="+n[2])
		}
		out = append(out, f)
	}
	return out
}

func TestPrivacyForms(t *testing.T) {
	r := newTest(t, testBrand, "")
	csrf := FieldCSRFToken + "=" + sampleMe.CSRFToken
	cases := []struct {
		pc      pageCase
		action  string
		n       int
		mustAll []string // fields every form carries
		mustAny []string // fields some form carries
	}{
		{privacyPages[0], sampleMe.ConsentAction, 4, []string{csrf}, []string{
			FieldPurpose + "=terms:3", FieldDecision + "=" + DecisionWithdraw,
			FieldPurpose + "=marketing:2", FieldDecision + "=" + DecisionGrant,
			FieldPurpose + "=analytics:1", FieldPurpose + "=fraud:1"}},
		{privacyPages[1], sampleConsent.Action, 1, []string{csrf, FieldReturnTo + "=/shop/cart?step=2",
			FieldShown + "=terms:3", FieldShown + "=marketing:2", FieldPurpose + "=terms:3", FieldPurpose + "=marketing:2", FieldDecline + "=1"}, nil},
		{privacyPages[2], sampleDelete.Action, 1, []string{csrf, FieldConfirm + "="}, nil},
		{privacyPages[3], "", 0, nil, nil},
		{privacyPages[4], "", 0, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.pc.name, func(t *testing.T) {
			w := render(r, c.pc)
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self';") {
				t.Errorf("CSP %q allows other form targets", csp)
			}
			fs := forms(w.Body.String())
			if len(fs) != c.n {
				t.Fatalf("%d forms, want %d", len(fs), c.n)
			}
			var all []string
			for _, f := range fs {
				if f.method != "post" || f.action != c.action {
					t.Errorf("form posts %q to %q, want post to %q", f.method, f.action, c.action)
				}
				for _, want := range c.mustAll {
					if !slices.Contains(f.fields, want) {
						t.Errorf("form lacks %s; has %q", want, f.fields)
					}
				}
				if n := strings.Count(strings.Join(f.fields, "\n"), FieldCSRFToken+"="); n != 1 {
					t.Errorf("form has %d CSRF fields", n)
				}
				all = append(all, f.fields...)
			}
			for _, want := range c.mustAny {
				if !slices.Contains(all, want) {
					t.Errorf("no form carries %s", want)
				}
			}
		})
	}

	// The legal-obligation purpose has no form; the required one warns.
	body := render(r, privacyPages[0]).Body.String()
	for _, s := range []string{
		"Always applies while you have an account",
		"Needed by Acme Shop and Billing. If you withdraw, you will be asked again",
		"You agreed to version 1 on 3 Mar 2025. This version needs your agreement.",
		`<time datetime="2025-06-14T17:05:00Z">14 Jun 2025, 17:05 UTC</time>`,
		`<span class="badge">This device</span>`,
		`href="/.gatehouse/me/export">Download my data</a>`,
		`href="/.gatehouse/me/delete">Delete my account</a>`,
		`href="/.gatehouse/logout">Sign out</a>`,
	} {
		if !strings.Contains(body, s) {
			t.Errorf("me page lacks %s", s)
		}
	}
	// Optional purposes on the consent page are never pre-ticked.
	body = render(r, privacyPages[1]).Body.String()
	if strings.Contains(body, "checked") || !strings.Contains(body, `href="/.gatehouse/me">your account page</a>`) {
		t.Error("consent page pre-ticks a purpose or lacks the account link")
	}
	// The confirmation error appears only after a wrong attempt.
	ok := sampleDelete
	ok.Wrong = false
	w := httptest.NewRecorder()
	r.DeleteAccount(w, ok)
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "did not match") || strings.Contains(w.Body.String(), `aria-invalid="true"`) {
		t.Errorf("fresh delete page shows an error (%d)", w.Code)
	}
	if body := render(r, privacyPages[2]).Body.String(); !strings.Contains(body, `aria-invalid="true" aria-describedby="confirm-error"`) {
		t.Error("wrong attempt not flagged on the field")
	}
}

func TestPrivacyFormOrigins(t *testing.T) {
	r := newTest(t, Brand{}, "")
	del := sampleDelete
	del.FormOrigins = []string{"https://idp.example.com/end", "javascript:x"}
	w := httptest.NewRecorder()
	r.DeleteAccount(w, del)
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://idp.example.com;") {
		t.Errorf("CSP %q", csp)
	}
}

// TestPrivacyNoOtherOrigins: no absolute or scheme-relative URL anywhere, and
// every href/src/action is a same-origin path or the data: logo.
func TestPrivacyNoOtherOrigins(t *testing.T) {
	for _, b := range []Brand{testBrand, {}, {LogoURL: "https://cdn.example/logo.png"}, {LogoURL: "/static/logo.svg"}} {
		r := newTest(t, b, "")
		for _, pc := range privacyPages {
			body := render(r, pc).Body.String()
			for _, s := range []string{"http://", "https://", "//cdn", "@import", "url(", "<script", "<link", "<iframe"} {
				if strings.Contains(body, s) {
					t.Errorf("brand %+v, page %s: contains %q", b, pc.name, s)
				}
			}
			if handlerR.MatchString(body) {
				t.Errorf("page %s has an inline event handler", pc.name)
			}
			for _, m := range hrefRE.FindAllStringSubmatch(body, -1) {
				if u := m[1]; !localURL(u) && !strings.HasPrefix(u, "data:image/") {
					t.Errorf("page %s: URL %q is not same-origin", pc.name, u)
				}
			}
		}
	}
}

// TestPrivacyAccessibility checks the structure the pages promise: headings
// in order, every input labelled or hidden, every referenced id present,
// state changes as buttons.
func TestPrivacyAccessibility(t *testing.T) {
	r := newTest(t, testBrand, "")
	for _, pc := range privacyPages {
		t.Run(pc.name, func(t *testing.T) {
			body := render(r, pc).Body.String()
			prev := 0
			for _, m := range headRE.FindAllStringSubmatch(body, -1) {
				lvl := int(m[1][0] - '0')
				if prev == 0 && lvl != 1 || lvl > prev+1 {
					t.Errorf("heading h%d after h%d", lvl, prev)
				}
				prev = lvl
			}
			ids := map[string]bool{}
			for _, m := range idRE.FindAllStringSubmatch(body, -1) {
				if ids[m[1]] {
					t.Errorf("duplicate id %q", m[1])
				}
				ids[m[1]] = true
			}
			for _, m := range forRE.FindAllStringSubmatch(body, -1) {
				if !ids[m[1]] {
					t.Errorf("reference to missing id %q", m[1])
				}
			}
			for _, in := range inputRE.FindAllString(body, -1) {
				if strings.Contains(in, `type="hidden"`) {
					continue
				}
				id := idRE.FindStringSubmatch(in)
				if id == nil || !strings.Contains(body, `<label `) || !strings.Contains(body, `for="`+id[1]+`"`) {
					t.Errorf("input without a label: %s", in)
				}
			}
			if strings.Count(body, "<fieldset") != strings.Count(body, "<legend") {
				t.Error("fieldset without legend")
			}
			// Buttons, not links, change state: no link carries a state-changing label.
			if m := stateLinkRE.FindString(body); m != "" {
				t.Errorf("state change as a link: %s", m)
			}
		})
	}
	body := render(r, privacyPages[1]).Body.String()
	if !strings.Contains(body, "<legend>Required to continue</legend>") || !strings.Contains(body, "<legend>Optional: your choice</legend>") {
		t.Error("consent page lacks its fieldsets")
	}
}

func TestPurposeValue(t *testing.T) {
	for _, c := range []struct {
		id string
		v  int
	}{{"terms", 3}, {"a:b", 0}, {"x", 12345}} {
		id, v, ok := ParsePurposeValue(PurposeValue(c.id, c.v))
		if !ok || id != c.id || v != c.v {
			t.Errorf("round trip of %q %d: %q %d %v", c.id, c.v, id, v, ok)
		}
	}
	for _, s := range []string{"", "terms", ":3", "terms:", "terms:-1", "terms:3a", "terms: 3", "terms:99999999999"} {
		if _, _, ok := ParsePurposeValue(s); ok {
			t.Errorf("ParsePurposeValue(%q) accepted", s)
		}
	}
}

func TestLocalURL(t *testing.T) {
	for u, want := range map[string]bool{
		"/":                         true,
		"/.gatehouse/me":            true,
		"/shop/cart?step=2&x=%2F#f": true,
		"":                          false,
		"//evil.example":            false,
		`/\evil.example`:            false,
		"https://evil.example/":     false,
		"javascript:alert(1)":       false,
		"me":                        false,
		"/a b":                      false,
		"/a\tb":                     false,
		`/a"b`:                      false,
		"/a<b":                      false,
	} {
		if got := localURL(u); got != want {
			t.Errorf("localURL(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestPrivacyOverride(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "privacy.css", ".x{color:red}")
	writeFile(t, dir, "deleted.html", `{{template "top" .}}<h1>Gone</h1><p>{{.ReceiptID}}</p>{{template "bottom" .}}`)
	r := newTest(t, testBrand, dir)
	w := render(r, privacyPages[4])
	if !strings.Contains(w.Body.String(), "<h1>Gone</h1><p>del_01J9Z7A2B3C4D5E6F7G8H9J0KM</p>") || !strings.Contains(w.Body.String(), ".x{color:red}</style>") {
		t.Errorf("override not used:\n%s", w.Body.String())
	}
	writeFile(t, dir, "privacy.css", "</style><script>")
	if _, err := New(testBrand, dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "privacy.css")) {
		t.Errorf("err = %v", err)
	}
	writeFile(t, dir, "privacy.css", "")
	writeFile(t, dir, "me.html", `{{template "top" .}}{{.NoSuchField}}`)
	if _, err := New(testBrand, dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "me.html")) {
		t.Errorf("err = %v", err)
	}
}

func TestPrivacyConcurrent(t *testing.T) {
	r, err := New(testBrand, "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := 0; j < 25; j++ {
				for _, pc := range privacyPages {
					if w := render(r, pc); w.Code >= 500 {
						t.Errorf("%s: %d", pc.name, w.Code)
					}
				}
			}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
}
