//! The `parq` binary: serve prints its address and JSON logs with trace ids, stops cleanly on
//! SIGTERM; migrate says what it did; an unreachable or unconfigured backend stops it at start-up.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PARQ: &str = env!("CARGO_BIN_EXE_parq");

#[test]
fn serve_logs_json_with_trace_ids_and_stops_on_sigterm() {
    let mut child = Command::new(PARQ)
        // `--listen` is `--bind` by another name.
        .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
        .env("PARQ_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The banner is on standard error; standard output has only JSON log lines.
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (banner_tx, banner) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = banner_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = banner.recv_timeout(Duration::from_secs(20)).expect("parq prints its address on stderr");
        lines.push(line.clone());
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_owned();
        }
    };
    assert!(lines.iter().any(|l| l.contains("Eleftheria Square")), "the demo city is listed: {lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("demo gate key:     pqk_")), "{lines:?}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let status = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/healthz"))
            .header("traceparent", parent)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);

    let logged = loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("the request is logged");
        assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok(), "only JSON on stdout: {line:?}");
        if line.contains("/healthz") {
            break line;
        }
    };
    let entry: serde_json::Value = serde_json::from_str(&logged).expect("log lines are JSON");
    assert_eq!(entry["span"]["trace_id"], "0af7651916cd43dd8448eb211c80319c", "{entry}");
    assert_eq!(entry["fields"]["status"], 200, "{entry}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "a SIGTERM is a clean stop: {exit:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("finishing requests in flight")), "{rest:?}");
    for line in &rest {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "standard output has only JSON log lines: {line:?}");
    }
}

#[test]
fn migrate_on_memory_and_unusable_backends_refused() {
    let out = Command::new(PARQ).arg("migrate").env("PARQ_STORE_URL", "memory:").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to migrate"));

    // Nothing listens on port 1: the server refuses to start, without repeating the password.
    let out = Command::new(PARQ)
        .args(["serve", "--store", "postgres://parq:hunter2@127.0.0.1:1/parq"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres is unreachable"), "{err}");
    assert!(!err.contains("hunter2"), "the password in the URL is not printed: {err}");

    let out = Command::new(PARQ).args(["serve", "--memory"]).env("PARQ_GATEWAY", "stripe").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stripe_secret_key"));
}

#[test]
fn config_keys_lists_every_key_and_its_variables_without_reading_the_configuration() {
    // A configuration that would not load does not stop it: it reads none.
    let out = Command::new(PARQ).args(["config", "keys"]).env("PARQ_RATE_IP", "lots").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert!(lines.iter().all(|l| l.len() == 3), "key, kind, variables: {text}");
    assert!(lines.contains(&vec!["store_url", "secret", "PARQ_STORE_URL PARQ_STORE_URL_FILE"]), "{text}");
    assert!(lines.contains(&vec!["shutdown_grace_secs", "integer", "PARQ_SHUTDOWN_GRACE_SECS"]), "{text}");
    assert!(lines.contains(&vec!["bind", "string", "PARQ_BIND"]), "{text}");
    // What it lists is what `serve` reads: a listed variable with a wrong value stops it.
    let out = Command::new(PARQ)
        .args(["serve", "--memory"])
        .env("PARQ_SHUTDOWN_GRACE_SECS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shutdown_grace_secs"));
}
