//! Finding a place: search, lot details, availability, quotes, and the pass keys.

use axum::Json;
use axum::extract::State;
use parq_core::{GeoPoint, LotId, SpotFilter, Window};

use super::views::{
    LotWithSpots, PassKeys, SearchQuery, SearchResults, SortedJson, WindowQuery, example_lot,
};
use crate::extract::{ApiPath, ApiQuery};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Lots near a point with a matching spot free for the window, nearest first.
#[utoipa::path(
    get,
    path = "/api/v1/lots",
    operation_id = "search_lots",
    tag = "lots",
    params(SearchQuery),
    responses(
        (status = OK, description = "Matches", body = SearchResults),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn search(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<SortedJson<SearchResults>> {
    let window = Window::new(q.start, q.end)?;
    let point = GeoPoint::new(q.lat, q.lon)?;
    let filter = SpotFilter { ev: q.ev, accessible: q.accessible, min_size: q.min_size };
    let results = s.engine.search(point, q.radius_m.unwrap_or(2000.0), window, filter).await?;
    Ok(SortedJson(SearchResults { results }))
}

/// A lot and its spots.
#[utoipa::path(
    get,
    path = "/api/v1/lots/{lot_id}",
    operation_id = "get_lot",
    tag = "lots",
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot)),
    responses(
        (status = OK, description = "The lot", body = LotWithSpots),
        (status = NOT_FOUND, response = Problem),
    )
)]
pub async fn lot(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<LotId>,
) -> ApiResult<SortedJson<LotWithSpots>> {
    let lot = s.engine.lot(id).await?;
    let spots = s.engine.spots(id).await?;
    Ok(SortedJson(LotWithSpots { lot, spots }))
}

/// Which spots are free for a window.
#[utoipa::path(
    get,
    path = "/api/v1/lots/{lot_id}/availability",
    operation_id = "get_availability",
    tag = "lots",
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot), WindowQuery),
    responses(
        (status = OK, description = "Availability", body = parq_core::Availability),
        (status = NOT_FOUND, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn availability(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<LotId>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<parq_core::Availability>> {
    let window = Window::new(q.start, q.end)?;
    Ok(Json(s.engine.availability(id, window).await?))
}

/// The price of a window.
#[utoipa::path(
    get,
    path = "/api/v1/lots/{lot_id}/quote",
    operation_id = "get_quote",
    tag = "lots",
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot), WindowQuery),
    responses(
        (status = OK, description = "Quote", body = parq_core::Quote),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn quote(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<LotId>,
    ApiQuery(q): ApiQuery<WindowQuery>,
) -> ApiResult<Json<parq_core::Quote>> {
    let window = Window::new(q.start, q.end)?;
    Ok(Json(s.engine.quote(id, window).await?))
}

/// The public keys that verify passes offline.
#[utoipa::path(
    get,
    path = "/api/v1/passes/keys",
    operation_id = "get_pass_keys",
    tag = "passes",
    responses((status = OK, description = "Keys", body = PassKeys))
)]
pub async fn pass_keys(State(s): State<AppState>) -> SortedJson<PassKeys> {
    SortedJson(PassKeys { keys: s.engine.pass_keys() })
}
