//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use parq_core::memory::TestGateway;
use parq_core::{Engine, OperatorId, UserId};
use uuid::Uuid;

use crate::accounts::{Accounts, Role};
use crate::backends::Backends;
use crate::config::Config;
use crate::demo::DemoInfo;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
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
    pub test_gateway: Option<Arc<TestGateway>>,
    pub backends: Backends,
    pub config: Config,
    pub metrics: Metrics,
    pub limit_ip: Limiter,
    pub limit_user: Limiter,
    pub limit_key: Limiter,
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

    /// The rate-limit bucket of this caller.
    pub fn bucket(&self) -> String {
        match self {
            Principal::User { id, .. } => format!("user:{id}"),
            Principal::Key { id, .. } => format!("key:{id}"),
        }
    }
}
