//! A driver's reservations: hold, pay, cancel, extend, and the pass.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parq_core::{Error, HoldSpec, ReservationId, SpotChoice, Window};
use serde::Deserialize;
use utoipa::IntoParams;

use super::views::{
    CancellationView, CheckoutView, EXAMPLE_END, EXAMPLE_START, ExtendBody, HoldBody, PassView,
    ReservationView, Reservations, SortedJson, example_lot,
};
use crate::extract::{ApiJson, ApiPath, ApiQuery, User};
use crate::idempotency;
use crate::metrics::HoldOutcome;
use crate::problem::{ApiResult, JsonBody, Problem};
use crate::state::AppState;

fn example_hold() -> serde_json::Value {
    serde_json::json!({ "lot_id": example_lot(), "start": EXAMPLE_START, "end": EXAMPLE_END, "filter": { "ev": true } })
}

/// Hold a named spot or any spot with the filter's attributes.
///
/// The hold blocks the spot until `hold_expires_at`; pay it with `checkout`. A retry with the
/// same `Idempotency-Key` answers the same hold (with `Idempotent-Replayed: true`).
#[utoipa::path(
    post,
    path = "/api/v1/holds",
    operation_id = "hold",
    tag = "reservations",
    security(("bearer" = [])),
    request_body(content = HoldBody, example = example_hold),
    responses(
        (status = CREATED, description = "Held (or the same hold, replayed)", body = ReservationView,
            headers(
                ("Location" = String, description = "The reservation's URL."),
                ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same key."),
            ),
            links(
                ("GetReservation" = (operation_id = "get_reservation", parameters(("reservation_id" = "$response.body#/id")))),
                ("Checkout" = (operation_id = "checkout", parameters(("reservation_id" = "$response.body#/id")))),
                ("Cancel" = (operation_id = "cancel_reservation", parameters(("reservation_id" = "$response.body#/id")))),
                ("Extend" = (operation_id = "extend_reservation", parameters(("reservation_id" = "$response.body#/id")))),
                ("Pass" = (operation_id = "get_pass", parameters(("reservation_id" = "$response.body#/id")))),
            )
        ),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        JsonBody,
    )
)]
pub async fn hold(
    State(s): State<AppState>,
    idempotency::Key(key): idempotency::Key,
    user: User,
    ApiJson(b): ApiJson<HoldBody>,
) -> ApiResult<Response> {
    let choice = match (b.spot_id, b.filter) {
        (Some(spot), None) => SpotChoice::Spot { spot },
        (None, filter) => SpotChoice::Any { filter: filter.unwrap_or_default() },
        (Some(_), Some(_)) => {
            return Err(Error::invalid("filter", "give spot_id or filter, not both").into());
        }
    };
    let window = Window::new(b.start, b.end)?;
    let spec = HoldSpec { user: user.id, lot: b.lot_id, choice, window };
    match s.engine.hold_keyed(&spec, Some(&key)).await {
        Ok(held) => {
            s.metrics.hold(HoldOutcome::Held);
            let location = format!("/api/v1/reservations/{}", held.reservation.id);
            let mut resp =
                (StatusCode::CREATED, Json(ReservationView::from(held.reservation))).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            if held.replayed {
                resp.headers_mut().insert(idempotency::REPLAYED, HeaderValue::from_static("true"));
            }
            Ok(resp)
        }
        Err(e) => {
            s.metrics.hold(if e.is_conflict() { HoldOutcome::Conflict } else { HoldOutcome::Failed });
            Err(e.into())
        }
    }
}

/// Query of the reservation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many.
    #[param(minimum = 1, maximum = 200, default = 50)]
    limit: Option<usize>,
}

/// The caller's reservations, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/reservations",
    operation_id = "list_reservations",
    tag = "reservations",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = OK, description = "Reservations", body = Reservations),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn list(
    State(s): State<AppState>,
    user: User,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<SortedJson<Reservations>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 200").into());
    }
    let rs = s.engine.reservations_of(user.id, limit).await?;
    Ok(SortedJson(Reservations { reservations: rs.into_iter().map(Into::into).collect() }))
}

/// A reservation.
#[utoipa::path(
    get,
    path = "/api/v1/reservations/{reservation_id}",
    operation_id = "get_reservation",
    tag = "reservations",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    responses(
        (status = OK, description = "Reservation", body = ReservationView),
        (status = NOT_FOUND, response = Problem),
    )
)]
pub async fn get(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Json<ReservationView>> {
    Ok(Json(s.engine.get_for(id, user.id).await?.into()))
}

/// Start (or get) the payment of a hold.
#[utoipa::path(
    post,
    path = "/api/v1/reservations/{reservation_id}/checkout",
    operation_id = "checkout",
    tag = "reservations",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    responses(
        (status = OK, description = "The intent to pay", body = CheckoutView),
        (status = PAYMENT_REQUIRED, response = Problem),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = GONE, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn checkout(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Json<CheckoutView>> {
    let c = s.engine.checkout(id, user.id).await?;
    let test_pay_url =
        s.test_gateway.as_ref().map(|_| format!("/api/v1/test-gateway/intents/{}/pay", c.intent.id));
    Ok(Json(CheckoutView { reservation: c.reservation.into(), intent: c.intent, test_pay_url }))
}

/// Cancel: a hold is released, a paid reservation refunded by the lot's policy.
#[utoipa::path(
    post,
    path = "/api/v1/reservations/{reservation_id}/cancel",
    operation_id = "cancel_reservation",
    tag = "reservations",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    responses(
        (status = OK, description = "Cancelled", body = CancellationView),
        (status = PAYMENT_REQUIRED, response = Problem),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn cancel(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Json<CancellationView>> {
    let c = s.engine.cancel(id, user.id).await?;
    Ok(Json(CancellationView { reservation: c.reservation.into(), refunded: c.refunded }))
}

/// Move the end later.
#[utoipa::path(
    post,
    path = "/api/v1/reservations/{reservation_id}/extend",
    operation_id = "extend_reservation",
    tag = "reservations",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    request_body = ExtendBody,
    responses(
        (status = OK, description = "Extended", body = ReservationView),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = GONE, response = Problem),
        JsonBody,
    )
)]
pub async fn extend(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
    ApiJson(b): ApiJson<ExtendBody>,
) -> ApiResult<Json<ReservationView>> {
    Ok(Json(s.engine.extend(id, user.id, b.end).await?.into()))
}

async fn pass(s: &AppState, user: &User, id: ReservationId) -> ApiResult<parq_core::pass::Pass> {
    Ok(s.engine.issue_pass(id, user.id).await?)
}

/// The signed pass of a paid reservation, as text, with what it grants.
#[utoipa::path(
    get,
    path = "/api/v1/reservations/{reservation_id}/pass",
    operation_id = "get_pass",
    tag = "passes",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    responses(
        (status = OK, description = "Pass", body = PassView),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
    )
)]
pub async fn pass_json(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<SortedJson<PassView>> {
    let p = pass(&s, &user, id).await?;
    let c = p.claims();
    Ok(SortedJson(PassView {
        key_id: c.key_id,
        lot_id: c.entitlement.lot,
        reservation_id: c.entitlement.reservation,
        spot_id: c.entitlement.spot,
        text: p.text().to_owned(),
        window: c.entitlement.window,
    }))
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    resp
}

/// The pass as a QR code (SVG).
#[utoipa::path(
    get,
    path = "/api/v1/reservations/{reservation_id}/pass.svg",
    operation_id = "get_pass_svg",
    tag = "passes",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    responses(
        (status = OK, description = "SVG", body = String, content_type = "image/svg+xml"),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
    )
)]
pub async fn pass_svg(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Response> {
    let qr = pass(&s, &user, id).await?.qr().map_err(Problem::from)?;
    Ok(image("image/svg+xml", qr.to_svg(320)))
}

/// The pass as a QR code (PNG).
#[utoipa::path(
    get,
    path = "/api/v1/reservations/{reservation_id}/pass.png",
    operation_id = "get_pass_png",
    tag = "passes",
    security(("bearer" = [])),
    params(("reservation_id" = ReservationId, Path, description = "The reservation.")),
    responses(
        (status = OK, description = "PNG", body = String, content_type = "image/png"),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
    )
)]
pub async fn pass_png(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Response> {
    let png = pass(&s, &user, id).await?.qr()?.to_png(8)?;
    Ok(image("image/png", png))
}
