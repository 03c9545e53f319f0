//! Picks the store, admission lock, notifier, payment gateway and account store from URLs,
//! and runs the workers some of them need.
//!
//! This is the one place that knows adapters by name:
//!
//! | key | accepted |
//! | --- | --- |
//! | `store_url` | empty (`<data_dir>/parq.db`), `sqlite://<path>` or `sqlite:<path>` (`SqliteStore`), `memory:`, `postgres://…` (`PgStore` in `store_schema`) |
//! | `lock_url` | `none`, `memory:`, `redis://…` (`FailoverLock` over `RedisLock`, with `RedisHealth`) |
//! | `notifier_url` | `memory:`, `redis://…` (`RedisNotifier`, merged with `PgNotifier` when the store is on PostgreSQL), `postgres` (`PgNotifier` on the store's database) |
//! | `accounts_url` | empty (where the store is: `SqliteAccounts` in the store's file, `PgAccounts` in `store_schema`, or memory), `memory:`, `postgres://…` (`PgAccounts` in `store_schema`) |
//! | `gateway` | `test`, `stripe` (`StripeGateway`) |
//! | `limits_url` | empty (`lock_url` when that is Redis, else per replica), `none`, `memory:` (per replica), `redis://…` (`RedisRateLimiter`) |
//!
//! URLs may hold passwords: errors name the key and the scheme, never the URL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use parq_core::memory::{BroadcastNotifier, MemoryLock, MemoryStore, TestGateway};
use parq_core::{
    DynAdmissionLock, DynNotifier, DynPaymentGateway, DynReservationStore, Engine, GeoBox, LotId,
};
use parq_payments::{StripeConfig, StripeGateway};
use parq_postgres::deadpool_postgres::Pool;
use parq_postgres::{PgNotifier, PgStore, migrate};
use parq_redis::{FailoverLock, Health, HealthConfig, NotifierConfig, RedisHealth, RedisLock, RedisNotifier};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::accounts::{Accounts, MemoryAccounts, PgAccounts, SqliteAccounts};
use crate::config::{Config, ConfigError};

pub mod postgres;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine refused the demo data or a backend failed.
    #[error("could not set up: {0}")]
    Engine(#[from] parq_core::Error),
    /// The SQLite store's file cannot be used (a newer schema, not writable, not a database).
    #[error("{0}")]
    Store(#[from] parq_sqlite::OpenError),
    /// The server's tables in the SQLite file cannot be used.
    #[error("{0}")]
    ServerDb(#[from] crate::sqlite::SqliteDbError),
    /// The data directory cannot be made.
    #[error(
        "cannot create the data directory {path}: {source}; set --data-dir (PARQ_DATA_DIR) to a writable \
         directory, or run with --memory to keep nothing"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The payment gateway, and what only the test gateway can do.
#[derive(Debug, Clone)]
pub enum Gateway {
    /// Simulated payments; the server exposes endpoints to play the driver paying.
    Test(Arc<TestGateway>),
    /// Stripe's PaymentIntents; webhooks arrive at `POST /api/v1/webhooks/stripe`.
    Stripe(Arc<StripeGateway>),
}

impl Gateway {
    /// The gateway as the engine uses it.
    pub fn as_dyn(&self) -> Arc<DynPaymentGateway> {
        match self {
            Gateway::Test(g) => g.clone(),
            Gateway::Stripe(g) => g.clone(),
        }
    }

    /// The test gateway, when that is the one in use.
    pub fn test(&self) -> Option<&Arc<TestGateway>> {
        match self {
            Gateway::Test(g) => Some(g),
            Gateway::Stripe(_) => None,
        }
    }

    /// Whether this is Stripe.
    pub fn is_stripe(&self) -> bool {
        matches!(self, Gateway::Stripe(_))
    }
}

/// The PostgreSQL side, when the store is there.
#[derive(Debug, Clone)]
pub struct Postgres {
    /// The pool the store, the accounts and the idempotency records share.
    pub pool: Pool,
    /// The schema.
    pub schema: String,
}

/// The SQLite side, when the store is in a file.
#[derive(Debug, Clone)]
pub struct Sqlite {
    /// The database file.
    pub path: PathBuf,
    /// The server's connections to it (accounts, idempotency records).
    pub db: Arc<crate::sqlite::SqliteDb>,
}

/// The Redis side, when the lock is there.
#[derive(Debug, Clone)]
pub struct Redis {
    /// The health checker (its state gates the lock).
    pub health: RedisHealth,
    /// The failover lock, rebuilt from the store whenever Redis is cold.
    pub lock: Arc<FailoverLock>,
}

/// The adapters chosen by the configuration.
#[derive(Debug, Clone)]
pub struct Backends {
    /// The reservation store.
    pub store: Arc<DynReservationStore>,
    /// The admission lock, if any.
    pub lock: Option<Arc<DynAdmissionLock>>,
    /// The notifier.
    pub notifier: Arc<DynNotifier>,
    /// The payment gateway.
    pub gateway: Gateway,
    /// The account store.
    pub accounts: Accounts,
    /// The backends' names, for `/readyz` and `/metrics`.
    pub names: BackendNames,
    /// PostgreSQL, when the store is there.
    pub postgres: Option<Postgres>,
    /// SQLite, when the store is in a file.
    pub sqlite: Option<Sqlite>,
    /// Redis, when the lock is there.
    pub redis: Option<Redis>,
}

/// Which adapter serves each port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendNames {
    /// Store adapter.
    pub store: &'static str,
    /// Lock adapter (`none` when there is none).
    pub lock: &'static str,
    /// Notifier adapter.
    pub notifier: &'static str,
    /// Gateway adapter.
    pub gateway: &'static str,
    /// Accounts adapter.
    pub accounts: &'static str,
}

fn scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((s, _)) => format!("{s}:"),
        None => url.to_owned(),
    }
}

fn unknown(key: &'static str, url: &str, accepted: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: format!("{:?} is not a known backend URL; accepted: {accepted}", scheme(url)),
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn is_redis(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+cluster://")
}

/// A Redis pool that connects lazily, so the server starts (and routes around Redis) while
/// Redis is down. A connection is tested (one PING) only after a failure of the pool, so a
/// claim stays one round trip and a restarted Redis is usable again at once.
fn redis_pool(key: &'static str, url: &str) -> Result<parq_redis::RedisPool, ConfigError> {
    if url.starts_with("redis+cluster://") {
        return Err(invalid(
            key,
            "Redis Cluster is not supported by this binary; give one node's redis:// URL",
        ));
    }
    let manager = parq_redis::RedisManager::new(url)
        .map_err(|e| invalid(key, format!("is not a usable Redis URL: {:?}", e.kind())))?;
    Ok(parq_redis::pool::builder(32, Duration::from_secs(2)).build_unchecked(manager))
}

/// The Redis the rate limits share, when there is one: `limits_url`, by default `lock_url`
/// when that is Redis; `none` (or `memory:`) keeps them per replica.
pub fn limits(config: &Config) -> Result<Option<parq_redis::RedisRateLimiter>, ConfigError> {
    let mut u = config.limits_url.trim();
    if u.is_empty() {
        u = config.lock_url.trim();
        if !is_redis(u) {
            return Ok(None);
        }
    }
    if matches!(u, "none" | "memory:") {
        return Ok(None);
    }
    if !is_redis(u) {
        return Err(unknown("limits_url", u, "none, redis://…"));
    }
    let pool = redis_pool("limits_url", u)?;
    parq_redis::RedisRateLimiter::new(pool, &config.redis_prefix)
        .map(Some)
        .map_err(|e| invalid("redis_prefix", e.to_string()))
}

/// The whole world, to list every lot.
const WORLD: GeoBox = GeoBox { min_lat: -90.0, max_lat: 90.0, min_lon: -180.0, max_lon: 180.0 };

/// Every lot's id.
pub async fn all_lots(store: &DynReservationStore) -> parq_core::Result<Vec<LotId>> {
    Ok(store.lots_in(&WORLD).await?.into_iter().map(|l| l.id).collect())
}

/// The Stripe configuration: the keys from the configuration (`stripe_secret_key`,
/// `webhook_secret`, `stripe_api_base`, each also as `PARQ_…` or `*_FILE`).
fn stripe_config(config: &Config) -> Result<StripeConfig, ConfigError> {
    let secret = config.stripe_secret_key.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
        invalid(
            "stripe_secret_key",
            "is required with gateway = \"stripe\" (PARQ_STRIPE_SECRET_KEY or its _FILE)",
        )
    })?;
    let webhook = config.webhook_secret.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
        invalid(
            "webhook_secret",
            "is required with gateway = \"stripe\": the endpoint's whsec_… signing secret",
        )
    })?;
    let mut c = StripeConfig::new(secret, webhook);
    c.api_base = config.stripe_api_base.clone().filter(|b| !b.is_empty());
    c.send_description = config.stripe_send_description;
    Ok(c)
}

/// Builds the adapters the configuration names. Nothing is migrated here (`parq migrate`
/// does that); PostgreSQL and Redis are connected lazily, except the PostgreSQL notifier,
/// which listens before it returns.
pub async fn select(config: &Config) -> Result<Backends, StartError> {
    let u = config.store_url.trim();
    let mut postgres = None;
    let mut sqlite = None;
    let (store, store_name): (Arc<DynReservationStore>, _) = if let Some(path) = config.sqlite_path() {
        if path.as_os_str().is_empty() {
            return Err(invalid(
                "store_url",
                "sqlite:// needs a file path, as in sqlite:///var/lib/parq/parq.db",
            )
            .into());
        }
        if config.store_is_default_file() {
            let dir = config.data_dir_path();
            std::fs::create_dir_all(&dir)
                .map_err(|source| StartError::DataDir { path: dir.clone(), source })?;
        }
        let store =
            parq_sqlite::SqliteStore::open_async(path.clone(), parq_sqlite::SqliteOptions::default()).await?;
        let db = Arc::new(crate::sqlite::SqliteDb::open_async(path.clone()).await?);
        sqlite = Some(Sqlite { path, db });
        (Arc::new(store), "sqlite")
    } else if u.starts_with("memory:") {
        (Arc::new(MemoryStore::new()), "memory")
    } else if is_postgres(u) {
        let pg_config = postgres::parse_url("store_url", u)?;
        let pool = postgres::pool(pg_config, config.pg_pool_size)?;
        postgres = Some(Postgres { pool: pool.clone(), schema: config.store_schema.clone() });
        (Arc::new(PgStore::new(pool, config.store_schema.clone())), "postgres")
    } else if is_redis(u) {
        return Err(invalid(
            "store_url",
            "the Redis store is not built into this binary; use postgres://… (with lock_url = redis://…) or memory:",
        )
        .into());
    } else {
        return Err(unknown("store_url", u, "sqlite://<path>, memory:, postgres://…").into());
    };

    let u = config.lock_url.trim();
    let mut redis = None;
    let (lock, lock_name): (Option<Arc<DynAdmissionLock>>, _) = if u.is_empty() || u == "none" {
        (None, "none")
    } else if u.starts_with("memory:") {
        (Some(Arc::new(MemoryLock::new(Arc::new(parq_core::SystemClock)))), "memory")
    } else if is_redis(u) {
        let pool = redis_pool("lock_url", u)?;
        let prefix = &config.redis_prefix;
        let health = RedisHealth::new(pool.clone(), prefix, HealthConfig::default())?;
        let lock = Arc::new(FailoverLock::new(RedisLock::new(pool, prefix)?, health.clone()));
        redis = Some(Redis { health, lock: lock.clone() });
        (Some(lock as Arc<DynAdmissionLock>), "redis")
    } else {
        return Err(unknown("lock_url", u, "none, memory:, redis://…").into());
    };

    let u = config.notifier_url.trim();
    let (notifier, notifier_name): (Arc<DynNotifier>, _) = if u.starts_with("memory:") {
        (Arc::new(BroadcastNotifier::default()), "memory")
    } else if is_redis(u) {
        let pool = redis_pool("notifier_url", u)?;
        let client = parq_redis::redis::Client::open(u)
            .map_err(|e| invalid("notifier_url", format!("is not a usable Redis URL: {:?}", e.kind())))?;
        let mut n = RedisNotifier::new(pool, client, &config.redis_prefix, NotifierConfig::default())?;
        if let Some(r) = redis.as_ref().filter(|_| u == config.lock_url.trim()) {
            n = n.with_health(r.health.clone());
        }
        match &postgres {
            // Events also flow from the store's outbox (LISTEN/NOTIFY), so live updates reach
            // every replica while Redis is away; subscribers drop what they hear twice.
            Some(pg) => {
                let pg_config = postgres::parse_url("store_url", config.store_url.trim())?;
                let channel = PgStore::new(pg.pool.clone(), pg.schema.clone()).channel().to_owned();
                let outbox: Arc<DynNotifier> = Arc::new(OutboxListener::new(pg_config, channel));
                (Arc::new(parq_core::MergedNotifier::new(vec![Arc::new(n), outbox])), "redis+postgres")
            }
            None => (Arc::new(n), "redis"),
        }
    } else if u == "postgres" || is_postgres(u) {
        let Some(pg) = &postgres else {
            return Err(invalid(
                "notifier_url",
                "postgres needs the store on PostgreSQL (it listens to the store's events)",
            )
            .into());
        };
        let url = if u == "postgres" { config.store_url.trim() } else { u };
        let pg_config = postgres::parse_url("notifier_url", url)?;
        let channel = PgStore::new(pg.pool.clone(), pg.schema.clone()).channel().to_owned();
        (Arc::new(PgNotifier::connect(pg_config, channel).await?), "postgres")
    } else {
        return Err(unknown("notifier_url", u, "memory:, redis://…, postgres").into());
    };

    let u = config.accounts_url.trim();
    let (accounts, accounts_name): (Accounts, _) = if u.starts_with("memory:") {
        if postgres.is_some() || sqlite.is_some() {
            tracing::warn!("accounts_url = memory: with a durable store: accounts live in this process only");
        }
        (Arc::new(MemoryAccounts::new()), "memory")
    } else if u.is_empty() {
        match (&postgres, &sqlite) {
            (Some(pg), _) => (Arc::new(PgAccounts::new(pg.pool.clone(), &pg.schema)), "postgres"),
            (None, Some(lite)) => (Arc::new(SqliteAccounts::new(lite.db.clone())), "sqlite"),
            (None, None) => (Arc::new(MemoryAccounts::new()), "memory"),
        }
    } else if is_postgres(u) {
        match &postgres {
            Some(pg) if u == config.store_url.trim() => {
                (Arc::new(PgAccounts::new(pg.pool.clone(), &pg.schema)), "postgres")
            }
            _ => {
                let pool = postgres::pool(postgres::parse_url("accounts_url", u)?, config.pg_pool_size)?;
                (Arc::new(PgAccounts::new(pool, &config.store_schema)), "postgres")
            }
        }
    } else {
        return Err(unknown("accounts_url", u, "memory:, postgres://…").into());
    };

    let stripe_key = config.stripe_secret_key.as_deref().is_some_and(|k| !k.is_empty());
    let (gateway, gateway_name) = match config.gateway.trim() {
        "stripe" => (Gateway::Stripe(Arc::new(StripeGateway::new(stripe_config(config)?)?)), "stripe"),
        "test" if stripe_key => {
            return Err(invalid(
                "stripe_secret_key",
                "is set but gateway = \"test\"; set gateway = \"stripe\" to use it",
            )
            .into());
        }
        "test" => {
            let secret = match &config.webhook_secret {
                Some(s) if !s.is_empty() => s.clone().into_bytes(),
                _ => crate::accounts::secret::token("whsec_").into_bytes(),
            };
            (Gateway::Test(Arc::new(TestGateway::new(secret))), "test")
        }
        other => {
            return Err(
                invalid("gateway", format!("{other:?} is not a gateway; accepted: test, stripe")).into()
            );
        }
    };

    Ok(Backends {
        store,
        lock,
        notifier,
        gateway,
        accounts,
        names: BackendNames {
            store: store_name,
            lock: lock_name,
            notifier: notifier_name,
            gateway: gateway_name,
            accounts: accounts_name,
        },
        postgres,
        sqlite,
        redis,
    })
}

/// Brings the configured durable backends' schemas up to date, and says what it did, a line
/// per step.
pub async fn migrate(config: &Config, mut progress: impl FnMut(String)) -> Result<(), StartError> {
    let b = select(config).await?;
    if let Some(lite) = &b.sqlite {
        progress(format!(
            "SQLite database {}: up to date (store schema {}, server schema {})",
            lite.path.display(),
            parq_sqlite::SCHEMA_VERSION,
            crate::sqlite::SCHEMA_VERSION
        ));
        return Ok(());
    }
    let Some(pg) = &b.postgres else {
        progress(format!("store {}: nothing to migrate", b.names.store));
        return Ok(());
    };
    progress(format!("PostgreSQL schema {}: applying the store's migrations", pg.schema));
    let mut client = pg.pool.get().await.map_err(parq_postgres::db_error)?;
    // What `PgStore::migrate` runs, here with the count of what it did.
    let applied = migrate::run(&mut client, &pg.schema, &migrate::STORE).await?;
    let all = migrate::count(&client, &pg.schema, &migrate::STORE).await?;
    progress(format!("  store: {} applied now, {all} in all", applied.len()));
    progress("PostgreSQL: applying the server's migrations (accounts, idempotency records)".into());
    let done = migrate::run(&mut client, &pg.schema, &postgres::MIGRATIONS).await?;
    for m in &done {
        progress(format!("  server: applied {:04} {}", m.version, m.name));
    }
    if done.is_empty() {
        progress("  server: up to date".into());
    }
    progress("done".into());
    Ok(())
}

/// The workers the backends need, until `stop` turns true: the Redis health checker, the
/// worker that rebuilds the lock from the store whenever Redis is cold, and (with Stripe)
/// the reconciler of payments whose webhook is late.
pub fn spawn_workers(
    b: &Backends,
    engine: &Engine,
    config: &Config,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(r) = &b.redis {
        let checker = r.health.spawn();
        let mut until = stop.clone();
        tasks.push(tokio::spawn(async move {
            let _ = until.wait_for(|s| *s).await;
            checker.abort();
        }));
        tasks.push(tokio::spawn(rebuild_worker(r.clone(), b.store.clone(), stop.clone())));
    }
    if b.gateway.is_stripe() {
        let engine = engine.clone();
        let every = Duration::from_secs(config.reconcile_interval_secs);
        let mut stop = stop;
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                match parq_payments::reconcile(&engine, SignedDuration::from_mins(2)).await {
                    Ok(r) => tracing::debug!(report = ?r, "reconciled payments"),
                    Err(e) => tracing::warn!(error = %e, "reconciling payments failed; the next run retries"),
                }
            }
        }));
    }
    tasks
}

/// Whenever Redis is cold (restarted empty, or back after an outage during which holds went
/// around it), rebuild its claims from the store, which marks it warm; until then the lock
/// routes every hold to the store.
async fn rebuild_worker(r: Redis, store: Arc<DynReservationStore>, mut stop: watch::Receiver<bool>) {
    let mut state = r.health.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = *state.borrow_and_update();
        if now == Health::Cold {
            let result = async {
                let lots = all_lots(&*store).await?;
                r.lock.rebuild_from(&*store, &lots).await.map(|()| lots.len())
            }
            .await;
            match result {
                Ok(n) => tracing::info!(lots = n, "rebuilt the Redis lock from the store; Redis is warm"),
                Err(e) => {
                    tracing::warn!(error = %e, "rebuilding the Redis lock failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
            continue;
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The store's outbox as a notifier, connected on first subscription, so that building the
/// backends does not connect (a replica starts while PostgreSQL is briefly away). Publishing
/// is a no-op: `PgStore` announces its events in the transaction that writes them.
#[derive(Debug)]
struct OutboxListener {
    config: parq_postgres::tokio_postgres::Config,
    channel: String,
    listener: tokio::sync::OnceCell<PgNotifier>,
}

impl OutboxListener {
    fn new(config: parq_postgres::tokio_postgres::Config, channel: String) -> Self {
        Self { config, channel, listener: tokio::sync::OnceCell::new() }
    }
}

#[async_trait::async_trait]
impl parq_core::Notifier for OutboxListener {
    async fn publish(&self, _events: &[parq_core::Event]) -> parq_core::Result<()> {
        Ok(())
    }

    async fn subscribe(&self, lot: Option<parq_core::LotId>) -> parq_core::Result<parq_core::EventStream> {
        let listener = self
            .listener
            .get_or_try_init(|| PgNotifier::connect(self.config.clone(), self.channel.clone()))
            .await?;
        listener.subscribe(lot).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: fn(&mut Config)) -> String {
        let mut c = Config { store_url: "memory:".into(), ..Config::default() };
        f(&mut c);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        match rt.block_on(select(&c)) {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn memory_builds_and_bad_urls_are_refused_without_their_passwords() {
        assert_eq!(with(|_| {}), "ok");
        let e = with(|c| c.store_url = "postgres://parq:secret@db:notaport/parq".into());
        assert!(e.contains("store_url"), "{e}");
        assert!(!e.contains("secret"), "the URL's password is not repeated: {e}");
        let e = with(|c| c.lock_url = "redis://:secret@[bad".into());
        assert!(e.contains("lock_url") && !e.contains("secret"), "{e}");
        assert!(with(|c| c.notifier_url = "postgres".into()).contains("needs the store on PostgreSQL"));
        assert!(with(|c| c.gateway = "stripe".into()).contains("stripe_secret_key"));
        assert!(with(|c| c.stripe_secret_key = Some("sk_test_x".into())).contains("stripe_secret_key"));
        assert!(with(|c| c.store_url = "mysql://x".into()).contains("not a known backend"));
    }

    #[test]
    fn urls_build_lazily_without_connecting() {
        // Nothing listens on port 1: building must not connect.
        let e = with(|c| {
            c.store_url = "postgres://parq:secret@127.0.0.1:1/parq".into();
            c.lock_url = "redis://127.0.0.1:1".into();
            c.notifier_url = "redis://127.0.0.1:1".into();
        });
        assert_eq!(e, "ok");
    }
}
