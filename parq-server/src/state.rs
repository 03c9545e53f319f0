//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use parq_core::Engine;

use crate::accounts::Accounts;
use crate::backends::{Backends, Simulated};
use crate::clientaddr::TrustedProxies;
use crate::config::Config;
use crate::demo::DemoInfo;
use crate::metrics::Metrics;
pub use crate::principal::Principal;
use crate::ratelimit::Limits;
use crate::web::WebConfig;

/// Shared state: the engine, the accounts, the limits and the counters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
#[allow(missing_docs)]
pub struct Inner {
    pub engine: Engine,
    pub accounts: Accounts,
    /// Resolved credentials, kept for a moment when the accounts are in the SQLite file.
    pub auth_cache: crate::auth_cache::AuthCache,
    pub test_gateway: Option<Simulated>,
    pub backends: Backends,
    pub config: Config,
    pub metrics: Metrics,
    /// The rate limits per client address, user and API key.
    pub limits: Limits,
    /// The proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    pub web: WebConfig,
    pub demo: Option<DemoInfo>,
    /// The OpenAPI document, made once by the app (the routes serve it; the document is made
    /// from them).
    pub openapi: serde_json::Value,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Set on a request that presented the platform's admin key (`admin_key`): it may use the
/// admin API, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin;
