//! A busy morning at a car park in Nicosia, simulated on the in-memory engine.
//!
//! Forty drivers compete for twelve spots: they hold, pay (some late, some never, some with a
//! declined card), cancel, arrive at the gate and leave, while the sweeper expires abandoned
//! holds. Every event is printed as it happens; at the end the invariants are checked from the
//! store's own data.
//!
//! `cargo run --release -p parq-core --features testing --example busy_lot [-- --fast]`

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jiff::SignedDuration;
use parq_core::engine::{HoldSpec, SpotChoice};
use parq_core::memory::{Failure, GatewayOp, MemoryStore};
use parq_core::testing::{Fixture, epoch};
use parq_core::{
    DynReservationStore, Error, ReservationState, Spot, SpotAttributes, SpotFilter, SpotId, UserId, Window,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let fast = std::env::args().any(|a| a == "--fast");
    let pause = if fast { Duration::ZERO } else { Duration::from_millis(40) };
    let f = Fixture::new(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>).await;
    let mut lot = f.lot.clone();
    lot.name = "Eleftheria Square Car Park".into();
    lot.max_holds_per_user = Some(1);
    f.engine.put_lot(&lot).await?;
    for i in 5..=12 {
        let s = Spot {
            id: SpotId::new(),
            lot: lot.id,
            label: format!("B-{i}"),
            attributes: SpotAttributes { ev: i % 4 == 0, ..Default::default() },
        };
        f.engine.put_spot(&s).await?;
    }
    let spots = f.engine.spots(lot.id).await?;
    let label = |id: SpotId| spots.iter().find(|s| s.id == id).map_or("?".to_owned(), |s| s.label.clone());
    println!("{} — {} spots, 2.00 EUR per started hour, holds last 10 minutes\n", lot.name, spots.len());

    // Print every event of the lot as it happens.
    let mut events = f.engine.watch(lot.id, 0).await?;
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
        f.advance_mins(2);
        let start = epoch() + SignedDuration::from_mins(120 + 15 * (n as i64 % 8));
        let window = Window::new(start, start + SignedDuration::from_hours(1 + n as i64 % 3))?;
        let choice = if n % 5 == 0 {
            SpotChoice::Any { filter: SpotFilter { ev: true, ..Default::default() } }
        } else {
            SpotChoice::Any { filter: SpotFilter::default() }
        };
        let now = f.clock.now_ts();
        let spec = HoldSpec { user: *driver, lot: lot.id, choice, window };
        let r = match f.engine.hold(&spec, Some(&format!("driver-{n}"))).await {
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
                let co = f.engine.checkout(r.id, *driver).await?;
                f.gateway.fail_next(GatewayOp::Pay, Failure::Decline("card_declined".into()));
                f.engine.apply_payment(f.gateway.pay(&co.intent.id, false)?).await?;
                println!("{now} driver {n:>2}: card declined, tries another card");
                let co = f.engine.checkout(r.id, *driver).await?;
                let r = f.engine.apply_payment(f.gateway.pay(&co.intent.id, false)?).await?;
                confirmed.push(r);
            }
            // Pays, and the provider delivers the webhook twice.
            _ => {
                let co = f.engine.checkout(r.id, *driver).await?;
                let ev = f.gateway.pay(&co.intent.id, false)?;
                let r = f.engine.apply_payment(ev.clone()).await?;
                f.engine.apply_payment(ev).await?;
                println!("{now} driver {n:>2}: paid {} ({})", r.price, r.state);
                confirmed.push(r);
            }
        }
        if n % 6 == 5 {
            if let Some(r) = confirmed.pop() {
                let who = drivers.iter().position(|d| *d == r.user).unwrap_or(0);
                let c = f.engine.cancel(r.id, r.user).await?;
                println!("{now} driver {who:>2}: cancels {}, refunded {}", label(r.spot), c.refunded);
            }
        }
        let swept = f.engine.sweep(100).await?;
        if swept.expired > 0 {
            println!("{now} sweeper: {} abandoned hold(s) expired", swept.expired);
        }
        tokio::time::sleep(pause).await;
    }

    // The morning: drivers arrive and leave.
    for r in &confirmed {
        f.clock.set(r.window.start());
        let scan = format!("scan-in-{}", r.id);
        if f.engine.check_in(r.id, "north-gate", &scan).await.is_ok() {
            f.clock.set(r.window.end() - SignedDuration::from_mins(5));
            f.engine.check_out(r.id, "south-gate", &format!("scan-out-{}", r.id)).await?;
            println!("{} {} parked and left", r.window.start(), label(r.spot));
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    printer.abort();

    // Invariants, from the store's own data.
    let mut all = Vec::new();
    for d in &drivers {
        all.extend(f.store.by_user(*d, 100).await?);
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
