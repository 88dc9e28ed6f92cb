package e2e

// SAML sign-in against an independent IdP: samlify (Node) in e2e/idp/saml,
// started on 127.0.0.1. The provider under test is providers/saml, driven
// directly (Begin, the IdP's SSO endpoint, CallbackState and Complete), no
// gateway in between.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/providers/saml"
)

const samlIdPDir = "idp/saml"

// requireSAMLIdP finds node and the IdP's node_modules. In CI (CI=true)
// their absence is a failure; elsewhere the test is skipped loudly.
func requireSAMLIdP(t *testing.T) string {
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node is not installed"
	default:
		if _, err := os.Stat(filepath.Join(samlIdPDir, "node_modules", "samlify")); err != nil {
			missing = "e2e/idp/saml/node_modules is missing (run: npm ci --prefix e2e/idp/saml)"
		}
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("SAML interop test: %s; CI must provide it", missing)
		}
		t.Skipf("SKIPPED: SAML interop test against the samlify IdP: %s", missing)
	}
	return node
}

// writeKeyPair writes a self-signed RSA certificate and key (PEM) to dir.
func writeKeyPair(t *testing.T, dir, name string) (certFile, keyFile string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	return certFile, keyFile
}

// startSAMLIdP runs the samlify IdP and returns its base URL.
func startSAMLIdP(t *testing.T, node string, env ...string) string {
	t.Helper()
	cert, key := writeKeyPair(t, t.TempDir(), "idp")
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = samlIdPDir
	cmd.Env = append(os.Environ(), append([]string{"PORT=0", "IDP_CERT_FILE=" + cert, "IDP_KEY_FILE=" + key}, env...)...)
	cmd.Stderr = logWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if base, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				ready <- base
			}
		}
	}()
	select {
	case base := <-ready:
		return base
	case <-time.After(90 * time.Second): // the schema validator warms up first (~20s)
		t.Fatal("the samlify IdP did not start")
	}
	return ""
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log("idp: " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// samlSP is the provider under test with a loopback "public URL" that
// serves its endpoints (the IdP fetches the SP metadata from it).
type samlSP struct {
	p      *saml.Provider
	public string
}

func newSAMLSP(t *testing.T, node string) (*samlSP, string) {
	var cur atomic.Pointer[saml.Provider]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := cur.Load(); p != nil {
			if h := p.Endpoints()[strings.TrimPrefix(r.URL.Path, "/.gatehouse/")]; h != nil {
				h.ServeHTTP(w, r)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	idpBase := startSAMLIdP(t, node, "SP_METADATA_URL="+srv.URL+"/.gatehouse/saml/corp/metadata")

	dir := t.TempDir()
	cert, key := writeKeyPair(t, dir, "sp")
	p, err := saml.New("corp", &config.SAMLProvider{
		ProviderCommon: config.ProviderCommon{Type: "saml"},
		IdPMetadataURL: idpBase + "/metadata",
		SPCertFile:     cert, SPKeyFile: key,
	}, saml.Env{PublicURL: srv.URL, BaseDir: dir, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cur.Store(p)
	deadline := time.Now().Add(20 * time.Second)
	for p.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("IdP metadata never loaded: %v", p.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &samlSP{p: p, public: srv.URL}, idpBase
}

// idpAnswer is the samlify IdP's JSON answer at /sso.
type idpAnswer struct {
	ACS          string `json:"acs"`
	SAMLResponse string `json:"SAMLResponse"`
	RelayState   string `json:"RelayState"`
	Error        string `json:"error"`
}

// signIn runs Begin, the IdP's SSO endpoint (redirect binding) and
// returns the attempt and the IdP's answer.
func (sp *samlSP) signIn(t *testing.T, step *providers.StepUp, header http.Header) (*providers.Attempt, idpAnswer) {
	t.Helper()
	state := make([]byte, 32)
	rand.Read(state)
	a := &providers.Attempt{State: base64.RawURLEncoding.EncodeToString(state), Provider: "corp", Audience: identity.Workforce,
		CallbackURL: sp.public + "/.gatehouse/saml/corp/acs", StepUp: step, Created: time.Now()}
	red, err := sp.p.Begin(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	a.Data = red.Data
	req, _ := http.NewRequest(http.MethodGet, red.URL, nil)
	req.Header.Set("Accept", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ans idpAnswer
	if err := json.Unmarshal(body, &ans); err != nil || resp.StatusCode != 200 {
		t.Fatalf("IdP /sso: %d %s", resp.StatusCode, body)
	}
	if ans.ACS != a.CallbackURL || ans.RelayState != a.State {
		t.Fatalf("IdP answers to %q with RelayState %q; want %q, the attempt state", ans.ACS, ans.RelayState, a.CallbackURL)
	}
	return a, ans
}

// post sends the SAMLResponse to the ACS: CallbackState, then Complete.
func (sp *samlSP) post(t *testing.T, a *providers.Attempt, samlResponse string) (*identity.Identity, error) {
	t.Helper()
	form := url.Values{"SAMLResponse": {samlResponse}, "RelayState": {a.State}}
	r := httptest.NewRequest(http.MethodPost, a.CallbackURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if got := sp.p.CallbackState(r); got != a.State {
		t.Fatalf("CallbackState = %q", got)
	}
	return sp.p.Complete(context.Background(), r, a)
}

func loginReason(err error) string {
	if le, ok := err.(*providers.LoginError); ok {
		return le.Reason
	}
	return fmt.Sprint(err)
}

func TestSAMLSignInWithSamlify(t *testing.T) {
	node := requireSAMLIdP(t)
	sp, idpBase := newSAMLSP(t, node)

	t.Run("valid sign-in", func(t *testing.T) {
		a, ans := sp.signIn(t, nil, nil)
		id, err := sp.post(t, a, ans.SAMLResponse)
		if err != nil {
			t.Fatalf("samlify's response refused: %v", err)
		}
		if id.Subject != "alice-0001" || id.Issuer != idpBase+"/metadata" {
			t.Errorf("subject %q issuer %q", id.Subject, id.Issuer)
		}
		if id.Email != "alice@example.com" || !id.EmailVerified || id.Name != "Alice Example" {
			t.Errorf("email %q (verified %v), name %q", id.Email, id.EmailVerified, id.Name)
		}
		if !slices.Equal(id.Groups, []string{"staff", "it-admins"}) || !slices.Equal(id.AMR, []string{"pwd"}) {
			t.Errorf("groups %q amr %q", id.Groups, id.AMR)
		}
		// The same response again is a replay.
		if _, err := sp.post(t, a, ans.SAMLResponse); loginReason(err) != "replayed" {
			t.Errorf("replay: %v", err)
		}
	})

	t.Run("IdP verifies the AuthnRequest signature", func(t *testing.T) {
		a := &providers.Attempt{State: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", CallbackURL: sp.public + "/.gatehouse/saml/corp/acs", Created: time.Now()}
		red, err := sp.p.Begin(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		forged := strings.Replace(red.URL, "RelayState="+a.State, "RelayState=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", 1)
		resp, err := http.Get(forged)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "SIGNATURE") {
			t.Errorf("forged AuthnRequest: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("MFA step-up", func(t *testing.T) {
		a, ans := sp.signIn(t, &providers.StepUp{MFA: true}, nil)
		id, err := sp.post(t, a, ans.SAMLResponse)
		if err != nil {
			t.Fatal(err)
		}
		if id.ACR != "https://refeds.org/profile/mfa" || !id.HasMFA() {
			t.Errorf("acr %q amr %q", id.ACR, id.AMR)
		}
	})

	t.Run("assertion for another SP", func(t *testing.T) {
		a, ans := sp.signIn(t, nil, http.Header{"X-Test-Audience": {"https://other-app.example/saml"}})
		if _, err := sp.post(t, a, ans.SAMLResponse); loginReason(err) != "wrong_audience" {
			t.Errorf("reason %q, want wrong_audience", loginReason(err))
		}
	})

	t.Run("encrypted assertion", func(t *testing.T) {
		a, ans := sp.signIn(t, nil, http.Header{"X-Test-Encrypt": {"1"}})
		raw, _ := base64.StdEncoding.DecodeString(ans.SAMLResponse)
		if !strings.Contains(string(raw), "EncryptedAssertion") || strings.Contains(string(raw), "alice@example.com") {
			t.Fatal("samlify did not encrypt the assertion")
		}
		id, err := sp.post(t, a, ans.SAMLResponse)
		if err != nil {
			t.Fatalf("encrypted assertion refused: %v", err)
		}
		if id.Email != "alice@example.com" || len(id.Groups) != 2 {
			t.Errorf("identity %+v", id)
		}
	})

	t.Run("tampered response", func(t *testing.T) {
		a, ans := sp.signIn(t, nil, nil)
		raw, err := base64.StdEncoding.DecodeString(ans.SAMLResponse)
		if err != nil || !strings.Contains(string(raw), "alice@example.com") {
			t.Fatalf("unexpected response: %v", err)
		}
		evil := strings.ReplaceAll(string(raw), "alice@example.com", "admin@example.com")
		if _, err := sp.post(t, a, base64.StdEncoding.EncodeToString([]byte(evil))); loginReason(err) != "bad_signature" {
			t.Errorf("reason %q, want bad_signature", loginReason(err))
		}
	})
}
