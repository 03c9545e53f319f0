#![doc = include_str!("../README.md")]

mod error;
mod migrate;
mod notifier;
mod rows;
mod sql;
mod store;

pub use deadpool_postgres;
pub use deadpool_postgres::tokio_postgres;
pub use notifier::PgNotifier;
pub use store::PgStore;
