//! The gate-parity scenario made concrete for other languages.
//!
//! parq-core/tests/gate_parity.rs replays abstract steps (`fixtures/gate_parity.json`: "mine",
//! "forged", "own lot", "advance 50 minutes", …) against the engine and an offline gate. Kotlin
//! and Swift cannot build that scenario, so this test builds it deterministically — fixed key
//! seeds, ids, nonces and clock — and writes what a foreign test needs into
//! `tests/fixtures/gate_vectors.json`: the public keys, the pass texts, the revocation delta,
//! and for every step the lot, direction, time, reading id and expected decision.
//!
//! The checked-in file must be exactly what this test generates (run it with `PARQ_BLESS=1` to
//! rewrite it after an intended change), and every step must be decided as expected by the
//! engine online (`Engine::scan`), by parq-core's `GateVerifier` offline, and by this crate's
//! `GateVerifier` built from the file's own JSON.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parq_core::memory::{MemoryStore, TestGateway};
use parq_core::pass::{
    Decision, Direction, Entitlement, GatePolicy, GateVerifier, KeyId, KeySeed, PassKeyring, PassNonce,
    ReentryPolicy, Refusal, Scan,
};
use parq_core::{
    CancellationPolicy, Currency, DynReservationStore, Engine, GeoPoint, HoldLimits, HoldRequest, HoldTarget,
    Lot, LotId, ManualClock, OpeningHours, Operator, OperatorId, RateLine, RateTable, Reservation,
    ReservationId, ReservationState, Spot, SpotAttributes, SpotId, SpotSize, UserId, Window,
};
use serde_json::{Value, json};
use uuid::Uuid;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gate_vectors.json");
const PARITY: &str = include_str!("../../../parq-core/tests/fixtures/gate_parity.json");

/// The clock's start, as parq-core's test fixtures have it: a Monday, 08:00 UTC.
fn epoch() -> Timestamp {
    "2030-01-07T08:00:00Z".parse().unwrap()
}

/// parq-core's sample lot (`parq_core::testing::sample_lot`), with fixed ids: two spots, 15
/// minutes of grace. (Not taken from parq-core's `testing` feature, so that this test builds
/// against the same parq-core as the library and `cargo build` after `cargo test` has nothing
/// to redo.)
fn sample_lot(operator: OperatorId) -> (Lot, Vec<Spot>) {
    let lot = Lot {
        id: LotId(id(0x10)),
        operator,
        name: "Central".into(),
        location: GeoPoint { lat: 35.1725, lon: 33.3617 },
        time_zone: "Asia/Nicosia".into(),
        granularity: SignedDuration::from_mins(15),
        hold_ttl: SignedDuration::from_mins(10),
        max_stay: SignedDuration::from_hours(72),
        grace: SignedDuration::from_mins(15),
        max_holds_per_user: None,
        rates: RateTable {
            currency: Currency::EUR,
            lines: vec![RateLine::Incrementing {
                after_minutes: 0,
                every_minutes: 60,
                amount: 200,
                until_minutes: None,
            }],
            daily_cap: Some(1500),
        },
        cancellation: CancellationPolicy {
            full_refund_before: SignedDuration::from_hours(2),
            late_refund_percent: 50,
        },
        opening_hours: OpeningHours::Always,
        blackouts: vec![],
        reentry: ReentryPolicy::NotAllowed,
    };
    let spots = (0..2)
        .map(|i| Spot {
            id: SpotId(id(0x20 + i)),
            lot: lot.id,
            label: format!("A-{}", i + 1),
            attributes: SpotAttributes { ev: true, accessible: false, size: SpotSize::Standard },
        })
        .collect();
    (lot, spots)
}

/// Fixed ids: recognisable, and the same on every run.
fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn seed(byte: u8) -> KeySeed {
    KeySeed::from_bytes([byte; 32])
}

/// Steps the abstract fixture does not have, decided alike online and offline: a pass signed
/// with a key id the gate does not know. (`not_paid` is online only: an offline gate does not
/// know whether a pass's reservation was paid, so it is no parity vector.)
const EXTRA_STEPS: &[(&str, &str, &str, i64, u64, &str)] =
    &[("unknown_key", "own", "entry", 0, 14, "unknown_key")];

struct Scenario {
    engine: Engine,
    clock: Arc<ManualClock>,
    lot: LotId,
    other_lot: LotId,
    grace: SignedDuration,
    passes: Vec<(&'static str, String)>,
    mine: Reservation,
}

impl Scenario {
    fn pass(&self, name: &str) -> &str {
        &self.passes.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no pass {name}")).1
    }
}

async fn confirmed(engine: &Engine, gateway: &TestGateway, r: Reservation) -> Reservation {
    let now = engine.now();
    // Straight into the store, so that the reservation keeps its fixed id.
    let target = HoldTarget::Spot(r.spot);
    let req = HoldRequest {
        reservation: r,
        target,
        limits: HoldLimits::default(),
        lock_fence: None,
        idempotency: None,
    };
    let held = engine.store().hold(req, now).await.expect("the hold is written").reservation;
    let co = engine.checkout(held.id, held.user).await.expect("checkout");
    engine.apply_payment(gateway.pay(&co.intent.id, false).expect("pay")).await.expect("paid")
}

async fn scenario() -> Scenario {
    let clock = Arc::new(ManualClock::new(epoch()));
    let gateway = Arc::new(TestGateway::new(b"whsec_gate_vectors".to_vec()));
    let issuer = PassKeyring::new(KeyId(1), seed(0x11));
    let store = Arc::new(MemoryStore::new()) as Arc<DynReservationStore>;
    let engine = Engine::builder(store, gateway.clone()).clock(clock.clone()).passes(issuer.clone()).build();
    let operator =
        Operator { id: OperatorId(id(1)), name: "Gate Vectors Parking".into(), max_holds_per_user: None };
    engine.put_operator(&operator).await.unwrap();
    let (lot, spots) = sample_lot(operator.id);
    engine.put_lot(&lot).await.unwrap();
    for s in &spots {
        engine.put_spot(s).await.unwrap();
    }

    // The parity fixture's reservations: 2 hours from 1 hour after the clock's start.
    let parity: Value = serde_json::from_str(PARITY).unwrap();
    assert_eq!(parity["grace_min"], lot.grace.as_mins(), "the sample lot has the parity fixture's grace");
    let w = &parity["window"];
    let start = epoch() + SignedDuration::from_mins(w["start_after_min"].as_i64().unwrap());
    let window =
        Window::starting_at(start, SignedDuration::from_mins(w["length_min"].as_i64().unwrap())).unwrap();
    let driver = UserId(id(0x30));
    let reservation = |n: u128, spot: usize| Reservation {
        id: ReservationId(id(n)),
        operator: operator.id,
        lot: lot.id,
        spot: spots[spot].id,
        user: driver,
        window,
        state: ReservationState::Held,
        fence: 0,
        price: lot.rates.quote(&window).unwrap(),
        hold_expires_at: epoch() + lot.hold_ttl,
        created_at: epoch(),
        payment: None,
    };
    let mine = confirmed(&engine, &gateway, reservation(0x40, 0)).await;
    let cancelled = confirmed(&engine, &gateway, reservation(0x41, 1)).await;

    let nonce = |b: u8| PassNonce([b; 16]);
    let pass_mine = issuer.issue_with_nonce(Entitlement::from(&mine), nonce(0xA1)).unwrap().into_text();
    let pass_cancelled =
        issuer.issue_with_nonce(Entitlement::from(&cancelled), nonce(0xA2)).unwrap().into_text();
    // Same key id, another key: a forgery.
    let forged = PassKeyring::new(KeyId(1), seed(0x22))
        .issue_with_nonce(Entitlement::from(&mine), nonce(0xA3))
        .unwrap()
        .into_text();
    // A key id the gate was never given.
    let unknown_key = PassKeyring::new(KeyId(7), seed(0x33))
        .issue_with_nonce(Entitlement::from(&mine), nonce(0xA4))
        .unwrap()
        .into_text();
    // One character of a genuine pass changed, as parq-core's parity test does.
    let mut tampered = pass_mine.clone().into_bytes();
    tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    engine.cancel(cancelled.id, driver).await.unwrap();
    Scenario {
        engine,
        clock,
        lot: lot.id,
        other_lot: LotId(id(0x11)),
        grace: lot.grace,
        passes: vec![
            ("mine", pass_mine),
            ("forged", forged),
            ("tampered", tampered),
            ("garbage", "NOT A PASS".to_owned()),
            ("cancelled", pass_cancelled),
            ("unknown_key", unknown_key),
        ],
        mine,
    }
}

struct Step {
    pass: String,
    lot: LotId,
    direction: Direction,
    at: Timestamp,
    scan_id: String,
    expect: Decision,
}

fn decision(code: &str) -> Decision {
    match code {
        "allow" => Decision::Allow,
        r => Decision::Refuse(serde_json::from_value::<Refusal>(json!(r)).unwrap_or_else(|_| panic!("{r}"))),
    }
}

fn code(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Refuse(r) => r.as_str(),
    }
}

/// The parity fixture's steps, then the extra ones, with concrete times and reading ids.
fn steps(s: &Scenario) -> Vec<Step> {
    let parity: Value = serde_json::from_str(PARITY).unwrap();
    let mut abstract_steps: Vec<(String, String, String, i64, u64, String)> = parity["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            let text = |k: &str| st[k].as_str().unwrap_or_else(|| panic!("step.{k}")).to_owned();
            (
                text("pass"),
                text("lot"),
                text("direction"),
                st["advance_min"].as_i64().unwrap(),
                st["reading"].as_u64().unwrap(),
                text("expect"),
            )
        })
        .collect();
    abstract_steps.extend(EXTRA_STEPS.iter().map(|(p, l, d, m, r, e)| {
        ((*p).to_owned(), (*l).to_owned(), (*d).to_owned(), *m, *r, (*e).to_owned())
    }));
    let mut at = epoch();
    abstract_steps
        .into_iter()
        .map(|(pass, lot, direction, advance, reading, expect)| {
            at += SignedDuration::from_mins(advance);
            Step {
                pass,
                lot: if lot == "own" { s.lot } else { s.other_lot },
                direction: serde_json::from_value(json!(direction)).unwrap(),
                at,
                scan_id: format!("reading-{reading}"),
                expect: decision(&expect),
            }
        })
        .collect()
}

async fn vectors(s: &Scenario, steps: &[Step]) -> Value {
    let passes: serde_json::Map<String, Value> =
        s.passes.iter().map(|(n, t)| ((*n).to_owned(), Value::String(t.clone()))).collect();
    let e = Entitlement::from(&s.mine);
    json!({
        "about": "Generated by bindings/uniffi/tests/gate_vectors.rs from parq-core/tests/fixtures/gate_parity.json \
                  (PARQ_BLESS=1 rewrites it). An offline gate trusting public_keys, for a lot with grace_seconds of \
                  grace and the re-entry rule reentry, that applied revocations, must decide every step as expect \
                  says: 'allow', or the refusal's code. Steps run in order on one gate; at is seconds since the \
                  Unix epoch; scan_id is the reader's reading id (text). The engine online decides them alike.",
        "grace_seconds": s.grace.as_secs(),
        "reentry": "not_allowed",
        "lot_id": s.lot.to_string(),
        "other_lot_id": s.other_lot.to_string(),
        "public_keys": { "keys": s.engine.pass_keys() },
        "revocations": s.engine.revocations_since(0, 1000).await.unwrap(),
        "passes": passes,
        "mine": {
            "key_id": 1,
            "reservation_id": e.reservation.to_string(),
            "lot_id": e.lot.to_string(),
            "spot_id": e.spot.to_string(),
            "start_epoch_seconds": e.window.start().as_second(),
            "end_epoch_seconds": e.window.end().as_second(),
        },
        "steps": steps.iter().map(|st| json!({
            "pass": st.pass,
            "lot": if st.lot == s.lot { "own" } else { "other" },
            "lot_id": st.lot.to_string(),
            "direction": st.direction,
            "at_epoch_seconds": st.at.as_second(),
            "at": st.at.to_string(),
            "scan_id": st.scan_id,
            "expect": code(st.expect),
        })).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn the_gate_vectors_are_what_the_engine_and_both_gates_decide() {
    let s = scenario().await;
    let steps = steps(&s);
    let generated = serde_json::to_string_pretty(&vectors(&s, &steps).await).unwrap() + "\n";

    // The checked-in file is exactly this run's.
    if std::env::var_os("PARQ_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(FIXTURE, &generated).expect("write the fixture");
    } else {
        let checked_in = std::fs::read_to_string(FIXTURE)
            .unwrap_or_else(|e| panic!("{FIXTURE}: {e}; run with PARQ_BLESS=1 to write it"));
        assert!(
            checked_in == generated,
            "{FIXTURE} differs from what this test generates; if the change is intended, run \
             `PARQ_BLESS=1 cargo test -p parq-ffi --test gate_vectors` and commit the file"
        );
    }
    let file: Value = serde_json::from_str(&generated).unwrap();

    // Offline: parq-core's gate, and this crate's, built from the file's JSON alone.
    let core_gate = GateVerifier::new(
        s.engine.pass_keys(),
        GatePolicy { grace: s.grace, reentry: ReentryPolicy::NotAllowed },
    );
    assert_eq!(core_gate.apply_revocations(&s.engine.revocations_since(0, 1000).await.unwrap()).unwrap(), 1);
    let ffi_gate = parq_ffi::GateVerifier::from_keys_json(
        file["public_keys"].to_string(),
        file["grace_seconds"].as_i64().unwrap(),
        parq_ffi::ReentryPolicy::NotAllowed,
    )
    .unwrap();
    assert_eq!(ffi_gate.apply_revocations_json(file["revocations"].to_string()).unwrap(), 1);
    assert_eq!(ffi_gate.revocation_version(), 1);

    let mut refusals = std::collections::HashSet::new();
    for (i, st) in steps.iter().enumerate() {
        s.clock.set(st.at);
        let text = s.pass(&st.pass);
        let sid = parq_ffi::scan_id_of(&st.scan_id);
        let scan = match st.direction {
            Direction::Entry => Scan::entry(st.lot, st.at),
            Direction::Exit => Scan::exit(st.lot, st.at),
        }
        .with_id(sid);
        let online = s.engine.scan(text, st.lot, st.direction, "north", Some(sid)).await.unwrap();
        let offline = core_gate.scan(text, &scan);
        let direction = match st.direction {
            Direction::Entry => parq_ffi::Direction::Entry,
            Direction::Exit => parq_ffi::Direction::Exit,
        };
        let ffi = ffi_gate
            .scan(text.to_owned(), st.lot.to_string(), direction, st.at.as_second(), Some(st.scan_id.clone()))
            .unwrap();
        assert_eq!(online, st.expect, "step {i} ({}): online", st.pass);
        assert_eq!(offline, st.expect, "step {i} ({}): offline, parq-core", st.pass);
        assert_eq!(ffi, parq_ffi::ScanDecision::from(st.expect), "step {i} ({}): offline, parq-ffi", st.pass);
        refusals.extend(st.expect.refusal());
    }
    // Every refusal an offline gate can give (all but `not_paid`, which needs the server).
    let offline_refusals =
        parq_ffi::Refusal::ALL.iter().map(|r| r.to_core()).filter(|r| *r != Refusal::NotPaid);
    for r in offline_refusals {
        assert!(refusals.contains(&r), "the vectors cover {r}");
    }
    assert_eq!(s.engine.get(s.mine.id).await.unwrap().state, ReservationState::Completed);
    assert_eq!(s.engine.sessions(s.mine.id).await.unwrap().len(), 1, "one visit, however many readings");

    // The saved gate resumes where it was: the vehicle left, and may not come back.
    let restored = parq_ffi::GateVerifier::restore(ffi_gate.save_state()).unwrap();
    assert_eq!(restored.revocation_version(), 1);
    assert_eq!(restored.presence(s.mine.id.to_string()).unwrap(), parq_ffi::Presence::Left);
}
