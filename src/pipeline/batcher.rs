//! Micro-batching of concurrent enqueues: webhooks arriving within a few milliseconds of each
//! other share one queue send (one SQLite transaction, or SendMessageBatch calls on SQS). Each
//! caller is answered only once its messages are durably enqueued.
//!
//! One caller's messages never fail another's: if the queue refuses a shared batch (a message
//! breaks its limits), each caller's messages are sent again on their own, and only the callers
//! whose messages are refused are told so.

use crate::queue::{OutgoingMessage, Queue, QueueError, QueueName};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long the batcher waits for more messages after the first of a batch.
const LINGER: Duration = Duration::from_millis(2);
/// Most messages one batch carries.
const MAX_BATCH: usize = 500;
/// Batches sent at once. Order across concurrent webhooks is not defined anyway (providers
/// deliver in parallel); the processor orders messages by provider order.
const CONCURRENT_BATCHES: usize = 8;

struct Pending {
    messages: Vec<OutgoingMessage>,
    done: oneshot::Sender<Result<(), EnqueueError>>,
}

/// A handle to the batching task of one queue. Cheap to clone.
#[derive(Clone)]
pub struct EnqueueBatcher {
    tx: mpsc::Sender<Pending>,
}

/// Why an enqueue failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    /// The queue refused these messages (they break its limits): retrying cannot help.
    #[error("the queue refused the messages: {0}")]
    Refused(String),
    /// The queue is down or the batching task stopped: retrying later may succeed.
    #[error("enqueue failed: {0}")]
    Unavailable(String),
}

impl From<QueueError> for EnqueueError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Invalid(why) => EnqueueError::Refused(why),
            other => EnqueueError::Unavailable(other.to_string()),
        }
    }
}

impl EnqueueBatcher {
    /// Starts the batching task for `queue_name` on `queue`. It ends when every handle is dropped.
    pub fn start(queue: Arc<dyn Queue>, queue_name: QueueName) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(4096);
        tokio::spawn(run(queue, queue_name, rx));
        Self { tx }
    }

    /// Enqueues `messages` (in order) with whatever else arrives at the same time; returns once
    /// they are durable.
    pub async fn enqueue(&self, messages: Vec<OutgoingMessage>) -> Result<(), EnqueueError> {
        let stopped = || EnqueueError::Unavailable("the enqueue task has stopped".into());
        let (done, answer) = oneshot::channel();
        self.tx.send(Pending { messages, done }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(queue: Arc<dyn Queue>, queue_name: QueueName, mut rx: mpsc::Receiver<Pending>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BATCHES));
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut count = batch[0].messages.len();
        let deadline = tokio::time::Instant::now() + LINGER;
        while count < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => {
                    count += next.messages.len();
                    batch.push(next);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let permit = Arc::clone(&permits).acquire_owned().await.expect("the semaphore is never closed");
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            send(queue.as_ref(), queue_name, batch).await;
            drop(permit);
        });
    }
}

/// Sends a batch and answers its callers; a refused batch of several callers is split up.
async fn send(queue: &dyn Queue, queue_name: QueueName, batch: Vec<Pending>) {
    let messages: Vec<OutgoingMessage> = batch.iter().flat_map(|p| p.messages.iter().cloned()).collect();
    let result = queue.send(queue_name, &messages).await.map_err(EnqueueError::from);
    if matches!(result, Err(EnqueueError::Refused(_))) && batch.len() > 1 {
        for pending in batch {
            let alone = queue.send(queue_name, &pending.messages).await.map_err(EnqueueError::from);
            let _ = pending.done.send(alone);
        }
        return;
    }
    for pending in batch {
        let _ = pending.done.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::sqlite::SqliteQueue;

    fn message(group: &str, body: &str) -> OutgoingMessage {
        OutgoingMessage { group_id: group.into(), dedupe_id: format!("d-{group}"), body: body.into() }
    }

    fn pending(messages: Vec<OutgoingMessage>) -> (Pending, oneshot::Receiver<Result<(), EnqueueError>>) {
        let (done, answer) = oneshot::channel();
        (Pending { messages, done }, answer)
    }

    #[tokio::test]
    async fn a_refused_message_fails_only_its_own_caller() {
        let dir = tempfile::tempdir().unwrap();
        let queue = SqliteQueue::open(&dir.path().join("q.sqlite3"), 3, Duration::from_secs(30)).unwrap();
        let (first, first_answer) = pending(vec![message("a", "fine")]);
        let (bad, bad_answer) = pending(vec![message("b", "fine"), message("c", "not \u{FFFF} on a queue")]);
        let (last, last_answer) = pending(vec![message("d", "fine too")]);
        send(&queue, QueueName::Incoming, vec![first, bad, last]).await;
        assert!(first_answer.await.unwrap().is_ok());
        assert!(matches!(bad_answer.await.unwrap(), Err(EnqueueError::Refused(_))));
        assert!(last_answer.await.unwrap().is_ok());
        let depth = queue.depth(QueueName::Incoming).await.unwrap();
        assert_eq!(depth.visible, 2, "both neighbours are on the queue, nothing of the refused caller");
    }
}
