//! In-memory adapters: complete implementations of every port for tests, demos and small
//! single-process deployments.

mod gateway;
mod lock;
mod notifier;
mod store;

pub use gateway::{Failure, GatewayOp, TestGateway};
pub use lock::MemoryLock;
pub use notifier::BroadcastNotifier;
pub use store::{DEFAULT_EVENT_RETENTION, MemoryStore};
