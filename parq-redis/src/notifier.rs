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
///
/// On Redis Cluster ([`on_nodes`](Self::on_nodes)) it keeps to plain pub/sub, not sharded
/// pub/sub: a subscription to every lot is a pattern (`PSUBSCRIBE`), which sharded pub/sub
/// does not have, and a plain `PUBLISH` reaches every node of the cluster, so a subscription
/// needs one connection to any node. Publishing goes through the cluster connection (one
/// pipeline per run of events of one lot, since a pipeline stays on one slot); a subscription
/// connects to the first seed node that answers, and when that node goes away it moves to the
/// next one (with the same two `Err` items as a reconnection).
#[derive(Debug, Clone)]
pub struct RedisNotifier {
    pool: RedisPool,
    clients: Vec<redis::Client>,
    keys: Keys,
    config: NotifierConfig,
    health: Option<RedisHealth>,
}

impl RedisNotifier {
    /// A notifier publishing through `pool` and subscribing with connections of `client`
    /// (both to the same Redis), under the key prefix `prefix`.
    pub fn new(pool: RedisPool, client: redis::Client, prefix: &str, config: NotifierConfig) -> Result<Self> {
        Self::on_nodes(pool, vec![client], prefix, config)
    }

    /// A notifier publishing through `pool` and subscribing with a connection to one of
    /// `nodes`, tried in turn (the seed nodes of a Redis Cluster; see
    /// [`RedisManager::node_clients`](crate::RedisManager::node_clients)).
    pub fn on_nodes(
        pool: RedisPool,
        nodes: Vec<redis::Client>,
        prefix: &str,
        config: NotifierConfig,
    ) -> Result<Self> {
        if nodes.is_empty() {
            return Err(Error::invalid("nodes", "a notifier needs at least one Redis node to subscribe on"));
        }
        Ok(Self { pool, clients: nodes, keys: Keys::new(prefix)?, config, health: None })
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

/// Subscribes through the first of `clients` (from `start` on, in turn) that answers; says
/// which one.
async fn connect(
    clients: &[redis::Client],
    start: usize,
    target: &Target,
) -> redis::RedisResult<(PubSubSink, PubSubStream, usize)> {
    let mut last = None;
    for i in (0..clients.len()).map(|k| (start + k) % clients.len()) {
        match connect_one(&clients[i], target).await {
            Ok((sink, stream)) => return Ok((sink, stream, i)),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no redis node to subscribe on"))))
}

async fn connect_one(
    client: &redis::Client,
    target: &Target,
) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
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
    clients: Vec<redis::Client>,
    /// The node subscribed on now.
    node: usize,
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
            // The node that was lost is tried last.
            let from = (self.node + 1) % self.clients.len();
            (sink, stream) = loop {
                tokio::select! {
                    r = tokio::time::timeout(self.config.timeout, connect(&self.clients, from, &self.target)) => {
                        if let Ok(Ok((sink, stream, node))) = r {
                            self.node = node;
                            break (sink, stream);
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
        let mut messages = Vec::with_capacity(events.len());
        for e in events {
            let payload = serde_json::to_vec(e).map_err(|e| Error::backend("redis", e))?;
            messages.push((self.keys.events(e.lot), payload));
        }
        let sent = pooled(&self.pool, self.config.timeout, async |conn| {
            if !conn.is_cluster() {
                let mut pipe = redis::pipe();
                for (channel, payload) in &messages {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload.as_slice()).ignore();
                }
                return pipe.query_async::<()>(conn).await;
            }
            // A cluster pipeline stays on one slot: one per run of one lot's events, in order.
            for run in messages.chunk_by(|a, b| a.0 == b.0) {
                let mut pipe = redis::pipe();
                for (channel, payload) in run {
                    pipe.cmd("PUBLISH").arg(channel).arg(payload.as_slice()).ignore();
                }
                pipe.query_async::<()>(conn).await?;
            }
            Ok(())
        })
        .await;
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
        let (sink, stream, node) =
            tokio::time::timeout(self.config.timeout, connect(&self.clients, 0, &target))
                .await
                .map_err(|_| Error::from(Failure::Timeout(self.config.timeout)))?
                .map_err(|e| Error::from(Failure::from(e)))?;
        let (tx, rx) = mpsc::channel(self.config.buffer.max(1));
        let sub = Subscription {
            clients: self.clients.clone(),
            node,
            target,
            config: self.config,
            tx,
            lagged: false,
        };
        tokio::spawn(sub.run(sink, stream));
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        )))
    }
}
