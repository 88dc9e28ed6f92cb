-- Gatehouse privacy store, SQLite dialect, step 1.
-- Timestamps are INTEGER unix nanoseconds (UTC, microsecond precision).
-- Claims and details are JSON text.

CREATE TABLE profiles (
    subject_key TEXT    NOT NULL PRIMARY KEY CHECK (subject_key <> ''),
    provider    TEXT    NOT NULL,
    region      TEXT    NOT NULL,
    claims      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(claims)),
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
) STRICT;

CREATE TABLE consent_events (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    subject_key TEXT    NOT NULL CHECK (subject_key <> ''),
    purpose     TEXT    NOT NULL CHECK (purpose <> ''),
    version     INTEGER NOT NULL,
    decision    TEXT    NOT NULL CHECK (decision IN ('grant', 'withdraw')),
    at          INTEGER NOT NULL,
    source      TEXT    NOT NULL,
    policy_hash TEXT    NOT NULL
) STRICT;
CREATE INDEX consent_events_subject ON consent_events (subject_key, seq);

CREATE TABLE audit_events (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind <> ''),
    subject_key TEXT    NOT NULL DEFAULT '',
    at          INTEGER NOT NULL,
    request_id  TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;
CREATE INDEX audit_events_subject ON audit_events (subject_key, seq);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);

CREATE TABLE deliveries (
    id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    webhook      TEXT    NOT NULL CHECK (webhook <> ''),
    event        TEXT    NOT NULL CHECK (event <> ''),
    subject_key  TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    last_error   TEXT    NOT NULL DEFAULT '',
    lease_until  INTEGER,
    created      INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_attempt, id) WHERE status = 'pending';

-- Append-only enforcement.
--
-- SQLite triggers cannot read connection or transaction settings, so the
-- audit purge is unlocked by a row in audit_purge_window that the store
-- inserts and deletes again inside the purge transaction. SQLite has a single
-- writer, so the row is never visible to another connection: readers see
-- only committed data (WAL) and no other writer can run until the purge
-- transaction has ended, by which time the row is gone (commit) or was never
-- there (rollback). The row names the one kind and cut-off that may be
-- deleted, so even inside that transaction nothing else can be.
CREATE TABLE audit_purge_window (
    kind   TEXT    NOT NULL,
    before INTEGER NOT NULL
) STRICT;

-- The only permitted UPDATE is the erasure tombstone: every column but the
-- subject unchanged and the new subject starting with 'tomb:'. substr() is
-- used rather than LIKE, which is case-insensitive in SQLite.
CREATE TRIGGER consent_events_append_only_update
BEFORE UPDATE ON consent_events
WHEN NOT (substr(NEW.subject_key, 1, 5) = 'tomb:'
          AND NEW.seq IS OLD.seq AND NEW.purpose IS OLD.purpose
          AND NEW.version IS OLD.version AND NEW.decision IS OLD.decision
          AND NEW.at IS OLD.at AND NEW.source IS OLD.source
          AND NEW.policy_hash IS OLD.policy_hash)
BEGIN
    SELECT RAISE(ABORT, 'gatehouse: consent_events is append-only (only the subject may be tombstoned)');
END;

CREATE TRIGGER consent_events_append_only_delete
BEFORE DELETE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'gatehouse: consent_events is append-only (rows cannot be deleted)');
END;

CREATE TRIGGER audit_events_append_only_update
BEFORE UPDATE ON audit_events
WHEN NOT (substr(NEW.subject_key, 1, 5) = 'tomb:'
          AND NEW.seq IS OLD.seq AND NEW.kind IS OLD.kind
          AND NEW.at IS OLD.at AND NEW.request_id IS OLD.request_id
          AND NEW.detail IS OLD.detail)
BEGIN
    SELECT RAISE(ABORT, 'gatehouse: audit_events is append-only (only the subject may be tombstoned)');
END;

CREATE TRIGGER audit_events_append_only_delete
BEFORE DELETE ON audit_events
WHEN NOT EXISTS (SELECT 1 FROM audit_purge_window w
                 WHERE w.kind = OLD.kind AND OLD.at < w.before)
BEGIN
    SELECT RAISE(ABORT, 'gatehouse: audit_events is append-only (delete only through the retention purge)');
END;
