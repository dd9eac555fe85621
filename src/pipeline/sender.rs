//! The sender: receives from **send** (replies) or **deliveries** (webhook deliveries: one sender
//! per queue, so a slow integrator never delays a customer's reply), claims the outbox item
//! (compare-and-set to SENDING, attempt + 1), calls the provider (or the endpoint, through
//! `crate::delivery`) within the pacing limits, and records the outcome:
//! - all parts accepted → SENT (provider ids kept; the outbound message becomes `sent`);
//! - 429 → retried no sooner than `retry_after`; 5xx or never-sent errors → retried after a
//!   capped, jittered exponential backoff. A retry keeps its queue message in flight, hidden until
//!   the retry time, so the conversation's later replies wait behind it (order holds); one due
//!   within the visibility timeout is waited out in the sender, holding the conversation's
//!   messages, so the replies behind it spend no receives (`Sender::deliver_holding`). Once
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
//! Webhook deliveries follow the same steps with the endpoint in the provider's place: a 2xx is
//! SENT; 408, 429, 5xx, timeouts and connection failures are retried (held in flight, so the
//! endpoint receives each conversation's events in order) until `[webhooks] retry_for_secs`
//! after the event, then FAILED; any other answer is FAILED at once. Each attempt is recorded on
//! the endpoint (`Store::record_webhook_attempt`), which disables it after a 410 or a whole window
//! of failures; a delivery to a disabled or removed endpoint, or of an event no longer kept, is
//! FAILED without a call.
//!
//! Nothing held lapses in a fault-free run (docs/architecture.md, "Queues"): a heartbeat extends
//! every message of a batch until it is finished; a store that is unavailable is retried with
//! backoff while the message stays held; at shutdown an in-flight receive is awaited (the queue
//! may already have handed out its messages) and whatever is not being sent is released.
//!
//! The decisions (what to do on arrival, what a provider result means) are the domain's
//! (`OutboxItem::on_arrival`, `after_send`); provider specifics are the channel's `Provider`'s.
//! This loop carries them out against the queue, the store and the provider.

use super::batcher::DeleteBatcher;
use super::lease::{GroupLocks, Leases};
use super::pacing::{PaceKey, Pacer, PacingLimits};
use super::worker::{Next, run_loop};
use super::{Backoff, LoopStats};
use crate::delivery::WebhookClient;
use crate::domain::webhook::EndpointState;
use crate::domain::{
    Arrival, Channel, ChannelHealth, Conversation, Delivery, OutboxId, OutboxItem, QueueAction, Reply, RetryPolicy,
    SendEnvelope, SendFailure, Target, Transition, after_send,
};
use crate::providers::send::{classify, split_text};
use crate::providers::{Provider, Providers, ReplyPart};
use crate::queue::{Queue, QueueError, QueueName, Receipt, ReceivedMessage};
use crate::sealing::{MasterKey, SealContext};
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long recording what a provider call did is retried after shutdown began, while the store
/// is unavailable ([`Sender::store_outcome`]). With the embedded store's own bound on a busy write
/// (about 20 s) a stop stays well within the shipped unit's `TimeoutStopSec=90`.
pub const RECORD_GRACE: Duration = Duration::from_secs(15);

/// Tuning of the sender.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Batches worked on at once (each receive brings one; its conversations run in parallel).
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
    /// The queue's visibility timeout: every message of a batch is kept invisible by a heartbeat
    /// at a third of it until it is finished, so none lapses.
    pub visibility_timeout: Duration,
    /// Retries stop this long after an item was created (webhook deliveries); None for replies.
    pub give_up_after: Option<Duration>,
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
            give_up_after: None,
        }
    }
}

/// What the deliveries sender needs besides the common parts: the client, and when an endpoint
/// that keeps failing is disabled.
pub struct Webhooks {
    /// The signed HTTP client.
    pub client: Arc<WebhookClient>,
    /// Failing this long without a success disables an endpoint.
    pub disable_after: Duration,
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
#[derive(Debug)]
enum Disposition {
    Done(Outcome),
    DeadLetter,
    /// Not finished (shutdown while the store was unavailable): release it for redelivery.
    Hold,
    /// Its visibility ran out before it could be claimed (the heartbeat failed): another consumer
    /// may have it now, so it is left alone.
    Lost,
    /// Retry this message after the delay: it stays in flight (hidden) until then, so the rest of
    /// its conversation waits behind it and order holds.
    Later(Duration),
}

#[derive(Debug, Clone, Copy)]
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
    stats: Arc<LoopStats>,
    groups: GroupLocks,
    /// The queue it serves: **send**, or **deliveries** for [`Sender::for_webhooks`].
    queue_name: QueueName,
    webhooks: Option<Webhooks>,
    /// Deletes of finished messages, batched across the sender's conversations (started on first
    /// use, on the queue it serves).
    deletes: std::sync::OnceLock<DeleteBatcher>,
}

impl Sender {
    /// The sender of replies, on **send**, over the given adapters and providers.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        providers: Providers,
        key: Arc<MasterKey>,
        config: SenderConfig,
    ) -> Self {
        Self {
            store,
            queue,
            providers,
            key,
            pacer: Pacer::new(),
            config,
            stats: Arc::default(),
            groups: GroupLocks::default(),
            queue_name: QueueName::Send,
            webhooks: None,
            deletes: std::sync::OnceLock::new(),
        }
    }

    /// The same sender on **deliveries**, delivering webhooks with `webhooks`.
    pub fn for_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.queue_name = QueueName::Deliveries;
        self.webhooks = Some(webhooks);
        self
    }

    /// What this sender counted so far (lapses, heartbeat failures, store retries, restarts).
    pub fn stats(&self) -> &LoopStats {
        &self.stats
    }

    /// Runs until `shutdown`: one receive loop hands each batch to its own task, `workers`
    /// batches at most at once. One receive at a time per process: concurrent long polls are
    /// where moto breaks FIFO group exclusivity (docs/dev/stand-ins.md), and a batch already
    /// works on its conversations in parallel. At shutdown each batch finishes the send under
    /// way and releases the rest; an in-flight receive is awaited (at most `receive_wait`) and
    /// what it brings released. A batch task that panics is logged and counted; the loop goes on.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let batches = Mutex::new(JoinSet::new());
        run_loop("sender", &shutdown, None, || async {
            let slot = Arc::clone(&slots).acquire_owned().await.expect("the semaphore is never closed");
            let received = self.receive(&shutdown).await?;
            if !received.is_empty() {
                let (me, shutdown) = (Arc::clone(&self), shutdown.clone());
                let mut batches = batches.lock().await;
                batches.spawn(async move {
                    let _slot = slot;
                    me.send_batch(received, &shutdown).await
                });
                while let Some(done) = batches.try_join_next() {
                    self.finished(done);
                }
            }
            Ok::<_, QueueError>(Next::Again)
        })
        .await;
        let mut batches = batches.into_inner();
        while let Some(done) = batches.join_next().await {
            self.finished(done);
        }
    }

    /// Applies `step` to `item` in the store, scoped by the tenant the item was read with.
    async fn transition(&self, item: &OutboxItem, step: &Transition) -> Result<Option<OutboxItem>, StoreError> {
        self.store.transition_outbox(&item.tenant_id, &item.id, step, None).await
    }

    /// Deletes a finished message, in one call with the other deletes of the moment.
    async fn delete(&self, receipt: &Receipt) -> Result<(), QueueError> {
        let deletes = self
            .deletes
            .get_or_init(|| DeleteBatcher::start(Arc::clone(&self.queue), self.queue_name, Arc::clone(&self.stats)));
        deletes.delete(receipt.clone()).await
    }

    /// Notes how a batch task ended: a queue error or a panic is logged (and a panic counted).
    fn finished(&self, done: Result<Result<SendStep, QueueError>, tokio::task::JoinError>) {
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "sender: queue error while finishing a batch"),
            Err(e) => {
                self.stats.worker_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "sender: a batch task panicked; its messages return after their timeout, the sender goes on");
            }
        }
    }

    /// The retry policy this sender applies.
    fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.config.max_attempts,
            backoff_base: self.config.backoff_base,
            backoff_cap: self.config.backoff_cap,
            give_up_after: self.config.give_up_after,
        }
    }

    /// One receive and the sends it brings.
    pub async fn run_once(&self) -> Result<SendStep, QueueError> {
        self.run_once_until(&CancellationToken::new()).await
    }

    async fn run_once_until(&self, shutdown: &CancellationToken) -> Result<SendStep, QueueError> {
        let received = self.receive(shutdown).await?;
        self.send_batch(received, shutdown).await
    }

    /// One receive, ended early at shutdown only where the queue can do so without abandoning
    /// messages it already handed out (`Queue::receive_until`).
    async fn receive(&self, shutdown: &CancellationToken) -> Result<Vec<ReceivedMessage>, QueueError> {
        let max = self.queue.max_receive();
        self.queue.receive_until(self.queue_name, max, self.config.receive_wait, shutdown).await
    }

    /// Sends what one receive brought, each conversation in order, conversations in parallel.
    async fn send_batch(
        &self,
        received: Vec<ReceivedMessage>,
        shutdown: &CancellationToken,
    ) -> Result<SendStep, QueueError> {
        let mut step = SendStep { received: received.len(), ..SendStep::default() };
        let receipts = received.iter().map(|m| m.receipt.clone());
        let leases = Arc::new(Leases::new(
            Arc::clone(&self.queue),
            self.queue_name,
            self.config.visibility_timeout,
            Arc::clone(&self.stats),
            receipts,
        ));
        let heartbeat = leases.heartbeat();
        // Conversations in parallel; the messages of one conversation in order.
        let mut groups: BTreeMap<String, Vec<ReceivedMessage>> = BTreeMap::new();
        for message in received {
            groups.entry(message.group_id.clone()).or_default().push(message);
        }
        let results = futures::future::join_all(
            groups.into_values().map(|messages| self.send_group(messages, &leases, shutdown)),
        )
        .await;
        drop(heartbeat);
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

    async fn send_group(
        &self,
        messages: Vec<ReceivedMessage>,
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Result<Vec<Outcome>, QueueError> {
        let mut outcomes = Vec::new();
        // One conversation is worked on by one worker at a time (lease.rs, GroupLocks).
        let group = messages[0].group_id.clone();
        let _turn = tokio::select! {
            turn = self.groups.lock(&group) => Some(turn),
            () = shutdown.cancelled() => None,
        };
        let mut messages = messages.into_iter().peekable();
        while let Some(message) = messages.next_if(|_| !shutdown.is_cancelled()) {
            let disposition = self.deliver_holding(&message, leases, shutdown).await;
            tracing::debug!(group = %message.group_id, receive_count = message.receive_count, body = %message.body, disposition = ?disposition, "sender: message handled");
            match disposition {
                Disposition::Done(outcome) => {
                    leases.end(&message.receipt).await;
                    self.delete(&message.receipt).await?;
                    outcomes.push(outcome);
                }
                Disposition::DeadLetter => {
                    leases.end(&message.receipt).await;
                    self.queue.dead_letter(self.queue_name, &message).await?;
                    outcomes.push(Outcome::Failed);
                }
                Disposition::Later(delay) => {
                    // Whole seconds, rounded up: SQS counts visibility in seconds, and a retry
                    // must never come before the provider's retry_after.
                    let seconds = u64::try_from(delay.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
                    let hidden = Duration::from_secs(seconds).min(crate::queue::MAX_VISIBILITY);
                    leases.end(&message.receipt).await;
                    self.queue.set_visibility(self.queue_name, &message.receipt, hidden).await?;
                    outcomes.push(Outcome::Retried);
                    break;
                }
                Disposition::Hold => {
                    leases.release(&message.receipt).await;
                    break;
                }
                Disposition::Lost => {
                    leases.end(&message.receipt).await;
                    break;
                }
            }
        }
        // The rest of the conversation's batch (behind a retry, or at shutdown): the queue keeps
        // it behind a message that stays in flight, or hands it out again in order.
        for message in messages {
            leases.release(&message.receipt).await;
        }
        Ok(outcomes)
    }

    /// Delivers `message`; a retry due within the visibility timeout is waited out here, holding
    /// the message and the rest of its conversation's batch (the heartbeat extends them), then
    /// tried again, `max_attempts` times at most. Going back to the queue instead would spend a
    /// receive on every message of the conversation received behind it, for each retry: such a
    /// message reached its queue's DLQ after `max_receive_count` of them without ever having
    /// failed (found by tests/faults.rs). A longer wait, or shutdown, goes back to the queue.
    async fn deliver_holding(
        &self,
        message: &ReceivedMessage,
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Disposition {
        let mut holds = 0;
        loop {
            match self.deliver(message, leases, shutdown).await {
                Disposition::Later(delay)
                    if delay < self.config.visibility_timeout
                        && holds < self.config.max_attempts
                        && !shutdown.is_cancelled() =>
                {
                    holds += 1;
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return Disposition::Later(delay),
                    }
                }
                other => return other,
            }
        }
    }

    /// Runs a store call, retrying it with backoff while the store is unavailable (the message
    /// stays held meanwhile); gives the error up only at shutdown.
    async fn store_call<T, F, Fut>(&self, shutdown: &CancellationToken, call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.store_call_past_shutdown(shutdown, Duration::ZERO, call).await
    }

    /// Like [`Sender::store_call`], but goes on retrying for `grace` after shutdown began (counted
    /// from the first failure seen while shutting down).
    async fn store_call_past_shutdown<T, F, Fut>(
        &self,
        shutdown: &CancellationToken,
        grace: Duration,
        mut call: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        let mut stopping_since: Option<tokio::time::Instant> = None;
        loop {
            match call().await {
                Err(StoreError::Unavailable(why)) => {
                    let left = if shutdown.is_cancelled() {
                        let since = *stopping_since.get_or_insert_with(tokio::time::Instant::now);
                        match grace.checked_sub(since.elapsed()).filter(|left| !left.is_zero()) {
                            Some(left) => Some(left),
                            None => return Err(StoreError::Unavailable(why)),
                        }
                    } else {
                        None
                    };
                    self.stats.store_retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    tracing::warn!(%why, ?delay, "sender: store unavailable; holding the message and retrying");
                    match left {
                        Some(left) => tokio::time::sleep(delay.min(left)).await,
                        None => tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = shutdown.cancelled() => {}
                        },
                    }
                }
                other => return other,
            }
        }
    }

    /// Records what a provider or endpoint call did, retrying through shutdown for
    /// [`RECORD_GRACE`]: the call has happened, and a record given up leaves the item SENDING,
    /// which the next sender can only call UNKNOWN (and an operator's retry may then send twice).
    async fn store_outcome<T, F, Fut>(&self, shutdown: &CancellationToken, call: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.store_call_past_shutdown(shutdown, RECORD_GRACE, call).await
    }

    async fn deliver(&self, message: &ReceivedMessage, leases: &Leases, shutdown: &CancellationToken) -> Disposition {
        let Ok(envelope) = serde_json::from_str::<SendEnvelope>(&message.body) else {
            tracing::error!(group = %message.group_id, "sender: unparseable send message; moving it to the DLQ");
            return Disposition::DeadLetter;
        };
        let id = envelope.outbox_id;
        match self.try_deliver(&id, message, leases, shutdown).await {
            Ok(disposition) => disposition,
            Err(StoreError::Unavailable(why)) => {
                tracing::warn!(outbox = %id, %why, "sender: store still unavailable at shutdown; releasing the message");
                Disposition::Hold
            }
            Err(e) => {
                // Not an outage: a planned retry, counted by the queue's receive count (after
                // `max_receive_count` receives the message goes to the DLQ).
                let delay = retry_delay(message.receive_count, self.config.visibility_timeout);
                tracing::error!(outbox = %id, error = %e, ?delay, "sender: store error; retrying the message later");
                Disposition::Later(delay)
            }
        }
    }

    async fn try_deliver(
        &self,
        id: &OutboxId,
        message: &ReceivedMessage,
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Result<Disposition, StoreError> {
        let Some(item) = self.store_call(shutdown, || self.store.get_outbox_for_send(id)).await? else {
            return Ok(Disposition::Done(Outcome::Skipped));
        };
        let item = match item.on_arrival(crate::domain::now()) {
            Arrival::Skip => return Ok(Disposition::Done(Outcome::Skipped)),
            Arrival::Abandoned => {
                self.store_call(shutdown, || self.transition(&item, &Transition::Abandoned)).await?;
                return Ok(Disposition::Done(Outcome::Unknown));
            }
            Arrival::Resume => {
                let retry = Arrival::retry_abandoned();
                match self.store_call(shutdown, || self.transition(&item, &retry)).await? {
                    Some(item) => item,
                    None => return Ok(Disposition::Done(Outcome::Skipped)),
                }
            }
            Arrival::Wait(delay) => return Ok(Disposition::Later(delay)),
            Arrival::Claim => item,
        };
        match &item.target {
            Target::Reply(reply) => self.send_reply(&item, reply, message, leases, shutdown).await,
            Target::Webhook(delivery) => self.deliver_webhook(&item, delivery, message, leases, shutdown).await,
        }
    }

    /// Claims a reply and sends it through its channel's provider.
    async fn send_reply(
        &self,
        item: &OutboxItem,
        reply: &Reply,
        message: &ReceivedMessage,
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Result<Disposition, StoreError> {
        let (tenant, id) = (&item.tenant_id, &item.id);
        let conversation_id = &reply.conversation_id;
        let conversation = self.store_call(shutdown, || self.store.get_conversation(tenant, conversation_id)).await?;
        let channel = self.store_call(shutdown, || self.store.get_channel(tenant, &reply.channel_id)).await?;
        let provider = self.providers.of(channel.kind);
        // Wait until the first part's slot is free before claiming: a crash while waiting leaves
        // the item unclaimed (redelivered and sent), not SENDING (which would read as an unknown
        // outcome). The slot is taken only after the claim, just before the call (`send_parts`):
        // a slot taken before it would shift by the claim's commit time, which varies from send to
        // send, and two sends a limit's period apart could then reach the provider closer together.
        if !self.pace(provider, &channel, &conversation, shutdown).await {
            return Ok(Disposition::Hold);
        }
        // Claim only while the message is surely ours: a redelivery to another sender would find
        // the item SENDING and take it for abandoned.
        if !leases.secure(&message.receipt, self.config.visibility_timeout / 3).await {
            tracing::warn!(outbox = %id, "sender: lost the message's visibility before claiming; leaving it");
            return Ok(Disposition::Lost);
        }
        let claim = self.store_call(shutdown, || self.transition(item, &Transition::Claim)).await?;
        let Some(item) = claim else {
            return Ok(Disposition::Done(Outcome::Skipped));
        };
        let reply = item.reply().expect("a claimed reply is a reply");
        let (sent, failure) = self.send_parts(provider, &item, reply, &channel, &conversation).await;
        self.record(&item, Some((&channel, &conversation)), sent, failure, shutdown).await
    }

    /// Claims a webhook delivery and makes one attempt at its endpoint.
    async fn deliver_webhook(
        &self,
        item: &OutboxItem,
        delivery: &Delivery,
        message: &ReceivedMessage,
        leases: &Leases,
        shutdown: &CancellationToken,
    ) -> Result<Disposition, StoreError> {
        let Some(webhooks) = &self.webhooks else {
            // Published to a queue whose sender cannot deliver it: leave it for redelivery (and,
            // past the receive limit, the DLQ) rather than lose it.
            tracing::error!(outbox = %item.id, queue = %self.queue_name, "sender: a webhook delivery on the replies' queue");
            return Ok(Disposition::Later(self.config.visibility_timeout));
        };
        let (tenant, id) = (&item.tenant_id, &item.id);
        let endpoint = match self.store_call(shutdown, || self.store.get_webhook(tenant, &delivery.webhook_id)).await {
            Ok(endpoint) => Some(endpoint),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let event = self.store_call(shutdown, || self.store.get_event(tenant, delivery.event_id)).await?;
        if !leases.secure(&message.receipt, self.config.visibility_timeout / 3).await {
            tracing::warn!(outbox = %id, "sender: lost the message's visibility before claiming; leaving it");
            return Ok(Disposition::Lost);
        }
        let claim = self.store_call(shutdown, || self.transition(item, &Transition::Claim)).await?;
        let Some(item) = claim else {
            return Ok(Disposition::Done(Outcome::Skipped));
        };
        let not_sent = |why: String| {
            (Vec::new(), Some(SendFailure::Permanent { code: None, description: why, needs_reauth: false }))
        };
        let (sent, failure) = match (endpoint, event) {
            (None, _) => not_sent(format!("not sent: webhook `{}` was removed", delivery.webhook_id)),
            (Some(endpoint), _) if endpoint.state == EndpointState::Disabled => {
                let why = endpoint.disabled_reason.unwrap_or_default();
                not_sent(format!("not sent: webhook `{}` is disabled ({why})", endpoint.id))
            }
            (Some(_), None) => {
                not_sent(format!("not sent: event {} is no longer kept ([events] retention_secs)", delivery.event_id))
            }
            (Some(endpoint), Some(event)) => {
                let attempt = webhooks.client.deliver(&endpoint, &event).await;
                if let Some(result) = &attempt.result {
                    let (hook, after) = (&delivery.webhook_id, webhooks.disable_after);
                    let now =
                        self.store_outcome(shutdown, || self.store.record_webhook_attempt(tenant, hook, result, after));
                    // Loaded enabled, now disabled: this attempt disabled it (or a concurrent one
                    // of another conversation did, just before).
                    if let Some(endpoint) = now.await?
                        && endpoint.state == EndpointState::Disabled
                        && attempt.failure.is_some()
                    {
                        let reason = endpoint.disabled_reason.as_deref().unwrap_or_default();
                        tracing::warn!(webhook = %endpoint.id, tenant = %tenant, %reason, "webhook endpoint disabled");
                        let why = if result.status == Some(410) { "gone" } else { "failing" };
                        metrics::counter!(crate::metrics::WEBHOOK_ENDPOINTS_DISABLED, "reason" => why).increment(1);
                    }
                }
                (attempt.accepted.into_iter().collect(), attempt.failure)
            }
        };
        self.record(&item, None, sent, failure, shutdown).await
    }

    /// Sends the parts not sent yet; returns the new provider references and the failure that
    /// stopped it.
    async fn send_parts(
        &self,
        provider: &dyn Provider,
        item: &OutboxItem,
        reply: &Reply,
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
        let token = match self.key.open(&channel.credentials, SealContext::channel_credentials(channel.id.as_str())) {
            Ok(token) => token,
            Err(e) => {
                let failure = SendFailure::Permanent { code: None, description: e.to_string(), needs_reauth: false };
                return (Vec::new(), Some(failure));
            }
        };
        let mut sent = Vec::new();
        let first = item.provider_message_ids.len();
        for (index, text) in split_text(&reply.text, provider.max_text_chars()).iter().enumerate().skip(first) {
            // Usually no wait: the claim waited for a free slot. Another send to the same bot may
            // have taken it meanwhile; this one then waits, SENDING, for the next.
            let (key, slot) = self.take_slot(provider, channel, conversation).await;
            let part = ReplyPart {
                thread: &conversation.external_thread_id,
                text,
                index,
                reply_to: reply.reply_to.as_deref(),
                send_id: &item.send_id,
            };
            let answer = provider.send_part(&token, &part).await;
            self.pacer.settle(key, slot, std::time::Instant::now());
            match answer {
                Ok(reference) => sent.push(reference),
                Err(e) => return (sent, Some(classify(&e))),
            }
        }
        (sent, None)
    }

    /// Waits until the next send slot of the channel and chat is free, leaving it free (the item
    /// is claimed next, and the slot taken just before the call, [`Sender::take_slot`]); false if
    /// shutdown came first.
    async fn pace(
        &self,
        provider: &dyn Provider,
        channel: &Channel,
        conversation: &Conversation,
        shutdown: &CancellationToken,
    ) -> bool {
        let key = provider.pace_key(&self.config.pacing, &channel.id, &conversation.external_thread_id);
        let wait = self.pacer.free_in(key, std::time::Instant::now());
        Self::count_wait(channel, wait);
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = shutdown.cancelled() => false,
        }
    }

    /// Takes the next send slot of the channel and chat and waits for it (usually no wait: the
    /// claim waited for a free slot, but another send to the same bot may have taken it since).
    /// Returns what [`Pacer::settle`] needs once the provider has answered.
    async fn take_slot(
        &self,
        provider: &dyn Provider,
        channel: &Channel,
        conversation: &Conversation,
    ) -> (PaceKey, std::time::Instant) {
        let key = provider.pace_key(&self.config.pacing, &channel.id, &conversation.external_thread_id);
        let now = std::time::Instant::now();
        let wait = self.pacer.reserve(key.clone(), now);
        Self::count_wait(channel, wait);
        tokio::time::sleep(wait).await;
        (key, now + wait)
    }

    /// Counts a pacing wait in the metrics (a zero wait is not one).
    fn count_wait(channel: &Channel, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let kind = channel.kind.as_str();
        metrics::counter!(crate::metrics::PACING_WAITS, "provider" => kind).increment(1);
        metrics::histogram!(crate::metrics::PACING_WAIT, "provider" => kind).record(wait.as_secs_f64());
    }

    /// Records what the call did, as the domain's policy decides. `reply`: a reply's channel,
    /// whose health a refused token changes, and conversation, which a migrated chat moves.
    async fn record(
        &self,
        item: &OutboxItem,
        reply: Option<(&Channel, &Conversation)>,
        sent: Vec<String>,
        failure: Option<SendFailure>,
        shutdown: &CancellationToken,
    ) -> Result<Disposition, StoreError> {
        let kind = reply.map_or("webhook", |(channel, _)| channel.kind.as_str());
        if matches!(failure, Some(SendFailure::RetryAfter(_))) {
            metrics::counter!(crate::metrics::RATE_LIMITED, "provider" => kind).increment(1);
        }
        let decision = after_send(item, sent, failure, &self.policy(), rand::random(), crate::domain::now());
        if let (Some(thread), Some((channel, conversation))) = (&decision.move_thread, reply) {
            let from = conversation.external_thread_id.as_str();
            self.store_outcome(shutdown, || self.store.move_thread(&item.tenant_id, &channel.id, from, thread)).await?;
            tracing::info!(conversation = %conversation.id, from, to = %thread, "sender: the conversation moved; sending there");
        }
        if let (true, Some((channel, _))) = (decision.needs_reauth, reply) {
            self.store_outcome(shutdown, || self.store.set_channel_health(&channel.id, ChannelHealth::NeedsReauth))
                .await?;
            tracing::warn!(channel = %channel.id, "sender: provider refused the channel's token; needs re-authorisation");
        }
        let step = &decision.transition;
        self.store_outcome(shutdown, || self.transition(item, step)).await?;
        let outcome = match decision.transition {
            Transition::Sent { .. } => Outcome::Sent,
            Transition::Retry { .. } => Outcome::Retried,
            Transition::Unknown { .. } => Outcome::Unknown,
            _ => Outcome::Failed,
        };
        let result = match outcome {
            Outcome::Sent => "sent",
            Outcome::Retried => "retry",
            Outcome::Unknown => "unknown",
            _ => "failed",
        };
        metrics::counter!(crate::metrics::SENDS, "provider" => kind, "result" => result).increment(1);
        Ok(match decision.queue {
            QueueAction::Delete => Disposition::Done(outcome),
            QueueAction::DeadLetter => Disposition::DeadLetter,
            QueueAction::RetryIn(delay) => Disposition::Later(delay),
        })
    }
}

/// Delay before a message whose store step failed (not an outage) comes back: 1 s, 2 s, 4 s, …
/// by receive count, at most the visibility timeout.
fn retry_delay(receive_count: u32, cap: Duration) -> Duration {
    Duration::from_secs(1u64 << receive_count.saturating_sub(1).min(12)).min(cap)
}
