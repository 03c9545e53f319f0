//! Payment webhooks, and the test gateway's "driver pays" endpoint.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use parq_core::memory::{Failure, GatewayOp};
use parq_core::{Error, PaymentEventKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::ReservationView;
use crate::extract::{ApiPath, User};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// The header carrying the test gateway's signature (`t=<unix>,v1=<hmac>`).
pub const SIGNATURE_HEADER: &str = "parq-signature";

/// The largest webhook payload accepted.
const MAX_PAYLOAD: usize = 64 * 1024;

/// `POST /api/v1/webhooks/test`: a signed delivery of the test gateway.
pub async fn webhook_test(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<Value>> {
    if s.test_gateway.is_none() {
        return Err(Problem::not_found("the test gateway is not in use"));
    }
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Problem::bad_request("missing Parq-Signature header").with("field", "Parq-Signature"))?
        .to_owned();
    let payload = axum::body::to_bytes(req.into_body(), MAX_PAYLOAD)
        .await
        .map_err(|_| Problem::new("payload_too_large", "the payload is too large"))?;
    let r = s.engine.handle_webhook(&payload, &signature).await?;
    Ok(Json(json!({ "received": true, "reservation": ReservationView::from(r) })))
}

/// The body of `POST /api/v1/test-gateway/intents/{intent_id}/pay`: how the test payment goes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayBody {
    /// Capture at once (default) or only authorise.
    #[serde(default)]
    capture: Option<bool>,
    /// Decline with this reason instead of paying.
    #[serde(default)]
    decline: Option<String>,
}

/// `POST /api/v1/test-gateway/intents/{intent_id}/pay`: plays the driver paying the intent
/// of one of their reservations, then delivers the signed webhook to the engine.
pub async fn test_pay(
    State(s): State<AppState>,
    user: User,
    ApiPath(intent_id): ApiPath<String>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let gw = s.test_gateway.clone().ok_or_else(|| Problem::not_found("the test gateway is not in use"))?;
    let bytes = axum::body::to_bytes(req.into_body(), MAX_PAYLOAD)
        .await
        .map_err(|_| Problem::new("payload_too_large", "the body is too large"))?;
    // The body is optional: no body pays and captures.
    let b: PayBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        PayBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                Problem::new("invalid", format!("the JSON body does not match: {e}")).with("field", "body")
            }
            _ => Problem::bad_request(format!("the body is not valid JSON: {e}")),
        })?
    };
    let intent = parq_core::PaymentGateway::retrieve(gw.as_ref(), &intent_id).await?;
    let reservation = intent.reservation.ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
    // Only the driver whose reservation it is may pay it here.
    s.engine
        .get_for(reservation, user.id)
        .await
        .map_err(|_| Error::not_found(format!("intent {intent_id}")))?;
    if let Some(reason) = b.decline {
        gw.fail_next(GatewayOp::Pay, Failure::Decline(reason));
    }
    let event = gw.pay(&intent_id, b.capture.unwrap_or(true))?;
    let (payload, signature) = gw.sign(&event, s.engine.now());
    let r = s.engine.handle_webhook(&payload, &signature).await?;
    let outcome = match &event.kind {
        PaymentEventKind::Succeeded => "succeeded",
        PaymentEventKind::Authorized => "authorized",
        PaymentEventKind::Failed { .. } => "failed",
        _ => "other",
    };
    Ok(Json(json!({ "event_id": event.id, "outcome": outcome, "reservation": ReservationView::from(r) })))
}

/// `POST /api/v1/webhooks/stripe`: a Stripe event, verified with the endpoint's signing
/// secret (`Stripe-Signature`). Events ParQ does not act on are acknowledged (2xx) so that
/// Stripe stops sending them; deliveries are deduplicated by event id.
pub async fn webhook_stripe(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<Value>> {
    // A delivery without its signature is malformed whatever the configuration: 400 first.
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Problem::bad_request("missing Stripe-Signature header").with("field", "Stripe-Signature")
        })?
        .to_owned();
    if !s.backends.gateway.is_stripe() {
        return Err(Problem::not_found("the Stripe gateway is not in use"));
    }
    let payload = axum::body::to_bytes(req.into_body(), MAX_PAYLOAD)
        .await
        .map_err(|_| Problem::new("payload_too_large", "the payload is too large"))?;
    match s.engine.handle_webhook(&payload, &signature).await {
        Ok(r) => Ok(Json(json!({ "received": true, "reservation": ReservationView::from(r) }))),
        Err(e) if parq_payments::webhook::is_ignorable(&e) => {
            tracing::debug!(error = %e, "ignored a Stripe event");
            Ok(Json(json!({ "received": true, "ignored": true })))
        }
        Err(e) => Err(e.into()),
    }
}
