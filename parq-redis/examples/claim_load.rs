//! Claims per second through `RedisLock`, next to `redis-benchmark` running the same claim
//! script with the same key shape, in the same run.
//!
//! ```sh
//! cargo run --release -p parq-redis --example claim_load -- [--url redis://HOST:PORT] [--n 50000] [--rounds 3]
//! ```
//!
//! Without `--url` it starts a throwaway `redis-server` (no persistence) on a spare port. Each
//! measurement uses a fresh key prefix: one lot, one spot, a random token and a random
//! one-minute window in a range of 10^9 ms per claim, the clock fixed (so nothing lapses and
//! the spot's indexes grow as they would under load). Prints a Markdown table.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parq_core::jiff::{SignedDuration, Timestamp};
use parq_core::{AdmissionLock, Claim, LotId, ManualClock, ReservationId, SpotId, Window};
use parq_redis::RedisLock;
use parq_redis::bb8_redis::RedisConnectionManager;
use parq_redis::bb8_redis::bb8::Pool;

const RANGE_MS: u64 = 1_000_000_000;
const LEN_MS: i64 = 60_000;

struct Args {
    url: Option<String>,
    n: usize,
    rounds: usize,
    clients: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args { url: None, n: 50_000, rounds: 3, clients: vec![1, 50] };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = Some(value),
            "--n" => a.n = value.parse().expect("--n NUMBER"),
            "--rounds" => a.rounds = value.parse().expect("--rounds NUMBER"),
            "--clients" => a.clients = value.split(',').map(|c| c.parse().expect("--clients 1,50")).collect(),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

struct Throwaway(Child);

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn throwaway() -> (Throwaway, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = Throwaway(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let client = parq_redis::redis::Client::open(url.as_str()).unwrap();
    for _ in 0..500 {
        if client.get_connection().is_ok() {
            return (server, url);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not start");
}

fn rand(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn base() -> Timestamp {
    Timestamp::from_millisecond(1_900_000_000_000).unwrap()
}

async fn through_lock(url: &str, clients: usize, n: usize) -> f64 {
    let pool = parq_redis::pool::builder(clients as u32, Duration::from_secs(2))
        .build(parq_redis::RedisManager::new(url).unwrap())
        .await
        .unwrap();
    let prefix = format!("bench-{}", uuid::Uuid::now_v7());
    let lock =
        Arc::new(RedisLock::new(pool, &prefix).unwrap().with_clock(Arc::new(ManualClock::new(base()))));
    lock.load_scripts().await.unwrap();
    let (lot, spot) = (LotId::new(), SpotId::new());
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let lock = lock.clone();
            tokio::spawn(async move {
                let mut x = 0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1);
                for _ in 0..n / clients {
                    let start = base() + SignedDuration::from_millis((rand(&mut x) % RANGE_MS) as i64);
                    let claim = Claim {
                        lot,
                        candidates: vec![spot],
                        window: Window::starting_at(start, SignedDuration::from_millis(LEN_MS)).unwrap(),
                        token: ReservationId::new(),
                        ttl: SignedDuration::from_mins(10),
                    };
                    match lock.claim(&claim).await {
                        Ok(_) => {}
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (n / clients * clients) as f64 / started.elapsed().as_secs_f64()
}

/// The same `EVALSHA` sent straight through the same kind of pool, without `RedisLock`: how
/// much of the gap is the client library's rather than the lock's.
async fn through_bare_client(url: &str, clients: usize, n: usize, template: Vec<String>) -> f64 {
    let manager = RedisConnectionManager::new(url).unwrap();
    // The bare client's pool as bb8-redis makes it, without a PING before each checkout.
    let pool =
        Pool::builder().max_size(clients as u32).test_on_check_out(false).build(manager).await.unwrap();
    let template = Arc::new(template);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (pool, template) = (pool.clone(), template.clone());
            tokio::spawn(async move {
                let mut x = 0x9e37_79b9_7f4a_7c15 ^ (c as u64 + 1);
                for _ in 0..n / clients {
                    let mut cmd = parq_redis::redis::cmd("EVALSHA");
                    cmd.arg(RedisLock::claim_script_sha());
                    for (i, a) in template.iter().enumerate() {
                        match i {
                            8 => cmd.arg(ReservationId::new().to_string()),
                            9 => cmd.arg(1_900_000_000_000 + rand(&mut x) % RANGE_MS),
                            _ => cmd.arg(a),
                        };
                    }
                    let mut conn = pool.get().await.unwrap();
                    let _: parq_redis::redis::Value = cmd.query_async(&mut *conn).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (n / clients * clients) as f64 / started.elapsed().as_secs_f64()
}

/// The `redis-benchmark` command for the same script and key shape; `__rand_int__` stands for
/// the token and the window start.
fn benchmark_command(url: &str, clients: usize, n: usize) -> (Vec<String>, Vec<String>) {
    let lock_args = {
        let pool = parq_redis::pool::pool(url, 10, Duration::from_secs(2)).unwrap();
        let prefix = format!("bench-{}", uuid::Uuid::now_v7());
        let lock = RedisLock::new(pool, &prefix).unwrap();
        let claim = Claim {
            lot: LotId::new(),
            candidates: vec![SpotId::new()],
            window: Window::starting_at(base(), SignedDuration::from_millis(LEN_MS)).unwrap(),
            token: ReservationId::new(),
            ttl: SignedDuration::from_mins(10),
        };
        lock.claim_args(&claim, base()).unwrap()
    };
    let template = lock_args.clone();
    let mut lock_args = lock_args;
    // numkeys, 5 keys, then now, ttl, token, start, length, spot.
    lock_args[8] = "__rand_int__".into();
    lock_args[9] = "__rand_int__".into();
    let info = parq_redis::redis::IntoConnectionInfo::into_connection_info(url).unwrap();
    let (host, port) = match info.addr() {
        parq_redis::redis::ConnectionAddr::Tcp(h, p) => (h.clone(), *p),
        other => panic!("a TCP URL, not {other:?}"),
    };
    let mut cmd = vec![
        "redis-benchmark".to_string(),
        "-h".into(),
        host,
        "-p".into(),
        port.to_string(),
        "-n".into(),
        n.to_string(),
        "-c".into(),
        clients.to_string(),
        "-r".into(),
        RANGE_MS.to_string(),
        "-q".into(),
        "EVALSHA".into(),
        RedisLock::claim_script_sha().into(),
    ];
    cmd.extend(lock_args);
    (cmd, template)
}

fn through_benchmark(cmd: &[String]) -> f64 {
    let out = Command::new(&cmd[0]).args(&cmd[1..]).output().expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    // "EVALSHA ...: 12345.67 requests per second, p50=..."; the last such figure is the total.
    text.split(['\r', '\n'])
        .filter_map(|line| {
            line.split(" requests per second").next().filter(|_| line.contains("requests per second"))
        })
        .filter_map(|head| head.rsplit(' ').next()?.parse::<f64>().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no figure in redis-benchmark's output: {text}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let a = args();
    let (_server, url) = match &a.url {
        Some(u) => (None, u.clone()),
        None => {
            let (s, u) = throwaway();
            (Some(s), u)
        }
    };
    // One thread, as redis-benchmark has.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _in_runtime = rt.enter();
    println!(
        "| clients | RedisLock claims/s | redis-benchmark EVALSHA/s | ratio | bare redis-rs EVALSHA/s | ratio |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut commands = Vec::new();
    for &clients in &a.clients {
        let (cmd, template) = benchmark_command(&url, clients, a.n);
        let (mut ours, mut theirs, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.rounds {
            ours.push(rt.block_on(through_lock(&url, clients, a.n)));
            theirs.push(through_benchmark(&cmd));
            bare.push(rt.block_on(through_bare_client(&url, clients, a.n, template.clone())));
        }
        let (o, t, b) = (median(ours), median(theirs), median(bare));
        println!("| {clients} | {o:.0} | {t:.0} | {:.2} | {b:.0} | {:.2} |", o / t, b / t);
        commands.push(cmd.join(" "));
    }
    println!();
    for c in commands {
        println!("    {c}");
    }
    // On a shared server, remove what the runs wrote.
    if a.url.is_some() {
        let client = parq_redis::redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let keys: Vec<String> =
            parq_redis::redis::cmd("KEYS").arg("parq:{bench-*").query(&mut conn).unwrap_or_default();
        for k in keys {
            let _: Result<(), _> = parq_redis::redis::cmd("UNLINK").arg(k).query(&mut conn);
        }
    }
}
