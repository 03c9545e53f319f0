//! Health, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parq_core::{GeoBox, LotId, ReservationId, SpotId};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::views::SortedJson;
use crate::state::AppState;

/// Where things are.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceIndex {
    /// The API's base path.
    pub api: &'static str,
    /// Liveness.
    pub health: &'static str,
    /// The metrics.
    pub metrics: &'static str,
    /// Always `ParQ`.
    pub name: &'static str,
    /// The OpenAPI document.
    pub openapi: &'static str,
    /// Readiness.
    pub ready: &'static str,
    /// The server's version.
    pub version: &'static str,
}

/// The service index (`GET /` answers it unless the caller accepts HTML).
pub async fn index() -> SortedJson<ServiceIndex> {
    SortedJson(ServiceIndex {
        api: "/api/v1",
        health: "/healthz",
        metrics: "/metrics",
        name: "ParQ",
        openapi: "/api/v1/openapi.json",
        ready: "/readyz",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The process is up.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = OK, description = "Up", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

async fn probe<F, T>(f: F) -> Result<(), String>
where
    F: Future<Output = parq_core::Result<T>>,
{
    match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(Ok(_)) | Ok(Err(parq_core::Error::NotFound { .. })) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// Checks every backend once and records the result in the metrics.
pub async fn check_backends(s: &AppState) -> (bool, Value) {
    let nil_lot = LotId::from_uuid(Uuid::nil());
    let tiny = GeoBox { min_lat: 0.0, max_lat: 0.0, min_lon: 0.0, max_lon: 0.0 };
    let names = s.backends.names;
    let mut results = vec![
        ("store", names.store, probe(s.engine.store().lots_in(&tiny)).await),
        ("accounts", names.accounts, probe(s.accounts.ping()).await),
        ("gateway", names.gateway, probe(s.engine.gateway().retrieve("pi_readiness_probe")).await),
    ];
    // Redis behind the failover lock: its health is reported, but a Redis that is down, slow
    // or being rebuilt does not make the replica unready, since holds then go to the store.
    let mut extra = serde_json::Map::new();
    if let Some(r) = &s.backends.redis {
        let health = r.health.state();
        s.metrics.backend("lock", names.lock, health == parq_redis::Health::Warm);
        let mut entry = json!({
            "adapter": names.lock,
            "up": health != parq_redis::Health::Down,
            "health": health.to_string(),
            "failover": health != parq_redis::Health::Warm,
        });
        if let Some(l) = r.health.latency() {
            entry["latency_ms"] = json!(l.as_secs_f64() * 1000.0);
        }
        extra.insert("lock".into(), entry);
    } else if let Some(lock) = &s.backends.lock {
        let r = probe(lock.release(
            nil_lot,
            SpotId::from_uuid(Uuid::nil()),
            ReservationId::from_uuid(Uuid::nil()),
        ))
        .await;
        results.push(("lock", names.lock, r));
    }
    // Rate limits on Redis: per replica while it does not answer, which is said, not unready.
    s.limits.probe().await;
    let limits = s.limits.health();
    if limits.adapter == "redis" {
        s.metrics.backend("limits", limits.adapter, limits.up);
        let mut entry = json!({ "adapter": limits.adapter, "up": limits.up, "fallback": limits.fallback });
        if let Some(e) = limits.error {
            entry["error"] = json!(e);
        }
        extra.insert("limits".into(), entry);
    }
    let notified = probe(s.backends.notifier.publish(&[])).await;
    if names.notifier == "redis" {
        // Subscribers refill from the store while Redis is away: degraded, not unready.
        s.metrics.backend("notifier", names.notifier, notified.is_ok());
        extra.insert(
            "notifier".into(),
            match notified {
                Ok(()) => json!({ "adapter": names.notifier, "up": true }),
                Err(e) => json!({ "adapter": names.notifier, "up": false, "error": e }),
            },
        );
    } else {
        results.push(("notifier", names.notifier, notified));
    }
    if let Some(pg) = &s.backends.postgres {
        let r = probe(async {
            let c = pg.pool.get().await.map_err(parq_postgres::db_error)?;
            c.simple_query("SELECT 1").await.map_err(parq_postgres::db_error)
        })
        .await;
        results.push(("postgres", "postgres", r));
    }
    let mut ok = true;
    let mut out = serde_json::Map::new();
    for (port, adapter, r) in results {
        s.metrics.backend(port, adapter, r.is_ok());
        ok &= r.is_ok();
        out.insert(
            port.into(),
            match r {
                Ok(()) => json!({ "adapter": adapter, "up": true }),
                Err(e) => json!({ "adapter": adapter, "up": false, "error": e }),
            },
        );
    }
    out.extend(extra);
    (ok, Value::Object(out))
}

/// Whether every backend answers, and each one's health.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// Each port's backend, by port (`store`, `accounts`, `gateway`, `notifier`, `lock`, …).
    #[schema(value_type = std::collections::BTreeMap<String, BackendHealth>)]
    pub backends: Value,
    /// `ready` when every backend the replica needs answers.
    pub status: ReadyStatus,
}

/// Whether the replica takes traffic.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    /// Every backend answers.
    Ready,
    /// A backend does not answer.
    Unavailable,
}

/// One backend's health, as readiness reports it.
// Schema only: `check_backends` builds the report as JSON.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct BackendHealth {
    /// The adapter in use (`memory`, `postgres`, `redis`, …).
    adapter: String,
    /// Whether it answers.
    up: bool,
    /// Why not.
    error: Option<String>,
    /// The Redis lock's health.
    health: Option<String>,
    /// Whether holds go to the store while the Redis lock is not warm.
    failover: Option<bool>,
    /// Whether the rate limits are per replica while their Redis does not answer.
    fallback: Option<bool>,
    /// The Redis lock's last round trip.
    latency_ms: Option<f64>,
}

/// Readiness: every backend answers.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = OK, description = "Ready", body = Readiness),
        (status = SERVICE_UNAVAILABLE, description = "A backend does not answer", body = Readiness),
    )
)]
pub async fn readyz(State(s): State<AppState>) -> Response {
    let (ok, backends) = check_backends(&s).await;
    let (code, status) = if ok {
        (StatusCode::OK, ReadyStatus::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadyStatus::Unavailable)
    };
    (code, SortedJson(Readiness { backends, status })).into_response()
}

/// `GET /metrics`: the metrics, as Prometheus text, or as OpenMetrics text when the scraper
/// asks for it.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Metrics, as Prometheus text (or OpenMetrics text when asked for)",
    description = "Prometheus text by default; OpenMetrics text when the request's Accept names \
                   `application/openmetrics-text`.",
    responses((status = OK, description = "The metrics", content(
        (String = "text/plain"),
        (String = "application/openmetrics-text"),
    )))
)]
pub async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    check_backends(&s).await;
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let (body, media_type) = if openmetrics {
        (s.metrics.render_openmetrics(), crate::metrics::OPENMETRICS)
    } else {
        (s.metrics.render(), crate::metrics::PROMETHEUS_TEXT)
    };
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    resp
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = OK, description = "OpenAPI 3.1", body = Object))
)]
pub async fn openapi(State(s): State<AppState>) -> Json<Value> {
    Json(s.openapi.clone())
}
