-- Revoked passes, numbered 1, 2, 3, ... across the schema. Each revocation takes the next
-- number by updating the single counter row in the transaction of the change that causes it
-- (a cancellation); the row stays locked until commit, so numbers are gap-free and in commit
-- order: a reader that saw version n never misses a revocation numbered n or less later.
CREATE TABLE revocation_counter (
    only_row            boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version             bigint NOT NULL
);
INSERT INTO revocation_counter (only_row, version) VALUES (true, 0);

CREATE TABLE revocations (
    version             bigint PRIMARY KEY,
    reservation_id      uuid NOT NULL REFERENCES reservations (id),
    -- The nonce of the one pass revoked, or NULL for every pass of the reservation.
    pass_nonce          bytea,
    reason              text NOT NULL,
    at                  timestamptz NOT NULL
);

CREATE INDEX revocations_reservation ON revocations (reservation_id, version);

-- Readings that offline gates acted on and uploaded, once per (lot, scan id), with what the
-- server made of them (the document is the record the upload answered with).
CREATE TABLE gate_scans (
    lot_id              uuid NOT NULL REFERENCES lots (id),
    scan_id             text NOT NULL,
    doc                 jsonb NOT NULL,
    PRIMARY KEY (lot_id, scan_id)
);
