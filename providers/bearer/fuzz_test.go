package bearer

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

var reasons = []error{ErrRequest, ErrTooLarge, ErrMalformed, ErrAlgorithm, ErrUnknownKey, ErrSignature,
	ErrIssuer, ErrAudience, ErrExpired, ErrNotYetValid, ErrClaims, ErrInactive, ErrUnavailable}

// FuzzAuthenticate feeds arbitrary Authorization header values to a JWT
// provider whose keys are loaded: it must never panic, every error must
// be an *Error with one known reason wrapping providers.ErrInvalidToken,
// and an accepted token must give a complete API identity.
func FuzzAuthenticate(f *testing.F) {
	keysForTests(f)
	p, j, _ := jwtSetup(f)
	good := token(f, kRS, claims(p, nil))
	parts := strings.Split(good, ".")
	payload := mustJSON(claims(p, nil))
	for _, s := range []string{
		"Bearer " + good,
		"Bearer " + token(f, kES, claims(p, nil)),
		"Bearer " + token(f, kED, claims(p, map[string]any{"aud": []string{"x", testAud}})),
		"bearer " + seg(`{"alg":"none"}`) + "." + seg(payload) + ".",
		"Bearer " + hs256(`{"alg":"HS256","kid":"rsa-a"}`, payload, []byte("secret")),
		"Bearer " + good + ".x.y",
		"Bearer " + strings.Repeat(".", 100),
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + seg(`{"alg":"RS256","kid":"unknown"}`) + "." + parts[1] + "." + parts[2],
		"Bearer " + seg(`{"alg":"RS256","kid":"rsa-a","crit":[]}`) + "." + parts[1] + "." + parts[2],
		"Bearer " + seg(`{"alg":"RS256","alg":"RS256"}`) + "." + seg(`{"aud":[]}`) + "." + parts[2],
		"Bearer",
		"Bearer ",
		"Basic YWxpY2U6c2VjcmV0",
		"",
		"Bearer a=b",
		"Bearer ==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{header}
		id, err := j.Authenticate(context.Background(), r)
		if err != nil {
			if id != nil {
				t.Fatalf("error %v with identity %+v", err, id)
			}
			if !errors.Is(err, providers.ErrInvalidToken) {
				t.Fatalf("error %v does not wrap ErrInvalidToken", err)
			}
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("error %v is not an *Error", err)
			}
			n := 0
			for _, reason := range reasons {
				if errors.Is(err, reason) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("error %v matches %d reasons", err, n)
			}
			return
		}
		if id == nil {
			return
		}
		if id.Subject == "" || id.Audience != identity.API || id.Issuer != p.issuer || id.Provider != "api-tokens" {
			t.Fatalf("accepted an incomplete identity %+v for %q", id, header)
		}
	})
}
