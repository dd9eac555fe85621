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
//!   conversation wait. Each failure is recorded on the event (FAILED, with its error and
//!   receive count), so `kamshub dlq peek` can say why a dead message died. A failure on the
//!   last allowed receive dead-letters the event at once: the later messages of its
//!   conversation, which the queue delivered (and counted) with it each time, are applied in the
//!   same step rather than reaching the DLQ with it.
//! - A store outage is not the messages' fault: the processor holds them and retries with
//!   backoff instead of letting receive counts run up.
//! - Nothing held lapses: a heartbeat extends every message of a batch until it is finished
//!   ([`Leases`]); at shutdown an in-flight receive is awaited and what it brings is handled.

use super::lease::Leases;
use super::worker::{Next, run_loop, run_workers};
use super::{Backoff, LoopStats};
use crate::domain::inbound::{Envelope, InboundEvent};
use crate::metrics::{INBOUND_EVENT_AGE, INBOUND_EVENTS, PROCESSING_DURATION};
use crate::providers::Providers;
use crate::queue::{Queue, QueueError, QueueName, ReceivedMessage};
use crate::store::{ApplyOutcome, InboundFailure, InboundRecord, Store, StoreError};
use metrics::{counter, histogram};
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
    /// The queue's `max_receive_count`: an event that fails on its last allowed receive is
    /// dead-lettered by the processor at once, so the rest of its conversation, received with it
    /// (and counted with it), is applied instead of following it into the DLQ.
    pub max_attempts: u32,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            receive_wait: Duration::from_secs(20),
            visibility_timeout: Duration::from_secs(30),
            max_attempts: 5,
        }
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
        let started = tokio::time::Instant::now();
        let mut step = Step { received: received.len(), ..Step::default() };
        let mut ready = Vec::with_capacity(received.len());
        for message in received {
            match read(&self.providers, &message.body) {
                Ok(record) => ready.push((message, record)),
                Err(why) => {
                    // The same bytes fail the same way every time: retrying would only hold up
                    // the rest of the conversation. The DLQ keeps it for inspection and redrive.
                    tracing::error!(group = %message.group_id, %why, "processor: unreadable event; moving it to the DLQ");
                    if let Ok(envelope) = serde_json::from_str::<Envelope>(&message.body) {
                        self.note_failure(&envelope, &message, &format!("cannot read the event: {why}")).await;
                    }
                    self.dead_letter(&message, leases, &mut step).await?;
                }
            }
        }

        // Each group's messages apply in order, and none after a failure of its group.
        let mut failed_groups: HashSet<String> = HashSet::new();
        let mut retry = Vec::new();
        let mut done = Vec::new();
        match self.apply_holding(&ready, leases, shutdown).await? {
            Ok(outcomes) => {
                for ((message, record), outcome) in ready.into_iter().zip(outcomes) {
                    count(&mut step, outcome, &record);
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
                    let one = [(message.clone(), record.clone())];
                    match self.apply_holding(&one, leases, shutdown).await? {
                        Ok(outcomes) => {
                            count(&mut step, outcomes[0], &record);
                            done.push(message.receipt);
                        }
                        Err(e) => {
                            tracing::warn!(group = %message.group_id, receive_count = message.receive_count,
                                error = %e, "processor: cannot apply event");
                            self.note_failure(&record.envelope, &message, &e.to_string()).await;
                            if self.last_attempt(&message) {
                                self.dead_letter(&message, leases, &mut step).await?;
                            } else {
                                failed_groups.insert(message.group_id.clone());
                                retry.push(message);
                            }
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
        histogram!(PROCESSING_DURATION).record(started.elapsed().as_secs_f64());
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
                    // Holding through an outage is progress, not a wedged loop.
                    crate::systemd::still_alive();
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                other => return Ok(other),
            }
        }
    }

    /// Whether this delivery is the message's last before the queue would dead-letter it.
    fn last_attempt(&self, message: &ReceivedMessage) -> bool {
        message.receive_count >= self.config.max_attempts
    }

    /// Moves a held message to the DLQ now.
    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        leases: &Leases,
        step: &mut Step,
    ) -> Result<(), ProcessorError> {
        leases.end(&message.receipt).await;
        self.queue.dead_letter(QueueName::Incoming, message).await?;
        counter!(INBOUND_EVENTS, "outcome" => "dead_lettered").increment(1);
        step.dead_lettered += 1;
        Ok(())
    }

    /// Records why an event failed where `dlq peek` shows it. A failure to record is logged
    /// only: the message is retried (and may die) either way.
    async fn note_failure(&self, envelope: &Envelope, message: &ReceivedMessage, error: &str) {
        counter!(INBOUND_EVENTS, "outcome" => "failed").increment(1);
        let failure = InboundFailure {
            error: error.to_owned(),
            receive_count: message.receive_count,
            failed_at: crate::domain::now(),
        };
        if let Err(e) = self.store.record_inbound_failure(envelope, &failure).await {
            tracing::warn!(group = %message.group_id, error = %e, "processor: cannot record the event's failure");
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

fn count(step: &mut Step, outcome: ApplyOutcome, record: &InboundRecord) {
    match outcome {
        ApplyOutcome::Applied => {
            step.applied += 1;
            counter!(INBOUND_EVENTS, "outcome" => "applied").increment(1);
            let now_ms = crate::domain::inbound::to_ms(crate::domain::now());
            let age_ms = (now_ms - record.envelope.received_at_ms).max(0);
            histogram!(INBOUND_EVENT_AGE).record(age_ms as f64 / 1000.0);
        }
        ApplyOutcome::Duplicate => {
            step.duplicates += 1;
            counter!(INBOUND_EVENTS, "outcome" => "duplicate").increment(1);
        }
    }
}

/// Redelivery delay after a failure: 1 s, 2 s, 4 s, … capped at the visibility timeout.
fn retry_delay(receive_count: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << receive_count.saturating_sub(1).min(12)).min(cap)
}
