package saml

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/providers"
)

// FuzzACS feeds arbitrary SAMLResponse values to the ACS (CallbackState,
// then Complete): base64 of random and XML-ish bytes, and raw form values.
// It must never panic (a panic inside verification would surface as the
// internal_error reason), always answer with a *providers.LoginError, and
// never sign in anybody but the IdP's user.
func FuzzACS(f *testing.F) {
	h := newHarness(f)
	a, red := h.begin(nil)
	ir := h.idp.request(f, red)
	valid := h.idp.respond(f, ir, alice, nil)
	f.Add(valid, false)
	f.Add([]byte(base64.StdEncoding.EncodeToString(valid)), true)
	ir.ResponseEl, ir.AssertionEl = nil, nil
	unsigned := h.idp.assertion(f, ir, alice)
	f.Add(docBytes(f, h.idp.response(f, ir, false, nil, unsigned.Element())), false)
	f.Add([]byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="x" Version="2.0"><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="y"><!-- --><saml:Subject><saml:NameID>a</saml:NameID></saml:Subject></saml:Assertion></samlp:Response>`), false)
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>`), false)
	f.Add([]byte("not base64 %%%"), true)
	f.Add([]byte{}, false)

	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		v := string(data)
		if !raw {
			v = base64.StdEncoding.EncodeToString(data)
		}
		r := post(v, a.State)
		h.p.CallbackState(r)
		att := *a
		id, err := h.p.Complete(context.Background(), r, &att)
		if err != nil {
			if rs := reason(err); rs == "internal_error" || rs == "" || len(rs) > 40 {
				t.Fatalf("reason %q: %v", rs, err)
			}
			return
		}
		if id.Subject != alice.nameID {
			t.Fatalf("signed in %q", id.Subject)
		}
	})
}

// FuzzReceiveLogout feeds arbitrary logout messages to the SLO endpoint:
// the XML of a posted SAMLRequest or SAMLResponse, or a whole raw query
// of the HTTP-Redirect binding. It must never panic, always refuse with a
// *providers.LoginError whose reason starts with "slo_", and accept only
// what the IdP signed.
func FuzzReceiveLogout(f *testing.F) {
	h := newHarness(f)
	ti := h.idp
	signedReq := ti.signedRequestXML(f, ti.logoutRequest(nil))
	f.Add(signedReq, uint8(0))
	f.Add(ti.signedResponseXML(f, ti.logoutResponse("id-fuzz", nil)), uint8(1))
	f.Add([]byte(redirectQuery(f, "SAMLRequest", docBytes(f, ti.logoutRequest(nil).Element()), "rs", idpKey)), uint8(2))
	f.Add([]byte(redirectQuery(f, "SAMLResponse", docBytes(f, ti.logoutResponse("id-fuzz", nil).Element()), "rs", idpKey)), uint8(2))
	f.Add([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a"><!----></samlp:LogoutRequest>`), uint8(0))
	f.Add([]byte("SAMLRequest=%%%&SigAlg=&Signature="), uint8(2))
	f.Add([]byte{}, uint8(1))
	data := map[string]string{"request_id": "id-fuzz", "relay_state": "rs"}

	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		var r *http.Request
		switch mode % 3 {
		case 0:
			r = sloPost("SAMLRequest", in, "rs")
		case 1:
			r = sloPost("SAMLResponse", in, "rs")
		default:
			r = httptest.NewRequest(http.MethodGet, testSLO, nil)
			r.URL.RawQuery = string(in)
		}
		n, err := h.p.ReceiveLogout(context.Background(), r, data)
		if err != nil {
			le, ok := err.(*providers.LoginError)
			if !ok || !strings.HasPrefix(le.Reason, "slo_") && le.Reason != "replay_cache" || le.Reason == "slo_internal_error" {
				t.Fatalf("error %v", err)
			}
			return
		}
		if n == nil || (!n.Completed && n.Subject != alice.nameID) {
			t.Fatalf("notice %+v", n)
		}
	})
}
