//! `RedisLock`: the admission lock as Lua scripts on Redis.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use parq_core::jiff::Timestamp;
use parq_core::{
    AdmissionLock, Claim, ConflictReason, DynClock, Error, Granted, HeldClaim, LotId, ReservationId, Result,
    SpotId, SystemClock,
};
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::error::{Failure, pooled};
use crate::keys::Keys;
use crate::pool::RedisPool;

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/claim.lua")));
static RETAIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/retain.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/release.lua")));
static REBUILD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/rebuild.lua")));

/// How long one call waits for Redis by default before it reports the lock unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// An [`AdmissionLock`] on Redis: each operation is one `EVALSHA` of a Lua script from
/// `parq-redis/lua/`, so it is atomic and costs one round trip.
///
/// Keys: `parq:{<prefix>:<lot>}:lock:...`; every key one call touches carries the lot's hash
/// tag, so the scripts run unchanged on Redis Cluster. Per spot, the claims are kept ordered by
/// window start and by deadline (a claim is `O(log n)` in the claims on the spot, and lapsed
/// claims are pruned through the deadline index); the lot keeps one fencing counter per spot,
/// which never expires.
///
/// A token holds at most one claim per spot: tokens are reservation ids, and a reservation
/// has one window.
///
/// Deadlines follow the caller's [`Clock`] (by default the [`SystemClock`]), passed to every
/// script as `now`: the engine stamps hold deadlines, and the store decides lazy expiry, with
/// that same clock, so the lock and the store agree on the instant a hold lapses — also under a
/// `ManualClock` in tests. Redis's own expiry (`PEXPIRE`, a minute after a spot's last deadline)
/// only reclaims memory. Replicas should keep their clocks in sync (NTP), as they must for the
/// store's lazy expiry anyway; the store stays the arbiter.
///
/// The pool is the caller's, made with [`crate::pool::pool`] (or [`crate::pool::builder`]): a
/// claim is one round trip, and after Redis restarts the pool discards every dead connection
/// at its next checkout instead of failing one call per dead connection.
#[derive(Debug, Clone)]
pub struct RedisLock {
    pool: RedisPool,
    keys: Keys,
    clock: Arc<DynClock>,
    timeout: Duration,
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

impl RedisLock {
    /// A lock on `pool` under the key prefix `prefix` (no braces or whitespace), with the
    /// [`SystemClock`] and [`DEFAULT_TIMEOUT`].
    pub fn new(pool: RedisPool, prefix: &str) -> Result<Self> {
        Ok(Self { pool, keys: Keys::new(prefix)?, clock: Arc::new(SystemClock), timeout: DEFAULT_TIMEOUT })
    }

    /// Deadlines follow `clock` (give the engine's clock).
    pub fn with_clock(mut self, clock: Arc<DynClock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long one call waits for Redis before it fails with a retryable
    /// [`Unavailable`](Error::Unavailable).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// The clock deadlines follow.
    pub fn clock(&self) -> &Arc<DynClock> {
        &self.clock
    }

    /// The pool.
    pub fn pool(&self) -> &RedisPool {
        &self.pool
    }

    /// The SHA1 of the claim script, as `EVALSHA` names it.
    pub fn claim_script_sha() -> &'static str {
        CLAIM.get_hash()
    }

    /// Loads every script into Redis (`SCRIPT LOAD`). Optional: a call whose script Redis does
    /// not know loads it and retries once.
    pub async fn load_scripts(&self) -> Result<()> {
        for s in [&*CLAIM, &*RETAIN, &*RELEASE, &*REBUILD] {
            pooled(&self.pool, self.timeout, async |conn| s.prepare_invoke().load_async(conn).await).await?;
        }
        Ok(())
    }

    /// The arguments of the `EVALSHA` that claims `claim` at `now`, after the SHA:
    /// `numkeys key... arg...`. What [`claim`](AdmissionLock::claim) sends, for load tools and
    /// debugging.
    pub fn claim_args(&self, claim: &Claim, now: Timestamp) -> Result<Vec<String>> {
        let (keys, args) = self.claim_parts(claim, now)?;
        let mut out = vec![keys.len().to_string()];
        out.extend(keys);
        out.extend(args);
        Ok(out)
    }

    fn claim_parts(&self, c: &Claim, now: Timestamp) -> Result<(Vec<String>, Vec<String>)> {
        if c.ttl.is_negative() || c.ttl.is_zero() {
            return Err(Error::invalid("ttl", "must be positive"));
        }
        let mut keys = Vec::with_capacity(2 + 3 * c.candidates.len());
        keys.push(self.keys.fences(c.lot));
        keys.push(self.keys.spots(c.lot));
        for spot in &c.candidates {
            keys.extend(self.keys.spot(c.lot, *spot));
        }
        let start = ms(c.window.start());
        let mut args = Vec::with_capacity(5 + c.candidates.len());
        args.push(ms(now).to_string());
        args.push(c.ttl.as_millis().max(1).to_string());
        args.push(c.token.to_string());
        args.push(start.to_string());
        args.push((ms(c.window.end()) - start).max(1).to_string());
        args.extend(c.candidates.iter().map(|s| s.to_string()));
        Ok((keys, args))
    }

    async fn run<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T> {
        Ok(pooled(&self.pool, self.timeout, async |conn| inv.invoke_async(conn).await).await?)
    }

    fn spot_invocation<'a>(&self, script: &'a Script, lot: LotId, spot: SpotId) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in self.keys.spot(lot, spot) {
            inv.key(k);
        }
        inv
    }
}

#[async_trait]
impl AdmissionLock for RedisLock {
    async fn claim(&self, c: &Claim) -> Result<Granted> {
        if c.candidates.is_empty() {
            return Err(Error::Conflict { reason: ConflictReason::Claimed });
        }
        let (keys, args) = self.claim_parts(c, self.clock.now())?;
        let mut inv = CLAIM.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let granted: Option<(usize, u64)> = self.run(&inv).await?;
        match granted {
            None => Err(Error::Conflict { reason: ConflictReason::Claimed }),
            Some((i, fence)) => match c.candidates.get(i.wrapping_sub(1)) {
                Some(spot) => Ok(Granted { spot: *spot, fence }),
                None => Err(Failure::Reply(format!("candidate {i} of {}", c.candidates.len())).into()),
            },
        }
    }

    async fn retain(
        &self,
        lot: LotId,
        spot: SpotId,
        token: ReservationId,
        until: Option<Timestamp>,
    ) -> Result<bool> {
        let mut inv = self.spot_invocation(&RETAIN, lot, spot);
        inv.arg(ms(self.clock.now()))
            .arg(token.to_string())
            .arg(until.map(|t| ms(t).to_string()).unwrap_or_default());
        let held: i64 = self.run(&inv).await?;
        Ok(held == 1)
    }

    async fn release(&self, lot: LotId, spot: SpotId, token: ReservationId) -> Result<bool> {
        let mut inv = self.spot_invocation(&RELEASE, lot, spot);
        inv.arg(token.to_string());
        let held: i64 = self.run(&inv).await?;
        Ok(held == 1)
    }

    async fn rebuild(&self, lot: LotId, claims: &[HeldClaim]) -> Result<()> {
        // The script must see the keys of every spot that has claims now, which it checks;
        // a claim on a new spot in between makes it refuse, and this reads again.
        for _ in 0..16 {
            let spots_key = self.keys.spots(lot);
            let existing: Vec<String> = pooled(&self.pool, self.timeout, async |conn| {
                redis::cmd("SMEMBERS").arg(&spots_key).query_async(conn).await
            })
            .await?;
            let mut spots: Vec<String> = existing;
            for c in claims {
                let id = c.spot.to_string();
                if !spots.contains(&id) {
                    spots.push(id);
                }
            }
            let mut inv = REBUILD.prepare_invoke();
            inv.key(self.keys.fences(lot)).key(self.keys.spots(lot));
            for id in &spots {
                let spot: SpotId =
                    id.parse().map_err(|_| Failure::Reply(format!("spot id {id:?} in the spots set")))?;
                for k in self.keys.spot(lot, spot) {
                    inv.key(k);
                }
            }
            inv.arg(ms(self.clock.now())).arg(spots.len());
            for id in &spots {
                inv.arg(id);
            }
            for c in claims {
                let i = spots.iter().position(|s| *s == c.spot.to_string()).expect("listed above") + 1;
                inv.arg(i)
                    .arg(c.token.to_string())
                    .arg(ms(c.window.start()))
                    .arg(ms(c.window.end()))
                    .arg(c.until.map(|t| ms(t).to_string()).unwrap_or_default())
                    .arg(c.fence);
            }
            let done: i64 = self.run(&inv).await?;
            if done == 1 {
                return Ok(());
            }
        }
        Err(Error::unavailable("the lot's claims kept changing during the rebuild", None))
    }
}
