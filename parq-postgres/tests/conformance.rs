//! The conformance suite of parq-core, every case against PostgreSQL, each in its own schema.

mod common;

parq_core::store_conformance!(common::make_store());
