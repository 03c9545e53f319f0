//! The server on SQLite: the journeys in one file; data, accounts and idempotency records that
//! outlive a restart; the default data directory; refusals at start (a newer schema, an
//! unusable directory, a corrupt file) through the binary; `parq backup` while serving; two
//! processes on one file racing for one spot.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::journeys;
use common::production;
use parq_server::Config;
use parq_sqlite::rusqlite::{Connection, OpenFlags};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Barrier, Semaphore};

const PARQ: &str = env!("CARGO_BIN_EXE_parq");
const OPERATOR_KEY: &str = "pqk_sqlite_test_operator_key";

fn sqlite_config(path: &Path) -> Config {
    Config { store_url: format!("sqlite://{}", path.display()), demo: Some(true), ..common::config() }
}

fn open(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("the file opens")
}

fn integrity(path: &Path) -> Vec<String> {
    let c = open(path);
    let mut st = c.prepare("PRAGMA integrity_check").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_journey_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start_with(sqlite_config(&dir.path().join("parq.db"))).await;
    assert_eq!(s.running.app.state().backends.names.accounts, "sqlite");
    journeys::driver_journey_from_registration_to_the_gate_and_a_refund(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_payment_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start_with(sqlite_config(&dir.path().join("parq.db"))).await;
    journeys::a_declined_payment_leaves_the_hold_and_an_extension_reprices_it(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_reservations_accounts_keys_and_idempotency_records_and_the_demo_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parq.db");
    let config = Config {
        store_url: String::new(),
        data_dir: Some(dir.path().display().to_string()),
        ..common::config()
    };
    assert!(config.demo_enabled(), "the default file gets the demo");
    let s = common::start_with(config.clone()).await;
    assert_eq!(s.running.app.state().backends.sqlite.as_ref().unwrap().path, path);
    assert_eq!(s.running.app.demo_loaded(), Some(parq_server::demo::Loaded::Created));
    let demo = s.demo().clone();
    let token = s.driver("keeper@example.cy").await;
    let lot = demo.lot("Eleftheria").unwrap();
    let (start, end) = common::window(30, 2);
    let reg_key = common::key();
    let creds = json!({ "email": "again@example.cy", "password": "a long enough password" });
    let register = |s: &common::Server| {
        s.http.post(s.url("/api/v1/auth/register")).header("idempotency-key", &reg_key).json(&creds).send()
    };
    let first: Value = common::expect(register(&s).await.unwrap(), StatusCode::CREATED).await;
    let hold = common::expect(
        s.post("/api/v1/holds", Some(&token), json!({ "lot_id": lot, "start": start, "end": end })).await,
        StatusCode::CREATED,
    )
    .await;
    let id = hold["id"].as_str().unwrap().to_owned();
    let lots_before = common::expect(
        s.http
            .get(s.url("/api/v1/operator/lots"))
            .header("x-api-key", &demo.operator_key)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    s.running.shutdown().await;

    let s = common::start_with(config).await;
    assert_eq!(s.running.app.demo_loaded(), Some(parq_server::demo::Loaded::Kept));
    let again = s.demo().clone();
    assert_eq!(
        (again.operator_key.as_str(), again.gate_key.as_str()),
        (demo.operator_key.as_str(), demo.gate_key.as_str())
    );
    // The session made before the restart still works, and the hold is there.
    let r = common::expect(s.get(&format!("/api/v1/reservations/{id}"), Some(&token)).await, StatusCode::OK)
        .await;
    assert_eq!(r["state"], "held");
    // The demo was not made twice.
    let lots_after = common::expect(
        s.http
            .get(s.url("/api/v1/operator/lots"))
            .header("x-api-key", &demo.operator_key)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(lots_after, lots_before);
    // A retry of the registration after the restart is replayed from the file.
    let r = register(&s).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    s.running.shutdown().await;
    assert_eq!(integrity(&path), ["ok"]);
}

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(PARQ)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("parq runs")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn serve_with_no_configuration_keeps_its_data_in_the_data_directory_and_prints_where() {
    let home = tempfile::tempdir().unwrap();
    let home_s = home.path().display().to_string();
    // HOME alone: ~/.local/share/parq.
    let e = env(&[("HOME", &home_s), ("PARQ_LOG", "warn"), ("PARQ_OPERATOR_KEY", OPERATOR_KEY)]);
    let file = home.path().join(".local/share/parq/parq.db");
    let p = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &e);
    assert!(p.before.iter().any(|l| l.contains(&format!("data: {}", file.display()))), "{:#?}", p.before);
    assert!(p.before.iter().any(|l| l.starts_with("demo city loaded")), "{:#?}", p.before);
    let gate_key = p.before.iter().find_map(|l| l.strip_prefix("demo gate key:     ")).unwrap().to_owned();
    drop(p);
    assert!(file.is_file());
    let p = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &e);
    assert!(p.before.iter().any(|l| l.starts_with("demo city kept")), "{:#?}", p.before);
    assert!(p.before.iter().any(|l| l == &format!("demo gate key:     {gate_key}")), "{:#?}", p.before);
    drop(p);

    // `parq migrate` finds the same file and says it is up to date.
    let out = run(&["migrate"], &[("HOME", &home_s)]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains(&format!("SQLite database {}: up to date", file.display())),
        "{said}"
    );

    // XDG_DATA_HOME wins over HOME, --data-dir over both; --memory writes nothing.
    let xdg = home.path().join("xdg");
    let e2 = env(&[("HOME", &home_s), ("XDG_DATA_HOME", xdg.to_str().unwrap()), ("PARQ_LOG", "warn")]);
    drop(production::spawn(&["serve", "--bind", "127.0.0.1:0"], &e2));
    assert!(xdg.join("parq/parq.db").is_file());
    let flag = home.path().join("flagged");
    drop(production::spawn(&["serve", "--bind", "127.0.0.1:0", "--data-dir", flag.to_str().unwrap()], &e2));
    assert!(flag.join("parq.db").is_file());
    let mem = home.path().join("mem");
    let p = production::spawn(
        &["serve", "--memory", "--bind", "127.0.0.1:0", "--data-dir", mem.to_str().unwrap()],
        &e2,
    );
    assert!(!p.before.iter().any(|l| l.starts_with("data: ")), "{:#?}", p.before);
    drop(p);
    assert!(!mem.exists(), "--memory keeps nothing");
}

/// Bytes of a file, to show a refusal left it alone.
fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn refused(args: &[&str], env: &[(&str, &str)], names: &Path, says: &[&str]) {
    let out = run(args, env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {err}");
    assert!(err.contains(&names.display().to_string()), "names {}: {err}", names.display());
    for s in says {
        assert!(err.contains(s), "says {s:?}: {err}");
    }
    assert!(!err.contains("listening on"), "it did not serve: {err}");
}

#[test]
fn a_newer_schema_an_unusable_directory_and_a_corrupt_file_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // A good file, made by a first start.
    drop(production::spawn(
        &["serve", "--bind", "127.0.0.1:0"],
        &env(&[("PARQ_DATA_DIR", &d), ("PARQ_LOG", "warn")]),
    ));
    let file = dir.path().join("parq.db");
    assert!(file.is_file());
    // The server was killed: fold its log into the file, so that copies of the file are whole.
    Connection::open(&file).unwrap().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();

    // The store's schema from a newer ParQ.
    let newer = dir.path().join("newer.db");
    std::fs::copy(&file, &newer).unwrap();
    Connection::open(&newer)
        .unwrap()
        .execute("INSERT INTO parq_schema (version, name, applied_at) VALUES (999, 'future', 'now')", [])
        .unwrap();
    let before = bytes(&newer);
    let url = format!("sqlite://{}", newer.display());
    refused(&["serve", "--store", &url], &[], &newer, &["999", "upgrade ParQ"]);
    assert_eq!(bytes(&newer), before, "left untouched");

    // The server's tables from a newer ParQ.
    let newer2 = dir.path().join("newer-server.db");
    std::fs::copy(&file, &newer2).unwrap();
    Connection::open(&newer2)
        .unwrap()
        .execute(
            "INSERT INTO parq_server_schema (version, name, applied_at) VALUES (77, 'future', 'now')",
            [],
        )
        .unwrap();
    let url = format!("sqlite://{}", newer2.display());
    refused(&["serve", "--store", &url], &[], &newer2, &["77", "upgrade ParQ"]);

    // A data directory that cannot be made (its parent is a file), and a store URL whose
    // directory does not exist.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let under = blocker.join("parq");
    refused(&["serve", "--data-dir", under.to_str().unwrap()], &[], &under, &["--data-dir", "--memory"]);
    let missing = dir.path().join("no/such/dir/parq.db");
    let url = format!("sqlite://{}", missing.display());
    refused(&["serve", "--store", &url], &[], &missing, &["directory must exist and be writable"]);
    assert!(!missing.exists());

    // A file that is not a database, and a database whose pages were damaged.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let before = bytes(&garbage);
    let url = format!("sqlite://{}", garbage.display());
    refused(&["serve", "--store", &url], &[], &garbage, &["not an SQLite database or is corrupt", "backup"]);
    assert_eq!(bytes(&garbage), before, "no fresh database over it");
    let damaged = dir.path().join("damaged.db");
    std::fs::copy(&file, &damaged).unwrap();
    let mut b = bytes(&damaged);
    // Keep the header, wreck every page after the first.
    for x in b.iter_mut().skip(4096) {
        *x = 0xff;
    }
    std::fs::write(&damaged, &b).unwrap();
    let url = format!("sqlite://{}", damaged.display());
    refused(&["serve", "--store", &url], &[], &damaged, &["corrupt"]);
    // The same refusals stop `parq migrate` and `parq backup`.
    refused(&["migrate"], &[("PARQ_STORE_URL", &url)], &damaged, &["corrupt"]);
}

/// Registers `n` drivers on `url` (through the server's HTTP API) and returns their tokens.
async fn drivers(http: &reqwest::Client, url: &str, prefix: &str, n: usize) -> Vec<String> {
    let gate = Arc::new(Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url, gate, prefix) = (http.clone(), url.to_owned(), gate.clone(), prefix.to_owned());
        set.spawn(async move {
            let _p = gate.acquire().await.unwrap();
            let creds =
                json!({ "email": format!("{prefix}{i}@example.cy"), "password": "a long enough password" });
            let r = http
                .post(format!("{url}/api/v1/auth/register"))
                .header("idempotency-key", common::key())
                .json(&creds)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            let r = http
                .post(format!("{url}/api/v1/auth/login"))
                .header("idempotency-key", common::key())
                .json(&creds)
                .send()
                .await
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["token"].as_str().unwrap().to_owned()
        });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_holds_what_was_made_before_it_and_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let e = env(&[
        ("PARQ_DATA_DIR", &d),
        ("PARQ_LOG", "warn"),
        ("PARQ_OPERATOR_KEY", OPERATOR_KEY),
        ("PARQ_RATE_IP", "100000"),
        ("PARQ_RATE_USER", "100000"),
        ("PARQ_RATE_KEY", "100000"),
    ]);
    let p = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &e);
    let http = reqwest::Client::new();
    let tokens = drivers(&http, &p.url, "backup", 4).await;
    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string();
    let hold = |i: usize, offset: i64| {
        let (start, end) = common::window(24 + offset * 3, 2);
        http.post(format!("{}/api/v1/holds", p.url))
            .bearer_auth(&tokens[i % tokens.len()])
            .header("idempotency-key", common::key())
            .json(&json!({ "lot_id": lot, "start": start, "end": end }))
            .send()
    };
    let mut before = Vec::new();
    for i in 0..8 {
        let r = hold(i, i as i64).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        before.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // Holds keep coming while the backup runs.
    let busy = {
        let (http, url, tokens, lot) = (http.clone(), p.url.clone(), tokens.clone(), lot.clone());
        tokio::spawn(async move {
            let mut made = 0;
            for i in 0..40usize {
                let (start, end) = common::window(100 + i as i64 * 3, 2);
                let r = http
                    .post(format!("{url}/api/v1/holds"))
                    .bearer_auth(&tokens[i % tokens.len()])
                    .header("idempotency-key", common::key())
                    .json(&json!({ "lot_id": lot, "start": start, "end": end }))
                    .send()
                    .await
                    .unwrap();
                made += usize::from(r.status() == StatusCode::CREATED);
            }
            made
        })
    };
    let copy = dir.path().join("copy.db");
    let out = tokio::task::spawn_blocking({
        let (copy, d) = (copy.clone(), d.clone());
        move || run(&["backup", copy.to_str().unwrap()], &[("PARQ_DATA_DIR", &d)])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(busy.await.unwrap() > 0);
    assert_eq!(integrity(&copy), ["ok"]);
    let c = open(&copy);
    for id in &before {
        let n: i64 =
            c.query_row("SELECT count(*) FROM reservations WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "reservation {id} made before the backup is in it");
    }
    let keys: i64 = c.query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0)).unwrap();
    assert!(keys >= 2, "the accounts' tables are in the copy");
    // A second backup onto the same name is refused rather than overwriting it.
    let out = run(&["backup", copy.to_str().unwrap()], &[("PARQ_DATA_DIR", &d)]);
    assert!(!out.status.success());
    // The server, given the copy, serves what it holds.
    drop(p);
    let url = format!("sqlite://{}", copy.display());
    let mut e2 = e.clone();
    e2.push(("PARQ_STORE_URL".into(), url));
    let p = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &e2);
    let r = http
        .get(format!("{}/api/v1/reservations/{}", p.url, before[0]))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

const CLIENTS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_race_for_one_spot_and_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("race.db");
    let url = format!("sqlite://{}", file.display());
    let base = env(&[
        ("PARQ_STORE_URL", &url),
        ("PARQ_LOG", "warn"),
        ("PARQ_RATE_IP", "100000"),
        ("PARQ_RATE_USER", "100000"),
        ("PARQ_RATE_KEY", "100000"),
    ]);
    let mut env_a = base.clone();
    env_a.push(("PARQ_DEMO".into(), "true".into()));
    env_a.push(("PARQ_OPERATOR_KEY".into(), OPERATOR_KEY.into()));
    let a = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_a);
    let mut env_b = base.clone();
    env_b.push(("PARQ_DEMO".into(), "false".into()));
    let b = production::spawn(&["serve", "--bind", "127.0.0.1:0"], &env_b);
    let urls = [a.url.clone(), b.url.clone()];
    let http = reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).build().unwrap();

    let lot = parq_server::demo::lot_id("Eleftheria Square Car Park, Nicosia").to_string();
    // B sees A's operator key: the accounts are in the shared file.
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
        .unwrap_or_else(|| panic!("{spots}"))
        .iter()
        .find(|s| s["label"] == "E-05")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tokens = drivers(&http, &urls[0], "racer-a", CLIENTS / 2).await;
    tokens.extend(drivers(&http, &urls[1], "racer-b", CLIENTS / 2).await);
    let (start, end) = common::window(30, 2);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut race = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (http, url, barrier) = (http.clone(), urls[i % 2].clone(), barrier.clone());
        let body = json!({ "lot_id": lot, "spot_id": spot, "start": start, "end": end });
        race.spawn(async move {
            barrier.wait().await;
            let r = http
                .post(format!("{url}/api/v1/holds"))
                .bearer_auth(&token)
                .header("idempotency-key", common::key())
                .json(&body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        });
    }
    let results = race.join_all().await;
    let won: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).collect();
    let other: Vec<_> =
        results.iter().filter(|(s, _)| *s != StatusCode::CREATED && *s != StatusCode::CONFLICT).collect();
    assert!(other.is_empty(), "every answer is 201 or 409: {other:?}");
    assert_eq!(won.len(), 1, "exactly one winner");
    let winner = won[0].1["id"].as_str().unwrap().to_owned();
    drop((a, b));
    let c = open(&file);
    let mut st = c
        .prepare(
            "SELECT id FROM reservations WHERE spot_id = ?1 \
             AND state IN ('held', 'pending_payment', 'confirmed', 'checked_in')",
        )
        .unwrap();
    let live: Vec<String> = st.query_map([&spot], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(live, vec![winner], "exactly one live reservation of the spot, in the file");
    assert_eq!(integrity(&file), ["ok"]);
}

mod records {
    use std::sync::Arc;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
    use parq_server::idempotency::{Begin, IdempotencyStore, RecordId, SqliteRecords, Stored};
    use parq_server::sqlite::SqliteDb;

    fn db(path: &std::path::Path) -> Arc<SqliteDb> {
        Arc::new(SqliteDb::open(path).expect("the server's tables"))
    }

    fn id(key: &str) -> RecordId {
        RecordId { scope: "user:1".into(), key: key.into() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claim_progress_mismatch_replay_release_and_they_outlive_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parq.db");
        drop(parq_sqlite::SqliteStore::open(&path).unwrap());
        let r = SqliteRecords::new(db(&path));
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(matches!(r.begin(&id("k"), &a).await.unwrap(), Begin::Run));
        assert!(matches!(r.begin(&id("k"), &a).await.unwrap(), Begin::InProgress));
        assert!(matches!(r.begin(&id("k"), &b).await.unwrap(), Begin::Mismatch));
        // Another caller's key of the same name is another record.
        let theirs = RecordId { scope: "user:2".into(), key: "k".into() };
        assert!(matches!(r.begin(&theirs, &b).await.unwrap(), Begin::Run));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::LOCATION, HeaderValue::from_static("/api/v1/x/1"));
        let stored = Stored { status: StatusCode::CREATED, headers, body: Bytes::from_static(b"{\"id\":1}") };
        r.complete(&id("k"), &a, stored).await.unwrap();
        // A release after completion keeps the response.
        r.release(&id("k")).await.unwrap();
        // A released claim is free again.
        r.release(&theirs).await.unwrap();
        assert!(matches!(r.begin(&theirs, &a).await.unwrap(), Begin::Run));
        drop(r);

        // Another process (another connection to the file) replays it.
        let r = SqliteRecords::new(db(&path));
        match r.begin(&id("k"), &a).await.unwrap() {
            Begin::Replay(s) => {
                assert_eq!(s.status, StatusCode::CREATED);
                assert_eq!(&s.body[..], b"{\"id\":1}");
                assert_eq!(s.headers.get(header::LOCATION).unwrap(), "/api/v1/x/1");
                assert_eq!(s.headers.get(header::CONTENT_TYPE).unwrap(), "application/json");
            }
            other => panic!("a replay, not {other:?}"),
        }
        assert!(matches!(r.begin(&id("k"), &b).await.unwrap(), Begin::Mismatch));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_many_concurrent_claims_through_two_connections_sets_exactly_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parq.db");
        drop(parq_sqlite::SqliteStore::open(&path).unwrap());
        let stores = [SqliteRecords::new(db(&path)), SqliteRecords::new(db(&path))];
        let mut set = tokio::task::JoinSet::new();
        for i in 0..40 {
            let r = stores[i % 2].clone();
            set.spawn(async move { matches!(r.begin(&id("race"), &[7u8; 32]).await.unwrap(), Begin::Run) });
        }
        let runs = set.join_all().await.into_iter().filter(|r| *r).count();
        assert_eq!(runs, 1);
    }
}

/// On SQLite, a cancellation's revocation and an uploaded gate reading are in the file: after a
/// restart a gate syncing gets the same revocations and the same record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_and_gate_readings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        store_url: String::new(),
        data_dir: Some(dir.path().display().to_string()),
        pass_signing_key: Some("3c".repeat(32)),
        ..common::config()
    };
    let s = common::start_with(config.clone()).await;
    let demo = s.demo().clone();
    let lot = demo.lot("Eleftheria").unwrap().to_string();
    let token = s.driver("lite@example.cy").await;
    let (id, pass) = journeys::paid_with_pass(&s, &token, &lot, common::window(0, 2)).await;
    common::expect(
        s.post(&format!("/api/v1/reservations/{id}/cancel"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    let delta = journeys::revocations(&s, &demo.gate_key, 0).await;
    let revs = delta["revocations"].as_array().unwrap();
    assert_eq!((revs.len(), delta["to"].as_u64()), (1, Some(1)), "{delta}");
    assert_eq!((&revs[0]["version"], &revs[0]["reservation"]), (&json!(1), &json!(id)));
    let batch = json!({ "scans": [{ "scan_id": "s-1", "pass": pass, "lot_id": lot, "direction": "entry",
                                    "gate": "north", "at": jiff::Timestamp::now().to_string() }] });
    let uploaded = journeys::upload(&s, &demo.gate_key, &batch).await;
    assert_eq!(uploaded["scans"][0]["conflict"], "allowed_but_refused");
    s.running.shutdown().await;

    let s = common::start_with(config).await;
    assert_eq!(journeys::revocations(&s, &demo.gate_key, 0).await, delta, "the same after a restart");
    let none = journeys::revocations(&s, &demo.gate_key, 1).await;
    assert_eq!(
        (none["from"].as_u64(), none["to"].as_u64(), none["revocations"].as_array().map(Vec::len)),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(
        journeys::upload(&s, &demo.gate_key, &batch).await,
        uploaded,
        "the reading's record survives too"
    );
    s.running.shutdown().await;
}
