//! The same scans give the same decisions offline (a gate with the public keys and a synced
//! revocation list) and online (the engine, against the store's reservations and sessions).

use std::sync::Arc;

use jiff::SignedDuration;
use parq_core::memory::MemoryStore;
use parq_core::pass::{
    Decision, Direction, GatePolicy, GateVerifier, KeyId, PassKeyring, Refusal, Scan, ScanId,
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
    let gate = GateVerifier::new(f.engine.pass_keys(), GatePolicy::for_lot(&f.lot));
    gate.apply_revocations(&f.engine.revocations_since(gate.revocation_version(), 1000).await.unwrap())
        .unwrap();

    // The steps every binding replays (bindings/python, bindings/uniffi read the same file).
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/gate_parity.json")).expect("the fixture is JSON");
    assert_eq!(fixture["grace_min"], 15, "the fixture's lot has the sample lot's grace");
    let lot = f.lot.id;
    let other_lot = LotId::new();
    let steps: Vec<(i64, &str, LotId, Direction, u8, Decision)> = fixture["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let text = match s["pass"].as_str().unwrap() {
                "mine" => pass.text(),
                "forged" => forged.text(),
                "tampered" => tampered.as_str(),
                "garbage" => "NOT A PASS",
                "cancelled" => pass_cancelled.text(),
                other => panic!("unknown pass {other}"),
            };
            let gate_lot = if s["lot"] == "own" { lot } else { other_lot };
            let direction: Direction = serde_json::from_value(s["direction"].clone()).unwrap();
            let expected = match s["expect"].as_str().unwrap() {
                "allow" => Decision::Allow,
                r => Decision::Refuse(serde_json::from_value::<Refusal>(serde_json::json!(r)).unwrap()),
            };
            (
                s["advance_min"].as_i64().unwrap(),
                text,
                gate_lot,
                direction,
                s["reading"].as_u64().unwrap() as u8,
                expected,
            )
        })
        .collect();
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
