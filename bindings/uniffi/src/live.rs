//! Live updates through a foreign listener (a Kotlin or Swift object implementing
//! `LiveListener`), with a handle that stops them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use parq_client::{Client, LiveBuilder};

use crate::error::ParqError;
use crate::types::{self, LotEvent, ReservationEvent};

/// Something that arrived on a live connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum LiveEvent {
    /// A change on a followed lot (each lot's in order, each once).
    Lot {
        /// The change.
        event: LotEvent,
    },
    /// A change to one of the driver's own reservations, on any lot.
    Reservation {
        /// The change.
        event: ReservationEvent,
    },
    /// More events of a lot were missed than the server replays: read its availability again;
    /// events after `seq` follow.
    Resync {
        /// The lot.
        lot_id: String,
        /// The lot's latest sequence number.
        seq: u64,
    },
    /// The connection dropped; the client is reconnecting by itself.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// Connected again, and every followed lot resumed from its last sequence number.
    Reconnected,
}

impl LiveEvent {
    fn from_client(e: parq_client::LiveEvent) -> Option<Self> {
        Some(match e {
            parq_client::LiveEvent::Lot(e) => Self::Lot { event: e.into() },
            parq_client::LiveEvent::Reservation(e) => Self::Reservation { event: e.into() },
            parq_client::LiveEvent::Resync { lot, seq } => Self::Resync { lot_id: lot.to_string(), seq },
            parq_client::LiveEvent::Disconnected { reason } => Self::Disconnected { reason },
            parq_client::LiveEvent::Reconnected => Self::Reconnected,
            _ => return None,
        })
    }
}

/// Receives live updates. Implemented by the app (a Kotlin class, a Swift class); its methods
/// are called one at a time from a background thread, so they should hand the item over (to a
/// channel, the main thread) and return quickly.
#[uniffi::export(with_foreign)]
pub trait LiveListener: Send + Sync {
    /// An update.
    fn on_event(&self, event: LiveEvent);
    /// A message the server should not have sent (`MalformedResponse`; updates go on), or the
    /// error that ended the updates (`Unauthorized` when the session was refused).
    fn on_error(&self, error: ParqError);
}

/// A lot to follow from after a sequence number the app kept (say, before it went to the
/// background): the events after it are replayed first, then the live ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct LotCursor {
    /// The lot.
    pub lot_id: String,
    /// The last sequence number the app saw.
    pub after_seq: u64,
}

/// What to follow, and how to reconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, uniffi::Record)]
pub struct LiveOptions {
    /// Lots to follow from now on.
    #[uniffi(default = [])]
    pub lots: Vec<String>,
    /// Lots to follow from after a sequence number.
    #[uniffi(default = [])]
    pub lots_after: Vec<LotCursor>,
    /// Also the logged-in driver's own reservation events (log in first).
    #[uniffi(default = false)]
    pub driver: bool,
    /// The first wait before reconnecting (default 200 ms); it doubles per failed attempt.
    #[uniffi(default = None)]
    pub reconnect_initial_ms: Option<u64>,
    /// The longest wait between reconnection attempts (default 5 s).
    #[uniffi(default = None)]
    pub reconnect_max_ms: Option<u64>,
    /// How long to wait for the server to acknowledge a subscription (default 20 s).
    #[uniffi(default = None)]
    pub ack_timeout_ms: Option<u64>,
}

pub(crate) fn builder(client: &Client, o: &LiveOptions) -> Result<LiveBuilder, ParqError> {
    let mut b = client.live();
    for lot in &o.lots {
        b = b.lot(types::lot_id("lots", lot)?);
    }
    for c in &o.lots_after {
        b = b.lot_after(types::lot_id("lots_after", &c.lot_id)?, c.after_seq);
    }
    if o.driver {
        b = b.driver();
    }
    if o.reconnect_initial_ms.is_some() || o.reconnect_max_ms.is_some() {
        let initial = Duration::from_millis(o.reconnect_initial_ms.unwrap_or(200));
        let max = Duration::from_millis(o.reconnect_max_ms.unwrap_or(5_000));
        b = b.reconnect_backoff(initial, max);
    }
    if let Some(ms) = o.ack_timeout_ms {
        b = b.ack_timeout(Duration::from_millis(ms));
    }
    Ok(b)
}

pub(crate) async fn start(
    b: LiveBuilder,
    listener: Arc<dyn LiveListener>,
) -> Result<Arc<LiveHandle>, ParqError> {
    let handle = b
        .start_with(move |item| match item {
            Ok(e) => {
                if let Some(e) = LiveEvent::from_client(e) {
                    listener.on_event(e);
                }
            }
            Err(e) => listener.on_error(e.into()),
        })
        .await?;
    Ok(Arc::new(LiveHandle { inner: Mutex::new(Some(handle)) }))
}

/// Running live updates. [`stop`](Self::stop) ends them; so does dropping the handle (in Kotlin
/// `close()`, or the garbage collector; in Swift, releasing it).
#[derive(Debug, uniffi::Object)]
pub struct LiveHandle {
    inner: Mutex<Option<parq_client::LiveHandle>>,
}

#[uniffi::export]
impl LiveHandle {
    /// Stops the updates and closes the connection; the listener hears nothing more.
    pub fn stop(&self) {
        let handle = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(mut h) = handle {
            h.stop();
        }
    }

    /// Whether the updates have ended (stopped, or ended by an error).
    pub fn is_finished(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_none_or(parq_client::LiveHandle::is_finished)
    }
}
