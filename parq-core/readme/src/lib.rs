#![doc = include_str!("../../README.md")]
//!
//! ---
//!
//! This crate only runs the example above as a doctest, against parq-core with its default
//! features, as an application that depends on parq-core alone builds it
//! (`cargo test -p parq-core-readme --doc`). The test helpers are indeed absent there:
//!
//! ```compile_fail
//! use parq_core::testing::Fixture;
//! ```
