//! Registration, login with TOTP, sessions.

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{Extensions, StatusCode};
use jiff::{SignedDuration, Timestamp};
use parq_core::{Error, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::views::{AccountView, MfaEnabled, Session, SortedJson, TokenType, TotpSeed};
use crate::accounts::{
    Account, LockPolicy, Role, SessionRecord, TotpEnrolment, email, password, secret, totp,
};
use crate::clientaddr::{self, ClientAddr};
use crate::extract::{ApiJson, User};
use crate::problem::{ApiResult, JsonBody, Problem, ProblemCode};
use crate::state::AppState;

/// How many recovery codes a confirmed enrolment gets.
const RECOVERY_CODES: usize = 10;

/// A new driver account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RegisterRequest)]
pub struct RegisterBody {
    /// The login; one account per address.
    #[schema(format = Email)]
    email: String,
    /// At least 10 characters (at most 1024 bytes).
    #[schema(min_length = 10, max_length = 1024)]
    password: String,
}

fn normalize_email(email: &str) -> Result<String, Problem> {
    email::normalize(email).map_err(|e| Error::invalid("email", e.to_string()).into())
}

/// The login throttle's subject of an account.
fn account_subject(id: UserId) -> String {
    format!("account:{id}")
}

/// The login throttle's subject of a client address.
fn ip_subject(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

fn policy(s: &AppState, max_failures: u32) -> LockPolicy {
    let secs = |n: u64| SignedDuration::from_secs(i64::try_from(n).unwrap_or(i64::MAX / 2));
    LockPolicy {
        max_failures,
        lock: secs(s.config.login_lock_secs),
        max_lock: secs(s.config.login_lock_max_secs),
    }
}

/// The answer while a lock is on: `429 login_locked` with `Retry-After`.
fn locked(until: Timestamp, now: Timestamp) -> Problem {
    let secs = until.duration_since(now).as_secs_f64().ceil().max(1.0);
    // Whole seconds, far below u64::MAX: the lock is at most login_lock_max_secs.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let after = Duration::from_secs(secs as u64);
    Problem::new(
        ProblemCode::LoginLocked,
        format!("too many failed logins: try again in {} s", after.as_secs()),
    )
    .retry_after(after)
}

/// Who is logging in, for the throttle and the audit log.
struct Attempt {
    client: IpAddr,
    account: Option<UserId>,
}

impl Attempt {
    /// Refuses the attempt while the client's address or the account is locked.
    async fn check(&self, s: &AppState) -> ApiResult<()> {
        let now = Timestamp::now();
        let mut until = s.accounts.auth_throttle(&ip_subject(self.client)).await?.locked_at(now);
        if let Some(id) = self.account {
            until = until.max(s.accounts.auth_throttle(&account_subject(id)).await?.locked_at(now));
        }
        match until {
            Some(until) => Err(locked(until, now)),
            None => Ok(()),
        }
    }

    /// Counts a failure (of `what`: password, totp or recovery code) against the account and
    /// the client's address; answers `refusal`, or `429` when this failure started a lock.
    async fn failed(&self, s: &AppState, what: &'static str, refusal: Problem) -> Problem {
        let now = Timestamp::now();
        let mut until = None;
        let ip_policy = policy(s, s.config.login_ip_max_failures);
        match s.accounts.record_auth_failure(&ip_subject(self.client), now, &ip_policy).await {
            Ok(t) => {
                if let Some(u) = t.locked_at(now) {
                    tracing::warn!(target: "parq::audit", event = "login_locked", subject = "client",
                        client = %self.client, failures = t.failures, locked_until = %u, factor = what,
                        "logins from this address are locked after failed attempts");
                    until = Some(u);
                }
            }
            Err(e) => return Problem::from(e),
        }
        if let Some(id) = self.account {
            let account_policy = policy(s, s.config.login_max_failures);
            match s.accounts.record_auth_failure(&account_subject(id), now, &account_policy).await {
                Ok(t) => {
                    if let Some(u) = t.locked_at(now) {
                        tracing::warn!(target: "parq::audit", event = "login_locked", subject = "account",
                            user = %id, client = %self.client, failures = t.failures, locked_until = %u,
                            factor = what, "logins of this account are locked after failed attempts");
                        until = until.max(Some(u));
                    } else {
                        tracing::info!(target: "parq::audit", event = "login_failed", user = %id,
                            client = %self.client, failures = t.failures, factor = what, "failed login");
                    }
                }
                Err(e) => return Problem::from(e),
            }
        }
        match until {
            Some(until) => locked(until, now),
            None => refusal,
        }
    }
}

/// Register a driver account.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    operation_id = "register",
    tag = "accounts",
    request_body = RegisterBody,
    responses(
        (status = CREATED, description = "Registered", body = AccountView),
        (status = CONFLICT, response = Problem),
        JsonBody,
    )
)]
pub async fn register(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<AccountView>)> {
    let email = normalize_email(&b.email)?;
    password::check_new(&b.password)?;
    let account = Account {
        id: UserId::new(),
        email,
        password_hash: password::hash(b.password).await?,
        role: Role::Driver,
        operator: None,
        totp: None,
        recovery_codes: vec![],
        totp_last_step: 0,
        created_at: Timestamp::now(),
    };
    if !s.accounts.create_user(&account).await? {
        return Err(Problem::new(
            ProblemCode::EmailTaken,
            "an account with this email exists; log in instead",
        )
        .with("field", "email"));
    }
    tracing::info!(user = %account.id, "account registered");
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LoginRequest)]
pub struct LoginBody {
    /// The account's email address.
    email: String,
    /// Its password.
    password: String,
    /// The current TOTP code, when two-factor authentication is on.
    #[serde(default)]
    totp_code: Option<String>,
    /// Instead of `totp_code`: one of the recovery codes (each works once).
    #[serde(default)]
    recovery_code: Option<String>,
}

/// Log in (password, then a TOTP or recovery code when enrolled).
///
/// Answers a bearer token for `Authorization: Bearer <token>`. Failed attempts (password, TOTP
/// or recovery code) are counted per account and per client address; past the configured
/// number, logins are refused with `429 login_locked` and `Retry-After`, even with the right
/// password, for a time that doubles with each further failure.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "login",
    tag = "accounts",
    request_body = LoginBody,
    responses(
        (status = OK, description = "A session", body = Session),
        (status = UNAUTHORIZED, response = Problem),
        (status = TOO_MANY_REQUESTS, response = Problem),
        JsonBody,
    )
)]
pub async fn login(
    State(s): State<AppState>,
    extensions: Extensions,
    ApiJson(b): ApiJson<LoginBody>,
) -> ApiResult<SortedJson<Session>> {
    let client = extensions.get::<ClientAddr>().map_or_else(|| clientaddr::peer(&extensions), |c| c.0);
    let email = normalize_email(&b.email)?;
    let account = s.accounts.user_by_email(&email).await?;
    let attempt = Attempt { client, account: account.as_ref().map(|a| a.id) };
    attempt.check(&s).await?;
    let phc = account.as_ref().map_or_else(|| password::decoy().to_owned(), |a| a.password_hash.clone());
    let ok = password::verify(b.password, phc).await;
    let Some(mut account) = account.filter(|_| ok) else {
        return Err(attempt.failed(&s, "password", Problem::unauthorized("wrong email or password")).await);
    };
    if account.mfa_enabled() {
        if let Err((what, refusal)) =
            second_factor(&s, &account, b.totp_code.as_deref(), b.recovery_code.as_deref()).await?
        {
            return Err(match what {
                Some(what) => attempt.failed(&s, what, refusal).await,
                None => refusal,
            });
        }
        // A recovery code was used: answer the account as it is now.
        if b.totp_code.is_none() {
            account = account_of_id(&s, account.id).await?;
        }
    }
    s.accounts.clear_auth_failures(&account_subject(account.id)).await?;
    let now = Timestamp::now();
    let token = secret::token(secret::SESSION_PREFIX);
    let ttl = SignedDuration::from_secs(i64::try_from(s.config.session_ttl_secs).unwrap_or(i64::MAX / 2));
    let expires_at = now.checked_add(ttl).map_err(|e| Error::invalid("session_ttl_secs", e.to_string()))?;
    s.accounts
        .put_session(&SessionRecord {
            token_hash: secret::digest(&token),
            user: account.id,
            created_at: now,
            expires_at,
        })
        .await?;
    tracing::info!(user = %account.id, client = %client, "logged in");
    Ok(SortedJson(Session {
        expires_at,
        token,
        token_type: TokenType::Bearer,
        user: AccountView::from(&account),
    }))
}

/// A refused second factor: the factor that failed (counted by the throttle; none when the
/// request sent no code at all) and the answer.
type Refused = (Option<&'static str>, Problem);

async fn second_factor(
    s: &AppState,
    account: &Account,
    code: Option<&str>,
    recovery: Option<&str>,
) -> ApiResult<Result<(), Refused>> {
    let enrolment = account.totp.as_ref().ok_or_else(|| Problem::unauthorized("no second factor"))?;
    if let Some(code) = code {
        // A malformed code is a wrong code, counted like one.
        let step = totp::check(&enrolment.secret, code, Timestamp::now()).ok().flatten();
        if let Some(step) = step
            && s.accounts.accept_totp_step(account.id, step).await?
        {
            return Ok(Ok(()));
        }
        return Ok(Err((
            Some("totp"),
            Problem::unauthorized("the one-time code is wrong, expired or already used")
                .with("field", "totp_code"),
        )));
    }
    if let Some(code) = recovery {
        let digest = secret::digest(&secret::normalize_recovery_code(code));
        if s.accounts.use_recovery_code(account.id, &digest).await? {
            tracing::warn!(target: "parq::audit", event = "recovery_code_used", user = %account.id,
                "logged in with a recovery code");
            return Ok(Ok(()));
        }
        return Ok(Err((
            Some("recovery_code"),
            Problem::unauthorized("the recovery code is wrong or already used")
                .with("field", "recovery_code"),
        )));
    }
    Ok(Err((
        None,
        Problem::new(
            ProblemCode::MfaRequired,
            "this account has two-factor authentication: send totp_code (or recovery_code)",
        ),
    )))
}

/// End the session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "logout",
    tag = "accounts",
    security(("bearer" = [])),
    responses((status = NO_CONTENT, description = "Logged out"))
)]
pub async fn logout(State(s): State<AppState>, user: User) -> ApiResult<StatusCode> {
    s.accounts.delete_session(&user.session).await?;
    s.auth_cache.forget(&user.session);
    Ok(StatusCode::NO_CONTENT)
}

async fn account_of(s: &AppState, user: &User) -> ApiResult<Account> {
    account_of_id(s, user.id).await
}

async fn account_of_id(s: &AppState, id: UserId) -> ApiResult<Account> {
    s.accounts.user(id).await?.ok_or_else(|| Problem::unauthorized("the account no longer exists"))
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "accounts",
    security(("bearer" = [])),
    responses((status = OK, description = "Account", body = AccountView))
)]
pub async fn me(State(s): State<AppState>, user: User) -> ApiResult<Json<AccountView>> {
    Ok(Json(AccountView::from(&account_of(&s, &user).await?)))
}

/// Start TOTP enrolment: a new seed to scan; required at login once confirmed.
#[utoipa::path(
    post,
    path = "/api/v1/me/mfa/totp",
    operation_id = "enrol_totp",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = OK, description = "A seed to scan", body = TotpSeed),
        (status = UNPROCESSABLE_ENTITY, response = Problem),
    )
)]
pub async fn totp_enrol(State(s): State<AppState>, user: User) -> ApiResult<SortedJson<TotpSeed>> {
    let account = account_of(&s, &user).await?;
    if account.mfa_enabled() {
        return Err(Error::invalid("totp", "two-factor authentication is already enabled").into());
    }
    let seed = totp::new_secret();
    s.accounts
        .set_mfa(account.id, Some(TotpEnrolment { secret: seed.clone(), confirmed: false }), vec![])
        .await?;
    Ok(SortedJson(TotpSeed {
        algorithm: "SHA1".into(),
        digits: 6,
        otpauth_uri: totp::uri(&seed, &account.email),
        period: 30,
        secret: seed,
    }))
}

/// A code of the seed being enrolled.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TotpConfirmation)]
pub struct ConfirmBody {
    /// The app's current code.
    code: String,
}

/// Confirm TOTP with a code; returns recovery codes once.
///
/// Proves the seed is in the app; the recovery codes are shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/me/mfa/totp/confirm",
    operation_id = "confirm_totp",
    tag = "accounts",
    security(("bearer" = [])),
    request_body = ConfirmBody,
    responses(
        (status = OK, description = "Enabled", body = MfaEnabled),
        JsonBody,
    )
)]
pub async fn totp_confirm(
    State(s): State<AppState>,
    user: User,
    ApiJson(b): ApiJson<ConfirmBody>,
) -> ApiResult<SortedJson<MfaEnabled>> {
    let account = account_of(&s, &user).await?;
    let Some(enrolment) = account.totp.clone() else {
        return Err(Error::invalid("totp", "enrol first (POST /api/v1/me/mfa/totp)").into());
    };
    if enrolment.confirmed {
        return Err(Error::invalid("totp", "two-factor authentication is already enabled").into());
    }
    let accepted = match totp::check(&enrolment.secret, &b.code, Timestamp::now())? {
        Some(step) => s.accounts.accept_totp_step(account.id, step).await?,
        None => false,
    };
    if !accepted {
        return Err(Error::invalid("code", "the one-time code is wrong or expired").into());
    }
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| secret::recovery_code()).collect();
    let digests = codes.iter().map(|c| secret::digest(c)).collect();
    s.accounts.set_mfa(account.id, Some(TotpEnrolment { confirmed: true, ..enrolment }), digests).await?;
    tracing::info!(user = %account.id, "two-factor authentication enabled");
    Ok(SortedJson(MfaEnabled { mfa_enabled: true, recovery_codes: codes }))
}
