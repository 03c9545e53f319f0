//! A `parq serve` on SQLite, under a stream of holds and payments over HTTP, killed with
//! SIGKILL at random moments, round after round: after each restart every hold and every
//! confirmation the clients saw acknowledged is there; after the last, the file's own tables
//! hold no two overlapping live reservations of a spot, and the file passes
//! `PRAGMA integrity_check`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::production;
use parq_sqlite::rusqlite::{Connection, OpenFlags};
use reqwest::StatusCode;
use serde_json::{Value, json};

const OPERATOR_KEY: &str = "pqk_crash_test_operator_key";
const ROUNDS: usize = 4;
const DRIVERS: usize = 6;
const LIVE: [&str; 4] = ["held", "pending_payment", "confirmed", "checked_in"];

/// A small xorshift generator: the test's randomness, seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients saw acknowledged: (reservation, driver's token), and the confirmed ones.
#[derive(Default)]
struct Seen {
    holds: Vec<(String, String)>,
    confirmed: Vec<(String, String)>,
}

async fn one_client(
    http: reqwest::Client,
    url: String,
    token: String,
    lot: String,
    seed: u64,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        // Windows from a few dozen slots over a dozen spots: many holds, some conflicts.
        let (start, end) = common::window(24 + 2 * rng.below(40) as i64, 1 + rng.below(2) as i64);
        let Ok(r) = http
            .post(format!("{url}/api/v1/holds"))
            .bearer_auth(&token)
            .header("idempotency-key", common::key())
            .json(&json!({ "lot_id": lot, "start": start, "end": end }))
            .send()
            .await
        else {
            return; // The server is gone: what was in flight was not acknowledged.
        };
        if r.status() != StatusCode::CREATED {
            continue;
        }
        let Ok(v) = r.json::<Value>().await else { return };
        let id = v["id"].as_str().unwrap().to_owned();
        seen.lock().unwrap().holds.push((id.clone(), token.clone()));
        if rng.below(2) == 0 {
            continue;
        }
        let Ok(r) = http
            .post(format!("{url}/api/v1/reservations/{id}/checkout"))
            .bearer_auth(&token)
            .header("idempotency-key", common::key())
            .json(&json!({}))
            .send()
            .await
        else {
            return;
        };
        if r.status() != StatusCode::OK {
            continue;
        }
        let Ok(c) = r.json::<Value>().await else { return };
        let Some(pay) = c["test_pay_url"].as_str() else { continue };
        let Ok(r) = http
            .post(format!("{url}{pay}"))
            .bearer_auth(&token)
            .header("idempotency-key", common::key())
            .send()
            .await
        else {
            return;
        };
        if r.status() != StatusCode::OK {
            continue;
        }
        let Ok(p) = r.json::<Value>().await else { return };
        if p["reservation"]["state"] == "confirmed" {
            seen.lock().unwrap().confirmed.push((id, token.clone()));
        }
    }
}

async fn check(http: &reqwest::Client, url: &str, seen: &Seen) {
    for (id, token) in &seen.holds {
        let r = http.get(format!("{url}/api/v1/reservations/{id}")).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged hold {id} is there after the crash");
        let v: Value = r.json().await.unwrap();
        let state = v["state"].as_str().unwrap();
        assert!(LIVE.contains(&state), "acknowledged hold {id} is live, not {state}");
    }
    for (id, token) in &seen.confirmed {
        let v: Value = http
            .get(format!("{url}/api/v1/reservations/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["state"], "confirmed", "acknowledged confirmation of {id} is kept: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_holds_and_payments_survive_sigkill_round_after_round() {
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash.db");
    let env: Vec<(String, String)> = [
        ("PARQ_STORE_URL", format!("sqlite://{}", file.display())),
        ("PARQ_DEMO", "true".into()),
        ("PARQ_OPERATOR_KEY", OPERATOR_KEY.into()),
        ("PARQ_RATE_IP", "100000".into()),
        ("PARQ_RATE_USER", "100000".into()),
        ("PARQ_RATE_KEY", "100000".into()),
        ("PARQ_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut p = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env);
    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string();

    let mut tokens = Vec::new();
    for i in 0..DRIVERS {
        let creds = json!({ "email": format!("crash{i}@example.cy"), "password": "a long enough password" });
        for path in ["register", "login"] {
            let r = http
                .post(format!("{}/api/v1/auth/{path}", p.url))
                .header("idempotency-key", common::key())
                .json(&creds)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            if path == "login" {
                tokens.push(r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned());
            }
        }
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = tokio::task::JoinSet::new();
        for token in &tokens {
            clients.spawn(one_client(
                http.clone(),
                p.url.clone(),
                token.clone(),
                lot.clone(),
                rng.next(),
                seen.clone(),
                stop.clone(),
            ));
        }
        // Let work pile up, then kill the server mid-stream.
        tokio::time::sleep(Duration::from_millis(400 + rng.below(1600))).await;
        p.child.kill().expect("SIGKILL");
        p.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        clients.join_all().await;
        let (holds, confirmed) = {
            let s = seen.lock().unwrap();
            (s.holds.len(), s.confirmed.len())
        };
        eprintln!("round {round}: {holds} holds and {confirmed} confirmations acknowledged so far");

        p = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env);
        assert!(p.before.iter().any(|l| l.starts_with("demo city kept")), "{:#?}", p.before);
        let snapshot = {
            let s = seen.lock().unwrap();
            Seen { holds: s.holds.clone(), confirmed: s.confirmed.clone() }
        };
        check(&http, &p.url, &snapshot).await;
    }
    let s = seen.lock().unwrap();
    assert!(!s.holds.is_empty(), "the clients made holds");
    drop(s);
    p.child.kill().unwrap();
    p.child.wait().unwrap();

    // The file's own tables: no two live reservations of a spot overlap; the file is whole.
    let c = Connection::open_with_flags(&file, OpenFlags::SQLITE_OPEN_READ_WRITE).unwrap();
    let live = "('held', 'pending_payment', 'confirmed', 'checked_in')";
    let overlaps: i64 = c
        .query_row(
            &format!(
                "SELECT count(*) FROM reservations a JOIN reservations b \
                 ON a.spot_id = b.spot_id AND a.id < b.id AND a.start_ns < b.end_ns AND b.start_ns < a.end_ns \
                 WHERE a.state IN {live} AND b.state IN {live}"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(overlaps, 0, "no two live reservations of a spot overlap");
    let n: i64 = c
        .query_row(&format!("SELECT count(*) FROM reservations WHERE state IN {live}"), [], |r| r.get(0))
        .unwrap();
    assert!(n > 0);
    let report: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(report, ["ok"]);
}
