//! Request tracing (W3C `traceparent`), logs, metrics, authentication and rate limits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use tracing::Instrument;

use crate::accounts::secret;
use crate::problem::Problem;
use crate::state::{AppState, Principal};

tokio::task_local! {
    /// The trace id of the request being handled, for problem bodies.
    pub static TRACE_ID: String;
}

/// The trace id of the current request, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// A W3C trace context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 hex digits.
    pub trace_id: String,
    /// This server's span, 16 hex digits.
    pub span_id: String,
    /// Trace flags.
    pub flags: String,
}

impl TraceContext {
    /// Continues the trace of a valid `traceparent`, or starts a new one.
    pub fn from_header(value: Option<&str>) -> Self {
        // Ids need to be unique, not secret: a random UUID from the thread's generator costs no
        // system call (a trace id keeps its 122 random bits, a span id 60).
        let span_id = secret::hex(&uuid::Uuid::new_v4().as_bytes()[..8]);
        if let Some((trace_id, flags)) = value.and_then(parse_traceparent) {
            return Self { trace_id, span_id, flags };
        }
        Self { trace_id: secret::hex(uuid::Uuid::new_v4().as_bytes()), span_id, flags: "01".into() }
    }

    /// The `traceparent` header value naming this server's span.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut it = v.trim().split('-');
    let (version, trace, parent, flags) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || it.next().is_none())
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2);
    valid.then(|| (trace.to_owned(), flags.to_owned()))
}

/// The client's address (the peer; a proxy's headers are not trusted).
pub fn client_ip(req: &Request) -> IpAddr {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Outermost: trace context, one log line per request, latency metrics.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let ctx = TraceContext::from_header(req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span =
        tracing::info_span!("request", trace_id = %ctx.trace_id, span_id = %ctx.span_id, %method, %path);
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
    if let Err(wait) = state.limit_ip.check(&format!("ip:{ip}")) {
        return limited(&state, wait, "this address");
    }
    req.extensions_mut().insert(state.clone());
    let presented = credentials(&req);
    if let Some(token) = presented {
        let principal = match resolve(&state, &token).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Problem::unauthorized("the token or API key is unknown or has expired; log in again")
                    .into_response();
            }
            Err(p) => return p.into_response(),
        };
        let limiter = match principal {
            Principal::User { .. } => &state.limit_user,
            Principal::Key { .. } => &state.limit_key,
        };
        if let Err(wait) = limiter.check(&principal.bucket()) {
            return limited(&state, wait, "this account");
        }
        req.extensions_mut().insert(principal);
    }
    next.run(req).await
}

fn limited(state: &AppState, wait: std::time::Duration, who: &str) -> Response {
    state.metrics.rate_limited();
    Problem::new("rate_limited", format!("too many requests from {who}; slow down"))
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
    if token.starts_with(secret::API_KEY_PREFIX) {
        let key = state.accounts.api_key(&digest).await.map_err(Problem::from)?;
        return Ok(key.map(|k| Principal::Key { id: k.id, role: k.role, operator: k.operator }));
    }
    if !token.starts_with(secret::SESSION_PREFIX) {
        return Ok(None);
    }
    let Some(session) = state.accounts.session(&digest, Timestamp::now()).await.map_err(Problem::from)?
    else {
        return Ok(None);
    };
    let Some(user) = state.accounts.user(session.user).await.map_err(Problem::from)? else {
        return Ok(None);
    };
    Ok(Some(Principal::User { id: user.id, role: user.role, operator: user.operator, session: digest }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_continued_when_valid_and_made_otherwise() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::from_header(Some(tp));
        assert_eq!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(c.span_id, "00f067aa0ba902b7");
        assert!(c.header().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let c = TraceContext::from_header(Some(bad));
            assert_ne!(c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            assert_eq!(c.trace_id.len(), 32);
        }
    }
}
