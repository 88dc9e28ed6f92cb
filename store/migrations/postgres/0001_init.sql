-- Gatehouse privacy store, PostgreSQL dialect, step 1.
-- Objects are created in the first schema of search_path.

CREATE TABLE profiles (
    subject_key text        NOT NULL PRIMARY KEY CHECK (subject_key <> ''),
    provider    text        NOT NULL,
    region      text        NOT NULL,
    claims      jsonb       NOT NULL DEFAULT '{}',
    created     timestamptz NOT NULL,
    updated     timestamptz NOT NULL
);

CREATE TABLE consent_events (
    seq         bigserial   NOT NULL PRIMARY KEY,
    subject_key text        NOT NULL CHECK (subject_key <> ''),
    purpose     text        NOT NULL CHECK (purpose <> ''),
    version     integer     NOT NULL,
    decision    text        NOT NULL CHECK (decision IN ('grant', 'withdraw')),
    at          timestamptz NOT NULL,
    source      text        NOT NULL,
    policy_hash text        NOT NULL
);
CREATE INDEX consent_events_subject ON consent_events (subject_key, seq);

CREATE TABLE audit_events (
    seq         bigserial   NOT NULL PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind <> ''),
    subject_key text        NOT NULL DEFAULT '',
    at          timestamptz NOT NULL,
    request_id  text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_subject ON audit_events (subject_key, seq);
CREATE INDEX audit_events_kind_at ON audit_events (kind, at);

CREATE TABLE deliveries (
    id           bigserial   NOT NULL PRIMARY KEY,
    webhook      text        NOT NULL CHECK (webhook <> ''),
    event        text        NOT NULL CHECK (event <> ''),
    subject_key  text        NOT NULL,
    payload      bytea       NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    next_attempt timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    last_error   text        NOT NULL DEFAULT '',
    lease_until  timestamptz,
    created      timestamptz NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (next_attempt, id) WHERE status = 'pending';

-- Append-only enforcement, shared by both ledger tables.
--
-- UPDATE is allowed only as the erasure tombstone: the new subject starts
-- with 'tomb:' and no other column changes (compared as jsonb minus the
-- subject, so a column added later is covered automatically).
--
-- DELETE is allowed only on audit_events and only while the transaction has
-- set gatehouse.purge_kind / gatehouse.purge_before with SET LOCAL (via
-- set_config(..., true)), which the store does in its purge transaction.
-- The settings vanish at commit or rollback; outside a purge they are unset
-- or '' and every delete is refused.
CREATE FUNCTION gatehouse_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF left(NEW.subject_key, 5) = 'tomb:'
           AND (to_jsonb(NEW) - 'subject_key') = (to_jsonb(OLD) - 'subject_key') THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'gatehouse: % is append-only (only the subject may be tombstoned)', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- Nested IFs: plpgsql resolves OLD.kind when the expression runs,
        -- and consent_events has no such column.
        IF TG_TABLE_NAME = 'audit_events' THEN
            IF OLD.kind = current_setting('gatehouse.purge_kind', true)
               AND OLD.at < NULLIF(current_setting('gatehouse.purge_before', true), '')::timestamptz THEN
                RETURN OLD;
            END IF;
        END IF;
        RAISE EXCEPTION 'gatehouse: % is append-only (rows cannot be deleted outside the retention purge)', TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    -- TRUNCATE (statement level)
    RAISE EXCEPTION 'gatehouse: % is append-only (cannot be truncated)', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER consent_events_append_only
BEFORE UPDATE OR DELETE ON consent_events
FOR EACH ROW EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER consent_events_no_truncate
BEFORE TRUNCATE ON consent_events
FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_append_only();

CREATE TRIGGER audit_events_append_only
BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION gatehouse_append_only();
CREATE TRIGGER audit_events_no_truncate
BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION gatehouse_append_only();
