//! Health, readiness, metrics and the OpenAPI document.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parq_core::{GeoBox, LotId, ReservationId, SpotId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::state::AppState;

/// `GET /`: where things are.
pub async fn index() -> Json<Value> {
    Json(json!({
        "name": "ParQ",
        "version": env!("CARGO_PKG_VERSION"),
        "api": "/api/v1",
        "openapi": "/api/v1/openapi.json",
        "health": "/healthz",
        "ready": "/readyz",
        "metrics": "/metrics",
    }))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
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
            let c = pg.pool.get().await.map_err(crate::pg::db_error)?;
            c.simple_query("SELECT 1").await.map_err(crate::pg::db_error)
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

/// `GET /readyz`: every backend answers.
pub async fn readyz(State(s): State<AppState>) -> Response {
    let (ok, backends) = check_backends(&s).await;
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "status": if ok { "ready" } else { "unavailable" }, "backends": backends })))
        .into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(s): State<AppState>) -> Response {
    check_backends(&s).await;
    let mut resp = s.metrics.render().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
