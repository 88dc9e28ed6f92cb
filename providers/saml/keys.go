package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	dsig "github.com/russellhaering/goxmldsig"
)

// keyBits is the RSA modulus size of generated SP keys. RSA, not ECDSA,
// because every IdP accepts RSA signatures and XML encryption (encrypted
// assertions) needs an RSA key.
const keyBits = 3072

// certValidity is how long a generated SP certificate is valid. IdPs treat
// SP certificates in metadata as key containers and rarely check their
// dates; rotation is a metadata update, not an expiry.
const certValidity = 10 * 365 * 24 * time.Hour

// GenerateKeyPair makes a service provider key pair: a self-signed
// certificate with the common name cn and its RSA-3072 private key, both
// PEM-encoded (CERTIFICATE and PKCS#8 PRIVATE KEY). Put them in the files
// named by sp_cert_file and sp_key_file.
func GenerateKeyPair(cn string) (certPEM, keyPEM []byte, err error) {
	return generateKeyPair(cn, keyBits, time.Now())
}

func generateKeyPair(cn string, bits int, now time.Time) (certPEM, keyPEM []byte, err error) {
	if cn == "" {
		cn = "gatehouse-saml-sp"
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// loadKeyPair reads the SP certificate and key files.
func loadKeyPair(certFile, keyFile string) (crypto.Signer, *x509.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("sp_cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("sp_key_file: %w", err)
	}
	return parseKeyPair(certPEM, keyPEM)
}

// parseKeyPair parses a PEM certificate and its PEM private key (PKCS#8,
// PKCS#1 or SEC 1) and checks that they belong together.
func parseKeyPair(certPEM, keyPEM []byte) (crypto.Signer, *x509.Certificate, error) {
	var cert *x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("sp_cert_file: %w", err)
			}
			cert = c
			break
		}
	}
	if cert == nil {
		return nil, nil, errors.New("sp_cert_file: no PEM CERTIFICATE block")
	}
	var key crypto.Signer
	for rest := keyPEM; key == nil; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, nil, errors.New("sp_key_file: no PEM private key block")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("sp_key_file: %w", err)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			key = k
		case *ecdsa.PrivateKey:
			key = k
		default:
			return nil, nil, fmt.Errorf("sp_key_file: unsupported key type %T (use RSA or ECDSA)", k)
		}
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("sp_key_file does not belong to sp_cert_file")
	}
	return key, cert, nil
}

// signatureMethod is the XML signature algorithm for the key's type.
func signatureMethod(key crypto.Signer) string {
	if _, ok := key.Public().(*ecdsa.PublicKey); ok {
		return dsig.ECDSASHA256SignatureMethod
	}
	return dsig.RSASHA256SignatureMethod
}
