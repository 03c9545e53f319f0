//! The records in this process: for a single replica (the store in memory).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use super::{Begin, Fingerprint, IdempotencyStore, RecordId, STALE, Stored, TTL};

#[derive(Debug, Clone)]
enum Entry {
    InFlight { fingerprint: Fingerprint, since: Instant },
    Done { fingerprint: Fingerprint, at: Instant, response: Stored },
}

/// Most entries in one generation of one shard; past it the generation turns early, so memory
/// stays bounded under any load (a key is then kept for less than a day, and holds still have
/// the store's own record of their key).
const MAX_PER_GENERATION: usize = 500_000 / SHARDS;

/// Independent parts of the records, by the key's hash: each has its own lock, and when one
/// grows (a rehash moves its entries) or drops a generation, only the requests that land on it
/// wait, and only for a sixty-fourth of the work.
const SHARDS: usize = 64;

/// The kept responses, in shards of two generations each: entries are written to the current
/// generation, read from both, and a generation is dropped whole when the next one turns (after
/// the lock is released), so no request ever scans the records. A response is kept at least a
/// day, at most two.
#[derive(Debug)]
pub struct MemoryRecords {
    shards: Box<[Mutex<Generations>]>,
    hasher: std::hash::RandomState,
}

impl Default for MemoryRecords {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<RecordId, Entry>,
    previous: HashMap<RecordId, Entry>,
    since: Option<Instant>,
}

impl Generations {
    fn get(&self, k: &RecordId) -> Option<&Entry> {
        self.current.get(k).or_else(|| self.previous.get(k))
    }

    /// Inserts; returns the generation that turned out, for the caller to drop unlocked.
    #[must_use]
    fn insert(&mut self, k: RecordId, e: Entry, now: Instant) -> Option<HashMap<RecordId, Entry>> {
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

    fn remove(&mut self, k: &RecordId) {
        self.current.remove(k);
        self.previous.remove(k);
    }
}

impl MemoryRecords {
    fn lock(&self, k: &RecordId) -> MutexGuard<'_, Generations> {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(k) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryRecords {
    async fn begin(&self, id: &RecordId, fingerprint: &Fingerprint) -> parq_core::Result<Begin> {
        let now = Instant::now();
        let dropped = {
            let mut entries = self.lock(id);
            match entries.get(id) {
                Some(Entry::Done { fingerprint: f, at, response }) if now.duration_since(*at) < TTL => {
                    return Ok(if f == fingerprint {
                        Begin::Replay(response.clone())
                    } else {
                        Begin::Mismatch
                    });
                }
                Some(Entry::InFlight { fingerprint: f, since }) if now.duration_since(*since) < STALE => {
                    return Ok(if f == fingerprint { Begin::InProgress } else { Begin::Mismatch });
                }
                _ => {}
            }
            entries.insert(id.clone(), Entry::InFlight { fingerprint: *fingerprint, since: now }, now)
        };
        drop(dropped);
        Ok(Begin::Run)
    }

    async fn complete(
        &self,
        id: &RecordId,
        fingerprint: &Fingerprint,
        response: Stored,
    ) -> parq_core::Result<()> {
        let now = Instant::now();
        let entry = Entry::Done { fingerprint: *fingerprint, at: now, response };
        let dropped = self.lock(id).insert(id.clone(), entry, now);
        drop(dropped);
        Ok(())
    }

    async fn release(&self, id: &RecordId) -> parq_core::Result<()> {
        self.lock(id).remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, StatusCode};

    use super::*;

    fn id(key: &str) -> RecordId {
        RecordId { scope: "user:1".into(), key: key.into() }
    }

    #[tokio::test]
    async fn first_runs_retries_replay_and_other_requests_mismatch() {
        let r = MemoryRecords::default();
        let (a, b) = ([1; 32], [2; 32]);
        assert!(matches!(r.begin(&id("k"), &a).await.unwrap(), Begin::Run));
        assert!(matches!(r.begin(&id("k"), &a).await.unwrap(), Begin::InProgress));
        assert!(matches!(r.begin(&id("k"), &b).await.unwrap(), Begin::Mismatch));
        let stored = Stored { status: StatusCode::CREATED, headers: HeaderMap::new(), body: "x".into() };
        r.complete(&id("k"), &a, stored).await.unwrap();
        match r.begin(&id("k"), &a).await.unwrap() {
            Begin::Replay(s) => assert_eq!((s.status, &s.body[..]), (StatusCode::CREATED, &b"x"[..])),
            other => panic!("{other:?}"),
        }
        assert!(matches!(r.begin(&id("k"), &b).await.unwrap(), Begin::Mismatch));
        assert!(matches!(r.begin(&id("other"), &a).await.unwrap(), Begin::Run));
        r.release(&id("other")).await.unwrap();
        assert!(matches!(r.begin(&id("other"), &b).await.unwrap(), Begin::Run), "a released key is free");
    }
}
