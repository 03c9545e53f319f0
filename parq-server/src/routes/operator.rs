//! Operators: lots, spots, rates, blackouts, occupancy and API keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use parq_core::pass::ReentryPolicy;
use parq_core::{
    CancellationPolicy, Error, GeoBox, GeoPoint, Lot, LotId, OpeningHours, OperatorId, RateTable,
    ReservationState, Spot, SpotAttributes, SpotId, Window,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::views::{ApiKeyView, ApiKeys, Lots, NewApiKey, Occupancy, SortedJson, Spots, example_lot};
use crate::accounts::{ApiKeyRecord, Role};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OperatorCaller};
use crate::problem::{ApiResult, JsonBody, Problem};
use crate::state::AppState;

const WORLD: GeoBox = GeoBox { min_lat: -90.0, max_lat: 90.0, min_lon: -180.0, max_lon: 180.0 };

async fn owned_lot(s: &AppState, operator: OperatorId, id: LotId) -> ApiResult<Lot> {
    let lot = s.engine.lot(id).await?;
    if lot.operator != operator {
        // Another operator's lot is not shown to exist.
        return Err(Problem::not_found(format!("lot {id} not found")));
    }
    Ok(lot)
}

/// The operator's lots, by name.
#[utoipa::path(
    get,
    path = "/api/v1/operator/lots",
    operation_id = "list_operator_lots",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    responses((status = OK, description = "Lots", body = Lots))
)]
pub async fn lots(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
) -> ApiResult<SortedJson<Lots>> {
    let mut lots: Vec<Lot> =
        s.engine.store().lots_in(&WORLD).await?.into_iter().filter(|l| l.operator == op).collect();
    lots.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(SortedJson(Lots { lots }))
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

/// A lot as an operator describes it; the server assigns the id and the operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LotInput)]
pub struct LotBody {
    /// The lot's name.
    name: String,
    /// Where it is.
    location: GeoPoint,
    /// IANA time zone name; opening hours are in this zone.
    #[serde(default = "default_tz")]
    #[schema(default = "Asia/Nicosia")]
    time_zone: String,
    /// Windows start and end on multiples of this.
    #[serde(default = "default_granularity")]
    #[schema(value_type = String, format = Duration, default = "PT15M")]
    granularity: SignedDuration,
    /// How long an unpaid hold blocks the spot.
    #[serde(default = "default_hold_ttl")]
    #[schema(value_type = String, format = Duration, default = "PT10M")]
    hold_ttl: SignedDuration,
    /// How long a stay may last at most.
    #[serde(default = "default_max_stay")]
    #[schema(value_type = String, format = Duration, default = "PT72H")]
    max_stay: SignedDuration,
    /// How early and late a pass opens the gate; how late a driver may come.
    #[serde(default = "default_grace")]
    #[schema(value_type = String, format = Duration, default = "PT15M")]
    grace: SignedDuration,
    /// Live holds one user may have in the lot at once; none for no limit.
    #[serde(default)]
    #[schema(format = "uint32")]
    max_holds_per_user: Option<u32>,
    /// The prices.
    rates: RateTable,
    /// The refunds (default: full up to two hours before, half later).
    #[serde(default = "default_cancellation")]
    cancellation: CancellationPolicy,
    /// When it is open (default: always).
    #[serde(default)]
    opening_hours: OpeningHours,
    /// Windows when it takes no bookings.
    #[serde(default)]
    blackouts: Vec<Window>,
    /// Whether a driver who left may enter again within the pass's window and grace
    /// (default: `not_allowed`, one entry per reservation).
    #[serde(default)]
    reentry: ReentryPolicy,
}

fn default_tz() -> String {
    "Asia/Nicosia".into()
}
fn default_granularity() -> SignedDuration {
    mins(15)
}
fn default_hold_ttl() -> SignedDuration {
    mins(10)
}
fn default_max_stay() -> SignedDuration {
    mins(72 * 60)
}
fn default_grace() -> SignedDuration {
    mins(15)
}
fn default_cancellation() -> CancellationPolicy {
    CancellationPolicy { full_refund_before: mins(120), late_refund_percent: 50 }
}

impl LotBody {
    fn into_lot(self, id: LotId, operator: OperatorId) -> Lot {
        Lot {
            id,
            operator,
            name: self.name,
            location: self.location,
            time_zone: self.time_zone,
            granularity: self.granularity,
            hold_ttl: self.hold_ttl,
            max_stay: self.max_stay,
            grace: self.grace,
            max_holds_per_user: self.max_holds_per_user,
            rates: self.rates,
            cancellation: self.cancellation,
            opening_hours: self.opening_hours,
            blackouts: self.blackouts,
            reentry: self.reentry,
        }
    }
}

/// Create a lot.
#[utoipa::path(
    post,
    path = "/api/v1/operator/lots",
    operation_id = "create_lot",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    request_body = LotBody,
    responses(
        (status = CREATED, description = "Created", body = Lot),
        JsonBody,
    )
)]
pub async fn create_lot(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiJson(b): ApiJson<LotBody>,
) -> ApiResult<(StatusCode, Json<Lot>)> {
    let lot = b.into_lot(LotId::new(), op);
    s.engine.put_lot(&lot).await?;
    Ok((StatusCode::CREATED, Json(lot)))
}

/// Replace a lot's settings (its spots stay).
#[utoipa::path(
    put,
    path = "/api/v1/operator/lots/{lot_id}",
    operation_id = "replace_lot",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot)),
    request_body = LotBody,
    responses(
        (status = OK, description = "Replaced", body = Lot),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn replace_lot(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
    ApiJson(b): ApiJson<LotBody>,
) -> ApiResult<Json<Lot>> {
    owned_lot(&s, op, id).await?;
    let lot = b.into_lot(id, op);
    s.engine.put_lot(&lot).await?;
    Ok(Json(lot))
}

/// A lot's spots.
#[utoipa::path(
    get,
    path = "/api/v1/operator/lots/{lot_id}/spots",
    operation_id = "list_spots",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot)),
    responses(
        (status = OK, description = "Spots", body = Spots),
        (status = NOT_FOUND, response = Problem),
    )
)]
pub async fn spots(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
) -> ApiResult<SortedJson<Spots>> {
    owned_lot(&s, op, id).await?;
    Ok(SortedJson(Spots { spots: s.engine.spots(id).await? }))
}

/// A new spot.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SpotInput)]
pub struct SpotBody {
    /// Its label, as painted.
    #[schema(max_length = 64)]
    label: String,
    /// What it offers (default: a standard spot, no charger, not accessible).
    #[serde(default)]
    attributes: SpotAttributes,
}

/// Add a spot.
#[utoipa::path(
    post,
    path = "/api/v1/operator/lots/{lot_id}/spots",
    operation_id = "create_spot",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot)),
    request_body = SpotBody,
    responses(
        (status = CREATED, description = "Created", body = Spot),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn create_spot(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
    ApiJson(b): ApiJson<SpotBody>,
) -> ApiResult<(StatusCode, Json<Spot>)> {
    owned_lot(&s, op, id).await?;
    if b.label.len() > 64 {
        return Err(Error::invalid("label", "must be at most 64 characters").into());
    }
    let spot =
        Spot { id: SpotId::new(), lot: id, label: b.label.trim().to_owned(), attributes: b.attributes };
    s.engine.put_spot(&spot).await?;
    Ok((StatusCode::CREATED, Json(spot)))
}

/// Replace the rate table (holds made later use it).
#[utoipa::path(
    put,
    path = "/api/v1/operator/lots/{lot_id}/rates",
    operation_id = "set_rates",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot)),
    request_body = RateTable,
    responses(
        (status = OK, description = "The lot", body = Lot),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn set_rates(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
    ApiJson(rates): ApiJson<RateTable>,
) -> ApiResult<Json<Lot>> {
    let mut lot = owned_lot(&s, op, id).await?;
    lot.rates = rates;
    s.engine.put_lot(&lot).await?;
    Ok(Json(lot))
}

/// Windows when a lot takes no bookings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Blackouts)]
pub struct BlackoutsBody {
    /// At most 1000 windows.
    blackouts: Vec<Window>,
}

/// Replace the blackout windows.
#[utoipa::path(
    put,
    path = "/api/v1/operator/lots/{lot_id}/blackouts",
    operation_id = "set_blackouts",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot)),
    request_body = BlackoutsBody,
    responses(
        (status = OK, description = "The lot", body = Lot),
        (status = NOT_FOUND, response = Problem),
        JsonBody,
    )
)]
pub async fn set_blackouts(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
    ApiJson(b): ApiJson<BlackoutsBody>,
) -> ApiResult<Json<Lot>> {
    if b.blackouts.len() > 1000 {
        return Err(Error::invalid("blackouts", "at most 1000").into());
    }
    let mut lot = owned_lot(&s, op, id).await?;
    lot.blackouts = b.blackouts;
    s.engine.put_lot(&lot).await?;
    Ok(Json(lot))
}

/// Query of an instant.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant (default: now).
    #[param(value_type = Option<String>, format = DateTime)]
    at: Option<Timestamp>,
}

/// How the spots are used at an instant (now by default).
#[utoipa::path(
    get,
    path = "/api/v1/operator/lots/{lot_id}/occupancy",
    operation_id = "get_occupancy",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("lot_id" = LotId, Path, description = "The lot.", example = example_lot), AtQuery),
    responses(
        (status = OK, description = "Occupancy", body = Occupancy),
        (status = NOT_FOUND, response = Problem),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn occupancy(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> ApiResult<SortedJson<Occupancy>> {
    owned_lot(&s, op, id).await?;
    let now = s.engine.now();
    let at = q.at.unwrap_or(now);
    let window = Window::starting_at(at, SignedDuration::from_secs(1))?;
    let spots = s.engine.spots(id).await?.len();
    let live = s.engine.store().live_in_lot(id, &window, now).await?;
    let count = |st: ReservationState| live.iter().filter(|r| r.state_at(now) == st).count();
    let used = live
        .iter()
        .filter(|r| r.is_live_at(now))
        .map(|r| r.spot)
        .collect::<std::collections::HashSet<_>>()
        .len();
    Ok(SortedJson(Occupancy {
        at,
        checked_in: count(ReservationState::CheckedIn),
        confirmed: count(ReservationState::Confirmed),
        free: spots.saturating_sub(used),
        held: count(ReservationState::Held),
        lot_id: id,
        pending_payment: count(ReservationState::PendingPayment),
        spots,
    }))
}

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyRequest)]
pub struct KeyBody {
    /// What it is for, e.g. the gate's name.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// `gate` or `operator`.
    role: Role,
}

/// Create an API key for a gate or the operator's systems (shown once).
#[utoipa::path(
    post,
    path = "/api/v1/operator/keys",
    operation_id = "create_api_key",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    request_body = KeyBody,
    responses(
        (status = CREATED, description = "Created", body = NewApiKey),
        JsonBody,
    )
)]
pub async fn create_key(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiJson(b): ApiJson<KeyBody>,
) -> ApiResult<(StatusCode, SortedJson<NewApiKey>)> {
    if b.role == Role::Driver {
        return Err(Error::invalid("role", "API keys are for gates and operators").into());
    }
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return Err(Error::invalid("name", "must be 1 to 100 characters").into());
    }
    let (record, key) = ApiKeyRecord::issue(b.name.trim(), b.role, op);
    s.accounts.put_api_key(&record).await?;
    Ok((
        StatusCode::CREATED,
        SortedJson(NewApiKey {
            created_at: record.created_at,
            id: record.id,
            key,
            name: record.name,
            role: record.role,
        }),
    ))
}

/// The operator's API keys (never the keys themselves), revoked ones too, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/operator/keys",
    operation_id = "list_api_keys",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    responses((status = OK, description = "The keys", body = ApiKeys))
)]
pub async fn list_keys(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
) -> ApiResult<SortedJson<ApiKeys>> {
    let keys = s.accounts.api_keys(op).await?.into_iter().map(ApiKeyView::from).collect();
    Ok(SortedJson(ApiKeys { keys }))
}

/// Revoke one of the operator's API keys: it is refused at once, by every replica. The
/// operator's last working operator key is kept (create another first), so that the operator
/// is never locked out.
#[utoipa::path(
    delete,
    path = "/api/v1/operator/keys/{id}",
    operation_id = "revoke_api_key",
    tag = "operator",
    security(("bearer" = []), ("apiKey" = [])),
    params(("id" = Uuid, Path, description = "The key's id")),
    responses(
        (status = OK, description = "Revoked (or revoked before)", body = ApiKeyView),
        (status = NOT_FOUND, response = Problem),
    )
)]
pub async fn revoke_key(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<SortedJson<ApiKeyView>> {
    let keys = s.accounts.api_keys(op).await?;
    let Some(key) = keys.iter().find(|k| k.id == id) else {
        // Another operator's key is not shown to exist.
        return Err(Problem::not_found(format!("API key {id} not found")));
    };
    if key.revoked_at.is_none()
        && key.role == Role::Operator
        && !keys.iter().any(|k| k.id != id && k.role == Role::Operator && k.revoked_at.is_none())
    {
        return Err(Error::invalid(
            "id",
            "this is the operator's last working operator key: create another one first, then revoke this one",
        )
        .into());
    }
    let revoked = s
        .accounts
        .revoke_api_key(id, Timestamp::now())
        .await?
        .ok_or_else(|| Problem::not_found(format!("API key {id} not found")))?;
    // Refused from the next request on, here; other processes on a SQLite file within its TTL.
    s.auth_cache.forget_key(id);
    tracing::info!(key = %id, operator = %op, "revoked an API key");
    Ok(SortedJson(ApiKeyView::from(revoked)))
}
