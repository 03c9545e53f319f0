#![doc = include_str!("../README.md")]
#![recursion_limit = "512"]
// Handlers return `Result<_, Problem>`; a problem is built once per failed request, so its
// size does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod accounts;
pub mod app;
pub mod backends;
pub mod cli;
pub mod config;
pub mod demo;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pg;
pub mod problem;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod web;

pub use app::{App, Running, StartError, serve, start};
pub use config::{Config, ConfigError};
pub use problem::Problem;
