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
