//! Conversions between rows and ParQ's types.

use std::time::SystemTime;

use jiff::Timestamp;
use parq_core::{
    Currency, Error, Event, EventKind, GateSession, LotId, Money, OperatorId, PaymentRef, Reservation,
    ReservationId, ReservationState, Result, SessionId, SpotId, UserId, Window,
};
use tokio_postgres::Row;

use crate::error::PgError;

/// `t` truncated to whole microseconds, PostgreSQL's precision.
pub(crate) fn micros(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// `t` as a `SystemTime` for the driver (whole microseconds, see [`micros`]).
pub(crate) fn sys(t: Timestamp) -> Result<SystemTime> {
    SystemTime::try_from(micros(t)).map_err(|e| Error::invalid("timestamp", e.to_string()))
}

/// A window whose ends are stored exactly: PostgreSQL keeps microseconds, so a window with
/// finer ends is refused rather than silently moved.
pub(crate) fn check_window(w: &Window) -> Result<(SystemTime, SystemTime)> {
    if micros(w.start()) != w.start() || micros(w.end()) != w.end() {
        return Err(Error::invalid("window", "must start and end on whole microseconds"));
    }
    Ok((sys(w.start())?, sys(w.end())?))
}

fn stamp(t: SystemTime) -> Result<Timestamp, PgError> {
    Timestamp::try_from(t).map_err(|e| PgError::malformed("timestamp", e))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, PgError> {
    row.try_get(i).map_err(PgError::Db)
}

pub(crate) fn state(s: &str) -> Result<ReservationState, PgError> {
    ReservationState::parse(s).ok_or_else(|| PgError::malformed("state", format!("unknown state {s:?}")))
}

/// The stored name of an event kind.
pub(crate) fn kind_str(k: EventKind) -> &'static str {
    match k {
        EventKind::Held => "held",
        EventKind::PaymentStarted => "payment_started",
        EventKind::PaymentFailed => "payment_failed",
        EventKind::Confirmed => "confirmed",
        EventKind::Reinstated => "reinstated",
        EventKind::Captured => "captured",
        EventKind::Refunded => "refunded",
        EventKind::Extended => "extended",
        EventKind::Expired => "expired",
        EventKind::Cancelled => "cancelled",
        EventKind::CheckedIn => "checked_in",
        EventKind::CheckedOut => "checked_out",
        EventKind::NoShow => "no_show",
    }
}

const KINDS: [EventKind; 13] = [
    EventKind::Held,
    EventKind::PaymentStarted,
    EventKind::PaymentFailed,
    EventKind::Confirmed,
    EventKind::Reinstated,
    EventKind::Captured,
    EventKind::Refunded,
    EventKind::Extended,
    EventKind::Expired,
    EventKind::Cancelled,
    EventKind::CheckedIn,
    EventKind::CheckedOut,
    EventKind::NoShow,
];

fn kind(s: &str) -> Result<EventKind, PgError> {
    KINDS
        .into_iter()
        .find(|k| kind_str(*k) == s)
        .ok_or_else(|| PgError::malformed("event kind", format!("unknown kind {s:?}")))
}

fn window(start: SystemTime, end: SystemTime) -> Result<Window, PgError> {
    Window::new(stamp(start)?, stamp(end)?).map_err(|e| PgError::malformed("window", e))
}

/// A reservation from the columns of [`crate::sql::RES_COLS`].
pub(crate) fn reservation(row: &Row) -> Result<Reservation, PgError> {
    let payment: Option<String> = get(row, 13)?;
    let payment = payment
        .map(|p| serde_json::from_str::<PaymentRef>(&p).map_err(|e| PgError::malformed("payment", e)))
        .transpose()?;
    let currency: &str = get(row, 10)?;
    let fence: i64 = get(row, 8)?;
    Ok(Reservation {
        id: ReservationId(get(row, 0)?),
        operator: OperatorId(get(row, 1)?),
        lot: LotId(get(row, 2)?),
        spot: SpotId(get(row, 3)?),
        user: UserId(get(row, 4)?),
        window: window(get(row, 5)?, get(row, 6)?)?,
        state: state(get(row, 7)?)?,
        fence: u64::try_from(fence).map_err(|e| PgError::malformed("fence", e))?,
        price: Money::new(
            get(row, 9)?,
            Currency::new(currency).map_err(|e| PgError::malformed("currency", e))?,
        ),
        hold_expires_at: stamp(get(row, 11)?)?,
        created_at: stamp(get(row, 12)?)?,
        payment: payment.map(Box::new),
    })
}

/// An event from the columns of [`crate::sql::EVENT_COLS`].
pub(crate) fn event(row: &Row) -> Result<Event, PgError> {
    let seq: i64 = get(row, 1)?;
    Ok(Event {
        lot: LotId(get(row, 0)?),
        seq: u64::try_from(seq).map_err(|e| PgError::malformed("sequence number", e))?,
        at: stamp(get(row, 2)?)?,
        kind: kind(get(row, 3)?)?,
        reservation: ReservationId(get(row, 4)?),
        spot: SpotId(get(row, 5)?),
        user: UserId(get(row, 6)?),
        window: window(get(row, 7)?, get(row, 8)?)?,
        state: state(get(row, 9)?)?,
    })
}

/// A gate session from `id, reservation_id, entered_at, entry_gate, exited_at, exit_gate,
/// entry_scan, exit_scan`.
pub(crate) fn session(row: &Row) -> Result<GateSession, PgError> {
    let exited: Option<SystemTime> = get(row, 4)?;
    Ok(GateSession {
        id: SessionId(get(row, 0)?),
        reservation: ReservationId(get(row, 1)?),
        entered_at: stamp(get(row, 2)?)?,
        entry_gate: get(row, 3)?,
        exited_at: exited.map(stamp).transpose()?,
        exit_gate: get(row, 5)?,
        entry_scan: get(row, 6)?,
        exit_scan: get(row, 7)?,
    })
}

/// A JSON document column decoded into `T`.
pub(crate) fn doc<T: serde::de::DeserializeOwned>(
    row: &Row,
    i: usize,
    what: &'static str,
) -> Result<T, PgError> {
    let text: &str = get(row, i)?;
    serde_json::from_str(text).map_err(|e| PgError::malformed(what, e))
}

/// `T` as a JSON document for a `$n::text::jsonb` parameter.
pub(crate) fn to_doc<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid("document", e.to_string()))
}

/// A fencing number as stored (`bigint`).
pub(crate) fn fence_i64(f: u64) -> Result<i64> {
    i64::try_from(f).map_err(|_| Error::invalid("fence", format!("{f} does not fit PostgreSQL's bigint")))
}
