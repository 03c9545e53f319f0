//! Live updates: a lot's events and the driver's own, resumed from the last sequence number
//! after a stop or a dropped connection, with no event lost or repeated.

use std::collections::VecDeque;
use std::time::Duration;

use parq_client::{Client, EventKind, LiveEvent, LotId, ReservationId, SpotChoice, SpotFilter, Window};

use crate::common::{TestServer, client_of, next_live, quiet, window};
use crate::proxy::Proxy;

crate::on_both!(a_lot_stream_resumes_from_its_last_seq_after_a_restart_and_a_dropped_connection);
crate::on_both!(the_drivers_own_events_resume_after_a_dropped_connection);

/// The next lot event (skipping connection notices), checked to be the next of the lot.
async fn next_lot_event(live: &mut parq_client::LiveUpdates, lot: LotId, seq: u64) -> parq_client::LotEvent {
    loop {
        match next_live(live).await {
            LiveEvent::Lot(e) => {
                assert_eq!(e.lot, lot);
                assert_eq!(e.seq, seq, "events in order, none lost or repeated: {e:?}");
                return e;
            }
            LiveEvent::Disconnected { .. } | LiveEvent::Reconnected => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Makes one change on a lot at a time: a hold, or (at the per-driver limit of live holds) the
/// cancellation of the oldest.
struct Churn {
    driver: Client,
    lot: LotId,
    window: Window,
    live: VecDeque<ReservationId>,
}

impl Churn {
    async fn step(&mut self) -> (ReservationId, EventKind) {
        if self.live.len() < 2 {
            let any = SpotChoice::Any { filter: SpotFilter::default() };
            let r = self.driver.hold(self.lot, self.window, any).await.unwrap();
            self.live.push_back(r.id);
            (r.id, EventKind::Held)
        } else {
            let id = self.live.pop_front().unwrap();
            self.driver.cancel(id).await.unwrap();
            (id, EventKind::Cancelled)
        }
    }
}

async fn a_lot_stream_resumes_from_its_last_seq_after_a_restart_and_a_dropped_connection(s: TestServer) {
    let lot = s.lot("Ledra");
    let mut bob = Churn { driver: s.driver("bob").await, lot, window: window(24, 1), live: VecDeque::new() };

    // Follow the lot from now; the lot's latest number is where live begins. A second
    // follower takes the events through a callback.
    let watcher = s.client();
    let mut live = watcher.live().lot(lot).start().await.unwrap();
    let (tx, mut by_callback) = tokio::sync::mpsc::unbounded_channel();
    let mut handle = watcher
        .live()
        .lot(lot)
        .start_with(move |item| {
            let _ = tx.send(item);
        })
        .await
        .unwrap();
    let (h1, _) = bob.step().await;
    let first = match next_live(&mut live).await {
        LiveEvent::Lot(e) => e,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(
        (first.reservation, first.kind, first.state),
        (h1, EventKind::Held, parq_client::ReservationState::Held)
    );
    let mut seq = first.seq;
    bob.step().await;
    seq += 1;
    next_lot_event(&mut live, lot, seq).await;
    for expected in [first.seq, seq] {
        match tokio::time::timeout(Duration::from_secs(15), by_callback.recv()).await {
            Ok(Some(Ok(LiveEvent::Lot(e)))) => assert_eq!(e.seq, expected),
            other => panic!("the callback got {other:?}"),
        }
    }
    assert!(!handle.is_finished());
    handle.stop();
    assert!(handle.is_finished());
    drop(handle);

    // Stopped (an app sent to the background); meanwhile three changes.
    drop(live);
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(bob.step().await);
    }
    // Back from the last number seen: exactly the missed events, in order, then live ones.
    let mut live = watcher.live().lot_after(lot, seq).start().await.unwrap();
    for (id, kind) in &missed {
        seq += 1;
        let e = next_lot_event(&mut live, lot, seq).await;
        assert_eq!((e.reservation, e.kind), (*id, *kind));
    }
    bob.step().await;
    seq += 1;
    next_lot_event(&mut live, lot, seq).await;
    quiet(&mut live).await;
    drop(live);

    // Through a proxy whose connections are cut, and which refuses new ones for a while:
    // the client reconnects by itself and resumes from its cursor.
    let proxy = Proxy::start(&s.base).await;
    let through = client_of(&proxy.url);
    let mut live = through
        .live()
        .lot(lot)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    bob.step().await;
    seq += 1;
    next_lot_event(&mut live, lot, seq).await;
    proxy.refuse(true);
    proxy.sever();
    match next_live(&mut live).await {
        LiveEvent::Disconnected { .. } => {}
        other => panic!("expected the disconnection, got {other:?}"),
    }
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(bob.step().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.refuse(false);
    for (id, kind) in &missed {
        seq += 1;
        let e = next_lot_event(&mut live, lot, seq).await;
        assert_eq!((e.reservation, e.kind), (*id, *kind));
    }
    match next_live(&mut live).await {
        LiveEvent::Reconnected => {}
        other => panic!("expected the reconnection after the replay, got {other:?}"),
    }
    bob.step().await;
    seq += 1;
    next_lot_event(&mut live, lot, seq).await;
    quiet(&mut live).await;

    drop(live);
    drop(proxy);
    // Every stream and handle dropped: the server has no socket left.
    let http = reqwest::Client::new();
    let mut sockets = None;
    for _ in 0..100 {
        let metrics = http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
        sockets = metrics.lines().find_map(|l| l.strip_prefix("parq_sockets ")).map(|v| v.trim().to_owned());
        if sockets.as_deref() == Some("0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sockets.as_deref(), Some("0"), "the connections are closed");
    s.shutdown().await;
}

async fn the_drivers_own_events_resume_after_a_dropped_connection(s: TestServer) {
    let lot = s.lot("Limassol Marina");
    let proxy = Proxy::start(&s.base).await;
    let dana = client_of(&proxy.url);
    dana.register("dana@client.parq.test", crate::common::PASSWORD).await.unwrap();
    dana.login("dana@client.parq.test", crate::common::PASSWORD, None).await.unwrap();
    let direct = s.client().with_token(dana.token().unwrap());
    let someone = s.driver("someone").await;
    let w = window(48, 2);
    let any = SpotChoice::Any { filter: SpotFilter::default() };

    let mut live = dana
        .live()
        .driver()
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let first = direct.hold(lot, w, any.clone()).await.unwrap();
    let mut seen: Vec<(ReservationId, EventKind, u64)> = Vec::new();
    match next_live(&mut live).await {
        LiveEvent::Reservation(e) => seen.push((e.reservation, e.kind, e.seq)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!((seen[0].0, seen[0].1), (first.id, EventKind::Held));

    // Cut off. Meanwhile: dana cancels, someone else holds, dana holds again.
    proxy.refuse(true);
    proxy.sever();
    match next_live(&mut live).await {
        LiveEvent::Disconnected { .. } => {}
        other => panic!("expected the disconnection, got {other:?}"),
    }
    direct.cancel(first.id).await.unwrap();
    someone.hold(lot, w, any.clone()).await.unwrap();
    let second = direct.hold(lot, w, any.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.refuse(false);

    // Back: dana's two missed events, in order, once; nobody else's. `Reconnected` comes once
    // everything has resumed (possibly after live events).
    let mut reconnected = 0;
    let mut got = Vec::new();
    while got.len() < 2 {
        match next_live(&mut live).await {
            LiveEvent::Reservation(e) => got.push((e.reservation, e.kind, e.seq)),
            LiveEvent::Reconnected => reconnected += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((got[0].0, got[0].1), (first.id, EventKind::Cancelled), "{got:?}");
    assert_eq!((got[1].0, got[1].1), (second.id, EventKind::Held), "{got:?}");
    assert!(got[0].2 > seen[0].2 && got[1].2 > got[0].2 + 1, "someone's hold is between them: {got:?}");
    // Live again.
    let third = direct.hold(lot, window(72, 1), any.clone()).await.unwrap();
    let mut third_seen = false;
    while !third_seen || reconnected == 0 {
        match next_live(&mut live).await {
            LiveEvent::Reservation(e) => {
                assert!(!third_seen, "once: {e:?}");
                assert_eq!((e.reservation, e.kind), (third.id, EventKind::Held));
                third_seen = true;
            }
            LiveEvent::Reconnected => reconnected += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reconnected, 1);
    quiet(&mut live).await;

    drop(live);
    drop(proxy);
    s.shutdown().await;
}
