//! What the sync `Engine` and the asyncio `AsyncEngine` share: how the engine is built from
//! backend URLs, and each operation as a future prepared from Python arguments (so arguments
//! are checked before any work starts, and the work runs without the GIL).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parq_core::memory::{BroadcastNotifier, MemoryLock, MemoryStore, TestGateway};
use parq_core::pass::{Direction, KeyId, KeySeed, PassKeyring, ReentryPolicy, ScanId};
use parq_core::{
    Availability, Cancellation, Checkout, DynAdmissionLock, DynClock, DynNotifier, DynPaymentGateway,
    DynReservationStore, Engine, Error, EventStream, GeoBox, GeoPoint, HoldSpec, Lot, LotId, LotMatch, Money,
    Operator, Quote, Reservation, ReservationId, Result, Spot, SpotChoice, SpotFilter, SpotId, SweepReport,
    SystemClock, UserId,
};
use parq_payments::{StripeConfig, StripeGateway};
use parq_postgres::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use parq_postgres::tokio_postgres::NoTls;
use parq_postgres::{PgNotifier, PgStore};
use parq_redis::{FailoverLock, Health, HealthConfig, RedisHealth, RedisLock};
use pyo3::prelude::*;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex as AsyncMutex;

use crate::convert::{from_typed, invalid, to_pyerr, ts_arg, uuid_arg, window_arg};

/// How an engine is put together, as given to `Engine(...)` / `AsyncEngine(...)`.
pub struct Options {
    pub store: String,
    pub schema: String,
    pub lock: Option<String>,
    pub gateway: String,
    pub webhook_secret: Option<String>,
    pub stripe_secret_key: Option<String>,
    pub stripe_api_base: Option<String>,
    /// Whether intents carry a description (some Stripe emulators refuse it).
    pub stripe_send_description: bool,
    pub pool_size: usize,
    pub clock: Option<Arc<parq_core::ManualClock>>,
    pub signing_keys: Option<Vec<(u32, String)>>,
    pub reentry: bool,
    pub redis_prefix: String,
}

/// The engine and what a binding needs beside it.
#[derive(Debug)]
pub struct Core {
    pub engine: Engine,
    pub test_gateway: Option<Arc<TestGateway>>,
    pub pg: Option<PgStore>,
    pub redis: Option<(RedisHealth, Arc<FailoverLock>)>,
    /// Background tasks (Redis health and lock rebuilds) stop when the engine is dropped.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The process that built it.
    pid: u32,
    /// The re-entry rule of lots put without their own `reentry`.
    reentry: ReentryPolicy,
}

impl Drop for Core {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn pg_pool(url: &str, size: usize) -> Result<(Pool, parq_postgres::tokio_postgres::Config)> {
    let mut config = url
        .parse::<parq_postgres::tokio_postgres::Config>()
        .map_err(|e| Error::invalid("store", format!("is not a usable PostgreSQL URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    let pool = Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .map_err(|e| Error::invalid("pool_size", format!("cannot build the pool: {e}")))?;
    Ok((pool, config))
}

/// The store's outbox as a notifier, listening from the first subscription on: building an
/// engine connects nothing, and events written by other processes reach `watch` too.
/// Publishing is a no-op: `PgStore` announces its events in the transaction that writes them.
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
    async fn publish(&self, _events: &[parq_core::Event]) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self, lot: Option<LotId>) -> Result<EventStream> {
        let listener = self
            .listener
            .get_or_try_init(|| PgNotifier::connect(self.config.clone(), self.channel.clone()))
            .await?;
        listener.subscribe(lot).await
    }
}

const WORLD: GeoBox = GeoBox { min_lat: -90.0, max_lat: 90.0, min_lon: -180.0, max_lon: 180.0 };

/// Rebuilds the Redis lock from the store whenever Redis comes back cold.
async fn rebuild_worker(health: RedisHealth, lock: Arc<FailoverLock>, store: Arc<DynReservationStore>) {
    let mut state = health.subscribe();
    loop {
        let now = *state.borrow_and_update();
        if now == Health::Cold {
            let result = async {
                let lots: Vec<LotId> = store.lots_in(&WORLD).await?.into_iter().map(|l| l.id).collect();
                lock.rebuild_from(&*store, &lots).await
            }
            .await;
            if result.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            continue;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

impl Core {
    /// Builds the engine; nothing connects until it is first needed.
    pub fn build(py: Python<'_>, o: Options) -> PyResult<Core> {
        let store_url = o.store.trim().to_owned();
        let is_pg = store_url.starts_with("postgres://") || store_url.starts_with("postgresql://");
        if !(store_url.starts_with("memory:") || is_pg) {
            return Err(invalid(
                py,
                "store",
                format!("{:?} is not a known store; give memory: or postgres://…", scheme(&store_url)),
            ));
        }
        if o.schema.is_empty()
            || o.schema.len() > 48
            || !o.schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(py, "schema", "must be 1 to 48 letters, digits or underscores"));
        }
        let clock: Arc<DynClock> = match &o.clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let keyring = match &o.signing_keys {
            None => None,
            Some(keys) if keys.is_empty() => {
                return Err(invalid(py, "signing_keys", "must hold at least one (key id, seed) pair"));
            }
            Some(keys) => {
                let mut ring: Option<PassKeyring> = None;
                for (id, seed) in keys {
                    let seed = KeySeed::from_hex(seed.trim()).map_err(|e| to_pyerr(py, e))?;
                    ring = Some(match ring {
                        None => PassKeyring::new(KeyId(*id), seed),
                        Some(mut r) => {
                            r.rotate_to(KeyId(*id), seed).map_err(|e| to_pyerr(py, e))?;
                            r
                        }
                    });
                }
                ring
            }
        };
        let rt = crate::runtime();
        let _guard = rt.enter();
        let mut tasks = Vec::new();
        let (store, pg, pg_config): (Arc<DynReservationStore>, _, _) = if is_pg {
            let (pool, config) = pg_pool(&store_url, o.pool_size).map_err(|e| to_pyerr(py, e))?;
            let s = PgStore::new(pool, o.schema.clone());
            (Arc::new(s.clone()), Some(s), Some(config))
        } else {
            (Arc::new(MemoryStore::new()), None, None)
        };
        let (lock, redis): (Option<Arc<DynAdmissionLock>>, _) = match o.lock.as_deref().map(str::trim) {
            None | Some("") | Some("none") => (None, None),
            Some(u) if u.starts_with("memory:") => (Some(Arc::new(MemoryLock::new(clock.clone()))), None),
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                let manager = parq_redis::RedisManager::new(u)
                    .map_err(|e| invalid(py, "lock", format!("is not a usable Redis URL: {:?}", e.kind())))?;
                let pool = parq_redis::pool::builder(32, Duration::from_secs(2)).build_unchecked(manager);
                let health = RedisHealth::new(pool.clone(), &o.redis_prefix, HealthConfig::default())
                    .map_err(|e| to_pyerr(py, e))?;
                let redis_lock = RedisLock::new(pool, &o.redis_prefix)
                    .map_err(|e| to_pyerr(py, e))?
                    .with_clock(clock.clone());
                let failover = Arc::new(FailoverLock::new(redis_lock, health.clone()));
                tasks.push(health.spawn());
                tasks.push(rt.spawn(rebuild_worker(health.clone(), failover.clone(), store.clone())));
                (Some(failover.clone() as Arc<DynAdmissionLock>), Some((health, failover)))
            }
            Some(u) => {
                return Err(invalid(
                    py,
                    "lock",
                    format!("{:?} is not a known lock; give none, memory: or redis://…", scheme(u)),
                ));
            }
        };
        let notifier: Arc<DynNotifier> = match (&pg, pg_config) {
            (Some(s), Some(config)) => Arc::new(OutboxListener::new(config, s.channel().to_owned())),
            _ => Arc::new(BroadcastNotifier::default()),
        };
        let (gateway, test_gateway): (Arc<DynPaymentGateway>, _) = match o.gateway.trim() {
            "test" => {
                if o.stripe_secret_key.is_some() {
                    return Err(invalid(
                        py,
                        "stripe_secret_key",
                        "is set but gateway is \"test\"; pass gateway=\"stripe\" to use it",
                    ));
                }
                let secret = o
                    .webhook_secret
                    .clone()
                    .unwrap_or_else(|| format!("whsec_{}", uuid::Uuid::new_v4().simple()));
                let g = Arc::new(TestGateway::new(secret.into_bytes()));
                (g.clone(), Some(g))
            }
            "stripe" => {
                let key =
                    o.stripe_secret_key.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
                        invalid(py, "stripe_secret_key", "is required with gateway=\"stripe\"")
                    })?;
                let hook = o.webhook_secret.clone().filter(|k| !k.is_empty()).ok_or_else(|| {
                    invalid(
                        py,
                        "webhook_secret",
                        "is required with gateway=\"stripe\": the endpoint's whsec_… signing secret",
                    )
                })?;
                let mut c = StripeConfig::new(key, hook);
                c.api_base = o.stripe_api_base.clone().filter(|b| !b.is_empty());
                c.send_description = o.stripe_send_description;
                (Arc::new(StripeGateway::new(c).map_err(|e| to_pyerr(py, e))?), None)
            }
            other => {
                return Err(invalid(
                    py,
                    "gateway",
                    format!("{other:?} is not a gateway; give \"test\" or \"stripe\""),
                ));
            }
        };
        let mut b = Engine::builder(store, gateway).notifier(notifier).clock(clock);
        if let Some(l) = lock {
            b = b.lock(l);
        }
        let reentry = if o.reentry { ReentryPolicy::Allowed } else { ReentryPolicy::NotAllowed };
        b = match keyring {
            Some(k) => b.passes(k),
            None => b.passes(PassKeyring::generate(KeyId(1)).map_err(|e| to_pyerr(py, e))?),
        };
        Ok(Core { engine: b.build(), test_gateway, pg, redis, tasks, pid: std::process::id(), reentry })
    }
}

fn scheme(url: &str) -> String {
    match url.split_once(':') {
        Some((s, _)) => format!("{s}:"),
        None => url.to_owned(),
    }
}

/// A reading's id from the text a reader gives (as the server does: the first 16 bytes of its
/// SHA-256), so one reading counts once however often it is delivered.
pub fn scan_id(text: &str) -> ScanId {
    let d = Sha256::digest(text.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    ScanId(out)
}

pub fn direction_arg(py: Python<'_>, d: &Bound<'_, PyAny>) -> PyResult<Direction> {
    let s: String = match d.getattr("value") {
        Ok(v) => v.extract()?,
        Err(_) => d.extract()?,
    };
    match s.as_str() {
        "entry" => Ok(Direction::Entry),
        "exit" => Ok(Direction::Exit),
        _ => Err(invalid(py, "direction", format!("{s:?} is not a direction; give \"entry\" or \"exit\""))),
    }
}

type Fut<T> = std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'static>>;

/// Every operation, prepared: arguments are converted here, the returned future does the work.
impl Core {
    /// Fails in a forked child when the engine holds the parent's connections.
    pub fn check_process(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid != std::process::id() && (self.pg.is_some() || self.redis.is_some()) {
            return Err(to_pyerr(
                py,
                Error::Unavailable {
                    message: format!(
                        "this Engine was created in process {} before a fork; its connections stayed there. \
                         Create the Engine in each worker process (after the fork)",
                        self.pid
                    ),
                    retryable: false,
                    source: None,
                },
            ));
        }
        Ok(())
    }

    /// Scripts the test gateway's next call of `op` to fail: declined with `decline`, or a
    /// timeout when `decline` is `None`.
    pub fn fail_next(&self, py: Python<'_>, op: &str, decline: Option<String>) -> PyResult<()> {
        use parq_core::memory::{Failure, GatewayOp};
        let g = self.test_gateway.as_ref().ok_or_else(|| {
            to_pyerr(py, Error::Forbidden { message: "scripted failures need gateway=\"test\"".into() })
        })?;
        let op = match op {
            "create" => GatewayOp::Create,
            "pay" => GatewayOp::Pay,
            "capture" => GatewayOp::Capture,
            "cancel" => GatewayOp::Cancel,
            "refund" => GatewayOp::Refund,
            "retrieve" => GatewayOp::Retrieve,
            other => {
                return Err(invalid(
                    py,
                    "op",
                    format!(
                        "{other:?} is not a gateway call; give create, pay, capture, cancel, refund or retrieve"
                    ),
                ));
            }
        };
        g.fail_next(op, decline.map_or(Failure::Timeout, Failure::Decline));
        Ok(())
    }

    pub fn migrate(self: &Arc<Self>) -> Fut<()> {
        let c = self.clone();
        Box::pin(async move {
            match &c.pg {
                Some(s) => s.migrate().await,
                None => Ok(()),
            }
        })
    }

    pub fn put_operator(self: &Arc<Self>, op: &Bound<'_, PyAny>) -> PyResult<Fut<()>> {
        let op: Operator = from_typed(op, "Operator", "operator")?;
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.put_operator(&op).await }))
    }

    pub fn put_lot(self: &Arc<Self>, lot: &Bound<'_, PyAny>) -> PyResult<Fut<()>> {
        // A lot that does not say whether re-entry is allowed gets the engine's `reentry`.
        let py = lot.py();
        let wire = crate::convert::types(py)?.call_method1(pyo3::intern!(py, "_encode"), ("Lot", lot))?;
        let mut explicit = true;
        if let Ok(d) = wire.cast::<pyo3::types::PyDict>()
            && d.get_item("reentry")?.is_none_or(|v| v.is_none())
        {
            explicit = false;
            let _ = d.del_item("reentry");
        }
        let mut lot: Lot = pythonize::depythonize(&wire).map_err(|e| invalid(py, "lot", e.to_string()))?;
        if !explicit {
            lot.reentry = self.reentry;
        }
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.put_lot(&lot).await }))
    }

    pub fn put_spot(self: &Arc<Self>, spot: &Bound<'_, PyAny>) -> PyResult<Fut<()>> {
        let spot: Spot = from_typed(spot, "Spot", "spot")?;
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.put_spot(&spot).await }))
    }

    pub fn lot(self: &Arc<Self>, id: &Bound<'_, PyAny>) -> PyResult<Fut<Lot>> {
        let id = LotId(uuid_arg(id, "lot")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.lot(id).await }))
    }

    pub fn spots(self: &Arc<Self>, id: &Bound<'_, PyAny>) -> PyResult<Fut<Vec<Spot>>> {
        let id = LotId(uuid_arg(id, "lot")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.spots(id).await }))
    }

    pub fn quote(
        self: &Arc<Self>,
        lot: &Bound<'_, PyAny>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<Quote>> {
        let lot = LotId(uuid_arg(lot, "lot")?);
        let w = window_arg(start, end)?;
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.quote(lot, w).await }))
    }

    pub fn availability(
        self: &Arc<Self>,
        lot: &Bound<'_, PyAny>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<Availability>> {
        let lot = LotId(uuid_arg(lot, "lot")?);
        let w = window_arg(start, end)?;
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.availability(lot, w).await }))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn search(
        self: &Arc<Self>,
        py: Python<'_>,
        lat: f64,
        lon: f64,
        radius_m: f64,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Fut<Vec<LotMatch>>> {
        let point = GeoPoint::new(lat, lon).map_err(|e| to_pyerr(py, e))?;
        let w = window_arg(start, end)?;
        let filter: SpotFilter = match filter {
            Some(f) if !f.is_none() => from_typed(f, "SpotFilter", "filter")?,
            _ => SpotFilter::default(),
        };
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.search(point, radius_m, w, filter).await }))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn hold(
        self: &Arc<Self>,
        py: Python<'_>,
        user: &Bound<'_, PyAny>,
        lot: &Bound<'_, PyAny>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        spot: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<String>,
    ) -> PyResult<(Arc<Self>, HoldSpec, Option<String>)> {
        let user = UserId(uuid_arg(user, "user")?);
        let lot = LotId(uuid_arg(lot, "lot")?);
        let window = window_arg(start, end)?;
        let spot = spot.filter(|s| !s.is_none());
        let filter = filter.filter(|f| !f.is_none());
        let choice = match (spot, filter) {
            (Some(_), Some(_)) => return Err(invalid(py, "spot", "give either spot or filter, not both")),
            (Some(s), None) => SpotChoice::Spot { spot: SpotId(uuid_arg(s, "spot")?) },
            (None, Some(f)) => SpotChoice::Any { filter: from_typed(f, "SpotFilter", "filter")? },
            (None, None) => SpotChoice::Any { filter: SpotFilter::default() },
        };
        Ok((self.clone(), HoldSpec { user, lot, choice, window }, idempotency_key))
    }

    pub fn get(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        user: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Fut<Reservation>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let user = match user.filter(|u| !u.is_none()) {
            Some(u) => Some(UserId(uuid_arg(u, "user")?)),
            None => None,
        };
        let c = self.clone();
        Ok(Box::pin(async move {
            match user {
                Some(u) => c.engine.get_for(id, u).await,
                None => c.engine.get(id).await,
            }
        }))
    }

    pub fn reservations_of(
        self: &Arc<Self>,
        user: &Bound<'_, PyAny>,
        limit: usize,
    ) -> PyResult<Fut<Vec<Reservation>>> {
        let user = UserId(uuid_arg(user, "user")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.reservations_of(user, limit.min(10_000)).await }))
    }

    pub fn checkout(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        user: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<Checkout>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let user = UserId(uuid_arg(user, "user")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.checkout(id, user).await }))
    }

    pub fn handle_webhook(self: &Arc<Self>, body: Vec<u8>, signature: String) -> Fut<Reservation> {
        let c = self.clone();
        Box::pin(async move { c.engine.handle_webhook(&body, &signature).await })
    }

    /// What the test gateway's provider would send when the driver pays: body and signature.
    pub fn simulate_payment(
        &self,
        py: Python<'_>,
        intent_id: &str,
        capture: bool,
    ) -> PyResult<(Vec<u8>, String)> {
        let g = self.test_gateway.as_ref().ok_or_else(|| {
            to_pyerr(py, Error::Forbidden { message: "simulated payments need gateway=\"test\"".into() })
        })?;
        let ev = g.pay(intent_id, capture).map_err(|e| to_pyerr(py, e))?;
        Ok(g.sign(&ev, self.engine.now()))
    }

    pub fn cancel(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        user: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<Cancellation>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let user = UserId(uuid_arg(user, "user")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.cancel(id, user).await }))
    }

    pub fn extend(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        user: &Bound<'_, PyAny>,
        new_end: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<Reservation>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let user = UserId(uuid_arg(user, "user")?);
        let end = ts_arg(new_end, "new_end")?;
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.extend(id, user, end).await }))
    }

    pub fn refund(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        amount: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<parq_core::Refund>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let amount: Money = from_typed(amount, "Money", "amount")?;
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.refund(id, amount).await }))
    }

    pub fn issue_pass(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        user: &Bound<'_, PyAny>,
    ) -> PyResult<Fut<parq_core::pass::Pass>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let user = UserId(uuid_arg(user, "user")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.issue_pass(id, user).await }))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn scan(
        self: &Arc<Self>,
        py: Python<'_>,
        text: String,
        lot: &Bound<'_, PyAny>,
        direction: &Bound<'_, PyAny>,
        gate: String,
        scan_id_text: Option<String>,
    ) -> PyResult<Fut<parq_core::pass::Decision>> {
        let lot = LotId(uuid_arg(lot, "lot")?);
        let direction = direction_arg(py, direction)?;
        if text.len() > 4096 {
            return Err(invalid(py, "text", "is too long to be a pass"));
        }
        let id = scan_id_text.as_deref().map(scan_id);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.scan(text.trim(), lot, direction, gate.trim(), id).await }))
    }

    pub fn gate_by_id(
        self: &Arc<Self>,
        id: &Bound<'_, PyAny>,
        entry: bool,
        gate: String,
        scan_id: String,
    ) -> PyResult<Fut<Reservation>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let c = self.clone();
        Ok(Box::pin(async move {
            if entry {
                c.engine.check_in(id, &gate, &scan_id).await
            } else {
                c.engine.check_out(id, &gate, &scan_id).await
            }
        }))
    }

    pub fn revocations_since(self: &Arc<Self>, version: u64) -> Fut<parq_core::pass::RevocationDelta> {
        let c = self.clone();
        Box::pin(async move { c.engine.revocations_since(version, 1000).await })
    }

    pub fn sessions(self: &Arc<Self>, id: &Bound<'_, PyAny>) -> PyResult<Fut<Vec<parq_core::GateSession>>> {
        let id = ReservationId(uuid_arg(id, "reservation")?);
        let c = self.clone();
        Ok(Box::pin(async move { c.engine.sessions(id).await }))
    }

    pub fn sweep(self: &Arc<Self>, batch: usize) -> Fut<SweepReport> {
        let c = self.clone();
        Box::pin(async move { c.engine.sweep(batch.clamp(1, 100_000)).await })
    }

    pub fn watch(
        self: &Arc<Self>,
        lot: &Bound<'_, PyAny>,
        after: u64,
    ) -> PyResult<Fut<Arc<AsyncMutex<EventStream>>>> {
        let lot = LotId(uuid_arg(lot, "lot")?);
        let c = self.clone();
        Ok(Box::pin(async move { Ok(Arc::new(AsyncMutex::new(c.engine.watch(lot, after).await?))) }))
    }
}

/// The next event of a stream; `None` when it ended, or `timeout` passed first.
pub async fn next_event(
    stream: Arc<AsyncMutex<EventStream>>,
    timeout: Option<Duration>,
) -> Result<Option<parq_core::Event>> {
    let mut s = stream.lock().await;
    let next = match timeout {
        Some(t) => match tokio::time::timeout(t, s.next()).await {
            Ok(n) => n,
            Err(_) => {
                return Err(Error::Unavailable {
                    message: "no event within the timeout".into(),
                    retryable: true,
                    source: None,
                });
            }
        },
        None => s.next().await,
    };
    next.transpose()
}
