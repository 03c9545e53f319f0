#![doc = include_str!("../README.md")]

mod error;
pub mod migrate;
mod notifier;
mod revocations;
mod rows;
mod sql;
mod store;
pub mod tls;

pub use deadpool_postgres;
pub use deadpool_postgres::tokio_postgres;
pub use error::{ErrorClass, PgError, classify, db_error};
pub use notifier::PgNotifier;
pub use sql::ident;
pub use store::PgStore;
pub use tls::{PgTls, SslMode};
