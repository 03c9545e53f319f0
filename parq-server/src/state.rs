//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use parq_core::{Engine, OperatorId, UserId};
use uuid::Uuid;

use crate::accounts::{Accounts, Role};
use crate::backends::{Backends, Simulated};
use crate::clientaddr::TrustedProxies;
use crate::config::Config;
use crate::demo::DemoInfo;
use crate::metrics::Metrics;
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

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A logged-in account.
    User {
        /// The account.
        id: UserId,
        /// Its role.
        role: Role,
        /// Its operator, for operator and gate accounts.
        operator: Option<OperatorId>,
        /// The digest of the session token (to log out).
        session: String,
    },
    /// An API key.
    Key {
        /// The key's id.
        id: Uuid,
        /// `operator` or `gate`.
        role: Role,
        /// The operator it acts for.
        operator: OperatorId,
    },
}

impl Principal {
    /// The role.
    pub fn role(&self) -> Role {
        match self {
            Principal::User { role, .. } | Principal::Key { role, .. } => *role,
        }
    }

    /// The operator it acts for, if any.
    pub fn operator(&self) -> Option<OperatorId> {
        match self {
            Principal::User { operator, .. } => *operator,
            Principal::Key { operator, .. } => Some(*operator),
        }
    }

    /// The rate limit of this caller, and its bucket.
    pub fn limit(&self) -> (crate::ratelimit::Kind, String) {
        match self {
            Principal::User { .. } => (crate::ratelimit::Kind::User, self.bucket()),
            Principal::Key { .. } => (crate::ratelimit::Kind::Key, self.bucket()),
        }
    }

    /// The rate-limit bucket of this caller.
    pub fn bucket(&self) -> String {
        match self {
            Principal::User { id, .. } => format!("user:{id}"),
            Principal::Key { id, .. } => format!("key:{id}"),
        }
    }
}
