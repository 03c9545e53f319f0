//! The store conformance suite of parq-core, every case against SQLite, each on its own file.

mod common;

mod sqlite_store {
    parq_core::store_conformance!(super::common::make_store());
}
