//! Operators, lots, spots and the rules a lot lives by.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{LotId, OperatorId, SpotId};
use crate::money::{Currency, Money};
use crate::pass::ReentryPolicy;
use crate::time::Window;

/// A tenant: owns lots, API keys and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    /// The operator's id.
    pub id: OperatorId,
    /// Display name.
    pub name: String,
    /// How many live holds (held or awaiting payment) one user may have across this operator's
    /// lots at once; `None` for no limit. Anti-hoarding (DESIGN.md invariant 7).
    pub max_holds_per_user: Option<u32>,
}

impl Operator {
    /// An operator called `name`, with a new id and no limit on holds per user.
    ///
    /// ```
    /// let operator = parq_core::Operator::new("City Parking").max_holds_per_user(2);
    /// assert_eq!(operator.max_holds_per_user, Some(2));
    /// ```
    pub fn new(name: impl Into<String>) -> Self {
        Self { id: OperatorId::new(), name: name.into(), max_holds_per_user: None }
    }

    /// The same operator with the id `id` (a stable id kept elsewhere, say).
    pub fn with_id(mut self, id: OperatorId) -> Self {
        self.id = id;
        self
    }

    /// Limits one user to `n` live holds across this operator's lots at once.
    pub fn max_holds_per_user(mut self, n: u32) -> Self {
        self.max_holds_per_user = Some(n);
        self
    }
}

/// A point on Earth in degrees (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct GeoPoint {
    /// Latitude, −90 to 90.
    #[cfg_attr(feature = "utoipa", schema(minimum = -90.0, maximum = 90.0))]
    pub lat: f64,
    /// Longitude, −180 to 180.
    #[cfg_attr(feature = "utoipa", schema(minimum = -180.0, maximum = 180.0))]
    pub lon: f64,
}

impl GeoPoint {
    /// A point; fails outside the valid ranges or on NaN.
    pub fn new(lat: f64, lon: f64) -> Result<Self> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(Error::invalid("lat", format!("{lat} is outside -90..=90")));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(Error::invalid("lon", format!("{lon} is outside -180..=180")));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        const R: f64 = 6_371_008.8;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().atan2((1.0 - a).sqrt())
    }

    /// The latitude/longitude box that contains every point within `radius_m` of this one,
    /// so a store can answer "near a point" with plain range indexes.
    pub fn bounding_box(&self, radius_m: f64) -> GeoBox {
        let dlat = (radius_m / 111_320.0).min(180.0);
        let cos = self.lat.to_radians().cos().max(1e-6);
        let dlon = (radius_m / (111_320.0 * cos)).min(360.0);
        GeoBox {
            min_lat: (self.lat - dlat).max(-90.0),
            max_lat: (self.lat + dlat).min(90.0),
            min_lon: (self.lon - dlon).max(-180.0),
            max_lon: (self.lon + dlon).min(180.0),
        }
    }
}

/// A latitude/longitude rectangle (inclusive bounds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoBox {
    /// Southern edge.
    pub min_lat: f64,
    /// Northern edge.
    pub max_lat: f64,
    /// Western edge.
    pub min_lon: f64,
    /// Eastern edge.
    pub max_lon: f64,
}

impl GeoBox {
    /// Whether `p` lies in the box.
    pub fn contains(&self, p: &GeoPoint) -> bool {
        (self.min_lat..=self.max_lat).contains(&p.lat) && (self.min_lon..=self.max_lon).contains(&p.lon)
    }
}

/// A car park or a street zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Lot {
    /// The lot's id.
    pub id: LotId,
    /// The operator that owns it.
    pub operator: OperatorId,
    /// Display name.
    pub name: String,
    /// Where it is.
    pub location: GeoPoint,
    /// IANA time zone name, e.g. `Asia/Nicosia`; opening hours are in this zone.
    pub time_zone: String,
    /// Windows must start and end on multiples of this (from the Unix epoch), e.g. 15 minutes.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Duration, example = "PT15M"))]
    pub granularity: SignedDuration,
    /// How long an unpaid hold blocks the spot.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Duration, example = "PT15M"))]
    pub hold_ttl: SignedDuration,
    /// How long a stay may last at most.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Duration, example = "PT15M"))]
    pub max_stay: SignedDuration,
    /// How early before and late after its window a pass still opens the gate; also how late a
    /// driver may arrive before a confirmed reservation counts as a no-show.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Duration, example = "PT15M"))]
    pub grace: SignedDuration,
    /// Live holds one user may have in this lot at once; `None` for no limit.
    #[cfg_attr(feature = "utoipa", schema(format = "uint32"))]
    pub max_holds_per_user: Option<u32>,
    /// Prices.
    pub rates: RateTable,
    /// Refunds on cancellation.
    pub cancellation: CancellationPolicy,
    /// When the lot is open.
    pub opening_hours: OpeningHours,
    /// Windows in which nothing may be booked (works, events).
    pub blackouts: Vec<Window>,
    /// Whether a driver who left may enter again within the pass's window and grace
    /// (default: `not_allowed`, one entry per reservation). Gates of the lot follow it, online
    /// and offline.
    #[serde(default)]
    pub reentry: ReentryPolicy,
}

impl Lot {
    /// A builder for a lot of `operator` called `name` at `location`, with defaults for
    /// everything but the price; see [`LotBuilder`].
    pub fn builder(operator: OperatorId, name: impl Into<String>, location: GeoPoint) -> LotBuilder {
        LotBuilder::new(operator, name, location)
    }

    /// The lot's time zone.
    pub fn tz(&self) -> Result<TimeZone> {
        TimeZone::get(&self.time_zone)
            .map_err(|e| Error::invalid("time_zone", format!("{:?}: {e}", self.time_zone)))
    }

    /// Checks the lot's own settings; called when a lot is stored.
    pub fn validate(&self) -> Result<()> {
        GeoPoint::new(self.location.lat, self.location.lon)?;
        self.tz()?;
        let positive = |field: &'static str, d: SignedDuration| {
            if d.is_positive() { Ok(()) } else { Err(Error::invalid(field, "must be positive")) }
        };
        positive("granularity", self.granularity)?;
        positive("hold_ttl", self.hold_ttl)?;
        positive("max_stay", self.max_stay)?;
        if self.max_stay < self.granularity {
            return Err(Error::invalid("max_stay", "must be at least the granularity, or no window fits"));
        }
        if self.grace.is_negative() {
            return Err(Error::invalid("grace", "must not be negative"));
        }
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        self.rates.validate()?;
        self.opening_hours.validate()?;
        if self.cancellation.late_refund_percent > 100 {
            return Err(Error::invalid("late_refund_percent", "must be at most 100"));
        }
        if self.cancellation.full_refund_before.is_negative() {
            return Err(Error::invalid("full_refund_before", "must not be negative"));
        }
        Ok(())
    }

    /// Checks that `window` may be booked here: aligned to the granularity, not longer than
    /// the maximum stay, inside opening hours and outside blackouts.
    pub fn check_window(&self, window: &Window) -> Result<()> {
        let g = self.granularity.as_secs().max(1);
        let aligned = |t: Timestamp| t.subsec_nanosecond() == 0 && t.as_second().rem_euclid(g) == 0;
        if !aligned(window.start()) || !aligned(window.end()) {
            return Err(Error::invalid(
                "window",
                format!("must start and end on multiples of {} minutes", g / 60),
            ));
        }
        if window.duration() > self.max_stay {
            return Err(Error::LimitExceeded {
                limit: format!("maximum stay of {} minutes", self.max_stay.as_mins()),
            });
        }
        if self.blackouts.iter().any(|b| b.overlaps(window)) {
            return Err(Error::Conflict { reason: crate::error::ConflictReason::Blackout });
        }
        match self.opening_hours {
            OpeningHours::Always => Ok(()),
            OpeningHours::Weekly { .. } => self.opening_hours.check(window, &self.tz()?),
        }
    }
}

/// Builds a [`Lot`] with sensible defaults; made by [`Lot::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`time_zone`](Self::time_zone) | `UTC` |
/// | [`granularity`](Self::granularity) | 15 minutes |
/// | [`hold_ttl`](Self::hold_ttl) | 10 minutes |
/// | [`max_stay`](Self::max_stay) | 72 hours |
/// | [`grace`](Self::grace) | 15 minutes |
/// | [`max_holds_per_user`](Self::max_holds_per_user) | no limit |
/// | [`cancellation`](Self::cancellation) | full refund until 2 hours before the start, half after, nothing once started |
/// | [`opening_hours`](Self::opening_hours) | always open |
/// | [`blackout`](Self::blackout) | none |
///
/// The price has no default: give [`hourly_rate`](Self::hourly_rate) (optionally with a
/// [`daily_cap`](Self::daily_cap)) or a whole [`rates`](Self::rates) table.
/// [`build`](Self::build) checks the lot as [`Engine::put_lot`](crate::Engine::put_lot) does.
///
/// ```
/// use jiff::SignedDuration;
/// use parq_core::{Currency, GeoPoint, Lot, Money, OperatorId};
///
/// let lot = Lot::builder(OperatorId::new(), "Central", GeoPoint::new(35.1725, 33.3617)?)
///     .time_zone("Asia/Nicosia")
///     .hourly_rate(Money::new(200, Currency::EUR))
///     .daily_cap(Money::new(1500, Currency::EUR))
///     .max_stay(SignedDuration::from_hours(24))
///     .build()?;
/// assert_eq!(lot.granularity, SignedDuration::from_mins(15));
///
/// let zero = Lot::builder(OperatorId::new(), "Nowhere", GeoPoint::new(0.0, 0.0)?)
///     .hourly_rate(Money::new(100, Currency::EUR))
///     .granularity(SignedDuration::ZERO)
///     .build();
/// assert!(matches!(zero, Err(parq_core::Error::Invalid { field: "granularity", .. })));
/// # Ok::<(), parq_core::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct LotBuilder {
    lot: Lot,
    rates: Option<RateTable>,
    daily_cap: Option<Money>,
}

impl LotBuilder {
    fn new(operator: OperatorId, name: impl Into<String>, location: GeoPoint) -> Self {
        let lot = Lot {
            id: LotId::new(),
            operator,
            name: name.into(),
            location,
            time_zone: "UTC".into(),
            granularity: SignedDuration::from_mins(15),
            hold_ttl: SignedDuration::from_mins(10),
            max_stay: SignedDuration::from_hours(72),
            grace: SignedDuration::from_mins(15),
            max_holds_per_user: None,
            // Replaced in `build`.
            rates: RateTable { currency: Currency::EUR, lines: Vec::new(), daily_cap: None },
            cancellation: CancellationPolicy {
                full_refund_before: SignedDuration::from_hours(2),
                late_refund_percent: 50,
            },
            opening_hours: OpeningHours::Always,
            blackouts: Vec::new(),
            reentry: ReentryPolicy::NotAllowed,
        };
        Self { lot, rates: None, daily_cap: None }
    }

    /// The lot's id (default: a new one).
    pub fn id(mut self, id: LotId) -> Self {
        self.lot.id = id;
        self
    }

    /// Whether a driver who left may enter again (default: one entry per reservation).
    pub fn reentry(mut self, reentry: ReentryPolicy) -> Self {
        self.lot.reentry = reentry;
        self
    }

    /// The IANA time zone in which opening hours are read, e.g. `Asia/Nicosia`.
    pub fn time_zone(mut self, time_zone: impl Into<String>) -> Self {
        self.lot.time_zone = time_zone.into();
        self
    }

    /// Windows start and end on multiples of this.
    pub fn granularity(mut self, granularity: SignedDuration) -> Self {
        self.lot.granularity = granularity;
        self
    }

    /// How long an unpaid hold blocks its spot.
    pub fn hold_ttl(mut self, hold_ttl: SignedDuration) -> Self {
        self.lot.hold_ttl = hold_ttl;
        self
    }

    /// The longest stay that may be booked.
    pub fn max_stay(mut self, max_stay: SignedDuration) -> Self {
        self.lot.max_stay = max_stay;
        self
    }

    /// How early and late around its window a pass still opens the gate, and how late a
    /// driver may arrive before counting as a no-show.
    pub fn grace(mut self, grace: SignedDuration) -> Self {
        self.lot.grace = grace;
        self
    }

    /// Limits one user to `n` live holds in this lot at once.
    pub fn max_holds_per_user(mut self, n: u32) -> Self {
        self.lot.max_holds_per_user = Some(n);
        self
    }

    /// Charges `per_hour` for every started hour of a stay (replacing any earlier rates).
    pub fn hourly_rate(mut self, per_hour: Money) -> Self {
        self.rates = Some(RateTable {
            currency: per_hour.currency,
            lines: vec![RateLine::Incrementing {
                after_minutes: 0,
                every_minutes: 60,
                amount: per_hour.minor,
                until_minutes: None,
            }],
            daily_cap: None,
        });
        self
    }

    /// A whole rate table (replacing any earlier rates).
    pub fn rates(mut self, rates: RateTable) -> Self {
        self.rates = Some(rates);
        self
    }

    /// Caps what one 24-hour period of a stay costs; in the currency of the rates.
    pub fn daily_cap(mut self, cap: Money) -> Self {
        self.daily_cap = Some(cap);
        self
    }

    /// What comes back when a driver cancels.
    pub fn cancellation(mut self, cancellation: CancellationPolicy) -> Self {
        self.lot.cancellation = cancellation;
        self
    }

    /// When the lot is open.
    pub fn opening_hours(mut self, opening_hours: OpeningHours) -> Self {
        self.lot.opening_hours = opening_hours;
        self
    }

    /// Adds a window in which nothing may be booked (works, an event).
    pub fn blackout(mut self, window: Window) -> Self {
        self.lot.blackouts.push(window);
        self
    }

    /// The lot, after the checks of [`Lot::validate`]; [`Error::Invalid`] names the setting
    /// that makes no sense (no rates, a zero granularity, an unknown time zone, …).
    pub fn build(self) -> Result<Lot> {
        let mut lot = self.lot;
        lot.rates =
            self.rates.ok_or_else(|| Error::invalid("rates", "give a price: hourly_rate(…) or rates(…)"))?;
        if let Some(cap) = self.daily_cap {
            if cap.currency != lot.rates.currency {
                return Err(Error::invalid(
                    "daily_cap",
                    format!("must be in {}, the currency of the rates", lot.rates.currency),
                ));
            }
            lot.rates.daily_cap = Some(cap.minor);
        }
        lot.validate()?;
        Ok(lot)
    }
}

/// Size class of a spot, ordered from smallest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum SpotSize {
    /// Motorcycles and scooters.
    Motorcycle,
    /// Small cars.
    Compact,
    /// Ordinary cars.
    #[default]
    Standard,
    /// Vans and large cars.
    Large,
}

/// What a spot offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SpotAttributes {
    /// Has an EV charger.
    pub ev: bool,
    /// Accessible (wide, near the entrance).
    pub accessible: bool,
    /// Size class.
    pub size: SpotSize,
}

/// One addressable place in a lot. A street zone of capacity N is N spots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Spot {
    /// The spot's id.
    pub id: SpotId,
    /// Its lot.
    pub lot: LotId,
    /// Label painted on the ground, e.g. `B-12`.
    pub label: String,
    /// What it offers.
    pub attributes: SpotAttributes,
}

impl Spot {
    /// A standard-size spot labelled `label` in `lot`, with a new id, no EV charger and not
    /// accessible; the setters below change that.
    ///
    /// ```
    /// use parq_core::{LotId, Spot, SpotSize};
    ///
    /// let spot = Spot::new(LotId::new(), "B-12").ev(true).size(SpotSize::Large);
    /// assert!(spot.attributes.ev && !spot.attributes.accessible);
    /// ```
    pub fn new(lot: LotId, label: impl Into<String>) -> Self {
        Self { id: SpotId::new(), lot, label: label.into(), attributes: SpotAttributes::default() }
    }

    /// The same spot with the id `id`.
    pub fn with_id(mut self, id: SpotId) -> Self {
        self.id = id;
        self
    }

    /// Whether it has an EV charger.
    pub fn ev(mut self, ev: bool) -> Self {
        self.attributes.ev = ev;
        self
    }

    /// Whether it is accessible (wide, near the entrance).
    pub fn accessible(mut self, accessible: bool) -> Self {
        self.attributes.accessible = accessible;
        self
    }

    /// Its size class.
    pub fn size(mut self, size: SpotSize) -> Self {
        self.attributes.size = size;
        self
    }
}

/// Which spots a pooled hold may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct SpotFilter {
    /// Needs an EV charger.
    #[serde(default)]
    pub ev: bool,
    /// Needs an accessible spot.
    #[serde(default)]
    pub accessible: bool,
    /// Needs at least this size.
    #[serde(default)]
    pub min_size: Option<SpotSize>,
}

impl SpotFilter {
    /// Whether `a` satisfies the filter.
    pub fn matches(&self, a: &SpotAttributes) -> bool {
        (!self.ev || a.ev) && (!self.accessible || a.accessible) && self.min_size.is_none_or(|s| a.size >= s)
    }
}

/// How much of the price comes back on cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CancellationPolicy {
    /// Cancelled at least this long before the window starts: full refund.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = Duration, example = "PT15M"))]
    pub full_refund_before: SignedDuration,
    /// Cancelled later, but before the start: this percentage back. After the start: nothing.
    pub late_refund_percent: u8,
}

impl CancellationPolicy {
    /// The refund for a reservation of `paid` over `window`, cancelled at `now`.
    pub fn refund(&self, paid: Money, window: &Window, now: Timestamp) -> Money {
        let until_start = window.start().duration_since(now);
        if until_start >= self.full_refund_before {
            paid
        } else if until_start.is_positive() {
            paid.percent(self.late_refund_percent)
        } else {
            Money::zero(paid.currency)
        }
    }
}

/// One line of a rate table. A stay's price is the sum of its lines, computed per 24-hour period
/// of the stay (tariffs restart every 24 hours) and capped per period by the daily cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum RateLine {
    /// A fixed fee per period, e.g. an entry fee.
    Flat {
        /// Minor units.
        amount: i64,
    },
    /// The period is priced by the first tier that covers its length: "up to 1 h 2 €, up to
    /// 3 h 5 €, longer 9 €". The tiers must be in increasing order; the last may be open.
    Tiered {
        /// The tiers.
        tiers: Vec<Tier>,
    },
    /// Every started `every_minutes` after the first `after_minutes` (and before
    /// `until_minutes`, if set) costs `amount`: "after the first free hour, 1.50 € per 30 min".
    Incrementing {
        /// Minutes that this line does not charge at the start of each period.
        #[serde(default)]
        #[cfg_attr(feature = "utoipa", schema(format = "uint32"))]
        after_minutes: u32,
        /// The increment length.
        #[cfg_attr(feature = "utoipa", schema(format = "uint32"))]
        every_minutes: u32,
        /// The price of one started increment, in minor units.
        amount: i64,
        /// Minutes after which this line stops charging in a period.
        #[serde(default)]
        #[cfg_attr(feature = "utoipa", schema(format = "uint32"))]
        until_minutes: Option<u32>,
    },
}

/// One tier of [`RateLine::Tiered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Tier {
    /// The longest stay this tier covers, in minutes; `None` for any length.
    #[cfg_attr(feature = "utoipa", schema(format = "uint32"))]
    pub up_to_minutes: Option<u32>,
    /// The price in minor units.
    pub amount: i64,
}

/// A lot's prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RateTable {
    /// The currency of every amount in the table.
    pub currency: Currency,
    /// The lines, summed.
    pub lines: Vec<RateLine>,
    /// The most one 24-hour period costs, in minor units.
    #[serde(default)]
    pub daily_cap: Option<i64>,
}

const DAY_MINUTES: u64 = 24 * 60;

impl RateTable {
    /// Checks amounts and line shapes.
    pub fn validate(&self) -> Result<()> {
        if self.daily_cap.is_some_and(|c| c < 0) {
            return Err(Error::invalid("daily_cap", "must not be negative"));
        }
        for line in &self.lines {
            match line {
                RateLine::Flat { amount } if *amount < 0 => {
                    return Err(Error::invalid("rates", "amounts must not be negative"));
                }
                RateLine::Tiered { tiers } => {
                    if tiers.is_empty() {
                        return Err(Error::invalid("rates", "a tiered line needs at least one tier"));
                    }
                    let mut last = 0u32;
                    for (i, t) in tiers.iter().enumerate() {
                        if t.amount < 0 {
                            return Err(Error::invalid("rates", "amounts must not be negative"));
                        }
                        match t.up_to_minutes {
                            Some(m) if m <= last && i > 0 => {
                                return Err(Error::invalid("rates", "tiers must increase"));
                            }
                            Some(m) => last = m,
                            None if i + 1 != tiers.len() => {
                                return Err(Error::invalid("rates", "only the last tier may be open"));
                            }
                            None => {}
                        }
                    }
                }
                RateLine::Incrementing { every_minutes, amount, after_minutes, until_minutes } => {
                    if *every_minutes == 0 {
                        return Err(Error::invalid("rates", "every_minutes must be positive"));
                    }
                    if *amount < 0 {
                        return Err(Error::invalid("rates", "amounts must not be negative"));
                    }
                    if until_minutes.is_some_and(|u| u <= *after_minutes) {
                        return Err(Error::invalid("rates", "until_minutes must exceed after_minutes"));
                    }
                }
                RateLine::Flat { .. } => {}
            }
        }
        Ok(())
    }

    /// The price of a stay over `window`.
    pub fn quote(&self, window: &Window) -> Result<Money> {
        // Round the stay up to whole minutes: a started minute counts.
        let secs = window.duration().as_secs().max(0) as u64;
        let minutes = secs.div_ceil(60);
        let full_days = minutes / DAY_MINUTES;
        let rest = minutes % DAY_MINUTES;
        let day_price = if full_days > 0 { self.period_price(DAY_MINUTES)? } else { 0 };
        let rest_price = if rest > 0 { self.period_price(rest)? } else { 0 };
        let total = i64::try_from(full_days)
            .ok()
            .and_then(|d| d.checked_mul(day_price))
            .and_then(|t| t.checked_add(rest_price))
            .ok_or_else(|| Error::invalid("window", "price overflows"))?;
        Ok(Money::new(total, self.currency))
    }

    fn period_price(&self, minutes: u64) -> Result<i64> {
        let mut total: i64 = 0;
        for line in &self.lines {
            let p = match line {
                RateLine::Flat { amount } => *amount,
                RateLine::Tiered { tiers } => tiers
                    .iter()
                    .find(|t| t.up_to_minutes.is_none_or(|m| u64::from(m) >= minutes))
                    .or(tiers.last())
                    .map_or(0, |t| t.amount),
                RateLine::Incrementing { after_minutes, every_minutes, amount, until_minutes } => {
                    let end = until_minutes.map_or(minutes, |u| minutes.min(u64::from(u)));
                    let charged = end.saturating_sub(u64::from(*after_minutes));
                    let n = charged.div_ceil(u64::from(*every_minutes));
                    i64::try_from(n)
                        .ok()
                        .and_then(|n| n.checked_mul(*amount))
                        .ok_or_else(|| Error::invalid("window", "price overflows"))?
                }
            };
            total = total.checked_add(p).ok_or_else(|| Error::invalid("window", "price overflows"))?;
        }
        Ok(self.daily_cap.map_or(total, |cap| total.min(cap)))
    }
}

/// Opening hours in the lot's local time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub enum OpeningHours {
    /// Open around the clock.
    #[default]
    Always,
    /// Open in the listed intervals of each weekday (a day with no interval is closed).
    Weekly {
        /// The intervals, any order.
        intervals: Vec<DayInterval>,
    },
}

/// An interval of one weekday, in minutes after local midnight: `[open, close)`, with `close`
/// up to 1440 (midnight at the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct DayInterval {
    /// Day of the week, Monday = 1 … Sunday = 7.
    pub weekday: u8,
    /// Opening minute, 0..1440.
    pub open: u16,
    /// Closing minute, 1..=1440.
    pub close: u16,
}

impl OpeningHours {
    fn validate(&self) -> Result<()> {
        if let OpeningHours::Weekly { intervals } = self {
            for i in intervals {
                if !(1..=7).contains(&i.weekday) || i.open >= i.close || i.close > 1440 {
                    return Err(Error::invalid("opening_hours", format!("bad interval {i:?}")));
                }
            }
        }
        Ok(())
    }

    /// Fails unless every instant of `window` is inside opening hours.
    pub fn check(&self, window: &Window, tz: &TimeZone) -> Result<()> {
        let OpeningHours::Weekly { intervals } = self else { return Ok(()) };
        let closed = || Error::invalid("window", "the lot is closed during part of the window");
        let mut t = window.start();
        // Each step moves to the end of an open interval, so the loop ends; bound it anyway.
        for _ in 0..(7 * 48 + 64) {
            if t >= window.end() {
                return Ok(());
            }
            let z = t.to_zoned_datetime(tz.clone());
            let wd = z.weekday().to_monday_one_offset() as u8;
            let minute = (z.hour() as u16) * 60 + z.minute() as u16;
            // The latest close among intervals of the day that contain this minute.
            let close = intervals
                .iter()
                .filter(|i| i.weekday == wd && i.open <= minute && minute < i.close)
                .map(|i| i.close)
                .max()
                .ok_or_else(closed)?;
            let day = z.date();
            let next = if close >= 1440 {
                day.tomorrow()
                    .map_err(|e| Error::invalid("window", e.to_string()))?
                    .to_zoned_datetime(tz.clone())
            } else {
                day.at((close / 60) as i8, (close % 60) as i8, 0, 0).to_zoned_datetime(tz.clone())
            }
            .map_err(|e| Error::invalid("window", e.to_string()))?;
            let next = next.timestamp();
            if next <= t {
                return Err(closed());
            }
            t = next;
        }
        Err(closed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64, m: i64) -> Timestamp {
        "2030-01-07T00:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_mins(h * 60 + m)
    }

    fn table(lines: Vec<RateLine>, daily_cap: Option<i64>) -> RateTable {
        let t = RateTable { currency: Currency::EUR, lines, daily_cap };
        t.validate().unwrap();
        t
    }

    fn price(t: &RateTable, from: (i64, i64), to: (i64, i64)) -> i64 {
        t.quote(&Window::new(at(from.0, from.1), at(to.0, to.1)).unwrap()).unwrap().minor
    }

    #[test]
    fn flat_line_is_charged_once_per_day() {
        let t = table(vec![RateLine::Flat { amount: 500 }], None);
        assert_eq!(price(&t, (8, 0), (9, 0)), 500);
        assert_eq!(price(&t, (8, 0), (8 + 30, 0)), 1000, "a day and a part of the next");
    }

    #[test]
    fn tiered_line_takes_the_first_tier_that_covers_the_stay() {
        let tiers = vec![
            Tier { up_to_minutes: Some(60), amount: 200 },
            Tier { up_to_minutes: Some(180), amount: 500 },
            Tier { up_to_minutes: None, amount: 900 },
        ];
        let t = table(vec![RateLine::Tiered { tiers }], None);
        assert_eq!(price(&t, (8, 0), (9, 0)), 200, "exactly one hour");
        assert_eq!(price(&t, (8, 0), (9, 1)), 500, "a started minute counts");
        assert_eq!(price(&t, (8, 0), (11, 0)), 500);
        assert_eq!(price(&t, (8, 0), (18, 0)), 900);
    }

    #[test]
    fn incrementing_line_charges_started_increments_after_the_free_time() {
        let t = table(
            vec![RateLine::Incrementing {
                after_minutes: 60,
                every_minutes: 30,
                amount: 150,
                until_minutes: None,
            }],
            None,
        );
        assert_eq!(price(&t, (8, 0), (9, 0)), 0, "the first hour is free");
        assert_eq!(price(&t, (8, 0), (9, 1)), 150);
        assert_eq!(price(&t, (8, 0), (10, 0)), 300);
        assert_eq!(price(&t, (8, 0), (10, 15)), 450);
    }

    #[test]
    fn daily_cap_limits_each_day_and_lines_add_up() {
        let t = table(
            vec![
                RateLine::Flat { amount: 100 },
                RateLine::Incrementing {
                    after_minutes: 0,
                    every_minutes: 60,
                    amount: 200,
                    until_minutes: None,
                },
            ],
            Some(1500),
        );
        assert_eq!(price(&t, (8, 0), (10, 0)), 500);
        assert_eq!(price(&t, (8, 0), (20, 0)), 1500, "capped");
        assert_eq!(price(&t, (8, 0), (8 + 48 + 2, 0)), 1500 + 1500 + 500, "two capped days and two hours");
    }

    #[test]
    fn bad_rate_tables_are_refused() {
        let bad = [
            RateTable {
                currency: Currency::EUR,
                lines: vec![RateLine::Flat { amount: -1 }],
                daily_cap: None,
            },
            RateTable {
                currency: Currency::EUR,
                lines: vec![RateLine::Tiered { tiers: vec![] }],
                daily_cap: None,
            },
            RateTable {
                currency: Currency::EUR,
                lines: vec![RateLine::Incrementing {
                    after_minutes: 0,
                    every_minutes: 0,
                    amount: 1,
                    until_minutes: None,
                }],
                daily_cap: None,
            },
            RateTable {
                currency: Currency::EUR,
                lines: vec![RateLine::Tiered {
                    tiers: vec![
                        Tier { up_to_minutes: None, amount: 1 },
                        Tier { up_to_minutes: Some(10), amount: 2 },
                    ],
                }],
                daily_cap: None,
            },
        ];
        for t in bad {
            assert!(matches!(t.validate(), Err(Error::Invalid { .. })), "{t:?}");
        }
    }

    #[test]
    fn opening_hours_cover_the_whole_window_in_local_time() {
        // Weekdays 07:00-20:00 local (Asia/Nicosia is UTC+2 in January); Saturday 09:00-24:00.
        let mut intervals: Vec<DayInterval> =
            (1..=5).map(|d| DayInterval { weekday: d, open: 420, close: 1200 }).collect();
        intervals.push(DayInterval { weekday: 6, open: 540, close: 1440 });
        intervals.push(DayInterval { weekday: 7, open: 0, close: 120 });
        let hours = OpeningHours::Weekly { intervals };
        hours.validate().unwrap();
        let tz = TimeZone::get("Asia/Nicosia").unwrap();
        let w = |a: (i64, i64), b: (i64, i64)| Window::new(at(a.0, a.1), at(b.0, b.1)).unwrap();
        // 2030-01-07 is a Monday; 05:00 UTC is 07:00 local.
        assert!(hours.check(&w((5, 0), (18, 0)), &tz).is_ok());
        assert!(hours.check(&w((4, 45), (6, 0)), &tz).is_err(), "opens at 07:00 local");
        assert!(hours.check(&w((17, 0), (18, 15)), &tz).is_err(), "closes at 20:00 local");
        // Saturday 2030-01-12 22:00 local to Sunday 01:00 local crosses midnight while open.
        let sat = 5 * 24;
        assert!(hours.check(&w((sat + 20, 0), (sat + 23, 0)), &tz).is_ok());
        assert!(hours.check(&w((sat + 20, 0), (sat + 24, 30)), &tz).is_err(), "Sunday closes at 02:00 local");
    }

    #[test]
    fn windows_must_align_fit_the_stay_and_avoid_blackouts() {
        let (mut lot, _) =
            crate::testing::sample_lot(OperatorId::new(), "L", GeoPoint { lat: 35.0, lon: 33.0 });
        lot.validate().unwrap();
        let w = |a: (i64, i64), b: (i64, i64)| Window::new(at(a.0, a.1), at(b.0, b.1)).unwrap();
        assert!(lot.check_window(&w((8, 0), (9, 0))).is_ok());
        assert!(
            matches!(lot.check_window(&w((8, 5), (9, 0))), Err(Error::Invalid { .. })),
            "not on 15 minutes"
        );
        assert!(matches!(lot.check_window(&w((8, 0), (8 + 73, 0))), Err(Error::LimitExceeded { .. })));
        lot.blackouts.push(w((10, 0), (12, 0)));
        assert!(matches!(lot.check_window(&w((11, 0), (13, 0))), Err(Error::Conflict { .. })));
        assert!(lot.check_window(&w((12, 0), (13, 0))).is_ok(), "half-open: ends where the blackout ends");
    }

    #[test]
    fn cancellation_policy_by_notice() {
        let p =
            CancellationPolicy { full_refund_before: SignedDuration::from_hours(2), late_refund_percent: 50 };
        let paid = Money::new(1000, Currency::EUR);
        let w = Window::new(at(12, 0), at(14, 0)).unwrap();
        assert_eq!(p.refund(paid, &w, at(10, 0)).minor, 1000);
        assert_eq!(p.refund(paid, &w, at(10, 1)).minor, 500);
        assert_eq!(p.refund(paid, &w, at(12, 0)).minor, 0, "nothing once the stay started");
    }

    fn builder() -> LotBuilder {
        Lot::builder(OperatorId::new(), "Central", GeoPoint { lat: 35.17, lon: 33.36 })
            .hourly_rate(Money::new(200, Currency::EUR))
    }

    fn invalid_field(r: Result<Lot>) -> &'static str {
        match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected Error::Invalid, got {other:?}"),
        }
    }

    #[test]
    fn lot_builder_defaults() {
        let lot = builder().build().unwrap();
        assert_eq!(lot.time_zone, "UTC");
        assert_eq!(lot.granularity, SignedDuration::from_mins(15));
        assert_eq!(lot.hold_ttl, SignedDuration::from_mins(10));
        assert_eq!(lot.max_stay, SignedDuration::from_hours(72));
        assert_eq!(lot.grace, SignedDuration::from_mins(15));
        assert_eq!(lot.max_holds_per_user, None);
        assert_eq!(lot.opening_hours, OpeningHours::Always);
        assert!(lot.blackouts.is_empty());
        assert_eq!(
            lot.cancellation,
            CancellationPolicy { full_refund_before: SignedDuration::from_hours(2), late_refund_percent: 50 }
        );
        assert_eq!(price(&lot.rates, (8, 0), (9, 0)), 200);
        assert_eq!(price(&lot.rates, (8, 0), (10, 1)), 600, "a started hour counts");
        assert_eq!(lot.rates.currency, Currency::EUR);
    }

    #[test]
    fn lot_builder_setters_reach_the_lot() {
        let id = LotId::new();
        let blackout = Window::new(at(10, 0), at(12, 0)).unwrap();
        let lot = builder()
            .id(id)
            .time_zone("Asia/Nicosia")
            .granularity(SignedDuration::from_mins(30))
            .hold_ttl(SignedDuration::from_mins(5))
            .max_stay(SignedDuration::from_hours(4))
            .grace(SignedDuration::ZERO)
            .max_holds_per_user(1)
            .daily_cap(Money::new(500, Currency::EUR))
            .blackout(blackout)
            .build()
            .unwrap();
        assert_eq!(lot.id, id);
        assert_eq!(lot.tz().unwrap(), TimeZone::get("Asia/Nicosia").unwrap());
        assert_eq!(lot.granularity, SignedDuration::from_mins(30));
        assert_eq!(lot.hold_ttl, SignedDuration::from_mins(5));
        assert_eq!(lot.max_stay, SignedDuration::from_hours(4));
        assert_eq!(lot.grace, SignedDuration::ZERO);
        assert_eq!(lot.max_holds_per_user, Some(1));
        assert_eq!(lot.blackouts, vec![blackout]);
        assert_eq!(price(&lot.rates, (0, 0), (4, 0)), 500, "capped");
        let table = RateTable {
            currency: Currency::USD,
            lines: vec![RateLine::Flat { amount: 300 }],
            daily_cap: None,
        };
        let lot = builder().rates(table.clone()).build().unwrap();
        assert_eq!(lot.rates, table, "the last rates given win");
    }

    #[test]
    fn lot_builder_refuses_settings_that_make_no_sense() {
        let mins = SignedDuration::from_mins;
        let no_rates = Lot::builder(OperatorId::new(), "Central", GeoPoint { lat: 35.17, lon: 33.36 });
        assert_eq!(invalid_field(no_rates.build()), "rates");
        assert_eq!(invalid_field(builder().granularity(SignedDuration::ZERO).build()), "granularity");
        assert_eq!(invalid_field(builder().hold_ttl(mins(-1)).build()), "hold_ttl");
        assert_eq!(invalid_field(builder().max_stay(SignedDuration::ZERO).build()), "max_stay");
        assert_eq!(
            invalid_field(builder().max_stay(mins(10)).build()),
            "max_stay",
            "shorter than the granularity"
        );
        assert_eq!(invalid_field(builder().grace(mins(-5)).build()), "grace");
        assert_eq!(invalid_field(builder().time_zone("Mars/Olympus_Mons").build()), "time_zone");
        assert_eq!(invalid_field(builder().hourly_rate(Money::new(-1, Currency::EUR)).build()), "rates");
        assert_eq!(invalid_field(builder().daily_cap(Money::new(900, Currency::USD)).build()), "daily_cap");
        assert_eq!(invalid_field(builder().daily_cap(Money::new(-1, Currency::EUR)).build()), "daily_cap");
        let late =
            |percent, before| CancellationPolicy { full_refund_before: before, late_refund_percent: percent };
        assert_eq!(invalid_field(builder().cancellation(late(101, mins(0))).build()), "late_refund_percent");
        assert_eq!(invalid_field(builder().cancellation(late(50, mins(-60))).build()), "full_refund_before");
        let closed = OpeningHours::Weekly { intervals: vec![DayInterval { weekday: 8, open: 0, close: 60 }] };
        assert_eq!(invalid_field(builder().opening_hours(closed).build()), "opening_hours");
        let nowhere = Lot::builder(OperatorId::new(), "Nowhere", GeoPoint { lat: 95.0, lon: 0.0 })
            .hourly_rate(Money::new(200, Currency::EUR));
        assert_eq!(invalid_field(nowhere.build()), "lat");
        let unnamed = Lot::builder(OperatorId::new(), " ", GeoPoint { lat: 0.0, lon: 0.0 })
            .hourly_rate(Money::new(200, Currency::EUR));
        assert_eq!(invalid_field(unnamed.build()), "name");
    }

    #[test]
    fn spots_and_operators_have_defaults_and_setters() {
        let lot = LotId::new();
        let spot = Spot::new(lot, "B-12");
        assert_eq!((spot.lot, spot.label.as_str()), (lot, "B-12"));
        assert_eq!(
            spot.attributes,
            SpotAttributes { ev: false, accessible: false, size: SpotSize::Standard }
        );
        let id = SpotId::new();
        let spot = spot.with_id(id).ev(true).accessible(true).size(SpotSize::Large);
        assert_eq!(spot.id, id);
        assert_eq!(spot.attributes, SpotAttributes { ev: true, accessible: true, size: SpotSize::Large });
        assert_ne!(Spot::new(lot, "B-13").id, Spot::new(lot, "B-13").id, "each spot gets its own id");

        let operator = Operator::new("City Parking");
        assert_eq!((operator.name.as_str(), operator.max_holds_per_user), ("City Parking", None));
        let id = OperatorId::new();
        let operator = operator.with_id(id).max_holds_per_user(3);
        assert_eq!((operator.id, operator.max_holds_per_user), (id, Some(3)));
    }

    #[test]
    fn geography() {
        let nicosia = GeoPoint::new(35.1856, 33.3823).unwrap();
        let limassol = GeoPoint::new(34.7071, 33.0226).unwrap();
        let d = nicosia.distance_m(&limassol);
        assert!((61_000.0..64_000.0).contains(&d), "{d}");
        let b = nicosia.bounding_box(1000.0);
        assert!(b.contains(&nicosia) && !b.contains(&limassol));
        assert!(GeoPoint::new(91.0, 0.0).is_err() && GeoPoint::new(0.0, f64::NAN).is_err());
    }
}
