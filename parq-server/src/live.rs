//! Live updates over Socket.IO (path `/socket.io/`, namespace `/`).
//!
//! # Protocol
//! - Connect anonymously, or with `auth: {"token": "<session token>"}` from
//!   `POST /api/v1/auth/login`. A signed-in driver joins a private room and receives
//!   `reservation` events for their own reservations, on every lot. An unknown or expired token
//!   is refused with a `connect_error` whose `message` says so.
//! - `subscribe` `{"lot": "<uuid>", "after": <seq>}` (with an acknowledgement) joins the lot's
//!   room. When `after` is given, every stored event of the lot with a larger sequence number
//!   is emitted on `event` first, in order, then the acknowledgement
//!   `{"ok": true, "lot", "seq"}` names the last sequence number sent or already known; every
//!   later event arrives live, so the client sees each event exactly once and in order. When
//!   more than [`MAX_REPLAY`] events were missed, none are replayed and the acknowledgement
//!   carries `"resync": true`: read the lot's availability again and go on from `seq`.
//!   A refusal is `{"ok": false, "error": {"type", "title", "status", "detail"}}`.
//! - `unsubscribe` `{"lot": "<uuid>"}` leaves the room.
//! - `event` (lot rooms): `{lot, seq, at, kind, reservation, spot, window: {start, end}, state}`.
//!   `reservation` (a driver's room): the same, plus `user`.
//!
//! Events are numbered per lot without gaps. A client that sees a gap (its connection's buffer
//! overflowed, or it was away) subscribes again with the last number it saw.
//!
//! # Across replicas
//! One relay task per server subscribes to the configured notifier (in-process, Redis, or
//! PostgreSQL's LISTEN/NOTIFY, merged when both run) and emits every lot's events, in sequence
//! order, to the sockets connected to this replica. It keeps the last number it emitted per
//! lot: duplicates (one event heard through two notifiers) are dropped, and a gap (a notifier
//! that lagged, dropped its connection, or delivered out of order) is filled from the store
//! before the newer event is emitted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use parq_core::{Event, LotId, UserId};
use serde::{Deserialize, Serialize};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use tokio::sync::watch;

use crate::problem::Problem;
use crate::state::{AppState, Principal};

/// The most missed events a `subscribe` replays; past it the client is told to resync.
pub const MAX_REPLAY: u64 = 1_000;
/// Packets a socket may have queued before further emits to it are dropped (the client then
/// sees a gap in the sequence numbers and subscribes again).
const SOCKET_BUFFER: usize = 2 * MAX_REPLAY as usize + 64;
/// The most lots one socket may follow.
const MAX_LOTS_PER_SOCKET: usize = 64;
/// Events read from the store per page.
const PAGE: usize = 512;

/// What the socket handlers and the relay share: the app's state, and the feeds.
#[derive(Debug, Clone)]
struct Ctx {
    state: AppState,
    feeds: Arc<Feeds>,
}

impl std::ops::Deref for Ctx {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.state
    }
}

/// Per-lot emission state, shared by the relay and `subscribe`.
#[derive(Debug, Default)]
struct Feeds {
    lots: Mutex<HashMap<LotId, Arc<tokio::sync::Mutex<Feed>>>>,
}

/// How far a lot's events have been emitted: to the lot's room, and to the drivers' rooms.
/// The two differ because `subscribe` advances the room alone.
#[derive(Debug, Default)]
struct Feed {
    room: Option<u64>,
    drivers: Option<u64>,
}

impl Feed {
    /// The lowest of the known cursors.
    fn floor(&self) -> Option<u64> {
        match (self.room, self.drivers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Emits each event, in order, wherever it has not been emitted yet.
    async fn emit_all(&mut self, io: &SocketIo, events: &[Event]) {
        for e in events {
            if self.room.is_none_or(|r| e.seq > r) {
                to_room(io, lot_room(e.lot), "event", &LotEvent::from(e)).await;
                self.room = Some(e.seq);
            }
            if self.drivers.is_none_or(|d| e.seq > d) {
                to_room(io, user_room(e.user), "reservation", e).await;
                self.drivers = Some(e.seq);
            }
        }
    }
}

/// Emits to every socket in `room`. A room nobody is in costs a lookup, not an encoding: most
/// lots have nobody watching most of the time.
async fn to_room(io: &SocketIo, room: String, event: &str, payload: &impl Serialize) {
    let to = io.to(room);
    if !to.clone().sockets().is_empty()
        && let Err(err) = to.emit(event, payload).await
    {
        tracing::debug!(error = %err, event, "an event did not reach every socket of its room");
    }
}

impl Feeds {
    fn get(&self, lot: LotId) -> Arc<tokio::sync::Mutex<Feed>> {
        let mut lots = self.lots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        lots.entry(lot).or_default().clone()
    }

    fn known(&self) -> Vec<(LotId, Arc<tokio::sync::Mutex<Feed>>)> {
        let lots = self.lots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        lots.iter().map(|(k, v)| (*k, v.clone())).collect()
    }
}

fn lot_room(lot: LotId) -> String {
    format!("lot:{lot}")
}

fn user_room(user: UserId) -> String {
    format!("user:{user}")
}

/// An event as a lot's room sees it: without the driver.
#[derive(Debug, Serialize)]
struct LotEvent<'a> {
    lot: LotId,
    seq: u64,
    at: jiff::Timestamp,
    kind: parq_core::EventKind,
    reservation: parq_core::ReservationId,
    spot: parq_core::SpotId,
    window: &'a parq_core::Window,
    state: parq_core::ReservationState,
}

impl<'a> From<&'a Event> for LotEvent<'a> {
    fn from(e: &'a Event) -> Self {
        LotEvent {
            lot: e.lot,
            seq: e.seq,
            at: e.at,
            kind: e.kind,
            reservation: e.reservation,
            spot: e.spot,
            window: &e.window,
            state: e.state,
        }
    }
}

/// The live side of a running app: the sockets and the feeds the relay fills.
#[derive(Debug, Clone)]
pub struct Hub {
    io: SocketIo,
    ctx: Ctx,
}

/// Builds the Socket.IO layer and registers the namespace.
pub fn layer(state: &AppState) -> (SocketIoLayer, Hub) {
    let state = &Ctx { state: state.clone(), feeds: Arc::default() };
    let (layer, io) = SocketIo::builder()
        .max_buffer_size(SOCKET_BUFFER)
        .ping_interval(Duration::from_secs(20))
        .ping_timeout(Duration::from_secs(20))
        .max_payload(16 * 1024)
        .build_layer();
    let on_connect = {
        let state = state.clone();
        move |s: SocketRef| {
            let state = state.clone();
            async move { connected(state, s) }
        }
    };
    // socketioxide sends the connect packet before it runs the connect handler, in a task of
    // its own: a fast client's first `subscribe` could arrive before any handler existed. The
    // middleware runs before the packet is sent, so the handlers and the driver's room are set
    // up there, once the socket is admitted.
    let admit = {
        let state = state.clone();
        move |s: SocketRef, TryData(auth): TryData<serde_json::Value>| {
            let state = state.clone();
            async move {
                admit(&state, &s, auth.ok()).await?;
                register(&state, &s);
                Ok::<(), Refused>(())
            }
        }
    };
    io.ns("/", on_connect.with(admit));
    (layer, Hub { io, ctx: state.clone() })
}

/// Why a connection was refused.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The driver a socket belongs to, when signed in.
#[derive(Debug, Clone, Copy)]
struct Driver(UserId);

/// Connect middleware: the per-address rate limit, then the token when one is given.
async fn admit(state: &Ctx, s: &SocketRef, auth: Option<serde_json::Value>) -> Result<(), Refused> {
    let parts = s.req_parts();
    let ip = state.trusted_proxies.client(crate::clientaddr::peer(&parts.extensions), &parts.headers);
    if state.limits.check(crate::ratelimit::Kind::Ip, &format!("ip:{ip}")).await.is_err() {
        state.metrics.rate_limited();
        return Err(Refused("rate_limited: too many requests from this address; slow down".into()));
    }
    let Some(token) = auth_token(auth.as_ref()).map_err(Refused)? else { return Ok(()) };
    match crate::middleware::resolve(state, &token).await {
        Ok(Some(Principal::User { id, .. })) => {
            s.extensions.insert(Driver(id));
            Ok(())
        }
        // Operator and gate keys may follow lots, like anyone.
        Ok(Some(Principal::Key { .. })) => Ok(()),
        Ok(None) => Err(Refused("unauthorized: the token is unknown or has expired; log in again".into())),
        Err(p) => Err(Refused(format!("{}: {}", p.code, p.detail))),
    }
}

fn connected(state: Ctx, s: SocketRef) {
    state.metrics.socket_connected();
    s.on_disconnect(move || {
        let state = state.clone();
        async move { state.metrics.socket_disconnected() }
    });
}

/// The driver's room and the event handlers of an admitted socket.
fn register(state: &Ctx, s: &SocketRef) {
    if let Some(Driver(user)) = s.extensions.get::<Driver>() {
        s.join(user_room(user));
    }
    {
        let state = state.clone();
        s.on(
            "subscribe",
            move |s: SocketRef, io: SocketIo, TryData(req): TryData<Subscribe>, ack: AckSender| {
                let state = state.clone();
                async move {
                    let answer = match req {
                        Ok(req) => subscribe(&state, &io, &s, req).await,
                        Err(e) => Err(Problem::bad_request(format!("subscribe takes {{lot, after?}}: {e}"))),
                    };
                    let _ = match answer {
                        Ok(a) => ack.send(&a),
                        Err(p) => ack.send(&Refusal::from(&p)),
                    };
                }
            },
        );
    }
    s.on("unsubscribe", async |s: SocketRef, TryData(req): TryData<Unsubscribe>, ack: AckSender| {
        let _ = match req {
            Ok(req) => {
                s.leave(lot_room(req.lot));
                ack.send(&serde_json::json!({ "ok": true, "lot": req.lot }))
            }
            Err(e) => {
                ack.send(&Refusal::from(&Problem::bad_request(format!("unsubscribe takes {{lot}}: {e}"))))
            }
        };
    });
}

/// The payload of a `subscribe` event: `{lot, after?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// The lot to follow.
    pub lot: LotId,
    /// The last event the client has seen; the events after it are replayed.
    #[serde(default)]
    pub after: Option<u64>,
}

/// The payload of an `unsubscribe` event: `{lot}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsubscribe {
    /// The lot to stop following.
    pub lot: LotId,
}

/// The token of a connection's `auth` payload: `None` when there is none (`auth` absent,
/// without `token`, or `token: null`), else the trimmed string.
///
/// # Errors
/// The refusal's message when `token` is not a string.
pub fn auth_token(auth: Option<&serde_json::Value>) -> Result<Option<String>, String> {
    match auth.and_then(|a| a.get("token")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(t)) => Ok(Some(t.trim().to_owned())),
        Some(_) => Err("bad_request: auth.token must be a string".into()),
    }
}

#[derive(Debug, Serialize)]
struct Subscribed {
    ok: bool,
    lot: LotId,
    seq: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    resync: bool,
}

/// A refused request's acknowledgement: `{"ok": false, "error": <problem>}`.
#[derive(Debug, Serialize)]
struct Refusal<'a> {
    ok: bool,
    error: &'a Problem,
}

impl<'a> From<&'a Problem> for Refusal<'a> {
    fn from(error: &'a Problem) -> Self {
        Refusal { ok: false, error }
    }
}

async fn subscribe(state: &Ctx, io: &SocketIo, s: &SocketRef, req: Subscribe) -> Result<Subscribed, Problem> {
    let room = lot_room(req.lot);
    if !s.rooms().iter().any(|r| *r == room)
        && s.rooms().iter().filter(|r| r.starts_with("lot:")).count() >= MAX_LOTS_PER_SOCKET
    {
        return Err(Problem::from(parq_core::Error::LimitExceeded {
            limit: format!("a connection follows at most {MAX_LOTS_PER_SOCKET} lots"),
        }));
    }
    // Also refuses a lot that does not exist.
    let latest = state.engine.store().last_seq(req.lot).await?;
    // What the client missed, read before taking the lot's feed so the relay is not held up.
    let mut missed = Vec::new();
    let mut resync = false;
    if let Some(after) = req.after {
        if latest.saturating_sub(after) > MAX_REPLAY {
            resync = true;
        } else {
            missed = read_after(state, req.lot, after, latest).await?;
        }
    }
    let feed = state.feeds.get(req.lot);
    let mut feed = feed.lock().await;
    // While the feed is held no event of this lot reaches its room but through us.
    match feed.room {
        // The relay has not heard of the newest events yet: the room gets them now (and will
        // not get them twice), so that the room and this client agree on where live begins.
        Some(r) if r < latest => {
            let behind = read_after(state, req.lot, r, latest).await?;
            for e in &behind {
                to_room(io, lot_room(e.lot), "event", &LotEvent::from(e)).await;
            }
            feed.room = Some(latest);
        }
        Some(_) => {}
        // Nobody follows the lot on this replica yet: live begins after what is stored.
        None => feed.room = Some(latest),
    }
    let upto = feed.room.unwrap_or(latest);
    if let (Some(after), false) = (req.after, resync) {
        let from = missed.last().map_or(after, |e| e.seq);
        if from < upto {
            missed.extend(read_after(state, req.lot, from, upto).await?);
        }
        for e in missed.iter().filter(|e| e.seq > after && e.seq <= upto) {
            let _ = s.emit("event", &LotEvent::from(e));
        }
    }
    s.join(room);
    Ok(Subscribed { ok: true, lot: req.lot, seq: upto, resync })
}

/// The lot's events with `after < seq <= upto`, from the store.
async fn read_after(state: &Ctx, lot: LotId, after: u64, upto: u64) -> Result<Vec<Event>, Problem> {
    let store = state.engine.store();
    let mut out = Vec::new();
    let mut from = after;
    while from < upto {
        let page = store.events(lot, from, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        out.extend(page.into_iter().filter(|e| e.seq <= upto));
        from = last;
    }
    Ok(out)
}

/// Emits `e`, after whatever the lot's rooms have not seen before it, once.
async fn deliver(state: &Ctx, io: &SocketIo, e: Event) {
    let feed = state.feeds.get(e.lot);
    let mut feed = feed.lock().await;
    let mut batch = Vec::new();
    if let Some(floor) = feed.floor()
        && e.seq > floor + 1
    {
        // A gap: the notifier dropped or reordered something. The store has it.
        match read_after(state, e.lot, floor, e.seq - 1).await {
            Ok(missed) => batch = missed,
            Err(p) => tracing::warn!(lot = %e.lot, error = %p.detail, "could not fill a gap in live events"),
        }
    }
    batch.push(e);
    feed.emit_all(io, &batch).await;
}

/// After the notifier lagged or reconnected: emit from the store whatever each followed lot
/// has had since.
async fn refill(state: &Ctx, io: &SocketIo) {
    for (lot, feed) in state.feeds.known() {
        let mut feed = feed.lock().await;
        let Some(floor) = feed.floor() else { continue };
        let latest = match state.engine.store().last_seq(lot).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%lot, error = %e, "could not refill live events");
                continue;
            }
        };
        if latest <= floor {
            continue;
        }
        match read_after(state, lot, floor, latest).await {
            Ok(missed) => feed.emit_all(io, &missed).await,
            Err(p) => tracing::warn!(%lot, error = %p.detail, "could not refill live events"),
        }
    }
}

/// Resolves once `stop` says so (without holding the channel's guard).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The relay: from the notifier to this replica's sockets, until `stop`.
pub async fn relay(hub: Hub, mut stop: watch::Receiver<bool>) {
    let Hub { io, ctx: state } = hub;
    let notifier = state.backends.notifier.clone();
    'relay: loop {
        let subscribed = tokio::select! {
            s = notifier.subscribe(None) => s,
            _ = stopped(&mut stop) => break 'relay,
        };
        let mut stream = match subscribed {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "live updates: cannot subscribe to events; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped(&mut stop) => break 'relay,
                }
            }
        };
        // Whatever happened while we were not listening.
        refill(&state, &io).await;
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    Some(Ok(e)) => deliver(&state, &io, e).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "live updates lagged; refilling from the store");
                        refill(&state, &io).await;
                    }
                    None => break,
                },
                _ = stopped(&mut stop) => break 'relay,
            }
        }
    }
    io.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_tokens() {
        use serde_json::json;
        assert_eq!(auth_token(None), Ok(None));
        assert_eq!(auth_token(Some(&json!({}))), Ok(None));
        assert_eq!(auth_token(Some(&json!({ "token": null }))), Ok(None));
        assert_eq!(auth_token(Some(&json!({ "token": " abc " }))), Ok(Some("abc".into())));
        assert!(auth_token(Some(&json!({ "token": 42 }))).is_err());
    }
}
