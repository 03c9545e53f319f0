-- The simulated payment gateway's books (gateway = "test" with the store on PostgreSQL), shared
-- by every replica: intents with what was captured and refunded, each refund, each event the
-- provider sent, and the idempotency keys of the calls made to it.
CREATE TABLE {schema}.test_gateway_intents (
    id text PRIMARY KEY,
    reservation uuid,
    status text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    client_secret text,
    captured bigint NOT NULL DEFAULT 0,
    refunded bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (captured IN (0, amount) AND refunded >= 0 AND refunded <= captured)
);
CREATE INDEX test_gateway_intents_reservation ON {schema}.test_gateway_intents (reservation);

CREATE TABLE {schema}.test_gateway_refunds (
    id text PRIMARY KEY,
    intent_id text NOT NULL REFERENCES {schema}.test_gateway_intents (id),
    reservation uuid NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX test_gateway_refunds_intent ON {schema}.test_gateway_refunds (intent_id);

CREATE TABLE {schema}.test_gateway_events (
    id text PRIMARY KEY,
    intent_id text NOT NULL REFERENCES {schema}.test_gateway_intents (id),
    reservation uuid NOT NULL,
    kind text NOT NULL,
    event jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX test_gateway_events_intent ON {schema}.test_gateway_events (intent_id);

CREATE TABLE {schema}.test_gateway_keys (
    key text PRIMARY KEY,
    fingerprint text NOT NULL,
    response text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The webhook signing secret, made by the first replica when `webhook_secret` is not set.
CREATE TABLE {schema}.test_gateway_secret (
    id smallint PRIMARY KEY CHECK (id = 1),
    secret text NOT NULL
);
