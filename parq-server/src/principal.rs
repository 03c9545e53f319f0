//! Who is calling, once authenticated: a logged-in account or an API key.

use parq_core::{OperatorId, UserId};
use uuid::Uuid;

use crate::accounts::Role;

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
