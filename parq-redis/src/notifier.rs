//! `RedisNotifier`: events across processes over Redis pub/sub.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use parq_core::{Error, Event, EventStream, LotId, Notifier, Result};
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::mpsc;

use crate::error::{Failure, pooled};
use crate::health::{Health, RedisHealth};
use crate::keys::Keys;
use crate::pool::RedisPool;

/// How a subscription watches its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Time between pings of an idle subscription connection.
    pub ping_interval: Duration,
    /// A ping (or a publish, or a reconnection attempt) with no answer in this time fails.
    pub timeout: Duration,
    /// Events buffered for a slow subscriber; past that it gets an `Err` item and resumes from
    /// the store.
    pub buffer: usize,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self { ping_interval: Duration::from_millis(500), timeout: Duration::from_millis(500), buffer: 4096 }
    }
}

/// A [`Notifier`] across processes: one Redis pub/sub channel per lot
/// (`parq:{<prefix>:<lot>}:events`), events as JSON, subscribers of every lot on a pattern.
///
/// Pub/sub rather than streams: the contract is at-most-once delivery with completeness from
/// the store (a subscriber that sees a gap or an `Err` reads what it missed by sequence number,
/// as [`Engine::watch`](parq_core::Engine::watch) does), and the store already keeps the event
/// log that a stream would duplicate in Redis's memory — a log that Redis would lose on a
/// restart anyway.
///
/// Each subscription has its own connection (from the `redis::Client`), pinged while idle.
/// When the connection drops or a ping goes unanswered, the subscriber gets an `Err` item; the
/// subscription reconnects with backoff, and once it is subscribed again it yields a second
/// `Err`, so a subscriber that refills from the store then misses nothing published while the
/// connection was away. Publishing goes through the caller's pool, one pipeline per call.
#[derive(Debug, Clone)]
pub struct RedisNotifier {
    pool: RedisPool,
    client: redis::Client,
    keys: Keys,
    config: NotifierConfig,
    health: Option<RedisHealth>,
}

impl RedisNotifier {
    /// A notifier publishing through `pool` and subscribing with connections of `client`
    /// (both to the same Redis), under the key prefix `prefix`.
    pub fn new(pool: RedisPool, client: redis::Client, prefix: &str, config: NotifierConfig) -> Result<Self> {
        Ok(Self { pool, client, keys: Keys::new(prefix)?, config, health: None })
    }

    /// Publishes only while `health` does not say [`Health::Down`]; otherwise
    /// [`publish`](Notifier::publish) fails at once instead of waiting for the timeout, so a
    /// write is not slowed by a dead Redis (subscribers refill from the store anyway).
    pub fn with_health(mut self, health: RedisHealth) -> Self {
        self.health = Some(health);
        self
    }
}

#[derive(Debug, Clone)]
enum Target {
    Channel(String),
    Pattern(String),
}

async fn connect(client: &redis::Client, target: &Target) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
    let (mut sink, stream) = client.get_async_pubsub().await?.split();
    match target {
        Target::Channel(c) => sink.subscribe(c).await?,
        Target::Pattern(p) => sink.psubscribe(p).await?,
    }
    Ok((sink, stream))
}

fn away(message: &str, source: Option<Failure>) -> Error {
    Error::unavailable(message, source.map(|f| Box::new(f) as parq_core::BoxError))
}

struct Subscription {
    client: redis::Client,
    target: Target,
    config: NotifierConfig,
    tx: mpsc::Sender<Result<Event>>,
    /// Events were dropped for a full buffer: owe the subscriber an `Err`.
    lagged: bool,
}

impl Subscription {
    /// Delivers without waiting; a full buffer drops the item and owes an `Err`.
    fn deliver(&mut self, item: Result<Event>) {
        if self.lagged {
            match self.tx.try_send(Err(away("the subscriber lagged; events were dropped", None))) {
                Ok(()) => self.lagged = false,
                Err(_) => return,
            }
        }
        if self.tx.try_send(item).is_err() {
            self.lagged = true;
        }
    }

    async fn run(mut self, mut sink: PubSubSink, mut stream: PubSubStream) {
        loop {
            let mut ping = tokio::time::interval(self.config.ping_interval);
            ping.tick().await;
            let broken: Option<Failure> = loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(m) => match serde_json::from_slice::<Event>(m.get_payload_bytes()) {
                            Ok(e) => self.deliver(Ok(e)),
                            Err(e) => self.deliver(Err(Error::backend("redis", e))),
                        },
                        None => break None,
                    },
                    _ = ping.tick() => {
                        match tokio::time::timeout(self.config.timeout, sink.ping::<redis::Value>()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => break Some(Failure::Command(e)),
                            Err(_) => break Some(Failure::Timeout(self.config.timeout)),
                        }
                    }
                    _ = self.tx.closed() => return,
                }
            };
            drop((sink, stream));
            self.deliver(Err(away("the event subscription lost redis; events may be missed", broken)));
            let mut backoff = Duration::from_millis(50);
            (sink, stream) = loop {
                tokio::select! {
                    r = tokio::time::timeout(self.config.timeout, connect(&self.client, &self.target)) => {
                        if let Ok(Ok(pair)) = r {
                            break pair;
                        }
                    }
                    _ = self.tx.closed() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = self.tx.closed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            };
            // Subscribed again: what was published while away is in the store.
            self.deliver(Err(away(
                "the event subscription reconnected; read missed events from the store",
                None,
            )));
        }
    }
}

#[async_trait]
impl Notifier for RedisNotifier {
    async fn publish(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(h) = &self.health
            && h.state() == Health::Down
        {
            return Err(Error::unavailable("redis is down; events are not published", None));
        }
        let mut pipe = redis::pipe();
        for e in events {
            let payload = serde_json::to_vec(e).map_err(|e| Error::backend("redis", e))?;
            pipe.cmd("PUBLISH").arg(self.keys.events(e.lot)).arg(payload).ignore();
        }
        let sent =
            pooled(&self.pool, self.config.timeout, async |conn| pipe.query_async::<()>(conn).await).await;
        if let (Err(_), Some(h)) = (&sent, &self.health) {
            h.report_unreachable();
        }
        Ok(sent?)
    }

    async fn subscribe(&self, lot: Option<LotId>) -> Result<EventStream> {
        let target = match lot {
            Some(l) => Target::Channel(self.keys.events(l)),
            None => Target::Pattern(self.keys.events_pattern()),
        };
        let (sink, stream) = tokio::time::timeout(self.config.timeout, connect(&self.client, &target))
            .await
            .map_err(|_| Error::from(Failure::Timeout(self.config.timeout)))?
            .map_err(|e| Error::from(Failure::from(e)))?;
        let (tx, rx) = mpsc::channel(self.config.buffer.max(1));
        let sub =
            Subscription { client: self.client.clone(), target, config: self.config, tx, lagged: false };
        tokio::spawn(sub.run(sink, stream));
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        )))
    }
}
