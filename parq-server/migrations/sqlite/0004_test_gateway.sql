-- The simulated payment gateway's books (gateway = "test" with the store in this file), kept
-- across restarts and shared by every process on the file: intents with what was captured and
-- refunded, each refund, each event the provider sent, and the idempotency keys of its calls.
CREATE TABLE test_gateway_intents (
    id TEXT PRIMARY KEY NOT NULL,
    reservation TEXT,
    status TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    client_secret TEXT,
    captured INTEGER NOT NULL DEFAULT 0,
    refunded INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (captured IN (0, amount) AND refunded >= 0 AND refunded <= captured)
) STRICT;
CREATE INDEX test_gateway_intents_reservation ON test_gateway_intents (reservation);

CREATE TABLE test_gateway_refunds (
    id TEXT PRIMARY KEY NOT NULL,
    intent_id TEXT NOT NULL REFERENCES test_gateway_intents (id),
    reservation TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX test_gateway_refunds_intent ON test_gateway_refunds (intent_id);

CREATE TABLE test_gateway_events (
    id TEXT PRIMARY KEY NOT NULL,
    intent_id TEXT NOT NULL REFERENCES test_gateway_intents (id),
    reservation TEXT NOT NULL,
    kind TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX test_gateway_events_intent ON test_gateway_events (intent_id);

CREATE TABLE test_gateway_keys (
    key TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

-- The webhook signing secret, made on the first start when `webhook_secret` is not set.
CREATE TABLE test_gateway_secret (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    secret TEXT NOT NULL
) STRICT;
