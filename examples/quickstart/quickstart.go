// Package quickstart holds the quickstart policies and a tiny upstream app
// that shows what it received from Gatehouse: the identity headers and
// whether the signed assertion verifies. StartDemo runs `gatehouse demo`:
// demo.yaml, the echo app and the demo SAML IdP (package demoidp).
package quickstart

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
)

// Policy is examples/quickstart/gatehouse.yaml.
//
//go:embed gatehouse.yaml
var Policy []byte

// Echo is an upstream that answers every request with what it received.
// When JWKSURL is set, it fetches the gateway's keys and verifies the
// X-Gatehouse-Assertion header against Issuer and the route name given by
// the request path's route (the assertion's own aud is shown).
type Echo struct {
	JWKSURL string
	Issuer  string
	// Links are the navigation shown on top of every page; nil means the
	// quickstart's (gatehouse.yaml's routes).
	Links []Link
	// Note, when set, is a line shown under the title.
	Note string

	mu       sync.Mutex
	verifier *assertion.Verifier
	fetched  time.Time
}

type echoReport struct {
	Method    string              `json:"method"`
	Path      string              `json:"path"`
	Host      string              `json:"host"`
	Headers   map[string][]string `json:"headers"`
	Assertion *assertionReport    `json:"assertion,omitempty"`
}

type assertionReport struct {
	Verified bool     `json:"verified"`
	Error    string   `json:"error,omitempty"`
	Subject  string   `json:"sub,omitempty"`
	Audience string   `json:"aud,omitempty"`
	Email    string   `json:"email,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Expires  string   `json:"exp,omitempty"`
}

func (e *Echo) verify(tok string) *assertionReport {
	if tok == "" {
		return nil
	}
	rep := &assertionReport{}
	v, err := e.keys()
	if err != nil {
		rep.Error = "cannot fetch JWKS: " + err.Error()
		return rep
	}
	// The echo app fronts every route, so it accepts whichever route name
	// the token names; a real app checks its own.
	aud := peekAudience(tok)
	c, err := v.Verify(tok, aud)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.Verified, rep.Subject, rep.Audience, rep.Email, rep.Roles = true, c.Subject, c.Audience, c.Email, c.Roles
	rep.Expires = c.Expiry.UTC().Format(time.RFC3339)
	return rep
}

func (e *Echo) keys() (*assertion.Verifier, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.verifier != nil && time.Since(e.fetched) < time.Minute {
		return e.verifier, nil
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(e.JWKSURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	v, err := assertion.NewVerifier(body, e.Issuer, time.Now)
	if err != nil {
		return nil, err
	}
	e.verifier, e.fetched = v, time.Now()
	return v, nil
}

// peekAudience reads the aud claim without verifying (verification follows).
func peekAudience(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	var c struct {
		Aud string `json:"aud"`
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	json.Unmarshal(raw, &c)
	return c.Aud
}

// Link is an entry of the echo page's navigation.
type Link struct{ Label, URL string }

// quickstartLinks are the routes of gatehouse.yaml.
var quickstartLinks = []Link{
	{"Intranet", "/"}, {"Admin area", "/admin"}, {"Shop", "/shop"}, {"My account", "/shop/account"},
	{"Public", "/public"}, {"whoami", "/.gatehouse/whoami"}, {"Sign out", "/.gatehouse/logout"},
}

// ServeHTTP reports the request as JSON (Accept: application/json) or HTML.
func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := echoReport{Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Headers: map[string][]string{}}
	for k, v := range r.Header {
		rep.Headers[k] = v
	}
	if e.JWKSURL != "" {
		rep.Assertion = e.verify(r.Header.Get("X-Gatehouse-Assertion"))
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return
	}
	var names []string
	for k := range rep.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	links := e.Links
	if links == nil {
		links = quickstartLinks
	}
	echoPage.Execute(w, map[string]any{"R": rep, "Names": names, "Links": links, "Note": e.Note})
}

var echoPage = template.Must(template.New("echo").Funcs(template.FuncMap{
	"identity": func(name string) bool {
		n := strings.ToLower(name)
		return strings.HasPrefix(n, "x-remote-") || strings.HasPrefix(n, "x-gatehouse-") || strings.HasPrefix(n, "x-shop-")
	},
	"join": strings.Join,
}).Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Echo app</title><style>
body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#1b1f24}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%;table-layout:fixed}td,th{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
@media (max-width:600px){th{width:8.5rem!important}}
th{width:14rem}.id th,.id td{background:#eef6ff}.ok{color:#116329}.bad{color:#a40e26}code{font-size:.9em}nav a{margin-right:1rem;display:inline-block;padding:.15rem 0}.note{background:#fff4e5;color:#7a3d00;padding:.4rem .6rem;border-radius:.3rem}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}.id th,.id td{background:#0c2d6b}td,th{border-color:#30363d}}
</style></head><body>
<h1>Echo app: what Gatehouse forwarded</h1>
<p><code>{{.R.Method}} {{.R.Path}}</code> on <code>{{.R.Host}}</code></p>
{{with .Note}}<p class="note">{{.}}</p>{{end}}
<nav>{{range .Links}}<a href="{{.URL}}">{{.Label}}</a> {{end}}</nav>
{{with .R.Assertion}}<h2>Signed assertion</h2>
{{if .Verified}}<p class="ok">✓ verified against the gateway's JWKS: sub <code>{{.Subject}}</code>, aud <code>{{.Audience}}</code>{{if .Roles}}, roles <code>{{join .Roles ", "}}</code>{{end}}, expires {{.Expires}}</p>
{{else}}<p class="bad">✗ not verified: {{.Error}}</p>{{end}}{{end}}
<h2>Request headers</h2><table id="headers">
{{range .Names}}<tr{{if identity .}} class="id"{{end}}><th>{{.}}</th><td>{{range index $.R.Headers .}}<code>{{.}}</code> {{end}}</td></tr>
{{end}}</table></body></html>`))
