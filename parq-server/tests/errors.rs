//! The error contract: every core error has its problem type and status, and malformed input
//! is a 4xx problem, never a 500.

mod common;

use common::{expect, expect_problem, key, window};
use parq_core::pass::Refusal;
use parq_core::{ConflictReason, Error, ReservationId, ReservationState, SpotId};
use parq_server::Problem;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn fixed_id() -> ReservationId {
    ReservationId::from_uuid(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
}

/// One of each core error, with fixed ids so the snapshot is stable.
fn every_core_error() -> Vec<Error> {
    let id = fixed_id();
    vec![
        Error::Conflict { reason: ConflictReason::SpotTaken { spot: SpotId::from_uuid(Uuid::from_u128(7)) } },
        Error::Conflict { reason: ConflictReason::NoFreeSpot },
        Error::Conflict { reason: ConflictReason::Blackout },
        Error::not_found("reservation 0190"),
        Error::InvalidTransition { id, from: ReservationState::Cancelled, action: "extend" },
        Error::HoldExpired { id },
        Error::StaleFence { id, presented: 1, current: 2 },
        Error::LimitExceeded { limit: "maximum stay of 240 minutes".into() },
        Error::IdempotencyMismatch { key: "k-1".into() },
        Error::PaymentDeclined { reason: "insufficient_funds".into() },
        Error::unavailable("the store is not answering", None),
        Error::Unavailable { message: "maintenance".into(), retryable: false, source: None },
        Error::invalid("window", "must start and end on multiples of 15 minutes"),
        Error::ScanRefused { reason: Refusal::WrongLot },
        Error::Forbidden { message: "not your lot".into() },
        Error::backend("postgres", "connection reset"),
    ]
}

#[test]
fn every_core_error_maps_to_its_problem_type_and_status() {
    let problems: Vec<Problem> = every_core_error().into_iter().map(Problem::from).collect();
    for p in &problems {
        assert_eq!(p.type_uri, format!("https://parq.dev/problems/{}", p.code));
        assert!((400..600).contains(&p.status) && p.status != 500, "{p:?}");
    }
    let status = |code: &str| problems.iter().find(|p| p.code == code).unwrap().status;
    assert_eq!(status("conflict"), 409);
    assert_eq!(status("not_found"), 404);
    assert_eq!(status("hold_expired"), 410);
    assert_eq!(status("idempotency_mismatch"), 422);
    assert_eq!(status("payment_declined"), 402);
    assert_eq!(status("unavailable"), 503);
    assert_eq!(status("backend"), 503);
    assert!(problems.iter().find(|p| p.code == "unavailable").unwrap().retry_after.is_some());
    let backend = problems.iter().find(|p| p.code == "backend").unwrap();
    assert!(!backend.detail.contains("connection reset"), "a backend's own error stays in the logs");
    insta::assert_json_snapshot!("core_errors", problems);
}

/// Requests that are wrong in every way a client gets wrong, each with the problem it gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_a_4xx_problem_and_never_a_500() {
    let s = common::start().await;
    let lot = s.demo().lot("Eleftheria").unwrap().to_string();
    let token = s.driver("errors@example.cy").await;
    let (start, end) = window(24, 2);
    let raw = |method: Method, path: &str, body: &'static str, idem: bool| {
        let mut r = s
            .http
            .request(method, s.url(path))
            .bearer_auth(&token)
            .header("content-type", "application/json");
        if idem {
            r = r.header("idempotency-key", key());
        }
        r.body(body).send()
    };
    let json_post = |path: &'static str, body: Value| s.post(path, Some(&token), body);
    let bad_uuid = "/api/v1/reservations/not-a-uuid";

    let mut snapshots = Vec::new();
    let cases: Vec<(&str, reqwest::Response, &str)> = vec![
        ("syntax", raw(Method::POST, "/api/v1/holds", "{\"lot_id\": ", true).await.unwrap(), "bad_request"),
        (
            "wrong type",
            json_post("/api/v1/holds", json!({ "lot_id": 5, "start": start, "end": end })).await,
            "invalid",
        ),
        (
            "unknown field",
            json_post("/api/v1/holds", json!({ "lot_id": lot, "start": start, "end": end, "colour": "red" }))
                .await,
            "invalid",
        ),
        (
            "end before start",
            json_post(
                "/api/v1/holds",
                json!({ "lot_id": lot, "start": "2031-01-01T12:00:00Z", "end": "2031-01-01T10:00:00Z" }),
            )
            .await,
            "invalid",
        ),
        (
            "misaligned window",
            json_post(
                "/api/v1/holds",
                json!({ "lot_id": lot, "start": "2031-01-01T10:07:00Z", "end": "2031-01-01T11:00:00Z" }),
            )
            .await,
            "invalid",
        ),
        (
            "window in the past",
            json_post(
                "/api/v1/holds",
                json!({ "lot_id": lot, "start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z" }),
            )
            .await,
            "invalid",
        ),
        (
            "too long a stay",
            json_post(
                "/api/v1/holds",
                json!({ "lot_id": lot, "start": start, "end": "2099-01-01T00:00:00Z" }),
            )
            .await,
            "limit_exceeded",
        ),
        (
            "spot and filter",
            json_post(
                "/api/v1/holds",
                json!({ "lot_id": lot, "start": start, "end": end, "spot_id": Uuid::nil(), "filter": {} }),
            )
            .await,
            "invalid",
        ),
        (
            "unknown lot",
            json_post("/api/v1/holds", json!({ "lot_id": Uuid::nil(), "start": start, "end": end })).await,
            "not_found",
        ),
        (
            "no idempotency key",
            raw(Method::POST, "/api/v1/holds", "{}", false).await.unwrap(),
            "idempotency_key_required",
        ),
        (
            "not json",
            s.http
                .post(s.url("/api/v1/holds"))
                .bearer_auth(&token)
                .header("idempotency-key", key())
                .body("lot=1")
                .send()
                .await
                .unwrap(),
            "unsupported_media_type",
        ),
        ("bad id", s.get(bad_uuid, Some(&token)).await, "bad_request"),
        (
            "unknown reservation",
            s.get(&format!("/api/v1/reservations/{}", Uuid::nil()), Some(&token)).await,
            "not_found",
        ),
        (
            "bad timestamp",
            s.get(&format!("/api/v1/lots/{lot}/quote?start=yesterday&end={end}"), None).await,
            "bad_request",
        ),
        ("missing query", s.get(&format!("/api/v1/lots/{lot}/availability"), None).await, "bad_request"),
        (
            "latitude off the globe",
            s.get(&format!("/api/v1/lots?lat=123&lon=33&start={start}&end={end}"), None).await,
            "invalid",
        ),
        ("no route", s.get("/api/v1/nowhere", None).await, "not_found"),
        ("wrong method", s.send(Method::DELETE, "/api/v1/lots", None, None).await, "method_not_allowed"),
        ("no credentials", s.get("/api/v1/me", None).await, "unauthorized"),
        ("unknown token", s.get("/api/v1/me", Some("pqs_0000")).await, "unauthorized"),
        ("driver on operator route", s.get("/api/v1/operator/lots", Some(&token)).await, "forbidden"),
        (
            "bad email",
            s.post(
                "/api/v1/auth/register",
                None,
                json!({ "email": "nobody", "password": "long enough password" }),
            )
            .await,
            "invalid",
        ),
        (
            "short password",
            s.post("/api/v1/auth/register", None, json!({ "email": "x@example.cy", "password": "short" }))
                .await,
            "invalid",
        ),
        (
            "email taken",
            s.post(
                "/api/v1/auth/register",
                None,
                json!({ "email": "errors@example.cy", "password": "long enough password" }),
            )
            .await,
            "email_taken",
        ),
        ("limit out of range", s.get("/api/v1/reservations?limit=0", Some(&token)).await, "invalid"),
        (
            "webhook without signature",
            s.http.post(s.url("/api/v1/webhooks/test")).body("{}").send().await.unwrap(),
            "bad_request",
        ),
        (
            "huge body",
            s.http
                .post(s.url("/api/v1/holds"))
                .bearer_auth(&token)
                .header("idempotency-key", key())
                .header("content-type", "application/json")
                .body(vec![b' '; 1 << 20])
                .send()
                .await
                .unwrap(),
            "payload_too_large",
        ),
    ];
    for (name, resp, code) in cases {
        let status = resp.status();
        assert!(status.is_client_error(), "{name}: {status}");
        let mut p = expect_problem(resp, code).await;
        p.as_object_mut().unwrap().remove("trace_id").expect("every problem carries the trace id");
        snapshots.push(json!({ "case": name, "problem": p }));
    }
    insta::assert_json_snapshot!("malformed_input", snapshots);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let mut config = common::config();
    config.rate_ip = 1;
    config.rate_burst = 2;
    let s = common::start_with(config).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(s.get("/api/v1/passes/keys", None).await);
    }
    let last = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == StatusCode::OK));
    let retry_after: u64 = last.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    expect_problem(last, "rate_limited").await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_id_follows_each_request() {
    let s = common::start().await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = s.http.get(s.url("/api/v1/nowhere")).header("traceparent", parent).send().await.unwrap();
    let echoed = r.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        echoed.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && !echoed.contains("00f067aa0ba902b7")
    );
    let p = expect_problem(r, "not_found").await;
    assert_eq!(p["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let fresh = s.get("/healthz", None).await;
    let tp = fresh.headers()["traceparent"].to_str().unwrap().to_owned();
    assert_eq!(tp.len(), 55, "a new trace when none came: {tp}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let s = common::start().await;
    assert_eq!(expect(s.get("/healthz", None).await, StatusCode::OK).await["status"], "ok");
    let ready = expect(s.get("/readyz", None).await, StatusCode::OK).await;
    for port in ["store", "accounts", "gateway", "notifier"] {
        assert_eq!(ready["backends"][port]["up"], true, "{ready}");
    }
    let token = s.driver("metrics@example.cy").await;
    let lot = s.demo().lot("Limassol Old Port").unwrap().to_string();
    let (start, end) = window(30, 1);
    let body = json!({ "lot_id": lot, "start": start, "end": end, "filter": { "ev": true } });
    expect(s.post("/api/v1/holds", Some(&token), body.clone()).await, StatusCode::CREATED).await;
    expect_problem(s.post("/api/v1/holds", Some(&token), body).await, "conflict").await;
    let m = s.get("/metrics", None).await;
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = m.text().await.unwrap();
    for line in [
        "parq_holds_total{outcome=\"held\"} 1",
        "parq_holds_total{outcome=\"conflict\"} 1",
        "parq_conflicts_total 1",
        "parq_backend_up{port=\"store\",adapter=\"memory\"} 1",
        "parq_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/holds\"} 2",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn unusable_backends_stop_the_start_with_a_clear_message() {
    // Nothing listens on port 1.
    for (key, url, says) in [
        ("store", "postgres://parq:hunter2@127.0.0.1:1/parq", "postgres is unreachable"),
        ("store", "redis://127.0.0.1:1", "Redis store is not built into this binary"),
        ("store", "mysql://parq@db/parq", "not a known backend"),
        ("notifier", "postgres", "needs the store on PostgreSQL"),
    ] {
        let mut config = common::config();
        match key {
            "store" => config.store_url = url.into(),
            _ => config.notifier_url = url.into(),
        }
        let err = parq_server::App::new(config).await.unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    // A Redis lock that is down does not stop the start: holds go to the store until it is back.
    let mut config = common::config();
    config.lock_url = "redis://127.0.0.1:1".into();
    assert!(parq_server::App::new(config).await.is_ok());
}
