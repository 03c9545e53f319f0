//! The ports: object-safe traits that adapters implement.

pub mod lock;
pub mod notifier;
pub mod payment;
pub mod store;
