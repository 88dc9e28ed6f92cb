package local

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Argon2Params is the cost of one argon2id hash.
type Argon2Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// Default argon2id parameters: 64 MiB, one pass, two lanes (RFC 9106's
// second recommended option scaled to a shared server).
var DefaultArgon2 = Argon2Params{MemoryKiB: 64 * 1024, Iterations: 1, Parallelism: 2}

const (
	saltLen = 16
	keyLen  = 32
)

// hasher hashes and verifies passwords with argon2id. A semaphore bounds
// how many hashes run at once, so a burst of sign-ins cannot take more
// than MemoryKiB x slots of memory.
type hasher struct {
	p     Argon2Params
	slots chan struct{}
	// dummy is a hash of a random password with the current parameters:
	// verifying against it costs what a real verification costs.
	dummy string
}

func newHasher(p Argon2Params, concurrency int) (*hasher, error) {
	if p.MemoryKiB < 8*uint32(p.Parallelism) || p.Iterations < 1 || p.Parallelism < 1 {
		return nil, fmt.Errorf("invalid argon2id parameters %+v", p)
	}
	if concurrency < 1 {
		concurrency = 1
	}
	h := &hasher{p: p, slots: make(chan struct{}, concurrency)}
	junk := make([]byte, 24)
	rand.Read(junk)
	d, err := h.hash(context.Background(), base64.RawStdEncoding.EncodeToString(junk))
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.slots }

// hash returns the PHC string of password with a fresh salt.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.p.Iterations, h.p.MemoryKiB, h.p.Parallelism, keyLen)
	h.release()
	return encodePHC(h.p, salt, key), nil
}

// verify checks password against a PHC string. rehash is true when the
// password matched but the hash was made with other parameters.
func (h *hasher) verify(ctx context.Context, encoded, password string) (ok, rehash bool, err error) {
	p, salt, want, err := parsePHC(encoded)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want)))
	h.release()
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	return true, p != h.p || len(salt) != saltLen || len(want) != keyLen, nil
}

// burn spends the time of one verification and always fails: used for
// unknown or locked accounts so that they answer as slowly as known ones.
func (h *hasher) burn(ctx context.Context, password string) {
	h.verify(ctx, h.dummy, password)
}

func encodePHC(p Argon2Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

var errBadHash = errors.New("not an argon2id PHC string")

// parsePHC reads "$argon2id$v=19$m=...,t=...,p=...$salt$hash". Absurd
// parameters (a hash planted in the database to exhaust memory) are
// refused.
func parsePHC(s string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errBadHash
	}
	var m, t, par uint32
	if n, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &m, &t, &par); err != nil || n != 3 {
		return p, nil, nil, errBadHash
	}
	if m < 8 || m > 4<<20 || t < 1 || t > 20 || par < 1 || par > 64 || m < 8*par {
		return p, nil, nil, fmt.Errorf("%w: parameters out of range", errBadHash)
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(f[4])
	key, err2 := base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errBadHash
	}
	return Argon2Params{MemoryKiB: m, Iterations: t, Parallelism: uint8(par)}, salt, key, nil
}

// policy is the password policy.
type policy struct {
	min, max int
	breached map[[32]byte]struct{}
}

// Problems a new password can have; the messages are shown to the person.
var (
	errTooShort = errors.New("too short")
	errTooLong  = errors.New("too long")
	errBreached = errors.New("breached")
	errIsEmail  = errors.New("same as email")
)

// check returns nil or one of the err* values above.
func (p *policy) check(password, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < p.min:
		return errTooShort
	case n > p.max:
		return errTooLong
	case email != "" && strings.EqualFold(strings.TrimSpace(password), email):
		return errIsEmail
	}
	if p.breached != nil {
		if _, bad := p.breached[sha256.Sum256([]byte(password))]; bad {
			return errBreached
		}
	}
	return nil
}

// loadBreached reads a list of known breached passwords, one per line
// (a trailing CR is dropped; nothing else is trimmed, comparison is exact
// and case-sensitive). Only SHA-256 digests are kept in memory.
func loadBreached(path string) (map[[32]byte]struct{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBreached(f)
}

func readBreached(r io.Reader) (map[[32]byte]struct{}, error) {
	set := map[[32]byte]struct{}{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			continue
		}
		set[sha256.Sum256([]byte(line))] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return set, nil
}
