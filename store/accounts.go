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
	// DeleteAccount deletes the account (erasure) with its second
	// factors; ErrNotFound when none.
	DeleteAccount(ctx context.Context, id string) error

	// AccountMFA returns the second factors of the account (an empty MFA
	// when it has none), or ErrNotFound when there is no such account.
	AccountMFA(ctx context.Context, id string) (*MFA, error)
	// EnableTOTP stores the account's sealed TOTP secret and replaces its
	// recovery codes (hashes) in one transaction. It returns ErrExists when
	// TOTP is already on and ErrNotFound when there is no such account.
	EnableTOTP(ctx context.Context, id string, sealedSecret []byte, recoveryHashes []string) error
	// DisableTOTP removes the TOTP secret and every recovery code;
	// ErrNotFound when TOTP was off.
	DisableTOTP(ctx context.Context, id string) error
	// SetRecoveryCodes replaces the account's recovery codes (hashes).
	SetRecoveryCodes(ctx context.Context, id string, hashes []string) error
	// UseRecoveryCode deletes the recovery code with that hash and reports
	// whether it existed: of concurrent uses of one code, one wins.
	UseRecoveryCode(ctx context.Context, id, hash string) (bool, error)

	// AddPasskey stores a WebAuthn credential; ErrExists when its id is
	// taken, ErrNotFound when the account does not exist.
	AddPasskey(ctx context.Context, k Passkey) error
	// Passkeys returns the account's credentials, oldest first.
	Passkeys(ctx context.Context, accountID string) ([]Passkey, error)
	// PasskeyByID returns the credential or ErrNotFound.
	PasskeyByID(ctx context.Context, credentialID []byte) (*Passkey, error)
	// UsePasskey records a successful assertion: the new signature counter
	// and the time. It refuses (ErrSignCount) a counter that did not
	// increase, unless both the stored and the new one are zero (the
	// authenticator keeps no counter): a cloned authenticator shows as a
	// counter going back.
	UsePasskey(ctx context.Context, credentialID []byte, signCount uint32) error
	// DeletePasskey removes one of the account's credentials; ErrNotFound
	// when the account has no such credential.
	DeletePasskey(ctx context.Context, accountID string, credentialID []byte) error
}

// ErrSignCount is returned by UsePasskey when the authenticator's
// signature counter did not increase (a possibly cloned authenticator).
var ErrSignCount = errors.New("store: passkey signature counter did not increase")

// MFA is what an account has enrolled as second factors.
type MFA struct {
	// TOTPSecret is the TOTP secret as the provider sealed it; nil when
	// TOTP is off. The store never interprets it.
	TOTPSecret  []byte
	TOTPCreated time.Time
	// RecoveryCodes is the number of unused recovery codes.
	RecoveryCodes int
	// Passkeys is the number of registered passkeys.
	Passkeys int
}

// HasTOTP reports whether TOTP is on.
func (m *MFA) HasTOTP() bool { return len(m.TOTPSecret) > 0 }

// Passkey is a WebAuthn credential of an account.
type Passkey struct {
	CredentialID    []byte
	AccountID       string
	PublicKey       []byte // COSE key
	SignCount       uint32
	Transports      []string
	Flags           uint8 // authenticator flags at registration (backup eligibility)
	AAGUID          []byte
	AttestationType string
	Name            string
	Created         time.Time
	LastUsed        time.Time // zero when never used
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

// ---- second factors ----

func (s *sqlStore) AccountMFA(ctx context.Context, id string) (*MFA, error) {
	const op = "account mfa"
	if err := validID(op, id); err != nil {
		return nil, err
	}
	var m MFA
	var exists bool
	var secret []byte
	err := s.r.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1),
		       (SELECT secret FROM account_totp WHERE account_id = $1),
		       (SELECT created FROM account_totp WHERE account_id = $1),
		       (SELECT count(*) FROM account_recovery_codes WHERE account_id = $1),
		       (SELECT count(*) FROM account_passkeys WHERE account_id = $1)`, id).
		Scan(&exists, &secret, timeCol{&m.TOTPCreated}, &m.RecoveryCodes, &m.Passkeys)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if !exists {
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if len(secret) > 0 {
		m.TOTPSecret = append([]byte(nil), secret...)
	}
	return &m, nil
}

// accountExists answers ErrNotFound for a missing account inside tx.
func accountExists(ctx context.Context, tx *sql.Tx, op, id string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

func validHashes(op string, hashes []string) error {
	seen := map[string]bool{}
	for _, h := range hashes {
		if h == "" || seen[h] {
			return invalid(op, "empty or repeated recovery code hash")
		}
		seen[h] = true
	}
	return nil
}

func (s *sqlStore) replaceCodes(ctx context.Context, tx *sql.Tx, op, id string, hashes []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM account_recovery_codes WHERE account_id = $1`, id); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	now := s.d.ts(s.now())
	for _, h := range hashes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO account_recovery_codes (account_id, code_hash, created) VALUES ($1, $2, $3)`, id, h, now); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	return nil
}

func (s *sqlStore) EnableTOTP(ctx context.Context, id string, sealed []byte, hashes []string) error {
	const op = "enable totp"
	if err := validID(op, id); err != nil {
		return err
	}
	if len(sealed) == 0 {
		return invalid(op, "empty secret")
	}
	if err := validHashes(op, hashes); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := accountExists(ctx, tx, op, id); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO account_totp (account_id, secret, created) VALUES ($1, $2, $3)
			ON CONFLICT (account_id) DO NOTHING`, id, sealed, s.d.ts(s.now()))
		if err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("store: %s: totp already on: %w", op, ErrExists)
		}
		return s.replaceCodes(ctx, tx, op, id, hashes)
	})
}

func (s *sqlStore) DisableTOTP(ctx context.Context, id string) error {
	const op = "disable totp"
	if err := validID(op, id); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM account_totp WHERE account_id = $1`, id)
		if err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("store: %s: %w", op, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_recovery_codes WHERE account_id = $1`, id); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		return nil
	})
}

func (s *sqlStore) SetRecoveryCodes(ctx context.Context, id string, hashes []string) error {
	const op = "set recovery codes"
	if err := validID(op, id); err != nil {
		return err
	}
	if err := validHashes(op, hashes); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := accountExists(ctx, tx, op, id); err != nil {
			return err
		}
		return s.replaceCodes(ctx, tx, op, id, hashes)
	})
}

func (s *sqlStore) UseRecoveryCode(ctx context.Context, id, hash string) (bool, error) {
	const op = "use recovery code"
	if err := validID(op, id); err != nil {
		return false, err
	}
	if hash == "" {
		return false, nil
	}
	r, err := s.w.ExecContext(ctx, `DELETE FROM account_recovery_codes WHERE account_id = $1 AND code_hash = $2`, id, hash)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", op, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", op, err)
	}
	return n == 1, nil
}

// ---- passkeys ----

const passkeyCols = `credential_id, account_id, public_key, sign_count, transports, flags, aaguid, attestation_type, name, created, last_used`

func (s *sqlStore) AddPasskey(ctx context.Context, k Passkey) error {
	const op = "add passkey"
	if err := validID(op, k.AccountID); err != nil {
		return err
	}
	if len(k.CredentialID) == 0 || len(k.CredentialID) > 1023 || len(k.PublicKey) == 0 {
		return invalid(op, "credential id or public key missing or too long")
	}
	for _, t := range k.Transports {
		if t == "" || strings.Contains(t, ",") {
			return invalid(op, "bad transport %q", t)
		}
	}
	if k.Created.IsZero() {
		k.Created = s.now()
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := accountExists(ctx, tx, op, k.AccountID); err != nil {
			return err
		}
		var aaguid any
		if len(k.AAGUID) > 0 {
			aaguid = k.AAGUID
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO account_passkeys (`+passkeyCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL) ON CONFLICT (credential_id) DO NOTHING`,
			k.CredentialID, k.AccountID, k.PublicKey, int64(k.SignCount), strings.Join(k.Transports, ","), int(k.Flags),
			aaguid, k.AttestationType, k.Name, s.d.ts(k.Created))
		if err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
		if n, err := r.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("store: %s: credential id taken: %w", op, ErrExists)
		}
		return nil
	})
}

type rowScanner interface{ Scan(dest ...any) error }

func scanPasskey(row rowScanner) (*Passkey, error) {
	var k Passkey
	var count int64
	var flags int
	var transports string
	err := row.Scan(&k.CredentialID, &k.AccountID, &k.PublicKey, &count, &transports, &flags, &k.AAGUID, &k.AttestationType,
		&k.Name, timeCol{&k.Created}, timeCol{&k.LastUsed})
	if err != nil {
		return nil, err
	}
	k.SignCount, k.Flags = uint32(count), uint8(flags)
	if transports != "" {
		k.Transports = strings.Split(transports, ",")
	}
	return &k, nil
}

func (s *sqlStore) Passkeys(ctx context.Context, accountID string) ([]Passkey, error) {
	const op = "passkeys"
	if err := validID(op, accountID); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+passkeyCols+` FROM account_passkeys WHERE account_id = $1 ORDER BY created, credential_id`, accountID)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []Passkey
	for rows.Next() {
		k, err := scanPasskey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, *k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

func (s *sqlStore) PasskeyByID(ctx context.Context, credentialID []byte) (*Passkey, error) {
	const op = "passkey by id"
	if len(credentialID) == 0 {
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	k, err := scanPasskey(s.r.QueryRowContext(ctx, `SELECT `+passkeyCols+` FROM account_passkeys WHERE credential_id = $1`, credentialID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return k, nil
}

func (s *sqlStore) UsePasskey(ctx context.Context, credentialID []byte, signCount uint32) error {
	const op = "use passkey"
	if len(credentialID) == 0 {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	// One statement: the comparison and the update cannot interleave with
	// a concurrent assertion of the same credential.
	r, err := s.w.ExecContext(ctx, `UPDATE account_passkeys SET sign_count = $2, last_used = $3
		WHERE credential_id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`,
		credentialID, int64(signCount), s.d.ts(s.now()))
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	} else if n == 1 {
		return nil
	}
	if _, err := s.PasskeyByID(ctx, credentialID); err != nil {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", op, ErrSignCount)
}

func (s *sqlStore) DeletePasskey(ctx context.Context, accountID string, credentialID []byte) error {
	const op = "delete passkey"
	if err := validID(op, accountID); err != nil {
		return err
	}
	return s.execOne(ctx, op, `DELETE FROM account_passkeys WHERE account_id = $1 AND credential_id = $2`, accountID, credentialID)
}
