//! The driver's journey through the client: register, login, search, quote, hold, checkout,
//! pay (test gateway), confirmed, pass, the live `reservation` events, a gate, and a
//! cancellation with a refund.

use parq_client::{
    ClientError, Decision, Direction, EventKind, LiveEvent, Refusal, ReservationState, Role, SpotChoice,
    SpotFilter,
};

use crate::common::{PASSWORD, TestServer, next_live, window};

crate::on_both!(driver_journey);

async fn driver_journey(s: TestServer) {
    let lot = s.lot("Eleftheria");
    let c = s.client();

    let account = c.register("Eleni@Example.CY", PASSWORD).await.unwrap();
    assert_eq!(account.email, "eleni@example.cy");
    assert_eq!(account.role, Role::Driver);
    assert!(c.token().is_none(), "registering does not log in");
    let session = c.login("eleni@example.cy", PASSWORD, None).await.unwrap();
    assert_eq!(session.user.id, account.id);
    assert_eq!(c.token().as_deref(), Some(session.token.as_str()), "the client keeps the token");
    assert_eq!(c.me().await.unwrap().id, account.id);

    // The driver's own events, live.
    let mut live = c.live().driver().start().await.unwrap();

    // Search near Eleftheria Square for an EV spot tomorrow; quote; availability.
    let w = window(24, 2);
    let ev = SpotFilter { ev: true, ..SpotFilter::default() };
    let found = c.search(35.1700, 33.3610, 1500.0, w, ev).await.unwrap();
    assert_eq!(found[0].lot.id, lot, "the nearest lot first");
    assert!(found.iter().all(|m| m.lot.name.contains("Nicosia")), "Limassol is too far");
    let details = c.lot(lot).await.unwrap();
    assert!(details.spots.iter().any(|sp| sp.attributes.ev));
    let quote = c.quote(lot, w).await.unwrap();
    assert_eq!((quote.lot, quote.window), (lot, w));
    let free_before = c.availability(lot, w).await.unwrap().free;

    // Hold, checkout, pay with the test gateway: confirmed.
    let held = c.hold(lot, w, SpotChoice::Any { filter: ev }).await.unwrap();
    assert_eq!(held.state, ReservationState::Held);
    assert_eq!(held.price, quote.price, "the quoted price is locked");
    assert!(details.spots.iter().any(|sp| sp.id == held.spot_id && sp.attributes.ev));
    assert_eq!(c.availability(lot, w).await.unwrap().free, free_before - 1);
    let checkout = c.checkout(held.id).await.unwrap();
    assert_eq!(checkout.reservation.state, ReservationState::PendingPayment);
    assert!(checkout.test_pay_url.is_some());
    let paid = c.pay_test_intent(&checkout.intent.id).await.unwrap();
    assert_eq!(paid.outcome, "succeeded");
    assert_eq!(paid.reservation.state, ReservationState::Confirmed);
    let r = c.reservation(held.id).await.unwrap();
    assert_eq!(r.state, ReservationState::Confirmed);
    let payment = r.payment.expect("paid");
    assert!(payment.captured);
    assert_eq!(payment.amount, quote.price);

    // The pass: JSON, verifiable offline with the published keys; SVG and PNG.
    let pass = c.pass(held.id).await.unwrap();
    assert_eq!((pass.reservation_id, pass.lot_id, pass.window), (held.id, lot, w));
    let keys = c.pass_keys().await.unwrap();
    let claims = keys.verify(&pass.text).expect("the pass verifies offline");
    assert_eq!(claims.entitlement.reservation, held.id);
    assert!(c.pass_svg(held.id).await.unwrap().contains("<svg"));
    assert!(c.pass_png(held.id).await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));

    // The live `reservation` events of this reservation, in order: held, payment, confirmed.
    let mut kinds = Vec::new();
    while !kinds.contains(&EventKind::Confirmed) {
        match next_live(&mut live).await {
            LiveEvent::Reservation(e) => {
                assert_eq!((e.reservation, e.user, e.lot), (held.id, account.id, lot), "{e:?}");
                kinds.push(e.kind);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds.first(), Some(&EventKind::Held), "{kinds:?}");
    assert!(kinds.contains(&EventKind::PaymentStarted), "{kinds:?}");

    // A gate opens for it.
    let gate = c.with_api_key(s.demo().gate_key.clone());
    let entry = gate.scan(&pass.text, lot, Direction::Entry, "north-1", Some("r1")).await;
    // Tomorrow's window is outside the grace: the gate says so, as an answer, not an error.
    assert_eq!(entry.unwrap(), Decision::Refuse(Refusal::TooEarly));

    // Cancelled a day ahead: refunded in full, and the pass is revoked at the gates.
    let cancelled = c.cancel(held.id).await.unwrap();
    assert_eq!(cancelled.reservation.state, ReservationState::Cancelled);
    assert_eq!(cancelled.refunded, quote.price);
    loop {
        if let LiveEvent::Reservation(e) = next_live(&mut live).await
            && e.kind == EventKind::Cancelled
        {
            assert_eq!(e.state, ReservationState::Cancelled);
            break;
        }
    }
    let revoked = gate.revocations_since(0).await.unwrap();
    assert!(revoked.revocations.iter().any(|r| r.reservation == held.id), "{revoked:?}");
    let again = gate.scan(&pass.text, lot, Direction::Entry, "north-1", Some("r2")).await.unwrap();
    assert_eq!(again, Decision::Refuse(Refusal::Revoked));

    let mine = c.reservations().await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].state, ReservationState::Cancelled);

    // Logging out ends the session.
    c.logout().await.unwrap();
    assert!(c.token().is_none());
    let me = c.with_token(session.token).me().await;
    assert!(matches!(me, Err(ClientError::Unauthorized { .. })), "{me:?}");

    drop(live);
    s.shutdown().await;
}
