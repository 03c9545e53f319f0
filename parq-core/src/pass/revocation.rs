//! The versioned list of revoked passes, synchronised to gates incrementally.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::ReservationId;
use crate::pass::{PassClaims, PassError, PassNonce};

/// Why passes were revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum RevocationReason {
    /// The reservation was cancelled: none of its passes opens a gate any more.
    Cancelled,
    /// A new pass replaced this one (for instance after the window changed).
    Replaced,
}

/// One revocation, numbered by the list that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Revocation {
    /// The list's version once this revocation was added; versions start at 1 and increase by
    /// one per revocation.
    pub version: u64,
    /// The reservation whose passes are revoked.
    pub reservation: ReservationId,
    /// Only the pass with this nonce, or every pass of the reservation when `None`. A
    /// replaced pass names its nonce so that its replacement still opens the gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<PassNonce>,
    /// Why.
    pub reason: RevocationReason,
    /// When the revocation was made.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}

impl Revocation {
    /// Whether this revocation covers the pass with `claims`.
    pub fn covers(&self, claims: &PassClaims) -> bool {
        self.reservation == claims.entitlement.reservation && self.pass.is_none_or(|n| n == claims.nonce)
    }
}

/// What a gate holding version `from` lacks to reach version `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RevocationDelta {
    /// The version the delta starts after.
    pub from: u64,
    /// The version a gate holds once it applied the delta.
    pub to: u64,
    /// The revocations numbered `from + 1 ..= to`, in order.
    pub revocations: Vec<Revocation>,
}

/// Revoked passes, each revocation numbered with the list's next version.
///
/// The issuer adds revocations with [`revoke`](Self::revoke) and answers a gate's
/// "what do I lack?" with [`since`](Self::since); the gate applies the answer to its own copy
/// with [`apply`](Self::apply) and keeps the highest version it has seen. Applying the same
/// delta twice, or an older one, changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RevocationListRepr", into = "RevocationListRepr")]
pub struct RevocationList {
    version: u64,
    by_version: BTreeMap<u64, Revocation>,
    by_reservation: HashMap<ReservationId, Vec<u64>>,
}

#[derive(Serialize, Deserialize)]
struct RevocationListRepr {
    version: u64,
    revocations: Vec<Revocation>,
}

impl From<RevocationListRepr> for RevocationList {
    fn from(r: RevocationListRepr) -> Self {
        let mut list = RevocationList::new();
        for rev in r.revocations {
            list.insert(rev);
        }
        list.version = list.version.max(r.version);
        list
    }
}

impl From<RevocationList> for RevocationListRepr {
    fn from(l: RevocationList) -> Self {
        RevocationListRepr { version: l.version, revocations: l.by_version.into_values().collect() }
    }
}

impl RevocationList {
    /// An empty list at version 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest version this list holds.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// How many revocations the list holds.
    pub fn len(&self) -> usize {
        self.by_version.len()
    }

    /// Whether the list holds no revocation.
    pub fn is_empty(&self) -> bool {
        self.by_version.is_empty()
    }

    /// Revokes the passes of `reservation` (only the pass with nonce `pass`, when given).
    ///
    /// Revoking what is already revoked for the same reason returns the existing revocation
    /// and does not bump the version, so a retried call is harmless.
    pub fn revoke(
        &mut self,
        reservation: ReservationId,
        pass: Option<PassNonce>,
        reason: RevocationReason,
        at: Timestamp,
    ) -> Revocation {
        let existing = self
            .by_reservation
            .get(&reservation)
            .into_iter()
            .flatten()
            .map(|v| &self.by_version[v])
            .find(|r| r.pass == pass && r.reason == reason);
        if let Some(r) = existing {
            return *r;
        }
        let rev = Revocation { version: self.version + 1, reservation, pass, reason, at };
        self.insert(rev);
        rev
    }

    fn insert(&mut self, rev: Revocation) {
        self.version = self.version.max(rev.version);
        if self.by_version.insert(rev.version, rev).is_none() {
            self.by_reservation.entry(rev.reservation).or_default().push(rev.version);
        }
    }

    /// The revocation that covers the pass with `claims`, if any.
    pub fn find(&self, claims: &PassClaims) -> Option<&Revocation> {
        let versions = self.by_reservation.get(&claims.entitlement.reservation)?;
        versions.iter().map(|v| &self.by_version[v]).find(|r| r.covers(claims))
    }

    /// Whether the pass with `claims` is revoked.
    pub fn is_revoked(&self, claims: &PassClaims) -> bool {
        self.find(claims).is_some()
    }

    /// Every revocation a holder of `version` lacks (empty when it is up to date).
    pub fn since(&self, version: u64) -> RevocationDelta {
        let from = version.min(self.version);
        let revocations = self.by_version.range(from + 1..).map(|(_, r)| *r).collect();
        RevocationDelta { from, to: self.version, revocations }
    }

    /// Applies a delta fetched with [`since`](Self::since) and returns how many revocations
    /// were new. Revocations already held are skipped, so an older or repeated delta changes
    /// nothing; a delta that starts after this list's version (it would leave a gap) or whose
    /// entries are not exactly the versions `from + 1 ..= to`, in order, is refused and changes nothing.
    pub fn apply(&mut self, delta: &RevocationDelta) -> Result<usize, PassError> {
        if delta.from > self.version {
            return Err(PassError::RevocationGap { have: self.version, from: delta.from });
        }
        // Versions are contiguous: a well-formed delta holds exactly `from + 1 ..= to`.
        let contiguous = delta.to.checked_sub(delta.from).and_then(|n| usize::try_from(n).ok())
            == Some(delta.revocations.len())
            && delta
                .revocations
                .iter()
                .enumerate()
                .all(|(i, r)| Some(r.version) == delta.from.checked_add(i as u64 + 1));
        if !contiguous {
            return Err(PassError::MalformedDelta);
        }
        let have = self.version;
        let mut added = 0;
        for r in delta.revocations.iter().filter(|r| r.version > have) {
            self.insert(*r);
            added += 1;
        }
        self.version = self.version.max(delta.to);
        Ok(added)
    }
}
