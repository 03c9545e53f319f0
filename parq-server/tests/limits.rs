//! Rate limits per client address, per user and per API key: in each replica's memory, and
//! shared by replicas through Redis (falling back to memory while Redis is away, and back to
//! Redis when it returns). The client's address comes from `X-Forwarded-For` only when the
//! peer is a trusted proxy.
//!
//! Needs the Redis of `PARQ_TEST_REDIS_URL` (and the PostgreSQL of `PARQ_TEST_PG_URL`, which
//! the shared helpers check) and `redis-server` to start one of its own; fails without them.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::production::Backing;
use parq_server::Config;
use reqwest::StatusCode;
use serde_json::Value;

/// The tests' requests come from 127.0.0.1: a proxy they trust, so `X-Forwarded-For` names
/// the client.
const PROXY: &str = "127.0.0.1";
/// Requests per second per address, user and key; a bucket holds `BURST_SECS` of them.
const RATE_IP: u32 = 10;
const RATE_USER: u32 = 3;
const RATE_KEY: u32 = 5;
const BURST_SECS: u32 = 2;

fn config(limits_url: &str, prefix: &str) -> Config {
    Config {
        rate_ip: RATE_IP,
        rate_user: RATE_USER,
        rate_key: RATE_KEY,
        rate_burst: BURST_SECS,
        trusted_proxies: PROXY.into(),
        limits_url: limits_url.into(),
        redis_prefix: prefix.into(),
        ..common::config()
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Key(&'a str),
}

/// One request as the client at `client` (through the trusted proxy), with `auth`.
async fn hit(s: &Server, client: &str, auth: Auth<'_>) -> reqwest::Response {
    let mut req = s.http.get(s.url("/healthz"));
    if !client.is_empty() {
        req = req.header("x-forwarded-for", client);
    }
    req = match auth {
        Auth::None => req,
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Key(k) => req.header("x-api-key", k),
    };
    req.send().await.expect("the request is answered")
}

/// What `n` requests in a row got: how many were let through, what the refusals said, and
/// how long the run took.
struct Run {
    allowed: u32,
    refusals: Vec<String>,
    elapsed: Duration,
}

async fn run(servers: &[&Server], n: usize, client: &str, auth: Auth<'_>) -> Run {
    let started = Instant::now();
    let mut out = Run { allowed: 0, refusals: Vec::new(), elapsed: Duration::ZERO };
    for i in 0..n {
        let r = hit(servers[i % servers.len()], client, auth).await;
        match r.status() {
            StatusCode::OK => out.allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                let p: Value = r.json().await.unwrap();
                assert_eq!(p["code"], "rate_limited", "{p}");
                out.refusals.push(p["detail"].as_str().unwrap().to_owned());
            }
            other => panic!("{other}: {}", r.text().await.unwrap_or_default()),
        }
    }
    out.elapsed = started.elapsed();
    out
}

/// Asserts that `r` let through a full bucket of `rate`, and no more than the bucket and what
/// refilled while it ran.
fn within(r: &Run, rate: u32, what: &str) {
    let burst = rate * BURST_SECS;
    let refill = (r.elapsed.as_secs_f64() * f64::from(rate)).ceil() as u32;
    assert!(
        r.allowed >= burst && r.allowed <= burst + refill + 1,
        "{what}: {} allowed in {:?}, the limit is {burst} and {rate}/s",
        r.allowed,
        r.elapsed
    );
    assert!(!r.refusals.is_empty(), "{what}: nothing was refused");
}

/// Each limit, against one replica or alternating between replicas (which then share it).
async fn each_limit(servers: &[&Server]) {
    let s = servers[0];
    // Per address: the client's own, not the proxy's.
    let r = run(servers, 40, "203.0.113.1", Auth::None).await;
    within(&r, RATE_IP, "one address");
    assert!(r.refusals.iter().all(|d| d.contains("this address")), "{:?}", r.refusals);
    assert_eq!(
        hit(s, "203.0.113.2", Auth::None).await.status(),
        StatusCode::OK,
        "another address has its own"
    );
    // The client cannot step out of its bucket by naming another address to the proxy: the
    // proxy appends the address it saw, and that is read.
    let forged = hit(s, "198.51.100.9, 203.0.113.1", Auth::None).await;
    assert_eq!(forged.status(), StatusCode::TOO_MANY_REQUESTS);

    // Per user: two drivers behind one address have a limit each.
    let a = s.driver(&format!("a{}@example.cy", common::key())).await;
    let b = s.driver(&format!("b{}@example.cy", common::key())).await;
    let r = run(servers, 16, "203.0.113.10", Auth::Bearer(&a)).await;
    within(&r, RATE_USER, "one driver");
    assert!(r.refusals.iter().all(|d| d.contains("this account")), "{:?}", r.refusals);
    assert_eq!(hit(s, "203.0.113.10", Auth::Bearer(&b)).await.status(), StatusCode::OK, "another driver");

    // Per API key: the operator's key is limited, the gate's is not.
    let demo = s.demo();
    let r = run(servers, 15, "203.0.113.20", Auth::Key(&demo.operator_key)).await;
    within(&r, RATE_KEY, "one API key");
    assert!(r.refusals.iter().all(|d| d.contains("this account")), "{:?}", r.refusals);
    let gate = hit(s, "203.0.113.20", Auth::Key(&demo.gate_key)).await;
    assert_eq!(gate.status(), StatusCode::OK, "another key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_in_one_replicas_memory() {
    let s = common::start_with(config("none", "unused")).await;
    let ready = common::expect(s.get("/readyz", None).await, StatusCode::OK).await;
    assert!(ready["backends"].get("limits").is_none(), "per replica, nothing to report: {ready}");
    each_limit(&[&s]).await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_limit_on_redis_shared_by_two_replicas() {
    let b = Backing::new().await;
    let one = common::start_with(config(&b.redis, &b.prefix)).await;
    let two = common::start_with(Config { demo: Some(false), ..config(&b.redis, &b.prefix) }).await;
    for s in [&one, &two] {
        let ready = common::expect(s.get("/readyz", None).await, StatusCode::OK).await;
        assert_eq!(ready["backends"]["limits"]["adapter"], "redis", "{ready}");
        assert_eq!(ready["backends"]["limits"]["up"], true, "{ready}");
        assert_eq!(ready["backends"]["limits"]["fallback"], false, "{ready}");
    }
    // The accounts are in each replica's memory: the drivers and keys are the first one's, so
    // the user and key limits run on it alone; the address limit alternates.
    let r = run(&[&one, &two], 40, "203.0.113.30", Auth::None).await;
    within(&r, RATE_IP, "one address on two replicas");
    each_limit(&[&one]).await;
    // The buckets are in Redis, under the prefix.
    let mut conn = redis_conn(&b.redis);
    let ttl: i64 = parq_redis::redis::cmd("PTTL")
        .arg(format!("parq:{{{}:rl:ip:203.0.113.30}}", b.prefix))
        .query(&mut conn)
        .unwrap();
    assert!(
        ttl > 0 && ttl <= i64::from(BURST_SECS) * 1000 + 1000,
        "the bucket's key expires when full: {ttl}"
    );
    one.running.shutdown().await;
    two.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_without_shared_limits_each_let_a_full_bucket_through() {
    // What the shared limits prevent: per replica, one client gets a bucket on each.
    let one = common::start_with(config("none", "unused")).await;
    let two = common::start_with(Config { demo: Some(false), ..config("none", "unused") }).await;
    let r = run(&[&one, &two], 40, "203.0.113.31", Auth::None).await;
    assert!(r.allowed >= 2 * RATE_IP * BURST_SECS, "{} allowed", r.allowed);
    one.running.shutdown().await;
    two.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_name_its_address() {
    let s = common::start_with(Config { trusted_proxies: "10.0.0.0/8".into(), ..config("none", "x") }).await;
    // Every request names another address; the peer (127.0.0.1) is not a trusted proxy, so
    // they all share its bucket.
    let started = Instant::now();
    let mut allowed = 0;
    for i in 0..40 {
        if hit(&s, &format!("198.51.100.{i}"), Auth::None).await.status() == StatusCode::OK {
            allowed += 1;
        }
    }
    let refill = (started.elapsed().as_secs_f64() * f64::from(RATE_IP)).ceil() as u32;
    assert!(allowed <= RATE_IP * BURST_SECS + refill + 1, "{allowed} allowed");
    // Malformed forwarding headers are neither errors nor a way out of the bucket.
    for bad in ["", ",,,", "garbage", "for=unknown", "[::1", "1.2.3.4:99999", "\u{7f}"] {
        let mut req = s.http.get(s.url("/healthz")).header("forwarded", "for=\"[zz]\"");
        if let Ok(v) = reqwest::header::HeaderValue::from_str(bad) {
            req = req.header("x-forwarded-for", v);
        }
        let r = req.send().await.unwrap();
        assert!(
            matches!(r.status(), StatusCode::OK | StatusCode::TOO_MANY_REQUESTS),
            "{bad:?}: {}",
            r.status()
        );
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forwarding_headers_from_a_trusted_proxy_are_never_errors() {
    let s = common::start_with(Config { rate_ip: 10_000, ..config("none", "x") }).await;
    for (name, value) in [
        ("x-forwarded-for", "garbage"),
        ("x-forwarded-for", ", , ,"),
        ("x-forwarded-for", "1.2.3.4:99999, [::1"),
        ("forwarded", "for"),
        ("forwarded", "for=\"unterminated"),
        ("forwarded", "for=_hidden;by=unknown"),
        ("forwarded", "for=1.2.3.4;for=5.6.7.8"),
        ("forwarded", &"for=1.1.1.1,".repeat(2000)),
    ] {
        let r = s.http.get(s.url("/healthz")).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}: {value:.40}");
    }
    s.running.shutdown().await;
}

/// A `redis-server` of this test's own on `port` (a spare one when 0), killed on drop.
struct OwnRedis {
    child: std::process::Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        } else {
            port
        };
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian: apt-get install redis-server)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return OwnRedis { child, port };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_conn(url: &str) -> parq_redis::redis::Connection {
    parq_redis::redis::Client::open(url).unwrap().get_connection_with_timeout(Duration::from_secs(5)).unwrap()
}

async fn limits_health(s: &Server) -> Value {
    let r = s.get("/readyz", None).await;
    assert_eq!(r.status(), StatusCode::OK, "the limits never make a replica unready");
    let v: Value = r.json().await.unwrap();
    v["backends"]["limits"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_the_limits_are_per_replica_and_they_go_back_when_it_returns() {
    let redis = OwnRedis::start(0);
    let (url, port) = (redis.url(), redis.port);
    let s = common::start_with(config(&url, "fallback")).await;
    assert_eq!(limits_health(&s).await["up"], true);
    let r = run(&[&s], 30, "203.0.113.40", Auth::None).await;
    within(&r, RATE_IP, "on Redis");
    let key = "parq:{fallback:rl:ip:203.0.113.40}";
    let exists: i64 = parq_redis::redis::cmd("EXISTS").arg(key).query(&mut redis_conn(&url)).unwrap();
    assert_eq!(exists, 1, "the bucket is in Redis");

    drop(redis);
    // Requests are still answered, and limited, by the replica's own buckets.
    let r = run(&[&s], 30, "203.0.113.41", Auth::None).await;
    within(&r, RATE_IP, "per replica while Redis is away");
    let health = limits_health(&s).await;
    assert_eq!(health["adapter"], "redis", "{health}");
    assert_eq!(health["up"], false, "{health}");
    assert_eq!(health["fallback"], true, "{health}");
    assert!(health["error"].is_string(), "{health}");

    // Redis returns (empty): the limits go back to it.
    let redis = OwnRedis::start(port);
    let mut health = Value::Null;
    for _ in 0..100 {
        health = limits_health(&s).await;
        if health["up"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health["up"], true, "{health}");
    assert_eq!(health["fallback"], false, "{health}");
    assert!(health.get("error").is_none(), "{health}");
    assert_eq!(hit(&s, "203.0.113.42", Auth::None).await.status(), StatusCode::OK);
    let exists: i64 = parq_redis::redis::cmd("EXISTS")
        .arg("parq:{fallback:rl:ip:203.0.113.42}")
        .query(&mut redis_conn(&url))
        .unwrap();
    assert_eq!(exists, 1, "the bucket is in Redis again");
    s.running.shutdown().await;
    drop(redis);
}
