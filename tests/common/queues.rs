//! A queue wrapper that breaks one thing (a heartbeat that cannot extend anything, a consumer
//! that panics once) and counts the visibility calls that go through it.

use async_trait::async_trait;
use kamshub::queue::{Depth, OutgoingMessage, Queue, QueueError, QueueName, QueueResult, Receipt, ReceivedMessage};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What a wrapper does to visibility changes and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every visibility change fails (a heartbeat that cannot extend anything).
    NoVisibility,
    /// The first delete panics (a bug in a consumer, or in a driver it calls).
    PanicOnFirstDelete,
}

/// A queue with one [`Fault`], or none; either way it counts the visibility calls that go
/// through it: single changes, batches, and the receipts batched.
pub struct Faulty {
    inner: Arc<dyn Queue>,
    fault: Option<Fault>,
    panicked: AtomicBool,
    pub single: AtomicU64,
    pub batches: AtomicU64,
    pub batched: AtomicU64,
}

impl Faulty {
    pub fn wrap(inner: Arc<dyn Queue>, fault: Fault) -> Arc<dyn Queue> {
        Self::with(inner, Some(fault))
    }

    /// A wrapper that breaks nothing, only counts.
    pub fn counting(inner: Arc<dyn Queue>) -> Arc<Faulty> {
        Self::with(inner, None)
    }

    fn with(inner: Arc<dyn Queue>, fault: Option<Fault>) -> Arc<Faulty> {
        let counter = || AtomicU64::new(0);
        Arc::new(Faulty {
            inner,
            fault,
            panicked: AtomicBool::new(false),
            single: counter(),
            batches: counter(),
            batched: counter(),
        })
    }
}

#[async_trait]
impl Queue for Faulty {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn max_receive(&self) -> usize {
        self.inner.max_receive()
    }
    fn send_batching(&self) -> kamshub::queue::SendBatching {
        self.inner.send_batching()
    }
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> QueueResult<()> {
        self.inner.send(queue, messages).await
    }
    async fn receive(&self, queue: QueueName, max: usize, wait: Duration) -> QueueResult<Vec<ReceivedMessage>> {
        self.inner.receive(queue, max, wait).await
    }
    async fn delete(&self, queue: QueueName, receipts: &[Receipt]) -> QueueResult<()> {
        if self.fault == Some(Fault::PanicOnFirstDelete) && !self.panicked.swap(true, Ordering::SeqCst) {
            panic!("injected: the first delete panics");
        }
        self.inner.delete(queue, receipts).await
    }
    async fn set_visibility(&self, queue: QueueName, receipt: &Receipt, timeout: Duration) -> QueueResult<()> {
        self.single.fetch_add(1, Ordering::SeqCst);
        if self.fault == Some(Fault::NoVisibility) {
            return Err(QueueError::Unavailable("injected: the visibility change timed out".into()));
        }
        self.inner.set_visibility(queue, receipt, timeout).await
    }
    async fn set_visibility_batch(
        &self,
        queue: QueueName,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> QueueResult<Vec<QueueResult<()>>> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.batched.fetch_add(receipts.len() as u64, Ordering::SeqCst);
        if self.fault == Some(Fault::NoVisibility) {
            return Err(QueueError::Unavailable("injected: the visibility change timed out".into()));
        }
        self.inner.set_visibility_batch(queue, receipts, timeout).await
    }
    async fn dead_letter(&self, queue: QueueName, message: &ReceivedMessage) -> QueueResult<()> {
        self.inner.dead_letter(queue, message).await
    }
    async fn depth(&self, queue: QueueName) -> QueueResult<Depth> {
        self.inner.depth(queue).await
    }
    async fn peek(&self, queue: QueueName, max: usize) -> QueueResult<Vec<kamshub::queue::PeekedMessage>> {
        self.inner.peek(queue, max).await
    }
    async fn oldest_sent_at(&self, queue: QueueName) -> QueueResult<Option<i64>> {
        self.inner.oldest_sent_at(queue).await
    }
}
