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
//!
//! The decisions (what to do on arrival, what a provider result means) are the domain's
//! (`OutboxItem::on_arrival`, `after_send`); provider specifics are the channel's `Provider`'s.
//! This loop carries them out against the queue, the store and the provider.

use super::pacing::{Pacer, PacingLimits};
use super::worker::{Next, run_loop, run_workers};
use crate::domain::{
    Arrival, Channel, ChannelHealth, Conversation, OutboxId, OutboxItem, QueueAction, RetryPolicy, SendEnvelope,
    SendFailure, Transition, after_send,
};
use crate::providers::send::{classify, split_text};
use crate::providers::{Provider, Providers, ReplyPart};
use crate::queue::{Queue, QueueError, QueueName, Receipt, ReceivedMessage};
use crate::sealing::MasterKey;
use crate::store::{Store, StoreError};
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
    providers: Providers,
    key: Arc<MasterKey>,
    pacer: Pacer,
    config: SenderConfig,
}

impl Sender {
    /// A sender over the given adapters and providers.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        providers: Providers,
        key: Arc<MasterKey>,
        config: SenderConfig,
    ) -> Self {
        Self { store, queue, providers, key, pacer: Pacer::new(), config }
    }

    /// Runs `workers` loops until `shutdown`; a received batch is finished first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        run_workers("sender", self.config.workers, || {
            let (me, shutdown) = (Arc::clone(&self), shutdown.clone());
            async move {
                run_loop("sender", &shutdown, None, || async {
                    me.run_once_until(&shutdown).await.map(|_| Next::Again)
                })
                .await
            }
        })
        .await;
    }

    /// The retry policy this sender applies.
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.config.max_attempts,
            backoff_base: self.config.backoff_base,
            backoff_cap: self.config.backoff_cap,
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
        let id = envelope.outbox_id;
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
        match item.on_arrival(crate::domain::now()) {
            Arrival::Skip => return Ok(Disposition::Done(Outcome::Skipped)),
            Arrival::Abandoned => {
                self.store.transition_outbox(id, &Transition::Abandoned, None).await?;
                return Ok(Disposition::Done(Outcome::Unknown));
            }
            Arrival::Wait(delay) => return Ok(Disposition::Later(delay)),
            Arrival::Claim => {}
        }
        let conversation = self.store.get_conversation(&item.tenant_id, &item.conversation_id).await?;
        let channel = self.store.get_channel(&item.tenant_id, &item.channel_id).await?;
        let provider = self.providers.of(channel.kind);
        // Wait for the first part's slot before claiming: a crash while waiting leaves the item
        // unclaimed (redelivered and sent), not SENDING (which would read as an unknown outcome).
        self.pace(provider, &channel, &conversation).await;
        let Some(item) = self.store.transition_outbox(id, &Transition::Claim, None).await? else {
            return Ok(Disposition::Done(Outcome::Skipped));
        };
        let (sent, failure) = self.send_parts(provider, &item, &channel, &conversation).await;
        self.record(&item, &channel, sent, failure).await
    }

    /// Sends the parts not sent yet; returns the new provider references and the failure that
    /// stopped it.
    async fn send_parts(
        &self,
        provider: &dyn Provider,
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
        let mut sent = Vec::new();
        let first = item.provider_message_ids.len();
        for (index, text) in split_text(&item.text, provider.max_text_chars()).iter().enumerate().skip(first) {
            if index > first {
                self.pace(provider, channel, conversation).await;
            }
            let part = ReplyPart {
                thread: &conversation.external_thread_id,
                text,
                index,
                reply_to: item.reply_to.as_deref(),
                send_id: &item.send_id,
            };
            match provider.send_part(&token, &part).await {
                Ok(reference) => sent.push(reference),
                Err(e) => return (sent, Some(classify(&e))),
            }
        }
        (sent, None)
    }

    /// Waits for the next send slot of the channel and chat.
    async fn pace(&self, provider: &dyn Provider, channel: &Channel, conversation: &Conversation) {
        let key = provider.pace_key(&self.config.pacing, &channel.id, &conversation.external_thread_id);
        let wait = self.pacer.reserve(key, std::time::Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Records what the provider call did, as the domain's policy decides.
    async fn record(
        &self,
        item: &OutboxItem,
        channel: &Channel,
        sent: Vec<String>,
        failure: Option<SendFailure>,
    ) -> Result<Disposition, StoreError> {
        let decision = after_send(item, sent, failure, &self.policy(), rand::random());
        if decision.needs_reauth {
            self.store.set_channel_health(&channel.id, ChannelHealth::NeedsReauth).await?;
            tracing::warn!(channel = %channel.id, "sender: provider refused the channel's token; needs re-authorisation");
        }
        self.store.transition_outbox(&item.id, &decision.transition, None).await?;
        let outcome = match decision.transition {
            Transition::Sent { .. } => Outcome::Sent,
            Transition::Retry { .. } => Outcome::Retried,
            Transition::Unknown { .. } => Outcome::Unknown,
            _ => Outcome::Failed,
        };
        Ok(match decision.queue {
            QueueAction::Delete => Disposition::Done(outcome),
            QueueAction::DeadLetter => Disposition::DeadLetter,
            QueueAction::RetryIn(delay) => Disposition::Later(delay),
        })
    }
}
