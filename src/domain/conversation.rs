//! Conversations and their messages, as stored.

use super::inbound::{Attachment, MessageKind, Sender};
use super::{ChannelId, TenantId, ValidationError};
use super::{Reaction, Revision};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

super::ids::id_type!(
    /// A conversation: one chat (Telegram) or one customer thread (Messenger) of a channel.
    ConversationId, "conversation id", "cnv"
);
super::ids::id_type!(
    /// A stored message.
    MessageId, "message id", "msg"
);

/// One chat or customer thread of a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Stable id.
    pub id: ConversationId,
    /// Owner.
    pub tenant_id: TenantId,
    /// The channel it runs on.
    pub channel_id: ChannelId,
    /// Telegram chat id or Messenger PSID.
    pub external_thread_id: String,
    /// Group or channel title, where the provider gives one.
    pub title: Option<String>,
    /// Provider time of the newest message.
    pub last_message_at: Option<OffsetDateTime>,
    /// Start of the newest message's text, for inbox lists.
    pub preview: Option<String>,
    /// Messages stored in it.
    pub message_count: u64,
    /// When the first event of it was applied.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// Characters of a message's text kept as its conversation's preview.
pub const PREVIEW_CHARS: usize = 100;

impl Conversation {
    /// A conversation that starts now, with nothing in it yet.
    pub fn new(tenant_id: TenantId, channel_id: ChannelId, external_thread_id: String, now: OffsetDateTime) -> Self {
        Self {
            id: ConversationId::generate(),
            tenant_id,
            channel_id,
            external_thread_id,
            title: None,
            last_message_at: None,
            preview: None,
            message_count: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Counts a new message, the customer's or an agent's (replies and auto-replies count too):
    /// one more message, and if it is the newest, its time and text head the conversation.
    pub fn count_message(&mut self, text: Option<&str>, sent_at: OffsetDateTime) {
        self.message_count += 1;
        self.show_if_newest(text, sent_at);
    }

    /// Makes a message written at `sent_at` the conversation's newest (time and preview) unless
    /// a later one is already shown. Edits of the newest message change the preview too.
    pub fn show_if_newest(&mut self, text: Option<&str>, sent_at: OffsetDateTime) {
        if self.last_message_at.is_none_or(|last| sent_at >= last) {
            self.last_message_at = Some(sent_at);
            self.preview = text.map(|t| t.chars().take(PREVIEW_CHARS).collect());
        }
    }
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer (or a group member, or a channel post).
    Inbound,
    /// From the tenant's staff, an auto-reply, or the page itself.
    Outbound,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// An inbound message, stored.
    Received,
    /// Outbound, not yet accepted by the provider.
    Pending,
    /// Outbound, accepted by the provider.
    Sent,
    /// Outbound, delivered to the customer's device.
    Delivered,
    /// Outbound, seen by the customer.
    Read,
    /// Outbound, given up on.
    Failed,
}

impl MessageStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Pending => "pending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }
}

impl FromStr for MessageStatus {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| ValidationError::new("message status", format!("`{s}` is not a message status")))
    }
}

impl Direction {
    /// The stored name (`inbound`, `outbound`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

impl FromStr for Direction {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Direction::Inbound),
            "outbound" => Ok(Direction::Outbound),
            _ => Err(ValidationError::new("direction", format!("`{s}` is not inbound or outbound"))),
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An earlier version of an edited message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageVersion {
    /// What it read then.
    pub text: Option<String>,
    /// When that version was written (Unix milliseconds): the send time, or the edit time.
    pub at_ms: i64,
    /// Orders versions written within the same millisecond ([`Revision::seq`]); 0 when stored
    /// before kamshub kept it.
    #[serde(default)]
    pub seq: i64,
}

impl MessageVersion {
    /// Where this version stands among the message's versions.
    pub fn revision(&self) -> Revision {
        Revision { at_ms: self.at_ms, seq: self.seq }
    }
}

/// The parts of a message that are shown but never queried: kept as one document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageBody {
    /// Who sent it.
    #[serde(default)]
    pub sender: Sender,
    /// Media and other parts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Plain, button press, postback, quick reply, system event.
    #[serde(default)]
    pub kind: MessageKind,
    /// External id of the message it replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Earlier versions, oldest first (edits keep history).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<MessageVersion>,
    /// When the current text was written (Unix milliseconds).
    #[serde(default)]
    pub current_at_ms: i64,
    /// Orders the current text among versions written in the same millisecond ([`Revision`]).
    #[serde(default)]
    pub current_seq: i64,
    /// Each reactor's current reactions to the message, in the order they first reacted. An
    /// entry whose reactions were all taken back stays (with none), so an older update arriving
    /// late cannot bring them back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
}

impl MessageBody {
    /// Where the current text stands among the message's versions.
    pub fn current_revision(&self) -> Revision {
        Revision { at_ms: self.current_at_ms, seq: self.current_seq }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Stable id.
    pub id: MessageId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Channel.
    pub channel_id: ChannelId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// Provider id: Telegram `chatId:messageId`, Messenger `mid`. None for an outbound message the
    /// provider has not accepted yet.
    pub external_message_id: Option<String>,
    /// Our sendId, for outbound messages.
    pub send_id: Option<String>,
    /// Which way it went.
    pub direction: Direction,
    /// Where it is in its life.
    pub status: MessageStatus,
    /// Latest text.
    pub text: Option<String>,
    /// Provider order key; messages list by it.
    pub order_key: String,
    /// Provider time.
    pub sent_at: OffsetDateTime,
    /// Sender, attachments, kind, reply, history.
    pub body: MessageBody,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}

impl Message {
    /// The line an inbox shows for it ([`super::summary`]): its text, what it holds, or what
    /// happened. Never empty.
    pub fn summary(&self) -> String {
        super::summary(self.text.as_deref(), &self.body.kind, &self.body.sender, &self.body.attachments)
    }
}
