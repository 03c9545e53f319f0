//! Passes and gates: issuing passes, scans, check-in and check-out, sessions.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::{LotId, ReservationId, SessionId, UserId};
use crate::pass::{
    Decision, Direction, Entitlement, Pass, Presence, ReentryPolicy, Refusal, RevocationDelta, Scan,
    ScanContext, ScanId, decide,
};
use crate::ports::store::{SessionChange, Update};
use crate::reservation::{EventKind, GateSession, Reservation, ReservationState as S, StateSet};

use super::Engine;

impl Engine {
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
}
