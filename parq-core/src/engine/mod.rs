//! The engine: every rule of ParQ, over the ports.
//!
//! [`Engine`] is one type; its methods are grouped by concern in this module's files:
//! the catalog (`catalog.rs`), reading and pricing (`reads.rs`), holds (`holds.rs`), payments
//! and cancellations (`payments.rs`), passes and gates (`gates.rs`) and the sweeper
//! (`sweeping.rs`). This file holds the engine, its builder and the helpers they share.

mod catalog;
mod gates;
mod holds;
mod payments;
mod reads;
mod sweeping;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::{Lot, Operator, Spot};
use crate::error::{Error, Result};
use crate::ids::{LotId, ReservationId, SpotId, UserId};
use crate::memory::BroadcastNotifier;
use crate::pass::PassKeyring;
use crate::ports::lock::DynAdmissionLock;
use crate::ports::notifier::DynNotifier;
use crate::ports::payment::DynPaymentGateway;
use crate::ports::store::{DynReservationStore, IdempotencyClaim, Update, Written};
use crate::reservation::Reservation;
use crate::time::{DynClock, SystemClock};

pub use holds::{Held, HoldSpec, SpotChoice};
pub use payments::{Cancellation, Checkout};
pub use reads::{Availability, LotMatch, Quote, SpotStatus};
pub use sweeping::SweepReport;

/// How long the engine trusts its cached copy of a lot and its spots (by the engine's clock;
/// the engine's own catalog writes refresh it at once).
const CATALOG_TTL: SignedDuration = SignedDuration::from_secs(5);

#[derive(Debug)]
struct LotView {
    lot: Lot,
    operator: Operator,
    spots: Vec<Spot>,
    spot_ids: HashSet<SpotId, crate::ids::IdHash>,
    fetched: Timestamp,
}

/// Builds an [`Engine`] from its ports; made by [`Engine::builder`], which takes the two
/// required ones (the store and the payment gateway).
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct EngineBuilder {
    store: Arc<DynReservationStore>,
    lock: Option<Arc<DynAdmissionLock>>,
    gateway: Arc<DynPaymentGateway>,
    notifier: Arc<DynNotifier>,
    clock: Arc<DynClock>,
    keyring: Option<PassKeyring>,
}

impl EngineBuilder {
    /// The keyring that signs access passes (default: a fresh random key with id 1). Whether
    /// a driver may leave and come back is each lot's [`reentry`](Lot::reentry) policy.
    pub fn passes(mut self, keyring: PassKeyring) -> Self {
        self.keyring = Some(keyring);
        self
    }
    /// Puts an admission lock in front of the store.
    pub fn lock(mut self, lock: Arc<DynAdmissionLock>) -> Self {
        self.lock = Some(lock);
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
    /// The engine.
    ///
    /// # Panics
    /// When no keyring was given and the operating system provides no randomness for one.
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
    /// An engine over `store` that takes payments through `gateway`, with a
    /// [`BroadcastNotifier`], the [`SystemClock`], no admission lock and a fresh pass key until
    /// set.
    ///
    /// There is no default gateway: a deployment picks its provider (the Stripe gateway of
    /// `parq-payments`), and tests and demos pick a [`TestGateway`](crate::memory::TestGateway)
    /// with a webhook secret of their own.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use parq_core::Engine;
    /// use parq_core::memory::{MemoryStore, TestGateway};
    ///
    /// let gateway = Arc::new(TestGateway::new(b"whsec_my_demo".to_vec()));
    /// let engine = Engine::builder(Arc::new(MemoryStore::new()), gateway).build();
    /// # let _ = engine;
    /// ```
    pub fn builder(store: Arc<DynReservationStore>, gateway: Arc<DynPaymentGateway>) -> EngineBuilder {
        EngineBuilder {
            store,
            lock: None,
            gateway,
            notifier: Arc::new(BroadcastNotifier::default()),
            clock: Arc::new(SystemClock),
            keyring: None,
        }
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
}
