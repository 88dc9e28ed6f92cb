package e2e

// Browser sign-ins through the whole gateway and independent identity
// providers: a headless chromium (chromedp) drives the real pages, the
// gateway serves on a real loopback listener (reached as localhost, so its
// Secure cookies work in Chromium), and the providers are the ones the
// interop tests use: panva's oidc-provider (e2e/idp/oidc) and samlify
// (e2e/idp/saml), each a node process. Without chromium, node or the IdPs'
// node_modules the tests are skipped loudly; in CI (CI set) they fail.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/providers/saml"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

const bidpSessionKey = "e2e-browser-session-key-0123456789abcdef"

// bidpGateway is a gateway on a reserved loopback listener with the quickstart
// echo app as its upstream.
type bidpGateway struct {
	ln     net.Listener
	public string // http://localhost:PORT
	up     string // the echo app's URL
	gw     *proxy.Gateway
	log    syncBuffer
}

// reserveGateway opens the gateway's listener and starts the echo app, so
// the IdPs can be told the gateway's URLs before the policy is built.
func reserveGateway(t *testing.T) *bidpGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &bidpGateway{ln: ln, public: fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port), up: "http://" + upLn.Addr().String()}
	echo := &quickstart.Echo{JWKSURL: "http://" + ln.Addr().String() + "/.gatehouse/jwks.json", Issuer: g.public}
	up := &http.Server{Handler: echo}
	go up.Serve(upLn)
	t.Cleanup(func() {
		up.Close()
		ln.Close() // if serve never ran
	})
	return g
}

// serve builds the policy with app.LoadBytes and app.Build and serves it.
func (g *bidpGateway) serve(t *testing.T, policy string) {
	t.Helper()
	env := func(k string) (string, bool) {
		switch k {
		case "SESSION_KEY":
			return bidpSessionKey, true
		case "OIDC_SECRET":
			return opClientSecret, true
		}
		return "", false
	}
	l, err := app.LoadBytes(filepath.Join(t.TempDir(), "browser-idp.yaml"), []byte(policy), env)
	if err != nil {
		t.Fatalf("policy: %v\n%s", err, policy)
	}
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(&g.log), zap.DebugLevel)
	opts, _, err := app.Build(l, zap.New(core), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	g.gw = gw
	srv := &http.Server{Handler: gw}
	go srv.Serve(g.ln)
	t.Cleanup(func() {
		srv.Close()
		for _, p := range opts.Providers {
			if c, ok := p.(io.Closer); ok {
				c.Close() // stops the SAML metadata refresh
			}
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.log.String())
		}
	})
}

// waitReady waits until every provider has its fetched material.
func (g *bidpGateway) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := g.gw.Ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startBrowserOP runs the oidc-provider OP for the gateway at public: its
// callback and post-logout URIs are the gateway's. It returns the issuer.
func startBrowserOP(t *testing.T, redirectURI, postLogoutURI string) string {
	t.Helper()
	return startOPWith(t, []string{redirectURI}, postLogoutURI)
}

// navTrace records the browser's document requests, redirect hops
// included, with the status each one got.
type navTrace struct {
	mu   sync.Mutex
	hops []navHop
}

type navHop struct {
	id          network.RequestID
	Method, URL string
	Status      int64
}

func (h navHop) String() string { return fmt.Sprintf("%s %s → %d", h.Method, h.URL, h.Status) }

func traceNavigations(ctx context.Context) *navTrace {
	tr := &navTrace{}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.Type != network.ResourceTypeDocument {
				return
			}
			tr.mu.Lock()
			if e.RedirectResponse != nil {
				tr.setStatusLocked(e.RequestID, e.RedirectResponse.Status)
			}
			tr.hops = append(tr.hops, navHop{id: e.RequestID, Method: e.Request.Method, URL: e.Request.URL})
			tr.mu.Unlock()
		case *network.EventResponseReceived:
			if e.Type != network.ResourceTypeDocument {
				return
			}
			tr.mu.Lock()
			tr.setStatusLocked(e.RequestID, e.Response.Status)
			tr.mu.Unlock()
		}
	})
	return tr
}

func (tr *navTrace) setStatusLocked(id network.RequestID, status int64) {
	for i := len(tr.hops) - 1; i >= 0; i-- {
		if tr.hops[i].id == id && tr.hops[i].Status == 0 {
			tr.hops[i].Status = status
			return
		}
	}
}

// mark is the number of hops so far: find(from=mark) looks at later ones.
func (tr *navTrace) mark() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.hops)
}

// find returns the first hop at or after from with the method whose URL
// starts with prefix.
func (tr *navTrace) find(from int, method, prefix string) (navHop, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, h := range tr.hops[min(from, len(tr.hops)):] {
		if h.Method == method && strings.HasPrefix(h.URL, prefix) {
			return h, true
		}
	}
	return navHop{}, false
}

func (tr *navTrace) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	for i, h := range tr.hops {
		u := h.URL
		if len(u) > 200 {
			u = u[:200] + "…"
		}
		fmt.Fprintf(&b, "  %2d %s %s → %d\n", i, h.Method, u, h.Status)
	}
	return b.String()
}

// echoHeaders reads the echo app's header table: name → value(s).
func echoHeaders(out *map[string]string) chromedp.Action {
	return chromedp.Evaluate(`(() => {
		const out = {};
		for (const tr of document.querySelectorAll('table tr')) {
			const th = tr.querySelector('th'), td = tr.querySelector('td');
			if (th && td) out[th.textContent.trim()] = td.textContent.trim();
		}
		return out;
	})()`, out)
}

// newPhoneBrowser is newBrowser at a phone's size, emulated as a mobile
// device.
func newPhoneBrowser(t *testing.T) context.Context {
	t.Helper()
	ctx := newBrowser(t, 390, 844)
	if err := chromedp.Run(ctx, phoneViewport()); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// phoneViewport emulates a phone's viewport, 390x844 CSS pixels. The
// window size alone does not do it: headless chromium's window is at least
// 500 pixels wide and its height includes the browser's own bars.
func phoneViewport() chromedp.Action {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)
}

// viewportWidth checks that the page is laid out at want CSS pixels.
func viewportWidth(t *testing.T, want int64) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var w int64
		if err := chromedp.Evaluate(`document.documentElement.clientWidth`, &w).Do(ctx); err != nil {
			return err
		}
		if w != want {
			t.Errorf("page laid out %d CSS pixels wide, want %d", w, want)
		}
		return nil
	})
}

// TestBrowserOIDCChooser: the customer audience offers the oidc-provider OP
// and a static demo provider, so /shop leads to the chooser; choosing the
// OP signs in through it and lands on /shop with the OP's identity; sign-out
// ends the gateway session and goes through the OP's end-session endpoint
// (RP-initiated logout, confirmed on the OP's page).
func TestBrowserOIDCChooser(t *testing.T) {
	chromiumPath(t)
	nodeOP(t)
	start := time.Now()
	g := reserveGateway(t)
	issuer := startBrowserOP(t, g.public+"/.gatehouse/callback/op", g.public+"/shop")
	g.serve(t, `version: 1
server:
  public_url: "`+g.public+`"
session:
  keys: ["${SESSION_KEY}"]
branding:
  title: Gatehouse e2e shop
audiences:
  customer: { providers: [op, shoppers] }
providers:
  op:
    type: oidc
    display_name: Test OP (oidc-provider)
    issuer: "`+issuer+`"
    client_id: `+opClientID+`
    client_secret: ${OIDC_SECRET}
    scopes: [openid, email, profile, groups]
  shoppers:
    type: static
    display_name: Demo shoppers
    users:
      - { sub: c-1001, name: Dana Customer, email: dana@mail.example }
routes:
  - name: shop
    match: { path: /shop }
    audience: customer
    allow: { authenticated: true }
    upstream: "`+g.up+`"
    forward: { user: X-Remote-User, email: X-Remote-Email, name: X-Remote-Name, groups: X-Remote-Groups }
`)
	t.Logf("OP and gateway up in %v", time.Since(start).Round(time.Millisecond))

	ctx := newPhoneBrowser(t)
	tr := traceNavigations(ctx)
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("browser navigations:\n%s", tr)
		}
	}()

	// /shop → chooser, at phone and desktop widths.
	var chooser, chooserURL string
	var labels, signups []string
	err := chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/shop"),
		chromedp.WaitVisible(`a.choice.kind-oidc`, chromedp.ByQuery),
		chromedp.Location(&chooserURL),
		chromedp.Text(`body`, &chooser, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('ul.choices a.choice')].map(a => a.textContent.trim())`, &labels),
		chromedp.Evaluate(`[...document.querySelectorAll('ul.signups a')].map(a => a.textContent.trim() + " " + a.getAttribute('href'))`, &signups),
		viewportWidth(t, 390),
		shot(t, ctx, "chooser-phone.png"),
		chromedp.EmulateViewport(1280, 800),
		chromedp.WaitVisible(`a.choice.kind-oidc`, chromedp.ByQuery),
		viewportWidth(t, 1280),
		shot(t, ctx, "chooser-desktop.png"),
		phoneViewport(),
	)
	if err != nil {
		t.Fatalf("chooser: %v", err)
	}
	if !strings.HasPrefix(chooserURL, g.public+"/.gatehouse/login?") || !strings.Contains(chooserURL, "audience=customer") {
		t.Errorf("chooser at %s", chooserURL)
	}
	if len(labels) != 2 || !strings.Contains(labels[0], "Test OP (oidc-provider)") || !strings.Contains(labels[1], "Demo shoppers") {
		t.Errorf("chooser choices %q", labels)
	}
	// The OP has a sign-up screen (prompt=create); the static provider has none.
	if len(signups) != 1 || !strings.HasPrefix(signups[0], "Create an account with Test OP (oidc-provider) /.gatehouse/login?") ||
		!strings.Contains(signups[0], "prompt=create") || !strings.Contains(signups[0], "provider=op") {
		t.Errorf("chooser sign-up links %q", signups)
	}
	if !strings.Contains(chooser, "Choose how you want to sign in") {
		t.Errorf("chooser page:\n%s", chooser)
	}

	// Choose the OP: its interactions answer at once; back at the callback,
	// then /shop with the OP's identity.
	signIn := tr.mark()
	var seen map[string]string
	var landed, app string
	err = chromedp.Run(ctx,
		chromedp.Click(`a.choice.kind-oidc`, chromedp.ByQuery),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Location(&landed),
		chromedp.Text(`body`, &app, chromedp.ByQuery),
		echoHeaders(&seen),
		shot(t, ctx, "oidc-shop-phone.png"),
	)
	if err != nil {
		t.Fatalf("sign-in through the OP: %v", err)
	}
	if landed != g.public+"/shop" {
		t.Errorf("landed on %s, want %s/shop", landed, g.public)
	}
	for _, step := range []struct{ method, prefix string }{
		{"GET", g.public + "/.gatehouse/login?"},
		{"GET", issuer + "/auth?"},
		{"GET", issuer + "/interaction/"},
		{"GET", g.public + "/.gatehouse/callback/op?"},
	} {
		if _, ok := tr.find(signIn, step.method, step.prefix); !ok {
			t.Errorf("the sign-in did not go through %s %s…", step.method, step.prefix)
		}
	}
	if h, ok := tr.find(signIn, "GET", g.public+"/.gatehouse/callback/op?"); ok && h.Status != http.StatusSeeOther {
		t.Errorf("callback answered %d, want 303", h.Status)
	}
	if seen["X-Remote-Email"] != "alice@example.com" || seen["X-Remote-User"] != "alice-0001" || seen["X-Remote-Name"] != "Alice Example" ||
		!strings.Contains(seen["X-Remote-Groups"], "staff") {
		t.Errorf("upstream saw identity headers %q %q %q %q", seen["X-Remote-User"], seen["X-Remote-Email"], seen["X-Remote-Name"], seen["X-Remote-Groups"])
	}
	if !strings.Contains(app, "verified against the gateway's JWKS") || !strings.Contains(app, "aud shop") {
		t.Errorf("the assertion did not verify at the upstream:\n%s", app)
	}
	for k := range seen {
		if strings.EqualFold(k, "Authorization") {
			t.Errorf("upstream received %s", k)
		}
	}
	if c := seen["Cookie"]; strings.Contains(c, "gatehouse") {
		t.Errorf("upstream received Gatehouse's cookies: %s", c)
	}

	// Sign out: the gateway's confirmation, then the OP's end-session page
	// (its own confirmation), then back to /shop, which asks again.
	signOut := tr.mark()
	var opPage, opURL, back string
	err = chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/.gatehouse/logout?rd=/shop"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`button[name="logout"][value="yes"]`, chromedp.ByQuery),
		chromedp.Location(&opURL),
		chromedp.Text(`body`, &opPage, chromedp.ByQuery),
		shot(t, ctx, "oidc-op-logout-phone.png"),
		chromedp.Click(`button[name="logout"][value="yes"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`a.choice.kind-oidc`, chromedp.ByQuery),
		chromedp.Location(&back),
	)
	if err != nil {
		t.Fatalf("sign-out: %v", err)
	}
	if !strings.HasPrefix(opURL, issuer+"/session/end") || !strings.Contains(opPage, "sign-out") {
		t.Errorf("OP end-session page at %s:\n%s", opURL, opPage)
	}
	if h, ok := tr.find(signOut, "POST", g.public+"/.gatehouse/logout"); !ok || h.Status != http.StatusSeeOther {
		t.Errorf("gateway sign-out POST: %v (found %v), want 303 to the OP", h, ok)
	}
	h, ok := tr.find(signOut, "GET", issuer+"/session/end?")
	if !ok {
		t.Error("the browser never reached the OP's end_session_endpoint")
	} else {
		q, _ := url.Parse(h.URL)
		v := q.Query()
		if v.Get("client_id") != opClientID || v.Get("post_logout_redirect_uri") != g.public+"/shop" || v.Get("id_token_hint") == "" {
			t.Errorf("end-session request %s: client_id %q post_logout_redirect_uri %q id_token_hint set %v",
				q.Path, v.Get("client_id"), v.Get("post_logout_redirect_uri"), v.Get("id_token_hint") != "")
		}
	}
	if _, ok := tr.find(signOut, "POST", issuer+"/session/end/confirm"); !ok {
		t.Error("the OP's sign-out was not confirmed")
	}
	if _, ok := tr.find(signOut, "GET", g.public+"/shop"); !ok {
		t.Error("the OP did not send the browser back to /shop")
	}
	if !strings.HasPrefix(back, g.public+"/.gatehouse/login?") {
		t.Errorf("after the OP's sign-out the browser is at %s, want the chooser", back)
	}

	// The gateway session is gone: whoami is empty and /shop asks again.
	var whoami, again string
	err = chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/.gatehouse/whoami"),
		chromedp.Text(`body`, &whoami, chromedp.ByQuery),
		chromedp.Navigate(g.public+"/shop"),
		chromedp.WaitVisible(`a.choice.kind-oidc`, chromedp.ByQuery),
		chromedp.Location(&again),
	)
	if err != nil {
		t.Fatalf("after sign-out: %v", err)
	}
	if !strings.Contains(whoami, `"sessions": []`) {
		t.Errorf("whoami after sign-out:\n%s", whoami)
	}
	if !strings.HasPrefix(again, g.public+"/.gatehouse/login?") {
		t.Errorf("/shop after sign-out went to %s, want the chooser", again)
	}

	// The OP's session ended too: signing in again needs its login
	// interaction (with a live OP session it would answer without one).
	reSignIn := tr.mark()
	err = chromedp.Run(ctx,
		chromedp.Click(`a.choice.kind-oidc`, chromedp.ByQuery),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Location(&landed),
	)
	if err != nil {
		t.Fatalf("second sign-in: %v", err)
	}
	if _, ok := tr.find(reSignIn, "GET", issuer+"/interaction/"); !ok || landed != g.public+"/shop" {
		t.Errorf("second sign-in: OP login interaction %v, landed on %s", ok, landed)
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// TestBrowserSAMLSignIn: the workforce audience signs in with SAML at the
// samlify IdP as a member of staff only; / is open to employees, /admin to
// admins; sign-out ends the gateway session (the provider has no SLO).
func TestBrowserSAMLSignIn(t *testing.T) {
	chromiumPath(t)
	node := requireSAMLIdP(t)
	start := time.Now()
	g := reserveGateway(t)
	// The IdP reads the SP metadata from the gateway at each sign-in
	// (through 127.0.0.1: node may resolve localhost to ::1 first).
	spMeta := "http://" + g.ln.Addr().String() + "/.gatehouse/saml/corp/metadata"
	idpBase := startSAMLIdP(t, node, "SP_METADATA_URL="+spMeta, "MEMBER_OF=staff", "SINGLE_LOGOUT=1")

	dir := t.TempDir()
	certPEM, keyPEM, err := saml.GenerateKeyPair("gatehouse-e2e-sp")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "sp.crt"), filepath.Join(dir, "sp.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	g.serve(t, `version: 1
server:
  public_url: "`+g.public+`"
session:
  keys: ["${SESSION_KEY}"]
branding:
  title: Gatehouse e2e intranet
audiences:
  workforce: { providers: [corp] }
providers:
  corp:
    type: saml
    display_name: Corp SSO (samlify)
    idp_metadata_url: "`+idpBase+`/metadata"
    sp_cert_file: "`+certFile+`"
    sp_key_file: "`+keyFile+`"
roles:
  employee: { groups: [staff] }
  admin: { groups: [it-admins] }
routes:
  - name: intranet
    match: { path: / }
    audience: workforce
    allow: { roles: [employee] }
    rules:
      - name: admin-area
        path: /admin
        allow: { roles: [admin] }
    upstream: "`+g.up+`"
    forward: { user: X-Remote-User, email: X-Remote-Email, name: X-Remote-Name, groups: X-Remote-Groups, roles: X-Remote-Roles }
`)
	g.waitReady(t)
	t.Logf("IdP and gateway up in %v", time.Since(start).Round(time.Millisecond))

	ctx := newPhoneBrowser(t)
	tr := traceNavigations(ctx)
	defer func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("browser navigations:\n%s", tr)
		}
	}()

	// / → login → IdP (HTTP-Redirect) → auto-submitted form → ACS → /.
	var seen map[string]string
	var landed, app string
	err = chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/"),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Location(&landed),
		chromedp.Text(`body`, &app, chromedp.ByQuery),
		echoHeaders(&seen),
		viewportWidth(t, 390),
		shot(t, ctx, "saml-app-phone.png"),
	)
	if err != nil {
		t.Fatalf("SAML sign-in: %v", err)
	}
	if landed != g.public+"/" {
		t.Errorf("landed on %s, want %s/", landed, g.public)
	}
	if h, ok := tr.find(0, "GET", g.public+"/.gatehouse/login?"); !ok || h.Status != http.StatusFound {
		t.Errorf("login: %v (found %v), want a 302 to the IdP", h, ok)
	}
	if h, ok := tr.find(0, "GET", idpBase+"/sso?"); !ok {
		t.Error("the browser never reached the IdP's SSO endpoint by GET (HTTP-Redirect binding)")
	} else {
		u, _ := url.Parse(h.URL)
		q := u.Query()
		for _, k := range []string{"SAMLRequest", "RelayState", "SigAlg", "Signature"} {
			if q.Get(k) == "" {
				t.Errorf("HTTP-Redirect AuthnRequest lacks %s: %s", k, h.URL)
			}
		}
		if h.Status != http.StatusOK {
			t.Errorf("IdP SSO answered %d", h.Status)
		}
	}
	if h, ok := tr.find(0, "POST", g.public+"/.gatehouse/saml/corp/acs"); !ok || h.Status != http.StatusSeeOther {
		t.Errorf("ACS POST: %v (found %v), want 303", h, ok)
	}
	if seen["X-Remote-Email"] != "alice@example.com" || seen["X-Remote-Roles"] != "employee" || seen["X-Remote-Groups"] != "staff" ||
		seen["X-Remote-User"] != "alice-0001" {
		t.Errorf("upstream saw user %q email %q groups %q roles %q", seen["X-Remote-User"], seen["X-Remote-Email"], seen["X-Remote-Groups"], seen["X-Remote-Roles"])
	}
	if !strings.Contains(app, "verified against the gateway's JWKS") || !strings.Contains(app, "roles employee") {
		t.Errorf("the assertion did not verify at the upstream:\n%s", app)
	}

	// /admin needs the admin role (it-admins): a 403 page.
	adminAt := tr.mark()
	var denied string
	err = chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/admin"),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`body`, &denied, chromedp.ByQuery),
		shot(t, ctx, "saml-denied-phone.png"),
	)
	if err != nil {
		t.Fatalf("/admin: %v", err)
	}
	if h, ok := tr.find(adminAt, "GET", g.public+"/admin"); !ok || h.Status != http.StatusForbidden {
		t.Errorf("/admin: %v (found %v), want 403", h, ok)
	}
	if !strings.Contains(denied, "Access denied") || strings.Contains(denied, "admin-area") || strings.Contains(denied, "it-admins") {
		t.Errorf("denied page:\n%s", denied)
	}

	// Sign out: the gateway session ends, then SAML single logout at the
	// IdP (a signed LogoutRequest there, its signed LogoutResponse back to
	// the gateway's SLO endpoint), so the next / goes back to the IdP,
	// which signs the test user in again.
	var signedOut, whoami string
	signOut := tr.mark()
	err = chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/.gatehouse/logout"),
		chromedp.WaitVisible(`form button[type="submit"]`, chromedp.ByQuery),
		chromedp.Click(`form button[type="submit"]`, chromedp.ByQuery),
		waitUntil("the signed-out notice", `location.pathname === "/.gatehouse/saml/corp/slo" && document.querySelector("h1")?.textContent === "Signed out"`),
		chromedp.Text(`body`, &signedOut, chromedp.ByQuery),
		shot(t, ctx, "saml-signed-out-phone.png"),
		chromedp.Navigate(g.public+"/.gatehouse/whoami"),
		chromedp.Text(`body`, &whoami, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sign-out: %v", err)
	}
	if !strings.Contains(signedOut, "You are signed out, here and at your identity provider") {
		t.Errorf("signed-out page:\n%s", signedOut)
	}
	if h, ok := tr.find(signOut, "POST", g.public+"/.gatehouse/logout"); !ok || h.Status != http.StatusSeeOther {
		t.Errorf("gateway sign-out POST: %v (found %v), want 303 to the IdP", h, ok)
	}
	if _, ok := tr.find(signOut, "GET", idpBase+"/slo?SAMLRequest="); !ok {
		t.Error("the sign-out did not send a LogoutRequest to the IdP")
	}
	if _, ok := tr.find(signOut, "GET", g.public+"/.gatehouse/saml/corp/slo?SAMLResponse="); !ok {
		t.Error("the IdP's LogoutResponse did not come back to the gateway")
	}
	if !strings.Contains(whoami, `"sessions": []`) {
		t.Errorf("whoami after sign-out:\n%s", whoami)
	}
	again := tr.mark()
	err = chromedp.Run(ctx,
		chromedp.Navigate(g.public+"/"),
		chromedp.WaitVisible(`table`, chromedp.ByQuery),
		chromedp.Location(&landed),
	)
	if err != nil {
		t.Fatalf("/ after sign-out: %v", err)
	}
	if h, ok := tr.find(again, "GET", g.public+"/"); !ok || h.Status != http.StatusFound {
		t.Errorf("/ after sign-out: %v (found %v), want a 302 to sign in", h, ok)
	}
	if _, ok := tr.find(again, "GET", idpBase+"/sso?"); !ok {
		t.Error("/ after sign-out did not go back to the IdP")
	}
	if _, ok := tr.find(again, "POST", g.public+"/.gatehouse/saml/corp/acs"); !ok || landed != g.public+"/" {
		t.Errorf("second SAML sign-in: ACS %v, landed on %s", ok, landed)
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// waitUntil evaluates expr (a boolean) until it is true. Unlike
// chromedp.Poll it survives the navigations that happen meanwhile.
func waitUntil(what, expr string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var last error
		for {
			var ok bool
			err := chromedp.Evaluate(expr, &ok).Do(ctx)
			if err == nil && ok {
				return nil
			}
			if err != nil {
				last = err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w (last evaluation error: %v)", what, ctx.Err(), last)
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}
