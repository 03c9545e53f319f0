//! Live updates and the web page, checked by the clients people use: the official
//! `socket.io-client` (npm), `python-socketio` (PyPI), and headless Chromium driven by
//! `playwright-core`, each against a server started here on the demo city.
//!
//! Needs `node` with `npm ci` run in `tests/js`, `pip install "python-socketio[asyncio_client]"`,
//! and Debian's `chromium`; `scripts/test` sees to all three.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The clients take turns: Chromium, Node and Python side by side on a small machine would
/// measure the machine, not the server.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a client to completion and returns what it printed; fails the test with its output.
async fn client(program: &'static str, args: Vec<String>, needs: &'static str) -> String {
    let _turn = TURN.lock().await;
    tokio::task::spawn_blocking(move || {
        let out = Command::new(program)
            .args(&args)
            .current_dir(dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} ({needs}): {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{program} {args:?} failed ({needs}):\n{stdout}\n{stderr}");
        print!("{stdout}");
        stdout
    })
    .await
    .unwrap()
}

fn node_modules() {
    let m = dir().join("js/node_modules");
    assert!(
        m.join("socket.io-client").is_dir() && m.join("playwright-core").is_dir(),
        "the JavaScript clients are missing: run `npm ci` in {}",
        dir().join("js").display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_follows_a_lot_gets_its_own_reservations_and_resumes_by_sequence() {
    node_modules();
    let s = common::start().await;
    let lot = s.demo().lot("Eleftheria").unwrap().to_string();
    let out = client("node", vec!["js/live.mjs".into(), s.base.clone(), lot], "npm ci in tests/js").await;
    assert!(out.contains("checks passed"), "{out}");
    // The server counted the three connections it accepted (not the refused one), and all
    // of them are closed once the client is gone.
    let gauge = |metrics: &str, name: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.get("/metrics", None).await.text().await.unwrap();
        if gauge(&metrics, "parq_sockets ") == Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(gauge(&metrics, "parq_socket_connections_total "), Some(3), "{metrics}");
    assert_eq!(gauge(&metrics, "parq_sockets "), Some(0), "{metrics}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socketio_gets_events_after_rest_holds_and_exactly_what_it_missed() {
    let s = common::start().await;
    let lot = s.demo().lot("Limassol Marina").unwrap().to_string();
    client(
        "python3",
        vec!["python/live_client.py".into(), s.base.clone(), lot],
        "pip install \"python-socketio[asyncio_client]\"",
    )
    .await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_map_in_headless_chromium_turns_a_spot_taken_live_and_books_end_to_end() {
    node_modules();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: apt-get install chromium"
    );
    let s = common::start().await;
    // The page for browsers at `/`, the service index for everyone else.
    let html = s.http.get(s.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    assert!(html.text().await.unwrap().contains("/assets/app.js"));
    let index = common::expect(s.get("/", None).await, reqwest::StatusCode::OK).await;
    assert_eq!(index["api"], "/api/v1");
    // The map's configuration, and the demo's free public parking as GeoJSON.
    let map = common::expect(s.get("/api/v1/map/config", None).await, reqwest::StatusCode::OK).await;
    assert_eq!(
        (map["style_url"].clone(), map["tile_url"].clone()),
        (serde_json::Value::Null, serde_json::Value::Null)
    );
    let free = s.get("/api/v1/public-parking", None).await;
    assert_eq!(free.headers()["content-type"], "application/geo+json");
    let free: serde_json::Value = free.json().await.unwrap();
    assert_eq!(free["type"], "FeatureCollection");
    assert!(free["features"].as_array().unwrap().len() >= 2, "{free}");
    assert_eq!(free["features"][0]["geometry"]["type"], "Point");
    let out = client("node", vec!["js/map.mjs".into(), s.base.clone()], "npm ci in tests/js; chromium").await;
    assert!(out.contains(", 0 failed"), "{out}");
    s.running.shutdown().await;
}
