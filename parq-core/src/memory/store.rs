//! `MemoryStore`: a complete, concurrent, in-process [`ReservationStore`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use async_trait::async_trait;
use jiff::Timestamp;

use crate::catalog::{GeoBox, Lot, Operator, Spot};
use crate::error::{ConflictReason, Error, Result};
use crate::ids::{IdMap, LotId, OperatorId, ReservationId, SpotId, UserId};
use crate::money::Money;
use crate::pass::{Revocation, RevocationDelta, ScanRecord};
use crate::ports::store::{
    Capabilities, HoldRequest, HoldTarget, IdempotencyClaim, ReservationStore, SessionChange, Update, Written,
};
use crate::reservation::{Event, EventKind, GateSession, PaymentRef, Reservation, ReservationState};
use crate::time::Window;

const ID_SHARDS: usize = 64;
const USER_SHARDS: usize = 32;
const IDEM_SHARDS: usize = 16;

/// How many events a lot keeps for resume by default.
pub const DEFAULT_EVENT_RETENTION: usize = 16_384;

/// A complete [`ReservationStore`] in process memory.
///
/// Each lot is its own shard behind its own mutex, so lots never contend; an index from
/// reservation id to its place is sharded by id. A spot's live reservations sit in an ordered
/// map by start, so a hold costs `O(log n)` whatever the spot's history. Instants are kept as
/// nanoseconds in an `i64` (the years 1678–2262; others are refused as invalid). Events are kept
/// per lot up to a retention (default [`DEFAULT_EVENT_RETENTION`]); older ones are dropped, which
/// [`Capabilities::full_event_log`] reports. Not durable: everything is lost with the process.
#[derive(Debug)]
pub struct MemoryStore {
    catalog: RwLock<Catalog>,
    shards: RwLock<Vec<Arc<Mutex<LotShard>>>>,
    ids: Shards<BTreeMap<ReservationId, Loc>>,
    users: Shards<IdMap<UserId, Vec<Tracked>>>,
    idem: Shards<IdemMap>,
    retention: usize,
    hasher: std::collections::hash_map::RandomState,
    revocations: Mutex<Revocations>,
    scans: Mutex<HashMap<(LotId, String), ScanRecord>>,
}

/// Every revocation (version `i + 1` at index `i`), and each reservation's by index.
#[derive(Debug, Default)]
struct Revocations {
    all: Vec<Revocation>,
    by_reservation: HashMap<ReservationId, Vec<usize>>,
}

/// Independently locked parts of one map, picked by the hash of the key.
type Shards<T> = Box<[Mutex<T>]>;
/// `(scope, key) → record`.
type IdemMap = HashMap<(String, String), IdemRecord>;

#[derive(Debug, Default)]
struct Catalog {
    operators: IdMap<OperatorId, Operator>,
    lots: IdMap<LotId, (Lot, u32)>,
    spots: IdMap<SpotId, Spot>,
}

#[derive(Debug, Clone, Copy)]
struct Loc {
    shard: u32,
    slot: u32,
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    loc: Loc,
    lot: LotId,
    operator: OperatorId,
}

#[derive(Debug, Clone)]
struct IdemRecord {
    fingerprint: [u8; 32],
    reservation: ReservationId,
}

/// A stored reservation without what its shard already knows (lot, operator), with instants as
/// nanoseconds: small, because a store may hold millions.
#[derive(Debug)]
struct Rec {
    id: ReservationId,
    spot: SpotId,
    user: UserId,
    start: i64,
    end: i64,
    deadline: i64,
    created: i64,
    price: Money,
    fence: u64,
    payment: Option<Box<PaymentRef>>,
    state: ReservationState,
}

impl Rec {
    fn lapsed(&self, now: i64) -> bool {
        self.state.is_hold() && self.deadline <= now
    }
    fn live(&self, now: i64) -> bool {
        self.state.is_live() && !self.lapsed(now)
    }
}

/// Records in fixed-size chunks: growing never copies them and wastes at most one chunk,
/// where a doubling `Vec` may leave half its capacity unused.
#[derive(Debug, Default)]
struct Slab {
    chunks: Vec<Vec<Rec>>,
    len: usize,
}

const CHUNK: usize = 4096;

impl Slab {
    fn len(&self) -> usize {
        self.len
    }
    fn push(&mut self, r: Rec) {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk was just ensured").push(r);
        self.len += 1;
    }
    fn iter(&self) -> impl Iterator<Item = &Rec> {
        self.chunks.iter().flatten()
    }
}

impl std::ops::Index<usize> for Slab {
    type Output = Rec;
    fn index(&self, i: usize) -> &Rec {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl std::ops::IndexMut<usize> for Slab {
    fn index_mut(&mut self, i: usize) -> &mut Rec {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[derive(Debug, Default)]
struct SpotIndex {
    fence: u64,
    /// Reservations of the spot whose stored state is live, by start. They never overlap.
    live: BTreeMap<i64, u32>,
}

#[derive(Debug)]
struct LotShard {
    lot: LotId,
    operator: OperatorId,
    recs: Slab,
    spots: IdMap<SpotId, SpotIndex>,
    deadlines: BinaryHeap<Reverse<(i64, u32)>>,
    events: VecDeque<Event>,
    next_seq: u64,
    sessions: HashMap<u32, Vec<GateSession>>,
}

fn nanos(t: Timestamp) -> Result<i64> {
    i64::try_from(t.as_nanosecond())
        .map_err(|_| Error::invalid("window", format!("{t} is outside the years 1678-2262")))
}

fn stamp(n: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(n)).expect("i64 nanoseconds are always in range")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl LotShard {
    fn to_reservation(&self, r: &Rec) -> Reservation {
        Reservation {
            id: r.id,
            operator: self.operator,
            lot: self.lot,
            spot: r.spot,
            user: r.user,
            window: Window::new(stamp(r.start), stamp(r.end)).expect("stored windows are valid"),
            state: r.state,
            fence: r.fence,
            price: r.price,
            hold_expires_at: stamp(r.deadline),
            created_at: stamp(r.created),
            payment: r.payment.clone(),
        }
    }

    fn push_event(&mut self, slot: u32, kind: EventKind, at: Timestamp, retention: usize) -> Event {
        let r = self.to_reservation(&self.recs[slot as usize]);
        self.record(&r, kind, at, retention)
    }

    /// Records an event of `r` (as it is after the change).
    fn record(&mut self, r: &Reservation, kind: EventKind, at: Timestamp, retention: usize) -> Event {
        let seq = self.next_seq;
        self.next_seq += 1;
        let ev = Event::of(r, kind, seq, at);
        if self.events.len() >= retention.max(1) {
            self.events.pop_front();
        }
        self.events.push_back(ev.clone());
        ev
    }

    /// The slots on `spot` that overlap `[start, end)`, other than `except`: `Err(slot)` with a
    /// live one that blocks, else `Ok` with the lapsed holds to retire.
    fn overlapping(
        &self,
        spot: &SpotIndex,
        start: i64,
        end: i64,
        now: i64,
        except: Option<u32>,
    ) -> Result<Vec<u32>, u32> {
        let mut lapsed = Vec::new();
        for (_, &slot) in spot.live.range(..end).rev() {
            let r = &self.recs[slot as usize];
            if r.end <= start {
                break;
            }
            if Some(slot) == except {
                continue;
            }
            if r.live(now) {
                return Err(slot);
            }
            lapsed.push(slot);
        }
        Ok(lapsed)
    }

    fn retire(&mut self, slots: &[u32], at: Timestamp, retention: usize, events: &mut Vec<Event>) {
        for &slot in slots {
            let r = &mut self.recs[slot as usize];
            r.state = ReservationState::Expired;
            let (spot, start) = (r.spot, r.start);
            if let Some(idx) = self.spots.get_mut(&spot) {
                idx.live.remove(&start);
            }
            events.push(self.push_event(slot, EventKind::Expired, at, retention));
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with the default event retention.
    pub fn new() -> Self {
        Self::with_event_retention(DEFAULT_EVENT_RETENTION)
    }

    /// An empty store keeping at most `retention` events per lot.
    pub fn with_event_retention(retention: usize) -> Self {
        fn shards<T: Default>(n: usize) -> Box<[Mutex<T>]> {
            (0..n).map(|_| Mutex::new(T::default())).collect()
        }
        Self {
            catalog: RwLock::default(),
            shards: RwLock::default(),
            ids: shards(ID_SHARDS),
            users: shards(USER_SHARDS),
            idem: shards(IDEM_SHARDS),
            retention: retention.max(1),
            hasher: Default::default(),
            revocations: Mutex::default(),
            scans: Mutex::default(),
        }
    }

    /// The shard of a caller-chosen key (SipHash with a random key: not predictable).
    fn pick<'a, T>(&self, shards: &'a [Mutex<T>], key: impl Hash) -> &'a Mutex<T> {
        &shards[(self.hasher.hash_one(key) as usize) % shards.len()]
    }

    /// The shard of an id.
    fn pick_id<T>(shards: &[Mutex<T>], id: impl Hash) -> &Mutex<T> {
        &shards[(crate::ids::IdHash::default().hash_one(id) as usize) % shards.len()]
    }

    fn shard(&self, i: u32) -> Arc<Mutex<LotShard>> {
        self.shards.read().unwrap_or_else(std::sync::PoisonError::into_inner)[i as usize].clone()
    }

    fn lot_shard(&self, lot: LotId) -> Result<(u32, Arc<Mutex<LotShard>>)> {
        let i = self
            .catalog
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lots
            .get(&lot)
            .map(|(_, i)| *i)
            .ok_or_else(|| Error::not_found(format!("lot {lot}")))?;
        Ok((i, self.shard(i)))
    }

    fn loc(&self, id: ReservationId) -> Result<Loc> {
        lock(Self::pick_id(&self.ids, id))
            .get(&id)
            .copied()
            .ok_or_else(|| Error::not_found(format!("reservation {id}")))
    }

    fn read(&self, loc: Loc) -> Reservation {
        let shard = self.shard(loc.shard);
        let s = lock(&shard);
        s.to_reservation(&s.recs[loc.slot as usize])
    }

    /// Counts the user's live holds in `lot` and across `operator`, forgetting ones that ended.
    fn count_holds(
        &self,
        tracked: &mut Vec<Tracked>,
        lot: LotId,
        operator: OperatorId,
        now: i64,
    ) -> (u32, u32) {
        let (mut in_lot, mut in_op) = (0, 0);
        tracked.retain(|t| {
            let shard = self.shard(t.loc.shard);
            let s = lock(&shard);
            let r = &s.recs[t.loc.slot as usize];
            let live = r.state.is_hold() && r.deadline > now;
            if live {
                in_lot += u32::from(t.lot == lot);
                in_op += u32::from(t.operator == operator);
            }
            live
        });
        (in_lot, in_op)
    }

    /// Checks an idempotency claim under its shard lock: `Some` with the reservation to replay.
    fn check_idem(map: &IdemMap, claim: &IdempotencyClaim) -> Result<Option<ReservationId>> {
        match map.get(&(claim.scope.clone(), claim.key.clone())) {
            Some(rec) if rec.fingerprint == claim.fingerprint => Ok(Some(rec.reservation)),
            Some(_) => Err(Error::IdempotencyMismatch { key: claim.key.clone() }),
            None => Ok(None),
        }
    }

    fn replay(&self, id: ReservationId) -> Result<Written> {
        Ok(Written { reservation: self.read(self.loc(id)?), events: Vec::new(), replayed: true })
    }
}

#[async_trait]
impl ReservationStore for MemoryStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(false, false, false)
    }

    async fn put_operator(&self, operator: &Operator) -> Result<()> {
        let mut c = self.catalog.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.operators.insert(operator.id, operator.clone());
        Ok(())
    }

    async fn operator(&self, id: OperatorId) -> Result<Operator> {
        let c = self.catalog.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.operators.get(&id).cloned().ok_or_else(|| Error::not_found(format!("operator {id}")))
    }

    async fn put_lot(&self, lot: &Lot) -> Result<()> {
        let mut c = self.catalog.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !c.operators.contains_key(&lot.operator) {
            return Err(Error::not_found(format!("operator {}", lot.operator)));
        }
        if let Some((existing, i)) = c.lots.get_mut(&lot.id) {
            if existing.operator != lot.operator {
                return Err(Error::invalid("operator", "a lot cannot move to another operator"));
            }
            *existing = lot.clone();
            let _ = i;
            return Ok(());
        }
        let mut shards = self.shards.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = u32::try_from(shards.len()).map_err(|_| Error::LimitExceeded { limit: "lots".into() })?;
        shards.push(Arc::new(Mutex::new(LotShard {
            lot: lot.id,
            operator: lot.operator,
            recs: Slab::default(),
            spots: IdMap::default(),
            deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
            next_seq: 1,
            sessions: HashMap::new(),
        })));
        c.lots.insert(lot.id, (lot.clone(), i));
        Ok(())
    }

    async fn lot(&self, id: LotId) -> Result<Lot> {
        let c = self.catalog.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.lots.get(&id).map(|(l, _)| l.clone()).ok_or_else(|| Error::not_found(format!("lot {id}")))
    }

    async fn lots_in(&self, area: &GeoBox) -> Result<Vec<Lot>> {
        let c = self.catalog.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut lots: Vec<Lot> =
            c.lots.values().filter(|(l, _)| area.contains(&l.location)).map(|(l, _)| l.clone()).collect();
        lots.sort_by_key(|l| l.id);
        Ok(lots)
    }

    async fn put_spot(&self, spot: &Spot) -> Result<()> {
        let mut c = self.catalog.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = c
            .lots
            .get(&spot.lot)
            .map(|(_, i)| *i)
            .ok_or_else(|| Error::not_found(format!("lot {}", spot.lot)))?;
        if let Some(old) = c.spots.get(&spot.id) {
            if old.lot != spot.lot {
                return Err(Error::invalid("lot", "a spot cannot move to another lot"));
            }
        }
        c.spots.insert(spot.id, spot.clone());
        lock(&self.shard(i)).spots.entry(spot.id).or_default();
        Ok(())
    }

    async fn spots(&self, lot: LotId) -> Result<Vec<Spot>> {
        let c = self.catalog.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !c.lots.contains_key(&lot) {
            return Err(Error::not_found(format!("lot {lot}")));
        }
        let mut spots: Vec<Spot> = c.spots.values().filter(|s| s.lot == lot).cloned().collect();
        spots.sort_by(|a, b| a.label.cmp(&b.label).then(a.id.cmp(&b.id)));
        Ok(spots)
    }

    async fn hold(&self, req: HoldRequest, now: Timestamp) -> Result<Written> {
        let r = &req.reservation;
        if r.state != ReservationState::Held {
            return Err(Error::invalid("state", "a hold is inserted in state held"));
        }
        let (start, end, deadline, created, now_n) = (
            nanos(r.window.start())?,
            nanos(r.window.end())?,
            nanos(r.hold_expires_at)?,
            nanos(r.created_at)?,
            nanos(now)?,
        );

        // Lock order everywhere: idempotency shard, user shard, lot shard, id shard.
        let mut idem = req.idempotency.as_ref().map(|c| lock(self.pick(&self.idem, (&c.scope, &c.key))));
        if let (Some(map), Some(claim)) = (idem.as_deref(), &req.idempotency) {
            if let Some(id) = Self::check_idem(map, claim)? {
                return self.replay(id);
            }
        }
        let (shard_i, shard) = self.lot_shard(r.lot)?;
        let mut users = req.limits.any().then(|| lock(Self::pick_id(&self.users, r.user)));
        if let Some(map) = users.as_deref_mut() {
            let tracked = map.entry(r.user).or_default();
            let (in_lot, in_op) = self.count_holds(tracked, r.lot, r.operator, now_n);
            if req.limits.per_lot.is_some_and(|l| in_lot >= l) {
                return Err(Error::LimitExceeded {
                    limit: format!("{} live holds per driver in this lot", in_lot),
                });
            }
            if req.limits.per_operator.is_some_and(|l| in_op >= l) {
                return Err(Error::LimitExceeded { limit: format!("{} live holds per driver", in_op) });
            }
        }

        let mut s = lock(&shard);
        if s.operator != r.operator {
            return Err(Error::invalid("operator", "the lot belongs to another operator"));
        }
        let candidates = match &req.target {
            HoldTarget::Spot(spot) => std::slice::from_ref(spot),
            HoldTarget::AnyOf(spots) => spots.as_slice(),
        };
        let mut chosen = None;
        for spot in candidates {
            let idx =
                s.spots.get(spot).ok_or_else(|| Error::not_found(format!("spot {spot} in lot {}", r.lot)))?;
            if let Ok(lapsed) = s.overlapping(idx, start, end, now_n, None) {
                chosen = Some((*spot, lapsed));
                break;
            }
        }
        let Some((spot, lapsed)) = chosen else {
            return Err(match &req.target {
                HoldTarget::Spot(spot) => Error::spot_taken(*spot),
                HoldTarget::AnyOf(_) => Error::Conflict { reason: ConflictReason::NoFreeSpot },
            });
        };
        let mut events = Vec::with_capacity(1 + lapsed.len());
        let retention = self.retention;
        s.retire(&lapsed, now, retention, &mut events);

        let slot = u32::try_from(s.recs.len())
            .map_err(|_| Error::LimitExceeded { limit: "reservations per lot".into() })?;
        let idx = s.spots.get_mut(&spot).expect("checked above");
        let fence = (idx.fence + 1).max(req.lock_fence.unwrap_or(0));
        idx.fence = fence;
        idx.live.insert(start, slot);
        s.recs.push(Rec {
            id: r.id,
            spot,
            user: r.user,
            start,
            end,
            deadline,
            created,
            price: r.price,
            fence,
            payment: r.payment.clone(),
            state: ReservationState::Held,
        });
        s.deadlines.push(Reverse((deadline, slot)));
        let reservation = s.to_reservation(&s.recs[slot as usize]);
        events.push(s.record(&reservation, EventKind::Held, now, retention));
        let loc = Loc { shard: shard_i, slot };
        lock(Self::pick_id(&self.ids, r.id)).insert(r.id, loc);
        drop(s);

        if let Some(map) = users.as_deref_mut() {
            map.entry(r.user).or_default().push(Tracked { loc, lot: r.lot, operator: r.operator });
        }
        if let (Some(map), Some(claim)) = (idem.as_deref_mut(), req.idempotency) {
            map.insert(
                (claim.scope, claim.key),
                IdemRecord { fingerprint: claim.fingerprint, reservation: r.id },
            );
        }
        Ok(Written { reservation, events, replayed: false })
    }

    async fn update(&self, u: Update, now: Timestamp) -> Result<Written> {
        let now_n = nanos(now)?;
        let new_window =
            u.window.map(|w| Ok::<_, Error>((nanos(w.start())?, nanos(w.end())?))).transpose()?;
        let new_deadline = u.hold_expires_at.map(nanos).transpose()?;
        let mut idem = u.idempotency.as_ref().map(|c| lock(self.pick(&self.idem, (&c.scope, &c.key))));
        if let (Some(map), Some(claim)) = (idem.as_deref(), &u.idempotency) {
            if let Some(id) = Self::check_idem(map, claim)? {
                return self.replay(id);
            }
        }
        let loc = self.loc(u.id)?;
        let shard = self.shard(loc.shard);
        let mut s = lock(&shard);
        let slot = loc.slot;
        let r = &s.recs[slot as usize];
        let effective = u.check(r.fence, r.state, stamp(r.deadline), now)?;
        let (old_start, old_end) = (r.start, r.end);
        let (start, end) = new_window.unwrap_or((old_start, old_end));
        let spot = r.spot;
        let was_indexed = r.state.is_live();
        let moved = (start, end) != (old_start, old_end);
        if matches!(u.session, Some(SessionChange::Exit { .. }))
            && !s.sessions.get(&slot).is_some_and(|v| v.iter().any(|x| x.exited_at.is_none()))
        {
            return Err(Error::invalid("session", "no open gate session to close"));
        }
        let mut events = Vec::new();
        let retention = self.retention;
        if u.needs_free_window(effective, moved) {
            let idx = s.spots.get(&spot).expect("a stored reservation's spot is indexed");
            let lapsed =
                s.overlapping(idx, start, end, now_n, Some(slot)).map_err(|_| Error::spot_taken(spot))?;
            s.retire(&lapsed, now, retention, &mut events);
        }
        let idx = s.spots.get_mut(&spot).expect("a stored reservation's spot is indexed");
        if was_indexed && (!u.to.is_live() || moved) {
            idx.live.remove(&old_start);
        }
        if u.to.is_live() && (!was_indexed || moved) {
            idx.live.insert(start, slot);
        }
        if u.bump_fence {
            idx.fence += 1;
        }
        let fence = idx.fence;
        let r = &mut s.recs[slot as usize];
        if u.bump_fence {
            r.fence = fence;
        }
        r.state = u.to;
        r.start = start;
        r.end = end;
        if let Some(p) = u.price {
            r.price = p;
        }
        if let Some(p) = u.payment {
            r.payment = Some(Box::new(p));
        }
        if let Some(d) = new_deadline {
            r.deadline = d;
            if u.to.is_hold() {
                s.deadlines.push(Reverse((d, slot)));
            }
        }
        match u.session {
            Some(SessionChange::Enter(session)) => s.sessions.entry(slot).or_default().push(session),
            Some(SessionChange::Exit { at, gate, scan }) => {
                let open = s
                    .sessions
                    .get_mut(&slot)
                    .and_then(|v| v.iter_mut().rev().find(|x| x.exited_at.is_none()));
                if let Some(x) = open {
                    x.exited_at = Some(at);
                    x.exit_gate = Some(gate);
                    x.exit_scan = scan;
                }
            }
            None => {}
        }
        let reservation = s.to_reservation(&s.recs[slot as usize]);
        events.push(s.record(&reservation, u.event, now, retention));
        if let Some(nr) = u.revoke {
            // Under the shard's lock: nobody sees the change without its revocation.
            let mut revs = lock(&self.revocations);
            let version = revs.all.len() as u64 + 1;
            revs.all.push(Revocation {
                version,
                reservation: u.id,
                pass: nr.pass,
                reason: nr.reason,
                at: now,
            });
            let i = revs.all.len() - 1;
            revs.by_reservation.entry(u.id).or_default().push(i);
        }
        drop(s);
        if let (Some(map), Some(claim)) = (idem.as_deref_mut(), u.idempotency) {
            map.insert(
                (claim.scope, claim.key),
                IdemRecord { fingerprint: claim.fingerprint, reservation: u.id },
            );
        }
        Ok(Written { reservation, events, replayed: false })
    }

    async fn get(&self, id: ReservationId) -> Result<Reservation> {
        Ok(self.read(self.loc(id)?))
    }

    async fn by_user(&self, user: UserId, limit: usize) -> Result<Vec<Reservation>> {
        let shards = self.shards.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut out = Vec::new();
        for shard in shards {
            let s = lock(&shard);
            out.extend(s.recs.iter().filter(|r| r.user == user).map(|r| s.to_reservation(r)));
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.id));
        out.truncate(limit);
        Ok(out)
    }

    async fn live_in_lot(&self, lot: LotId, window: &Window, now: Timestamp) -> Result<Vec<Reservation>> {
        let (start, end, now_n) = (nanos(window.start())?, nanos(window.end())?, nanos(now)?);
        let (_, shard) = self.lot_shard(lot)?;
        let s = lock(&shard);
        let mut out = Vec::new();
        for idx in s.spots.values() {
            for (_, &slot) in idx.live.range(..end).rev() {
                let r = &s.recs[slot as usize];
                if r.end <= start {
                    break;
                }
                if r.live(now_n) {
                    out.push(s.to_reservation(r));
                }
            }
        }
        out.sort_by_key(|r| (r.window.start(), r.id));
        Ok(out)
    }

    async fn lapsed_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<Reservation>> {
        let now_n = nanos(now)?;
        let shards = self.shards.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut found: Vec<(i64, Reservation)> = Vec::new();
        for shard in shards {
            let mut s = lock(&shard);
            let mut keep = Vec::new();
            while let Some(&Reverse((deadline, slot))) = s.deadlines.peek() {
                if deadline > now_n || keep.len() >= limit {
                    break;
                }
                s.deadlines.pop();
                let r = &s.recs[slot as usize];
                // Entries go stale when a hold is confirmed, expires or gets a new deadline.
                if r.state.is_hold() && r.deadline == deadline {
                    keep.push((deadline, slot));
                }
            }
            for &(deadline, slot) in &keep {
                found.push((deadline, s.to_reservation(&s.recs[slot as usize])));
                s.deadlines.push(Reverse((deadline, slot)));
            }
        }
        found.sort_by_key(|(d, r)| (*d, r.id));
        Ok(found.into_iter().take(limit).map(|(_, r)| r).collect())
    }

    async fn unclaimed_before(&self, cutoff: Timestamp, limit: usize) -> Result<Vec<Reservation>> {
        let cutoff = nanos(cutoff)?;
        let shards = self.shards.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut out = Vec::new();
        for shard in shards {
            let s = lock(&shard);
            for idx in s.spots.values() {
                for (_, &slot) in idx.live.range(..cutoff) {
                    let r = &s.recs[slot as usize];
                    if r.state == ReservationState::Confirmed {
                        out.push(s.to_reservation(r));
                    }
                }
            }
        }
        out.sort_by_key(|r| (r.window.start(), r.id));
        out.truncate(limit);
        Ok(out)
    }

    async fn events(&self, lot: LotId, after: u64, limit: usize) -> Result<Vec<Event>> {
        let (_, shard) = self.lot_shard(lot)?;
        let s = lock(&shard);
        let first = s.events.front().map_or(s.next_seq, |e| e.seq);
        let skip = usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        Ok(s.events.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn last_seq(&self, lot: LotId) -> Result<u64> {
        let (_, shard) = self.lot_shard(lot)?;
        let s = lock(&shard);
        Ok(s.next_seq - 1)
    }

    async fn sessions(&self, id: ReservationId) -> Result<Vec<GateSession>> {
        let loc = self.loc(id)?;
        let shard = self.shard(loc.shard);
        let s = lock(&shard);
        Ok(s.sessions.get(&loc.slot).cloned().unwrap_or_default())
    }

    async fn revocations(&self, after: u64, limit: usize) -> Result<RevocationDelta> {
        let revs = lock(&self.revocations);
        let latest = revs.all.len() as u64;
        let from = after.min(latest);
        let page: Vec<Revocation> = revs.all[from as usize..].iter().take(limit).copied().collect();
        let to = page.last().map_or(from, |r| r.version);
        Ok(RevocationDelta { from, to, revocations: page })
    }

    async fn revocations_of(&self, reservation: ReservationId) -> Result<Vec<Revocation>> {
        let revs = lock(&self.revocations);
        Ok(revs.by_reservation.get(&reservation).into_iter().flatten().map(|&i| revs.all[i]).collect())
    }

    async fn record_scan(&self, record: &ScanRecord) -> Result<ScanRecord> {
        self.lot_shard(record.lot)?;
        let mut scans = lock(&self.scans);
        Ok(scans.entry((record.lot, record.scan_id.clone())).or_insert_with(|| record.clone()).clone())
    }

    async fn scan_record(&self, lot: LotId, scan_id: &str) -> Result<Option<ScanRecord>> {
        Ok(lock(&self.scans).get(&(lot, scan_id.to_owned())).cloned())
    }
}
