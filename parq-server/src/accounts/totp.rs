//! TOTP (RFC 6238): SHA-1, six digits, 30-second steps, one step of skew either way — what
//! authenticator apps use.

use jiff::Timestamp;
use parq_core::{Error, Result};
use totp_rs::{Builder, Secret, Totp};

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "ParQ";

/// A new random seed (160 bits), base32.
pub fn new_secret() -> String {
    Secret::from(super::secret::random_bytes::<20>()).to_base32()
}

fn totp(secret: &str) -> Result<Totp> {
    let secret = Secret::try_from_base32(secret)
        .map_err(|_| Error::invalid("totp", "the stored seed is not base32"))?;
    Builder::new().with_secret(secret).build().map_err(|e| Error::invalid("totp", e.to_string()))
}

/// The time step `code` is valid for at `now`, if it is valid.
pub fn check(secret: &str, code: &str, now: Timestamp) -> Result<Option<u64>> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let now = u64::try_from(now.as_second()).unwrap_or(0);
    Ok(totp(secret)?.check(code, now))
}

/// The code for `now` (used by tests and tools).
pub fn generate(secret: &str, now: Timestamp) -> Result<String> {
    let now = u64::try_from(now.as_second()).unwrap_or(0);
    Ok(totp(secret)?.generate(now).to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn uri(secret: &str, account: &str) -> String {
    format!(
        "otpauth://totp/{ISSUER}:{}?secret={secret}&issuer={ISSUER}&algorithm=SHA1&digits=6&period=30",
        percent_encode(account)
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vector_and_skew() {
        // RFC 6238 appendix B, SHA-1, seed "12345678901234567890", T = 59 → 94287082 (8 digits);
        // the six-digit code is its last six digits.
        let secret = Secret::from(b"12345678901234567890".as_slice()).to_base32();
        let at = Timestamp::from_second(59).unwrap();
        assert_eq!(generate(&secret, at).unwrap(), "287082");
        assert_eq!(check(&secret, "287082", at).unwrap(), Some(1));
        assert_eq!(check(&secret, "287082", Timestamp::from_second(59 + 30).unwrap()).unwrap(), Some(1));
        assert_eq!(check(&secret, "287082", Timestamp::from_second(59 + 90).unwrap()).unwrap(), None);
        assert_eq!(check(&secret, "abc", at).unwrap(), None);
        assert!(uri(&secret, "a b@x.cy").contains("ParQ:a%20b@x.cy?secret="));
    }
}
