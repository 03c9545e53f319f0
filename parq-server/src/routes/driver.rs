//! A driver's reservations: hold, pay, cancel, extend, and the pass.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parq_core::{Error, HoldSpec, ReservationId, SpotChoice, Window};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::{CancellationView, CheckoutView, ExtendBody, HoldBody, ReservationView};
use crate::extract::{ApiJson, ApiPath, ApiQuery, User};
use crate::idempotency;
use crate::metrics::HoldOutcome;
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// `POST /api/v1/holds`: holds a named spot, or any spot with the filter's attributes.
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

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/reservations`: the caller's reservations, newest first.
pub async fn list(
    State(s): State<AppState>,
    user: User,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 200").into());
    }
    let rs = s.engine.reservations_of(user.id, limit).await?;
    let rs: Vec<ReservationView> = rs.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "reservations": rs })))
}

/// `GET /api/v1/reservations/{id}`.
pub async fn get(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Json<ReservationView>> {
    Ok(Json(s.engine.get_for(id, user.id).await?.into()))
}

/// `POST /api/v1/reservations/{id}/checkout`: starts (or returns) the payment.
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

/// `POST /api/v1/reservations/{id}/cancel`: releases a hold, or cancels with the lot's refund.
pub async fn cancel(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Json<CancellationView>> {
    let c = s.engine.cancel(id, user.id).await?;
    Ok(Json(CancellationView { reservation: c.reservation.into(), refunded: c.refunded }))
}

/// `POST /api/v1/reservations/{id}/extend`: moves the end later.
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

/// `GET /api/v1/reservations/{id}/pass`: the signed pass as text, with what it grants.
pub async fn pass_json(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Json<Value>> {
    let p = pass(&s, &user, id).await?;
    let c = p.claims();
    Ok(Json(json!({
        "text": p.text(),
        "key_id": c.key_id,
        "reservation_id": c.entitlement.reservation,
        "lot_id": c.entitlement.lot,
        "spot_id": c.entitlement.spot,
        "window": c.entitlement.window,
    })))
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    resp
}

/// `GET /api/v1/reservations/{id}/pass.svg`: the pass's QR code.
pub async fn pass_svg(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Response> {
    let qr = pass(&s, &user, id).await?.qr().map_err(Problem::from)?;
    Ok(image("image/svg+xml", qr.to_svg(320)))
}

/// `GET /api/v1/reservations/{id}/pass.png`: the pass's QR code.
pub async fn pass_png(
    State(s): State<AppState>,
    user: User,
    ApiPath(id): ApiPath<ReservationId>,
) -> ApiResult<Response> {
    let png = pass(&s, &user, id).await?.qr()?.to_png(8)?;
    Ok(image("image/png", png))
}
