//! Outbox items: replies waiting to be sent, and what became of each attempt.
//!
//! The item's state machine is here once, as pure code ([`transition`]): every store adapter
//! loads an item, calls [`OutboxItem::apply`], and compare-and-sets the result. What the sender
//! does after a provider call is decided here too ([`policy`]). See docs/architecture.md,
//! "Outbound pipeline".

mod policy;
mod transition;

pub use policy::{Arrival, Decision, QueueAction, RetryPolicy, SendFailure, after_send};
pub use transition::{Applied, SendLogEntry, SendOutcome, Transition, TransitionRefused};

use super::event::{Event, EventId, EventType};
use super::webhook::{WebhookEndpoint, WebhookId};
use super::{
    ChannelId, ConversationId, Direction, Message, MessageBody, MessageId, MessageStatus, TenantId, ValidationError,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

super::ids::id_type!(
    /// An outbox item.
    OutboxId, "outbox id", "obx"
);

/// The idempotency key of a reply, unique per tenant: the client's `Idempotency-Key`, or one
/// kamshub makes. Keys kamshub derives from its own data (a conversation's greeting) start with
/// [`SendId::DERIVED_PREFIX`], which [`SendId::parse`] (every client key goes through it) refuses:
/// no client can take a key kamshub will need, so no client can block a customer's greeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SendId(String);

impl SendId {
    /// Prefix of the keys kamshub derives ([`SendId::derived`]); reserved, case-insensitively.
    pub const DERIVED_PREFIX: &'static str = "kamshub:";

    /// A client's key: 1 to 128 visible ASCII characters (it travels as SQS
    /// `MessageDeduplicationId` and as Messenger `metadata`), outside kamshub's own namespace.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let key = Self::from_stored(s)?;
        if key.is_derived() {
            return Err(ValidationError::new(
                "idempotency key",
                format!("keys starting with `{}` are reserved for kamshub", Self::DERIVED_PREFIX),
            ));
        }
        Ok(key)
    }

    /// A key read back from a store or a queue message: any valid key, kamshub's own included.
    pub fn from_stored(s: &str) -> Result<Self, ValidationError> {
        let ok = (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(ValidationError::new("idempotency key", "must be 1 to 128 visible ASCII characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A key kamshub derives from its own data: `kamshub:{purpose}:{parts joined by ':'}`, the
    /// same for the same inputs (so a replay finds the first item), or `kamshub:{purpose}:sha256:…`
    /// when the parts are too long or not visible ASCII.
    pub fn derived(purpose: &str, parts: &[&str]) -> Self {
        let plain = format!("{}{purpose}:{}", Self::DERIVED_PREFIX, parts.join(":"));
        if plain.len() <= 128 && plain.bytes().all(|b| b.is_ascii_graphic()) {
            return Self(plain);
        }
        use sha2::{Digest, Sha256};
        let digest: String = Sha256::digest(parts.join("\0")).iter().map(|b| format!("{b:02x}")).collect();
        Self(format!("{}{purpose}:sha256:{digest}", Self::DERIVED_PREFIX))
    }

    /// A fresh random key, for replies sent without one. Not derived: no one can predict it, so it
    /// needs no reservation.
    pub fn generate() -> Self {
        Self(format!("snd_{}", uuid::Uuid::now_v7().simple()))
    }

    /// Whether kamshub derived this key (it is in the reserved namespace).
    pub fn is_derived(&self) -> bool {
        self.0.get(..Self::DERIVED_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(Self::DERIVED_PREFIX))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Deserialising reads stored and queued keys, so it accepts kamshub's own.
impl TryFrom<String> for SendId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_stored(&s)
    }
}

impl From<SendId> for String {
    fn from(s: SendId) -> String {
        s.0
    }
}

/// Where an outbox item is: PENDING → ENQUEUED → SENDING → SENT | FAILED | UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum OutboxStatus {
    /// Waiting for the relay (new, or waiting out a retry delay).
    Pending,
    /// On the send queue.
    Enqueued,
    /// Claimed by a sender, provider call under way.
    Sending,
    /// The provider accepted every part.
    Sent,
    /// Given up: permanent provider error or attempts exhausted.
    Failed,
    /// The provider may or may not have it (timeout after the request was sent): never resent
    /// automatically; `outbox retry` resends.
    Unknown,
}

impl OutboxStatus {
    /// Every status.
    pub const ALL: [OutboxStatus; 6] = [
        OutboxStatus::Pending,
        OutboxStatus::Enqueued,
        OutboxStatus::Sending,
        OutboxStatus::Sent,
        OutboxStatus::Failed,
        OutboxStatus::Unknown,
    ];

    /// The wire name (`PENDING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "PENDING",
            OutboxStatus::Enqueued => "ENQUEUED",
            OutboxStatus::Sending => "SENDING",
            OutboxStatus::Sent => "SENT",
            OutboxStatus::Failed => "FAILED",
            OutboxStatus::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for OutboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutboxStatus::ALL.into_iter().find(|x| x.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            ValidationError::new(
                "outbox status",
                format!("`{s}` is not one of PENDING, ENQUEUED, SENDING, SENT, FAILED, UNKNOWN"),
            )
        })
    }
}

/// Something to deliver through the outbox: a reply to a customer, or an event to an integrator's
/// webhook endpoint. Both go the same way (relay, queue, sender) under the same state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Stable id; the queue's messages name it.
    pub id: OutboxId,
    /// The tenant it belongs to (every read of it is scoped by it, except the sender's by id).
    pub tenant_id: TenantId,
    /// Idempotency key, unique per tenant.
    pub send_id: SendId,
    /// What it delivers, and where.
    pub target: Target,
    /// Where it is.
    pub status: OutboxStatus,
    /// Attempts claimed so far.
    pub attempts: u32,
    /// The last failure, in the provider's (or the endpoint's) words.
    pub last_error: Option<String>,
    /// Not to be sent before this time (429 retry_after, backoff).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// What the far side gave back, in order: a reply's provider ids of the parts sent so far (a
    /// long text goes out in several parts); a delivery's accepting answer (`HTTP 200`).
    pub provider_message_ids: Vec<String>,
    /// When it was created (a delivery: when its event was recorded, so deliveries publish in
    /// event order).
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What an outbox item delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A reply in a conversation, through its channel's provider.
    Reply(Reply),
    /// A tenant's event, to one of its webhook endpoints.
    Webhook(Delivery),
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The channel to send through.
    pub channel_id: ChannelId,
    /// The conversation it answers (its send-queue group).
    pub conversation_id: ConversationId,
    /// The outbound message record it delivers.
    pub message_id: MessageId,
    /// The text to send (split into parts at send time if over the provider's limit).
    pub text: String,
    /// Provider id of the message it replies to, if any.
    pub reply_to: Option<String>,
}

/// An event to deliver to a webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The endpoint.
    pub webhook_id: WebhookId,
    /// The event (its body is read from the event log at each attempt).
    pub event_id: EventId,
    /// The event's type, for listings.
    pub event_type: EventType,
    /// The event's conversation: deliveries keep their order per endpoint and conversation.
    pub conversation_id: Option<ConversationId>,
}

/// Which kind of item, as stored and listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutboxKind {
    /// A reply.
    Reply,
    /// A webhook delivery.
    Webhook,
}

impl OutboxKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Reply => "reply",
            OutboxKind::Webhook => "webhook",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "reply" => Ok(OutboxKind::Reply),
            "webhook" => Ok(OutboxKind::Webhook),
            _ => Err(ValidationError::new("outbox kind", format!("`{s}` is not reply or webhook"))),
        }
    }
}

/// What a new reply is made of.
pub struct NewReply {
    /// The tenant replying.
    pub tenant_id: TenantId,
    /// Idempotency key.
    pub send_id: SendId,
    /// Channel to send through.
    pub channel_id: ChannelId,
    /// Conversation it answers.
    pub conversation_id: ConversationId,
    /// The text.
    pub text: String,
    /// Where it sorts among the conversation's messages.
    pub order_key: String,
    /// The time it is shown at.
    pub sent_at: OffsetDateTime,
}

impl OutboxItem {
    /// A reply waiting for the relay, and its pending outbound message: the pair every reply
    /// (API, CLI, auto-reply) stores in one atomic unit.
    pub fn new_reply(reply: NewReply, now: OffsetDateTime) -> (OutboxItem, Message) {
        let sent_ms = (reply.sent_at.unix_timestamp_nanos() / 1_000_000) as i64;
        let message = Message {
            id: MessageId::generate(),
            tenant_id: reply.tenant_id.clone(),
            channel_id: reply.channel_id.clone(),
            conversation_id: reply.conversation_id.clone(),
            external_message_id: None,
            send_id: Some(reply.send_id.to_string()),
            direction: Direction::Outbound,
            status: MessageStatus::Pending,
            text: Some(reply.text.clone()),
            order_key: reply.order_key,
            sent_at: reply.sent_at,
            body: MessageBody { current_at_ms: sent_ms, ..MessageBody::default() },
            created_at: now,
        };
        let target = Target::Reply(Reply {
            channel_id: reply.channel_id,
            conversation_id: reply.conversation_id,
            message_id: message.id.clone(),
            text: reply.text,
            reply_to: None,
        });
        (Self::pending(reply.tenant_id, reply.send_id, target, now), message)
    }

    /// The delivery of `event` to `endpoint`. Keyed by endpoint and event
    /// (`kamshub:webhook:{endpoint}:{event}`), so recording it twice stores it once; a replay
    /// passes a `replay` tag to make a new one. Created at the event's time (a replay: `now`),
    /// which is where its retry window starts.
    pub fn new_delivery(
        endpoint: &WebhookEndpoint,
        event: &Event,
        replay: Option<&str>,
        now: OffsetDateTime,
    ) -> OutboxItem {
        let (webhook, event_id) = (endpoint.id.as_str(), event.id.to_string());
        let send_id = match replay {
            None => SendId::derived("webhook", &[webhook, &event_id]),
            Some(tag) => SendId::derived("webhook-replay", &[webhook, &event_id, tag]),
        };
        let created = if replay.is_some() { now } else { event.at };
        let target = Target::Webhook(Delivery {
            webhook_id: endpoint.id.clone(),
            event_id: event.id,
            event_type: event.event_type,
            conversation_id: event.conversation_id.clone(),
        });
        let mut item = Self::pending(event.tenant_id.clone(), send_id, target, created);
        item.updated_at = now;
        item
    }

    fn pending(tenant_id: TenantId, send_id: SendId, target: Target, now: OffsetDateTime) -> OutboxItem {
        OutboxItem {
            id: OutboxId::generate(),
            tenant_id,
            send_id,
            target,
            status: OutboxStatus::Pending,
            attempts: 0,
            last_error: None,
            next_attempt_at: None,
            provider_message_ids: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The reply, if it is one.
    pub fn reply(&self) -> Option<&Reply> {
        match &self.target {
            Target::Reply(reply) => Some(reply),
            Target::Webhook(_) => None,
        }
    }

    /// The webhook delivery, if it is one.
    pub fn delivery(&self) -> Option<&Delivery> {
        match &self.target {
            Target::Webhook(delivery) => Some(delivery),
            Target::Reply(_) => None,
        }
    }

    /// Reply or webhook delivery.
    pub fn kind(&self) -> OutboxKind {
        match self.target {
            Target::Reply(_) => OutboxKind::Reply,
            Target::Webhook(_) => OutboxKind::Webhook,
        }
    }

    /// The conversation it is about, if any.
    pub fn conversation_id(&self) -> Option<&ConversationId> {
        match &self.target {
            Target::Reply(reply) => Some(&reply.conversation_id),
            Target::Webhook(delivery) => delivery.conversation_id.as_ref(),
        }
    }

    /// Its FIFO group on the queue, which keeps order: a reply's conversation
    /// (`tenant:conversation`); a delivery's endpoint and conversation
    /// (`tenant:endpoint:conversation`, `-` for events about no conversation).
    pub fn group_id(&self) -> String {
        match &self.target {
            Target::Reply(reply) => format!("{}:{}", self.tenant_id, reply.conversation_id),
            Target::Webhook(delivery) => {
                let conversation = delivery.conversation_id.as_ref().map_or("-", ConversationId::as_str);
                format!("{}:{}:{conversation}", self.tenant_id, delivery.webhook_id)
            }
        }
    }
}

/// What the relay puts on the queue (**send** for replies, **deliveries** for webhook deliveries):
/// just enough to load the item. The ids are parsed
/// when the message is read, so a message naming no valid item goes to the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendEnvelope {
    /// Format version ([`SEND_ENVELOPE_VERSION`]).
    pub v: u32,
    /// The outbox item to send.
    pub outbox_id: OutboxId,
    /// Its tenant, for operators reading the queue.
    pub tenant_id: TenantId,
    /// Its sendId, for operators reading the queue (DLQ redrive relies on it for idempotency).
    pub send_id: SendId,
}

/// Version of the send envelope format.
pub const SEND_ENVELOPE_VERSION: u32 = 1;

impl SendEnvelope {
    /// The envelope of `item`.
    pub fn of(item: &OutboxItem) -> Self {
        Self {
            v: SEND_ENVELOPE_VERSION,
            outbox_id: item.id.clone(),
            tenant_id: item.tenant_id.clone(),
            send_id: item.send_id.clone(),
        }
    }
}

/// A fresh reply in `status`, for the state machine's and the policy's tests.
#[cfg(test)]
fn test_item(status: OutboxStatus) -> OutboxItem {
    let now = super::now();
    let reply = NewReply {
        tenant_id: TenantId::generate(),
        send_id: SendId::generate(),
        channel_id: ChannelId::generate(),
        conversation_id: ConversationId::generate(),
        text: "hi".into(),
        order_key: "k".into(),
        sent_at: now,
    };
    let (mut item, _) = OutboxItem::new_reply(reply, now);
    item.status = status;
    item
}

/// A delivery of an event recorded at `at`, in `status`, for the policy's tests.
#[cfg(test)]
fn test_delivery(status: OutboxStatus, at: OffsetDateTime) -> OutboxItem {
    let mut item = test_item(status);
    item.created_at = at;
    item.target = Target::Webhook(Delivery {
        webhook_id: WebhookId::generate(),
        event_id: EventId::new(1),
        event_type: EventType::MessageReceived,
        conversation_id: None,
    });
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_cannot_enter_kamshubs_namespace() {
        assert_eq!(SendId::parse("order-5531-reply-1").unwrap().as_str(), "order-5531-reply-1");
        assert!(SendId::parse("auto-reply:chn_x:6500").is_ok(), "only the prefix is reserved");
        for reserved in ["kamshub:auto-reply:chn_x:6500", "KAMSHUB:x", "Kamshub:"] {
            let error = SendId::parse(reserved).unwrap_err();
            assert!(error.to_string().contains("reserved for kamshub"), "{reserved}: {error}");
        }
        for invalid in ["", "has space", "ä", &"k".repeat(129)] {
            assert!(SendId::parse(invalid).is_err(), "{invalid:?}");
        }
    }

    #[test]
    fn derived_keys_are_stable_reserved_and_always_valid() {
        let greeting = SendId::derived("auto-reply", &["chn_01", "6500"]);
        assert_eq!(greeting.as_str(), "kamshub:auto-reply:chn_01:6500");
        assert_eq!(greeting, SendId::derived("auto-reply", &["chn_01", "6500"]), "same inputs, same key");
        assert!(greeting.is_derived());
        assert_eq!(SendId::from_stored(greeting.as_str()).unwrap(), greeting, "read back from a store");
        let odd = SendId::derived("auto-reply", &["chn_01", &format!("user_ref:{}", "ä".repeat(80))]);
        assert!(odd.as_str().starts_with("kamshub:auto-reply:sha256:"), "{odd}");
        assert_eq!(SendId::from_stored(odd.as_str()).unwrap(), odd, "hashed keys are valid keys");
        assert_ne!(odd, SendId::derived("auto-reply", &["chn_01", "user_ref:other"]));
        assert!(!SendId::generate().is_derived());
    }

    #[test]
    fn stored_keys_deserialise_whatever_their_namespace() {
        let key: SendId = serde_json::from_str("\"kamshub:auto-reply:chn_01:6500\"").unwrap();
        assert!(key.is_derived());
    }
}
