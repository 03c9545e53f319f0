//! `FailoverLock`: the Redis lock while Redis is healthy, nothing otherwise.

use async_trait::async_trait;
use parq_core::jiff::{SignedDuration, Timestamp};
use parq_core::{
    AdmissionLock, Claim, DynReservationStore, Error, Granted, HeldClaim, LotId, ReservationId, Result,
    SpotId, Window,
};

use crate::health::{Health, RedisHealth};
use crate::lock::RedisLock;

/// An [`AdmissionLock`] that uses a [`RedisLock`] only while its [`RedisHealth`] says
/// [`Health::Warm`], and otherwise answers at once with a retryable
/// [`Unavailable`](Error::Unavailable), so the engine holds through the store alone (the store
/// is the arbiter either way). A call that finds Redis unreachable reports it to the checker,
/// so the next calls skip Redis without waiting for the next check; Redis is then trusted
/// again only after [`rebuild_from`](Self::rebuild_from).
#[derive(Debug, Clone)]
pub struct FailoverLock {
    lock: RedisLock,
    health: RedisHealth,
}

/// How far ahead [`FailoverLock::rebuild_from`] looks for live reservations.
const HORIZON: SignedDuration = SignedDuration::from_hours(24 * 366 * 20);

impl FailoverLock {
    /// The failover lock over `lock`, trusting it per `health` (run [`RedisHealth::spawn`]).
    pub fn new(lock: RedisLock, health: RedisHealth) -> Self {
        Self { lock, health }
    }

    /// The health checker.
    pub fn health(&self) -> &RedisHealth {
        &self.health
    }

    /// The Redis lock.
    pub fn redis_lock(&self) -> &RedisLock {
        &self.lock
    }

    fn gate(&self) -> Result<()> {
        match self.health.state() {
            Health::Warm => Ok(()),
            h => Err(Error::unavailable(format!("redis is {h}; the store decides alone"), None)),
        }
    }

    fn seen<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && e.is_retryable()
        {
            self.health.report_unreachable();
        }
        r
    }

    /// Rebuilds the lock's view of `lots` from the store, then marks Redis warm: reads each
    /// lot's live holds and confirmed reservations (`live_in_lot` from a day ago to twenty years
    /// ahead), replaces the lot's claims with them (holds until their deadline, confirmed ones
    /// until their window ends, each with its fence), and raises the fencing counters.
    ///
    /// Give every lot that may have claims. A hold written through the store while this runs
    /// may be missing from Redis afterwards; that costs only a wasted claim later (the store
    /// refuses the overlap), never a double booking.
    pub async fn rebuild_from(&self, store: &DynReservationStore, lots: &[LotId]) -> Result<()> {
        let ticket = self.health.begin_rebuild().await?;
        for &lot in lots {
            let now = self.lock.clock().now();
            let wide = Window::new(
                now - SignedDuration::from_hours(24),
                now.checked_add(HORIZON).unwrap_or(Timestamp::MAX),
            )?;
            let claims: Vec<HeldClaim> = store
                .live_in_lot(lot, &wide, now)
                .await?
                .into_iter()
                .map(|r| HeldClaim {
                    spot: r.spot,
                    window: r.window,
                    token: r.id,
                    until: r.state.is_hold().then_some(r.hold_expires_at),
                    fence: r.fence,
                })
                .collect();
            self.lock.rebuild(lot, &claims).await?;
        }
        self.health.mark_warm(ticket).await
    }
}

#[async_trait]
impl AdmissionLock for FailoverLock {
    async fn claim(&self, claim: &Claim) -> Result<Granted> {
        self.gate()?;
        self.seen(self.lock.claim(claim).await)
    }

    async fn retain(
        &self,
        lot: LotId,
        spot: SpotId,
        token: ReservationId,
        until: Option<Timestamp>,
    ) -> Result<bool> {
        self.gate()?;
        self.seen(self.lock.retain(lot, spot, token, until).await)
    }

    async fn release(&self, lot: LotId, spot: SpotId, token: ReservationId) -> Result<bool> {
        self.gate()?;
        self.seen(self.lock.release(lot, spot, token).await)
    }

    async fn rebuild(&self, lot: LotId, claims: &[HeldClaim]) -> Result<()> {
        self.seen(self.lock.rebuild(lot, claims).await)
    }
}
