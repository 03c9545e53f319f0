//! Finding a place: search, lot details, availability, quotes, and the pass keys.

use axum::Json;
use axum::extract::State;
use parq_core::{GeoPoint, LotId, SpotFilter, Window};
use serde_json::{Value, json};

use super::views::{SearchQuery, WindowQuery};
use crate::extract::{ApiPath, ApiQuery};
use crate::problem::ApiResult;
use crate::state::AppState;

/// `GET /api/v1/lots`: lots near a point with a matching spot free for the window.
pub async fn search(State(s): State<AppState>, ApiQuery(q): ApiQuery<SearchQuery>) -> ApiResult<Json<Value>> {
    let window = Window::new(q.start, q.end)?;
    let point = GeoPoint::new(q.lat, q.lon)?;
    let filter = SpotFilter { ev: q.ev, accessible: q.accessible, min_size: q.min_size };
    let results = s.engine.search(point, q.radius_m.unwrap_or(2000.0), window, filter).await?;
    Ok(Json(json!({ "results": results })))
}

/// `GET /api/v1/lots/{lot_id}`: a lot and its spots.
pub async fn lot(State(s): State<AppState>, ApiPath(id): ApiPath<LotId>) -> ApiResult<Json<Value>> {
    let lot = s.engine.lot(id).await?;
    let spots = s.engine.spots(id).await?;
    Ok(Json(json!({ "lot": lot, "spots": spots })))
}

/// `GET /api/v1/lots/{lot_id}/availability`: which spots are free for a window.
pub async fn availability(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<LotId>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<parq_core::Availability>> {
    let window = Window::new(q.start, q.end)?;
    Ok(Json(s.engine.availability(id, window).await?))
}

/// `GET /api/v1/lots/{lot_id}/quote`: the price of a window.
pub async fn quote(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<LotId>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<parq_core::Quote>> {
    let window = Window::new(q.start, q.end)?;
    Ok(Json(s.engine.quote(id, window).await?))
}

/// `GET /api/v1/passes/keys`: the public keys that verify passes offline.
pub async fn pass_keys(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "keys": s.engine.pass_keys() }))
}
