package scim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const testToken = "0123456789abcdef0123456789abcdef-scim-test"

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// revoker records the names revoked; err, when set, makes every call fail.
type revoker struct {
	mu    sync.Mutex
	names []string
	err   error
}

func (rv *revoker) revoke(_ context.Context, name string) error {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	rv.names = append(rv.names, name)
	return rv.err
}

func (rv *revoker) got() []string {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return slices.Clone(rv.names)
}

func newTest(t testing.TB, revokeErr error, log *zap.Logger) (*Handler, *revoker) {
	t.Helper()
	rv := &revoker{err: revokeErr}
	h, err := New(Options{Token: testToken, Revoke: rv.revoke, Logger: log, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return h, rv
}

type reply struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// do sends one request. auth "" means the right token; "-" means none;
// anything else is sent as the whole Authorization header.
func do(t testing.TB, h http.Handler, method, target, body, ctype, auth string) reply {
	t.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
	}
	switch auth {
	case "":
		r.Header.Set("Authorization", "Bearer "+testToken)
	case "-":
	default:
		r.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	rep := reply{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if rep.raw != "" {
		if err := json.Unmarshal(w.Body.Bytes(), &rep.body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v\n%s", method, target, err, rep.raw)
		}
	}
	return rep
}

// field walks a decoded JSON document: "meta.location", "Resources.0.id".
func field(doc any, path string) any {
	cur := doc
	for _, k := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[k]
		case []any:
			i := 0
			for _, c := range k {
				i = i*10 + int(c-'0')
			}
			if i >= len(v) {
				return nil
			}
			cur = v[i]
		default:
			return nil
		}
	}
	return cur
}

const (
	patchSchema = `"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]`
	scimJSON    = "application/scim+json"
)

func TestEndpoint(t *testing.T) {
	alice := UserID("alice@example.com")
	aliceURL := "/Users/" + alice
	upperID := "u-" + "QWxpY2U" // base64url("Alice"): not lower-case, so not an id we made

	oktaCreate := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"Alice@Example.com","name":{"givenName":"Alice","familyName":"Smith"},
		"emails":[{"primary":true,"value":"alice@example.com","type":"work"}],
		"displayName":"Alice Smith","locale":"en-US","externalId":"00u1","groups":[],"password":"x","active":true}`
	entraCreate := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId":"0a21f0f2","userName":"Bob@contoso.com","active":"True",
		"emails":[{"primary":true,"type":"work","value":"bob@contoso.com"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Eng"}}`

	type tc struct {
		name        string
		method      string
		target      string
		body        string
		ctype       string // default application/scim+json when a body is sent
		auth        string // see do
		status      int
		revoked     []string
		want        map[string]any // field path -> expected value
		errContains string
	}
	cases := []tc{
		// Authentication.
		{name: "no token", method: "GET", target: "/Users", auth: "-", status: 401, errContains: "missing bearer token"},
		{name: "wrong token same length", method: "GET", target: "/Users",
			auth: "Bearer " + strings.Repeat("x", len(testToken)), status: 401, errContains: "invalid bearer token"},
		{name: "token shorter", method: "GET", target: "/Users", auth: "Bearer " + testToken[:len(testToken)-1], status: 401},
		{name: "token longer", method: "GET", target: "/Users", auth: "Bearer " + testToken + "0", status: 401},
		{name: "basic scheme", method: "GET", target: "/Users", auth: "Basic " + testToken, status: 401, errContains: "Bearer"},
		{name: "token without scheme", method: "GET", target: "/Users", auth: testToken, status: 401},
		{name: "scheme case-insensitive", method: "GET", target: "/Users", auth: "bearer " + testToken, status: 200},
		{name: "auth before routing", method: "DELETE", target: aliceURL, auth: "-", status: 401},
		{name: "auth before 404", method: "GET", target: "/Groups", auth: "Bearer nope", status: 401},

		// Create.
		{name: "create okta", method: "POST", target: "/Users", body: oktaCreate, status: 201,
			want: map[string]any{"id": alice, "userName": "Alice@Example.com", "active": true,
				"emails.0.value": "alice@example.com", "emails.0.primary": true, "externalId": "00u1",
				"name.givenName": "Alice", "displayName": "Alice Smith", "meta.resourceType": "User",
				"meta.location": "https://example.com/Users/" + alice, "meta.lastModified": "2026-03-04T05:06:07Z",
				"schemas.0": schemaUser, "password": nil}},
		{name: "create entra string active", method: "POST", target: "/Users", body: entraCreate, status: 201,
			want: map[string]any{"id": UserID("bob@contoso.com"), "active": true, "externalId": "0a21f0f2"}},
		{name: "create default active", method: "POST", target: "/Users", body: `{"userName":"carol"}`, status: 201,
			want: map[string]any{"active": true, "emails": nil}},
		{name: "create inactive revokes", method: "POST", target: "/Users",
			body:   `{"userName":"Dave@Example.com","active":false,"emails":[{"value":"dave@example.com"},{"value":"d.jones@example.com"}]}`,
			status: 201, revoked: []string{"dave@example.com", "d.jones@example.com"},
			want: map[string]any{"active": false}},
		{name: "create inactive string", method: "POST", target: "/Users", body: `{"userName":"erin","active":"FALSE"}`,
			status: 201, revoked: []string{"erin"}},
		{name: "create json charset", method: "POST", target: "/Users", body: `{"userName":"frank"}`,
			ctype: "application/json; charset=utf-8", status: 201},
		{name: "create case-insensitive attributes", method: "POST", target: "/Users", body: `{"USERNAME":"gina","Active":false}`,
			status: 201, revoked: []string{"gina"}},
		{name: "create without userName", method: "POST", target: "/Users", body: `{"active":true}`, status: 400, errContains: "userName is required"},
		{name: "create null userName", method: "POST", target: "/Users", body: `{"userName":null}`, status: 400},
		{name: "create blank userName", method: "POST", target: "/Users", body: `{"userName":"  "}`, status: 400},
		{name: "create userName number", method: "POST", target: "/Users", body: `{"userName":42}`, status: 400, errContains: "userName"},
		{name: "create bad active", method: "POST", target: "/Users", body: `{"userName":"h","active":"nope"}`, status: 400},
		{name: "create bad emails", method: "POST", target: "/Users", body: `{"userName":"h","emails":"h@example.com"}`, status: 400, errContains: "emails"},
		{name: "create bad json", method: "POST", target: "/Users", body: `{"userName":`, status: 400, errContains: "JSON"},
		{name: "create trailing garbage", method: "POST", target: "/Users", body: `{"userName":"h"} x`, status: 400},
		{name: "create array body", method: "POST", target: "/Users", body: `[{"userName":"h"}]`, status: 400, errContains: "JSON object"},
		{name: "create empty body", method: "POST", target: "/Users", status: 400, errContains: "body is required"},
		{name: "create wrong content type", method: "POST", target: "/Users", body: `{"userName":"h"}`, ctype: "text/plain", status: 400, errContains: "Content-Type"},
		{name: "create form content type", method: "POST", target: "/Users", body: `userName=h`, ctype: "application/x-www-form-urlencoded", status: 400},
		{name: "create too large", method: "POST", target: "/Users",
			body:   `{"userName":"h","displayName":"` + strings.Repeat("a", MaxBodyBytes) + `"}`,
			status: 400, errContains: "64 KiB"},
		{name: "create inactive too many emails", method: "POST", target: "/Users",
			body:   `{"userName":"h","active":false,"emails":[` + strings.Repeat(`{"value":"x"},`, 3) + manyEmails(20) + `]}`,
			status: 400, errContains: "too many"},

		// Search and read.
		{name: "filter finds nobody", method: "GET", target: `/Users?filter=userName+eq+%22alice%40example.com%22`, status: 200,
			want: map[string]any{"schemas.0": schemaList, "totalResults": 0.0, "itemsPerPage": 0.0, "startIndex": 1.0, "Resources": []any{}}},
		{name: "list all", method: "GET", target: "/Users", status: 200, want: map[string]any{"totalResults": 0.0}},
		{name: "list trailing slash", method: "GET", target: "/Users/", status: 200, want: map[string]any{"totalResults": 0.0}},
		{name: "list paging", method: "GET", target: "/Users?startIndex=5&count=100", status: 200, want: map[string]any{"startIndex": 5.0}},
		{name: "list bad paging", method: "GET", target: "/Users?startIndex=x&count=-3", status: 200, want: map[string]any{"startIndex": 1.0}},
		{name: "list entra flag", method: "GET", target: "/Users?aadOptscim062020&filter=userName+eq+%22x%22", status: 200},
		{name: "get by id", method: "GET", target: aliceURL, status: 200,
			want: map[string]any{"id": alice, "userName": "alice@example.com", "active": true, "meta.location": "https://example.com" + aliceURL}},
		{name: "get bad id", method: "GET", target: "/Users/12345", status: 400, errContains: "unknown user id format"},
		{name: "get bad base64", method: "GET", target: "/Users/u-***", status: 400},
		{name: "get empty id", method: "GET", target: "/Users/u-", status: 400},
		{name: "get non-canonical id", method: "GET", target: "/Users/" + upperID, status: 400, errContains: "canonical"},
		{name: "get control char id", method: "GET", target: "/Users/" + "u-YQBi", status: 400},

		// Replace.
		{name: "put deactivates", method: "PUT", target: aliceURL,
			body:   `{"schemas":["` + schemaUser + `"],"id":"` + alice + `","userName":"alice@example.com","active":false,"emails":[{"value":"Alice.Smith@Example.com","primary":true},{"value":"alice@example.com"}]}`,
			status: 200, revoked: []string{"alice@example.com", "alice.smith@example.com"},
			want: map[string]any{"id": alice, "active": false, "emails.0.value": "Alice.Smith@Example.com"}},
		{name: "put renamed and deactivated", method: "PUT", target: aliceURL, body: `{"userName":"asmith@example.com","active":"false"}`,
			status: 200, revoked: []string{"alice@example.com", "asmith@example.com"},
			want: map[string]any{"id": alice, "userName": "asmith@example.com"}},
		{name: "put active", method: "PUT", target: aliceURL, body: `{"userName":"alice@example.com","active":true,"emails":[{"value":"x@example.com"}]}`,
			status: 200, want: map[string]any{"active": true}},
		{name: "put without userName keeps the id's", method: "PUT", target: aliceURL, body: `{"active":false}`,
			status: 200, revoked: []string{"alice@example.com"}, want: map[string]any{"userName": "alice@example.com"}},
		{name: "put bad json", method: "PUT", target: aliceURL, body: `{`, status: 400},
		{name: "put bad id", method: "PUT", target: "/Users/nope", body: `{"active":false}`, status: 400},

		// Patch: the shapes IdPs send.
		{name: "patch okta deactivate", method: "PATCH", target: aliceURL,
			body:   `{` + patchSchema + `,"Operations":[{"op":"replace","value":{"active":false}}]}`,
			status: 200, revoked: []string{"alice@example.com"}, want: map[string]any{"active": false, "id": alice, "userName": "alice@example.com"}},
		{name: "patch okta reactivate", method: "PATCH", target: aliceURL,
			body:   `{` + patchSchema + `,"Operations":[{"op":"replace","value":{"active":true}}]}`,
			status: 200, want: map[string]any{"active": true}},
		{name: "patch entra string False", method: "PATCH", target: aliceURL,
			body:   `{` + patchSchema + `,"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			status: 200, revoked: []string{"alice@example.com"}, want: map[string]any{"active": false}},
		{name: "patch entra string True", method: "PATCH", target: aliceURL,
			body:   `{` + patchSchema + `,"Operations":[{"op":"Replace","path":"active","value":"True"}]}`,
			status: 200, want: map[string]any{"active": true}},
		{name: "patch entra compliant bool", method: "PATCH", target: aliceURL + "?aadOptscim062020",
			body:   `{` + patchSchema + `,"Operations":[{"op":"replace","path":"active","value":false}]}`,
			status: 200, revoked: []string{"alice@example.com"}},
		{name: "patch qualified path", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"REPLACE","path":"urn:ietf:params:scim:schemas:core:2.0:User:active","value":false}]}`,
			status: 200, revoked: []string{"alice@example.com"}},
		{name: "patch value object string", method: "PATCH", target: aliceURL,
			body:   `{"operations":[{"op":"replace","value":{"Active":"false"}}]}`,
			status: 200, revoked: []string{"alice@example.com"}},
		{name: "patch entra attributes", method: "PATCH", target: aliceURL,
			body: `{` + patchSchema + `,"Operations":[{"op":"Add","path":"displayName","value":"Alice S"},
				{"op":"Replace","path":"emails[type eq \"work\"].value","value":"alice@example.com"},
				{"op":"Add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Eng"}},
				{"op":"Remove","path":"title"}]}`,
			status: 200, want: map[string]any{"active": true}},
		{name: "patch deactivate with emails", method: "PATCH", target: aliceURL,
			body: `{"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"Alice.Smith@example.com"},
				{"op":"replace","path":"emails","value":[{"value":"a2@example.com"}]},
				{"op":"replace","path":"active","value":"False"}]}`,
			status: 200, revoked: []string{"alice@example.com", "alice.smith@example.com", "a2@example.com"},
			want: map[string]any{"emails.0.value": "a2@example.com"}},
		{name: "patch rename and deactivate", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"replace","value":{"userName":"asmith@example.com","active":false}}]}`,
			status: 200, revoked: []string{"alice@example.com", "asmith@example.com"}, want: map[string]any{"id": alice, "userName": "asmith@example.com"}},
		{name: "patch last active wins", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"replace","path":"active","value":false},{"op":"replace","path":"active","value":true}]}`,
			status: 200, want: map[string]any{"active": true}},
		{name: "patch remove active", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"remove","path":"active"}]}`,
			status: 200},
		{name: "patch bad active", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"replace","path":"active","value":"maybe"}]}`,
			status: 400, errContains: "active"},
		{name: "patch null active", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"replace","path":"active","value":null}]}`,
			status: 400},
		{name: "patch unknown op", method: "PATCH", target: aliceURL,
			body:   `{"Operations":[{"op":"move","path":"active","value":false}]}`,
			status: 400, errContains: "move"},
		{name: "patch no operations", method: "PATCH", target: aliceURL, body: `{` + patchSchema + `}`, status: 400, errContains: "Operations"},
		{name: "patch value not object", method: "PATCH", target: aliceURL,
			body: `{"Operations":[{"op":"replace","value":false}]}`, status: 400, errContains: "object"},
		{name: "patch operations wrong type", method: "PATCH", target: aliceURL, body: `{"Operations":{"op":"replace"}}`, status: 400},
		{name: "patch bad id", method: "PATCH", target: "/Users/" + upperID,
			body: `{"Operations":[{"op":"replace","path":"active","value":false}]}`, status: 400},

		// Delete.
		{name: "delete", method: "DELETE", target: aliceURL, status: 204, revoked: []string{"alice@example.com"}},
		{name: "delete bad id", method: "DELETE", target: "/Users/alice", status: 400},

		// Methods and paths.
		{name: "delete collection", method: "DELETE", target: "/Users", status: 405},
		{name: "post to id", method: "POST", target: aliceURL, body: `{}`, status: 405},
		{name: "post config", method: "POST", target: "/ServiceProviderConfig", body: `{}`, status: 405},
		{name: "groups", method: "GET", target: "/Groups", status: 404},
		{name: "root", method: "GET", target: "/", status: 404},
		{name: "bulk", method: "POST", target: "/Bulk", body: `{}`, status: 404},

		// Discovery.
		{name: "service provider config", method: "GET", target: "/ServiceProviderConfig", status: 200,
			want: map[string]any{"schemas.0": schemaSPConfig, "patch.supported": true, "bulk.supported": false,
				"filter.supported": true, "filter.maxResults": 0.0, "sort.supported": false, "etag.supported": false,
				"changePassword.supported": false, "authenticationSchemes.0.type": "oauthbearertoken"}},
		{name: "resource types", method: "GET", target: "/ResourceTypes", status: 200,
			want: map[string]any{"totalResults": 1.0, "Resources.0.endpoint": "/Users", "Resources.0.schema": schemaUser}},
		{name: "resource type user", method: "GET", target: "/ResourceTypes/User", status: 200, want: map[string]any{"id": "User"}},
		{name: "resource type group", method: "GET", target: "/ResourceTypes/Group", status: 404},
		{name: "schemas", method: "GET", target: "/Schemas", status: 200,
			want: map[string]any{"Resources.0.id": schemaUser, "Resources.0.attributes.0.name": "userName"}},
		{name: "schema user", method: "GET", target: "/Schemas/" + schemaUser, status: 200, want: map[string]any{"name": "User"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, rv := newTest(t, nil, nil)
			ctype := c.ctype
			if ctype == "" && c.body != "" {
				ctype = scimJSON
			}
			rep := do(t, h, c.method, c.target, c.body, ctype, c.auth)
			if rep.status != c.status {
				t.Fatalf("status %d, want %d; body %s", rep.status, c.status, rep.raw)
			}
			if got := rv.got(); !reflect.DeepEqual(got, c.revoked) {
				t.Errorf("revoked %q, want %q", got, c.revoked)
			}
			if c.status == http.StatusNoContent {
				if rep.raw != "" {
					t.Errorf("204 with a body: %s", rep.raw)
				}
				return
			}
			if ct := rep.header.Get("Content-Type"); ct != scimJSON {
				t.Errorf("Content-Type %q", ct)
			}
			if c.status >= 400 {
				checkError(t, rep, c.status)
				if !strings.Contains(field(rep.body, "detail").(string), c.errContains) {
					t.Errorf("detail %q does not contain %q", field(rep.body, "detail"), c.errContains)
				}
			}
			switch c.status {
			case 401:
				if !strings.HasPrefix(rep.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", rep.header.Get("WWW-Authenticate"))
				}
			case 405:
				if rep.header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			case 201:
				if loc := rep.header.Get("Location"); loc == "" || loc != field(rep.body, "meta.location") {
					t.Errorf("Location %q, meta.location %v", loc, field(rep.body, "meta.location"))
				}
			}
			for path, want := range c.want {
				if got := field(rep.body, path); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
		})
	}
}

func manyEmails(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"value":"e` + string(rune('a'+i)) + `@example.com"}`)
	}
	return b.String()
}

func checkError(t *testing.T, rep reply, status int) {
	t.Helper()
	if got := field(rep.body, "schemas.0"); got != schemaError {
		t.Errorf("error schemas %v", field(rep.body, "schemas"))
	}
	if got := field(rep.body, "status"); got != strconv.Itoa(status) {
		t.Errorf("error status %#v, want %q", got, strconv.Itoa(status))
	}
	if d, _ := field(rep.body, "detail").(string); d == "" {
		t.Error("error without detail")
	}
	for _, bad := range []string{"goroutine", "panic", ".go:"} {
		if strings.Contains(rep.raw, bad) {
			t.Errorf("error body leaks %q: %s", bad, rep.raw)
		}
	}
}

func TestRevokeFailureIs503(t *testing.T) {
	alice := "/Users/" + UserID("alice@example.com")
	for _, c := range []struct{ method, target, body string }{
		{"DELETE", alice, ""},
		{"PATCH", alice, `{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`},
		{"PUT", alice, `{"userName":"alice@example.com","active":false}`},
		{"POST", "/Users", `{"userName":"alice@example.com","active":false}`},
	} {
		t.Run(c.method, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			h, rv := newTest(t, errors.New("redis: connection refused"), zap.New(core))
			rep := do(t, h, c.method, c.target, c.body, scimJSON, "")
			if rep.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", rep.status, rep.raw)
			}
			checkError(t, rep, 503)
			if strings.Contains(rep.raw, "redis") {
				t.Errorf("503 leaks the cause: %s", rep.raw)
			}
			if got := rv.got(); !reflect.DeepEqual(got, []string{"alice@example.com"}) {
				t.Errorf("revoked %q", got)
			}
			if n := logs.FilterMessage("scim: deprovisioning failed; the IdP will retry").Len(); n != 1 {
				t.Errorf("%d failure lines logged", n)
			}
		})
	}
	// No revocation is needed: no 503 even with a broken store.
	h, _ := newTest(t, errors.New("down"), nil)
	if rep := do(t, h, "PATCH", alice, `{"Operations":[{"op":"replace","value":{"active":true}}]}`, scimJSON, ""); rep.status != 200 {
		t.Errorf("reactivation with a broken store: %d", rep.status)
	}
}

// A partial failure still tries every name, so the retry finds as little
// as possible left to do.
func TestRevokeTriesEveryName(t *testing.T) {
	var mu sync.Mutex
	var tried []string
	h, err := New(Options{Token: testToken, Revoke: func(_ context.Context, n string) error {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, n)
		if n == "a@example.com" {
			return errors.New("boom")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	rep := do(t, h, "PUT", "/Users/"+UserID("a@example.com"),
		`{"userName":"a@example.com","active":false,"emails":[{"value":"b@example.com"}]}`, scimJSON, "")
	if rep.status != 503 || !reflect.DeepEqual(tried, []string{"a@example.com", "b@example.com"}) {
		t.Errorf("status %d, tried %q", rep.status, tried)
	}
}

func TestLogsHashedNamesOnly(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h, _ := newTest(t, nil, zap.New(core))
	rep := do(t, h, "PUT", "/Users/"+UserID("Secret.Person@Example.com"),
		`{"userName":"Secret.Person@Example.com","active":false,"emails":[{"value":"hidden@example.org"}]}`, scimJSON, "")
	if rep.status != 200 {
		t.Fatal(rep.status, rep.raw)
	}
	entries := logs.FilterMessage("scim: deprovisioned").All()
	if len(entries) != 1 {
		t.Fatalf("%d deprovisioning lines", len(entries))
	}
	ctx := entries[0].ContextMap()
	want := []any{nameHash("secret.person@example.com"), nameHash("hidden@example.org")}
	if got, _ := ctx["user_hashes"].([]any); !reflect.DeepEqual(got, want) {
		t.Errorf("user_hashes %#v, want %#v", ctx["user_hashes"], want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(want[0].(string)) {
		t.Errorf("hash %q", want[0])
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(map[string]any{"msg": e.Message, "ctx": e.ContextMap()})
		for _, secret := range []string{"secret", "hidden"} {
			if strings.Contains(strings.ToLower(string(line)), secret) {
				t.Errorf("log names the person: %s", line)
			}
		}
	}
}

func TestIDRoundTrip(t *testing.T) {
	names := []string{
		"alice@example.com", "Alice@Example.COM", "josé.núñez@example.es", "ÅSA.ÖSTERGÅRD@EXAMPLE.SE",
		"用户@例子.公司", "straße@example.de", "İstanbul@example.tr", "ΣΊΣΥΦΟΣ", "emoji😀@example.com",
		"DOMAIN\\user", "a/b?c#d&e=f", "x", strings.Repeat("é", maxUserNameBytes/2),
	}
	idChars := regexp.MustCompile(`^u-[A-Za-z0-9_-]+$`)
	for _, n := range names {
		id := UserID(n)
		if !idChars.MatchString(id) {
			t.Errorf("%q: id %q is not URL-safe", n, id)
		}
		got, err := UserNameFromID(id)
		if err != nil {
			t.Errorf("%q: %v", n, err)
			continue
		}
		if want := strings.ToLower(n); got != want {
			t.Errorf("%q: round trip gave %q, want %q", n, got, want)
		}
		if UserID(got) != id {
			t.Errorf("%q: id not stable", n)
		}
	}
	// Through HTTP: the id that creation answers reads back the name.
	h, _ := newTest(t, nil, nil)
	for _, n := range names[:9] {
		body, _ := json.Marshal(map[string]any{"userName": n})
		rep := do(t, h, "POST", "/Users", string(body), scimJSON, "")
		if rep.status != 201 {
			t.Fatalf("%q: %d %s", n, rep.status, rep.raw)
		}
		id := field(rep.body, "id").(string)
		rep = do(t, h, "GET", "/Users/"+id, "", "", "")
		if rep.status != 200 || field(rep.body, "userName") != strings.ToLower(n) {
			t.Errorf("%q: GET %d userName %v", n, rep.status, field(rep.body, "userName"))
		}
	}
	for _, bad := range []string{"", "u-", "x-YWxpY2U", "u-YWxpY2U=", "u-YWxpY2V", "u-/w", "u-" + strings.Repeat("YWFh", 400)} {
		if n, err := UserNameFromID(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, n)
		}
	}
}

func TestNewChecksOptions(t *testing.T) {
	ok := func(context.Context, string) error { return nil }
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"empty token", Options{Revoke: ok}, "token is required"},
		{"short token", Options{Token: strings.Repeat("a", MinTokenBytes-1), Revoke: ok}, "at least 32 bytes"},
		{"token with space", Options{Token: strings.Repeat("a", 40) + " b", Revoke: ok}, "spaces"},
		{"token with newline", Options{Token: strings.Repeat("a", 40) + "\n", Revoke: ok}, "control"},
		{"no revoke", Options{Token: testToken}, "Revoke"},
	} {
		if _, err := New(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := New(Options{Token: strings.Repeat("a", MinTokenBytes), Revoke: ok}); err != nil {
		t.Errorf("32-byte token refused: %v", err)
	}
}

// Mounted as the gateway will mount it, locations carry the public prefix.
func TestLocationBehindStripPrefix(t *testing.T) {
	h, _ := newTest(t, nil, nil)
	mux := http.NewServeMux()
	mux.Handle("/.gatehouse/scim/v2/", http.StripPrefix("/.gatehouse/scim/v2", h))
	r := httptest.NewRequest("POST", "https://apps.example.com/.gatehouse/scim/v2/Users", strings.NewReader(`{"userName":"alice@example.com"}`))
	r.Header.Set("Authorization", "Bearer "+testToken)
	r.Header.Set("Content-Type", scimJSON)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	want := "https://apps.example.com/.gatehouse/scim/v2/Users/" + UserID("alice@example.com")
	if w.Code != 201 || w.Header().Get("Location") != want {
		t.Fatalf("%d Location %q, want %q", w.Code, w.Header().Get("Location"), want)
	}
	r = httptest.NewRequest("GET", "https://apps.example.com/.gatehouse/scim/v2/ServiceProviderConfig", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	if !strings.Contains(w.Body.String(), `"location":"https://apps.example.com/.gatehouse/scim/v2/ServiceProviderConfig"`) {
		t.Errorf("config location: %s", w.Body.String())
	}
}

func TestFlexBool(t *testing.T) {
	for in, want := range map[string]bool{`true`: true, `false`: false, `"True"`: true, `"False"`: false, `"FALSE"`: false, `" true "`: true} {
		var b flexBool
		if err := json.Unmarshal([]byte(in), &b); err != nil || bool(b) != want {
			t.Errorf("%s: %v %v", in, b, err)
		}
	}
	for _, in := range []string{`1`, `0`, `"yes"`, `""`, `{}`, `[]`} {
		var b flexBool
		if err := json.Unmarshal([]byte(in), &b); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}
