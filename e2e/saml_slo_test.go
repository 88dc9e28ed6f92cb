package e2e

// SAML single logout against the independent samlify IdP (e2e/idp/saml):
// IdP-initiated LogoutRequests accepted by providers/saml and answered
// with LogoutResponses samlify accepts, and SP-initiated LogoutRequests
// samlify accepts, whose LogoutResponses providers/saml accepts; with the
// HTTP-Redirect and HTTP-POST bindings. The provider is driven directly
// (StartLogout, ReceiveLogout, LogoutNotice.Respond), as the gateway
// would.

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/providers/saml"
)

// sloAnswer is the samlify IdP's JSON answer at /slo and
// /test/logout-request.
type sloAnswer struct {
	ID           string `json:"id"`
	URL          string `json:"url"`
	SAMLRequest  string `json:"SAMLRequest"`
	SAMLResponse string `json:"SAMLResponse"`
	RelayState   string `json:"RelayState"`
	NameID       string `json:"nameID"`
	SessionIndex string `json:"sessionIndex"`
	InResponseTo string `json:"inResponseTo"`
	Status       string `json:"status"`
	RelayState2  string `json:"relayState"`
	Error        string `json:"error"`
}

func idpJSON(t *testing.T, req *http.Request) sloAnswer {
	t.Helper()
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ans sloAnswer
	if err := json.Unmarshal(body, &ans); err != nil || resp.StatusCode != 200 {
		t.Fatalf("IdP %s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return ans
}

func formRequest(target string, f url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func formPost(t *testing.T, target string, f url.Values) *http.Request {
	r, err := http.NewRequest(http.MethodPost, target, strings.NewReader(f.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// newSLOSPs starts the samlify IdP and two providers under test with the
// same name, keys and public URL (so the same SP metadata): one sending
// LogoutRequests by HTTP-Redirect, one by HTTP-POST.
func newSLOSPs(t *testing.T, node string) (redirect, post *samlSP, idpBase string) {
	var cur atomic.Pointer[saml.Provider]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := cur.Load(); p != nil {
			if h := p.Endpoints()[strings.TrimPrefix(r.URL.Path, "/.gatehouse/")]; h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	idpBase = startSAMLIdP(t, node, "SINGLE_LOGOUT=1", "SP_METADATA_URL="+srv.URL+"/.gatehouse/saml/corp/metadata")
	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "sp")
	mk := func(binding string) *saml.Provider {
		p, err := saml.New("corp", &config.SAMLProvider{
			ProviderCommon: config.ProviderCommon{Type: "saml"},
			IdPMetadataURL: idpBase + "/metadata",
			SPCertFile:     cert, SPKeyFile: key,
			SLOBinding: binding,
		}, saml.Env{PublicURL: srv.URL, BaseDir: dir, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		deadline := time.Now().Add(20 * time.Second)
		for p.Ready() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("IdP metadata never loaded: %v", p.Ready())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return p
	}
	rp, pp := mk("redirect"), mk("post")
	cur.Store(rp)
	return &samlSP{p: rp, public: srv.URL}, &samlSP{p: pp, public: srv.URL}, idpBase
}

// signInWithTokens signs alice in and returns her identity and tokens.
func (sp *samlSP) signInWithTokens(t *testing.T) (*identity.Identity, map[string]string) {
	t.Helper()
	a, ans := sp.signIn(t, nil, nil)
	r := formRequest(a.CallbackURL, url.Values{"SAMLResponse": {ans.SAMLResponse}, "RelayState": {a.State}})
	if got := sp.p.CallbackState(r); got != a.State {
		t.Fatalf("CallbackState = %q", got)
	}
	id, tokens, err := sp.p.CompleteWithTokens(context.Background(), r, a)
	if err != nil {
		t.Fatal(err)
	}
	return id, tokens
}

var (
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	hiddenRE     = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// submitPage posts the form of an HTTP-POST binding page as the browser
// would, to the IdP.
func submitPage(t *testing.T, w *httptest.ResponseRecorder) sloAnswer {
	t.Helper()
	body := w.Body.String()
	action := formActionRE.FindStringSubmatch(body)
	if w.Code != 200 || action == nil {
		t.Fatalf("POST page: %d %s", w.Code, body)
	}
	target := html.UnescapeString(action[1])
	if u, _ := url.Parse(target); !strings.Contains(w.Header().Get("Content-Security-Policy"), "form-action "+u.Scheme+"://"+u.Host) {
		t.Errorf("CSP %q does not allow posting to %s", w.Header().Get("Content-Security-Policy"), target)
	}
	f := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		f.Set(m[1], html.UnescapeString(m[2]))
	}
	return idpJSON(t, formPost(t, target, f))
}

func TestSAMLSLOWithSamlify(t *testing.T) {
	node := requireSAMLIdP(t)
	redirectSP, postSP, idpBase := newSLOSPs(t, node)
	ctx := context.Background()

	for _, binding := range []string{"redirect", "post"} {
		t.Run("IdP-initiated "+binding, func(t *testing.T) {
			sp := redirectSP
			q := url.Values{"binding": {binding}, "nameID": {"alice-0001"}, "sessionIndex": {"sess-" + binding}, "relayState": {"idp-rs-" + binding}}
			req, _ := http.NewRequest(http.MethodPost, idpBase+"/test/logout-request?"+q.Encode(), nil)
			lr := idpJSON(t, req)
			u, err := url.Parse(lr.URL)
			if err != nil || u.Path != "/.gatehouse/"+sp.p.LogoutPath() {
				t.Fatalf("samlify sends the LogoutRequest to %q", lr.URL)
			}
			var r *http.Request
			if binding == "redirect" {
				r = httptest.NewRequest(http.MethodGet, lr.URL, nil)
			} else {
				r = formRequest(lr.URL, url.Values{"SAMLRequest": {lr.SAMLRequest}, "RelayState": {lr.RelayState}})
			}
			n, err := sp.p.ReceiveLogout(ctx, r, nil)
			if err != nil {
				t.Fatalf("samlify's LogoutRequest refused: %v", err)
			}
			if n.Subject != "alice-0001" || !slices.Equal(n.SessionIDs, []string{"sess-" + binding}) || n.Completed || n.Respond == nil {
				t.Fatalf("notice %+v", n)
			}
			w := httptest.NewRecorder()
			n.Respond(w, r, nil)
			var ans sloAnswer
			if binding == "redirect" {
				loc := w.Header().Get("Location")
				if w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, idpBase+"/slo?") {
					t.Fatalf("Respond: %d %q", w.Code, loc)
				}
				req, _ := http.NewRequest(http.MethodGet, loc, nil)
				ans = idpJSON(t, req)
			} else {
				ans = submitPage(t, w)
			}
			if ans.InResponseTo != lr.ID || ans.Status != "urn:oasis:names:tc:SAML:2.0:status:Success" || ans.RelayState2 != "idp-rs-"+binding {
				t.Errorf("samlify read our LogoutResponse as %+v", ans)
			}
			// The same LogoutRequest again is a replay.
			if binding == "redirect" {
				if _, err := sp.p.ReceiveLogout(ctx, httptest.NewRequest(http.MethodGet, lr.URL, nil), nil); loginReason(err) != "slo_replayed" {
					t.Errorf("replayed LogoutRequest: %v", err)
				}
			}
		})
	}

	for _, sp := range []*samlSP{redirectSP, postSP} {
		name := "SP-initiated redirect"
		if sp == postSP {
			name = "SP-initiated post"
		}
		t.Run(name, func(t *testing.T) {
			id, tokens := sp.signInWithTokens(t)
			if tokens["sid"] == "" || tokens["saml_name_id_format"] != "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" {
				t.Fatalf("tokens %v", tokens)
			}
			red, err := sp.p.StartLogout(ctx, id, tokens, sp.public+"/bye")
			if err != nil || red == nil {
				t.Fatalf("StartLogout: %v %v", red, err)
			}
			if !strings.HasPrefix(red.URL, idpBase+"/slo") || strings.Contains(red.URL, "bye") || red.Data["request_id"] == "" {
				t.Fatalf("redirect %+v", red)
			}
			var lo sloAnswer
			if red.Form == nil {
				if sp == postSP {
					t.Fatal("slo_binding post gave a redirect")
				}
				// samlify checks our query signature.
				forged := strings.Replace(red.URL, "RelayState="+url.QueryEscape(red.Data["relay_state"]), "RelayState=forged", 1)
				if forged == red.URL {
					t.Fatal("no RelayState in the LogoutRequest URL")
				}
				resp, err := http.Get(forged)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "SIGNATURE") {
					t.Errorf("forged LogoutRequest: %d %s", resp.StatusCode, body)
				}
				req, _ := http.NewRequest(http.MethodGet, red.URL, nil)
				lo = idpJSON(t, req)
			} else {
				f := url.Values{}
				for k, v := range red.Form {
					f.Set(k, v)
				}
				lo = idpJSON(t, formPost(t, red.URL, f))
			}
			if lo.ID != red.Data["request_id"] || lo.NameID != "alice-0001" || lo.SessionIndex != tokens["sid"] {
				t.Fatalf("samlify read our LogoutRequest as %+v (tokens %v)", lo, tokens)
			}
			deliver := func(data map[string]string) (*providers.LogoutNotice, error) {
				if red.Form == nil {
					return sp.p.ReceiveLogout(ctx, httptest.NewRequest(http.MethodGet, lo.URL, nil), data)
				}
				return sp.p.ReceiveLogout(ctx, formRequest(lo.URL, url.Values{"SAMLResponse": {lo.SAMLResponse}, "RelayState": {lo.RelayState}}), data)
			}
			// Delivered to a browser that started another logout.
			other := map[string]string{"request_id": "id-other", "relay_state": red.Data["relay_state"]}
			if _, err := deliver(other); loginReason(err) != "slo_unknown_request" {
				t.Errorf("response to another request: %v", err)
			}
			n, err := deliver(red.Data)
			if err != nil || n == nil || !n.Completed {
				t.Fatalf("samlify's LogoutResponse refused: %+v %v", n, err)
			}
			if _, err := deliver(red.Data); loginReason(err) != "slo_replayed" {
				t.Errorf("replayed LogoutResponse: %v", err)
			}
		})
	}
}
