package store_test

import (
	"context"
	"testing"

	"github.com/gatehouse-dev/gatehouse/store"
	"github.com/gatehouse-dev/gatehouse/store/storetest"
	"go.uber.org/zap/zaptest"
)

// PostgreSQL tests: see storetest.PostgresBase and PostgresDSN.

var (
	postgresBase = storetest.PostgresBase
	postgresDSN  = storetest.PostgresDSN
)

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
