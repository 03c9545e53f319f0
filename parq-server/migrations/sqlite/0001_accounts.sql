-- Accounts, sessions and API keys of a server whose store is SQLite, in the store's file.
-- Instants are whole microseconds since the Unix epoch.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('driver', 'operator', 'gate')),
    operator_id TEXT,
    totp_secret TEXT,
    totp_confirmed INTEGER NOT NULL DEFAULT 0,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    created_at_us INTEGER NOT NULL
) STRICT;

-- One row per unused recovery code (SHA-256 hex), so using one is a single DELETE.
CREATE TABLE account_recovery_codes (
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    PRIMARY KEY (account_id, code_hash)
) STRICT;

CREATE TABLE account_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL
) STRICT;
CREATE INDEX account_sessions_expiry ON account_sessions (expires_at_us);

CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY NOT NULL,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('operator', 'gate')),
    operator_id TEXT NOT NULL,
    created_at_us INTEGER NOT NULL
) STRICT;
