//! The notifier conformance cases of parq-core, on PostgreSQL `LISTEN`/`NOTIFY`.

mod common;

mod pg_notifier {
    parq_core::notifier_conformance!(super::common::make_notifier());
}
