//! The offline gate: public keys, a revocation list, and its own memory of who is inside.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::catalog::Lot;
use crate::ids::ReservationId;
use crate::pass::rules::entry_closes;
use crate::pass::{
    Decision, Direction, Entitlement, PassClaims, PassError, Presence, PublicKeys, ReentryPolicy,
    RevocationDelta, RevocationList, Scan, ScanContext, ScanId, decide,
};

/// The rules of the lot a gate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatePolicy {
    /// The lot's grace around each window.
    pub grace: SignedDuration,
    /// Whether a reservation may enter again after leaving.
    pub reentry: ReentryPolicy,
}

impl GatePolicy {
    /// The policy of `lot`: its grace and its re-entry rule.
    pub fn for_lot(lot: &Lot) -> Self {
        Self { grace: lot.grace, reentry: lot.reentry }
    }
}

/// What a gate remembers between scans: revocations and the visits it let through. Persist it
/// ([`GateVerifier::state`]) to survive a restart without losing who is inside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateState {
    revocations: RevocationList,
    visits: HashMap<ReservationId, Visit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Visit {
    presence: Presence,
    /// After this instant the reservation can no longer enter, so the memory may be dropped
    /// once the vehicle is out.
    entry_closes: Timestamp,
    /// Readings already allowed.
    scans: Vec<ScanId>,
}

/// Verifies passes at a gate without a network.
///
/// It holds the issuer's public keys, a copy of the revocation list (brought up to date with
/// [`apply_revocations`](Self::apply_revocations) whenever the network allows), and its own
/// memory of which reservations are inside. Each scan is decided by [`decide`], the same rules
/// the online check-in uses. An allowed entry marks the reservation inside and an allowed exit
/// marks it out, so an entry is used once; a reading with a [`ScanId`] that was already
/// allowed is refused as replayed and changes nothing.
///
/// The memory is this verifier's own: gates of one lot that should share presence must share
/// one verifier (or its [`state`](Self::state)). Methods take `&self`; it is safe to share
/// between threads.
#[derive(Debug)]
pub struct GateVerifier {
    keys: RwLock<PublicKeys>,
    policy: GatePolicy,
    state: Mutex<GateState>,
}

impl GateVerifier {
    /// A verifier trusting `keys`, for a lot with `policy`, with an empty memory.
    pub fn new(keys: PublicKeys, policy: GatePolicy) -> Self {
        Self::with_state(keys, policy, GateState::default())
    }

    /// A verifier that resumes from a saved `state`.
    pub fn with_state(keys: PublicKeys, policy: GatePolicy, state: GateState) -> Self {
        Self { keys: RwLock::new(keys), policy, state: Mutex::new(state) }
    }

    /// Decides a scan of a pass's text, and remembers it when allowed.
    pub fn scan(&self, text: &str, scan: &Scan) -> Decision {
        let verified = self.keys.read().unwrap_or_else(|p| p.into_inner()).verify(text);
        match verified {
            Ok(claims) => self.scan_claims(&claims, scan),
            Err(e) => Decision::Refuse(e.refusal()),
        }
    }

    /// Decides a scan of an already verified pass, and remembers it when allowed.
    pub fn scan_claims(&self, claims: &PassClaims, scan: &Scan) -> Decision {
        let mut state = self.lock();
        let e = claims.entitlement;
        let visit = state.visits.get(&e.reservation);
        let mut ctx = ScanContext::new(e, self.policy.grace);
        ctx.revoked = state.revocations.is_revoked(claims);
        ctx.presence = visit.map_or(Presence::NotEntered, |v| v.presence);
        ctx.reentry = self.policy.reentry;
        ctx.replayed = scan.id.is_some_and(|id| visit.is_some_and(|v| v.scans.contains(&id)));
        let decision = decide(scan, &ctx);
        if decision.is_allowed() {
            let presence = match scan.direction {
                Direction::Entry => Presence::Inside,
                Direction::Exit => Presence::Left,
            };
            let visit = remember(&mut state, &e, self.policy.grace, presence);
            visit.scans.extend(scan.id);
        }
        decision
    }

    /// Replaces the trusted public keys (after a rotation or a retirement).
    pub fn set_public_keys(&self, keys: PublicKeys) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// Applies revocations fetched from the issuer with [`RevocationList::since`]
    /// ([`revocation_version`](Self::revocation_version) says which version to ask for) and
    /// returns how many were new.
    pub fn apply_revocations(&self, delta: &RevocationDelta) -> Result<usize, PassError> {
        self.lock().revocations.apply(delta)
    }

    /// The highest revocation version this gate holds.
    pub fn revocation_version(&self) -> u64 {
        self.lock().revocations.version()
    }

    /// Where this gate believes the reservation's vehicle is.
    pub fn presence(&self, reservation: ReservationId) -> Presence {
        self.lock().visits.get(&reservation).map_or(Presence::NotEntered, |v| v.presence)
    }

    /// Records where a reservation's vehicle is, as learnt elsewhere (another gate, the
    /// server, an operator's manual opening).
    pub fn record_presence(&self, entitlement: &Entitlement, presence: Presence) {
        remember(&mut self.lock(), entitlement, self.policy.grace, presence);
    }

    /// Forgets reservations whose vehicle is not inside and that can no longer enter at
    /// `now`; returns how many were forgotten. Call it now and then to bound the memory.
    pub fn prune(&self, now: Timestamp) -> usize {
        let mut state = self.lock();
        let before = state.visits.len();
        state.visits.retain(|_, v| v.presence == Presence::Inside || v.entry_closes > now);
        before - state.visits.len()
    }

    /// A copy of the gate's memory, to persist.
    pub fn state(&self) -> GateState {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn remember<'s>(
    state: &'s mut GateState,
    e: &Entitlement,
    grace: SignedDuration,
    presence: Presence,
) -> &'s mut Visit {
    let closes = entry_closes(e, grace);
    let visit = state.visits.entry(e.reservation).or_insert_with(|| Visit {
        presence,
        entry_closes: closes,
        scans: Vec::new(),
    });
    visit.presence = presence;
    visit.entry_closes = visit.entry_closes.max(closes);
    visit
}
