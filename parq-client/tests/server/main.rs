//! parq-client against a real `parq` server, on memory and on PostgreSQL and Redis: a
//! driver's journey, typed errors, safe retries through a lossy proxy, and live updates that
//! resume without losing or repeating an event.
//!
//! One test binary, so the server is linked once.

mod common;
mod errors;
mod journey;
mod live;
mod proxy;
mod retry;
