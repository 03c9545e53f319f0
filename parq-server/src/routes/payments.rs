//! Payment webhooks, and the test gateway's "driver pays" endpoint.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use parq_core::{Error, PaymentEventKind};
use serde::Deserialize;
use utoipa::ToSchema;

use super::views::{PaymentOutcome, ReservationView, SortedJson, TestPayment, WebhookReceipt};
use crate::extract::{ApiPath, User};
use crate::problem::{ApiResult, Problem, ProblemCode};
use crate::state::AppState;

/// The header carrying the test gateway's signature (`t=<unix>,v1=<hmac>`).
pub const SIGNATURE_HEADER: &str = "parq-signature";

/// The largest webhook payload accepted.
const MAX_PAYLOAD: usize = 64 * 1024;

/// A signed delivery of the test payment gateway.
///
/// Signed with `Parq-Signature: t=<unix>,v1=<hmac-sha256>`; deliveries are deduplicated by
/// event id.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/test",
    operation_id = "test_gateway_webhook",
    tag = "payments",
    params(("Parq-Signature" = String, Header, description = "`t=<unix>,v1=<hmac-sha256>` of the payload.")),
    request_body(content = Object, description = "The gateway's event."),
    responses(
        (status = OK, description = "Applied", body = WebhookReceipt),
        (status = BAD_REQUEST, response = Problem),
        (status = FORBIDDEN, response = Problem),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = GONE, response = Problem),
        (status = PAYLOAD_TOO_LARGE, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn webhook_test(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<SortedJson<WebhookReceipt>> {
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
        .map_err(|_| Problem::new(ProblemCode::PayloadTooLarge, "the payload is too large"))?;
    let r = s.engine.handle_webhook(&payload, &signature).await?;
    Ok(SortedJson(WebhookReceipt {
        ignored: None,
        received: true,
        reservation: Some(ReservationView::from(r)),
    }))
}

/// How the driver pays, in the test gateway.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TestPaymentRequest)]
pub struct PayBody {
    /// Capture at once (default) or only authorise.
    #[serde(default)]
    capture: Option<bool>,
    /// Decline with this reason instead of paying.
    #[serde(default)]
    decline: Option<String>,
}

/// Test gateway: play the driver paying an intent, and deliver the webhook.
///
/// For an intent of one of the caller's reservations. The body is optional: none pays and
/// captures.
#[utoipa::path(
    post,
    path = "/api/v1/test-gateway/intents/{intent_id}/pay",
    operation_id = "test_gateway_pay",
    tag = "payments",
    security(("bearer" = [])),
    params(("intent_id" = String, Path, description = "The intent, from checkout.")),
    request_body(content = Option<PayBody>, description = "How to pay (optional)."),
    responses(
        (status = OK, description = "Paid (or declined)", body = TestPayment),
        (status = BAD_REQUEST, response = Problem),
        (status = PAYMENT_REQUIRED, response = Problem),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = GONE, response = Problem),
        (status = PAYLOAD_TOO_LARGE, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn test_pay(
    State(s): State<AppState>,
    user: User,
    ApiPath(intent_id): ApiPath<String>,
    req: Request,
) -> ApiResult<SortedJson<TestPayment>> {
    let gw = s.test_gateway.clone().ok_or_else(|| Problem::not_found("the test gateway is not in use"))?;
    let bytes = axum::body::to_bytes(req.into_body(), MAX_PAYLOAD)
        .await
        .map_err(|_| Problem::new(ProblemCode::PayloadTooLarge, "the body is too large"))?;
    // The body is optional: no body pays and captures.
    let b: PayBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        PayBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                Problem::new(ProblemCode::Invalid, format!("the JSON body does not match: {e}"))
                    .with("field", "body")
            }
            _ => Problem::bad_request(format!("the body is not valid JSON: {e}")),
        })?
    };
    let intent = gw.as_dyn().retrieve(&intent_id).await?;
    let reservation = intent.reservation.ok_or_else(|| Error::not_found(format!("intent {intent_id}")))?;
    // Only the driver whose reservation it is may pay it here.
    s.engine
        .get_for(reservation, user.id)
        .await
        .map_err(|_| Error::not_found(format!("intent {intent_id}")))?;
    let event = gw.pay(&intent_id, b.capture.unwrap_or(true), b.decline).await?;
    let (payload, signature) = gw.sign(&event, s.engine.now()).await?;
    let r = s.engine.handle_webhook(&payload, &signature).await?;
    let outcome = match &event.kind {
        PaymentEventKind::Succeeded => PaymentOutcome::Succeeded,
        PaymentEventKind::Authorized => PaymentOutcome::Authorized,
        PaymentEventKind::Failed { .. } => PaymentOutcome::Failed,
        _ => PaymentOutcome::Other,
    };
    Ok(SortedJson(TestPayment { event_id: event.id, outcome, reservation: ReservationView::from(r) }))
}

/// A Stripe event, verified with the endpoint's signing secret.
///
/// Signed with `Stripe-Signature`. Events ParQ does not act on are acknowledged (2xx) so that
/// Stripe stops sending them; deliveries are deduplicated by event id.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/stripe",
    operation_id = "stripe_webhook",
    tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature of the payload.")),
    request_body(content = Object, description = "Stripe's event."),
    responses(
        (status = OK, description = "Applied, or acknowledged and ignored", body = WebhookReceipt),
        (status = BAD_REQUEST, response = Problem),
        (status = FORBIDDEN, response = Problem),
        (status = NOT_FOUND, response = Problem),
        (status = CONFLICT, response = Problem),
        (status = GONE, response = Problem),
        (status = PAYLOAD_TOO_LARGE, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn webhook_stripe(
    State(s): State<AppState>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<SortedJson<WebhookReceipt>> {
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
        .map_err(|_| Problem::new(ProblemCode::PayloadTooLarge, "the payload is too large"))?;
    match s.engine.handle_webhook(&payload, &signature).await {
        Ok(r) => Ok(SortedJson(WebhookReceipt {
            ignored: None,
            received: true,
            reservation: Some(ReservationView::from(r)),
        })),
        Err(e) if parq_payments::webhook::is_ignorable(&e) => {
            tracing::debug!(error = %e, "ignored a Stripe event");
            Ok(SortedJson(WebhookReceipt { ignored: Some(true), received: true, reservation: None }))
        }
        Err(e) => Err(e.into()),
    }
}
