//! `PgStore`: the reservation store on PostgreSQL.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object, Pool};
use futures_util::future::OptionFuture;
use jiff::Timestamp;
use parq_core::pass::{Revocation, RevocationDelta, ScanRecord};
use parq_core::{
    Capabilities, ConflictReason, Error, Event, EventKind, GateSession, GeoBox, HoldRequest, HoldTarget,
    IdempotencyClaim, Lot, LotId, Operator, OperatorId, Reservation, ReservationId, ReservationState,
    ReservationStore, Result, SessionChange, Spot, SpotId, Update, UserId, Window, Written,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::error::{PgError, db};
use crate::rows::{self, check_window, fence_i64, micros, sys};
use crate::sql::Sql;

type Param<'a> = &'a (dyn ToSql + Sync);

/// A [`ReservationStore`] on PostgreSQL: the arbiter of a deployment with several replicas.
///
/// It takes the caller's [`Pool`] and keeps every table in one schema, which
/// [`migrate`](Self::migrate) creates. See the crate documentation for how each part of the
/// contract is kept.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: String,
    channel: String,
    sql: Sql,
    /// The last queue position the relay saw: it numbers only events queued before its
    /// previous pass, leaving fresh ones to their writers.
    relay_seen: std::sync::atomic::AtomicI64,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore").field("schema", &self.inner.schema).finish_non_exhaustive()
    }
}

/// The notification channel of a schema: an identifier of at most 63 bytes.
pub(crate) fn channel_of(schema: &str) -> String {
    let mut c = format!("{schema}.events");
    while c.len() > 63 {
        c.pop();
    }
    c
}

impl PgStore {
    /// A store on `pool` keeping its tables in `schema` (created by [`migrate`](Self::migrate)).
    ///
    /// Every statement names the schema, so the pool's connections need no `search_path`.
    pub fn new(pool: Pool, schema: impl Into<String>) -> Self {
        let schema = schema.into();
        Self {
            inner: Arc::new(Inner {
                pool,
                channel: channel_of(&schema),
                sql: Sql::new(&schema),
                schema,
                relay_seen: std::sync::atomic::AtomicI64::new(0),
            }),
        }
    }

    /// Creates the schema and applies the migrations (`migrations/*.sql`) it lacks, once
    /// each, recording them in `parq_migrations`. Safe to run from several replicas at once.
    pub async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        crate::migrate::run(&mut client, &self.inner.schema, &crate::migrate::STORE).await.map(drop)
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The `LISTEN`/`NOTIFY` channel on which every committed event is announced.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }

    async fn client(&self) -> Result<Object> {
        self.inner.pool.get().await.map_err(|e| PgError::Pool(e).into())
    }

    fn sql(&self) -> &Sql {
        &self.inner.sql
    }
}

async fn query(c: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, PgError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query(&st, params).await?)
}

async fn query_opt(c: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, PgError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&st, params).await?)
}

async fn execute(c: &impl GenericClient, sql: &str, params: &[Param<'_>]) -> Result<u64, PgError> {
    let st = c.prepare_cached(sql).await?;
    Ok(c.execute(&st, params).await?)
}

/// From the rows of the overlap check: `None` when a live reservation blocks, else the lapsed
/// holds to retire.
fn free_of(rows: &[Row]) -> Result<Option<Vec<Uuid>>> {
    let mut lapsed = Vec::new();
    for row in rows {
        let is_lapsed: bool = row.try_get(1).map_err(PgError::Db)?;
        if !is_lapsed {
            return Ok(None);
        }
        lapsed.push(row.try_get(0).map_err(PgError::Db)?);
    }
    Ok(Some(lapsed))
}

/// Runs a write's last statement and commits in one round trip: `COMMIT` is sent behind the
/// statement, and ends the transaction either way (a failed statement makes it a rollback).
async fn commit_with(tx: &Object, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, PgError> {
    let st = tx.prepare_cached(sql).await?;
    let (rows, commit) = futures_util::join!(tx.query(&st, params), tx.batch_execute("COMMIT"));
    let rows = rows?;
    commit?;
    Ok(rows)
}

/// A pooled connection on which the store opens a transaction (`BEGIN` is sent together with
/// the first statements, so it costs no round trip of its own). When the write's future is
/// dropped before the transaction ends (its caller went away), the connection is closed, which
/// rolls the transaction back, rather than returned to the pool in the middle of it.
struct InTx {
    client: Option<Object>,
    open: std::cell::Cell<bool>,
}

impl InTx {
    fn new(client: Object) -> Self {
        Self { client: Some(client), open: std::cell::Cell::new(true) }
    }

    fn client(&self) -> &Object {
        self.client.as_ref().expect("the connection is present until the guard ends")
    }

    /// The connection, once its transaction ended.
    fn done(mut self) -> Object {
        self.open.set(false);
        self.client.take().expect("the connection is present until the guard ends")
    }

    /// Ends the transaction after a failed write. A connection that failed retryably, or whose
    /// `ROLLBACK` fails, is closed instead (a terminated backend is often noticed only by the
    /// next query), so the retry gets a healthy one.
    async fn abort(self, e: &Error) {
        if !e.is_retryable() && self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.open.set(false);
        }
    }
}

impl Drop for InTx {
    fn drop(&mut self) {
        if self.open.get() {
            if let Some(c) = self.client.take() {
                drop(Object::take(c));
            }
        }
    }
}

/// Takes a connection out of the pool after a failure that may have broken it (a terminated
/// backend is often noticed only by the next query), so the retry gets a healthy one.
fn discard_if_broken<T>(client: Object, result: &Result<T>) {
    if matches!(result, Err(e) if e.is_retryable()) {
        drop(Object::take(client));
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The advisory-lock key that serialises one user's holds while their limits are checked.
fn user_key(user: UserId) -> i64 {
    let b = user.0.as_bytes();
    i64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]) ^ 0x7061_7271_7573_6572
}

/// Events recorded by one write, as the columns the queueing statement takes.
#[derive(Default)]
struct Outbox {
    ids: Vec<Uuid>,
    kinds: Vec<&'static str>,
    spots: Vec<Uuid>,
    users: Vec<Uuid>,
    starts: Vec<SystemTime>,
    ends: Vec<SystemTime>,
    states: Vec<&'static str>,
    events: Vec<Event>,
}

impl Outbox {
    fn push(&mut self, r: &Reservation, kind: EventKind, at: Timestamp) -> Result<()> {
        self.ids.push(r.id.0);
        self.kinds.push(rows::kind_str(kind));
        self.spots.push(r.spot.0);
        self.users.push(r.user.0);
        self.starts.push(sys(r.window.start())?);
        self.ends.push(sys(r.window.end())?);
        self.states.push(r.state.as_str());
        self.events.push(Event::of(r, kind, 0, at));
        Ok(())
    }

    /// The parameters of [`crate::sql`]'s events tail.
    fn params<'a>(&'a self, lot: &'a Uuid, at: &'a SystemTime) -> [Param<'a>; 9] {
        [&self.ids, lot, at, &self.kinds, &self.spots, &self.users, &self.starts, &self.ends, &self.states]
    }

    /// The events and their queue positions, from the rows the statement returned.
    fn queued(self, lot: Uuid, rows: &[Row]) -> Result<Queued> {
        if rows.len() != self.events.len() {
            return Err(PgError::malformed("outbox", "an event was not queued").into());
        }
        let positions = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>().map_err(PgError::Db)?;
        Ok(Queued { lot, positions, events: self.events })
    }
}

/// Events a committed write queued, to be numbered.
struct Queued {
    lot: Uuid,
    positions: Vec<i64>,
    events: Vec<Event>,
}

/// The notification statement: one `pg_notify` per payload, in order.
const ANNOUNCE: &str =
    "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS a(p, o) ORDER BY o";

impl PgStore {
    /// Numbers the queued events of `lot` (see `migrations/0004_event_relay.sql`) and announces
    /// those this call numbered: every event gets its number from exactly one call, which
    /// announces it. Returns the numbers of the queue positions `mine`.
    async fn number_lot(&self, client: &Object, lot: Uuid, mine: &[i64]) -> Result<Vec<(i64, u64)>> {
        let rows = query(client, &self.sql().number, &[&lot, &mine]).await?;
        let mut fresh = Vec::new();
        let mut numbers = Vec::with_capacity(mine.len());
        for row in &rows {
            let n: i64 = row.try_get(10).map_err(PgError::Db)?;
            let event = rows::event(row)?;
            if mine.contains(&n) {
                numbers.push((n, event.seq));
            }
            if row.try_get::<_, bool>(11).map_err(PgError::Db)? {
                fresh.push(crate::notifier::payload(&event)?);
            }
        }
        if !fresh.is_empty() {
            self.announce(client, &fresh).await?;
        }
        Ok(numbers)
    }

    /// Sends notifications for numbered events in a transaction of their own that does not
    /// wait for its WAL flush: the events are already durable, a lost notification is a gap
    /// that subscribers fill from the outbox, and the database-wide lock a notifying commit
    /// takes is then held for microseconds, not through a flush.
    async fn announce(&self, client: &Object, payloads: &[String]) -> Result<()> {
        let st = client.prepare_cached(ANNOUNCE).await.map_err(db)?;
        // Sent together (one round trip); an error aborts the transaction, which COMMIT ends.
        let params: [Param<'_>; 2] = [&self.inner.channel, &payloads];
        let (begin, notify, commit) = futures_util::join!(
            client.batch_execute("BEGIN; SET LOCAL synchronous_commit TO off"),
            client.query(&st, &params),
            client.batch_execute("COMMIT"),
        );
        begin.map_err(db)?;
        notify.map_err(db)?;
        commit.map_err(db)
    }

    /// After a write's commit: numbers its events and announces them. The write is durable
    /// whatever happens here, so a failure is not the caller's error: its events stay queued
    /// and the relay ([`relay`](Self::relay)) numbers and announces them; the caller then gets
    /// no events to publish, and subscribers find them in the outbox.
    async fn finish(&self, client: Object, reservation: Reservation, queued: Option<Queued>) -> Written {
        let Some(q) = queued else {
            return Written { reservation, events: Vec::new(), replayed: true };
        };
        let result = self.number_lot(&client, q.lot, &q.positions).await;
        discard_if_broken(client, &result);
        let events = match result {
            Ok(numbers) if numbers.len() == q.positions.len() => {
                let mut events = q.events;
                for (e, n) in events.iter_mut().zip(&q.positions) {
                    if let Some((_, seq)) = numbers.iter().find(|(m, _)| m == n) {
                        e.seq = *seq;
                    }
                }
                events
            }
            Ok(_) => {
                tracing::warn!(lot = %q.lot, "queued events were not numbered; the relay numbers them");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(error = %e, lot = %q.lot, "numbering events failed; the relay numbers them");
                Vec::new()
            }
        };
        Written { reservation, events, replayed: false }
    }

    /// The relay: numbers and announces the events that writers queued but did not number
    /// (a writer that stopped between its commit and the numbering, or a numbering that
    /// failed), lot by lot, under the lot's advisory lock, so every replica may run it. A pass
    /// takes the events that were already queued at the previous pass, so writers number their
    /// own; run it every second or so. Events it numbers are also published through `notifier`
    /// when one is given. Returns how many events it numbered.
    pub async fn relay(&self, notifier: Option<&parq_core::DynNotifier>) -> Result<usize> {
        let client = self.client().await?;
        let seen = self.inner.relay_seen.load(std::sync::atomic::Ordering::Relaxed);
        let lots = query(&client, &self.sql().pending_lots, &[&seen]).await;
        let last = query_opt(&client, &self.sql().last_queued, &[]).await;
        let lots: Vec<Uuid> =
            lots?.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>().map_err(PgError::Db)?;
        if let Some(row) = last? {
            let last: i64 = row.try_get(0).map_err(PgError::Db)?;
            self.inner.relay_seen.store(last, std::sync::atomic::Ordering::Relaxed);
        }
        let mut done = 0;
        for lot in lots {
            let rows = query(&client, &self.sql().number, &[&lot, &Vec::<i64>::new()]).await?;
            let events: Vec<Event> = rows.iter().map(rows::event).collect::<Result<_, _>>()?;
            if events.is_empty() {
                continue;
            }
            let payloads = events.iter().map(crate::notifier::payload).collect::<Result<Vec<_>>>()?;
            self.announce(&client, &payloads).await?;
            if let Some(n) = notifier {
                if let Err(e) = n.publish(&events).await {
                    tracing::warn!(error = %e, "could not publish relayed events");
                }
            }
            done += events.len();
        }
        Ok(done)
    }
}

impl PgStore {
    /// Claims an idempotency key in the transaction: `None` when it is new (the claim commits
    /// with the change, or vanishes with it), `Some(id)` for a repeated request.
    async fn claim(&self, tx: &Object, claim: &IdempotencyClaim, id: Uuid) -> Result<Option<Uuid>> {
        let fp: &[u8] = &claim.fingerprint;
        // A concurrent request with the same key waits here until the first one ends.
        if query_opt(tx, &self.sql().claim, &[&claim.scope, &claim.key, &fp, &id]).await?.is_some() {
            return Ok(None);
        }
        self.claimed(tx, claim).await.map(Some)
    }

    /// The reservation of a key claimed before, or `IdempotencyMismatch` when the request
    /// differs.
    async fn claimed(&self, tx: &Object, claim: &IdempotencyClaim) -> Result<Uuid> {
        let fp: &[u8] = &claim.fingerprint;
        let row = query_opt(tx, &self.sql().claimed, &[&claim.scope, &claim.key])
            .await?
            .ok_or_else(|| Error::unavailable("an idempotency record vanished; retry", None))?;
        let stored: &[u8] = row.try_get(0).map_err(PgError::Db)?;
        if stored != fp {
            return Err(Error::IdempotencyMismatch { key: claim.key.clone() });
        }
        Ok(row.try_get(1).map_err(PgError::Db)?)
    }

    async fn replay(&self, c: &impl GenericClient, id: Uuid) -> Result<Reservation> {
        let row = query_opt(c, &self.sql().reservation, &[&id])
            .await?
            .ok_or_else(|| Error::not_found(format!("reservation {id}")))?;
        Ok(rows::reservation(&row)?)
    }

    /// With the spot locked, the reservations blocking `window` at `now` (other than
    /// `except`): `None` when a live one blocks, else the lapsed holds to retire.
    async fn check_free(
        &self,
        tx: &Object,
        spot: Uuid,
        window: (SystemTime, SystemTime),
        now: SystemTime,
        except: Uuid,
    ) -> Result<Option<Vec<Uuid>>> {
        let rows = query(tx, &self.sql().overlapping, &[&spot, &window.0, &window.1, &now, &except]).await?;
        free_of(&rows)
    }

    /// Marks lapsed holds expired, recording their events.
    async fn retire(&self, tx: &Object, lapsed: &[Uuid], now: Timestamp, out: &mut Outbox) -> Result<()> {
        if lapsed.is_empty() {
            return Ok(());
        }
        for row in query(tx, &self.sql().retire, &[&lapsed, &sys(now)?]).await? {
            out.push(&rows::reservation(&row)?, EventKind::Expired, now)?;
        }
        Ok(())
    }

    /// Picks the first free candidate of a pooled hold and locks it: `(spot, last fence,
    /// lapsed holds)`. Spots locked by other holds are passed over first (`SKIP LOCKED`), and
    /// waited for only when no unlocked candidate is free, so a pooled hold never reports a
    /// full lot because of a spot that another transaction merely touched.
    async fn pick(
        &self,
        tx: &Object,
        lot: LotId,
        candidates: &[SpotId],
        window: (SystemTime, SystemTime),
        now: SystemTime,
    ) -> Result<(SpotId, i64, Vec<Uuid>)> {
        let ids: Vec<Uuid> = candidates.iter().map(|s| s.0).collect();
        // An unknown candidate is an error only when no earlier one is free.
        let known: Vec<Uuid> = query(tx, &self.sql().known_spots, &[&lot.0, &ids])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(PgError::Db)?;
        let first_unknown = ids.iter().position(|id| !known.contains(id));
        let ids = &ids[..first_unknown.unwrap_or(ids.len())];
        let none_free = || match first_unknown {
            Some(i) => Error::not_found(format!("spot {} in lot {lot}", candidates[i])),
            None => Error::Conflict { reason: ConflictReason::NoFreeSpot },
        };
        let mut tried: Vec<Uuid> = Vec::new();
        while tried.len() < ids.len() {
            tx.batch_execute("SAVEPOINT parq_pick").await.map_err(db)?;
            let params: [Param<'_>; 5] = [&ids, &window.0, &window.1, &now, &tried];
            let (spot, last) = match query_opt(tx, &self.sql().pick_free, &params).await? {
                Some(row) => {
                    let spot: Uuid = row.try_get(0).map_err(PgError::Db)?;
                    (spot, row.try_get::<_, i64>(1).map_err(PgError::Db)?)
                }
                None => {
                    // Every unlocked candidate is taken: wait for the locked ones, in order.
                    let Some(row) = query_opt(tx, &self.sql().free_now, &params).await? else {
                        return Err(none_free());
                    };
                    let spot: Uuid = row.try_get(0).map_err(PgError::Db)?;
                    let row = query_opt(tx, &self.sql().lock_spot, &[&spot, &lot.0])
                        .await?
                        .ok_or_else(|| Error::not_found(format!("spot {spot} in lot {lot}")))?;
                    (spot, row.try_get::<_, i64>(0).map_err(PgError::Db)?)
                }
            };
            // The pick read a snapshot taken before its lock; decide on a fresh read.
            if let Some(lapsed) = self.check_free(tx, spot, window, now, Uuid::nil()).await? {
                return Ok((SpotId(spot), last, lapsed));
            }
            tried.push(spot);
            tx.batch_execute("ROLLBACK TO SAVEPOINT parq_pick").await.map_err(db)?;
        }
        Err(none_free())
    }

    async fn hold_on(
        &self,
        tx: &Object,
        req: HoldRequest,
        now: Timestamp,
    ) -> Result<(Reservation, Option<Queued>)> {
        let HoldRequest { reservation: r, target, limits, lock_fence, idempotency } = req;
        if r.state != ReservationState::Held {
            return Err(Error::invalid("state", "a hold is inserted in state held"));
        }
        let window = check_window(&r.window)?;
        let now = micros(now);
        let now_s = sys(now)?;
        let lock_fence = lock_fence.map(fence_i64).transpose()?;
        let payment = r.payment.as_deref().map(rows::to_doc).transpose()?;

        let sql = self.sql();
        let (st_claim, st_owner, st_user, st_count, st_lock, st_overlap) = (
            tx.prepare_cached(&sql.claim).await.map_err(db)?,
            tx.prepare_cached(&sql.lot_owner).await.map_err(db)?,
            tx.prepare_cached(&sql.lock_user).await.map_err(db)?,
            tx.prepare_cached(&sql.count_holds).await.map_err(db)?,
            tx.prepare_cached(&sql.lock_spot).await.map_err(db)?,
            tx.prepare_cached(&sql.overlapping).await.map_err(db)?,
        );
        // Everything up to the decision is sent at once (one round trip); the server runs the
        // statements in order, so the overlap check reads a snapshot taken after the spot's
        // row lock was granted. Results are judged in the order the checks are defined.
        let named = match &target {
            HoldTarget::Spot(spot) => Some(spot.0),
            HoldTarget::AnyOf(_) => None,
        };
        let ukey = user_key(r.user);
        let nil = Uuid::nil();
        let fingerprint: Option<&[u8]> = idempotency.as_ref().map(|c| &c.fingerprint[..]);
        let p_claim: Option<[Param<'_>; 4]> = idempotency
            .as_ref()
            .zip(fingerprint.as_ref())
            .map(|(c, fp)| [&c.scope as Param<'_>, &c.key, fp, &r.id.0]);
        let p_owner: [Param<'_>; 1] = [&r.lot.0];
        let p_user: [Param<'_>; 1] = [&ukey];
        let p_count: [Param<'_>; 4] = [&r.user.0, &r.lot.0, &r.operator.0, &now_s];
        let p_lock: Option<[Param<'_>; 2]> = named.as_ref().map(|s| [s as Param<'_>, &r.lot.0]);
        let p_overlap: Option<[Param<'_>; 5]> =
            named.as_ref().map(|s| [s as Param<'_>, &window.0, &window.1, &now_s, &nil]);
        let (begin, claimed, owner, user_lock, counts, spot_row, overlaps) = futures_util::join!(
            tx.batch_execute("BEGIN"),
            OptionFuture::from(p_claim.as_ref().map(|p| tx.query_opt(&st_claim, p))),
            tx.query_opt(&st_owner, &p_owner),
            OptionFuture::from(limits.any().then(|| tx.query(&st_user, &p_user))),
            OptionFuture::from(limits.any().then(|| tx.query_opt(&st_count, &p_count))),
            OptionFuture::from(p_lock.as_ref().map(|p| tx.query_opt(&st_lock, p))),
            OptionFuture::from(p_overlap.as_ref().map(|p| tx.query(&st_overlap, p))),
        );
        begin.map_err(db)?;
        if let Some(claim) = &idempotency {
            // A concurrent request with the same key waited in the claim until the first ended.
            if claimed.transpose().map_err(db)?.flatten().is_none() {
                let id = self.claimed(tx, claim).await?;
                let replayed = self.replay(tx, id).await?;
                tx.batch_execute("ROLLBACK").await.map_err(db)?;
                return Ok((replayed, None));
            }
        }
        let owner: Uuid = owner
            .map_err(db)?
            .ok_or_else(|| Error::not_found(format!("lot {}", r.lot)))?
            .try_get(0)
            .map_err(PgError::Db)?;
        if limits.any() {
            // One user's holds take turns here, so two cannot both pass the count.
            user_lock.transpose().map_err(db)?;
            let row = counts
                .transpose()
                .map_err(db)?
                .flatten()
                .ok_or_else(|| PgError::malformed("hold count", "no row"))?;
            let in_lot: i64 = row.try_get(0).map_err(PgError::Db)?;
            let in_op: i64 = row.try_get(1).map_err(PgError::Db)?;
            if limits.per_lot.is_some_and(|l| in_lot >= i64::from(l)) {
                return Err(Error::LimitExceeded {
                    limit: format!("{in_lot} live holds per driver in this lot"),
                });
            }
            if limits.per_operator.is_some_and(|l| in_op >= i64::from(l)) {
                return Err(Error::LimitExceeded { limit: format!("{in_op} live holds per driver") });
            }
        }
        if owner != r.operator.0 {
            return Err(Error::invalid("operator", "the lot belongs to another operator"));
        }

        let (spot, last_fence, lapsed) = match &target {
            HoldTarget::Spot(spot) => {
                // The spot's row lock serialises its holds (and its fence counter) before the
                // exclusion constraint is involved, so contending holds queue instead of
                // deadlocking inside the constraint.
                let last: i64 = spot_row
                    .transpose()
                    .map_err(db)?
                    .flatten()
                    .ok_or_else(|| Error::not_found(format!("spot {spot} in lot {}", r.lot)))?
                    .try_get(0)
                    .map_err(PgError::Db)?;
                let rows = overlaps.transpose().map_err(db)?.unwrap_or_default();
                match free_of(&rows)? {
                    Some(lapsed) => (*spot, last, lapsed),
                    None => return Err(Error::spot_taken(*spot)),
                }
            }
            HoldTarget::AnyOf(candidates) => self.pick(tx, r.lot, candidates, window, now_s).await?,
        };

        let mut out = Outbox::default();
        self.retire(tx, &lapsed, now, &mut out).await?;
        let fence = (last_fence + 1).max(lock_fence.unwrap_or(0));
        let stored = Reservation {
            spot,
            fence: fence as u64,
            state: ReservationState::Held,
            hold_expires_at: micros(r.hold_expires_at),
            created_at: micros(r.created_at),
            ..r
        };
        out.push(&stored, EventKind::Held, now)?;
        let (deadline, created) = (sys(stored.hold_expires_at)?, sys(stored.created_at)?);
        let currency = stored.price.currency.as_str();
        let head: [Param<'_>; 13] = [
            &stored.id.0,
            &stored.operator.0,
            &stored.lot.0,
            &stored.spot.0,
            &stored.user.0,
            &window.0,
            &window.1,
            &fence,
            &stored.price.minor,
            &currency,
            &deadline,
            &created,
            &payment,
        ];
        let tail = out.params(&stored.lot.0, &now_s);
        let params: Vec<Param<'_>> = head.into_iter().chain(tail).collect();
        let conflict = |e: PgError| match &target {
            HoldTarget::Spot(spot) => e.into_core(Some(*spot)),
            HoldTarget::AnyOf(_) => e.into_core(None),
        };
        let rows = commit_with(tx, &sql.insert_hold, &params).await.map_err(conflict)?;
        let queued = out.queued(stored.lot.0, &rows)?;
        Ok((stored, Some(queued)))
    }

    async fn update_on(
        &self,
        tx: &Object,
        u: Update,
        now: Timestamp,
    ) -> Result<(Reservation, Option<Queued>)> {
        let now = micros(now);
        let now_s = sys(now)?;
        if let Some(w) = &u.window {
            check_window(w)?;
        }
        tx.batch_execute("BEGIN").await.map_err(db)?;
        if let Some(claim) = &u.idempotency {
            if let Some(id) = self.claim(tx, claim, u.id.0).await? {
                let replayed = self.replay(tx, id).await?;
                tx.batch_execute("ROLLBACK").await.map_err(db)?;
                return Ok((replayed, None));
            }
        }
        // Every writer of a reservation holds its spot's row lock, so what is read next is
        // current until commit.
        // Both in one round trip: the read runs after the lock is granted.
        let (st_lock, st_read) = (
            tx.prepare_cached(&self.sql().lock_spot_of).await.map_err(db)?,
            tx.prepare_cached(&self.sql().reservation).await.map_err(db)?,
        );
        let p_id: [Param<'_>; 1] = [&u.id.0];
        let (spot_row, row) =
            futures_util::join!(tx.query_opt(&st_lock, &p_id), tx.query_opt(&st_read, &p_id));
        let spot_row =
            spot_row.map_err(db)?.ok_or_else(|| Error::not_found(format!("reservation {}", u.id)))?;
        let last_fence: i64 = spot_row.try_get(1).map_err(PgError::Db)?;
        let row = row.map_err(db)?.ok_or_else(|| Error::not_found(format!("reservation {}", u.id)))?;
        let cur = rows::reservation(&row)?;
        // The row is current until commit (its spot is locked): the core decides.
        let effective = u.check(cur.fence, cur.state, cur.hold_expires_at, now)?;
        let window = u.window.unwrap_or(cur.window);
        let moved = window != cur.window;
        let open_session: Option<i64> = match &u.session {
            Some(SessionChange::Exit { .. }) => {
                let open = query_opt(tx, &self.sql().open_session, &[&u.id.0])
                    .await?
                    .map(|r| r.try_get::<_, Option<i64>>(0))
                    .transpose()
                    .map_err(PgError::Db)?
                    .flatten();
                if open.is_none() {
                    return Err(Error::invalid("session", "no open gate session to close"));
                }
                open
            }
            _ => None,
        };
        let range = check_window(&window)?;
        let mut out = Outbox::default();
        if u.needs_free_window(effective, moved) {
            let lapsed = self
                .check_free(tx, cur.spot.0, range, now_s, u.id.0)
                .await?
                .ok_or_else(|| Error::spot_taken(cur.spot))?;
            self.retire(tx, &lapsed, now, &mut out).await?;
        }
        let fence = if u.bump_fence { last_fence + 1 } else { fence_i64(cur.fence)? };
        let mut next = cur;
        next.state = u.to;
        next.window = window;
        next.fence = fence as u64;
        if let Some(p) = u.price {
            next.price = p;
        }
        if let Some(p) = u.payment {
            next.payment = Some(Box::new(p));
        }
        if let Some(d) = u.hold_expires_at {
            next.hold_expires_at = micros(d);
        }
        match &u.session {
            Some(SessionChange::Enter(s)) => {
                let exited = s.exited_at.map(sys).transpose()?;
                execute(
                    tx,
                    &self.sql().enter,
                    &[
                        &u.id.0,
                        &s.id.0,
                        &s.reservation.0,
                        &sys(s.entered_at)?,
                        &s.entry_gate,
                        &exited,
                        &s.exit_gate,
                        &s.entry_scan,
                        &s.exit_scan,
                    ],
                )
                .await?;
            }
            Some(SessionChange::Exit { at, gate, scan }) => {
                execute(tx, &self.sql().exit, &[&open_session, &sys(*at)?, gate, scan]).await?;
            }
            None => {}
        }
        out.push(&next, u.event, now)?;
        let payment = next.payment.as_deref().map(rows::to_doc).transpose()?;
        let (state, currency) = (next.state.as_str(), next.price.currency.as_str());
        let deadline = sys(next.hold_expires_at)?;
        let head: [Param<'_>; 11] = [
            &next.id.0,
            &state,
            &range.0,
            &range.1,
            &fence,
            &next.price.minor,
            &currency,
            &deadline,
            &payment,
            &next.spot.0,
            &u.bump_fence,
        ];
        let tail = out.params(&next.lot.0, &now_s);
        let params: Vec<Param<'_>> = head.into_iter().chain(tail).collect();
        let spot = next.spot;
        let rows = if let Some(nr) = &u.revoke {
            let rows =
                query(tx, &self.sql().write_update, &params).await.map_err(|e| e.into_core(Some(spot)))?;
            // Last before the commit: the revocation counter stays locked as briefly as can be.
            crate::revocations::insert(tx, &self.inner.schema, next.id, nr, now).await?;
            tx.batch_execute("COMMIT").await.map_err(|e| PgError::Db(e).into_core(Some(spot)))?;
            rows
        } else {
            commit_with(tx, &self.sql().write_update, &params).await.map_err(|e| e.into_core(Some(spot)))?
        };
        let queued = out.queued(next.lot.0, &rows)?;
        Ok((next, Some(queued)))
    }

    async fn catalog_doc<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        id: Uuid,
        what: &'static str,
    ) -> Result<T> {
        let client = self.client().await?;
        let row =
            query_opt(&client, sql, &[&id]).await?.ok_or_else(|| Error::not_found(format!("{what} {id}")))?;
        Ok(rows::doc(&row, 0, what)?)
    }

    async fn lot_exists(&self, c: &impl GenericClient, lot: LotId) -> Result<()> {
        match query_opt(c, &self.sql().lot_exists, &[&lot.0]).await? {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!("lot {lot}"))),
        }
    }
}

#[async_trait]
impl ReservationStore for PgStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, true, true)
    }

    async fn put_operator(&self, operator: &Operator) -> Result<()> {
        let client = self.client().await?;
        execute(&client, &self.sql().put_operator, &[&operator.id.0, &rows::to_doc(operator)?]).await?;
        Ok(())
    }

    async fn operator(&self, id: OperatorId) -> Result<Operator> {
        self.catalog_doc(&self.sql().operator, id.0, "operator").await
    }

    async fn put_lot(&self, lot: &Lot) -> Result<()> {
        let client = self.client().await?;
        let doc = rows::to_doc(lot)?;
        let params: [Param<'_>; 5] = [&lot.id.0, &lot.operator.0, &lot.location.lat, &lot.location.lon, &doc];
        if execute(&client, &self.sql().insert_lot, &params).await? == 1
            || execute(&client, &self.sql().update_lot, &params).await? == 1
        {
            return Ok(());
        }
        if query_opt(&client, &self.sql().operator, &[&lot.operator.0]).await?.is_none() {
            return Err(Error::not_found(format!("operator {}", lot.operator)));
        }
        Err(Error::invalid("operator", "a lot cannot move to another operator"))
    }

    async fn lot(&self, id: LotId) -> Result<Lot> {
        self.catalog_doc(&self.sql().lot, id.0, "lot").await
    }

    async fn lots_in(&self, area: &GeoBox) -> Result<Vec<Lot>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &self.sql().lots_in,
            &[&area.min_lat, &area.max_lat, &area.min_lon, &area.max_lon],
        )
        .await?;
        Ok(rows.iter().map(|r| rows::doc(r, 0, "lot")).collect::<Result<_, _>>()?)
    }

    async fn put_spot(&self, spot: &Spot) -> Result<()> {
        let client = self.client().await?;
        self.lot_exists(&client, spot.lot).await?;
        let attributes = rows::to_doc(&spot.attributes)?;
        let n = execute(&client, &self.sql().put_spot, &[&spot.id.0, &spot.lot.0, &spot.label, &attributes])
            .await?;
        if n == 0 {
            return Err(Error::invalid("lot", "a spot cannot move to another lot"));
        }
        Ok(())
    }

    async fn spots(&self, lot: LotId) -> Result<Vec<Spot>> {
        let client = self.client().await?;
        let rows = query(&client, &self.sql().spots, &[&lot.0]).await?;
        if rows.is_empty() {
            self.lot_exists(&client, lot).await?;
        }
        rows.iter()
            .map(|r| {
                Ok(Spot {
                    id: SpotId(r.try_get(0).map_err(PgError::Db)?),
                    lot: LotId(r.try_get(1).map_err(PgError::Db)?),
                    label: r.try_get(2).map_err(PgError::Db)?,
                    attributes: rows::doc(r, 3, "spot attributes")?,
                })
            })
            .collect()
    }

    async fn hold(&self, req: HoldRequest, now: Timestamp) -> Result<Written> {
        let tx = InTx::new(self.client().await?);
        match self.hold_on(tx.client(), req, now).await {
            Ok((reservation, queued)) => Ok(self.finish(tx.done(), reservation, queued).await),
            Err(e) => {
                tx.abort(&e).await;
                Err(e)
            }
        }
    }

    async fn update(&self, u: Update, now: Timestamp) -> Result<Written> {
        let tx = InTx::new(self.client().await?);
        match self.update_on(tx.client(), u, now).await {
            Ok((reservation, queued)) => Ok(self.finish(tx.done(), reservation, queued).await),
            Err(e) => {
                tx.abort(&e).await;
                Err(e)
            }
        }
    }
    async fn get(&self, id: ReservationId) -> Result<Reservation> {
        let client = self.client().await?;
        let row = query_opt(&client, &self.sql().reservation, &[&id.0])
            .await?
            .ok_or_else(|| Error::not_found(format!("reservation {id}")))?;
        Ok(rows::reservation(&row)?)
    }

    async fn by_user(&self, user: UserId, n: usize) -> Result<Vec<Reservation>> {
        let client = self.client().await?;
        let rows = query(&client, &self.sql().by_user, &[&user.0, &limit(n)]).await?;
        Ok(rows.iter().map(rows::reservation).collect::<Result<_, _>>()?)
    }

    async fn live_in_lot(&self, lot: LotId, window: &Window, now: Timestamp) -> Result<Vec<Reservation>> {
        let (start, end) = (sys(window.start())?, sys(window.end())?);
        let client = self.client().await?;
        let rows = query(&client, &self.sql().live_in_lot, &[&lot.0, &start, &end, &sys(now)?]).await?;
        if rows.is_empty() {
            self.lot_exists(&client, lot).await?;
        }
        Ok(rows.iter().map(rows::reservation).collect::<Result<_, _>>()?)
    }

    async fn lapsed_holds(&self, now: Timestamp, n: usize) -> Result<Vec<Reservation>> {
        let client = self.client().await?;
        let rows = query(&client, &self.sql().lapsed, &[&sys(now)?, &limit(n)]).await?;
        Ok(rows.iter().map(rows::reservation).collect::<Result<_, _>>()?)
    }

    async fn unclaimed_before(&self, cutoff: Timestamp, n: usize) -> Result<Vec<Reservation>> {
        let client = self.client().await?;
        let rows = query(&client, &self.sql().unclaimed, &[&sys(cutoff)?, &limit(n)]).await?;
        Ok(rows.iter().map(rows::reservation).collect::<Result<_, _>>()?)
    }

    async fn events(&self, lot: LotId, after: u64, n: usize) -> Result<Vec<Event>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let rows = query(&client, &self.sql().events, &[&lot.0, &after, &limit(n)]).await?;
        if rows.is_empty() {
            self.lot_exists(&client, lot).await?;
        }
        Ok(rows.iter().map(rows::event).collect::<Result<_, _>>()?)
    }

    async fn last_seq(&self, lot: LotId) -> Result<u64> {
        let client = self.client().await?;
        match query_opt(&client, &self.sql().last_seq, &[&lot.0]).await? {
            Some(row) => Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)),
            None => Err(Error::not_found(format!("lot {lot}"))),
        }
    }

    async fn sessions(&self, id: ReservationId) -> Result<Vec<GateSession>> {
        let client = self.client().await?;
        let rows = query(&client, &self.sql().sessions, &[&id.0]).await?;
        if rows.is_empty() && query_opt(&client, &self.sql().reservation_exists, &[&id.0]).await?.is_none() {
            return Err(Error::not_found(format!("reservation {id}")));
        }
        Ok(rows.iter().map(rows::session).collect::<Result<_, _>>()?)
    }

    async fn revocations(&self, after: u64, limit: usize) -> Result<RevocationDelta> {
        let client = self.client().await?;
        crate::revocations::since(&client, &self.inner.schema, after, limit).await
    }

    async fn revocations_of(&self, reservation: ReservationId) -> Result<Vec<Revocation>> {
        let client = self.client().await?;
        crate::revocations::of(&client, &self.inner.schema, reservation).await
    }

    async fn record_scan(&self, record: &ScanRecord) -> Result<ScanRecord> {
        let client = self.client().await?;
        crate::revocations::record_scan(&client, &self.inner.schema, record).await
    }

    async fn scan_record(&self, lot: LotId, scan_id: &str) -> Result<Option<ScanRecord>> {
        let client = self.client().await?;
        crate::revocations::scan_record(&client, &self.inner.schema, lot, scan_id).await
    }
}
