-- Responses to unsafe requests, by (caller scope, Idempotency-Key), so a retry after a restart
-- is answered the same way. `status` is NULL while the first request runs.
CREATE TABLE http_idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    started_at_us INTEGER NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    done_at_us INTEGER,
    PRIMARY KEY (scope, key)
) STRICT;
CREATE INDEX http_idempotency_started ON http_idempotency (started_at_us);
