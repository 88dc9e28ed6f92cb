package local

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"go.uber.org/zap/zaptest"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/mail"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/store"
)

// newPasskeyHarness is newHarness with passkeys on and a public URL that
// names a host (browsers refuse passkeys for IP addresses):
// http://localhost:<port>.
func newPasskeyHarness(t *testing.T) (*harness, string) {
	t.Helper()
	h := &harness{t: t, attempts: map[string]*providers.Attempt{}}
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "accounts.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h.db = db
	if h.outbox, err = mail.NewOutbox(filepath.Join(dir, "outbox"), "Acme <no-reply@example.com>"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	public := strings.Replace(h.srv.URL, "127.0.0.1", "localhost", 1)
	h.srv.URL = public // the browser's cookies and the links use the host name
	insecure := true
	mem := state.NewMemory(nil)
	cfg := config.LocalProvider{Argon2: fastArgon2, MFA: config.LocalMFA{Passkeys: true},
		RateLimit: config.LocalRateLimit{PerAccount: 1000, PerIP: 1000, Emails: 100}}
	cfg.DisplayName = "Acme accounts"
	h.p, err = New("acme", &cfg, Env{
		PublicURL: public, Logger: zaptest.NewLogger(t), Once: mem.Once(), Limiter: mem.Limiter(),
		Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, Store: db, Mail: h.outbox, InsecureCookies: &insecure,
		Now: func() time.Time {
			h.mu.Lock()
			defer h.mu.Unlock()
			return time.Now().Add(h.offset)
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
	return h, public
}

// softKey is a software authenticator: one P-256 passkey.
type softKey struct {
	t       *testing.T
	key     *ecdsa.PrivateKey
	id      []byte
	counter uint32
	origin  string // clientData origin
	rpID    string
}

func newSoftKey(t *testing.T, origin string) *softKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	u, _ := url.Parse(origin)
	return &softKey{t: t, key: k, id: id, origin: origin, rpID: u.Hostname()}
}

var b64u = base64.RawURLEncoding

func (k *softKey) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return b
}

func (k *softKey) authData(flags byte, attested []byte) []byte {
	rp := sha256.Sum256([]byte(k.rpID))
	out := append(rp[:], flags)
	out = binary.BigEndian.AppendUint32(out, k.counter)
	return append(out, attested...)
}

// create answers creation options (the page's data-options) with a
// "none" attestation.
func (k *softKey) create(options string) string {
	k.t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RP        struct {
				ID string `json:"id"`
			} `json:"rp"`
			User struct {
				ID string `json:"id"`
			} `json:"user"`
			Attestation string `json:"attestation"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		k.t.Fatalf("creation options %q: %v", options, err)
	}
	if o.PublicKey.RP.ID != k.rpID || o.PublicKey.Attestation != "none" {
		k.t.Fatalf("creation options: rp %q attestation %q", o.PublicKey.RP.ID, o.PublicKey.Attestation)
	}
	x, y := make([]byte, 32), make([]byte, 32)
	k.key.X.FillBytes(x)
	k.key.Y.FillBytes(y)
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		k.t.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID: zero
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(k.id)))
	attested = append(append(attested, k.id...), cose...)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(0x45, attested)})
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(k.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64u.EncodeToString(att), "transports": []string{"internal"}}})
	return string(b)
}

// get answers request options with an assertion, counter first increased.
func (k *softKey) get(options, userHandle string) string {
	k.t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(options), &o); err != nil {
		k.t.Fatalf("request options %q: %v", options, err)
	}
	k.counter++
	ad := k.authData(0x05, nil) // user present and verified
	cd := k.clientData("webauthn.get", o.PublicKey.Challenge)
	cdh := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), ad...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id), "type": "public-key",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{"clientDataJSON": b64u.EncodeToString(cd), "authenticatorData": b64u.EncodeToString(ad),
			"signature": b64u.EncodeToString(sig), "userHandle": userHandle}})
	return string(b)
}

var passkeyFormRE = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)" data-passkey="(create|get)" data-options="([^"]*)">(.*?)</form>`)

// passkeyForm returns the page's passkey form: action, options, fields.
func (h *harness) passkeyForm(page resp) (string, string, url.Values) {
	h.t.Helper()
	m := passkeyFormRE.FindStringSubmatch(page.body)
	if m == nil {
		h.t.Fatalf("no passkey form on the page (%d):\n%s", page.status, page.body)
	}
	v := url.Values{}
	for _, f := range hiddenRE.FindAllStringSubmatch(m[4], -1) {
		v.Set(f[1], html.UnescapeString(f[2]))
	}
	return h.srv.URL + html.UnescapeString(m[1]), html.UnescapeString(m[3]), v
}

// answer completes the page's passkey form with the authenticator.
func (h *harness) answer(page resp, k *softKey, userHandle string) resp {
	h.t.Helper()
	action, opts, v := h.passkeyForm(page)
	if strings.Contains(page.body, `data-passkey="create"`) {
		v.Set("credential", k.create(opts))
	} else {
		v.Set("credential", k.get(opts, userHandle))
	}
	return h.post(action, v)
}

// addPasskey opens the security page (password, then an existing
// passkey when there is one) and registers k.
func (h *harness) addPasskey(email string, k *softKey, prior *softKey, name string) resp {
	h.t.Helper()
	settings := h.security(email, goodPassword)
	if prior != nil {
		settings = h.answer(settings, prior, "")
	}
	if settings.status != 200 || !strings.Contains(settings.body, "Add a passkey") {
		h.t.Fatalf("security page %d:\n%s", settings.status, settings.body)
	}
	add := h.submitOp(settings, "passkey-start", "name", name)
	if add.status != 200 || !strings.Contains(add.body, "Create the passkey") {
		h.t.Fatalf("add page %d:\n%s", add.status, add.body)
	}
	return h.answer(add, k, "")
}

func TestPasskeyRegisterAndSignIn(t *testing.T) {
	h, public := newPasskeyHarness(t)
	acct := h.register("pk@example.com", goodPassword)
	k := newSoftKey(t, public)

	done := h.addPasskey("pk@example.com", k, nil, "Laptop")
	if done.status != 200 || !strings.Contains(done.body, "Laptop") || !strings.Contains(done.body, "added") || !strings.Contains(done.body, "never used") {
		t.Fatalf("registration: %d\n%s", done.status, done.body)
	}
	keys, _ := h.db.Passkeys(context.Background(), acct.ID)
	if len(keys) != 1 || keys[0].Name != "Laptop" || keys[0].AttestationType != "none" {
		t.Fatalf("stored passkeys %+v", keys)
	}

	// The password alone no longer signs in: the passkey is asked.
	step := h.signIn("pk@example.com", goodPassword)
	if step.status != 200 || !strings.Contains(step.body, "Use a passkey") || strings.Contains(step.body, `name="proof"`) {
		t.Fatalf("after the password: %d\n%s", step.status, step.body)
	}
	csp := step.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'nonce-") || strings.Contains(csp, "unsafe") || !regexp.MustCompile(`<script nonce="[^"]+" src="/\.gatehouse/local/acme/static/passkey\.js\?v=[0-9a-f]+" defer>`).MatchString(step.body) {
		t.Fatalf("CSP %q or script tag:\n%s", csp, step.body)
	}
	auto := h.answer(step, k, b64u.EncodeToString([]byte(acct.ID)))
	id, res := h.complete(auto)
	if id == nil {
		t.Fatalf("complete: %d %s\n%s", res.status, res.body, auto.body)
	}
	if strings.Join(id.AMR, ",") != "pwd,hwk" || id.ACR != ACRMFA || !id.HasMFA() {
		t.Fatalf("identity amr=%v acr=%q", id.AMR, id.ACR)
	}
	if !(&providers.StepUp{MFA: true}).SatisfiedBy(id, time.Now()) {
		t.Fatal("step-up MFA not satisfied by a passkey")
	}
	keys, _ = h.db.Passkeys(context.Background(), acct.ID)
	if keys[0].SignCount != 1 || keys[0].LastUsed.IsZero() {
		t.Fatalf("after use: %+v", keys[0])
	}

	// Passwordless: the sign-in page's discoverable request; the passkey
	// names the account (user handle) and verified the person.
	page := h.get(h.begin(""))
	if !strings.Contains(page.body, "Sign in with a passkey") {
		t.Fatalf("sign-in page: %d\n%s", page.status, page.body)
	}
	auto = h.answer(page, k, b64u.EncodeToString([]byte(acct.ID)))
	id, res = h.complete(auto)
	if id == nil || id.Subject != acct.ID || strings.Join(id.AMR, ",") != "hwk,user,mfa" || !id.HasMFA() {
		t.Fatalf("passwordless: %+v %d %s\n%s", id, res.status, res.body, auto.body)
	}
	// A user handle naming another account does not sign in to it.
	other := h.register("other@example.com", goodPassword)
	page = h.get(h.begin(""))
	if res := h.answer(page, k, b64u.EncodeToString([]byte(other.ID))); res.status != http.StatusUnauthorized || strings.Contains(res.body, `name="proof"`) {
		t.Fatalf("passkey for another account: %d\n%s", res.status, res.body)
	}

	// The script: same origin, long cache, no sniffing.
	js := h.get(h.srv.URL + h.p.passkeyScript())
	if js.status != 200 || js.header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") ||
		!strings.Contains(js.header.Get("Cache-Control"), "max-age=31536000") || !strings.Contains(js.body, "navigator.credentials.get") {
		t.Fatalf("script: %d %v", js.status, js.header)
	}
}

func TestPasskeyRefusals(t *testing.T) {
	h, public := newPasskeyHarness(t)
	acct := h.register("no@example.com", goodPassword)
	handle := b64u.EncodeToString([]byte(acct.ID))
	k := newSoftKey(t, public)
	if res := h.addPasskey("no@example.com", k, nil, "Key"); res.status != 200 {
		t.Fatalf("registration: %d\n%s", res.status, res.body)
	}
	proof := func(r resp) bool { return strings.Contains(r.body, `name="proof"`) }

	// Wrong origin: refused, and its challenge is spent.
	step := h.signIn("no@example.com", goodPassword)
	evil := *k
	evil.origin = "http://evil.example"
	res := h.answer(step, &evil, handle)
	k.counter = evil.counter
	if res.status != http.StatusUnauthorized || proof(res) {
		t.Fatalf("wrong origin: %d\n%s", res.status, res.body)
	}
	// Replayed challenge: the same ceremony answered correctly is refused.
	res = h.answer(step, k, handle)
	if res.status != http.StatusBadRequest || proof(res) {
		t.Fatalf("replayed challenge: %d\n%s", res.status, res.body)
	}
	// The page shown again carries a new challenge, which works.
	res = h.answer(res, k, handle)
	if !proof(res) {
		t.Fatalf("fresh challenge: %d\n%s", res.status, res.body)
	}

	// Signature counter going back (a cloned authenticator): refused.
	clone := *k
	clone.counter = k.counter - 2
	step = h.signIn("no@example.com", goodPassword)
	res = h.answer(step, &clone, handle)
	if res.status != http.StatusUnauthorized || proof(res) {
		t.Fatalf("counter regression: %d\n%s", res.status, res.body)
	}

	// Another browser (without this one's cookies) cannot finish the ceremony.
	step = h.signIn("no@example.com", goodPassword)
	action, opts, v := h.passkeyForm(step)
	var other http.CookieJar
	other, _ = cookiejar.New(nil)
	h.client.Jar, other = other, h.client.Jar
	v.Set("credential", k.get(opts, handle))
	res = h.post(action, v)
	h.client.Jar = other
	if proof(res) {
		t.Fatalf("ceremony finished in another browser: %d\n%s", res.status, res.body)
	}

	// Removed passkey: a ceremony begun before the removal is refused.
	pending := h.signIn("no@example.com", goodPassword)
	settings := h.answer(h.security("no@example.com", goodPassword), k, handle)
	if !strings.Contains(settings.body, "Remove Key") {
		t.Fatalf("security page: %d\n%s", settings.status, settings.body)
	}
	removed := h.submitOp(settings, "passkey-remove")
	if removed.status != 200 || !strings.Contains(removed.body, "Passkey removed") {
		t.Fatalf("remove: %d\n%s", removed.status, removed.body)
	}
	if keys, _ := h.db.Passkeys(context.Background(), acct.ID); len(keys) != 0 {
		t.Fatalf("passkeys left: %+v", keys)
	}
	res = h.answer(pending, k, handle)
	if proof(res) || res.status == http.StatusOK {
		t.Fatalf("removed passkey accepted: %d\n%s", res.status, res.body)
	}
	// Without a passkey the password signs in alone again.
	if res := h.signIn("no@example.com", goodPassword); !proof(res) {
		t.Fatalf("sign-in without second factor: %d\n%s", res.status, res.body)
	}
}

func TestPasskeyRegistrationReplay(t *testing.T) {
	h, public := newPasskeyHarness(t)
	acct := h.register("rr@example.com", goodPassword)
	settings := h.security("rr@example.com", goodPassword)
	add := h.submitOp(settings, "passkey-start", "name", "One")
	action, opts, v := h.passkeyForm(add)

	// Wrong origin refused.
	bad := newSoftKey(t, "http://evil.example")
	bad.rpID = strings.TrimPrefix(strings.Split(public, ":")[1], "//")
	v.Set("credential", bad.create(opts))
	if res := h.post(action, v); res.status != http.StatusBadRequest || !strings.Contains(res.body, "not added") {
		t.Fatalf("wrong origin: %d\n%s", res.status, res.body)
	}
	// The same challenge with a good answer: refused (single use).
	v.Set("credential", newSoftKey(t, public).create(opts))
	if res := h.post(action, v); res.status != http.StatusBadRequest {
		t.Fatalf("replayed registration: %d\n%s", res.status, res.body)
	}
	if keys, _ := h.db.Passkeys(context.Background(), acct.ID); len(keys) != 0 {
		t.Fatalf("stored: %+v", keys)
	}
}

func TestPasskeysNeedHostName(t *testing.T) {
	mem := state.NewMemory(nil)
	_, err := New("acme", &config.LocalProvider{MFA: config.LocalMFA{Passkeys: true}}, Env{PublicURL: "http://127.0.0.1:8080",
		Once: mem.Once(), Limiter: mem.Limiter(), CheckOnly: true})
	if err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Fatalf("IP public URL: %v", err)
	}
}
