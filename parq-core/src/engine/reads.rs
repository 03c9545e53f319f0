//! Reading: prices, reservations, availability, search and live events.

use std::collections::HashSet;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::catalog::{GeoPoint, Lot, Spot, SpotFilter};
use crate::error::{Error, Result};
use crate::ids::{LotId, ReservationId, SpotId, UserId};
use crate::money::Money;
use crate::ports::notifier::EventStream;
use crate::reservation::Reservation;
use crate::time::Window;

use super::Engine;

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

impl Engine {
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
}
