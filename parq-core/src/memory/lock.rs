//! `MemoryLock`: an in-process [`AdmissionLock`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;

use crate::error::{ConflictReason, Error, Result};
use crate::ids::{LotId, ReservationId, SpotId};
use crate::ports::lock::{AdmissionLock, Claim, Granted, HeldClaim};
use crate::time::{Clock, Window};

#[derive(Debug, Clone)]
struct Held {
    window: Window,
    token: ReservationId,
    /// `None`: until the window ends.
    until: Option<Timestamp>,
    fence: u64,
}

#[derive(Debug, Default)]
struct SpotClaims {
    fence: u64,
    claims: Vec<Held>,
}

/// An [`AdmissionLock`] in process memory, with the same semantics as the Redis one: per-spot
/// claims with deadlines read from the given clock, and per-spot fencing counters.
#[derive(Debug)]
pub struct MemoryLock {
    clock: Arc<dyn Clock>,
    lots: Mutex<HashMap<LotId, HashMap<SpotId, SpotClaims>>>,
}

impl MemoryLock {
    /// A lock whose deadlines follow `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, lots: Mutex::default() }
    }
}

fn alive(h: &Held, now: Timestamp) -> bool {
    match h.until {
        Some(t) => t > now,
        None => h.window.end() > now,
    }
}

#[async_trait]
impl AdmissionLock for MemoryLock {
    async fn claim(&self, c: &Claim) -> Result<Granted> {
        let now = self.clock.now();
        let until = now.checked_add(c.ttl).map_err(|e| Error::invalid("ttl", e.to_string()))?;
        let mut lots = self.lots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lot = lots.entry(c.lot).or_default();
        for spot in &c.candidates {
            let s = lot.entry(*spot).or_default();
            s.claims.retain(|h| alive(h, now));
            if let Some(mine) = s.claims.iter().find(|h| h.token == c.token && h.window == c.window) {
                return Ok(Granted { spot: *spot, fence: mine.fence });
            }
            if s.claims.iter().any(|h| h.window.overlaps(&c.window)) {
                continue;
            }
            s.fence += 1;
            s.claims.push(Held { window: c.window, token: c.token, until: Some(until), fence: s.fence });
            return Ok(Granted { spot: *spot, fence: s.fence });
        }
        Err(Error::Conflict { reason: ConflictReason::Claimed })
    }

    async fn retain(
        &self,
        lot: LotId,
        spot: SpotId,
        token: ReservationId,
        until: Option<Timestamp>,
    ) -> Result<bool> {
        let mut lots = self.lots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = lots
            .get_mut(&lot)
            .and_then(|l| l.get_mut(&spot))
            .and_then(|s| s.claims.iter_mut().find(|h| h.token == token));
        Ok(held.map(|h| h.until = until).is_some())
    }

    async fn release(&self, lot: LotId, spot: SpotId, token: ReservationId) -> Result<bool> {
        let mut lots = self.lots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(s) = lots.get_mut(&lot).and_then(|l| l.get_mut(&spot)) else { return Ok(false) };
        let before = s.claims.len();
        s.claims.retain(|h| h.token != token);
        Ok(s.claims.len() != before)
    }

    async fn rebuild(&self, lot: LotId, claims: &[HeldClaim]) -> Result<()> {
        let mut lots = self.lots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = lots.entry(lot).or_default();
        for s in l.values_mut() {
            s.claims.clear();
        }
        for c in claims {
            let s = l.entry(c.spot).or_default();
            s.fence = s.fence.max(c.fence);
            s.claims.push(Held { window: c.window, token: c.token, until: c.until, fence: c.fence });
        }
        Ok(())
    }
}
