//! Key names. Every key of one lot shares the hash tag `{<prefix>:<lot>}`, so one script call
//! touches one Redis Cluster slot.

use parq_core::{Error, LotId, Result, SpotId};

/// A validated key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Checks `prefix`: not empty, and no `{`, `}` or whitespace, which would break the hash tag
    /// or the key shape.
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        if prefix.is_empty() || prefix.len() > 128 {
            return Err(Error::invalid("prefix", "must be 1 to 128 characters"));
        }
        if prefix.chars().any(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(
                "prefix",
                "must not contain braces, whitespace or control characters",
            ));
        }
        Ok(Self { prefix: prefix.to_owned() })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn lot(&self, lot: LotId) -> String {
        format!("parq:{{{}:{lot}}}", self.prefix)
    }

    /// The lot's hash of per-spot fencing counters.
    pub(crate) fn fences(&self, lot: LotId) -> String {
        format!("{}:lock:fences", self.lot(lot))
    }

    /// The set of the lot's spots that have claims.
    pub(crate) fn spots(&self, lot: LotId) -> String {
        format!("{}:lock:spots", self.lot(lot))
    }

    /// A spot's claims: by window start, by deadline, and their details.
    pub(crate) fn spot(&self, lot: LotId, spot: SpotId) -> [String; 3] {
        let base = format!("{}:lock:spot:{spot}", self.lot(lot));
        [format!("{base}:starts"), format!("{base}:deadlines"), format!("{base}:claims")]
    }

    /// The pub/sub channel of a lot's events.
    pub(crate) fn events(&self, lot: LotId) -> String {
        format!("{}:events", self.lot(lot))
    }

    /// The pattern matching every lot's channel under this prefix.
    pub(crate) fn events_pattern(&self) -> String {
        let mut escaped = String::with_capacity(self.prefix.len());
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        format!("parq:{{{escaped}:*}}:events")
    }

    /// The epoch marker: present while Redis holds state rebuilt from the store.
    pub(crate) fn epoch(&self) -> String {
        format!("parq:{{{}}}:epoch", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_lot_share_one_hash_tag() {
        let k = Keys::new("prod").unwrap();
        let (lot, spot) = (LotId::new(), SpotId::new());
        let tag = format!("{{prod:{lot}}}");
        for key in [k.fences(lot), k.spots(lot), k.events(lot)].into_iter().chain(k.spot(lot, spot)) {
            assert!(key.starts_with(&format!("parq:{tag}:")), "{key}");
        }
        assert!(Keys::new("a{b").is_err() && Keys::new("").is_err() && Keys::new("a b").is_err());
        assert_eq!(Keys::new("t-*").unwrap().events_pattern(), "parq:{t-\\*:*}:events");
    }
}
