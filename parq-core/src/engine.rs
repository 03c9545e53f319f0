//! The engine: every rule of ParQ, over the ports.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::catalog::{GeoPoint, Lot, Operator, Spot, SpotFilter};
use crate::error::{ConflictReason, Error, Result};
use crate::ids::{LotId, ReservationId, SessionId, SpotId, UserId};
use crate::memory::{BroadcastNotifier, MemoryStore, TestGateway};
use crate::money::Money;
use crate::pass::{
    Decision, Direction, Entitlement, Pass, PassKeyring, Presence, ReentryPolicy, Refusal, RevocationDelta,
    RevocationList, RevocationReason, Scan, ScanContext, ScanId, decide,
};
use crate::ports::lock::{Claim, DynAdmissionLock};
use crate::ports::notifier::{DynNotifier, EventStream};
use crate::ports::payment::{
    DynPaymentGateway, IntentRequest, IntentStatus, PaymentEvent, PaymentEventKind, PaymentIntent, Refund,
};
use crate::ports::store::{
    DynReservationStore, HoldLimits, HoldRequest, HoldTarget, IdempotencyClaim, SessionChange, Update,
    Written,
};
use crate::reservation::{EventKind, GateSession, PaymentRef, Reservation, ReservationState as S, StateSet};
use crate::time::{DynClock, SystemClock, Window};

/// How long the engine trusts its cached copy of a lot and its spots (by the engine's clock;
/// the engine's own catalog writes refresh it at once).
const CATALOG_TTL: SignedDuration = SignedDuration::from_secs(5);

/// Which spot a hold asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpotChoice {
    /// This spot.
    Spot {
        /// The spot.
        spot: SpotId,
    },
    /// Any free spot of the lot with these attributes (pooled).
    Any {
        /// The attributes required.
        #[serde(default)]
        filter: SpotFilter,
    },
}

/// What [`Engine::hold_keyed`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The reservation.
    pub reservation: Reservation,
    /// Whether an earlier request with the same idempotency key made it.
    pub replayed: bool,
}

/// A request to hold a spot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSpec {
    /// The driver.
    pub user: UserId,
    /// The lot.
    pub lot: LotId,
    /// Which spot.
    pub choice: SpotChoice,
    /// The window.
    pub window: Window,
}

/// A price for a lot and window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Quote {
    /// The lot.
    pub lot: LotId,
    /// The window.
    pub window: Window,
    /// The price.
    pub price: Money,
}

/// The result of a checkout: the reservation awaiting payment and the intent to pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The reservation (state `pending_payment`).
    pub reservation: Reservation,
    /// The intent the driver pays.
    pub intent: PaymentIntent,
}

/// The result of a cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    /// The reservation (state `cancelled`).
    pub reservation: Reservation,
    /// What went back to the driver in all, earlier (goodwill) refunds included; zero when
    /// nothing was paid or the policy gives nothing.
    pub refunded: Money,
}

/// A spot and whether it is free for a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SpotStatus {
    /// The spot.
    pub spot: Spot,
    /// Free for the whole window.
    pub free: bool,
}

/// A lot's availability for a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Availability {
    /// The lot.
    pub lot: LotId,
    /// The window.
    pub window: Window,
    /// Every spot, with whether it is free.
    pub spots: Vec<SpotStatus>,
    /// How many are free.
    pub free: usize,
    /// The price of the window.
    pub price: Money,
}

/// A lot found near a point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct LotMatch {
    /// The lot.
    pub lot: Lot,
    /// Distance from the point, in metres.
    pub distance_m: f64,
    /// Matching spots free for the window.
    pub free: usize,
    /// The price of the window.
    pub price: Money,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Holds marked expired.
    pub expired: usize,
    /// Lapsed holds found paid at the provider and confirmed (or refunded).
    pub settled: usize,
    /// Confirmed reservations released as no-shows.
    pub no_shows: usize,
    /// Items that failed and will be retried by the next sweep.
    pub failed: usize,
}

#[derive(Debug)]
struct LotView {
    lot: Lot,
    operator: Operator,
    spots: Vec<Spot>,
    spot_ids: HashSet<SpotId, crate::ids::IdHash>,
    fetched: Timestamp,
}

/// Builds an [`Engine`] from its ports.
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<DynReservationStore>,
    lock: Option<Arc<DynAdmissionLock>>,
    gateway: Arc<DynPaymentGateway>,
    notifier: Arc<DynNotifier>,
    clock: Arc<DynClock>,
    keyring: Option<PassKeyring>,
    reentry: ReentryPolicy,
}

impl EngineBuilder {
    /// The keyring that signs access passes (default: a fresh random key with id 1), and
    /// whether a driver may leave and come back within the window.
    pub fn passes(mut self, keyring: PassKeyring, reentry: ReentryPolicy) -> Self {
        self.keyring = Some(keyring);
        self.reentry = reentry;
        self
    }
    /// Puts an admission lock in front of the store.
    pub fn lock(mut self, lock: Arc<DynAdmissionLock>) -> Self {
        self.lock = Some(lock);
        self
    }
    /// The payment gateway (default: a [`TestGateway`]).
    pub fn gateway(mut self, gateway: Arc<DynPaymentGateway>) -> Self {
        self.gateway = gateway;
        self
    }
    /// The notifier (default: a [`BroadcastNotifier`]).
    pub fn notifier(mut self, notifier: Arc<DynNotifier>) -> Self {
        self.notifier = notifier;
        self
    }
    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<DynClock>) -> Self {
        self.clock = clock;
        self
    }
    /// The engine. Fails only when no keyring was given and no random key can be made.
    pub fn build(self) -> Engine {
        let keyring = match self.keyring {
            Some(k) => k,
            None => PassKeyring::generate(crate::pass::KeyId(1))
                .expect("the operating system provides randomness"),
        };
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                lock: self.lock,
                gateway: self.gateway,
                notifier: self.notifier,
                clock: self.clock,
                lots: RwLock::default(),
                keyring: RwLock::new(keyring),
                reentry: self.reentry,
                revocations: Mutex::default(),
            }),
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: Arc<DynReservationStore>,
    lock: Option<Arc<DynAdmissionLock>>,
    gateway: Arc<DynPaymentGateway>,
    notifier: Arc<DynNotifier>,
    clock: Arc<DynClock>,
    lots: RwLock<crate::ids::IdMap<LotId, Arc<LotView>>>,
    keyring: RwLock<PassKeyring>,
    reentry: ReentryPolicy,
    revocations: Mutex<RevocationList>,
}

/// The reservation engine. Cheap to clone; every clone shares the same ports.
///
/// The engine owns every rule — windows, prices, limits, the state machine, payments,
/// idempotency — and asks the store only for atomic conditional writes.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn fingerprint(parts: &impl Serialize) -> [u8; 32] {
    let bytes = serde_json::to_vec(parts).expect("requests serialise");
    Sha256::digest(bytes).into()
}

fn user_claim(
    user: UserId,
    key: Option<&str>,
    op: &str,
    request: &impl Serialize,
) -> Result<Option<IdempotencyClaim>> {
    let Some(key) = key else { return Ok(None) };
    if key.is_empty() || key.len() > 255 {
        return Err(Error::invalid("idempotency_key", "must be 1 to 255 characters"));
    }
    Ok(Some(IdempotencyClaim {
        scope: format!("user:{user}"),
        key: key.to_owned(),
        fingerprint: fingerprint(&(op, request)),
    }))
}

impl Engine {
    /// An engine over `store`, with a [`TestGateway`], a [`BroadcastNotifier`], the
    /// [`SystemClock`] and no admission lock until set.
    pub fn builder(store: Arc<DynReservationStore>) -> EngineBuilder {
        EngineBuilder {
            store,
            lock: None,
            gateway: Arc::new(TestGateway::new(b"parq-test-webhook-secret".to_vec())),
            notifier: Arc::new(BroadcastNotifier::default()),
            clock: Arc::new(SystemClock),
            keyring: None,
            reentry: ReentryPolicy::NotAllowed,
        }
    }

    /// An engine entirely in memory, as the demo runs.
    pub fn in_memory() -> Engine {
        Self::builder(Arc::new(MemoryStore::new())).build()
    }

    /// The store.
    pub fn store(&self) -> &Arc<DynReservationStore> {
        &self.inner.store
    }

    /// The payment gateway.
    pub fn gateway(&self) -> &Arc<DynPaymentGateway> {
        &self.inner.gateway
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<DynClock> {
        &self.inner.clock
    }

    /// The current instant, by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    // ----- catalog -----------------------------------------------------------------------

    /// Creates or replaces an operator.
    pub async fn put_operator(&self, operator: &Operator) -> Result<()> {
        if operator.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        self.inner.store.put_operator(operator).await?;
        self.forget_lots();
        Ok(())
    }

    /// Creates or replaces a lot, after checking its settings.
    pub async fn put_lot(&self, lot: &Lot) -> Result<()> {
        lot.validate()?;
        self.inner.store.put_lot(lot).await?;
        self.forget_lot(lot.id);
        Ok(())
    }

    /// Creates or replaces a spot.
    pub async fn put_spot(&self, spot: &Spot) -> Result<()> {
        if spot.label.trim().is_empty() {
            return Err(Error::invalid("label", "must not be empty"));
        }
        self.inner.store.put_spot(spot).await?;
        self.forget_lot(spot.lot);
        Ok(())
    }

    /// A lot.
    pub async fn lot(&self, id: LotId) -> Result<Lot> {
        Ok(self.view(id).await?.lot.clone())
    }

    /// The spots of a lot.
    pub async fn spots(&self, id: LotId) -> Result<Vec<Spot>> {
        Ok(self.view(id).await?.spots.clone())
    }

    fn forget_lot(&self, id: LotId) {
        self.inner.lots.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }

    fn forget_lots(&self) {
        self.inner.lots.write().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    async fn view(&self, id: LotId) -> Result<Arc<LotView>> {
        self.view_at(id, self.now()).await
    }

    async fn view_at(&self, id: LotId, now: Timestamp) -> Result<Arc<LotView>> {
        if let Some(v) = self.inner.lots.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id) {
            // A clock moved backwards (a manual one) also refreshes.
            let age = now.duration_since(v.fetched);
            if !age.is_negative() && age < CATALOG_TTL {
                return Ok(v.clone());
            }
        }
        let lot = self.inner.store.lot(id).await?;
        let operator = self.inner.store.operator(lot.operator).await?;
        let spots = self.inner.store.spots(id).await?;
        let spot_ids = spots.iter().map(|s| s.id).collect();
        let v = Arc::new(LotView { lot, operator, spots, spot_ids, fetched: now });
        self.inner.lots.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, v.clone());
        Ok(v)
    }

    // ----- reading -----------------------------------------------------------------------

    /// The price of `window` in `lot`, after checking the window against the lot's rules.
    pub async fn quote(&self, lot: LotId, window: Window) -> Result<Quote> {
        let v = self.view(lot).await?;
        v.lot.check_window(&window)?;
        Ok(Quote { lot, window, price: v.lot.rates.quote(&window)? })
    }

    /// A reservation as readers see it now: a hold past its deadline reads as `expired`.
    pub async fn get(&self, id: ReservationId) -> Result<Reservation> {
        let mut r = self.inner.store.get(id).await?;
        r.state = r.state_at(self.now());
        Ok(r)
    }

    /// A reservation of `user` (`NotFound` for anyone else's).
    pub async fn get_for(&self, id: ReservationId, user: UserId) -> Result<Reservation> {
        let r = self.get(id).await?;
        if r.user != user {
            return Err(Error::not_found(format!("reservation {id}")));
        }
        Ok(r)
    }

    /// A user's reservations, newest first.
    pub async fn reservations_of(&self, user: UserId, limit: usize) -> Result<Vec<Reservation>> {
        let now = self.now();
        let mut rs = self.inner.store.by_user(user, limit).await?;
        for r in &mut rs {
            r.state = r.state_at(now);
        }
        Ok(rs)
    }

    /// Which spots of a lot are free for the whole window.
    pub async fn availability(&self, lot: LotId, window: Window) -> Result<Availability> {
        let v = self.view(lot).await?;
        let price = v.lot.rates.quote(&window)?;
        let taken: HashSet<SpotId> = self
            .inner
            .store
            .live_in_lot(lot, &window, self.now())
            .await?
            .into_iter()
            .map(|r| r.spot)
            .collect();
        let blackout = v.lot.blackouts.iter().any(|b| b.overlaps(&window));
        let spots: Vec<SpotStatus> = v
            .spots
            .iter()
            .map(|s| SpotStatus { spot: s.clone(), free: !blackout && !taken.contains(&s.id) })
            .collect();
        let free = spots.iter().filter(|s| s.free).count();
        Ok(Availability { lot, window, spots, free, price })
    }

    /// Lots within `radius_m` of `point` with a spot matching `filter` free for `window`,
    /// nearest first.
    pub async fn search(
        &self,
        point: GeoPoint,
        radius_m: f64,
        window: Window,
        filter: SpotFilter,
    ) -> Result<Vec<LotMatch>> {
        GeoPoint::new(point.lat, point.lon)?;
        if !(radius_m.is_finite() && radius_m > 0.0 && radius_m <= 100_000.0) {
            return Err(Error::invalid("radius_m", "must be between 0 and 100000 metres"));
        }
        let mut out = Vec::new();
        for lot in self.inner.store.lots_in(&point.bounding_box(radius_m)).await? {
            let distance_m = point.distance_m(&lot.location);
            if distance_m > radius_m || lot.check_window(&window).is_err() {
                continue;
            }
            let a = self.availability(lot.id, window).await?;
            let free = a.spots.iter().filter(|s| s.free && filter.matches(&s.spot.attributes)).count();
            if free > 0 {
                out.push(LotMatch { lot, distance_m, free, price: a.price });
            }
        }
        out.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));
        Ok(out)
    }

    /// Live events of a lot after sequence number `after`: first what the store has, then live
    /// ones, without gaps or duplicates; a gap in the live feed is filled from the store.
    pub async fn watch(&self, lot: LotId, after: u64) -> Result<EventStream> {
        self.view(lot).await?;
        let mut live = self.inner.notifier.subscribe(Some(lot)).await?;
        let store = self.inner.store.clone();
        let (tx, rx) = mpsc::channel::<Result<crate::reservation::Event>>(256);
        tokio::spawn(async move {
            let mut last = after;
            // Catch up from the store, then follow the live feed, refilling any gap.
            'outer: loop {
                loop {
                    match store.events(lot, last, 512).await {
                        Ok(batch) if batch.is_empty() => break,
                        Ok(batch) => {
                            for e in batch {
                                last = e.seq;
                                if tx.send(Ok(e)).await.is_err() {
                                    break 'outer;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            break 'outer;
                        }
                    }
                }
                loop {
                    match live.next().await {
                        None => break 'outer,
                        Some(Ok(e)) if e.seq <= last => continue,
                        Some(Ok(e)) if e.seq == last + 1 => {
                            last = e.seq;
                            if tx.send(Ok(e)).await.is_err() {
                                break 'outer;
                            }
                        }
                        // A gap or a lag: read what was missed from the store.
                        Some(_) => continue 'outer,
                    }
                }
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        )))
    }

    // ----- holds -------------------------------------------------------------------------

    /// Holds a spot (named or pooled) for a window until the lot's hold deadline.
    ///
    /// With an idempotency key, the same key and request return the same reservation, and the
    /// same key with another request fails with [`Error::IdempotencyMismatch`].
    pub async fn hold(&self, spec: &HoldSpec, idempotency_key: Option<&str>) -> Result<Reservation> {
        self.hold_keyed(spec, idempotency_key).await.map(|h| h.reservation)
    }

    /// [`hold`](Self::hold), also saying whether the key had been used before: a replayed
    /// hold wrote nothing and returns the reservation the first request made, as it is now.
    pub async fn hold_keyed(&self, spec: &HoldSpec, idempotency_key: Option<&str>) -> Result<Held> {
        let now = self.now();
        let v = self.view_at(spec.lot, now).await?;
        let lot = &v.lot;
        lot.check_window(&spec.window)?;
        if spec.window.end() <= now || spec.window.start() < now - lot.granularity {
            return Err(Error::invalid("window", "must not start in the past"));
        }
        // A named hold carries its one spot; only a pooled hold lists candidates.
        let (first, pooled): (SpotId, Option<Vec<SpotId>>) = match &spec.choice {
            SpotChoice::Spot { spot } => {
                if !v.spot_ids.contains(spot) {
                    return Err(Error::not_found(format!("spot {spot} in lot {}", lot.id)));
                }
                (*spot, None)
            }
            SpotChoice::Any { filter } => {
                let c: Vec<SpotId> =
                    v.spots.iter().filter(|s| filter.matches(&s.attributes)).map(|s| s.id).collect();
                let Some(&first) = c.first() else {
                    return Err(Error::Conflict { reason: ConflictReason::NoFreeSpot });
                };
                (first, Some(c))
            }
        };
        let taken = || match pooled {
            Some(_) => Error::Conflict { reason: ConflictReason::NoFreeSpot },
            None => Error::spot_taken(first),
        };
        let idempotency = user_claim(spec.user, idempotency_key, "hold", spec)?;
        let hold_expires_at =
            now.checked_add(lot.hold_ttl).map_err(|e| Error::invalid("hold_ttl", e.to_string()))?;
        let reservation = Reservation {
            id: ReservationId::new(),
            operator: lot.operator,
            lot: lot.id,
            spot: first,
            user: spec.user,
            window: spec.window,
            state: S::Held,
            fence: 0,
            price: lot.rates.quote(&spec.window)?,
            hold_expires_at,
            created_at: now,
            payment: None,
        };
        let mut target = match &pooled {
            Some(c) => HoldTarget::AnyOf(c.clone()),
            None => HoldTarget::Spot(first),
        };
        let mut lock_fence = None;
        let mut granted = None;
        if let Some(lock) = &self.inner.lock {
            let claim = Claim {
                lot: lot.id,
                candidates: pooled.clone().unwrap_or_else(|| vec![first]),
                window: spec.window,
                token: reservation.id,
                ttl: lot.hold_ttl,
            };
            match lock.claim(&claim).await {
                Ok(g) => {
                    target = HoldTarget::Spot(g.spot);
                    lock_fence = Some(g.fence);
                    granted = Some(g.spot);
                }
                // A retry with the same key replays from the store; others lose here.
                Err(e) if e.is_conflict() && idempotency.is_none() => return Err(taken()),
                Err(e) if e.is_conflict() => {}
                // The lock is advisory: when it is away, the store decides alone.
                Err(e) => {
                    tracing::warn!(error = %e, "admission lock unavailable; holding through the store alone")
                }
            }
        }
        let limits =
            HoldLimits { per_lot: lot.max_holds_per_user, per_operator: v.operator.max_holds_per_user };
        let token = reservation.id;
        let request = HoldRequest { reservation, target, limits, lock_fence, idempotency };
        // Kept only for the rare retry below, so the common path does not copy the request.
        let retry = pooled.filter(|_| granted.is_some()).map(|c| (c, request.clone()));
        let result = match self.inner.store.hold(request, now).await {
            // The lock granted a spot the store had taken (the lock had lost state): a pooled hold
            // still tries every candidate.
            Err(e) if e.is_conflict() && retry.is_some() => {
                let (candidates, request) = retry.expect("checked above");
                if let Some(spot) = granted.take() {
                    self.release_claim(lot.id, spot, token).await;
                }
                let request =
                    HoldRequest { target: HoldTarget::AnyOf(candidates), lock_fence: None, ..request };
                self.inner.store.hold(request, now).await
            }
            other => other,
        };
        match result {
            Ok(w) => {
                if let (Some(lock), Some(spot)) = (&self.inner.lock, granted) {
                    if w.replayed || w.reservation.spot != spot {
                        self.release_claim(lot.id, spot, w.reservation.id).await;
                    } else if let Err(e) =
                        lock.retain(lot.id, spot, w.reservation.id, Some(hold_expires_at)).await
                    {
                        tracing::warn!(error = %e, "could not retain the admission claim");
                    }
                }
                let replayed = w.replayed;
                Ok(Held { reservation: self.published(w).await, replayed })
            }
            Err(e) => {
                if let Some(spot) = granted {
                    self.release_claim(lot.id, spot, token).await;
                }
                Err(e)
            }
        }
    }

    async fn release_claim(&self, lot: LotId, spot: SpotId, token: ReservationId) {
        if let Some(lock) = &self.inner.lock {
            if let Err(e) = lock.release(lot, spot, token).await {
                tracing::warn!(error = %e, "could not release an admission claim; it lapses with its TTL");
            }
        }
    }

    async fn published(&self, w: Written) -> Reservation {
        if !w.events.is_empty() {
            // Delivery is best effort; subscribers fill gaps from the store by sequence number.
            if let Err(e) = self.inner.notifier.publish(&w.events).await {
                tracing::warn!(error = %e, "could not publish events");
            }
        }
        w.reservation
    }

    async fn write(&self, u: Update) -> Result<Reservation> {
        let w = self.inner.store.update(u, self.now()).await?;
        Ok(self.published(w).await)
    }

    // ----- payments ----------------------------------------------------------------------

    /// Starts (or, when already started, returns) the payment of a held reservation.
    pub async fn checkout(&self, id: ReservationId, user: UserId) -> Result<Checkout> {
        let r = self.get_for(id, user).await?;
        let gw = &self.inner.gateway;
        match r.state {
            S::PendingPayment => {
                let p = r.payment.as_deref().ok_or_else(|| Error::invalid("payment", "missing"))?;
                let intent = gw.retrieve(&p.intent_id).await?;
                return Ok(Checkout { reservation: r, intent });
            }
            S::Held => {}
            S::Expired => return Err(Error::HoldExpired { id }),
            from => return Err(Error::InvalidTransition { id, from, action: "start payment" }),
        }
        let attempt = r.payment.as_ref().map_or(1, |p| p.attempt + 1);
        if let Some(previous) = r.payment.as_deref() {
            // A failed attempt's intent must never be paid later beside the new one.
            let key = format!("parq:{id}:void:{}", previous.intent_id);
            if let Err(e) = gw.cancel(&previous.intent_id, &key).await {
                if gw.retrieve(&previous.intent_id).await?.status != IntentStatus::Canceled {
                    return Err(e);
                }
            }
        }
        let intent = gw
            .create_intent(&IntentRequest {
                reservation: id,
                attempt,
                amount: r.price,
                idempotency_key: format!("parq:{id}:intent:{attempt}"),
                description: format!("Parking {} {}", r.window.start(), r.spot),
            })
            .await?;
        let mut u = Update::new(&r, StateSet::of(&[S::Held]), S::PendingPayment, EventKind::PaymentStarted);
        u.payment = Some(PaymentRef {
            intent_id: intent.id.clone(),
            attempt,
            amount: r.price,
            captured: false,
            refunded: 0,
            refund_settled: 0,
        });
        match self.write(u).await {
            Ok(reservation) => Ok(Checkout { reservation, intent }),
            Err(e) => {
                // The hold moved on (expired, cancelled, or a concurrent checkout won): void ours.
                let current = self.inner.store.get(id).await.ok();
                let ours = current
                    .as_ref()
                    .and_then(|c| c.payment.as_deref())
                    .is_some_and(|p| p.intent_id == intent.id);
                if !ours {
                    let _ = gw.cancel(&intent.id, &format!("parq:{id}:void:{}", intent.id)).await;
                }
                if let (true, Some(c)) = (ours, current) {
                    return Ok(Checkout { reservation: c, intent });
                }
                Err(e)
            }
        }
    }

    /// Verifies a webhook delivery and applies it.
    pub async fn handle_webhook(&self, payload: &[u8], signature: &str) -> Result<Reservation> {
        let event = self.inner.gateway.parse_webhook(payload, signature, self.now())?;
        self.apply_payment(event).await
    }

    /// Applies a verified payment event, exactly once per event id: confirms and captures a
    /// held reservation; reinstates an expired one when its spot is still free; gives the money
    /// back (void or refund) when the reservation cannot be had.
    pub async fn apply_payment(&self, ev: PaymentEvent) -> Result<Reservation> {
        let r = self.inner.store.get(ev.reservation).await?;
        let claim = IdempotencyClaim {
            scope: format!("webhook:{}", self.inner.gateway.provider()),
            key: ev.id.clone(),
            fingerprint: fingerprint(&ev),
        };
        let now = self.now();
        let ours = r.payment.as_deref().is_some_and(|p| p.intent_id == ev.intent_id);
        match &ev.kind {
            PaymentEventKind::Authorized | PaymentEventKind::Succeeded => {
                let captured = matches!(ev.kind, PaymentEventKind::Succeeded);
                let effective = r.state_at(now);
                let paid = PaymentRef {
                    intent_id: ev.intent_id.clone(),
                    attempt: if ours { r.payment.as_ref().map_or(1, |p| p.attempt) } else { 0 },
                    amount: r.payment.as_ref().map_or(r.price, |p| p.amount),
                    captured,
                    refunded: 0,
                    refund_settled: 0,
                };
                let outcome = match effective {
                    S::Held | S::PendingPayment => {
                        let mut u = Update::new(&r, StateSet::HOLDS, S::Confirmed, EventKind::Confirmed);
                        u.payment = Some(paid.clone());
                        u.idempotency = Some(claim.clone());
                        self.write(u).await
                    }
                    S::Expired => Err(Error::HoldExpired { id: r.id }),
                    // Cancelled while the payment was on its way: return what the policy says.
                    S::Cancelled if ours => {
                        self.finish_cancellation(&r).await?;
                        return self.get(r.id).await;
                    }
                    _ if ours => {
                        // Already confirmed by this intent (a repeated or late event): settle.
                        return self.settle(r).await;
                    }
                    _ => Err(Error::InvalidTransition { id: r.id, from: effective, action: "confirm" }),
                };
                let outcome = match outcome {
                    Err(Error::HoldExpired { .. }) => {
                        let r = self.inner.store.get(r.id).await?;
                        let mut u =
                            Update::new(&r, StateSet::of(&[S::Expired]), S::Confirmed, EventKind::Reinstated);
                        u.payment = Some(paid.clone());
                        u.bump_fence = true;
                        u.idempotency = Some(claim.clone());
                        self.write(u).await
                    }
                    other => other,
                };
                match outcome {
                    Ok(confirmed) => self.settle(confirmed).await,
                    Err(Error::Conflict { .. } | Error::InvalidTransition { .. }) => {
                        self.give_back(ev.reservation, &ev.intent_id, captured, paid.amount).await
                    }
                    Err(e) => Err(e),
                }
            }
            PaymentEventKind::Failed { .. } | PaymentEventKind::Canceled
                if ours && r.state == S::PendingPayment =>
            {
                let mut u =
                    Update::new(&r, StateSet::of(&[S::PendingPayment]), S::Held, EventKind::PaymentFailed);
                u.idempotency = Some(claim);
                match self.write(u).await {
                    Ok(r) => Ok(r),
                    Err(Error::HoldExpired { .. }) => self.get(r.id).await,
                    Err(e) => Err(e),
                }
            }
            _ => self.get(r.id).await,
        }
    }

    /// Makes sure a confirmed reservation's payment is captured (idempotent), and its admission
    /// claim kept until the window ends.
    async fn settle(&self, r: Reservation) -> Result<Reservation> {
        let Some(p) = r.payment.as_deref() else { return Ok(r) };
        if let Some(lock) = &self.inner.lock {
            let _ = lock.retain(r.lot, r.spot, r.id, None).await;
        }
        if p.captured || !matches!(r.state, S::Confirmed | S::CheckedIn | S::Completed | S::NoShow) {
            return Ok(r);
        }
        let intent = self
            .inner
            .gateway
            .capture(&p.intent_id, &format!("parq:{}:capture:{}", r.id, p.intent_id))
            .await?;
        if intent.status != IntentStatus::Succeeded {
            return Err(Error::unavailable(
                format!("capture left intent {} in {:?}", intent.id, intent.status),
                None,
            ));
        }
        let mut u = Update::new(&r, StateSet::of(&[r.state]), r.state, EventKind::Captured);
        u.payment = Some(PaymentRef { captured: true, ..p.clone() });
        match self.write(u).await {
            Ok(r) => Ok(r),
            // Someone else recorded it first.
            Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) => self.get(r.id).await,
            Err(e) => Err(e),
        }
    }

    /// Returns a payment that cannot buy its reservation: voids it, or refunds it in full.
    /// The refund is recorded on the (expired or cancelled) reservation before it is asked for,
    /// so a webhook delivered again, even days later, never refunds twice.
    async fn give_back(
        &self,
        id: ReservationId,
        intent_id: &str,
        captured: bool,
        amount: Money,
    ) -> Result<Reservation> {
        let gw = &self.inner.gateway;
        let r = self.inner.store.get(id).await?;
        let ours = r.payment.as_deref().is_none_or(|p| p.intent_id == intent_id);
        let record_here = ours && matches!(r.state, S::Expired | S::Cancelled);
        if let Some(p) = r.payment.as_deref().filter(|p| record_here && p.intent_id == intent_id) {
            if p.refunded >= amount.minor {
                // Already given back (or owed): finish what is owed, once.
                return self.settle_refund(r.clone()).await.map(|(r, _)| r);
            }
        }
        let intent = gw.retrieve(intent_id).await?;
        let key = format!("parq:{id}:giveback:{intent_id}");
        let taken =
            intent.status == IntentStatus::Succeeded || (captured && intent.status != IntentStatus::Canceled);
        if !record_here {
            // A second payment for a reservation that another one already paid: give it back.
            match intent.status {
                IntentStatus::Canceled => {}
                _ if taken => {
                    gw.refund(intent_id, amount, &key).await?;
                }
                _ => {
                    gw.cancel(intent_id, &key).await?;
                }
            }
            return self.get(id).await;
        }
        if !taken && intent.status != IntentStatus::Canceled {
            gw.cancel(intent_id, &key).await?;
        }
        let mut u = Update::new(&r, StateSet::of(&[r.state]), r.state, EventKind::Refunded);
        u.payment = Some(PaymentRef {
            intent_id: intent_id.to_owned(),
            attempt: r.payment.as_ref().map_or(0, |p| p.attempt),
            amount,
            captured: taken,
            refunded: if taken { amount.minor } else { 0 },
            refund_settled: 0,
        });
        let r = self.write(u).await?;
        Ok(self.settle_refund(r).await?.0)
    }

    /// Asks the provider for whatever refund is recorded but not yet settled, under a key that
    /// names the running total (so a retry repeats, and never adds to, the same refund), then
    /// records it as settled.
    async fn settle_refund(&self, r: Reservation) -> Result<(Reservation, Option<Refund>)> {
        let Some(p) = r.payment.as_deref() else { return Ok((r, None)) };
        if p.refunded <= p.refund_settled {
            return Ok((r, None));
        }
        let owed = Money::new(p.refunded - p.refund_settled, p.amount.currency);
        let key = format!("parq:{}:refund:{}:{}", r.id, p.refund_settled, p.refunded);
        let refund = self.inner.gateway.refund(&p.intent_id, owed, &key).await?;
        let mut u = Update::new(&r, StateSet::of(&[r.state]), r.state, EventKind::Refunded);
        u.payment = Some(PaymentRef { refund_settled: p.refunded, ..p.clone() });
        match self.write(u).await {
            Ok(r) => Ok((r, Some(refund))),
            // Settled by a concurrent call.
            Err(Error::StaleFence { .. }) => Ok((self.get(r.id).await?, Some(refund))),
            Err(e) => Err(e),
        }
    }

    // ----- changes -----------------------------------------------------------------------

    /// Cancels a reservation of `user`. A hold is released (and its payment voided); a
    /// confirmed reservation is refunded by the lot's policy. Repeating a cancellation
    /// finishes a refund that failed before, and never refunds twice.
    pub async fn cancel(&self, id: ReservationId, user: UserId) -> Result<Cancellation> {
        let r = self.get_for(id, user).await?;
        let now = self.now();
        let r = if r.state == S::Cancelled {
            r
        } else {
            let v = self.view(r.lot).await?;
            // A confirmed stay is refunded by the lot's policy; a hold keeps nothing, even when
            // its payment was authorised before the webhook arrived.
            let refund = match (&r.payment, r.state) {
                (Some(p), S::Confirmed) => v.lot.cancellation.refund(p.amount, &r.window, now),
                (Some(p), _) => p.amount,
                (None, _) => Money::zero(r.price.currency),
            };
            let mut u = Update::new(
                &r,
                StateSet::of(&[S::Held, S::PendingPayment, S::Confirmed]),
                S::Cancelled,
                EventKind::Cancelled,
            );
            // The policy's refund comes on top of earlier (goodwill) refunds, never beyond what
            // was paid.
            u.payment = r.payment.as_deref().map(|p| PaymentRef {
                refunded: (p.refunded + refund.minor).min(p.amount.minor),
                ..p.clone()
            });
            let r = self.write(u).await?;
            self.release_claim(r.lot, r.spot, r.id).await;
            self.inner.revocations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).revoke(
                r.id,
                None,
                RevocationReason::Cancelled,
                now,
            );
            r
        };
        let refunded = self.finish_cancellation(&r).await?;
        Ok(Cancellation { reservation: r, refunded })
    }

    /// Moves the money of a cancelled reservation as recorded: voids an uncaptured intent when
    /// nothing is kept, otherwise captures and refunds the recorded amount. Idempotent.
    async fn finish_cancellation(&self, r: &Reservation) -> Result<Money> {
        let Some(p) = r.payment.as_deref() else { return Ok(Money::zero(r.price.currency)) };
        let gw = &self.inner.gateway;
        let intent = gw.retrieve(&p.intent_id).await?;
        let nothing = Money::zero(p.amount.currency);
        let void_key = format!("parq:{}:cancel:{}", r.id, p.intent_id);
        match intent.status {
            // Voided: nothing was taken.
            IntentStatus::Canceled => Ok(nothing),
            IntentStatus::RequiresCapture if p.refunded >= p.amount.minor => {
                gw.cancel(&p.intent_id, &void_key).await?;
                Ok(nothing)
            }
            IntentStatus::RequiresCapture | IntentStatus::Succeeded => {
                if intent.status == IntentStatus::RequiresCapture {
                    gw.capture(&p.intent_id, &format!("parq:{}:capture:{}", r.id, p.intent_id)).await?;
                }
                let (r, _) = self.settle_refund(r.clone()).await?;
                Ok(r.payment.as_deref().map_or(nothing, |p| Money::new(p.refunded, p.amount.currency)))
            }
            // Never paid: void it so it cannot be paid later.
            _ => {
                gw.cancel(&p.intent_id, &void_key).await?;
                Ok(nothing)
            }
        }
    }

    /// Moves the end of a reservation of `user` to `new_end`, if the spot is free until then and
    /// the stay stays within the lot's rules. A hold is re-priced. A paid reservation may be
    /// extended when the extension costs nothing more (a daily cap, a flat rate); otherwise
    /// the extra time is booked as its own reservation.
    pub async fn extend(&self, id: ReservationId, user: UserId, new_end: Timestamp) -> Result<Reservation> {
        let r = self.get_for(id, user).await?;
        let v = self.view(r.lot).await?;
        if new_end <= r.window.end() {
            return Err(Error::invalid("end", "an extension must end after the current window"));
        }
        let window = Window::new(r.window.start(), new_end)?;
        v.lot.check_window(&window)?;
        let price = v.lot.rates.quote(&window)?;
        match r.state {
            S::Held => {}
            S::Confirmed | S::CheckedIn if price.minor <= r.price.minor => {}
            S::Confirmed | S::CheckedIn => {
                return Err(Error::invalid(
                    "end",
                    format!(
                        "the extension costs {} more; book the extra time as a new reservation",
                        price.checked_sub(r.price)?
                    ),
                ));
            }
            S::Expired => return Err(Error::HoldExpired { id }),
            from => return Err(Error::InvalidTransition { id, from, action: "extend" }),
        }
        let mut u = Update::new(&r, StateSet::of(&[r.state]), r.state, EventKind::Extended);
        u.window = Some(window);
        u.bump_fence = true;
        if r.state == S::Held {
            u.price = Some(price);
        }
        let r = self.write(u).await?;
        if let Some(lock) = &self.inner.lock {
            // The lock learns the longer window at its next rebuild; keep the claim meanwhile.
            let _ = lock
                .retain(r.lot, r.spot, r.id, if r.state == S::Held { Some(r.hold_expires_at) } else { None })
                .await;
        }
        Ok(r)
    }

    /// The signed access pass of a paid reservation of `user`.
    pub async fn issue_pass(&self, id: ReservationId, user: UserId) -> Result<Pass> {
        let r = self.get_for(id, user).await?;
        if !matches!(r.state, S::Confirmed | S::CheckedIn) {
            return Err(Error::InvalidTransition { id, from: r.state, action: "issue a pass" });
        }
        self.inner.keyring.read().unwrap_or_else(std::sync::PoisonError::into_inner).issue_for(&r)
    }

    /// The public keys a gate needs to verify passes offline.
    pub fn pass_keys(&self) -> crate::pass::PublicKeys {
        self.inner.keyring.read().unwrap_or_else(std::sync::PoisonError::into_inner).public_keys()
    }

    /// Revocations (cancelled reservations) after `version`, for gates to sync.
    pub fn revocations_since(&self, version: u64) -> RevocationDelta {
        self.inner.revocations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).since(version)
    }

    /// Decides a scan of a pass at a gate of `lot`, online, with the same rules as an offline
    /// [`GateVerifier`](crate::pass::GateVerifier), and records the entry or exit when allowed.
    /// A reading whose `scan_id` was already recorded is refused as `replayed` and changes
    /// nothing. A refusal is an answer, not an error.
    pub async fn scan(
        &self,
        text: &str,
        lot: LotId,
        direction: Direction,
        gate: &str,
        scan_id: Option<ScanId>,
    ) -> Result<Decision> {
        let claims = match self.pass_keys().verify(text) {
            Ok(c) => c,
            Err(e) => return Ok(Decision::Refuse(e.refusal())),
        };
        let r = match self.inner.store.get(claims.entitlement.reservation).await {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(Decision::Refuse(Refusal::Invalid)),
            Err(e) => return Err(e),
        };
        let revoked = self
            .inner
            .revocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_revoked(&claims);
        self.gate(r, claims.entitlement, revoked, lot, direction, gate, scan_id).await
    }

    /// Records a driver entering through `gate` of the reservation's lot without a pass (an
    /// attendant, a plate reader). `scan_id` identifies the reading: a repeated reading is
    /// refused as `replayed` and counts once.
    pub async fn check_in(&self, id: ReservationId, gate: &str, scan_id: &str) -> Result<Reservation> {
        self.gate_by_id(id, Direction::Entry, gate, scan_id).await
    }

    /// Records a driver leaving through `gate`; see [`check_in`](Self::check_in).
    pub async fn check_out(&self, id: ReservationId, gate: &str, scan_id: &str) -> Result<Reservation> {
        self.gate_by_id(id, Direction::Exit, gate, scan_id).await
    }

    async fn gate_by_id(
        &self,
        id: ReservationId,
        direction: Direction,
        gate: &str,
        scan_id: &str,
    ) -> Result<Reservation> {
        let r = self.inner.store.get(id).await?;
        let sid = ScanId(Sha256::digest(scan_id.as_bytes())[..16].try_into().expect("16 bytes"));
        let (lot, e) = (r.lot, Entitlement::from(&r));
        match self.gate(r, e, false, lot, direction, gate, Some(sid)).await? {
            Decision::Allow => self.inner.store.get(id).await,
            Decision::Refuse(reason) => Err(Error::ScanRefused { reason }),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn gate(
        &self,
        r: Reservation,
        entitlement: Entitlement,
        revoked: bool,
        lot: LotId,
        direction: Direction,
        gate: &str,
        scan_id: Option<ScanId>,
    ) -> Result<Decision> {
        let now = self.now();
        let v = self.view(r.lot).await?;
        let sessions = self.inner.store.sessions(r.id).await?;
        let sid = scan_id.map(|s| s.0.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut ctx = ScanContext::new(entitlement, v.lot.grace);
        ctx.revoked = revoked;
        ctx.presence = match sessions.last() {
            None => Presence::NotEntered,
            Some(s) if s.exited_at.is_none() => Presence::Inside,
            Some(_) => Presence::Left,
        };
        ctx.reservation_state = Some(r.state_at(now));
        ctx.reentry = self.inner.reentry;
        ctx.replayed = sid.as_ref().is_some_and(|id| {
            sessions.iter().any(|s| s.entry_scan.as_ref() == Some(id) || s.exit_scan.as_ref() == Some(id))
        });
        let scan = Scan { direction, lot, at: now, id: scan_id };
        let decision = decide(&scan, &ctx);
        if !decision.is_allowed() {
            return Ok(decision);
        }
        let mut u = match direction {
            Direction::Entry => {
                let mut u = Update::new(
                    &r,
                    StateSet::of(&[S::Confirmed, S::CheckedIn]),
                    S::CheckedIn,
                    EventKind::CheckedIn,
                );
                u.session = Some(SessionChange::Enter(GateSession {
                    id: SessionId::new(),
                    reservation: r.id,
                    entered_at: now,
                    entry_gate: gate.to_owned(),
                    exited_at: None,
                    exit_gate: None,
                    entry_scan: sid,
                    exit_scan: None,
                }));
                u
            }
            Direction::Exit => {
                // With re-entry allowed, the stay goes on until the window ends.
                let done = self.inner.reentry == ReentryPolicy::NotAllowed || now >= r.window.end();
                let to = if done { S::Completed } else { S::CheckedIn };
                let mut u = Update::new(&r, StateSet::of(&[S::CheckedIn]), to, EventKind::CheckedOut);
                u.session = Some(SessionChange::Exit { at: now, gate: gate.to_owned(), scan: sid });
                u
            }
        };
        // Two readings at once: the fence lets only the first through.
        u.bump_fence = true;
        match self.write(u).await {
            Ok(r) => {
                if r.state == S::Completed {
                    self.release_claim(r.lot, r.spot, r.id).await;
                }
                Ok(Decision::Allow)
            }
            Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) => {
                Ok(Decision::Refuse(match direction {
                    Direction::Entry => Refusal::AlreadyInside,
                    Direction::Exit => Refusal::NotInside,
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// The gate sessions of a reservation.
    pub async fn sessions(&self, id: ReservationId) -> Result<Vec<GateSession>> {
        self.inner.store.sessions(id).await
    }

    // ----- workers -----------------------------------------------------------------------

    /// One pass of the sweeper: marks lapsed holds expired (after asking the gateway whether
    /// they were paid after all) and releases no-shows. Safe to run from several processes.
    pub async fn sweep(&self, batch: usize) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        let now = self.now();
        for r in self.inner.store.lapsed_holds(now, batch).await? {
            match self.expire(r).await {
                Ok(true) => report.expired += 1,
                Ok(false) => report.settled += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "sweep: could not expire a hold; next sweep retries");
                    report.failed += 1;
                }
            }
        }
        for r in self.inner.store.unclaimed_before(now, batch).await? {
            let v = match self.view(r.lot).await {
                Ok(v) => v,
                Err(_) => {
                    report.failed += 1;
                    continue;
                }
            };
            // Counted from the start, or from the booking when it was made after the start.
            if r.window.start().max(r.created_at) + v.lot.grace > now {
                continue;
            }
            let u = Update::new(&r, StateSet::of(&[S::Confirmed]), S::NoShow, EventKind::NoShow);
            match self.write(u).await {
                Ok(r) => {
                    report.no_shows += 1;
                    self.release_claim(r.lot, r.spot, r.id).await;
                }
                Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) => {}
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }

    /// Expires one lapsed hold; `Ok(false)` when it turned out to be paid and was settled.
    async fn expire(&self, r: Reservation) -> Result<bool> {
        if let Some(p) = r.payment.as_deref() {
            let intent = self.inner.gateway.retrieve(&p.intent_id).await?;
            let kind = match intent.status {
                IntentStatus::RequiresCapture => Some(PaymentEventKind::Authorized),
                IntentStatus::Succeeded => Some(PaymentEventKind::Succeeded),
                _ => None,
            };
            if let Some(kind) = kind {
                let ev = PaymentEvent {
                    id: format!("reconcile:{}:{:?}", intent.id, intent.status),
                    intent_id: intent.id,
                    reservation: r.id,
                    kind,
                };
                self.apply_payment(ev).await?;
                return Ok(false);
            }
            if intent.status != IntentStatus::Canceled {
                self.inner
                    .gateway
                    .cancel(&p.intent_id, &format!("parq:{}:expire:{}", r.id, p.intent_id))
                    .await?;
            }
        }
        let mut u = Update::new(&r, StateSet::of(&[S::Expired]), S::Expired, EventKind::Expired);
        u.bump_fence = true;
        match self.write(u).await {
            Ok(r) => {
                self.release_claim(r.lot, r.spot, r.id).await;
                Ok(true)
            }
            // Another sweeper, or a payment, got there first.
            Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Issues a refund of a confirmed reservation outside the cancellation policy (operator
    /// goodwill); `amount` is capped by what was captured and not yet refunded.
    pub async fn refund(&self, id: ReservationId, amount: Money) -> Result<Refund> {
        let r = self.inner.store.get(id).await?;
        let p = r.payment.as_deref().ok_or_else(|| Error::invalid("payment", "nothing was paid"))?;
        if !p.captured || amount.minor <= 0 || p.refunded + amount.minor > p.amount.minor {
            return Err(Error::invalid(
                "amount",
                "must be positive and at most what was captured and not refunded",
            ));
        }
        let mut u = Update::new(&r, StateSet::of(&[r.state]), r.state, EventKind::Refunded);
        u.payment = Some(PaymentRef { refunded: p.refunded + amount.minor, ..p.clone() });
        let r = self.write(u).await?;
        let (_, refund) = self.settle_refund(r).await?;
        refund.ok_or_else(|| Error::invalid("amount", "nothing is owed"))
    }
}
