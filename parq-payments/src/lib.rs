#![doc = include_str!("../README.md")]

pub mod config;
mod error;
mod gateway;
pub mod reconcile;
pub mod webhook;

pub use config::StripeConfig;
pub use error::StripeGatewayError;
pub use gateway::StripeGateway;
pub use reconcile::{ReconcileReport, reconcile};
/// The Stripe client crate (`async-stripe`), for building a client to pass to
/// [`StripeGateway::with_client`] and for calls this gateway does not make.
pub use stripe;
/// async-stripe's core resources (PaymentIntents, refunds, …) and their requests.
pub use stripe_core;
