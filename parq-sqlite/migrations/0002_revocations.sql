-- Revoked passes, numbered 1, 2, 3, ... in the transaction of the change that causes them
-- (a cancellation). Writers are serialised by the database's write lock, so numbers are
-- gap-free and in commit order.
CREATE TABLE revocation_counter (
    only_row            INTEGER PRIMARY KEY NOT NULL CHECK (only_row = 1),
    version             INTEGER NOT NULL
) STRICT;
INSERT INTO revocation_counter (only_row, version) VALUES (1, 0);

CREATE TABLE revocations (
    version             INTEGER PRIMARY KEY NOT NULL,
    reservation_id      TEXT NOT NULL REFERENCES reservations (id),
    -- The nonce of the one pass revoked, or NULL for every pass of the reservation.
    pass_nonce          BLOB,
    reason              TEXT NOT NULL,
    at_ns               INTEGER NOT NULL
) STRICT;

CREATE INDEX revocations_reservation ON revocations (reservation_id, version);

-- Readings that offline gates acted on and uploaded, once per (lot, scan id), with what the
-- server made of them (the document is the record the upload answered with).
CREATE TABLE gate_scans (
    lot_id              TEXT NOT NULL REFERENCES lots (id),
    scan_id             TEXT NOT NULL,
    doc                 TEXT NOT NULL,
    PRIMARY KEY (lot_id, scan_id)
) STRICT;
