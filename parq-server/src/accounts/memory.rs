//! Accounts in memory, for the demo, tests and single-process deployments.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use jiff::Timestamp;
use parq_core::{OperatorId, Result, UserId};
use uuid::Uuid;

use super::{Account, AccountStore, ApiKeyRecord, LockPolicy, SessionRecord, Throttle, TotpEnrolment};

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, Account>,
    by_email: HashMap<String, UserId>,
    sessions: HashMap<String, SessionRecord>,
    keys: HashMap<String, ApiKeyRecord>,
    /// Throttle counters with the instant of their last failure.
    failures: HashMap<String, (Throttle, Timestamp)>,
    puts: u64,
}

/// An [`AccountStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryAccounts {
    state: Mutex<State>,
}

impl MemoryAccounts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AccountStore for MemoryAccounts {
    async fn create_user(&self, account: &Account) -> Result<bool> {
        let mut st = self.state();
        if st.by_email.contains_key(&account.email) {
            return Ok(false);
        }
        st.by_email.insert(account.email.clone(), account.id);
        st.users.insert(account.id, account.clone());
        Ok(true)
    }

    async fn user(&self, id: UserId) -> Result<Option<Account>> {
        Ok(self.state().users.get(&id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<Account>> {
        let st = self.state();
        Ok(st.by_email.get(email).and_then(|id| st.users.get(id)).cloned())
    }

    async fn set_mfa(
        &self,
        id: UserId,
        totp: Option<TotpEnrolment>,
        recovery_codes: Vec<String>,
    ) -> Result<()> {
        let mut st = self.state();
        let user = st.users.get_mut(&id).ok_or_else(|| parq_core::Error::not_found(format!("user {id}")))?;
        user.totp = totp;
        user.recovery_codes = recovery_codes;
        Ok(())
    }

    async fn accept_totp_step(&self, id: UserId, step: u64) -> Result<bool> {
        let mut st = self.state();
        let user = st.users.get_mut(&id).ok_or_else(|| parq_core::Error::not_found(format!("user {id}")))?;
        if step <= user.totp_last_step {
            return Ok(false);
        }
        user.totp_last_step = step;
        Ok(true)
    }

    async fn use_recovery_code(&self, id: UserId, code_hash: &str) -> Result<bool> {
        let mut st = self.state();
        let user = st.users.get_mut(&id).ok_or_else(|| parq_core::Error::not_found(format!("user {id}")))?;
        let before = user.recovery_codes.len();
        user.recovery_codes.retain(|c| c != code_hash);
        Ok(user.recovery_codes.len() < before)
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<()> {
        let mut st = self.state();
        st.puts += 1;
        if st.puts.is_multiple_of(1024) {
            // Forget expired sessions now and then, so memory stays bounded.
            let now = Timestamp::now();
            st.sessions.retain(|_, s| s.expires_at > now);
        }
        st.sessions.insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<SessionRecord>> {
        Ok(self.state().sessions.get(token_hash).filter(|s| s.expires_at > now).cloned())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.state().sessions.remove(token_hash);
        Ok(())
    }

    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut st = self.state();
        // As the durable stores: a put never lifts a revocation.
        let revoked_at = st.keys.get(&key.key_hash).and_then(|k| k.revoked_at).or(key.revoked_at);
        st.keys.insert(key.key_hash.clone(), ApiKeyRecord { revoked_at, ..key.clone() });
        Ok(())
    }

    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self.state().keys.get(key_hash).filter(|k| k.revoked_at.is_none()).cloned())
    }

    async fn api_key_by_id(&self, id: Uuid) -> Result<Option<ApiKeyRecord>> {
        Ok(self.state().keys.values().find(|k| k.id == id).cloned())
    }

    async fn api_keys(&self, operator: OperatorId) -> Result<Vec<ApiKeyRecord>> {
        let mut keys: Vec<ApiKeyRecord> =
            self.state().keys.values().filter(|k| k.operator == operator).cloned().collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    async fn revoke_api_key(&self, id: Uuid, at: Timestamp) -> Result<Option<ApiKeyRecord>> {
        let mut st = self.state();
        let Some(k) = st.keys.values_mut().find(|k| k.id == id) else { return Ok(None) };
        k.revoked_at.get_or_insert(at);
        Ok(Some(k.clone()))
    }

    async fn auth_throttle(&self, subject: &str) -> Result<Throttle> {
        Ok(self.state().failures.get(subject).map(|(t, _)| *t).unwrap_or_default())
    }

    async fn record_auth_failure(
        &self,
        subject: &str,
        now: Timestamp,
        policy: &LockPolicy,
    ) -> Result<Throttle> {
        let mut st = self.state();
        if st.failures.len() >= 100_000 {
            // Forget idle counters, so memory stays bounded.
            let before = policy.forget_before(now);
            st.failures.retain(|_, (t, last)| *last >= before || t.locked_until.is_some_and(|u| u > now));
        }
        let entry = st.failures.entry(subject.to_owned()).or_insert((Throttle::default(), now));
        if entry.1 < policy.forget_before(now) {
            entry.0.failures = 0;
        }
        entry.0.failures = entry.0.failures.saturating_add(1);
        entry.1 = now;
        if let Some(lock) = policy.lock_after(entry.0.failures) {
            let until = now.checked_add(lock).unwrap_or(Timestamp::MAX);
            entry.0.locked_until = Some(entry.0.locked_until.map_or(until, |u| u.max(until)));
        }
        Ok(entry.0)
    }

    async fn clear_auth_failures(&self, subject: &str) -> Result<()> {
        self.state().failures.remove(subject);
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        drop(self.state());
        Ok(())
    }
}
