//! The HTTP client: configuration, authentication, retries, and one method per API call.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use parq_core::pass::{Decision, Direction, PublicKeys, RevocationDelta};
use parq_core::{Availability, LotId, LotMatch, Quote, ReservationId, SpotChoice, SpotFilter, Window};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::ClientError;
use crate::types::{
    Account, Cancellation, Checkout, LotDetails, PassImage, PassInfo, Reservation, Session, TestPayment,
    TotpEnrolment,
};

/// The header that makes an unsafe request safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header the server sets on an answer replayed for a retried idempotency key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// The most of a response body the client reads; a longer one is a malformed answer.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// When and how often a request is tried again.
///
/// Only requests that are safe to repeat are retried: `GET`s, and unsafe requests that carry an
/// idempotency key (every unsafe request this client sends does, the same key on every attempt
/// of one logical request). They are retried on transport errors, `502`/`503`/`504` (unless the
/// problem says `retryable: false`), `429`, and `409 idempotency_in_progress`, after an
/// exponential backoff with jitter, capped, or after `Retry-After` when the server sends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 turns retries off).
    pub max_retries: u32,
    /// The first backoff; each retry doubles it.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a server asking for more gets the error returned.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub const fn none() -> Self {
        Self {
            max_retries: 0,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            max_retry_after: Duration::ZERO,
        }
    }

    /// The wait before retry number `retry` (from 0): `initial · 2^retry`, capped, minus up to a
    /// quarter at random so that clients that failed together do not retry together.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self.initial_backoff.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
        let capped = base.min(self.max_backoff);
        let jitter = (uuid::Uuid::new_v4().as_u128() % 1024) as u32;
        capped.saturating_sub(capped / 4 * jitter / 1024)
    }
}

/// Configures a [`Client`].
#[derive(Debug, Clone)]
#[must_use = "call build()"]
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    user_agent: String,
    token: Option<String>,
    api_key: Option<String>,
    http: Option<reqwest::Client>,
}

impl ClientBuilder {
    /// Each request's timeout, from sending to the end of the body (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout for opening a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Shorthand: at most `n` retries per request, with the default backoff.
    pub fn retries(mut self, n: u32) -> Self {
        self.retry.max_retries = n;
        self
    }

    /// The `User-Agent` (default `parq-client/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// A session token to start with (from an earlier [`Client::login`]).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// An operator or gate API key, sent as `X-Api-Key` (for [`Client::scan`] and
    /// [`Client::revocations_since`]).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// A `reqwest` client of the caller's own (proxies, TLS roots, connection pool). Its
    /// settings win over [`timeout`](Self::timeout), [`connect_timeout`](Self::connect_timeout)
    /// and [`user_agent`](Self::user_agent), which are then not applied.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for a base URL that is not `http(s)://`, or a user
    /// agent or credential that cannot be a header; [`ClientError::Transport`] if TLS cannot
    /// be set up.
    pub fn build(self) -> Result<Client, ClientError> {
        let base = Url::parse(self.base.trim())
            .map_err(|e| ClientError::InvalidArgument { what: "base_url", message: e.to_string() })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() || base.host().is_none() {
            return Err(ClientError::InvalidArgument {
                what: "base_url",
                message: format!("{base} is not an http(s) URL"),
            });
        }
        for (what, v) in [("token", &self.token), ("api_key", &self.api_key)] {
            if let Some(v) = v {
                header_value(what, v)?;
            }
        }
        let http = match self.http {
            Some(http) => http,
            None => {
                let ua = header_value("user_agent", &self.user_agent)?;
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .connect_timeout(self.connect_timeout)
                    .user_agent(ua)
                    .build()
                    .map_err(|e| ClientError::transport("cannot set up the HTTP client", e))?
            }
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                retry: self.retry,
                token: RwLock::new(self.token),
                api_key: self.api_key,
            }),
        })
    }
}

fn header_value(what: &'static str, v: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(v).map_err(|e| ClientError::InvalidArgument { what, message: e.to_string() })
}

/// A client of a ParQ server's API (`/api/v1`).
///
/// Cheap to clone: clones share the connection pool and the session token. Every method is
/// `async` and returns typed data or a typed [`ClientError`]; none panics on what the server
/// sends.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    retry: RetryPolicy,
    token: RwLock<Option<String>>,
    api_key: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("retry", &self.inner.retry)
            .field("logged_in", &self.token().is_some())
            .field("api_key", &self.inner.api_key.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// The session token, when there is one.
    Session,
    /// The API key (`X-Api-Key`), when there is one, else the session token.
    Key,
}

/// One logical request: everything needed to send it again.
struct Request {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    /// Set on every unsafe request; the same on every attempt.
    key: Option<String>,
    auth: Auth,
    accept: &'static str,
}

/// A successful answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Decodes a JSON body.
    fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        let ct = self.content_type();
        if !is_json(ct) {
            return Err(ClientError::malformed(
                self.status,
                format!("expected JSON, got content type {ct:?}"),
                &self.body,
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::malformed(
                self.status,
                format!("the body is not a {}: {e}", short_type_name::<T>()),
                &self.body,
            )
        })
    }

    /// Whether the server replayed the answer to an earlier attempt with the same key.
    pub(crate) fn replayed(&self) -> bool {
        self.headers.get(IDEMPOTENT_REPLAYED).is_some_and(|v| v.as_bytes() == b"true")
    }
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let head = full.split('<').next().unwrap_or(full);
    head.rsplit("::").next().unwrap_or(head)
}

/// A fresh idempotency key (a random UUID).
pub fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(v).ok()?;
    let wait = at.duration_since(Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

impl Client {
    /// A client of the server at `base_url` (for example `https://parq.example.com`), with the
    /// defaults of [`ClientBuilder`].
    ///
    /// # Errors
    /// As [`ClientBuilder::build`].
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Self::builder(base_url).build()
    }

    /// A builder for a client of the server at `base_url`.
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base: base_url.to_owned(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            user_agent: concat!("parq-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            token: None,
            api_key: None,
            http: None,
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The same server and connection pool with another session token (a second driver on
    /// one device, or a token kept from an earlier run); this client keeps its own.
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        self.derive(Some(token.into()), self.inner.api_key.clone())
    }

    /// The same server and connection pool, authenticated with an operator or gate API key.
    pub fn with_api_key(&self, key: impl Into<String>) -> Client {
        self.derive(self.token(), Some(key.into()))
    }

    fn derive(&self, token: Option<String>, api_key: Option<String>) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                retry: self.inner.retry,
                token: RwLock::new(token),
                api_key,
            }),
        }
    }

    /// The session token, when logged in.
    pub fn token(&self) -> Option<String> {
        self.inner.token.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets (or clears) the session token.
    pub fn set_token(&self, token: Option<String>) {
        *self.inner.token.write().unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }

    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(["api", "v1"]);
            path.extend(segments);
        }
        url
    }

    fn get(&self, url: Url, auth: Auth) -> Request {
        Request { method: Method::GET, url, body: None, key: None, auth, accept: "application/json" }
    }

    fn post(&self, url: Url, body: &impl Serialize, key: Option<String>) -> Result<Request, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::InvalidArgument { what: "body", message: e.to_string() })?;
        Ok(Request {
            method: Method::POST,
            url,
            body: Some(body),
            key: Some(key.unwrap_or_else(new_idempotency_key)),
            auth: Auth::Session,
            accept: "application/json",
        })
    }

    /// Sends `req`, retrying what is safe to retry, and returns a 2xx answer or the error.
    async fn send(&self, req: &Request) -> Result<Answer, ClientError> {
        let policy = self.inner.retry;
        let repeatable = req.method == Method::GET || req.key.is_some();
        let mut retry = 0;
        loop {
            let err = match self.attempt(req).await {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            if !repeatable || !err.is_retryable() || retry >= policy.max_retries {
                return Err(err);
            }
            let mut wait = policy.backoff(retry);
            if let Some(after) = err.retry_after() {
                if after > policy.max_retry_after {
                    return Err(err);
                }
                wait = wait.max(after);
            }
            tracing::debug!(
                method = %req.method, url = %req.url, retry = retry + 1, ?wait, error = %err,
                "retrying with the same idempotency key"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// One attempt.
    async fn attempt(&self, req: &Request) -> Result<Answer, ClientError> {
        let mut b = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .header(header::ACCEPT, format!("{}, application/problem+json", req.accept));
        let token = self.token();
        match (req.auth, &self.inner.api_key, token) {
            (Auth::Key, Some(key), _) => b = b.header("x-api-key", key),
            (_, _, Some(token)) => b = b.bearer_auth(token),
            _ => {}
        }
        if let Some(key) = &req.key {
            b = b.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = &req.body {
            b = b.header(header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        let mut resp = b.send().await.map_err(|e| transport(req, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(ClientError::malformed(
                            status,
                            format!("the body is larger than {MAX_BODY} bytes"),
                            &body,
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(transport(req, e)),
            }
        }
        let answer = Answer { status, headers, body };
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let after = retry_after(&answer.headers);
        let ct = answer.content_type().to_owned();
        if is_json(&ct) {
            match serde_json::from_slice::<crate::error::Problem>(&answer.body) {
                Ok(p) if !p.code.is_empty() || p.type_uri.starts_with(crate::error::TYPE_BASE) => {
                    return Err(ClientError::from_problem(p, status, after));
                }
                Ok(_) => {
                    return Err(ClientError::from_status(
                        status,
                        after,
                        "a JSON body that is not a problem",
                        &answer.body,
                    ));
                }
                Err(e) => {
                    return Err(ClientError::from_status(
                        status,
                        after,
                        &format!("unreadable problem: {e}"),
                        &answer.body,
                    ));
                }
            }
        }
        Err(ClientError::from_status(status, after, &format!("content type {ct:?}"), &answer.body))
    }

    async fn json<T: DeserializeOwned>(&self, req: Request) -> Result<T, ClientError> {
        self.send(&req).await?.json()
    }

    // ---- Accounts -------------------------------------------------------------------------

    /// `POST /auth/register`: a driver account. Does not log in.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] (`email`, `password`), [`ClientError::EmailTaken`], and the
    /// errors every call can have.
    pub async fn register(&self, email: &str, password: &str) -> Result<Account, ClientError> {
        let req = self.post(
            self.url(&["auth", "register"]),
            &json!({ "email": email, "password": password }),
            None,
        )?;
        self.json(req).await
    }

    /// `POST /auth/login`: logs in and keeps the session token for the calls that follow.
    /// `totp` is the current code when the account has two-factor authentication.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] (wrong email, password or code),
    /// [`ClientError::MfaRequired`] (send `totp`).
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<Session, ClientError> {
        let mut body = json!({ "email": email, "password": password });
        if let Some(code) = totp {
            body["totp_code"] = Value::String(code.to_owned());
        }
        self.login_with(body).await
    }

    /// `POST /auth/login` with one of the account's recovery codes instead of a TOTP code.
    ///
    /// # Errors
    /// As [`login`](Self::login).
    pub async fn login_with_recovery_code(
        &self,
        email: &str,
        password: &str,
        recovery_code: &str,
    ) -> Result<Session, ClientError> {
        self.login_with(json!({ "email": email, "password": password, "recovery_code": recovery_code })).await
    }

    async fn login_with(&self, body: Value) -> Result<Session, ClientError> {
        let req = self.post(self.url(&["auth", "login"]), &body, None)?;
        let session: Session = self.json(req).await?;
        self.set_token(Some(session.token.clone()));
        Ok(session)
    }

    /// `POST /auth/logout`: ends the session on the server and forgets the token.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] when not logged in (the token is forgotten anyway).
    pub async fn logout(&self) -> Result<(), ClientError> {
        let req = self.post(self.url(&["auth", "logout"]), &json!({}), None)?;
        let sent = self.send(&req).await;
        self.set_token(None);
        sent.map(drop)
    }

    /// `GET /me`: the logged-in account.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] when not logged in or the session expired.
    pub async fn me(&self) -> Result<Account, ClientError> {
        self.json(self.get(self.url(&["me"]), Auth::Session)).await
    }

    /// `POST /me/mfa/totp`: a new TOTP seed to put in an authenticator app; login asks for a
    /// code once [`confirm_totp`](Self::confirm_totp) succeeded.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] when two-factor authentication is on already.
    pub async fn enrol_totp(&self) -> Result<TotpEnrolment, ClientError> {
        let req = self.post(self.url(&["me", "mfa", "totp"]), &json!({}), None)?;
        self.json(req).await
    }

    /// `POST /me/mfa/totp/confirm`: turns two-factor authentication on with a first code;
    /// answers the recovery codes, shown this once.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] (`code`) for a wrong code.
    pub async fn confirm_totp(&self, code: &str) -> Result<Vec<String>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Confirmed {
            recovery_codes: Vec<String>,
        }
        let req = self.post(self.url(&["me", "mfa", "totp", "confirm"]), &json!({ "code": code }), None)?;
        Ok(self.json::<Confirmed>(req).await?.recovery_codes)
    }

    // ---- Finding a place ------------------------------------------------------------------

    /// `GET /lots`: lots within `radius_m` metres of a point with a spot matching `filter` free
    /// for `window`, nearest first.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a point off the globe or a bad window.
    pub async fn search(
        &self,
        lat: f64,
        lon: f64,
        radius_m: f64,
        window: Window,
        filter: SpotFilter,
    ) -> Result<Vec<LotMatch>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Found {
            results: Vec<LotMatch>,
        }
        let mut url = self.url(&["lots"]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("lat", &lat.to_string())
                .append_pair("lon", &lon.to_string())
                .append_pair("radius_m", &radius_m.to_string())
                .append_pair("start", &window.start().to_string())
                .append_pair("end", &window.end().to_string());
            if filter.ev {
                q.append_pair("ev", "true");
            }
            if filter.accessible {
                q.append_pair("accessible", "true");
            }
            if let Some(size) = filter.min_size
                && let Ok(Value::String(size)) = serde_json::to_value(size)
            {
                q.append_pair("min_size", &size);
            }
        }
        Ok(self.json::<Found>(self.get(url, Auth::Session)).await?.results)
    }

    /// `GET /lots/{id}`: a lot and its spots.
    ///
    /// # Errors
    /// [`ClientError::NotFound`].
    pub async fn lot(&self, id: LotId) -> Result<LotDetails, ClientError> {
        self.json(self.get(self.url(&["lots", &id.to_string()]), Auth::Session)).await
    }

    fn window_url(&self, lot: LotId, what: &str, window: Window) -> Url {
        let mut url = self.url(&["lots", &lot.to_string(), what]);
        url.query_pairs_mut()
            .append_pair("start", &window.start().to_string())
            .append_pair("end", &window.end().to_string());
        url
    }

    /// `GET /lots/{id}/availability`: which spots are free for `window`, and its price.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], [`ClientError::Invalid`] for a window the lot does not take.
    pub async fn availability(&self, lot: LotId, window: Window) -> Result<Availability, ClientError> {
        self.json(self.get(self.window_url(lot, "availability", window), Auth::Session)).await
    }

    /// `GET /lots/{id}/quote`: the price of `window`.
    ///
    /// # Errors
    /// As [`availability`](Self::availability).
    pub async fn quote(&self, lot: LotId, window: Window) -> Result<Quote, ClientError> {
        self.json(self.get(self.window_url(lot, "quote", window), Auth::Session)).await
    }

    /// `GET /passes/keys`: the public keys that verify passes offline.
    ///
    /// # Errors
    /// Only those every call can have.
    pub async fn pass_keys(&self) -> Result<PublicKeys, ClientError> {
        #[derive(serde::Deserialize)]
        struct Keys {
            keys: PublicKeys,
        }
        Ok(self.json::<Keys>(self.get(self.url(&["passes", "keys"]), Auth::Session)).await?.keys)
    }

    // ---- Reservations ---------------------------------------------------------------------

    /// `POST /holds`: holds a spot of `lot` for `window` — the named one, or any free one with
    /// the filter's attributes — until the lot's hold deadline. A fresh idempotency key is made
    /// for this call and sent on every retry of it, so a hold whose answer was lost is not made
    /// twice: the retry gets the same reservation.
    ///
    /// # Errors
    /// [`ClientError::Conflict`] (taken, no free spot, blackout), [`ClientError::Invalid`],
    /// [`ClientError::LimitExceeded`], [`ClientError::NotFound`], [`ClientError::Unauthorized`].
    pub async fn hold(
        &self,
        lot: LotId,
        window: Window,
        choice: SpotChoice,
    ) -> Result<Reservation, ClientError> {
        self.hold_with_key(lot, window, choice, &new_idempotency_key()).await.map(|(r, _)| r)
    }

    /// [`hold`](Self::hold) with the caller's own idempotency key (for an app that keeps the
    /// key across restarts). Also answers whether the server replayed an earlier hold made with
    /// this key.
    ///
    /// # Errors
    /// As [`hold`](Self::hold), and [`ClientError::IdempotencyMismatch`] when the key was used
    /// for another request.
    pub async fn hold_with_key(
        &self,
        lot: LotId,
        window: Window,
        choice: SpotChoice,
        idempotency_key: &str,
    ) -> Result<(Reservation, bool), ClientError> {
        let mut body = json!({ "lot_id": lot, "start": window.start(), "end": window.end() });
        match choice {
            SpotChoice::Spot { spot } => body["spot_id"] = json!(spot),
            SpotChoice::Any { filter } => body["filter"] = json!(filter),
        }
        let req = self.post(self.url(&["holds"]), &body, Some(idempotency_key.to_owned()))?;
        let answer = self.send(&req).await?;
        Ok((answer.json()?, answer.replayed()))
    }

    /// `GET /reservations`: the driver's reservations, newest first (at most 50).
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`].
    pub async fn reservations(&self) -> Result<Vec<Reservation>, ClientError> {
        self.reservations_limit(50).await
    }

    /// `GET /reservations?limit=`: at most `limit` (1 to 200) of the driver's reservations.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`], [`ClientError::Invalid`] (`limit`).
    pub async fn reservations_limit(&self, limit: u32) -> Result<Vec<Reservation>, ClientError> {
        #[derive(serde::Deserialize)]
        struct List {
            reservations: Vec<Reservation>,
        }
        let mut url = self.url(&["reservations"]);
        url.query_pairs_mut().append_pair("limit", &limit.to_string());
        Ok(self.json::<List>(self.get(url, Auth::Session)).await?.reservations)
    }

    /// `GET /reservations/{id}`.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] (also for another driver's reservation).
    pub async fn reservation(&self, id: ReservationId) -> Result<Reservation, ClientError> {
        self.json(self.get(self.url(&["reservations", &id.to_string()]), Auth::Session)).await
    }

    fn action(&self, id: ReservationId, action: &str, body: &Value) -> Result<Request, ClientError> {
        self.post(self.url(&["reservations", &id.to_string(), action]), body, None)
    }

    /// `POST /reservations/{id}/checkout`: starts (or returns) the payment of a hold.
    ///
    /// # Errors
    /// [`ClientError::HoldExpired`], [`ClientError::InvalidTransition`], [`ClientError::NotFound`].
    pub async fn checkout(&self, id: ReservationId) -> Result<Checkout, ClientError> {
        self.json(self.action(id, "checkout", &json!({}))?).await
    }

    /// `POST /reservations/{id}/cancel`: releases a hold, or cancels a confirmed reservation
    /// with the lot's refund.
    ///
    /// # Errors
    /// [`ClientError::InvalidTransition`], [`ClientError::NotFound`].
    pub async fn cancel(&self, id: ReservationId) -> Result<Cancellation, ClientError> {
        self.json(self.action(id, "cancel", &json!({}))?).await
    }

    /// `POST /reservations/{id}/extend`: moves the end to `new_end`, repriced.
    ///
    /// # Errors
    /// [`ClientError::Conflict`], [`ClientError::InvalidTransition`], [`ClientError::Invalid`],
    /// [`ClientError::LimitExceeded`].
    pub async fn extend(&self, id: ReservationId, new_end: Timestamp) -> Result<Reservation, ClientError> {
        self.json(self.action(id, "extend", &json!({ "end": new_end }))?).await
    }

    /// `GET /reservations/{id}/pass`: the signed pass of a confirmed reservation.
    ///
    /// # Errors
    /// [`ClientError::InvalidTransition`] before payment, [`ClientError::NotFound`].
    pub async fn pass(&self, id: ReservationId) -> Result<PassInfo, ClientError> {
        self.json(self.get(self.url(&["reservations", &id.to_string(), "pass"]), Auth::Session)).await
    }

    /// `GET /reservations/{id}/pass.svg` or `pass.png`: the pass's QR code as image bytes.
    ///
    /// # Errors
    /// As [`pass`](Self::pass); [`ClientError::MalformedResponse`] when the answer is not the
    /// image asked for.
    pub async fn pass_image(&self, id: ReservationId, format: PassImage) -> Result<Vec<u8>, ClientError> {
        let mut req = self.get(self.url(&["reservations", &id.to_string(), format.suffix()]), Auth::Session);
        req.accept = format.media_type();
        let answer = self.send(&req).await?;
        let ct = answer.content_type();
        let looks_right = match format {
            PassImage::Png => answer.body.starts_with(b"\x89PNG\r\n\x1a\n"),
            PassImage::Svg => std::str::from_utf8(&answer.body).is_ok_and(|s| s.contains("<svg")),
        };
        if !ct.starts_with(format.media_type()) || !looks_right {
            return Err(ClientError::malformed(
                answer.status,
                format!("expected {}, got content type {ct:?}", format.media_type()),
                &answer.body,
            ));
        }
        Ok(answer.body)
    }

    /// The pass's QR code as SVG.
    ///
    /// # Errors
    /// As [`pass_image`](Self::pass_image).
    pub async fn pass_svg(&self, id: ReservationId) -> Result<String, ClientError> {
        let bytes = self.pass_image(id, PassImage::Svg).await?;
        String::from_utf8(bytes)
            .map_err(|e| ClientError::malformed(200, "the SVG is not UTF-8", e.as_bytes()))
    }

    /// The pass's QR code as PNG.
    ///
    /// # Errors
    /// As [`pass_image`](Self::pass_image).
    pub async fn pass_png(&self, id: ReservationId) -> Result<Vec<u8>, ClientError> {
        self.pass_image(id, PassImage::Png).await
    }

    /// With the server's test gateway: plays the driver paying intent `intent_id` (from
    /// [`checkout`](Self::checkout)), which confirms the reservation.
    ///
    /// # Errors
    /// [`ClientError::NotFound`] (unknown intent, or the server does not use the test gateway),
    /// [`ClientError::InvalidTransition`].
    pub async fn pay_test_intent(&self, intent_id: &str) -> Result<TestPayment, ClientError> {
        self.test_pay(intent_id, json!({})).await
    }

    /// With the test gateway: plays the driver's card being declined with `reason`.
    ///
    /// # Errors
    /// As [`pay_test_intent`](Self::pay_test_intent).
    pub async fn decline_test_intent(
        &self,
        intent_id: &str,
        reason: &str,
    ) -> Result<TestPayment, ClientError> {
        self.test_pay(intent_id, json!({ "decline": reason })).await
    }

    async fn test_pay(&self, intent_id: &str, body: Value) -> Result<TestPayment, ClientError> {
        let req = self.post(self.url(&["test-gateway", "intents", intent_id, "pay"]), &body, None)?;
        self.json(req).await
    }

    // ---- Gates ----------------------------------------------------------------------------

    /// `POST /gates/scan` (with the gate API key): whether the barrier of `gate` at `lot`
    /// opens for `pass` (the QR code's text). A refusal is a [`Decision::Refuse`], not an
    /// error. `scan_id` identifies the reading, so a reading delivered twice counts once.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] without a key, [`ClientError::Forbidden`] with a driver's
    /// token, [`ClientError::NotFound`] for another operator's lot, [`ClientError::Invalid`].
    pub async fn scan(
        &self,
        pass: &str,
        lot: LotId,
        direction: Direction,
        gate: &str,
        scan_id: Option<&str>,
    ) -> Result<Decision, ClientError> {
        let mut body = json!({ "pass": pass, "lot_id": lot, "direction": direction, "gate": gate });
        if let Some(id) = scan_id {
            body["scan_id"] = Value::String(id.to_owned());
        }
        let mut req = self.post(self.url(&["gates", "scan"]), &body, None)?;
        req.auth = Auth::Key;
        self.json(req).await
    }

    /// `GET /gates/revocations?since=` (with the gate API key): the passes revoked after
    /// `version`, to apply to an offline gate's list.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`], [`ClientError::Forbidden`].
    pub async fn revocations_since(&self, version: u64) -> Result<RevocationDelta, ClientError> {
        let mut url = self.url(&["gates", "revocations"]);
        url.query_pairs_mut().append_pair("since", &version.to_string());
        self.json(self.get(url, Auth::Key)).await
    }
}

fn transport(req: &Request, e: reqwest::Error) -> ClientError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "no answer"
    };
    ClientError::transport(format!("{} {}: {what}", req.method, req.url.path()), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_encode_segments() {
        let c = Client::new("http://127.0.0.1:8080/parq/").unwrap();
        assert_eq!(c.url(&["lots"]).as_str(), "http://127.0.0.1:8080/parq/api/v1/lots");
        let c = Client::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            c.url(&["test-gateway", "intents", "pi/1 2", "pay"]).as_str(),
            "http://127.0.0.1:8080/api/v1/test-gateway/intents/pi%2F1%202/pay"
        );
    }

    #[test]
    fn only_http_base_urls() {
        for bad in ["ftp://x", "not a url", "mailto:a@b.c", "http://"] {
            assert!(matches!(Client::new(bad), Err(ClientError::InvalidArgument { .. })), "{bad}");
        }
        assert!(matches!(
            Client::builder("http://x").token("a\nb").build(),
            Err(ClientError::InvalidArgument { what: "token", .. })
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for (retry, full) in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000), (40, 1000)] {
            let d = p.backoff(retry).as_millis();
            assert!(d <= full && d >= full * 3 / 4, "retry {retry}: {d} ms");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past: no wait");
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/problem+json; charset=utf-8"));
        assert!(!is_json("text/html"));
        assert!(!is_json(""));
    }
}
