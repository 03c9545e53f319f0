//! Money: integer minor units and an ISO 4217 currency code. Never floating point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An ISO 4217 currency code such as `EUR`: three ASCII upper-case letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// The US dollar.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a code; fails unless it is three ASCII letters (case is normalised to upper).
    pub fn new(code: &str) -> Result<Self> {
        let b = code.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(Error::invalid("currency", format!("{code:?} is not an ISO 4217 code")));
        }
        Ok(Self([b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase(), b[2].to_ascii_uppercase()]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::new(&s).map_err(serde::de::Error::custom)
    }
}

// A code is read in either case and written in upper case: the schema accepts what the
// deserialiser accepts.
#[cfg(feature = "utoipa")]
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Za-z]{3}$"))
            .description(Some("An ISO 4217 currency code, answered in upper case."))
            .examples(["EUR"])
            .into()
    }
}

#[cfg(feature = "utoipa")]
impl utoipa::ToSchema for Currency {}

/// An amount in minor units (cents) of a currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Money {
    /// Minor units, e.g. cents. May be negative for differences.
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// `minor` units of `currency`.
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Zero of `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self { minor: 0, currency }
    }

    /// The sum; fails on a currency mismatch or overflow.
    pub fn checked_add(self, other: Money) -> Result<Money> {
        self.same_currency(other)?;
        let minor =
            self.minor.checked_add(other.minor).ok_or_else(|| Error::invalid("amount", "overflow"))?;
        Ok(Money { minor, currency: self.currency })
    }

    /// The difference; fails on a currency mismatch or overflow.
    pub fn checked_sub(self, other: Money) -> Result<Money> {
        self.same_currency(other)?;
        let minor =
            self.minor.checked_sub(other.minor).ok_or_else(|| Error::invalid("amount", "overflow"))?;
        Ok(Money { minor, currency: self.currency })
    }

    /// `percent` % of the amount, rounded down to a minor unit.
    pub fn percent(self, percent: u8) -> Money {
        Money {
            minor: (i128::from(self.minor) * i128::from(percent.min(100)) / 100) as i64,
            currency: self.currency,
        }
    }

    fn same_currency(&self, other: Money) -> Result<()> {
        if self.currency != other.currency {
            return Err(Error::invalid(
                "currency",
                format!("cannot combine {} and {}", self.currency, other.currency),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{sign}{}.{:02} {}", abs / 100, abs % 100, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_and_arithmetic() {
        assert_eq!(Currency::new("eur").unwrap(), Currency::EUR);
        assert!(
            Currency::new("EU").is_err() && Currency::new("E1R").is_err() && Currency::new("€UR").is_err()
        );
        let a = Money::new(1050, Currency::EUR);
        assert_eq!(a.to_string(), "10.50 EUR");
        assert_eq!(Money::new(-5, Currency::EUR).to_string(), "-0.05 EUR");
        assert!(a.checked_add(Money::new(1, Currency::USD)).is_err());
        assert!(Money::new(i64::MAX, Currency::EUR).checked_add(Money::new(1, Currency::EUR)).is_err());
        assert_eq!(a.percent(50).minor, 525);
        assert_eq!(a.percent(200).minor, 1050, "percent is capped at 100");
    }
}
