//! `PgNotifier`: live events through PostgreSQL's `LISTEN`/`NOTIFY`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures_util::future::poll_fn;
use parq_core::{Error, Event, EventStream, LotId, Notifier, Result};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls};

use crate::tls::PgTls;

use crate::error::db;
use crate::sql::ident;

/// What the listener hands to subscribers.
#[derive(Debug, Clone)]
enum Msg {
    Event(Box<Event>),
    /// Notifications may have been missed (the connection dropped, or a payload was unreadable).
    Gap(&'static str),
    /// A subscriber's marker: what was committed before it belongs to earlier subscribers.
    Sync(u64),
}

/// The payload prefix of a subscriber's marker.
const SYNC: &str = "sync ";

/// A [`Notifier`] on PostgreSQL `LISTEN`/`NOTIFY`, across every replica that shares the
/// database.
///
/// [`PgStore`](crate::PgStore) already announces each event with `pg_notify` once it is
/// committed and numbered (by its writer right after commit, or by the relay), so listeners
/// hear of every event; notifications of different writes may arrive out of sequence order,
/// which [`Engine::watch`](parq_core::Engine::watch) mends from the outbox. Hence
/// [`publish`](Notifier::publish) does nothing unless a publishing pool is given with
/// [`publishing_with`](Self::publishing_with) (for use with another store).
///
/// The notifier keeps one dedicated connection that listens on the store's channel. When that
/// connection drops, it reconnects with backoff and then yields one `Err` item to every
/// subscriber, which [`Engine::watch`](parq_core::Engine::watch) answers by reading what it
/// missed from the store.
pub struct PgNotifier {
    tx: broadcast::Sender<Msg>,
    channel: String,
    publisher: Option<Pool>,
    /// The listening connection's client, replaced on reconnection.
    client: Arc<Mutex<Arc<Client>>>,
    syncs: AtomicU64,
    task: JoinHandle<()>,
}

impl fmt::Debug for PgNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgNotifier").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl Drop for PgNotifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribers that fall this many events behind get an `Err` item and resume from the store.
const CAPACITY: usize = 4096;

impl PgNotifier {
    /// Connects with `config` and listens on `channel` (see [`PgStore::channel`](crate::PgStore::channel))
    /// before returning, so every event committed afterwards reaches subscribers.
    /// The connection is not encrypted: see [`connect_tls`](Self::connect_tls).
    pub async fn connect(config: tokio_postgres::Config, channel: impl Into<String>) -> Result<Self> {
        Self::start(config, None, channel.into()).await
    }

    /// As [`connect`](Self::connect), through `tls` (its `sslmode` decides whether the
    /// connection is encrypted and how the server is checked; see [`crate::tls`]).
    pub async fn connect_tls(
        config: tokio_postgres::Config,
        tls: PgTls,
        channel: impl Into<String>,
    ) -> Result<Self> {
        Self::start(config, Some(tls), channel.into()).await
    }

    async fn start(config: tokio_postgres::Config, tls: Option<PgTls>, channel: String) -> Result<Self> {
        let (tx, _) = broadcast::channel(CAPACITY);
        let session = listen(&config, tls.as_ref(), &channel, tx.clone()).await?;
        let client = Arc::new(Mutex::new(session.0.clone()));
        let task =
            tokio::spawn(keep_listening(config, tls, channel.clone(), tx.clone(), session, client.clone()));
        Ok(Self { tx, channel, publisher: None, client, syncs: AtomicU64::new(0), task })
    }

    /// Makes [`publish`](Notifier::publish) send each event with `pg_notify` through `pool`,
    /// for stores that do not announce their events themselves.
    pub fn publishing_with(mut self, pool: Pool) -> Self {
        self.publisher = Some(pool);
        self
    }

    /// The channel listened on.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

/// A listening connection: the client (which keeps it open) and the task driving it.
type Session = (Arc<Client>, JoinHandle<()>);

async fn listen(
    config: &tokio_postgres::Config,
    tls: Option<&PgTls>,
    channel: &str,
    tx: broadcast::Sender<Msg>,
) -> Result<Session> {
    let (client, driver) = match tls {
        None => {
            let (client, conn) = config.connect(NoTls).await.map_err(db)?;
            (client, tokio::spawn(drive(conn, tx)))
        }
        Some(tls) => {
            let (client, conn) = config.connect(tls.clone()).await.map_err(db)?;
            (client, tokio::spawn(drive(conn, tx)))
        }
    };
    client.batch_execute(&format!("LISTEN {}", ident(channel))).await.map_err(db)?;
    Ok((Arc::new(client), driver))
}

/// Hands the connection's notifications to the subscribers until it ends.
async fn drive<S, T>(mut conn: Connection<S, T>, tx: broadcast::Sender<Msg>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    {
        while let Some(msg) = poll_fn(|cx| conn.poll_message(cx)).await {
            match msg {
                Ok(AsyncMessage::Notification(n)) => {
                    let msg = parse(n.payload()).unwrap_or(Msg::Gap("an unreadable notification"));
                    // No subscriber is not an error.
                    let _ = tx.send(msg);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the notification connection failed");
                    break;
                }
            }
        }
    }
}

async fn keep_listening(
    config: tokio_postgres::Config,
    tls: Option<PgTls>,
    channel: String,
    tx: broadcast::Sender<Msg>,
    mut session: Session,
    shared: Arc<Mutex<Arc<Client>>>,
) {
    loop {
        // Ends when the connection does.
        let _ = (&mut session.1).await;
        let mut backoff = Duration::from_millis(50);
        session = loop {
            tokio::time::sleep(backoff).await;
            match listen(&config, tls.as_ref(), &channel, tx.clone()).await {
                Ok(s) => break s,
                Err(e) => {
                    tracing::warn!(error = %e, "could not listen for events; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = session.0.clone();
        let _ = tx.send(Msg::Gap("the notification connection was re-established"));
    }
}

/// A notification payload: the sequence number, a space, and the event as JSON (whose own
/// `seq` is a placeholder, since the number is assigned by the statement that sends it).
fn parse(payload: &str) -> Option<Msg> {
    if let Some(n) = payload.strip_prefix(SYNC) {
        return n.parse().ok().map(Msg::Sync);
    }
    let (seq, json) = payload.split_once(' ')?;
    let mut event: Event = serde_json::from_str(json).ok()?;
    event.seq = seq.parse().ok()?;
    Some(Msg::Event(Box::new(event)))
}

/// The payload [`parse`] reads.
pub(crate) fn payload(event: &Event) -> Result<String> {
    let json = serde_json::to_string(event).map_err(|e| Error::invalid("event", e.to_string()))?;
    Ok(format!("{} {json}", event.seq))
}

#[async_trait]
impl Notifier for PgNotifier {
    async fn publish(&self, events: &[Event]) -> Result<()> {
        let Some(pool) = &self.publisher else { return Ok(()) };
        let client = pool.get().await.map_err(|e| crate::error::PgError::Pool(e).into_core(None))?;
        let st = client.prepare_cached("SELECT pg_notify($1, $2)").await.map_err(db)?;
        for e in events {
            client.execute(&st, &[&self.channel, &payload(e)?]).await.map_err(db)?;
        }
        Ok(())
    }

    async fn subscribe(&self, lot: Option<LotId>) -> Result<EventStream> {
        let rx = self.tx.subscribe();
        // Notifications arrive in commit order. The marker, committed now, tells this
        // subscriber where its events begin: the listener may still be delivering earlier ones.
        let marker = self.syncs.fetch_add(1, Ordering::Relaxed);
        let client = self.client.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        client
            .execute("SELECT pg_notify($1, $2)", &[&self.channel, &format!("{SYNC}{marker}")])
            .await
            .map_err(db)?;
        let stream = futures_util::stream::unfold((rx, false), move |(mut rx, mut started)| async move {
            loop {
                match rx.recv().await {
                    Ok(Msg::Sync(n)) if n == marker => started = true,
                    Ok(Msg::Sync(_)) => continue,
                    // The marker may have been lost with the connection: from here on, everything.
                    Ok(Msg::Gap(why)) => {
                        return Some((Err(Error::unavailable(why, None)), (rx, true)));
                    }
                    Ok(_) if !started => continue,
                    Ok(Msg::Event(e)) if lot.is_none_or(|l| l == e.lot) => {
                        return Some((Ok(*e), (rx, started)));
                    }
                    Ok(Msg::Event(_)) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let e = Error::unavailable(format!("subscriber lagged by {n} events"), None);
                        return Some((Err(e), (rx, started)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(stream))
    }
}
