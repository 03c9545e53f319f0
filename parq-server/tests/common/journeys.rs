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

/// A request of a gate (or the operator) with its API key.
pub async fn with_key(
    s: &Server,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = s.http.request(method.clone(), s.url(path)).header("x-api-key", key);
    if method != Method::GET {
        req = req.header("idempotency-key", super::key());
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.expect("the request is answered")
}

/// Holds any spot of `lot` for `window`, pays it through the test-gateway endpoint, and returns
/// the reservation's id and its pass's text.
pub async fn paid_with_pass(
    s: &Server,
    token: &str,
    lot: &str,
    (start, end): (String, String),
) -> (String, String) {
    let held = expect(
        s.post("/api/v1/holds", Some(token), json!({ "lot_id": lot, "start": start, "end": end })).await,
        StatusCode::CREATED,
    )
    .await;
    let id = held["id"].as_str().unwrap().to_owned();
    let checkout = expect(
        s.post(&format!("/api/v1/reservations/{id}/checkout"), Some(token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    let pay_url = checkout["test_pay_url"].as_str().expect("the test gateway is in use").to_owned();
    let paid = expect(s.post(&pay_url, Some(token), json!({})).await, StatusCode::OK).await;
    assert_eq!(paid["reservation"]["state"], "confirmed", "{paid}");
    let pass =
        expect(s.get(&format!("/api/v1/reservations/{id}/pass"), Some(token)).await, StatusCode::OK).await;
    (id, pass["text"].as_str().unwrap().to_owned())
}

/// The revocations a gate lacks after `since`.
pub async fn revocations(s: &Server, gate_key: &str, since: u64) -> Value {
    expect(
        with_key(s, Method::GET, &format!("/api/v1/gates/revocations?since={since}"), gate_key, None).await,
        StatusCode::OK,
    )
    .await
}

/// A gate that worked offline uploads what it did: each reading is decided at the gate's time
/// and recorded once, whatever order it comes in; the same batch again gets the same answer and
/// changes nothing; a revoked pass the gate let in is reported as a conflict.
pub async fn offline_gate_uploads_are_recorded_once_and_report_conflicts(s: Server) {
    let lot = s.demo().lot("Eleftheria").unwrap().to_string();
    let gate_key = s.demo().gate_key.clone();
    let token = s.driver("offline@example.cy").await;
    let (id, pass) = paid_with_pass(&s, &token, &lot, window(0, 2)).await;
    let (gone, gone_pass) = paid_with_pass(&s, &token, &lot, window(0, 2)).await;
    expect(
        s.post(&format!("/api/v1/reservations/{gone}/cancel"), Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    let t0 = Timestamp::now();
    let at = |secs: i64| (t0 + SignedDuration::from_secs(secs)).to_string();
    let reading = |scan_id: &str, text: &str, direction: &str, secs: i64| json!({ "scan_id": scan_id, "pass": text, "lot_id": lot, "direction": direction, "gate": "west-2", "at": at(secs) });
    let mut junk = reading("w2-0004", "NOT-A-PASS", "entry", 4);
    junk["gate_decision"] = json!({ "decision": "refuse", "reason": "invalid" });
    // Sent out of order: the exit before the entry it follows.
    let batch = json!({ "scans": [
        reading("w2-0002", &pass, "exit", 2),
        reading("w2-0001", &pass, "entry", 1),
        reading("w2-0003", &gone_pass, "entry", 3),
        junk,
    ] });
    let upload = || with_key(&s, Method::POST, "/api/v1/gates/scans", &gate_key, Some(batch.clone()));
    let first = expect(upload().await, StatusCode::OK).await;
    let scans = first["scans"].as_array().unwrap_or_else(|| panic!("{first}"));
    let ids: Vec<&str> = scans.iter().map(|x| x["scan_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["w2-0002", "w2-0001", "w2-0003", "w2-0004"], "answered in the order sent");
    for x in &scans[..2] {
        assert_eq!(x["decision"], json!({ "decision": "allow" }), "{x}");
        assert_eq!((x["applied"].clone(), x.get("conflict")), (json!(true), None), "{x}");
        assert_eq!(x["reservation"], id);
    }
    assert_eq!(scans[1]["at"], at(1), "kept with the gate's time");
    assert_eq!(scans[2]["decision"], json!({ "decision": "refuse", "reason": "revoked" }));
    assert_eq!(scans[2]["gate_decision"], json!({ "decision": "allow" }));
    assert_eq!(
        (scans[2]["applied"].clone(), scans[2]["conflict"].clone()),
        (json!(false), json!("allowed_but_refused"))
    );
    assert_eq!(scans[3]["decision"], json!({ "decision": "refuse", "reason": "invalid" }));
    assert!(scans[3].get("conflict").is_none() && scans[3].get("reservation").is_none(), "{}", scans[3]);
    let r = expect(s.get(&format!("/api/v1/reservations/{id}"), Some(&token)).await, StatusCode::OK).await;
    assert_eq!(r["state"], "completed", "entered and left, one entry allowed");
    let g = expect(s.get(&format!("/api/v1/reservations/{gone}"), Some(&token)).await, StatusCode::OK).await;
    assert_eq!(g["state"], "cancelled", "a conflict changes no reservation");

    // The same batch again (the answer was lost): the same answer, nothing recorded twice.
    let again = expect(upload().await, StatusCode::OK).await;
    assert_eq!(again, first);
    let one = json!({ "scans": [reading("w2-0001", &pass, "entry", 1)] });
    let alone =
        expect(with_key(&s, Method::POST, "/api/v1/gates/scans", &gate_key, Some(one)).await, StatusCode::OK)
            .await;
    assert_eq!(alone["scans"][0], scans[1]);
    let r = expect(s.get(&format!("/api/v1/reservations/{id}"), Some(&token)).await, StatusCode::OK).await;
    assert_eq!(r["state"], "completed");

    // A malformed batch is refused whole; a driver is not a gate.
    let ahead = json!({ "scans": [
        reading("w2-0005", &pass, "entry", 0),
        reading("w2-0006", &pass, "entry", 3600),
    ] });
    let p = expect_problem(
        with_key(&s, Method::POST, "/api/v1/gates/scans", &gate_key, Some(ahead)).await,
        "invalid",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("scans[1]"), "{p}");
    let control = json!({ "scans": [reading("w2\u{0}7", &pass, "entry", 0)] });
    expect_problem(
        with_key(&s, Method::POST, "/api/v1/gates/scans", &gate_key, Some(control)).await,
        "invalid",
    )
    .await;
    let empty_id = json!({ "scans": [reading("", &pass, "entry", 0)] });
    expect_problem(
        with_key(&s, Method::POST, "/api/v1/gates/scans", &gate_key, Some(empty_id)).await,
        "invalid",
    )
    .await;
    expect_problem(s.post("/api/v1/gates/scans", Some(&token), json!({ "scans": [] })).await, "forbidden")
        .await;
}

/// An operator sets a lot's re-entry rule through the API, when creating and when replacing
/// the lot; the gate follows it for a second entry.
pub async fn the_lots_reentry_policy_decides_a_second_entry(s: Server) {
    let op_key = s.demo().operator_key.clone();
    let gate_key = s.demo().gate_key.clone();
    let lots =
        expect(with_key(&s, Method::GET, "/api/v1/operator/lots", &op_key, None).await, StatusCode::OK).await;
    let rates = lots["lots"][0]["rates"].clone();
    let body = |reentry: &str| {
        json!({ "name": "Re-entry Test Car Park", "location": { "lat": 35.17, "lon": 33.36 },
                "rates": rates, "reentry": reentry })
    };
    let lot = expect(
        with_key(&s, Method::POST, "/api/v1/operator/lots", &op_key, Some(body("allowed"))).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(lot["reentry"], "allowed");
    let lot_id = lot["id"].as_str().unwrap().to_owned();
    for label in ["R-1", "R-2"] {
        expect(
            with_key(
                &s,
                Method::POST,
                &format!("/api/v1/operator/lots/{lot_id}/spots"),
                &op_key,
                Some(json!({ "label": label })),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let token = s.driver("comeback@example.cy").await;
    let scan = |text: String, direction: &'static str, scan_id: &'static str| {
        let (s, key, lot) = (&s, gate_key.clone(), lot_id.clone());
        async move {
            let body = json!({ "pass": text, "lot_id": lot, "direction": direction, "gate": "g", "scan_id": scan_id });
            expect(with_key(s, Method::POST, "/api/v1/gates/scan", &key, Some(body)).await, StatusCode::OK)
                .await
        }
    };
    let allow = json!({ "decision": "allow" });
    let (_, pass) = paid_with_pass(&s, &token, &lot_id, window(0, 2)).await;
    assert_eq!(scan(pass.clone(), "entry", "a1").await, allow);
    assert_eq!(scan(pass.clone(), "exit", "a2").await, allow);
    assert_eq!(scan(pass.clone(), "entry", "a3").await, allow, "the lot allows re-entry");

    let replaced = expect(
        with_key(
            &s,
            Method::PUT,
            &format!("/api/v1/operator/lots/{lot_id}"),
            &op_key,
            Some(body("not_allowed")),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(replaced["reentry"], "not_allowed");
    let (_, pass) = paid_with_pass(&s, &token, &lot_id, window(0, 2)).await;
    assert_eq!(scan(pass.clone(), "entry", "b1").await, allow);
    assert_eq!(scan(pass.clone(), "exit", "b2").await, allow);
    assert_eq!(
        scan(pass, "entry", "b3").await,
        json!({ "decision": "refuse", "reason": "reentry_not_allowed" }),
        "one entry per reservation now"
    );
}

/// Uploads a batch of offline readings with a gate key; expects `200`.
pub async fn upload(s: &Server, gate_key: &str, batch: &Value) -> Value {
    expect(
        with_key(s, Method::POST, "/api/v1/gates/scans", gate_key, Some(batch.clone())).await,
        StatusCode::OK,
    )
    .await
}
