-- Events are numbered after the write that records them commits, so that no write holds the
-- lot's counter row or the notification lock through its commit's WAL flush.
--
-- A write stores its events here, in its own transaction, without a sequence number. Then
-- `number_events` (called by the writer right after its commit, and by the relay of any replica
-- for what a writer left behind) moves every queued event of one lot into `events`, numbered
-- from `lots.last_seq` in queue order, under a per-lot advisory lock: numbers stay gap-free, and
-- a write that commits before another starts gets the smaller number.
CREATE TABLE event_queue (
    n                   bigserial PRIMARY KEY,
    lot_id              uuid NOT NULL,
    at                  timestamptz NOT NULL,
    kind                text NOT NULL,
    reservation_id      uuid NOT NULL,
    spot_id             uuid NOT NULL,
    user_id             uuid NOT NULL,
    during              tstzrange NOT NULL,
    state               text NOT NULL
);

CREATE INDEX event_queue_lot ON event_queue (lot_id, n);

-- The queue position an event had, so a writer finds the numbers of its own events when
-- another writer numbered them first.
ALTER TABLE events ADD COLUMN n bigint;
CREATE UNIQUE INDEX events_n ON events (n) WHERE n IS NOT NULL;

-- Numbers the queued events of `lot`: returns those it numbered (`fresh`), and those of
-- `mine` (queue positions) that an earlier call numbered. The lock is taken in its own
-- statement, so the next one reads what every earlier call committed.
CREATE FUNCTION number_events(lot uuid, mine bigint[])
RETURNS TABLE (lot_id uuid, seq bigint, at timestamptz, kind text, reservation_id uuid, spot_id uuid,
               user_id uuid, ws timestamptz, we timestamptz, state text, n bigint, fresh boolean)
LANGUAGE plpgsql VOLATILE
SET search_path FROM CURRENT
AS $$
#variable_conflict use_column
BEGIN
    -- Numbered already by another call (which took them with its own): no need to queue for
    -- the lock. Each statement here reads what was committed before it started.
    IF cardinality(mine) > 0
       AND (SELECT count(*) FROM events e WHERE e.n = ANY (mine)) = cardinality(mine) THEN
        RETURN QUERY
        SELECT e.lot_id, e.seq, e.at, e.kind, e.reservation_id, e.spot_id, e.user_id,
               lower(e.during), upper(e.during), e.state, e.n, false
        FROM events e WHERE e.n = ANY (mine) ORDER BY 2;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(1885434225, hashtext(lot::text));
    RETURN QUERY
    WITH moved AS (
        DELETE FROM event_queue q WHERE q.lot_id = lot
        RETURNING q.n, q.lot_id, q.at, q.kind, q.reservation_id, q.spot_id, q.user_id, q.during, q.state
    ),
    cnt AS (SELECT count(*) AS c FROM moved),
    base AS (
        UPDATE lots l SET last_seq = l.last_seq + cnt.c FROM cnt
        WHERE l.id = lot AND cnt.c > 0
        RETURNING l.last_seq - cnt.c AS b
    ),
    ins AS (
        INSERT INTO events (lot_id, seq, at, kind, reservation_id, spot_id, user_id, during, state, n)
        SELECT m.lot_id, base.b + row_number() OVER (ORDER BY m.n), m.at, m.kind, m.reservation_id,
               m.spot_id, m.user_id, m.during, m.state, m.n
        FROM moved m, base
        RETURNING events.lot_id, events.seq, events.at, events.kind, events.reservation_id, events.spot_id,
                  events.user_id, events.during, events.state, events.n
    )
    SELECT i.lot_id, i.seq, i.at, i.kind, i.reservation_id, i.spot_id, i.user_id,
           lower(i.during), upper(i.during), i.state, i.n, true
    FROM ins i
    UNION ALL
    SELECT e.lot_id, e.seq, e.at, e.kind, e.reservation_id, e.spot_id, e.user_id,
           lower(e.during), upper(e.during), e.state, e.n, false
    FROM events e
    WHERE e.n = ANY (mine)
    ORDER BY 2;
END
$$;
