//! A Stripe-configured server (on PostgreSQL and Redis) against localstripe: checkout creates
//! a PaymentIntent there, the driver's card is authorised there, and the signed
//! `payment_intent.amount_capturable_updated` event through `POST /api/v1/webhooks/stripe`
//! confirms the reservation, after which the payment is captured. Needs `localstripe` on the
//! PATH (`pip install localstripe stripe`; scripts/test installs it).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::production::Backing;
use common::{expect, expect_problem, window};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2_digest11::Sha256;

const WEBHOOK_SECRET: &str = "whsec_parq_server_test";

struct LocalStripe {
    child: Child,
    url: String,
}

impl Drop for LocalStripe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn localstripe(http: &reqwest::Client) -> LocalStripe {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = match Command::new("localstripe")
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start localstripe (pip install localstripe stripe): {e}"),
        };
        let mut ls = LocalStripe { child, url: format!("http://127.0.0.1:{port}") };
        for _ in 0..300 {
            if let Ok(Some(_)) = ls.child.try_wait() {
                break;
            }
            let up =
                http.get(format!("{}/v1/balance", ls.url)).basic_auth("sk_test_parq", Some("")).send().await;
            if up.is_ok_and(|r| r.status() == 200) {
                return ls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("localstripe did not come up on a free loopback port");
}

/// A form-encoded call to localstripe, as the driver's app would make it.
async fn call(http: &reqwest::Client, ls: &LocalStripe, path: &str, form: &str) -> Value {
    let r = http
        .post(format!("{}{path}", ls.url))
        .basic_auth("sk_test_parq", Some(""))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {v}");
    v
}

/// `Stripe-Signature: t=…,v1=…` as Stripe computes it.
fn sign(payload: &str, secret: &str) -> String {
    let t = jiff::Timestamp::now().as_second();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_a_signed_stripe_webhook_confirm_the_reservation() {
    let http = reqwest::Client::new();
    let ls = localstripe(&http).await;
    let b = Backing::new().await;
    let mut config = b.config();
    config.gateway = "stripe".into();
    config.stripe_secret_key = Some("sk_test_parq".into());
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    config.stripe_api_base = Some(ls.url.clone());
    config.stripe_send_description = false;
    b.migrate(&config).await;
    let s = common::start_with(config).await;
    let ready = expect(s.get("/readyz", None).await, StatusCode::OK).await;
    assert_eq!(ready["backends"]["gateway"]["adapter"], "stripe", "{ready}");
    assert!(!ready.to_string().contains("sk_test_parq"), "{ready}");

    let lot = s.demo().lot("Limassol Marina").unwrap().to_string();
    let token = s.driver("stripe-driver@example.cy").await;
    let (start, end) = window(6, 2);
    let held = expect(
        s.post("/api/v1/holds", Some(&token), json!({ "lot_id": lot, "start": start, "end": end })).await,
        StatusCode::CREATED,
    )
    .await;
    let id = held["id"].as_str().unwrap().to_owned();
    let checkout = expect(
        s.post(&format!("/api/v1/reservations/{id}/checkout"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(checkout["reservation"]["state"], "pending_payment");
    assert!(checkout.get("test_pay_url").is_none_or(Value::is_null), "{checkout}");
    let intent = checkout["intent"]["id"].as_str().unwrap().to_owned();

    // The driver's card is authorised at "Stripe".
    call(&http, &ls, &format!("/v1/payment_intents/{intent}"), "payment_method=pm_card_visa").await;
    let confirmed = call(&http, &ls, &format!("/v1/payment_intents/{intent}/confirm"), "").await;
    assert_eq!(confirmed["status"], "requires_capture", "{confirmed}");
    assert_eq!(confirmed["metadata"]["reservation"], id.as_str());

    // Stripe's event, signed with the endpoint's secret.
    let deliver = |payload: String, signature: String| {
        s.http
            .post(s.url("/api/v1/webhooks/stripe"))
            .header("stripe-signature", signature)
            .header("content-type", "application/json")
            .body(payload)
            .send()
    };
    let event = json!({
        "id": "evt_parq_authorised",
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "data": { "object": confirmed },
    })
    .to_string();
    let forged = deliver(event.clone(), sign(&event, "whsec_someone_else")).await.unwrap();
    let problem = expect_problem(forged, "invalid").await;
    assert_eq!(problem["field"], "signature", "{problem}");
    let applied =
        expect(deliver(event.clone(), sign(&event, WEBHOOK_SECRET)).await.unwrap(), StatusCode::OK).await;
    assert_eq!(applied["reservation"]["state"], "confirmed", "{applied}");
    let again =
        expect(deliver(event.clone(), sign(&event, WEBHOOK_SECRET)).await.unwrap(), StatusCode::OK).await;
    assert_eq!(again["reservation"]["state"], "confirmed", "a redelivery changes nothing");
    // Confirmed first, then captured: the driver pays only for a reservation they have.
    let pi: Value = http
        .get(format!("{}/v1/payment_intents/{intent}", ls.url))
        .basic_auth("sk_test_parq", Some(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pi["status"], "succeeded", "captured: {pi}");

    // A verified event ParQ does not act on is acknowledged, so Stripe stops sending it.
    let other =
        json!({ "id": "evt_other", "object": "event", "type": "customer.created", "data": { "object": {} } })
            .to_string();
    let ignored =
        expect(deliver(other.clone(), sign(&other, WEBHOOK_SECRET)).await.unwrap(), StatusCode::OK).await;
    assert_eq!(ignored, json!({ "received": true, "ignored": true }));
    // No signature at all is refused.
    let unsigned = s.http.post(s.url("/api/v1/webhooks/stripe")).body(other).send().await.unwrap();
    expect_problem(unsigned, "bad_request").await;
    // The test gateway's routes are not there with Stripe.
    expect_problem(
        s.post(&format!("/api/v1/test-gateway/intents/{intent}/pay"), Some(&token), json!({})).await,
        "not_found",
    )
    .await;
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_provider_that_does_not_answer_is_reported_but_leaves_the_replica_ready() {
    let b = Backing::new().await;
    let mut config = b.config();
    config.gateway = "stripe".into();
    config.stripe_secret_key = Some("sk_test_parq".into());
    config.webhook_secret = Some(WEBHOOK_SECRET.into());
    // Nothing listens on port 1.
    config.stripe_api_base = Some("http://127.0.0.1:1".into());
    b.migrate(&config).await;
    let s = common::start_with(config).await;
    let ready = expect(s.get("/readyz", None).await, StatusCode::OK).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["backends"]["gateway"]["adapter"], "stripe", "{ready}");
    assert_eq!(ready["backends"]["gateway"]["up"], false, "{ready}");
    assert_eq!(ready["backends"]["store"]["up"], true, "{ready}");
    let metrics = s.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.contains("gateway") && l.contains("stripe") && l.ends_with(" 0")),
        "the gateway is down in the metrics too"
    );
    s.running.shutdown().await;
}
