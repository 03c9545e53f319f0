//! Configuration: a TOML file (`--config`), then `PARQ_*` environment variables, then flags;
//! each later source wins. Every secret can also be read from a file named by `<key>_file`
//! (`PARQ_<KEY>_FILE`), so secrets need not sit in the environment.
//!
//! | key | default | what |
//! | --- | --- | --- |
//! | `bind` | `127.0.0.1:8080` | address to listen on |
//! | `store_url` | `memory:` | reservation store: `memory:` or `postgres://…` |
//! | `store_schema` | `parq` | the PostgreSQL schema of the store, accounts and idempotency records |
//! | `pg_pool_size` | `16` | connections per replica to PostgreSQL |
//! | `lock_url` | `none` | admission lock: `none`, `memory:` or `redis://…` (with failover to the store) |
//! | `notifier_url` | `memory:` | live events: `memory:`, `redis://…` or `postgres` (`LISTEN`/`NOTIFY` on the store's database) |
//! | `redis_prefix` | `parq` | the prefix of every Redis key (replicas that share a lot share it) |
//! | `accounts_url` | the store | accounts, sessions, API keys: `memory:` or `postgres://…`; by default where the store is |
//! | `gateway` | `test` | payments: `test` (simulated) or `stripe` |
//! | `webhook_secret` | random | signing secret of the payment webhooks (Stripe's `whsec_…`) (secret) |
//! | `stripe_secret_key` | — | Stripe API key (secret) |
//! | `stripe_api_base` | Stripe's | another Stripe API base URL (an emulator, a proxy) |
//! | `stripe_send_description` | `true` | send intents' descriptions (some Stripe emulators refuse them) |
//! | `reconcile_interval_secs` | `60` | how often payments whose webhook is late are asked about (Stripe) |
//! | `pass_signing_key` | random | Ed25519 seed (64 hex digits) that signs passes (secret) |
//! | `demo` | on with `memory:` | load the demo city and print its keys |
//! | `operator_key`, `gate_key` | random | the demo's API keys (secrets) |
//! | `session_ttl_secs` | `43200` | how long a login lasts |
//! | `sweep_interval_secs`, `sweep_batch` | `5`, `500` | the expiry sweeper |
//! | `rate_ip`, `rate_user`, `rate_key` | `50`, `20`, `200` | requests per second per IP, user, API key |
//! | `rate_burst` | `4` | how many seconds of requests a bucket holds |
//! | `log`, `log_format` | `info`, `json` | log filter (`info,parq_server=debug`) and format (`json`, `text`) |
//! | `shutdown_grace_secs` | `30` | how long requests in flight may take to finish |
//! | `map_style_url` | — | a MapLibre/Mapbox style for the web map (else a plain style without tiles) |
//! | `map_tile_url` | — | an XYZ raster tile template drawn under the map's layers (`…/{z}/{x}/{y}.png`) |
//! | `public_parking_file` | — | GeoJSON points of free public parking, shown as a layer on the map (the demo has its own) |

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// A configuration error, said so that an operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML file does not parse.
    #[error("{path} is not valid TOML: {message}")]
    Toml {
        /// The path.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value is wrong.
    #[error("configuration {key}: {message}")]
    Invalid {
        /// The key (or source).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The server's configuration. See the module docs for each key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Config {
    pub bind: String,
    pub store_url: String,
    pub store_schema: String,
    pub pg_pool_size: u64,
    pub lock_url: String,
    pub notifier_url: String,
    pub redis_prefix: String,
    pub accounts_url: String,
    pub gateway: String,
    pub webhook_secret: Option<String>,
    pub stripe_secret_key: Option<String>,
    pub stripe_api_base: Option<String>,
    pub stripe_send_description: bool,
    pub reconcile_interval_secs: u64,
    pub pass_signing_key: Option<String>,
    pub demo: Option<bool>,
    pub operator_key: Option<String>,
    pub gate_key: Option<String>,
    pub session_ttl_secs: u64,
    pub sweep_interval_secs: u64,
    pub sweep_batch: usize,
    pub rate_ip: u32,
    pub rate_user: u32,
    pub rate_key: u32,
    pub rate_burst: u32,
    pub log: String,
    pub log_format: String,
    pub shutdown_grace_secs: u64,
    pub map_style_url: Option<String>,
    pub map_tile_url: Option<String>,
    pub public_parking_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            store_url: "memory:".into(),
            store_schema: "parq".into(),
            pg_pool_size: 16,
            lock_url: "none".into(),
            notifier_url: "memory:".into(),
            redis_prefix: "parq".into(),
            accounts_url: String::new(),
            gateway: "test".into(),
            webhook_secret: None,
            stripe_secret_key: None,
            stripe_api_base: None,
            stripe_send_description: true,
            reconcile_interval_secs: 60,
            pass_signing_key: None,
            demo: None,
            operator_key: None,
            gate_key: None,
            session_ttl_secs: 12 * 3600,
            sweep_interval_secs: 5,
            sweep_batch: 500,
            rate_ip: 50,
            rate_user: 20,
            rate_key: 200,
            rate_burst: 4,
            log: "info".into(),
            log_format: "json".into(),
            shutdown_grace_secs: 30,
            map_style_url: None,
            map_tile_url: None,
            public_parking_file: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Bool,
    Secret,
}

const KEYS: &[(&str, Kind)] = &[
    ("bind", Kind::Str),
    ("store_url", Kind::Secret),
    ("store_schema", Kind::Str),
    ("pg_pool_size", Kind::Int),
    ("lock_url", Kind::Secret),
    ("notifier_url", Kind::Secret),
    ("redis_prefix", Kind::Str),
    ("accounts_url", Kind::Secret),
    ("gateway", Kind::Str),
    ("webhook_secret", Kind::Secret),
    ("stripe_secret_key", Kind::Secret),
    ("stripe_api_base", Kind::Str),
    ("stripe_send_description", Kind::Bool),
    ("reconcile_interval_secs", Kind::Int),
    ("pass_signing_key", Kind::Secret),
    ("demo", Kind::Bool),
    ("operator_key", Kind::Secret),
    ("gate_key", Kind::Secret),
    ("session_ttl_secs", Kind::Int),
    ("sweep_interval_secs", Kind::Int),
    ("sweep_batch", Kind::Int),
    ("rate_ip", Kind::Int),
    ("rate_user", Kind::Int),
    ("rate_key", Kind::Int),
    ("rate_burst", Kind::Int),
    ("log", Kind::Str),
    ("log_format", Kind::Str),
    ("shutdown_grace_secs", Kind::Int),
    ("map_style_url", Kind::Str),
    ("map_tile_url", Kind::Str),
    ("public_parking_file", Kind::Str),
];

fn parse_table(text: &str, path: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Toml { path: path.to_owned(), message: e.to_string() })
}

fn kind_of(key: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

fn typed(key: &str, kind: Kind, raw: &str) -> Result<Value, ConfigError> {
    let bad = |m: &str| ConfigError::Invalid { key: key.to_owned(), message: format!("{raw:?} {m}") };
    Ok(match kind {
        Kind::Str | Kind::Secret => Value::String(raw.to_owned()),
        Kind::Int => Value::Integer(raw.trim().parse::<i64>().map_err(|_| bad("is not a whole number"))?),
        Kind::Bool => Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(bad("is not true or false")),
        }),
    })
}

/// Sets `key` (or `<secret>_file`) in `table` from a raw string, as a layer above what is there.
fn set(table: &mut Table, key: &str, raw: &str) -> Result<(), ConfigError> {
    if let Some(base) = key.strip_suffix("_file").filter(|b| kind_of(b) == Some(Kind::Secret)) {
        table.remove(base);
        table.insert(key.to_owned(), Value::String(raw.to_owned()));
        return Ok(());
    }
    let kind = kind_of(key)
        .ok_or_else(|| ConfigError::Invalid { key: key.to_owned(), message: "unknown key".into() })?;
    if kind == Kind::Secret {
        table.remove(&format!("{key}_file"));
    }
    table.insert(key.to_owned(), typed(key, kind, raw)?);
    Ok(())
}

impl Config {
    /// Loads the layers: `file`, then the `PARQ_*` variables of `env`, then `flags`
    /// (`(key, value)` pairs).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            None => Table::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
                parse_table(&text, &path.display().to_string())?
            }
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("PARQ_") else { continue };
            let key = key.to_ascii_lowercase();
            let known = kind_of(&key).is_some()
                || key.strip_suffix("_file").is_some_and(|b| kind_of(b) == Some(Kind::Secret));
            // Other PARQ_ variables (the test suite's, for instance) are not ours.
            if known {
                set(&mut table, &key, &value)?;
            }
        }
        for (key, value) in flags {
            set(&mut table, key, value)?;
        }
        Self::from_table(table)
    }

    /// The configuration a TOML text gives on its own (no environment, no flags): what
    /// [`load`](Self::load) makes of a file with this text. `<secret>_file` keys are read as
    /// `load` reads them; every other key is checked without touching the system.
    ///
    /// # Errors
    /// [`ConfigError::Toml`] (path `<text>`) when the text is not TOML, [`ConfigError::Invalid`]
    /// for an unknown key or a wrong value, [`ConfigError::Read`] for an unreadable secret file.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::from_table(parse_table(text, "<text>")?)
    }

    fn from_table(mut table: Table) -> Result<Config, ConfigError> {
        // Secrets from files.
        for (key, kind) in KEYS {
            if *kind != Kind::Secret {
                continue;
            }
            let file_key = format!("{key}_file");
            if let Some(v) = table.remove(&file_key) {
                let path = v.as_str().ok_or_else(|| ConfigError::Invalid {
                    key: file_key.clone(),
                    message: "must be a path".into(),
                })?;
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                table.insert((*key).to_owned(), Value::String(text.trim().to_owned()));
            }
        }
        let config = Config::deserialize(Value::Table(table))
            .map_err(|e| ConfigError::Invalid { key: "file".into(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad =
            |key: &str, message: &str| ConfigError::Invalid { key: key.into(), message: message.into() };
        if self.bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad("bind", "must be an address like 127.0.0.1:8080"));
        }
        if self.session_ttl_secs == 0 {
            return Err(bad("session_ttl_secs", "must be positive"));
        }
        if self.sweep_interval_secs == 0 || self.sweep_batch == 0 {
            return Err(bad("sweep_interval_secs", "the sweeper's interval and batch must be positive"));
        }
        if self.rate_ip == 0 || self.rate_user == 0 || self.rate_key == 0 || self.rate_burst == 0 {
            return Err(bad("rate_ip", "rates and the burst must be positive"));
        }
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 48
                && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !plain(&self.store_schema) {
            return Err(bad(
                "store_schema",
                "must be a lower-case SQL name (letters, digits, _), at most 48 long",
            ));
        }
        if self.pg_pool_size == 0 || self.reconcile_interval_secs == 0 {
            return Err(bad("pg_pool_size", "the pool size and the reconcile interval must be positive"));
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}', ' ']) {
            return Err(bad("redis_prefix", "must be non-empty, without braces or spaces"));
        }
        for (key, url) in [("map_style_url", &self.map_style_url), ("map_tile_url", &self.map_tile_url)] {
            if let Some(u) = url.as_deref().filter(|u| !u.is_empty())
                && !(u.starts_with("https://") || u.starts_with("http://") || u.starts_with('/'))
            {
                return Err(bad(key, "must be an http(s) URL or a path on this server"));
            }
        }
        if !matches!(self.log_format.as_str(), "json" | "text") {
            return Err(bad("log_format", "must be json or text"));
        }
        Ok(())
    }

    /// Whether the demo city is loaded: as configured, else when the store is in memory.
    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or_else(|| self.store_url.starts_with("memory:"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("parq-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("parq.toml");
        let secret = dir.join("secret");
        std::fs::write(&file, "bind = \"127.0.0.1:9000\"\nrate_ip = 7\nwebhook_secret = \"from-file\"\n")
            .unwrap();
        std::fs::write(&secret, "from-secret-file\n").unwrap();
        let c = Config::load(Some(&file), env(&[]), &[]).unwrap();
        assert_eq!((c.bind.as_str(), c.rate_ip), ("127.0.0.1:9000", 7));
        let e = env(&[
            ("PARQ_RATE_IP", "9"),
            ("PARQ_DEMO", "false"),
            ("PARQ_WEBHOOK_SECRET_FILE", secret.to_str().unwrap()),
            ("PARQ_TEST_PG_URL", "postgres://ignored"),
        ]);
        let c = Config::load(Some(&file), e.clone(), &[("bind", "127.0.0.1:0".into())]).unwrap();
        assert_eq!(c.rate_ip, 9);
        assert_eq!(c.demo, Some(false));
        assert_eq!(c.bind, "127.0.0.1:0");
        assert_eq!(c.webhook_secret.as_deref(), Some("from-secret-file"));
        let err = Config::load(None, env(&[("PARQ_RATE_IP", "lots")]), &[]).unwrap_err();
        assert!(err.to_string().contains("rate_ip"), "{err}");
        std::fs::write(&file, "nonsense = 1\n").unwrap();
        assert!(Config::load(Some(&file), env(&[]), &[]).is_err(), "unknown keys are refused");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_text_reads_as_a_file_does() {
        let c = Config::from_toml_str("bind = \"127.0.0.1:9000\"\nrate_ip = 7\n").unwrap();
        assert_eq!((c.bind.as_str(), c.rate_ip), ("127.0.0.1:9000", 7));
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
        assert!(matches!(Config::from_toml_str("bind = "), Err(ConfigError::Toml { .. })));
        assert!(matches!(Config::from_toml_str("nonsense = 1"), Err(ConfigError::Invalid { .. })));
        assert!(matches!(Config::from_toml_str("rate_ip = 0"), Err(ConfigError::Invalid { .. })));
    }
}
