//! Live updates over Socket.IO: a lot's events and the driver's own reservation events, with
//! resumption by sequence number across reconnects.
//!
//! The server numbers each lot's events from 1 without gaps. The client keeps, per lot, the
//! last number it delivered (its *cursor*). After a reconnect it subscribes again with
//! `after: cursor`, and the server replays exactly the events it missed before the live ones.
//! An event at or below the cursor is a duplicate and is dropped; an event past `cursor + 1`
//! means something was lost on the way (the server dropped packets for a slow socket), so the
//! client subscribes again from its cursor and lets the replay fill the gap. Either way the
//! caller sees each event once, in order. When more events were missed than the server keeps
//! for replay, the stream says [`LiveEvent::Resync`]: read the lot's availability again.
//!
//! The driver's private room has no replay of its own on the server. After a reconnect the
//! client replays it from the lots where it has seen the driver's events (subscribing to them
//! with the last number it saw, and keeping the events of the driver's reservations), holding
//! back live `reservation` events of such a lot until the replay is in, so that those too
//! arrive once and in order.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use parq_core::{Event, LotId, ReservationId, UserId};
use serde_json::{Value, json};
use sioc::ack::{Ack, AckHandle, AckType};
use sioc::client::{ClientBuilder as SioBuilder, SocketReceiver, SocketSender};
use sioc::event::EventType;
use sioc::marker::{HasAck, NoAck, NoBinary};
use sioc::packet::Signal;
use sioc::payload::{DeserializePayload, SerializePayload};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ClientError, Problem};
use crate::types::LotEvent;

/// Something that arrived on a live connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveEvent {
    /// A change on a followed lot (each lot's in order, each once).
    Lot(LotEvent),
    /// A change to one of the driver's own reservations, on any lot.
    Reservation(Event),
    /// More events of `lot` were missed than the server replays: read its availability again;
    /// the stream goes on after `seq`.
    Resync {
        /// The lot.
        lot: LotId,
        /// The lot's latest sequence number; events after it follow.
        seq: u64,
    },
    /// The connection dropped; the client is reconnecting.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// Connected again, and every followed lot resumed from its cursor.
    Reconnected,
}

/// Configures live updates; from [`Client::live`].
#[derive(Debug, Clone)]
#[must_use = "call start() or start_with()"]
pub struct LiveBuilder {
    client: Client,
    lots: Vec<(LotId, Option<u64>)>,
    driver: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
    ack_timeout: Duration,
    buffer: usize,
}

impl Client {
    /// Live updates from this server: lots to follow and, when logged in, the driver's own
    /// reservation events.
    pub fn live(&self) -> LiveBuilder {
        LiveBuilder {
            client: self.clone(),
            lots: Vec::new(),
            driver: false,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(20),
            buffer: 1024,
        }
    }
}

impl LiveBuilder {
    /// Follows `lot` from now on.
    pub fn lot(mut self, lot: LotId) -> Self {
        self.lots.push((lot, None));
        self
    }

    /// Follows `lot` from after sequence number `seq`: the events after it are replayed first
    /// (a [`LiveEvent::Resync`] instead when there are too many), then the live ones.
    pub fn lot_after(mut self, lot: LotId, seq: u64) -> Self {
        self.lots.push((lot, Some(seq)));
        self
    }

    /// Also the logged-in driver's own reservation events (needs [`Client::login`] first).
    pub fn driver(mut self) -> Self {
        self.driver = true;
        self
    }

    /// The backoff between reconnection attempts: doubling from `initial` up to `max`.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// How long to wait for the server to acknowledge a subscription (default 20 s).
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Connects, subscribes, and returns the updates as a [`Stream`](futures_core::Stream).
    /// Dropping it (or [`LiveUpdates::stop`]) closes the connection.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] for a driver stream without a valid session,
    /// [`ClientError::NotFound`] for an unknown lot, [`ClientError::Transport`] when the server
    /// cannot be reached, [`ClientError::MalformedResponse`].
    pub async fn start(self) -> Result<LiveUpdates, ClientError> {
        let (tx, rx) = mpsc::channel(self.buffer);
        let task = self.spawn(Sink::Channel(tx)).await?;
        Ok(LiveUpdates { rx, task: Some(task) })
    }

    /// As [`start`](Self::start), delivering each item to `callback` (on a Tokio task) instead
    /// of a stream; the callback gets `Err` once for an error that ends the updates. The
    /// returned handle stops the updates when dropped.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_with<F>(self, callback: F) -> Result<LiveHandle, ClientError>
    where
        F: FnMut(Result<LiveEvent, ClientError>) + Send + 'static,
    {
        let task = self.spawn(Sink::Callback(std::sync::Mutex::new(Box::new(callback)))).await?;
        Ok(LiveHandle { task: Some(task) })
    }

    async fn spawn(self, sink: Sink) -> Result<JoinHandle<()>, ClientError> {
        if self.driver && self.client.token().is_none() {
            return Err(ClientError::Unauthorized {
                problem: Box::new(Problem::synthetic(
                    "unauthorized",
                    401,
                    "log in before following the driver's reservations",
                )),
            });
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        let mut worker = Worker {
            client: self.client.clone(),
            established: false,
            lots: self
                .lots
                .iter()
                .map(|(lot, after)| (*lot, LotCursor { cursor: *after, first_after: *after, pending: false }))
                .collect(),
            driver: self.driver.then(DriverCursor::default),
            sink,
            initial_backoff: self.initial_backoff,
            max_backoff: self.max_backoff,
            ack_timeout: self.ack_timeout,
        };
        let task = tokio::spawn(async move { worker.run(ready_tx).await });
        match ready_rx.await {
            Ok(Ok(())) => Ok(task),
            Ok(Err(e)) => {
                task.abort();
                Err(e)
            }
            Err(_) => Err(ClientError::Transport { message: "the live task ended".into(), source: None }),
        }
    }
}

/// Live updates as a stream of `Result<LiveEvent, ClientError>`. An `Err` item is either a
/// message the server should not have sent ([`ClientError::MalformedResponse`], the stream
/// goes on) or the error that ended the updates (the stream then ends). Dropping it closes the
/// connection.
#[derive(Debug)]
pub struct LiveUpdates {
    rx: mpsc::Receiver<Result<LiveEvent, ClientError>>,
    task: Option<JoinHandle<()>>,
}

impl LiveUpdates {
    /// Closes the connection; the stream ends after what it had received.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// The next item, or `None` once stopped or ended.
    pub async fn recv(&mut self) -> Option<Result<LiveEvent, ClientError>> {
        self.rx.recv().await
    }
}

impl futures_core::Stream for LiveUpdates {
    type Item = Result<LiveEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for LiveUpdates {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Live updates delivered to a callback; they stop when this is dropped.
#[derive(Debug)]
pub struct LiveHandle {
    task: Option<JoinHandle<()>>,
}

impl LiveHandle {
    /// Stops the updates and closes the connection.
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Whether the updates have ended (stopped, or ended by an error).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

type Callback = Box<dyn FnMut(Result<LiveEvent, ClientError>) + Send>;

enum Sink {
    Channel(mpsc::Sender<Result<LiveEvent, ClientError>>),
    /// In a mutex only so that the worker is `Sync`; one task calls it.
    Callback(std::sync::Mutex<Callback>),
}

impl Sink {
    /// Delivers an item; false when nobody listens any more.
    async fn send(&mut self, item: Result<LiveEvent, ClientError>) -> bool {
        match self {
            Self::Channel(tx) => tx.send(item).await.is_ok(),
            Self::Callback(f) => {
                (f.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner))(item);
                true
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LotCursor {
    /// The last sequence number delivered (or the one live begins after).
    cursor: Option<u64>,
    /// What the first subscription asks for.
    first_after: Option<u64>,
    /// A subscription is in flight.
    pending: bool,
}

#[derive(Debug, Default)]
struct DriverCursor {
    /// Per lot, the last sequence number of the driver's events delivered.
    seen: HashMap<LotId, u64>,
    /// The driver's reservations seen so far.
    known: HashSet<ReservationId>,
    /// The driver.
    user: Option<UserId>,
    /// Lots being replayed for the driver, with the live events held back meanwhile.
    replaying: HashMap<LotId, Vec<Event>>,
}

/// Why a connection ended.
enum End {
    /// Nobody listens any more.
    Stopped,
    /// Worth reconnecting.
    Lost(String),
    /// Not worth reconnecting.
    Fatal(ClientError),
}

/// What a subscription acknowledgement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Purpose {
    /// A followed lot.
    Follow,
    /// A lot replayed for the driver only.
    DriverReplay,
    /// An acknowledged no-op (`unsubscribe` of no lot): once it is answered, the server has
    /// set the connection up, the driver's private room included.
    Probe,
}

type AckFuture = Pin<Box<dyn Future<Output = (LotId, Purpose, Result<Value, ClientError>)> + Send>>;

struct Worker {
    client: Client,
    /// The last connection got as far as its subscriptions' acknowledgements.
    established: bool,
    lots: HashMap<LotId, LotCursor>,
    driver: Option<DriverCursor>,
    sink: Sink,
    initial_backoff: Duration,
    max_backoff: Duration,
    ack_timeout: Duration,
}

/// One Socket.IO connection.
struct Conn {
    _client: sioc::client::Client,
    tx: SocketSender,
    rx: SocketReceiver,
}

impl Worker {
    async fn run(&mut self, ready: oneshot::Sender<Result<(), ClientError>>) {
        let mut ready = Some(ready);
        let mut failures = 0u32;
        loop {
            self.established = false;
            let end = self.connection(&mut ready).await;
            if self.established {
                failures = 0;
            }
            let reason = match end {
                End::Stopped => return,
                End::Fatal(e) => {
                    match ready.take() {
                        Some(r) => drop(r.send(Err(e))),
                        None => drop(self.sink.send(Err(e)).await),
                    }
                    return;
                }
                End::Lost(reason) => reason,
            };
            if let Some(r) = ready.take() {
                let _ = r.send(Err(ClientError::Transport { message: reason, source: None }));
                return;
            }
            tracing::debug!(%reason, "live connection lost; reconnecting");
            // Said once per outage, not at every failed attempt.
            if failures == 0 && !self.sink.send(Ok(LiveEvent::Disconnected { reason })).await {
                return;
            }
            let wait = self
                .initial_backoff
                .saturating_mul(1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX))
                .min(self.max_backoff);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = closed(&self.sink) => return,
            }
            failures = failures.saturating_add(1);
        }
    }

    /// Opens a connection, subscribes, and relays until it ends.
    async fn connection(&mut self, ready: &mut Option<oneshot::Sender<Result<(), ClientError>>>) -> End {
        let first = ready.is_some();
        let mut conn = match self.open().await {
            Ok(c) => c,
            Err(end) => return end,
        };
        let mut subs = Subs::new(conn.tx.clone(), self.ack_timeout);
        // The driver's reservations, to recognise their events in a lot's replay.
        if !first
            && let Some(d) = &mut self.driver
            && !d.seen.is_empty()
            && let Ok(list) = self.client.reservations_limit(200).await
        {
            d.known.extend(list.iter().map(|r| r.id));
        }
        let lots: Vec<(LotId, Option<u64>)> =
            self.lots.iter().map(|(lot, c)| (*lot, if first { c.first_after } else { c.cursor })).collect();
        for (lot, after) in lots {
            if let Err(e) = subs.send(lot, after, Purpose::Follow).await {
                return End::Lost(e);
            }
            if let Some(c) = self.lots.get_mut(&lot) {
                c.pending = true;
            }
        }
        // The server joins the driver's room in a task of its own after accepting the
        // connection: until an acknowledgement comes back, the room may not be joined yet.
        if self.driver.is_some()
            && let Err(e) = subs.send(LotId(uuid::Uuid::nil()), None, Purpose::Probe).await
        {
            return End::Lost(e);
        }
        if !first && let Some(d) = &mut self.driver {
            let replay: Vec<(LotId, u64)> = d.seen.iter().map(|(l, s)| (*l, *s)).collect();
            for (lot, seen) in replay {
                d.replaying.insert(lot, Vec::new());
                // A followed lot's own subscription replays from its cursor, which is never
                // behind the driver's on that lot: its events serve both.
                if !self.lots.contains_key(&lot)
                    && let Err(e) = subs.send(lot, Some(seen), Purpose::DriverReplay).await
                {
                    return End::Lost(e);
                }
            }
        }
        let mut announced = first;
        loop {
            if subs.settled() && !self.established {
                self.established = true;
                if let Some(r) = ready.take() {
                    let _ = r.send(Ok(()));
                } else if !announced {
                    announced = true;
                    if !self.sink.send(Ok(LiveEvent::Reconnected)).await {
                        return End::Stopped;
                    }
                }
            }
            let deadline = subs.next_deadline();
            let end = tokio::select! {
                biased;
                signal = conn.rx.recv() => match signal {
                    None => Some(End::Lost("the connection closed".into())),
                    Some(Signal::Disconnect) => Some(End::Lost("the server disconnected".into())),
                    Some(Signal::ConnectError(e)) => Some(End::Fatal(refusal(&e.message))),
                    Some(Signal::Connect(_)) => None,
                    Some(Signal::Event(e)) => self.on_message(&e.payload, &mut subs).await,
                },
                Some((lot, purpose, answer)) = subs.futs.next(), if !subs.futs.is_empty() => {
                    if subs.answered(lot, purpose) {
                        self.on_ack(&conn.tx, lot, purpose, answer, ready.is_some()).await
                    } else {
                        // A late answer to a subscription sent again meanwhile.
                        None
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    let cursors: HashMap<LotId, Option<u64>> =
                        self.lots.iter().map(|(l, c)| (*l, c.cursor)).collect();
                    subs.resend_due(&cursors).await.err().map(End::Lost)
                }
                () = closed(&self.sink) => Some(End::Stopped),
            };
            if let Some(end) = end {
                return end;
            }
        }
    }

    async fn open(&self) -> Result<Conn, End> {
        let mut url = self.client.inner.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let sio = SioBuilder::new(url)
            .http_client(self.client.inner.http.clone())
            .transport(eioc_websocket())
            .channels(sioc::client::ChannelConfig { engine: 64, transport: 64, manager: 64, socket: 4096 })
            .open()
            .map_err(|e| {
                End::Fatal(ClientError::InvalidArgument { what: "base_url", message: e.to_string() })
            })?;
        let auth = match self.client.token() {
            Some(t) if self.driver.is_some() => json!({ "token": t }).to_string(),
            _ => String::new(),
        };
        let (tx, mut rx) = sio
            .connect_with("/", auth)
            .await
            .map_err(|e| End::Lost(format!("cannot open the connection: {e}")))?;
        let connected = tokio::time::timeout(self.ack_timeout, async {
            loop {
                match rx.recv().await {
                    Some(Signal::Connect(_)) => return Ok(()),
                    Some(Signal::ConnectError(e)) => return Err(End::Fatal(refusal(&e.message))),
                    Some(Signal::Disconnect) | None => {
                        return Err(End::Lost("the server could not be reached".into()));
                    }
                    Some(Signal::Event(_)) => {}
                }
            }
        })
        .await;
        match connected {
            Ok(Ok(())) => Ok(Conn { _client: sio, tx, rx }),
            Ok(Err(end)) => Err(end),
            Err(_) => Err(End::Lost("the server did not accept the connection in time".into())),
        }
    }

    /// Handles one `event` / `reservation` message.
    async fn on_message(&mut self, payload: &str, subs: &mut Subs) -> Option<End> {
        let parsed: Result<(String, Value), _> =
            serde_json::from_str::<Vec<Value>>(payload).map_err(|e| e.to_string()).and_then(|mut v| {
                if v.is_empty() {
                    return Err("an empty message".to_owned());
                }
                let data = if v.len() > 1 { v.swap_remove(1) } else { Value::Null };
                match v.swap_remove(0) {
                    Value::String(name) => Ok((name, data)),
                    other => Err(format!("an event name that is not a string: {other}")),
                }
            });
        let (name, data) = match parsed {
            Ok(p) => p,
            Err(why) => return self.malformed(&why, payload).await,
        };
        match name.as_str() {
            "event" => match serde_json::from_value::<LotEvent>(data) {
                Ok(e) => self.on_lot_event(e, subs).await,
                Err(err) => self.malformed(&format!("not a lot event: {err}"), payload).await,
            },
            "reservation" => match serde_json::from_value::<Event>(data) {
                Ok(e) => self.on_driver_event(e).await,
                Err(err) => self.malformed(&format!("not a reservation event: {err}"), payload).await,
            },
            _ => None,
        }
    }

    async fn malformed(&mut self, why: &str, payload: &str) -> Option<End> {
        let e = ClientError::malformed(0, format!("a live message is {why}"), payload.as_bytes());
        if self.sink.send(Err(e)).await { None } else { Some(End::Stopped) }
    }

    async fn on_lot_event(&mut self, e: LotEvent, subs: &mut Subs) -> Option<End> {
        // The driver's replay of this lot: keep the driver's own events.
        if let Some(d) = &self.driver
            && d.replaying.contains_key(&e.lot)
            && d.known.contains(&e.reservation)
            && let Some(user) = d.user
        {
            let ev = Event {
                lot: e.lot,
                seq: e.seq,
                at: e.at,
                kind: e.kind,
                reservation: e.reservation,
                spot: e.spot,
                user,
                window: e.window,
                state: e.state,
            };
            if let Some(end) = self.deliver_driver(ev).await {
                return Some(end);
            }
        }
        let c = self.lots.get_mut(&e.lot)?;
        match c.cursor {
            Some(cur) if e.seq <= cur => None,
            Some(cur) if e.seq > cur + 1 => {
                // A gap: subscribe again from the cursor; the replay fills it in order.
                if !c.pending {
                    c.pending = true;
                    tracing::debug!(lot = %e.lot, cursor = cur, seq = e.seq, "gap in live events; resubscribing");
                    if let Err(why) = subs.send(e.lot, Some(cur), Purpose::Follow).await {
                        return Some(End::Lost(why));
                    }
                }
                None
            }
            _ => {
                c.cursor = Some(e.seq);
                if self.sink.send(Ok(LiveEvent::Lot(e))).await { None } else { Some(End::Stopped) }
            }
        }
    }

    async fn on_driver_event(&mut self, e: Event) -> Option<End> {
        let d = self.driver.as_mut()?;
        if let Some(held) = d.replaying.get_mut(&e.lot) {
            held.push(e);
            return None;
        }
        self.deliver_driver(e).await
    }

    async fn deliver_driver(&mut self, e: Event) -> Option<End> {
        let d = self.driver.as_mut()?;
        if d.seen.get(&e.lot).is_some_and(|s| e.seq <= *s) {
            return None;
        }
        d.seen.insert(e.lot, e.seq);
        d.known.insert(e.reservation);
        d.user.get_or_insert(e.user);
        if self.sink.send(Ok(LiveEvent::Reservation(e))).await { None } else { Some(End::Stopped) }
    }

    async fn on_ack(
        &mut self,
        tx: &SocketSender,
        lot: LotId,
        purpose: Purpose,
        answer: Result<Value, ClientError>,
        first: bool,
    ) -> Option<End> {
        let answer = match answer {
            Ok(a) => a,
            Err(e) => return Some(End::Lost(message(e))),
        };
        if purpose == Purpose::Probe {
            return None;
        }
        if answer.get("ok").and_then(Value::as_bool) != Some(true) {
            let err = match answer.get("error").cloned().map(serde_json::from_value::<Problem>) {
                Some(Ok(p)) => {
                    let status = p.status;
                    ClientError::from_problem(p, status, None)
                }
                _ => ClientError::malformed(
                    0,
                    "a subscription answer that is neither ok nor a problem",
                    answer.to_string().as_bytes(),
                ),
            };
            if err.is_retryable() {
                return Some(End::Lost(message(err)));
            }
            if first {
                return Some(End::Fatal(err));
            }
            // The lot went away meanwhile: say so, and follow the others.
            self.lots.remove(&lot);
            return if self.sink.send(Err(err)).await { None } else { Some(End::Stopped) };
        }
        let Some(seq) = answer.get("seq").and_then(Value::as_u64) else {
            let e =
                ClientError::malformed(0, "a subscription answer without seq", answer.to_string().as_bytes());
            return Some(if first { End::Fatal(e) } else { End::Lost(message(e)) });
        };
        let resync = answer.get("resync").and_then(Value::as_bool).unwrap_or(false);
        if purpose == Purpose::DriverReplay {
            let _ = tx.emit(Unsubscribe(json!({ "lot": lot }))).await;
        }
        if let Some(c) = self.lots.get_mut(&lot)
            && purpose == Purpose::Follow
        {
            c.pending = false;
            if resync {
                c.cursor = Some(seq);
                if !self.sink.send(Ok(LiveEvent::Resync { lot, seq })).await {
                    return Some(End::Stopped);
                }
            } else if c.cursor.is_none() {
                c.cursor = Some(seq);
            }
        }
        // The driver's replay of this lot is in: release what was held back, in order.
        if let Some(d) = &mut self.driver
            && let Some(mut held) = d.replaying.remove(&lot)
        {
            if resync {
                // Too much was missed to replay: the driver's cursor moves on, and the app is
                // told to read the reservations again.
                d.seen.insert(lot, seq);
                if purpose == Purpose::DriverReplay
                    && !self.sink.send(Ok(LiveEvent::Resync { lot, seq })).await
                {
                    return Some(End::Stopped);
                }
            }
            held.sort_by_key(|e| e.seq);
            for e in held {
                if let Some(end) = self.deliver_driver(e).await {
                    return Some(end);
                }
            }
        }
        None
    }
}

/// Resolves when nobody listens any more.
fn closed(sink: &Sink) -> impl Future<Output = ()> + Send + 'static {
    let tx = match sink {
        Sink::Channel(tx) => Some(tx.clone()),
        Sink::Callback(_) => None,
    };
    async move {
        match tx {
            Some(tx) => tx.closed().await,
            None => std::future::pending().await,
        }
    }
}

fn eioc_websocket() -> sioc::prelude::TransportStrategy {
    sioc::prelude::TransportStrategy::WebSocket
}

/// A refused connection: the server's `connect_error` message is `<code>: <detail>`.
fn refusal(message: &str) -> ClientError {
    let (code, detail) = message.split_once(": ").unwrap_or(("unauthorized", message));
    let status = match code {
        "unauthorized" => 401,
        "rate_limited" => 429,
        "bad_request" => 400,
        "forbidden" => 403,
        _ => 0,
    };
    let mut p = Problem::synthetic(code, status, detail);
    p.type_uri = format!("{}{code}", crate::error::TYPE_BASE);
    ClientError::from_problem(p, status, None)
}

/// An error's message, for the reason a connection was lost.
fn message(e: ClientError) -> String {
    match e {
        ClientError::Transport { message, .. } => message,
        other => other.to_string(),
    }
}

fn sleep_until(deadline: Option<Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)))
}

/// The first wait for a subscription's acknowledgement before it is sent again.
const FIRST_RESEND: Duration = Duration::from_millis(250);

/// A subscription waiting for its acknowledgement.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// What the first attempt asked for.
    after: Option<u64>,
    /// When it was first sent.
    since: Instant,
    /// When to send it again.
    resend_at: Instant,
    /// The wait before the next resend.
    backoff: Duration,
}

/// The subscriptions of one connection and their acknowledgements.
///
/// A `subscribe` that reaches the server before its handlers are registered for the new
/// connection is dropped without an answer, so an unanswered subscription is sent again
/// (after 250 ms, doubling) until it is answered or `timeout` passes. Every acknowledgement
/// handle is kept until it resolves, and only the first answer counts.
struct Subs {
    tx: SocketSender,
    timeout: Duration,
    futs: FuturesUnordered<AckFuture>,
    pending: HashMap<(LotId, Purpose), Pending>,
}

impl Subs {
    fn new(tx: SocketSender, timeout: Duration) -> Self {
        Self { tx, timeout, futs: FuturesUnordered::new(), pending: HashMap::new() }
    }

    /// Sends `subscribe {lot, after?}`.
    async fn send(&mut self, lot: LotId, after: Option<u64>, purpose: Purpose) -> Result<(), String> {
        self.emit(lot, after, purpose).await?;
        let now = Instant::now();
        self.pending.insert(
            (lot, purpose),
            Pending { after, since: now, resend_at: now + FIRST_RESEND, backoff: FIRST_RESEND },
        );
        Ok(())
    }

    async fn emit(&mut self, lot: LotId, after: Option<u64>, purpose: Purpose) -> Result<(), String> {
        let mut body = json!({ "lot": lot });
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        let sent = match purpose {
            Purpose::Probe => self.tx.emit(UnsubscribeAcked(json!({ "lot": lot }))).await,
            _ => self.tx.emit(SubscribeMsg(body)).await,
        };
        let handle: AckHandle<RawAck> = sent.map_err(|e| format!("cannot subscribe: {e}"))?;
        self.futs.push(
            async move {
                let answer = match handle.await {
                    Ok(Ack { payload: RawAck(v), .. }) => Ok(v),
                    Err(e) => Err(ClientError::Transport {
                        message: format!("no acknowledgement of subscribe: {e}"),
                        source: Some(Box::new(e)),
                    }),
                };
                (lot, purpose, answer)
            }
            .boxed(),
        );
        Ok(())
    }

    /// Whether every subscription is answered.
    fn settled(&self) -> bool {
        self.pending.is_empty()
    }

    /// Marks `(lot, purpose)` answered; false when it was answered already.
    fn answered(&mut self, lot: LotId, purpose: Purpose) -> bool {
        self.pending.remove(&(lot, purpose)).is_some()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.resend_at).min()
    }

    /// Sends again what is due; a followed lot asks from its cursor as it is now.
    async fn resend_due(&mut self, cursors: &HashMap<LotId, Option<u64>>) -> Result<(), String> {
        let now = Instant::now();
        let due: Vec<((LotId, Purpose), Pending)> =
            self.pending.iter().filter(|(_, p)| p.resend_at <= now).map(|(k, p)| (*k, *p)).collect();
        for ((lot, purpose), p) in due {
            if now.duration_since(p.since) >= self.timeout {
                return Err(format!("the server did not acknowledge subscribe to lot {lot}"));
            }
            let after = match purpose {
                Purpose::Follow => cursors.get(&lot).copied().flatten().or(p.after),
                Purpose::DriverReplay | Purpose::Probe => p.after,
            };
            tracing::debug!(%lot, ?after, "subscribe unanswered; sending it again");
            self.emit(lot, after, purpose).await?;
            if let Some(p) = self.pending.get_mut(&(lot, purpose)) {
                p.backoff = (p.backoff * 2).min(Duration::from_secs(5));
                p.resend_at = now + p.backoff;
            }
        }
        Ok(())
    }
}

/// `subscribe`, with an acknowledgement.
struct SubscribeMsg(Value);

impl EventType for SubscribeMsg {
    const NAME: &'static str = "subscribe";
    type Ack = HasAck<RawAck>;
    type Binary = NoBinary;
}

impl SerializePayload for SubscribeMsg {
    fn serialize_payload<S>(&self, seq: &mut S) -> Result<(), S::Error>
    where
        S: serde::ser::SerializeSeq,
    {
        seq.serialize_element(&self.0)
    }
}

/// `unsubscribe`, without waiting for its acknowledgement.
struct Unsubscribe(Value);

impl EventType for Unsubscribe {
    const NAME: &'static str = "unsubscribe";
    type Ack = NoAck;
    type Binary = NoBinary;
}

impl SerializePayload for Unsubscribe {
    fn serialize_payload<S>(&self, seq: &mut S) -> Result<(), S::Error>
    where
        S: serde::ser::SerializeSeq,
    {
        seq.serialize_element(&self.0)
    }
}

/// `unsubscribe`, with an acknowledgement (the readiness probe).
struct UnsubscribeAcked(Value);

impl EventType for UnsubscribeAcked {
    const NAME: &'static str = "unsubscribe";
    type Ack = HasAck<RawAck>;
    type Binary = NoBinary;
}

impl SerializePayload for UnsubscribeAcked {
    fn serialize_payload<S>(&self, seq: &mut S) -> Result<(), S::Error>
    where
        S: serde::ser::SerializeSeq,
    {
        seq.serialize_element(&self.0)
    }
}

/// An acknowledgement's first argument, as JSON.
struct RawAck(Value);

impl AckType for RawAck {
    type Binary = NoBinary;
}

impl DeserializePayload for RawAck {
    fn deserialize_payload<'de, S>(seq: &mut S) -> Result<Self, S::Error>
    where
        S: serde::de::SeqAccess<'de>,
    {
        let first = seq.next_element::<Value>()?.unwrap_or(Value::Null);
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RawAck(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_typed_errors() {
        assert!(matches!(
            refusal("unauthorized: the token is unknown or has expired; log in again"),
            ClientError::Unauthorized { .. }
        ));
        assert!(matches!(refusal("rate_limited: slow down"), ClientError::RateLimited { .. }));
        let e = refusal("something odd");
        assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    }
}
