//! Argon2id password hashes (PHC strings, the parameters OWASP recommends: 19 MiB, 2 passes,
//! 1 lane), computed off the async threads.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use parq_core::{Error, Result};

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest password accepted (bytes), so hashing cost stays bounded.
pub const MAX_LEN: usize = 1024;

/// Checks a new password's length.
pub fn check_new(password: &str) -> Result<()> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(Error::invalid("password", format!("must be at least {MIN_LEN} characters")));
    }
    if password.len() > MAX_LEN {
        return Err(Error::invalid("password", format!("must be at most {MAX_LEN} bytes")));
    }
    Ok(())
}

/// Hashes a password into an Argon2id PHC string with a random salt.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| Error::unavailable("password hashing was interrupted", Some(Box::new(e))))?
}

/// [`hash`] on the calling thread.
pub fn hash_now(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::backend("argon2", e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never matches.
pub async fn verify(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_now(&password, &phc)).await.unwrap_or(false)
}

/// [`verify`] on the calling thread.
pub fn verify_now(password: &str, phc: &str) -> bool {
    password.len() <= MAX_LEN && Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// A hash of no one's password, verified against when the email is unknown so that an
/// unknown email takes as long as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_now("decoy password that no account has").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_now("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_now("correct horse battery", &h));
        assert!(!verify_now("wrong horse battery", &h));
        assert!(!verify_now("x", "not a hash"));
        assert!(check_new("short").is_err() && check_new("long enough!").is_ok());
    }
}
