//! Readings that an offline gate acted on and uploads later, and what the issuer made of them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{LotId, ReservationId};
use crate::pass::{Decision, Direction};

/// The longest scan id a gate may give.
pub const MAX_SCAN_ID_LEN: usize = 128;

/// How what a gate did and what the rules say disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum ScanConflict {
    /// The gate opened, but the rules refuse the reading ([`ScanRecord::decision`] says why:
    /// `revoked` when the pass was revoked before the reading, `expired`, `wrong_lot`, …). The
    /// vehicle went through; the reading is logged for the operator, not applied to the
    /// reservation.
    AllowedButRefused,
    /// The gate kept the barrier closed, but the rules allow the reading (the gate's copy of
    /// its keys or revocations, or its clock, was off). Nothing went through.
    RefusedButAllowed,
}

/// A reading an offline gate made, acted on and uploads, with what the issuer decided.
///
/// Stores keep one record per `(lot, scan_id)`; recording the same reading again returns the
/// first record unchanged, so an upload repeated after a lost answer gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ScanRecord {
    /// The gate's id of the reading, unique among the lot's gates (a UUID is a good choice).
    pub scan_id: String,
    /// The lot of the gate.
    pub lot: LotId,
    /// The gate's name.
    pub gate: String,
    /// Which way.
    pub direction: Direction,
    /// When the reading happened, by the gate's clock.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// The reservation of the pass, when the pass could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationId>,
    /// What the gate did.
    pub gate_decision: Decision,
    /// What the rules say about the reading at the gate's time, with what the issuer knows
    /// (a pass revoked after the reading was still valid then).
    pub decision: Decision,
    /// Whether the entry or exit was recorded on the reservation (both agree on `allow` and
    /// the reservation could take it).
    pub applied: bool,
    /// How the gate and the rules disagree, if they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<ScanConflict>,
    /// When the issuer first recorded the reading.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = DateTime))]
    pub recorded_at: Timestamp,
}

impl ScanRecord {
    /// The conflict between what the gate did and what the rules say.
    pub fn conflict_of(gate: &Decision, rules: &Decision) -> Option<ScanConflict> {
        match (gate.is_allowed(), rules.is_allowed()) {
            (true, false) => Some(ScanConflict::AllowedButRefused),
            // A gate that refused a reading the rules also refuse agrees, whatever the reasons.
            (false, true) => Some(ScanConflict::RefusedButAllowed),
            _ => None,
        }
    }
}

/// A reading that an offline gate acted on, as it uploads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineScan {
    /// The gate's id of the reading, unique among the lot's gates (at most
    /// [`MAX_SCAN_ID_LEN`] characters).
    pub scan_id: String,
    /// The pass's text, as read.
    pub pass: String,
    /// The lot of the gate.
    pub lot: LotId,
    /// Which way.
    pub direction: Direction,
    /// The gate's name.
    pub gate: String,
    /// When it happened, by the gate's clock.
    pub at: Timestamp,
    /// What the gate did.
    pub gate_decision: Decision,
}
