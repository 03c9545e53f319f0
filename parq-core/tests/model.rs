//! Property test: random operation sequences go through the engine and through a small
//! reference model; after every step the outcomes agree and DESIGN.md's invariants hold when
//! checked from the store's own data and the gateway's books.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use parq_core::engine::{HoldSpec, SpotChoice};
use parq_core::memory::MemoryStore;
use parq_core::testing::{Fixture, epoch};
use parq_core::{
    DynReservationStore, Error, ReservationId, ReservationState as S, SpotFilter, UserId, Window,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Hold { user: usize, spot: Option<usize>, start: i64, len: i64 },
    Checkout { idx: usize },
    Pay { idx: usize },
    Cancel { idx: usize },
    Advance { mins: i64 },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, proptest::option::weighted(0.7, 0..4usize), 4..24i64, 1..8i64)
            .prop_map(|(user, spot, start, len)| Op::Hold { user, spot, start, len }),
        2 => any::<usize>().prop_map(|idx| Op::Checkout { idx }),
        2 => any::<usize>().prop_map(|idx| Op::Pay { idx }),
        1 => any::<usize>().prop_map(|idx| Op::Cancel { idx }),
        2 => (1..15i64).prop_map(|mins| Op::Advance { mins }),
        1 => Just(Op::Sweep),
    ]
}

/// The model's view of one reservation.
#[derive(Debug, Clone)]
struct M {
    id: ReservationId,
    user: usize,
    spot: usize,
    start: i64,
    end: i64,
    state: S,
    deadline: i64,
    /// When the hold was made: a booking made after its start has its grace from then.
    created: i64,
    price: i64,
    intent: Option<String>,
    voided: bool,
    kept: i64,
}

const LIMIT: u32 = 2;

impl M {
    fn lapsed(&self, now: i64) -> bool {
        self.state.is_hold() && self.deadline <= now
    }
    fn live(&self, now: i64) -> bool {
        self.state.is_live() && !self.lapsed(now)
    }
    fn state_at(&self, now: i64) -> S {
        if self.lapsed(now) { S::Expired } else { self.state }
    }
}

fn free(model: &[M], spot: usize, start: i64, end: i64, now: i64, except: Option<ReservationId>) -> bool {
    !model
        .iter()
        .any(|m| Some(m.id) != except && m.spot == spot && m.live(now) && m.start < end && start < m.end)
}

fn minutes(t: Timestamp) -> i64 {
    t.duration_since(epoch()).as_mins()
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let f = Fixture::new(Arc::new(MemoryStore::new()) as Arc<DynReservationStore>).await;
    let mut lot = f.lot.clone();
    lot.max_holds_per_user = Some(LIMIT);
    f.engine.put_lot(&lot).await.unwrap();
    let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
    let mut model: Vec<M> = Vec::new();
    let slot = |n: i64| epoch() + SignedDuration::from_mins(15 * n);

    for op in ops {
        let now = minutes(f.clock.now_ts());
        match op {
            Op::Hold { user, spot, start, len } => {
                let window = Window::new(slot(start), slot(start + len)).unwrap();
                let (s, e) = (15 * start, 15 * (start + len));
                let choice = match spot {
                    Some(i) => SpotChoice::Spot { spot: f.spots[i].id },
                    None => SpotChoice::Any { filter: SpotFilter::default() },
                };
                let got =
                    f.engine.hold(&HoldSpec { user: users[user], lot: lot.id, choice, window }, None).await;
                let holds =
                    model.iter().filter(|m| m.user == user && m.state.is_hold() && m.deadline > now).count();
                let in_past = s < now - 15 || e <= now;
                let expected_spot = match spot {
                    Some(i) => free(&model, i, s, e, now, None).then_some(i),
                    None => (0..4).find(|&i| free(&model, i, s, e, now, None)),
                };
                match got {
                    Ok(r) => {
                        prop_assert!(!in_past && holds < LIMIT as usize, "hold should have failed");
                        let i = f.spots.iter().position(|x| x.id == r.spot).unwrap();
                        prop_assert_eq!(Some(i), expected_spot);
                        // Lapsed holds it overlapped are now stored as expired.
                        for m in model.iter_mut() {
                            if m.spot == i && m.lapsed(now) && m.start < e && s < m.end {
                                m.state = S::Expired;
                            }
                        }
                        model.push(M {
                            id: r.id,
                            user,
                            spot: i,
                            start: s,
                            end: e,
                            state: S::Held,
                            deadline: now + 10,
                            created: now,
                            price: r.price.minor,
                            intent: None,
                            voided: false,
                            kept: 0,
                        });
                    }
                    Err(Error::Invalid { .. }) => prop_assert!(in_past),
                    Err(Error::LimitExceeded { .. }) => prop_assert!(!in_past && holds >= LIMIT as usize),
                    Err(Error::Conflict { .. }) => {
                        prop_assert!(!in_past && holds < LIMIT as usize && expected_spot.is_none())
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected {e:?}"))),
                }
            }
            Op::Checkout { idx } if !model.is_empty() => {
                let n = model.len();
                let m = &mut model[idx % n];
                let got = f.engine.checkout(m.id, users[m.user]).await;
                match (m.state_at(now), got) {
                    (S::Held, Ok(c)) => {
                        m.state = S::PendingPayment;
                        m.intent = Some(c.intent.id);
                    }
                    (S::PendingPayment, Ok(c)) => prop_assert_eq!(Some(c.intent.id), m.intent.clone()),
                    (S::Expired, Err(Error::HoldExpired { .. })) => {}
                    (_, Err(Error::InvalidTransition { .. })) => {}
                    (st, got) => return Err(TestCaseError::fail(format!("checkout in {st}: {got:?}"))),
                }
            }
            Op::Pay { idx } if !model.is_empty() => {
                let i = idx % model.len();
                let Some(intent) = model[i].intent.clone() else { continue };
                if model[i].voided || !matches!(model[i].state, S::PendingPayment | S::Expired) {
                    continue;
                }
                let ev = f.gateway.pay(&intent, false);
                let Ok(ev) = ev else { continue };
                f.engine.apply_payment(ev).await.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                let m = model[i].clone();
                let reinstate = m.lapsed(now) || m.state == S::Expired;
                if !reinstate {
                    model[i].state = S::Confirmed;
                    model[i].kept = m.price;
                } else if free(&model, m.spot, m.start, m.end, now, Some(m.id)) {
                    for o in model.iter_mut() {
                        if o.id != m.id
                            && o.spot == m.spot
                            && o.lapsed(now)
                            && o.start < m.end
                            && m.start < o.end
                        {
                            o.state = S::Expired;
                        }
                    }
                    model[i].state = S::Confirmed;
                    model[i].kept = m.price;
                } else {
                    model[i].state = S::Expired;
                }
            }
            Op::Cancel { idx } if !model.is_empty() => {
                let n = model.len();
                let m = &mut model[idx % n];
                let got = f.engine.cancel(m.id, users[m.user]).await;
                match (m.state_at(now), got) {
                    (S::Held | S::PendingPayment, Ok(_)) => {
                        m.state = S::Cancelled;
                        m.voided = true;
                    }
                    (S::Confirmed, Ok(c)) => {
                        m.state = S::Cancelled;
                        m.kept = m.price - c.refunded.minor;
                        let expected = f.lot.cancellation.refund(
                            parq_core::Money::new(m.price, f.lot.rates.currency),
                            &Window::new(slot(m.start / 15), slot(m.end / 15)).unwrap(),
                            f.clock.now_ts(),
                        );
                        prop_assert_eq!(c.refunded, expected);
                    }
                    (S::Cancelled, Ok(_)) => {}
                    (S::Expired, Err(Error::HoldExpired { .. })) => {}
                    (_, Err(Error::InvalidTransition { .. })) => {}
                    (st, got) => return Err(TestCaseError::fail(format!("cancel in {st}: {got:?}"))),
                }
            }
            Op::Advance { mins } => f.advance_mins(mins),
            Op::Sweep => {
                f.engine.sweep(1000).await.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                for m in model.iter_mut() {
                    if m.lapsed(now) {
                        m.voided |= m.intent.is_some();
                        m.state = S::Expired;
                    } else if m.state == S::Confirmed && m.start.max(m.created) + 15 <= now {
                        m.state = S::NoShow;
                    }
                }
            }
            _ => {}
        }
        check(&f, &model).await?;
    }
    Ok(())
}

/// Invariants, from the store's data and the gateway's books.
async fn check(f: &Fixture, model: &[M]) -> Result<(), TestCaseError> {
    let now_ts = f.clock.now_ts();
    let now = minutes(now_ts);
    let everything =
        Window::new(epoch() - SignedDuration::from_hours(24), epoch() + SignedDuration::from_hours(96))
            .unwrap();
    // 1. No two live reservations on a spot overlap.
    let live = f.store.live_in_lot(f.lot.id, &everything, now_ts).await.unwrap();
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            prop_assert!(a.spot != b.spot || !a.window.overlaps(&b.window), "double booking: {a:?} {b:?}");
        }
    }
    // 2. Every reservation reads as the model says (lazy expiry included).
    for m in model {
        let r = f.engine.get(m.id).await.unwrap();
        prop_assert_eq!(r.state, m.state_at(now), "reservation {:?}", m);
    }
    prop_assert_eq!(live.len(), model.iter().filter(|m| m.live(now)).count());
    // 3. Money: what is kept is exactly what confirmed stays are worth; nothing orphaned.
    for m in model {
        if let Some(intent) = &m.intent {
            let (captured, refunded) = f.gateway.money(intent).unwrap();
            prop_assert_eq!(captured - refunded, m.kept, "money of {:?}", m);
        }
    }
    // 7. Nobody holds more than the limit.
    for user in 0..3 {
        let holds = model.iter().filter(|m| m.user == user && m.live(now) && m.state.is_hold()).count();
        prop_assert!(holds <= LIMIT as usize);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops))?;
    }
}
