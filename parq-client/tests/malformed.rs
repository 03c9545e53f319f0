//! Answers that are not what the API promises are typed errors, never panics; and the retry
//! policy seen from the wire: what is retried, how often, after how long, with which key.
//! The "server" here is a tiny loopback HTTP server that answers from a script.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parq_client::{Client, ClientError, LotId, ReservationId, RetryPolicy, SpotChoice, SpotFilter, Window};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One canned answer: raw bytes written back, then the connection closes.
fn http(status: &str, content_type: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What the fake server saw: each request's head.
type Seen = Arc<Mutex<Vec<String>>>;

/// Serves `answers` in order, one per connection (the last one again when they run out).
async fn fake(answers: Vec<Vec<u8>>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut i = 0;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let answer = answers[i.min(answers.len() - 1)].clone();
            i += 1;
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&got).into_owned());
                let _ = sock.write_all(&answer).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, seen)
}

fn client(url: &str, retries: u32) -> Client {
    Client::builder(url)
        .timeout(Duration::from_secs(5))
        .retry(RetryPolicy {
            max_retries: retries,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(3),
        })
        .build()
        .unwrap()
}

fn lot() -> LotId {
    LotId(uuid::Uuid::now_v7())
}

#[tokio::test]
async fn answers_that_break_the_contract_are_malformed_response_errors() {
    let reservation = r#"{"id":"0190b7a0-0000-7000-8000-000000000000","state":"held"}"#;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("HTML instead of JSON", http("200 OK", "text/html", "", "<html>hello</html>")),
        ("JSON that is not JSON", http("200 OK", "application/json", "", "{\"lot\": ")),
        ("JSON of the wrong shape", http("200 OK", "application/json", "", reservation)),
        ("a wrong type inside", http("200 OK", "application/json", "", r#"{"lot":{"id":42},"spots":[]}"#)),
        ("an error without a problem", http("500 Internal Server Error", "text/plain", "", "oops")),
        ("a problem that is not JSON", http("409 Conflict", "application/problem+json", "", "<<<")),
        ("an empty body", http("200 OK", "application/json", "", "")),
        ("a 2xx of the wrong kind", http("204 No Content", "", "", "")),
    ];
    for (what, answer) in cases {
        let (url, _) = fake(vec![answer]).await;
        let e = client(&url, 0).lot(lot()).await.expect_err(what);
        assert!(matches!(e, ClientError::MalformedResponse { .. }), "{what}: {e:?}");
        assert_eq!(e.code(), "malformed_response");
        assert!(!e.is_retryable(), "{what}");
    }
    // Not HTTP at all: the connection yields no answer.
    let (url, _) = fake(vec![b"\x00\x01garbage\r\n\r\n".to_vec()]).await;
    let e = client(&url, 0).lot(lot()).await.unwrap_err();
    assert!(matches!(e, ClientError::Transport { .. }), "{e:?}");
    // An image that is not one.
    let (url, _) = fake(vec![http("200 OK", "image/png", "", "GIF89a")]).await;
    let e = client(&url, 0).pass_png(ReservationId(uuid::Uuid::now_v7())).await.unwrap_err();
    assert!(matches!(e, ClientError::MalformedResponse { status: 200, .. }), "{e:?}");
}

#[tokio::test]
async fn problems_keep_their_members_and_unknown_codes_are_server_errors() {
    let body = r#"{"type":"https://parq.dev/problems/brand_new","title":"New","status":418,"detail":"d","code":"brand_new","trace_id":"abc"}"#;
    let (url, _) = fake(vec![http("418 I'm a teapot", "application/problem+json", "", body)]).await;
    let e = client(&url, 0).lot(lot()).await.unwrap_err();
    match &e {
        ClientError::Server { problem } => {
            assert_eq!(problem.code, "brand_new");
            assert_eq!(problem.trace_id.as_deref(), Some("abc"));
        }
        other => panic!("{other:?}"),
    }
    // A 502 from a proxy in between, with HTML: unavailable, retryable.
    let (url, _) = fake(vec![http("502 Bad Gateway", "text/html", "", "<h1>bad gateway</h1>")]).await;
    let e = client(&url, 0).lot(lot()).await.unwrap_err();
    assert!(matches!(e, ClientError::Unavailable { retryable: true, .. }), "{e:?}");
}

#[tokio::test]
async fn gets_are_retried_on_503_and_429_honouring_retry_after() {
    let details = r#"{"lot":{"bad":true}}"#;
    let busy = http(
        "503 Service Unavailable",
        "application/problem+json",
        "retry-after: 1\r\n",
        r#"{"type":"https://parq.dev/problems/unavailable","title":"t","status":503,"detail":"busy","code":"unavailable","retryable":true}"#,
    );
    let limited = http(
        "429 Too Many Requests",
        "application/problem+json",
        "retry-after: 1\r\n",
        r#"{"type":"https://parq.dev/problems/rate_limited","title":"t","status":429,"detail":"slow down","code":"rate_limited"}"#,
    );
    let (url, seen) =
        fake(vec![busy.clone(), limited, http("200 OK", "application/json", "", details)]).await;
    let started = Instant::now();
    // The third answer is (deliberately) not a lot: the point is that it was asked for.
    let e = client(&url, 3).lot(lot()).await.unwrap_err();
    assert!(matches!(e, ClientError::MalformedResponse { status: 200, .. }), "{e:?}");
    assert_eq!(seen.lock().unwrap().len(), 3, "two retries");
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After was honoured: {:?}", started.elapsed());

    // Out of retries: the last error, typed.
    let (url, seen) = fake(vec![busy.clone()]).await;
    let e = client(&url, 1).lot(lot()).await.unwrap_err();
    assert!(matches!(e, ClientError::Unavailable { retryable: true, retry_after: Some(_), .. }), "{e:?}");
    assert_eq!(seen.lock().unwrap().len(), 2);

    // A server asking to wait longer than the policy allows gets the error at once.
    let (url, seen) = fake(vec![http(
        "429 Too Many Requests",
        "application/problem+json",
        "retry-after: 3600\r\n",
        r#"{"code":"rate_limited","status":429,"detail":"later"}"#,
    )])
    .await;
    let e = client(&url, 3).lot(lot()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A refusal that is not retryable is not retried.
    let (url, seen) = fake(vec![http(
        "503 Service Unavailable",
        "application/problem+json",
        "",
        r#"{"code":"unavailable","status":503,"detail":"no","retryable":false}"#,
    )])
    .await;
    let e = client(&url, 3).lot(lot()).await.unwrap_err();
    assert!(matches!(e, ClientError::Unavailable { retryable: false, .. }), "{e:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unsafe_requests_are_retried_only_with_their_idempotency_key() {
    let gone = http("504 Gateway Timeout", "text/plain", "", "upstream timed out");
    let (url, seen) = fake(vec![gone]).await;
    let c = client(&url, 2).with_token("pqs_token");
    let start = jiff::Timestamp::from_second(1_900_000_000).unwrap();
    let w = Window::new(start, start + jiff::SignedDuration::from_hours(1)).unwrap();
    let e = c.hold(lot(), w, SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap_err();
    assert!(matches!(e, ClientError::Unavailable { .. }), "{e:?}");
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 3, "the first attempt and two retries");
    let keys: Vec<String> = heads
        .iter()
        .map(|h| {
            h.lines()
                .find_map(|l| l.strip_prefix("idempotency-key: "))
                .expect("every attempt carries the key")
                .to_owned()
        })
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "the same key on every attempt: {keys:?}");
    assert!(heads.iter().all(|h| h.contains("authorization: Bearer pqs_token")));
}
