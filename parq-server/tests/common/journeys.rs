//! The driver's whole journey over real HTTP: register, TOTP, login, search, hold, pay, pass,
//! gates, and a cancellation with a refund. Each journey takes a started server, so the same
//! journey runs on memory (`journey.rs`) and on PostgreSQL and Redis (`production.rs`); each
//! expects the demo city in a store of its own.

use jiff::{SignedDuration, Timestamp};
use parq_server::accounts::totp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Server, expect, expect_problem, key, window};

const PASSWORD: &str = "correct horse battery staple";

/// Register, TOTP, login, search, hold, pay, pass, gates, and a cancellation with a refund.
pub async fn driver_journey_from_registration_to_the_gate_and_a_refund(s: Server) {
    let lot = s.demo().lot("Eleftheria").unwrap().to_string();
    let gate_key = s.demo().gate_key.clone();

    // Register, log in, enrol TOTP and confirm it.
    let account = s.register("Eleni@Example.CY", PASSWORD).await;
    assert_eq!(account["email"], "eleni@example.cy");
    assert_eq!(account["role"], "driver");
    let token = s.login("eleni@example.cy", PASSWORD).await;
    let enrol = expect(s.post("/api/v1/me/mfa/totp", Some(&token), json!({})).await, StatusCode::OK).await;
    let seed = enrol["secret"].as_str().unwrap().to_owned();
    assert!(
        enrol["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/ParQ:eleni@example.cy?secret=")
    );
    let code = totp::generate(&seed, Timestamp::now()).unwrap();
    let confirmed = expect(
        s.post("/api/v1/me/mfa/totp/confirm", Some(&token), json!({ "code": code })).await,
        StatusCode::OK,
    )
    .await;
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Now login needs the second factor; a code is accepted once.
    let login = |body: Value| s.post("/api/v1/auth/login", None, body);
    expect_problem(login(json!({ "email": "eleni@example.cy", "password": PASSWORD })).await, "mfa_required")
        .await;
    expect_problem(
        login(json!({ "email": "eleni@example.cy", "password": "wrong password!" })).await,
        "unauthorized",
    )
    .await;
    let replayed = json!({ "email": "eleni@example.cy", "password": PASSWORD, "totp_code": code });
    expect_problem(login(replayed).await, "unauthorized").await;
    let next = totp::generate(&seed, Timestamp::now() + SignedDuration::from_secs(30)).unwrap();
    let session = expect(
        login(json!({ "email": "eleni@example.cy", "password": PASSWORD, "totp_code": next })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(session["user"]["mfa_enabled"], true);
    let token = session["token"].as_str().unwrap().to_owned();
    // A recovery code works once.
    let with_recovery = json!({ "email": "eleni@example.cy", "password": PASSWORD, "recovery_code": recovery[0].to_uppercase() });
    expect(login(with_recovery.clone()).await, StatusCode::OK).await;
    expect_problem(login(with_recovery).await, "unauthorized").await;
    let me = expect(s.get("/api/v1/me", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(me["recovery_codes_left"], 9);

    // Search near Eleftheria Square for an EV spot, now for two hours.
    let (start, end) = window(0, 2);
    let found = expect(
        s.get(
            &format!("/api/v1/lots?lat=35.1700&lon=33.3610&radius_m=1500&start={start}&end={end}&ev=true"),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let results = found["results"].as_array().unwrap();
    assert_eq!(results[0]["lot"]["id"], lot, "the nearest lot first: {found}");
    assert!(
        results.iter().all(|r| r["lot"]["name"].as_str().unwrap().contains("Nicosia")),
        "Limassol is too far"
    );
    let quote = expect(
        s.get(&format!("/api/v1/lots/{lot}/quote?start={start}&end={end}"), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(quote["price"], json!({ "minor": 300, "currency": "EUR" }));

    // Hold with an idempotency key; a retry gets the same hold; the same key with another body is refused.
    let hold_body = json!({ "lot_id": lot, "start": start, "end": end, "filter": { "ev": true } });
    let k = key();
    let hold = |body: Value, k: String| {
        s.http
            .post(s.url("/api/v1/holds"))
            .bearer_auth(&token)
            .header("idempotency-key", k)
            .json(&body)
            .send()
    };
    let first = hold(hold_body.clone(), k.clone()).await.unwrap();
    assert!(first.headers().get("location").is_some());
    let held = expect(first, StatusCode::CREATED).await;
    assert_eq!(held["state"], "held");
    let retry = hold(hold_body.clone(), k.clone()).await.unwrap();
    assert_eq!(retry.headers().get("idempotent-replayed").unwrap(), "true");
    let again = expect(retry, StatusCode::CREATED).await;
    assert_eq!(again["id"], held["id"], "a retry returns the same hold");
    let other = json!({ "lot_id": lot, "start": start, "end": end, "filter": { "accessible": true } });
    expect_problem(hold(other, k).await.unwrap(), "idempotency_mismatch").await;
    let id = held["id"].as_str().unwrap().to_owned();

    // No pass before payment.
    expect_problem(
        s.get(&format!("/api/v1/reservations/{id}/pass"), Some(&token)).await,
        "invalid_transition",
    )
    .await;

    // Checkout, then the driver pays at the (test) provider, whose signed webhook arrives.
    let checkout = expect(
        s.post(&format!("/api/v1/reservations/{id}/checkout"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(checkout["reservation"]["state"], "pending_payment");
    let intent = checkout["intent"]["id"].as_str().unwrap().to_owned();
    assert_eq!(checkout["test_pay_url"], format!("/api/v1/test-gateway/intents/{intent}/pay"));
    let gw = s.running.app.state().test_gateway.clone().unwrap();
    let event = gw.pay(&intent, true, None).await.unwrap();
    let (payload, signature) = gw.sign(&event, Timestamp::now()).await.unwrap();
    let deliver = || {
        s.http
            .post(s.url("/api/v1/webhooks/test"))
            .header("parq-signature", signature.clone())
            .header("content-type", "application/json")
            .body(payload.clone())
            .send()
    };
    let applied = expect(deliver().await.unwrap(), StatusCode::OK).await;
    assert_eq!(applied["reservation"]["state"], "confirmed");
    let again = expect(deliver().await.unwrap(), StatusCode::OK).await;
    assert_eq!(again["reservation"]["state"], "confirmed", "a redelivery changes nothing");
    let forged = s
        .http
        .post(s.url("/api/v1/webhooks/test"))
        .header("parq-signature", "t=1,v1=00")
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert!(forged.status().is_client_error(), "a bad signature is refused: {}", forged.status());
    let r = expect(s.get(&format!("/api/v1/reservations/{id}"), Some(&token)).await, StatusCode::OK).await;
    assert_eq!(r["state"], "confirmed");
    assert_eq!(r["payment"]["captured"], true);
    assert_eq!(gw.money(&intent).await.unwrap(), Some((300, 0)), "captured once");

    // The pass, as JSON, SVG and PNG.
    let pass =
        expect(s.get(&format!("/api/v1/reservations/{id}/pass"), Some(&token)).await, StatusCode::OK).await;
    let text = pass["text"].as_str().unwrap().to_owned();
    assert_eq!(pass["reservation_id"], id);
    let svg = s.get(&format!("/api/v1/reservations/{id}/pass.svg"), Some(&token)).await;
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let png = s.get(&format!("/api/v1/reservations/{id}/pass.png"), Some(&token)).await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    // Someone else's reservation does not exist for them.
    let other_driver = s.driver("someone@example.cy").await;
    expect_problem(s.get(&format!("/api/v1/reservations/{id}/pass"), Some(&other_driver)).await, "not_found")
        .await;

    // The gate: a driver's token is not a gate key; the gate key opens entry once, then exit.
    let scan = |direction: &str, key: Option<&str>, scan_id: &str| {
        let mut req = s.http.post(s.url("/api/v1/gates/scan")).header("idempotency-key", super::key()).json(
            &json!({ "pass": text, "lot_id": lot, "direction": direction, "gate": "north-1", "scan_id": scan_id }),
        );
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.send()
    };
    expect_problem(scan("entry", None, "r0").await.unwrap(), "unauthorized").await;
    expect_problem(
        s.send(
            Method::POST,
            "/api/v1/gates/scan",
            Some(&token),
            Some(json!({ "pass": text, "lot_id": lot, "direction": "entry", "gate": "g" })),
        )
        .await,
        "forbidden",
    )
    .await;
    let entry = expect(scan("entry", Some(&gate_key), "r1").await.unwrap(), StatusCode::OK).await;
    assert_eq!(entry, json!({ "decision": "allow" }));
    let twice = expect(scan("entry", Some(&gate_key), "r2").await.unwrap(), StatusCode::OK).await;
    assert_eq!(twice, json!({ "decision": "refuse", "reason": "already_inside" }));
    let r = expect(s.get(&format!("/api/v1/reservations/{id}"), Some(&token)).await, StatusCode::OK).await;
    assert_eq!(r["state"], "checked_in");
    let exit = expect(scan("exit", Some(&gate_key), "r3").await.unwrap(), StatusCode::OK).await;
    assert_eq!(exit, json!({ "decision": "allow" }));
    let r = expect(s.get(&format!("/api/v1/reservations/{id}"), Some(&token)).await, StatusCode::OK).await;
    assert_eq!(r["state"], "completed");
    let forged = expect(
        s.http
            .post(s.url("/api/v1/gates/scan"))
            .header("idempotency-key", key())
            .header("x-api-key", &gate_key)
            .json(&json!({ "pass": "NOT-A-PASS", "lot_id": lot, "direction": "entry", "gate": "north-1" }))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(forged, json!({ "decision": "refuse", "reason": "invalid" }));

    // Another reservation, tomorrow, paid through the test-gateway endpoint, then cancelled
    // more than two hours ahead: refunded in full.
    let (start, end) = window(24, 3);
    let held = expect(
        s.post("/api/v1/holds", Some(&token), json!({ "lot_id": lot, "start": start, "end": end })).await,
        StatusCode::CREATED,
    )
    .await;
    let id2 = held["id"].as_str().unwrap().to_owned();
    let checkout = expect(
        s.post(&format!("/api/v1/reservations/{id2}/checkout"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    let pay_url = checkout["test_pay_url"].as_str().unwrap().to_owned();
    let paid = expect(s.post(&pay_url, Some(&token), json!({})).await, StatusCode::OK).await;
    assert_eq!(paid["outcome"], "succeeded");
    assert_eq!(paid["reservation"]["state"], "confirmed");
    let cancelled = expect(
        s.post(&format!("/api/v1/reservations/{id2}/cancel"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(cancelled["reservation"]["state"], "cancelled");
    assert_eq!(cancelled["refunded"], json!({ "minor": 450, "currency": "EUR" }));
    let intent2 = checkout["intent"]["id"].as_str().unwrap();
    assert_eq!(gw.money(intent2).await.unwrap(), Some((450, 450)), "captured and refunded in full");
    // Its pass is revoked at the gates.
    let revoked = expect(
        s.http
            .get(s.url("/api/v1/gates/revocations?since=0"))
            .header("x-api-key", &gate_key)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(revoked["revocations"].as_array().unwrap().len(), 1);

    let list = expect(s.get("/api/v1/reservations", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(list["reservations"].as_array().unwrap().len(), 2);

    // Logging out ends the session.
    expect(s.post("/api/v1/auth/logout", Some(&token), json!({})).await, StatusCode::NO_CONTENT).await;
    expect_problem(s.get("/api/v1/me", Some(&token)).await, "unauthorized").await;

    s.running.shutdown().await;
}

/// A declined payment keeps the hold; an extension reprices it.
pub async fn a_declined_payment_leaves_the_hold_and_an_extension_reprices_it(s: Server) {
    let lot = s.demo().lot("Limassol Marina").unwrap().to_string();
    let token = s.driver("andreas@example.cy").await;
    let (start, end) = window(48, 2);
    let held = expect(
        s.post(
            "/api/v1/holds",
            Some(&token),
            json!({ "lot_id": lot, "start": start, "end": end, "filter": { "min_size": "large" } }),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = held["id"].as_str().unwrap().to_owned();
    assert_eq!(held["price"]["minor"], 300, "flat 3.00 for the first two hours");
    let new_end = (end.parse::<Timestamp>().unwrap() + SignedDuration::from_hours(2)).to_string();
    let extended = expect(
        s.post(&format!("/api/v1/reservations/{id}/extend"), Some(&token), json!({ "end": new_end })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(extended["price"]["minor"], 500, "3.00 plus 1.00 for each hour after two");
    let checkout = expect(
        s.post(&format!("/api/v1/reservations/{id}/checkout"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    let pay_url = checkout["test_pay_url"].as_str().unwrap().to_owned();
    let declined = expect(
        s.post(&pay_url, Some(&token), json!({ "decline": "insufficient_funds" })).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(declined["outcome"], "failed");
    assert_eq!(declined["reservation"]["state"], "held", "a declined card leaves the hold to try again");
    // A named spot that is taken is a conflict.
    let spot = held["spot_id"].as_str().unwrap();
    let other = s.driver("maria@example.cy").await;
    let p = expect_problem(
        s.post(
            "/api/v1/holds",
            Some(&other),
            json!({ "lot_id": lot, "start": start, "end": end, "spot_id": spot }),
        )
        .await,
        "conflict",
    )
    .await;
    assert_eq!(p["reason"], "spot_taken");
    s.running.shutdown().await;
}
