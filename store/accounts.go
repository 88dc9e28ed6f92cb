package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// ErrExists is returned by CreateAccount when an account with the same
// (normalized) email already exists.
var ErrExists = errors.New("store: already exists")

// Account is a local account: an email address and a password hash, for
// the "local" provider. The password hash is an opaque PHC string
// ($argon2id$...); the store never interprets it.
type Account struct {
	// ID is the account's stable identifier (the identity's subject).
	// CreateAccount assigns one when it is empty.
	ID string
	// Email is normalized by the store (see NormalizeEmail).
	Email           string
	EmailVerified   bool
	PasswordHash    string
	Profile         map[string]string
	Created         time.Time
	Updated         time.Time
	FailedAttempts  int
	LockedUntil     time.Time // zero when not locked
	PasswordChanged time.Time
}

// Locked reports whether the account is locked at now.
func (a *Account) Locked(now time.Time) bool {
	return !a.LockedUntil.IsZero() && now.Before(a.LockedUntil)
}

// Accounts stores local accounts. Every Store implements it.
type Accounts interface {
	// CreateAccount stores a new account and returns it as stored. An
	// empty ID is generated; zero times default to now. It returns an
	// error wrapping ErrExists when the email is taken.
	CreateAccount(ctx context.Context, a Account) (*Account, error)
	// AccountByEmail returns the account with that email (normalized
	// before the lookup) or ErrNotFound.
	AccountByEmail(ctx context.Context, email string) (*Account, error)
	// AccountByID returns the account or ErrNotFound.
	AccountByID(ctx context.Context, id string) (*Account, error)
	// SetPassword replaces the password hash after a change or reset: it
	// sets PasswordChanged to now and clears failures and any lock.
	SetPassword(ctx context.Context, id, hash string) error
	// RehashPassword replaces the hash only if it is still oldHash
	// (upgrading the hashing parameters at sign-in); PasswordChanged is
	// kept. It returns ErrNotFound when the hash changed meanwhile.
	RehashPassword(ctx context.Context, id, oldHash, newHash string) error
	// MarkVerified records that the account's email was verified.
	MarkVerified(ctx context.Context, id string) error
	// RecordFailure counts one failed sign-in. When the count reaches
	// maxFailures (> 0) the account is locked until now+lockFor and the
	// count starts again from zero. It returns the count and the lock end
	// (zero when not locked).
	RecordFailure(ctx context.Context, id string, maxFailures int, lockFor time.Duration) (failures int, lockedUntil time.Time, err error)
	// ResetFailures clears the failure count and any lock.
	ResetFailures(ctx context.Context, id string) error
	// UpdateProfile replaces the profile fields.
	UpdateProfile(ctx context.Context, id string, profile map[string]string) error
	// DeleteAccount deletes the account (erasure); ErrNotFound when none.
	DeleteAccount(ctx context.Context, id string) error
}

// NormalizeEmail trims an address and lower-cases it. It returns "" for
// something that is not plausibly one address (no single '@' with text on
// both sides, spaces or control characters, over 254 bytes).
func NormalizeEmail(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) > 254 || strings.Count(s, "@") != 1 {
		return ""
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || domain == "" || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return ""
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '<' || r == '>' || r == ',' || r == ';' || r == '"' {
			return ""
		}
	}
	return s
}

func newAccountID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "acct_" + hex.EncodeToString(b)
}

const accountCols = `id, email, email_verified, password_hash, profile, created, updated, failed_attempts, locked_until, password_changed_at`

func validID(op, id string) error {
	if strings.TrimSpace(id) == "" {
		return invalid(op, "empty account id")
	}
	return nil
}

func (s *sqlStore) CreateAccount(ctx context.Context, a Account) (*Account, error) {
	const op = "create account"
	email := NormalizeEmail(a.Email)
	if email == "" {
		return nil, invalid(op, "invalid email %q", a.Email)
	}
	if a.PasswordHash == "" {
		return nil, invalid(op, "empty password hash")
	}
	a.Email = email
	if a.ID == "" {
		a.ID = newAccountID()
	}
	profile, err := encodeMap(a.Profile)
	if err != nil {
		return nil, invalid(op, "profile: %v", err)
	}
	now := s.now()
	for _, t := range []*time.Time{&a.Created, &a.Updated, &a.PasswordChanged} {
		if t.IsZero() {
			*t = now
		}
		*t = normTime(*t)
	}
	var locked any
	if !a.LockedUntil.IsZero() {
		a.LockedUntil = normTime(a.LockedUntil)
		locked = s.d.ts(a.LockedUntil)
	}
	if a.Profile == nil {
		a.Profile = map[string]string{}
	}
	var id string
	err = s.w.QueryRowContext(ctx, `
		INSERT INTO accounts (`+accountCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (email) DO NOTHING RETURNING id`,
		a.ID, a.Email, a.EmailVerified, a.PasswordHash, profile, s.d.ts(a.Created), s.d.ts(a.Updated),
		a.FailedAttempts, locked, s.d.ts(a.PasswordChanged)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: email taken: %w", op, ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return &a, nil
}

func (s *sqlStore) scanAccount(op string, row *sql.Row) (*Account, error) {
	var a Account
	var profile []byte
	err := row.Scan(&a.ID, &a.Email, &a.EmailVerified, &a.PasswordHash, &profile, timeCol{&a.Created}, timeCol{&a.Updated},
		&a.FailedAttempts, timeCol{&a.LockedUntil}, timeCol{&a.PasswordChanged})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if a.Profile, err = decodeMap(profile); err != nil {
		return nil, fmt.Errorf("store: %s: profile: %w", op, err)
	}
	return &a, nil
}

func (s *sqlStore) AccountByEmail(ctx context.Context, email string) (*Account, error) {
	const op = "account by email"
	e := NormalizeEmail(email)
	if e == "" {
		// Not an address: it cannot be stored, so it is not found.
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return s.scanAccount(op, s.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE email = $1`, e))
}

func (s *sqlStore) AccountByID(ctx context.Context, id string) (*Account, error) {
	const op = "account by id"
	if err := validID(op, id); err != nil {
		return nil, err
	}
	return s.scanAccount(op, s.r.QueryRowContext(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = $1`, id))
}

// execOne runs an UPDATE or DELETE that must touch exactly one account.
func (s *sqlStore) execOne(ctx context.Context, op, q string, args ...any) error {
	r, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) SetPassword(ctx context.Context, id, hash string) error {
	const op = "set password"
	if err := validID(op, id); err != nil {
		return err
	}
	if hash == "" {
		return invalid(op, "empty password hash")
	}
	now := s.d.ts(s.now())
	return s.execOne(ctx, op, `UPDATE accounts SET password_hash = $2, password_changed_at = $3, updated = $3,
		failed_attempts = 0, locked_until = NULL WHERE id = $1`, id, hash, now)
}

func (s *sqlStore) RehashPassword(ctx context.Context, id, oldHash, newHash string) error {
	const op = "rehash password"
	if err := validID(op, id); err != nil {
		return err
	}
	if newHash == "" {
		return invalid(op, "empty password hash")
	}
	return s.execOne(ctx, op, `UPDATE accounts SET password_hash = $3, updated = $4 WHERE id = $1 AND password_hash = $2`,
		id, oldHash, newHash, s.d.ts(s.now()))
}

func (s *sqlStore) MarkVerified(ctx context.Context, id string) error {
	const op = "mark verified"
	if err := validID(op, id); err != nil {
		return err
	}
	return s.execOne(ctx, op, `UPDATE accounts SET email_verified = $2, updated = $3 WHERE id = $1`, id, true, s.d.ts(s.now()))
}

func (s *sqlStore) RecordFailure(ctx context.Context, id string, maxFailures int, lockFor time.Duration) (int, time.Time, error) {
	const op = "record failure"
	if err := validID(op, id); err != nil {
		return 0, time.Time{}, err
	}
	if maxFailures <= 0 {
		maxFailures = int(^uint32(0) >> 1) // never lock
	}
	now := s.now()
	var n int
	var locked time.Time
	// SET expressions read the row's old values on both engines, so the
	// increment and the lock decision are one atomic statement.
	err := s.w.QueryRowContext(ctx, `
		UPDATE accounts SET
			failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0 ELSE failed_attempts + 1 END,
			locked_until    = CASE WHEN failed_attempts + 1 >= $2 THEN $3 ELSE locked_until END,
			updated         = $4
		WHERE id = $1 RETURNING failed_attempts, locked_until`,
		id, maxFailures, s.d.ts(now.Add(lockFor)), s.d.ts(now)).Scan(&n, timeCol{&locked})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: %s: %w", op, err)
	}
	if !locked.IsZero() && !now.Before(locked) {
		locked = time.Time{} // an old lock that has run out
	}
	return n, locked, nil
}

func (s *sqlStore) ResetFailures(ctx context.Context, id string) error {
	const op = "reset failures"
	if err := validID(op, id); err != nil {
		return err
	}
	return s.execOne(ctx, op, `UPDATE accounts SET failed_attempts = 0, locked_until = NULL, updated = $2 WHERE id = $1`,
		id, s.d.ts(s.now()))
}

func (s *sqlStore) UpdateProfile(ctx context.Context, id string, profile map[string]string) error {
	const op = "update profile"
	if err := validID(op, id); err != nil {
		return err
	}
	p, err := encodeMap(profile)
	if err != nil {
		return invalid(op, "profile: %v", err)
	}
	return s.execOne(ctx, op, `UPDATE accounts SET profile = $2, updated = $3 WHERE id = $1`, id, p, s.d.ts(s.now()))
}

func (s *sqlStore) DeleteAccount(ctx context.Context, id string) error {
	const op = "delete account"
	if err := validID(op, id); err != nil {
		return err
	}
	return s.execOne(ctx, op, `DELETE FROM accounts WHERE id = $1`, id)
}
