//! Conversions between rows and ParQ's types, and the statements' column lists.

use jiff::Timestamp;
use parq_core::{
    Currency, Error, Event, EventKind, GateSession, LotId, Money, OperatorId, PaymentRef, Reservation,
    ReservationId, ReservationState, Result, SessionId, SpotId, UserId, Window,
};
use rusqlite::Row;
use uuid::Uuid;

use crate::error::SqlError;

/// States that block a spot.
pub(crate) const LIVE: &str = "('held', 'pending_payment', 'confirmed', 'checked_in')";
/// States that lapse at their deadline.
pub(crate) const HOLDS: &str = "('held', 'pending_payment')";
/// The columns of a reservation, in the order [`reservation`] reads them.
pub(crate) const RES_COLS: &str = "id, operator_id, lot_id, spot_id, user_id, start_ns, end_ns, state, fence, \
     price_minor, price_currency, hold_expires_ns, created_ns, payment";
/// The columns of an event, in the order [`event`] reads them.
pub(crate) const EVENT_COLS: &str =
    "lot_id, seq, at_ns, kind, reservation_id, spot_id, user_id, start_ns, end_ns, state";
/// The columns of a gate session, in the order [`session`] reads them.
pub(crate) const SESSION_COLS: &str =
    "id, reservation_id, entered_ns, entry_gate, exited_ns, exit_gate, entry_scan, exit_scan";

/// An instant as stored: nanoseconds since the epoch (the years 1678–2262; others are refused).
pub(crate) fn ns(t: Timestamp) -> Result<i64> {
    i64::try_from(t.as_nanosecond())
        .map_err(|_| Error::invalid("timestamp", format!("{t} is outside the years 1678-2262")))
}

/// A stored instant.
pub(crate) fn stamp(n: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(n)).expect("i64 nanoseconds are always in range")
}

/// A window as stored.
pub(crate) fn window_ns(w: &Window) -> Result<(i64, i64)> {
    Ok((ns(w.start())?, ns(w.end())?))
}

/// An id as stored: the hyphenated UUID.
pub(crate) fn id(u: &Uuid) -> String {
    u.hyphenated().to_string()
}

/// A fencing number as stored.
pub(crate) fn fence_i64(f: u64) -> Result<i64> {
    i64::try_from(f).map_err(|_| Error::invalid("fence", format!("{f} does not fit SQLite's integer")))
}

fn db(e: rusqlite::Error) -> SqlError {
    SqlError::Db(e)
}

fn uuid(row: &Row<'_>, i: usize) -> Result<Uuid, SqlError> {
    let s: String = row.get(i).map_err(db)?;
    Uuid::parse_str(&s).map_err(|e| SqlError::malformed("id", e))
}

fn window(start: i64, end: i64) -> Result<Window, SqlError> {
    Window::new(stamp(start), stamp(end)).map_err(|e| SqlError::malformed("window", e))
}

pub(crate) fn state(s: &str) -> Result<ReservationState, SqlError> {
    ReservationState::parse(s).ok_or_else(|| SqlError::malformed("state", format!("unknown state {s:?}")))
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

fn kind(s: &str) -> Result<EventKind, SqlError> {
    KINDS
        .into_iter()
        .find(|k| kind_str(*k) == s)
        .ok_or_else(|| SqlError::malformed("event kind", format!("unknown kind {s:?}")))
}

/// A reservation from the columns of [`RES_COLS`].
pub(crate) fn reservation(row: &Row<'_>) -> Result<Reservation, SqlError> {
    let payment: Option<String> = row.get(13).map_err(db)?;
    let payment = payment
        .map(|p| serde_json::from_str::<PaymentRef>(&p).map_err(|e| SqlError::malformed("payment", e)))
        .transpose()?;
    let currency: String = row.get(10).map_err(db)?;
    let fence: i64 = row.get(8).map_err(db)?;
    let st: String = row.get(7).map_err(db)?;
    Ok(Reservation {
        id: ReservationId(uuid(row, 0)?),
        operator: OperatorId(uuid(row, 1)?),
        lot: LotId(uuid(row, 2)?),
        spot: SpotId(uuid(row, 3)?),
        user: UserId(uuid(row, 4)?),
        window: window(row.get(5).map_err(db)?, row.get(6).map_err(db)?)?,
        state: state(&st)?,
        fence: u64::try_from(fence).map_err(|e| SqlError::malformed("fence", e))?,
        price: Money::new(
            row.get(9).map_err(db)?,
            Currency::new(&currency).map_err(|e| SqlError::malformed("currency", e))?,
        ),
        hold_expires_at: stamp(row.get(11).map_err(db)?),
        created_at: stamp(row.get(12).map_err(db)?),
        payment: payment.map(Box::new),
    })
}

/// An event from the columns of [`EVENT_COLS`].
pub(crate) fn event(row: &Row<'_>) -> Result<Event, SqlError> {
    let seq: i64 = row.get(1).map_err(db)?;
    let k: String = row.get(3).map_err(db)?;
    let st: String = row.get(9).map_err(db)?;
    Ok(Event {
        lot: LotId(uuid(row, 0)?),
        seq: u64::try_from(seq).map_err(|e| SqlError::malformed("sequence number", e))?,
        at: stamp(row.get(2).map_err(db)?),
        kind: kind(&k)?,
        reservation: ReservationId(uuid(row, 4)?),
        spot: SpotId(uuid(row, 5)?),
        user: UserId(uuid(row, 6)?),
        window: window(row.get(7).map_err(db)?, row.get(8).map_err(db)?)?,
        state: state(&st)?,
    })
}

/// A gate session from the columns of [`SESSION_COLS`].
pub(crate) fn session(row: &Row<'_>) -> Result<GateSession, SqlError> {
    let exited: Option<i64> = row.get(4).map_err(db)?;
    Ok(GateSession {
        id: SessionId(uuid(row, 0)?),
        reservation: ReservationId(uuid(row, 1)?),
        entered_at: stamp(row.get(2).map_err(db)?),
        entry_gate: row.get(3).map_err(db)?,
        exited_at: exited.map(stamp),
        exit_gate: row.get(5).map_err(db)?,
        entry_scan: row.get(6).map_err(db)?,
        exit_scan: row.get(7).map_err(db)?,
    })
}

/// A JSON document column decoded into `T`.
pub(crate) fn doc<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    i: usize,
    what: &'static str,
) -> Result<T, SqlError> {
    let text: String = row.get(i).map_err(db)?;
    serde_json::from_str(&text).map_err(|e| SqlError::malformed(what, e))
}

/// `T` as a JSON document.
pub(crate) fn to_doc<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid("document", e.to_string()))
}
