//! Live events.

use std::fmt::Debug;
use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

use crate::error::Result;
use crate::ids::LotId;
use crate::reservation::Event;

/// A stream of live events. An `Err` item means events may have been missed (the subscriber
/// lagged or the connection dropped); the subscriber resumes from the store by sequence number.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// Fans events out to subscribers, possibly across processes.
///
/// # Contract
/// - [`publish`](Self::publish) delivers to every current subscriber of the events' lots, in
///   the order given; it is at-most-once per subscriber. Completeness comes from the store:
///   a subscriber that sees a gap in a lot's sequence, or an `Err`, reads what it missed with
///   [`ReservationStore::events`](crate::ReservationStore::events) (what
///   [`Engine::watch`](crate::Engine::watch) does).
/// - [`subscribe`](Self::subscribe) sees every event published after it returns.
#[async_trait]
pub trait Notifier: Send + Sync + Debug + 'static {
    /// Publishes events.
    async fn publish(&self, events: &[Event]) -> Result<()>;
    /// Live events of one lot, or of every lot with `None`.
    async fn subscribe(&self, lot: Option<LotId>) -> Result<EventStream>;
}

/// `dyn Notifier`.
pub type DynNotifier = dyn Notifier;

/// Several notifiers as one: publishes through each, and subscribes to all of them at once.
///
/// The production composition uses it to hear events through Redis and, at the same time,
/// through PostgreSQL's LISTEN/NOTIFY on the outbox, so events keep flowing while Redis is away.
/// A subscriber sees an event once per notifier that carried it; [`Engine::watch`] keeps only
/// the next sequence number of the lot, so duplicates are dropped there.
///
/// [`Engine::watch`]: crate::Engine::watch
#[derive(Debug, Clone)]
pub struct MergedNotifier {
    inner: Vec<std::sync::Arc<DynNotifier>>,
}

impl MergedNotifier {
    /// The notifiers to merge; at least one.
    pub fn new(inner: Vec<std::sync::Arc<DynNotifier>>) -> Self {
        assert!(!inner.is_empty(), "a merged notifier needs at least one notifier");
        Self { inner }
    }
}

#[async_trait]
impl Notifier for MergedNotifier {
    /// Succeeds when at least one notifier took the events.
    async fn publish(&self, events: &[Event]) -> Result<()> {
        let mut last = None;
        let mut any = false;
        for n in &self.inner {
            match n.publish(events).await {
                Ok(()) => any = true,
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) if !any => Err(e),
            _ => Ok(()),
        }
    }

    /// Subscribes to every notifier that answers; fails only when none does. An `Err` item from
    /// any of them is passed on (the subscriber then refills from the store).
    async fn subscribe(&self, lot: Option<LotId>) -> Result<EventStream> {
        let mut streams = Vec::new();
        let mut last = None;
        for n in &self.inner {
            match n.subscribe(lot).await {
                Ok(s) => streams.push(s),
                Err(e) => last = Some(e),
            }
        }
        if streams.is_empty() {
            return Err(last.expect("at least one notifier"));
        }
        Ok(Box::pin(futures_util::stream::select_all(streams)))
    }
}
