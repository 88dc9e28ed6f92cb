package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The schema of each dialect is a numbered sequence of SQL steps,
// migrations/<dialect>/NNNN_name.sql, numbered from 1 without gaps. A step,
// once released, is never edited: changes go into a new step. Both dialects
// must keep the same numbering so a version means the same schema.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the steps of one dialect in order.
func loadMigrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", dir, name)
		}
		body, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations/%s: expected step %d, found %s", dialect, i+1, m.name)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this binary migrates to.
func SchemaVersion() int {
	ms, err := loadMigrations("sqlite")
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate brings the database up to the newest embedded step. It runs on one
// dedicated connection. On PostgreSQL that connection first takes a
// session-level advisory lock keyed by the target schema, so replicas that
// start together queue up and the later ones find nothing left to do. Each
// step runs in its own transaction together with its schema_migrations row,
// and the current version is re-read inside that transaction, which also
// makes concurrent SQLite openers (serialized by BEGIN IMMEDIATE) safe.
func migrate(ctx context.Context, db *sql.DB, d *dialect, log *zap.Logger) (err error) {
	ms, err := loadMigrations(d.name)
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	if d.lockSQL != "" {
		if _, err := conn.ExecContext(ctx, d.lockSQL); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, d.unlockSQL); uerr != nil {
				// The lock belongs to the session: throw the connection away
				// rather than return it to the pool still holding the lock.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				log.Warn("store: releasing migration lock failed; connection discarded", zap.Error(uerr))
			}
		}()
	}

	if _, err := conn.ExecContext(ctx, d.migrationsTableSQL); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if current > len(ms) {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade Gatehouse or restore a matching database",
			ErrSchemaTooNew, current, len(ms))
	}
	for _, m := range ms[current:] {
		applied, err := applyStep(ctx, conn, d, m)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if applied {
			log.Info("store: applied schema migration", zap.String("kind", d.name), zap.Int("version", m.version), zap.String("name", m.name))
		}
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

func applyStep(ctx context.Context, conn *sql.Conn, d *dialect, m migration) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil || !applied {
			_ = tx.Rollback()
		}
	}()
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return false, err
	}
	if current >= m.version {
		return false, nil // another opener got here first
	}
	if current != m.version-1 {
		return false, fmt.Errorf("database is at version %d, cannot apply step %d", current, m.version)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, d.ts(time.Now())); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}
