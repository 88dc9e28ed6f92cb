package saml

// Single logout: IdP-initiated LogoutRequests (both bindings) and their
// signed answers, SP-initiated logout round trips, and one refusal per
// class of bad message. Messages are built here as the test IdP would
// send them, signed with its key (or another one).

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// logoutRequest is a LogoutRequest from the test IdP for alice's session
// "sess-1", edited by edit.
func (ti *testIdP) logoutRequest(edit func(*crewjam.LogoutRequest)) *crewjam.LogoutRequest {
	lr := &crewjam.LogoutRequest{
		ID: "id-" + randHex(20), Version: "2.0", IssueInstant: time.Now().UTC(), Destination: testSLO,
		Issuer:       &crewjam.Issuer{Format: entityFormat, Value: ti.idp.MetadataURL.String()},
		NameID:       &crewjam.NameID{Format: string(crewjam.PersistentNameIDFormat), Value: alice.nameID},
		SessionIndex: &crewjam.SessionIndex{Value: "sess-1"},
	}
	if edit != nil {
		edit(lr)
	}
	return lr
}

// logoutResponse is the test IdP's LogoutResponse to inResponseTo.
func (ti *testIdP) logoutResponse(inResponseTo string, edit func(*crewjam.LogoutResponse)) *crewjam.LogoutResponse {
	lr := &crewjam.LogoutResponse{
		ID: "id-" + randHex(20), InResponseTo: inResponseTo, Version: "2.0", IssueInstant: time.Now().UTC(), Destination: testSLO,
		Issuer: &crewjam.Issuer{Format: entityFormat, Value: ti.idp.MetadataURL.String()},
		Status: crewjam.Status{StatusCode: crewjam.StatusCode{Value: crewjam.StatusSuccess}},
	}
	if edit != nil {
		edit(lr)
	}
	return lr
}

// signed signs el (enveloped) with the test IdP's key and returns the
// signature element, to be put in place by the caller's Element().
func (ti *testIdP) signature(t testing.TB, el *etree.Element) *etree.Element {
	t.Helper()
	s, err := ti.signingContext(t).SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	return s.ChildElements()[len(s.ChildElements())-1]
}

func (ti *testIdP) signedRequestXML(t testing.TB, lr *crewjam.LogoutRequest) []byte {
	lr.Signature = nil
	lr.Signature = ti.signature(t, lr.Element())
	return docBytes(t, lr.Element())
}

func (ti *testIdP) signedResponseXML(t testing.TB, lr *crewjam.LogoutResponse) []byte {
	lr.Signature = nil
	lr.Signature = ti.signature(t, lr.Element())
	return docBytes(t, lr.Element())
}

func deflateB64(t testing.TB, raw []byte) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write(raw)
	fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// redirectQuery is the HTTP-Redirect query for raw, signed with key (nil:
// unsigned).
func redirectQuery(t testing.TB, param string, raw []byte, relay string, key *rsa.PrivateKey) string {
	q := param + "=" + url.QueryEscape(deflateB64(t, raw))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	if key == nil {
		return q
	}
	q += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	sum := sha256.Sum256([]byte(q))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

func sloGet(q string) *http.Request { return httptest.NewRequest(http.MethodGet, testSLO+"?"+q, nil) }

func sloPost(param string, raw []byte, relay string) *http.Request {
	f := url.Values{param: {base64.StdEncoding.EncodeToString(raw)}}
	if relay != "" {
		f.Set("RelayState", relay)
	}
	return sloForm(f)
}

func sloForm(f url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, testSLO, strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func (h *harness) receive(r *http.Request, data map[string]string) (*providers.LogoutNotice, error) {
	return h.p.ReceiveLogout(context.Background(), r, data)
}

// checkQuerySig verifies an HTTP-Redirect URL's query signature with cert
// and returns the decoded message and RelayState.
func checkQuerySig(t *testing.T, u *url.URL, param string, cert *x509.Certificate) ([]byte, string) {
	t.Helper()
	raw := map[string]string{}
	for _, pair := range strings.Split(u.RawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		raw[k] = v
	}
	signed := param + "=" + raw[param]
	if rs, ok := raw["RelayState"]; ok {
		signed += "&RelayState=" + rs
	}
	signed += "&SigAlg=" + raw["SigAlg"]
	q := u.Query()
	if q.Get("SigAlg") != dsig.RSASHA256SignatureMethod {
		t.Fatalf("SigAlg %q", q.Get("SigAlg"))
	}
	sig, err := base64.StdEncoding.DecodeString(q.Get("Signature"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(x509.SHA256WithRSA, []byte(signed), sig); err != nil {
		t.Fatalf("query signature does not verify with the SP certificate: %v", err)
	}
	deflated, _ := base64.StdEncoding.DecodeString(q.Get(param))
	msg, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatal(err)
	}
	return msg, q.Get("RelayState")
}

// checkEnveloped verifies the enveloped signature of msg with cert and
// returns what it covers.
func checkEnveloped(t *testing.T, msg []byte, cert *x509.Certificate) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(msg); err != nil {
		t.Fatal(err)
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	vc.IdAttribute = "ID"
	el, err := vc.Validate(doc.Root())
	if err != nil {
		t.Fatalf("enveloped signature does not verify with the SP certificate: %v", err)
	}
	return el
}

func unmarshalEl(t *testing.T, el *etree.Element, v any) {
	t.Helper()
	b := docBytes(t, el)
	if err := xml.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestSLOIdPInitiatedRedirect(t *testing.T) {
	h := newHarness(t)
	lr := h.idp.logoutRequest(func(lr *crewjam.LogoutRequest) {
		lr.AdditionalSessionIndexes = []crewjam.SessionIndex{{Value: "sess-2"}}
	})
	raw := docBytes(t, lr.Element())
	n, err := h.receive(sloGet(redirectQuery(t, "SAMLRequest", raw, "idp-state/1", idpKey)), nil)
	if err != nil {
		t.Fatalf("valid LogoutRequest refused: %v", err)
	}
	if n.Subject != alice.nameID || !slices.Equal(n.SessionIDs, []string{"sess-1", "sess-2"}) || n.Completed || n.Respond == nil {
		t.Fatalf("notice %+v", n)
	}
	for _, ended := range []error{nil, io.EOF} {
		w := httptest.NewRecorder()
		n.Respond(w, httptest.NewRequest(http.MethodGet, testSLO, nil), ended)
		if w.Code != http.StatusSeeOther {
			t.Fatalf("Respond: %d %s", w.Code, w.Body)
		}
		u, _ := url.Parse(w.Header().Get("Location"))
		if u.Scheme+"://"+u.Host+u.Path != testIdPSLO {
			t.Fatalf("LogoutResponse sent to %s", u)
		}
		msg, relay := checkQuerySig(t, u, "SAMLResponse", h.p.cert)
		if relay != "idp-state/1" {
			t.Errorf("RelayState %q", relay)
		}
		var resp crewjam.LogoutResponse
		if err := xml.Unmarshal(msg, &resp); err != nil {
			t.Fatal(err)
		}
		want := crewjam.StatusSuccess
		if ended != nil {
			want = statusResponder
		}
		if resp.InResponseTo != lr.ID || resp.Destination != testIdPSLO || resp.Issuer.Value != h.p.EntityID() || resp.Status.StatusCode.Value != want {
			t.Errorf("LogoutResponse %+v", resp)
		}
	}
}

func TestSLOIdPInitiatedPost(t *testing.T) {
	// The IdP answers at a ResponseLocation of its own.
	h := newHarness(t, func(c *config.SAMLProvider, _ *Env) {
		c.IdPMetadata = strings.ReplaceAll(c.IdPMetadata, `Location="`+testIdPSLO+`"`, `Location="`+testIdPSLO+`" ResponseLocation="`+testIdPURL+`/slo-done"`)
	})
	lr := h.idp.logoutRequest(nil)
	n, err := h.receive(sloPost("SAMLRequest", h.idp.signedRequestXML(t, lr), "rs-2"), map[string]string{"request_id": "unrelated"})
	if err != nil {
		t.Fatalf("valid LogoutRequest refused: %v", err)
	}
	if n.Subject != alice.nameID || !slices.Equal(n.SessionIDs, []string{"sess-1"}) {
		t.Fatalf("notice %+v", n)
	}
	w := httptest.NewRecorder()
	n.Respond(w, httptest.NewRequest(http.MethodPost, testSLO, nil), nil)
	body := w.Body.String()
	csp := w.Header().Get("Content-Security-Policy")
	if w.Code != 200 || !strings.Contains(csp, "form-action "+testIdPURL+";") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("Respond: %d CSP %q", w.Code, csp)
	}
	nonce := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
	if nonce == nil || !strings.Contains(body, `<script nonce="`+nonce[1]+`">`) || strings.Count(body, "<script") != 1 {
		t.Errorf("script not allowed by its nonce: %s", body)
	}
	if !strings.Contains(body, `action="`+testIdPURL+`/slo-done"`) || !strings.Contains(body, `name="RelayState" value="rs-2"`) {
		t.Errorf("form: %s", body)
	}
	m := regexp.MustCompile(`name="SAMLResponse" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no SAMLResponse in %s", body)
	}
	msg, _ := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	var resp crewjam.LogoutResponse
	unmarshalEl(t, checkEnveloped(t, msg, h.p.cert), &resp)
	if resp.InResponseTo != lr.ID || resp.Destination != testIdPURL+"/slo-done" || resp.Status.StatusCode.Value != crewjam.StatusSuccess {
		t.Errorf("LogoutResponse %+v", resp)
	}
}

func TestSLORefused(t *testing.T) {
	h := newHarness(t)
	ti := h.idp
	post := func(lr *crewjam.LogoutRequest) *http.Request {
		return sloPost("SAMLRequest", ti.signedRequestXML(t, lr), "")
	}
	get := func(lr *crewjam.LogoutRequest, key *rsa.PrivateKey) *http.Request {
		return sloGet(redirectQuery(t, "SAMLRequest", docBytes(t, lr.Element()), "rs", key))
	}
	var other *testIdP = newTestIdP(t, true)
	cases := []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{"unsigned redirect", func() *http.Request { return get(ti.logoutRequest(nil), nil) }, "slo_unsigned"},
		{"unsigned post", func() *http.Request {
			return sloPost("SAMLRequest", docBytes(t, ti.logoutRequest(nil).Element()), "")
		}, "slo_unsigned"},
		{"redirect signed by another key", func() *http.Request { return get(ti.logoutRequest(nil), otherIdPKey) }, "slo_bad_signature"},
		{"post signed by another key", func() *http.Request {
			return sloPost("SAMLRequest", other.signedRequestXML(t, ti.logoutRequest(nil)), "")
		}, "slo_bad_signature"},
		{"query tampered after signing", func() *http.Request {
			q := redirectQuery(t, "SAMLRequest", docBytes(t, ti.logoutRequest(nil).Element()), "rs", idpKey)
			return sloGet(strings.Replace(q, "RelayState=rs", "RelayState=evil", 1))
		}, "slo_bad_signature"},
		{"message swapped after signing", func() *http.Request {
			q := redirectQuery(t, "SAMLRequest", docBytes(t, ti.logoutRequest(nil).Element()), "rs", idpKey)
			evil := ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.NameID.Value = evil })
			_, rest, _ := strings.Cut(q, "&")
			return sloGet("SAMLRequest=" + url.QueryEscape(deflateB64(t, docBytes(t, evil.Element()))) + "&" + rest)
		}, "slo_bad_signature"},
		{"SHA-1 query signature", func() *http.Request {
			q := redirectQuery(t, "SAMLRequest", docBytes(t, ti.logoutRequest(nil).Element()), "", idpKey)
			return sloGet(strings.Replace(q, url.QueryEscape(dsig.RSASHA256SignatureMethod), url.QueryEscape(dsig.RSASHA1SignatureMethod), 1))
		}, "slo_weak_signature"},
		{"wrong issuer (redirect)", func() *http.Request {
			return get(ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.Issuer.Value = "https://evil.example/idp" }), idpKey)
		}, "slo_wrong_issuer"},
		{"wrong issuer (post)", func() *http.Request {
			return post(ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.Issuer.Value = "https://evil.example/idp" }))
		}, "slo_wrong_issuer"},
		{"wrong destination", func() *http.Request {
			return get(ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.Destination = "https://other.example/slo" }), idpKey)
		}, "slo_wrong_destination"},
		{"stale IssueInstant", func() *http.Request {
			return post(ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.IssueInstant = lr.IssueInstant.Add(-10 * time.Minute) }))
		}, "slo_expired"},
		{"future IssueInstant", func() *http.Request {
			return get(ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.IssueInstant = lr.IssueInstant.Add(10 * time.Minute) }), idpKey)
		}, "slo_not_yet_valid"},
		{"past NotOnOrAfter", func() *http.Request {
			return get(ti.logoutRequest(func(lr *crewjam.LogoutRequest) {
				past := lr.IssueInstant.Add(-5 * time.Minute)
				lr.NotOnOrAfter = &past
			}), idpKey)
		}, "slo_expired"},
		{"no NameID", func() *http.Request {
			return get(ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.NameID = nil }), idpKey)
		}, "slo_malformed"},
		{"XSW: signed request wrapped in an evil one", func() *http.Request {
			genuine := parseDoc(t, ti.signedRequestXML(t, ti.logoutRequest(nil)))
			evilEl := ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.NameID.Value = evil }).Element()
			ext := evilEl.CreateElement("samlp:Extensions")
			ext.AddChild(genuine)
			return sloPost("SAMLRequest", docBytes(t, evilEl), "")
		}, "slo_signature_wrapping"},
		{"XSW: signature moved onto an evil root", func() *http.Request {
			genuine := parseDoc(t, ti.signedRequestXML(t, ti.logoutRequest(nil)))
			sig := child(genuine, "Signature")
			genuine.RemoveChild(sig)
			evilEl := ti.logoutRequest(func(lr *crewjam.LogoutRequest) { lr.NameID.Value = evil }).Element()
			evilEl.InsertChildAt(1, sig)
			evilEl.CreateElement("samlp:Extensions").AddChild(genuine)
			return sloPost("SAMLRequest", docBytes(t, evilEl), "")
		}, "slo_bad_signature"},
		{"XSW: duplicate ID", func() *http.Request {
			lr := ti.logoutRequest(nil)
			genuine := parseDoc(t, ti.signedRequestXML(t, lr))
			evilEl := ti.logoutRequest(func(e *crewjam.LogoutRequest) { e.ID = lr.ID; e.NameID.Value = evil }).Element()
			genuine.CreateElement("samlp:Extensions").AddChild(evilEl)
			return sloPost("SAMLRequest", docBytes(t, genuine), "")
		}, "slo_signature_wrapping"},
		{"comment in NameID", func() *http.Request {
			raw := strings.Replace(string(ti.signedRequestXML(t, ti.logoutRequest(nil))), alice.nameID, "alice<!---->-0001", 1)
			return sloPost("SAMLRequest", []byte(raw), "")
		}, "slo_malformed"},
		{"deflate bomb", func() *http.Request {
			bomb := append([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`), bytes.Repeat([]byte(" "), 64<<20)...)
			return sloGet("SAMLRequest=" + url.QueryEscape(deflateB64(t, bomb)) + "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod) + "&Signature=AAAA")
		}, "slo_too_large"},
		{"oversized POST", func() *http.Request {
			return sloForm(url.Values{"SAMLRequest": {strings.Repeat("A", 300<<10)}})
		}, "slo_too_large"},
		{"oversized query", func() *http.Request {
			return sloGet("SAMLRequest=" + strings.Repeat("A", 300<<10) + "&SigAlg=x&Signature=y")
		}, "slo_too_large"},
		{"SimpleSign", func() *http.Request {
			return sloForm(url.Values{"SAMLRequest": {"AAAA"}, "SigAlg": {dsig.RSASHA256SignatureMethod}, "Signature": {"AAAA"}})
		}, "slo_unsupported_binding"},
		{"duplicate parameter", func() *http.Request {
			q := redirectQuery(t, "SAMLRequest", docBytes(t, ti.logoutRequest(nil).Element()), "rs", idpKey)
			return sloGet(q + "&RelayState=other")
		}, "slo_malformed"},
		{"not a LogoutRequest", func() *http.Request {
			return sloPost("SAMLRequest", []byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x"/>`), "")
		}, "slo_malformed"},
		{"PUT", func() *http.Request { return httptest.NewRequest(http.MethodPut, testSLO, nil) }, "slo_bad_method"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := h.receive(c.req(), nil)
			if got := reason(err); got != c.want {
				t.Fatalf("reason %q, want %q (%v)", got, c.want, err)
			}
			if n != nil {
				t.Fatal("a notice with an error")
			}
			if le := err.(*providers.LoginError); le.Public == "" || strings.Contains(le.Public, "<") {
				t.Errorf("public message %q", le.Public)
			}
		})
	}

	t.Run("replayed ID", func(t *testing.T) {
		lr := ti.logoutRequest(nil)
		q := redirectQuery(t, "SAMLRequest", docBytes(t, lr.Element()), "rs", idpKey)
		if _, err := h.receive(sloGet(q), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := h.receive(sloGet(q), nil); reason(err) != "slo_replayed" {
			t.Fatalf("replay: %v", err)
		}
		// The same ID by the other binding too.
		if _, err := h.receive(sloPost("SAMLRequest", ti.signedRequestXML(t, lr), ""), nil); reason(err) != "slo_replayed" {
			t.Fatalf("replay by POST: %v", err)
		}
	})
}

// startLogout runs StartLogout for alice with the tokens of her sign-in.
func (h *harness) startLogout(t *testing.T) (*providers.Redirect, *crewjam.LogoutRequest) {
	t.Helper()
	id := &identity.Identity{Subject: alice.nameID, Provider: "corp"}
	tokens := map[string]string{"sid": "sess-9", "saml_name_id_format": string(crewjam.PersistentNameIDFormat)}
	red, err := h.p.StartLogout(context.Background(), id, tokens, "https://app.example.test/bye")
	if err != nil || red == nil {
		t.Fatalf("StartLogout: %v %v", red, err)
	}
	var raw []byte
	var relay string
	if red.Form != nil {
		if red.URL != testIdPSLO {
			t.Fatalf("posted to %s", red.URL)
		}
		b, _ := base64.StdEncoding.DecodeString(red.Form["SAMLRequest"])
		raw, relay = docBytes(t, checkEnveloped(t, b, h.p.cert)), red.Form["RelayState"]
	} else {
		u, _ := url.Parse(red.URL)
		if u.Scheme+"://"+u.Host+u.Path != testIdPSLO {
			t.Fatalf("sent to %s", u)
		}
		raw, relay = checkQuerySig(t, u, "SAMLRequest", h.p.cert)
	}
	var lr crewjam.LogoutRequest
	if err := xml.Unmarshal(raw, &lr); err != nil {
		t.Fatal(err)
	}
	if lr.ID == "" || red.Data["request_id"] != lr.ID || relay == "" || red.Data["relay_state"] != relay || strings.Contains(relay, "app.example") {
		t.Fatalf("data %v, request ID %q, RelayState %q", red.Data, lr.ID, relay)
	}
	if lr.Destination != testIdPSLO || lr.Issuer == nil || lr.Issuer.Value != h.p.EntityID() || time.Since(lr.IssueInstant) > time.Minute {
		t.Errorf("request %+v", lr)
	}
	if lr.NameID == nil || lr.NameID.Value != alice.nameID || lr.NameID.Format != string(crewjam.PersistentNameIDFormat) ||
		lr.NameID.NameQualifier != "" || lr.NameID.SPNameQualifier != "" {
		t.Errorf("NameID %+v", lr.NameID)
	}
	if lr.SessionIndex == nil || lr.SessionIndex.Value != "sess-9" {
		t.Errorf("SessionIndex %+v", lr.SessionIndex)
	}
	return red, &lr
}

func TestSLOSPInitiated(t *testing.T) {
	h := newHarness(t)
	ti := h.idp

	t.Run("redirect round trip", func(t *testing.T) {
		red, lr := h.startLogout(t)
		resp := docBytes(t, ti.logoutResponse(lr.ID, nil).Element())
		q := redirectQuery(t, "SAMLResponse", resp, red.Data["relay_state"], idpKey)
		n, err := h.receive(sloGet(q), red.Data)
		if err != nil || !n.Completed || n.Subject != "" || n.Respond != nil {
			t.Fatalf("LogoutResponse: %+v %v", n, err)
		}
		if _, err := h.receive(sloGet(q), red.Data); reason(err) != "slo_replayed" {
			t.Errorf("replayed response: %v", err)
		}
	})

	t.Run("post round trip", func(t *testing.T) {
		red, lr := h.startLogout(t)
		n, err := h.receive(sloPost("SAMLResponse", ti.signedResponseXML(t, ti.logoutResponse(lr.ID, nil)), red.Data["relay_state"]), red.Data)
		if err != nil || !n.Completed {
			t.Fatalf("LogoutResponse: %+v %v", n, err)
		}
	})

	refusals := []struct {
		name string
		req  func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string)
		want string
	}{
		{"mismatched InResponseTo", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			q := redirectQuery(t, "SAMLResponse", docBytes(t, ti.logoutResponse("id-other", nil).Element()), red.Data["relay_state"], idpKey)
			return sloGet(q), red.Data
		}, "slo_unknown_request"},
		{"no logout started (data nil)", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			q := redirectQuery(t, "SAMLResponse", docBytes(t, ti.logoutResponse(lr.ID, nil).Element()), red.Data["relay_state"], idpKey)
			return sloGet(q), nil
		}, "slo_unknown_request"},
		{"other RelayState", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			q := redirectQuery(t, "SAMLResponse", docBytes(t, ti.logoutResponse(lr.ID, nil).Element()), "other", idpKey)
			return sloGet(q), red.Data
		}, "slo_unknown_request"},
		{"unsigned post", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			return sloPost("SAMLResponse", docBytes(t, ti.logoutResponse(lr.ID, nil).Element()), ""), red.Data
		}, "slo_unsigned"},
		{"signed by another key", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			q := redirectQuery(t, "SAMLResponse", docBytes(t, ti.logoutResponse(lr.ID, nil).Element()), "", otherIdPKey)
			return sloGet(q), red.Data
		}, "slo_bad_signature"},
		{"wrong issuer", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			resp := ti.logoutResponse(lr.ID, func(r *crewjam.LogoutResponse) { r.Issuer.Value = "https://evil.example/idp" })
			return sloPost("SAMLResponse", ti.signedResponseXML(t, resp), ""), red.Data
		}, "slo_wrong_issuer"},
		{"wrong destination", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			resp := ti.logoutResponse(lr.ID, func(r *crewjam.LogoutResponse) { r.Destination = testACS })
			return sloGet(redirectQuery(t, "SAMLResponse", docBytes(t, resp.Element()), "", idpKey)), red.Data
		}, "slo_wrong_destination"},
		{"IdP reports failure", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			resp := ti.logoutResponse(lr.ID, func(r *crewjam.LogoutResponse) { r.Status.StatusCode.Value = statusResponder })
			return sloGet(redirectQuery(t, "SAMLResponse", docBytes(t, resp.Element()), "", idpKey)), red.Data
		}, "slo_idp_status"},
		{"IdP reports failure to another request", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			resp := ti.logoutResponse("id-other", func(r *crewjam.LogoutResponse) { r.Status.StatusCode.Value = statusResponder })
			return sloPost("SAMLResponse", ti.signedResponseXML(t, resp), ""), red.Data
		}, "slo_unknown_request"},
		{"partial logout", func(red *providers.Redirect, lr *crewjam.LogoutRequest) (*http.Request, map[string]string) {
			resp := ti.logoutResponse(lr.ID, func(r *crewjam.LogoutResponse) {
				r.Status.StatusCode.StatusCode = &crewjam.StatusCode{Value: statusPartialLogout}
			})
			return sloPost("SAMLResponse", ti.signedResponseXML(t, resp), ""), red.Data
		}, "slo_idp_status"},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			red, lr := h.startLogout(t)
			r, data := c.req(red, lr)
			if _, err := h.receive(r, data); reason(err) != c.want {
				t.Fatalf("reason %q, want %q (%v)", reason(err), c.want, err)
			}
		})
	}

	t.Run("post binding", func(t *testing.T) {
		h := newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.SLOBinding = "post" })
		red, _ := h.startLogout(t)
		if red.Form == nil {
			t.Fatal("slo_binding post: not a form")
		}
	})
}

func TestSLOOffOrNotOffered(t *testing.T) {
	id := &identity.Identity{Subject: alice.nameID, Provider: "corp"}
	off := false
	h := newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.SingleLogout = &off })
	if red, err := h.p.StartLogout(context.Background(), id, nil, ""); red != nil || err != nil {
		t.Errorf("single_logout false: %v %v", red, err)
	}
	md, _ := h.p.SPMetadata()
	if strings.Contains(string(md), "SingleLogoutService") {
		t.Error("SP metadata lists SLO with single_logout false")
	}
	lr := h.idp.logoutRequest(nil)
	if _, err := h.receive(sloGet(redirectQuery(t, "SAMLRequest", docBytes(t, lr.Element()), "", idpKey)), nil); reason(err) != "slo_disabled" {
		t.Errorf("single_logout false: %v", err)
	}

	h = newHarness(t, func(c *config.SAMLProvider, _ *Env) {
		c.IdPMetadata = regexp.MustCompile(`<SingleLogoutService[^>]*>(</SingleLogoutService>)?`).ReplaceAllString(c.IdPMetadata, "")
	})
	if red, err := h.p.StartLogout(context.Background(), id, nil, ""); red != nil || err != nil {
		t.Errorf("IdP without SLO: %v %v", red, err)
	}
	if _, err := h.p.StartLogout(context.Background(), nil, nil, ""); err != nil {
		t.Errorf("IdP without SLO, no identity: %v", err)
	}

	bad := &config.SAMLProvider{IdPMetadata: "<x/>", SPCertFile: "a", SPKeyFile: "b", SLOBinding: "soap"}
	if errs := bad.Validate(); len(errs) != 1 || errs[0].Key != "slo_binding" {
		t.Errorf("slo_binding soap: %+v", errs)
	}
}

func TestSPMetadataListsSLO(t *testing.T) {
	h := newHarness(t, func(c *config.SAMLProvider, _ *Env) { f := false; c.SignRequests = &f })
	b, err := h.p.SPMetadata()
	if err != nil {
		t.Fatal(err)
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		t.Fatal(err)
	}
	sp := ed.SPSSODescriptors[0]
	var bindings []string
	for _, s := range sp.SingleLogoutServices {
		if s.Location != testSLO {
			t.Errorf("SLO location %q", s.Location)
		}
		bindings = append(bindings, s.Binding)
	}
	if !slices.Equal(bindings, []string{crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding}) {
		t.Errorf("SLO bindings %q", bindings)
	}
	signing := false
	for _, kd := range sp.KeyDescriptors {
		signing = signing || kd.Use == "signing"
	}
	if !signing {
		t.Error("no signing key in the SP metadata although logout messages are signed")
	}
	if h.p.LogoutPath() != "saml/corp/slo" {
		t.Errorf("LogoutPath %q", h.p.LogoutPath())
	}
}

func TestCompleteWithTokens(t *testing.T) {
	h := newHarness(t)
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	raw := h.idp.respond(t, ir, alice, nil)
	r := post(base64.StdEncoding.EncodeToString(raw), a.State)
	h.p.CallbackState(r)
	id, tokens, err := h.p.CompleteWithTokens(context.Background(), r, a)
	if err != nil {
		t.Fatal(err)
	}
	st := ir.Assertion.AuthnStatements[0]
	if id.Subject != alice.nameID || st.SessionIndex == "" || tokens["sid"] != st.SessionIndex ||
		tokens["saml_name_id_format"] != string(crewjam.PersistentNameIDFormat) {
		t.Errorf("subject %q tokens %v (SessionIndex %q)", id.Subject, tokens, st.SessionIndex)
	}
	nid := ir.Assertion.Subject.NameID
	if tokens["saml_name_qualifier"] != nid.NameQualifier || tokens["saml_sp_name_qualifier"] != nid.SPNameQualifier {
		t.Errorf("qualifiers %v, NameID %+v", tokens, nid)
	}
	for k := range tokens {
		if k != "sid" && !strings.HasPrefix(k, "saml_") {
			t.Errorf("token %q would not be kept by the gateway", k)
		}
	}
}
