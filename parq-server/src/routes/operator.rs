//! Operators: lots, spots, rates, blackouts, occupancy and API keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use parq_core::{
    CancellationPolicy, Error, GeoBox, GeoPoint, Lot, LotId, OpeningHours, OperatorId, RateTable,
    ReservationState, Spot, SpotAttributes, SpotId, Window,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::{ApiKeyRecord, Role, secret};
use crate::extract::{ApiJson, ApiPath, ApiQuery, OperatorCaller};
use crate::problem::{ApiResult, Problem};
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

/// `GET /api/v1/operator/lots`.
pub async fn lots(State(s): State<AppState>, OperatorCaller(op): OperatorCaller) -> ApiResult<Json<Value>> {
    let mut lots: Vec<Lot> =
        s.engine.store().lots_in(&WORLD).await?.into_iter().filter(|l| l.operator == op).collect();
    lots.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(json!({ "lots": lots })))
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

/// A lot as an operator describes it; the server assigns the id and the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotBody {
    name: String,
    location: GeoPoint,
    #[serde(default = "default_tz")]
    time_zone: String,
    #[serde(default = "default_granularity")]
    granularity: SignedDuration,
    #[serde(default = "default_hold_ttl")]
    hold_ttl: SignedDuration,
    #[serde(default = "default_max_stay")]
    max_stay: SignedDuration,
    #[serde(default = "default_grace")]
    grace: SignedDuration,
    #[serde(default)]
    max_holds_per_user: Option<u32>,
    rates: RateTable,
    #[serde(default = "default_cancellation")]
    cancellation: CancellationPolicy,
    #[serde(default)]
    opening_hours: OpeningHours,
    #[serde(default)]
    blackouts: Vec<Window>,
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
        }
    }
}

/// `POST /api/v1/operator/lots`.
pub async fn create_lot(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiJson(b): ApiJson<LotBody>,
) -> ApiResult<(StatusCode, Json<Lot>)> {
    let lot = b.into_lot(LotId::new(), op);
    s.engine.put_lot(&lot).await?;
    Ok((StatusCode::CREATED, Json(lot)))
}

/// `PUT /api/v1/operator/lots/{lot_id}`: replaces a lot's settings (its spots stay).
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

/// `GET /api/v1/operator/lots/{lot_id}/spots`.
pub async fn spots(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
) -> ApiResult<Json<Value>> {
    owned_lot(&s, op, id).await?;
    Ok(Json(json!({ "spots": s.engine.spots(id).await? })))
}

/// The body of `POST /api/v1/operator/lots/{lot_id}/spots`: a spot to add.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpotBody {
    label: String,
    #[serde(default)]
    attributes: SpotAttributes,
}

/// `POST /api/v1/operator/lots/{lot_id}/spots`.
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

/// `PUT /api/v1/operator/lots/{lot_id}/rates`: the rate table (holds made later use it).
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

/// The body of `PUT /api/v1/operator/lots/{lot_id}/blackouts`: the lot's blackout windows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackoutsBody {
    blackouts: Vec<Window>,
}

/// `PUT /api/v1/operator/lots/{lot_id}/blackouts`: windows when the lot takes no bookings.
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

#[derive(Debug, Deserialize)]
pub struct AtQuery {
    at: Option<Timestamp>,
}

/// `GET /api/v1/operator/lots/{lot_id}/occupancy?at=`: how the lot's spots are used at an
/// instant (now by default).
pub async fn occupancy(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiPath(id): ApiPath<LotId>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({
        "lot_id": id,
        "at": at,
        "spots": spots,
        "free": spots.saturating_sub(used),
        "held": count(ReservationState::Held),
        "pending_payment": count(ReservationState::PendingPayment),
        "confirmed": count(ReservationState::Confirmed),
        "checked_in": count(ReservationState::CheckedIn),
    })))
}

/// The body of `POST /api/v1/operator/keys`: which key to make.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    name: String,
    role: Role,
}

/// `POST /api/v1/operator/keys`: a new API key for a gate or the operator's systems, shown
/// this once.
pub async fn create_key(
    State(s): State<AppState>,
    OperatorCaller(op): OperatorCaller,
    ApiJson(b): ApiJson<KeyBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if b.role == Role::Driver {
        return Err(Error::invalid("role", "API keys are for gates and operators").into());
    }
    if b.name.trim().is_empty() || b.name.len() > 100 {
        return Err(Error::invalid("name", "must be 1 to 100 characters").into());
    }
    let key = secret::token(secret::API_KEY_PREFIX);
    let record = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: b.name.trim().to_owned(),
        key_hash: secret::digest(&key),
        role: b.role,
        operator: op,
        created_at: Timestamp::now(),
    };
    s.accounts.put_api_key(&record).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": record.id, "name": record.name, "role": record.role, "key": key, "created_at": record.created_at }),
        ),
    ))
}
