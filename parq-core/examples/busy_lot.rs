//! A busy morning at a car park in Nicosia, simulated on the in-memory engine.
//!
//! Forty drivers compete for twelve spots: they hold, pay (some late, some never, some with a
//! declined card), cancel, arrive at the gate and leave, while the sweeper expires abandoned
//! holds. Every event is printed as it happens; at the end the invariants are checked from the
//! store's own data.
//!
//! `cargo run --release -p parq-core --example busy_lot [-- --fast]`

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use parq_core::engine::{HoldSpec, SpotChoice};
use parq_core::memory::{Failure, GatewayOp, MemoryStore, TestGateway};
use parq_core::{
    Currency, DynReservationStore, Engine, Error, GeoPoint, Lot, ManualClock, Money, Operator,
    ReservationState, Spot, SpotFilter, SpotId, UserId, Window,
};

/// Where the simulated morning starts: a Monday, 08:00 UTC (10:00 in Nicosia).
fn epoch() -> Timestamp {
    "2030-01-07T08:00:00Z".parse().expect("valid instant")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let fast = std::env::args().any(|a| a == "--fast");
    let pause = if fast { Duration::ZERO } else { Duration::from_millis(40) };

    // The engine on memory, on a clock the simulation moves, with simulated payments.
    let store: Arc<DynReservationStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(epoch()));
    let gateway = Arc::new(TestGateway::new(b"whsec_busy_lot".to_vec()));
    let engine = Engine::builder(store.clone(), gateway.clone()).clock(clock.clone()).build();

    // The car park: twelve spots, four of them with chargers; 2.00 EUR per started hour,
    // at most 15.00 a day; one hold per driver at a time.
    let operator = Operator::new("Nicosia Municipal Parking");
    engine.put_operator(&operator).await?;
    let lot = Lot::builder(operator.id, "Eleftheria Square Car Park", GeoPoint::new(35.1725, 33.3617)?)
        .time_zone("Asia/Nicosia")
        .hourly_rate(Money::new(200, Currency::EUR))
        .daily_cap(Money::new(1500, Currency::EUR))
        .max_holds_per_user(1)
        .build()?;
    engine.put_lot(&lot).await?;
    for i in 1..=12 {
        let row = if i <= 4 { 'A' } else { 'B' };
        let ev = i <= 2 || (i > 4 && i % 4 == 0);
        engine.put_spot(&Spot::new(lot.id, format!("{row}-{i}")).ev(ev).accessible(i == 4)).await?;
    }
    let spots = engine.spots(lot.id).await?;
    let label = |id: SpotId| spots.iter().find(|s| s.id == id).map_or("?".to_owned(), |s| s.label.clone());
    println!("{} — {} spots, 2.00 EUR per started hour, holds last 10 minutes\n", lot.name, spots.len());

    // Print every event of the lot as it happens.
    let mut events = engine.watch(lot.id, 0).await?;
    let spots_for_printer = spots.clone();
    let printer = tokio::spawn(async move {
        while let Some(Ok(e)) = events.next().await {
            let spot = spots_for_printer.iter().find(|s| s.id == e.spot).map_or("?", |s| s.label.as_str());
            println!("  #{:<3} {:<14} {:<5} {}", e.seq, format!("{:?}", e.kind), spot, e.window);
        }
    });

    let drivers: Vec<UserId> = (0..40).map(|_| UserId::new()).collect();
    let mut confirmed = Vec::new();
    for (n, driver) in drivers.iter().enumerate() {
        clock.advance(SignedDuration::from_mins(2));
        let start = epoch() + SignedDuration::from_mins(120 + 15 * (n as i64 % 8));
        let window = Window::new(start, start + SignedDuration::from_hours(1 + n as i64 % 3))?;
        let choice = if n % 5 == 0 {
            SpotChoice::Any { filter: SpotFilter { ev: true, ..Default::default() } }
        } else {
            SpotChoice::Any { filter: SpotFilter::default() }
        };
        let now = engine.now();
        let spec = HoldSpec { user: *driver, lot: lot.id, choice, window };
        let r = match engine.hold(&spec, Some(&format!("driver-{n}"))).await {
            Ok(r) => r,
            Err(e) => {
                println!("{now} driver {n:>2}: no spot ({e})");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        println!("{now} driver {n:>2}: holds {} for {} at {}", label(r.spot), r.window, r.price);
        match n % 7 {
            // Walks away: the sweeper will expire the hold.
            0 => println!("{now} driver {n:>2}: walks away"),
            // A declined card, then a second attempt that works.
            1 => {
                let co = engine.checkout(r.id, *driver).await?;
                gateway.fail_next(GatewayOp::Pay, Failure::Decline("card_declined".into()));
                engine.apply_payment(gateway.pay(&co.intent.id, false)?).await?;
                println!("{now} driver {n:>2}: card declined, tries another card");
                let co = engine.checkout(r.id, *driver).await?;
                let r = engine.apply_payment(gateway.pay(&co.intent.id, false)?).await?;
                confirmed.push(r);
            }
            // Pays, and the provider delivers the webhook twice.
            _ => {
                let co = engine.checkout(r.id, *driver).await?;
                let ev = gateway.pay(&co.intent.id, false)?;
                let r = engine.apply_payment(ev.clone()).await?;
                engine.apply_payment(ev).await?;
                println!("{now} driver {n:>2}: paid {} ({})", r.price, r.state);
                confirmed.push(r);
            }
        }
        if n % 6 == 5 {
            if let Some(r) = confirmed.pop() {
                let who = drivers.iter().position(|d| *d == r.user).unwrap_or(0);
                let c = engine.cancel(r.id, r.user).await?;
                println!("{now} driver {who:>2}: cancels {}, refunded {}", label(r.spot), c.refunded);
            }
        }
        let swept = engine.sweep(100).await?;
        if swept.expired > 0 {
            println!("{now} sweeper: {} abandoned hold(s) expired", swept.expired);
        }
        tokio::time::sleep(pause).await;
    }

    // The morning: drivers arrive and leave.
    for r in &confirmed {
        clock.set(r.window.start());
        let scan = format!("scan-in-{}", r.id);
        if engine.check_in(r.id, "north-gate", &scan).await.is_ok() {
            clock.set(r.window.end() - SignedDuration::from_mins(5));
            engine.check_out(r.id, "south-gate", &format!("scan-out-{}", r.id)).await?;
            println!("{} {} parked and left", r.window.start(), label(r.spot));
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    printer.abort();

    // Invariants, from the store's own data.
    let mut all = Vec::new();
    for d in &drivers {
        all.extend(store.by_user(*d, 100).await?);
    }
    let live: Vec<_> =
        all.iter().filter(|r| r.state.is_live() || r.state == ReservationState::Completed).collect();
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            assert!(a.spot != b.spot || !a.window.overlaps(&b.window), "double booking: {a:?} {b:?}");
        }
    }
    let count = |s: ReservationState| all.iter().filter(|r| r.state == s).count();
    println!(
        "\n{} reservations: {} completed, {} cancelled, {} expired; no spot was ever booked twice.",
        all.len(),
        count(ReservationState::Completed),
        count(ReservationState::Cancelled),
        count(ReservationState::Expired)
    );
    Ok(())
}
