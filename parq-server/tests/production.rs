//! The production composition: PostgreSQL decides, Redis admits, several replicas share both.
//! Needs the PostgreSQL of `PARQ_TEST_PG_URL` and the Redis of `PARQ_TEST_REDIS_URL`; fails
//! when they are unreachable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::journeys;
use common::production::{self, Backing};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Semaphore};

async fn start_on(b: &Backing) -> common::Server {
    let config = b.config();
    b.migrate(&config).await;
    let s = common::start_with(config).await;
    production::until_warm(&s.http, &s.base).await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_journey_on_postgres_and_redis() {
    let b = Backing::new().await;
    let s = start_on(&b).await;
    let ready = common::expect(s.get("/readyz", None).await, StatusCode::OK).await;
    assert_eq!(ready["backends"]["store"]["adapter"], "postgres", "{ready}");
    assert_eq!(ready["backends"]["postgres"]["up"], true, "{ready}");
    assert_eq!(ready["backends"]["accounts"]["adapter"], "postgres", "{ready}");
    assert_eq!(ready["backends"]["lock"]["adapter"], "redis", "{ready}");
    assert_eq!(ready["backends"]["lock"]["health"], "warm", "{ready}");
    assert_eq!(ready["backends"]["notifier"]["adapter"], "redis+postgres", "{ready}");
    assert!(!ready.to_string().contains(&b.pg), "no URL in /readyz: {ready}");
    journeys::driver_journey_from_registration_to_the_gate_and_a_refund(s).await;
    // The accounts are in PostgreSQL, not in the replica's memory.
    let sql = b.sql().await;
    let n: i64 = sql
        .query_one(
            &format!("SELECT count(*) FROM {}.accounts WHERE email = 'eleni@example.cy'", b.schema),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_payment_on_postgres_and_redis() {
    let b = Backing::new().await;
    journeys::a_declined_payment_leaves_the_hold_and_an_extension_reprices_it(start_on(&b).await).await;
}

const CLIENTS: usize = 200;
const OPERATOR_KEY: &str = "pqk_race_operator_key_0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_200_clients_for_one_spot_and_exactly_one_wins() {
    let _turn = PROCESSES.lock().await;
    let b = Backing::new().await;
    let env = b.env();
    let migrated = production::migrate(&env);
    assert!(migrated.contains("server: applied 0001 accounts"), "{migrated}");
    assert!(migrated.contains("server: applied 0002 http_idempotency"), "{migrated}");
    assert!(production::migrate(&env).contains("server: up to date"), "migrate is idempotent");

    // Replica A loads the demo city; replica B serves the same schema and Redis prefix.
    let mut env_a = env.clone();
    env_a.push(("PARQ_DEMO".into(), "true".into()));
    env_a.push(("PARQ_OPERATOR_KEY".into(), OPERATOR_KEY.into()));
    let a = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_a);
    let mut env_b = env.clone();
    env_b.push(("PARQ_DEMO".into(), "false".into()));
    let pb = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_b);
    let urls = [a.url.clone(), pb.url.clone()];
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();
    for u in &urls {
        production::until_warm(&http, u).await;
    }

    // One spot of the demo's Eleftheria Square, found through replica B with A's operator key.
    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string();
    let spots: Value = http
        .get(format!("{}/api/v1/operator/lots/{lot}/spots", urls[1]))
        .header("x-api-key", OPERATOR_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spot = spots["spots"]
        .as_array()
        .unwrap_or_else(|| panic!("spots: {spots}"))
        .iter()
        .find(|s| s["label"] == "E-05")
        .unwrap_or_else(|| panic!("E-05 in {spots}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (start, end) = common::window(30, 2);

    // 200 drivers: each registers on one replica and logs in on the other.
    let gate = Arc::new(Semaphore::new(8));
    let mut sign_ups = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let (http, urls, gate) = (http.clone(), urls.clone(), gate.clone());
        sign_ups.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let email = format!("racer{i}@example.cy");
            let creds = json!({ "email": email, "password": "a long enough password" });
            let post =
                |url: String| http.post(url).header("idempotency-key", common::key()).json(&creds).send();
            let r = post(format!("{}/api/v1/auth/register", urls[i % 2])).await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
            let r = post(format!("{}/api/v1/auth/login", urls[(i + 1) % 2])).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
            let v: Value = r.json().await.unwrap();
            (i, v["token"].as_str().unwrap().to_owned())
        });
    }
    let tokens: Vec<(usize, String)> = sign_ups.join_all().await;

    // The race: every client holds the same spot and window at once, half through each replica.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut race = tokio::task::JoinSet::new();
    for (i, token) in tokens {
        let (http, url, barrier) = (http.clone(), urls[i % 2].clone(), barrier.clone());
        let body = json!({ "lot_id": lot, "spot_id": spot, "start": start, "end": end });
        let idem = common::key();
        race.spawn(async move {
            barrier.wait().await;
            let r = http
                .post(format!("{url}/api/v1/holds"))
                .bearer_auth(&token)
                .header("idempotency-key", &idem)
                .json(&body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, ct, v, (i, token, idem, body))
        });
    }
    let results = race.join_all().await;
    let won: Vec<_> = results.iter().filter(|(s, _, _, _)| *s == StatusCode::CREATED).collect();
    let lost: Vec<_> = results.iter().filter(|(s, _, _, _)| *s == StatusCode::CONFLICT).collect();
    let other: Vec<_> = results
        .iter()
        .filter(|(s, _, _, _)| *s != StatusCode::CREATED && *s != StatusCode::CONFLICT)
        .collect();
    assert!(other.is_empty(), "every answer is 201 or 409: {other:?}");
    assert_eq!(won.len(), 1, "exactly one winner");
    assert_eq!(lost.len(), CLIENTS - 1);
    for (_, ct, v, _) in &lost {
        assert_eq!(ct, "application/problem+json", "{v}");
        assert_eq!(v["status"], 409, "{v}");
        assert!(v["code"].is_string() && v["type"].is_string(), "{v}");
    }
    let winner = won[0].2["id"].as_str().unwrap().to_owned();

    // PostgreSQL's own table: one live reservation of the spot, the winner's.
    let sql = b.sql().await;
    let rows = sql
        .query(
            &format!(
                "SELECT id::text FROM {}.reservations \
                 WHERE spot_id = $1::text::uuid AND state IN ('held', 'pending_payment', 'confirmed', 'checked_in')",
                b.schema
            ),
            &[&spot],
        )
        .await
        .unwrap();
    let live: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(live, vec![winner.clone()], "exactly one live reservation of the spot");

    // The winner's retry reaches the other replica: the same response is replayed from the
    // shared record; the same key with another request is refused.
    let (i, token, idem, body) = &won[0].3;
    let other_url = &urls[(i + 1) % 2];
    let retry = |body: Value| {
        http.post(format!("{other_url}/api/v1/holds"))
            .bearer_auth(token)
            .header("idempotency-key", idem)
            .json(&body)
            .send()
    };
    let r = retry(body.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["id"], winner.as_str());
    let mut changed = body.clone();
    changed["end"] = json!(common::window(30, 3).1);
    let r = retry(changed).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text().await.unwrap());

    // A registration retried on the other replica is replayed, not refused as a taken email.
    let reg_key = common::key();
    let creds = json!({ "email": "retry@example.cy", "password": "a long enough password" });
    let register = |url: &str| {
        http.post(format!("{url}/api/v1/auth/register"))
            .header("idempotency-key", &reg_key)
            .json(&creds)
            .send()
    };
    let first = register(&urls[0]).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = register(&urls[1]).await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert!(second.headers().contains_key("idempotent-replayed"));
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    drop((a, pb));
}

/// A `redis-server` of this test's own on a spare port (never the shared one), killed on drop.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian: apt-get install redis-server)");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return OwnRedis { child, url };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on {port}");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tests that start `parq` processes take turns: each loads the machine (Argon2 for 200
/// drivers, two replicas), and their timing should not depend on the other's.
static PROCESSES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the processes printed so far, for a failure's message.
fn logs(processes: &[&production::Process]) -> String {
    let mut out = String::new();
    for (i, p) in processes.iter().enumerate() {
        out.push_str(&format!("--- replica {i} ({}):\n", p.url));
        while let Ok(line) = p.lines.try_recv() {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

async fn python_client(
    socket_url: &str,
    lot: &str,
    rest_url: &str,
    replicas: &[&production::Process],
) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/live_client.py");
    let args = [script.display().to_string(), socket_url.to_owned(), lot.to_owned(), rest_url.to_owned()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output())
        .await
        .unwrap()
        .expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the python-socketio client failed: {text}\n{}", logs(replicas));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_reach_every_replica_through_redis_and_through_postgres_while_redis_is_away() {
    let _turn = PROCESSES.lock().await;
    let b = Backing::new().await;
    let mut redis = OwnRedis::start();
    let mut env: Vec<(String, String)> =
        b.env().into_iter().filter(|(k, _)| k != "PARQ_LOCK_URL" && k != "PARQ_NOTIFIER_URL").collect();
    env.push(("PARQ_LOCK_URL".into(), redis.url.clone()));
    env.push(("PARQ_NOTIFIER_URL".into(), redis.url.clone()));
    production::migrate(&env);
    let mut env_a = env.clone();
    env_a.push(("PARQ_DEMO".into(), "true".into()));
    let a = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_a);
    let mut env_b = env.clone();
    env_b.push(("PARQ_DEMO".into(), "false".into()));
    let pb = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_b);
    let http = reqwest::Client::new();
    for u in [&a.url, &pb.url] {
        let ready = production::until_warm(&http, u).await;
        assert_eq!(ready["backends"]["notifier"]["adapter"], "redis+postgres", "{ready}");
    }
    let lot = parq_server::demo::lot_id("Limassol Old Port").to_string();

    // Holds through replica A; the socket on replica B hears them (and resumes) via Redis.
    let out = python_client(&pb.url, &lot, &a.url, &[&a, &pb]).await;
    assert!(out.contains("checks passed"), "{out}");

    // Redis dies. Holds go to PostgreSQL alone, and their events still reach replica B's
    // sockets, from the store's outbox through LISTEN/NOTIFY.
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let out = python_client(&pb.url, &lot, &a.url, &[&a, &pb]).await;
    assert!(out.contains("checks passed"), "{out}");
    drop((a, pb));
}

/// Two replicas on one PostgreSQL schema: a cancellation on replica A revokes the pass for a
/// gate syncing from replica B, a gate's offline readings uploaded to B are recorded once in
/// PostgreSQL, and after a restart of both replicas every replica gives the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_on_one_replica_reaches_gates_of_another_and_survives_a_restart_of_both() {
    let b = Backing::new().await;
    // Both replicas sign and verify passes with the same keyring, as a deployment does.
    let config = b.config();
    b.migrate(&config).await;
    let replica = |demo: bool| {
        let config = parq_server::Config { demo: Some(demo), ..config.clone() };
        async move {
            let s = common::start_with(config).await;
            production::until_warm(&s.http, &s.base).await;
            s
        }
    };
    let a = replica(true).await;
    let bb = replica(false).await;
    let lot = a.demo().lot("Eleftheria").unwrap().to_string();
    let gate_key = a.demo().gate_key.clone();

    let token = a.driver("replicas@example.cy").await;
    let (id, pass) = journeys::paid_with_pass(&a, &token, &lot, common::window(0, 2)).await;
    let before = journeys::revocations(&bb, &gate_key, 0).await;
    let v0 = before["to"].as_u64().unwrap();
    assert!(before["revocations"].as_array().unwrap().iter().all(|r| r["reservation"] != id));

    // Cancelled on A; a gate syncing from B gets the revocation, numbered right after v0.
    let c = common::expect(
        a.post(&format!("/api/v1/reservations/{id}/cancel"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["reservation"]["state"], "cancelled");
    let delta = journeys::revocations(&bb, &gate_key, v0).await;
    assert_eq!((delta["from"].as_u64(), delta["to"].as_u64()), (Some(v0), Some(v0 + 1)), "{delta}");
    let revs = delta["revocations"].as_array().unwrap();
    assert_eq!(revs.len(), 1, "{delta}");
    assert_eq!((revs[0]["version"].as_u64(), &revs[0]["reservation"]), (Some(v0 + 1), &json!(id)));
    assert_eq!(revs[0]["reason"], "cancelled");
    assert_eq!(journeys::revocations(&a, &gate_key, v0).await, delta, "the same answer from A");
    // In PostgreSQL, with the cancellation.
    let sql = b.sql().await;
    let row = sql
        .query_one(
            &format!(
                "SELECT r.state, v.version FROM {s}.reservations r JOIN {s}.revocations v ON v.reservation_id = r.id \
                 WHERE r.id = $1::text::uuid",
                s = b.schema
            ),
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, i64>(1)), ("cancelled".to_owned(), (v0 + 1) as i64));

    // The gate let the cancelled pass in while offline, after the cancellation: uploaded to B,
    // it is a conflict, recorded once.
    let at = jiff::Timestamp::now().to_string();
    let batch = json!({ "scans": [{ "scan_id": "east-1:77", "pass": pass, "lot_id": lot, "direction": "entry",
                                    "gate": "east-1", "at": at }] });
    let uploaded = journeys::upload(&bb, &gate_key, &batch).await;
    assert_eq!(uploaded["scans"][0]["decision"], json!({ "decision": "refuse", "reason": "revoked" }));
    assert_eq!(uploaded["scans"][0]["conflict"], "allowed_but_refused");
    assert_eq!(
        journeys::upload(&a, &gate_key, &batch).await,
        uploaded,
        "the same record through the other replica"
    );

    // Both replicas restart: the revocation and the reading are still there, for both.
    a.running.shutdown().await;
    bb.running.shutdown().await;
    let a = replica(false).await;
    let bb = replica(false).await;
    assert_eq!(journeys::revocations(&bb, &gate_key, v0).await, delta);
    assert_eq!(journeys::revocations(&a, &gate_key, 0).await, journeys::revocations(&bb, &gate_key, 0).await);
    assert_eq!(journeys::upload(&bb, &gate_key, &batch).await, uploaded);
    let n: i64 = sql
        .query_one(&format!("SELECT count(*) FROM {}.gate_scans WHERE scan_id = 'east-1:77'", b.schema), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "recorded once");
    // Numbering goes on from where it was, whichever replica cancels (here a hold, on B).
    let (start, end) = common::window(0, 2);
    let held = common::expect(
        bb.post("/api/v1/holds", Some(&token), json!({ "lot_id": lot, "start": start, "end": end })).await,
        StatusCode::CREATED,
    )
    .await;
    let keep = held["id"].as_str().unwrap().to_owned();
    let c = common::expect(
        bb.post(&format!("/api/v1/reservations/{keep}/cancel"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["reservation"]["state"], "cancelled");
    let next = journeys::revocations(&a, &gate_key, v0 + 1).await;
    assert_eq!(next["revocations"][0]["version"].as_u64(), Some(v0 + 2), "{next}");
    assert_eq!(next["revocations"][0]["reservation"], json!(keep));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_on_two_replicas_see_every_event_once_and_in_order_while_holds_go_through_both() {
    let _turn = PROCESSES.lock().await;
    let b = Backing::new().await;
    let env = b.env();
    production::migrate(&env);
    let mut env_a = env.clone();
    env_a.push(("PARQ_DEMO".into(), "true".into()));
    let a = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_a);
    let mut env_b = env.clone();
    env_b.push(("PARQ_DEMO".into(), "false".into()));
    let pb = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_b);
    let http = reqwest::Client::new();
    for u in [&a.url, &pb.url] {
        let ready = production::until_warm(&http, u).await;
        assert_eq!(ready["backends"]["notifier"]["adapter"], "redis+postgres", "{ready}");
    }
    let lot = parq_server::demo::lot_id("Limassol Old Port").to_string();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/live_two_replicas.py");
    let args = [script.display().to_string(), a.url.clone(), pb.url.clone(), lot.clone()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output())
        .await
        .unwrap()
        .expect("python3 runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the python-socketio clients failed: {text}\n{}", logs(&[&a, &pb]));
    assert!(text.contains("all checks passed"), "{text}");

    // The outbox agrees: every event of the lot is numbered, from 1 without gaps, none left queued.
    let sql = b.sql().await;
    let s = &b.schema;
    let row = sql
        .query_one(
            &format!(
                "SELECT count(*), coalesce(max(seq), 0), (SELECT count(*) FROM {s}.event_queue) \
                 FROM {s}.events WHERE lot_id = $1"
            ),
            &[&uuid::Uuid::parse_str(&lot).unwrap()],
        )
        .await
        .unwrap();
    let (count, max, queued): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((count, queued), (max, 0), "gap-free numbers and an empty queue");
    assert!(count >= 24, "at least the 24 holds' events: {count}");
    drop((a, pb));
}
