package saml

// Single logout (SAML 2.0 SLO), service provider side, front channel
// (HTTP-Redirect and HTTP-POST bindings):
//
//   - StartLogout sends the browser to the IdP with a signed LogoutRequest
//     for the session's NameID and SessionIndex (the tokens
//     CompleteWithTokens returned at sign-in).
//   - ReceiveLogout, at saml/<name>/slo, takes the IdP's LogoutResponse to
//     that request, or a LogoutRequest the IdP starts (the person signed out
//     at the IdP or at another SP), which it answers through
//     LogoutNotice.Respond with a signed LogoutResponse.
//
// What crewjam/saml does and what Gatehouse does itself:
//
//   - Reading a message (method, sizes, the raw query of the HTTP-Redirect
//     binding, the inflated size, duplicate parameters) and its shape (one
//     LogoutRequest or LogoutResponse, no duplicate IDs, no comments, one
//     signature directly under the root) is Gatehouse's, before any
//     signature is looked at.
//   - The query signature of the HTTP-Redirect binding is checked here,
//     over the parameters exactly as they were sent (saml-bindings §3.4.4.1),
//     and it is required: an HTTP-Redirect message without SigAlg and
//     Signature is refused even if it carries an enveloped XML signature
//     (the binding says such a signature must be removed).
//   - crewjam's ValidateLogoutRequest(Form) and ParseLogoutResponse then
//     check, on a request rebuilt from exactly what was inspected: the
//     signature again (the enveloped XML signature for HTTP-POST, read from
//     what the signature covers), Version, Destination (our SLO URL),
//     IssueInstant (90 s old at most), NotOnOrAfter, Issuer (the IdP's
//     entity ID), Status, InResponseTo, and the single use of each
//     LogoutRequest ID in the provider's replay cache.
//   - Gatehouse adds its clock_skew to the future-dated checks, the single
//     use of each LogoutRequest it sent, and the RelayState check.
//   - Gatehouse builds and signs its own messages: crewjam's
//     MakeLogoutRequest sets NameQualifier and SPNameQualifier the assertion
//     may not have had (the NameID must be echoed as the IdP issued it), and
//     its MakeRedirectLogoutResponse/MakePostLogoutResponse send the response
//     to the IdP's Location, not its ResponseLocation. The enveloped
//     signatures are crewjam's SignLogoutRequest and SignLogoutResponse.

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

const (
	// maxLogoutInput caps what a logout message may take: the raw query
	// of the HTTP-Redirect binding, the POST body of the HTTP-POST binding.
	maxLogoutInput = 256 << 10
	// maxLogoutXML caps the inflated XML of an HTTP-Redirect message (a
	// deflate bomb stops here).
	maxLogoutXML = 256 << 10
	// maxRelayState caps a RelayState we echo (the bindings say 80 bytes;
	// some IdPs send more).
	maxRelayState = 1024
	// sloResponseTTL is how long the ID of a LogoutRequest we sent stays
	// marked as answered.
	sloResponseTTL = 30 * time.Minute

	statusResponder     = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	statusPartialLogout = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
	entityFormat        = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
)

// Public messages of single logout.
const (
	publicSLORequest  = "We could not sign you out: the sign-out request from your identity provider could not be verified. Please sign out again, or close your browser."
	publicSLOResponse = "You are signed out here, but the answer of your identity provider could not be verified: you may still be signed in there. Close your browser to be sure."
	publicSLOStatus   = "You are signed out here, but your identity provider reported a problem ending your session there. Close your browser to be sure."
	publicSLOClock    = "The sign-out message took too long or arrived too early. Please sign out again; if it keeps failing, the clocks of the identity provider and this gateway may disagree."
)

var (
	_ providers.SingleLogout   = (*Provider)(nil)
	_ providers.LogoutReceiver = (*Provider)(nil)
	_ providers.TokenCompleter = (*Provider)(nil)
)

// Token names CompleteWithTokens returns (the gateway keeps "sid" and
// every "saml_" token in the session).
const (
	TokenSessionIndex    = "sid"
	TokenNameIDFormat    = "saml_name_id_format"
	TokenNameQualifier   = "saml_name_qualifier"
	TokenSPNameQualifier = "saml_sp_name_qualifier"
)

// LogoutPath is the SLO endpoint, relative to /.gatehouse/. It is listed
// in the SP metadata for the HTTP-Redirect and HTTP-POST bindings.
func (p *Provider) LogoutPath() string { return "saml/" + p.name + "/slo" }

// SLOURL is the SLO endpoint on the public URL.
func (p *Provider) SLOURL() string { return p.sloURL.String() }

// idpSLO returns the IdP's SingleLogoutService: for binding when the IdP
// offers it, else for the other front-channel binding; ok is false when
// the IdP metadata lists neither.
func idpSLO(md *metadata, binding string) (string, crewjam.Endpoint, bool) {
	find := func(b string) (crewjam.Endpoint, bool) {
		for _, d := range md.ed.IDPSSODescriptors {
			for _, s := range d.SingleLogoutServices {
				if s.Binding == b && s.Location != "" {
					return s, true
				}
			}
		}
		return crewjam.Endpoint{}, false
	}
	other := crewjam.HTTPPostBinding
	if binding == crewjam.HTTPPostBinding {
		other = crewjam.HTTPRedirectBinding
	}
	if ep, ok := find(binding); ok {
		return binding, ep, true
	}
	if ep, ok := find(other); ok {
		return other, ep, true
	}
	return "", crewjam.Endpoint{}, false
}

func bindingURI(b string) string {
	if b == "post" {
		return crewjam.HTTPPostBinding
	}
	return crewjam.HTTPRedirectBinding
}

// StartLogout builds the signed LogoutRequest that ends the IdP session
// of id (its NameID, echoed as the IdP issued it, and the SessionIndex
// from tokens), for the IdP's SingleLogoutService in slo_binding (or the
// binding it offers). The RelayState is a fresh random value; Data holds
// the request ID and that RelayState for ReceiveLogout.
//
// It returns (nil, nil) when there is nothing to do at the IdP: single
// logout is turned off (single_logout: false) or the IdP metadata lists no
// SingleLogoutService for HTTP-Redirect or HTTP-POST. The gateway then
// goes straight to the return URL. An error (no metadata yet, no NameID,
// signing failed) means the person is signed out locally only.
func (p *Provider) StartLogout(_ context.Context, id *identity.Identity, tokens map[string]string, _ string) (*providers.Redirect, error) {
	if !p.singleLogout {
		return nil, nil
	}
	md := p.meta.get()
	if md == nil {
		return nil, providers.Fail("metadata_unavailable", "", p.meta.ready())
	}
	binding, ep, ok := idpSLO(md, bindingURI(p.sloBinding))
	if !ok {
		return nil, nil
	}
	if id == nil || id.Subject == "" {
		return nil, providers.Fail("slo_no_subject", "", errors.New("the session has no NameID to log out"))
	}
	if id.Provider != "" && id.Provider != p.name {
		return nil, providers.Fail("slo_no_subject", "", fmt.Errorf("the session is from provider %q, not %q", id.Provider, p.name))
	}
	req := &crewjam.LogoutRequest{
		ID:           "id-" + randHexID(20),
		Version:      "2.0",
		IssueInstant: p.now().UTC(),
		Destination:  ep.Location,
		Issuer:       &crewjam.Issuer{Format: entityFormat, Value: p.entityID},
		NameID: &crewjam.NameID{
			Value:           id.Subject,
			Format:          tokens[TokenNameIDFormat],
			NameQualifier:   tokens[TokenNameQualifier],
			SPNameQualifier: tokens[TokenSPNameQualifier],
		},
	}
	if sid := tokens[TokenSessionIndex]; sid != "" {
		req.SessionIndex = &crewjam.SessionIndex{Value: sid}
	}
	relay := randomToken()
	data := map[string]string{"request_id": req.ID, "relay_state": relay}
	if binding == crewjam.HTTPPostBinding {
		sp := p.serviceProvider(md, p.acsURL)
		if err := sp.SignLogoutRequest(req); err != nil {
			return nil, providers.Fail("slo_request", "", err)
		}
		buf, err := elementBytes(req.Element())
		if err != nil {
			return nil, providers.Fail("slo_request", "", err)
		}
		return &providers.Redirect{URL: ep.Location, Form: map[string]string{
			"SAMLRequest": base64.StdEncoding.EncodeToString(buf),
			"RelayState":  relay,
		}, Data: data}, nil
	}
	u, err := p.redirectURL(ep.Location, "SAMLRequest", req.Element(), relay)
	if err != nil {
		return nil, providers.Fail("slo_request", "", err)
	}
	return &providers.Redirect{URL: u, Data: data}, nil
}

func randHexID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// redirectURL is dest with the HTTP-Redirect binding parameters of el
// (deflated, base64) and a query signature by the SP key over
// param=...&RelayState=...&SigAlg=... as sent (saml-bindings §3.4.4.1).
func (p *Provider) redirectURL(dest, param string, el *etree.Element, relay string) (string, error) {
	u, err := url.Parse(dest)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return "", err
	}
	doc := etree.NewDocument()
	doc.SetRoot(el)
	if _, err := doc.WriteTo(fw); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	alg := signatureMethod(p.key)
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	q += "&SigAlg=" + url.QueryEscape(alg)
	ctx, err := dsig.NewSigningContext(p.key, [][]byte{p.cert.Raw})
	if err != nil {
		return "", err
	}
	if err := ctx.SetSignatureMethod(alg); err != nil {
		return "", err
	}
	sig, err := ctx.SignString(q)
	if err != nil {
		return "", err
	}
	q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	if u.RawQuery != "" {
		u.RawQuery += "&" + q
	} else {
		u.RawQuery = q
	}
	return u.String(), nil
}

// logoutMessage is a logout message as received, before any check of its
// content.
type logoutMessage struct {
	post     bool
	param    string // SAMLRequest or SAMLResponse
	xml      []byte
	relay    string
	hasRelay bool
	rawQuery string // HTTP-Redirect: the query as sent
	// HTTP-Redirect query signature: SigAlg and Signature decoded, and the
	// octets they sign.
	sigAlg, sig string
	signed      []byte
}

// ReceiveLogout validates a logout message at the SLO endpoint, with the
// HTTP-Redirect (GET) or HTTP-POST (POST) binding:
//
//   - a LogoutRequest from the IdP: it must be signed by the IdP (a query
//     signature for HTTP-Redirect, an enveloped XML signature for
//     HTTP-POST), issued by the IdP's entity ID to our SLO URL, fresh, and
//     used once. The notice names its NameID (Subject) and SessionIndexes
//     (SessionIDs); its Respond sends the signed LogoutResponse (Success,
//     or Responder when ended is not nil) back to the IdP with the same
//     RelayState, by the binding the request came with when the IdP offers
//     it.
//   - a LogoutResponse to our LogoutRequest (data from StartLogout): signed
//     likewise, issued by the IdP to our SLO URL, fresh, InResponseTo the
//     request ID in data (data nil: refused), RelayState ours, once. Status
//     Success gives a notice with Completed. Any other status, or Success
//     with PartialLogout, is the error slo_idp_status: the local session
//     is already gone, the IdP's may not be.
//
// Every refusal is a *providers.LoginError whose Reason starts with
// "slo_".
func (p *Provider) ReceiveLogout(_ context.Context, r *http.Request, data map[string]string) (n *providers.LogoutNotice, err error) {
	defer func() {
		// Defence in depth: hostile XML must never take the gateway down.
		if v := recover(); v != nil {
			p.log.Error("panic while reading a SAML logout message", zap.String("provider", p.name), zap.Any("panic", v))
			n, err = nil, providers.Fail("slo_internal_error", publicSLORequest, fmt.Errorf("panic: %v", v))
		}
	}()
	if !p.singleLogout {
		return nil, providers.Fail("slo_disabled", publicSLORequest, errors.New("single logout is turned off for this provider (single_logout: false)"))
	}
	m, le := readLogout(r)
	if le != nil {
		return nil, le
	}
	public := publicSLORequest
	if m.param == "SAMLResponse" {
		public = publicSLOResponse
		// Cheap checks first: a response must answer a logout this
		// browser started here.
		if data["request_id"] == "" {
			return nil, providers.Fail("slo_unknown_request", public, errors.New("LogoutResponse, but this browser started no logout here"))
		}
		if rs := data["relay_state"]; rs != "" && m.hasRelay && m.relay != rs {
			return nil, providers.Fail("slo_unknown_request", public, errors.New("LogoutResponse RelayState differs from the one sent"))
		}
	}
	root, le := inspectLogout(m, public)
	if le != nil {
		return nil, le
	}
	md := p.meta.get()
	if md == nil {
		return nil, providers.Fail("metadata_unavailable", public, p.meta.ready())
	}
	if !m.post {
		if le := p.checkQuerySignature(md, m, public); le != nil {
			return nil, le
		}
	}
	sp := p.serviceProvider(md, p.acsURL)
	if m.param == "SAMLRequest" {
		return p.receiveRequest(sp, md, m)
	}
	return p.receiveResponse(sp, m, root, data["request_id"])
}

// crewjamRequest rebuilds the request crewjam reads from exactly what was
// inspected: the raw query for HTTP-Redirect, the decoded message alone
// for HTTP-POST.
func crewjamRequest(m *logoutMessage) *http.Request {
	if !m.post {
		return &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/", RawQuery: m.rawQuery}, Header: http.Header{}}
	}
	f := url.Values{m.param: {base64.StdEncoding.EncodeToString(m.xml)}}
	return &http.Request{Method: http.MethodPost, URL: &url.URL{Path: "/"}, Header: http.Header{}, PostForm: f, Form: f}
}

func (p *Provider) receiveRequest(sp *crewjam.ServiceProvider, md *metadata, m *logoutMessage) (*providers.LogoutNotice, error) {
	var (
		lr  *crewjam.LogoutRequest
		err error
	)
	if m.post {
		lr, err = sp.ValidateLogoutRequestForm(base64.StdEncoding.EncodeToString(m.xml))
	} else {
		lr, err = sp.ValidateLogoutRequest(crewjamRequest(m))
	}
	if err != nil {
		return nil, classifySLO(err, publicSLORequest)
	}
	now := p.now()
	if lr.IssueInstant.After(now.Add(p.skew)) {
		return nil, providers.Fail("slo_not_yet_valid", publicSLOClock, fmt.Errorf("LogoutRequest issued in the future (%s, now %s, skew %s)", lr.IssueInstant, now, p.skew))
	}
	if lr.NotOnOrAfter != nil && !now.Before(lr.NotOnOrAfter.Add(p.skew)) {
		return nil, providers.Fail("slo_expired", publicSLOClock, fmt.Errorf("LogoutRequest expired at %s (now %s, skew %s)", lr.NotOnOrAfter, now, p.skew))
	}
	if lr.NameID == nil || strings.TrimSpace(lr.NameID.Value) == "" {
		return nil, providers.Fail("slo_malformed", publicSLORequest, errors.New("LogoutRequest names no NameID"))
	}
	n := &providers.LogoutNotice{Subject: strings.TrimSpace(lr.NameID.Value)}
	if hasControl(n.Subject) {
		return nil, providers.Fail("slo_malformed", publicSLORequest, errors.New("NameID contains control characters"))
	}
	for _, si := range lr.AllSessionIndexes() {
		v := strings.TrimSpace(si.Value)
		if v == "" {
			continue
		}
		if hasControl(v) {
			return nil, providers.Fail("slo_malformed", publicSLORequest, errors.New("SessionIndex contains control characters"))
		}
		n.SessionIDs = append(n.SessionIDs, v)
	}
	binding := crewjam.HTTPRedirectBinding
	if m.post {
		binding = crewjam.HTTPPostBinding
	}
	reqID, relay := lr.ID, m.relay
	n.Respond = func(w http.ResponseWriter, r *http.Request, ended error) {
		p.respondLogout(w, r, md, binding, reqID, relay, ended)
	}
	return n, nil
}

func (p *Provider) receiveResponse(sp *crewjam.ServiceProvider, m *logoutMessage, root *etree.Element, reqID string) (*providers.LogoutNotice, error) {
	resp, err := sp.ParseLogoutResponse(crewjamRequest(m), []string{reqID})
	var bad crewjam.ErrBadStatus
	switch {
	case err == nil:
	case errors.As(err, &bad):
		// Signature, Destination, IssueInstant and Issuer passed; crewjam
		// stops at the status before InResponseTo. The root is what was
		// signed (one ID, the signature directly under it and referencing
		// it), so its InResponseTo is authentic.
		if got := root.SelectAttrValue("InResponseTo", ""); got != reqID {
			return nil, providers.Fail("slo_unknown_request", publicSLOResponse, fmt.Errorf("LogoutResponse answers %q, not %q", clip(got), reqID))
		}
	default:
		return nil, classifySLO(err, publicSLOResponse)
	}
	if resp != nil {
		now := p.now()
		if resp.IssueInstant.After(now.Add(p.skew)) {
			return nil, providers.Fail("slo_not_yet_valid", publicSLOClock, fmt.Errorf("LogoutResponse issued in the future (%s, now %s, skew %s)", resp.IssueInstant, now, p.skew))
		}
	}
	if err := p.replay.Consume("logout-response:"+reqID, p.now().Add(sloResponseTTL)); err != nil {
		if errors.Is(err, ErrReplayed) {
			return nil, providers.Fail("slo_replayed", publicSLOResponse, fmt.Errorf("LogoutRequest %q was already answered", reqID))
		}
		return nil, providers.Fail("replay_cache", publicSLOResponse, err)
	}
	status := statusOf(root)
	if len(status) == 0 || status[0] != crewjam.StatusSuccess || (len(status) > 1 && status[1] == statusPartialLogout) {
		return nil, providers.Fail("slo_idp_status", publicSLOStatus, fmt.Errorf("IdP answered the LogoutRequest with status %s", clip(strings.Join(status, " "))))
	}
	return &providers.LogoutNotice{Completed: true}, nil
}

// readLogout takes the message from the request: HTTP-Redirect (GET) or
// HTTP-POST (POST) binding only, each parameter once, sizes capped.
func readLogout(r *http.Request) (*logoutMessage, *providers.LoginError) {
	public := publicSLORequest
	malformed := func(err error) (*logoutMessage, *providers.LoginError) {
		return nil, providers.Fail("slo_malformed", public, err)
	}
	switch r.Method {
	case http.MethodGet:
		return readRedirect(r.URL.RawQuery)
	case http.MethodPost:
	default:
		return nil, providers.Fail("slo_bad_method", public, fmt.Errorf("SLO endpoint called with %s", r.Method))
	}
	if q := r.URL.Query(); q.Has("SAMLRequest") || q.Has("SAMLResponse") {
		return malformed(errors.New("a POST with a SAML message in its URL"))
	}
	if r.PostForm == nil {
		if r.ContentLength > maxLogoutInput {
			return nil, providers.Fail("slo_too_large", public, fmt.Errorf("body of %d bytes, over %d", r.ContentLength, maxLogoutInput))
		}
		r.Body = http.MaxBytesReader(nil, r.Body, maxLogoutInput)
		if err := r.ParseForm(); err != nil {
			r.PostForm, r.Form = nil, nil
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, providers.Fail("slo_too_large", public, fmt.Errorf("body over %d bytes", maxLogoutInput))
			}
			return malformed(err)
		}
	}
	f := r.PostForm
	m := &logoutMessage{post: true}
	switch {
	case f.Has("SAMLart"):
		return nil, providers.Fail("slo_unsupported_binding", public, errors.New("HTTP-Artifact is not accepted"))
	case f.Has("SigAlg") || f.Has("Signature"):
		return nil, providers.Fail("slo_unsupported_binding", public, errors.New("HTTP-POST-SimpleSign is not accepted"))
	case f.Has("SAMLRequest") && f.Has("SAMLResponse"):
		return malformed(errors.New("both SAMLRequest and SAMLResponse"))
	case f.Has("SAMLRequest"):
		m.param = "SAMLRequest"
	case f.Has("SAMLResponse"):
		m.param = "SAMLResponse"
	default:
		return malformed(errors.New("no SAMLRequest or SAMLResponse"))
	}
	if len(f[m.param]) > 1 || len(f["RelayState"]) > 1 {
		return malformed(fmt.Errorf("%s or RelayState given more than once", m.param))
	}
	v := f.Get(m.param)
	if len(v) > maxLogoutInput {
		return nil, providers.Fail("slo_too_large", public, fmt.Errorf("%s over %d bytes", m.param, maxLogoutInput))
	}
	enc := strings.Map(func(c rune) rune {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return -1 // some IdPs wrap their base64
		}
		return c
	}, v)
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(raw) == 0 {
		return malformed(fmt.Errorf("%s is not base64: %v", m.param, err))
	}
	m.xml = raw
	m.relay, m.hasRelay = f.Get("RelayState"), f.Has("RelayState")
	if len(m.relay) > maxRelayState {
		return malformed(fmt.Errorf("RelayState of %d bytes", len(m.relay)))
	}
	return m, nil
}

// readRedirect parses the raw query of an HTTP-Redirect message once:
// every value used later (the message, the RelayState echoed back, the
// octets the signature covers) comes from this one parse.
func readRedirect(rawQuery string) (*logoutMessage, *providers.LoginError) {
	public := publicSLORequest
	malformed := func(err error) (*logoutMessage, *providers.LoginError) {
		return nil, providers.Fail("slo_malformed", public, err)
	}
	if len(rawQuery) > maxLogoutInput {
		return nil, providers.Fail("slo_too_large", public, fmt.Errorf("query of %d bytes, over %d", len(rawQuery), maxLogoutInput))
	}
	raw := map[string]string{}
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return malformed(fmt.Errorf("bad query parameter name: %w", err))
		}
		switch key {
		case "SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature":
		case "SAMLart", "SAMLEncoding":
			return nil, providers.Fail("slo_unsupported_binding", public, fmt.Errorf("query parameter %s is not accepted", key))
		default:
			continue
		}
		if _, dup := raw[key]; dup {
			return malformed(fmt.Errorf("query parameter %s given more than once", key))
		}
		raw[key] = v
	}
	m := &logoutMessage{rawQuery: rawQuery}
	_, hasReq := raw["SAMLRequest"]
	_, hasResp := raw["SAMLResponse"]
	switch {
	case hasReq && hasResp:
		return malformed(errors.New("both SAMLRequest and SAMLResponse"))
	case hasReq:
		m.param = "SAMLRequest"
	case hasResp:
		m.param = "SAMLResponse"
	default:
		return malformed(errors.New("no SAMLRequest or SAMLResponse"))
	}
	dec := map[string]string{}
	for k, v := range raw {
		d, err := url.QueryUnescape(v)
		if err != nil {
			return malformed(fmt.Errorf("bad query parameter %s: %w", k, err))
		}
		dec[k] = d
	}
	m.relay, m.hasRelay = dec["RelayState"]
	if len(m.relay) > maxRelayState {
		return malformed(fmt.Errorf("RelayState of %d bytes", len(m.relay)))
	}
	m.sigAlg, m.sig = dec["SigAlg"], dec["Signature"]
	if m.sigAlg == "" || m.sig == "" {
		return nil, providers.Fail("slo_unsigned", public, errors.New("HTTP-Redirect message without SigAlg and Signature"))
	}
	signed := m.param + "=" + raw[m.param]
	if rs, ok := raw["RelayState"]; ok {
		signed += "&RelayState=" + rs
	}
	signed += "&SigAlg=" + raw["SigAlg"]
	m.signed = []byte(signed)

	deflated, err := base64.StdEncoding.DecodeString(dec[m.param])
	if err != nil || len(deflated) == 0 {
		return malformed(fmt.Errorf("%s is not base64: %v", m.param, err))
	}
	xml, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(deflated)), maxLogoutXML+1))
	switch {
	case len(xml) > maxLogoutXML:
		return nil, providers.Fail("slo_too_large", public, fmt.Errorf("%s inflates to more than %d bytes", m.param, maxLogoutXML))
	case err != nil:
		return malformed(fmt.Errorf("%s does not inflate: %w", m.param, err))
	}
	m.xml = xml
	return m, nil
}

// redirectSigAlgs are the SigAlg values accepted on the HTTP-Redirect
// binding (SHA-1 is refused, as for XML signatures).
var redirectSigAlgs = map[string]x509.SignatureAlgorithm{
	dsig.RSASHA256SignatureMethod:   x509.SHA256WithRSA,
	dsig.RSASHA384SignatureMethod:   x509.SHA384WithRSA,
	dsig.RSASHA512SignatureMethod:   x509.SHA512WithRSA,
	dsig.ECDSASHA256SignatureMethod: x509.ECDSAWithSHA256,
	dsig.ECDSASHA384SignatureMethod: x509.ECDSAWithSHA384,
	dsig.ECDSASHA512SignatureMethod: x509.ECDSAWithSHA512,
}

// checkQuerySignature verifies the HTTP-Redirect query signature with the
// IdP's signing certificates (valid now) from its metadata.
func (p *Provider) checkQuerySignature(md *metadata, m *logoutMessage, public string) *providers.LoginError {
	alg, ok := redirectSigAlgs[m.sigAlg]
	if !ok {
		if m.sigAlg == dsig.RSASHA1SignatureMethod || m.sigAlg == dsig.ECDSASHA1SignatureMethod {
			return providers.Fail("slo_weak_signature", public, fmt.Errorf("SigAlg %s (SHA-1) is refused", m.sigAlg))
		}
		return providers.Fail("slo_bad_signature", public, fmt.Errorf("unsupported SigAlg %q", clip(m.sigAlg)))
	}
	sig, err := base64.StdEncoding.DecodeString(m.sig)
	if err != nil {
		return providers.Fail("slo_bad_signature", public, fmt.Errorf("Signature is not base64: %w", err))
	}
	now := p.now()
	lastErr := errors.New("the IdP metadata has no signing certificate")
	for _, c := range idpSigningCerts(md) {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			lastErr = fmt.Errorf("IdP certificate %q is not valid now", c.Subject.CommonName)
			continue
		}
		if err := c.CheckSignature(alg, m.signed, sig); err != nil {
			lastErr = err
			continue
		}
		return nil
	}
	return providers.Fail("slo_bad_signature", public, fmt.Errorf("query signature: %w", lastErr))
}

// idpSigningCerts are the IdP's signing certificates from its metadata
// (KeyDescriptors with use "signing" or none).
func idpSigningCerts(md *metadata) []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range md.ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
				if err != nil {
					continue
				}
				if cert, err := x509.ParseCertificate(der); err == nil {
					out = append(out, cert)
				}
			}
		}
	}
	return out
}

// inspectLogout refuses messages whose shape Gatehouse does not take,
// before crewjam looks at any signature: not a samlp:LogoutRequest
// (SAMLRequest) or samlp:LogoutResponse (SAMLResponse), a DOCTYPE, a
// comment or processing instruction, elements nested deeper than 32, two
// elements with the same ID, a ds:Signature anywhere but directly under
// the root or more than one there (signature wrapping), and an HTTP-POST
// message without that signature.
func inspectLogout(m *logoutMessage, public string) (*etree.Element, *providers.LoginError) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(m.xml); err != nil {
		return nil, providers.Fail("slo_malformed", public, fmt.Errorf("not XML: %w", err))
	}
	for _, tok := range doc.Child {
		if _, ok := tok.(*etree.Directive); ok {
			return nil, providers.Fail("slo_malformed", public, errors.New("message has a DOCTYPE"))
		}
	}
	root := doc.Root()
	want := "LogoutRequest"
	if m.param == "SAMLResponse" {
		want = "LogoutResponse"
	}
	if root == nil || root.Tag != want || root.NamespaceURI() != nsProtocol {
		return nil, providers.Fail("slo_malformed", public, fmt.Errorf("%s is not a samlp:%s", m.param, want))
	}
	var (
		ids        = map[string]int{}
		dupID      string
		sigs       int
		nestedSig  bool
		comment    bool
		tooDeep    bool
		walk       func(e *etree.Element, depth int)
		isDSigElem = func(e *etree.Element) bool { return e.Tag == "Signature" && e.NamespaceURI() == nsDSig }
	)
	walk = func(e *etree.Element, depth int) {
		for _, at := range e.Attr {
			if at.Key == "ID" {
				if ids[at.Value]++; ids[at.Value] == 2 {
					dupID = at.Value
				}
			}
		}
		for _, tok := range e.Child {
			switch t := tok.(type) {
			case *etree.Comment, *etree.ProcInst, *etree.Directive:
				comment = true
			case *etree.Element:
				if isDSigElem(t) {
					if e == root {
						sigs++
					} else {
						nestedSig = true
					}
				}
				if depth < 32 {
					walk(t, depth+1)
				} else {
					tooDeep = true
				}
			}
		}
	}
	walk(root, 0)
	switch {
	case tooDeep:
		return nil, providers.Fail("slo_malformed", public, errors.New("elements nested more than 32 deep"))
	case comment:
		return nil, providers.Fail("slo_malformed", public, errors.New("message contains an XML comment or processing instruction"))
	case dupID != "":
		return nil, providers.Fail("slo_signature_wrapping", public, fmt.Errorf("two elements share the ID %q", clip(dupID)))
	case nestedSig || sigs > 1:
		return nil, providers.Fail("slo_signature_wrapping", public, errors.New("a signature that is not the message's own"))
	case m.post && sigs == 0:
		return nil, providers.Fail("slo_unsigned", public, fmt.Errorf("HTTP-POST %s is not signed", want))
	case root.SelectAttrValue("ID", "") == "":
		return nil, providers.Fail("slo_malformed", public, fmt.Errorf("%s has no ID", want))
	}
	return root, nil
}

// classifySLO turns crewjam's verdict on a logout message into a reason.
func classifySLO(err error, public string) *providers.LoginError {
	cause := err
	var ire *crewjam.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		cause = ire.PrivateErr // never ire.Response: that is the XML
	}
	reason := "slo_malformed"
	switch {
	case errors.Is(cause, crewjam.ErrAssertionReplayed):
		reason = "slo_replayed"
	case errors.Is(cause, crewjam.ErrCertificateNotValidNow):
		reason = "slo_certificate_expired"
	case errors.Is(cause, crewjam.ErrInvalidSignature) && errors.Is(cause, crewjam.ErrUnsupported):
		reason = "slo_weak_signature"
	case errors.Is(cause, crewjam.ErrInvalidSignature), errors.Is(cause, crewjam.ErrUntrustedCertificate):
		reason = "slo_bad_signature"
	case errors.Is(cause, crewjam.ErrExpired):
		reason, public = "slo_expired", publicSLOClock
	case errors.Is(cause, crewjam.ErrNotYetValid):
		reason, public = "slo_not_yet_valid", publicSLOClock
	case errors.Is(cause, crewjam.ErrDestinationMismatch):
		reason = "slo_wrong_destination"
	case errors.Is(cause, crewjam.ErrIssuerMismatch):
		reason = "slo_wrong_issuer"
	case errors.Is(cause, crewjam.ErrRequestIDMismatch):
		reason = "slo_unknown_request"
	case cause.Error() == "signature element not present":
		reason = "slo_unsigned"
	case strings.HasPrefix(cause.Error(), "cannot validate signature"):
		reason = "slo_bad_signature"
	}
	return providers.Fail(reason, public, bounded{cause})
}

// respondLogout answers the IdP's LogoutRequest reqID: a signed
// LogoutResponse to the IdP's SingleLogoutService ResponseLocation (or
// Location), by binding when the IdP offers it, with the RelayState it
// came with.
func (p *Provider) respondLogout(w http.ResponseWriter, r *http.Request, md *metadata, binding, reqID, relay string, ended error) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	binding, ep, ok := idpSLO(md, binding)
	if !ok {
		p.log.Error("cannot answer the IdP's LogoutRequest: its metadata lists no SingleLogoutService", zap.String("provider", p.name))
		h.Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "You are signed out.\n")
		return
	}
	dest := ep.ResponseLocation
	if dest == "" {
		dest = ep.Location
	}
	status := crewjam.Status{StatusCode: crewjam.StatusCode{Value: crewjam.StatusSuccess}}
	if ended != nil {
		status = crewjam.Status{StatusCode: crewjam.StatusCode{Value: statusResponder}}
	}
	resp := &crewjam.LogoutResponse{
		ID:           "id-" + randHexID(20),
		InResponseTo: reqID,
		Version:      "2.0",
		IssueInstant: p.now().UTC(),
		Destination:  dest,
		Issuer:       &crewjam.Issuer{Format: entityFormat, Value: p.entityID},
		Status:       status,
	}
	fail := func(err error) {
		p.log.Error("cannot build the LogoutResponse", zap.String("provider", p.name), zap.Error(err))
		http.Error(w, "sign-out could not be completed", http.StatusInternalServerError)
	}
	if binding == crewjam.HTTPRedirectBinding {
		u, err := p.redirectURL(dest, "SAMLResponse", resp.Element(), relay)
		if err != nil {
			fail(err)
			return
		}
		http.Redirect(w, r, u, http.StatusSeeOther)
		return
	}
	sp := p.serviceProvider(md, p.acsURL)
	if err := sp.SignLogoutResponse(resp); err != nil {
		fail(err)
		return
	}
	buf, err := elementBytes(resp.Element())
	if err != nil {
		fail(err)
		return
	}
	fields := []formField{{"SAMLResponse", base64.StdEncoding.EncodeToString(buf)}}
	if relay != "" {
		fields = append(fields, formField{"RelayState", relay})
	}
	if err := writePostPage(w, dest, fields); err != nil {
		fail(err)
	}
}

type formField struct{ Name, Value string }

// originRE is what a form-action source may be: scheme://host[:port].
var originRE = regexp.MustCompile(`^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

var postPage = template.Must(template.New("slo-post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Signing out</title></head>
<body><form method="post" action="{{.Action}}" id="slo">{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}<noscript><p>Press Continue to finish signing out.</p></noscript><button type="submit">Continue</button></form>
<script nonce="{{.Nonce}}">document.getElementById("slo").submit()</script></body></html>
`))

// writePostPage writes the HTTP-POST binding page: a form to action that
// submits itself (one script, allowed by its nonce) or with its button.
// The CSP allows nothing else, and the form may only go to action's
// origin.
func writePostPage(w http.ResponseWriter, action string, fields []formField) error {
	u, err := url.Parse(action)
	if err != nil {
		return err
	}
	origin := u.Scheme + "://" + u.Host
	if !originRE.MatchString(origin) {
		return fmt.Errorf("cannot post to %q", action)
	}
	nonce := randomToken()
	var buf bytes.Buffer
	if err := postPage.Execute(&buf, struct {
		Action string
		Fields []formField
		Nonce  string
	}{action, fields, nonce}); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; form-action "+origin+"; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	_, err = w.Write(buf.Bytes())
	return err
}

// LogoutOrigins returns the origins of the IdP's single logout endpoints
// (Location and ResponseLocation, every binding), so the gateway's
// sign-out page can allow the browser to go there (CSP form-action also
// covers the redirect after the form's POST). Empty while no metadata is
// loaded or when single logout is off.
func (p *Provider) LogoutOrigins() []string {
	md := p.meta.get()
	if md == nil || !p.singleLogout {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range md.ed.IDPSSODescriptors {
		for _, s := range d.SingleLogoutServices {
			for _, loc := range []string{s.Location, s.ResponseLocation} {
				u, err := url.Parse(loc)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					continue
				}
				o := u.Scheme + "://" + u.Host
				if !seen[o] {
					seen[o] = true
					out = append(out, o)
				}
			}
		}
	}
	return out
}
