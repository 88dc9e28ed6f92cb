// Package store is the durable storage layer behind Gatehouse's customer
// privacy features (GDPR/CCPA): subject profiles, an append-only consent
// ledger, append-only audit events and an outbox of webhook deliveries.
//
// One Store interface has two backends that pass the same test suite
// (package storetest):
//
//   - "sqlite": embedded, pure Go (modernc.org/sqlite), the zero-setup default
//     for a single instance. DSN "sqlite:///path/to/file.db" or
//     "sqlite::memory:".
//   - "postgres": PostgreSQL through pgx, for production deployments with
//     several replicas sharing one database. DSN "postgres://..." or
//     "postgresql://...".
//
// Residency is handled above this layer by opening one Store per region; a
// Store only records which region it serves (Options.Region) and uses it as
// the default region of profiles written without one.
//
// Append-only is enforced by database triggers, not only by this package:
// consent and audit rows can be neither updated nor deleted, except for
// (a) the erasure tombstone, which may rewrite only the subject column to a
// value beginning with "tomb:", and (b) the audit retention purge, which is
// unlocked for one transaction and for exactly one (kind, before) window.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Sentinel errors. Every error returned by a Store wraps the name of the
// operation that failed; test with errors.Is.
var (
	// ErrNotFound is returned when the requested record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid is returned for input refused before the database is
	// touched (empty subject, unknown decision, ...).
	ErrInvalid = errors.New("store: invalid input")
	// ErrSchemaTooNew is returned by Open when the database was migrated by a
	// newer Gatehouse than this binary; running would risk misreading it.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary supports")
)

// TombstonePrefix starts every tombstone that Erase writes in place of a
// subject key. The database triggers only let a subject be rewritten to a
// value with this prefix.
const TombstonePrefix = "tomb:"

// Consent decisions.
const (
	DecisionGrant    = "grant"
	DecisionWithdraw = "withdraw"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Profile is what Gatehouse keeps about a signed-in subject.
type Profile struct {
	SubjectKey string
	Provider   string
	Region     string
	Claims     map[string]string
	Created    time.Time
	Updated    time.Time
}

// ConsentEvent is one entry of the append-only consent ledger.
type ConsentEvent struct {
	Seq        int64
	SubjectKey string
	Purpose    string
	Version    int
	Decision   string // DecisionGrant or DecisionWithdraw
	At         time.Time
	Source     string // e.g. "consent_page", "admin", "api"
	PolicyHash string
}

// AuditEvent is one entry of the append-only audit log.
type AuditEvent struct {
	Seq        int64
	Kind       string // sign_in, sign_out, consent, export, delete, admin, policy_reload, ...
	SubjectKey string // empty for system events
	At         time.Time
	RequestID  string
	Detail     map[string]string
}

// Delivery is one webhook notification in the outbox.
type Delivery struct {
	ID          int64
	Webhook     string
	Event       string
	SubjectKey  string
	Payload     []byte
	Attempts    int
	NextAttempt time.Time
	Status      string // DeliveryPending, DeliveryDelivered or DeliveryFailed
	LastError   string
}

// EraseResult counts the rows an Erase touched.
type EraseResult struct {
	Profiles   int64 // profiles deleted (0 or 1)
	Consents   int64 // consent events whose subject was tombstoned
	Audits     int64 // audit events whose subject was tombstoned
	Deliveries int64 // notification deliveries enqueued
}

// Store is the privacy data store. All methods are safe for concurrent use.
type Store interface {
	// Accounts stores the local provider's accounts (accounts.go).
	Accounts

	// UpsertProfile creates or replaces a profile. Created is kept from the
	// first write; zero Created/Updated default to now; an empty Region
	// defaults to Options.Region.
	UpsertProfile(ctx context.Context, p Profile) error
	// Profile returns the profile of subjectKey or ErrNotFound.
	Profile(ctx context.Context, subjectKey string) (*Profile, error)
	// HasSubject reports whether any profile, consent event or audit event
	// is stored under subjectKey: whether an erasure would find anything.
	// The delivery outbox is not searched; its rows are indexed by the
	// tombstone of an erasure, never by a subject key.
	HasSubject(ctx context.Context, subjectKey string) (bool, error)

	// AppendConsent appends to the consent ledger and returns the stored
	// event; Seq is always assigned by the database, At defaults to now.
	AppendConsent(ctx context.Context, e ConsentEvent) (ConsentEvent, error)
	// ConsentHistory returns every event of subjectKey ordered by Seq.
	ConsentHistory(ctx context.Context, subjectKey string) ([]ConsentEvent, error)
	// CurrentConsents returns the latest event per purpose.
	CurrentConsents(ctx context.Context, subjectKey string) (map[string]ConsentEvent, error)

	// AppendAudit appends an audit event and returns it as stored.
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// AuditEvents returns the newest events of subjectKey ("" selects
	// system events), newest first; limit <= 0 means no limit.
	AuditEvents(ctx context.Context, subjectKey string, limit int) ([]AuditEvent, error)
	// PurgeAudit deletes audit events of one kind older than before
	// (retention) and returns how many were deleted.
	PurgeAudit(ctx context.Context, kind string, before time.Time) (int64, error)

	// Erase forgets subjectKey in one transaction: the profile is deleted,
	// the subject of its consent and audit rows is replaced by tombstone
	// (which must start with TombstonePrefix) and the notify deliveries are
	// enqueued. Either all of it happens or none of it does.
	Erase(ctx context.Context, subjectKey, tombstone string, notify []Delivery) (EraseResult, error)

	// EnqueueDelivery adds a pending delivery and returns its ID. A zero
	// NextAttempt means now.
	EnqueueDelivery(ctx context.Context, d Delivery) (int64, error)
	// DueDeliveries claims up to limit pending deliveries whose NextAttempt
	// is not after now. A claimed delivery is leased (Options.Lease) and is
	// not returned again, to this or another replica, until the lease ends
	// or MarkDelivery settles it.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]Delivery, error)
	// MarkDelivery records an attempt: ok marks it delivered; otherwise the
	// delivery is retried at next, or marked failed when next is zero. A
	// settled delivery (delivered or failed) keeps no payload: a deletion
	// notice names the person it is about, and only while it is pending.
	MarkDelivery(ctx context.Context, id int64, ok bool, errText string, next time.Time) error

	// Ping checks the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the database handles.
	Close() error
	// Kind is "sqlite" or "postgres".
	Kind() string
}

// Options configure Open.
type Options struct {
	// Logger receives migration and maintenance messages; nil means none.
	Logger *zap.Logger
	// Now is the clock; nil means time.Now. Times are stored with
	// microsecond precision in UTC by both backends.
	Now func() time.Time
	// Region is the residency region this Store serves. It is recorded on
	// profiles written without a region.
	Region string
	// Lease is how long DueDeliveries holds a claimed delivery before another
	// claimer may take it; zero means one minute.
	Lease time.Duration
}

// Open opens the store named by dsn and migrates its schema to the version
// this binary knows.
func Open(ctx context.Context, dsn string, o Options) (Store, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), o)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn, o)
	default:
		return nil, fmt.Errorf("store: open: unsupported DSN %q (want sqlite:///path, sqlite::memory: or postgres://...)", redact(dsn))
	}
}

// redact hides a password in a URL-style DSN for error messages.
func redact(dsn string) string {
	at := strings.Index(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return dsn[:scheme+3] + userinfo[:i] + ":xxxxx" + dsn[at:]
	}
	return dsn
}

// normTime is how every timestamp is stored: UTC, microsecond precision
// (PostgreSQL's resolution), so both backends return identical values.
func normTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("store: %s: %w: %s", op, ErrInvalid, fmt.Sprintf(format, args...))
}

func validSubject(op, s string) error {
	if strings.TrimSpace(s) == "" {
		return invalid(op, "empty subject key")
	}
	return nil
}
