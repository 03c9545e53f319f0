//! A hold whose answer is lost, or comes too late, is retried with the same idempotency key,
//! and the server makes one reservation: the retry gets the same one.

use std::time::Duration;

use parq_client::{Client, ReservationState, RetryPolicy, SpotChoice, SpotFilter};

use crate::common::{PASSWORD, TestServer, window};
use crate::proxy::Proxy;

crate::on_both!(a_hold_whose_answer_is_lost_or_late_is_retried_once_with_the_same_key);

async fn a_hold_whose_answer_is_lost_or_late_is_retried_once_with_the_same_key(s: TestServer) {
    let lot = s.lot("Eleftheria");
    let proxy = Proxy::start(&s.base).await;
    let c = Client::builder(&proxy.url)
        .timeout(Duration::from_millis(1500))
        .retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(2),
        })
        .build()
        .unwrap();
    c.register("rita@client.parq.test", PASSWORD).await.unwrap();
    c.login("rita@client.parq.test", PASSWORD, None).await.unwrap();

    // The first answer is lost on the way back: the server made the hold, the client never
    // heard. The client tries again with the same key and gets the same reservation.
    proxy.drop_next_hold_answers(1);
    let w = window(24, 2);
    let held = c.hold(lot, w, SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap();
    assert_eq!(held.state, ReservationState::Held);
    let keys = proxy.hold_keys();
    assert_eq!(keys.len(), 2, "one lost attempt, one retry: {keys:?}");
    assert_eq!(keys[0], keys[1], "the retry carries the same idempotency key");

    // The first answer comes after the client's timeout: same story.
    proxy.delay_next_hold_answer(Duration::from_millis(2500));
    let later = window(48, 2);
    let held2 = c.hold(lot, later, SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap();
    let keys = proxy.hold_keys();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(keys[2], keys[3]);
    assert_ne!(keys[2], keys[0], "a new logical hold gets a new key");

    // Exactly two reservations exist, the ones the client was given.
    let mine = c.reservations().await.unwrap();
    let mut ids: Vec<_> = mine.iter().map(|r| r.id).collect();
    ids.sort();
    let mut expected = vec![held.id, held2.id];
    expected.sort();
    assert_eq!(ids, expected, "one reservation per logical hold");
    let avail = c.availability(lot, w).await.unwrap();
    let taken = avail.spots.iter().filter(|sp| !sp.free).count();
    assert_eq!(taken, 1, "one spot taken for the first window");

    // Without retries the lost answer is a transport error, and the spot stays held once.
    let strict =
        Client::builder(&proxy.url).retry(RetryPolicy::none()).token(c.token().unwrap()).build().unwrap();
    proxy.drop_next_hold_answers(1);
    let e =
        strict.hold(lot, window(72, 1), SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap_err();
    assert!(matches!(e, parq_client::ClientError::Transport { .. }), "{e:?}");
    assert!(e.is_retryable());

    drop(proxy);
    s.shutdown().await;
}
