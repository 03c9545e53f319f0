//! Configuration: a TOML file (`--config`), then `PARQ_*` environment variables, then flags;
//! each later source wins. Every secret can also be read from a file named by `<key>_file`
//! (`PARQ_<KEY>_FILE`), so secrets need not sit in the environment. The layers are merged and
//! typed by the `config` crate; [`Config::from_toml_str`] reads a text alone.
//!
//! | key | default | what |
//! | --- | --- | --- |
//! | `bind` | `127.0.0.1:8080` | address to listen on |
//! | `store_url` | a file in `data_dir` | reservation store: `sqlite://<path>` (or `sqlite:<path>`), `memory:` (throwaway; `parq serve --memory`) or `postgres://…` (TLS with libpq's `?sslmode=disable\|prefer\|require\|verify-ca\|verify-full` and `sslrootcert=/path/ca.pem`; `prefer` by default); when empty, `sqlite://<data_dir>/parq.db` |
//! | `data_dir` | `$XDG_DATA_HOME/parq`, else `~/.local/share/parq`, else `./parq-data` | where the default store's `parq.db` is kept (`--data-dir`, `PARQ_DATA_DIR`); made when missing |
//! | `store_schema` | `parq` | the PostgreSQL schema of the store, accounts and idempotency records |
//! | `pg_pool_size` | `16` | connections per replica to PostgreSQL |
//! | `pg_ca_file` | — | PEM CA certificate(s) checking the PostgreSQL server's certificate, for every `postgres://` URL without its own `sslrootcert`; with it `sslmode=require` checks as `verify-ca` |
//! | `lock_url` | `none` | admission lock: `none`, `memory:`, `redis://…`, `rediss://…` (TLS) or `redis+cluster://host:port[,host:port…]` (Redis Cluster), with failover to the store |
//! | `notifier_url` | `memory:` | live events: `memory:`, `redis://…`, `rediss://…`, `redis+cluster://…` or `postgres` (`LISTEN`/`NOTIFY` on the store's database) |
//! | `redis_prefix` | `parq` | the prefix of every Redis key (replicas that share a lot share it) |
//! | `redis_ca_file` | Mozilla's roots | PEM CA certificate(s) checking the certificate of a `rediss://` server |
//! | `redis_cert_file`, `redis_key_file` | — | PEM client certificate and its key, for a Redis that requires them (`tls-auth-clients yes`); both or neither |
//! | `accounts_url` | the store | accounts, sessions, API keys: `memory:` or `postgres://…`; by default where the store is (on SQLite: in the same file, with the HTTP idempotency records) |
//! | `gateway` | `test` | payments: `test` (simulated) or `stripe`. The simulated gateway keeps its books where the store is: in the store's PostgreSQL schema (`test_gateway_*` tables, shared by every replica), in the SQLite file (kept across restarts), or in memory with `memory:` |
//! | `allow_local_test_gateway` | `false` | with `gateway = "test"` on a durable store: keep the simulated gateway's books in this process's memory instead (lost on restart, wrong with several replicas); `/readyz` then names it `test-local` |
//! | `webhook_secret` | random | signing secret of the payment webhooks (Stripe's `whsec_…`); for the simulated gateway on a durable store, a random one is made once and kept in its books (secret) |
//! | `stripe_secret_key` | — | Stripe API key (secret) |
//! | `stripe_api_base` | Stripe's | another Stripe API base URL (an emulator, a proxy) |
//! | `stripe_send_description` | `true` | send intents' descriptions (some Stripe emulators refuse them) |
//! | `reconcile_interval_secs` | `60` | how often payments whose webhook is late are asked about (Stripe) |
//! | `pass_keys` | on PostgreSQL: required; on SQLite: made once and kept in the file; on memory: random | the pass keyring, a TOML document of `[[keys]]` with `id` and `seed` (`parq keys generate` writes one; see the `passkeys` module); give every replica the same one, as `PARQ_PASS_KEYS_FILE=/path` (secret) |
//! | `pass_signing_key` | — | one Ed25519 seed (64 hex digits) as a keyring of one key, id 1; use `pass_keys` instead (not both) (secret) |
//! | `admin_key` | — (admin API off) | bearer key of the platform admin API (`POST /api/v1/admin/operators`); at least 16 characters (secret) |
//! | `demo` | on with `memory:` and with the default file | load the demo city and print its keys (in a file: once, on its first start) |
//! | `operator_key`, `gate_key` | random | the demo's API keys (secrets) |
//! | `session_ttl_secs` | `43200` | how long a login lasts |
//! | `login_max_failures`, `login_ip_max_failures` | `5`, `100` | failed logins (wrong password, TOTP or recovery code) of one account, and of one client address, before it is locked (`429 login_locked` with `Retry-After`, even for the right password); each further failure locks again, twice as long |
//! | `login_lock_secs`, `login_lock_max_secs` | `30`, `3600` | the first lock and the longest; a counter without a failure for `login_lock_max_secs` starts again. The counters are in the accounts store, so every replica on it shares them |
//! | `sweep_interval_secs`, `sweep_batch` | `5`, `500` | the expiry sweeper |
//! | `rate_ip`, `rate_user`, `rate_key` | `50`, `20`, `200` | requests per second per IP, user, API key |
//! | `rate_burst` | `4` | how many seconds of requests a bucket holds |
//! | `limits_url` | `lock_url` when that is Redis, else `none` | where the rate limits' buckets are: `redis://…` (shared by every replica; per replica while Redis does not answer, which `/readyz` says) or `none` (per replica) |
//! | `trusted_proxies` | empty (trust none) | comma-separated IPs and CIDR networks (`10.0.0.0/8, ::1`) of the reverse proxies whose `Forwarded` / `X-Forwarded-For` name the client, for the limits and the logs |
//! | `log`, `log_format` | `info`, `json` | log filter (`info,parq_server=debug`) and format (`json`, `text`) |
//! | `shutdown_grace_secs` | `30` | how long requests in flight may take to finish |
//! | `map_style_url` | — | a MapLibre/Mapbox style for the web map (else a plain style without tiles) |
//! | `map_tile_url` | — | an XYZ raster tile template drawn under the map's layers (`…/{z}/{x}/{y}.png`) |
//! | `public_parking_file` | — | GeoJSON points of free public parking, shown as a layer on the map (the demo has its own) |
//!
//! `parq config keys` lists every key with its kind and the `PARQ_*` variables that set it;
//! other `PARQ_*` variables are not read (a deployment's manifests can be checked against it).
//!
//! On SQLite (the default) everything the server keeps is in that one file: `parq backup FILE`
//! copies it with SQLite's online backup while the server runs, and
//! `sqlite3 -readonly <data dir>/parq.db` opens it to look (`.tables`,
//! `SELECT state, count(*) FROM reservations GROUP BY state;`, `PRAGMA integrity_check;`).

use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat, Map, Source, Value, ValueKind};
use serde::{Deserialize, Serialize};

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

/// A `config` crate error, said in the loader's terms: the key, and what is wrong with its value.
fn invalid(source: &str, e: config::ConfigError) -> ConfigError {
    let what = |expected: &str| {
        if expected.contains("integer") {
            "a whole number".to_owned()
        } else if expected.contains("boolean") {
            "true or false".to_owned()
        } else {
            expected.to_owned()
        }
    };
    match e {
        config::ConfigError::Type { unexpected, expected, key: Some(key), origin } => {
            let unexpected = unexpected.to_string();
            // A number where a number is expected: one the field cannot hold.
            let wrong = if unexpected.contains("integer") && expected.contains("integer") {
                "is out of range".to_owned()
            } else {
                format!("is not {}", what(expected))
            };
            let origin = origin.map(|o| format!(" (in {o})")).unwrap_or_default();
            ConfigError::Invalid { key, message: format!("{unexpected} {wrong}{origin}") }
        }
        config::ConfigError::At { error, key: Some(key), .. } => {
            ConfigError::Invalid { key, message: error.to_string() }
        }
        other => ConfigError::Invalid { key: source.to_owned(), message: other.to_string() },
    }
}

/// The server's configuration. See the module docs for each key. Its `Debug` form shows every
/// secret (URLs included, which may hold passwords) as `<secret>`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Config {
    pub bind: String,
    pub store_url: String,
    pub data_dir: Option<String>,
    pub store_schema: String,
    pub pg_pool_size: u64,
    pub pg_ca_file: Option<String>,
    pub lock_url: String,
    pub notifier_url: String,
    pub redis_prefix: String,
    pub redis_ca_file: Option<String>,
    pub redis_cert_file: Option<String>,
    pub redis_key_file: Option<String>,
    pub accounts_url: String,
    pub gateway: String,
    pub allow_local_test_gateway: bool,
    pub webhook_secret: Option<String>,
    pub stripe_secret_key: Option<String>,
    pub stripe_api_base: Option<String>,
    pub stripe_send_description: bool,
    pub reconcile_interval_secs: u64,
    pub pass_keys: Option<String>,
    pub pass_signing_key: Option<String>,
    pub admin_key: Option<String>,
    pub demo: Option<bool>,
    pub operator_key: Option<String>,
    pub gate_key: Option<String>,
    pub session_ttl_secs: u64,
    pub login_max_failures: u32,
    pub login_ip_max_failures: u32,
    pub login_lock_secs: u64,
    pub login_lock_max_secs: u64,
    pub sweep_interval_secs: u64,
    pub sweep_batch: usize,
    pub rate_ip: u32,
    pub rate_user: u32,
    pub rate_key: u32,
    pub rate_burst: u32,
    pub limits_url: String,
    pub trusted_proxies: String,
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
            store_url: String::new(),
            data_dir: None,
            store_schema: "parq".into(),
            pg_pool_size: 16,
            pg_ca_file: None,
            lock_url: "none".into(),
            notifier_url: "memory:".into(),
            redis_prefix: "parq".into(),
            redis_ca_file: None,
            redis_cert_file: None,
            redis_key_file: None,
            accounts_url: String::new(),
            gateway: "test".into(),
            allow_local_test_gateway: false,
            webhook_secret: None,
            stripe_secret_key: None,
            stripe_api_base: None,
            stripe_send_description: true,
            reconcile_interval_secs: 60,
            pass_keys: None,
            pass_signing_key: None,
            admin_key: None,
            demo: None,
            operator_key: None,
            gate_key: None,
            session_ttl_secs: 12 * 3600,
            login_max_failures: 5,
            login_ip_max_failures: 100,
            login_lock_secs: 30,
            login_lock_max_secs: 3600,
            sweep_interval_secs: 5,
            sweep_batch: 500,
            rate_ip: 50,
            rate_user: 20,
            rate_key: 200,
            rate_burst: 4,
            limits_url: String::new(),
            trusted_proxies: String::new(),
            log: "info".into(),
            log_format: "json".into(),
            shutdown_grace_secs: 30,
            map_style_url: None,
            map_tile_url: None,
            public_parking_file: None,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            for (key, _) in KEYS.iter().filter(|(_, kind)| *kind == Kind::Secret) {
                if let Some(x) = map.get_mut(*key).filter(|x| !x.is_null()) {
                    *x = "<secret>".into();
                }
            }
        }
        write!(f, "Config {v}")
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
    ("data_dir", Kind::Str),
    ("store_schema", Kind::Str),
    ("pg_pool_size", Kind::Int),
    ("pg_ca_file", Kind::Str),
    ("lock_url", Kind::Secret),
    ("notifier_url", Kind::Secret),
    ("redis_prefix", Kind::Str),
    ("redis_ca_file", Kind::Str),
    ("redis_cert_file", Kind::Str),
    ("redis_key_file", Kind::Str),
    ("accounts_url", Kind::Secret),
    ("gateway", Kind::Str),
    ("allow_local_test_gateway", Kind::Bool),
    ("webhook_secret", Kind::Secret),
    ("stripe_secret_key", Kind::Secret),
    ("stripe_api_base", Kind::Str),
    ("stripe_send_description", Kind::Bool),
    ("reconcile_interval_secs", Kind::Int),
    ("pass_keys", Kind::Secret),
    ("pass_signing_key", Kind::Secret),
    ("admin_key", Kind::Secret),
    ("demo", Kind::Bool),
    ("operator_key", Kind::Secret),
    ("gate_key", Kind::Secret),
    ("session_ttl_secs", Kind::Int),
    ("login_max_failures", Kind::Int),
    ("login_ip_max_failures", Kind::Int),
    ("login_lock_secs", Kind::Int),
    ("login_lock_max_secs", Kind::Int),
    ("sweep_interval_secs", Kind::Int),
    ("sweep_batch", Kind::Int),
    ("rate_ip", Kind::Int),
    ("rate_user", Kind::Int),
    ("rate_key", Kind::Int),
    ("rate_burst", Kind::Int),
    ("limits_url", Kind::Secret),
    ("trusted_proxies", Kind::Str),
    ("log", Kind::Str),
    ("log_format", Kind::Str),
    ("shutdown_grace_secs", Kind::Int),
    ("map_style_url", Kind::Str),
    ("map_tile_url", Kind::Str),
    ("public_parking_file", Kind::Str),
];

/// Every key the loader knows, with its kind (`string`, `integer`, `boolean`, `secret`), in the
/// order of the table above. A secret is also read from the file its `<key>_file` names.
/// `parq config keys` prints them with their `PARQ_*` variables.
pub fn keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter().map(|(key, kind)| {
        let kind = match kind {
            Kind::Str => "string",
            Kind::Int => "integer",
            Kind::Bool => "boolean",
            Kind::Secret => "secret",
        };
        (*key, kind)
    })
}

/// The `PARQ_*` variables the loader reads for `key`: `PARQ_<KEY>`, and for a secret also
/// `PARQ_<KEY>_FILE`. Any other `PARQ_*` variable is not read (it may be another program's).
pub fn env_names(key: &str) -> Vec<String> {
    let var = format!("PARQ_{}", key.to_ascii_uppercase());
    match kind_of(key) {
        Some(Kind::Secret) => vec![var.clone(), format!("{var}_FILE")],
        Some(_) => vec![var],
        None => Vec::new(),
    }
}

fn kind_of(key: &str) -> Option<Kind> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

/// The secret `key_file` names, when `key` is a secret's `<key>_file`.
fn secret_of_file_key(key: &str) -> Option<&str> {
    key.strip_suffix("_file").filter(|b| kind_of(b) == Some(Kind::Secret))
}

/// Whether `key` is one of ours: a key, or a secret's `<key>_file`.
fn known(key: &str) -> bool {
    kind_of(key).is_some() || secret_of_file_key(key).is_some()
}

/// A raw value from the environment or a flag: numbers and booleans may be padded.
fn raw(key: &str, value: &str) -> String {
    match kind_of(key) {
        Some(Kind::Int | Kind::Bool) => value.trim().to_owned(),
        _ => value.to_owned(),
    }
}

/// One source's keys, as the `config` crate reads them.
#[derive(Debug, Clone, Default)]
struct Layer(Map<String, Value>);

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// The configuration text of a file (or of a string), read.
struct Text<'a> {
    /// Where it comes from, for messages.
    path: &'a str,
    text: &'a str,
}

impl Config {
    /// Loads the layers: `file`, then the `PARQ_*` variables of `env`, then `flags`
    /// (`(key, value)` pairs). Secrets named by `<key>_file` are read from their files.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> Result<Config, ConfigError> {
        let text = match file {
            None => None,
            Some(path) => Some((
                path.display().to_string(),
                std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?,
            )),
        };
        let text = text.as_ref().map(|(path, text)| Text { path, text });
        Self::layered(text, env, flags, |path| std::fs::read_to_string(path))
    }

    /// The configuration a TOML text gives, over the defaults, without reading anything else:
    /// no environment, no flags, and no file (a secret's `<key>_file` is refused). The pure
    /// entry point of the loader, for fuzzing and tests.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let text = Text { path: "the configuration text", text };
        Self::layered(Some(text), std::iter::empty(), &[], |_| {
            Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no files are read here"))
        })
    }

    fn layered(
        file: Option<Text<'_>>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
        read: impl Fn(&str) -> std::io::Result<String>,
    ) -> Result<Config, ConfigError> {
        // The layers, lowest first.
        let mut layers: Vec<Layer> = Vec::with_capacity(3);
        let mut path = "configuration";
        if let Some(f) = file {
            path = f.path;
            let table = File::from_str(f.text, FileFormat::Toml).collect().map_err(|e| match e {
                config::ConfigError::FileParse { cause, .. } => {
                    ConfigError::Toml { path: f.path.to_owned(), message: cause.to_string() }
                }
                other => ConfigError::Toml { path: f.path.to_owned(), message: other.to_string() },
            })?;
            layers.push(Layer(table));
        }
        // Other PARQ_ variables (the test suite's, for instance) are not ours.
        let vars: Map<String, String> = env
            .into_iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix("PARQ_")?.to_ascii_lowercase();
                known(&key).then(|| (name, raw(&key, &value)))
            })
            .collect();
        let vars = Environment::with_prefix("PARQ").prefix_separator("_").source(Some(vars));
        layers.push(Layer(vars.collect().map_err(|e| invalid("environment", e))?));
        let origin = "the command line".to_owned();
        let mut from_flags = Map::new();
        for (key, value) in flags {
            if !known(key) {
                return Err(ConfigError::Invalid { key: (*key).to_owned(), message: "unknown key".into() });
            }
            from_flags
                .insert((*key).to_owned(), Value::new(Some(&origin), ValueKind::String(raw(key, value))));
        }
        layers.push(Layer(from_flags));

        // A secret comes from the highest layer that names it or its file; a file is read only
        // when it wins.
        let mut secrets = Map::new();
        for (key, _) in KEYS.iter().filter(|(_, kind)| *kind == Kind::Secret) {
            let file_key = format!("{key}_file");
            let winner = layers.iter().rev().find(|l| l.0.contains_key(*key) || l.0.contains_key(&file_key));
            if let Some(named) = winner.and_then(|l| l.0.get(&file_key)) {
                let file = named.clone().into_string().map_err(|_| ConfigError::Invalid {
                    key: file_key.clone(),
                    message: "must be a path".into(),
                })?;
                let text = read(&file).map_err(|source| ConfigError::Read { path: file.clone(), source })?;
                let origin = file.clone();
                secrets.insert(
                    (*key).to_owned(),
                    Value::new(Some(&origin), ValueKind::String(text.trim().into())),
                );
            }
            for l in &mut layers {
                l.0.remove(&file_key);
            }
        }
        layers.push(Layer(secrets));

        let merged = layers
            .into_iter()
            .fold(config::Config::builder(), |b, layer| b.add_source(layer))
            .build()
            .map_err(|e| invalid(path, e))?;
        let config: Config = merged.try_deserialize().map_err(|e| invalid(path, e))?;
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
        if self.login_max_failures == 0 || self.login_ip_max_failures == 0 {
            return Err(bad("login_max_failures", "the failures before a lock must be positive"));
        }
        if self.login_lock_secs == 0 || self.login_lock_max_secs < self.login_lock_secs {
            return Err(bad("login_lock_secs", "must be positive and at most login_lock_max_secs"));
        }
        if self.login_lock_max_secs > 30 * 24 * 3600 {
            return Err(bad("login_lock_max_secs", "must be at most 30 days"));
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
        let given = |f: &Option<String>| f.as_deref().is_some_and(|f| !f.trim().is_empty());
        if given(&self.redis_cert_file) != given(&self.redis_key_file) {
            return Err(bad(
                "redis_cert_file",
                "redis_cert_file and redis_key_file go together: give both or neither",
            ));
        }
        if let Err(message) = crate::clientaddr::TrustedProxies::parse(&self.trusted_proxies) {
            return Err(bad("trusted_proxies", &message));
        }
        if !matches!(self.log_format.as_str(), "json" | "text") {
            return Err(bad("log_format", "must be json or text"));
        }
        self.pass_keyring()?;
        if let Some(k) = self.admin_key()
            && (k.chars().count() < 16 || k.chars().any(char::is_whitespace))
        {
            return Err(bad(
                "admin_key",
                "must be at least 16 characters, without spaces (for instance `openssl rand -hex 32`)",
            ));
        }
        Ok(())
    }

    /// The pass keyring the configuration gives: `pass_keys`, else `pass_signing_key` as a
    /// keyring of one key (id 1), else none. A bad document is refused with a message that
    /// names the key and what is wrong, never a seed.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `pass_keys` or `pass_signing_key`.
    pub fn pass_keyring(&self) -> Result<Option<crate::passkeys::Keyring>, ConfigError> {
        let given =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        match (given(&self.pass_keys), given(&self.pass_signing_key)) {
            (Some(_), Some(_)) => Err(ConfigError::Invalid {
                key: "pass_signing_key".into(),
                message: "and pass_keys are both set: keep pass_keys (a keyring) and remove pass_signing_key"
                    .into(),
            }),
            (Some(doc), None) => crate::passkeys::Keyring::parse(&doc)
                .map(Some)
                .map_err(|e| ConfigError::Invalid { key: "pass_keys".into(), message: e.0 }),
            (None, Some(hex)) => parq_core::pass::KeySeed::from_hex(&hex)
                .map(|seed| Some(crate::passkeys::Keyring::single(seed)))
                .map_err(|_| ConfigError::Invalid {
                    key: "pass_signing_key".into(),
                    message: "must be 64 hex digits (an Ed25519 seed)".into(),
                }),
            (None, None) => Ok(None),
        }
    }

    /// The admin API's key, when one is configured (the admin API is off otherwise).
    pub fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref().filter(|k| !k.is_empty())
    }

    /// Whether the demo city is loaded: as configured, else when the store is in memory or in
    /// the default file (no `store_url` given).
    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or_else(|| {
            let u = self.store_url.trim();
            u.is_empty() || u.starts_with("memory:")
        })
    }

    /// The data directory: `data_dir`, else `$XDG_DATA_HOME/parq`, else
    /// `$HOME/.local/share/parq`, else `./parq-data`.
    pub fn data_dir_path(&self) -> PathBuf {
        if let Some(d) = self.data_dir.as_deref().filter(|d| !d.trim().is_empty()) {
            return PathBuf::from(d);
        }
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(x) = var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
            return x.join("parq");
        }
        match var("HOME") {
            Some(home) => home.join(".local").join("share").join("parq"),
            None => PathBuf::from("parq-data"),
        }
    }

    /// The SQLite database file the store is in, when it is in one: the `sqlite://` (or
    /// `sqlite:`) URL's path, or `<data dir>/parq.db` when no `store_url` is given.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let u = self.store_url.trim();
        if u.is_empty() {
            return Some(self.data_dir_path().join("parq.db"));
        }
        let path = u.strip_prefix("sqlite://").or_else(|| u.strip_prefix("sqlite:"))?;
        Some(PathBuf::from(path))
    }

    /// Whether the store is the default file in the data directory (no `store_url` given).
    pub fn store_is_default_file(&self) -> bool {
        self.store_url.trim().is_empty()
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
    fn every_key_is_listed_with_the_variables_that_set_it() {
        let listed: Vec<_> = keys().collect();
        assert_eq!(listed.len(), KEYS.len());
        assert!(listed.contains(&("rate_ip", "integer")) && listed.contains(&("store_url", "secret")));
        assert_eq!(env_names("store_url"), ["PARQ_STORE_URL", "PARQ_STORE_URL_FILE"]);
        assert_eq!(env_names("bind"), ["PARQ_BIND"]);
        assert!(env_names("nonsense").is_empty());
        // Each listed variable is one the loader reads: setting it changes the configuration (or
        // is refused), where an unknown one changes nothing.
        assert_eq!(Config::load(None, env(&[("PARQ_NONSENSE", "1")]), &[]).unwrap(), Config::default());
        let dir = std::env::temp_dir().join(format!("parq-config-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "s7\n").unwrap();
        let defaults = Config::load(None, env(&[]), &[]).unwrap();
        for (key, kind) in keys() {
            for var in env_names(key) {
                let values: &[&str] = match (kind, key) {
                    (_, _) if var.ends_with("_FILE") => &[secret.to_str().unwrap()],
                    ("integer", _) => &["7"],
                    // One of the two is not the default.
                    ("boolean", _) => &["false", "true"],
                    (_, "bind") => &["127.0.0.1:7"],
                    (_, "log_format") => &["text"],
                    (_, "map_style_url" | "map_tile_url") => &["/m7"],
                    _ => &["s7"],
                };
                // A value the key's checks refuse is read too: unknown variables are never refused.
                let read =
                    values.iter().any(|value| match Config::load(None, env(&[(var.as_str(), value)]), &[]) {
                        Ok(c) => c != defaults,
                        Err(_) => true,
                    });
                assert!(read, "{var}={values:?} is read");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_text_alone_is_typed_checked_and_refuses_files() {
        let c = Config::from_toml_str("rate_ip = 7\ndemo = false\nstore_schema = \"city\"\n").unwrap();
        assert_eq!((c.rate_ip, c.demo, c.store_schema.as_str()), (7, Some(false), "city"));
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
        for (text, says) in [
            ("nonsense = 1", "nonsense"),
            ("rate_ip = \"lots\"", "rate_ip"),
            ("rate_ip = 0", "rate_ip"),
            ("bind = [", "not valid TOML"),
            ("[bind]\nx = 1", "bind"),
            ("webhook_secret_file = \"/etc/hostname\"", "no files are read here"),
            ("log_format = \"xml\"", "log_format"),
            ("redis_cert_file = \"/etc/parq/client.pem\"", "redis_key_file"),
            ("trusted_proxies = \"10.0.0.0/8, proxy.internal\"", "proxy.internal"),
            ("trusted_proxies = \"10.0.0.0/40\"", "trusted_proxies"),
        ] {
            let e = Config::from_toml_str(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn env_words_and_padding_and_the_later_layer_of_a_secret_wins() {
        let dir = std::env::temp_dir().join(format!("parq-config-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let path = secret.to_str().unwrap().to_owned();
        let c = Config::load(
            None,
            env(&[("PARQ_DEMO", " yes "), ("PARQ_RATE_KEY", " 9 "), ("PARQ_STRIPE_SEND_DESCRIPTION", "off")]),
            &[],
        )
        .unwrap();
        assert_eq!((c.demo, c.rate_key, c.stripe_send_description), (Some(true), 9, false));
        // The flag names the value: the file the environment names is not read.
        let c = Config::load(
            None,
            env(&[("PARQ_WEBHOOK_SECRET_FILE", "/nonexistent/secret")]),
            &[("webhook_secret", "from-flag".into())],
        )
        .unwrap();
        assert_eq!(c.webhook_secret.as_deref(), Some("from-flag"));
        // The flag names the file: it wins over the environment's value.
        let c = Config::load(
            None,
            env(&[("PARQ_WEBHOOK_SECRET", "from-env")]),
            &[("webhook_secret_file", path.clone())],
        )
        .unwrap();
        assert_eq!(c.webhook_secret.as_deref(), Some("from-file"));
        let e = Config::load(None, env(&[("PARQ_DEMO", "maybe")]), &[]).unwrap_err().to_string();
        assert!(e.contains("demo") && e.contains("true or false"), "{e}");
        let e = Config::load(None, env(&[]), &[("nonsense", "1".into())]).unwrap_err().to_string();
        assert!(e.contains("nonsense"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_pass_keyring_comes_from_its_file_and_no_secret_is_in_the_debug_form() {
        let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let dir = std::env::temp_dir().join(format!("parq-config-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pass-keys.toml");
        std::fs::write(&file, format!("[[keys]]\nid = 4\nseed = \"{seed}\"\n")).unwrap();
        let c = Config::load(
            None,
            env(&[
                ("PARQ_PASS_KEYS_FILE", file.to_str().unwrap()),
                ("PARQ_ADMIN_KEY", "an-admin-key-0123456789"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.pass_keyring().unwrap().unwrap().signing_id(), 4);
        assert_eq!(c.admin_key(), Some("an-admin-key-0123456789"));
        let shown = format!("{c:?}");
        assert!(!shown.contains(&seed[..12]) && !shown.contains("an-admin-key"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
        std::fs::write(&file, "[[keys]]\nid = 1\nseed = \"00\"\n").unwrap();
        let e = Config::load(None, env(&[("PARQ_PASS_KEYS_FILE", file.to_str().unwrap())]), &[]).unwrap_err();
        assert!(e.to_string().contains("pass_keys") && e.to_string().contains("64 hex digits"), "{e}");
        let one = Config::from_toml_str(&format!("pass_signing_key = \"{seed}\"")).unwrap();
        assert_eq!(one.pass_keyring().unwrap().unwrap().signing_id(), 1);
        assert_eq!(Config::default().pass_keyring().unwrap(), None);
        let e = Config::from_toml_str("admin_key = \"short\"").unwrap_err().to_string();
        assert!(e.contains("admin_key") && !e.contains("short"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_store_file_from_the_url_or_the_data_dir_and_the_demo_with_it() {
        let c = Config::from_toml_str("store_url = \"sqlite:///var/lib/parq/a.db\"").unwrap();
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("/var/lib/parq/a.db")));
        assert!(!c.demo_enabled(), "an explicit file is not a demo");
        let c = Config::from_toml_str("store_url = \"sqlite:rel/b.db\"").unwrap();
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("rel/b.db")));
        let c = Config::from_toml_str("data_dir = \"/srv/parq\"").unwrap();
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("/srv/parq/parq.db")));
        assert!(c.store_is_default_file() && c.demo_enabled());
        let c = Config::from_toml_str("store_url = \"memory:\"\ndata_dir = \"/srv/parq\"").unwrap();
        assert_eq!(c.sqlite_path(), None);
        assert!(c.demo_enabled());
        let c = Config::load(None, env(&[("PARQ_DATA_DIR", "/from/env")]), &[]).unwrap();
        assert_eq!(c.data_dir_path(), PathBuf::from("/from/env"));
        assert_eq!(Config::from_toml_str("store_url = \"postgres://x/y\"").unwrap().sqlite_path(), None);
    }
}
