package scim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSCIM sends arbitrary requests with the right token: the handler must
// never panic, must answer a valid status with a JSON body (a SCIM error
// for failures), and may only revoke well-formed, lower-case names, and
// only on the methods that deprovision.
func FuzzSCIM(f *testing.F) {
	alice := "/Users/" + UserID("alice@example.com")
	seeds := []struct{ method, path, body string }{
		{"GET", "/Users", ""},
		{"GET", `/Users?filter=userName eq "a@b.c"&startIndex=3&count=2`, ""},
		{"GET", alice, ""},
		{"GET", "/Users/u-QWxpY2U", ""},
		{"GET", "/ServiceProviderConfig", ""},
		{"GET", "/Schemas/" + schemaUser, ""},
		{"GET", "/ResourceTypes/User", ""},
		{"POST", "/Users", `{"userName":"bob@example.com","active":false,"emails":[{"value":"b@example.com"}]}`},
		{"POST", "/Users", `{"userName":"x","active":"False","name":{"givenName":"X"}}`},
		{"POST", "/Users", `{"userName":"\u0000"}`},
		{"PUT", alice, `{"userName":"alice@example.com","active":false,"emails":[{"value":"A@EXAMPLE.COM"}]}`},
		{"PATCH", alice, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}`},
		{"PATCH", alice, `{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`},
		{"PATCH", alice, `{"Operations":[{"op":"add","path":"emails[type eq \"work\"].value","value":"w@example.com"},{"op":"replace","path":"userName","value":"New"}]}`},
		{"PATCH", alice, `{"Operations":[{"op":"remove","path":"active"}]}`},
		{"DELETE", alice, ""},
		{"DELETE", "/Users/u-", ""},
		{"OPTIONS", "/Users", ""},
		{"GET", "/Users/%zz", ""},
		{"PATCH", alice, `{"Operations":[{"op":"replace","value":{"emails":{"value":"s@example.com"},"active":"false"}}]}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body)
	}
	h, err := New(Options{Token: testToken, Revoke: func(context.Context, string) error { return nil }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n") {
			method = "GET"
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			u = &url.URL{Path: path}
		}
		var revoked []string
		hh := *h
		hh.revoke = func(_ context.Context, name string) error {
			revoked = append(revoked, name)
			return nil
		}
		r := &http.Request{
			Method:     method,
			URL:        u,
			RequestURI: u.RequestURI(),
			Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{
				"Authorization": {"Bearer " + testToken},
				"Content-Type":  {scimJSON},
			},
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "apps.example.com",
		}
		w := httptest.NewRecorder()
		hh.ServeHTTP(w, r)

		if w.Code < 200 || w.Code >= 600 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code == http.StatusNoContent {
			if w.Body.Len() != 0 {
				t.Fatalf("204 with a body")
			}
		} else {
			if ct := w.Header().Get("Content-Type"); ct != scimJSON {
				t.Fatalf("Content-Type %q", ct)
			}
			var doc map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
				t.Fatalf("status %d, body not a JSON object: %v: %q", w.Code, err, w.Body.String())
			}
			if w.Code >= 400 {
				if d, _ := doc["detail"].(string); doc["status"] != strconv.Itoa(w.Code) || d == "" {
					t.Fatalf("bad error body: %s", w.Body.String())
				}
			}
		}
		if len(revoked) > 0 {
			switch {
			case method == "DELETE" || method == "PUT" || method == "PATCH" || method == "POST":
			default:
				t.Fatalf("%s revoked %q", method, revoked)
			}
			if w.Code >= 300 {
				t.Fatalf("revoked %q but answered %d", revoked, w.Code)
			}
			if len(revoked) > maxRevokeNames {
				t.Fatalf("revoked %d names", len(revoked))
			}
		}
		for _, n := range revoked {
			if n == "" || !utf8.ValidString(n) || strings.ToLower(n) != n || strings.TrimSpace(n) != n {
				t.Fatalf("revoked malformed name %q", n)
			}
		}
	})
}
