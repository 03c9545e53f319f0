//! Several replicas and a new operator, with the real `parq` binary on the PostgreSQL of
//! `PARQ_TEST_PG_URL` (a schema of each test's own): one pass keyring file given to every
//! replica, its rotation and the retirement of a key; an operator made without the demo by
//! `parq operator create` and its keys managed from the CLI and the API; the refusals at start
//! (no keyring with PostgreSQL, bad keyring documents).

mod common;

use std::path::Path;
use std::process::Command;

use common::production::{self, Backing, PARQ, Process};
use jiff::Timestamp;
use parq_core::pass::{Decision, GatePolicy, GateVerifier, PublicKeys, ReentryPolicy, Refusal, Scan};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Runs `parq <args>` with `env` (and nothing else of this process's environment): its exit
/// code, standard output and standard error.
fn parq(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(PARQ)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("parq runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `parq <args>`, which must succeed: its standard output.
fn parq_ok(args: &[&str], env: &[(String, String)]) -> String {
    let (code, out, err) = parq(args, env);
    assert_eq!(code, 0, "parq {args:?} failed: {out}{err}");
    out
}

/// The test's PostgreSQL schema, without Redis, with the keyring in `keys_file`.
fn pg_env(b: &Backing, keys_file: &Path) -> Vec<(String, String)> {
    [
        ("PARQ_STORE_URL", b.pg.as_str()),
        ("PARQ_STORE_SCHEMA", &b.schema),
        ("PARQ_PASS_KEYS_FILE", keys_file.to_str().unwrap()),
        ("PARQ_DEMO", "false"),
        ("PARQ_RATE_IP", "100000"),
        ("PARQ_RATE_USER", "100000"),
        ("PARQ_RATE_KEY", "100000"),
        ("PARQ_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(env: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    env
}

fn serve(env: &[(String, String)]) -> Process {
    production::spawn(&["serve", "--bind", "127.0.0.1:0"], env)
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = http.request(method.clone(), url);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if method != reqwest::Method::GET {
        req = req.header("idempotency-key", uuid::Uuid::now_v7().to_string());
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("answered");
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get(http: &reqwest::Client, url: String, key: Option<&str>) -> (StatusCode, Value) {
    call(http, reqwest::Method::GET, url, key, None).await
}

async fn post(http: &reqwest::Client, url: String, key: Option<&str>, body: Value) -> (StatusCode, Value) {
    call(http, reqwest::Method::POST, url, key, Some(body)).await
}

/// A driver account on `url`: its token.
async fn driver(http: &reqwest::Client, url: &str, email: &str) -> String {
    let creds = json!({ "email": email, "password": "a long enough password" });
    let (status, body) = post(http, format!("{url}/api/v1/auth/register"), None, creds.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post(http, format!("{url}/api/v1/auth/login"), None, creds).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Holds a spot of `lot` on `url` for two hours from now, checks out, and pays with the
/// simulated gateway: the reservation's id.
async fn book(http: &reqwest::Client, url: &str, token: &str, lot: &str) -> String {
    let (start, end) = common::window(0, 2);
    let (status, held) = post(
        http,
        format!("{url}/api/v1/holds"),
        Some(token),
        json!({ "lot_id": lot, "start": start, "end": end }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let id = held["id"].as_str().unwrap().to_owned();
    let (status, checkout) =
        post(http, format!("{url}/api/v1/reservations/{id}/checkout"), Some(token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    let pay = checkout["test_pay_url"].as_str().unwrap();
    let (status, paid) = post(http, format!("{url}{pay}"), Some(token), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{paid}");
    let (status, r) = get(http, format!("{url}/api/v1/reservations/{id}"), Some(token)).await;
    assert_eq!((status, r["state"].as_str()), (StatusCode::OK, Some("confirmed")), "{r}");
    id
}

/// The pass of reservation `id`, as `url` issues it now (JSON).
async fn pass_of(http: &reqwest::Client, url: &str, token: &str, id: &str) -> Value {
    let (status, pass) = get(http, format!("{url}/api/v1/reservations/{id}/pass"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{pass}");
    pass
}

/// An online scan of `pass` at a gate of `lot` served by `url`.
async fn scan(http: &reqwest::Client, url: &str, gate_key: &str, pass: &Value, direction: &str) -> Value {
    let body = json!({
        "pass": pass["text"], "lot_id": pass["lot_id"], "direction": direction, "gate": "north-1",
        "scan_id": uuid::Uuid::now_v7().to_string(),
    });
    let (status, decision) = post(http, format!("{url}/api/v1/gates/scan"), Some(gate_key), body).await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    decision
}

/// The public keys `url` publishes: by id.
async fn published(http: &reqwest::Client, url: &str) -> (Vec<u64>, PublicKeys) {
    let (status, body) = get(http, format!("{url}/api/v1/passes/keys"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = body["keys"].as_array().unwrap().iter().map(|k| k["id"].as_u64().unwrap()).collect();
    (ids, serde_json::from_value(body["keys"].clone()).expect("the keys read as a gate reads them"))
}

/// What an offline gate of `lot` decides on an entry with `pass`, given `keys` (a gate that
/// has seen nothing else).
fn offline(keys: PublicKeys, pass: &Value) -> Decision {
    let lot = pass["lot_id"].as_str().unwrap().parse().unwrap();
    let policy =
        GatePolicy { grace: jiff::SignedDuration::from_mins(15), reentry: ReentryPolicy::NotAllowed };
    GateVerifier::new(keys, policy).scan(pass["text"].as_str().unwrap(), &Scan::entry(lot, Timestamp::now()))
}

/// Makes an operator with `parq operator create`, a lot of three spots through the API with
/// its key, and a gate key with `parq key create`: (operator id, operator key, gate key, lot).
async fn operator_with_a_lot(
    http: &reqwest::Client,
    env: &[(String, String)],
    url: &str,
    name: &str,
) -> (String, String, String, String) {
    let made: Value =
        serde_json::from_str(&parq_ok(&["operator", "create", "--name", name, "--json"], env)).unwrap();
    let (operator, key) = (made["operator_id"].as_str().unwrap(), made["key"].as_str().unwrap());
    assert!(key.starts_with("pqk_"), "{made}");
    let lot = json!({
        "name": format!("{name} Seafront"),
        "location": { "lat": 34.9125, "lon": 33.6379 },
        "time_zone": "Asia/Nicosia",
        "rates": { "currency": "EUR", "lines": [{ "kind": "flat", "amount": 250 }] },
    });
    let (status, lot) = post(http, format!("{url}/api/v1/operator/lots"), Some(key), lot).await;
    assert_eq!(status, StatusCode::CREATED, "{lot}");
    let lot = lot["id"].as_str().unwrap().to_owned();
    for label in ["S-1", "S-2", "S-3"] {
        let (status, spot) = post(
            http,
            format!("{url}/api/v1/operator/lots/{lot}/spots"),
            Some(key),
            json!({ "label": label }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{spot}");
    }
    let gate: Value = serde_json::from_str(&parq_ok(
        &["key", "create", "--operator", operator, "--role", "gate", "--name", "north gate", "--json"],
        env,
    ))
    .unwrap();
    assert_eq!(gate["role"], "gate", "{gate}");
    (operator.to_owned(), key.to_owned(), gate["key"].as_str().unwrap().to_owned(), lot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_one_keyring_accept_each_others_passes_through_a_rotation_and_a_retirement() {
    let b = Backing::new().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("pass-keys.toml");
    let said = parq_ok(&["keys", "generate", "--out", keys.to_str().unwrap()], &[]);
    assert!(said.contains("PARQ_PASS_KEYS_FILE"), "{said}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the keyring is readable by its owner only: {mode:o}");
    }
    let (code, _, err) = parq(&["keys", "generate", "--out", keys.to_str().unwrap()], &[]);
    assert!(code != 0 && err.contains("exists"), "an existing keyring is never overwritten: {err}");
    let env = pg_env(&b, &keys);
    production::migrate(&env);
    let http = reqwest::Client::new();

    let (a, bb) = (serve(&env), serve(&env));
    let (_operator, _key, gate, lot) = operator_with_a_lot(&http, &env, &a.url, "Larnaca Parking").await;
    let token = driver(&http, &a.url, "andreas@example.cy").await;

    // Two paid reservations. (Booked before the restarts below: the simulated gateway of
    // each process numbers its payments from 1 again after a restart.)
    let (r1, r2) = (book(&http, &a.url, &token, &lot).await, book(&http, &a.url, &token, &lot).await);

    // A pass issued by replica A, signed by key 1, opens a gate served by replica B, and an
    // offline gate given B's published keys.
    let first = pass_of(&http, &a.url, &token, &r1).await;
    assert_eq!(first["key_id"], 1, "{first}");
    let (ids_a, keys_a) = published(&http, &a.url).await;
    let (ids_b, keys_b) = published(&http, &bb.url).await;
    assert_eq!((ids_a.as_slice(), ids_b.as_slice()), ([1].as_slice(), [1].as_slice()));
    assert_eq!(keys_a, keys_b, "both replicas publish the same key");
    assert_eq!(offline(keys_b.clone(), &first), Decision::Allow);
    assert_eq!(scan(&http, &bb.url, &gate, &first, "entry").await, json!({ "decision": "allow" }));

    // Rotation: a key is added to the file, and both replicas restart with it.
    drop((a, bb));
    let said = parq_ok(&["keys", "rotate", keys.to_str().unwrap()], &[]);
    assert!(said.contains("added key 2"), "{said}");
    let listed = parq_ok(&["keys", "list", keys.to_str().unwrap()], &[]);
    assert!(listed.contains("verifies") && listed.contains("signs"), "{listed}");
    let text = std::fs::read_to_string(&keys).unwrap();
    let (a, bb) = (serve(&env), serve(&env));
    let (ids_b, keys_b) = published(&http, &bb.url).await;
    assert_eq!(ids_b, [1, 2]);
    assert_eq!(published(&http, &a.url).await.1, keys_b);
    // The old pass still verifies, online (its vehicle leaves through B) and offline.
    assert_eq!(offline(keys_b.clone(), &first), Decision::Allow);
    assert_eq!(scan(&http, &bb.url, &gate, &first, "exit").await, json!({ "decision": "allow" }));
    // A pass issued now is signed by key 2, and opens B's gate and an offline one.
    let second = pass_of(&http, &a.url, &token, &r2).await;
    assert_eq!(second["key_id"], 2, "{second}");
    assert_eq!(offline(keys_b.clone(), &second), Decision::Allow);
    assert_eq!(scan(&http, &bb.url, &gate, &second, "entry").await, json!({ "decision": "allow" }));

    // Key 2 signs, so it cannot be retired; key 1 can, and then its passes are refused.
    let (code, _, err) = parq(&["keys", "retire", keys.to_str().unwrap(), "2"], &[]);
    assert!(code != 0 && err.contains("rotate"), "{err}");
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), text, "a refused retirement changes nothing");
    drop((a, bb));
    let said = parq_ok(&["keys", "retire", keys.to_str().unwrap(), "1"], &[]);
    assert!(said.contains("retired key 1"), "{said}");
    let (a, bb) = (serve(&env), serve(&env));
    let (ids_b, keys_b) = published(&http, &bb.url).await;
    assert_eq!(ids_b, [2], "a retired key is not published");
    assert_eq!(offline(keys_b.clone(), &first), Decision::Refuse(Refusal::UnknownKey));
    assert_eq!(
        scan(&http, &bb.url, &gate, &first, "entry").await,
        json!({ "decision": "refuse", "reason": "unknown_key" })
    );
    assert_eq!(offline(keys_b, &second), Decision::Allow, "key 2's passes still open");
    assert_eq!(scan(&http, &a.url, &gate, &second, "exit").await, json!({ "decision": "allow" }));
    drop((a, bb));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_operator_on_a_fresh_postgres_deployment_from_the_cli_and_the_api() {
    let b = Backing::new().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("pass-keys.toml");
    parq_ok(&["keys", "generate", "--out", keys.to_str().unwrap()], &[]);
    const ADMIN: &str = "admin-key-for-the-platform-0123456789";
    let env = with(&pg_env(&b, &keys), &[("PARQ_ADMIN_KEY", ADMIN)]);

    // Before `parq migrate`, the CLI says to run it.
    let (code, _, err) = parq(&["operator", "create", "--name", "Too Early"], &env);
    assert!(code != 0 && err.contains("parq migrate"), "{err}");
    let migrated = parq_ok(&["migrate"], &env);
    assert!(migrated.contains("server: applied 0004 keys"), "{migrated}");
    let s = serve(&env);
    let url = s.url.clone();
    let http = reqwest::Client::new();
    assert!(
        s.before.iter().all(|l| !l.contains("demo")),
        "the demo is off: nothing of it is printed: {:?}",
        s.before
    );

    // The operator, its lot and spots, and a gate key, all from the CLI and the API.
    let (operator, op_key, gate, lot) = operator_with_a_lot(&http, &env, &url, "Paphos Harbour").await;
    let (status, lots) = get(&http, format!("{url}/api/v1/operator/lots"), Some(&op_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lots["lots"].as_array().unwrap().len(), 1, "{lots}");
    // A driver registers, books and pays; the gate key opens the gate.
    let token = driver(&http, &url, "maria@example.cy").await;
    let booked = book(&http, &url, &token, &lot).await;
    let pass = pass_of(&http, &url, &token, &booked).await;
    assert_eq!(scan(&http, &url, &gate, &pass, "entry").await, json!({ "decision": "allow" }));

    // `parq key list` shows both keys, never the keys themselves.
    let listed = parq_ok(&["key", "list", "--operator", &operator, "--json"], &env);
    assert!(!listed.contains(&op_key) && !listed.contains(&gate), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let roles: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["operator", "gate"], "{listed}");
    let gate_id = listed[1]["id"].as_str().unwrap().to_owned();
    let text = parq_ok(&["key", "list", "--operator", &operator], &env);
    assert!(text.contains(&gate_id) && text.contains("north gate"), "{text}");

    // `parq key revoke`: the gate key is refused at once.
    let said = parq_ok(&["key", "revoke", &gate_id], &env);
    assert!(said.contains("revoked"), "{said}");
    let body = json!({ "pass": pass["text"], "lot_id": lot, "direction": "exit", "gate": "north-1" });
    let (status, problem) = post(&http, format!("{url}/api/v1/gates/scan"), Some(&gate), body.clone()).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "{problem}"
    );
    let again = parq_ok(&["key", "revoke", &gate_id], &env);
    assert!(again.contains("revoked already"), "{again}");
    let (code, _, err) = parq(&["key", "revoke", &uuid::Uuid::now_v7().to_string()], &env);
    assert!(code != 0 && err.contains("no API key"), "{err}");
    let (code, _, err) =
        parq(&["key", "create", "--operator", &uuid::Uuid::now_v7().to_string(), "--role", "gate"], &env);
    assert!(code != 0 && err.contains("not found"), "an unknown operator: {err}");

    // The API: the operator lists its keys, makes a gate key, and revokes it.
    let (status, listed) = get(&http, format!("{url}/api/v1/operator/keys"), Some(&op_key)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let keys_now = listed["keys"].as_array().unwrap();
    assert_eq!(keys_now.len(), 2, "{listed}");
    assert!(keys_now[1]["revoked_at"].is_string() && keys_now[0].get("revoked_at").is_none(), "{listed}");
    assert!(!listed.to_string().contains("pqk_"), "no key in a listing: {listed}");
    let (status, made) = post(
        &http,
        format!("{url}/api/v1/operator/keys"),
        Some(&op_key),
        json!({ "name": "south gate", "role": "gate" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (south, south_id) =
        (made["key"].as_str().unwrap().to_owned(), made["id"].as_str().unwrap().to_owned());
    assert_eq!(scan(&http, &url, &south, &pass, "exit").await, json!({ "decision": "allow" }));
    let (status, revoked) = call(
        &http,
        reqwest::Method::DELETE,
        format!("{url}/api/v1/operator/keys/{south_id}"),
        Some(&op_key),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let (status, _) = post(&http, format!("{url}/api/v1/gates/scan"), Some(&south), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked through the API: refused at once");

    // The admin API makes a second operator; it sees none of the first one's keys and lots.
    let new_op = json!({ "name": "Ayia Napa Parking", "max_holds_per_user": 2 });
    let (status, p) = post(&http, format!("{url}/api/v1/admin/operators"), None, new_op.clone()).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{p}");
    let (status, p) =
        post(&http, format!("{url}/api/v1/admin/operators"), Some(&op_key), new_op.clone()).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{p}");
    let (status, other) = post(&http, format!("{url}/api/v1/admin/operators"), Some(ADMIN), new_op).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_eq!(
        (other["name"].as_str(), other["max_holds_per_user"].as_u64()),
        (Some("Ayia Napa Parking"), Some(2))
    );
    let other_key = other["key"]["key"].as_str().unwrap().to_owned();
    assert_eq!(other["key"]["role"], "operator");
    let (status, lots) = get(&http, format!("{url}/api/v1/operator/lots"), Some(&other_key)).await;
    assert_eq!((status, lots["lots"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{lots}");
    let first_op_key_id = keys_now[0]["id"].as_str().unwrap();
    let (status, p) = call(
        &http,
        reqwest::Method::DELETE,
        format!("{url}/api/v1/operator/keys/{first_op_key_id}"),
        Some(&other_key),
        None,
    )
    .await;
    assert_eq!(
        (status, p["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "another's key: {p}"
    );
    let (status, p) =
        post(&http, format!("{url}/api/v1/admin/operators"), Some(ADMIN), json!({ "name": " " })).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{p}");
    // An operator's last working operator key is kept.
    let other_key_id = other["key"]["id"].as_str().unwrap();
    let (status, p) = call(
        &http,
        reqwest::Method::DELETE,
        format!("{url}/api/v1/operator/keys/{other_key_id}"),
        Some(&other_key),
        None,
    )
    .await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{p}");
    let (status, _) = get(&http, format!("{url}/api/v1/operator/lots"), Some(&other_key)).await;
    assert_eq!(status, StatusCode::OK, "the last operator key still works");

    // `parq key revoke` of the first operator's key: its API calls are refused at once.
    let op_key_id = keys_now[0]["id"].as_str().unwrap();
    parq_ok(&["key", "revoke", op_key_id], &env);
    let (status, _) = get(&http, format!("{url}/api/v1/operator/lots"), Some(&op_key)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_without_a_keyring_and_bad_keyrings_are_refused_at_start() {
    let b = Backing::new().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("pass-keys.toml");
    parq_ok(&["keys", "generate", "--out", keys.to_str().unwrap()], &[]);
    let env = pg_env(&b, &keys);
    production::migrate(&env);
    let without: Vec<(String, String)> =
        env.iter().filter(|(k, _)| k != "PARQ_PASS_KEYS_FILE").cloned().collect();
    let (code, out, err) = parq(&["serve", "--bind", "127.0.0.1:0"], &without);
    assert_eq!(code, 2, "{out}{err}");
    for says in ["pass_keys", "PARQ_PASS_KEYS_FILE", "parq keys generate"] {
        assert!(err.contains(says), "the refusal says {says:?}: {err}");
    }

    let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    let other = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
    let bad = dir.path().join("bad.toml");
    for (doc, says) in [
        (format!("[[keys]]\nid = 1\nseed = \"{}xx\"\n", &seed[..62]), "64 hex digits"),
        (
            format!("[[keys]]\nid = 1\nseed = \"{seed}\"\n\n[[keys]]\nid = 1\nseed = \"{other}\"\n"),
            "appears twice",
        ),
        (format!("[[keys]]\nid = 1\nseed = \"{seed}\"\nretired = true\n"), "no active key"),
        (format!("[[keys]]\nid = 1\nseed = \"{seed}\n"), "not a valid TOML"),
    ] {
        std::fs::write(&bad, &doc).unwrap();
        let env = with(&without, &[("PARQ_PASS_KEYS_FILE", bad.to_str().unwrap())]);
        let (code, out, err) = parq(&["serve", "--bind", "127.0.0.1:0"], &env);
        assert_eq!(code, 2, "{doc}: {out}{err}");
        assert!(err.contains("pass_keys") && err.contains(says), "{doc}: {err}");
        assert!(!err.contains(&seed[..12]) && !err.contains(&other[..12]), "no seed in the message: {err}");
        let (code, _, err) = parq(&["keys", "rotate", bad.to_str().unwrap()], &[]);
        assert!(code != 0 && err.contains(says), "{err}");
    }
    let env =
        with(&without, &[("PARQ_PASS_KEYS_FILE", keys.to_str().unwrap()), ("PARQ_PASS_SIGNING_KEY", seed)]);
    let (code, _, err) = parq(&["serve", "--bind", "127.0.0.1:0"], &env);
    assert!(code == 2 && err.contains("both"), "{err}");
    let env = with(&without, &[("PARQ_PASS_KEYS_FILE", keys.to_str().unwrap()), ("PARQ_ADMIN_KEY", "short")]);
    let (code, _, err) = parq(&["serve", "--bind", "127.0.0.1:0"], &env);
    assert!(code == 2 && err.contains("admin_key") && !err.contains("short"), "{err}");

    // `pass_signing_key` alone is a keyring of one key, id 1.
    let http = reqwest::Client::new();
    let s = serve(&with(&without, &[("PARQ_PASS_SIGNING_KEY", seed)]));
    let (ids, keys) = published(&http, &s.url).await;
    assert_eq!(ids, [1]);
    let expected = parq_core::pass::KeySeed::from_hex(seed).unwrap().public_key();
    assert_eq!(keys.get(parq_core::pass::KeyId(1)), Some(&expected));
    // Without admin_key, the admin API is off and says so.
    let (status, p) =
        post(&http, format!("{}/api/v1/admin/operators", s.url), None, json!({ "name": "X" })).await;
    assert_eq!((status, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("admin_key"), "{p}");
    let logged: Vec<String> = s.lines.try_iter().collect();
    assert!(!logged.iter().any(|l| l.contains(&seed[..12])), "no seed in the logs: {logged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sqlite_file_keeps_the_keyring_it_made_so_passes_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = with(&[], &[("PARQ_DATA_DIR", dir.path().to_str().unwrap()), ("PARQ_LOG", "warn")]);
    let http = reqwest::Client::new();
    let s = serve(&env);
    let (ids, first) = published(&http, &s.url).await;
    assert_eq!(ids, [1]);
    drop(s);
    let s = serve(&env);
    assert_eq!(published(&http, &s.url).await.1, first, "the same key after a restart");
    drop(s);
    let file = std::fs::read(dir.path().join("parq.db")).unwrap();
    assert!(!file.is_empty());
}
