package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-dev/gatehouse/providers/saml"
	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
)

func cmdKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "saml" {
		return cmdKeysSAML(args[1:], stdout, stderr)
	}
	fs := newFlags("keys", stderr)
	out := fs.String("signing-key-out", "", "write the assertion signing key (PEM) to this file (mode 0600) instead of printing it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	pemBytes, err := assertion.GenerateKeyPEM()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# Session key (32 random bytes, base64url): put it in the environment,\n# reference it as session.keys: [\"${GATEHOUSE_SESSION_KEY}\"].\nGATEHOUSE_SESSION_KEY=%s\n\n", base64.RawURLEncoding.EncodeToString(secret))
	if *out != "" {
		if err := os.WriteFile(*out, pemBytes, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# Assertion signing key (ECDSA P-256) written to %s;\n# reference it as assertion.keys: [{ file: %s }].\n", *out, *out)
		return nil
	}
	fmt.Fprintf(stdout, "# Assertion signing key (ECDSA P-256, PKCS#8 PEM): save it to a file with mode 0600\n# and reference it as assertion.keys: [{ file: signing.pem }].\n%s", pemBytes)
	return nil
}

// cmdKeysSAML writes a SAML service provider key pair (a self-signed
// certificate and its private key) for sp_cert_file and sp_key_file.
func cmdKeysSAML(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys saml", stderr)
	cn := fs.String("cn", "gatehouse", "certificate common name (e.g. the gateway's host)")
	certOut := fs.String("cert-out", "saml-sp.crt", "where to write the certificate (PEM)")
	keyOut := fs.String("key-out", "saml-sp.key", "where to write the private key (PEM, mode 0600)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, p := range []string{*certOut, *keyOut} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists; refusing to overwrite a key (remove it first)", p)
		}
	}
	certPEM, keyPEM, err := saml.GenerateKeyPair(*cn)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*keyOut, keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*certOut, certPEM, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "SAML SP key pair written: %s (certificate, give it to the IdP via the SP metadata) and %s (private key, mode 0600).\nIn the policy: sp_cert_file: %s, sp_key_file: %s\n", *certOut, *keyOut, *certOut, *keyOut)
	return nil
}
