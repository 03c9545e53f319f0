-- ParQ's schema. Runs with `search_path` set to the store's schema, then `public` (where
-- btree_gist lives), so table names here are unqualified.

CREATE TABLE operators (
    id                  uuid PRIMARY KEY,
    doc                 jsonb NOT NULL
);

CREATE TABLE lots (
    id                  uuid PRIMARY KEY,
    operator_id         uuid NOT NULL REFERENCES operators (id),
    lat                 double precision NOT NULL,
    lon                 double precision NOT NULL,
    doc                 jsonb NOT NULL,
    -- The last event sequence number of the lot. Incrementing it locks the lot's row until
    -- commit, which is what makes sequence numbers gap-free and in commit order.
    last_seq            bigint NOT NULL DEFAULT 0
);

-- Bounding-box search ("lots near a point") with a plain B-tree: no PostGIS needed.
CREATE INDEX lots_location ON lots (lat, lon);

CREATE TABLE spots (
    id                  uuid PRIMARY KEY,
    lot_id              uuid NOT NULL REFERENCES lots (id),
    label               text NOT NULL,
    attributes          jsonb NOT NULL,
    -- The last fencing number issued on the spot. Every hold locks this row first, which also
    -- serialises holds of one spot before the exclusion constraint sees them.
    last_fence          bigint NOT NULL DEFAULT 0
);

CREATE INDEX spots_lot ON spots (lot_id, label COLLATE "C", id);

CREATE TABLE reservations (
    id                  uuid PRIMARY KEY,
    operator_id         uuid NOT NULL,
    lot_id              uuid NOT NULL REFERENCES lots (id),
    spot_id             uuid NOT NULL REFERENCES spots (id),
    user_id             uuid NOT NULL,
    during              tstzrange NOT NULL CHECK (NOT isempty(during) AND lower_inc(during) AND NOT upper_inc(during)),
    state               text NOT NULL CHECK (state IN ('held', 'pending_payment', 'confirmed', 'checked_in',
                                                       'completed', 'expired', 'cancelled', 'no_show')),
    fence               bigint NOT NULL,
    price_minor         bigint NOT NULL,
    price_currency      text NOT NULL,
    hold_expires_at     timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    payment             jsonb,
    -- The final word on double booking. It cannot see the clock, so a lapsed hold keeps
    -- blocking here until a writer retires it (the store does so under the spot's row lock).
    CONSTRAINT reservations_no_overlap EXCLUDE USING gist (spot_id WITH =, during WITH &&)
        WHERE (state IN ('held', 'pending_payment', 'confirmed', 'checked_in'))
);

CREATE INDEX reservations_user ON reservations (user_id, id DESC);
CREATE INDEX reservations_user_holds ON reservations (user_id, hold_expires_at)
    WHERE state IN ('held', 'pending_payment');
CREATE INDEX reservations_lot_live ON reservations USING gist (lot_id, during)
    WHERE (state IN ('held', 'pending_payment', 'confirmed', 'checked_in'));
CREATE INDEX reservations_lapsing ON reservations (hold_expires_at, id)
    WHERE state IN ('held', 'pending_payment');
CREATE INDEX reservations_unclaimed ON reservations (lower(during), id)
    WHERE state = 'confirmed';

CREATE TABLE sessions (
    n                   bigserial PRIMARY KEY,
    owner_id            uuid NOT NULL REFERENCES reservations (id),
    id                  uuid NOT NULL,
    reservation_id      uuid NOT NULL,
    entered_at          timestamptz NOT NULL,
    entry_gate          text NOT NULL,
    exited_at           timestamptz,
    exit_gate           text
);

CREATE INDEX sessions_owner ON sessions (owner_id, n);

-- The outbox: every change, numbered per lot, written in the transaction of the change.
CREATE TABLE events (
    lot_id              uuid NOT NULL REFERENCES lots (id),
    seq                 bigint NOT NULL,
    at                  timestamptz NOT NULL,
    kind                text NOT NULL,
    reservation_id      uuid NOT NULL,
    spot_id             uuid NOT NULL,
    user_id             uuid NOT NULL,
    during              tstzrange NOT NULL,
    state               text NOT NULL,
    PRIMARY KEY (lot_id, seq)
);

-- Idempotency records (including processed webhook ids), written with their effect.
CREATE TABLE idempotency (
    scope               text NOT NULL,
    key                 text NOT NULL,
    fingerprint         bytea NOT NULL,
    reservation_id      uuid NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
