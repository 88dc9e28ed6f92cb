// Package demoidp is the SAML identity provider of `gatehouse demo`: a few
// employees with passwords shown on its own login page, on a loopback
// port, for exactly one service provider (the demo gateway).
//
// DEMO ONLY. Its users and passwords are public, it keeps them in memory,
// and it trusts the one service provider it was started for. It is built
// on crewjam/saml's IdentityProvider, which makes and signs the
// assertions; this package only supplies the login page, the user list and
// the service provider's metadata.
//
// It keeps no single sign-on session: every sign-in asks for a password, so
// switching users is signing out of the gateway and signing in again.
package demoidp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
)

// User is a demo employee.
type User struct {
	ID       string   // the SAML NameID (persistent) and uid
	Name     string   // display name (cn)
	Email    string   // mail
	Password string   // shown on the login page: DEMO ONLY
	Groups   []string // memberOf
	Note     string   // what the user shows in the demo
}

// DefaultUsers are the demo employees: alice is staff, bob is staff and an
// IT admin, carol is a contractor.
var DefaultUsers = []User{
	{ID: "alice", Name: "Alice Employee", Email: "alice@corp.example", Password: "alice-demo-password", Groups: []string{"staff"}, Note: "employee: the intranet, not its admin area"},
	{ID: "bob", Name: "Bob Admin", Email: "bob@corp.example", Password: "bob-demo-password", Groups: []string{"staff", "it-admins"}, Note: "employee and IT admin: the intranet and its admin area"},
	{ID: "carol", Name: "Carol Contractor", Email: "carol@partner.example", Password: "carol-demo-password", Groups: []string{"contractors"}, Note: "contractor: denied everywhere"},
}

// Options configure the IdP.
type Options struct {
	// BaseURL is where browsers and the gateway reach the IdP, e.g.
	// http://127.0.0.1:9002. Its metadata is BaseURL/metadata.
	BaseURL string
	// SPEntityID is the entity ID of the one service provider served.
	SPEntityID string
	// SPMetadataURL is where that service provider's metadata is fetched,
	// at its first sign-in (the gateway starts after the IdP).
	SPMetadataURL string
	// AppURL is where to send people when a sign-in cannot finish (the
	// gateway's public URL).
	AppURL string
	// Users; nil means DefaultUsers.
	Users []User
	// Log receives the IdP's log lines (nil: discarded).
	Log *log.Logger
}

// IdP is a running demo identity provider. It is an http.Handler.
type IdP struct {
	opts Options
	idp  saml.IdentityProvider
	mux  *http.ServeMux
	log  *log.Logger

	mu      sync.Mutex
	sp      *saml.EntityDescriptor
	logins  map[string]pendingLogin // one-time login tickets, by cookie value
	origins *http.CrossOriginProtection
}

type pendingLogin struct {
	user    User
	expires time.Time
}

const (
	ticketCookie = "demoidp_login"
	ticketTTL    = time.Minute
)

// New makes the IdP with a fresh RSA signing key.
func New(opts Options) (*IdP, error) {
	key, cert, err := NewKeyPair("Gatehouse demo IdP (DEMO ONLY)")
	if err != nil {
		return nil, err
	}
	return NewWithKey(opts, key, cert)
}

// NewWithKey makes the IdP with the given signing key and certificate.
func NewWithKey(opts Options, key crypto.Signer, cert *x509.Certificate) (*IdP, error) {
	base, err := url.Parse(strings.TrimSuffix(opts.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("demoidp: bad base URL %q", opts.BaseURL)
	}
	if opts.SPEntityID == "" || opts.SPMetadataURL == "" {
		return nil, errors.New("demoidp: the service provider's entity ID and metadata URL are required")
	}
	if opts.Users == nil {
		opts.Users = DefaultUsers
	}
	lg := opts.Log
	if lg == nil {
		lg = log.New(io.Discard, "", 0)
	}
	at := func(p string) url.URL { u := *base; u.Path += p; return u }
	i := &IdP{opts: opts, log: lg, logins: map[string]pendingLogin{}, origins: http.NewCrossOriginProtection()}
	if err := i.origins.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, err
	}
	i.idp = saml.IdentityProvider{
		Signer:                  key,
		Key:                     key,
		Certificate:             cert,
		Logger:                  lg,
		MetadataURL:             at("/metadata"),
		SSOURL:                  at("/sso"),
		NameIDFormats:           []saml.NameIDFormat{saml.PersistentNameIDFormat},
		ServiceProviderProvider: i,
		SessionProvider:         i,
		OnError:                 i.onError,
	}
	i.mux = http.NewServeMux()
	i.mux.HandleFunc("GET /metadata", i.idp.ServeMetadata)
	i.mux.HandleFunc("/sso", i.idp.ServeSSO)
	i.mux.HandleFunc("POST /login", i.serveLogin)
	i.mux.HandleFunc("GET /{$}", i.serveHome)
	return i, nil
}

// MetadataURL is where the IdP's metadata is served.
func (i *IdP) MetadataURL() string { u := i.idp.MetadataURL; return u.String() }

// Users are the IdP's users.
func (i *IdP) Users() []User { return i.opts.Users }

// ServeHTTP serves the IdP's pages.
func (i *IdP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	i.mux.ServeHTTP(w, r)
}

// GetServiceProvider implements saml.ServiceProviderProvider: only the
// demo gateway is known; its metadata is fetched once, when first needed.
func (i *IdP) GetServiceProvider(r *http.Request, id string) (*saml.EntityDescriptor, error) {
	if id != i.opts.SPEntityID {
		return nil, os.ErrNotExist
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.sp != nil {
		return i.sp, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.opts.SPMetadataURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the service provider's metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the service provider's metadata: %s", resp.Status)
	}
	// The metadata comes from the demo gateway on a loopback address,
	// which the demo trusts; a real IdP would check a signature.
	md := &saml.EntityDescriptor{}
	if err := xml.Unmarshal(body, md); err != nil {
		return nil, fmt.Errorf("service provider metadata: %w", err)
	}
	if md.EntityID != id {
		return nil, fmt.Errorf("service provider metadata names %q, want %q", md.EntityID, id)
	}
	i.sp = md
	return md, nil
}

// GetSession implements saml.SessionProvider. A valid one-time login
// ticket (set by the login form a moment ago) signs the user in; anything
// else shows the login page. IsPassive requests get NoPassive: there is
// never a session to reuse.
func (i *IdP) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	if c, err := r.Cookie(ticketCookie); err == nil {
		http.SetCookie(w, i.cookie("", -1))
		i.mu.Lock()
		p, ok := i.logins[c.Value]
		delete(i.logins, c.Value)
		i.mu.Unlock()
		if ok && time.Now().Before(p.expires) {
			return i.session(p.user)
		}
	}
	if req.Request.IsPassive != nil && *req.Request.IsPassive {
		if err := i.idp.SendErrorResponse(w, req, &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoPassive,
			Message: "the demo IdP always asks for a password"}); err != nil {
			http.Error(w, "cannot answer", http.StatusInternalServerError)
		}
		return nil
	}
	i.loginPage(w, http.StatusOK, r.URL.RawQuery, req, "", "")
	return nil
}

func (i *IdP) session(u User) *saml.Session {
	now := time.Now()
	groups := make([]saml.AttributeValue, 0, len(u.Groups))
	for _, g := range u.Groups {
		groups = append(groups, saml.AttributeValue{Type: "xs:string", Value: g})
	}
	return &saml.Session{
		ID:                   randomString(24),
		CreateTime:           now,
		ExpireTime:           now.Add(5 * time.Minute),
		Index:                randomString(16),
		NameID:               u.ID,
		NameIDFormat:         string(saml.PersistentNameIDFormat),
		UserName:             u.ID,
		UserEmail:            u.Email,
		UserCommonName:       u.Name,
		AuthnContextClassRef: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
		CustomAttributes: []saml.Attribute{{
			Name: "memberOf", NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic", Values: groups,
		}},
	}
}

// serveLogin checks the posted user and password and, when they match,
// sends the browser back to /sso with the original request and a one-time
// ticket cookie.
func (i *IdP) serveLogin(w http.ResponseWriter, r *http.Request) {
	if err := i.origins.Check(r); err != nil {
		i.log.Printf("DEMO IdP: refusing a cross-origin login post: %v", err)
		http.Error(w, "cross-origin login refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	query := r.PostForm.Get("q")
	name, password := strings.TrimSpace(r.PostForm.Get("user")), r.PostForm.Get("password")
	var found *User
	for k := range i.opts.Users {
		u := &i.opts.Users[k]
		// Every user is compared, in constant time, whatever matched.
		if subtle.ConstantTimeCompare([]byte(u.ID), []byte(name))&subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) == 1 {
			found = u
		}
	}
	if found == nil {
		i.log.Printf("DEMO IdP: wrong user or password for %q", name)
		i.loginPage(w, http.StatusUnauthorized, query, nil, name, "Wrong user or password. The demo users and their passwords are listed below.")
		return
	}
	tok := randomString(24)
	i.mu.Lock()
	now := time.Now()
	for k, p := range i.logins {
		if now.After(p.expires) {
			delete(i.logins, k)
		}
	}
	i.logins[tok] = pendingLogin{user: *found, expires: now.Add(ticketTTL)}
	i.mu.Unlock()
	i.log.Printf("DEMO IdP: %s signed in (groups %s)", found.ID, strings.Join(found.Groups, ", "))
	http.SetCookie(w, i.cookie(tok, int(ticketTTL.Seconds())))
	u := i.idp.SSOURL
	u.RawQuery = query
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

func (i *IdP) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: ticketCookie, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: strings.HasPrefix(i.opts.BaseURL, "https://")}
}

// onError answers requests ServeSSO cannot complete. An AuthnRequest
// that expired while the login page was open gets a page that leads back
// to the app, which starts a new one.
func (i *IdP) onError(w http.ResponseWriter, r *http.Request, status int, err error) {
	i.log.Printf("DEMO IdP: %s %s: %v", r.Method, r.URL.Path, err)
	msg := "The sign-in request could not be handled. Go back to the app and try again."
	if errors.Is(err, saml.ErrExpired) {
		msg = "This sign-in request expired: the login page was open for more than " + saml.MaxIssueDelay.String() + ". Go back to the app and try again."
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	pageTmpl.Execute(w, page{Title: "Sign-in failed", Error: msg, AppURL: i.opts.AppURL, Users: i.opts.Users})
}

func (i *IdP) serveHome(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, page{Title: "Gatehouse demo IdP", AppURL: i.opts.AppURL, Users: i.opts.Users, Metadata: i.MetadataURL(),
		Info: "This IdP signs employees in to the demo gateway. Open the app to sign in; the IdP's login page then appears."})
}

func (i *IdP) loginPage(w http.ResponseWriter, status int, query string, req *saml.IdpAuthnRequest, user, errMsg string) {
	p := page{Title: "Sign in to Corp (demo IdP)", Login: true, Query: query, User: user, Error: errMsg, AppURL: i.opts.AppURL, Users: i.opts.Users}
	if req != nil && req.ServiceProviderMetadata != nil {
		p.SP = req.ServiceProviderMetadata.EntityID
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, p); err != nil {
		i.log.Printf("DEMO IdP: login page: %v", err)
		return
	}
	w.Write(b.Bytes())
}

type page struct {
	Title, Info, Error, AppURL, Metadata, SP string
	Login                                    bool
	Query, User                              string
	Users                                    []User
}

var pageTmpl = template.Must(template.New("idp").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>DEMO ONLY: {{.Title}}</title>
<style>
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f3f0ff;--card:#fff;--line:#d0d5dd;--accent:#6e40c9;--warn:#9a3412;--warnbg:#ffedd5;--bad:#a40e26}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#17142a;--card:#221d3a;--line:#3b3560;--accent:#b69cff;--warn:#fed7aa;--warnbg:#431407;--bad:#ff8182}}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:34rem;margin:0 auto;padding:1rem}
.demo{background:var(--warnbg);color:var(--warn);border:2px solid currentColor;border-radius:.5rem;padding:.6rem .9rem;font-weight:600}
.card{background:var(--card);border:1px solid var(--line);border-radius:.75rem;padding:1rem 1.25rem;margin:1rem 0}
h1{font-size:1.35rem;margin:.2rem 0 .8rem}label{display:block;font-weight:600;margin:.6rem 0 .2rem}
input{box-sizing:border-box;width:100%;font:inherit;padding:.55rem .7rem;border:1px solid var(--line);border-radius:.4rem;background:transparent;color:inherit}
button{margin-top:1rem;width:100%;font:inherit;font-weight:600;padding:.65rem;border:0;border-radius:.4rem;background:var(--accent);color:#fff;cursor:pointer}
.err{color:var(--bad);font-weight:600}table{width:100%;border-collapse:collapse;font-size:.92rem}td,th{text-align:left;padding:.35rem .3rem;border-bottom:1px solid var(--line);vertical-align:top}
code{font-size:.95em;overflow-wrap:anywhere}.small{font-size:.85rem;opacity:.85}.brand{color:var(--accent);font-weight:700;letter-spacing:.02em}
</style></head><body><main>
<p class="demo" role="alert">DEMO ONLY: a test identity provider with public passwords. Never use it for anything real.</p>
<div class="card">
<p class="brand">Corp SSO · demo IdP</p>
<h1>{{.Title}}</h1>
{{with .Error}}<p class="err" role="alert">{{.}}</p>{{end}}
{{with .Info}}<p>{{.}}</p>{{end}}
{{if .Login}}<form method="post" action="/login">
<input type="hidden" name="q" value="{{.Query}}">
<label for="user">User</label><input id="user" name="user" autocomplete="username" autocapitalize="none" value="{{.User}}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>{{with .SP}}<p class="small">Signing in to <code>{{.}}</code></p>{{end}}{{end}}
{{if .AppURL}}<p><a href="{{.AppURL}}">Back to the app</a></p>{{end}}
</div>
<div class="card"><h2 style="font-size:1.05rem;margin:.2rem 0">Demo users</h2>
<table><tr><th>User</th><th>Password</th><th>Groups</th></tr>
{{range .Users}}<tr><td><code>{{.ID}}</code><br><span class="small">{{.Note}}</span></td><td><code>{{.Password}}</code></td><td>{{join .Groups ", "}}</td></tr>
{{end}}</table>{{with .Metadata}}<p class="small">SAML metadata: <a href="{{.}}">{{.}}</a></p>{{end}}</div>
</main></body></html>
`))

// NewKeyPair makes an RSA-2048 key and a self-signed certificate for it,
// valid for a year: enough for a demo, quick to generate.
func NewKeyPair(cn string) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return key, cert, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
