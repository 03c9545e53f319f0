//! The sweeper: expiring lapsed holds and releasing no-shows.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ports::payment::{IntentStatus, PaymentEvent, PaymentEventKind};
use crate::ports::store::Update;
use crate::reservation::{EventKind, Reservation, ReservationState as S, StateSet};

use super::Engine;

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

impl Engine {
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
}
