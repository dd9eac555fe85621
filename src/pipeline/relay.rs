//! The relay: publishes due outbox items, replies to the **send** queue and webhook deliveries to
//! the **deliveries** queue (group = conversation, or endpoint and conversation; dedupe = sendId
//! and attempt), and marks them ENQUEUED; republishes items stuck ENQUEUED (published but lost,
//! e.g. a queue purge) after `stuck_after`. Items come in creation order, deliveries in event
//! order (`Store::outbox_due`), so each group's messages are published in order.

use super::worker::{Next, run_loop};
use crate::domain::{OutboxItem, OutboxKind, SendEnvelope};
use crate::queue::{OutgoingMessage, Queue, QueueName};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// How often it looks for due items when not woken.
    pub poll: Duration,
    /// An ENQUEUED item untouched this long is published again.
    pub stuck_after: Duration,
    /// Items per pass.
    pub batch: u32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { poll: Duration::from_millis(250), stuck_after: Duration::from_secs(10 * 60), batch: 500 }
    }
}

/// Why a relay pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// The outbox relay.
pub struct Relay {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    config: RelayConfig,
    wake: Arc<Notify>,
}

impl Relay {
    /// A relay over `store` and `queue`.
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, config: RelayConfig) -> Self {
        Self { store, queue, config, wake: Arc::new(Notify::new()) }
    }

    /// A handle that wakes the relay at once (a reply was just created in this process).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Runs until `shutdown`; each pass publishes everything due. A full pass goes again at
    /// once; otherwise the relay polls, or wakes when a reply is created in this process.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        run_loop("relay", &shutdown, Some(&self.wake), || async {
            let published = self.run_once().await?;
            Ok::<_, RelayError>(if published as u32 >= self.config.batch {
                Next::Again
            } else {
                Next::Idle(self.config.poll)
            })
        })
        .await;
    }

    /// One pass: publishes due and stuck items; returns how many.
    pub async fn run_once(&self) -> Result<usize, RelayError> {
        let now = crate::domain::now();
        let due = self.store.outbox_due(now, now - self.config.stuck_after, self.config.batch).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let (replies, deliveries): (Vec<&OutboxItem>, Vec<&OutboxItem>) =
            due.iter().partition(|item| item.kind() == OutboxKind::Reply);
        for (queue, items) in [(QueueName::Send, replies), (QueueName::Deliveries, deliveries)] {
            if !items.is_empty() {
                let messages: Vec<OutgoingMessage> = items.into_iter().map(send_message).collect();
                self.queue.send(queue, &messages).await?;
            }
        }
        let ids: Vec<_> = due.iter().map(|item| item.id.clone()).collect();
        self.store.mark_enqueued(&ids).await?;
        tracing::debug!(published = due.len(), "relay: published");
        Ok(due.len())
    }
}

/// The queue message of an item: ordered in its group (`OutboxItem::group_id`, hashed if longer
/// than SQS allows), deduplicated per attempt (a retry is a new publication; a republished stuck
/// item is the same one).
fn send_message(item: &OutboxItem) -> OutgoingMessage {
    let group = item.group_id();
    OutgoingMessage {
        group_id: if group.len() <= crate::queue::MAX_ID_CHARS { group } else { hex_sha256(&group) },
        dedupe_id: dedupe_id(item),
        body: serde_json::to_string(&SendEnvelope::of(item)).expect("a send envelope serialises"),
    }
}

fn dedupe_id(item: &OutboxItem) -> String {
    hex_sha256(&format!("{}:{}:{}", item.tenant_id, item.send_id, item.attempts))
}

fn hex_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text).iter().map(|b| format!("{b:02x}")).collect()
}
