//! Starts a real `parq` server in-process, as parq-server's own tests do: on an ephemeral
//! loopback port, with the demo city, on memory or on PostgreSQL and Redis (a fresh schema and
//! key prefix per test, removed afterwards).
//!
//! PostgreSQL is named by `PARQ_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! and Redis by `PARQ_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). A test that cannot
//! reach them fails naming the variable; it is never skipped.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use parq_client::{Client, LotId, Window};
use parq_postgres::tokio_postgres::{self, NoTls};
use parq_server::demo::DemoInfo;
use parq_server::{Config, Running};

/// Which backends the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Composition {
    /// Everything in the server's memory.
    Memory,
    /// PostgreSQL decides, Redis admits and carries live events.
    PostgresRedis,
}

/// A running server. Fields drop in order: the server before its schema.
pub struct TestServer {
    pub running: Running,
    pub base: String,
    _backing: Option<Backing>,
}

/// Runs `$scenario(server)` once per composition, as `$scenario::memory` and
/// `$scenario::postgres_and_redis`.
#[macro_export]
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario($crate::common::start($crate::common::Composition::Memory).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_and_redis() {
                super::$scenario($crate::common::start($crate::common::Composition::PostgresRedis).await).await;
            }
        }
    )*};
}

fn config() -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        // The throwaway store: the server's default keeps its data in a file of the home dir.
        store_url: "memory:".into(),
        rate_ip: 100_000,
        rate_user: 100_000,
        rate_key: 100_000,
        ..Config::default()
    }
}

pub async fn start(composition: Composition) -> TestServer {
    let (config, backing) = match composition {
        Composition::Memory => (config(), None),
        Composition::PostgresRedis => {
            let b = Backing::new().await;
            let config = b.config();
            parq_server::backends::migrate(&config, |_| {}).await.expect("the migrations apply");
            (config, Some(b))
        }
    };
    let running = parq_server::start(config).await.expect("the server starts");
    let base = running.url();
    if composition == Composition::PostgresRedis {
        until_warm(&base).await;
    }
    TestServer { running, base, _backing: backing }
}

impl TestServer {
    pub fn demo(&self) -> &DemoInfo {
        self.running.app.demo().expect("the demo is loaded")
    }

    pub fn lot(&self, name: &str) -> LotId {
        self.demo().lot(name).unwrap_or_else(|| panic!("no demo lot {name}"))
    }

    /// A client of this server, with short backoffs for tests.
    pub fn client(&self) -> Client {
        client_of(&self.base)
    }

    /// A client whose driver is registered and logged in.
    pub async fn driver(&self, name: &str) -> Client {
        let c = self.client();
        let email = format!("{name}@client.parq.test");
        c.register(&email, PASSWORD).await.expect("register");
        c.login(&email, PASSWORD, None).await.expect("login");
        c
    }

    pub async fn shutdown(self) {
        let TestServer { running, _backing, .. } = self;
        running.shutdown().await;
        drop(_backing);
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub fn client_of(base: &str) -> Client {
    Client::builder(base)
        .timeout(Duration::from_secs(20))
        .retry(parq_client::RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(3),
        })
        .build()
        .expect("a client")
}

/// A window of `hours` starting at the current quarter hour plus `offset_hours`.
pub fn window(offset_hours: i64, hours: i64) -> Window {
    let now = Timestamp::now().as_second();
    let start =
        Timestamp::from_second(now - now.rem_euclid(900)).unwrap() + SignedDuration::from_hours(offset_hours);
    Window::new(start, start + SignedDuration::from_hours(hours)).unwrap()
}

pub fn pg_url() -> String {
    std::env::var("PARQ_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("PARQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A PostgreSQL schema and a Redis key prefix of this test's own, removed when dropped.
pub struct Backing {
    schema: String,
    prefix: String,
    pg: String,
    redis: String,
}

impl Backing {
    /// Checks that PostgreSQL and Redis answer, failing with the variable to set if not.
    async fn new() -> Backing {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let b = Backing {
            schema: format!("parq_c_{id}"),
            prefix: format!("c{id}"),
            pg: pg_url(),
            redis: redis_url(),
        };
        match tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&b.pg, NoTls)).await {
            Ok(Ok((_, conn))) => drop(conn),
            Ok(Err(e)) => panic!("PostgreSQL is unreachable at PARQ_TEST_PG_URL ({}): {e}", b.pg),
            Err(_) => panic!("PostgreSQL does not answer at PARQ_TEST_PG_URL ({})", b.pg),
        }
        let redis = b.redis.clone();
        let pong = tokio::task::spawn_blocking(move || -> Result<String, String> {
            let client = parq_redis::redis::Client::open(redis.as_str()).map_err(|e| e.to_string())?;
            let mut c =
                client.get_connection_with_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
            parq_redis::redis::cmd("PING").query::<String>(&mut c).map_err(|e| e.to_string())
        })
        .await
        .unwrap();
        if let Err(e) = pong {
            panic!("Redis is unreachable at PARQ_TEST_REDIS_URL ({}): {e}", b.redis);
        }
        b
    }

    fn config(&self) -> Config {
        Config {
            store_url: self.pg.clone(),
            store_schema: self.schema.clone(),
            lock_url: self.redis.clone(),
            notifier_url: self.redis.clone(),
            redis_prefix: self.prefix.clone(),
            demo: Some(true),
            pg_pool_size: 4,
            pass_keys: Some(parq_server::passkeys::Keyring::generate().unwrap().to_document()),
            ..config()
        }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        let (pg, schema, redis, prefix) =
            (self.pg.clone(), self.schema.clone(), self.redis.clone(), self.prefix.clone());
        // Drop runs inside the test's runtime: clean up from a thread of its own.
        let cleaner = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(&pg, NoTls).await {
                    tokio::spawn(conn);
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
                }
            });
            if let Ok(client) = parq_redis::redis::Client::open(redis.as_str())
                && let Ok(mut c) = client.get_connection()
            {
                let pattern = format!("parq:{{{prefix}*");
                let keys: Vec<String> =
                    parq_redis::redis::cmd("KEYS").arg(&pattern).query(&mut c).unwrap_or_default();
                for chunk in keys.chunks(500) {
                    let _: Result<i64, _> = parq_redis::redis::cmd("DEL").arg(chunk).query(&mut c);
                }
            }
        });
        let _ = cleaner.join();
    }
}

/// Waits until the server reports Redis warm (the lock rebuilt and trusted).
async fn until_warm(base: &str) {
    let http = reqwest::Client::new();
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            if v["backends"]["lock"]["health"] == "warm" {
                return;
            }
            last = v.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("Redis never became warm at {base}: {last}");
}

/// Waits for the next live item, failing after a while.
pub async fn next_live(live: &mut parq_client::LiveUpdates) -> parq_client::LiveEvent {
    match tokio::time::timeout(Duration::from_secs(15), live.recv()).await {
        Ok(Some(Ok(e))) => e,
        Ok(Some(Err(e))) => panic!("a live error: {e:?}"),
        Ok(None) => panic!("the live stream ended"),
        Err(_) => panic!("no live event within 15 s"),
    }
}

/// Asserts that nothing more arrives for a moment.
pub async fn quiet(live: &mut parq_client::LiveUpdates) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), live.recv()).await {
        panic!("expected nothing more, got {item:?}");
    }
}
