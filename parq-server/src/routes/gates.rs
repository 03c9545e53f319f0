//! Gates: online scans of passes, the revocations offline gates sync, and the readings they
//! upload.

use axum::Json;
use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use parq_core::pass::{Decision, Direction, MAX_SCAN_ID_LEN, OfflineScan, ScanId, ScanRecord};
use parq_core::{Error, LotId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiQuery, GateCaller};
use crate::problem::{ApiResult, JsonBody, Problem};
use crate::state::AppState;

/// A reading of a pass at a gate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ScanRequest)]
pub struct ScanBody {
    /// The pass's text, as read from the QR code.
    #[schema(max_length = 4096)]
    pass: String,
    /// The lot of the gate.
    lot_id: LotId,
    /// `entry` or `exit`.
    direction: Direction,
    /// The gate's name.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    gate: String,
    /// The reader's id of this reading: a repeated reading counts once.
    #[serde(default)]
    scan_id: Option<String>,
}

/// Decide a scan at a gate; a refusal is an answer with its reason.
///
/// Whether the barrier opens: a refusal is an answer (200), with its reason.
#[utoipa::path(
    post,
    path = "/api/v1/gates/scan",
    operation_id = "scan",
    tag = "gates",
    security(("bearer" = []), ("apiKey" = [])),
    request_body = ScanBody,
    responses(
        (status = OK, description = "Decision", body = Decision),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn scan(
    State(s): State<AppState>,
    GateCaller(operator): GateCaller,
    ApiJson(b): ApiJson<ScanBody>,
) -> ApiResult<Json<Decision>> {
    if b.gate.trim().is_empty() || b.gate.len() > 64 {
        return Err(Error::invalid("gate", "must be 1 to 64 characters").into());
    }
    if b.pass.len() > 4096 {
        return Err(Error::invalid("pass", "is too long to be a pass").into());
    }
    let lot = s.engine.lot(b.lot_id).await?;
    if lot.operator != operator {
        return Err(Problem::not_found(format!("lot {} not found", b.lot_id)));
    }
    let scan_id = b.scan_id.as_deref().map(|id| {
        let d = Sha256::digest(id.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&d[..16]);
        ScanId(out)
    });
    let decision = s.engine.scan(b.pass.trim(), b.lot_id, b.direction, b.gate.trim(), scan_id).await?;
    tracing::info!(lot = %b.lot_id, gate = %b.gate, direction = ?b.direction, ?decision, "gate scan");
    Ok(Json(decision))
}

/// Query of the revocations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinceQuery {
    /// The version the gate holds.
    #[serde(default)]
    #[param(format = "uint64", minimum = 0)]
    since: u64,
}

/// The most revocations one answer holds; a gate that gets a full page asks again from `to`.
pub const REVOCATION_PAGE: usize = 1000;

/// Revoked passes after a version, for offline gates.
///
/// Versions run 1, 2, 3, … without gaps, in the order the revocations committed, the same on
/// every replica and after restarts: a gate keeps the highest `to` it applied and asks with
/// `since` set to it. An answer holds at most 1000 revocations; when `to` is below the latest
/// version, ask again with `since=to` until `revocations` comes back empty.
#[utoipa::path(
    get,
    path = "/api/v1/gates/revocations",
    operation_id = "list_revocations",
    tag = "gates",
    security(("bearer" = []), ("apiKey" = [])),
    params(SinceQuery),
    responses((status = OK, description = "Delta", body = parq_core::pass::RevocationDelta))
)]
pub async fn revocations(
    State(s): State<AppState>,
    _gate: GateCaller,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> ApiResult<Json<parq_core::pass::RevocationDelta>> {
    Ok(Json(s.engine.revocations_since(q.since, REVOCATION_PAGE).await?))
}

/// The most readings one upload may carry.
pub const MAX_UPLOAD: usize = 500;

/// A reading an offline gate acted on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OfflineScanInput)]
pub struct OfflineScanBody {
    /// The gate's id of the reading, unique among the lot's gates (a UUID is a good choice).
    /// A reading uploaded again with the same id is answered from its first record.
    #[schema(min_length = 1, max_length = 128)]
    scan_id: String,
    /// The pass's text, as read from the QR code.
    #[schema(max_length = 4096)]
    pass: String,
    /// The lot of the gate.
    lot_id: LotId,
    /// `entry` or `exit`.
    direction: Direction,
    /// The gate's name.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    gate: String,
    /// When the reading happened, by the gate's clock (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
    /// What the gate did: `{"decision": "allow"}` (the default: the barrier opened) or
    /// `{"decision": "refuse", "reason": "revoked"}`.
    #[serde(default = "allowed")]
    #[schema(default = json!({"decision": "allow"}))]
    gate_decision: Decision,
}

fn allowed() -> Decision {
    Decision::Allow
}

/// Readings an offline gate uploads once it is back online.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ScanUpload)]
pub struct ScanUploadBody {
    /// At most 500 readings, in any order (they are applied in the order of their `at`).
    scans: Vec<OfflineScanBody>,
}

/// What the server made of each uploaded reading, in the order they were sent.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ScanUploadResult)]
pub struct ScanUploadResult {
    /// One record per reading sent, in the same order.
    scans: Vec<ScanRecord>,
}

/// Upload readings that a gate acted on while offline.
///
/// Each reading is recorded once by `(lot_id, scan_id)`: uploading the same batch again (after
/// a lost answer) returns the same records and changes nothing. For each reading the server
/// applies the gate rules at the gate's time (`at`) with what it knows — a pass counts as
/// revoked only when it was revoked before the reading — and answers with a record:
/// `decision` (what the rules say), `gate_decision` (what the gate did), `applied` (whether
/// the entry or exit was recorded on the reservation: only when both say allow) and
/// `conflict` when they disagree: `allowed_but_refused` (the barrier opened for a reading the
/// rules refuse, e.g. a pass revoked before the reading: the reason is in `decision`) or
/// `refused_but_allowed`. A conflict is an answer, not an error: the batch is still accepted.
/// A malformed batch (too many readings, an empty or overlong scan id or gate, a time more
/// than five minutes ahead of the server's clock, a lot of another operator) is refused
/// whole, with nothing recorded.
#[utoipa::path(
    post,
    path = "/api/v1/gates/scans",
    operation_id = "upload_scans",
    tag = "gates",
    security(("bearer" = []), ("apiKey" = [])),
    request_body = ScanUploadBody,
    responses(
        (status = OK, description = "One record per reading", body = ScanUploadResult),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn upload_scans(
    State(s): State<AppState>,
    GateCaller(operator): GateCaller,
    ApiJson(b): ApiJson<ScanUploadBody>,
) -> ApiResult<Json<ScanUploadResult>> {
    if b.scans.len() > MAX_UPLOAD {
        return Err(Error::invalid("scans", "at most 500 readings per upload").into());
    }
    let horizon = s.engine.clock().now() + SignedDuration::from_mins(5);
    let mut lots = Vec::new();
    for (i, x) in b.scans.iter().enumerate() {
        if x.scan_id.trim().is_empty()
            || x.scan_id.len() > MAX_SCAN_ID_LEN
            || x.scan_id.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "scan_id",
                format!("scans[{i}]: must be 1 to 128 characters, none a control"),
            )
            .into());
        }
        if x.gate.trim().is_empty() || x.gate.len() > 64 || x.gate.chars().any(char::is_control) {
            return Err(Error::invalid(
                "gate",
                format!("scans[{i}]: must be 1 to 64 characters, none a control"),
            )
            .into());
        }
        if x.pass.len() > 4096 {
            return Err(Error::invalid("pass", format!("scans[{i}]: is too long to be a pass")).into());
        }
        if x.at > horizon {
            return Err(Error::invalid("at", format!("scans[{i}]: is ahead of the server's clock")).into());
        }
        if !lots.contains(&x.lot_id) {
            let lot = s.engine.lot(x.lot_id).await?;
            if lot.operator != operator {
                return Err(Problem::not_found(format!("lot {} not found", x.lot_id)));
            }
            lots.push(x.lot_id);
        }
    }
    // An entry before the exit that followed it, whatever order the gate sent them in.
    let mut order: Vec<usize> = (0..b.scans.len()).collect();
    order.sort_by_key(|&i| b.scans[i].at);
    let mut out: Vec<Option<ScanRecord>> = vec![None; b.scans.len()];
    for i in order {
        let x = &b.scans[i];
        let scan = OfflineScan {
            scan_id: x.scan_id.clone(),
            pass: x.pass.trim().to_owned(),
            lot: x.lot_id,
            direction: x.direction,
            gate: x.gate.trim().to_owned(),
            at: x.at,
            gate_decision: x.gate_decision,
        };
        let rec = s.engine.record_offline_scan(&scan).await?;
        if rec.conflict.is_some() {
            tracing::warn!(lot = %rec.lot, gate = %rec.gate, scan_id = %rec.scan_id, decision = ?rec.decision,
                gate_decision = ?rec.gate_decision, conflict = ?rec.conflict, "offline gate reading in conflict");
        }
        out[i] = Some(rec);
    }
    Ok(Json(ScanUploadResult { scans: out.into_iter().flatten().collect() }))
}
