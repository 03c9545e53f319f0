//! Request tracing (W3C `traceparent`), logs, metrics, authentication and rate limits.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use tracing::Instrument;

use crate::accounts::secret;
use crate::http::{TRACE_ID, TraceContext, client_ip};
use crate::problem::{Problem, ProblemCode};
use crate::ratelimit::Kind;
use crate::state::{Admin, AppState, Principal};

/// Outermost: trace context, one log line per request, latency metrics.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let client = state.trusted_proxies.client(crate::clientaddr::peer(req.extensions()), req.headers());
    req.extensions_mut().insert(crate::clientaddr::ClientAddr(client));
    let ctx = TraceContext::from_header(req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!("request", trace_id = %ctx.trace_id, span_id = %ctx.span_id, %method, %path, %client);
    let mut resp = TRACE_ID.scope(ctx.trace_id.clone(), next.run(req).instrument(span.clone())).await;
    let status = resp.status();
    let latency = started.elapsed();
    state.metrics.request(method.as_str(), &route, status.as_u16(), latency);
    if status == StatusCode::CONFLICT {
        state.metrics.conflict();
    }
    if let Ok(v) = HeaderValue::from_str(&ctx.header()) {
        resp.headers_mut().insert("traceparent", v);
    }
    span.in_scope(|| {
        let ms = latency.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms = ms, %route, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), latency_ms = ms, %route, "request");
        }
    });
    resp
}

/// Rate limits per IP, then resolves the credentials (a session token or an API key) into a
/// [`Principal`], then rate limits per user or key.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req);
    if let Err(wait) = state.limits.check(Kind::Ip, &format!("ip:{ip}")).await {
        return limited(&state, wait, "this address");
    }
    let presented = credentials(&req);
    if let Some(admin) = state.config.admin_key()
        && let Some(token) = &presented
        && same(token.as_bytes(), admin.as_bytes())
    {
        if let Err(wait) = state.limits.check(Kind::Key, "admin").await {
            return limited(&state, wait, "the admin key");
        }
        req.extensions_mut().insert(Admin);
        return next.run(req).await;
    }
    if let Some(token) = presented {
        let principal = match resolve(&state, &token).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Problem::unauthorized("the token or API key is unknown or has expired; log in again")
                    .into_response();
            }
            Err(p) => return p.into_response(),
        };
        let (kind, bucket) = principal.limit();
        if let Err(wait) = state.limits.check(kind, &bucket).await {
            return limited(&state, wait, "this account");
        }
        req.extensions_mut().insert(principal);
    }
    next.run(req).await
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn limited(state: &AppState, wait: std::time::Duration, who: &str) -> Response {
    state.metrics.rate_limited();
    Problem::new(ProblemCode::RateLimited, format!("too many requests from {who}; slow down"))
        .retry_after(wait)
        .into_response()
}

fn credentials(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("").trim();
        let token = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v);
        return Some(token.trim().to_owned());
    }
    req.headers().get("x-api-key").map(|v| v.to_str().unwrap_or("").trim().to_owned())
}

/// Resolves a session token or an API key; `Ok(None)` when it is unknown or expired.
pub(crate) async fn resolve(state: &AppState, token: &str) -> Result<Option<Principal>, Problem> {
    let digest = secret::digest(token);
    let now = Timestamp::now();
    if let Some(p) = state.auth_cache.get(&digest, now) {
        return Ok(Some(p));
    }
    if token.starts_with(secret::API_KEY_PREFIX) {
        let key = state.accounts.api_key(&digest).await.map_err(Problem::from)?;
        let p = key.map(|k| Principal::Key { id: k.id, role: k.role, operator: k.operator });
        if let Some(p) = &p {
            state.auth_cache.put(&digest, p, None);
        }
        return Ok(p);
    }
    if !token.starts_with(secret::SESSION_PREFIX) {
        return Ok(None);
    }
    let Some(session) = state.accounts.session(&digest, now).await.map_err(Problem::from)? else {
        return Ok(None);
    };
    let Some(user) = state.accounts.user(session.user).await.map_err(Problem::from)? else {
        return Ok(None);
    };
    let p =
        Principal::User { id: user.id, role: user.role, operator: user.operator, session: digest.clone() };
    state.auth_cache.put(&digest, &p, Some(session.expires_at));
    Ok(Some(p))
}
