package saml

// Attacks on the ACS, each refused with its own reason while the valid
// response (TestValidResponseAcceptedAndMapped) is accepted. Responses are
// made by the in-process crewjam IdP, then tampered with as XML.

import (
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-dev/gatehouse/config"
)

// parseDoc reads a response back into a tree to tamper with.
func parseDoc(t testing.TB, raw []byte) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

// child finds the first descendant with local name tag.
func child(el *etree.Element, tag string) *etree.Element {
	return el.FindElement(".//" + tag)
}

// shift moves every time of an assertion, and the response's
// IssueInstant, by d: what an IdP with a wrong clock, or an attacker
// replaying an old response, sends.
func shift(d time.Duration) func(*crewjam.IdpAuthnRequest, *crewjam.Assertion) {
	return func(ir *crewjam.IdpAuthnRequest, a *crewjam.Assertion) {
		ir.Now = ir.Now.Add(d)
		a.IssueInstant = a.IssueInstant.Add(d)
		a.Conditions.NotBefore = a.Conditions.NotBefore.Add(d)
		a.Conditions.NotOnOrAfter = a.Conditions.NotOnOrAfter.Add(d)
		for i := range a.Subject.SubjectConfirmations {
			scd := a.Subject.SubjectConfirmations[i].SubjectConfirmationData
			scd.NotOnOrAfter = scd.NotOnOrAfter.Add(d)
		}
		for i := range a.AuthnStatements {
			a.AuthnStatements[i].AuthnInstant = a.AuthnStatements[i].AuthnInstant.Add(d)
		}
	}
}

const evil = "admin@corp.example"

// evilAssertion is an unsigned assertion for the attacker's chosen
// subject, otherwise a copy of a genuine one.
func evilAssertion(a *crewjam.Assertion, id string) *etree.Element {
	c := *a
	c.Signature = nil
	c.ID = id
	s := *a.Subject
	s.NameID = &crewjam.NameID{Format: string(crewjam.PersistentNameIDFormat), Value: evil}
	c.Subject = &s
	return c.Element()
}

func TestAttacksRefused(t *testing.T) {
	type attack struct {
		name string
		// make builds the hostile response for the IdP's request ir.
		make func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte
		want string
		// crewjamAlone: the response would not sign in the attacker even
		// without Gatehouse's shape checks (defence in depth).
		crewjamAlone bool
	}
	signed := func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest, u user, edit func(*crewjam.IdpAuthnRequest, *crewjam.Assertion)) (*crewjam.Assertion, *etree.Element) {
		a := h.idp.assertion(t, ir, u)
		if edit != nil {
			edit(ir, a)
		}
		return a, h.idp.signAssertion(t, a)
	}
	withComment := func(el *etree.Element, before, after string) {
		el.Child = nil
		el.CreateText(before)
		el.CreateComment("")
		el.CreateText(after)
	}
	attacks := []attack{
		{name: "unsigned response and assertion", want: "unsigned", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				a := h.idp.assertion(t, ir, alice)
				return docBytes(t, h.idp.response(t, ir, false, nil, a.Element()))
			}},
		{name: "signature by an unknown key", want: "unknown_key", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				other := newTestIdP(t, true) // same entity ID and URLs, another key
				ir.IDP = other.idp
				_, el := signed(t, &harness{idp: other}, ir, alice, nil)
				return docBytes(t, other.response(t, ir, true, nil, el))
			}},
		{name: "signed content altered", want: "bad_signature", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				_, el := signed(t, h, ir, alice, nil)
				root := h.idp.response(t, ir, false, nil, el)
				child(root, "NameID").SetText(evil)
				return docBytes(t, root)
			}},
		{name: "XSW: signed assertion moved into Extensions, unsigned one in its place", want: "signature_wrapping", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				a, el := signed(t, h, ir, alice, nil)
				root := h.idp.response(t, ir, false, nil, evilAssertion(a, a.ID))
				ext := etree.NewElement("samlp:Extensions")
				ext.AddChild(el)
				root.InsertChildAt(child(root, "Status").Index(), ext)
				return docBytes(t, root)
			}},
		{name: "XSW: signed assertion inside the unsigned one's Advice", want: "signature_wrapping", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				a, el := signed(t, h, ir, alice, nil)
				ev := evilAssertion(a, "id-evil")
				adv := etree.NewElement("saml:Advice")
				adv.AddChild(el)
				ev.InsertChildAt(child(ev, "Conditions").Index()+1, adv)
				return docBytes(t, h.idp.response(t, ir, false, nil, ev))
			}},
		{name: "XSW: unsigned copy with the signed assertion's ID next to it", want: "signature_wrapping", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				a, el := signed(t, h, ir, alice, nil)
				return docBytes(t, h.idp.response(t, ir, false, nil, evilAssertion(a, a.ID), el))
			}},
		{name: "XSW: signed Response wrapped in an unsigned one", want: "signature_wrapping", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				a, el := signed(t, h, ir, alice, nil)
				genuine := h.idp.response(t, ir, true, nil, el)
				outer := h.idp.response(t, ir, false, nil, evilAssertion(a, "id-evil"))
				ext := etree.NewElement("samlp:Extensions")
				ext.AddChild(genuine)
				outer.InsertChildAt(child(outer, "Status").Index(), ext)
				return docBytes(t, outer)
			}},
		{name: "two assertions in one signed response", want: "multiple_assertions",
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				_, first := signed(t, h, ir, alice, nil)
				_, second := signed(t, h, ir, user{nameID: evil, email: evil, classRef: alice.classRef}, nil)
				return docBytes(t, h.idp.response(t, ir, true, nil, first, second))
			}},
		{name: "expired", want: "expired", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				_, el := signed(t, h, ir, alice, shift(-10*time.Minute))
				return docBytes(t, h.idp.response(t, ir, true, nil, el))
			}},
		{name: "not yet valid", want: "not_yet_valid", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				_, el := signed(t, h, ir, alice, shift(10*time.Minute))
				return docBytes(t, h.idp.response(t, ir, true, nil, el))
			}},
		{name: "wrong audience", want: "wrong_audience", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				return h.idp.respond(t, ir, alice, func(a *crewjam.Assertion) {
					a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other-app.example/saml"
				})
			}},
		{name: "wrong recipient", want: "wrong_recipient", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				return h.idp.respond(t, ir, alice, func(a *crewjam.Assertion) {
					a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://other-app.example/acs"
				})
			}},
		{name: "wrong destination", want: "wrong_destination", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				_, el := signed(t, h, ir, alice, nil)
				return docBytes(t, h.idp.response(t, ir, true, func(r *crewjam.Response) { r.Destination = "https://other-app.example/acs" }, el))
			}},
		{name: "unknown InResponseTo", want: "unknown_request", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				ir.Request.ID = "id-not-issued-by-this-sp"
				return h.idp.respond(t, ir, alice, nil)
			}},
		{name: "wrong issuer", want: "wrong_issuer", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				a := h.idp.assertion(t, ir, alice)
				a.Issuer.Value = "https://other-idp.example/"
				return docBytes(t, h.idp.response(t, ir, true, func(r *crewjam.Response) { r.Issuer.Value = a.Issuer.Value }, h.idp.signAssertion(t, a)))
			}},
		{name: "comment inside NameID", want: "xml_comment",
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				// The attacker owns admin@corp.example.evil.example at the
				// IdP and cuts it with a comment after signing.
				root := parseDoc(t, h.idp.respond(t, ir, user{nameID: evil + ".evil.example", email: "x@evil.example", classRef: alice.classRef}, nil))
				withComment(child(root, "NameID"), evil, ".evil.example")
				return docBytes(t, root)
			}},
		{name: "comment inside an attribute value", want: "xml_comment",
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				root := parseDoc(t, h.idp.respond(t, ir, user{nameID: "mallory", email: evil + ".evil.example", classRef: alice.classRef}, nil))
				for _, at := range root.FindElements(".//Attribute[@Name='mail']/AttributeValue") {
					withComment(at, evil, ".evil.example")
				}
				return docBytes(t, root)
			}},
		{name: "IdP error status", want: "idp_refused", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				return docBytes(t, h.idp.response(t, ir, true, func(r *crewjam.Response) {
					r.Status.StatusCode.Value = "urn:oasis:names:tc:SAML:2.0:status:Responder"
				}))
			}},
		{name: "no assertion", want: "no_assertion", crewjamAlone: true,
			make: func(t *testing.T, h *harness, ir *crewjam.IdpAuthnRequest) []byte {
				return docBytes(t, h.idp.response(t, ir, true, nil))
			}},
	}
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			h := newHarness(t)
			a, red := h.begin(nil)
			ir := h.idp.request(t, red)
			raw := at.make(t, h, ir)
			id, err := h.complete(a, raw)
			if got := reason(err); got != at.want {
				t.Fatalf("reason %q (%v), want %q; identity %+v", got, err, at.want, id)
			}
			le := err.(interface{ Error() string })
			if strings.Contains(le.Error(), "<") && strings.Contains(le.Error(), "Assertion") {
				t.Errorf("the error carries XML: %v", le)
			}
			// Defence in depth: crewjam alone refuses it too (or, for the
			// comment cases, reads the whole text, never the truncated one).
			sp := h.p.serviceProvider(h.p.meta.get(), h.p.acsURL)
			sp.ReplayCache = nil
			as, cerr := sp.ParseXMLResponse(raw, []string{a.Data["request_id"]}, h.p.acsURL)
			switch {
			case at.crewjamAlone && cerr == nil:
				t.Errorf("crewjam alone accepted it: subject %q", as.Subject.NameID.Value)
			case cerr == nil && (as.Subject.NameID.Value == evil || values(as, "mail")[0] == evil):
				t.Errorf("the comment truncated the value: %q", as.Subject.NameID.Value)
			}
		})
	}
}

func TestReplayAndReuse(t *testing.T) {
	h := newHarness(t)
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	raw := h.idp.respond(t, ir, alice, nil)
	if _, err := h.complete(a, raw); err != nil {
		t.Fatal(err)
	}
	// The same response again (a browser kept it, or an attacker did).
	if _, err := h.complete(a, raw); reason(err) != "replayed" {
		t.Errorf("replayed assertion: reason %q, want replayed", reason(err))
	}
	// A second, fresh assertion for the same AuthnRequest.
	ir.ResponseEl, ir.AssertionEl = nil, nil
	again := h.idp.respond(t, ir, alice, nil)
	if _, err := h.complete(a, again); reason(err) != "request_reused" {
		t.Errorf("reused InResponseTo: reason %q, want request_reused", reason(err))
	}
	// The response of one attempt with another attempt's request ID.
	b, _ := h.begin(nil)
	ir3 := h.idp.request(t, red)
	if _, err := h.complete(b, h.idp.respond(t, ir3, alice, nil)); reason(err) != "unknown_request" {
		t.Errorf("another attempt's response: reason %q, want unknown_request", reason(err))
	}
}

func TestClockSkewSetting(t *testing.T) {
	// crewjam tolerates three minutes; clock_skew: 30s is stricter.
	h := newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.ClockSkew = config.Duration(30 * time.Second) })
	try := func(edit func(*crewjam.IdpAuthnRequest, *crewjam.Assertion)) error {
		a, red := h.begin(nil)
		ir := h.idp.request(t, red)
		as := h.idp.assertion(t, ir, alice)
		edit(ir, as)
		_, err := h.complete(a, docBytes(t, h.idp.response(t, ir, true, nil, h.idp.signAssertion(t, as))))
		return err
	}
	if err := try(shift(20 * time.Second)); err != nil {
		t.Errorf("20s ahead, skew 30s: %v", err)
	}
	if err := try(shift(100 * time.Second)); reason(err) != "not_yet_valid" {
		t.Errorf("100s ahead, skew 30s: reason %q, want not_yet_valid", reason(err))
	}
	if err := try(func(ir *crewjam.IdpAuthnRequest, a *crewjam.Assertion) {
		shift(-70*time.Second)(ir, a)
		a.Conditions.NotOnOrAfter = time.Now().Add(-45 * time.Second)
	}); reason(err) != "expired" {
		t.Errorf("expired 45s ago, skew 30s: reason %q, want expired", reason(err))
	}
}
