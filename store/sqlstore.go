package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// sqlStore implements Store for both backends over database/sql; the
// differences live in dialect.
type sqlStore struct {
	d *dialect
	w *sql.DB // writes and transactions
	r *sql.DB // plain reads; the same pool as w except for SQLite files
	o Options
}

// RawDB returns the database handle behind s, for tests and operator
// tooling. Statements run through it bypass every check of this package
// (the database triggers still apply).
func RawDB(s Store) (*sql.DB, bool) {
	ss, ok := s.(*sqlStore)
	if !ok {
		return nil, false
	}
	return ss.w, true
}

func (s *sqlStore) Kind() string { return s.d.name }

func (s *sqlStore) now() time.Time { return normTime(s.o.Now()) }

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping: %w", err)
		}
	}
	return nil
}

func (s *sqlStore) Close() error {
	var errs []error
	if s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction on the write pool, committing only if fn
// returns nil.
func (s *sqlStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return err
	}
	return tx.Commit()
}

// timeCol scans a timestamp from either representation: unix nanoseconds
// (SQLite) or time.Time (PostgreSQL). NULL leaves the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.Unix(0, x).UTC()
	case time.Time:
		*c.t = x.UTC()
	default:
		return fmt.Errorf("unexpected timestamp type %T", v)
	}
	return nil
}

func encodeMap(m map[string]string) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func decodeMap(b []byte) (map[string]string, error) {
	m := map[string]string{}
	if len(b) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// ---- profiles ----

func (s *sqlStore) UpsertProfile(ctx context.Context, p Profile) error {
	const op = "upsert profile"
	if err := validNewSubject(op, p.SubjectKey); err != nil {
		return err
	}
	if p.Region == "" {
		p.Region = s.o.Region
	}
	claims, err := encodeMap(p.Claims)
	if err != nil {
		return invalid(op, "claims: %v", err)
	}
	now := s.now()
	if p.Created.IsZero() {
		p.Created = now
	}
	if p.Updated.IsZero() {
		p.Updated = now
	}
	_, err = s.w.ExecContext(ctx, `
		INSERT INTO profiles (subject_key, provider, region, claims, created, updated)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (subject_key) DO UPDATE SET
			provider = excluded.provider, region = excluded.region,
			claims = excluded.claims, updated = excluded.updated`,
		p.SubjectKey, p.Provider, p.Region, claims, s.d.ts(p.Created), s.d.ts(p.Updated))
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

func (s *sqlStore) Profile(ctx context.Context, subjectKey string) (*Profile, error) {
	const op = "get profile"
	if err := validSubject(op, subjectKey); err != nil {
		return nil, err
	}
	p := Profile{}
	var claims []byte
	err := s.r.QueryRowContext(ctx, `
		SELECT subject_key, provider, region, claims, created, updated
		FROM profiles WHERE subject_key = $1`, subjectKey).
		Scan(&p.SubjectKey, &p.Provider, &p.Region, &claims, timeCol{&p.Created}, timeCol{&p.Updated})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	if p.Claims, err = decodeMap(claims); err != nil {
		return nil, fmt.Errorf("store: %s: claims: %w", op, err)
	}
	return &p, nil
}

func (s *sqlStore) HasSubject(ctx context.Context, subjectKey string) (bool, error) {
	const op = "has subject"
	if err := validSubject(op, subjectKey); err != nil {
		return false, err
	}
	// One statement, so the three tables are read in one snapshot; each
	// EXISTS is answered from the table's subject index.
	var found bool
	err := s.r.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM profiles WHERE subject_key = $1)
		    OR EXISTS (SELECT 1 FROM consent_events WHERE subject_key = $1)
		    OR EXISTS (SELECT 1 FROM audit_events WHERE subject_key = $1)`, subjectKey).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("store: %s: %w", op, err)
	}
	return found, nil
}

// ---- consent ledger ----

// validNewSubject refuses empty keys and keys in the tombstone namespace,
// which only Erase may write.
func validNewSubject(op, s string) error {
	if err := validSubject(op, s); err != nil {
		return err
	}
	if strings.HasPrefix(s, TombstonePrefix) {
		return invalid(op, "subject key %q uses the reserved prefix %q", s, TombstonePrefix)
	}
	return nil
}

func (s *sqlStore) AppendConsent(ctx context.Context, e ConsentEvent) (ConsentEvent, error) {
	const op = "append consent"
	if err := validNewSubject(op, e.SubjectKey); err != nil {
		return ConsentEvent{}, err
	}
	if strings.TrimSpace(e.Purpose) == "" {
		return ConsentEvent{}, invalid(op, "empty purpose")
	}
	if e.Decision != DecisionGrant && e.Decision != DecisionWithdraw {
		return ConsentEvent{}, invalid(op, "decision %q is neither %q nor %q", e.Decision, DecisionGrant, DecisionWithdraw)
	}
	if e.Version < 0 {
		return ConsentEvent{}, invalid(op, "negative policy version %d", e.Version)
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = normTime(e.At)
	err := s.w.QueryRowContext(ctx, `
		INSERT INTO consent_events (subject_key, purpose, version, decision, at, source, policy_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`,
		e.SubjectKey, e.Purpose, e.Version, e.Decision, s.d.ts(e.At), e.Source, e.PolicyHash).Scan(&e.Seq)
	if err != nil {
		return ConsentEvent{}, fmt.Errorf("store: %s: %w", op, err)
	}
	return e, nil
}

const consentCols = `seq, subject_key, purpose, version, decision, at, source, policy_hash`

func scanConsents(rows *sql.Rows) ([]ConsentEvent, error) {
	defer rows.Close()
	var out []ConsentEvent
	for rows.Next() {
		var e ConsentEvent
		if err := rows.Scan(&e.Seq, &e.SubjectKey, &e.Purpose, &e.Version, &e.Decision,
			timeCol{&e.At}, &e.Source, &e.PolicyHash); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *sqlStore) ConsentHistory(ctx context.Context, subjectKey string) ([]ConsentEvent, error) {
	const op = "consent history"
	if err := validSubject(op, subjectKey); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx,
		`SELECT `+consentCols+` FROM consent_events WHERE subject_key = $1 ORDER BY seq`, subjectKey)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	out, err := scanConsents(rows)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

func (s *sqlStore) CurrentConsents(ctx context.Context, subjectKey string) (map[string]ConsentEvent, error) {
	const op = "current consents"
	if err := validSubject(op, subjectKey); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `
		SELECT `+consentCols+` FROM consent_events c
		WHERE subject_key = $1
		  AND seq = (SELECT max(seq) FROM consent_events l
		             WHERE l.subject_key = c.subject_key AND l.purpose = c.purpose)`, subjectKey)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	evs, err := scanConsents(rows)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	out := make(map[string]ConsentEvent, len(evs))
	for _, e := range evs {
		out[e.Purpose] = e
	}
	return out, nil
}

// ---- audit log ----

func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error) {
	const op = "append audit"
	if strings.TrimSpace(e.Kind) == "" {
		return AuditEvent{}, invalid(op, "empty kind")
	}
	detail, err := encodeMap(e.Detail)
	if err != nil {
		return AuditEvent{}, invalid(op, "detail: %v", err)
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = normTime(e.At)
	err = s.w.QueryRowContext(ctx, `
		INSERT INTO audit_events (kind, subject_key, at, request_id, detail)
		VALUES ($1, $2, $3, $4, $5) RETURNING seq`,
		e.Kind, e.SubjectKey, s.d.ts(e.At), e.RequestID, detail).Scan(&e.Seq)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("store: %s: %w", op, err)
	}
	return e, nil
}

func (s *sqlStore) AuditEvents(ctx context.Context, subjectKey string, limit int) ([]AuditEvent, error) {
	const op = "audit events"
	q := `SELECT seq, kind, subject_key, at, request_id, detail FROM audit_events
		WHERE subject_key = $1 ORDER BY seq DESC`
	args := []any{subjectKey}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var detail []byte
		if err := rows.Scan(&e.Seq, &e.Kind, &e.SubjectKey, timeCol{&e.At}, &e.RequestID, &detail); err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		if e.Detail, err = decodeMap(detail); err != nil {
			return nil, fmt.Errorf("store: %s: detail: %w", op, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	return out, nil
}

func (s *sqlStore) PurgeAudit(ctx context.Context, kind string, before time.Time) (int64, error) {
	const op = "purge audit"
	if strings.TrimSpace(kind) == "" {
		return 0, invalid(op, "empty kind (retention is per kind)")
	}
	if before.IsZero() {
		return 0, invalid(op, "zero cut-off time")
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.d.openPurge(ctx, tx, kind, before); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_events WHERE kind = $1 AND at < $2`, kind, s.d.ts(before))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		return s.d.closePurge(ctx, tx)
	})
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", op, err)
	}
	return n, nil
}

// ---- erasure ----

func (s *sqlStore) Erase(ctx context.Context, subjectKey, tombstone string, notify []Delivery) (EraseResult, error) {
	const op = "erase"
	if err := validNewSubject(op, subjectKey); err != nil {
		return EraseResult{}, err
	}
	if !strings.HasPrefix(tombstone, TombstonePrefix) || len(tombstone) == len(TombstonePrefix) {
		return EraseResult{}, invalid(op, "tombstone %q must be %q followed by an identifier", tombstone, TombstonePrefix)
	}
	for i := range notify {
		if err := validDelivery(op, &notify[i]); err != nil {
			return EraseResult{}, err
		}
	}
	var res EraseResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if res.Profiles, err = execCount(ctx, tx, `DELETE FROM profiles WHERE subject_key = $1`, subjectKey); err != nil {
			return fmt.Errorf("delete profile: %w", err)
		}
		if res.Consents, err = execCount(ctx, tx,
			`UPDATE consent_events SET subject_key = $2 WHERE subject_key = $1`, subjectKey, tombstone); err != nil {
			return fmt.Errorf("tombstone consent ledger: %w", err)
		}
		if res.Audits, err = execCount(ctx, tx,
			`UPDATE audit_events SET subject_key = $2 WHERE subject_key = $1`, subjectKey, tombstone); err != nil {
			return fmt.Errorf("tombstone audit log: %w", err)
		}
		for _, d := range notify {
			if _, err := s.insertDelivery(ctx, tx, d); err != nil {
				return fmt.Errorf("enqueue %s to %s: %w", d.Event, d.Webhook, err)
			}
			res.Deliveries++
		}
		return nil
	})
	if err != nil {
		return EraseResult{}, fmt.Errorf("store: %s: %w", op, err)
	}
	return res, nil
}

func execCount(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	r, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// ---- delivery outbox ----

func validDelivery(op string, d *Delivery) error {
	if strings.TrimSpace(d.Webhook) == "" {
		return invalid(op, "delivery without webhook")
	}
	if strings.TrimSpace(d.Event) == "" {
		return invalid(op, "delivery without event")
	}
	return nil
}

type execQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *sqlStore) insertDelivery(ctx context.Context, q execQuerier, d Delivery) (int64, error) {
	now := s.now()
	if d.NextAttempt.IsZero() {
		d.NextAttempt = now
	}
	if d.Payload == nil {
		d.Payload = []byte{}
	}
	var id int64
	err := q.QueryRowContext(ctx, `
		INSERT INTO deliveries (webhook, event, subject_key, payload, attempts, next_attempt, status, last_error, created)
		VALUES ($1, $2, $3, $4, 0, $5, 'pending', '', $6) RETURNING id`,
		d.Webhook, d.Event, d.SubjectKey, d.Payload, s.d.ts(d.NextAttempt), s.d.ts(now)).Scan(&id)
	return id, err
}

func (s *sqlStore) EnqueueDelivery(ctx context.Context, d Delivery) (int64, error) {
	const op = "enqueue delivery"
	if err := validDelivery(op, &d); err != nil {
		return 0, err
	}
	id, err := s.insertDelivery(ctx, s.w, d)
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", op, err)
	}
	return id, nil
}

func (s *sqlStore) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	const op = "claim due deliveries"
	if limit <= 0 {
		return nil, invalid(op, "limit must be positive, got %d", limit)
	}
	if now.IsZero() {
		now = s.now()
	}
	rows, err := s.w.QueryContext(ctx, s.d.claimSQL, s.d.ts(now), s.d.ts(now.Add(s.o.Lease)), limit)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.Webhook, &d.Event, &d.SubjectKey, &d.Payload, &d.Attempts,
			timeCol{&d.NextAttempt}, &d.Status, &d.LastError); err != nil {
			return nil, fmt.Errorf("store: %s: %w", op, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", op, err)
	}
	// RETURNING does not promise an order.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].NextAttempt.Equal(out[j].NextAttempt) {
			return out[i].NextAttempt.Before(out[j].NextAttempt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (s *sqlStore) MarkDelivery(ctx context.Context, id int64, ok bool, errText string, next time.Time) error {
	const op = "mark delivery"
	status, nextVal := DeliveryDelivered, any(nil)
	switch {
	case ok:
		errText = ""
	case next.IsZero():
		status = DeliveryFailed
	default:
		status, nextVal = DeliveryPending, s.d.ts(next)
	}
	n, err := func() (int64, error) {
		r, err := s.w.ExecContext(ctx, `
			UPDATE deliveries SET attempts = attempts + 1, status = $2, last_error = $3,
				next_attempt = COALESCE($4, next_attempt), lease_until = NULL,
				payload = CASE WHEN $2 = 'pending' THEN payload ELSE $5 END
			WHERE id = $1 AND status = 'pending'`, id, status, errText, nextVal, []byte{})
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	}()
	if err != nil {
		return fmt.Errorf("store: %s %d: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s %d: no pending delivery with that id: %w", op, id, ErrNotFound)
	}
	return nil
}
