package pages

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNotice(t *testing.T) {
	r := newTest(t, Brand{}, "")
	w := httptest.NewRecorder()
	r.Notice(w, NoticePage{Title: "Signed out", Message: "Bye <script>x</script>", LinkURL: "javascript:alert(1)", LinkLabel: "Home", RequestID: "rid-1"})
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if !strings.Contains(body, "<h1>Signed out</h1>") || !strings.Contains(body, "rid-1") {
		t.Fatalf("body lacks title or request id:\n%s", body)
	}
	if strings.Contains(body, "<script>x") || strings.Contains(body, `href="javascript:`) {
		t.Fatalf("unescaped content:\n%s", body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	if strings.Contains(body, "Error 200") {
		t.Fatal("notice renders as an error")
	}
}
