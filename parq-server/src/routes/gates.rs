//! Gates: online scans of passes, and the revocations offline gates sync.

use axum::Json;
use axum::extract::State;
use parq_core::pass::{Decision, Direction, ScanId};
use parq_core::{Error, LotId};
use serde::Deserialize;
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

/// Revoked passes after a version, for offline gates.
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
) -> Json<parq_core::pass::RevocationDelta> {
    Json(s.engine.revocations_since(q.since))
}
