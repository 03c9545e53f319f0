//! The reservation store: the arbiter of who has which spot.

use std::fmt::Debug;

use async_trait::async_trait;
use jiff::Timestamp;

use crate::catalog::{GeoBox, Lot, Operator, Spot};
use crate::error::Result;
use crate::ids::{LotId, OperatorId, ReservationId, SpotId, UserId};
use crate::money::Money;
use crate::pass::{PassNonce, Revocation, RevocationDelta, RevocationReason, ScanRecord};
use crate::reservation::{
    Event, EventKind, GateSession, PaymentRef, Reservation, ReservationState, StateSet,
};
use crate::time::Window;

/// What a store can do, so the conformance suite and the engine pick behaviour by capability,
/// never by the backend's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Confirmed reservations survive a restart of the process and of the backend.
    pub durable: bool,
    /// Several processes may share the store (replicas).
    pub shared: bool,
    /// Keeps every event for resume (otherwise only the most recent ones per lot).
    pub full_event_log: bool,
}

impl Capabilities {
    /// Capabilities with every flag given.
    pub const fn new(durable: bool, shared: bool, full_event_log: bool) -> Self {
        Self { durable, shared, full_event_log }
    }
}

/// A caller-scoped idempotency key and the fingerprint of the request it came with.
///
/// The store records `(scope, key) → (fingerprint, reservation)` in the same atomic step as
/// the change. A later request with the same scope and key and the same fingerprint gets the
/// recorded reservation back (`replayed`); with another fingerprint it fails with
/// [`crate::Error::IdempotencyMismatch`]. A request that failed records nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// Who the key belongs to, e.g. `user:<id>`, `webhook:stripe`, `gate:<id>`.
    pub scope: String,
    /// The key as the caller sent it.
    pub key: String,
    /// A digest of the request (method, target, body).
    pub fingerprint: [u8; 32],
}

/// Which spot a hold takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldTarget {
    /// Exactly this spot.
    Spot(SpotId),
    /// The first of these spots (in this order) that is free for the window.
    AnyOf(Vec<SpotId>),
}

/// Per-user limits on live holds, checked atomically with the insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HoldLimits {
    /// Live holds one user may have in the lot.
    pub per_lot: Option<u32>,
    /// Live holds one user may have across the operator's lots.
    pub per_operator: Option<u32>,
}

impl HoldLimits {
    /// Whether any limit applies.
    pub const fn any(&self) -> bool {
        self.per_lot.is_some() || self.per_operator.is_some()
    }
}

/// A request to insert a hold.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// The reservation to insert, in state `held`. Its `spot` and `fence` are set by the store;
    /// everything else is kept as given.
    pub reservation: Reservation,
    /// The spot, or the candidates of a pooled hold.
    pub target: HoldTarget,
    /// Per-user limits.
    pub limits: HoldLimits,
    /// The fencing number an admission lock issued for this claim, if any. The stored fence is
    /// `max(last fence of the spot + 1, this)`.
    pub lock_fence: Option<u64>,
    /// The caller's idempotency key.
    pub idempotency: Option<IdempotencyClaim>,
}

/// A change to a gate session, made with a reservation update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    /// Open a new session.
    Enter(GateSession),
    /// Close the open session.
    Exit {
        /// When.
        at: Timestamp,
        /// Through which gate.
        gate: String,
        /// The id of the reading, if the reader gave one.
        scan: Option<String>,
    },
}

/// A revocation to record with an update, in the same atomic step (a cancellation revokes the
/// reservation's passes as it commits, so a cancelled reservation always has its revocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRevocation {
    /// Only the pass with this nonce, or every pass of the reservation when `None`.
    pub pass: Option<PassNonce>,
    /// Why.
    pub reason: RevocationReason,
}

/// A conditional change to one reservation.
#[derive(Debug, Clone)]
pub struct Update {
    /// The reservation.
    pub id: ReservationId,
    /// The states it must be in, as read at `now` (a hold past its deadline reads as `expired`).
    pub expect: StateSet,
    /// The fencing number the caller read; it must equal the stored one.
    pub fence: u64,
    /// The new state (may equal the current one).
    pub to: ReservationState,
    /// A new window (extension).
    pub window: Option<Window>,
    /// A new price.
    pub price: Option<Money>,
    /// A new hold deadline.
    pub hold_expires_at: Option<Timestamp>,
    /// A new payment record.
    pub payment: Option<PaymentRef>,
    /// A gate session change.
    pub session: Option<SessionChange>,
    /// Give the reservation a new fencing number (reinstatement, extension).
    pub bump_fence: bool,
    /// The event to record.
    pub event: EventKind,
    /// The caller's idempotency key.
    pub idempotency: Option<IdempotencyClaim>,
    /// Revoke passes of the reservation, numbered with the store's next revocation version.
    pub revoke: Option<NewRevocation>,
}

impl Update {
    /// An update of `r` from one of `expect` to `to`, recording `event`, changing nothing else.
    pub fn new(r: &Reservation, expect: StateSet, to: ReservationState, event: EventKind) -> Self {
        Self {
            id: r.id,
            expect,
            fence: r.fence,
            to,
            window: None,
            price: None,
            hold_expires_at: None,
            payment: None,
            session: None,
            bump_fence: false,
            event,
            idempotency: None,
            revoke: None,
        }
    }
}

impl Update {
    /// The compare-and-set check of a conditional update, shared by every store: given what
    /// the store holds for the reservation (its fence, its stored state and its hold deadline,
    /// read under the store's lock or row lock) and `now`, returns the state the update moves
    /// from (the state read at `now`: a lapsed hold reads as `expired`).
    ///
    /// # Errors
    /// In this order: [`StaleFence`](crate::Error::StaleFence) when `fence` is not
    /// [`Update::fence`]; [`HoldExpired`](crate::Error::HoldExpired) when the stored state was
    /// an expected hold that lapsed; [`InvalidTransition`](crate::Error::InvalidTransition) when
    /// the state read is not expected or the state machine forbids the move to [`Update::to`].
    pub fn check(
        &self,
        fence: u64,
        stored: ReservationState,
        hold_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<ReservationState> {
        if fence != self.fence {
            return Err(crate::Error::StaleFence { id: self.id, presented: self.fence, current: fence });
        }
        let from =
            if stored.is_hold() && hold_expires_at <= now { ReservationState::Expired } else { stored };
        if !self.expect.contains(from) {
            return Err(if stored.is_hold() && self.expect.contains(stored) {
                crate::Error::HoldExpired { id: self.id }
            } else {
                crate::Error::InvalidTransition { id: self.id, from, action: self.event.action() }
            });
        }
        if !from.can_become(self.to) {
            return Err(crate::Error::InvalidTransition { id: self.id, from, action: self.event.action() });
        }
        Ok(from)
    }

    /// Whether the store must run the overlap check of a hold before writing this update
    /// (excluding the reservation itself): the result is live, and the reservation either was
    /// not live (as read at `now`, see [`check`](Self::check)) or moves to another window.
    pub const fn needs_free_window(&self, from: ReservationState, moved: bool) -> bool {
        self.to.is_live() && (!from.is_live() || moved)
    }
}

/// The result of a write: the reservation as stored, and the events recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The reservation after the write.
    pub reservation: Reservation,
    /// The events the write recorded (empty when replayed).
    pub events: Vec<Event>,
    /// Whether this answered a repeated idempotency key without writing anything.
    pub replayed: bool,
}

/// The arbiter of reservations: inventory, conditional writes, events, idempotency records.
///
/// # Contract
/// - Windows are half-open `[start, end)`; back-to-back windows do not overlap.
/// - **Live** means state `held`, `pending_payment`, `confirmed` or `checked_in`, except that a
///   hold (`held`, `pending_payment`) whose `hold_expires_at <= now` is not live (lazy expiry).
/// - [`hold`](Self::hold) is atomic: it retires (marks `expired`, with an `expired` event) every
///   lapsed hold that overlaps the window on the chosen spot, checks that no live reservation
///   overlaps, checks the per-user limits, assigns the fencing number, inserts, records a
///   `held` event and the idempotency record — all or nothing. No two live reservations on a
///   spot ever overlap, whatever the interleaving. A taken spot (or no free candidate) is
///   [`Conflict`](crate::Error::Conflict); a limit is
///   [`LimitExceeded`](crate::Error::LimitExceeded); an unknown spot is
///   [`NotFound`](crate::Error::NotFound).
/// - [`update`](Self::update) is a compare-and-set: the stored fence must equal
///   [`Update::fence`] ([`StaleFence`](crate::Error::StaleFence) otherwise), the state read at
///   `now` must be in [`Update::expect`] ([`HoldExpired`](crate::Error::HoldExpired) when the
///   stored state was an expected hold that lapsed, else
///   [`InvalidTransition`](crate::Error::InvalidTransition)), and the state machine must allow
///   the move. When the result is live and either the window changes or the reservation was
///   not live, the overlap check of `hold` runs (excluding the reservation itself).
/// - Events get per-lot sequence numbers from 1 without gaps, in commit order, in the same
///   atomic step as the change they describe.
/// - Idempotency: see [`IdempotencyClaim`]. A replay returns the reservation as it is now.
/// - Revocations: an update with [`Update::revoke`] records one [`Revocation`] of the
///   reservation, made at `now`, in the same atomic step as the change (a failed update records
///   none). The store numbers revocations 1, 2, 3, … across the whole store (every operator),
///   without gaps and in commit order: once a reader has seen version `n`, no revocation with
///   a version `<= n` commits later. [`revocations`](Self::revocations) and
///   [`revocations_of`](Self::revocations_of) answer from committed revocations only; they are
///   shared by every handle of a `shared` store and survive a reopen of a `durable` one.
/// - Scan records ([`record_scan`](Self::record_scan)) are kept once per `(lot, scan id)`:
///   recording an id again changes nothing and returns the first record.
/// - Failures of the backend are [`Unavailable`](crate::Error::Unavailable) (retryable when a
///   retry may help) or [`Backend`](crate::Error::Backend); a write that returns an error
///   either happened entirely or not at all, and a retry with the same idempotency key is safe.
#[async_trait]
pub trait ReservationStore: Send + Sync + Debug + 'static {
    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Inserts or replaces an operator.
    async fn put_operator(&self, operator: &Operator) -> Result<()>;
    /// An operator, or `NotFound`.
    async fn operator(&self, id: OperatorId) -> Result<Operator>;
    /// Inserts or replaces a lot (the engine validates it first).
    async fn put_lot(&self, lot: &Lot) -> Result<()>;
    /// A lot, or `NotFound`.
    async fn lot(&self, id: LotId) -> Result<Lot>;
    /// Every lot whose location lies in `area`.
    async fn lots_in(&self, area: &GeoBox) -> Result<Vec<Lot>>;
    /// Inserts or replaces a spot; its lot must exist (`NotFound` otherwise).
    async fn put_spot(&self, spot: &Spot) -> Result<()>;
    /// The spots of a lot, ordered by label.
    async fn spots(&self, lot: LotId) -> Result<Vec<Spot>>;

    /// Inserts a hold; see the contract.
    async fn hold(&self, request: HoldRequest, now: Timestamp) -> Result<Written>;
    /// Changes a reservation conditionally; see the contract.
    async fn update(&self, update: Update, now: Timestamp) -> Result<Written>;
    /// A reservation as stored (the stored state, not the lazily expired one), or `NotFound`.
    async fn get(&self, id: ReservationId) -> Result<Reservation>;
    /// A user's reservations, newest first, at most `limit`.
    async fn by_user(&self, user: UserId, limit: usize) -> Result<Vec<Reservation>>;
    /// Reservations of a lot that are live at `now` and overlap `window`.
    async fn live_in_lot(&self, lot: LotId, window: &Window, now: Timestamp) -> Result<Vec<Reservation>>;
    /// Holds whose deadline is at or before `now` and that are still stored as holds, oldest
    /// deadline first, at most `limit`. With several sweepers, each should get different rows
    /// where the backend can arrange it.
    async fn lapsed_holds(&self, now: Timestamp, limit: usize) -> Result<Vec<Reservation>>;
    /// Confirmed (never checked-in) reservations whose window started before `cutoff`,
    /// at most `limit`: candidates for a no-show release.
    async fn unclaimed_before(&self, cutoff: Timestamp, limit: usize) -> Result<Vec<Reservation>>;
    /// Events of a lot with `seq > after`, in order, at most `limit`.
    async fn events(&self, lot: LotId, after: u64, limit: usize) -> Result<Vec<Event>>;
    /// The sequence number of the lot's latest committed event (0 before its first); a
    /// subscriber that has seen up to it has seen everything. `NotFound` for an unknown lot.
    ///
    /// The default pages through [`events`](Self::events); adapters answer from their counter.
    async fn last_seq(&self, lot: LotId) -> Result<u64> {
        let mut last = 0;
        loop {
            let page = self.events(lot, last, 1024).await?;
            match page.last() {
                Some(e) => last = e.seq,
                None => return Ok(last),
            }
        }
    }
    /// The gate sessions of a reservation, oldest first.
    async fn sessions(&self, id: ReservationId) -> Result<Vec<GateSession>>;

    /// The revocations a holder of version `after` lacks, at most `limit`, as one consistent
    /// read: `from` is `min(after, latest)`, the revocations are exactly the versions
    /// `from + 1 ..= to` in order, and `to` is the latest committed version unless `limit`
    /// cut the page short (then the caller asks again from `to`).
    async fn revocations(&self, after: u64, limit: usize) -> Result<RevocationDelta>;
    /// Every revocation of a reservation, oldest first (empty for an unknown one).
    async fn revocations_of(&self, reservation: ReservationId) -> Result<Vec<Revocation>>;
    /// Records a gate's reading unless one with the same `(lot, scan_id)` exists; returns the
    /// record as stored (the earlier one, unchanged, on a repeat). `NotFound` for an unknown lot.
    async fn record_scan(&self, record: &ScanRecord) -> Result<ScanRecord>;
    /// The recorded reading `scan_id` of `lot`, if any.
    async fn scan_record(&self, lot: LotId, scan_id: &str) -> Result<Option<ScanRecord>>;
}

/// `dyn ReservationStore`.
pub type DynReservationStore = dyn ReservationStore;
