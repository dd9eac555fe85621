//! Micro-batching of concurrent enqueues: webhooks arriving within a few milliseconds of each
//! other share one queue send (one SQLite transaction, or SendMessageBatch calls on SQS). Each
//! caller is answered only once its message is durably enqueued.

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
    done: oneshot::Sender<Result<(), String>>,
}

/// A handle to the batching task of one queue. Cheap to clone.
#[derive(Clone)]
pub struct EnqueueBatcher {
    tx: mpsc::Sender<Pending>,
}

/// Why an enqueue failed.
#[derive(Debug, thiserror::Error)]
#[error("enqueue failed: {0}")]
pub struct EnqueueError(pub String);

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
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Pending { messages, done })
            .await
            .map_err(|_| EnqueueError("the enqueue task has stopped".into()))?;
        answer.await.map_err(|_| EnqueueError("the enqueue task has stopped".into()))?.map_err(EnqueueError)
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
            let messages: Vec<OutgoingMessage> = batch.iter().flat_map(|p| p.messages.iter().cloned()).collect();
            let result = queue.send(queue_name, &messages).await.map_err(|e: QueueError| e.to_string());
            drop(permit);
            for pending in batch {
                let _ = pending.done.send(result.clone());
            }
        });
    }
}
