package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/providers"
)

func TestValidResponseAcceptedAndMapped(t *testing.T) {
	h := newHarness(t)
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	if ir.Request.ID != a.Data["request_id"] {
		t.Fatalf("request_id %q, AuthnRequest ID %q", a.Data["request_id"], ir.Request.ID)
	}
	if ir.RelayState != a.State {
		t.Fatalf("RelayState %q, want the attempt state", ir.RelayState)
	}
	id, err := h.complete(a, h.idp.respond(t, ir, alice, nil))
	if err != nil {
		t.Fatalf("valid response refused: %v", err)
	}
	if id.Subject != "alice-0001" || id.Issuer != testIdPURL+"/metadata" || id.Provider != "corp" {
		t.Errorf("subject/issuer/provider = %q %q %q", id.Subject, id.Issuer, id.Provider)
	}
	if id.Email != "alice@corp.example" || !id.EmailVerified || id.Name != "Alice Example" {
		t.Errorf("email %q verified %v name %q", id.Email, id.EmailVerified, id.Name)
	}
	if !slices.Equal(id.Groups, []string{"staff", "it-admins"}) {
		t.Errorf("groups = %q, want both values of the multi-valued memberOf", id.Groups)
	}
	if !slices.Equal(id.AMR, []string{"pwd"}) || id.ACR != "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport" {
		t.Errorf("amr %q acr %q", id.AMR, id.ACR)
	}
	if d := time.Since(id.AuthTime); d < 30*time.Second || d > 2*time.Minute {
		t.Errorf("auth_time %s is not the AuthnInstant (a minute ago)", id.AuthTime)
	}
}

func TestEncryptedAssertion(t *testing.T) {
	h := newHarness(t)
	h.idp.encrypt = true
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	raw := h.idp.respond(t, ir, alice, nil)
	if !bytes.Contains(raw, []byte("EncryptedAssertion")) || bytes.Contains(raw, []byte("alice@corp.example")) {
		t.Fatal("the IdP did not encrypt the assertion")
	}
	id, err := h.complete(a, raw)
	if err != nil {
		t.Fatalf("encrypted assertion refused: %v", err)
	}
	if id.Email != "alice@corp.example" || len(id.Groups) != 2 {
		t.Errorf("identity %+v", id)
	}
}

func TestPostBinding(t *testing.T) {
	h := newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.Binding = "post" })
	h.idp.idp.SSOURL.Path = "/sso"
	a, red := h.begin(nil)
	if red.Form == nil || red.Form["RelayState"] != a.State || red.Form["SAMLRequest"] == "" || red.URL != testIdPURL+"/sso" {
		t.Fatalf("post binding redirect = %+v", red)
	}
	raw, _ := base64.StdEncoding.DecodeString(red.Form["SAMLRequest"])
	if !bytes.Contains(raw, []byte("Signature")) {
		t.Error("HTTP-POST AuthnRequest is not signed")
	}
	ir := h.idp.request(t, red) // the IdP checks the enveloped signature
	if _, err := h.complete(a, h.idp.respond(t, ir, alice, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestRedirectBindingSignedAndUnsigned(t *testing.T) {
	h := newHarness(t)
	_, red := h.begin(nil)
	q, _ := url.Parse(red.URL)
	if q.Query().Get("Signature") == "" || q.Query().Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Errorf("redirect AuthnRequest not signed: %s", red.URL)
	}

	off := false
	h2 := newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.SignRequests = &off })
	h2.idp.idp.WantAuthnRequestsSigned = false
	a, red := h2.begin(nil)
	q, _ = url.Parse(red.URL)
	if q.Query().Has("Signature") {
		t.Error("sign_requests: false still signs")
	}
	ir := h2.idp.request(t, red)
	if _, err := h2.complete(a, h2.idp.respond(t, ir, alice, nil)); err != nil {
		t.Fatal(err)
	}
}

// authnRequestXML inflates the AuthnRequest of a redirect.
func authnRequestXML(t *testing.T, red *providers.Redirect) string {
	u, _ := url.Parse(red.URL)
	z, err := base64.StdEncoding.DecodeString(u.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(flate.NewReader(bytes.NewReader(z)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStepUpAndForceAuthn(t *testing.T) {
	h := newHarness(t)
	_, red := h.begin(&providers.StepUp{MFA: true, MaxAge: time.Minute})
	x := authnRequestXML(t, red)
	for _, want := range []string{"RequestedAuthnContext", `Comparison="exact"`, "https://refeds.org/profile/mfa", "http://schemas.microsoft.com/claims/multipleauthn", `ForceAuthn="true"`} {
		if !strings.Contains(x, want) {
			t.Errorf("AuthnRequest lacks %s:\n%s", want, x)
		}
	}
	_, red = h.begin(&providers.StepUp{ACR: []string{"urn:example:acr:strong"}})
	x = authnRequestXML(t, red)
	if !strings.Contains(x, "urn:example:acr:strong") || strings.Contains(x, "refeds") || strings.Contains(x, "ForceAuthn") {
		t.Errorf("ACR step-up request:\n%s", x)
	}
	_, red = h.begin(nil)
	if x = authnRequestXML(t, red); strings.Contains(x, "RequestedAuthnContext") || strings.Contains(x, "ForceAuthn") {
		t.Errorf("plain request asks for more:\n%s", x)
	}

	// An MFA class from the IdP gives amr mfa, which satisfies the step-up.
	a, red := h.begin(&providers.StepUp{MFA: true})
	ir := h.idp.request(t, red)
	u := alice
	u.classRef = "https://refeds.org/profile/mfa"
	id, err := h.complete(a, h.idp.respond(t, ir, u, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !id.HasMFA() || !a.StepUp.SatisfiedBy(id, time.Now()) {
		t.Errorf("amr %q does not satisfy MFA", id.AMR)
	}
}

func TestAMRMapping(t *testing.T) {
	for _, c := range []struct {
		acr     string
		methods []string
		want    []string
	}{
		{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport", nil, []string{"pwd"}},
		{"urn:oasis:names:tc:SAML:2.0:ac:classes:Password", nil, []string{"pwd"}},
		{"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract", nil, []string{"mfa"}},
		{"https://refeds.org/profile/mfa", nil, []string{"mfa"}},
		{"urn:example:MultiFactorOTP", nil, []string{"mfa"}},
		{"urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified", nil, nil},
		{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
			[]string{"http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password", "http://schemas.microsoft.com/claims/multipleauthn"}, []string{"pwd", "mfa"}},
		{"urn:example:corp:strong", nil, []string{"mfa"}}, // listed in mfa_authn_contexts below
	} {
		got := amrFor(c.acr, c.methods, append(slices.Clone(DefaultMFAAuthnContexts), "urn:example:corp:strong"))
		if !slices.Equal(got, c.want) {
			t.Errorf("amrFor(%q, %q) = %q, want %q", c.acr, c.methods, got, c.want)
		}
	}
}

func TestAttributeMappingConfigured(t *testing.T) {
	h := newHarness(t, func(c *config.SAMLProvider, _ *Env) {
		c.Attributes = config.SAMLAttributes{Email: "urn:oid:0.9.2342.19200300.100.1.3", Groups: "team", Extra: []string{"department", "memberOf"}}
	})
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	raw := h.idp.respond(t, ir, alice, func(as *crewjam.Assertion) {
		st := &as.AttributeStatements[0]
		st.Attributes = append(st.Attributes,
			crewjam.Attribute{Name: "urn:oid:0.9.2342.19200300.100.1.3", Values: []crewjam.AttributeValue{{Value: "a.example@corp.example"}}},
			crewjam.Attribute{Name: "team", Values: []crewjam.AttributeValue{{Value: "blue"}, {Value: "red"}, {Value: "blue"}}},
			crewjam.Attribute{Name: "department", Values: []crewjam.AttributeValue{{Value: "Finance"}}},
		)
	})
	id, err := h.complete(a, raw)
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "a.example@corp.example" || !slices.Equal(id.Groups, []string{"blue", "red"}) ||
		id.Extra["department"] != "Finance" || id.Extra["memberOf"] != "staff,it-admins" {
		t.Errorf("identity %+v", id)
	}

	// Without the email attribute, no email and not verified; the NameID
	// is never taken for an email.
	a, red = h.begin(nil)
	ir = h.idp.request(t, red)
	u := alice
	u.nameID = "alice@corp.example"
	id, err = h.complete(a, h.idp.respond(t, ir, u, nil))
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "" || id.EmailVerified {
		t.Errorf("email %q verified %v without the email attribute", id.Email, id.EmailVerified)
	}
}

func TestControlCharactersRefused(t *testing.T) {
	h := newHarness(t)
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	u := alice
	u.groups = []string{"staff", "it-admins\nX-Injected: 1"}
	if _, err := h.complete(a, h.idp.respond(t, ir, u, nil)); reason(err) != "bad_attribute" {
		t.Errorf("reason %q, want bad_attribute", reason(err))
	}
}

func TestIdPInitiated(t *testing.T) {
	unsolicited := func(h *harness) []byte {
		// An IdP-initiated response: no InResponseTo anywhere.
		_, red := h.begin(nil)
		ir := h.idp.request(t, red)
		ir.Request.ID = ""
		return h.idp.respond(t, ir, alice, nil)
	}
	h := newHarness(t)
	r := post(base64.StdEncoding.EncodeToString(unsolicited(h)), "/app")
	if h.p.CallbackState(r) != "" {
		t.Fatal("a URL RelayState was taken for an attempt state")
	}
	if _, _, err := h.p.CompleteUnsolicited(context.Background(), r); reason(err) != "idp_initiated_disabled" {
		t.Fatalf("reason %q, want idp_initiated_disabled", reason(err))
	}

	h = newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.AllowIdPInitiated = true })
	raw := base64.StdEncoding.EncodeToString(unsolicited(h))
	id, rd, err := h.p.CompleteUnsolicited(context.Background(), post(raw, "/app"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "alice-0001" || rd != "/app" {
		t.Errorf("sub %q rd %q", id.Subject, rd)
	}
	if _, _, err := h.p.CompleteUnsolicited(context.Background(), post(raw, "/app")); reason(err) != "replayed" {
		t.Errorf("replayed unsolicited response: reason %q, want replayed", reason(err))
	}

	// A response to an SP-initiated request cannot be replayed as an
	// unsolicited one.
	_, red := h.begin(nil)
	ir := h.idp.request(t, red)
	solicited := base64.StdEncoding.EncodeToString(h.idp.respond(t, ir, alice, nil))
	if _, _, err := h.p.CompleteUnsolicited(context.Background(), post(solicited, "")); reason(err) != "unknown_request" {
		t.Errorf("solicited response as unsolicited: reason %q, want unknown_request", reason(err))
	}

	// Audience and recipient are still checked.
	_, red = h.begin(nil)
	ir = h.idp.request(t, red)
	ir.Request.ID = ""
	wrong := h.idp.respond(t, ir, alice, func(a *crewjam.Assertion) {
		a.Conditions.AudienceRestrictions[0].Audience.Value = "https://other.example/sp"
	})
	if _, _, err := h.p.CompleteUnsolicited(context.Background(), post(base64.StdEncoding.EncodeToString(wrong), "")); reason(err) != "wrong_audience" {
		t.Errorf("unsolicited for another SP: reason %q, want wrong_audience", reason(err))
	}
}

func TestSPMetadataEndpoint(t *testing.T) {
	h := newHarness(t)
	eps := h.p.Endpoints()
	hdl := eps["saml/corp/metadata"]
	if hdl == nil || len(eps) != 1 {
		t.Fatalf("endpoints %v", eps)
	}
	w := httptest.NewRecorder()
	hdl.ServeHTTP(w, httptest.NewRequest(http.MethodGet, testPublic+"/.gatehouse/saml/corp/metadata", nil))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("status %d, type %q", w.Code, w.Header().Get("Content-Type"))
	}
	var ed crewjam.EntityDescriptor
	if err := xml.Unmarshal(w.Body.Bytes(), &ed); err != nil {
		t.Fatal(err)
	}
	if ed.EntityID != testPublic+"/.gatehouse/saml/corp/metadata" || h.p.EntityID() != ed.EntityID {
		t.Errorf("entity ID %q", ed.EntityID)
	}
	sp := ed.SPSSODescriptors[0]
	if len(sp.AssertionConsumerServices) != 1 || sp.AssertionConsumerServices[0].Location != testACS || sp.AssertionConsumerServices[0].Binding != crewjam.HTTPPostBinding {
		t.Errorf("ACS %+v", sp.AssertionConsumerServices)
	}
	uses := map[string]bool{}
	for _, kd := range sp.KeyDescriptors {
		uses[kd.Use] = true
	}
	if !uses["signing"] || !uses["encryption"] || sp.AuthnRequestsSigned == nil || !*sp.AuthnRequestsSigned {
		t.Errorf("key descriptors %v, AuthnRequestsSigned %v", uses, sp.AuthnRequestsSigned)
	}
	w = httptest.NewRecorder()
	hdl.ServeHTTP(w, httptest.NewRequest(http.MethodPost, testPublic+"/.gatehouse/saml/corp/metadata", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST metadata: %d", w.Code)
	}
	if h.p.CallbackPath() != "saml/corp/acs" || !h.p.CrossSiteCallback() || h.p.Type() != "saml" || h.p.DisplayName() != "Corp SSO" {
		t.Error("provider identity methods")
	}

	// A configured entity ID is the audience the SP asks for.
	h = newHarness(t, func(c *config.SAMLProvider, _ *Env) { c.EntityID = "urn:example:gatehouse" })
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	if ir.Request.Issuer.Value != "urn:example:gatehouse" {
		t.Errorf("issuer %q", ir.Request.Issuer.Value)
	}
	if _, err := h.complete(a, h.idp.respond(t, ir, alice, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestCallbackStateAndACSInput(t *testing.T) {
	h := newHarness(t)
	if h.p.CallbackState(httptest.NewRequest(http.MethodGet, testACS+"?RelayState=abcdefghijklmnopqrstuvwxyz", nil)) != "" {
		t.Error("GET gives a state")
	}
	for _, rs := range []string{"https://evil.example/", "/app", "short", ""} {
		if got := h.p.CallbackState(post("x", rs)); got != "" {
			t.Errorf("RelayState %q taken as state %q", rs, got)
		}
	}
	a, _ := h.begin(nil)
	check := func(name string, r *http.Request, want string) {
		t.Helper()
		h.p.CallbackState(r)
		if _, err := h.p.Complete(context.Background(), r, a); reason(err) != want {
			t.Errorf("%s: reason %q, want %q", name, reason(err), want)
		}
	}
	check("not base64", post("%%%not base64", a.State), "malformed")
	check("empty", post("", a.State), "missing_response")
	check("not XML", post(base64.StdEncoding.EncodeToString([]byte("hello")), a.State), "malformed")
	check("not a Response", post(base64.StdEncoding.EncodeToString([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"/>`)), a.State), "malformed")
	deep := `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">` + strings.Repeat("<x>", 100) + strings.Repeat("</x>", 100) + `</samlp:Response>`
	check("too deep", post(base64.StdEncoding.EncodeToString([]byte(deep)), a.State), "malformed")
	check("GET", httptest.NewRequest(http.MethodGet, testACS, nil), "bad_method")

	art := httptest.NewRequest(http.MethodPost, testACS, strings.NewReader("SAMLart=AAQAA&RelayState="+a.State))
	art.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	check("artifact", art, "unsupported_binding")

	big := httptest.NewRequest(http.MethodPost, testACS, strings.NewReader("RelayState="+a.State+"&SAMLResponse="+strings.Repeat("A", maxBody)))
	big.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	check("too large", big, "too_large")
	chunked := httptest.NewRequest(http.MethodPost, testACS, io.MultiReader(strings.NewReader("SAMLResponse="), strings.NewReader(strings.Repeat("A", maxBody))))
	chunked.ContentLength = -1
	chunked.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	check("too large, unknown length", chunked, "too_large")

	a.Data = nil
	check("no request id", post("PHg+", a.State), "unknown_request")
}

func TestCallbackURLFollowsAttempt(t *testing.T) {
	h := newHarness(t)
	// The browser came through a route host: the ACS is on that host, so
	// the attempt cookie comes back with the POST.
	a := &providers.Attempt{State: newState(), CallbackURL: "https://intranet.example.test/.gatehouse/saml/corp/acs", Created: time.Now()}
	red, err := h.p.Begin(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if x := authnRequestXML(t, red); !strings.Contains(x, `AssertionConsumerServiceURL="https://intranet.example.test/.gatehouse/saml/corp/acs"`) {
		t.Errorf("AuthnRequest ACS:\n%s", x)
	}
	a.CallbackURL = "https://evil.example/steal"
	if _, err := h.p.Begin(context.Background(), a); reason(err) != "bad_callback_url" {
		t.Errorf("foreign callback URL: %q", reason(err))
	}
}

func TestConfigValidate(t *testing.T) {
	ok := config.SAMLProvider{IdPMetadataURL: "https://idp.example/md", SPCertFile: "c", SPKeyFile: "k"}
	if errs := ok.Validate(); len(errs) != 0 {
		t.Fatalf("valid settings: %+v", errs)
	}
	for _, c := range []struct {
		name string
		edit func(*config.SAMLProvider)
		key  string
	}{
		{"no metadata", func(s *config.SAMLProvider) { s.IdPMetadataURL = "" }, "idp_metadata_url"},
		{"two metadata", func(s *config.SAMLProvider) { s.IdPMetadataFile = "md.xml" }, "idp_metadata_url"},
		{"http metadata", func(s *config.SAMLProvider) { s.IdPMetadataURL = "http://idp.example/md" }, "idp_metadata_url"},
		{"relative URL", func(s *config.SAMLProvider) { s.IdPMetadataURL = "/md" }, "idp_metadata_url"},
		{"inline not XML", func(s *config.SAMLProvider) { s.IdPMetadataURL, s.IdPMetadata = "", "https://x" }, "idp_metadata"},
		{"binding", func(s *config.SAMLProvider) { s.Binding = "artifact" }, "binding"},
		{"nameid", func(s *config.SAMLProvider) { s.NameIDFormat = "emailAddress" }, "name_id_format"},
		{"skew", func(s *config.SAMLProvider) { s.ClockSkew = config.Duration(10 * time.Minute) }, "clock_skew"},
		{"refresh", func(s *config.SAMLProvider) { s.MetadataRefresh = config.Duration(time.Second) }, "metadata_refresh"},
		{"timeout", func(s *config.SAMLProvider) { s.MetadataTimeout = config.Duration(time.Hour) }, "metadata_timeout"},
		{"entity id", func(s *config.SAMLProvider) { s.EntityID = "gatehouse" }, "entity_id"},
		{"no cert", func(s *config.SAMLProvider) { s.SPCertFile = "" }, "sp_cert_file"},
		{"no key", func(s *config.SAMLProvider) { s.SPKeyFile = "" }, "sp_key_file"},
		{"dup extra", func(s *config.SAMLProvider) { s.Attributes.Extra = []string{"a", "a"} }, "attributes.extra[1]"},
	} {
		s := ok
		c.edit(&s)
		errs := s.Validate()
		if len(errs) != 1 || errs[0].Key != c.key {
			t.Errorf("%s: %+v, want one error on %s", c.name, errs, c.key)
		}
	}
	loop := ok
	loop.IdPMetadataURL = "http://127.0.0.1:8081/md"
	if errs := loop.Validate(); len(errs) != 0 {
		t.Errorf("loopback http: %+v", errs)
	}
}

func TestKeyPair(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-3072 key generation")
	}
	c, k, err := GenerateKeyPair("gatehouse.example")
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := parseKeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "gatehouse.example" || key.Public().(interface{ Size() int }).Size() != 384 {
		t.Errorf("cn %q", cert.Subject.CommonName)
	}
	testKeys(t)
	if _, _, err := parseKeyPair(spCertPEM, k); err == nil {
		t.Error("a key from another pair was accepted")
	}
	if _, _, err := parseKeyPair([]byte("nope"), k); err == nil {
		t.Error("no certificate accepted")
	}
}

func TestNewErrors(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sp.crt"), spCertPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "sp.key"), spKeyPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "sp-metadata.xml"), []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"><SPSSODescriptor/></EntityDescriptor>`), 0o600)
	ti := newTestIdP(t, false)
	os.WriteFile(filepath.Join(dir, "idp.xml"), []byte(ti.metadataXML(t)), 0o600)
	base := config.SAMLProvider{IdPMetadataFile: "idp.xml", SPCertFile: "sp.crt", SPKeyFile: "sp.key"}
	env := Env{PublicURL: testPublic, BaseDir: dir}
	p, err := New("corp", &base, env)
	if err != nil {
		t.Fatalf("file metadata: %v", err)
	}
	if p.Ready() != nil {
		t.Error("file metadata not ready at New")
	}
	p.Close()
	for name, edit := range map[string]func(*config.SAMLProvider){
		"missing key":     func(s *config.SAMLProvider) { s.SPKeyFile = "nope.key" },
		"missing md":      func(s *config.SAMLProvider) { s.IdPMetadataFile = "nope.xml" },
		"SP metadata":     func(s *config.SAMLProvider) { s.IdPMetadataFile = "sp-metadata.xml" },
		"bad inline":      func(s *config.SAMLProvider) { s.IdPMetadataFile, s.IdPMetadata = "", "<x/>" },
		"invalid setting": func(s *config.SAMLProvider) { s.Binding = "soap" },
	} {
		s := base
		edit(&s)
		if _, err := New("corp", &s, env); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestMemoryReplayCache(t *testing.T) {
	now := time.Now()
	c := NewMemoryReplayCache(func() time.Time { return now })
	if err := c.Consume("a", now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := c.Consume("a", now.Add(5*time.Minute)); !errors.Is(err, ErrReplayed) {
		t.Fatalf("second consume: %v", err)
	}
	now = now.Add(6 * time.Minute)
	if err := c.Consume("a", now.Add(time.Minute)); err != nil {
		t.Errorf("expired id still held: %v", err)
	}
	for i := range 5000 {
		c.Consume(strings.Repeat("x", 3)+string(rune(i)), now.Add(time.Second))
	}
	now = now.Add(2 * time.Minute)
	c.Consume("b", now.Add(time.Minute))
	if c.Len() > 2100 {
		t.Errorf("expired ids not swept: %d held", c.Len())
	}
}
