// Package saml is Gatehouse's SAML 2.0 service provider: SP-initiated
// sign-in with the HTTP-Redirect or HTTP-POST binding, signed
// AuthnRequests, the assertion consumer service (ACS) and SP metadata
// under /.gatehouse/saml/<name>/, IdP metadata from a URL (refreshed in the
// background, the last good copy kept) or a file or inline XML, encrypted
// assertions, optional IdP-initiated sign-in, and single logout (slo.go).
//
// It is built on github.com/crewjam/saml's ServiceProvider, wired by hand
// rather than through samlsp's middleware, so that the attempt cookie,
// return URLs, sessions, error pages and logs stay Gatehouse's: the
// RelayState is the attempt's opaque state (never a URL), the AuthnRequest
// ID travels in the attempt, and every refusal is a providers.LoginError
// with a stable reason code.
//
// Before crewjam sees a response, Complete checks its shape: one Response,
// exactly one assertion as its direct child, no assertion anywhere else,
// no duplicate IDs, no XML comments and a signature somewhere. crewjam then
// verifies the signature (by the IdP's keys from its metadata), Issuer,
// Destination, Recipient, InResponseTo, audience, validity times and
// replay; Gatehouse adds its own clock-skew setting and single use of each
// request ID.
package saml

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// Defaults for unset settings.
const (
	DefaultMetadataRefresh = time.Hour
	DefaultMetadataTimeout = 10 * time.Second
	DefaultClockSkew       = 2 * time.Minute
)

// DefaultMFAAuthnContexts are the AuthnContextClassRefs requested for an
// MFA step-up and read as MFA when mfa_authn_contexts is not set: the
// REFEDS MFA profile and Entra ID's multiple-authentication class.
var DefaultMFAAuthnContexts = []string{"https://refeds.org/profile/mfa", "http://schemas.microsoft.com/claims/multipleauthn"}

// maxBody caps the ACS POST body (a SAMLResponse with a few hundred groups
// is well under it).
const maxBody = 1 << 20

// gatehousePrefix is the gateway's reserved path prefix (proxy.Prefix; a
// provider never imports the proxy).
const gatehousePrefix = "/.gatehouse/"

// Env is what a provider needs from the gateway.
type Env struct {
	// PublicURL is the gateway's public URL (server.public_url), the base
	// of the default entity ID, ACS and metadata URLs.
	PublicURL string
	// BaseDir resolves relative paths (sp_cert_file, sp_key_file,
	// idp_metadata_file): the policy file's folder.
	BaseDir string
	// Logger gets metadata events. Default: no logging.
	Logger *zap.Logger
	// HTTPClient fetches idp_metadata_url. Default: a client with
	// metadata_timeout that refuses https-to-http redirects.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Replay is the assertion replay cache. Default: one in-memory cache
	// per process, shared by every SAML provider and kept across reloads.
	Replay ReplayCache
}

// Provider is one SAML identity provider, with Gatehouse as the service
// provider.
type Provider struct {
	name, display string

	entityID    string
	metadataURL url.URL // this SP's metadata
	acsURL      url.URL // the ACS on the public URL
	sloURL      url.URL // the SLO endpoint on the public URL

	key  crypto.Signer
	cert *x509.Certificate

	binding           string
	signRequests      bool
	allowIdPInitiated bool
	skew              time.Duration
	nameIDFormat      crewjam.NameIDFormat
	mfaContexts       []string
	attrs             attributeMap
	singleLogout      bool
	sloBinding        string

	meta   *metadataSource
	replay ReplayCache
	now    func() time.Time
	clock  *dsig.Clock
	log    *zap.Logger
}

var (
	_ providers.Provider             = (*Provider)(nil)
	_ providers.CallbackPather       = (*Provider)(nil)
	_ providers.CrossSiteCallback    = (*Provider)(nil)
	_ providers.EndpointProvider     = (*Provider)(nil)
	_ providers.UnsolicitedCompleter = (*Provider)(nil)
	_ providers.ReadinessChecker     = (*Provider)(nil)
)

var nameIDFormats = map[string]crewjam.NameIDFormat{
	"":            crewjam.UnspecifiedNameIDFormat,
	"unspecified": crewjam.UnspecifiedNameIDFormat,
	"email":       crewjam.EmailAddressNameIDFormat,
	"persistent":  crewjam.PersistentNameIDFormat,
	"transient":   crewjam.TransientNameIDFormat,
}

// New builds a SAML provider from validated settings. It reads the SP key
// pair and, for idp_metadata_file and idp_metadata, the IdP metadata; with
// idp_metadata_url it starts fetching in the background (Ready reports
// when a copy is loaded) and refreshes every metadata_refresh until Close.
func New(name string, cfg *config.SAMLProvider, env Env) (*Provider, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", errs[0].Key, errs[0].Msg)
	}
	if env.Logger == nil {
		env.Logger = zap.NewNop()
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	public := strings.TrimSuffix(env.PublicURL, "/")
	if u, err := url.Parse(public); err != nil || !u.IsAbs() || u.Host == "" {
		return nil, fmt.Errorf("public URL %q is not an absolute URL", env.PublicURL)
	}
	base := public + gatehousePrefix + "saml/" + name + "/"
	p := &Provider{
		name:              name,
		display:           cfg.DisplayName,
		entityID:          cfg.EntityID,
		binding:           cfg.Binding,
		signRequests:      cfg.SignRequests == nil || *cfg.SignRequests,
		allowIdPInitiated: cfg.AllowIdPInitiated,
		skew:              cfg.ClockSkew.D(),
		nameIDFormat:      nameIDFormats[cfg.NameIDFormat],
		mfaContexts:       cfg.MFAAuthnContexts,
		attrs:             newAttributeMap(cfg.Attributes),
		singleLogout:      cfg.SingleLogout == nil || *cfg.SingleLogout,
		sloBinding:        cfg.SLOBinding,
		now:               env.Now,
		log:               env.Logger,
	}
	if p.display == "" {
		p.display = name
	}
	if p.binding == "" {
		p.binding = "redirect"
	}
	if p.sloBinding == "" {
		p.sloBinding = p.binding
	}
	if p.skew == 0 {
		p.skew = DefaultClockSkew
	}
	if len(p.mfaContexts) == 0 {
		p.mfaContexts = DefaultMFAAuthnContexts
	}
	mu, _ := url.Parse(base + "metadata")
	au, _ := url.Parse(base + "acs")
	su, _ := url.Parse(base + "slo")
	p.metadataURL, p.acsURL, p.sloURL = *mu, *au, *su
	if p.entityID == "" {
		p.entityID = mu.String()
	}
	p.clock = dsig.NewFakeClock(funcClock{Clock: clockwork.NewRealClock(), now: env.Now})

	resolve := func(path string) string {
		if path == "" || filepath.IsAbs(path) {
			return path
		}
		return filepath.Join(env.BaseDir, path)
	}
	var err error
	p.key, p.cert, err = loadKeyPair(resolve(cfg.SPCertFile), resolve(cfg.SPKeyFile))
	if err != nil {
		return nil, err
	}

	switch {
	case env.Replay != nil:
		p.replay = prefixedReplay{c: env.Replay, prefix: "saml:" + name + ":"}
	default:
		p.replay = prefixedReplay{c: defaultReplay(), prefix: "saml:" + name + ":"}
	}

	refresh := cfg.MetadataRefresh.D()
	if refresh == 0 {
		refresh = DefaultMetadataRefresh
	}
	timeout := cfg.MetadataTimeout.D()
	if timeout == 0 {
		timeout = DefaultMetadataTimeout
	}
	client := env.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: timeout, CheckRedirect: noDowngrade}
	}
	p.meta = &metadataSource{url: cfg.IdPMetadataURL, client: client, timeout: timeout, refresh: refresh,
		log: env.Logger.With(zap.String("provider", name)), now: env.Now}
	switch {
	case cfg.IdPMetadataFile != "":
		data, err := os.ReadFile(resolve(cfg.IdPMetadataFile))
		if err != nil {
			return nil, fmt.Errorf("idp_metadata_file: %w", err)
		}
		ed, err := parseIdPMetadata(data)
		if err != nil {
			return nil, fmt.Errorf("idp_metadata_file: %w", err)
		}
		p.meta.set(ed)
	case cfg.IdPMetadata != "":
		ed, err := parseIdPMetadata([]byte(cfg.IdPMetadata))
		if err != nil {
			return nil, fmt.Errorf("idp_metadata: %w", err)
		}
		p.meta.set(ed)
	default:
		p.meta.start()
		// A provider dropped without Close (a policy reload builds new
		// providers) stops refreshing once it is garbage.
		runtime.AddCleanup(p, func(m *metadataSource) { m.signalStop() }, p.meta)
	}
	return p, nil
}

// noDowngrade refuses redirects from https to http and long chains.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("refusing a redirect from https to " + req.URL.Scheme)
	}
	return nil
}

// funcClock is a clockwork.Clock whose Now is a function (Env.Now).
type funcClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c funcClock) Now() time.Time                  { return c.now() }
func (c funcClock) Since(t time.Time) time.Duration { return c.now().Sub(t) }
func (c funcClock) Until(t time.Time) time.Duration { return t.Sub(c.now()) }

// Close stops the metadata refresh. It is safe to call more than once.
func (p *Provider) Close() error {
	p.meta.close()
	return nil
}

// Name returns the provider's policy name.
func (p *Provider) Name() string { return p.name }

// Type returns "saml".
func (p *Provider) Type() string { return "saml" }

// DisplayName returns the chooser label.
func (p *Provider) DisplayName() string { return p.display }

// EntityID returns this service provider's entity ID.
func (p *Provider) EntityID() string { return p.entityID }

// CallbackPath is the ACS, relative to /.gatehouse/.
func (p *Provider) CallbackPath() string { return "saml/" + p.name + "/acs" }

// CrossSiteCallback is true: the IdP posts the response from its own site.
func (p *Provider) CrossSiteCallback() bool { return true }

// Ready is nil once IdP metadata is loaded.
func (p *Provider) Ready() error { return p.meta.ready() }

// Endpoints serves the SP metadata at saml/<name>/metadata.
func (p *Provider) Endpoints() map[string]http.Handler {
	return map[string]http.Handler{"saml/" + p.name + "/metadata": http.HandlerFunc(p.serveMetadata)}
}

// SPMetadata returns this service provider's metadata XML: entity ID, the
// ACS (HTTP-POST), the SLO endpoint (HTTP-Redirect and HTTP-POST, unless
// single_logout is false), the signing and, for an RSA key, encryption
// certificate. Upload it to the IdP or point the IdP at its URL.
func (p *Provider) SPMetadata() ([]byte, error) {
	out, err := xml.MarshalIndent(p.serviceProvider(nil, p.acsURL).Metadata(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), out...), nil
}

func (p *Provider) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := p.SPMetadata()
	if err != nil {
		p.log.Error("cannot render SP metadata", zap.String("provider", p.name), zap.Error(err))
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Disposition", `inline; filename="`+p.name+`-sp-metadata.xml"`)
	w.Write(body)
}

// serviceProvider is a crewjam ServiceProvider for one exchange: md is
// the IdP metadata (nil for the SP metadata alone), acs the ACS URL the
// exchange uses.
func (p *Provider) serviceProvider(md *metadata, acs url.URL) *crewjam.ServiceProvider {
	sp := &crewjam.ServiceProvider{
		EntityID:                         p.entityID,
		Key:                              p.key,
		Certificate:                      p.cert,
		MetadataURL:                      p.metadataURL,
		AcsURL:                           acs,
		AuthnNameIDFormat:                p.nameIDFormat,
		AssertionConsumerServiceBindings: []string{crewjam.HTTPPostBinding},
		MetadataOmitValidUntil:           true,
		Clock:                            p.clock,
		ReplayCache:                      p.replay,
		RejectSHA1Signatures:             true,
	}
	if p.signRequests {
		sp.SignatureMethod = signatureMethod(p.key)
	}
	if p.singleLogout {
		// Logout messages are always signed (saml-profiles §4.4.4.1),
		// whatever sign_requests says.
		sp.SloURL = p.sloURL
		sp.LogoutBindings = []string{crewjam.HTTPRedirectBinding, crewjam.HTTPPostBinding}
		sp.LogoutSignatureMethod = signatureMethod(p.key)
	}
	if md != nil {
		sp.IDPMetadata = md.ed
	}
	return sp
}

// stateRE matches what the proxy uses as attempt states (base64url
// tokens). A RelayState that does not look like one is not an attempt key:
// an IdP-initiated sign-in's RelayState is usually a target URL.
var stateRE = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)

// Begin builds the AuthnRequest: signed, RelayState = the attempt state,
// the request ID kept in the attempt as Data["request_id"].
func (p *Provider) Begin(_ context.Context, a *providers.Attempt) (*providers.Redirect, error) {
	md := p.meta.get()
	if md == nil {
		return nil, providers.Fail("metadata_unavailable", "Signing in with "+p.display+" is not available right now. Please try again in a minute.", p.meta.ready())
	}
	acs, err := p.attemptACS(a)
	if err != nil {
		return nil, providers.Fail("bad_callback_url", "", err)
	}
	sp := p.serviceProvider(md, acs)
	if a.StepUp != nil {
		switch {
		case len(a.StepUp.ACR) > 0:
			sp.RequestedAuthnContext = &crewjam.RequestedAuthnContext{Comparison: "exact", AuthnContextClassRefs: a.StepUp.ACR}
		case a.StepUp.MFA:
			sp.RequestedAuthnContext = &crewjam.RequestedAuthnContext{Comparison: "exact", AuthnContextClassRefs: p.mfaContexts}
		}
	}
	if (a.StepUp != nil && a.StepUp.MaxAge > 0) || a.Prompt == "login" {
		force := true
		sp.ForceAuthn = &force
	}

	binding := crewjam.HTTPRedirectBinding
	if p.binding == "post" {
		binding = crewjam.HTTPPostBinding
	}
	loc := sp.GetSSOBindingLocation(binding)
	if loc == "" { // the IdP offers only the other binding: use it
		if binding == crewjam.HTTPRedirectBinding {
			binding = crewjam.HTTPPostBinding
		} else {
			binding = crewjam.HTTPRedirectBinding
		}
		loc = sp.GetSSOBindingLocation(binding)
	}
	if loc == "" {
		return nil, providers.Fail("no_sso_endpoint", "", errors.New("IdP metadata has no SingleSignOnService for HTTP-Redirect or HTTP-POST"))
	}
	req, err := sp.MakeAuthenticationRequest(loc, binding, crewjam.HTTPPostBinding)
	if err != nil {
		return nil, providers.Fail("authn_request", "", err)
	}
	data := map[string]string{"request_id": req.ID}
	if binding == crewjam.HTTPPostBinding {
		buf, err := elementBytes(req.Element())
		if err != nil {
			return nil, providers.Fail("authn_request", "", err)
		}
		return &providers.Redirect{URL: loc, Form: map[string]string{
			"SAMLRequest": base64.StdEncoding.EncodeToString(buf),
			"RelayState":  a.State,
		}, Data: data}, nil
	}
	u, err := req.Redirect(a.State, sp)
	if err != nil {
		return nil, providers.Fail("authn_request", "", err)
	}
	return &providers.Redirect{URL: u.String(), Data: data}, nil
}

// attemptACS is the ACS URL of an attempt: the callback URL the proxy
// built for the host the browser is on (so that the attempt cookie comes
// back), or the public one.
func (p *Provider) attemptACS(a *providers.Attempt) (url.URL, error) {
	if a.CallbackURL == "" {
		return p.acsURL, nil
	}
	u, err := url.Parse(a.CallbackURL)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") ||
		u.RawQuery != "" || u.Fragment != "" || u.Path != gatehousePrefix+p.CallbackPath() {
		return url.URL{}, fmt.Errorf("unexpected callback URL %q", a.CallbackURL)
	}
	return *u, nil
}

// CallbackState reads the RelayState of the ACS POST, when it is an
// attempt key; "" otherwise (then the proxy asks CompleteUnsolicited).
func (p *Provider) CallbackState(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	if err := parseForm(r); err != nil {
		return ""
	}
	rs := r.PostForm.Get("RelayState")
	if !stateRE.MatchString(rs) {
		return ""
	}
	return rs
}

// parseForm parses the POST body once, capped at maxBody. After a
// failure, the form is left unparsed so that the next call reports the
// same error (http.MaxBytesReader keeps failing).
func parseForm(r *http.Request) error {
	if r.PostForm != nil {
		return nil
	}
	if r.ContentLength > maxBody {
		return &http.MaxBytesError{Limit: maxBody}
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		r.PostForm, r.Form = nil, nil
		return err
	}
	return nil
}

// Complete verifies the SAMLResponse posted to the ACS for attempt a.
func (p *Provider) Complete(_ context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, error) {
	assertion, err := p.complete(r, a)
	if err != nil {
		return nil, err
	}
	return p.identity(assertion)
}

// CompleteWithTokens is Complete, plus what single logout needs to name
// the session to the IdP: "sid", the SessionIndex of the AuthnStatement
// (when the IdP gave one), and the NameID's Format, NameQualifier and
// SPNameQualifier as "saml_name_id_format", "saml_name_qualifier" and
// "saml_sp_name_qualifier" (when present). The NameID itself is the
// identity's Subject.
func (p *Provider) CompleteWithTokens(_ context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, map[string]string, error) {
	assertion, err := p.complete(r, a)
	if err != nil {
		return nil, nil, err
	}
	id, err := p.identity(assertion)
	if err != nil {
		return nil, nil, err
	}
	tokens := map[string]string{}
	for _, st := range assertion.AuthnStatements {
		if si := strings.TrimSpace(st.SessionIndex); si != "" {
			if hasControl(si) {
				return nil, nil, providers.Fail("bad_attribute", publicRetry, errors.New("SessionIndex contains control characters"))
			}
			tokens[TokenSessionIndex] = si
			break
		}
	}
	nid := assertion.Subject.NameID // identity checked it is there
	for k, v := range map[string]string{TokenNameIDFormat: nid.Format, TokenNameQualifier: nid.NameQualifier, TokenSPNameQualifier: nid.SPNameQualifier} {
		if v != "" && !hasControl(v) {
			tokens[k] = v
		}
	}
	return id, tokens, nil
}

// complete verifies the response and returns its assertion.
func (p *Provider) complete(r *http.Request, a *providers.Attempt) (*crewjam.Assertion, error) {
	reqID := a.Data["request_id"]
	if reqID == "" {
		return nil, providers.Fail("unknown_request", publicRetry, errors.New("the attempt carries no AuthnRequest ID"))
	}
	acs, err := p.attemptACS(a)
	if err != nil {
		return nil, providers.Fail("bad_callback_url", "", err)
	}
	raw, lerr := p.readResponse(r)
	if lerr != nil {
		return nil, lerr
	}
	md := p.meta.get()
	if md == nil {
		return nil, providers.Fail("metadata_unavailable", "Signing in with "+p.display+" is not available right now. Please try again in a minute.", p.meta.ready())
	}
	sp := p.serviceProvider(md, acs)
	assertion, lerr := p.verify(sp, raw, []string{reqID}, acs)
	if lerr != nil {
		return nil, lerr
	}
	// The request ID is single use, whatever the assertion: a second
	// response to the same AuthnRequest is refused.
	if err := p.replay.Consume("request:"+reqID, a.Created.Add(time.Hour)); err != nil {
		if errors.Is(err, ErrReplayed) {
			return nil, providers.Fail("request_reused", publicReplayed, fmt.Errorf("InResponseTo %q was already answered", reqID))
		}
		return nil, providers.Fail("replay_cache", "", err)
	}
	return assertion, nil
}

// CompleteUnsolicited accepts an IdP-initiated response when
// allow_idp_initiated is set. It is checked like any other (signature,
// audience, recipient and destination on the public ACS, validity, replay)
// and must not answer a request (no InResponseTo). The RelayState, if any,
// is returned as the return URL, for the proxy to validate.
func (p *Provider) CompleteUnsolicited(_ context.Context, r *http.Request) (*identity.Identity, string, error) {
	if !p.allowIdPInitiated {
		return nil, "", providers.Fail("idp_initiated_disabled", "Please start signing in from this site.", errors.New("IdP-initiated sign-in is not allowed for this provider (allow_idp_initiated: false), or the response lost its RelayState"))
	}
	raw, lerr := p.readResponse(r)
	if lerr != nil {
		return nil, "", lerr
	}
	md := p.meta.get()
	if md == nil {
		return nil, "", providers.Fail("metadata_unavailable", "Signing in with "+p.display+" is not available right now. Please try again in a minute.", p.meta.ready())
	}
	sp := p.serviceProvider(md, p.acsURL)
	sp.AllowIDPInitiated = true
	assertion, lerr := p.verify(sp, raw, nil, p.acsURL)
	if lerr != nil {
		return nil, "", lerr
	}
	id, err := p.identity(assertion)
	if err != nil {
		return nil, "", err
	}
	return id, r.PostForm.Get("RelayState"), nil
}
