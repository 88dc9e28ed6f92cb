-- Gatehouse store, PostgreSQL dialect, step 3: second factors of local
-- accounts. TOTP secrets are stored sealed (AES-GCM) by the local
-- provider; the store never sees them in clear. Recovery codes are stored
-- as hashes, one row each, deleted when used. Rows go with their account.

CREATE TABLE account_totp (
    account_id text        NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    secret     bytea       NOT NULL CHECK (length(secret) > 0),
    created    timestamptz NOT NULL
);

CREATE TABLE account_recovery_codes (
    account_id text        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash  text        NOT NULL CHECK (code_hash <> ''),
    created    timestamptz NOT NULL,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE account_passkeys (
    credential_id    bytea       NOT NULL PRIMARY KEY CHECK (length(credential_id) > 0),
    account_id       text        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    public_key       bytea       NOT NULL CHECK (length(public_key) > 0),
    sign_count       bigint      NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
    transports       text        NOT NULL DEFAULT '',
    flags            integer     NOT NULL DEFAULT 0,
    aaguid           bytea,
    attestation_type text        NOT NULL DEFAULT '',
    name             text        NOT NULL DEFAULT '',
    created          timestamptz NOT NULL,
    last_used        timestamptz
);

CREATE INDEX account_passkeys_account ON account_passkeys (account_id);
