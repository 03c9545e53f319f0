//! `BroadcastNotifier`: in-process fan-out of events.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::error::{Error, Result};
use crate::ids::LotId;
use crate::ports::notifier::{EventStream, Notifier};
use crate::reservation::Event;

/// A [`Notifier`] for one process, on a tokio broadcast channel. A subscriber that falls more
/// than `capacity` events behind gets an `Err` item and resumes from the store.
#[derive(Debug)]
pub struct BroadcastNotifier {
    tx: broadcast::Sender<Event>,
}

impl BroadcastNotifier {
    /// A notifier buffering up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity.max(1)).0 }
    }
}

impl Default for BroadcastNotifier {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[async_trait]
impl Notifier for BroadcastNotifier {
    async fn publish(&self, events: &[Event]) -> Result<()> {
        if self.tx.receiver_count() > 0 {
            for e in events {
                // No receiver left is not an error: nobody is listening.
                let _ = self.tx.send(e.clone());
            }
        }
        Ok(())
    }

    async fn subscribe(&self, lot: Option<LotId>) -> Result<EventStream> {
        let rx = self.tx.subscribe();
        let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) if lot.is_none_or(|l| l == e.lot) => return Some((Ok(e), rx)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((
                            Err(Error::unavailable(format!("subscriber lagged by {n} events"), None)),
                            rx,
                        ));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(stream))
    }
}
