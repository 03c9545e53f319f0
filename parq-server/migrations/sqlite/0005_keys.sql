-- API keys are revoked, not deleted: a revoked key is refused at once and stays listed with
-- when it was revoked. Keys are listed per operator.
ALTER TABLE api_keys ADD COLUMN revoked_at_us INTEGER;
CREATE INDEX api_keys_operator ON api_keys (operator_id, created_at_us);

-- The pass keyring of a server given none in its configuration: made on the first start and
-- kept here, so a restart signs and verifies with the same keys. One row, the TOML document.
CREATE TABLE pass_keyring (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    document TEXT NOT NULL,
    created_at_us INTEGER NOT NULL
) STRICT;
