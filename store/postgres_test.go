package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap/zaptest"
)

// PostgreSQL tests run against GATEHOUSE_TEST_POSTGRES (default: the local
// server, trust auth, as user postgres and then root). Each test gets its own
// schema, dropped afterwards. An unreachable server skips the tests loudly,
// or fails them when GATEHOUSE_REQUIRE_POSTGRES=1.

var (
	pgOnce sync.Once
	pgBase string
	pgErr  error
)

func postgresBase(t testing.TB) string {
	t.Helper()
	pgOnce.Do(func() {
		candidates := []string{os.Getenv("GATEHOUSE_TEST_POSTGRES")}
		if candidates[0] == "" {
			candidates = []string{
				"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
				"postgres://root@127.0.0.1:5432/test?sslmode=disable",
			}
		}
		for _, dsn := range candidates {
			if pgErr = pingPostgres(dsn); pgErr == nil {
				pgBase = dsn
				return
			}
		}
	})
	if pgErr != nil {
		msg := "PostgreSQL tests need a reachable server; set GATEHOUSE_TEST_POSTGRES=postgres://user@host:port/db?sslmode=disable (error: " + pgErr.Error() + ")"
		if os.Getenv("GATEHOUSE_REQUIRE_POSTGRES") == "1" {
			t.Fatal("FAILED (GATEHOUSE_REQUIRE_POSTGRES=1): " + msg)
		}
		t.Skip("SKIPPED: " + msg)
	}
	return pgBase
}

func pingPostgres(dsn string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// postgresDSN creates an empty schema and returns a DSN whose search_path
// selects it.
func postgresDSN(t testing.TB) string {
	t.Helper()
	base := postgresBase(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "gh_test_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openPostgres(t testing.TB, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, store.Options{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // registered after the schema drop, so runs before it
	return s
}

func TestPostgres(t *testing.T) {
	postgresBase(t) // skip (or fail) once, not per subtest
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t, postgresDSN(t)) })
}

func TestPostgresSchema(t *testing.T) {
	postgresBase(t)
	storetest.RunSchema(t, func(t *testing.T) string { return postgresDSN(t) })
}

func BenchmarkAppendAuditPostgres(b *testing.B) {
	storetest.BenchmarkAppendAudit(b, openPostgres(b, postgresDSN(b)))
}
