//! Every problem a driver can make the server answer, as a typed error.

use jiff::SignedDuration;
use parq_client::{
    ClientError, ConflictReason, Direction, LotId, ReservationId, ReservationState, SpotChoice, SpotFilter,
    Window,
};

use crate::common::{PASSWORD, TestServer, window};

crate::on_both!(typed_errors_for_every_problem_a_driver_can_cause);

async fn typed_errors_for_every_problem_a_driver_can_cause(s: TestServer) {
    let lot = s.lot("Eleftheria");
    let anon = s.client();

    // Unauthorized: no session, a wrong password; and a bad token on the live connection.
    let e = anon.me().await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    assert_eq!((e.code(), e.status()), ("unauthorized", Some(401)));
    let e =
        anon.hold(lot, window(24, 1), SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    let e = anon.with_token("pqs_not-a-session").live().driver().start().await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");

    // Invalid input: a malformed email, then a taken one, then a wrong password.
    let e = anon.register("not-an-email", PASSWORD).await.unwrap_err();
    assert!(matches!(&e, ClientError::Invalid { field: Some(f), .. } if f == "email"), "{e:?}");
    assert_eq!(e.status(), Some(422));
    let a = s.driver("alice").await;
    let e = anon.register("alice@client.parq.test", PASSWORD).await.unwrap_err();
    assert!(matches!(e, ClientError::EmailTaken { .. }), "{e:?}");
    let e = anon.login("alice@client.parq.test", "not the password", None).await.unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
    assert!(anon.token().is_none());

    // Invalid input: a window off the lot's 15-minute grid; a stay beyond the maximum.
    let w = window(24, 2);
    let off_grid = Window::new(w.start() + SignedDuration::from_mins(7), w.end()).unwrap();
    let e = a.hold(lot, off_grid, SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap_err();
    assert!(matches!(&e, ClientError::Invalid { field: Some(f), .. } if f == "window"), "{e:?}");
    let e = a.quote(lot, window(24, 24 * 30)).await.unwrap_err();
    assert!(matches!(e, ClientError::LimitExceeded { .. }), "{e:?}");

    // Not found: an unknown lot, someone else's reservation.
    let e = a.lot(LotId(uuid::Uuid::now_v7())).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");
    assert_eq!(e.status(), Some(404));
    let e = a.reservation(ReservationId(uuid::Uuid::now_v7())).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "{e:?}");

    // Conflict: a named spot another driver holds.
    let held = a.hold(lot, w, SpotChoice::Any { filter: SpotFilter::default() }).await.unwrap();
    let b = s.driver("bob").await;
    let e = b.hold(lot, w, SpotChoice::Spot { spot: held.spot_id }).await.unwrap_err();
    match &e {
        ClientError::Conflict { reason: ConflictReason::SpotTaken { spot }, problem } => {
            assert_eq!(*spot, Some(held.spot_id));
            assert_eq!(problem.type_uri, "https://parq.dev/problems/conflict");
            assert!(!problem.detail.is_empty());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(!e.is_retryable());
    let e = b.reservation(held.id).await.unwrap_err();
    assert!(matches!(e, ClientError::NotFound { .. }), "another driver's reservation: {e:?}");

    // Invalid transition: a pass before payment; paying for a released hold.
    let e = a.pass(held.id).await.unwrap_err();
    match &e {
        ClientError::InvalidTransition { reservation, state, .. } => {
            assert_eq!(*reservation, Some(held.id));
            assert_eq!(*state, Some(ReservationState::Held));
        }
        other => panic!("expected an invalid transition, got {other:?}"),
    }
    let released = a.cancel(held.id).await.unwrap();
    assert_ne!(released.reservation.state, ReservationState::Held);
    let e = a.checkout(held.id).await.unwrap_err();
    assert!(
        matches!(e, ClientError::InvalidTransition { state: Some(ReservationState::Cancelled), .. }),
        "{e:?}"
    );
    assert_eq!(e.code(), "invalid_transition");

    // Idempotency mismatch: one key, two different holds.
    let key = parq_client::new_idempotency_key();
    let (first, replayed) =
        a.hold_with_key(lot, w, SpotChoice::Any { filter: SpotFilter::default() }, &key).await.unwrap();
    assert!(!replayed);
    let (again, replayed) =
        a.hold_with_key(lot, w, SpotChoice::Any { filter: SpotFilter::default() }, &key).await.unwrap();
    assert!(replayed, "the same request with the same key is a replay");
    assert_eq!(again.id, first.id);
    let other = SpotFilter { accessible: true, ..SpotFilter::default() };
    let e = a.hold_with_key(lot, w, SpotChoice::Any { filter: other }, &key).await.unwrap_err();
    assert!(matches!(e, ClientError::IdempotencyMismatch { .. }), "{e:?}");
    assert_eq!(e.status(), Some(422));

    // Forbidden: a driver's token at a gate.
    let e = a.scan("NOT-A-PASS", lot, Direction::Entry, "north-1", None).await.unwrap_err();
    assert!(matches!(e, ClientError::Forbidden { .. }), "{e:?}");

    s.shutdown().await;
}
