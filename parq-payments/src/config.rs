//! [`StripeConfig`]: keys, endpoint and timeouts, from code or from the environment.

use std::fmt;
use std::time::Duration;

use parq_core::{Error, Result};

/// The secret API key (`sk_live_…`, `sk_test_…` or a restricted `rk_…` key).
pub const ENV_SECRET_KEY: &str = "PARQ_STRIPE_SECRET_KEY";
/// The signing secret of the webhook endpoint (`whsec_…`).
pub const ENV_WEBHOOK_SECRET: &str = "PARQ_STRIPE_WEBHOOK_SECRET";
/// Another API base URL (a Stripe emulator, a proxy); optional.
pub const ENV_API_BASE: &str = "PARQ_STRIPE_API_BASE";
/// The per-attempt timeout in seconds; optional.
pub const ENV_TIMEOUT_SECS: &str = "PARQ_STRIPE_TIMEOUT_SECS";

/// How [`StripeGateway`](crate::StripeGateway) reaches Stripe.
///
/// `Debug` never prints the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct StripeConfig {
    /// The secret API key.
    pub secret_key: String,
    /// The webhook endpoint's signing secret, used as-is (with its `whsec_` prefix) as the
    /// HMAC key, as Stripe's own libraries do.
    pub webhook_secret: String,
    /// The API base URL; `None` is `https://api.stripe.com/`. Plain `http://` works too (for a
    /// local emulator).
    pub api_base: Option<String>,
    /// How long one HTTP attempt may take, body included.
    pub timeout: Duration,
    /// How many times a request that failed in a retryable way (timeout, connection error,
    /// 5xx, 429, a concurrent request with the same key) is sent again, with the same
    /// idempotency key, before the error is returned.
    pub max_retries: u32,
    /// Whether to send the request's description as the intent's `description`. On by
    /// default; some Stripe emulators refuse the parameter.
    pub send_description: bool,
}

impl StripeConfig {
    /// The default per-attempt timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
    /// The default number of retries.
    pub const DEFAULT_MAX_RETRIES: u32 = 2;

    /// A configuration with the defaults: Stripe's API, a 20 s timeout, two retries.
    pub fn new(secret_key: impl Into<String>, webhook_secret: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            webhook_secret: webhook_secret.into(),
            api_base: None,
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            send_description: true,
        }
    }

    /// Reads `PARQ_STRIPE_SECRET_KEY`, `PARQ_STRIPE_WEBHOOK_SECRET`, and optionally
    /// `PARQ_STRIPE_API_BASE` and `PARQ_STRIPE_TIMEOUT_SECS`.
    ///
    /// Each variable may instead be given as `<NAME>_FILE`, the path of a file holding the
    /// value (a mounted secret); surrounding whitespace is trimmed. Setting both forms of one
    /// variable is an error, so a stale value never wins silently.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the variable that is missing, empty, unreadable or malformed.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup` (for tests and
    /// for configuration layers that are not the process environment).
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let secret_key = required(&lookup, ENV_SECRET_KEY)?;
        let webhook_secret = required(&lookup, ENV_WEBHOOK_SECRET)?;
        let mut config = Self::new(secret_key, webhook_secret);
        config.api_base = optional(&lookup, ENV_API_BASE)?;
        if let Some(secs) = optional(&lookup, ENV_TIMEOUT_SECS)? {
            let secs: u64 = secs.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                Error::invalid(ENV_TIMEOUT_SECS, format!("{secs:?} is not a positive number of seconds"))
            })?;
            config.timeout = Duration::from_secs(secs);
        }
        Ok(config)
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &redacted(&self.secret_key))
            .field("webhook_secret", &redacted(&self.webhook_secret))
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("send_description", &self.send_description)
            .finish()
    }
}

/// The key's prefix (`sk_test`, `whsec`) and nothing else.
pub(crate) fn redacted(secret: &str) -> String {
    let prefix = secret.rsplit_once('_').map_or("", |(p, _)| p);
    format!("{prefix}_<redacted>")
}

fn required(lookup: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<String> {
    optional(lookup, name)?.ok_or_else(|| {
        Error::invalid(name, format!("set {name} (or {name}_FILE, the path of a file holding it)"))
    })
}

fn optional(lookup: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<String>> {
    let file_var = format!("{name}_FILE");
    let direct = lookup(name).filter(|v| !v.is_empty());
    let path = lookup(&file_var).filter(|v| !v.is_empty());
    let value = match (direct, path) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(name, format!("both {name} and {file_var} are set; keep one")));
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| Error::invalid(name, format!("cannot read {file_var}={path:?}: {e}")))?,
        (None, None) => return Ok(None),
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(name, "is empty"));
    }
    Ok(Some(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_values_and_files() {
        let dir = std::env::temp_dir().join(format!("parq-stripe-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("webhook_secret");
        std::fs::write(&file, "whsec_from_file\n").unwrap();
        let c = StripeConfig::from_lookup(env(&[
            (ENV_SECRET_KEY, "sk_test_abc"),
            ("PARQ_STRIPE_WEBHOOK_SECRET_FILE", file.to_str().unwrap()),
            (ENV_API_BASE, "http://127.0.0.1:8420"),
            (ENV_TIMEOUT_SECS, "5"),
        ]))
        .unwrap();
        assert_eq!(c.secret_key, "sk_test_abc");
        assert_eq!(c.webhook_secret, "whsec_from_file", "the file's trailing newline is trimmed");
        assert_eq!(c.api_base.as_deref(), Some("http://127.0.0.1:8420"));
        assert_eq!(c.timeout, Duration::from_secs(5));
        let shown = format!("{c:?}");
        assert!(!shown.contains("abc") && !shown.contains("from_file"), "{shown}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_the_missing_or_conflicting_variable() {
        let err = StripeConfig::from_lookup(env(&[(ENV_WEBHOOK_SECRET, "whsec_x")])).unwrap_err();
        assert!(matches!(err, Error::Invalid { field: ENV_SECRET_KEY, .. }), "{err}");
        let err = StripeConfig::from_lookup(env(&[
            (ENV_SECRET_KEY, "sk_test_x"),
            (ENV_WEBHOOK_SECRET, "whsec_x"),
            ("PARQ_STRIPE_WEBHOOK_SECRET_FILE", "/run/secrets/whsec"),
        ]))
        .unwrap_err();
        assert!(matches!(err, Error::Invalid { field: ENV_WEBHOOK_SECRET, .. }), "{err}");
        let err = StripeConfig::from_lookup(env(&[
            (ENV_SECRET_KEY, "sk_test_x"),
            ("PARQ_STRIPE_WEBHOOK_SECRET_FILE", "/nonexistent/parq/whsec"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/parq/whsec"), "{err}");
        let err = StripeConfig::from_lookup(env(&[
            (ENV_SECRET_KEY, "sk_test_x"),
            (ENV_WEBHOOK_SECRET, "whsec_x"),
            (ENV_TIMEOUT_SECS, "soon"),
        ]))
        .unwrap_err();
        assert!(matches!(err, Error::Invalid { field: ENV_TIMEOUT_SECS, .. }), "{err}");
    }
}
