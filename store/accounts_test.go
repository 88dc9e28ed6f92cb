package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// The account suite runs against every backend, like storetest.Run.
func runAccounts(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndRead", testAccountCreate},
		{"EmailUniqueAndNormalized", testAccountUnique},
		{"Passwords", testAccountPasswords},
		{"FailuresAndLock", testAccountLock},
		{"ConcurrentFailuresCountOnce", testAccountConcurrentFailures},
		{"ProfileVerifyDelete", testAccountProfile},
		{"InvalidInput", testAccountInvalid},
		{"TOTPAndRecoveryCodes", testAccountTOTP},
		{"RecoveryCodeConcurrentUseOnce", testAccountRecoveryConcurrent},
		{"Passkeys", testAccountPasskeys},
		{"DeleteRemovesFactors", testAccountDeleteFactors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func TestAccountsSQLite(t *testing.T) {
	runAccounts(t, func(t *testing.T) store.Store { return openSQLite(t, sqliteDSN(t)) })
}

func TestAccountsSQLiteMemory(t *testing.T) {
	runAccounts(t, func(t *testing.T) store.Store { return openSQLite(t, "sqlite::memory:") })
}

func TestAccountsPostgres(t *testing.T) {
	postgresBase(t)
	runAccounts(t, func(t *testing.T) store.Store { return openPostgres(t, postgresDSN(t)) })
}

var accT0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

const hashA = "$argon2id$v=19$m=65536,t=1,p=2$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"

func testAccountCreate(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.AccountByEmail(ctx, "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing account: err = %v", err)
	}
	if _, err := s.AccountByID(ctx, "acct_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing account by id: err = %v", err)
	}
	a, err := s.CreateAccount(ctx, store.Account{Email: "  Zoë@Example.COM ", PasswordHash: hashA,
		Profile: map[string]string{"name": "Zoë Ångström", "locale": "fr"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.Email != "zoë@example.com" || a.EmailVerified || a.Created.IsZero() || a.PasswordChanged.IsZero() {
		t.Fatalf("created = %+v", a)
	}
	for _, get := range []func() (*store.Account, error){
		func() (*store.Account, error) { return s.AccountByEmail(ctx, "ZOË@example.com") },
		func() (*store.Account, error) { return s.AccountByID(ctx, a.ID) },
	} {
		got, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != a.ID || got.Email != a.Email || got.PasswordHash != hashA || got.Profile["name"] != "Zoë Ångström" ||
			!got.Created.Equal(a.Created) || !got.PasswordChanged.Equal(a.PasswordChanged) || !got.LockedUntil.IsZero() || got.FailedAttempts != 0 {
			t.Fatalf("read back %+v, want %+v", got, a)
		}
	}
}

func testAccountUnique(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.CreateAccount(ctx, store.Account{Email: "a@example.com", PasswordHash: hashA}); err != nil {
		t.Fatal(err)
	}
	_, err := s.CreateAccount(ctx, store.Account{Email: "A@EXAMPLE.com", PasswordHash: hashA})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate email: err = %v, want ErrExists", err)
	}
}

func testAccountPasswords(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "p@example.com", PasswordHash: hashA, Created: accT0, Updated: accT0, PasswordChanged: accT0})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RehashPassword(ctx, a.ID, "stale", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rehash with a stale hash: err = %v", err)
	}
	if err := s.RehashPassword(ctx, a.ID, hashA, "rehashed"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.AccountByID(ctx, a.ID)
	if got.PasswordHash != "rehashed" || !got.PasswordChanged.Equal(accT0) {
		t.Fatalf("after rehash: %+v (password_changed_at must stay)", got)
	}
	if _, _, err := s.RecordFailure(ctx, a.ID, 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(ctx, a.ID, "reset"); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AccountByID(ctx, a.ID)
	if got.PasswordHash != "reset" || !got.PasswordChanged.After(accT0) || !got.LockedUntil.IsZero() || got.FailedAttempts != 0 {
		t.Fatalf("after set password: %+v", got)
	}
	if err := s.SetPassword(ctx, "acct_missing", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("set password of a missing account: err = %v", err)
	}
}

func testAccountLock(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "l@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		n, until, err := s.RecordFailure(ctx, a.ID, 3, time.Hour)
		if err != nil || n != i || !until.IsZero() {
			t.Fatalf("failure %d: n=%d until=%v err=%v", i, n, until, err)
		}
	}
	n, until, err := s.RecordFailure(ctx, a.ID, 3, time.Hour)
	if err != nil || n != 0 || time.Until(until) < 59*time.Minute {
		t.Fatalf("third failure: n=%d until=%v err=%v; want locked for an hour", n, until, err)
	}
	got, _ := s.AccountByID(ctx, a.ID)
	if !got.Locked(time.Now()) || got.Locked(time.Now().Add(2*time.Hour)) {
		t.Fatalf("lock not stored: %+v", got)
	}
	if err := s.ResetFailures(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = s.AccountByID(ctx, a.ID)
	if got.Locked(time.Now()) || got.FailedAttempts != 0 {
		t.Fatalf("after reset: %+v", got)
	}
	if _, _, err := s.RecordFailure(ctx, "acct_missing", 3, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failure on a missing account: err = %v", err)
	}
}

func testAccountConcurrentFailures(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "c@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.RecordFailure(ctx, a.ID, 100, time.Hour); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _ := s.AccountByID(ctx, a.ID)
	if got.FailedAttempts != n {
		t.Fatalf("failed_attempts = %d after %d concurrent failures", got.FailedAttempts, n)
	}
}

func testAccountProfile(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "v@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MarkVerified(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateProfile(ctx, a.ID, map[string]string{"name": "東京 🔐", "q": `"\`}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.AccountByID(ctx, a.ID)
	if !got.EmailVerified || got.Profile["name"] != "東京 🔐" || got.Profile["q"] != `"\` {
		t.Fatalf("after verify and profile: %+v", got)
	}
	if err := s.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AccountByEmail(ctx, "v@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted account still found: %v", err)
	}
	if err := s.DeleteAccount(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: err = %v", err)
	}
	// The address is free again.
	if _, err := s.CreateAccount(ctx, store.Account{Email: "v@example.com", PasswordHash: hashA}); err != nil {
		t.Fatal(err)
	}
}

func testAccountInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, e := range []string{"", "no-at", "a@b@c", "a b@example.com", "@example.com", "a@", "a@example.com.", "a@example.com\r\nBcc: x@y"} {
		if _, err := s.CreateAccount(ctx, store.Account{Email: e, PasswordHash: hashA}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("CreateAccount(%q): err = %v, want ErrInvalid", e, err)
		}
	}
	if _, err := s.CreateAccount(ctx, store.Account{Email: "x@example.com"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty hash: err = %v", err)
	}
	if err := s.MarkVerified(ctx, ""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty id: err = %v", err)
	}
}

func testAccountTOTP(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "t@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.AccountMFA(ctx, a.ID)
	if err != nil || m.HasTOTP() || m.RecoveryCodes != 0 || m.Passkeys != 0 {
		t.Fatalf("fresh account: %+v, %v", m, err)
	}
	if _, err := s.AccountMFA(ctx, "acct_missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("mfa of a missing account: err = %v", err)
	}
	if err := s.EnableTOTP(ctx, "acct_missing", []byte{1}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("enable on a missing account: err = %v", err)
	}
	if err := s.EnableTOTP(ctx, a.ID, nil, nil); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("empty secret: err = %v", err)
	}
	if err := s.EnableTOTP(ctx, a.ID, []byte("sealed"), []string{"h1", "h1"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("repeated hashes: err = %v", err)
	}
	sealed := []byte{0, 1, 2, 0xff, 'x'}
	if err := s.EnableTOTP(ctx, a.ID, sealed, []string{"h1", "h2", "h3"}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableTOTP(ctx, a.ID, []byte("other"), nil); !errors.Is(err, store.ErrExists) {
		t.Fatalf("enable twice: err = %v", err)
	}
	m, err = s.AccountMFA(ctx, a.ID)
	if err != nil || string(m.TOTPSecret) != string(sealed) || m.RecoveryCodes != 3 || m.TOTPCreated.IsZero() {
		t.Fatalf("after enable: %+v, %v", m, err)
	}
	if ok, err := s.UseRecoveryCode(ctx, a.ID, "h2"); !ok || err != nil {
		t.Fatalf("first use: %v %v", ok, err)
	}
	if ok, err := s.UseRecoveryCode(ctx, a.ID, "h2"); ok || err != nil {
		t.Fatalf("second use: %v %v", ok, err)
	}
	if ok, _ := s.UseRecoveryCode(ctx, a.ID, "nope"); ok {
		t.Fatal("unknown code accepted")
	}
	if m, _ = s.AccountMFA(ctx, a.ID); m.RecoveryCodes != 2 {
		t.Fatalf("codes left = %d", m.RecoveryCodes)
	}
	if err := s.SetRecoveryCodes(ctx, a.ID, []string{"n1", "n2"}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.UseRecoveryCode(ctx, a.ID, "h1"); ok {
		t.Fatal("replaced code still works")
	}
	if err := s.DisableTOTP(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableTOTP(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("disable twice: err = %v", err)
	}
	if m, _ = s.AccountMFA(ctx, a.ID); m.HasTOTP() || m.RecoveryCodes != 0 {
		t.Fatalf("after disable: %+v", m)
	}
}

func testAccountRecoveryConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "rc@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnableTOTP(ctx, a.ID, []byte("sealed"), []string{"only"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.UseRecoveryCode(ctx, a.ID, "only")
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("a recovery code was used %d times", wins)
	}
}

func testAccountPasskeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "pk@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	k := store.Passkey{CredentialID: []byte{9, 8, 7, 0}, AccountID: a.ID, PublicKey: []byte("cose"), SignCount: 5,
		Transports: []string{"usb", "nfc"}, Flags: 0x18, AAGUID: make([]byte, 16), AttestationType: "none", Name: "YubiKey", Created: accT0}
	if err := s.AddPasskey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPasskey(ctx, k); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate credential: err = %v", err)
	}
	bad := k
	bad.AccountID, bad.CredentialID = "acct_missing", []byte{1}
	if err := s.AddPasskey(ctx, bad); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing account: err = %v", err)
	}
	got, err := s.PasskeyByID(ctx, k.CredentialID)
	if err != nil || got.AccountID != a.ID || string(got.PublicKey) != "cose" || got.SignCount != 5 || len(got.Transports) != 2 ||
		got.Flags != 0x18 || len(got.AAGUID) != 16 || got.Name != "YubiKey" || !got.Created.Equal(accT0) || !got.LastUsed.IsZero() {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if m, _ := s.AccountMFA(ctx, a.ID); m.Passkeys != 1 {
		t.Fatalf("passkeys = %d", m.Passkeys)
	}
	if err := s.UsePasskey(ctx, k.CredentialID, 5); !errors.Is(err, store.ErrSignCount) {
		t.Fatalf("same counter: err = %v", err)
	}
	if err := s.UsePasskey(ctx, k.CredentialID, 4); !errors.Is(err, store.ErrSignCount) {
		t.Fatalf("counter going back: err = %v", err)
	}
	if err := s.UsePasskey(ctx, k.CredentialID, 6); err != nil {
		t.Fatal(err)
	}
	if err := s.UsePasskey(ctx, []byte("nope"), 6); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown credential: err = %v", err)
	}
	zero := store.Passkey{CredentialID: []byte("zero"), AccountID: a.ID, PublicKey: []byte("cose")}
	if err := s.AddPasskey(ctx, zero); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.UsePasskey(ctx, zero.CredentialID, 0); err != nil {
			t.Fatalf("authenticator without a counter: %v", err)
		}
	}
	list, err := s.Passkeys(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].SignCount != 6 || list[0].LastUsed.IsZero() {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if err := s.DeletePasskey(ctx, "acct_other", k.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete through another account: err = %v", err)
	}
	if err := s.DeletePasskey(ctx, a.ID, k.CredentialID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PasskeyByID(ctx, k.CredentialID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted passkey: err = %v", err)
	}
}

func testAccountDeleteFactors(t *testing.T, s store.Store) {
	ctx := context.Background()
	a, err := s.CreateAccount(ctx, store.Account{Email: "d@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnableTOTP(ctx, a.ID, []byte("sealed"), []string{"h"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPasskey(ctx, store.Passkey{CredentialID: []byte("c"), AccountID: a.ID, PublicKey: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PasskeyByID(ctx, []byte("c")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("passkey outlived its account: %v", err)
	}
	// A new account with the same id starts without factors.
	b, err := s.CreateAccount(ctx, store.Account{ID: a.ID, Email: "d@example.com", PasswordHash: hashA})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.AccountMFA(ctx, b.ID); err != nil || m.HasTOTP() || m.RecoveryCodes != 0 || m.Passkeys != 0 {
		t.Fatalf("factors outlived their account: %+v, %v", m, err)
	}
}
