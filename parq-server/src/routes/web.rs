//! The web page's routes: the page (or the service index), its files, the map's settings and
//! free public parking.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;
use crate::state::AppState;
use crate::web::{self, WebConfig};

/// The live map for browsers (Accept: text/html); where things are for the rest.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "index",
    tag = "operations",
    responses((status = OK, description = "The service index, or the web page", content(
        (super::ops::ServiceIndex = "application/json"),
        (String = "text/html"),
    )))
)]
pub async fn index(headers: HeaderMap) -> Response {
    if web::wants_html(&headers) {
        return web::index_page();
    }
    super::ops::index().await.into_response()
}

/// `GET /assets/{*path}`: the page's files.
pub async fn asset(Path(path): Path<String>) -> Response {
    match web::asset(&path) {
        Some(resp) => resp,
        None => Problem::not_found(format!("no asset {path}")).into_response(),
    }
}

/// How the web map draws: style, tiles and the starting view.
#[utoipa::path(
    get,
    path = "/api/v1/map/config",
    operation_id = "get_map_config",
    tag = "find",
    responses((status = OK, description = "The map's configuration", body = WebConfig))
)]
pub async fn map_config(State(state): State<AppState>) -> Json<WebConfig> {
    Json(state.web.clone())
}

/// Free public parking, as GeoJSON points (empty when none is loaded).
#[utoipa::path(
    get,
    path = "/api/v1/public-parking",
    operation_id = "get_public_parking",
    tag = "find",
    responses((status = OK, description = "A GeoJSON FeatureCollection", body = web::FeatureCollection,
        content_type = "application/geo+json"))
)]
pub async fn public_parking(State(state): State<AppState>) -> Response {
    let mut resp = Json(&state.web.public_parking).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/geo+json"));
    resp
}
