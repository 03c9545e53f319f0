-- Responses to unsafe requests, by (caller scope, Idempotency-Key), so a retry that reaches
-- another replica is answered the same way. `status` is NULL while the first request runs.
CREATE TABLE {schema}.http_idempotency (
    scope text NOT NULL,
    key text NOT NULL,
    fingerprint bytea NOT NULL,
    started_at timestamptz NOT NULL,
    status smallint,
    headers jsonb,
    body bytea,
    done_at timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX http_idempotency_started ON {schema}.http_idempotency (started_at);
