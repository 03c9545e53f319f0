#![doc = include_str!("../README.md")]
#![recursion_limit = "512"]
// Handlers return `Result<_, Problem>`; a problem is built once per failed request, so its
// size does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

// The modules in layers, from the bottom up: each imports only modules of the layers below it
// (`tests/layers.rs` holds them to that).
//
// Configuration, domain ports and the HTTP basics.
pub mod accounts;
pub mod clientaddr;
pub mod config;
pub mod http;
pub mod passkeys;
pub mod problem;
pub mod sqlite;
// Parts with no request in sight.
pub mod demo;
pub mod gateway;
pub mod metrics;
pub mod operators;
pub mod principal;
pub mod ratelimit;
// Credentials resolved a moment ago.
pub mod auth_cache;
pub mod web;
// The adapters the configuration names, and the state every handler shares.
pub mod backends;
pub mod state;
// What runs around and inside handlers.
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod middleware;
// The routes, their document, the app that serves them, the command line.
pub mod app;
pub mod cli;
pub mod openapi;
pub mod routes;

pub use app::{App, Running, StartError, serve, start};
pub use config::{Config, ConfigError};
pub use problem::Problem;
