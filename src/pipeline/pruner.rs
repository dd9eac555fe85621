//! The pruner: deletes events older than `[events] retention_secs`, every tenant, in bounded
//! batches (a long backlog never holds the store in one write). Runs with the relay role.
//! Event ids are never reused: the tenants' counters stay.

use super::worker::{Next, run_loop};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Events deleted per pass.
const BATCH: u32 = 1000;

/// Deletes expired events.
pub struct Pruner {
    store: Arc<dyn Store>,
    retention: Duration,
    every: Duration,
}

impl Pruner {
    /// A pruner keeping `retention` of events, looking every `every`.
    pub fn new(store: Arc<dyn Store>, retention: Duration, every: Duration) -> Self {
        Self { store, retention, every }
    }

    /// Runs until `shutdown`: a full batch goes again at once; otherwise waits `every`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        run_loop("pruner", &shutdown, None, || async {
            let deleted = self.run_once().await?;
            Ok::<_, StoreError>(if deleted >= u64::from(BATCH) { Next::Again } else { Next::Idle(self.every) })
        })
        .await;
    }

    /// One pass: deletes up to a batch of expired events; returns how many.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let before = crate::domain::now() - self.retention;
        let deleted = self.store.prune_events(before, BATCH).await?;
        if deleted > 0 {
            metrics::counter!(crate::metrics::EVENTS_PRUNED).increment(deleted);
            tracing::debug!(deleted, "pruner: deleted expired events");
        }
        Ok(deleted)
    }
}
