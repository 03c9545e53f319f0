//! Windows of time and clocks.

use std::fmt;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A half-open interval `[start, end)` of UTC instants. `start < end` always holds.
///
/// Two windows overlap when each starts before the other ends, so back-to-back bookings
/// (`[9:00, 10:00)` and `[10:00, 11:00)`) do not conflict.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Window {
    /// The first instant.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = DateTime))]
    start: Timestamp,
    /// The first instant after the window; after `start`.
    #[cfg_attr(feature = "utoipa", schema(value_type = String, format = DateTime))]
    end: Timestamp,
}

impl Window {
    /// A window from `start` (inclusive) to `end` (exclusive). Fails unless `start < end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self> {
        if start >= end {
            return Err(Error::invalid("window", format!("start {start} must be before end {end}")));
        }
        Ok(Self { start, end })
    }

    /// A window starting at `start` and lasting `len` (which must be positive).
    pub fn starting_at(start: Timestamp, len: SignedDuration) -> Result<Self> {
        let end = start.checked_add(len).map_err(|e| Error::invalid("window", e.to_string()))?;
        Self::new(start, end)
    }

    /// The first instant inside the window.
    pub const fn start(&self) -> Timestamp {
        self.start
    }

    /// The first instant after the window.
    pub const fn end(&self) -> Timestamp {
        self.end
    }

    /// How long the window lasts.
    pub fn duration(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }

    /// Whether the two half-open windows share an instant.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `t` lies inside `[start, end)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether `other` lies entirely inside this window.
    pub fn covers(&self, other: &Window) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            start: Timestamp,
            end: Timestamp,
        }
        let raw = Raw::deserialize(d)?;
        Window::new(raw.start, raw.end).map_err(serde::de::Error::custom)
    }
}

/// A source of the current time. The engine never reads the system clock directly, so expiry
/// is tested by moving a [`ManualClock`] instead of sleeping.
///
/// # Contract
/// `now` is cheap, never fails, and never goes backwards for [`SystemClock`] within what the
/// operating system guarantees. A [`ManualClock`] moves only when told to.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// `dyn Clock`.
pub type DynClock = dyn Clock;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { now: Mutex::new(start) }
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: SignedDuration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.checked_add(d).expect("manual clock out of range");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn windows_are_half_open_and_validated() {
        let a = Window::new(t("2030-01-01T08:00:00Z"), t("2030-01-01T09:00:00Z")).unwrap();
        let b = Window::new(t("2030-01-01T09:00:00Z"), t("2030-01-01T10:00:00Z")).unwrap();
        let c = Window::new(t("2030-01-01T08:59:00Z"), t("2030-01-01T09:01:00Z")).unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a), "back to back");
        assert!(a.overlaps(&c) && c.overlaps(&b));
        assert!(a.contains(a.start()) && !a.contains(a.end()));
        assert!(Window::new(a.end(), a.start()).is_err());
        assert!(Window::new(a.start(), a.start()).is_err());
        let json = r#"{"start":"2030-01-01T09:00:00Z","end":"2030-01-01T08:00:00Z"}"#;
        assert!(serde_json::from_str::<Window>(json).is_err(), "deserialising validates too");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(t("2030-01-01T08:00:00Z"));
        assert_eq!(c.now(), t("2030-01-01T08:00:00Z"));
        c.advance(SignedDuration::from_mins(90));
        assert_eq!(c.now(), t("2030-01-01T09:30:00Z"));
    }
}
