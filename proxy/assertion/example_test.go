package assertion_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
)

// An upstream application behind Gatehouse builds a Verifier from the
// gateway's JWKS and checks the assertion header of every request against
// its own route name, refusing requests that did not pass the gateway.
func ExampleVerifier() {
	// The gateway side, for the sake of the example: a signing key and an
	// assertion for a request to the "wiki" route.
	keyPEM, err := assertion.GenerateKeyPEM()
	if err != nil {
		log.Fatal(err)
	}
	key, err := assertion.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := assertion.NewSigner([]assertion.Key{{Signer: key}}, 0, nil)
	if err != nil {
		log.Fatal(err)
	}
	token, _, err := signer.Sign(assertion.Claims{
		Issuer:   "https://gate.example.com",
		Audience: "wiki",
		Subject:  "00u1abcd",
		Email:    "ada@example.com",
		Groups:   []string{"eng"},
	})
	if err != nil {
		log.Fatal(err)
	}
	jwks := signer.JWKS() // what https://gate.example.com/.gatehouse/jwks.json serves

	// The upstream side.
	verifier, err := assertion.NewVerifier(jwks, "https://gate.example.com", nil)
	if err != nil {
		log.Fatal(err)
	}
	wiki := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := verifier.Verify(r.Header.Get(assertion.DefaultHeader), "wiki")
		if err != nil {
			http.Error(w, "request did not come through Gatehouse", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "hello %s %v", claims.Email, claims.Groups)
	})

	for _, header := range []string{token, ""} {
		req := httptest.NewRequest("GET", "http://wiki.internal/", nil)
		if header != "" {
			req.Header.Set(assertion.DefaultHeader, header)
		}
		rec := httptest.NewRecorder()
		wiki.ServeHTTP(rec, req)
		fmt.Print(rec.Code, " ", rec.Body.String())
		if rec.Code == http.StatusOK {
			fmt.Println()
		}
	}
	// Output:
	// 200 hello ada@example.com [eng]
	// 403 request did not come through Gatehouse
}
