-- Accounts, sessions and API keys, shared by every replica.
CREATE TABLE {schema}.accounts (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role text NOT NULL CHECK (role IN ('driver', 'operator', 'gate')),
    operator_id uuid,
    totp_secret text,
    totp_confirmed boolean NOT NULL DEFAULT false,
    totp_last_step bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL
);

-- One row per unused recovery code (SHA-256 hex), so using one is a single DELETE.
CREATE TABLE {schema}.account_recovery_codes (
    account_id uuid NOT NULL REFERENCES {schema}.accounts (id) ON DELETE CASCADE,
    code_hash text NOT NULL,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE {schema}.account_sessions (
    token_hash text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES {schema}.accounts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX account_sessions_expiry ON {schema}.account_sessions (expires_at);

CREATE TABLE {schema}.api_keys (
    key_hash text PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('operator', 'gate')),
    operator_id uuid NOT NULL,
    created_at timestamptz NOT NULL
);
