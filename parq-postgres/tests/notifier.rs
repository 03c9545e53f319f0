//! The notifier conformance cases of parq-core, on PostgreSQL `LISTEN`/`NOTIFY`.

mod common;

parq_core::notifier_conformance!(common::make_notifier());
