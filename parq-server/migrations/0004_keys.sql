-- API keys are revoked, not deleted: a revoked key is refused at once, on every replica, and
-- stays listed with when it was revoked. Keys are listed per operator.
ALTER TABLE {schema}.api_keys ADD COLUMN revoked_at timestamptz;
CREATE INDEX api_keys_operator ON {schema}.api_keys (operator_id, created_at);
