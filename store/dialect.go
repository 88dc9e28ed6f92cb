package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// dialect holds what differs between the backends. Everything else is
// shared SQL: both engines accept $N placeholders, RETURNING and
// INSERT ... ON CONFLICT.
type dialect struct {
	name string

	// lockSQL/unlockSQL serialize migrations across processes (Postgres
	// only; SQLite serializes writers by itself).
	lockSQL, unlockSQL string
	migrationsTableSQL string

	// ts converts a time into the column representation.
	ts func(time.Time) any

	// claimSQL leases due deliveries: $1 now, $2 lease end, $3 limit.
	claimSQL string

	// openPurge unlocks deleting audit rows of one kind older than before,
	// for the current transaction only; closePurge locks it again.
	openPurge  func(ctx context.Context, tx *sql.Tx, kind string, before time.Time) error
	closePurge func(ctx context.Context, tx *sql.Tx) error
}

const deliveryCols = `id, webhook, event, subject_key, payload, attempts, next_attempt, status, last_error`

var sqliteDialect = &dialect{
	name: "sqlite",
	migrationsTableSQL: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL)`,
	ts: func(t time.Time) any { return normTime(t).UnixNano() },
	// SQLite has one writer at a time, so selecting and leasing in a single
	// UPDATE ... RETURNING is atomic with respect to every other claimer.
	claimSQL: `UPDATE deliveries SET lease_until = $2
		WHERE id IN (SELECT id FROM deliveries
		             WHERE status = 'pending' AND next_attempt <= $1
		               AND (lease_until IS NULL OR lease_until <= $1)
		             ORDER BY next_attempt, id LIMIT $3)
		RETURNING ` + deliveryCols,
	openPurge: func(ctx context.Context, tx *sql.Tx, kind string, before time.Time) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_purge_window (kind, before) VALUES ($1, $2)`,
			kind, normTime(before).UnixNano())
		return err
	},
	closePurge: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM audit_purge_window`)
		return err
	},
}

var postgresDialect = &dialect{
	name: "postgres",
	// One lock per schema, so replicas of one deployment queue up while
	// deployments in other schemas of the same database do not.
	lockSQL:   `SELECT pg_advisory_lock(hashtextextended('gatehouse.migrate:' || coalesce(current_schema(), ''), 0))`,
	unlockSQL: `SELECT pg_advisory_unlock(hashtextextended('gatehouse.migrate:' || coalesce(current_schema(), ''), 0))`,
	migrationsTableSQL: `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     NOT NULL PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL)`,
	ts: func(t time.Time) any { return normTime(t) },
	// FOR UPDATE SKIP LOCKED: a concurrent claimer skips rows another
	// transaction is leasing instead of waiting for them and then leasing
	// them a second time.
	claimSQL: `UPDATE deliveries d SET lease_until = $2
		FROM (SELECT id FROM deliveries
		      WHERE status = 'pending' AND next_attempt <= $1
		        AND (lease_until IS NULL OR lease_until <= $1)
		      ORDER BY next_attempt, id LIMIT $3
		      FOR UPDATE SKIP LOCKED) due
		WHERE d.id = due.id
		RETURNING d.id, d.webhook, d.event, d.subject_key, d.payload, d.attempts, d.next_attempt, d.status, d.last_error`,
	openPurge: func(ctx context.Context, tx *sql.Tx, kind string, before time.Time) error {
		// set_config(..., true) is SET LOCAL: gone at commit or rollback.
		_, err := tx.ExecContext(ctx,
			`SELECT set_config('gatehouse.purge_kind', $1, true), set_config('gatehouse.purge_before', $2, true)`,
			kind, normTime(before).Format(time.RFC3339Nano))
		return err
	},
	closePurge: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`SELECT set_config('gatehouse.purge_kind', '', true), set_config('gatehouse.purge_before', '', true)`)
		return err
	},
}

// openSQLite opens the embedded backend. rest is the DSN after "sqlite:":
// ":memory:", "///abs/path.db" or "//relative/path.db".
//
// SQLite allows one writer at a time, so all writes go through a pool of
// exactly one connection: writers queue in Go instead of failing with
// SQLITE_BUSY, and BEGIN IMMEDIATE (_txlock) takes the write lock up front
// so a transaction never has to upgrade a read lock. Files use WAL, which
// lets a separate read-only pool read concurrently with the writer. An
// in-memory database exists per connection, so it gets the single
// connection for both.
func openSQLite(ctx context.Context, rest string, o Options) (Store, error) {
	memory := rest == ":memory:"
	var file string
	if !memory {
		if !strings.HasPrefix(rest, "//") || len(rest) <= 2 {
			return nil, fmt.Errorf("store: open: sqlite DSN must be sqlite:///path/to/file.db or sqlite::memory:")
		}
		file = rest[2:]
		if strings.ContainsAny(file, "?#") {
			return nil, fmt.Errorf("store: open: sqlite path %q must not contain '?' or '#'", file)
		}
	}
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"
	var wdsn, rdsn string
	if memory {
		wdsn = "file::memory:?" + common + "&_txlock=immediate"
	} else {
		// SQLite URI filenames decode %HH escapes; keep a literal '%'.
		u := "file:" + strings.ReplaceAll(file, "%", "%25")
		wdsn = u + "?" + common + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		rdsn = u + "?" + common + "&_pragma=query_only(1)"
	}
	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &sqlStore{d: sqliteDialect, w: w, r: w, o: o}
	// Several processes opening a new database at once race to switch it
	// to WAL and migrate it; SQLite can answer that race with SQLITE_BUSY
	// without waiting out busy_timeout. Try again a few times.
	var err2 error
	for attempt := 0; attempt < 6; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				w.Close()
				return nil, fmt.Errorf("store: open sqlite %s: %w", rest, ctx.Err())
			case <-time.After(time.Duration(25<<attempt) * time.Millisecond):
			}
		}
		if err2 = w.PingContext(ctx); err2 != nil {
			err2 = fmt.Errorf("store: open sqlite %s: %w", rest, err2)
		} else if err2 = migrate(ctx, w, sqliteDialect, o.Logger); err2 != nil {
			err2 = fmt.Errorf("store: open sqlite: %w", err2)
		}
		if err2 == nil || !sqliteBusy(err2) {
			break
		}
	}
	if err2 != nil {
		w.Close()
		return nil, err2
	}
	if !memory {
		r, err := sql.Open("sqlite", rdsn)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		r.SetMaxOpenConns(4)
		r.SetMaxIdleConns(4)
		s.r = r
	}
	return s, nil
}

// openPostgres opens the PostgreSQL backend through pgx's database/sql
// adapter, which keeps one implementation of every query for both backends
// and gives us database/sql's pool. search_path and other server settings
// can be given as DSN parameters (e.g. ?search_path=gatehouse).
func openPostgres(ctx context.Context, dsn string, o Options) (Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open postgres %s: %w", redact(dsn), err)
	}
	if err := migrate(ctx, db, postgresDialect, o.Logger); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	return &sqlStore{d: postgresDialect, w: db, r: db, o: o}, nil
}

// sqliteBusy reports whether err is SQLite's "database is locked" answer.
func sqliteBusy(err error) bool {
	m := err.Error()
	return strings.Contains(m, "SQLITE_BUSY") || strings.Contains(m, "database is locked")
}
