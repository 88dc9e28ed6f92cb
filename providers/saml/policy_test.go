package saml_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/providers/saml"
)

// idpMetadata is minimal IdP metadata with a throwaway signing certificate.
func idpMetadata(t *testing.T) string {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idp"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com/saml">
  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + base64.StdEncoding.EncodeToString(der) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor>
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>
  </IDPSSODescriptor>
</EntityDescriptor>`
}

const policy = `version: 1
server:
  public_url: https://apps.example.com
audiences:
  workforce: { providers: [corp] }
providers:
  corp:
    type: saml
    display_name: Corp SSO
    idp_metadata_file: idp.xml
    sp_cert_file: keys/sp.crt
    sp_key_file: keys/sp.key
    binding: post
    sign_requests: true
    allow_idp_initiated: false
    clock_skew: 90s
    name_id_format: persistent
    attributes:
      email: mail
      groups: memberOf
      extra: [department]
roles:
  employee: { groups: [staff] }
routes:
  - name: intranet
    match: { host: intranet.example.com }
    audience: workforce
    allow: { roles: [employee] }
    upstream: http://127.0.0.1:9001
`

func TestPolicyWithSAMLProvider(t *testing.T) {
	dir := t.TempDir()
	cert, key, err := saml.GenerateKeyPair("apps.example.com")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "keys"), 0o700)
	os.WriteFile(filepath.Join(dir, "keys", "sp.crt"), cert, 0o600)
	os.WriteFile(filepath.Join(dir, "keys", "sp.key"), key, 0o600)
	os.WriteFile(filepath.Join(dir, "idp.xml"), []byte(idpMetadata(t)), 0o600)
	path := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(path, []byte(policy), 0o600)

	l, err := app.Load(path)
	if err != nil {
		t.Fatalf("policy with a saml provider: %v", err)
	}
	opts, _, err := app.Build(l, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := opts.Providers["corp"].(*saml.Provider)
	if !ok {
		t.Fatalf("provider is %T", opts.Providers["corp"])
	}
	defer p.Close()
	if p.Ready() != nil || p.DisplayName() != "Corp SSO" || p.EntityID() != "https://apps.example.com/.gatehouse/saml/corp/metadata" {
		t.Errorf("ready %v, display %q, entity %q", p.Ready(), p.DisplayName(), p.EntityID())
	}

	// Mistakes are reported with their key path.
	bad := strings.NewReplacer("binding: post", "binding: soap", "clock_skew: 90s", "clock_skew: 10m", "    sp_key_file: keys/sp.key\n", "").Replace(policy)
	_, err = app.LoadBytes(path, []byte(bad), os.LookupEnv)
	var diags config.Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("bad policy: %v", err)
	}
	msg := diags.Error()
	for _, want := range []string{"providers.corp.binding", "providers.corp.clock_skew", "providers.corp.sp_key_file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("diagnostics lack %s:\n%s", want, msg)
		}
	}

	schema, err := config.Schema()
	if err != nil || !strings.Contains(string(schema), "idp_metadata_url") || !strings.Contains(string(schema), `"const": "saml"`) {
		t.Errorf("schema lacks the saml provider (%v)", err)
	}
}
