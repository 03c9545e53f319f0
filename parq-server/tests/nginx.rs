//! NGINX in front of two `parq serve` replicas that share the PostgreSQL of `PARQ_TEST_PG_URL`
//! (a fresh schema) and the Redis of `PARQ_TEST_REDIS_URL` (a fresh prefix), as a deployment
//! runs them: Socket.IO through the proxy (a WebSocket upgrade, live events from either
//! replica), rate limits per real client address (the replicas trust NGINX's
//! `X-Forwarded-For`) and per driver, shared by both replicas, and a replica killed with
//! SIGKILL while holds go through NGINX without losing an acknowledged hold.
//!
//! Needs Debian's `nginx` (`apt-get install nginx`; `scripts/test` installs it); fails
//! without it. Clients take source addresses 127.0.0.2 and up: the loopback network answers
//! on all of 127/8.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::production::{self, Backing};
use parq_client::LiveEvent;
use reqwest::StatusCode;
use serde_json::{Value, json};

const OPERATOR_KEY: &str = "pqk_nginx_operator_key_0123456789abcdef";
const GATE_KEY: &str = "pqk_nginx_gate_key_0123456789abcdef0123";
/// The replicas' limits: requests per second per address and per driver; a bucket holds
/// `BURST_SECS` seconds of them.
const RATE_IP: u32 = 6;
const RATE_USER: u32 = 2;
/// Requests per second per API key.
const RATE_KEY: u32 = 2;
const BURST_SECS: u32 = 5;

fn nginx_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("nginx is not installed: apt-get install nginx (scripts/test does)"))
}

/// An NGINX of this test's own: its own port, configuration, pid file, logs and temporary
/// directories in a temporary directory; in the foreground, one process, killed on drop.
struct Nginx {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstreams: &[&str]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path().display();
        let servers: String = upstreams
            .iter()
            .map(|u| {
                format!("    server {} max_fails=1 fail_timeout=30s;\n", u.trim_start_matches("http://"))
            })
            .collect();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format parq '$remote_addr "$request" $status upgrade=$http_upgrade upstream=$upstream_addr';
  access_log {d}/access.log parq;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  map $http_upgrade $connection_upgrade {{
    default upgrade;
    '' close;
  }}
  upstream parq {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://parq;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Forwarded "";
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 300s;
      add_header X-Upstream $upstream_addr always;
    }}
  }}
}}
"#
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx runs");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Nginx { child, url: format!("http://127.0.0.1:{port}"), dir };
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        panic!("nginx did not listen on {port}");
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client whose connections leave from `source` (127.0.0.2 and up: the client's real
/// address as NGINX sees it).
fn client_from(source: &str) -> reqwest::Client {
    let ip: IpAddr = source.parse().unwrap();
    reqwest::Client::builder().local_address(ip).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Registers and logs a driver in through `base`; the session token.
async fn driver(http: &reqwest::Client, base: &str, email: &str) -> String {
    let creds = json!({ "email": email, "password": "a long enough password" });
    for path in ["register", "login"] {
        let r = http
            .post(format!("{base}/api/v1/auth/{path}"))
            .header("idempotency-key", common::key())
            .json(&creds)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        if path == "login" {
            return v["token"].as_str().unwrap().to_owned();
        }
    }
    unreachable!()
}

/// `n` requests in a row from `http` to `base/healthz`: per upstream, how many were allowed
/// and refused, and how long it took.
async fn burst(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    token: Option<&str>,
    xff: Option<&str>,
) -> (BTreeMap<String, (u32, u32)>, Vec<String>, Duration) {
    let started = Instant::now();
    let mut by_upstream: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut details = Vec::new();
    for _ in 0..n {
        let mut req = http.get(format!("{base}/healthz"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(x) = xff {
            req = req.header("x-forwarded-for", x);
        }
        let r = req.send().await.unwrap();
        let upstream = r.headers().get("x-upstream").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let e = by_upstream.entry(upstream).or_default();
        match r.status() {
            StatusCode::OK => e.0 += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                e.1 += 1;
                let p: Value = r.json().await.unwrap();
                details.push(p["detail"].as_str().unwrap_or_default().to_owned());
            }
            other => panic!("{other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    (by_upstream, details, started.elapsed())
}

fn allowed(by: &BTreeMap<String, (u32, u32)>) -> u32 {
    by.values().map(|(a, _)| a).sum()
}

/// At least a full bucket of `rate`, and no more than the bucket and what refilled meanwhile.
fn assert_within(by: &BTreeMap<String, (u32, u32)>, elapsed: Duration, rate: u32, what: &str) {
    let (bucket, refill) = (rate * BURST_SECS, (elapsed.as_secs_f64() * f64::from(rate)).ceil() as u32);
    let n = allowed(by);
    assert!(n >= bucket && n <= bucket + refill + 1, "{what}: {n} allowed in {elapsed:?} ({by:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_nginx() {
    let b = Backing::new().await;
    let mut env: Vec<(String, String)> =
        b.env().into_iter().filter(|(k, _)| !k.starts_with("PARQ_RATE_")).collect();
    for (k, v) in [
        ("PARQ_RATE_IP", RATE_IP.to_string()),
        ("PARQ_RATE_USER", RATE_USER.to_string()),
        ("PARQ_RATE_KEY", RATE_KEY.to_string()),
        ("PARQ_RATE_BURST", BURST_SECS.to_string()),
        // NGINX connects from 127.0.0.1.
        ("PARQ_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ] {
        env.push((k.into(), v));
    }
    production::migrate(&env);
    let mut env_a = env.clone();
    env_a.push(("PARQ_DEMO".into(), "true".into()));
    env_a.push(("PARQ_OPERATOR_KEY".into(), OPERATOR_KEY.into()));
    env_a.push(("PARQ_GATE_KEY".into(), GATE_KEY.into()));
    let a = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_a);
    let mut env_b = env.clone();
    env_b.push(("PARQ_DEMO".into(), "false".into()));
    let mut replica_b = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_b);
    let plain = reqwest::Client::new();
    for u in [&a.url, &replica_b.url] {
        let ready = production::until_warm(&plain, u).await;
        assert_eq!(ready["backends"]["limits"]["adapter"], "redis", "{ready}");
        assert_eq!(ready["backends"]["limits"]["up"], true, "{ready}");
    }
    let nginx = Nginx::start(&[&a.url, &replica_b.url]);
    let base = nginx.url.clone();
    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia");

    // --- Socket.IO through the proxy: a WebSocket, and events from holds on either replica.
    let watcher = parq_client::Client::new(&base).unwrap();
    let mut live = watcher.live().lot(lot).start().await.expect("the socket connects through nginx");
    let http = client_from("127.0.0.2");
    let token = driver(&http, &base, "watcher-driver@example.cy").await;
    let mut held = HashSet::new();
    let mut upstreams = HashSet::new();
    for i in 0..4 {
        let (start, end) = common::window(24 + 2 * i, 1);
        let r = http
            .post(format!("{base}/api/v1/holds"))
            .bearer_auth(&token)
            .header("idempotency-key", common::key())
            .json(&json!({ "lot_id": lot, "start": start, "end": end }))
            .send()
            .await
            .unwrap();
        upstreams.insert(r.headers()["x-upstream"].to_str().unwrap().to_owned());
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        held.insert(v["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(upstreams.len(), 2, "the holds went through both replicas: {upstreams:?}");
    let mut heard = HashSet::new();
    while heard.len() < held.len() {
        match tokio::time::timeout(Duration::from_secs(20), live.recv()).await {
            Ok(Some(Ok(LiveEvent::Lot(e)))) => {
                heard.insert(e.reservation.to_string());
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no live event through nginx ({heard:?} of {held:?}): {other:?}"),
        }
    }
    assert_eq!(heard, held, "every hold's event arrived over the socket");
    live.stop();
    drop((live, watcher));

    // --- Limits per real client address, shared by both replicas.
    let c2 = client_from("127.0.0.3");
    let started = Instant::now();
    let (by, details, elapsed) = burst(&c2, &base, 60, None, None).await;
    println!("one address, 60 requests in {elapsed:?}: allowed and refused by replica {by:?}");
    assert_within(&by, elapsed, RATE_IP, "one address through nginx to two replicas");
    assert!(details.iter().all(|d| d.contains("this address")), "{details:?}");
    assert_eq!(by.len(), 2, "both replicas answered: {by:?}");
    for (upstream, (ok, refused)) in &by {
        assert!(*ok > 0 && *refused > 0, "{upstream} let some through and refused some: {by:?}");
    }
    // A client naming another address is still itself (nginx appends the address it saw): its
    // requests take from its own, empty, bucket, not from a fresh one.
    let (forged, _, _) = burst(&c2, &base, 10, None, Some("127.0.0.99")).await;
    let refill = (started.elapsed().as_secs_f64() * f64::from(RATE_IP)).ceil() as u32;
    assert!(
        allowed(&by) + allowed(&forged) <= RATE_IP * BURST_SECS + refill + 1,
        "a forged X-Forwarded-For is not a way out: {forged:?}"
    );
    // Another address behind the same proxy has its own bucket.
    let c3 = client_from("127.0.0.4");
    let (by, _, _) = burst(&c3, &base, 2, None, None).await;
    assert_eq!(allowed(&by), 2, "another address: {by:?}");

    // --- Per driver: two drivers behind one address each have their own limit.
    let c5 = client_from("127.0.0.5");
    let first = driver(&c5, &base, "first@example.cy").await;
    let second = driver(&c5, &base, "second@example.cy").await;
    let (by, details, elapsed) = burst(&c5, &base, 20, Some(&first), None).await;
    assert_within(&by, elapsed, RATE_USER, "one driver through nginx to two replicas");
    assert!(details.iter().all(|d| d.contains("this account")), "{details:?}");
    let (by, _, _) = burst(&c5, &base, 1, Some(&second), None).await;
    assert_eq!(allowed(&by), 1, "the other driver is not limited: {by:?}");

    // --- Per API key: one key's requests through nginx to both replicas share one bucket
    // (fewer than the address's bucket, so the key's limit is the one that bites), and another
    // key from the same address is not limited by it.
    let c6 = client_from("127.0.0.6");
    let (by, details, elapsed) = burst(&c6, &base, 24, Some(OPERATOR_KEY), None).await;
    assert_within(&by, elapsed, RATE_KEY, "one API key through nginx to two replicas");
    assert!(details.iter().all(|d| d.contains("this account")), "{details:?}");
    assert_eq!(by.len(), 2, "both replicas answered: {by:?}");
    let (by, _, _) = burst(&c6, &base, 1, Some(GATE_KEY), None).await;
    assert_eq!(allowed(&by), 1, "another key is not limited: {by:?}");

    // --- A replica killed mid-run: every acknowledged hold is in PostgreSQL.
    const DRIVERS: usize = 8;
    let mut drivers = Vec::new();
    for i in 0..DRIVERS {
        let http = client_from(&format!("127.0.1.{}", i + 1));
        let token = driver(&http, &base, &format!("kill{i}@example.cy")).await;
        drivers.push((http, token));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (http, token)) in drivers.into_iter().enumerate() {
        let (base, stop) = (base.clone(), stop.clone());
        tasks.spawn(async move {
            let mut acked = Vec::new();
            let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                // Windows that often collide across drivers: some holds lose with 409.
                let (start, end) = common::window(48 + (n * 7 + i as i64 * 3) % 40, 2);
                n += 1;
                let r = http
                    .post(format!("{base}/api/v1/holds"))
                    .bearer_auth(&token)
                    .header("idempotency-key", common::key())
                    .json(&json!({ "lot_id": lot, "start": start, "end": end }))
                    .send()
                    .await;
                let Ok(r) = r else { continue };
                let status = r.status();
                let upstream = r.headers().get("x-upstream").and_then(|v| v.to_str().ok()).map(str::to_owned);
                *statuses.entry(status.as_u16()).or_default() += 1;
                if status == StatusCode::CREATED {
                    let v: Value = r.json().await.unwrap();
                    acked.push((
                        v["id"].as_str().unwrap().to_owned(),
                        upstream.unwrap_or_default(),
                        Instant::now(),
                    ));
                } else if status == StatusCode::TOO_MANY_REQUESTS {
                    let wait: u64 = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_millis(250).min(Duration::from_secs(wait))).await;
                }
            }
            (acked, statuses)
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = Instant::now();
    replica_b.child.kill().expect("SIGKILL");
    let _ = replica_b.child.wait();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let results = tasks.join_all().await;
    let mut acked: Vec<(String, String, Instant)> = Vec::new();
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for (a, s) in results {
        acked.extend(a);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    for s in statuses.keys() {
        assert!([201, 409, 429, 502, 503].contains(s), "unexpected answers: {statuses:?}");
    }
    let b_addr = replica_b.url.trim_start_matches("http://").to_owned();
    assert!(
        acked.iter().any(|(_, u, t)| u == &b_addr && *t < killed_at),
        "the killed replica acknowledged holds before: {statuses:?}"
    );
    assert!(
        acked.iter().any(|(_, _, t)| *t > killed_at),
        "holds were acknowledged after the kill: {statuses:?}"
    );

    let after = acked.iter().filter(|(_, _, t)| *t > killed_at).count();
    println!(
        "holds through nginx: {} acknowledged ({after} after the kill); answers {statuses:?}",
        acked.len()
    );

    // PostgreSQL's own tables: every acknowledged hold is there, and no two live
    // reservations of one spot overlap.
    let sql = b.sql().await;
    let ids: Vec<String> = acked.iter().map(|(id, _, _)| id.clone()).collect();
    let found: i64 = sql
        .query_one(
            &format!("SELECT count(*) FROM {}.reservations WHERE id::text = ANY($1)", b.schema),
            &[&ids],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found as usize, ids.len(), "every 201 is in the store ({statuses:?})");
    let overlaps: i64 = sql
        .query_one(
            &format!(
                "SELECT count(*) FROM {s}.reservations x JOIN {s}.reservations y \
                 ON x.spot_id = y.spot_id AND x.id < y.id AND x.during && y.during \
                 WHERE x.state IN ('held', 'pending_payment', 'confirmed', 'checked_in') \
                   AND y.state IN ('held', 'pending_payment', 'confirmed', 'checked_in')",
                s = b.schema
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(overlaps, 0, "no overlapping live reservations");

    // NGINX logs a WebSocket when it closes: the socket of the first part went through it.
    let upgraded = |log: &str| {
        log.lines()
            .any(|l| l.contains("/socket.io/") && l.contains(" 101 ") && l.contains("upgrade=websocket"))
    };
    let mut log = nginx.access_log();
    for _ in 0..50 {
        if upgraded(&log) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        log = nginx.access_log();
    }
    assert!(upgraded(&log), "a WebSocket upgrade went through nginx:\n{log}");
    drop((nginx, a, replica_b));
}
