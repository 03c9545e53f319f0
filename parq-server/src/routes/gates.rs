//! Gates: online scans of passes, and the revocations offline gates sync.

use axum::Json;
use axum::extract::State;
use parq_core::pass::{Direction, ScanId};
use parq_core::{Error, LotId};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::extract::{ApiJson, ApiQuery, GateCaller};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// The body of `POST /api/v1/gates/scan`: what a gate read, where and when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanBody {
    /// The pass's text, as read from the QR code.
    pass: String,
    /// The lot of the gate.
    lot_id: LotId,
    /// `entry` or `exit`.
    direction: Direction,
    /// The gate's name.
    gate: String,
    /// The reader's id of this reading: a repeated reading counts once.
    #[serde(default)]
    scan_id: Option<String>,
}

/// `POST /api/v1/gates/scan`: whether the barrier opens; a refusal is an answer (200), with
/// its reason.
pub async fn scan(
    State(s): State<AppState>,
    GateCaller(operator): GateCaller,
    ApiJson(b): ApiJson<ScanBody>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(serde_json::to_value(decision).unwrap_or_else(|_| json!({}))))
}

#[derive(Debug, Deserialize)]
pub struct SinceQuery {
    #[serde(default)]
    since: u64,
}

/// `GET /api/v1/gates/revocations?since=N`: revoked passes after version `N`.
pub async fn revocations(
    State(s): State<AppState>,
    _gate: GateCaller,
    ApiQuery(q): ApiQuery<SinceQuery>,
) -> Json<parq_core::pass::RevocationDelta> {
    Json(s.engine.revocations_since(q.since))
}
