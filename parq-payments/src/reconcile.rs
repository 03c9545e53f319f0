//! The reconciler: resolves reservations left in `pending_payment` by asking the gateway,
//! for when a webhook was lost, delayed, or refused.

use jiff::SignedDuration;
use parq_core::{Engine, Error, IntentStatus, PaymentEvent, PaymentEventKind, ReservationState, Result};

/// How many holds one pass looks at.
pub const BATCH: usize = 500;

/// What one pass of [`reconcile`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Pending reservations whose intent was authorised or captured: confirmed (and captured),
    /// or, when the reservation could no longer be had, given back.
    pub confirmed: usize,
    /// Pending reservations whose intent was cancelled: back to `held`, so the driver may pay
    /// again before the hold lapses.
    pub reverted: usize,
    /// Pending reservations the driver has not paid yet: left alone.
    pub unpaid: usize,
    /// From the sweep that follows: lapsed holds marked expired (their intents voided).
    pub expired: usize,
    /// From the sweep: lapsed holds found paid and settled.
    pub settled: usize,
    /// Items that failed and will be tried again by the next pass.
    pub failed: usize,
}

/// One pass of the reconciler.
///
/// Asks the gateway about every reservation that has been in `pending_payment` for at least
/// `older_than` (counted from its creation), and applies what the provider says through
/// [`Engine::apply_payment`], exactly like a webhook would:
/// - authorised or captured → confirmed and captured (or voided/refunded when the
///   reservation cannot be had);
/// - cancelled → back to `held`;
/// - anything else → left for the driver, or for expiry.
///
/// It then runs one [`Engine::sweep`], which expires lapsed holds after asking the gateway
/// whether they were paid after all. Synthesised events have the same ids as the sweeper's
/// (`reconcile:<intent>:<status>`), so a reconciler, a sweeper and a late webhook racing each
/// other change a reservation once. Safe to run from several processes.
///
/// The pass looks at the [`BATCH`] holds with the earliest deadlines; run it periodically.
///
/// # Errors
/// Only when the store cannot list holds; failures of single reservations are counted in
/// [`ReconcileReport::failed`] and logged.
pub async fn reconcile(engine: &Engine, older_than: SignedDuration) -> Result<ReconcileReport> {
    let mut report = ReconcileReport::default();
    let now = engine.now();
    let cutoff = now - older_than;
    // Every hold, earliest deadline first: `lapsed_holds` lists holds whose deadline is at or
    // before the instant given, and no hold lasts a year.
    let holds = engine.store().lapsed_holds(now + SignedDuration::from_hours(24 * 366), BATCH).await?;
    for r in holds {
        if r.state != ReservationState::PendingPayment || r.created_at > cutoff {
            continue;
        }
        let Some(payment) = r.payment.as_deref() else { continue };
        let intent = match engine.gateway().retrieve(&payment.intent_id).await {
            Ok(intent) => intent,
            Err(e) => {
                tracing::warn!(reservation = %r.id, intent = %payment.intent_id, error = %e, "reconcile: cannot ask the gateway");
                report.failed += 1;
                continue;
            }
        };
        let kind = match intent.status {
            IntentStatus::RequiresCapture => PaymentEventKind::Authorized,
            IntentStatus::Succeeded => PaymentEventKind::Succeeded,
            IntentStatus::Canceled => PaymentEventKind::Canceled,
            _ => {
                report.unpaid += 1;
                continue;
            }
        };
        let event = PaymentEvent {
            id: format!("reconcile:{}:{:?}", intent.id, intent.status),
            intent_id: intent.id,
            reservation: r.id,
            kind,
        };
        let canceled = matches!(event.kind, PaymentEventKind::Canceled);
        match engine.apply_payment(event).await {
            Ok(_) if canceled => report.reverted += 1,
            Ok(_) => report.confirmed += 1,
            // The reservation moved on meanwhile (a webhook, a sweeper): nothing left to do.
            Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) => {}
            Err(e) => {
                tracing::warn!(reservation = %r.id, error = %e, "reconcile: could not apply the provider's state");
                report.failed += 1;
            }
        }
    }
    let swept = engine.sweep(BATCH).await?;
    report.expired = swept.expired;
    report.settled = swept.settled;
    report.failed += swept.failed;
    Ok(report)
}
