//! The production composition for tests: a fresh PostgreSQL schema `parq_t_<uuid>` and a
//! random Redis key prefix per test, both removed when the test ends, and `parq` processes.
//!
//! The services are named by `PARQ_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `PARQ_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). A test that cannot reach them fails; it is never skipped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use parq_postgres::tokio_postgres::{self, NoTls};
use parq_server::Config;

pub const PARQ: &str = env!("CARGO_BIN_EXE_parq");

pub fn pg_url() -> String {
    std::env::var("PARQ_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("PARQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A schema and a key prefix of this test's own, and a pass keyring its replicas share.
pub struct Backing {
    pub schema: String,
    pub prefix: String,
    pub pg: String,
    pub redis: String,
    /// The pass keyring document (`pass_keys`) every replica of the test is given.
    pub keys: String,
}

impl Backing {
    /// Checks that PostgreSQL and Redis answer (panicking with the variable to set if not).
    pub async fn new() -> Backing {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let b = Backing {
            schema: format!("parq_t_{id}"),
            prefix: format!("t{id}"),
            pg: pg_url(),
            redis: redis_url(),
            keys: parq_server::passkeys::Keyring::generate().unwrap().to_document(),
        };
        let connected =
            tokio::time::timeout(Duration::from_secs(5), tokio_postgres::connect(&b.pg, NoTls)).await;
        match connected {
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

    /// The in-process test configuration on this schema and prefix, with the demo city.
    pub fn config(&self) -> Config {
        Config {
            store_url: self.pg.clone(),
            store_schema: self.schema.clone(),
            lock_url: self.redis.clone(),
            notifier_url: self.redis.clone(),
            redis_prefix: self.prefix.clone(),
            demo: Some(true),
            pass_keys: Some(self.keys.clone()),
            ..super::config()
        }
    }

    /// The same, as `PARQ_*` variables for a `parq` process.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("PARQ_STORE_URL", self.pg.as_str()),
            ("PARQ_STORE_SCHEMA", &self.schema),
            ("PARQ_LOCK_URL", &self.redis),
            ("PARQ_NOTIFIER_URL", &self.redis),
            ("PARQ_REDIS_PREFIX", &self.prefix),
            ("PARQ_PASS_KEYS", &self.keys),
            ("PARQ_RATE_IP", "100000"),
            ("PARQ_RATE_USER", "100000"),
            ("PARQ_RATE_KEY", "100000"),
            ("PARQ_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Applies the migrations, as `parq migrate` does.
    pub async fn migrate(&self, config: &Config) {
        parq_server::backends::migrate(config, |_| {}).await.expect("the migrations apply");
    }

    /// A plain connection, to check the store's own data with SQL.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.pg, NoTls).await.expect("PostgreSQL answers");
        tokio::spawn(conn);
        client
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

/// A `parq` process, killed when dropped.
pub struct Process {
    pub child: Child,
    pub url: String,
    pub lines: mpsc::Receiver<String>,
    /// What it printed before it said where it listens: its banner lines as they are, its log
    /// lines (standard output) prefixed with `log: `.
    pub before: Vec<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `parq <args>` with `env` and waits until it prints where it listens.
pub fn spawn(args: &[&str], env: &[(String, String)]) -> Process {
    let mut child = Command::new(PARQ)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("parq starts");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    // Standard output carries the JSON log lines; standard error the banner people read
    // (and any refusal), which is where "listening on" must come.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(format!("log: {line}"));
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(line);
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("listening on ") {
                    break url.to_owned();
                }
                seen.push(line);
            }
            Err(_) => panic!("parq {args:?} did not say where it listens; it printed: {seen:#?}"),
        }
    };
    Process { child, url, lines, before: seen }
}

/// Runs `parq migrate` with `env` and returns what it printed.
pub fn migrate(env: &[(String, String)]) -> String {
    let out = Command::new(PARQ)
        .arg("migrate")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("parq migrate runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "parq migrate failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Waits until the server at `url` reports Redis warm (the lock is rebuilt and trusted).
pub async fn until_warm(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            if v["backends"]["lock"]["health"] == "warm" {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Redis never became warm at {url}: {last}");
}
