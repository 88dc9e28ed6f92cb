package local

// Passkeys (WebAuthn) as a second factor, with go-webauthn doing the
// ceremony checks. The state of a ceremony (the challenge and what it was
// begun for) travels in the page as a value sealed with AES-GCM (seal),
// bound to the account and to this browser (its CSRF cookie), and each
// challenge is claimed once in the shared state: a ceremony cannot be
// finished twice, in another browser, or for another account.

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/gatehouse-dev/gatehouse/store"
)

const (
	// AMRHardwareKey is a passkey (proof of possession of a key held by
	// an authenticator, RFC 8176 "hwk").
	AMRHardwareKey = "hwk"
	// AMRUser is RFC 8176 "user" (a test that the person is present and
	// interacting): every passkey sign-in has it.
	AMRUser = "user"
	// AMRMultiFactor is RFC 8176 "mfa": a passwordless passkey sign-in
	// whose authenticator verified the person (its PIN or biometric: user
	// verification) used two factors, the key and that check.
	AMRMultiFactor = "mfa"

	// ViewPasskeyAdd asks the browser to create a passkey (security page).
	ViewPasskeyAdd = "passkeyadd"
	// ViewPasskeyMFA offers a passkey (and, when enrolled, a code) after
	// the password.
	ViewPasskeyMFA = "passkeymfa"

	// passkeyTimeout is how long the browser waits for the authenticator
	// and how long a ceremony stays valid.
	passkeyTimeout = 5 * time.Minute
	// maxPasskeys bounds the passkeys of one account.
	maxPasskeys = 20
	// maxPasskeyName bounds a passkey's name (characters).
	maxPasskeyName = 64
)

// Ceremony kinds, part of the sealed state.
const (
	ceremonyRegister = "register"
	ceremonyMFA      = "mfa"
	// ceremonyPasswordless has no account: the passkey names it.
	ceremonyPasswordless = "passwordless"
)

//go:embed static/passkey.js
var passkeyJS []byte

// passkeyJSVersion changes with the script, so that its long cache never
// serves an old copy to a new page.
var passkeyJSVersion = func() string {
	s := sha256.Sum256(passkeyJS)
	return hex.EncodeToString(s[:6])
}()

// PasskeyInfo is what the passkey parts of the pages show.
type PasskeyInfo struct {
	// Offered: people may add passkeys (security page).
	Offered bool
	// List is the account's passkeys (security page).
	List []PasskeyItem
	// Options is the JSON of the ceremony's options for the script;
	// Ceremony its sealed state, posted back as "ceremony".
	Options  string
	Ceremony string
	// Name is the name of the passkey being added.
	Name string
	// Script is the URL of the script doing the browser's side.
	Script string
	// Action and CSRF are the passkey form's (second-factor step).
	Action string
	CSRF   string
	// CodeToo: the account also has a TOTP app or recovery codes.
	CodeToo bool
}

// PasskeyItem is one registered passkey.
type PasskeyItem struct {
	ID       string // base64url credential id, posted back to remove it
	Name     string
	Created  time.Time
	LastUsed time.Time
}

// passkeyRP is the relying party of the provider's passkeys.
type passkeyRP struct {
	wa   *webauthn.WebAuthn
	rpID string
}

// setupPasskeys configures passkeys (mfa.passkeys): the relying party id
// is the host of the public URL and the only accepted origin is its
// origin.
func (p *Provider) setupPasskeys(on bool) error {
	if !on {
		return nil
	}
	u, err := url.Parse(p.publicURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("mfa.passkeys: cannot use server.public_url %q as the passkeys' origin", p.publicURL)
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil {
		return fmt.Errorf("mfa.passkeys: server.public_url must name a host, not an IP address (%s): browsers refuse passkeys for IP addresses; e.g. http://localhost for development", host)
	}
	origin := u.Scheme + "://" + strings.ToLower(host)
	if port := u.Port(); port != "" && !(u.Scheme == "https" && port == "443") && !(u.Scheme == "http" && port == "80") {
		origin += ":" + port
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  strings.ToLower(host),
		RPDisplayName:         p.display,
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyTimeout, TimeoutUVD: passkeyTimeout},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: passkeyTimeout, TimeoutUVD: passkeyTimeout},
		},
	})
	if err != nil {
		return fmt.Errorf("mfa.passkeys: %w", err)
	}
	p.passkeys = &passkeyRP{wa: wa, rpID: strings.ToLower(host)}
	return nil
}

// passkeysOn reports whether passkeys are enabled.
func (p *Provider) passkeysOn() bool { return p.passkeys != nil }

// passkeyScript is the URL of the embedded script.
func (p *Provider) passkeyScript() string {
	return p.base + "static/passkey.js?v=" + passkeyJSVersion
}

// servePasskeyJS serves the embedded script: same origin, cached for a
// year (its URL changes with its content), never sniffed.
func servePasskeyJS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(passkeyJS)
}

// passkeyUser is an account as go-webauthn sees it: the user handle is
// the account id.
type passkeyUser struct {
	acct  *store.Account
	creds []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte   { return []byte(u.acct.ID) }
func (u *passkeyUser) WebAuthnName() string { return u.acct.Email }
func (u *passkeyUser) WebAuthnDisplayName() string {
	if n := u.acct.Profile["name"]; n != "" {
		return n
	}
	return u.acct.Email
}
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// passkeyUserOf reads the account's passkeys.
func (p *Provider) passkeyUserOf(ctx context.Context, acct *store.Account) (*passkeyUser, []store.Passkey, error) {
	keys, err := p.accounts.Passkeys(ctx, acct.ID)
	if err != nil {
		return nil, nil, err
	}
	u := &passkeyUser{acct: acct}
	for _, k := range keys {
		u.creds = append(u.creds, credentialOf(k))
	}
	return u, keys, nil
}

func credentialOf(k store.Passkey) webauthn.Credential {
	c := webauthn.Credential{
		ID:              k.CredentialID,
		PublicKey:       k.PublicKey,
		AttestationType: k.AttestationType,
		Flags:           webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(k.Flags)),
		Authenticator:   webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: k.SignCount},
	}
	for _, t := range k.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

// ceremony is the sealed state of a WebAuthn ceremony.
type ceremony struct {
	Kind    string               `json:"k"`
	Account string               `json:"a"`
	Bind    string               `json:"b"`
	Name    string               `json:"n,omitempty"`
	Expires int64                `json:"e"`
	Session webauthn.SessionData `json:"s"`
}

// passkeyBind ties a ceremony to this browser's CSRF cookie, also when
// the cookie is being set by this very response.
func (p *Provider) passkeyBind(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(p.csrf.cookieName()); err == nil && ck.Value != "" {
		return p.csrf.sign(ck.Value, "passkey-bind")
	}
	if w != nil {
		for _, line := range w.Header().Values("Set-Cookie") {
			if ck, err := http.ParseSetCookie(line); err == nil && ck.Name == p.csrf.cookieName() && ck.Value != "" {
				return p.csrf.sign(ck.Value, "passkey-bind")
			}
		}
	}
	return ""
}

func (p *Provider) sealCeremony(c ceremony) string {
	c.Expires = p.now().Add(passkeyTimeout).Unix()
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(p.seal("passkey-"+c.Kind, c.Account, b))
}

var errCeremony = errors.New("passkey ceremony state not valid here")

// openCeremony opens a posted ceremony of kind for account, checks it is
// this browser's and not expired, and claims its challenge once.
func (p *Provider) openCeremony(r *http.Request, kind, account string) (*ceremony, error) {
	raw := r.PostFormValue("ceremony")
	if raw == "" || len(raw) > 8192 {
		return nil, errCeremony
	}
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, errCeremony
	}
	plain, err := p.open("passkey-"+kind, account, sealed)
	if err != nil {
		return nil, errCeremony
	}
	var c ceremony
	if err := json.Unmarshal(plain, &c); err != nil || c.Kind != kind || c.Account != account || c.Session.Challenge == "" {
		return nil, errCeremony
	}
	bind := p.passkeyBind(nil, r)
	if bind == "" || c.Bind != bind {
		return nil, errors.New("passkey ceremony of another browser")
	}
	exp := time.Unix(c.Expires, 0)
	if !p.now().Before(exp) {
		return nil, errTokenExpired
	}
	first, err := p.once.Claim(r.Context(), p.onceKey("passkey", c.Session.Challenge), exp.Add(time.Minute))
	if err != nil {
		return nil, err
	}
	if !first {
		return nil, errors.New("passkey challenge used twice")
	}
	return &c, nil
}

// passkeyItems lists the account's passkeys for the security page.
func passkeyItems(keys []store.Passkey) []PasskeyItem {
	var out []PasskeyItem
	for _, k := range keys {
		name := k.Name
		if name == "" {
			name = "Passkey"
		}
		out = append(out, PasskeyItem{ID: base64.RawURLEncoding.EncodeToString(k.CredentialID), Name: name, Created: k.Created, LastUsed: k.LastUsed})
	}
	return out
}

// cleanPasskeyName makes a passkey's name from what the person typed.
func cleanPasskeyName(s string) string {
	s = cleanName(s)
	if r := []rune(s); len(r) > maxPasskeyName {
		s = string(r[:maxPasskeyName])
	}
	if s == "" {
		s = "Passkey"
	}
	return s
}

// passkeyAMR is the amr of a sign-in whose second step was a passkey.
func passkeyAMR() []string { return []string{AMRPassword, AMRHardwareKey} }
