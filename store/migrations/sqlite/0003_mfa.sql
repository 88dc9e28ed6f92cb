-- Gatehouse store, SQLite dialect, step 3: second factors of local
-- accounts. TOTP secrets are stored sealed (AES-GCM) by the local
-- provider; the store never sees them in clear. Recovery codes are stored
-- as hashes, one row each, deleted when used. Rows go with their account.

CREATE TABLE account_totp (
    account_id TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    secret     BLOB    NOT NULL CHECK (length(secret) > 0),
    created    INTEGER NOT NULL
) STRICT;

CREATE TABLE account_recovery_codes (
    account_id TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL CHECK (code_hash <> ''),
    created    INTEGER NOT NULL,
    PRIMARY KEY (account_id, code_hash)
) STRICT;

CREATE TABLE account_passkeys (
    credential_id    BLOB    NOT NULL PRIMARY KEY CHECK (length(credential_id) > 0),
    account_id       TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    public_key       BLOB    NOT NULL CHECK (length(public_key) > 0),
    sign_count       INTEGER NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    transports       TEXT    NOT NULL DEFAULT '',
    flags            INTEGER NOT NULL DEFAULT 0,
    aaguid           BLOB,
    attestation_type TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL DEFAULT '',
    created          INTEGER NOT NULL,
    last_used        INTEGER
) STRICT;

CREATE INDEX account_passkeys_account ON account_passkeys (account_id);
