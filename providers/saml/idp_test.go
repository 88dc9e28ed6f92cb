package saml

// An in-process IdP on crewjam/saml's IdentityProvider, and helpers that
// build (and tamper with) responses for the provider under test.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

const (
	testPublic = "https://gw.example.test"
	testACS    = testPublic + "/.gatehouse/saml/corp/acs"
	testIdPURL = "https://idp.example.test"
	testSLO    = testPublic + "/.gatehouse/saml/corp/slo"
	testIdPSLO = testIdPURL + "/slo"
)

// Keys are slow to make under -race: make each kind once.
var (
	keyOnce              sync.Once
	spCertPEM, spKeyPEM  []byte
	idpKey, otherIdPKey  *rsa.PrivateKey
	idpCert, otherIdPCrt *x509.Certificate
)

func testKeys(t testing.TB) {
	keyOnce.Do(func() {
		var err error
		spCertPEM, spKeyPEM, err = generateKeyPair("gatehouse test sp", 2048, time.Now())
		if err != nil {
			panic(err)
		}
		mk := func() (*rsa.PrivateKey, *x509.Certificate) {
			c, k, err := generateKeyPair("test idp", 2048, time.Now())
			if err != nil {
				panic(err)
			}
			signer, cert, err := parseKeyPair(c, k)
			if err != nil {
				panic(err)
			}
			return signer.(*rsa.PrivateKey), cert
		}
		idpKey, idpCert = mk()
		otherIdPKey, otherIdPCrt = mk()
	})
}

// testIdP is crewjam's IdentityProvider plus what the tests tamper with.
type testIdP struct {
	idp *crewjam.IdentityProvider
	// spMeta returns the SP metadata the IdP holds (the provider's own,
	// possibly edited).
	spMeta func() *crewjam.EntityDescriptor
	// encrypt keeps the SP's encryption key in the metadata the IdP holds,
	// so that assertions are encrypted.
	encrypt bool
}

// newTestIdP is the test IdP, signing with its usual key or, with
// otherKey, another one (same entity ID and URLs).
func newTestIdP(t testing.TB, otherKey bool) *testIdP {
	testKeys(t)
	key, cert := idpKey, idpCert
	if otherKey {
		key, cert = otherIdPKey, otherIdPCrt
	}
	mu, _ := url.Parse(testIdPURL + "/metadata")
	su, _ := url.Parse(testIdPURL + "/sso")
	lu, _ := url.Parse(testIdPSLO)
	ti := &testIdP{}
	ti.idp = &crewjam.IdentityProvider{
		Key:                     key,
		Signer:                  key,
		Certificate:             cert,
		MetadataURL:             *mu,
		SSOURL:                  *su,
		LogoutURL:               *lu,
		LogoutBindings:          []string{crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding},
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		WantAuthnRequestsSigned: true,
		ServiceProviderProvider: ti,
	}
	return ti
}

// GetServiceProvider implements crewjam.ServiceProviderProvider.
func (ti *testIdP) GetServiceProvider(_ *http.Request, id string) (*crewjam.EntityDescriptor, error) {
	md := ti.spMeta()
	if md.EntityID != id {
		return nil, os.ErrNotExist
	}
	if !ti.encrypt {
		sp := &md.SPSSODescriptors[0]
		var kds []crewjam.KeyDescriptor
		for _, kd := range sp.KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
			}
		}
		sp.KeyDescriptors = kds
	}
	return md, nil
}

func (ti *testIdP) metadataXML(t testing.TB) string {
	out, err := xml.Marshal(ti.idp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (ti *testIdP) signingContext(t testing.TB) *dsig.SigningContext {
	ks := dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{ti.idp.Certificate.Raw}, PrivateKey: ti.idp.Key})
	ctx := dsig.NewDefaultSigningContext(ks)
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// signAssertion returns the assertion's element with an enveloped
// signature, placed where crewjam places it (after the Issuer).
func (ti *testIdP) signAssertion(t testing.TB, a *crewjam.Assertion) *etree.Element {
	a.Signature = nil
	signed, err := ti.signingContext(t).SignEnveloped(a.Element())
	if err != nil {
		t.Fatal(err)
	}
	a.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
	return a.Element()
}

// response wraps assertion elements in a Response to ir, signed or not.
func (ti *testIdP) response(t testing.TB, ir *crewjam.IdpAuthnRequest, sign bool, edit func(*crewjam.Response), assertions ...*etree.Element) *etree.Element {
	resp := &crewjam.Response{
		Destination:  ir.ACSEndpoint.Location,
		ID:           "id-" + randHex(20),
		InResponseTo: ir.Request.ID,
		IssueInstant: ir.Now,
		Version:      "2.0",
		Issuer:       &crewjam.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: ti.idp.MetadataURL.String()},
		Status:       crewjam.Status{StatusCode: crewjam.StatusCode{Value: crewjam.StatusSuccess}},
	}
	if edit != nil {
		edit(resp)
	}
	el := resp.Element()
	for _, a := range assertions {
		el.AddChild(a)
	}
	if !sign {
		return el
	}
	signed, err := ti.signingContext(t).SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	resp.Signature = signed.ChildElements()[len(signed.ChildElements())-1]
	el = resp.Element()
	for _, a := range assertions {
		el.AddChild(a.Copy())
	}
	return el
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// user is who the test IdP signs in.
type user struct {
	nameID, email, name string
	groups              []string
	classRef            string
}

var alice = user{nameID: "alice-0001", email: "alice@corp.example", name: "Alice Example", groups: []string{"staff", "it-admins"},
	classRef: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}

// request parses the AuthnRequest the provider sent (its Redirect) as the
// IdP receives it, and validates it (destination, signature, SP).
func (ti *testIdP) request(t testing.TB, red *providers.Redirect) *crewjam.IdpAuthnRequest {
	t.Helper()
	var r *http.Request
	if red.Form != nil {
		f := url.Values{}
		for k, v := range red.Form {
			f.Set(k, v)
		}
		r = httptest.NewRequest(http.MethodPost, red.URL, strings.NewReader(f.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(http.MethodGet, red.URL, nil)
	}
	ir, err := crewjam.NewIdpAuthnRequest(ti.idp, r)
	if err != nil {
		t.Fatalf("IdP cannot read the AuthnRequest: %v", err)
	}
	if err := ir.Validate(); err != nil {
		t.Fatalf("IdP refuses the AuthnRequest: %v", err)
	}
	return ir
}

// assertion makes the assertion the IdP would send for u.
func (ti *testIdP) assertion(t testing.TB, ir *crewjam.IdpAuthnRequest, u user) *crewjam.Assertion {
	t.Helper()
	attrs := []crewjam.Attribute{
		{Name: "mail", Values: []crewjam.AttributeValue{{Type: "xs:string", Value: u.email}}},
		{Name: "displayName", Values: []crewjam.AttributeValue{{Type: "xs:string", Value: u.name}}},
	}
	if len(u.groups) > 0 {
		g := crewjam.Attribute{Name: "memberOf"}
		for _, x := range u.groups {
			g.Values = append(g.Values, crewjam.AttributeValue{Type: "xs:string", Value: x})
		}
		attrs = append(attrs, g)
	}
	s := &crewjam.Session{
		ID: randHex(8), CreateTime: ir.Now.Add(-time.Minute), ExpireTime: ir.Now.Add(time.Hour), Index: randHex(8),
		NameID: u.nameID, NameIDFormat: string(crewjam.PersistentNameIDFormat),
		AuthnContextClassRef: u.classRef, CustomAttributes: attrs,
	}
	if err := (crewjam.DefaultAssertionMaker{}).MakeAssertion(ir, s); err != nil {
		t.Fatal(err)
	}
	return ir.Assertion
}

// respond is the normal IdP answer: assertion signed (and encrypted if
// the SP metadata the IdP holds has an encryption key), response signed.
// edit may change the assertion before it is signed.
func (ti *testIdP) respond(t testing.TB, ir *crewjam.IdpAuthnRequest, u user, edit func(*crewjam.Assertion)) []byte {
	t.Helper()
	ti.assertion(t, ir, u)
	if edit != nil {
		edit(ir.Assertion)
	}
	if err := ir.MakeAssertionEl(); err != nil {
		t.Fatal(err)
	}
	if err := ir.MakeResponse(); err != nil {
		t.Fatal(err)
	}
	return docBytes(t, ir.ResponseEl)
}

func docBytes(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	b, err := elementBytes(el)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// harness is a provider under test and its IdP.
type harness struct {
	t   testing.TB
	p   *Provider
	idp *testIdP
	now func() time.Time
}

type harnessOpt func(*config.SAMLProvider, *Env)

func newHarness(t testing.TB, opts ...harnessOpt) *harness {
	t.Helper()
	testKeys(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sp.crt"), spCertPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "sp.key"), spKeyPEM, 0o600)
	ti := newTestIdP(t, false)
	cfg := &config.SAMLProvider{
		ProviderCommon: config.ProviderCommon{Type: "saml", DisplayName: "Corp SSO"},
		IdPMetadata:    ti.metadataXML(t),
		SPCertFile:     "sp.crt", SPKeyFile: "sp.key",
	}
	env := Env{PublicURL: testPublic, BaseDir: dir, Replay: NewMemoryReplayCache(nil)}
	for _, o := range opts {
		o(cfg, &env)
	}
	p, err := New("corp", cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ti.spMeta = func() *crewjam.EntityDescriptor {
		b, err := p.SPMetadata()
		if err != nil {
			t.Fatal(err)
		}
		var ed crewjam.EntityDescriptor
		if err := xml.Unmarshal(b, &ed); err != nil {
			t.Fatal(err)
		}
		return &ed
	}
	return &harness{t: t, p: p, idp: ti, now: time.Now}
}

func newState() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// begin starts an attempt as the proxy does.
func (h *harness) begin(step *providers.StepUp) (*providers.Attempt, *providers.Redirect) {
	h.t.Helper()
	a := &providers.Attempt{State: newState(), Provider: "corp", Audience: identity.Workforce, CallbackURL: testACS, StepUp: step, Created: time.Now()}
	red, err := h.p.Begin(context.Background(), a)
	if err != nil {
		h.t.Fatalf("Begin: %v", err)
	}
	a.Data = red.Data
	return a, red
}

// post is the browser's POST of a response to the ACS.
func post(samlResponse, relayState string) *http.Request {
	f := url.Values{"SAMLResponse": {samlResponse}}
	if relayState != "" {
		f.Set("RelayState", relayState)
	}
	r := httptest.NewRequest(http.MethodPost, testACS, strings.NewReader(f.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// complete posts raw (the response XML) to the ACS for attempt a, going
// through CallbackState as the proxy does.
func (h *harness) complete(a *providers.Attempt, raw []byte) (*identity.Identity, error) {
	h.t.Helper()
	r := post(base64.StdEncoding.EncodeToString(raw), a.State)
	if got := h.p.CallbackState(r); got != a.State {
		h.t.Fatalf("CallbackState = %q, want the attempt state", got)
	}
	return h.p.Complete(context.Background(), r, a)
}

// reason is the LoginError reason of err ("" for nil).
func reason(err error) string {
	if err == nil {
		return ""
	}
	if le, ok := err.(*providers.LoginError); ok {
		return le.Reason
	}
	return "not a LoginError: " + err.Error()
}

// withClock is an IdP clock offset from the real one.
func withIdPClock(ti *testIdP, offset time.Duration) {
	ti.idp.Clock = dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: func() time.Time { return time.Now().Add(offset) }})
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func newAttempt() *providers.Attempt {
	return &providers.Attempt{State: newState(), Provider: "corp", Audience: identity.Workforce, CallbackURL: testACS, Created: time.Now()}
}
