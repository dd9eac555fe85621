//! Micro-batching of concurrent enqueues: webhooks arriving within a few milliseconds of each
//! other share one queue send (one SQLite transaction, or SendMessageBatch calls on SQS). Each
//! caller is answered only once its messages are durably enqueued. How long a batch waits for
//! more, and how many make it full, is the queue's [`crate::queue::SendBatching`]: on SQS a partial batch also
//! waits (at most 20 ms) for the sends in flight to answer, so concurrent webhooks fill calls of
//! ten instead of each lingering batch going out half empty.
//!
//! One caller's messages never fail another's: if the queue refuses a shared batch (a message
//! breaks its limits), each caller's messages are sent again on their own, and only the callers
//! whose messages are refused are told so.
//!
//! The sender's deletes of finished messages are batched the same way ([`DeleteBatcher`]): its
//! conversations finish sends at about the same moments, and each reply's delete used to be an
//! SQS request of its own (docs/reliability.md, "Cost").

use super::LoopStats;
use crate::queue::{OutgoingMessage, Queue, QueueError, QueueName, QueueResult, Receipt, SendBatching};
use futures::FutureExt;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
        let shape = queue.send_batching();
        let act = move |batch| {
            let queue = Arc::clone(&queue);
            async move { send(queue.as_ref(), queue_name, batch).await }
        };
        tokio::spawn(run_batches(shape, rx, |p: &Pending| p.messages.len(), act));
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

/// A handle to the batching task of one queue's deletes. Cheap to clone.
#[derive(Clone)]
pub struct DeleteBatcher {
    tx: mpsc::Sender<PendingDelete>,
}

struct PendingDelete {
    receipt: Receipt,
    done: oneshot::Sender<QueueResult<()>>,
}

impl DeleteBatcher {
    /// Starts the batching task for deletes from `queue_name` on `queue`, shaped like its sends
    /// (on SQS: ten per `DeleteMessageBatch`, a partial batch waiting at most 20 ms while
    /// others are in flight). A delete that panics is logged and counted in `stats`
    /// (`worker_restarts`, as a sender task's panic is), and its callers get an error; the task
    /// goes on. It ends when every handle is dropped.
    pub fn start(queue: Arc<dyn Queue>, queue_name: QueueName, stats: Arc<LoopStats>) -> Self {
        let (tx, rx) = mpsc::channel::<PendingDelete>(4096);
        let shape = queue.send_batching();
        let act = move |batch: Vec<PendingDelete>| {
            let (queue, stats) = (Arc::clone(&queue), Arc::clone(&stats));
            async move {
                let receipts: Vec<Receipt> = batch.iter().map(|p| p.receipt.clone()).collect();
                let deleting = std::panic::AssertUnwindSafe(queue.delete(queue_name, &receipts));
                let result = deleting.catch_unwind().await.unwrap_or_else(|panic| {
                    stats.worker_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let why = panic_message(panic.as_ref());
                    tracing::error!(queue = ?queue_name, %why, "a batch of deletes panicked; its messages return after their timeout");
                    Err(QueueError::Other(format!("the delete panicked: {why}")))
                });
                for pending in batch {
                    let _ = pending.done.send(result.clone());
                }
            }
        };
        tokio::spawn(run_batches(shape, rx, |_| 1, act));
        Self { tx }
    }

    /// Deletes the message `receipt` names, with whatever other deletes come at the same time;
    /// returns once the queue has answered. A shared call that fails fails each of its callers
    /// (a stale receipt is no failure: see [`Queue::delete`]).
    pub async fn delete(&self, receipt: Receipt) -> QueueResult<()> {
        let stopped = || QueueError::Unavailable("the delete task has stopped".into());
        let (done, answer) = oneshot::channel();
        self.tx.send(PendingDelete { receipt, done }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The text a panic carried, if it was a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".to_owned())
}

/// Collects what concurrent callers hand in (`size` items each) into batches shaped like the
/// queue's sends ([`SendBatching`]) and runs `act` on each, [`CONCURRENT_BATCHES`] at most at
/// once. Ends when every sender of `rx` is dropped.
async fn run_batches<P, F, Fut>(shape: SendBatching, mut rx: mpsc::Receiver<P>, size: fn(&P) -> usize, act: F)
where
    P: Send + 'static,
    F: Fn(Vec<P>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_BATCHES));
    // Batches in flight, so a partial batch can wait for them (`SendBatching`).
    let (in_flight, mut idle) = tokio::sync::watch::channel(0usize);
    let in_flight = Arc::new(in_flight);
    while let Some(first) = rx.recv().await {
        let mut count = size(&first);
        let mut batch = vec![first];
        let started = tokio::time::Instant::now();
        while count < shape.max_messages {
            // Batches in flight: this one could not have been the only one anyway, so it waits
            // for more until they have answered (for at most `max_linger`) instead of going out
            // after `linger` half empty.
            let busy = *idle.borrow_and_update() > 0 && shape.max_linger > shape.linger;
            let due = started + if busy { shape.max_linger } else { shape.linger };
            // An item already waiting joins the batch even at its deadline, as a timeout around
            // `recv` would have it.
            tokio::select! {
                biased;
                next = rx.recv() => match next {
                    Some(next) => {
                        count += size(&next);
                        batch.push(next);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(due) => break,
                // They have answered: past `linger`, the batch goes now.
                Ok(_) = idle.wait_for(|n| *n == 0), if busy => {}
            }
        }
        let permit = Arc::clone(&permits).acquire_owned().await.expect("the semaphore is never closed");
        let going = InFlight::start(&in_flight);
        let acting = act(batch);
        tokio::spawn(async move {
            acting.await;
            drop((going, permit));
        });
    }
}

/// One send counted in flight until it is dropped (also if the send panics).
struct InFlight(Arc<tokio::sync::watch::Sender<usize>>);

impl InFlight {
    fn start(count: &Arc<tokio::sync::watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
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
    use std::time::Duration;

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

    /// A queue whose first send does not answer until the test says so (a send in flight), and
    /// which records how many messages each send carried. The batcher only sends.
    struct Gated {
        shape: crate::queue::SendBatching,
        sizes: tokio::sync::watch::Sender<Vec<usize>>,
        first_answers: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
    }

    impl Gated {
        fn new(shape: crate::queue::SendBatching) -> (Arc<Gated>, oneshot::Sender<()>) {
            let (answer, first) = oneshot::channel();
            let sizes = tokio::sync::watch::channel(Vec::new()).0;
            (Arc::new(Gated { shape, sizes, first_answers: tokio::sync::Mutex::new(Some(first)) }), answer)
        }

        /// Records a send or delete of `n`; the first one answers only when the test says so.
        async fn call(&self, n: usize) -> crate::queue::QueueResult<()> {
            self.sizes.send_modify(|s| s.push(n));
            let first = self.first_answers.lock().await.take();
            if let Some(answer) = first {
                let _ = answer.await;
            }
            Ok(())
        }

        /// Waits until `n` sends have been made; returns the sizes of all so far.
        async fn sends(&self, n: usize) -> Vec<usize> {
            self.sizes.subscribe().wait_for(|s| s.len() >= n).await.unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Queue for Gated {
        fn kind(&self) -> &'static str {
            "gated"
        }
        fn send_batching(&self) -> crate::queue::SendBatching {
            self.shape
        }
        async fn send(&self, _: QueueName, messages: &[OutgoingMessage]) -> crate::queue::QueueResult<()> {
            self.call(messages.len()).await
        }
        async fn receive(
            &self,
            _: QueueName,
            _: usize,
            _: Duration,
        ) -> crate::queue::QueueResult<Vec<crate::queue::ReceivedMessage>> {
            unreachable!("the batchers only send and delete")
        }
        async fn delete(&self, _: QueueName, receipts: &[crate::queue::Receipt]) -> crate::queue::QueueResult<()> {
            self.call(receipts.len()).await
        }
        async fn set_visibility(
            &self,
            _: QueueName,
            _: &crate::queue::Receipt,
            _: Duration,
        ) -> crate::queue::QueueResult<()> {
            unreachable!("the batchers only send and delete")
        }
        async fn set_visibility_batch(
            &self,
            _: QueueName,
            _: &[crate::queue::Receipt],
            _: Duration,
        ) -> crate::queue::QueueResult<Vec<crate::queue::QueueResult<()>>> {
            unreachable!("the batchers only send and delete")
        }
        async fn dead_letter(&self, _: QueueName, _: &crate::queue::ReceivedMessage) -> crate::queue::QueueResult<()> {
            unreachable!("the batchers only send and delete")
        }
        async fn depth(&self, _: QueueName) -> crate::queue::QueueResult<crate::queue::Depth> {
            unreachable!("the batchers only send and delete")
        }
        async fn peek(&self, _: QueueName, _: usize) -> crate::queue::QueueResult<Vec<crate::queue::PeekedMessage>> {
            unreachable!("the batchers only send and delete")
        }
        async fn oldest_sent_at(&self, _: QueueName) -> crate::queue::QueueResult<Option<i64>> {
            unreachable!("the batchers only send and delete")
        }
    }

    /// `n` webhooks of one message each, enqueued at once; resolves when all are answered.
    fn enqueue_many(batcher: &EnqueueBatcher, n: usize) -> tokio::task::JoinSet<Result<(), EnqueueError>> {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let batcher = batcher.clone();
            set.spawn(async move { batcher.enqueue(vec![message(&format!("g{i}"), "hello")]).await });
        }
        set
    }

    async fn all_ok(mut set: tokio::task::JoinSet<Result<(), EnqueueError>>) {
        while let Some(answer) = set.join_next().await {
            answer.unwrap().unwrap();
        }
    }

    /// SQS-shaped (ten per call), with a `max_linger` long enough that only the answer of the send
    /// in flight can release a partial batch.
    const SQS_LIKE: crate::queue::SendBatching = crate::queue::SendBatching {
        max_messages: 10,
        linger: Duration::from_millis(2),
        max_linger: Duration::from_secs(3600),
    };

    // The clock is paused: it moves only when every task waits, so these tests see no real time.
    #[tokio::test(start_paused = true)]
    async fn while_a_send_is_in_flight_full_batches_go_at_once_and_a_partial_one_waits_for_its_answer() {
        let (queue, answer_first) = Gated::new(SQS_LIKE);
        let batcher = EnqueueBatcher::start(queue.clone(), QueueName::Incoming);
        let first = enqueue_many(&batcher, 1);
        assert_eq!(queue.sends(1).await, vec![1], "alone, a webhook goes after `linger`");
        let rest = enqueue_many(&batcher, 12);
        assert_eq!(queue.sends(2).await, vec![1, 10], "ten fill a call: it goes without waiting");
        // A virtual minute: the two left over wait for the first send's answer, not for a timer.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(queue.sizes.borrow().len(), 2, "the partial batch waits while a send is in flight");
        answer_first.send(()).unwrap();
        assert_eq!(queue.sends(3).await, vec![1, 10, 2], "and goes once it has answered");
        all_ok(first).await;
        all_ok(rest).await;
    }

    #[tokio::test(start_paused = true)]
    async fn deletes_are_batched_like_sends() {
        let (queue, answer_first) = Gated::new(SQS_LIKE);
        let batcher = DeleteBatcher::start(queue.clone(), QueueName::Send, Arc::default());
        let delete_many = |n: usize| {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..n {
                let batcher = batcher.clone();
                set.spawn(async move { batcher.delete(crate::queue::Receipt(format!("r{i}"))).await });
            }
            set
        };
        let first = delete_many(1);
        assert_eq!(queue.sends(1).await, vec![1], "alone, a delete goes after `linger`");
        let rest = delete_many(23);
        assert_eq!(queue.sends(3).await, vec![1, 10, 10], "ten fill a call");
        answer_first.send(()).unwrap();
        assert_eq!(queue.sends(4).await, vec![1, 10, 10, 3], "the rest once the first has answered");
        for mut set in [first, rest] {
            while let Some(answer) = set.join_next().await {
                answer.unwrap().unwrap();
            }
        }
    }

    /// With a first send in flight that never answers, how long three more webhooks wait for
    /// their (partial) batch to be answered, in virtual time; checks they went as one batch.
    async fn partial_batch_wait(shape: crate::queue::SendBatching) -> Duration {
        let (queue, _never_answered) = Gated::new(shape);
        let batcher = EnqueueBatcher::start(queue.clone(), QueueName::Incoming);
        let _first = enqueue_many(&batcher, 1);
        queue.sends(1).await;
        let started = tokio::time::Instant::now();
        all_ok(enqueue_many(&batcher, 3)).await;
        assert_eq!(queue.sends(2).await, vec![1, 3]);
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_waits_at_most_max_linger() {
        let shape = crate::queue::SendBatching { max_linger: Duration::from_millis(20), ..SQS_LIKE };
        assert_eq!(
            partial_batch_wait(shape).await,
            shape.max_linger,
            "answered at `max_linger` (virtual time), not later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn embedded_batches_never_wait_for_sends_in_flight() {
        let shape = crate::queue::SendBatching::EMBEDDED;
        assert_eq!(partial_batch_wait(shape).await, shape.linger, "after `linger`, as always");
    }
}
