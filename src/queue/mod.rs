//! The `Queue` port: FIFO queues with SQS FIFO semantics. Adapters: [`sqlite`] (embedded) and
//! [`sqs`] (Amazon SQS FIFO).
//!
//! Semantics both adapters give (docs/architecture.md, "Queues"):
//! - strict FIFO order within a message group; no order across groups;
//! - while any message of a group is in flight (received, not deleted, visibility not expired),
//!   no other message of that group is delivered;
//! - a send whose deduplication id was seen on the same queue in the last 5 minutes is accepted
//!   but not enqueued again (even if the first was already deleted);
//! - a received message stays invisible for the visibility timeout, which the consumer can
//!   extend (heartbeat) or end early (release); each receive counts;
//! - a receive that would deliver a message for the `max_receive_count + 1`-th time moves it to
//!   the queue's DLQ instead, keeping its group id;
//! - batches: send, receive, delete and visibility changes take up to 10 messages per call on
//!   SQS; adapters accept any number on send, delete and [`Queue::set_visibility_batch`] and split
//!   as needed;
//! - receive long-polls: it waits up to `wait` for a message before answering empty.

pub mod metered;
pub mod sqlite;
pub mod sqs;

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// How long a deduplication id suppresses repeated sends.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Most messages one receive returns (SQS's limit).
pub const MAX_RECEIVE_BATCH: usize = 10;
/// Longest a receive may wait for a first message (SQS's `WaitTimeSeconds` limit).
pub const MAX_WAIT: Duration = Duration::from_secs(20);
/// Longest a delivery may stay invisible (SQS's 12 h limit).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);
/// Largest body, in bytes (SQS's limit, also for a whole send batch).
pub const MAX_BODY_BYTES: usize = 1_048_576;
/// Longest group id or deduplication id (SQS's limit).
pub const MAX_ID_CHARS: usize = 128;

/// The six queues of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueName {
    /// Webhook envelopes waiting for the processor.
    Incoming,
    /// Incoming messages that failed `max_receive_count` times or could not be parsed.
    IncomingDlq,
    /// Replies waiting for the sender.
    Send,
    /// Send messages that failed `max_receive_count` times.
    SendDlq,
    /// Webhook deliveries waiting for the sender: a queue of their own, so an integrator's slow
    /// or failing endpoint never delays a reply to a customer.
    Deliveries,
    /// Delivery messages that failed their queue's receive limit or could not be parsed.
    DeliveriesDlq,
}

impl QueueName {
    /// All six, sources before their DLQs.
    pub const ALL: [QueueName; 6] = [
        QueueName::Incoming,
        QueueName::IncomingDlq,
        QueueName::Send,
        QueueName::SendDlq,
        QueueName::Deliveries,
        QueueName::DeliveriesDlq,
    ];

    /// The queues that have a DLQ.
    pub const SOURCES: [QueueName; 3] = [QueueName::Incoming, QueueName::Send, QueueName::Deliveries];

    /// The queue's place in [`QueueName::ALL`], for adapters that keep one slot per queue.
    pub fn slot(self) -> usize {
        QueueName::ALL.iter().position(|q| *q == self).expect("every queue is in ALL")
    }

    /// The queue's name under `prefix`: `{prefix}-incoming.fifo`, `{prefix}-incoming-dlq.fifo`, ...
    pub fn full_name(self, prefix: &str) -> String {
        format!("{prefix}-{}.fifo", self.suffix())
    }

    /// `incoming`, `incoming-dlq`, `send`, `send-dlq`, `deliveries`, `deliveries-dlq`.
    pub fn suffix(self) -> &'static str {
        match self {
            QueueName::Incoming => "incoming",
            QueueName::IncomingDlq => "incoming-dlq",
            QueueName::Send => "send",
            QueueName::SendDlq => "send-dlq",
            QueueName::Deliveries => "deliveries",
            QueueName::DeliveriesDlq => "deliveries-dlq",
        }
    }

    /// The DLQ of a source queue; `None` for a DLQ.
    pub fn dlq(self) -> Option<QueueName> {
        match self {
            QueueName::Incoming => Some(QueueName::IncomingDlq),
            QueueName::Send => Some(QueueName::SendDlq),
            QueueName::Deliveries => Some(QueueName::DeliveriesDlq),
            QueueName::IncomingDlq | QueueName::SendDlq | QueueName::DeliveriesDlq => None,
        }
    }

    /// The source queue of a DLQ; `None` for a source queue.
    pub fn source(self) -> Option<QueueName> {
        match self {
            QueueName::IncomingDlq => Some(QueueName::Incoming),
            QueueName::SendDlq => Some(QueueName::Send),
            QueueName::DeliveriesDlq => Some(QueueName::Deliveries),
            QueueName::Incoming | QueueName::Send | QueueName::Deliveries => None,
        }
    }
}

/// Receives after which each source queue moves a message to its DLQ. The deliveries queue
/// allows more: a webhook delivery is retried, held in flight so the rest of its conversation
/// waits behind it, for as long as `[webhooks] retry_for_secs` (`Settings::receive_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// `incoming` and `send`: `[queue] max_receive_count`.
    pub common: u32,
    /// `deliveries`.
    pub deliveries: u32,
}

impl ReceiveLimits {
    /// The same limit for every queue.
    pub fn uniform(limit: u32) -> Self {
        Self { common: limit, deliveries: limit }
    }

    /// The limit of a source queue (DLQs have none).
    pub fn of(&self, queue: QueueName) -> Option<u32> {
        match queue {
            QueueName::Incoming | QueueName::Send => Some(self.common),
            QueueName::Deliveries => Some(self.deliveries),
            QueueName::IncomingDlq | QueueName::SendDlq | QueueName::DeliveriesDlq => None,
        }
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// FIFO group (≤ 128 characters): order holds within it.
    pub group_id: String,
    /// Deduplication id (≤ 128 characters).
    pub dedupe_id: String,
    /// The body (JSON text, ≤ 1 MiB).
    pub body: String,
}

/// Proof of a receive, needed to delete, extend or release that delivery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receipt(pub String);

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The queue's id for the message (stable across deliveries).
    pub message_id: String,
    /// Handle of this delivery.
    pub receipt: Receipt,
    /// FIFO group.
    pub group_id: String,
    /// Body as sent.
    pub body: String,
    /// How many times the message has been received, this delivery included (1 on the first).
    pub receive_count: u32,
}

/// A DLQ message as [`Queue::peek`] shows it: looked at, not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekedMessage {
    /// The queue's id for the message.
    pub message_id: String,
    /// FIFO group (kept from the source queue).
    pub group_id: String,
    /// Body as sent to the source queue.
    pub body: String,
    /// When it was sent to its first queue (Unix milliseconds), so operators see its age.
    pub sent_at_ms: i64,
}

/// What a queue holds right now (approximate on SQS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Messages waiting to be received.
    pub visible: u64,
    /// Messages received and not yet deleted or expired.
    pub in_flight: u64,
}

/// What went wrong in a queue call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The queue does not exist (run `kamshub queues init` on SQS).
    #[error("queue {0} does not exist; run `kamshub queues init`")]
    Missing(String),
    /// The receipt is unknown or expired (the message was redelivered to someone else).
    #[error("receipt is no longer valid")]
    StaleReceipt,
    /// A message or argument breaks the queue's limits (size, id length, batch size).
    #[error("{0}")]
    Invalid(String),
    /// The queue service cannot be reached; retrying later may succeed.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("queue error: {0}")]
    Other(String),
}

/// Result of a queue call.
pub type QueueResult<T> = Result<T, QueueError>;

/// How a producer should group concurrent sends to a queue ([`Queue::send_batching`]), as used by
/// intake's batcher (`pipeline::batcher`).
///
/// A batch goes as soon as it holds `max_messages`. Short of that, it waits `linger` after its
/// first message for more; and if sends are still in flight by then, it keeps collecting until
/// they have all answered or `max_linger` has passed since its first message (Nagle's algorithm:
/// a batch that could not have gone out alone anyway fills while the earlier ones are answered).
/// `max_linger` equal to `linger` turns that off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBatching {
    /// Messages that make a batch full: sent at once.
    pub max_messages: usize,
    /// Wait for more after a batch's first message.
    pub linger: Duration,
    /// Longest wait after a batch's first message while other sends are in flight: the most a
    /// partial batch adds to its callers' latency.
    pub max_linger: Duration,
}

impl SendBatching {
    /// The embedded queue's: one SQLite transaction takes any number of messages and costs about
    /// the same for one as for hundreds, so a batch takes what arrives within 2 ms, up to 500.
    pub const EMBEDDED: SendBatching =
        SendBatching { max_messages: 500, linger: Duration::from_millis(2), max_linger: Duration::from_millis(2) };
}

/// FIFO queues with SQS FIFO semantics.
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Adapter name for logs (`sqlite`, `sqs`).
    fn kind(&self) -> &'static str;

    /// The most messages one `receive` may ask for: SQS's 10, more where the backend allows.
    fn max_receive(&self) -> usize {
        MAX_RECEIVE_BATCH
    }

    /// How concurrent sends to this queue are best grouped ([`SendBatching`]): the embedded
    /// queue's by default.
    fn send_batching(&self) -> SendBatching {
        SendBatching::EMBEDDED
    }

    /// Sends messages, in order. Returns once every message is durably enqueued (or deduplicated).
    /// Any number of messages; adapters batch as their backend allows.
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> QueueResult<()>;

    /// Receives up to `max` (≤ [`Queue::max_receive`]) messages, waiting up to `wait` (≤ 20 s) for the first. Messages
    /// of one group come in order; several groups may be mixed.
    async fn receive(&self, queue: QueueName, max: usize, wait: Duration) -> QueueResult<Vec<ReceivedMessage>>;

    /// Like [`Queue::receive`], but stops waiting once `stop` is cancelled, returning what it has
    /// (possibly nothing). It never abandons a call that may already have taken messages from the
    /// queue (they would lapse). The default waits the receive out: an SQS long poll cannot be
    /// called back, so a consumer's shutdown takes up to `wait` there.
    async fn receive_until(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
        stop: &tokio_util::sync::CancellationToken,
    ) -> QueueResult<Vec<ReceivedMessage>> {
        let _ = stop;
        self.receive(queue, max, wait).await
    }

    /// Deletes delivered messages (acknowledges them). Any number of receipts. A receipt that is
    /// stale (its message was delivered again since, or is already deleted) is skipped, not an
    /// error: SQS also accepts an old receipt without deleting the redelivered message. So an `Ok`
    /// does not prove every message is gone; a consumer that overran its visibility timeout may
    /// see the message again and must be idempotent.
    async fn delete(&self, queue: QueueName, receipts: &[Receipt]) -> QueueResult<()>;

    /// Sets a delivery's remaining invisibility to `timeout` (≤ 12 h) from now (heartbeat). Zero
    /// releases it for redelivery at once. [`QueueError::StaleReceipt`] when the delivery is no
    /// longer in flight (expired, released, redelivered or deleted).
    async fn set_visibility(&self, queue: QueueName, receipt: &Receipt, timeout: Duration) -> QueueResult<()>;

    /// [`Queue::set_visibility`] for several deliveries of `queue` at once (the heartbeat of a
    /// held batch): one answer per receipt, in order. A partial failure is normal: a receipt that
    /// is no longer in flight fails with [`QueueError::StaleReceipt`], the others are changed.
    /// Any number of receipts: SQS takes 10 per `ChangeMessageVisibilityBatch` (the adapter
    /// splits), the embedded queue changes all in one transaction. An `Err` of the whole call
    /// (an invalid timeout, a missing queue) means nothing was changed.
    async fn set_visibility_batch(
        &self,
        queue: QueueName,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> QueueResult<Vec<QueueResult<()>>>;

    /// Moves a delivered message to the queue's DLQ now (unparseable messages), keeping its group
    /// and body. [`QueueError::Invalid`] on a DLQ (it has none). On SQS this is a send to the DLQ
    /// then a delete, so a stale receipt can leave the message in both queues.
    async fn dead_letter(&self, queue: QueueName, message: &ReceivedMessage) -> QueueResult<()>;

    /// How many messages the queue holds.
    async fn depth(&self, queue: QueueName) -> QueueResult<Depth>;

    /// Up to `max` messages of a DLQ, in FIFO order (each group's in order), without taking
    /// them: they stay where they are and nothing about them changes that matters. Embedded, a
    /// pure read that also lists messages in flight. On SQS, which has no peek, a receive that
    /// hides them for a moment and releases them at once; their receive count grows, which moves
    /// nothing on a DLQ (it has no redrive policy). [`QueueError::Invalid`] on a source queue,
    /// where a receive could hand a consumer's message away or burn its receive count.
    async fn peek(&self, queue: QueueName, max: usize) -> QueueResult<Vec<PeekedMessage>>;

    /// When the oldest message of the queue was sent (Unix milliseconds), where the backend can
    /// tell without receiving anything: the embedded queue can; SQS answers `None` (its figure,
    /// `ApproximateAgeOfOldestMessage`, is a CloudWatch metric, not a queue attribute).
    async fn oldest_sent_at(&self, queue: QueueName) -> QueueResult<Option<i64>>;
}

/// Checks a peek's arguments: a DLQ, and at least one message.
pub(crate) fn check_peek(queue: QueueName, max: usize) -> QueueResult<()> {
    if queue.source().is_none() {
        return Err(QueueError::Invalid(format!("{queue} is not a DLQ; only DLQs can be peeked")));
    }
    if max == 0 {
        return Err(QueueError::Invalid("peek takes at least 1 message".into()));
    }
    Ok(())
}

/// Checks a message against SQS's limits, so both adapters refuse the same messages before
/// anything is sent.
pub(crate) fn check_outgoing(message: &OutgoingMessage) -> QueueResult<()> {
    for (what, id) in [("group id", &message.group_id), ("deduplication id", &message.dedupe_id)] {
        if id.is_empty() || id.chars().count() > MAX_ID_CHARS || !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(QueueError::Invalid(format!(
                "{what} `{id}` must be 1 to {MAX_ID_CHARS} ASCII letters, digits or punctuation"
            )));
        }
    }
    if message.body.is_empty() || message.body.len() > MAX_BODY_BYTES {
        return Err(QueueError::Invalid(format!(
            "message body must be 1 to {MAX_BODY_BYTES} bytes, not {}",
            message.body.len()
        )));
    }
    // SQS accepts #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
    if let Some(c) = message
        .body
        .chars()
        .find(|&c| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    {
        return Err(QueueError::Invalid(format!("message body holds a character SQS refuses: {:?}", c)));
    }
    Ok(())
}

/// Checks a receive's arguments: `max` within the adapter's `limit`, `wait` within SQS's.
pub(crate) fn check_receive(max: usize, limit: usize, wait: Duration) -> QueueResult<()> {
    if !(1..=limit).contains(&max) {
        return Err(QueueError::Invalid(format!("receive takes 1 to {limit} messages, not {max}")));
    }
    if wait > MAX_WAIT {
        return Err(QueueError::Invalid(format!("receive waits at most {} s", MAX_WAIT.as_secs())));
    }
    Ok(())
}

/// Checks a visibility timeout against SQS's limit.
pub(crate) fn check_visibility(timeout: Duration) -> QueueResult<()> {
    if timeout > MAX_VISIBILITY {
        return Err(QueueError::Invalid(format!("visibility timeout is at most {} s", MAX_VISIBILITY.as_secs())));
    }
    Ok(())
}
