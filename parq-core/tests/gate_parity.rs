//! The same scans give the same decisions offline (a gate with the public keys and a synced
//! revocation list) and online (the engine, against the store's reservations and sessions).

use std::sync::Arc;

use jiff::SignedDuration;
use parq_core::memory::MemoryStore;
use parq_core::pass::{
    Decision, Direction, GatePolicy, GateVerifier, KeyId, PassKeyring, ReentryPolicy, Refusal, Scan, ScanId,
};
use parq_core::testing::Fixture;
use parq_core::{DynReservationStore, LotId, Reservation, ReservationState, UserId};

async fn confirmed(f: &Fixture, user: UserId, spot: usize, h: i64) -> Reservation {
    let r = f.engine.hold(&f.named(user, spot, f.window(h, 2)), None).await.unwrap();
    let co = f.engine.checkout(r.id, user).await.unwrap();
    f.engine.apply_payment(f.gateway.pay(&co.intent.id, false).unwrap()).await.unwrap()
}

fn id(n: u8) -> ScanId {
    ScanId([n; 16])
}

#[tokio::test]
async fn offline_and_online_decide_every_scan_alike() {
    let f = Fixture::new(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>).await;
    let driver = UserId::new();
    let mine = confirmed(&f, driver, 0, 1).await;
    let cancelled = confirmed(&f, driver, 1, 1).await;
    let pass = f.engine.issue_pass(mine.id, driver).await.unwrap();
    let pass_cancelled = f.engine.issue_pass(cancelled.id, driver).await.unwrap();
    let forged = PassKeyring::generate(KeyId(1)).unwrap().issue_for(&mine).unwrap();
    let mut tampered = pass.text().to_owned().into_bytes();
    tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    f.engine.cancel(cancelled.id, driver).await.unwrap();
    let gate =
        GateVerifier::new(f.engine.pass_keys(), GatePolicy::for_lot(&f.lot, ReentryPolicy::NotAllowed));
    gate.apply_revocations(&f.engine.revocations_since(gate.revocation_version())).unwrap();

    // (minutes to move the clock first, pass text, gate lot, direction, reading id, expected)
    let lot = f.lot.id;
    let other_lot = LotId::new();
    let steps: Vec<(i64, &str, LotId, Direction, u8, Decision)> = vec![
        (0, pass.text(), lot, Direction::Entry, 1, Decision::Refuse(Refusal::TooEarly)),
        (50, forged.text(), lot, Direction::Entry, 2, Decision::Refuse(Refusal::Invalid)),
        (0, &tampered, lot, Direction::Entry, 3, Decision::Refuse(Refusal::Invalid)),
        (0, "NOT A PASS", lot, Direction::Entry, 4, Decision::Refuse(Refusal::Invalid)),
        (0, pass.text(), other_lot, Direction::Entry, 5, Decision::Refuse(Refusal::WrongLot)),
        (0, pass_cancelled.text(), lot, Direction::Entry, 6, Decision::Refuse(Refusal::Revoked)),
        (0, pass.text(), lot, Direction::Exit, 7, Decision::Refuse(Refusal::NotInside)),
        (0, pass.text(), lot, Direction::Entry, 8, Decision::Allow),
        (0, pass.text(), lot, Direction::Entry, 8, Decision::Refuse(Refusal::Replayed)),
        (1, pass.text(), lot, Direction::Entry, 9, Decision::Refuse(Refusal::AlreadyInside)),
        (60, pass.text(), lot, Direction::Exit, 10, Decision::Allow),
        (0, pass.text(), lot, Direction::Exit, 10, Decision::Refuse(Refusal::Replayed)),
        (0, pass.text(), lot, Direction::Exit, 11, Decision::Refuse(Refusal::NotInside)),
        (5, pass.text(), lot, Direction::Entry, 12, Decision::Refuse(Refusal::ReentryNotAllowed)),
        (120, pass.text(), lot, Direction::Entry, 13, Decision::Refuse(Refusal::Expired)),
    ];
    for (i, (mins, text, gate_lot, direction, n, expected)) in steps.into_iter().enumerate() {
        f.clock.advance(SignedDuration::from_mins(mins));
        let at = f.clock.now_ts();
        let scan = match direction {
            Direction::Entry => Scan::entry(gate_lot, at),
            Direction::Exit => Scan::exit(gate_lot, at),
        }
        .with_id(id(n));
        let offline = gate.scan(text, &scan);
        let online = f.engine.scan(text, gate_lot, direction, "north", Some(id(n))).await.unwrap();
        assert_eq!(offline, expected, "step {i}: offline");
        assert_eq!(online, expected, "step {i}: online");
    }
    assert_eq!(f.engine.get(mine.id).await.unwrap().state, ReservationState::Completed);
    let sessions = f.engine.sessions(mine.id).await.unwrap();
    assert_eq!(sessions.len(), 1, "one visit, however many readings");
}
