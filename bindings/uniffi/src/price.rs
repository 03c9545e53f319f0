//! Prices offline, from a lot's rate table: `parq_core::RateTable::quote`, the same code the
//! server prices with.

use serde::Deserialize;

use crate::error::ParqError;
use crate::types::{self, Lot, Money, RateTable};

/// The price of a stay `[start, end)` under `rate_table` (flat, tiered and incrementing lines,
/// a daily cap), as the server computes it.
///
/// # Errors
/// `Invalid` for a window that is empty or out of range, or a rate table the server would
/// not accept (negative amounts, tiers out of order, a currency that is not ISO 4217).
#[uniffi::export]
pub fn quote(
    rate_table: RateTable,
    start_epoch_seconds: i64,
    end_epoch_seconds: i64,
) -> Result<Money, ParqError> {
    let table: parq_core::RateTable = rate_table.try_into()?;
    let window = types::window(start_epoch_seconds, end_epoch_seconds)?;
    Ok(table.quote(&window)?.into())
}

/// The price of a stay in `lot`, after checking the window against the lot's rules (its
/// granularity, maximum stay, opening hours and blackouts) exactly as the server's
/// `GET /lots/{id}/quote` does.
///
/// # Errors
/// As [`quote`]; `Invalid`, `LimitExceeded` or `Conflict` (a blackout) for a window the lot
/// does not take.
#[uniffi::export]
pub fn quote_lot(lot: Lot, start_epoch_seconds: i64, end_epoch_seconds: i64) -> Result<Money, ParqError> {
    let lot: parq_core::Lot = lot.try_into()?;
    quote_core_lot(&lot, start_epoch_seconds, end_epoch_seconds)
}

fn quote_core_lot(lot: &parq_core::Lot, start: i64, end: i64) -> Result<Money, ParqError> {
    let window = types::window(start, end)?;
    lot.check_window(&window)?;
    Ok(lot.rates.quote(&window)?.into())
}

/// What `quote_json` and `rate_table_from_json` read: a lot with its spots (`GET /lots/{id}`),
/// a lot, or a rate table.
#[derive(Deserialize)]
#[serde(untagged)]
enum Priced {
    Details { lot: Box<parq_core::Lot> },
    Lot(Box<parq_core::Lot>),
    Table(parq_core::RateTable),
}

/// As [`quote_lot`] (or [`quote`]), from JSON the server returns: a lot with its spots
/// (`GET /api/v1/lots/{id}`), a lot alone (as search results carry it), or just a rate table
/// (`{"currency": "EUR", "lines": [...], "daily_cap": 1200}`). A lot's window rules are checked;
/// a bare rate table has none.
///
/// # Errors
/// `Invalid` (field `lot`) for JSON that is none of these, or as [`quote_lot`].
#[uniffi::export]
pub fn quote_json(
    json: String,
    start_epoch_seconds: i64,
    end_epoch_seconds: i64,
) -> Result<Money, ParqError> {
    match types::from_json::<Priced>("lot", &json)? {
        Priced::Details { lot } | Priced::Lot(lot) => {
            lot.rates.validate()?;
            quote_core_lot(&lot, start_epoch_seconds, end_epoch_seconds)
        }
        Priced::Table(table) => quote(table.into(), start_epoch_seconds, end_epoch_seconds),
    }
}

/// The rate table in JSON the server returns (a lot with its spots, a lot, or a rate table),
/// as a record.
///
/// # Errors
/// `Invalid` (field `lot`) for JSON that is none of these.
#[uniffi::export]
pub fn rate_table_from_json(json: String) -> Result<RateTable, ParqError> {
    let table = match types::from_json::<Priced>("lot", &json)? {
        Priced::Details { lot } | Priced::Lot(lot) => lot.rates,
        Priced::Table(table) => table,
    };
    table.validate()?;
    Ok(table.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOT: &str = r#"{
        "id": "01900000-0000-7000-8000-000000000010", "operator": "01900000-0000-7000-8000-000000000001",
        "name": "Central", "location": {"lat": 35.17, "lon": 33.36}, "time_zone": "Asia/Nicosia",
        "granularity": "PT15M", "hold_ttl": "PT10M", "max_stay": "PT4H", "grace": "PT15M",
        "max_holds_per_user": null,
        "rates": {"currency": "EUR", "lines": [{"kind": "flat", "amount": 100},
                  {"kind": "incrementing", "every_minutes": 60, "amount": 200}], "daily_cap": 1500},
        "cancellation": {"full_refund_before": "PT2H", "late_refund_percent": 50},
        "opening_hours": {"kind": "always"}, "blackouts": []
    }"#;
    const T0: i64 = 1_893_916_800; // 2030-01-07T00:00:00Z

    #[test]
    fn the_servers_json_is_priced_as_a_lot_or_a_rate_table() {
        let two_hours = Money { minor: 500, currency: "EUR".into() };
        assert_eq!(quote_json(LOT.into(), T0, T0 + 7200).unwrap(), two_hours);
        let details = format!(r#"{{"lot": {LOT}, "spots": []}}"#);
        assert_eq!(quote_json(details.clone(), T0, T0 + 7200).unwrap(), two_hours);
        let table =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(LOT).unwrap()["rates"]).unwrap();
        assert_eq!(quote_json(table.clone(), T0, T0 + 7200).unwrap(), two_hours);
        // The lot's rules apply to a lot, not to a bare table.
        assert!(matches!(
            quote_json(details.clone(), T0, T0 + 5 * 3600),
            Err(ParqError::LimitExceeded { .. })
        ));
        assert!(quote_json(table, T0, T0 + 5 * 3600).is_ok());
        assert!(matches!(quote_json(details.clone(), T0 + 60, T0 + 3600), Err(ParqError::Invalid { .. })));
        // The record forms agree.
        let record = rate_table_from_json(details).unwrap();
        assert_eq!(quote(record, T0, T0 + 7200).unwrap(), two_hours);
        let lot: Lot = serde_json::from_str::<parq_core::Lot>(LOT).unwrap().into();
        assert_eq!(quote_lot(lot, T0, T0 + 7200).unwrap(), two_hours);
        for bad in ["", "{", "[]", r#"{"lot": 3}"#, r#"{"currency": "EUR"}"#] {
            assert!(
                matches!(quote_json(bad.into(), T0, T0 + 3600), Err(ParqError::Invalid { ref field, .. }) if field == "lot"),
                "{bad}"
            );
        }
    }
}
