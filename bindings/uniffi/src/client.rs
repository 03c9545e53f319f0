//! `ParqClient`: parq-client's typed client of a ParQ server, with async methods that run on the
//! crate's own Tokio runtime (Kotlin `suspend fun`, Swift `async throws`).

use std::sync::Arc;
use std::time::Duration;

use parq_client::{Client, RetryPolicy};

use crate::error::ParqError;
use crate::live::{LiveHandle, LiveListener, LiveOptions};
use crate::runtime::run;
use crate::types::{
    self, Account, Availability, Cancellation, Checkout, Direction, HoldOutcome, LotDetails, LotMatch,
    PassInfo, PublicKeyRecord, Quote, Reservation, RevocationDelta, ScanDecision, Session, SpotChoice,
    SpotFilter, SpotStatus, TestPayment, TotpEnrolment,
};

/// How a [`ParqClient`] talks to its server. Every field is optional; parq-client's defaults
/// apply (30 s per request, 10 s to connect, 3 retries from 100 ms doubling up to 2 s).
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientOptions {
    /// Each request's timeout, from sending to the end of the body.
    #[uniffi(default = None)]
    pub timeout_ms: Option<u64>,
    /// The timeout for opening a connection.
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u64>,
    /// Retries after the first attempt (0 turns them off). Only what is safe is retried:
    /// `GET`s and requests with an idempotency key (every unsafe request has one).
    #[uniffi(default = None)]
    pub max_retries: Option<u32>,
    /// The first backoff; each retry doubles it.
    #[uniffi(default = None)]
    pub initial_backoff_ms: Option<u64>,
    /// The longest backoff.
    #[uniffi(default = None)]
    pub max_backoff_ms: Option<u64>,
    /// The longest `Retry-After` honoured.
    #[uniffi(default = None)]
    pub max_retry_after_ms: Option<u64>,
    /// The `User-Agent`.
    #[uniffi(default = None)]
    pub user_agent: Option<String>,
    /// A session token kept from an earlier `login`.
    #[uniffi(default = None)]
    pub token: Option<String>,
    /// An operator or gate API key (for `scan` and `revocations`).
    #[uniffi(default = None)]
    pub api_key: Option<String>,
}

/// A client of a ParQ server's API (`/api/v1`) and of its live updates.
///
/// Cheap to share: `withToken` and `withApiKey` make clients with other credentials on the same
/// connection pool. Every call returns typed data or throws a typed `ParqException`
/// (`ParqError` in Swift); none crashes on what the server sends.
#[derive(Debug, uniffi::Object)]
pub struct ParqClient {
    inner: Client,
}

impl ParqClient {
    /// The parq-client client, for Rust callers.
    pub fn core(&self) -> &Client {
        &self.inner
    }

    fn client(&self) -> Client {
        self.inner.clone()
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[uniffi::export]
impl ParqClient {
    /// A client of the server at `base_url` (for example `https://parq.example.com`).
    ///
    /// # Errors
    /// `Invalid` (field `base_url`, `token`, `api_key`, `user_agent`) for a URL that is not
    /// http(s) or a credential that cannot be a header; `Transport` when TLS cannot be set up.
    #[uniffi::constructor(default(options = None))]
    pub fn new(base_url: String, options: Option<ClientOptions>) -> Result<Arc<Self>, ParqError> {
        let o = options.unwrap_or_default();
        let mut b = Client::builder(&base_url);
        if let Some(t) = o.timeout_ms {
            b = b.timeout(millis(t));
        }
        if let Some(t) = o.connect_timeout_ms {
            b = b.connect_timeout(millis(t));
        }
        let d = RetryPolicy::default();
        b = b.retry(RetryPolicy {
            max_retries: o.max_retries.unwrap_or(d.max_retries),
            initial_backoff: o.initial_backoff_ms.map_or(d.initial_backoff, millis),
            max_backoff: o.max_backoff_ms.map_or(d.max_backoff, millis),
            max_retry_after: o.max_retry_after_ms.map_or(d.max_retry_after, millis),
        });
        if let Some(ua) = o.user_agent {
            b = b.user_agent(ua);
        }
        if let Some(t) = o.token {
            b = b.token(t);
        }
        if let Some(k) = o.api_key {
            b = b.api_key(k);
        }
        Ok(Arc::new(Self { inner: b.build()? }))
    }

    /// The same server and connection pool with another session token.
    pub fn with_token(&self, token: String) -> Arc<Self> {
        Arc::new(Self { inner: self.inner.with_token(token) })
    }

    /// The same server and connection pool, authenticated with an operator or gate API key.
    pub fn with_api_key(&self, api_key: String) -> Arc<Self> {
        Arc::new(Self { inner: self.inner.with_api_key(api_key) })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> String {
        self.inner.base_url().to_string()
    }

    /// The session token, when logged in (keep it to skip the next login).
    pub fn token(&self) -> Option<String> {
        self.inner.token()
    }

    /// Sets or clears the session token.
    pub fn set_token(&self, token: Option<String>) {
        self.inner.set_token(token);
    }
}

#[uniffi::export]
impl ParqClient {
    // ---- Accounts --------------------------------------------------------------------------

    /// Registers a driver account (does not log in).
    ///
    /// # Errors
    /// `Invalid` (`email`, `password`), `EmailTaken`, and what every call can throw.
    pub async fn register(&self, email: String, password: String) -> Result<Account, ParqError> {
        let c = self.client();
        run(async move { Ok(c.register(&email, &password).await?.into()) }).await
    }

    /// Logs in and keeps the session token for the calls that follow; `totp` is the current
    /// code when the account has two-factor authentication.
    ///
    /// # Errors
    /// `Unauthorized` (wrong email, password or code), `MfaRequired` (send `totp`).
    #[uniffi::method(default(totp = None))]
    pub async fn login(
        &self,
        email: String,
        password: String,
        totp: Option<String>,
    ) -> Result<Session, ParqError> {
        let c = self.client();
        run(async move { Ok(c.login(&email, &password, totp.as_deref()).await?.into()) }).await
    }

    /// Logs in with one of the account's recovery codes instead of a TOTP code.
    ///
    /// # Errors
    /// As [`login`](Self::login).
    pub async fn login_with_recovery_code(
        &self,
        email: String,
        password: String,
        recovery_code: String,
    ) -> Result<Session, ParqError> {
        let c = self.client();
        run(async move { Ok(c.login_with_recovery_code(&email, &password, &recovery_code).await?.into()) })
            .await
    }

    /// Ends the session on the server and forgets the token.
    ///
    /// # Errors
    /// `Unauthorized` when not logged in (the token is forgotten anyway).
    pub async fn logout(&self) -> Result<(), ParqError> {
        let c = self.client();
        run(async move { Ok(c.logout().await?) }).await
    }

    /// The logged-in account.
    ///
    /// # Errors
    /// `Unauthorized`.
    pub async fn me(&self) -> Result<Account, ParqError> {
        let c = self.client();
        run(async move { Ok(c.me().await?.into()) }).await
    }

    /// A new TOTP seed for an authenticator app; login asks for a code once
    /// [`confirm_totp`](Self::confirm_totp) succeeded.
    ///
    /// # Errors
    /// `Invalid` when two-factor authentication is on already.
    pub async fn enrol_totp(&self) -> Result<TotpEnrolment, ParqError> {
        let c = self.client();
        run(async move { Ok(c.enrol_totp().await?.into()) }).await
    }

    /// Turns two-factor authentication on with a first code; returns the recovery codes,
    /// shown this once.
    ///
    /// # Errors
    /// `Invalid` (`code`) for a wrong code.
    pub async fn confirm_totp(&self, code: String) -> Result<Vec<String>, ParqError> {
        let c = self.client();
        run(async move { Ok(c.confirm_totp(&code).await?) }).await
    }

    // ---- Finding a place -------------------------------------------------------------------

    /// Lots within `radius_m` metres of a point with a spot matching `filter` free for
    /// `[start, end)`, nearest first.
    ///
    /// # Errors
    /// `Invalid` for a point off the globe or a bad window.
    #[uniffi::method(default(filter = None))]
    pub async fn search(
        &self,
        lat: f64,
        lon: f64,
        radius_m: f64,
        start_epoch_seconds: i64,
        end_epoch_seconds: i64,
        filter: Option<SpotFilter>,
    ) -> Result<Vec<LotMatch>, ParqError> {
        let c = self.client();
        let window = types::window(start_epoch_seconds, end_epoch_seconds)?;
        let filter = filter.unwrap_or_default().into();
        run(async move {
            let found = c.search(lat, lon, radius_m, window, filter).await?;
            Ok(found
                .into_iter()
                .map(|m| LotMatch {
                    lot: m.lot.into(),
                    distance_m: m.distance_m,
                    free: m.free as u64,
                    price: m.price.into(),
                })
                .collect())
        })
        .await
    }

    /// A lot and its spots.
    ///
    /// # Errors
    /// `NotFound`; `Invalid` for an id that is not a UUID.
    pub async fn lot(&self, lot_id: String) -> Result<LotDetails, ParqError> {
        let c = self.client();
        let id = types::lot_id("lot_id", &lot_id)?;
        run(async move {
            let d = c.lot(id).await?;
            Ok(LotDetails { lot: d.lot.into(), spots: d.spots.into_iter().map(Into::into).collect() })
        })
        .await
    }

    /// Which spots of a lot are free for `[start, end)`, and its price.
    ///
    /// # Errors
    /// `NotFound`, `Invalid`.
    pub async fn availability(
        &self,
        lot_id: String,
        start_epoch_seconds: i64,
        end_epoch_seconds: i64,
    ) -> Result<Availability, ParqError> {
        let c = self.client();
        let id = types::lot_id("lot_id", &lot_id)?;
        let window = types::window(start_epoch_seconds, end_epoch_seconds)?;
        run(async move {
            let a = c.availability(id, window).await?;
            Ok(Availability {
                lot_id: a.lot.to_string(),
                window: a.window.into(),
                spots: a
                    .spots
                    .into_iter()
                    .map(|s| SpotStatus { spot: s.spot.into(), free: s.free })
                    .collect(),
                free: a.free as u64,
                price: a.price.into(),
            })
        })
        .await
    }

    /// The server's price of `[start, end)` in a lot.
    ///
    /// # Errors
    /// `NotFound`; `Invalid` or `LimitExceeded` for a window the lot does not take.
    pub async fn quote(
        &self,
        lot_id: String,
        start_epoch_seconds: i64,
        end_epoch_seconds: i64,
    ) -> Result<Quote, ParqError> {
        let c = self.client();
        let id = types::lot_id("lot_id", &lot_id)?;
        let window = types::window(start_epoch_seconds, end_epoch_seconds)?;
        run(async move { Ok(c.quote(id, window).await?.into()) }).await
    }

    /// The public keys that verify passes offline (give them to a `GateVerifier`).
    ///
    /// # Errors
    /// What every call can throw.
    pub async fn pass_keys(&self) -> Result<Vec<PublicKeyRecord>, ParqError> {
        let c = self.client();
        run(async move { Ok(types::public_key_records(&c.pass_keys().await?)) }).await
    }

    // ---- Reservations ----------------------------------------------------------------------

    /// Holds a spot — the named one, or any free one matching a filter — for `[start, end)`
    /// until the lot's hold deadline. A fresh idempotency key is made for this call and sent
    /// again on each of its retries, so a hold whose answer was lost is not made twice.
    ///
    /// # Errors
    /// `Conflict` (taken, no free spot, blackout), `Invalid`, `LimitExceeded`, `NotFound`,
    /// `Unauthorized`.
    pub async fn hold(
        &self,
        lot_id: String,
        start_epoch_seconds: i64,
        end_epoch_seconds: i64,
        choice: SpotChoice,
    ) -> Result<Reservation, ParqError> {
        self.hold_with_key(lot_id, start_epoch_seconds, end_epoch_seconds, choice, new_idempotency_key())
            .await
            .map(|h| h.reservation)
    }

    /// [`hold`](Self::hold) with an idempotency key of the app's own (make one with
    /// `newIdempotencyKey()` and keep it across an app restart): the same key and request
    /// return the same reservation (`replayed`), the same key with another request throws
    /// `IdempotencyMismatch`.
    ///
    /// # Errors
    /// As [`hold`](Self::hold), and `IdempotencyMismatch`.
    pub async fn hold_with_key(
        &self,
        lot_id: String,
        start_epoch_seconds: i64,
        end_epoch_seconds: i64,
        choice: SpotChoice,
        idempotency_key: String,
    ) -> Result<HoldOutcome, ParqError> {
        let c = self.client();
        let id = types::lot_id("lot_id", &lot_id)?;
        let window = types::window(start_epoch_seconds, end_epoch_seconds)?;
        let choice: parq_core::SpotChoice = choice.try_into()?;
        run(async move {
            let (r, replayed) = c.hold_with_key(id, window, choice, &idempotency_key).await?;
            Ok(HoldOutcome { reservation: r.into(), replayed })
        })
        .await
    }

    /// Starts (or returns) the payment of a hold.
    ///
    /// # Errors
    /// `HoldExpired`, `InvalidTransition`, `NotFound`.
    pub async fn checkout(&self, reservation_id: String) -> Result<Checkout, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        run(async move { Ok(c.checkout(id).await?.into()) }).await
    }

    /// With the server's test gateway: plays the driver paying the intent of a checkout,
    /// which confirms the reservation.
    ///
    /// # Errors
    /// `NotFound` (unknown intent, or no test gateway), `InvalidTransition`.
    pub async fn pay_test_intent(&self, intent_id: String) -> Result<TestPayment, ParqError> {
        let c = self.client();
        run(async move { Ok(c.pay_test_intent(&intent_id).await?.into()) }).await
    }

    /// With the test gateway: plays the driver's card being declined with `reason`.
    ///
    /// # Errors
    /// As [`pay_test_intent`](Self::pay_test_intent).
    pub async fn decline_test_intent(
        &self,
        intent_id: String,
        reason: String,
    ) -> Result<TestPayment, ParqError> {
        let c = self.client();
        run(async move { Ok(c.decline_test_intent(&intent_id, &reason).await?.into()) }).await
    }

    /// The driver's reservations, newest first (at most 50).
    ///
    /// # Errors
    /// `Unauthorized`.
    pub async fn reservations(&self) -> Result<Vec<Reservation>, ParqError> {
        let c = self.client();
        run(async move { Ok(c.reservations().await?.into_iter().map(Into::into).collect()) }).await
    }

    /// One of the driver's reservations.
    ///
    /// # Errors
    /// `NotFound` (also for another driver's).
    pub async fn reservation(&self, reservation_id: String) -> Result<Reservation, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        run(async move { Ok(c.reservation(id).await?.into()) }).await
    }

    /// The signed pass of a confirmed reservation; its `text` goes into the QR code.
    ///
    /// # Errors
    /// `InvalidTransition` before payment, `NotFound`.
    pub async fn pass(&self, reservation_id: String) -> Result<PassInfo, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        run(async move { Ok(c.pass(id).await?.into()) }).await
    }

    /// The pass's QR code as the server renders it, PNG.
    ///
    /// # Errors
    /// As [`pass`](Self::pass); `MalformedResponse` when the answer is not a PNG.
    pub async fn pass_png(&self, reservation_id: String) -> Result<Vec<u8>, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        run(async move { Ok(c.pass_png(id).await?) }).await
    }

    /// The pass's QR code as the server renders it, SVG.
    ///
    /// # Errors
    /// As [`pass_png`](Self::pass_png).
    pub async fn pass_svg(&self, reservation_id: String) -> Result<String, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        run(async move { Ok(c.pass_svg(id).await?) }).await
    }

    /// Releases a hold, or cancels a confirmed reservation with the lot's refund.
    ///
    /// # Errors
    /// `InvalidTransition`, `NotFound`.
    pub async fn cancel(&self, reservation_id: String) -> Result<Cancellation, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        run(async move { Ok(c.cancel(id).await?.into()) }).await
    }

    /// Moves a reservation's end to `new_end_epoch_seconds`, repriced.
    ///
    /// # Errors
    /// `Conflict`, `InvalidTransition`, `Invalid`, `LimitExceeded`.
    pub async fn extend(
        &self,
        reservation_id: String,
        new_end_epoch_seconds: i64,
    ) -> Result<Reservation, ParqError> {
        let c = self.client();
        let id = types::reservation_id("reservation_id", &reservation_id)?;
        let end = types::timestamp("new_end_epoch_seconds", new_end_epoch_seconds)?;
        run(async move { Ok(c.extend(id, end).await?.into()) }).await
    }

    // ---- Gates -----------------------------------------------------------------------------

    /// With a gate API key (`withApiKey`): whether the barrier of `gate` at a lot opens for a
    /// pass, decided online by the server. A refusal is a decision, not an error. `scan_id`
    /// identifies the reading, so a reading delivered twice counts once (the same text gives
    /// the same reading offline, in a `GateVerifier`).
    ///
    /// # Errors
    /// `Unauthorized` without a key, `Forbidden` with a driver's token, `NotFound` for another
    /// operator's lot, `Invalid`.
    #[uniffi::method(default(scan_id = None))]
    pub async fn scan(
        &self,
        pass_text: String,
        lot_id: String,
        direction: Direction,
        gate: String,
        scan_id: Option<String>,
    ) -> Result<ScanDecision, ParqError> {
        let c = self.client();
        let id = types::lot_id("lot_id", &lot_id)?;
        run(async move { Ok(c.scan(&pass_text, id, direction.into(), &gate, scan_id.as_deref()).await?.into()) })
            .await
    }

    /// With a gate API key: the passes revoked after `since_version`, for a `GateVerifier`'s
    /// `applyRevocations`.
    ///
    /// # Errors
    /// `Unauthorized`, `Forbidden`.
    pub async fn revocations(&self, since_version: u64) -> Result<RevocationDelta, ParqError> {
        let c = self.client();
        run(async move { Ok(c.revocations_since(since_version).await?.into()) }).await
    }

    // ---- Live updates ----------------------------------------------------------------------

    /// Connects to the server's live updates — the lots in `options`, and with `driver` the
    /// logged-in driver's own reservation events — and delivers each to `listener` until the
    /// returned handle is stopped, closed (Kotlin `close()`) or dropped. Each lot's events
    /// arrive once and in order, also across reconnects.
    ///
    /// # Errors
    /// `Unauthorized` for a driver stream without a session, `NotFound` for an unknown lot,
    /// `Transport` when the server cannot be reached, `Invalid` for a lot id that is not a UUID.
    pub async fn live(
        &self,
        options: LiveOptions,
        listener: Arc<dyn LiveListener>,
    ) -> Result<Arc<LiveHandle>, ParqError> {
        let builder = crate::live::builder(&self.inner, &options)?;
        run(async move { crate::live::start(builder, listener).await }).await
    }
}

/// A fresh idempotency key (a random UUID), for `holdWithKey`; keep it until the hold's answer
/// arrived, and send the same key again on every retry of that hold.
#[uniffi::export]
pub fn new_idempotency_key() -> String {
    parq_client::new_idempotency_key()
}
