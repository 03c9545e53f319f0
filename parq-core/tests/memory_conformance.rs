//! The conformance suite against `MemoryStore`.

use std::sync::Arc;

use parq_core::DynReservationStore;
use parq_core::memory::MemoryStore;

parq_core::store_conformance!(async { Arc::new(MemoryStore::new()) as Arc<DynReservationStore> });
