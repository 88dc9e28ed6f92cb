package assertion

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

var b64 = base64.RawURLEncoding

// b64strict decodes untrusted input: no padding, no line breaks, and no
// non-zero trailing bits, so each value has exactly one encoding.
var b64strict = base64.RawURLEncoding.Strict()

// Key is one signing key of a Signer.
type Key struct {
	// ID is the key id (kid) placed in token headers and in the JWKS. When
	// empty, the RFC 7638 JWK thumbprint of the public key is used.
	ID string
	// Signer holds the private key. Its public key must be an ECDSA P-256
	// key (signing ES256) or an Ed25519 key (signing EdDSA). Usually it is a
	// *ecdsa.PrivateKey or an ed25519.PrivateKey, for example from
	// ParsePrivateKeyPEM, but any crypto.Signer with such a public key works.
	Signer crypto.Signer
}

// jwk is one member of a JWKS document. Its members are those of RFC 7517
// and RFC 7518 (EC) or RFC 8037 (OKP) that Gatehouse uses.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// publicJWK describes pub as a JWK without kid, use and alg, and returns the
// JWS algorithm that goes with it. Only P-256 and Ed25519 keys are accepted.
func publicJWK(pub crypto.PublicKey) (jwk, string, error) {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return jwk{}, "", fmt.Errorf("unsupported ECDSA curve %s: only P-256 is supported", curveName(pub.Curve))
		}
		point, err := pub.Bytes() // 0x04 || x || y, 32 bytes each
		if err != nil {
			return jwk{}, "", fmt.Errorf("invalid P-256 public key: %v", err)
		}
		return jwk{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(point[1:33]), Y: b64.EncodeToString(point[33:])}, algES256, nil
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return jwk{}, "", errors.New("invalid Ed25519 public key length")
		}
		return jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(pub)}, algEdDSA, nil
	case *rsa.PublicKey:
		return jwk{}, "", errors.New("RSA keys are not supported: use an ECDSA P-256 or Ed25519 key")
	default:
		return jwk{}, "", fmt.Errorf("unsupported key type %T: use an ECDSA P-256 or Ed25519 key", pub)
	}
}

func curveName(c elliptic.Curve) string {
	if c == nil || c.Params() == nil {
		return "(unknown)"
	}
	return c.Params().Name
}

// thumbprint computes the RFC 7638 thumbprint of k: the SHA-256 of the
// required members in lexicographic order, without whitespace.
func (k *jwk) thumbprint() string {
	var b []byte
	b = append(b, `{"crv":`...)
	b = appendString(b, k.Crv)
	b = append(b, `,"kty":`...)
	b = appendString(b, k.Kty)
	b = append(b, `,"x":`...)
	b = appendString(b, k.X)
	if k.Kty == "EC" {
		b = append(b, `,"y":`...)
		b = appendString(b, k.Y)
	}
	b = append(b, '}')
	sum := sha256.Sum256(b)
	return b64.EncodeToString(sum[:])
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url without
// padding) of an ECDSA P-256 or Ed25519 public key. It is the key id a Key
// gets when its ID is empty.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	k, _, err := publicJWK(pub)
	if err != nil {
		return "", err
	}
	return k.thumbprint(), nil
}

// ParsePrivateKeyPEM reads a PEM-encoded ECDSA P-256 or Ed25519 private key
// in PKCS#8 ("PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY") form. An "EC
// PARAMETERS" block, as written by `openssl ecparam -genkey`, and blocks
// that hold no private key (such as certificates) are skipped. It refuses,
// with an error saying why, RSA keys, other curves, encrypted keys, input
// without a private key and input with more than one.
func ParsePrivateKeyPEM(pemBytes []byte) (crypto.Signer, error) {
	var (
		found crypto.Signer
		seen  []string
	)
	for rest := pemBytes; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		seen = append(seen, block.Type)
		var (
			key crypto.Signer
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = parsePKCS8(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = parseSEC1(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			err = errors.New("encrypted private keys are not supported: decrypt it first (openssl pkcs8 -in key.pem -out plain.pem)")
		case "RSA PRIVATE KEY":
			err = errors.New("RSA keys are not supported: use an ECDSA P-256 or Ed25519 key")
		case "OPENSSH PRIVATE KEY":
			err = errors.New("OpenSSH private keys are not supported: convert to PKCS#8 (ssh-keygen -p -m PKCS8 -f key)")
		default:
			if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
				continue // a certificate, public key or parameters: not ours
			}
			err = fmt.Errorf("unsupported PEM block %q: use a PKCS#8 or SEC 1 P-256 or Ed25519 key", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("assertion: %w", err)
		}
		if found != nil {
			return nil, errors.New("assertion: PEM input holds more than one private key")
		}
		found = key
	}
	if found == nil {
		if len(seen) == 0 {
			return nil, errors.New("assertion: no PEM data found")
		}
		return nil, fmt.Errorf("assertion: no private key among PEM blocks %q", seen)
	}
	return found, nil
}

func parsePKCS8(der []byte) (crypto.Signer, error) {
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing PKCS#8 private key (only P-256 and Ed25519 are supported): %v", err)
	}
	switch key := key.(type) {
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() {
			return nil, fmt.Errorf("unsupported ECDSA curve %s: only P-256 is supported", curveName(key.Curve))
		}
		return key, nil
	case ed25519.PrivateKey:
		return key, nil
	case *rsa.PrivateKey:
		return nil, errors.New("RSA keys are not supported: use an ECDSA P-256 or Ed25519 key")
	case *ecdh.PrivateKey:
		return nil, errors.New("X25519 keys are for key agreement, not signing: use an Ed25519 or ECDSA P-256 key")
	default:
		return nil, fmt.Errorf("unsupported private key type %T: use an ECDSA P-256 or Ed25519 key", key)
	}
}

func parseSEC1(der []byte) (crypto.Signer, error) {
	key, err := x509.ParseECPrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parsing EC private key (only P-256 is supported): %v", err)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("unsupported ECDSA curve %s: only P-256 is supported", curveName(key.Curve))
	}
	return key, nil
}

// GenerateKeyPEM generates a new ECDSA P-256 private key and returns it
// PEM-encoded as PKCS#8 ("PRIVATE KEY"), ready for ParsePrivateKeyPEM.
func GenerateKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("assertion: generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("assertion: encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// jwks is a JSON Web Key Set document.
type jwks struct {
	Keys []jwk `json:"keys"`
}
