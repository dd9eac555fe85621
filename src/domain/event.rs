//! Events: what happened in a tenant, in the order it happened. Each is recorded by the store in
//! the same transaction as the change it describes, with an id one higher than the tenant's
//! previous event (a cursor clients resume from), and carries what the thing looked like at that
//! moment (the views of `domain::view`), so a stream or a webhook shows each step, not only the
//! latest state. See docs/architecture.md, "Events and outgoing webhooks".

use super::view::{self, ConversationView, MessageView};
use super::{
    Channel, ChannelHealth, ChannelKind, Conversation, ConversationId, Message, MessageStatus, OutboxItem, TenantId,
    ValidationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// What an event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// A message reached kamshub from a provider: a customer's, or one the page sent elsewhere.
    #[serde(rename = "message.received")]
    MessageReceived,
    /// A stored message got a new version (the customer edited it).
    #[serde(rename = "message.edited")]
    MessageEdited,
    /// Someone reacted to a message, or took a reaction back (its `reactions` now).
    #[serde(rename = "message.reacted")]
    MessageReacted,
    /// An outbound message was delivered to or read by the customer.
    #[serde(rename = "message.status")]
    MessageStatus,
    /// A reply was queued for sending (new, or queued again by `outbox retry`).
    #[serde(rename = "reply.queued")]
    ReplyQueued,
    /// The provider accepted every part of a reply.
    #[serde(rename = "reply.sent")]
    ReplySent,
    /// A reply was given up on.
    #[serde(rename = "reply.failed")]
    ReplyFailed,
    /// A reply may or may not have reached the provider; it is not resent automatically.
    #[serde(rename = "reply.unknown")]
    ReplyUnknown,
    /// A conversation started (its first message arrived).
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    /// A channel's credentials stopped (or started again) to work.
    #[serde(rename = "channel.health")]
    ChannelHealth,
}

impl EventType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [EventType; 10] = [
        EventType::MessageReceived,
        EventType::MessageEdited,
        EventType::MessageReacted,
        EventType::MessageStatus,
        EventType::ReplyQueued,
        EventType::ReplySent,
        EventType::ReplyFailed,
        EventType::ReplyUnknown,
        EventType::ConversationCreated,
        EventType::ChannelHealth,
    ];

    /// The wire name (`message.received`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageEdited => "message.edited",
            EventType::MessageReacted => "message.reacted",
            EventType::MessageStatus => "message.status",
            EventType::ReplyQueued => "reply.queued",
            EventType::ReplySent => "reply.sent",
            EventType::ReplyFailed => "reply.failed",
            EventType::ReplyUnknown => "reply.unknown",
            EventType::ConversationCreated => "conversation.created",
            EventType::ChannelHealth => "channel.health",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            ValidationError::new("event type", format!("`{s}` is not one of {}", names.join(", ")))
        })
    }
}

/// An event's id: one higher than the tenant's previous event, never reused, so it is the cursor
/// a client resumes from (`Last-Event-ID`, `?after=`). Unique within a tenant only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(u64);

impl EventId {
    /// Before the first event: `after` this means from the oldest event kept.
    pub const START: EventId = EventId(0);

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id with this number.
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The next id.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// Reads a cursor (`Last-Event-ID`, `?after=`, `--from-event`): a decimal number.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new("event id", format!("`{s}` is not a decimal event id")));
        }
        s.parse().map(Self).map_err(|_| ValidationError::new("event id", format!("`{s}` is out of range")))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An event about to be recorded: the store gives it its id and time in the transaction that
/// makes the change it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// The conversation it is about, if any (webhooks keep order per conversation).
    pub conversation_id: Option<ConversationId>,
    /// The thing it is about, as clients see it (`{"message": …}`, `{"reply": …}`, ...).
    pub data: Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Whose it is.
    pub tenant_id: TenantId,
    /// Its place in the tenant's log.
    pub id: EventId,
    /// What happened.
    pub event_type: EventType,
    /// When it was recorded; never earlier than the tenant's previous event.
    pub at: OffsetDateTime,
    /// The conversation it is about, if any.
    pub conversation_id: Option<ConversationId>,
    /// The thing it is about, as it was then.
    pub data: Value,
}

/// An event as clients receive it, over SSE, in a poll and as a webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// The tenant's event number: resume after it with `Last-Event-ID` or `?after=`.
    pub event_id: u64,
    /// Whose event it is.
    pub tenant_id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it was recorded (RFC 3339).
    pub at: String,
    /// The conversation it is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// `message.*`: `{message}` (`message.status`: `{messageId, conversationId, status,
    /// externalMessageId}`); `reply.*`: `{reply}`; `conversation.created`: `{conversation}`;
    /// `channel.health`: `{channelId, type, displayName, health}`.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl Event {
    /// The event as clients receive it.
    pub fn view(&self) -> EventView {
        EventView {
            event_id: self.id.get(),
            tenant_id: self.tenant_id.to_string(),
            event_type: self.event_type,
            at: view::rfc3339(self.at),
            conversation_id: self.conversation_id.as_ref().map(ToString::to_string),
            data: self.data.clone(),
        }
    }
}

/// A reply as its events show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplyView {
    /// The outbox item (`GET /tenant/outbox/{outboxId}`).
    pub outbox_id: String,
    /// Its idempotency key.
    pub send_id: String,
    /// The outbound message it delivers.
    pub message_id: String,
    /// The channel it goes through.
    pub channel_id: String,
    /// The conversation it answers.
    pub conversation_id: String,
    /// Where it is (`PENDING`, `SENT`, `FAILED`, `UNKNOWN`, ...).
    pub status: super::OutboxStatus,
    /// Its text.
    pub text: String,
    /// Provider calls so far.
    pub attempts: u32,
    /// The last failure, in the provider's words.
    pub last_error: Option<String>,
    /// Provider ids of the parts sent so far.
    pub provider_message_ids: Vec<String>,
}

impl NewEvent {
    /// `message.received`, `message.edited` or `message.reacted`: the message as it now is.
    pub fn message(event_type: EventType, message: &Message) -> Self {
        let view: MessageView = view::message(message.clone());
        Self { event_type, conversation_id: Some(message.conversation_id.clone()), data: json!({ "message": view }) }
    }

    /// `message.status`: an outbound message moved to `status` (delivered, read).
    pub fn message_status(
        conversation: &ConversationId,
        message: &super::MessageId,
        external_id: Option<&str>,
        status: MessageStatus,
    ) -> Self {
        Self {
            event_type: EventType::MessageStatus,
            conversation_id: Some(conversation.clone()),
            data: json!({
                "messageId": message, "conversationId": conversation, "status": status,
                "externalMessageId": external_id,
            }),
        }
    }

    /// `conversation.created`.
    pub fn conversation_created(conversation: &Conversation) -> Self {
        let view: ConversationView = view::conversation(conversation.clone());
        Self {
            event_type: EventType::ConversationCreated,
            conversation_id: Some(conversation.id.clone()),
            data: json!({ "conversation": view }),
        }
    }

    /// `reply.*`: where a reply is now. None for an item that is not a reply (a webhook delivery
    /// makes no event: its own events would feed it back into the webhooks).
    pub fn reply(event_type: EventType, item: &OutboxItem) -> Option<Self> {
        let reply = item.reply()?;
        let view = ReplyView {
            outbox_id: item.id.to_string(),
            send_id: item.send_id.to_string(),
            message_id: reply.message_id.to_string(),
            channel_id: reply.channel_id.to_string(),
            conversation_id: reply.conversation_id.to_string(),
            status: item.status,
            text: reply.text.clone(),
            attempts: item.attempts,
            last_error: item.last_error.clone(),
            provider_message_ids: item.provider_message_ids.clone(),
        };
        Some(Self { event_type, conversation_id: Some(reply.conversation_id.clone()), data: json!({ "reply": view }) })
    }

    /// `channel.health`: the channel's credentials are refused, or work again.
    pub fn channel_health(channel: &Channel, health: ChannelHealth) -> Self {
        let kind: ChannelKind = channel.kind;
        Self {
            event_type: EventType::ChannelHealth,
            conversation_id: None,
            data: json!({
                "channelId": channel.id, "type": kind, "displayName": channel.display_name.as_str(),
                "health": health,
            }),
        }
    }
}

/// Where a tenant's event log stands: the last id given out and its time. The store keeps it in
/// the same transaction as the events it counts, so ids are gap-free and commit in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventCounter {
    /// The last id given out (0: none yet).
    pub last: EventId,
    /// The time of that event (None: none yet).
    pub last_at: Option<OffsetDateTime>,
}

impl EventCounter {
    /// Numbers `drafts` after this counter: ids one higher each, times never earlier than the
    /// previous event's (a clock that steps back does not reorder the log). Returns the events and
    /// the counter after them.
    pub fn assign(self, tenant: &TenantId, drafts: Vec<NewEvent>, now: OffsetDateTime) -> (Vec<Event>, EventCounter) {
        let at = self.last_at.map_or(now, |last| now.max(last));
        let mut last = self.last;
        let events: Vec<Event> = drafts
            .into_iter()
            .map(|draft| {
                last = last.next();
                Event {
                    tenant_id: tenant.clone(),
                    id: last,
                    event_type: draft.event_type,
                    at,
                    conversation_id: draft.conversation_id,
                    data: draft.data,
                }
            })
            .collect();
        let counter = if events.is_empty() { self } else { EventCounter { last, last_at: Some(at) } };
        (events, counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_back_their_wire_names() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        let error = "message.deleted".parse::<EventType>().unwrap_err().to_string();
        assert!(error.contains("message.received"), "{error}");
    }

    #[test]
    fn cursors_are_decimal_numbers() {
        assert_eq!(EventId::parse("42").unwrap().get(), 42);
        assert_eq!(EventId::parse(" 7 ").unwrap().get(), 7, "Last-Event-ID may carry spaces");
        for bad in ["", "-1", "4x", "1e3", "99999999999999999999"] {
            assert!(EventId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_follow_the_counter_and_times_never_go_back() {
        let tenant = TenantId::generate();
        let draft = || NewEvent { event_type: EventType::ChannelHealth, conversation_id: None, data: json!({}) };
        let t0 = crate::domain::now();
        let (first, counter) = EventCounter::default().assign(&tenant, vec![draft(), draft()], t0);
        assert_eq!(first.iter().map(|e| e.id.get()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(counter, EventCounter { last: EventId::new(2), last_at: Some(t0) });
        let earlier = t0 - time::Duration::seconds(5);
        let (next, counter) = counter.assign(&tenant, vec![draft()], earlier);
        assert_eq!((next[0].id.get(), next[0].at), (3, t0), "a clock behind the log does not reorder it");
        let (none, same) = counter.assign(&tenant, Vec::new(), t0);
        assert!(none.is_empty());
        assert_eq!(same, counter);
    }
}
