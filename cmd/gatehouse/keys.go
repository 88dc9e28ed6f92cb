package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
)

func cmdKeys(args []string, stdout, stderr io.Writer) error {
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
