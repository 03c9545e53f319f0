//! The store conformance suite against `MemoryStore`.

use std::sync::Arc;

use parq_core::DynReservationStore;
use parq_core::memory::MemoryStore;

mod memory_store {
    use super::*;
    parq_core::store_conformance!(async { Arc::new(MemoryStore::new()) as Arc<DynReservationStore> });
}

mod memory_store_short_retention {
    //! A store that keeps only a few events per lot: resuming goes back only as far as it
    //! keeps, without gaps.
    use super::*;

    #[tokio::test]
    async fn port_events_resume_by_capability() {
        let store = Arc::new(MemoryStore::with_event_retention(8)) as Arc<DynReservationStore>;
        assert!(!store.capabilities().full_event_log);
        parq_core::testing::store::port_events_resume_by_capability(store.into()).await;
    }
}
