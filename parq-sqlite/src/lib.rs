#![doc = include_str!("../README.md")]

mod error;
mod migrate;
mod revocations;
mod rows;
mod store;
mod write;

pub use error::OpenError;
pub use migrate::SCHEMA_VERSION;
pub use rusqlite;
pub use store::{SqliteOptions, SqliteStore, WriterStats};
