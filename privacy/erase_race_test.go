package privacy_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
)

// backends opens one empty store per backend, each the only region "eu"
// of its own Policy. PostgreSQL is skipped (loudly) when no server is
// reachable, as in the store suite.
func backends(t *testing.T) map[string]func(t *testing.T) store.Store {
	open := func(t *testing.T, dsn string) store.Store {
		t.Helper()
		s, err := store.Open(ctxT(), dsn, store.Options{Region: "eu"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			return open(t, "sqlite://"+filepath.Join(t.TempDir(), "eu.db"))
		},
		"postgres": func(t *testing.T) store.Store { return open(t, storetest.PostgresDSN(t)) },
	}
}

func onePolicy(t *testing.T, s store.Store) (*privacy.Policy, *privacy.Regions) {
	t.Helper()
	rg, err := privacy.NewRegions(map[string]store.Store{"eu": s}, "eu", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := privacy.New(baseConfig("https://hooks.example"), rg, privacy.Options{Now: newClock(t0).Now})
	if err != nil {
		t.Fatal(err)
	}
	return p, rg
}

func located(t *testing.T, rg *privacy.Regions, key string) []string {
	t.Helper()
	got, err := rg.Locate(ctxT(), key)
	if err != nil {
		t.Fatalf("Locate: %v", err)
	}
	return got
}

// TestLocateFindsAuditOnlySubject: a subject with neither profile nor
// consent history, only audit events (a customer who never consented, or
// a sign-out written after an erasure), is found, so it can be erased.
func TestLocateFindsAuditOnlySubject(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			p, rg := onePolicy(t, open(t))
			ctx := ctxT()
			const key = "https://idp|audit-only"
			if got := located(t, rg, key); len(got) != 0 {
				t.Fatalf("Locate before any write = %v", got)
			}
			if err := p.Audit(ctx, privacy.KindSignOut, key, "eu", "r1", map[string]string{"provider": "google"}); err != nil {
				t.Fatal(err)
			}
			if got := located(t, rg, key); !slices.Equal(got, []string{"eu"}) {
				t.Fatalf("Locate = %v, want [eu]", got)
			}
			if ok, err := rg.LocateIn(ctx, key, "eu"); err != nil || !ok {
				t.Fatalf("LocateIn(eu) = %v, %v", ok, err)
			}
			// The admin erase path: a fresh erasure cleans an audit-only
			// subject.
			rc, err := p.EraseReceipt(ctx, key, "eu", "req-erase")
			if err != nil {
				t.Fatal(err)
			}
			if rc.Result.Profiles != 0 || rc.Result.Consents != 0 || rc.Result.Audits != 1 {
				t.Fatalf("erase result = %+v, want the one audit event", rc.Result)
			}
			if got := located(t, rg, key); len(got) != 0 {
				t.Fatalf("Locate after erase = %v", got)
			}
		})
	}
}

// TestWriteAfterEraseIsFoundAndSwept: an audit event written under a key
// after its erasure (a request in flight) is found by Locate, and either a
// new erasure (the admin API's sweep) or EraseAgain with the first receipt
// (the self-service sweep) cleans it.
func TestWriteAfterEraseIsFoundAndSwept(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			p, rg := onePolicy(t, s)
			ctx := ctxT()
			u := &identity.Identity{Issuer: "https://idp", Subject: "late-writer", Provider: "google", Email: "late@example.com"}
			key := privacy.SubjectKey(u)
			if err := p.SignIn(ctx, u, "eu", "r-in"); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true}}, privacy.RecordInfo{Source: "api"}); err != nil {
				t.Fatal(err)
			}
			first, err := p.EraseReceipt(ctx, key, "eu", "req-erase")
			if err != nil {
				t.Fatal(err)
			}
			notices := pending(t, s)
			if got := located(t, rg, key); len(got) != 0 {
				t.Fatalf("Locate right after the erase = %v", got)
			}

			// Nothing to sweep: the receipt comes back as it was and no
			// event is added.
			same, err := p.EraseAgain(ctx, first, key, "eu", "req-erase")
			if err != nil || same != first {
				t.Fatalf("EraseAgain with nothing to do = %+v, %v; want %+v", same, err, first)
			}
			if n := sweeps(t, s, first.Tombstone); n != 0 {
				t.Fatalf("%d sweep events after an empty sweep", n)
			}

			// A sign-out still in flight lands after the erasure.
			if err := p.Audit(ctx, privacy.KindSignOut, key, "eu", "r-late", nil); err != nil {
				t.Fatal(err)
			}
			if got := located(t, rg, key); !slices.Equal(got, []string{"eu"}) {
				t.Fatalf("Locate after the late write = %v, want [eu]", got)
			}
			swept, err := p.EraseAgain(ctx, first, key, "eu", "req-erase")
			if err != nil {
				t.Fatal(err)
			}
			want := first
			want.Result.Audits++
			if swept != want {
				t.Fatalf("EraseAgain = %+v, want %+v", swept, want)
			}
			if got := located(t, rg, key); len(got) != 0 {
				t.Fatalf("Locate after the sweep = %v", got)
			}
			late := false
			evs, err := s.AuditEvents(ctx, first.Tombstone, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				late = late || e.RequestID == "r-late"
			}
			if !late {
				t.Error("the late event is not under the first receipt's tombstone")
			}
			if n := sweeps(t, s, first.Tombstone); n != 1 {
				t.Errorf("%d sweep events, want 1", n)
			}
			if got := pending(t, s); got != notices {
				t.Errorf("pending notices %d after the sweep, want %d (no second notice)", got, notices)
			}

			// The admin API's path: another late write, another erasure
			// with a new receipt.
			if err := p.Audit(ctx, privacy.KindSignOut, key, "eu", "r-later", nil); err != nil {
				t.Fatal(err)
			}
			if got := located(t, rg, key); !slices.Equal(got, []string{"eu"}) {
				t.Fatalf("Locate after the second late write = %v", got)
			}
			second, err := p.EraseReceipt(ctx, key, "eu", "req-erase-2")
			if err != nil {
				t.Fatal(err)
			}
			if second.Tombstone == first.Tombstone || second.Result.Audits != 1 || second.Result.Profiles != 0 || second.Result.Consents != 0 {
				t.Fatalf("second erasure = %+v", second)
			}
			if got := located(t, rg, key); len(got) != 0 {
				t.Fatalf("Locate after the second erasure = %v", got)
			}
		})
	}
}

func pending(t *testing.T, s store.Store) int {
	t.Helper()
	db, _ := store.RawDB(s)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM deliveries WHERE status = 'pending'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func sweeps(t *testing.T, s store.Store, tomb string) int {
	t.Helper()
	evs, err := s.AuditEvents(context.Background(), tomb, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Kind == privacy.KindDelete && e.Detail["pass"] == "sweep" {
			n++
		}
	}
	return n
}

func TestEraseAgainAndLocateInRefuse(t *testing.T) {
	e := newEnv(t, baseConfig("https://hooks.example"), privacy.Options{})
	ctx := ctxT()
	const key = "https://idp|x"
	rc := privacy.Receipt{Tombstone: "tomb:0123"}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"no tombstone", func() error { _, err := e.p.EraseAgain(ctx, privacy.Receipt{}, key, "eu", ""); return err }(), privacy.ErrInvalid},
		{"bare prefix", func() error {
			_, err := e.p.EraseAgain(ctx, privacy.Receipt{Tombstone: store.TombstonePrefix}, key, "eu", "")
			return err
		}(), privacy.ErrInvalid},
		{"not a tombstone", func() error {
			_, err := e.p.EraseAgain(ctx, privacy.Receipt{Tombstone: key}, key, "eu", "")
			return err
		}(), privacy.ErrInvalid},
		{"tombstone key", func() error { _, err := e.p.EraseAgain(ctx, rc, "tomb:1", "eu", ""); return err }(), privacy.ErrInvalid},
		{"empty key", func() error { _, err := e.p.EraseAgain(ctx, rc, "", "eu", ""); return err }(), privacy.ErrInvalid},
		{"unknown region", func() error { _, err := e.p.EraseAgain(ctx, rc, key, "mars", ""); return err }(), privacy.ErrUnknownRegion},
		{"LocateIn unknown region", func() error { _, err := e.rg.LocateIn(ctx, key, "mars"); return err }(), privacy.ErrUnknownRegion},
		{"LocateIn empty key", func() error { _, err := e.rg.LocateIn(ctx, " ", "eu"); return err }(), privacy.ErrInvalid},
		{"LocateIn no regions", func() error { _, err := (*privacy.Regions)(nil).LocateIn(ctx, key, "eu"); return err }(), privacy.ErrNotConfigured},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	// Residency of an audit-only subject is sticky too: Locate lists only
	// the region holding the event.
	if err := e.p.Audit(ctx, privacy.KindSignOut, key, "us", "r", nil); err != nil {
		t.Fatal(err)
	}
	if got := located(t, e.rg, key); !slices.Equal(got, []string{"us"}) {
		t.Fatalf("Locate = %v, want [us]", got)
	}
	if ok, err := e.rg.LocateIn(ctx, key, "eu"); err != nil || ok {
		t.Fatalf("LocateIn(eu) = %v, %v; want false", ok, err)
	}
}
