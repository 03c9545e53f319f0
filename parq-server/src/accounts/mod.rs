//! Accounts: users with passwords and TOTP, bearer sessions and API keys, behind one small
//! trait ([`AccountStore`]) so that a durable implementation can replace the in-memory one.
//!
//! Nothing secret is stored in the clear except the TOTP seed (which the server needs to
//! compute codes): passwords are Argon2id PHC strings, session tokens, API keys and recovery
//! codes are stored as SHA-256 digests.

pub mod email;
mod memory;
pub mod password;
mod postgres;
pub mod secret;
mod sqlite;
#[doc(hidden)]
pub mod testing;
pub mod totp;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use parq_core::{OperatorId, Result, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use memory::MemoryAccounts;
pub use postgres::PgAccounts;
pub use sqlite::SqliteAccounts;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Searches, holds, pays, cancels its own reservations.
    Driver,
    /// Manages the lots, spots, rates and keys of one operator.
    Operator,
    /// Scans passes at the gates of one operator's lots.
    Gate,
}

impl Role {
    /// The snake-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Driver => "driver",
            Role::Operator => "operator",
            Role::Gate => "gate",
        }
    }
}

/// A TOTP enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpEnrolment {
    /// The seed, base32 (RFC 4648, no padding).
    pub secret: String,
    /// Whether the user proved they hold the seed; only then is it required at login.
    pub confirmed: bool,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The id; drivers' reservations carry it.
    pub id: UserId,
    /// Normalised email address (trimmed, NFKC, lower-case; see [`email::normalize`]); unique.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// The role.
    pub role: Role,
    /// The operator an operator or gate account belongs to.
    pub operator: Option<OperatorId>,
    /// TOTP, when enrolled.
    pub totp: Option<TotpEnrolment>,
    /// SHA-256 (hex) of each unused recovery code.
    pub recovery_codes: Vec<String>,
    /// The last TOTP time step accepted, so a code is accepted once.
    pub totp_last_step: u64,
    /// When the account was made.
    pub created_at: Timestamp,
}

impl Account {
    /// Whether login needs a second factor.
    pub fn mfa_enabled(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed)
    }
}

/// A login session, found by the digest of its bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// The user.
    pub user: UserId,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// An API key for a gate or an operator's systems, found by the digest of the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The key's id (not secret).
    pub id: Uuid,
    /// A name for people.
    pub name: String,
    /// SHA-256 (hex) of the key.
    pub key_hash: String,
    /// `operator` or `gate`.
    pub role: Role,
    /// The operator it acts for.
    pub operator: OperatorId,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<Timestamp>,
}

impl ApiKeyRecord {
    /// The record of the API key `key` (a `pqk_…` secret), made now: only its digest is kept.
    pub fn for_key(key: &str, name: &str, role: Role, operator: OperatorId) -> ApiKeyRecord {
        ApiKeyRecord {
            id: Uuid::now_v7(),
            name: name.to_owned(),
            key_hash: secret::digest(key),
            role,
            operator,
            created_at: Timestamp::now(),
            revoked_at: None,
        }
    }

    /// A new random API key and its record: the key is shown once and never kept.
    pub fn issue(name: &str, role: Role, operator: OperatorId) -> (ApiKeyRecord, String) {
        let key = secret::token(secret::API_KEY_PREFIX);
        (Self::for_key(&key, name, role, operator), key)
    }
}

/// The failed attempts recorded against one subject of the login throttle: an account
/// (`account:<id>`) or a client address (`ip:<address>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Failures since the last success (or since the counter was forgotten).
    pub failures: u32,
    /// Until when every attempt is refused, whatever its credentials.
    pub locked_until: Option<Timestamp>,
}

impl Throttle {
    /// The end of the lock, when it is still on at `now`.
    pub fn locked_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.locked_until.filter(|until| *until > now)
    }
}

/// When failures lock a subject, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// The failure that locks first; each further one locks again, twice as long.
    pub max_failures: u32,
    /// The first lock.
    pub lock: SignedDuration,
    /// The longest lock; a counter without a failure for this long starts again from zero.
    pub max_lock: SignedDuration,
}

impl LockPolicy {
    /// The lock that the `failures`-th failure starts, if any: none below `max_failures`, then
    /// `lock`, `2 × lock`, `4 × lock`, … up to `max_lock`.
    pub fn lock_after(&self, failures: u32) -> Option<SignedDuration> {
        let over = failures.checked_sub(self.max_failures.max(1))?;
        let factor = 1i32.checked_shl(over.min(30)).unwrap_or(i32::MAX);
        Some(self.lock.checked_mul(factor).unwrap_or(self.max_lock).min(self.max_lock))
    }

    /// The instant before which a counter's last failure is forgotten.
    pub fn forget_before(&self, now: Timestamp) -> Timestamp {
        now.checked_sub(self.max_lock).unwrap_or(Timestamp::MIN)
    }
}

/// Where accounts, sessions and API keys live.
///
/// # Contract
/// * `create_user` is atomic on the email: of two creations with one email exactly one
///   returns `true`.
/// * `accept_totp_step` and `use_recovery_code` are compare-and-set: each step (or code) is
///   accepted once, even by concurrent logins.
/// * Lookups return `Ok(None)` for what does not exist; `Err` only when the backend fails
///   ([`parq_core::Error::Unavailable`] or [`parq_core::Error::Backend`]).
/// * Expired sessions are never returned, nor are revoked API keys by [`api_key`](Self::api_key);
///   a revocation is seen by every lookup that starts after it returns (every replica's).
/// * `record_auth_failure` is atomic per subject: of `n` concurrent failures the counter grows
///   by `n`, and the lock it answers is never shorter than one already recorded. Every replica
///   on one store sees the same counters.
#[async_trait]
pub trait AccountStore: Send + Sync + Debug + 'static {
    /// Creates a user; `false` when the email is taken.
    async fn create_user(&self, account: &Account) -> Result<bool>;
    /// A user by id.
    async fn user(&self, id: UserId) -> Result<Option<Account>>;
    /// A user by normalised email.
    async fn user_by_email(&self, email: &str) -> Result<Option<Account>>;
    /// Sets (or clears) the TOTP enrolment and the recovery codes of a user.
    async fn set_mfa(
        &self,
        id: UserId,
        totp: Option<TotpEnrolment>,
        recovery_codes: Vec<String>,
    ) -> Result<()>;
    /// Records that `step` was accepted for the user; `false` when it (or a later one) was.
    async fn accept_totp_step(&self, id: UserId, step: u64) -> Result<bool>;
    /// Removes a recovery code by digest; `false` when the user has no such code.
    async fn use_recovery_code(&self, id: UserId, code_hash: &str) -> Result<bool>;
    /// Stores a session.
    async fn put_session(&self, session: &SessionRecord) -> Result<()>;
    /// A live session by token digest.
    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>>;
    /// Ends a session.
    async fn delete_session(&self, token_hash: &str) -> Result<()>;
    /// Stores an API key.
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// An API key that is not revoked, by digest.
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    /// An API key by id, revoked or not.
    async fn api_key_by_id(&self, id: Uuid) -> Result<Option<ApiKeyRecord>>;
    /// Every API key of `operator`, revoked ones too, oldest first.
    async fn api_keys(&self, operator: OperatorId) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes the API key `id` at `at` (a key revoked already keeps its first instant);
    /// returns the key as it is now, `None` when there is no such key.
    async fn revoke_api_key(&self, id: Uuid, at: Timestamp) -> Result<Option<ApiKeyRecord>>;
    /// The login throttle's counter of `subject` (zero failures when none is recorded).
    async fn auth_throttle(&self, subject: &str) -> Result<Throttle>;
    /// Counts a failed attempt of `subject` at `now`, locking it as `policy` says; a counter
    /// whose last failure is older than `policy.forget_before(now)` starts again from zero.
    async fn record_auth_failure(
        &self,
        subject: &str,
        now: Timestamp,
        policy: &LockPolicy,
    ) -> Result<Throttle>;
    /// Forgets the failures of `subject` (after a successful login).
    async fn clear_auth_failures(&self, subject: &str) -> Result<()>;
    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;
}

/// `dyn AccountStore`.
pub type DynAccountStore = dyn AccountStore;

/// A shared account store.
pub type Accounts = Arc<DynAccountStore>;
