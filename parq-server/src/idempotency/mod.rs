//! `Idempotency-Key` on every unsafe request: the first response to a (caller, key) is kept
//! for a day and replayed to retries of the same request; the same key with another request
//! is `422 idempotency_mismatch`, and a retry while the first is still running is
//! `409 idempotency_in_progress`.
//!
//! On memory the responses are kept in this process. With the store on PostgreSQL they are
//! kept in the `http_idempotency` table of the store's schema, keyed by (caller scope, key),
//! with the request's fingerprint and the stored response, so a retry that reaches another
//! replica, or comes after a restart, is answered the same way.
//!
//! Holds pass the key to the engine instead ([`KEYED_BY_THE_ENGINE`]): the store records it in
//! the write that makes the hold, durably where the store is, so a retried hold returns the
//! same reservation from any replica or after a restart, and the hot path keeps no second copy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::state::AppState;

/// The header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long responses are kept (at least; at most twice as long).
const TTL: Duration = Duration::from_secs(24 * 3600);
/// The largest body an unsafe request may have.
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Debug, Clone)]
enum Entry {
    InFlight { fingerprint: [u8; 32], since: Instant },
    Done { fingerprint: [u8; 32], at: Instant, status: StatusCode, headers: HeaderMap, body: Bytes },
}

type CacheKey = (String, String);

/// Most entries in one generation of one shard; past it the generation turns early, so memory
/// stays bounded under any load (a key is then kept for less than a day, and holds still have
/// the store's own record of their key).
const MAX_PER_GENERATION: usize = 500_000 / SHARDS;

/// Independent parts of the cache, by the key's hash: each has its own lock, and when one
/// grows (a rehash moves its entries) or drops a generation, only the requests that land on it
/// wait, and only for a sixty-fourth of the work.
const SHARDS: usize = 64;

/// The kept responses, in shards of two generations each: entries are written to the current
/// generation, read from both, and a generation is dropped whole when the next one turns (after
/// the lock is released), so no request ever scans the cache.
#[derive(Debug)]
pub struct IdempotencyCache {
    shards: Box<[Mutex<Generations>]>,
    hasher: std::hash::RandomState,
}

impl Default for IdempotencyCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<CacheKey, Entry>,
    previous: HashMap<CacheKey, Entry>,
    since: Option<Instant>,
}

impl Generations {
    fn get(&self, k: &CacheKey) -> Option<&Entry> {
        self.current.get(k).or_else(|| self.previous.get(k))
    }

    /// Inserts; returns the generation that turned out, for the caller to drop unlocked.
    #[must_use]
    fn insert(&mut self, k: CacheKey, e: Entry, now: Instant) -> Option<HashMap<CacheKey, Entry>> {
        let since = *self.since.get_or_insert(now);
        let mut dropped = None;
        if now.duration_since(since) >= TTL || self.current.len() >= MAX_PER_GENERATION {
            dropped = Some(std::mem::replace(&mut self.previous, std::mem::take(&mut self.current)));
            self.since = Some(now);
        }
        self.previous.remove(&k);
        self.current.insert(k, e);
        dropped
    }

    fn remove(&mut self, k: &CacheKey) {
        self.current.remove(k);
        self.previous.remove(k);
    }
}

impl IdempotencyCache {
    fn lock(&self, k: &CacheKey) -> std::sync::MutexGuard<'_, Generations> {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(k) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn insert(&self, k: CacheKey, e: Entry, now: Instant) {
        let dropped = self.lock(&k).insert(k, e, now);
        drop(dropped);
    }

    fn remove(&self, k: &CacheKey) {
        self.lock(k).remove(k);
    }
}

/// Whether a request must carry a key: unsafe methods, except payment webhooks (which are
/// deduplicated by their event id).
pub fn required(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
        && !path.starts_with("/api/v1/webhooks/")
}

/// Routes whose handler hands the key to the engine, whose store records it with the
/// reservation in the same write (in memory, or in PostgreSQL's own transaction): they need no
/// record here. A retry gets the reservation the first request made, as it is now, with
/// `Idempotent-Replayed: true`; the same key with another request is `422
/// idempotency_mismatch`; a refused request records nothing, so its retry is tried afresh.
pub const KEYED_BY_THE_ENGINE: &[&str] = &["/api/v1/holds"];

/// Whether the route gets this module's layer: it needs a key and its handler does not give
/// the key to the engine.
pub fn recorded_here(method: &Method, path: &str) -> bool {
    required(method, path) && !KEYED_BY_THE_ENGINE.contains(&path)
}

/// The request's `Idempotency-Key`, for handlers that give it to the engine; refused as this
/// module's layer refuses a missing or malformed key, before anything else is looked at.
#[derive(Debug, Clone)]
pub struct Key(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Key {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Problem> {
        parse_key(&parts.headers).map(Key)
    }
}

/// Checks a key's form: 1 to 255 visible ASCII characters.
pub fn parse_key(headers: &HeaderMap) -> Result<String, Problem> {
    let Some(v) = headers.get(HEADER) else {
        return Err(Problem::new(
            "idempotency_key_required",
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

/// The middleware.
pub async fn layer(Extension(state): Extension<AppState>, req: Request, next: Next) -> Response {
    let key = match parse_key(req.headers()) {
        Ok(k) => k,
        Err(p) => return p.into_response(),
    };
    let scope = caller_scope(&req);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Problem::new("payload_too_large", format!("the body must be at most {MAX_BODY} bytes"))
                .into_response();
        }
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str());
    h.update([0]);
    h.update(parts.uri.path_and_query().map_or("", |p| p.as_str()));
    h.update([0]);
    h.update(&bytes);
    let fingerprint: [u8; 32] = h.finalize().into();
    if let Some(pg) = &state.backends.postgres {
        return shared::layer(pg, scope, key, fingerprint, parts, bytes, next).await;
    }
    let id = (scope, key);
    let now = Instant::now();
    let dropped = {
        let mut entries = state.idempotency.lock(&id);
        match entries.get(&id) {
            Some(Entry::Done { fingerprint: f, at, status, headers, body })
                if now.duration_since(*at) < TTL =>
            {
                if *f != fingerprint {
                    return mismatch(&id.1);
                }
                return replay(*status, headers, body.clone());
            }
            Some(Entry::InFlight { fingerprint: f, since })
                if now.duration_since(*since) < Duration::from_secs(60) =>
            {
                if *f != fingerprint {
                    return mismatch(&id.1);
                }
                return in_progress();
            }
            _ => {}
        }
        entries.insert(id.clone(), Entry::InFlight { fingerprint, since: now }, now)
    };
    drop(dropped);
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let status = resp.status();
    if !keep(status) {
        state.idempotency.remove(&id);
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => {
            state.idempotency.remove(&id);
            return Problem::new("internal", "the response could not be read").into_response();
        }
    };
    let headers = kept_headers(&parts.headers);
    let now = Instant::now();
    state.idempotency.insert(
        id,
        Entry::Done { fingerprint, at: now, status, headers, body: body.clone() },
        now,
    );
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

fn replay(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let mut resp = (status, body).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(k, v.clone());
    }
    resp.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}

fn in_progress() -> Response {
    Problem::new(
        "idempotency_in_progress",
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
    if let Some(p) = req.extensions().get::<crate::state::Principal>() {
        return p.bucket();
    }
    let cred = req
        .headers()
        .get(header::AUTHORIZATION)
        .or_else(|| req.headers().get("x-api-key"))
        .map(|v| v.as_bytes());
    match cred {
        Some(c) => format!("cred:{}", crate::accounts::secret::hex(&Sha256::digest(c))),
        None => format!("ip:{}", crate::middleware::client_ip(req)),
    }
}

/// The records in PostgreSQL, shared by every replica.
mod shared {
    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::http::request::Parts;
    use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
    use axum::middleware::Next;
    use axum::response::{IntoResponse, Response};
    use parq_core::Result;

    use super::{in_progress, keep, kept_headers, mismatch, replay};
    use crate::backends::Postgres;
    use crate::pg::{db_error, ident};
    use crate::problem::Problem;

    /// What the table says about a (scope, key).
    enum Begin {
        /// This request is the first: run it.
        Run,
        Replay(StatusCode, HeaderMap, Bytes),
        Mismatch,
        InProgress,
    }

    /// A first request that has run this long without finishing is presumed dead (its replica
    /// stopped), and a retry takes its place.
    const STALE_SECS: i32 = 60;
    /// How long responses are kept.
    const TTL_SECS: i32 = 24 * 3600;

    async fn begin(pg: &Postgres, scope: &str, key: &str, fp: &[u8]) -> Result<Begin> {
        let q = ident(&pg.schema);
        let c = pg.pool.get().await.map_err(db_error)?;
        for _ in 0..3 {
            let claimed = c
                .query_opt(
                    &format!(
                        "INSERT INTO {q}.http_idempotency (scope, key, fingerprint, started_at) \
                         VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING RETURNING 1"
                    ),
                    &[&scope, &key, &fp],
                )
                .await
                .map_err(db_error)?;
            if claimed.is_some() {
                return Ok(Begin::Run);
            }
            // Taken: replay it, or take over a dead or expired record.
            let taken_over = c
                .query_opt(
                    &format!(
                        "UPDATE {q}.http_idempotency \
                         SET fingerprint = $3, started_at = now(), status = NULL, headers = NULL, \
                             body = NULL, done_at = NULL \
                         WHERE scope = $1 AND key = $2 AND \
                               ((status IS NULL AND started_at < now() - make_interval(secs => $4)) \
                                OR done_at < now() - make_interval(secs => $5)) \
                         RETURNING 1"
                    ),
                    &[&scope, &key, &fp, &f64::from(STALE_SECS), &f64::from(TTL_SECS)],
                )
                .await
                .map_err(db_error)?;
            if taken_over.is_some() {
                return Ok(Begin::Run);
            }
            let Some(row) = c
                .query_opt(
                    &format!(
                        "SELECT fingerprint, status, headers::text, body FROM {q}.http_idempotency \
                         WHERE scope = $1 AND key = $2"
                    ),
                    &[&scope, &key],
                )
                .await
                .map_err(db_error)?
            else {
                continue; // Removed meanwhile (its request failed): claim it again.
            };
            let f: Vec<u8> = row.get(0);
            if f != fp {
                return Ok(Begin::Mismatch);
            }
            let Some(status) = row.get::<_, Option<i16>>(1) else {
                return Ok(Begin::InProgress);
            };
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut headers = HeaderMap::new();
            let stored: Option<String> = row.get(2);
            if let Some(obj) = stored
                .and_then(|t| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&t).ok())
            {
                for (k, v) in obj {
                    if let (Ok(k), Some(Ok(v))) =
                        (HeaderName::try_from(k), v.as_str().map(HeaderValue::from_str))
                    {
                        headers.insert(k, v);
                    }
                }
            }
            let body: Option<Vec<u8>> = row.get(3);
            return Ok(Begin::Replay(status, headers, Bytes::from(body.unwrap_or_default())));
        }
        Ok(Begin::InProgress)
    }

    async fn finish(
        pg: &Postgres,
        scope: &str,
        key: &str,
        done: Option<(StatusCode, &HeaderMap, &[u8])>,
    ) -> Result<()> {
        let q = ident(&pg.schema);
        let c = pg.pool.get().await.map_err(db_error)?;
        match done {
            Some((status, headers, body)) => {
                let h: serde_json::Map<String, serde_json::Value> = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.into())))
                    .collect();
                let h = serde_json::Value::Object(h).to_string();
                let status = i16::try_from(status.as_u16()).unwrap_or(500);
                c.execute(
                    &format!(
                        "UPDATE {q}.http_idempotency SET status = $3, headers = $4::text::jsonb, body = $5, \
                             done_at = now() WHERE scope = $1 AND key = $2"
                    ),
                    &[&scope, &key, &status, &h, &body],
                )
                .await
                .map_err(db_error)?;
                // Now and then, forget what is past keeping.
                if body.len() % 64 == 0 && rand_bit() {
                    c.execute(
                        &format!(
                            "DELETE FROM {q}.http_idempotency WHERE started_at < now() - make_interval(secs => $1)"
                        ),
                        &[&f64::from(2 * TTL_SECS)],
                    )
                    .await
                    .map_err(db_error)?;
                }
            }
            None => {
                c.execute(
                    &format!(
                        "DELETE FROM {q}.http_idempotency WHERE scope = $1 AND key = $2 AND status IS NULL"
                    ),
                    &[&scope, &key],
                )
                .await
                .map_err(db_error)?;
            }
        }
        Ok(())
    }

    fn rand_bit() -> bool {
        let mut b = [0u8; 1];
        getrandom::fill(&mut b).is_ok() && b[0] < 16
    }

    pub(super) async fn layer(
        pg: &Postgres,
        scope: String,
        key: String,
        fingerprint: [u8; 32],
        parts: Parts,
        bytes: Bytes,
        next: Next,
    ) -> Response {
        match begin(pg, &scope, &key, &fingerprint).await {
            Err(e) => return Problem::from(e).into_response(),
            Ok(Begin::Mismatch) => return mismatch(&key),
            Ok(Begin::InProgress) => return in_progress(),
            Ok(Begin::Replay(status, headers, body)) => return replay(status, &headers, body),
            Ok(Begin::Run) => {}
        }
        let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
        let status = resp.status();
        if !keep(status) {
            if let Err(e) = finish(pg, &scope, &key, None).await {
                tracing::warn!(error = %e, "could not release an idempotency record; it frees itself after a minute");
            }
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            let _ = finish(pg, &scope, &key, None).await;
            return Problem::new("internal", "the response could not be read").into_response();
        };
        let headers = kept_headers(&parts.headers);
        if let Err(e) = finish(pg, &scope, &key, Some((status, &headers, &body))).await {
            // The change is made; only its replay is lost. Say so, and answer as done.
            tracing::warn!(error = %e, "could not keep the response of an idempotent request");
        }
        Response::from_parts(parts, Body::from(body))
    }
}
