package local

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

// Authentication methods and context of local sign-ins (RFC 8176 amr
// values; identity.HasMFA counts "pwd" as knowledge and "otp" as
// possession).
const (
	// AMRPassword is a password sign-in.
	AMRPassword = "pwd"
	// AMROTP is a TOTP code or a recovery code (a printed list of
	// one-time passwords) given after the password.
	AMROTP = "otp"
	// ACRMFA is the acr of a sign-in with a password and a second factor.
	ACRMFA = "urn:gatehouse:mfa"
)

// TOTP parameters: the ones every authenticator app supports.
const (
	totpPeriod     = 30 // seconds
	totpSkew       = 1  // steps accepted before and after the current one
	totpDigits     = otp.DigitsSix
	totpSecretSize = 20 // bytes (160 bits, RFC 4226's recommendation)
	recoveryCodes  = 10
	// mfaTTL bounds the time between the password and the second factor;
	// manageTTL the time the security settings stay open after
	// re-authentication; enrolTTL the time to type the first code.
	mfaTTL    = 5 * time.Minute
	manageTTL = 10 * time.Minute
	enrolTTL  = 10 * time.Minute
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// ---- sealing secrets at rest ----

// sealKey derives the AES-256 key that seals TOTP secrets from a link key
// (itself derived from link_secret or a session key and the provider's
// name), so that neither raw secret is used for two purposes.
func sealKey(linkKey []byte) []byte {
	m := hmac.New(sha256.New, linkKey)
	m.Write([]byte("gatehouse local provider totp seal v1"))
	return m.Sum(nil)
}

const sealVersion = 1

// seal encrypts plain with AES-GCM under the current key. The additional
// data binds the ciphertext to its use and account: a sealed secret copied
// to another account's row does not open.
func (p *Provider) seal(use, account string, plain []byte) []byte {
	gcm := newGCM(sealKey(p.tokens.keys[0]))
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	out := append([]byte{sealVersion}, nonce...)
	return gcm.Seal(out, nonce, plain, sealAD(p.name, use, account))
}

var errUnseal = errors.New("sealed value does not open with any key")

// open decrypts a value sealed by seal with any of the provider's keys
// (the first seals; older ones still open, for key rotation).
func (p *Provider) open(use, account string, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+12+16 || sealed[0] != sealVersion {
		return nil, errUnseal
	}
	for _, k := range p.tokens.keys {
		gcm := newGCM(sealKey(k))
		n := gcm.NonceSize()
		if plain, err := gcm.Open(nil, sealed[1:1+n], sealed[1+n:], sealAD(p.name, use, account)); err == nil {
			return plain, nil
		}
	}
	return nil, errUnseal
}

func newGCM(key []byte) cipher.AEAD {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	return g
}

func sealAD(provider, use, account string) []byte {
	return []byte("gatehouse-local\x00" + provider + "\x00" + use + "\x00" + account)
}

// ---- TOTP ----

// totpAt is the code of secret for a time step.
func totpAt(secret []byte, counter uint64) string {
	code, err := hotp.GenerateCodeCustom(b32.EncodeToString(secret), counter, hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "" // never equal to a 6-digit code
	}
	return code
}

// cleanCode drops spaces and dashes people type or paste with a code.
func cleanCode(s string) string {
	if len(s) > 64 {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}

func isTOTPCode(c string) bool {
	if len(c) != totpDigits.Length() {
		return false
	}
	for _, r := range c {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// checkTOTP accepts code when it is the code of the current time step or
// of one step before or after (clock skew), and claims that step for the
// account in the shared state: each code works once, so a code seen over
// someone's shoulder or captured by a phishing page cannot be replayed.
func (p *Provider) checkTOTP(ctx context.Context, account string, secret []byte, code string) (bool, error) {
	if !isTOTPCode(code) {
		return false, nil
	}
	now := p.now().Unix()
	step := uint64(now / totpPeriod)
	for d := -totpSkew; d <= totpSkew; d++ {
		c := uint64(int64(step) + int64(d))
		if subtle.ConstantTimeCompare([]byte(totpAt(secret, c)), []byte(code)) != 1 {
			continue
		}
		// The claim outlives the window in which the step is accepted.
		until := time.Unix(int64(c+totpSkew+1)*totpPeriod, 0).Add(time.Minute)
		first, err := p.once.Claim(ctx, p.onceKey("totp", fmt.Sprintf("%s:%d", account, c)), until)
		if err != nil {
			return false, err
		}
		return first, nil
	}
	return false, nil
}

// ---- recovery codes ----

// newRecoveryCodes returns codes to show once and their hashes to store.
// A code is 80 random bits written as four groups of four base32
// letters; with that much entropy a keyed SHA-256 (salted with the
// account) suffices, and it does not depend on the provider's keys, so
// codes survive a key change (they are how people get back in then).
func newRecoveryCodes(account string) (codes, hashes []string) {
	for range recoveryCodes {
		b := make([]byte, 10)
		rand.Read(b)
		s := strings.ToLower(b32.EncodeToString(b))
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
		hashes = append(hashes, recoveryHash(account, s))
	}
	return codes, hashes
}

// recoveryHash hashes a cleaned code (lower case, no dashes).
func recoveryHash(account, cleaned string) string {
	sum := sha256.Sum256([]byte("gatehouse recovery code v1\x00" + account + "\x00" + cleaned))
	return hex.EncodeToString(sum[:])
}

func isRecoveryCode(c string) bool {
	if len(c) != 16 {
		return false
	}
	_, err := b32.DecodeString(strings.ToUpper(c))
	return err == nil
}

// checkSecondFactor checks a TOTP code or, when it has that shape, a
// recovery code (which is then used up). It returns the amr value of the
// factor, or "" when the code was refused.
func (p *Provider) checkSecondFactor(ctx context.Context, account string, sealed []byte, raw string) (string, error) {
	code := cleanCode(raw)
	switch {
	case isTOTPCode(code) && len(sealed) > 0:
		secret, err := p.open("totp", account, sealed)
		if err != nil {
			return "", fmt.Errorf("totp secret of %s: %w", account, err)
		}
		ok, err := p.checkTOTP(ctx, account, secret, code)
		if err != nil || !ok {
			return "", err
		}
		return AMROTP, nil
	case isRecoveryCode(code):
		ok, err := p.accounts.UseRecoveryCode(ctx, account, recoveryHash(account, code))
		if err != nil || !ok {
			return "", err
		}
		return AMROTP, nil
	}
	return "", nil
}

// ---- enrolment ----

// newEnrolment makes a fresh TOTP secret and the sealed, expiring form
// value that carries it between the setup page and its confirmation (the
// secret is stored only once a code proves the app has it).
func (p *Provider) newEnrolment(account string) (secret []byte, enrol string) {
	secret = make([]byte, totpSecretSize)
	rand.Read(secret)
	return secret, p.sealEnrolment(account, secret)
}

func (p *Provider) sealEnrolment(account string, secret []byte) string {
	plain := binary.BigEndian.AppendUint64(nil, uint64(p.now().Add(enrolTTL).Unix()))
	plain = append(plain, secret...)
	return b32.EncodeToString(p.seal("enrol", account, plain))
}

func (p *Provider) openEnrolment(account, enrol string) ([]byte, error) {
	if len(enrol) > 512 {
		return nil, errUnseal
	}
	sealed, err := b32.DecodeString(enrol)
	if err != nil {
		return nil, errUnseal
	}
	plain, err := p.open("enrol", account, sealed)
	if err != nil || len(plain) != 8+totpSecretSize {
		return nil, errUnseal
	}
	if !p.now().Before(time.Unix(int64(binary.BigEndian.Uint64(plain[:8])), 0)) {
		return nil, errTokenExpired
	}
	return plain[8:], nil
}

// otpauthURI is the key URI authenticator apps read (from the QR code).
func (p *Provider) otpauthURI(email string, secret []byte) string {
	label := url.PathEscape(p.issuer + ":" + email)
	q := url.Values{"secret": {b32.EncodeToString(secret)}, "issuer": {p.issuer},
		"algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}
	return "otpauth://totp/" + label + "?" + q.Encode()
}

// groupSecret writes the base32 secret in groups of four for typing.
func groupSecret(secret []byte) string {
	s := b32.EncodeToString(secret)
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// qrSVG draws uri as a QR code in an inline SVG (no image request, so the
// page's CSP needs no img-src), or "" when it cannot be encoded.
func qrSVG(uri string) template.HTML {
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return ""
	}
	bounds := code.Bounds()
	n := bounds.Dx()
	const quiet = 4
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="220" height="220" role="img" aria-label="QR code of the key" shape-rendering="crispEdges">`, n+2*quiet, n+2*quiet)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n+2*quiet, n+2*quiet)
	for y := 0; y < bounds.Dy(); y++ {
		for x := 0; x < n; x++ {
			if r, _, _, _ := code.At(bounds.Min.X+x, bounds.Min.Y+y).RGBA(); r == 0 {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()) // built from numbers only
}
