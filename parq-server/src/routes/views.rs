//! The JSON shapes of the API that are not parq-core's own types. Each carries its OpenAPI
//! schema (`ToSchema`, or `IntoParams` for queries), so the document says what the handlers
//! send and take.

use axum::Json;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use parq_core::pass::{KeyId, PublicKeys};
use parq_core::{
    Lot, LotId, LotMatch, Money, PaymentIntent, Reservation, ReservationId, ReservationState, Spot,
    SpotFilter, SpotId, SpotSize, UserId, Window,
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::accounts::{Account, Role};
use crate::problem::{Problem, ProblemCode};

/// A body sent as its `serde_json::Value`, so that its objects' members come out in
/// alphabetical order at every depth, as the bodies built with `json!` always did.
#[derive(Debug, Clone)]
pub struct SortedJson<T>(pub T);

impl<T: Serialize> IntoResponse for SortedJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_value(&self.0) {
            Ok(v) => Json(v).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "a response body did not serialise");
                Problem::new(ProblemCode::Internal, "the response could not be written").into_response()
            }
        }
    }
}

/// A reservation as its driver sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReservationView {
    /// Id.
    pub id: ReservationId,
    /// Lot.
    pub lot_id: LotId,
    /// Spot.
    pub spot_id: SpotId,
    /// State (a hold past its deadline reads `expired`).
    pub state: ReservationState,
    /// Window.
    pub window: Window,
    /// Price.
    pub price: Money,
    /// Until when an unpaid hold blocks the spot.
    #[schema(value_type = String, format = DateTime)]
    pub hold_expires_at: Timestamp,
    /// Made at.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The payment, once started.
    #[schema(required = true)]
    pub payment: Option<PaymentView>,
}

/// A reservation's payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    /// The provider's intent.
    pub intent_id: String,
    /// Amount.
    pub amount: Money,
    /// Whether the money was taken.
    pub captured: bool,
    /// How much went back.
    pub refunded: Money,
}

impl From<Reservation> for ReservationView {
    fn from(r: Reservation) -> Self {
        Self {
            id: r.id,
            lot_id: r.lot,
            spot_id: r.spot,
            state: r.state,
            window: r.window,
            price: r.price,
            hold_expires_at: r.hold_expires_at,
            created_at: r.created_at,
            payment: r.payment.map(|p| PaymentView {
                intent_id: p.intent_id,
                amount: p.amount,
                captured: p.captured,
                refunded: Money::new(p.refunded, p.amount.currency),
            }),
        }
    }
}

/// A hold request: a named spot, or any spot of the lot with the filter's attributes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// The lot.
    pub lot_id: LotId,
    /// First instant.
    pub start: Timestamp,
    /// First instant after.
    pub end: Timestamp,
    /// A named spot.
    #[serde(default)]
    pub spot_id: Option<SpotId>,
    /// Attributes a pooled spot must have.
    #[serde(default)]
    pub filter: Option<SpotFilter>,
}

// `spot_id` and `filter` exclude each other (the handler refuses both), which one object schema
// cannot say: the schema is one of two objects with the same fields, one naming a spot (and no
// filter), the other no spot (and perhaps a filter). A `null` reads as absent, as serde reads it.
impl PartialSchema for HoldBody {
    fn schema() -> RefOr<Schema> {
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let instant = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::DateTime,
                )))
                .description(Some(description))
        };
        let common = |title: &str| {
            ObjectBuilder::new()
                .title(Some(title))
                .property("lot_id", LotId::schema_ref())
                .property("start", instant("The first instant (RFC 3339)."))
                .property("end", instant("The first instant after the window (RFC 3339)."))
                .required("lot_id")
                .required("start")
                .required("end")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let named = common("A named spot")
            .property("spot_id", SpotId::schema_ref())
            .property("filter", null())
            .required("spot_id");
        let pooled = common("Any spot with the filter's attributes")
            .property("spot_id", null())
            .property("filter", OneOfBuilder::new().item(SpotFilter::schema_ref()).item(null()));
        OneOfBuilder::new()
            .description(Some(
                "A hold of a named spot (`spot_id`), or of any free spot of the lot whose attributes \
                 match `filter` (no filter: any spot); not both.",
            ))
            .item(named)
            .item(pooled)
            .into()
    }
}

impl ToSchema for HoldBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "HoldRequest".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((LotId::name().into(), LotId::schema()));
        schemas.push((SpotId::name().into(), SpotId::schema()));
        schemas.push((SpotFilter::name().into(), SpotFilter::schema()));
        SpotFilter::schemas(schemas);
    }
}

/// `$ref` to a component schema of a type.
trait SchemaRef: ToSchema {
    fn schema_ref() -> utoipa::openapi::Ref {
        utoipa::openapi::Ref::from_schema_name(Self::name())
    }
}

impl<T: ToSchema> SchemaRef for T {}

/// A started payment.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Checkout)]
pub struct CheckoutView {
    /// The reservation, awaiting payment.
    pub reservation: ReservationView,
    /// The intent to pay.
    pub intent: PaymentIntent,
    /// With the test gateway: where to play the driver paying.
    #[schema(required = true)]
    pub test_pay_url: Option<String>,
}

/// A cancellation.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Cancellation)]
pub struct CancellationView {
    /// The reservation, cancelled.
    pub reservation: ReservationView,
    /// What went back to the driver.
    pub refunded: Money,
}

/// An extension.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExtendRequest)]
pub struct ExtendBody {
    /// The new end.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
}

/// An account as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountView {
    /// Id.
    pub id: UserId,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Whether login asks for a TOTP code.
    pub mfa_enabled: bool,
    /// Unused recovery codes left.
    pub recovery_codes_left: usize,
    /// Made at.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            email: a.email.clone(),
            role: a.role,
            mfa_enabled: a.mfa_enabled(),
            recovery_codes_left: a.recovery_codes.len(),
            created_at: a.created_at,
        }
    }
}

/// The start of the example window: a Monday morning in the future, when the demo lots are open.
pub const EXAMPLE_START: &str = "2030-01-07T09:00:00Z";
/// The end of the example window.
pub const EXAMPLE_END: &str = "2030-01-07T11:00:00Z";

/// The demo's Eleftheria Square lot, whose id is the same in every demo run: the examples'
/// lot, so that trying them finds something.
pub fn example_lot() -> String {
    crate::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string()
}

/// Query of a window.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// First instant of the window (RFC 3339).
    #[param(value_type = String, format = DateTime, example = "2030-01-07T09:00:00Z")]
    pub start: Timestamp,
    /// First instant after the window (RFC 3339).
    #[param(value_type = String, format = DateTime, example = "2030-01-07T11:00:00Z")]
    pub end: Timestamp,
}

/// Query of a search.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Latitude.
    #[param(minimum = -90.0, maximum = 90.0, example = 35.1706)]
    pub lat: f64,
    /// Longitude.
    #[param(minimum = -180.0, maximum = 180.0, example = 33.3606)]
    pub lon: f64,
    /// Search radius in metres.
    #[param(exclusive_minimum = 0.0, maximum = 100000.0, default = 2000.0)]
    pub radius_m: Option<f64>,
    /// First instant of the window (RFC 3339).
    #[param(value_type = String, format = DateTime, example = "2030-01-07T09:00:00Z")]
    pub start: Timestamp,
    /// First instant after the window (RFC 3339).
    #[param(value_type = String, format = DateTime, example = "2030-01-07T11:00:00Z")]
    pub end: Timestamp,
    /// Only spots with a charger.
    #[serde(default)]
    pub ev: bool,
    /// Only accessible spots.
    #[serde(default)]
    pub accessible: bool,
    /// Smallest spot size.
    pub min_size: Option<SpotSize>,
}

// The bodies below replace maps built with `json!`: each is sent as a [`SortedJson`], so its
// members keep the alphabetical order those maps had.

/// Lots near a point with a matching spot free for the window, nearest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchResults {
    /// The matches.
    pub results: Vec<LotMatch>,
}

/// A lot and its spots.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotWithSpots {
    /// The lot.
    pub lot: Lot,
    /// Its spots.
    pub spots: Vec<Spot>,
}

/// The public keys that verify passes offline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PassKeys {
    /// Every key a pass may name.
    pub keys: PublicKeys,
}

/// A session, after login.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Session {
    /// Until when the token is valid.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// The bearer token.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: TokenType,
    /// The account.
    pub user: AccountView,
}

/// How a token is sent.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub enum TokenType {
    /// `Authorization: Bearer <token>`.
    Bearer,
}

/// A TOTP seed to scan, until the enrolment is confirmed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TotpSeed {
    /// Always `SHA1`.
    pub algorithm: String,
    /// Digits of a code.
    pub digits: u32,
    /// `otpauth://` URI of the seed, for a QR code.
    pub otpauth_uri: String,
    /// Seconds a code lasts.
    pub period: u32,
    /// The seed, base 32.
    pub secret: String,
}

/// Two-factor authentication is on: the recovery codes, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MfaEnabled {
    /// Always `true`.
    pub mfa_enabled: bool,
    /// One-time codes that stand in for a TOTP code.
    pub recovery_codes: Vec<String>,
}

/// The caller's reservations, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reservations {
    /// The reservations.
    pub reservations: Vec<ReservationView>,
}

/// A signed pass as text, with what it grants.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Pass)]
pub struct PassView {
    /// The key that signed it.
    pub key_id: KeyId,
    /// The lot.
    pub lot_id: LotId,
    /// The reservation.
    pub reservation_id: ReservationId,
    /// The spot.
    pub spot_id: SpotId,
    /// The pass, as the QR code carries it.
    pub text: String,
    /// When it opens the gate (give or take the lot's grace).
    pub window: Window,
}

/// A webhook delivery, applied (or acknowledged and ignored).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// Only present, `true`, when the event is not one ParQ acts on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<bool>,
    /// Always `true`.
    pub received: bool,
    /// The reservation the event applied to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationView>,
}

/// The test gateway's payment, and the reservation after its webhook.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestPayment {
    /// The webhook event's id.
    pub event_id: String,
    /// What the payment did.
    pub outcome: PaymentOutcome,
    /// The reservation after the webhook.
    pub reservation: ReservationView,
}

/// What a test payment did.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// Paid and captured.
    Succeeded,
    /// Authorised, to be captured later.
    Authorized,
    /// Declined.
    Failed,
    /// Anything else.
    Other,
}

/// An operator's lots, by name.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Lots {
    /// The lots.
    pub lots: Vec<Lot>,
}

/// A lot's spots.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Spots {
    /// The spots.
    pub spots: Vec<Spot>,
}

/// How a lot's spots are used at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Occupancy {
    /// The instant.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Checked in.
    pub checked_in: usize,
    /// Confirmed, not yet in.
    pub confirmed: usize,
    /// Spots without a live reservation.
    pub free: usize,
    /// Held, unpaid.
    pub held: usize,
    /// The lot.
    pub lot_id: LotId,
    /// Awaiting payment.
    pub pending_payment: usize,
    /// Spots in all.
    pub spots: usize,
}

/// An API key, without the key itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The key's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// When it was revoked (a revoked key authenticates nothing); absent while it works.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    /// What it may do.
    pub role: Role,
}

impl From<crate::accounts::ApiKeyRecord> for ApiKeyView {
    fn from(k: crate::accounts::ApiKeyRecord) -> Self {
        ApiKeyView {
            created_at: k.created_at,
            id: k.id,
            name: k.name,
            revoked_at: k.revoked_at,
            role: k.role,
        }
    }
}

/// An operator's API keys, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeys {
    /// The keys, revoked ones too.
    pub keys: Vec<ApiKeyView>,
}

/// An operator, made by the platform's admin API, and its first operator API key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewOperator {
    /// The operator's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: parq_core::OperatorId,
    /// Its first operator API key, shown this once.
    pub key: NewApiKey,
    /// How many live holds one driver may have across its lots; absent for no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_holds_per_user: Option<u32>,
    /// Its name.
    pub name: String,
}

/// A new API key, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewApiKey {
    /// When it was made.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The key's id.
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// The key itself: send it as `X-Api-Key` (or a bearer token).
    pub key: String,
    /// Its name.
    pub name: String,
    /// What it may do.
    pub role: Role,
}
