package quickstart

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "embed"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart/demoidp"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// DemoPolicy is examples/quickstart/demo.yaml, the policy of `gatehouse
// demo`. Its ${DEMO_*} values come from DemoEnv.
//
//go:embed demo.yaml
var DemoPolicy []byte

// Names in the demo policy.
const (
	DemoCustomerProvider  = "shoppers"
	DemoWorkforceProvider = "corp"
)

// Default addresses of the demo.
const (
	DefaultDemoListen      = "127.0.0.1:8080"
	DefaultDemoAdminListen = "127.0.0.1:9090"
	DefaultDemoUpstream    = "127.0.0.1:9001"
	DefaultDemoIdP         = "127.0.0.1:9002"
)

// DemoOptions configure StartDemo. Zero values are the defaults of
// `gatehouse demo`.
type DemoOptions struct {
	// Listen is the gateway's address (loopback only). Default 127.0.0.1:8080.
	Listen string
	// AdminListen is the admin listener's address (health, readiness,
	// metrics). Default 127.0.0.1:9090; "off" for none.
	AdminListen string
	// UpstreamListen and IdPListen are the echo app's and the demo IdP's
	// addresses. Defaults 127.0.0.1:9001 and 127.0.0.1:9002; when taken, a
	// free port is used instead (their URLs are printed).
	UpstreamListen, IdPListen string
	// Dir is the demo folder: accounts, privacy store, mail outbox, SAML SP
	// key pair, session key. Empty: a new temporary folder, removed by
	// Close unless Keep. A given folder is reused and never removed.
	Dir  string
	Keep bool
	// Logger receives the gateway's and the IdP's log. nil: discarded.
	Logger *zap.Logger
	// Configure, when set, adjusts the gateway's options before the gateway
	// is made (metrics, tracing).
	Configure func(*proxy.Options)
	// Admin, when set, makes the admin listener's handler. nil: /healthz
	// and /readyz.
	Admin func(*proxy.Gateway) http.Handler
}

// ListenError is returned when an address the demo needs is in use.
type ListenError struct {
	What, Addr, Flag string
	Err              error
}

func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("%s: %s is already in use (another gatehouse demo, or another program, is listening there); choose another address with %s, e.g. %s 127.0.0.1:0 for any free port",
			e.What, e.Addr, e.Flag, e.Flag)
	}
	return fmt.Sprintf("%s: cannot listen on %s: %v", e.What, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Demo is a running demo: the gateway, the echo app and the demo SAML IdP,
// all on loopback addresses.
type Demo struct {
	// PublicURL is the gateway (http://localhost:PORT); GatewayAddr its
	// listener (127.0.0.1:PORT).
	PublicURL, GatewayAddr string
	// AdminURL is the admin listener (empty when off).
	AdminURL string
	// IdPURL is the demo IdP; UpstreamURL the echo app.
	IdPURL, UpstreamURL string
	// Dir is the demo folder; Temporary says whether Close removes it.
	Dir       string
	Temporary bool
	// Employees are the demo IdP's users.
	Employees []demoidp.User

	Gateway *proxy.Gateway
	Loaded  *app.Loaded

	log      *zap.Logger
	secrets  *app.Secrets
	servers  []*http.Server // gateway first
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

// DemoEnv is the environment the demo policy is loaded with.
func DemoEnv(vals map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vals[k]
		return v, ok
	}
}

// StartDemo starts the demo: it prepares the demo folder, starts the demo
// IdP and the echo app, loads DemoPolicy and serves the gateway. Close
// stops everything.
func StartDemo(o DemoOptions) (d *Demo, err error) {
	start := time.Now()
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	d = &Demo{log: log}
	defer func() {
		if err != nil {
			d.Close(context.Background())
		}
	}()

	// The folder.
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "gatehouse-demo-")
		if err != nil {
			return d, err
		}
		d.Dir, d.Temporary = dir, !o.Keep
	} else {
		dir, err := filepath.Abs(o.Dir)
		if err != nil {
			return d, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return d, err
		}
		d.Dir = dir
	}

	// The listeners first, so a taken port is reported before any work.
	gwLn, err := listenLoopback(or(o.Listen, DefaultDemoListen), "the gateway", "-listen", false)
	if err != nil {
		return d, err
	}
	var admLn net.Listener
	if o.AdminListen != "off" {
		if admLn, err = listenLoopback(or(o.AdminListen, DefaultDemoAdminListen), "the admin listener", "-admin-listen", false); err != nil {
			gwLn.Close()
			return d, err
		}
	}
	upLn, err := listenLoopback(or(o.UpstreamListen, DefaultDemoUpstream), "the demo app", "-upstream-listen", true)
	if err == nil {
		var idpLn net.Listener
		idpLn, err = listenLoopback(or(o.IdPListen, DefaultDemoIdP), "the demo IdP", "-idp-listen", true)
		if err == nil {
			err = d.start(o, start, gwLn, admLn, upLn, idpLn)
			if err == nil {
				return d, nil
			}
			idpLn.Close()
		}
		upLn.Close()
	}
	gwLn.Close()
	if admLn != nil {
		admLn.Close()
	}
	return d, err
}

func (d *Demo) start(o DemoOptions, began time.Time, gwLn, admLn, upLn, idpLn net.Listener) error {
	log := d.log
	port := gwLn.Addr().(*net.TCPAddr).Port
	d.GatewayAddr = gwLn.Addr().String()
	d.PublicURL = fmt.Sprintf("http://localhost:%d", port)
	d.UpstreamURL = "http://" + upLn.Addr().String()
	d.IdPURL = "http://" + idpLn.Addr().String()
	if admLn != nil {
		d.AdminURL = "http://" + admLn.Addr().String()
	}

	// Keys: the session key and the SAML SP key pair are kept in the folder
	// (a reused folder keeps its sessions, links and SP identity); the
	// IdP's signing key is new at every start. RSA keys take a moment:
	// make them side by side.
	sessionKey, err := demoSessionKey(d.Dir)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var spErr, idpErr error
	var idpKey *rsa.PrivateKey
	var idpCert *x509.Certificate
	wg.Add(2)
	go func() { defer wg.Done(); spErr = demoSPKeyPair(d.Dir) }()
	go func() {
		defer wg.Done()
		idpKey, idpCert, idpErr = demoidp.NewKeyPair("Gatehouse demo IdP (DEMO ONLY)")
	}()
	wg.Wait()
	if err := errors.Join(spErr, idpErr); err != nil {
		return err
	}

	// The demo IdP.
	spMeta := proxy.Prefix + "saml/" + DemoWorkforceProvider + "/metadata"
	idp, err := demoidp.NewWithKey(demoidp.Options{
		BaseURL:       d.IdPURL,
		SPEntityID:    d.PublicURL + spMeta,
		SPMetadataURL: "http://" + d.GatewayAddr + spMeta,
		AppURL:        d.PublicURL + "/intranet",
		Log:           zap.NewStdLog(log.Named("demo-idp")),
	}, idpKey, idpCert)
	if err != nil {
		return err
	}
	d.Employees = idp.Users()
	d.serve(idpLn, idp)
	log.Warn("DEMO ONLY: the demo SAML IdP runs with public test passwords; never use it for anything real", zap.String("url", d.IdPURL))

	// The echo app.
	echo := &Echo{
		JWKSURL: "http://" + d.GatewayAddr + proxy.Prefix + "jwks.json", Issuer: d.PublicURL, Links: DemoLinks,
		Note: "DEMO ONLY. This is the demo's upstream app, behind Gatehouse: it shows what the gateway forwarded and checks the signed assertion.",
	}
	d.serve(upLn, echo)

	// The gateway.
	env := map[string]string{
		"DEMO_LISTEN":           d.GatewayAddr,
		"DEMO_PUBLIC_URL":       d.PublicURL,
		"DEMO_ADMIN_LISTEN":     "",
		"DEMO_UPSTREAM":         d.UpstreamURL,
		"DEMO_IDP_METADATA_URL": idp.MetadataURL(),
		"DEMO_DIR":              d.Dir,
		"DEMO_SESSION_KEY":      sessionKey,
	}
	if admLn != nil {
		env["DEMO_ADMIN_LISTEN"] = admLn.Addr().String()
	}
	l, err := app.LoadBytes(filepath.Join(d.Dir, "gatehouse-demo.yaml"), DemoPolicy, DemoEnv(env))
	if err != nil {
		return fmt.Errorf("the embedded demo policy: %w", err)
	}
	d.Loaded = l
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	shared, err := app.OpenShared(ctx, l.Config, log)
	if err != nil {
		return err
	}
	opts, secrets, err := app.Build(l, log, &app.Secrets{Shared: shared})
	if err != nil {
		shared.Close()
		return err
	}
	d.secrets = secrets
	if o.Configure != nil {
		o.Configure(&opts)
	}
	gw, err := proxy.New(opts)
	if err != nil {
		app.CloseProviders(opts.Providers)
		return err
	}
	d.Gateway = gw
	c := l.Config
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: c.Server.Timeouts.ReadHeader.D(),
		IdleTimeout:       c.Server.Timeouts.Idle.D(),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	d.servers = append([]*http.Server{srv}, d.servers...)
	go srv.Serve(gwLn)
	if admLn != nil {
		var h http.Handler
		if o.Admin != nil {
			h = o.Admin(gw)
		} else {
			h = healthHandler(gw)
		}
		d.serve(admLn, h)
	}
	log.Info("gatehouse demo started", zap.String("public_url", d.PublicURL), zap.String("idp", d.IdPURL),
		zap.String("upstream", d.UpstreamURL), zap.String("admin", d.AdminURL), zap.String("dir", d.Dir),
		zap.Duration("took", time.Since(began).Round(time.Millisecond)))
	return nil
}

func (d *Demo) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(d.log.Named("http"))}
	d.servers = append(d.servers, srv)
	go srv.Serve(ln)
}

// WaitReady waits until the gateway is ready (the IdP's metadata fetched).
func (d *Demo) WaitReady(ctx context.Context) error {
	for {
		err := d.Gateway.Ready()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the servers (the gateway drains within ctx), closes the
// providers and stores and removes a temporary demo folder.
func (d *Demo) Close(ctx context.Context) error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return d.closeErr
	}
	d.closed = true
	var errs []error
	for _, s := range d.servers {
		if err := s.Shutdown(ctx); err != nil {
			s.Close()
			errs = append(errs, err)
		}
	}
	if d.Gateway != nil {
		app.CloseProviders(d.Gateway.Providers())
	}
	d.secrets.CloseShared()
	if d.Temporary && d.Dir != "" {
		if err := os.RemoveAll(d.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	d.closeErr = errors.Join(errs...)
	return d.closeErr
}

// URLs of the demo's pages.
func (d *Demo) OutboxURL() string {
	return d.PublicURL + proxy.Prefix + "local/" + DemoCustomerProvider + "/dev/outbox"
}

// SignUpURL starts a customer sign-up that ends on the shop's account page.
func (d *Demo) SignUpURL() string {
	q := url.Values{"audience": {"customer"}, "provider": {DemoCustomerProvider}, "prompt": {"create"}, "rd": {"/shop/account"}}
	return d.PublicURL + proxy.Prefix + "login?" + q.Encode()
}

// DemoLinks are the echo app's navigation in the demo.
var DemoLinks = []Link{
	{"Home", "/"}, {"Shop", "/shop"}, {"My account", "/shop/account"}, {"Newsletter", "/newsletter"},
	{"My data", "/.gatehouse/me"}, {"Intranet", "/intranet"}, {"Admin area", "/intranet/admin"},
	{"whoami", "/.gatehouse/whoami"}, {"Sign out", "/.gatehouse/logout"},
}

// Banner is what `gatehouse demo` prints once it runs.
func (d *Demo) Banner() string {
	var b strings.Builder
	p := d.PublicURL
	line := func(label, value, note string) {
		if note != "" {
			value += "   (" + note + ")"
		}
		fmt.Fprintf(&b, "  %-16s%s\n", label, value)
	}
	b.WriteString("\n  Gatehouse demo: DEMO ONLY (test users with public passwords, a development mail outbox, loopback only)\n\n")
	line("App", p+"/", "the demo app behind the gateway; its links lead everywhere")
	b.WriteString("\n  Customers: local accounts, consent, privacy pages\n")
	line("  shop account", p+"/shop/account", "sign in, accept the terms")
	line("  sign up", d.SignUpURL(), "")
	line("  mail outbox", d.OutboxURL(), "DEV ONLY: every email lands here")
	line("  newsletter", p+"/newsletter", "asks for the optional marketing consent")
	line("  your data", p+proxy.Prefix+"me", "consents, JSON export, account deletion")
	b.WriteString("\n  Employees: SAML single sign-on at the demo IdP\n")
	line("  intranet", p+"/intranet", "employees")
	line("  admin area", p+"/intranet/admin", "IT admins: bob gets in, alice gets 403")
	line("  demo IdP", d.IdPURL+"/", "DEMO ONLY")
	for i, u := range d.Employees {
		label := ""
		if i == 0 {
			label = "  users"
		}
		line(label, fmt.Sprintf("%-6s password %-22s groups: %s", u.ID, u.Password, strings.Join(u.Groups, ", ")), "")
	}
	b.WriteString("\n")
	if d.AdminURL != "" {
		line("Admin", d.AdminURL+"/metrics", "and /healthz, /readyz, /policy; loopback only")
	}
	keep := "kept"
	if d.Temporary {
		keep = "removed at exit; keep it with -keep"
	}
	line("Folder", d.Dir, keep)
	fmt.Fprintf(&b, `
  Try
    1. Sign up as a customer (any email address, a password of 12 or more
       characters), open the mail outbox, follow the confirmation link and
       type your password there, sign in and accept the terms: the app shows X-Shop-Customer and a verified
       assertion. /newsletter asks for the marketing consent; "your data"
       exports everything Gatehouse keeps about you as JSON.
    2. "Forgot your password?" on the sign-in page: the reset link is in the
       outbox, and a reset ends every session of the account.
    3. Open the intranet and sign in at the demo IdP as alice: the admin area
       is 403. Sign out (%s/.gatehouse/logout), sign in as bob: it opens.

  Ctrl-C stops everything.

`, p)
	return b.String()
}

// healthHandler is the admin listener's handler without metrics.
func healthHandler(gw *proxy.Gateway) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := gw.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// listenLoopback listens on addr, which must be a loopback address. With
// fallback, a taken port is replaced by a free one.
func listenLoopback(addr, what, flag string, fallback bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &ListenError{What: what, Addr: addr, Flag: flag, Err: err}
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, &ListenError{What: what, Addr: addr, Flag: flag, Err: errors.New("the demo listens on loopback addresses only (127.0.0.1 or ::1)")}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && fallback && errors.Is(err, syscall.EADDRINUSE) {
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, &ListenError{What: what, Addr: addr, Flag: flag, Err: err}
	}
	return ln, nil
}

// demoSessionKey reads the folder's session key, or makes one.
func demoSessionKey(dir string) (string, error) {
	f := filepath.Join(dir, "session.key")
	if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	k := make([]byte, 32)
	rand.Read(k)
	s := base64.RawURLEncoding.EncodeToString(k)
	return s, os.WriteFile(f, []byte(s+"\n"), 0o600)
}

// demoSPKeyPair makes the gateway's SAML SP key pair in the folder unless
// it is there.
func demoSPKeyPair(dir string) error {
	crt, key := filepath.Join(dir, "saml-sp.crt"), filepath.Join(dir, "saml-sp.key")
	if _, err := os.Stat(crt); err == nil {
		if _, err := os.Stat(key); err == nil {
			return nil
		}
	}
	k, c, err := demoidp.NewKeyPair("gatehouse-demo-sp")
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o644)
}
