package local

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
)

// csrf protects the provider's forms: a random value in a cookie
// (HttpOnly, SameSite=Lax, __Host- when Secure) and, in each form, an
// HMAC of that value and the form's name. A post is accepted only with
// both, matching, and not announced by the browser as cross-site or
// same-site (Sec-Fetch-Site). Another site can neither read the cookie
// nor set it (the __Host- prefix), so it cannot compute the form token.
type csrf struct {
	key    []byte
	secure bool
}

// FieldCSRF is the form field carrying the token.
const FieldCSRF = "csrf_token"

func (c csrf) cookieName() string {
	if c.secure {
		return "__Host-gatehouse-local-csrf"
	}
	return "gatehouse-local-csrf"
}

// token returns the form token for form, setting the cookie when the
// browser has none.
func (c csrf) token(w http.ResponseWriter, r *http.Request, form string) string {
	v := ""
	if ck, err := r.Cookie(c.cookieName()); err == nil && len(ck.Value) >= 32 && len(ck.Value) <= 64 {
		v = ck.Value
	} else {
		b := make([]byte, 32)
		rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: c.cookieName(), Value: v, Path: "/", HttpOnly: true,
			Secure: c.secure, SameSite: http.SameSiteLaxMode, MaxAge: 12 * 3600})
	}
	return c.sign(v, form)
}

func (c csrf) sign(cookie, form string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(form + "\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check verifies a posted form (the body must already be parsed).
func (c csrf) check(r *http.Request, form string) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	ck, err := r.Cookie(c.cookieName())
	if err != nil || ck.Value == "" {
		return false
	}
	got := r.PostFormValue(FieldCSRF)
	return got != "" && hmac.Equal([]byte(got), []byte(c.sign(ck.Value, form)))
}
