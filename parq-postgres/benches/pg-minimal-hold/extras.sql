-- What ParQ's hold writes besides the minimal hold, one statement per pgbench variant in
-- pg_holds.rs: the idempotency record, the spot's fencing counter, the queued event row.
ALTER TABLE spots ADD COLUMN last_fence bigint NOT NULL DEFAULT 0;
CREATE TABLE idem (scope text NOT NULL, key text NOT NULL, fingerprint bytea NOT NULL, res int NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (scope, key));
CREATE TABLE event_queue (n bigserial PRIMARY KEY, lot int NOT NULL, at timestamptz NOT NULL, kind text NOT NULL,
  spot int NOT NULL, during tstzrange NOT NULL);
CREATE INDEX event_queue_lot ON event_queue (lot, n);
