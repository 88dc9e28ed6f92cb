package saml

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/session"
)

// BenchmarkSAMLRoundTrip measures the service provider's side of one
// sign-in: a signed AuthnRequest out (Begin), the IdP's signed response in
// (Complete: shape checks, signature, conditions, replay cache, attribute
// mapping), and the session cookie out (session.Save). The in-process IdP's
// own work (building and signing the response) is excluded from the timing.
func BenchmarkSAMLRoundTrip(b *testing.B) {
	h := newHarness(b)
	store, err := session.NewCookieStore(session.Options{Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, Secure: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, red := h.begin(nil)
		b.StopTimer()
		raw := h.idp.respond(b, h.idp.request(b, red), alice, nil)
		b.StartTimer()
		id, err := h.complete(a, raw)
		if err != nil {
			b.Fatalf("round trip %d refused: %v", i, err)
		}
		id.Audience = a.Audience // as the proxy does after Complete
		w := httptest.NewRecorder()
		if err := store.Save(w, httptest.NewRequest("GET", "/", nil), &session.Payload{ID: session.NewID(), Identity: *id, Created: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
}
