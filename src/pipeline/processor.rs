//! The processor: receives envelopes from **incoming**, normalises them, applies them to the store
//! (one transaction per batch, one atomic unit per event), and deletes them from the queue.
//!
//! - Parallel across conversations, sequential within one: the queue never hands out a second
//!   message of a group while one is in flight, and a batch keeps each group's messages in order.
//! - An envelope that does not parse, or whose event its provider cannot read, goes straight to
//!   the DLQ: the same bytes fail the same way every time, and the rest of its conversation goes
//!   on. One intake marked unusable (a body it could not read) is recorded as ignored with
//!   intake's reason, its raw body kept.
//! - Any other failure (applying it) leaves the message for redelivery, with a growing delay; the
//!   queue moves it to the DLQ after `max_receive_count` receives. Later messages of its
//!   conversation wait.
//! - A store outage is not the messages' fault: the processor holds them and retries with
//!   backoff instead of letting receive counts run up.
//! - Nothing held lapses: a heartbeat extends every message of a batch until it is finished
//!   ([`Leases`]); at shutdown an in-flight receive is awaited and what it brings is handled.

use super::lease::Leases;
use super::worker::{Next, run_loop, run_workers};
use super::{Backoff, LoopStats};
use crate::domain::inbound::{Envelope, InboundEvent};
use crate::providers::Providers;
use crate::queue::{Queue, QueueError, QueueName, ReceivedMessage};
use crate::store::{ApplyOutcome, InboundRecord, Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tuning of the processor.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Concurrent receive-and-apply loops.
    pub workers: usize,
    /// Long-poll wait of one receive.
    pub receive_wait: Duration,
    /// The queue's visibility timeout: a heartbeat extends held messages by this much at a third
    /// of it.
    pub visibility_timeout: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self { workers: 4, receive_wait: Duration::from_secs(20), visibility_timeout: Duration::from_secs(30) }
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Messages received.
    pub received: usize,
    /// Events applied for the first time.
    pub applied: usize,
    /// Events already applied before (acknowledged, nothing changed).
    pub duplicates: usize,
    /// Unparseable envelopes moved to the DLQ.
    pub dead_lettered: usize,
    /// Messages left for redelivery (failed, or behind a failure in their conversation).
    pub retried: usize,
}

/// Why a step stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// The queue failed; the loop backs off.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Shutdown was requested while messages were held during a store outage; they were released.
    #[error("shut down while the store was unavailable; held messages released")]
    ShutDown,
}

/// The inbound processor.
pub struct Processor {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    providers: Providers,
    config: ProcessorConfig,
    stats: Arc<LoopStats>,
}

impl Processor {
    /// A processor over `store` and `queue`, reading events with `providers`' normalisers.
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, providers: Providers, config: ProcessorConfig) -> Self {
        Self { store, queue, providers, config, stats: Arc::default() }
    }

    /// What this processor counted so far (lapses, heartbeat failures, store retries, restarts).
    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }

    /// Runs `workers` loops until `shutdown` is cancelled; in-flight batches finish (or are
    /// released) before it returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        run_workers("processor", self.config.workers, &shutdown, &self.stats, || {
            let (me, shutdown) = (Arc::clone(&self), shutdown.clone());
            async move {
                run_loop("processor", &shutdown, None, || async {
                    match me.run_once_until(&shutdown).await {
                        Ok(_) => Ok(Next::Again),
                        Err(ProcessorError::ShutDown) => Ok(Next::Stop),
                        Err(e) => Err(e),
                    }
                })
                .await
            }
        })
        .await;
    }

    /// One receive (long-polling up to the configured wait) and the handling of what it got.
    pub async fn run_once(&self) -> Result<Step, ProcessorError> {
        self.run_once_until(&CancellationToken::new()).await
    }

    async fn run_once_until(&self, shutdown: &CancellationToken) -> Result<Step, ProcessorError> {
        let max = self.queue.max_receive();
        // Ended early at shutdown only where the queue can do so without abandoning messages it
        // already handed out (`Queue::receive_until`); a received batch is finished.
        let received = self.queue.receive_until(QueueName::Incoming, max, self.config.receive_wait, shutdown).await?;
        if received.is_empty() {
            return Ok(Step::default());
        }
        let leases = Arc::new(Leases::new(
            Arc::clone(&self.queue),
            QueueName::Incoming,
            self.config.visibility_timeout,
            Arc::clone(&self.stats),
            received.iter().map(|m| m.receipt.clone()),
        ));
        let heartbeat = leases.heartbeat();
        let step = self.handle(received, &leases, shutdown).await;
        drop(heartbeat);
        step
    }

    async fn handle(
        &self,
        received: Vec<ReceivedMessage>,
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Result<Step, ProcessorError> {
        let mut step = Step { received: received.len(), ..Step::default() };
        let mut ready = Vec::with_capacity(received.len());
        for message in received {
            match read(&self.providers, &message.body) {
                Ok(record) => ready.push((message, record)),
                Err(why) => {
                    // The same bytes fail the same way every time: retrying would only hold up
                    // the rest of the conversation. The DLQ keeps it for inspection and redrive.
                    tracing::error!(group = %message.group_id, %why, "processor: unreadable event; moving it to the DLQ");
                    leases.end(&message.receipt).await;
                    self.queue.dead_letter(QueueName::Incoming, &message).await?;
                    step.dead_lettered += 1;
                }
            }
        }

        // Each group's messages apply in order, and none after a failure of its group.
        let mut failed_groups: HashSet<String> = HashSet::new();
        let mut retry = Vec::new();
        let mut done = Vec::new();
        match self.apply_holding(&ready, leases, shutdown).await? {
            Ok(outcomes) => {
                for ((message, _), outcome) in ready.into_iter().zip(outcomes) {
                    count(&mut step, outcome);
                    done.push(message.receipt);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "processor: batch failed; applying its events one by one");
                for (message, record) in ready {
                    if failed_groups.contains(&message.group_id) {
                        retry.push(message);
                        continue;
                    }
                    let one = [(message.clone(), record)];
                    match self.apply_holding(&one, leases, shutdown).await? {
                        Ok(outcomes) => {
                            count(&mut step, outcomes[0]);
                            done.push(message.receipt);
                        }
                        Err(e) => {
                            tracing::warn!(group = %message.group_id, receive_count = message.receive_count,
                                error = %e, "processor: cannot apply event; leaving it for redelivery");
                            failed_groups.insert(message.group_id.clone());
                            retry.push(message);
                        }
                    }
                }
            }
        }
        if !done.is_empty() {
            for receipt in &done {
                leases.end(receipt).await;
            }
            self.queue.delete(QueueName::Incoming, &done).await?;
        }
        step.retried = retry.len();
        for message in retry {
            let delay = retry_delay(message.receive_count, self.config.visibility_timeout);
            leases.end(&message.receipt).await;
            if let Err(e) = self.queue.set_visibility(QueueName::Incoming, &message.receipt, delay).await {
                tracing::debug!(error = %e, "processor: could not set the retry delay; the visibility timeout applies");
            }
        }
        Ok(step)
    }

    /// Applies `batch`; while the store is unavailable, holds the messages (the heartbeat keeps
    /// them invisible) and retries with backoff. The inner error is a non-outage store failure.
    async fn apply_holding(
        &self,
        batch: &[(ReceivedMessage, InboundRecord)],
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Result<Result<Vec<ApplyOutcome>, StoreError>, ProcessorError> {
        if batch.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let records: Vec<InboundRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        loop {
            match self.store.apply_inbound(&records).await {
                Err(StoreError::Unavailable(why)) => {
                    if shutdown.is_cancelled() {
                        for (m, _) in batch {
                            leases.release(&m.receipt).await;
                        }
                        return Err(ProcessorError::ShutDown);
                    }
                    self.stats.store_retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    tracing::warn!(%why, ?delay, held = batch.len(), "processor: store unavailable; holding messages");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                other => return Ok(other),
            }
        }
    }
}

/// A queue message as the event to apply: its envelope, normalised by its provider (or, for an
/// event intake could not read, ignored with intake's reason, its raw body kept).
fn read(providers: &Providers, body: &str) -> Result<InboundRecord, String> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| format!("unparseable envelope: {e}"))?;
    let event = match &envelope.unusable {
        Some(why) => InboundEvent::Ignored { reason: format!("unusable webhook: {why}") },
        None => providers.of(envelope.provider).normalize(&envelope.payload).map_err(|e| e.to_string())?,
    };
    Ok(InboundRecord { envelope, event })
}

fn count(step: &mut Step, outcome: ApplyOutcome) {
    match outcome {
        ApplyOutcome::Applied => step.applied += 1,
        ApplyOutcome::Duplicate => step.duplicates += 1,
    }
}

/// Redelivery delay after a failure: 1 s, 2 s, 4 s, … capped at the visibility timeout.
fn retry_delay(receive_count: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << receive_count.saturating_sub(1).min(12)).min(cap)
}
