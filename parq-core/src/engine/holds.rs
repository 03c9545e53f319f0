//! Holds, and moving the end of a reservation.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::catalog::SpotFilter;
use crate::error::{ConflictReason, Error, Result};
use crate::ids::{LotId, ReservationId, SpotId, UserId};
use crate::ports::lock::Claim;
use crate::ports::store::{HoldLimits, HoldRequest, HoldTarget, Update};
use crate::reservation::{EventKind, Reservation, ReservationState as S, StateSet};
use crate::time::Window;

use super::{Engine, user_claim};

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

impl Engine {
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
}
