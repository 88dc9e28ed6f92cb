package proxy

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/providers"
)

// TestPostForm checks the SAML HTTP-POST binding page: escaped fields, a
// nonce'd auto-submit, a no-script button, and a CSP that lets the form go
// only to the provider's origin.
func TestPostForm(t *testing.T) {
	g := &Gateway{}
	w := httptest.NewRecorder()
	g.postForm(nil, w, &providers.Redirect{URL: "https://idp.example.com/sso?x=1", Form: map[string]string{"SAMLRequest": `a"><script>`, "RelayState": "s1"}})
	body, csp := w.Body.String(), w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action https://idp.example.com;") || strings.Contains(csp, "form-action *") {
		t.Fatalf("CSP %q", csp)
	}
	if strings.Contains(body, `a"><script>`) || !strings.Contains(body, `value="a&#34;&gt;&lt;script&gt;"`) {
		t.Fatalf("field not escaped:\n%s", body)
	}
	if !strings.Contains(body, `action="https://idp.example.com/sso?x=1"`) || !strings.Contains(body, "<noscript>") {
		t.Fatalf("form:\n%s", body)
	}
	w = httptest.NewRecorder()
	g.postForm(nil, w, &providers.Redirect{URL: "javascript:alert(1)", Form: map[string]string{}})
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'none'") {
		t.Fatalf("a non-http target must get form-action 'none': %q", csp)
	}
}
