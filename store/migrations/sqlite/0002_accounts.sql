-- Gatehouse store, SQLite dialect, step 2: local accounts (email and
-- password sign-in). Timestamps are INTEGER unix nanoseconds, like step 1.
-- Emails are stored normalized (trimmed, lower-case) by the store.

CREATE TABLE accounts (
    id                  TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    email               TEXT    NOT NULL UNIQUE CHECK (email <> ''),
    email_verified      INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    password_hash       TEXT    NOT NULL,
    profile             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(profile)),
    created             INTEGER NOT NULL,
    updated             INTEGER NOT NULL,
    failed_attempts     INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until        INTEGER,
    password_changed_at INTEGER NOT NULL
) STRICT;
