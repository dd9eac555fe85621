//! The sender: receives from **send**, claims the outbox item (compare-and-set to SENDING,
//! attempt + 1), calls the provider within the pacing limits, and records the outcome:
//! - all parts accepted → SENT (provider ids kept; the outbound message becomes `sent`);
//! - 429 → retried no sooner than `retry_after`; 5xx or never-sent errors → retried after a
//!   capped, jittered exponential backoff. A retry keeps its queue message in flight, hidden until
//!   the retry time, so the conversation's later replies wait behind it (order holds). Once
//!   `max_attempts` are spent → FAILED and the queue message goes to the DLQ (`max_attempts`
//!   must not exceed the queue's `max_receive_count`, or the queue would dead-letter it first);
//! - a permanent refusal → FAILED with the provider's code and words (a refused token also flags
//!   the channel `needs_reauth`);
//! - a timeout after the request was written → UNKNOWN: never resent automatically
//!   (`outbox retry` resends, accepting a possible duplicate).
//!
//! An item found SENDING when its message arrives was being sent by a sender that died mid-call:
//! it becomes UNKNOWN too. A queue message is deleted once a final outcome is recorded.

use super::pacing::{PaceKey, Pacer, PacingLimits};
use super::relay::SendEnvelope;
use crate::domain::{
    Channel, ChannelHealth, ChannelKind, Conversation, MessageStatus, OutboxId, OutboxItem, OutboxStatus,
};
use crate::providers::messenger::MessengerClient;
use crate::providers::send::{MESSENGER_MAX_TEXT, SendFailure, TELEGRAM_MAX_TEXT, classify, split_text};
use crate::providers::telegram::TelegramClient;
use crate::queue::{Queue, QueueError, QueueName, Receipt, ReceivedMessage};
use crate::sealing::MasterKey;
use crate::store::{OutboxTransition, SendLogEntry, Store, StoreError};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tuning of the sender.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Concurrent receive loops.
    pub workers: usize,
    /// Long-poll wait of one receive.
    pub receive_wait: Duration,
    /// Provider attempts before an item is FAILED.
    pub max_attempts: u32,
    /// First retry delay after a transient failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
    /// Provider rate limits to keep.
    pub pacing: PacingLimits,
    /// The queue's visibility timeout: messages of a batch still waiting their turn are kept
    /// invisible by a heartbeat at a third of it, so no other sender takes them meanwhile.
    pub visibility_timeout: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            receive_wait: Duration::from_secs(20),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
            pacing: PacingLimits::default(),
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

/// What one step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendStep {
    /// Queue messages received.
    pub received: usize,
    /// Items sent.
    pub sent: usize,
    /// Items put back to PENDING for a retry.
    pub retried: usize,
    /// Items FAILED.
    pub failed: usize,
    /// Items UNKNOWN.
    pub unknown: usize,
    /// Queue messages acknowledged without a provider call (already final, or claimed elsewhere).
    pub skipped: usize,
}

/// What became of one queue message.
enum Disposition {
    Done(Outcome),
    DeadLetter,
    /// The store is unavailable: leave the message for redelivery.
    Hold,
    /// Retry this message after the delay: it stays in flight (hidden) until then, so the rest of
    /// its conversation waits behind it and order holds.
    Later(Duration),
}

#[derive(Clone, Copy)]
enum Outcome {
    Sent,
    Retried,
    Failed,
    Unknown,
    Skipped,
}

/// The outbound sender.
pub struct Sender {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    telegram: TelegramClient,
    messenger: MessengerClient,
    key: Arc<MasterKey>,
    pacer: Pacer,
    config: SenderConfig,
}

impl Sender {
    /// A sender over the given adapters and provider clients.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        telegram: TelegramClient,
        messenger: MessengerClient,
        key: Arc<MasterKey>,
        config: SenderConfig,
    ) -> Self {
        let pacer = Pacer::new(config.pacing.clone());
        Self { store, queue, telegram, messenger, key, pacer, config }
    }

    /// Runs `workers` loops until `shutdown`; a received batch is finished first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let workers: Vec<_> = (0..self.config.workers.max(1))
            .map(|_| {
                let (me, shutdown) = (Arc::clone(&self), shutdown.clone());
                tokio::spawn(async move {
                    let mut backoff = super::Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
                    while !shutdown.is_cancelled() {
                        match me.run_once_until(&shutdown).await {
                            Ok(_) => backoff.reset(),
                            Err(e) => {
                                let delay = backoff.next_delay();
                                tracing::warn!(error = %e, ?delay, "sender: queue error, backing off");
                                tokio::select! {
                                    () = tokio::time::sleep(delay) => {}
                                    () = shutdown.cancelled() => {}
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// One receive and the sends it brings.
    pub async fn run_once(&self) -> Result<SendStep, QueueError> {
        self.run_once_until(&CancellationToken::new()).await
    }

    async fn run_once_until(&self, shutdown: &CancellationToken) -> Result<SendStep, QueueError> {
        let received = tokio::select! {
            r = self.queue.receive(QueueName::Send, self.queue.max_receive(), self.config.receive_wait) => r?,
            () = shutdown.cancelled() => return Ok(SendStep::default()),
        };
        let mut step = SendStep { received: received.len(), ..SendStep::default() };
        let waiting: Arc<Mutex<HashSet<Receipt>>> =
            Arc::new(Mutex::new(received.iter().map(|m| m.receipt.clone()).collect()));
        let heartbeat = self.heartbeat(Arc::clone(&waiting));
        // Conversations in parallel; the messages of one conversation in order.
        let mut groups: BTreeMap<String, Vec<ReceivedMessage>> = BTreeMap::new();
        for message in received {
            groups.entry(message.group_id.clone()).or_default().push(message);
        }
        let results =
            futures::future::join_all(groups.into_values().map(|messages| self.send_group(messages, &waiting))).await;
        heartbeat.abort();
        for result in results {
            for outcome in result? {
                match outcome {
                    Outcome::Sent => step.sent += 1,
                    Outcome::Retried => step.retried += 1,
                    Outcome::Failed => step.failed += 1,
                    Outcome::Unknown => step.unknown += 1,
                    Outcome::Skipped => step.skipped += 1,
                }
            }
        }
        Ok(step)
    }

    /// Keeps the batch's unfinished messages invisible until the heartbeat is aborted.
    fn heartbeat(&self, waiting: Arc<Mutex<HashSet<Receipt>>>) -> tokio::task::JoinHandle<()> {
        let (queue, timeout) = (Arc::clone(&self.queue), self.config.visibility_timeout);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(timeout / 3).await;
                let receipts: Vec<Receipt> =
                    waiting.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
                for receipt in receipts {
                    let _ = queue.set_visibility(QueueName::Send, &receipt, timeout).await;
                }
            }
        })
    }

    async fn send_group(
        &self,
        messages: Vec<ReceivedMessage>,
        waiting: &Mutex<HashSet<Receipt>>,
    ) -> Result<Vec<Outcome>, QueueError> {
        let mut outcomes = Vec::new();
        let mut messages = messages.into_iter();
        while let Some(message) = messages.next() {
            let disposition = self.deliver(&message).await;
            waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&message.receipt);
            match disposition {
                Disposition::Done(outcome) => {
                    self.queue.delete(QueueName::Send, std::slice::from_ref(&message.receipt)).await?;
                    outcomes.push(outcome);
                }
                Disposition::DeadLetter => {
                    self.queue.dead_letter(QueueName::Send, &message).await?;
                    outcomes.push(Outcome::Failed);
                }
                Disposition::Later(delay) => {
                    // Whole seconds, rounded up: SQS counts visibility in seconds, and a retry
                    // must never come before the provider's retry_after.
                    let hidden = Duration::from_secs(delay.as_millis().div_ceil(1000) as u64);
                    self.queue.set_visibility(QueueName::Send, &message.receipt, hidden).await?;
                    outcomes.push(Outcome::Retried);
                    self.release(messages.by_ref(), waiting).await;
                    break;
                }
                Disposition::Hold => {
                    self.release(messages.by_ref(), waiting).await;
                    break;
                }
            }
        }
        Ok(outcomes)
    }

    /// Hands back the rest of a conversation's batch: the queue keeps them behind the message that
    /// stays in flight.
    async fn release(&self, rest: impl Iterator<Item = ReceivedMessage>, waiting: &Mutex<HashSet<Receipt>>) {
        for message in rest {
            waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&message.receipt);
            let _ = self.queue.set_visibility(QueueName::Send, &message.receipt, Duration::ZERO).await;
        }
    }

    async fn deliver(&self, message: &ReceivedMessage) -> Disposition {
        let Ok(envelope) = serde_json::from_str::<SendEnvelope>(&message.body) else {
            tracing::error!(group = %message.group_id, "sender: unparseable send message; moving it to the DLQ");
            return Disposition::DeadLetter;
        };
        let Ok(id) = OutboxId::parse(&envelope.outbox_id) else {
            return Disposition::DeadLetter;
        };
        match self.try_deliver(&id).await {
            Ok(disposition) => disposition,
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!(outbox = %id, %why, "sender: store unavailable; leaving the message for redelivery");
                Disposition::Hold
            }
            Err(e) => {
                tracing::error!(outbox = %id, error = %e, "sender: store error; leaving the message for redelivery");
                Disposition::Hold
            }
        }
    }

    async fn try_deliver(&self, id: &OutboxId) -> Result<Disposition, StoreError> {
        let Some(item) = self.store.get_outbox(id).await? else {
            return Ok(Disposition::Done(Outcome::Skipped));
        };
        match item.status {
            OutboxStatus::Sent | OutboxStatus::Failed | OutboxStatus::Unknown => {
                return Ok(Disposition::Done(Outcome::Skipped));
            }
            OutboxStatus::Sending => {
                // Its sender died between claiming and recording: the provider may have it.
                let t = OutboxTransition {
                    last_error: Some(
                        "the sender stopped during the provider call; outcome unknown, not resent automatically \
                         (`kamshub outbox retry` resends)"
                            .into(),
                    ),
                    log: Some(log(item.attempts, "unknown", None, Some("sender stopped mid-call"))),
                    ..OutboxTransition::new(&[OutboxStatus::Sending], OutboxStatus::Unknown)
                };
                self.store.transition_outbox(id, &t).await?;
                return Ok(Disposition::Done(Outcome::Unknown));
            }
            OutboxStatus::Pending | OutboxStatus::Enqueued => {}
        }
        if let Some(at) = item.next_attempt_at {
            let now = crate::domain::now();
            if at > now {
                // Back before its retry time: hide it for the rest.
                return Ok(Disposition::Later((at - now).unsigned_abs()));
            }
        }
        let conversation = self.store.get_conversation(&item.tenant_id, &item.conversation_id).await?;
        let channel = self.store.get_channel(&item.tenant_id, &item.channel_id).await?;
        // Wait for the first part's slot before claiming: a crash while waiting leaves the item
        // unclaimed (redelivered and sent), not SENDING (which would read as an unknown outcome).
        self.pace(&channel, &conversation).await;
        let claim = OutboxTransition {
            count_attempt: true,
            last_error: item.last_error.clone(),
            ..OutboxTransition::new(&[OutboxStatus::Pending, OutboxStatus::Enqueued], OutboxStatus::Sending)
        };
        let Some(item) = self.store.transition_outbox(id, &claim).await? else {
            return Ok(Disposition::Done(Outcome::Skipped));
        };
        let (sent, failure) = self.send_parts(&item, &channel, &conversation).await;
        self.record(&item, &channel, sent, failure).await
    }

    /// Sends the parts not sent yet; returns the new provider ids and the failure that stopped it.
    async fn send_parts(
        &self,
        item: &OutboxItem,
        channel: &Channel,
        conversation: &Conversation,
    ) -> (Vec<String>, Option<SendFailure>) {
        if !channel.is_active {
            let failure = SendFailure::Permanent {
                code: None,
                description: format!("channel `{}` is inactive", channel.id),
                needs_reauth: false,
            };
            return (Vec::new(), Some(failure));
        }
        let token = match self.key.open(&channel.credentials, channel.id.as_str()) {
            Ok(token) => token,
            Err(e) => {
                let failure = SendFailure::Permanent { code: None, description: e.to_string(), needs_reauth: false };
                return (Vec::new(), Some(failure));
            }
        };
        let limit = match channel.kind {
            ChannelKind::Telegram => TELEGRAM_MAX_TEXT,
            ChannelKind::Messenger => MESSENGER_MAX_TEXT,
        };
        let thread = conversation.external_thread_id.as_str();
        let mut sent = Vec::new();
        let first = item.provider_message_ids.len();
        for (index, part) in split_text(&item.text, limit).iter().enumerate().skip(first) {
            if index > first {
                self.pace(channel, conversation).await;
            }
            let result = match channel.kind {
                ChannelKind::Telegram => {
                    let reply_to = (index == 0)
                        .then(|| item.reply_to.as_deref().and_then(|r| r.rsplit(':').next()?.parse::<i64>().ok()))
                        .flatten();
                    self.telegram.send_message(&token, thread, part, reply_to).await
                }
                ChannelKind::Messenger => self.messenger.send_text(&token, thread, part, item.send_id.as_str()).await,
            };
            match result {
                Ok(message) => sent.push(match channel.kind {
                    ChannelKind::Telegram => format!("{thread}:{}", message.message_id),
                    ChannelKind::Messenger => message.message_id,
                }),
                Err(e) => return (sent, Some(classify(&e))),
            }
        }
        (sent, None)
    }

    /// Waits for the next send slot of the channel and chat.
    async fn pace(&self, channel: &Channel, conversation: &Conversation) {
        let thread = conversation.external_thread_id.as_str();
        let key = match channel.kind {
            ChannelKind::Telegram => PaceKey::telegram(channel.id.clone(), thread),
            ChannelKind::Messenger => PaceKey::messenger(channel.id.clone(), thread),
        };
        let wait = self.pacer.reserve(key, std::time::Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn record(
        &self,
        item: &OutboxItem,
        channel: &Channel,
        sent: Vec<String>,
        failure: Option<SendFailure>,
    ) -> Result<Disposition, StoreError> {
        let attempt = item.attempts;
        let first = sent.first().cloned();
        let from = [OutboxStatus::Sending];
        let (transition, outcome, dead) = match failure {
            None => (
                OutboxTransition {
                    add_provider_ids: sent,
                    message_status: Some(MessageStatus::Sent),
                    log: Some(log(attempt, "sent", first.as_deref(), None)),
                    ..OutboxTransition::new(&from, OutboxStatus::Sent)
                },
                Outcome::Sent,
                false,
            ),
            Some(SendFailure::RetryAfter(delay)) => self.retry_or_fail(item, sent, delay, "rate limited"),
            Some(SendFailure::Transient(why)) => {
                let delay = backoff(attempt, self.config.backoff_base, self.config.backoff_cap);
                self.retry_or_fail(item, sent, delay, &why)
            }
            Some(SendFailure::Permanent { code, description, needs_reauth }) => {
                if needs_reauth {
                    self.store.set_channel_health(&channel.id, ChannelHealth::NeedsReauth).await?;
                    tracing::warn!(channel = %channel.id, "sender: provider refused the channel's token; needs re-authorisation");
                }
                let error = match code {
                    Some(code) => format!("code {code}: {description}"),
                    None => description,
                };
                (
                    OutboxTransition {
                        last_error: Some(error.clone()),
                        add_provider_ids: sent,
                        message_status: Some(MessageStatus::Failed),
                        log: Some(log(attempt, "failed", first.as_deref(), Some(&error))),
                        ..OutboxTransition::new(&from, OutboxStatus::Failed)
                    },
                    Outcome::Failed,
                    false,
                )
            }
            Some(SendFailure::Unknown(why)) => {
                let error = format!(
                    "outcome unknown ({why}); policy: not resent automatically, `kamshub outbox retry` resends"
                );
                (
                    OutboxTransition {
                        last_error: Some(error.clone()),
                        add_provider_ids: sent,
                        log: Some(log(attempt, "unknown", first.as_deref(), Some(&error))),
                        ..OutboxTransition::new(&from, OutboxStatus::Unknown)
                    },
                    Outcome::Unknown,
                    false,
                )
            }
        };
        let retry_in = transition.next_attempt_at.map(|at| (at - crate::domain::now()).unsigned_abs());
        self.store.transition_outbox(&item.id, &transition).await?;
        Ok(match (dead, outcome, retry_in) {
            (true, _, _) => Disposition::DeadLetter,
            (false, Outcome::Retried, Some(delay)) => Disposition::Later(delay),
            (false, outcome, _) => Disposition::Done(outcome),
        })
    }

    fn retry_or_fail(
        &self,
        item: &OutboxItem,
        sent: Vec<String>,
        delay: Duration,
        why: &str,
    ) -> (OutboxTransition, Outcome, bool) {
        let from = [OutboxStatus::Sending];
        let first = sent.first().cloned();
        if item.attempts >= self.config.max_attempts {
            let error = format!("attempts exhausted after {} tries; last: {why}", item.attempts);
            return (
                OutboxTransition {
                    last_error: Some(error.clone()),
                    add_provider_ids: sent,
                    message_status: Some(MessageStatus::Failed),
                    log: Some(log(item.attempts, "failed", first.as_deref(), Some(&error))),
                    ..OutboxTransition::new(&from, OutboxStatus::Failed)
                },
                Outcome::Failed,
                true,
            );
        }
        let at = crate::domain::now() + delay;
        (
            OutboxTransition {
                last_error: Some(why.to_owned()),
                next_attempt_at: Some(at),
                add_provider_ids: sent,
                log: Some(log(
                    item.attempts,
                    "retry",
                    first.as_deref(),
                    Some(&format!("{why}; next attempt in {delay:?}")),
                )),
                ..OutboxTransition::new(&from, OutboxStatus::Pending)
            },
            Outcome::Retried,
            false,
        )
    }
}

fn log(attempt: u32, outcome: &str, provider_message_id: Option<&str>, detail: Option<&str>) -> SendLogEntry {
    SendLogEntry {
        attempt,
        outcome: outcome.to_owned(),
        provider_message_id: provider_message_id.map(str::to_owned),
        detail: detail.map(str::to_owned),
    }
}

/// Capped exponential backoff with jitter: base × 2^(attempt−1), then a random 50–100 % of it.
fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(cap);
    ceiling.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}
