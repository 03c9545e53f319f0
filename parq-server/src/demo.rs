//! The demo city: car parks and a street zone in Nicosia and Limassol, priced in euros, on
//! Cyprus time, with an operator and its API keys.

use jiff::SignedDuration;
use parq_core::{
    CancellationPolicy, Currency, DayInterval, Engine, GeoPoint, Lot, LotId, OpeningHours, Operator,
    OperatorId, RateLine, RateTable, Result, Spot, SpotAttributes, SpotId, SpotSize, Tier,
};
use serde::Serialize;
use uuid::Uuid;

use crate::accounts::{Accounts, ApiKeyRecord, Role, secret};

/// What the demo made, to print and for tests.
#[derive(Debug, Clone, Serialize)]
pub struct DemoInfo {
    /// The operator.
    pub operator: OperatorId,
    /// An operator API key.
    pub operator_key: String,
    /// A gate API key.
    pub gate_key: String,
    /// The lots, by name.
    pub lots: Vec<(String, LotId)>,
}

impl DemoInfo {
    /// The id of the lot whose name starts with `name`.
    pub fn lot(&self, name: &str) -> Option<LotId> {
        self.lots.iter().find(|(n, _)| n.starts_with(name)).map(|(_, id)| *id)
    }
}

struct LotPlan {
    name: &'static str,
    at: (f64, f64),
    spots: &'static [(&'static str, bool, bool, SpotSize)],
    rates: RateTable,
    max_stay_hours: i64,
    hours: OpeningHours,
    max_holds_per_user: Option<u32>,
}

const EV: bool = true;
const ACC: bool = true;
const NO: bool = false;

fn eur(lines: Vec<RateLine>, daily_cap: Option<i64>) -> RateTable {
    RateTable { currency: Currency::EUR, lines, daily_cap }
}

fn per(every_minutes: u32, amount: i64, after_minutes: u32) -> RateLine {
    RateLine::Incrementing { after_minutes, every_minutes, amount, until_minutes: None }
}

fn plans() -> Vec<LotPlan> {
    use SpotSize::{Compact, Large, Motorcycle, Standard};
    vec![
        LotPlan {
            name: "Eleftheria Square Car Park, Nicosia",
            at: (35.1706, 33.3606),
            spots: &[
                ("E-01", EV, NO, Standard),
                ("E-02", EV, NO, Standard),
                ("E-03", EV, ACC, Standard),
                ("E-04", NO, ACC, Large),
                ("E-05", NO, NO, Standard),
                ("E-06", NO, NO, Standard),
                ("E-07", NO, NO, Standard),
                ("E-08", NO, NO, Standard),
                ("E-09", NO, NO, Compact),
                ("E-10", NO, NO, Compact),
                ("E-11", NO, NO, Large),
                ("E-12", NO, NO, Motorcycle),
            ],
            rates: eur(vec![per(60, 150, 0)], Some(1200)),
            max_stay_hours: 72,
            hours: OpeningHours::Always,
            max_holds_per_user: None,
        },
        LotPlan {
            name: "Ledra Street Zone, Nicosia",
            at: (35.1740, 33.3615),
            spots: &[
                ("L-1", NO, NO, Standard),
                ("L-2", NO, NO, Standard),
                ("L-3", NO, ACC, Standard),
                ("L-4", NO, NO, Compact),
                ("L-5", NO, NO, Compact),
                ("L-6", NO, NO, Motorcycle),
            ],
            rates: eur(
                vec![RateLine::Tiered {
                    tiers: vec![
                        Tier { up_to_minutes: Some(60), amount: 200 },
                        Tier { up_to_minutes: Some(120), amount: 450 },
                        Tier { up_to_minutes: None, amount: 900 },
                    ],
                }],
                None,
            ),
            max_stay_hours: 4,
            // Monday to Saturday, 07:00–21:00 local time.
            hours: OpeningHours::Weekly {
                intervals: (1..=6)
                    .map(|weekday| DayInterval { weekday, open: 7 * 60, close: 21 * 60 })
                    .collect(),
            },
            max_holds_per_user: Some(2),
        },
        LotPlan {
            name: "Limassol Marina Parking",
            at: (34.6717, 33.0406),
            spots: &[
                ("M-01", EV, NO, Standard),
                ("M-02", EV, NO, Standard),
                ("M-03", EV, NO, Large),
                ("M-04", EV, ACC, Standard),
                ("M-05", NO, ACC, Standard),
                ("M-06", NO, NO, Standard),
                ("M-07", NO, NO, Standard),
                ("M-08", NO, NO, Large),
                ("M-09", NO, NO, Large),
                ("M-10", NO, NO, Compact),
            ],
            rates: eur(vec![RateLine::Flat { amount: 300 }, per(60, 100, 120)], Some(2000)),
            max_stay_hours: 168,
            hours: OpeningHours::Always,
            max_holds_per_user: None,
        },
        LotPlan {
            name: "Limassol Old Port",
            at: (34.6707, 33.0435),
            spots: &[
                ("P-1", NO, NO, Standard),
                ("P-2", NO, NO, Standard),
                ("P-3", EV, NO, Standard),
                ("P-4", NO, ACC, Standard),
                ("P-5", NO, NO, Compact),
                ("P-6", NO, NO, Motorcycle),
            ],
            rates: eur(vec![per(30, 100, 0)], Some(1000)),
            max_stay_hours: 24,
            hours: OpeningHours::Always,
            max_holds_per_user: Some(3),
        },
    ]
}

/// Ids derived from a name, so the demo's lots and spots keep their ids across restarts.
fn stable_id(name: &str) -> Uuid {
    let d = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(name.as_bytes()));
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

/// The id the demo gives the lot named `name`.
pub fn lot_id(name: &str) -> LotId {
    LotId::from_uuid(stable_id(&format!("lot:{name}")))
}

/// The demo operator's id.
pub fn operator_id() -> OperatorId {
    OperatorId::from_uuid(stable_id("operator:ParQ Demo Cyprus"))
}

/// What [`load_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// The demo city was made now.
    Created,
    /// The store already held it (a restart): nothing was changed.
    Kept,
}

/// Loads the demo city into a durable store once: on the first start it is made (as [`load`])
/// and its keys are kept in `db`; on later starts the store already holds the demo operator,
/// so nothing is made again (what operators changed stays) and the kept keys are returned.
/// Keys given in the configuration are (re)stored and win over kept ones.
pub async fn load_once(
    engine: &Engine,
    accounts: &Accounts,
    db: &std::sync::Arc<crate::sqlite::SqliteDb>,
    operator_key: Option<String>,
    gate_key: Option<String>,
) -> Result<(DemoInfo, Loaded)> {
    let exists = match engine.store().operator(operator_id()).await {
        Ok(_) => true,
        Err(parq_core::Error::NotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    let kept = if exists { db.demo_keys().await? } else { None };
    let Some((kept_operator, kept_gate)) = kept else {
        let info = load(engine, accounts, operator_key, gate_key).await?;
        db.keep_demo_keys(&info.operator_key, &info.gate_key).await?;
        return Ok((info, Loaded::Created));
    };
    let operator = operator_id();
    let mut keys = Vec::new();
    for (name, role, given, kept) in [
        ("demo operator", Role::Operator, operator_key, kept_operator),
        ("demo gates", Role::Gate, gate_key, kept_gate),
    ] {
        let key = match given.filter(|k| !k.is_empty()) {
            Some(k) => {
                if accounts.api_key(&secret::digest(&k)).await?.is_none() {
                    accounts.put_api_key(&ApiKeyRecord::for_key(&k, name, role, operator)).await?;
                }
                k
            }
            None => kept,
        };
        keys.push(key);
    }
    db.keep_demo_keys(&keys[0], &keys[1]).await?;
    let lots = plans().into_iter().map(|p| (p.name.to_owned(), lot_id(p.name))).collect();
    let gate_key = keys.pop().unwrap_or_default();
    let operator_key = keys.pop().unwrap_or_default();
    Ok((DemoInfo { operator, operator_key, gate_key, lots }, Loaded::Kept))
}

/// Loads the demo city into `engine` and makes its API keys (`operator_key` and `gate_key`
/// when given, random ones otherwise).
pub async fn load(
    engine: &Engine,
    accounts: &Accounts,
    operator_key: Option<String>,
    gate_key: Option<String>,
) -> Result<DemoInfo> {
    let operator = Operator { id: operator_id(), name: "ParQ Demo Cyprus".into(), max_holds_per_user: None };
    engine.put_operator(&operator).await?;
    let mut lots = Vec::new();
    for plan in plans() {
        let lot = Lot {
            id: lot_id(plan.name),
            operator: operator.id,
            name: plan.name.into(),
            location: GeoPoint::new(plan.at.0, plan.at.1)?,
            time_zone: "Asia/Nicosia".into(),
            granularity: SignedDuration::from_mins(15),
            hold_ttl: SignedDuration::from_mins(10),
            max_stay: SignedDuration::from_hours(plan.max_stay_hours),
            grace: SignedDuration::from_mins(15),
            max_holds_per_user: plan.max_holds_per_user,
            rates: plan.rates,
            cancellation: CancellationPolicy {
                full_refund_before: SignedDuration::from_hours(2),
                late_refund_percent: 50,
            },
            opening_hours: plan.hours,
            blackouts: vec![],
            reentry: parq_core::pass::ReentryPolicy::NotAllowed,
        };
        engine.put_lot(&lot).await?;
        for (label, ev, accessible, size) in plan.spots {
            engine
                .put_spot(&Spot {
                    id: SpotId::from_uuid(stable_id(&format!("spot:{}:{label}", plan.name))),
                    lot: lot.id,
                    label: (*label).into(),
                    attributes: SpotAttributes { ev: *ev, accessible: *accessible, size: *size },
                })
                .await?;
        }
        lots.push((plan.name.to_owned(), lot.id));
    }
    let make_key = async |name: &str, role: Role, given: Option<String>| -> Result<String> {
        let key = given.filter(|k| !k.is_empty()).unwrap_or_else(|| secret::token(secret::API_KEY_PREFIX));
        accounts.put_api_key(&ApiKeyRecord::for_key(&key, name, role, operator.id)).await?;
        Ok(key)
    };
    let operator_key = make_key("demo operator", Role::Operator, operator_key).await?;
    let gate_key = make_key("demo gates", Role::Gate, gate_key).await?;
    Ok(DemoInfo { operator: operator.id, operator_key, gate_key, lots })
}
