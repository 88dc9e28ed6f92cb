-- Gatehouse store, PostgreSQL dialect, step 2: local accounts (email and
-- password sign-in). Emails are stored normalized (trimmed, lower-case) by
-- the store; the unique constraint is on the stored value.

CREATE TABLE accounts (
    id                  text        NOT NULL PRIMARY KEY CHECK (id <> ''),
    email               text        NOT NULL UNIQUE CHECK (email <> ''),
    email_verified      boolean     NOT NULL DEFAULT false,
    password_hash       text        NOT NULL,
    profile             jsonb       NOT NULL DEFAULT '{}',
    created             timestamptz NOT NULL,
    updated             timestamptz NOT NULL,
    failed_attempts     integer     NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until        timestamptz,
    password_changed_at timestamptz NOT NULL
);
