//! Starts the server in-process on an ephemeral port and talks HTTP to it.
#![allow(dead_code, missing_docs)]

pub mod journeys;
pub mod production;

use jiff::{SignedDuration, Timestamp};
use parq_server::demo::DemoInfo;
use parq_server::{Config, Running};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

pub struct Server {
    pub running: Running,
    pub base: String,
    pub http: reqwest::Client,
}

/// The test configuration: memory, the demo, an ephemeral port, generous rate limits.
pub fn config() -> Config {
    Config {
        bind: "127.0.0.1:0".into(),
        store_url: "memory:".into(),
        rate_ip: 10_000,
        rate_user: 10_000,
        rate_key: 10_000,
        ..Config::default()
    }
}

pub async fn start() -> Server {
    start_with(config()).await
}

pub async fn start_with(config: Config) -> Server {
    let running = parq_server::start(config).await.expect("the server starts");
    let base = running.url();
    Server { running, base, http: reqwest::Client::new() }
}

pub fn key() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Server {
    pub fn demo(&self) -> &DemoInfo {
        self.running.app.demo().expect("the demo is loaded")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if method != Method::GET {
            req = req.header("idempotency-key", key());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("the request is answered")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.send(Method::POST, path, token, Some(body)).await
    }

    pub async fn register(&self, email: &str, password: &str) -> Value {
        let r =
            self.post("/api/v1/auth/register", None, json!({ "email": email, "password": password })).await;
        expect(r, StatusCode::CREATED).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await;
        expect(r, StatusCode::OK).await["token"].as_str().expect("a token").to_owned()
    }

    pub async fn driver(&self, email: &str) -> String {
        self.driver_with(email, "a long enough password").await
    }

    pub async fn driver_with(&self, email: &str, password: &str) -> String {
        self.register(email, password).await;
        self.login(email, password).await
    }
}

/// Asserts the status and returns the JSON body.
pub async fn expect(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(got, status, "body: {text}");
    if text.is_empty() {
        return Value::Null;
    }
    assert!(ct.contains("json"), "content type {ct}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a problem of `code` with the status it implies, and returns it.
pub async fn expect_problem(r: Response, code: &str) -> Value {
    let status = r.status();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = r.text().await.unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "status {status}, body {text}");
    let p: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["type"], format!("https://parq.dev/problems/{code}"), "{p}");
    assert_eq!(p["status"], status.as_u16(), "{p}");
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");
    p
}

/// A window of `hours` starting at the current quarter hour plus `offset_hours`.
pub fn window(offset_hours: i64, hours: i64) -> (String, String) {
    let now = Timestamp::now().as_second();
    let start =
        Timestamp::from_second(now - now.rem_euclid(900)).unwrap() + SignedDuration::from_hours(offset_hours);
    let end = start + SignedDuration::from_hours(hours);
    (start.to_string(), end.to_string())
}
