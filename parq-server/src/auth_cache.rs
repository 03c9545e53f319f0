//! Resolved credentials, remembered for a moment: with the accounts in the SQLite file, each
//! request would otherwise read its session (or API key) and its account from the file before
//! doing anything. An entry is used for at most [`TTL`] after it was read, and never past the
//! session's own end.
//!
//! Revocation: a logout forgets the session here at once, so on this process it takes effect
//! immediately; another process on the same file (which has its own memory) stops accepting a
//! session or key that was ended elsewhere within [`TTL`]. An account's role and operator never
//! change, so the entry cannot grant more than the file says, only for that long.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::principal::Principal;

/// How long a resolved credential is used without reading the file again.
pub const TTL: Duration = Duration::from_secs(1);

/// Entries per shard before the shard is swept of stale ones (and emptied if all are fresh).
const SHARD_CAP: usize = 4096;
const SHARDS: usize = 16;

#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    read_at: Instant,
    /// The session's end (API keys have none).
    expires_at: Option<Timestamp>,
}

/// Credential digest → principal, in shards so that concurrent requests rarely meet on a lock.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Option<Duration>,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
}

impl AuthCache {
    /// A cache that keeps entries for `ttl`; `None` keeps nothing (every request reads).
    pub fn new(ttl: Option<Duration>) -> Self {
        Self {
            ttl,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, digest: &str) -> &Mutex<HashMap<String, Entry>> {
        let i = usize::try_from(self.hasher.hash_one(digest)).unwrap_or(0) % SHARDS;
        &self.shards[i]
    }

    /// The principal of `digest`, if it was read less than the TTL ago and its session has not
    /// ended at `now`.
    pub fn get(&self, digest: &str, now: Timestamp) -> Option<Principal> {
        let ttl = self.ttl?;
        let shard = self.shard(digest).lock().unwrap_or_else(PoisonError::into_inner);
        let e = shard.get(digest)?;
        let fresh = e.read_at.elapsed() < ttl && e.expires_at.is_none_or(|end| now < end);
        fresh.then(|| e.principal.clone())
    }

    /// Remembers what `digest` resolved to (a session ending at `expires_at`, or a key).
    pub fn put(&self, digest: &str, principal: &Principal, expires_at: Option<Timestamp>) {
        let Some(ttl) = self.ttl else { return };
        let mut shard = self.shard(digest).lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SHARD_CAP {
            shard.retain(|_, e| e.read_at.elapsed() < ttl);
            if shard.len() >= SHARD_CAP {
                shard.clear();
            }
        }
        shard.insert(
            digest.to_owned(),
            Entry { principal: principal.clone(), read_at: Instant::now(), expires_at },
        );
    }

    /// Forgets `digest` (its session ended, its key changed).
    pub fn forget(&self, digest: &str) {
        self.shard(digest).lock().unwrap_or_else(PoisonError::into_inner).remove(digest);
    }

    /// Forgets the API key `id` (it was revoked): the key is known here by its id only.
    pub fn forget_key(&self, id: uuid::Uuid) {
        for shard in &self.shards {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|_, e| !matches!(e.principal, Principal::Key { id: k, .. } if k == id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Role;
    use parq_core::UserId;

    fn user() -> Principal {
        Principal::User { id: UserId::new(), role: Role::Driver, operator: None, session: "d".into() }
    }

    #[test]
    fn a_revoked_key_is_forgotten_by_its_id() {
        let cache = AuthCache::new(Some(TTL));
        let (id, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let operator = parq_core::OperatorId::new();
        let key = |id| Principal::Key { id, role: Role::Gate, operator };
        cache.put("a", &key(id), None);
        cache.put("b", &key(other), None);
        cache.forget_key(id);
        assert_eq!(cache.get("a", Timestamp::now()), None);
        assert_eq!(cache.get("b", Timestamp::now()), Some(key(other)));
    }

    #[test]
    fn entries_end_with_the_session_the_ttl_or_a_forget() {
        let c = AuthCache::new(Some(Duration::from_millis(200)));
        let now = Timestamp::now();
        let end = now + jiff::SignedDuration::from_secs(60);
        c.put("a", &user(), Some(end));
        assert!(c.get("a", now).is_some());
        assert!(c.get("a", end).is_none(), "not at or past the session's end");
        c.forget("a");
        assert!(c.get("a", now).is_none(), "forgotten at once");
        c.put("b", &user(), None);
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get("b", now).is_none(), "read again after the TTL");
        let off = AuthCache::new(None);
        off.put("a", &user(), None);
        assert!(off.get("a", now).is_none());
    }
}
