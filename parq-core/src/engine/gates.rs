//! Passes and gates: issuing passes, scans, check-in and check-out, sessions.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::{LotId, ReservationId, SessionId, UserId};
use crate::pass::{
    Decision, Direction, Entitlement, MAX_SCAN_ID_LEN, OfflineScan, Pass, Presence, ReentryPolicy, Refusal,
    RevocationDelta, Scan, ScanContext, ScanId, ScanRecord, decide,
};
use crate::ports::store::{SessionChange, Update};
use crate::reservation::{EventKind, GateSession, Reservation, ReservationState as S, StateSet};

use super::Engine;

/// One reading at a gate, as [`Engine::gate`] decides it.
struct Reading<'a> {
    lot: LotId,
    direction: Direction,
    gate: &'a str,
    scan_id: Option<ScanId>,
    /// When it happened (now online; the gate's time offline).
    at: jiff::Timestamp,
    /// Offline: whether the gate let the vehicle through. `None` online.
    offline: Option<bool>,
}

/// The reading id stored with a gate session for a reader's scan id (the same for an online
/// scan and an uploaded one, so a reading sent both ways counts once).
pub(crate) fn scan_id_of(scan_id: &str) -> ScanId {
    ScanId(Sha256::digest(scan_id.as_bytes())[..16].try_into().expect("16 bytes"))
}

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

    /// Revocations (cancelled reservations) after `version`, at most `limit`, for gates to
    /// sync: read from the store, so every replica and every restart gives the same answer.
    /// When `to` is below the latest version (the page was full), ask again from `to`.
    pub async fn revocations_since(&self, version: u64, limit: usize) -> Result<RevocationDelta> {
        self.inner.store.revocations(version, limit).await
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
        let revoked = self.inner.store.revocations_of(r.id).await?.iter().any(|v| v.covers(&claims));
        let reading = Reading { lot, direction, gate, scan_id, at: self.now(), offline: None };
        Ok(self.gate(r, claims.entitlement, revoked, reading).await?.0)
    }

    /// Records a reading that an offline gate acted on and uploads later, and returns what the
    /// issuer made of it ([`ScanRecord`]). The rules are applied at the gate's time with what
    /// the issuer knows: a pass counts as revoked when a revocation covering it was made before
    /// the reading. When the gate and the rules both allow it, the entry or exit is recorded on
    /// the reservation at the gate's time; a disagreement is reported as a
    /// [`conflict`](ScanRecord::conflict) and changes no reservation.
    ///
    /// Idempotent by `(lot, scan_id)`: a reading uploaded again returns its first record and
    /// changes nothing. A reading whose entry or exit was already recorded (the same scan id
    /// sent online) counts once.
    ///
    /// # Errors
    /// [`Invalid`](Error::Invalid) for a scan id or gate name that is empty, too long or holds a
    /// control character;
    /// `NotFound` for an unknown lot; backend errors.
    pub async fn record_offline_scan(&self, s: &OfflineScan) -> Result<ScanRecord> {
        let bad =
            |t: &str, max: usize| t.trim().is_empty() || t.len() > max || t.chars().any(char::is_control);
        if bad(&s.scan_id, MAX_SCAN_ID_LEN) {
            return Err(Error::invalid("scan_id", "must be 1 to 128 characters, none a control"));
        }
        if bad(&s.gate, 64) {
            return Err(Error::invalid("gate", "must be 1 to 64 characters, none a control"));
        }
        if let Some(done) = self.inner.store.scan_record(s.lot, &s.scan_id).await? {
            return Ok(done);
        }
        self.view(s.lot).await?;
        let mut rec = ScanRecord {
            scan_id: s.scan_id.clone(),
            lot: s.lot,
            gate: s.gate.clone(),
            direction: s.direction,
            at: s.at,
            reservation: None,
            gate_decision: s.gate_decision,
            decision: Decision::Refuse(Refusal::Invalid),
            applied: false,
            conflict: None,
            recorded_at: self.now(),
        };
        match self.pass_keys().verify(s.pass.trim()) {
            Err(e) => rec.decision = Decision::Refuse(e.refusal()),
            Ok(claims) => match self.inner.store.get(claims.entitlement.reservation).await {
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
                Ok(r) => {
                    rec.reservation = Some(r.id);
                    let revoked = self
                        .inner
                        .store
                        .revocations_of(r.id)
                        .await?
                        .iter()
                        .any(|v| v.covers(&claims) && v.at <= s.at);
                    let reading = Reading {
                        lot: s.lot,
                        direction: s.direction,
                        gate: s.gate.trim(),
                        scan_id: Some(scan_id_of(&s.scan_id)),
                        at: s.at,
                        offline: Some(s.gate_decision.is_allowed()),
                    };
                    (rec.decision, rec.applied) = self.gate(r, claims.entitlement, revoked, reading).await?;
                }
            },
        }
        rec.conflict = ScanRecord::conflict_of(&rec.gate_decision, &rec.decision);
        self.inner.store.record_scan(&rec).await
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
        let sid = scan_id_of(scan_id);
        let (lot, e) = (r.lot, Entitlement::from(&r));
        let reading = Reading { lot, direction, gate, scan_id: Some(sid), at: self.now(), offline: None };
        match self.gate(r, e, false, reading).await?.0 {
            Decision::Allow => self.inner.store.get(id).await,
            Decision::Refuse(reason) => Err(Error::ScanRefused { reason }),
        }
    }

    /// Decides a reading and, when allowed, records it; returns the decision and whether the
    /// entry or exit was recorded.
    async fn gate(
        &self,
        r: Reservation,
        entitlement: Entitlement,
        revoked: bool,
        reading: Reading<'_>,
    ) -> Result<(Decision, bool)> {
        let Reading { lot, direction, gate, scan_id, at: now, offline } = reading;
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
        ctx.reservation_state = match r.state_at(now) {
            // Cancelled after an offline reading: at the gate's time the reservation stood.
            S::Cancelled if offline.is_some() && !revoked => None,
            state => Some(state),
        };
        ctx.reentry = v.lot.reentry;
        ctx.replayed = sid.as_ref().is_some_and(|id| {
            sessions.iter().any(|s| s.entry_scan.as_ref() == Some(id) || s.exit_scan.as_ref() == Some(id))
        });
        let scan = Scan { direction, lot, at: now, id: scan_id };
        let decision = decide(&scan, &ctx);
        if offline.is_some() && decision == Decision::Refuse(Refusal::Replayed) {
            // This very reading was already recorded (sent online, or an earlier upload).
            return Ok((Decision::Allow, true));
        }
        if !decision.is_allowed() || offline == Some(false) {
            return Ok((decision, false));
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
                let done = v.lot.reentry == ReentryPolicy::NotAllowed || now >= r.window.end();
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
                Ok((Decision::Allow, true))
            }
            // Offline, the rules allowed the reading at the gate's time, but the reservation
            // has moved on since (cancelled, completed): the reading is logged, not applied.
            Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) if offline.is_some() => {
                Ok((Decision::Allow, false))
            }
            Err(Error::StaleFence { .. } | Error::InvalidTransition { .. }) => Ok((
                Decision::Refuse(match direction {
                    Direction::Entry => Refusal::AlreadyInside,
                    Direction::Exit => Refusal::NotInside,
                }),
                false,
            )),
            Err(e) => Err(e),
        }
    }

    /// The gate sessions of a reservation.
    pub async fn sessions(&self, id: ReservationId) -> Result<Vec<GateSession>> {
        self.inner.store.sessions(id).await
    }
}
