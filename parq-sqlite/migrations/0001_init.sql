-- ParQ's schema on SQLite. Ids are UUIDs as text (hyphenated, lower case: they sort like the
-- UUIDs); instants are integer nanoseconds since the Unix epoch (UTC); windows are half-open
-- [start_ns, end_ns). Catalog documents are JSON text.

CREATE TABLE operators (
    id                  TEXT PRIMARY KEY NOT NULL,
    doc                 TEXT NOT NULL
) STRICT;

CREATE TABLE lots (
    id                  TEXT PRIMARY KEY NOT NULL,
    operator_id         TEXT NOT NULL REFERENCES operators (id),
    lat                 REAL NOT NULL,
    lon                 REAL NOT NULL,
    doc                 TEXT NOT NULL,
    -- The last event sequence number of the lot, advanced in the transaction of each change.
    last_seq            INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX lots_location ON lots (lat, lon);

CREATE TABLE spots (
    id                  TEXT PRIMARY KEY NOT NULL,
    lot_id              TEXT NOT NULL REFERENCES lots (id),
    label               TEXT NOT NULL,
    attributes          TEXT NOT NULL,
    -- The last fencing number issued on the spot.
    last_fence          INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX spots_lot ON spots (lot_id, label, id);

CREATE TABLE reservations (
    id                  TEXT PRIMARY KEY NOT NULL,
    operator_id         TEXT NOT NULL,
    lot_id              TEXT NOT NULL REFERENCES lots (id),
    spot_id             TEXT NOT NULL REFERENCES spots (id),
    user_id             TEXT NOT NULL,
    start_ns            INTEGER NOT NULL,
    end_ns              INTEGER NOT NULL CHECK (end_ns > start_ns),
    state               TEXT NOT NULL CHECK (state IN ('held', 'pending_payment', 'confirmed', 'checked_in',
                                                       'completed', 'expired', 'cancelled', 'no_show')),
    fence               INTEGER NOT NULL,
    price_minor         INTEGER NOT NULL,
    price_currency      TEXT NOT NULL,
    hold_expires_ns     INTEGER NOT NULL,
    created_ns          INTEGER NOT NULL,
    payment             TEXT
) STRICT;

-- The overlap check of a hold: a spot's reservations whose stored state is live, by start.
-- They never overlap one another (every writer retires lapsed overlaps before writing), so the
-- check reads the ones starting inside the window and the last one starting before it.
CREATE INDEX reservations_spot_live ON reservations (spot_id, start_ns)
    WHERE state IN ('held', 'pending_payment', 'confirmed', 'checked_in');
CREATE INDEX reservations_lot_live ON reservations (lot_id, start_ns)
    WHERE state IN ('held', 'pending_payment', 'confirmed', 'checked_in');
CREATE INDEX reservations_user ON reservations (user_id, id);
CREATE INDEX reservations_user_holds ON reservations (user_id, hold_expires_ns)
    WHERE state IN ('held', 'pending_payment');
CREATE INDEX reservations_lapsing ON reservations (hold_expires_ns, id)
    WHERE state IN ('held', 'pending_payment');
CREATE INDEX reservations_unclaimed ON reservations (start_ns, id)
    WHERE state = 'confirmed';

CREATE TABLE sessions (
    n                   INTEGER PRIMARY KEY,
    owner_id            TEXT NOT NULL REFERENCES reservations (id),
    id                  TEXT NOT NULL,
    reservation_id      TEXT NOT NULL,
    entered_ns          INTEGER NOT NULL,
    entry_gate          TEXT NOT NULL,
    exited_ns           INTEGER,
    exit_gate           TEXT,
    entry_scan          TEXT,
    exit_scan           TEXT
) STRICT;

CREATE INDEX sessions_owner ON sessions (owner_id, n);

-- Every change, numbered per lot, written in the transaction of the change.
CREATE TABLE events (
    lot_id              TEXT NOT NULL REFERENCES lots (id),
    seq                 INTEGER NOT NULL,
    at_ns               INTEGER NOT NULL,
    kind                TEXT NOT NULL,
    reservation_id      TEXT NOT NULL,
    spot_id             TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    start_ns            INTEGER NOT NULL,
    end_ns              INTEGER NOT NULL,
    state               TEXT NOT NULL,
    PRIMARY KEY (lot_id, seq)
) STRICT, WITHOUT ROWID;

-- Idempotency records (including processed webhook ids), written with their effect.
CREATE TABLE idempotency (
    scope               TEXT NOT NULL,
    key                 TEXT NOT NULL,
    fingerprint         BLOB NOT NULL,
    reservation_id      TEXT NOT NULL,
    created_ns          INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT, WITHOUT ROWID;
