//! The statements of the store, qualified with its schema once, at construction.

/// States that block a spot (the exclusion constraint's predicate).
pub(crate) const LIVE: &str = "('held', 'pending_payment', 'confirmed', 'checked_in')";
/// States that lapse at their deadline.
pub(crate) const HOLDS: &str = "('held', 'pending_payment')";
/// The columns of a reservation, in the order [`crate::rows::reservation`] reads them.
pub(crate) const RES_COLS: &str = "id, operator_id, lot_id, spot_id, user_id, lower(during), upper(during), \
     state, fence, price_minor, price_currency, hold_expires_at, created_at, payment::text";
/// The columns of an event, in the order [`crate::rows::event`] reads them.
pub(crate) const EVENT_COLS: &str =
    "lot_id, seq, at, kind, reservation_id, spot_id, user_id, lower(during), upper(during), state";

/// Quotes an identifier (a schema, a table) for SQL: `"name"`, with inner quotes doubled.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every statement of the store.
#[derive(Debug)]
pub(crate) struct Sql {
    pub put_operator: String,
    pub operator: String,
    pub lot_owner: String,
    pub insert_lot: String,
    pub update_lot: String,
    pub lot: String,
    pub lots_in: String,
    pub put_spot: String,
    pub spots: String,
    pub lot_exists: String,
    pub last_seq: String,
    pub claim: String,
    pub claimed: String,
    pub lock_user: String,
    pub count_holds: String,
    pub lock_spot: String,
    pub known_spots: String,
    pub pick_free: String,
    pub free_now: String,
    pub overlapping: String,
    pub retire: String,
    pub insert_hold: String,
    pub lock_spot_of: String,
    pub reservation: String,
    pub open_session: String,
    pub enter: String,
    pub exit: String,
    pub write_update: String,
    pub by_user: String,
    pub live_in_lot: String,
    pub lapsed: String,
    pub unclaimed: String,
    pub events: String,
    pub sessions: String,
    pub reservation_exists: String,
    pub number: String,
    pub pending_lots: String,
    pub last_queued: String,
}

/// The tail shared by every write: it stores the events in the queue of events awaiting their
/// number, in the statement of the change, and returns their queue positions in order. No
/// counter row is locked and nothing is notified here: the events are numbered and announced
/// after commit ([`Sql::number`]). Parameters from `$b`: reservation ids, lot, at, kinds, spots,
/// users, window starts, window ends, states.
fn events_tail(q: &str, b: usize) -> String {
    let p = |i: usize| format!("${}", b + i);
    format!(
        "ev AS (INSERT INTO {q}.event_queue (lot_id, at, kind, reservation_id, spot_id, user_id, during, state) \
             SELECT {lot}, {at}, u.kind, u.rid, u.spot, u.usr, tstzrange(u.ws, u.we, '[)'), u.state \
             FROM unnest({ids}::uuid[], {kinds}::text[], {spots}::uuid[], {users}::uuid[], \
                 {starts}::timestamptz[], {ends}::timestamptz[], {states}::text[]) \
                 WITH ORDINALITY AS u(rid, kind, spot, usr, ws, we, state, ord) \
             ORDER BY u.ord RETURNING n) \
         SELECT n FROM ev ORDER BY n",
        ids = p(0),
        lot = p(1),
        at = p(2),
        kinds = p(3),
        spots = p(4),
        users = p(5),
        starts = p(6),
        ends = p(7),
        states = p(8),
    )
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let q = ident(schema);
        let not_lapsed = format!("NOT (r.state IN {HOLDS} AND r.hold_expires_at <= $4)");
        Self {
            put_operator: format!(
                "INSERT INTO {q}.operators (id, doc) VALUES ($1, $2::text::jsonb) \
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc"
            ),
            operator: format!("SELECT doc::text FROM {q}.operators WHERE id = $1"),
            lot_owner: format!("SELECT operator_id FROM {q}.lots WHERE id = $1"),
            insert_lot: format!(
                "INSERT INTO {q}.lots (id, operator_id, lat, lon, doc) \
                 SELECT $1, $2, $3, $4, $5::text::jsonb WHERE EXISTS (SELECT 1 FROM {q}.operators WHERE id = $2) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            update_lot: format!(
                "UPDATE {q}.lots SET lat = $3, lon = $4, doc = $5::text::jsonb WHERE id = $1 AND operator_id = $2"
            ),
            lot: format!("SELECT doc::text FROM {q}.lots WHERE id = $1"),
            lots_in: format!(
                "SELECT doc::text FROM {q}.lots WHERE lat BETWEEN $1 AND $2 AND lon BETWEEN $3 AND $4 ORDER BY id"
            ),
            put_spot: format!(
                "INSERT INTO {q}.spots (id, lot_id, label, attributes) VALUES ($1, $2, $3, $4::text::jsonb) \
                 ON CONFLICT (id) DO UPDATE SET label = excluded.label, attributes = excluded.attributes \
                 WHERE {q}.spots.lot_id = excluded.lot_id"
            ),
            spots: format!(
                "SELECT id, lot_id, label, attributes::text FROM {q}.spots WHERE lot_id = $1 \
                 ORDER BY label COLLATE \"C\", id"
            ),
            lot_exists: format!("SELECT 1 FROM {q}.lots WHERE id = $1"),
            last_seq: format!("SELECT last_seq FROM {q}.lots WHERE id = $1"),
            claim: format!(
                "INSERT INTO {q}.idempotency (scope, key, fingerprint, reservation_id) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (scope, key) DO NOTHING RETURNING reservation_id"
            ),
            claimed: format!(
                "SELECT fingerprint, reservation_id FROM {q}.idempotency WHERE scope = $1 AND key = $2"
            ),
            lock_user: "SELECT pg_advisory_xact_lock($1)".into(),
            count_holds: format!(
                "SELECT count(*) FILTER (WHERE lot_id = $2), count(*) FILTER (WHERE operator_id = $3) \
                 FROM {q}.reservations WHERE user_id = $1 AND state IN {HOLDS} AND hold_expires_at > $4"
            ),
            lock_spot: format!("SELECT last_fence FROM {q}.spots WHERE id = $1 AND lot_id = $2 FOR UPDATE"),
            known_spots: format!("SELECT id FROM {q}.spots WHERE lot_id = $1 AND id = ANY($2)"),
            pick_free: format!(
                "SELECT s.id, s.last_fence FROM unnest($1::uuid[]) WITH ORDINALITY AS c(id, ord) \
                 JOIN {q}.spots s ON s.id = c.id \
                 WHERE NOT (s.id = ANY($5)) AND NOT EXISTS (SELECT 1 FROM {q}.reservations r \
                     WHERE r.spot_id = s.id AND r.during && tstzrange($2, $3, '[)') AND r.state IN {LIVE} \
                     AND {not_lapsed}) \
                 ORDER BY c.ord LIMIT 1 FOR UPDATE OF s SKIP LOCKED"
            ),
            free_now: format!(
                "SELECT c.id FROM unnest($1::uuid[]) WITH ORDINALITY AS c(id, ord) \
                 WHERE NOT (c.id = ANY($5)) AND NOT EXISTS (SELECT 1 FROM {q}.reservations r \
                     WHERE r.spot_id = c.id AND r.during && tstzrange($2, $3, '[)') AND r.state IN {LIVE} \
                     AND {not_lapsed}) \
                 ORDER BY c.ord LIMIT 1"
            ),
            overlapping: format!(
                "SELECT r.id, r.state IN {HOLDS} AND r.hold_expires_at <= $4 FROM {q}.reservations r \
                 WHERE r.spot_id = $1 AND r.during && tstzrange($2, $3, '[)') AND r.state IN {LIVE} \
                 AND r.id <> $5"
            ),
            retire: format!(
                "UPDATE {q}.reservations SET state = 'expired' \
                 WHERE id = ANY($1) AND state IN {HOLDS} AND hold_expires_at <= $2 RETURNING {RES_COLS}"
            ),
            insert_hold: format!(
                "WITH ins AS (INSERT INTO {q}.reservations (id, operator_id, lot_id, spot_id, user_id, during, state, \
                     fence, price_minor, price_currency, hold_expires_at, created_at, payment) \
                     VALUES ($1, $2, $3, $4, $5, tstzrange($6, $7, '[)'), 'held', $8, $9, $10, $11, $12, \
                     $13::text::jsonb) RETURNING id), \
                 fen AS (UPDATE {q}.spots SET last_fence = $8 WHERE id = $4 RETURNING id), {}",
                events_tail(&q, 14)
            ),
            lock_spot_of: format!(
                "SELECT id, last_fence FROM {q}.spots \
                 WHERE id = (SELECT spot_id FROM {q}.reservations WHERE id = $1) FOR UPDATE"
            ),
            reservation: format!("SELECT {RES_COLS} FROM {q}.reservations WHERE id = $1"),
            open_session: format!(
                "SELECT max(n) FROM {q}.sessions WHERE owner_id = $1 AND exited_at IS NULL"
            ),
            enter: format!(
                "INSERT INTO {q}.sessions (owner_id, id, reservation_id, entered_at, entry_gate, exited_at, exit_gate, \
                     entry_scan, exit_scan) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            exit: format!(
                "UPDATE {q}.sessions SET exited_at = $2, exit_gate = $3, exit_scan = $4 WHERE n = $1"
            ),
            write_update: format!(
                "WITH upd AS (UPDATE {q}.reservations SET state = $2, during = tstzrange($3, $4, '[)'), fence = $5, \
                     price_minor = $6, price_currency = $7, hold_expires_at = $8, payment = $9::text::jsonb \
                     WHERE id = $1 RETURNING id), \
                 fen AS (UPDATE {q}.spots SET last_fence = $5 WHERE id = $10 AND $11 RETURNING id), {}",
                events_tail(&q, 12)
            ),
            by_user: format!(
                "SELECT {RES_COLS} FROM {q}.reservations WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
            ),
            live_in_lot: format!(
                "SELECT {RES_COLS} FROM {q}.reservations r WHERE r.lot_id = $1 \
                 AND r.during && tstzrange($2, $3, '[)') AND r.state IN {LIVE} AND {not_lapsed} \
                 ORDER BY lower(r.during), r.id"
            ),
            lapsed: format!(
                "SELECT {RES_COLS} FROM {q}.reservations WHERE state IN {HOLDS} AND hold_expires_at <= $1 \
                 ORDER BY hold_expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            unclaimed: format!(
                "SELECT {RES_COLS} FROM {q}.reservations WHERE state = 'confirmed' AND lower(during) < $1 \
                 ORDER BY lower(during), id LIMIT $2"
            ),
            events: format!(
                "SELECT {EVENT_COLS} FROM {q}.events WHERE lot_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            sessions: format!(
                "SELECT id, reservation_id, entered_at, entry_gate, exited_at, exit_gate, entry_scan, exit_scan \
                 FROM {q}.sessions \
                 WHERE owner_id = $1 ORDER BY n"
            ),
            reservation_exists: format!("SELECT 1 FROM {q}.reservations WHERE id = $1"),
            number: format!("SELECT * FROM {q}.number_events($1, $2)"),
            pending_lots: format!("SELECT DISTINCT lot_id FROM {q}.event_queue WHERE n <= $1"),
            last_queued: format!("SELECT coalesce(max(n), 0) FROM {q}.event_queue"),
        }
    }
}
