//! `Idempotency-Key` on every unsafe request: the first response to a (caller, key) is kept
//! for a day and replayed to retries of the same request; the same key with another request
//! is `422 idempotency_mismatch`, and a retry while the first is still running is
//! `409 idempotency_in_progress`.
//!
//! Each route says in the router what it does with the key ([`Keys`]):
//! - [`Keys::Recorded`] (unsafe methods, unless the route says otherwise): this module's layer
//!   ([`record`]) keeps the response in an [`IdempotencyStore`]: in this process on memory
//!   ([`MemoryRecords`]), or, with the store on PostgreSQL, in the `http_idempotency` table of the
//!   store's schema ([`PgRecords`]), so a retry that reaches another replica, or comes after a
//!   restart, is answered the same way.
//! - [`Keys::Engine`] (holds): the handler gives the key to the engine, whose store records it in
//!   the write that makes the hold, durably where the store is; the layer ([`pass_key`]) only
//!   checks the key and passes it on, so the hot path keeps no second copy. A retry gets the
//!   reservation the first request made, as it is now, with `Idempotent-Replayed: true`; the
//!   same key with another request is `422 idempotency_mismatch`; a refused request records
//!   nothing, so its retry is tried afresh.
//! - [`Keys::EventId`] (payment webhooks): deduplicated by the event's own id; no key.
//! - [`Keys::None`] (safe methods).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::backends::Backends;
use crate::http::MAX_BODY;
use crate::problem::{Problem, ProblemCode};
use crate::state::Principal;

mod memory;
mod postgres;
mod sqlite;

pub use memory::MemoryRecords;
pub use postgres::PgRecords;
pub use sqlite::SqliteRecords;

/// The header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long responses are kept (at least).
const TTL: Duration = Duration::from_secs(24 * 3600);
/// A first request that has run this long without finishing is presumed dead (its replica
/// stopped, its task was cancelled), and a retry takes its place.
const STALE: Duration = Duration::from_secs(60);

/// What a route does with `Idempotency-Key`; the router marks each route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// A safe method: no key.
    None,
    /// Deduplicated by the request's own ids (payment webhooks' event id, uploaded gate
    /// readings' scan ids): no key.
    EventId,
    /// A key is required, and [`record`] keeps the response for retries.
    Recorded,
    /// A key is required, and the handler gives it to the engine, which records it atomically
    /// with the change it makes: [`pass_key`] only checks the key and passes it on.
    Engine,
}

impl Keys {
    /// What a route of `method` does unless it says otherwise: unsafe methods are recorded.
    pub fn default_for(method: &Method) -> Self {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) {
            Keys::None
        } else {
            Keys::Recorded
        }
    }

    /// Whether the route needs an `Idempotency-Key`.
    pub fn required(self) -> bool {
        matches!(self, Keys::Recorded | Keys::Engine)
    }
}

/// A request's digest: method, path and query, body.
pub type Fingerprint = [u8; 32];

/// Which record: the caller's scope and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordId {
    /// The caller (see [`record`]).
    pub scope: String,
    /// The `Idempotency-Key`.
    pub key: String,
}

/// A kept response.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its status.
    pub status: StatusCode,
    /// The headers a replay repeats.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

/// What a store says about a (scope, key) when a request arrives.
#[derive(Debug)]
pub enum Begin {
    /// This request is the first (or takes the place of a dead or expired one): run it.
    Run,
    /// The same request has been answered: repeat the answer.
    Replay(Stored),
    /// The key was used with another request.
    Mismatch,
    /// The same request is still running.
    InProgress,
}

/// The port: where (scope, key) records are kept.
#[async_trait]
pub trait IdempotencyStore: Debug + Send + Sync {
    /// Claims `id` for a request of `fingerprint`, or says what is already there.
    async fn begin(&self, id: &RecordId, fingerprint: &Fingerprint) -> parq_core::Result<Begin>;
    /// Keeps the response of the request that claimed `id`.
    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        response: Stored,
    ) -> parq_core::Result<()>;
    /// Gives `id` up without keeping anything (the request failed in a way a retry may fix).
    async fn release(&self, id: &RecordId) -> parq_core::Result<()>;
}

/// The records the layer uses, shared by every route (the app adds them as an extension).
pub type Records = Arc<dyn IdempotencyStore>;

/// The records for these backends: where the store is on PostgreSQL, in its schema; in SQLite,
/// in its file; else in this process.
pub fn records(backends: &Backends) -> Records {
    match (&backends.postgres, &backends.sqlite) {
        (Some(pg), _) => Arc::new(PgRecords::new(pg.clone())),
        (None, Some(lite)) => Arc::new(SqliteRecords::new(lite.db.clone())),
        (None, None) => Arc::new(MemoryRecords::default()),
    }
}

/// The request's `Idempotency-Key`, for handlers that give it to the engine; refused as the
/// layers refuse a missing or malformed key, before anything else is looked at.
#[derive(Debug, Clone)]
pub struct Key(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Key {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Problem> {
        match parts.extensions.get::<Key>() {
            Some(k) => Ok(k.clone()),
            None => parse_key(&parts.headers).map(Key),
        }
    }
}

/// Checks a key's form: 1 to 255 visible ASCII characters.
pub fn parse_key(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(v) = headers.get(HEADER) else {
        return Err(Problem::new(
            ProblemCode::IdempotencyKeyRequired,
            "send an Idempotency-Key header (for example a random UUID) with every POST, PUT, PATCH and DELETE",
        ));
    };
    let s = v.to_str().map_err(|_| Problem::bad_request("Idempotency-Key must be visible ASCII"))?.trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
            .with("field", "Idempotency-Key"));
    }
    Ok(s.to_owned())
}

/// The layer of [`Keys::Engine`] routes: checks the key and hands it to the handler's [`Key`].
pub async fn pass_key(mut req: Request, next: Next) -> Response {
    match parse_key(req.headers()) {
        Ok(k) => {
            req.extensions_mut().insert(Key(k));
            next.run(req).await
        }
        Err(p) => p.into_response(),
    }
}

/// The layer of [`Keys::Recorded`] routes: runs the first request of a (caller, key), keeps its
/// response in the [`Records`] extension, and answers retries from it.
pub async fn record(Extension(records): Extension<Records>, req: Request, next: Next) -> Response {
    let key = match parse_key(req.headers()) {
        Ok(k) => k,
        Err(p) => return p.into_response(),
    };
    let id = RecordId { scope: caller_scope(&req), key };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new(
                ProblemCode::PayloadTooLarge,
                format!("the body must be at most {MAX_BODY} bytes"),
            )
            .into_response();
        }
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    h.update([0]);
    h.update(&bytes);
    let fingerprint: Fingerprint = h.finalize().into();
    match records.begin(&id, &fingerprint).await {
        Err(e) => return Problem::from(e).into_response(),
        Ok(Begin::Mismatch) => return mismatch(&id.key),
        Ok(Begin::InProgress) => return in_progress(),
        Ok(Begin::Replay(stored)) => return replay(stored),
        Ok(Begin::Run) => {}
    }
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = resp.status();
    if !keep(status) {
        if let Err(e) = records.release(&id).await {
            tracing::warn!(error = %e, "could not release an idempotency record; it frees itself after a minute");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        let _ = records.release(&id).await;
        return Problem::new(ProblemCode::Internal, "the response could not be read").into_response();
    };
    let stored = Stored { status, headers: kept_headers(&parts.headers), body: body.clone() };
    if let Err(e) = records.complete(&id, &fingerprint, stored).await {
        // The change is made; only its replay is lost. Say so, and answer as done.
        tracing::warn!(error = %e, "could not keep the response of an idempotent request");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Failures a retry may fix are not kept: server errors, rate limits, unauthenticated.
fn keep(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED)
}

/// The headers a replay repeats.
const KEPT_HEADERS: [header::HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

fn kept_headers(from: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in KEPT_HEADERS {
        if let Some(v) = from.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    headers
}

fn replay(stored: Stored) -> Response {
    let mut resp = (stored.status, stored.body).into_response();
    for (k, v) in &stored.headers {
        resp.headers_mut().insert(k, v.clone());
    }
    resp.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

fn in_progress() -> Response {
    Problem::new(
        ProblemCode::IdempotencyInProgress,
        "the first request with this Idempotency-Key is still running; retry shortly",
    )
    .retry_after(Duration::from_secs(1))
    .into_response()
}

fn mismatch(key: &str) -> Response {
    Problem::from(parq_core::Error::IdempotencyMismatch { key: key.to_owned() })
        .with("field", "Idempotency-Key")
        .into_response()
}

/// Keys are scoped to the caller: the account or API key it authenticated as, else the
/// credentials it sends (a request the handler will refuse), else its address.
fn caller_scope(req: &Request) -> String {
    if let Some(p) = req.extensions().get::<Principal>() {
        return p.bucket();
    }
    let cred = req
        .headers()
        .get(header::AUTHORIZATION)
        .or_else(|| req.headers().get("x-api-key"))
        .map(|v| v.as_bytes());
    match cred {
        Some(c) => format!("cred:{}", crate::accounts::secret::hex(&Sha256::digest(c))),
        None => format!("ip:{}", crate::http::client_ip(req)),
    }
}
