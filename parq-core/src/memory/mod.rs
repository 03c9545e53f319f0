//! In-memory adapters: complete implementations of every port for tests, demos and small
//! single-process deployments.

mod gateway;
mod lock;
mod notifier;
mod store;

pub use gateway::{
    Failure, GatewayOp, SimIntent, TestGateway, cancel_fingerprint, capture_fingerprint, delivery_signature,
    parse_delivery, random_id, refund_fingerprint, sign_delivery, sign_foreign_delivery,
};
pub use lock::MemoryLock;
pub use notifier::BroadcastNotifier;
pub use store::{DEFAULT_EVENT_RETENTION, MemoryStore};
