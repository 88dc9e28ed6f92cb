package storetest

// PostgreSQL for tests: the server at GATEHOUSE_TEST_POSTGRES (default: the
// local server, trust auth, as user postgres and then root). Each test gets
// its own schema, dropped afterwards. An unreachable server skips the tests
// loudly, or fails them when GATEHOUSE_REQUIRE_POSTGRES=1.

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

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

var (
	pgOnce sync.Once
	pgBase string
	pgErr  error
)

// PostgresBase returns the DSN of the test server, skipping the test
// loudly when there is none, or failing it when GATEHOUSE_REQUIRE_POSTGRES=1.
func PostgresBase(t testing.TB) string {
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

// PostgresDSN creates an empty schema, dropped when the test ends, and
// returns a DSN whose search_path selects it.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := PostgresBase(t)
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
