//! Failed logins are throttled per account and per client address: past `login_max_failures`
//! wrong passwords (or TOTP or recovery codes) every login of the account is refused with
//! `429 login_locked` and `Retry-After`, even with the right password, until the lock ends by
//! itself. Look-alike emails are refused. Replicas on one PostgreSQL schema share the counters.
//!
//! The PostgreSQL case needs `PARQ_TEST_PG_URL` (and Redis at `PARQ_TEST_REDIS_URL`, which the
//! shared helpers check); it fails without them.

mod common;

use std::time::Duration;

use common::production::Backing;
use common::{Server, expect, expect_problem};
use jiff::{SignedDuration, Timestamp};
use parq_server::Config;
use parq_server::accounts::totp;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "the right password";
const MAX_FAILURES: u32 = 5;
const LOCK_SECS: u64 = 2;

/// Short locks; the tests' requests come from 127.0.0.1, a proxy they trust, so
/// `X-Forwarded-For` names each client.
fn config() -> Config {
    Config {
        login_max_failures: MAX_FAILURES,
        login_lock_secs: LOCK_SECS,
        login_lock_max_secs: 60,
        trusted_proxies: "127.0.0.1".into(),
        ..common::config()
    }
}

/// A login as the client at `client`.
async fn login(s: &Server, client: &str, body: Value) -> reqwest::Response {
    s.http
        .post(s.url("/api/v1/auth/login"))
        .header("x-forwarded-for", client)
        .header("idempotency-key", common::key())
        .json(&body)
        .send()
        .await
        .expect("the request is answered")
}

/// Asserts a `429 login_locked` with a `Retry-After` of at most the lock, and returns it.
async fn locked(r: reqwest::Response) -> Duration {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=LOCK_SECS).contains(&after), "Retry-After {after}");
    let p = expect_problem(r, "login_locked").await;
    assert!(p["detail"].as_str().unwrap().contains("try again"), "{p}");
    Duration::from_secs(after)
}

/// 50 wrong passwords for one account, each from another address (spread over `servers`):
/// the first `MAX_FAILURES - 1` answer 401, then every one answers 429.
async fn fifty_wrong_passwords(servers: &[&Server], email: &str) {
    for i in 0..50u32 {
        let s = servers[i as usize % servers.len()];
        let client = format!("10.{}.{}.7", i / 200, i % 200);
        let r = login(s, &client, json!({ "email": email, "password": format!("wrong password {i}") })).await;
        if i + 1 < MAX_FAILURES {
            expect_problem(r, "unauthorized").await;
        } else {
            locked(r).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_many_addresses_lock_the_account_until_the_delay_ends() {
    let s = common::start_with(config()).await;
    s.register("eleni@example.cy", PASSWORD).await;
    fifty_wrong_passwords(&[&s], "eleni@example.cy").await;
    // The right password, from an address that never failed, is refused while locked.
    let right = json!({ "email": "eleni@example.cy", "password": PASSWORD });
    let wait = locked(login(&s, "192.0.2.1", right.clone()).await).await;
    // Another account is not locked.
    s.register("nikos@example.cy", PASSWORD).await;
    let other = login(&s, "192.0.2.1", json!({ "email": "nikos@example.cy", "password": PASSWORD })).await;
    expect(other, StatusCode::OK).await;
    // After the delay (no email, no admin) the right password works and clears the counter.
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    let ok = expect(login(&s, "192.0.2.1", right.clone()).await, StatusCode::OK).await;
    assert!(ok["token"].is_string(), "{ok}");
    let wrong =
        login(&s, "192.0.2.1", json!({ "email": "eleni@example.cy", "password": "nope nope nope" })).await;
    expect_problem(wrong, "unauthorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_totp_codes_lock_the_account_and_recovery_counts_agree() {
    let s = common::start_with(config()).await;
    let token = s.driver_with("maria@example.cy", PASSWORD).await;
    let enrol = expect(s.post("/api/v1/me/mfa/totp", Some(&token), json!({})).await, StatusCode::OK).await;
    let seed = enrol["secret"].as_str().unwrap().to_owned();
    let code = totp::generate(&seed, Timestamp::now()).unwrap();
    let enabled = expect(
        s.post("/api/v1/me/mfa/totp/confirm", Some(&token), json!({ "code": code })).await,
        StatusCode::OK,
    )
    .await;
    let recovery = enabled["recovery_codes"][0].as_str().unwrap().to_owned();

    // The right password with wrong codes: counted like wrong passwords.
    let far = totp::generate(&seed, Timestamp::now() + SignedDuration::from_hours(1)).unwrap();
    for i in 0..MAX_FAILURES + 5 {
        let body = json!({ "email": "maria@example.cy", "password": PASSWORD, "totp_code": far });
        let r = login(&s, &format!("10.1.0.{i}"), body).await;
        if i + 1 < MAX_FAILURES {
            let p = expect_problem(r, "unauthorized").await;
            assert_eq!(p["field"], "totp_code", "{p}");
        } else {
            locked(r).await;
        }
    }
    // The right code is refused during the lock, and works after it.
    let next = totp::generate(&seed, Timestamp::now() + SignedDuration::from_secs(30)).unwrap();
    let right = json!({ "email": "maria@example.cy", "password": PASSWORD, "totp_code": next });
    let wait = locked(login(&s, "192.0.2.2", right.clone()).await).await;
    tokio::time::sleep(wait + Duration::from_millis(300)).await;
    expect(login(&s, "192.0.2.2", right).await, StatusCode::OK).await;

    // A recovery code: the login's count is the one /me gives right after.
    let body = json!({ "email": "maria@example.cy", "password": PASSWORD, "recovery_code": recovery });
    let session = expect(login(&s, "192.0.2.2", body).await, StatusCode::OK).await;
    assert_eq!(session["user"]["recovery_codes_left"], 9, "{session}");
    let me = expect(s.get("/api/v1/me", session["token"].as_str()).await, StatusCode::OK).await;
    assert_eq!(me["recovery_codes_left"], session["user"]["recovery_codes_left"], "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alike_emails_are_refused_or_folded() {
    let s = common::start_with(config()).await;
    for email in ["a\u{200b}\u{202e}@x.cy", "a\u{202e}b@x.cy", "eleni\u{2066}@example.cy", "a\u{feff}@x.cy"] {
        let r = s.post("/api/v1/auth/register", None, json!({ "email": email, "password": PASSWORD })).await;
        let p = expect_problem(r, "invalid").await;
        assert_eq!(p["field"], "email", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("invisible"), "{p}");
        let r = login(&s, "192.0.2.3", json!({ "email": email, "password": PASSWORD })).await;
        expect_problem(r, "invalid").await;
    }
    // Full-width letters, case and spaces fold to one address: no second account.
    s.register("eleni@example.cy", PASSWORD).await;
    let r = s
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "email": " ＥＬＥＮＩ@Example.CY", "password": PASSWORD }),
        )
        .await;
    expect_problem(r, "email_taken").await;
    let r = login(&s, "192.0.2.3", json!({ "email": "ＥＬＥＮＩ@example.cy ", "password": PASSWORD })).await;
    expect(r, StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_postgresql_schema_share_the_counter() {
    let b = Backing::new().await;
    let config = Config {
        login_max_failures: MAX_FAILURES,
        login_lock_secs: 30,
        login_lock_max_secs: 60,
        trusted_proxies: "127.0.0.1".into(),
        ..b.config()
    };
    b.migrate(&config).await;
    let one = common::start_with(config.clone()).await;
    let two = common::start_with(Config { demo: Some(false), ..config }).await;
    one.register("andreas@example.cy", PASSWORD).await;
    // The failures alternate between the replicas; the fifth, wherever it lands, locks.
    for i in 0..MAX_FAILURES {
        let s = if i % 2 == 0 { &one } else { &two };
        let r = login(
            s,
            &format!("10.2.0.{i}"),
            json!({ "email": "andreas@example.cy", "password": "wrong wrong" }),
        )
        .await;
        if i + 1 < MAX_FAILURES {
            expect_problem(r, "unauthorized").await;
        } else {
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        }
    }
    let right = json!({ "email": "andreas@example.cy", "password": PASSWORD });
    for s in [&one, &two] {
        let r = login(s, "192.0.2.4", right.clone()).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "both replicas refuse the right password");
        expect_problem(r, "login_locked").await;
    }
}
