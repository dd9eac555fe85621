//! A `Queue` that records metrics around another: call latency and errors per queue and
//! operation, messages sent, received, deleted and dead-lettered, and send batch sizes. The app
//! wraps whichever adapter the settings chose, so every loop and command is measured the same way.

use super::{
    Depth, OutgoingMessage, PeekedMessage, Queue, QueueError, QueueName, QueueResult, Receipt, ReceivedMessage,
};
use crate::metrics::{
    QUEUE_CALL, QUEUE_DEAD_LETTERED, QUEUE_DELETED, QUEUE_ERRORS, QUEUE_RECEIVED, QUEUE_SEND_BATCH, QUEUE_SENT,
};
use async_trait::async_trait;
use metrics::{counter, histogram};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Measures every call of the queue it wraps.
pub struct MeteredQueue {
    inner: Arc<dyn Queue>,
}

impl MeteredQueue {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Queue>) -> Self {
        Self { inner }
    }

    /// Runs one call, recording its latency under `op` and, if it fails, its error kind.
    async fn timed<T>(
        &self,
        queue: QueueName,
        op: &'static str,
        call: impl Future<Output = QueueResult<T>>,
    ) -> QueueResult<T> {
        let started = Instant::now();
        let result = call.await;
        histogram!(QUEUE_CALL, "queue" => queue.suffix(), "op" => op).record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            counter!(QUEUE_ERRORS, "queue" => queue.suffix(), "op" => op, "error" => error_kind(e)).increment(1);
        }
        result
    }
}

fn error_kind(e: &QueueError) -> &'static str {
    match e {
        QueueError::Missing(_) => "missing",
        QueueError::StaleReceipt => "stale_receipt",
        QueueError::Invalid(_) => "invalid",
        QueueError::Unavailable(_) => "unavailable",
        QueueError::Other(_) => "other",
    }
}

#[async_trait]
impl Queue for MeteredQueue {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn max_receive(&self) -> usize {
        self.inner.max_receive()
    }

    fn send_batching(&self) -> super::SendBatching {
        self.inner.send_batching()
    }

    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> QueueResult<()> {
        self.timed(queue, "send", self.inner.send(queue, messages)).await?;
        if !messages.is_empty() {
            histogram!(QUEUE_SEND_BATCH, "queue" => queue.suffix()).record(messages.len() as f64);
            counter!(QUEUE_SENT, "queue" => queue.suffix()).increment(messages.len() as u64);
        }
        Ok(())
    }

    async fn receive(&self, queue: QueueName, max: usize, wait: Duration) -> QueueResult<Vec<ReceivedMessage>> {
        let received = self.timed(queue, "receive", self.inner.receive(queue, max, wait)).await?;
        counter!(QUEUE_RECEIVED, "queue" => queue.suffix()).increment(received.len() as u64);
        Ok(received)
    }

    async fn receive_until(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> QueueResult<Vec<ReceivedMessage>> {
        let received = self.timed(queue, "receive", self.inner.receive_until(queue, max, wait, stop)).await?;
        counter!(QUEUE_RECEIVED, "queue" => queue.suffix()).increment(received.len() as u64);
        Ok(received)
    }

    async fn delete(&self, queue: QueueName, receipts: &[Receipt]) -> QueueResult<()> {
        self.timed(queue, "delete", self.inner.delete(queue, receipts)).await?;
        counter!(QUEUE_DELETED, "queue" => queue.suffix()).increment(receipts.len() as u64);
        Ok(())
    }

    async fn set_visibility(&self, queue: QueueName, receipt: &Receipt, timeout: Duration) -> QueueResult<()> {
        self.timed(queue, "set_visibility", self.inner.set_visibility(queue, receipt, timeout)).await
    }

    /// One call, timed as `set_visibility_batch`; each receipt that failed also counts as an
    /// error of that op.
    async fn set_visibility_batch(
        &self,
        queue: QueueName,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> QueueResult<Vec<QueueResult<()>>> {
        let op = "set_visibility_batch";
        let answers = self.timed(queue, op, self.inner.set_visibility_batch(queue, receipts, timeout)).await?;
        for e in answers.iter().filter_map(|answer| answer.as_ref().err()) {
            counter!(QUEUE_ERRORS, "queue" => queue.suffix(), "op" => op, "error" => error_kind(e)).increment(1);
        }
        Ok(answers)
    }

    async fn dead_letter(&self, queue: QueueName, message: &ReceivedMessage) -> QueueResult<()> {
        self.timed(queue, "dead_letter", self.inner.dead_letter(queue, message)).await?;
        counter!(QUEUE_DEAD_LETTERED, "queue" => queue.suffix()).increment(1);
        Ok(())
    }

    async fn depth(&self, queue: QueueName) -> QueueResult<Depth> {
        self.timed(queue, "depth", self.inner.depth(queue)).await
    }

    async fn peek(&self, queue: QueueName, max: usize) -> QueueResult<Vec<PeekedMessage>> {
        self.timed(queue, "peek", self.inner.peek(queue, max)).await
    }

    async fn oldest_sent_at(&self, queue: QueueName) -> QueueResult<Option<i64>> {
        self.timed(queue, "oldest_sent_at", self.inner.oldest_sent_at(queue)).await
    }
}
