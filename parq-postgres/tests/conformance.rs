//! The store conformance suite of parq-core, every case against PostgreSQL, each in its own
//! schema.

mod common;

mod pg_store {
    parq_core::store_conformance!(super::common::make_store());
}
