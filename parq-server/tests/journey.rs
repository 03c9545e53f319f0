//! The driver's whole journey over real HTTP, on memory: register, TOTP, login, search, hold,
//! pay, pass, gates, and a cancellation with a refund (the journeys are in
//! `common/journeys.rs`; `production.rs` runs them on PostgreSQL and Redis).

mod common;

use common::journeys;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_journey_from_registration_to_the_gate_and_a_refund() {
    journeys::driver_journey_from_registration_to_the_gate_and_a_refund(common::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_leaves_the_hold_and_an_extension_reprices_it() {
    journeys::a_declined_payment_leaves_the_hold_and_an_extension_reprices_it(common::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_gate_uploads_are_recorded_once_and_report_conflicts() {
    journeys::offline_gate_uploads_are_recorded_once_and_report_conflicts(common::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lots_reentry_policy_decides_a_second_entry() {
    journeys::the_lots_reentry_policy_decides_a_second_entry(common::start().await).await;
}
