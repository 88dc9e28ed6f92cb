package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
	"go.uber.org/zap/zaptest"
)

func sqliteDSN(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "gatehouse.db")
}

func openSQLite(t testing.TB, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, store.Options{Logger: zaptest.NewLogger(t), Region: "eu"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openSQLite(t, sqliteDSN(t)) })
}

func TestSQLiteSchema(t *testing.T) {
	storetest.RunSchema(t, func(t *testing.T) string { return sqliteDSN(t) })
}

func TestSQLiteMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openSQLite(t, "sqlite::memory:") })
}

func TestSQLiteRegionDefault(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, sqliteDSN(t))
	if err := s.UpsertProfile(ctx, store.Profile{SubjectKey: "u"}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Profile(ctx, "u")
	if err != nil || p.Region != "eu" {
		t.Fatalf("profile = %+v, %v; want region eu from Options", p, err)
	}
}

func TestOpenRejectsBadDSN(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x", "sqlite:relative.db", "sqlite:///tmp/a?b.db", "postgres://user:hunter2@[::1"} {
		s, err := store.Open(context.Background(), dsn, store.Options{})
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error leaks the password: %v", dsn, err)
		}
	}
}

func BenchmarkAppendAuditSQLite(b *testing.B) {
	storetest.BenchmarkAppendAudit(b, openSQLite(b, sqliteDSN(b)))
}
