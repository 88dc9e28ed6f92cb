package local

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Token purposes. The purpose is inside the signed payload, so a token
// made for one use is refused for every other.
const (
	purposeVerify = "verify"  // confirm an email address (emailed link)
	purposeReset  = "reset"   // choose a new password (emailed link)
	purposeSignIn = "sign-in" // proof of a checked password, posted to the callback
	purposeMFA    = "mfa"     // a checked password waiting for its second factor
	purposeManage = "manage"  // a re-authenticated person on the security page
)

// claims is the signed payload of a token.
type claims struct {
	Purpose string `json:"p"`
	Account string `json:"a"`
	// PwdAt binds emailed links to the password they were issued under
	// (Account.PasswordChanged, unix nanoseconds): once the password
	// changes, earlier reset and confirmation links stop working.
	PwdAt int64 `json:"v,omitempty"`
	// State binds a sign-in proof to one sign-in attempt.
	State string `json:"s,omitempty"`
	// Audience and ReturnURL say where to continue after an emailed link
	// (the gateway validates them again).
	Audience  string `json:"aud,omitempty"`
	ReturnURL string `json:"rd,omitempty"`
	// AMR lists the methods a sign-in proof attests (empty: password).
	AMR []string `json:"amr,omitempty"`
	// Next says what a second factor completes: "" (sign-in) or
	// "manage" (re-authentication for the security page).
	Next string `json:"x,omitempty"`
	// StepUp records that the sign-in must end with a second factor.
	StepUp bool `json:"mfa,omitempty"`
	// Fields are the profile claims the sign-in asks for (comma-separated,
	// profile.go).
	Fields string `json:"pf,omitempty"`
	// Bind ties a security-page token to the browser (its CSRF cookie).
	Bind    string `json:"b,omitempty"`
	Issued  int64  `json:"iat"`
	Expires int64  `json:"exp"`
	// Nonce makes each token unique; single use is claimed on it.
	Nonce string `json:"n"`
}

// signer makes and checks tokens: base64url(JSON) "." base64url(HMAC).
// The first key signs; every key verifies (rotation).
type signer struct {
	keys [][]byte
	now  func() time.Time
}

// deriveKey turns a secret into this provider's link key, so the raw
// session key is never used for anything but sessions.
func deriveKey(secret []byte, provider string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("gatehouse local provider links v1\x00" + provider))
	return m.Sum(nil)
}

func (s *signer) mac(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// issue signs c, filling Issued, Expires (now+ttl) and Nonce.
func (s *signer) issue(c claims, ttl time.Duration) string {
	now := s.now()
	c.Issued = now.Unix()
	c.Expires = now.Add(ttl).Unix()
	n := make([]byte, 16)
	rand.Read(n)
	c.Nonce = base64.RawURLEncoding.EncodeToString(n)
	b, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(s.keys[0], payload))
}

var (
	errTokenInvalid = errors.New("invalid token")
	errTokenExpired = errors.New("expired token")
)

// check verifies signature, purpose and expiry, and returns the claims.
func (s *signer) check(tok, purpose string) (*claims, error) {
	if len(tok) > 4096 {
		return nil, errTokenInvalid
	}
	payload, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, errTokenInvalid
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return nil, errTokenInvalid
	}
	valid := false
	for _, k := range s.keys {
		if hmac.Equal(got, s.mac(k, payload)) {
			valid = true
		}
	}
	if !valid {
		return nil, errTokenInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, errTokenInvalid
	}
	var c claims
	if err := json.Unmarshal(b, &c); err != nil || c.Purpose != purpose || c.Account == "" || c.Nonce == "" {
		return nil, errTokenInvalid
	}
	if !s.now().Before(time.Unix(c.Expires, 0)) {
		return nil, errTokenExpired
	}
	return &c, nil
}
