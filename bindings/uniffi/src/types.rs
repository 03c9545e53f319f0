//! The records and enums Kotlin and Swift see, and their conversions from and to parq-core's
//! and parq-client's types.
//!
//! Conventions: ids are UUID strings; instants are whole seconds since the Unix epoch (UTC),
//! named `…_epoch_seconds`; durations are seconds; money is integer minor units with an ISO 4217
//! code. A binding adds no rules: these are data, and every decision is made by parq-core.

use jiff::{SignedDuration, Timestamp};
use parq_core as core;
use parq_core::pass as cpass;
use uuid::Uuid;

use crate::error::ParqError;

// ---- Helpers at the edge ----------------------------------------------------------------------

/// Parses a UUID argument.
pub(crate) fn uuid(field: &str, text: &str) -> Result<Uuid, ParqError> {
    Uuid::parse_str(text.trim())
        .map_err(|e| ParqError::invalid(field, format!("{text:?} is not a UUID: {e}")))
}

pub(crate) fn lot_id(field: &str, text: &str) -> Result<core::LotId, ParqError> {
    uuid(field, text).map(core::LotId)
}

pub(crate) fn spot_id(field: &str, text: &str) -> Result<core::SpotId, ParqError> {
    uuid(field, text).map(core::SpotId)
}

pub(crate) fn reservation_id(field: &str, text: &str) -> Result<core::ReservationId, ParqError> {
    uuid(field, text).map(core::ReservationId)
}

/// An instant from whole seconds since the epoch.
pub(crate) fn timestamp(field: &str, secs: i64) -> Result<Timestamp, ParqError> {
    Timestamp::from_second(secs).map_err(|e| ParqError::invalid(field, format!("{secs}: {e}")))
}

/// A window `[start, end)` from whole seconds since the epoch.
pub(crate) fn window(start: i64, end: i64) -> Result<core::Window, ParqError> {
    Ok(core::Window::new(timestamp("start", start)?, timestamp("end", end)?)?)
}

pub(crate) fn secs(d: SignedDuration) -> i64 {
    d.as_secs()
}

pub(crate) fn duration(field: &str, secs: i64) -> Result<SignedDuration, ParqError> {
    if secs < 0 {
        return Err(ParqError::invalid(field, "must not be negative"));
    }
    Ok(SignedDuration::from_secs(secs))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex16(field: &str, text: &str) -> Result<[u8; 16], ParqError> {
    let t = text.trim();
    let bad = || ParqError::invalid(field, format!("{text:?} is not 32 hex digits"));
    if t.len() != 32 || !t.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Parses JSON into `T`, naming `field` when it is not what it should be.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(field: &str, json: &str) -> Result<T, ParqError> {
    serde_json::from_str(json).map_err(|e| ParqError::invalid(field, format!("not the JSON expected: {e}")))
}

// ---- Money ------------------------------------------------------------------------------------

/// An amount in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Money {
    /// Minor units, e.g. cents.
    pub minor: i64,
    /// The currency code, e.g. `EUR`.
    pub currency: String,
}

impl From<core::Money> for Money {
    fn from(m: core::Money) -> Self {
        Self { minor: m.minor, currency: m.currency.as_str().to_owned() }
    }
}

// ---- Gates ------------------------------------------------------------------------------------

/// Which way the vehicle is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Direction {
    /// Into the lot.
    Entry,
    /// Out of the lot.
    Exit,
}

impl From<Direction> for cpass::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Entry => Self::Entry,
            Direction::Exit => Self::Exit,
        }
    }
}

/// Whether a reservation may enter again after leaving, inside its window and grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ReentryPolicy {
    /// One entry per reservation.
    NotAllowed,
    /// Entries after an exit are allowed while the pass is valid.
    Allowed,
}

impl From<ReentryPolicy> for cpass::ReentryPolicy {
    fn from(p: ReentryPolicy) -> Self {
        match p {
            ReentryPolicy::NotAllowed => Self::NotAllowed,
            ReentryPolicy::Allowed => Self::Allowed,
        }
    }
}

impl From<cpass::ReentryPolicy> for ReentryPolicy {
    fn from(p: cpass::ReentryPolicy) -> Self {
        match p {
            cpass::ReentryPolicy::NotAllowed => Self::NotAllowed,
            cpass::ReentryPolicy::Allowed => Self::Allowed,
        }
    }
}

/// Why a gate stays closed: `parq_core::pass::Refusal`, variant for variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Refusal {
    /// Not a pass: unreadable, malformed, altered, or its signature does not match.
    Invalid,
    /// Signed with a key this gate does not trust (unknown or retired).
    UnknownKey,
    /// Cancelled, or replaced by a newer pass.
    Revoked,
    /// For another lot.
    WrongLot,
    /// Before the window's start minus the lot's grace.
    TooEarly,
    /// After the window's end plus the lot's grace (or the reservation was a no-show).
    Expired,
    /// An entry while the reservation's vehicle is already inside.
    AlreadyInside,
    /// An exit for a vehicle that is not inside.
    NotInside,
    /// The reservation is not paid.
    NotPaid,
    /// A second entry where the lot allows one entry per reservation.
    ReentryNotAllowed,
    /// The same reading was already allowed; it counts once.
    Replayed,
}

impl Refusal {
    /// Every refusal, in declaration order.
    pub const ALL: [Refusal; 11] = [
        Self::Invalid,
        Self::UnknownKey,
        Self::Revoked,
        Self::WrongLot,
        Self::TooEarly,
        Self::Expired,
        Self::AlreadyInside,
        Self::NotInside,
        Self::NotPaid,
        Self::ReentryNotAllowed,
        Self::Replayed,
    ];

    /// The core refusal this one mirrors.
    pub fn to_core(self) -> cpass::Refusal {
        match self {
            Self::Invalid => cpass::Refusal::Invalid,
            Self::UnknownKey => cpass::Refusal::UnknownKey,
            Self::Revoked => cpass::Refusal::Revoked,
            Self::WrongLot => cpass::Refusal::WrongLot,
            Self::TooEarly => cpass::Refusal::TooEarly,
            Self::Expired => cpass::Refusal::Expired,
            Self::AlreadyInside => cpass::Refusal::AlreadyInside,
            Self::NotInside => cpass::Refusal::NotInside,
            Self::NotPaid => cpass::Refusal::NotPaid,
            Self::ReentryNotAllowed => cpass::Refusal::ReentryNotAllowed,
            Self::Replayed => cpass::Refusal::Replayed,
        }
    }

    /// The refusal of a snake-case code (`wrong_lot`, …), as the server and the fixtures
    /// write it.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.to_core().as_str() == code)
    }

    /// The snake-case code.
    pub fn code(self) -> &'static str {
        self.to_core().as_str()
    }
}

impl From<cpass::Refusal> for Refusal {
    fn from(r: cpass::Refusal) -> Self {
        // `Refusal` is `#[non_exhaustive]` in parq-core; a test checks that every code it
        // serialises maps to a variant here. A newer core refusal reads as `Invalid` (closed).
        Self::from_code(r.as_str()).unwrap_or(Self::Invalid)
    }
}

/// The outcome of a scan: whether the barrier opens, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Record)]
pub struct ScanDecision {
    /// Whether the barrier opens.
    pub allowed: bool,
    /// Why not, when refused.
    pub reason: Option<Refusal>,
}

impl From<cpass::Decision> for ScanDecision {
    fn from(d: cpass::Decision) -> Self {
        match d {
            cpass::Decision::Allow => Self { allowed: true, reason: None },
            cpass::Decision::Refuse(r) => Self { allowed: false, reason: Some(r.into()) },
        }
    }
}

/// Where a gate believes a reservation's vehicle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Presence {
    /// It has not entered with this reservation.
    NotEntered,
    /// It entered and has not left.
    Inside,
    /// It entered and left.
    Left,
}

impl From<cpass::Presence> for Presence {
    fn from(p: cpass::Presence) -> Self {
        match p {
            cpass::Presence::NotEntered => Self::NotEntered,
            cpass::Presence::Inside => Self::Inside,
            cpass::Presence::Left => Self::Left,
        }
    }
}

/// A public key that verifies passes, with its id (as `GET /api/v1/passes/keys` lists them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct PublicKeyRecord {
    /// The key id passes name.
    pub id: u32,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key_hex: String,
}

pub(crate) fn public_keys(records: &[PublicKeyRecord]) -> Result<cpass::PublicKeys, ParqError> {
    let mut keys = cpass::PublicKeys::new();
    for r in records {
        let key = cpass::PublicKey::from_hex(&r.public_key_hex)
            .map_err(|e| ParqError::invalid("public_key_hex", format!("key {}: {e}", r.id)))?;
        keys.insert(cpass::KeyId(r.id), key);
    }
    Ok(keys)
}

pub(crate) fn public_key_records(keys: &cpass::PublicKeys) -> Vec<PublicKeyRecord> {
    keys.ids()
        .filter_map(|id| keys.get(id).map(|k| PublicKeyRecord { id: id.0, public_key_hex: k.to_hex() }))
        .collect()
}

/// Why passes were revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum RevocationReason {
    /// The reservation was cancelled.
    Cancelled,
    /// A new pass replaced this one.
    Replaced,
}

/// One revocation, numbered by the issuer's list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Revocation {
    /// The list's version once this revocation was added.
    pub version: u64,
    /// The reservation whose passes are revoked.
    pub reservation_id: String,
    /// Only the pass with this nonce (32 hex digits), or every pass of the reservation.
    pub pass_nonce_hex: Option<String>,
    /// Why.
    pub reason: RevocationReason,
    /// When it was made.
    pub at_epoch_seconds: i64,
}

/// What a gate holding version `from` lacks to reach version `to` (`GET /api/v1/gates/revocations`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct RevocationDelta {
    /// The version the delta starts after.
    pub from: u64,
    /// The version a gate holds once it applied the delta.
    pub to: u64,
    /// The revocations numbered `from + 1 ..= to`, in order.
    pub revocations: Vec<Revocation>,
}

impl From<cpass::RevocationDelta> for RevocationDelta {
    fn from(d: cpass::RevocationDelta) -> Self {
        let revocations = d
            .revocations
            .into_iter()
            .map(|r| Revocation {
                version: r.version,
                reservation_id: r.reservation.to_string(),
                pass_nonce_hex: r.pass.map(|n| hex(&n.0)),
                reason: match r.reason {
                    cpass::RevocationReason::Replaced => RevocationReason::Replaced,
                    _ => RevocationReason::Cancelled,
                },
                at_epoch_seconds: r.at.as_second(),
            })
            .collect();
        Self { from: d.from, to: d.to, revocations }
    }
}

impl TryFrom<RevocationDelta> for cpass::RevocationDelta {
    type Error = ParqError;
    fn try_from(d: RevocationDelta) -> Result<Self, ParqError> {
        let mut revocations = Vec::with_capacity(d.revocations.len());
        for r in d.revocations {
            let reason = match r.reason {
                RevocationReason::Cancelled => "cancelled",
                RevocationReason::Replaced => "replaced",
            };
            let pass = match &r.pass_nonce_hex {
                Some(n) => Some(unhex16("pass_nonce_hex", n)?),
                None => None,
            };
            // Through serde: parq-core's `Revocation` is built only from its serialised form here.
            let json = serde_json::json!({
                "version": r.version,
                "reservation": reservation_id("reservation_id", &r.reservation_id)?,
                "pass": pass,
                "reason": reason,
                "at": timestamp("at_epoch_seconds", r.at_epoch_seconds)?,
            });
            let rev: cpass::Revocation =
                serde_json::from_value(json).map_err(|e| ParqError::invalid("revocations", e.to_string()))?;
            revocations.push(rev);
        }
        Ok(cpass::RevocationDelta { from: d.from, to: d.to, revocations })
    }
}

/// What a verified pass says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct PassClaims {
    /// The key that signed it.
    pub key_id: u32,
    /// The reservation.
    pub reservation_id: String,
    /// The lot whose gates it opens.
    pub lot_id: String,
    /// The reserved spot.
    pub spot_id: String,
    /// The window's start.
    pub start_epoch_seconds: i64,
    /// The window's end (exclusive); the lot's grace widens it at the gate.
    pub end_epoch_seconds: i64,
    /// The pass's nonce, 32 hex digits.
    pub nonce_hex: String,
}

impl From<cpass::PassClaims> for PassClaims {
    fn from(c: cpass::PassClaims) -> Self {
        let e = c.entitlement;
        Self {
            key_id: c.key_id.0,
            reservation_id: e.reservation.to_string(),
            lot_id: e.lot.to_string(),
            spot_id: e.spot.to_string(),
            start_epoch_seconds: e.window.start().as_second(),
            end_epoch_seconds: e.window.end().as_second(),
            nonce_hex: hex(&c.nonce.0),
        }
    }
}

// ---- Prices -----------------------------------------------------------------------------------

/// One tier of [`RateLine::Tiered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Tier {
    /// The longest stay this tier covers, in minutes; none for any length.
    pub up_to_minutes: Option<u32>,
    /// The price in minor units.
    pub amount: i64,
}

/// One line of a rate table; a stay's price is the sum of its lines per 24-hour period,
/// capped per period by the daily cap.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum RateLine {
    /// A fixed fee per period.
    Flat {
        /// Minor units.
        amount: i64,
    },
    /// The period is priced by the first tier that covers its length.
    Tiered {
        /// The tiers, increasing; the last may be open.
        tiers: Vec<Tier>,
    },
    /// Every started `every_minutes` after the first `after_minutes` (and before
    /// `until_minutes`) costs `amount`.
    Incrementing {
        /// Minutes not charged at the start of each period.
        after_minutes: u32,
        /// The increment length.
        every_minutes: u32,
        /// The price of one started increment, in minor units.
        amount: i64,
        /// Minutes after which this line stops charging in a period.
        until_minutes: Option<u32>,
    },
}

/// A lot's prices.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct RateTable {
    /// The currency of every amount, e.g. `EUR`.
    pub currency: String,
    /// The lines, summed.
    pub lines: Vec<RateLine>,
    /// The most one 24-hour period costs, in minor units.
    pub daily_cap: Option<i64>,
}

impl From<core::RateTable> for RateTable {
    fn from(t: core::RateTable) -> Self {
        let lines = t
            .lines
            .into_iter()
            .map(|l| match l {
                core::RateLine::Flat { amount } => RateLine::Flat { amount },
                core::RateLine::Tiered { tiers } => RateLine::Tiered {
                    tiers: tiers
                        .into_iter()
                        .map(|t| Tier { up_to_minutes: t.up_to_minutes, amount: t.amount })
                        .collect(),
                },
                core::RateLine::Incrementing { after_minutes, every_minutes, amount, until_minutes } => {
                    RateLine::Incrementing { after_minutes, every_minutes, amount, until_minutes }
                }
            })
            .collect();
        Self { currency: t.currency.as_str().to_owned(), lines, daily_cap: t.daily_cap }
    }
}

impl TryFrom<RateTable> for core::RateTable {
    type Error = ParqError;
    fn try_from(t: RateTable) -> Result<Self, ParqError> {
        let lines = t
            .lines
            .into_iter()
            .map(|l| match l {
                RateLine::Flat { amount } => core::RateLine::Flat { amount },
                RateLine::Tiered { tiers } => core::RateLine::Tiered {
                    tiers: tiers
                        .into_iter()
                        .map(|t| core::Tier { up_to_minutes: t.up_to_minutes, amount: t.amount })
                        .collect(),
                },
                RateLine::Incrementing { after_minutes, every_minutes, amount, until_minutes } => {
                    core::RateLine::Incrementing { after_minutes, every_minutes, amount, until_minutes }
                }
            })
            .collect();
        let table =
            core::RateTable { currency: core::Currency::new(&t.currency)?, lines, daily_cap: t.daily_cap };
        table.validate()?;
        Ok(table)
    }
}

// ---- Lots and spots ---------------------------------------------------------------------------

/// Size class of a spot, ordered from smallest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum SpotSize {
    /// Motorcycles and scooters.
    Motorcycle,
    /// Small cars.
    Compact,
    /// Ordinary cars.
    Standard,
    /// Vans and large cars.
    Large,
}

impl From<core::SpotSize> for SpotSize {
    fn from(s: core::SpotSize) -> Self {
        match s {
            core::SpotSize::Motorcycle => Self::Motorcycle,
            core::SpotSize::Compact => Self::Compact,
            core::SpotSize::Standard => Self::Standard,
            core::SpotSize::Large => Self::Large,
        }
    }
}

impl From<SpotSize> for core::SpotSize {
    fn from(s: SpotSize) -> Self {
        match s {
            SpotSize::Motorcycle => Self::Motorcycle,
            SpotSize::Compact => Self::Compact,
            SpotSize::Standard => Self::Standard,
            SpotSize::Large => Self::Large,
        }
    }
}

/// Which spots a pooled hold or a search may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, uniffi::Record)]
pub struct SpotFilter {
    /// Needs an EV charger.
    #[uniffi(default = false)]
    pub ev: bool,
    /// Needs an accessible spot.
    #[uniffi(default = false)]
    pub accessible: bool,
    /// Needs at least this size.
    #[uniffi(default = None)]
    pub min_size: Option<SpotSize>,
}

impl From<SpotFilter> for core::SpotFilter {
    fn from(f: SpotFilter) -> Self {
        Self { ev: f.ev, accessible: f.accessible, min_size: f.min_size.map(Into::into) }
    }
}

/// Which spot a hold asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum SpotChoice {
    /// This spot.
    Named {
        /// The spot.
        spot_id: String,
    },
    /// Any free spot of the lot with these attributes.
    Pooled {
        /// The attributes required.
        filter: SpotFilter,
    },
}

impl TryFrom<SpotChoice> for core::SpotChoice {
    type Error = ParqError;
    fn try_from(c: SpotChoice) -> Result<Self, ParqError> {
        Ok(match c {
            SpotChoice::Named { spot_id: s } => core::SpotChoice::Spot { spot: spot_id("spot_id", &s)? },
            SpotChoice::Pooled { filter } => core::SpotChoice::Any { filter: filter.into() },
        })
    }
}

/// One addressable place in a lot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Spot {
    /// The spot's id.
    pub id: String,
    /// Its lot.
    pub lot_id: String,
    /// The label painted on the ground.
    pub label: String,
    /// Has an EV charger.
    pub ev: bool,
    /// Accessible.
    pub accessible: bool,
    /// Size class.
    pub size: SpotSize,
}

impl From<core::Spot> for Spot {
    fn from(s: core::Spot) -> Self {
        Self {
            id: s.id.to_string(),
            lot_id: s.lot.to_string(),
            label: s.label,
            ev: s.attributes.ev,
            accessible: s.attributes.accessible,
            size: s.attributes.size.into(),
        }
    }
}

/// An interval of one weekday in the lot's local time, minutes after midnight: `[open, close)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Record)]
pub struct DayInterval {
    /// Monday = 1 … Sunday = 7.
    pub weekday: u8,
    /// Opening minute, 0..1440.
    pub open: u16,
    /// Closing minute, 1..=1440.
    pub close: u16,
}

/// When a lot is open.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum OpeningHours {
    /// Around the clock.
    Always,
    /// In the listed intervals of each weekday.
    Weekly {
        /// The intervals.
        intervals: Vec<DayInterval>,
    },
}

/// A window `[start, end)` of UTC instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Record)]
pub struct TimeWindow {
    /// The first instant inside.
    pub start_epoch_seconds: i64,
    /// The first instant after.
    pub end_epoch_seconds: i64,
}

impl From<core::Window> for TimeWindow {
    fn from(w: core::Window) -> Self {
        Self { start_epoch_seconds: w.start().as_second(), end_epoch_seconds: w.end().as_second() }
    }
}

/// A car park or a street zone.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Lot {
    /// The lot's id.
    pub id: String,
    /// Its operator.
    pub operator_id: String,
    /// Display name.
    pub name: String,
    /// Latitude (WGS 84).
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// IANA time zone, e.g. `Asia/Nicosia`.
    pub time_zone: String,
    /// Windows start and end on multiples of this many seconds.
    pub granularity_seconds: i64,
    /// How long an unpaid hold blocks the spot.
    pub hold_ttl_seconds: i64,
    /// The longest stay.
    pub max_stay_seconds: i64,
    /// How early before and late after its window a pass opens the gate.
    pub grace_seconds: i64,
    /// Live holds one driver may have here at once.
    pub max_holds_per_user: Option<u32>,
    /// Prices.
    pub rates: RateTable,
    /// Cancelled at least this long before the start: full refund.
    pub full_refund_before_seconds: i64,
    /// Cancelled later (before the start): this percentage back.
    pub late_refund_percent: u8,
    /// When it is open.
    pub opening_hours: OpeningHours,
    /// Windows in which nothing may be booked.
    pub blackouts: Vec<TimeWindow>,
    /// Whether a driver who left may enter again within the pass's window and grace.
    pub reentry: ReentryPolicy,
}

impl From<core::Lot> for Lot {
    fn from(l: core::Lot) -> Self {
        Self {
            id: l.id.to_string(),
            operator_id: l.operator.to_string(),
            name: l.name,
            lat: l.location.lat,
            lon: l.location.lon,
            time_zone: l.time_zone,
            granularity_seconds: secs(l.granularity),
            hold_ttl_seconds: secs(l.hold_ttl),
            max_stay_seconds: secs(l.max_stay),
            grace_seconds: secs(l.grace),
            max_holds_per_user: l.max_holds_per_user,
            rates: l.rates.into(),
            full_refund_before_seconds: secs(l.cancellation.full_refund_before),
            late_refund_percent: l.cancellation.late_refund_percent,
            opening_hours: match l.opening_hours {
                core::OpeningHours::Always => OpeningHours::Always,
                core::OpeningHours::Weekly { intervals } => OpeningHours::Weekly {
                    intervals: intervals
                        .into_iter()
                        .map(|i| DayInterval { weekday: i.weekday, open: i.open, close: i.close })
                        .collect(),
                },
            },
            blackouts: l.blackouts.into_iter().map(Into::into).collect(),
            reentry: l.reentry.into(),
        }
    }
}

impl TryFrom<Lot> for core::Lot {
    type Error = ParqError;
    fn try_from(l: Lot) -> Result<Self, ParqError> {
        let lot = core::Lot {
            id: lot_id("id", &l.id)?,
            operator: core::OperatorId(uuid("operator_id", &l.operator_id)?),
            name: l.name,
            location: core::GeoPoint::new(l.lat, l.lon)?,
            time_zone: l.time_zone,
            granularity: duration("granularity_seconds", l.granularity_seconds)?,
            hold_ttl: duration("hold_ttl_seconds", l.hold_ttl_seconds)?,
            max_stay: duration("max_stay_seconds", l.max_stay_seconds)?,
            grace: duration("grace_seconds", l.grace_seconds)?,
            max_holds_per_user: l.max_holds_per_user,
            rates: l.rates.try_into()?,
            cancellation: core::CancellationPolicy {
                full_refund_before: duration("full_refund_before_seconds", l.full_refund_before_seconds)?,
                late_refund_percent: l.late_refund_percent,
            },
            opening_hours: match l.opening_hours {
                OpeningHours::Always => core::OpeningHours::Always,
                OpeningHours::Weekly { intervals } => core::OpeningHours::Weekly {
                    intervals: intervals
                        .into_iter()
                        .map(|i| core::DayInterval { weekday: i.weekday, open: i.open, close: i.close })
                        .collect(),
                },
            },
            blackouts: l
                .blackouts
                .into_iter()
                .map(|w| window(w.start_epoch_seconds, w.end_epoch_seconds))
                .collect::<Result<_, _>>()?,
            reentry: l.reentry.into(),
        };
        lot.validate()?;
        Ok(lot)
    }
}

/// A lot and its spots (`GET /api/v1/lots/{id}`).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LotDetails {
    /// The lot.
    pub lot: Lot,
    /// Its spots.
    pub spots: Vec<Spot>,
}

/// A lot found near a point.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LotMatch {
    /// The lot.
    pub lot: Lot,
    /// Distance from the point, in metres.
    pub distance_m: f64,
    /// Matching spots free for the window.
    pub free: u64,
    /// The price of the window.
    pub price: Money,
}

/// A spot and whether it is free for a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct SpotStatus {
    /// The spot.
    pub spot: Spot,
    /// Free for the whole window.
    pub free: bool,
}

/// A lot's availability for a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Availability {
    /// The lot.
    pub lot_id: String,
    /// The window.
    pub window: TimeWindow,
    /// Every spot, with whether it is free.
    pub spots: Vec<SpotStatus>,
    /// How many are free.
    pub free: u64,
    /// The price of the window.
    pub price: Money,
}

/// A price for a lot and a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Quote {
    /// The lot.
    pub lot_id: String,
    /// The window.
    pub window: TimeWindow,
    /// The price.
    pub price: Money,
}

impl From<core::Quote> for Quote {
    fn from(q: core::Quote) -> Self {
        Self { lot_id: q.lot.to_string(), window: q.window.into(), price: q.price.into() }
    }
}

// ---- Reservations -----------------------------------------------------------------------------

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum ReservationState {
    /// Held until the hold's deadline.
    Held,
    /// A payment was started.
    PendingPayment,
    /// Paid: the spot is the driver's.
    Confirmed,
    /// The driver entered.
    CheckedIn,
    /// The driver left.
    Completed,
    /// Not paid in time.
    Expired,
    /// Cancelled.
    Cancelled,
    /// Nobody came.
    NoShow,
}

impl From<core::ReservationState> for ReservationState {
    fn from(s: core::ReservationState) -> Self {
        use core::ReservationState as S;
        match s {
            S::Held => Self::Held,
            S::PendingPayment => Self::PendingPayment,
            S::Confirmed => Self::Confirmed,
            S::CheckedIn => Self::CheckedIn,
            S::Completed => Self::Completed,
            S::Expired => Self::Expired,
            S::Cancelled => Self::Cancelled,
            S::NoShow => Self::NoShow,
        }
    }
}

/// What happened to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum EventKind {
    /// A hold was made.
    Held,
    /// Checkout started a payment.
    PaymentStarted,
    /// A payment attempt failed; the hold continues.
    PaymentFailed,
    /// Paid: confirmed.
    Confirmed,
    /// A late payment brought an expired reservation back.
    Reinstated,
    /// The payment was captured.
    Captured,
    /// Money went back to the driver.
    Refunded,
    /// The window changed.
    Extended,
    /// Not paid in time.
    Expired,
    /// Cancelled.
    Cancelled,
    /// The driver entered.
    CheckedIn,
    /// The driver left.
    CheckedOut,
    /// Nobody came.
    NoShow,
}

impl From<core::EventKind> for EventKind {
    fn from(k: core::EventKind) -> Self {
        use core::EventKind as K;
        match k {
            K::Held => Self::Held,
            K::PaymentStarted => Self::PaymentStarted,
            K::PaymentFailed => Self::PaymentFailed,
            K::Confirmed => Self::Confirmed,
            K::Reinstated => Self::Reinstated,
            K::Captured => Self::Captured,
            K::Refunded => Self::Refunded,
            K::Extended => Self::Extended,
            K::Expired => Self::Expired,
            K::Cancelled => Self::Cancelled,
            K::CheckedIn => Self::CheckedIn,
            K::CheckedOut => Self::CheckedOut,
            K::NoShow => Self::NoShow,
        }
    }
}

/// A reservation's payment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Payment {
    /// The provider's intent.
    pub intent_id: String,
    /// The amount.
    pub amount: Money,
    /// Whether the money was taken.
    pub captured: bool,
    /// How much went back.
    pub refunded: Money,
}

/// A reservation as its driver sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Reservation {
    /// Its id.
    pub id: String,
    /// The lot.
    pub lot_id: String,
    /// The spot.
    pub spot_id: String,
    /// Its state (a hold past its deadline reads `Expired`).
    pub state: ReservationState,
    /// The booked window.
    pub window: TimeWindow,
    /// The price, locked at hold time.
    pub price: Money,
    /// Until when an unpaid hold blocks the spot.
    pub hold_expires_at_epoch_seconds: i64,
    /// When the hold was made.
    pub created_at_epoch_seconds: i64,
    /// The payment, once checkout began.
    pub payment: Option<Payment>,
}

impl From<parq_client::Reservation> for Reservation {
    fn from(r: parq_client::Reservation) -> Self {
        Self {
            id: r.id.to_string(),
            lot_id: r.lot_id.to_string(),
            spot_id: r.spot_id.to_string(),
            state: r.state.into(),
            window: r.window.into(),
            price: r.price.into(),
            hold_expires_at_epoch_seconds: r.hold_expires_at.as_second(),
            created_at_epoch_seconds: r.created_at.as_second(),
            payment: r.payment.map(|p| Payment {
                intent_id: p.intent_id,
                amount: p.amount.into(),
                captured: p.captured,
                refunded: p.refunded.into(),
            }),
        }
    }
}

/// A hold, and whether the server replayed it for a repeated idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct HoldOutcome {
    /// The reservation (state `Held`, or as it is now when replayed).
    pub reservation: Reservation,
    /// Whether an earlier request with the same idempotency key made it.
    pub replayed: bool,
}

/// A payment intent's state at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum IntentStatus {
    /// Waiting for the driver to pay.
    RequiresPaymentMethod,
    /// Waiting for confirmation.
    RequiresConfirmation,
    /// Waiting for the driver (3-D Secure, …).
    RequiresAction,
    /// The provider is working on it.
    Processing,
    /// Authorised; may be captured.
    RequiresCapture,
    /// Captured.
    Succeeded,
    /// Voided or abandoned.
    Canceled,
}

/// The provider's payment intent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct PaymentIntent {
    /// The provider's id (what `payTestIntent` takes).
    pub id: String,
    /// Its state.
    pub status: IntentStatus,
    /// Its amount.
    pub amount: Money,
    /// The secret a payment sheet needs (absent for providers without one).
    pub client_secret: Option<String>,
}

impl From<core::PaymentIntent> for PaymentIntent {
    fn from(i: core::PaymentIntent) -> Self {
        use core::IntentStatus as S;
        let status = match i.status {
            S::RequiresPaymentMethod => IntentStatus::RequiresPaymentMethod,
            S::RequiresConfirmation => IntentStatus::RequiresConfirmation,
            S::RequiresAction => IntentStatus::RequiresAction,
            S::Processing => IntentStatus::Processing,
            S::RequiresCapture => IntentStatus::RequiresCapture,
            S::Succeeded => IntentStatus::Succeeded,
            S::Canceled => IntentStatus::Canceled,
        };
        Self { id: i.id, status, amount: i.amount.into(), client_secret: i.client_secret }
    }
}

/// A started payment: the reservation awaiting it and the intent to pay.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Checkout {
    /// The reservation, `PendingPayment`.
    pub reservation: Reservation,
    /// The intent.
    pub intent: PaymentIntent,
    /// With the server's test gateway: where to play the driver paying.
    pub test_pay_url: Option<String>,
}

impl From<parq_client::Checkout> for Checkout {
    fn from(c: parq_client::Checkout) -> Self {
        Self { reservation: c.reservation.into(), intent: c.intent.into(), test_pay_url: c.test_pay_url }
    }
}

/// A cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Cancellation {
    /// The reservation, `Cancelled` (or `Expired` for a released hold).
    pub reservation: Reservation,
    /// What went back to the driver.
    pub refunded: Money,
}

impl From<parq_client::Cancellation> for Cancellation {
    fn from(c: parq_client::Cancellation) -> Self {
        Self { reservation: c.reservation.into(), refunded: c.refunded.into() }
    }
}

/// What the server's test gateway did when the driver "paid".
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct TestPayment {
    /// The simulated provider's event id.
    pub event_id: String,
    /// `succeeded`, `authorized` or `failed`.
    pub outcome: String,
    /// The reservation after the payment was applied.
    pub reservation: Reservation,
}

impl From<parq_client::TestPayment> for TestPayment {
    fn from(p: parq_client::TestPayment) -> Self {
        Self { event_id: p.event_id, outcome: p.outcome, reservation: p.reservation.into() }
    }
}

/// A reservation's signed pass: its text (what the QR code holds) and what it grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct PassInfo {
    /// The pass as base45 text.
    pub text: String,
    /// The signing key's id.
    pub key_id: u32,
    /// The reservation.
    pub reservation_id: String,
    /// The lot it opens.
    pub lot_id: String,
    /// The spot.
    pub spot_id: String,
    /// The window it is valid for (plus the lot's grace).
    pub window: TimeWindow,
}

impl From<parq_client::PassInfo> for PassInfo {
    fn from(p: parq_client::PassInfo) -> Self {
        Self {
            text: p.text,
            key_id: p.key_id.0,
            reservation_id: p.reservation_id.to_string(),
            lot_id: p.lot_id.to_string(),
            spot_id: p.spot_id.to_string(),
            window: p.window.into(),
        }
    }
}

// ---- Accounts ---------------------------------------------------------------------------------

/// An account's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum Role {
    /// Searches, holds, pays, cancels its own reservations.
    Driver,
    /// Manages one operator's lots.
    Operator,
    /// Scans passes at one operator's gates.
    Gate,
    /// A role these bindings do not know.
    Other,
}

/// An account as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Account {
    /// Id.
    pub id: String,
    /// Email, normalised.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Whether login asks for a TOTP code.
    pub mfa_enabled: bool,
    /// Unused recovery codes left.
    pub recovery_codes_left: u32,
    /// When it was made.
    pub created_at_epoch_seconds: i64,
}

impl From<parq_client::Account> for Account {
    fn from(a: parq_client::Account) -> Self {
        let role = match a.role {
            parq_client::Role::Driver => Role::Driver,
            parq_client::Role::Operator => Role::Operator,
            parq_client::Role::Gate => Role::Gate,
            _ => Role::Other,
        };
        Self {
            id: a.id.to_string(),
            email: a.email,
            role,
            mfa_enabled: a.mfa_enabled,
            recovery_codes_left: u32::try_from(a.recovery_codes_left).unwrap_or(u32::MAX),
            created_at_epoch_seconds: a.created_at.as_second(),
        }
    }
}

/// A session from `login`. The client keeps the token for the calls that follow.
#[derive(Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct Session {
    /// The bearer token (secret).
    pub token: String,
    /// When it stops working.
    pub expires_at_epoch_seconds: i64,
    /// Whose it is.
    pub user: Account,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"<secret>")
            .field("expires_at_epoch_seconds", &self.expires_at_epoch_seconds)
            .field("user", &self.user)
            .finish()
    }
}

impl From<parq_client::Session> for Session {
    fn from(s: parq_client::Session) -> Self {
        Self { token: s.token, expires_at_epoch_seconds: s.expires_at.as_second(), user: s.user.into() }
    }
}

/// A TOTP seed to put in an authenticator app.
#[derive(Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct TotpEnrolment {
    /// The seed, base32 (secret).
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
    /// `SHA1`.
    pub algorithm: String,
    /// Digits per code.
    pub digits: u32,
    /// Seconds per code.
    pub period: u32,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment").field("secret", &"<secret>").field("digits", &self.digits).finish()
    }
}

impl From<parq_client::TotpEnrolment> for TotpEnrolment {
    fn from(t: parq_client::TotpEnrolment) -> Self {
        Self {
            secret: t.secret,
            otpauth_uri: t.otpauth_uri,
            algorithm: t.algorithm,
            digits: t.digits,
            period: t.period,
        }
    }
}

// ---- Live events ------------------------------------------------------------------------------

/// A change on a followed lot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct LotEvent {
    /// The lot.
    pub lot_id: String,
    /// Per-lot sequence number, from 1, without gaps.
    pub seq: u64,
    /// When it happened.
    pub at_epoch_seconds: i64,
    /// What happened.
    pub kind: EventKind,
    /// The reservation.
    pub reservation_id: String,
    /// Its spot.
    pub spot_id: String,
    /// Its window after the change.
    pub window: TimeWindow,
    /// Its state after the change.
    pub state: ReservationState,
}

impl From<parq_client::LotEvent> for LotEvent {
    fn from(e: parq_client::LotEvent) -> Self {
        Self {
            lot_id: e.lot.to_string(),
            seq: e.seq,
            at_epoch_seconds: e.at.as_second(),
            kind: e.kind.into(),
            reservation_id: e.reservation.to_string(),
            spot_id: e.spot.to_string(),
            window: e.window.into(),
            state: e.state.into(),
        }
    }
}

/// A change to one of the logged-in driver's own reservations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct ReservationEvent {
    /// The lot.
    pub lot_id: String,
    /// The lot's sequence number of the change.
    pub seq: u64,
    /// When it happened.
    pub at_epoch_seconds: i64,
    /// What happened.
    pub kind: EventKind,
    /// The reservation.
    pub reservation_id: String,
    /// Its spot.
    pub spot_id: String,
    /// Its window after the change.
    pub window: TimeWindow,
    /// Its state after the change.
    pub state: ReservationState,
}

impl From<core::Event> for ReservationEvent {
    fn from(e: core::Event) -> Self {
        Self {
            lot_id: e.lot.to_string(),
            seq: e.seq,
            at_epoch_seconds: e.at.as_second(),
            kind: e.kind.into(),
            reservation_id: e.reservation.to_string(),
            spot_id: e.spot.to_string(),
            window: e.window.into(),
            state: e.state.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_refusal_has_its_own_variant() {
        // Every code parq-core serialises (as its docs list them) maps to a distinct variant
        // that maps back to the same core refusal.
        let codes = [
            "invalid",
            "unknown_key",
            "revoked",
            "wrong_lot",
            "too_early",
            "expired",
            "already_inside",
            "not_inside",
            "not_paid",
            "reentry_not_allowed",
            "replayed",
        ];
        let mut seen = std::collections::HashSet::new();
        for code in codes {
            let core: cpass::Refusal = serde_json::from_value(serde_json::json!(code)).unwrap();
            let ours = Refusal::from(core);
            assert_eq!(ours.to_core(), core, "{code}");
            assert_eq!(ours.code(), code);
            assert!(seen.insert(ours), "{code} maps to a variant of its own");
        }
        assert_eq!(seen.len(), Refusal::ALL.len());
    }

    #[test]
    fn ids_times_and_nonces_are_checked_at_the_edge() {
        assert!(
            matches!(lot_id("lot_id", "nope"), Err(ParqError::Invalid { field, .. }) if field == "lot_id")
        );
        assert!(matches!(timestamp("at", i64::MAX), Err(ParqError::Invalid { .. })));
        assert!(matches!(window(10, 10), Err(ParqError::Invalid { .. })));
        assert!(unhex16("n", "zz").is_err());
        assert_eq!(hex(&unhex16("n", &"ab".repeat(16)).unwrap()), "ab".repeat(16));
        assert!(unhex16("n", &"é".repeat(16)).is_err(), "multi-byte text is refused, not sliced");
    }
}
