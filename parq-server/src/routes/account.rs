//! Registration, login with TOTP, sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use parq_core::{Error, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::AccountView;
use crate::accounts::{Account, Role, SessionRecord, TotpEnrolment, password, secret, totp};
use crate::extract::{ApiJson, User};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// How many recovery codes a confirmed enrolment gets.
const RECOVERY_CODES: usize = 10;

/// The body of `POST /api/v1/auth/register`: an email address and a password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
}

fn normalize_email(email: &str) -> Result<String, Problem> {
    let e = email.trim().to_lowercase();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(Error::invalid("email", "is not an email address").into());
    }
    Ok(e)
}

/// `POST /api/v1/auth/register`: a driver account.
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
        return Err(Problem::new("email_taken", "an account with this email exists; log in instead")
            .with("field", "email"));
    }
    tracing::info!(user = %account.id, "account registered");
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// The body of `POST /api/v1/auth/login`: the credentials, and a TOTP or recovery code when enrolled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    totp_code: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// `POST /api/v1/auth/login`: a bearer token, after the password and, when enrolled, a TOTP
/// code (or one recovery code).
pub async fn login(State(s): State<AppState>, ApiJson(b): ApiJson<LoginBody>) -> ApiResult<Json<Value>> {
    let wrong = || Problem::unauthorized("wrong email or password");
    let email = b.email.trim().to_lowercase();
    let account = s.accounts.user_by_email(&email).await?;
    let phc = account.as_ref().map_or_else(|| password::decoy().to_owned(), |a| a.password_hash.clone());
    let ok = password::verify(b.password, phc).await;
    let Some(account) = account.filter(|_| ok) else { return Err(wrong()) };
    if account.mfa_enabled() {
        second_factor(&s, &account, b.totp_code.as_deref(), b.recovery_code.as_deref()).await?;
    }
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
    tracing::info!(user = %account.id, "logged in");
    Ok(Json(json!({
        "token": token,
        "token_type": "Bearer",
        "expires_at": expires_at,
        "user": AccountView::from(&account),
    })))
}

async fn second_factor(
    s: &AppState,
    account: &Account,
    code: Option<&str>,
    recovery: Option<&str>,
) -> ApiResult<()> {
    let enrolment = account.totp.as_ref().ok_or_else(|| Problem::unauthorized("no second factor"))?;
    if let Some(code) = code {
        let step = totp::check(&enrolment.secret, code, Timestamp::now())?;
        if let Some(step) = step
            && s.accounts.accept_totp_step(account.id, step).await?
        {
            return Ok(());
        }
        return Err(Problem::unauthorized("the one-time code is wrong, expired or already used")
            .with("field", "totp_code"));
    }
    if let Some(code) = recovery {
        let digest = secret::digest(&secret::normalize_recovery_code(code));
        if s.accounts.use_recovery_code(account.id, &digest).await? {
            tracing::warn!(user = %account.id, "logged in with a recovery code");
            return Ok(());
        }
        return Err(Problem::unauthorized("the recovery code is wrong or already used")
            .with("field", "recovery_code"));
    }
    Err(Problem::new(
        "mfa_required",
        "this account has two-factor authentication: send totp_code (or recovery_code)",
    ))
}

/// `POST /api/v1/auth/logout`: ends the session.
pub async fn logout(State(s): State<AppState>, user: User) -> ApiResult<StatusCode> {
    s.accounts.delete_session(&user.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn account_of(s: &AppState, user: &User) -> ApiResult<Account> {
    s.accounts.user(user.id).await?.ok_or_else(|| Problem::unauthorized("the account no longer exists"))
}

/// `GET /api/v1/me`.
pub async fn me(State(s): State<AppState>, user: User) -> ApiResult<Json<AccountView>> {
    Ok(Json(AccountView::from(&account_of(&s, &user).await?)))
}

/// `POST /api/v1/me/mfa/totp`: a new TOTP seed to scan; required at login once confirmed.
pub async fn totp_enrol(State(s): State<AppState>, user: User) -> ApiResult<Json<Value>> {
    let account = account_of(&s, &user).await?;
    if account.mfa_enabled() {
        return Err(Error::invalid("totp", "two-factor authentication is already enabled").into());
    }
    let seed = totp::new_secret();
    s.accounts
        .set_mfa(account.id, Some(TotpEnrolment { secret: seed.clone(), confirmed: false }), vec![])
        .await?;
    Ok(Json(json!({
        "secret": seed,
        "otpauth_uri": totp::uri(&seed, &account.email),
        "algorithm": "SHA1",
        "digits": 6,
        "period": 30,
    })))
}

/// The body of `POST /api/v1/me/mfa/totp/confirm`: a code from the authenticator app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    code: String,
}

/// `POST /api/v1/me/mfa/totp/confirm`: proves the seed is in the app; answers the recovery
/// codes, shown this once.
pub async fn totp_confirm(
    State(s): State<AppState>,
    user: User,
    ApiJson(b): ApiJson<ConfirmBody>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "mfa_enabled": true, "recovery_codes": codes })))
}
