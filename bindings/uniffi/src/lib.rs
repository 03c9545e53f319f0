#![doc = include_str!("../README.md")]

uniffi::setup_scaffolding!("parq_ffi");

pub mod client;
pub mod error;
pub mod gate;
pub mod live;
pub mod pass;
pub mod price;
mod runtime;
pub mod types;

pub use client::{ClientOptions, ParqClient};
pub use error::{ConflictReason, ParqError, PassFault};
pub use gate::{GateVerifier, scan_id_of};
pub use live::{LiveEvent, LiveHandle, LiveListener, LiveOptions};
pub use pass::{pass_qr_png, pass_qr_svg, public_keys_from_json, verify_pass, verify_pass_json};
pub use price::{quote, quote_json, quote_lot, rate_table_from_json};
pub use types::*;
