//! Payments: checkout, webhooks, capture, refunds and cancellations.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{ReservationId, UserId};
use crate::money::Money;
use crate::pass::RevocationReason;
use crate::ports::payment::{
    IntentRequest, IntentStatus, PaymentEvent, PaymentEventKind, PaymentIntent, Refund,
};
use crate::ports::store::{IdempotencyClaim, NewRevocation, Update};
use crate::reservation::{EventKind, PaymentRef, Reservation, ReservationState as S, StateSet};

use super::{Engine, fingerprint};

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

impl Engine {
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
        let intent = belongs(gw.retrieve(intent_id).await?, id)?;
        let key = format!("parq:{id}:giveback:{intent_id}");
        let taken =
            intent.status == IntentStatus::Succeeded || (captured && intent.status != IntentStatus::Canceled);
        if !record_here {
            // A second payment for a reservation that another one already paid: give it back.
            match intent.status {
                IntentStatus::Canceled => {}
                _ if taken => {
                    let key = format!("parq:{id}:giveback-refund:{intent_id}");
                    gw.refund(intent_id, id, amount, &key).await?;
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
        let refund = self.inner.gateway.refund(&p.intent_id, r.id, owed, &key).await?;
        let mut u = Update::new(&r, StateSet::of(&[r.state]), r.state, EventKind::Refunded);
        u.payment = Some(PaymentRef { refund_settled: p.refunded, ..p.clone() });
        match self.write(u).await {
            Ok(r) => Ok((r, Some(refund))),
            // Settled by a concurrent call.
            Err(Error::StaleFence { .. }) => Ok((self.get(r.id).await?, Some(refund))),
            Err(e) => Err(e),
        }
    }

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
            // The passes are revoked in the same atomic step as the cancellation.
            u.revoke = Some(NewRevocation { pass: None, reason: RevocationReason::Cancelled });
            let r = self.write(u).await?;
            self.release_claim(r.lot, r.spot, r.id).await;
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
        let intent = belongs(gw.retrieve(&p.intent_id).await?, r.id)?;
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

/// The intent, when the provider says it was made for `reservation`; money of another
/// reservation's intent is never moved on this one's behalf.
fn belongs(intent: PaymentIntent, reservation: ReservationId) -> Result<PaymentIntent> {
    match intent.reservation {
        Some(r) if r != reservation => Err(Error::invalid(
            "payment",
            format!("intent {} pays for reservation {r}, not {reservation}", intent.id),
        )),
        _ => Ok(intent),
    }
}
