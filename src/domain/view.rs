//! The inbox as clients see it: a conversation and a message, rendered once for the API, for
//! `conversation list|show -o json`, and for the events that carry them (`domain::event`: the
//! event log keeps what a message looked like when the event happened). Views render what the
//! domain types carry: sender and attachments are the domain's own values, and a message kind's
//! data is passed through whole, so what the providers' normalisers add shows up here without a
//! change.

use super::inbound::{Attachment, Sender};
use super::{Conversation, Direction, Message, MessageStatus};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A conversation as inbox lists show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// Conversation id.
    pub conversation_id: String,
    /// The channel it runs on.
    pub channel_id: String,
    /// Telegram chat id or Messenger PSID.
    pub external_thread_id: String,
    /// Group or channel title, where the provider gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Time of its newest message, customers' and agents' alike (RFC 3339).
    pub last_message_at: Option<String>,
    /// The start of its newest message's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// Messages in it, both directions.
    pub message_count: u64,
    /// When its first message was stored (RFC 3339).
    pub created_at: String,
}

/// An earlier version of an edited message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// What it read then.
    pub text: Option<String>,
    /// When that version was written: the send time, or the edit time (RFC 3339).
    pub at: String,
}

/// One reactor's reactions to a message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReactionView {
    /// Who reacted: a person, or a chat reacting anonymously.
    pub by: Sender,
    /// Emoji, `custom_emoji:{id}` (Telegram custom emoji) or `paid` (Telegram paid reaction).
    pub emoji: Vec<String>,
}

/// A message as an inbox shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Message id.
    pub message_id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// `inbound` (from the customer) or `outbound` (an agent, an auto-reply, the page itself).
    pub direction: Direction,
    /// `received`; for outbound messages `pending`, `sent`, `delivered`, `read` or `failed`.
    pub status: MessageStatus,
    /// The latest text, or a media message's caption.
    pub text: Option<String>,
    /// The line an inbox shows for it, never empty: its text; for a system event what happened
    /// ("Aino Virtanen joined", "Mira pinned “…”"); for a message without text what it holds
    /// ("Photo", "Invoice: Express shipping (14.90 EUR)", "Unsupported content: …").
    pub summary: String,
    /// `regular` (text and/or attachments), `callbackQuery`, `postback`, `quickReply`, `system`
    /// (its `kindDetails.event.type` says what happened: `membersJoined`, `topicCreated`,
    /// `migratedTo`, `referral`, ...).
    pub kind: String,
    /// What the kind carries beyond its name (a postback's payload and title, a button's data);
    /// absent when there is nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub kind_details: Option<Map<String, Value>>,
    /// Who sent it, as the provider names them (absent parts are unknown).
    pub sender: Sender,
    /// Photos, files, voice notes, locations, ... as the provider describes them (files are not
    /// downloaded: Telegram `fileId`s and Messenger URLs are kept).
    pub attachments: Vec<Attachment>,
    /// The provider id of the message it replies to.
    pub reply_to: Option<String>,
    /// Earlier versions of an edited message, oldest first; empty if never edited.
    pub versions: Vec<VersionView>,
    /// Who reacted with what, one entry per reactor with reactions now (Telegram reactions,
    /// Messenger reactions); empty if none.
    pub reactions: Vec<ReactionView>,
    /// When the current text was written, if the message was edited (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// The provider's id: Telegram `chatId:messageId`, Messenger `mid`. Absent on an outbound
    /// message the provider has not accepted yet.
    pub external_message_id: Option<String>,
    /// For outbound messages sent through kamshub: the reply's idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_id: Option<String>,
    /// The provider's time of the message (RFC 3339); messages are ordered by it.
    pub sent_at: String,
    /// When kamshub stored it (RFC 3339).
    pub created_at: String,
}

/// Renders a conversation.
pub fn conversation(c: Conversation) -> ConversationView {
    ConversationView {
        conversation_id: c.id.to_string(),
        channel_id: c.channel_id.to_string(),
        external_thread_id: c.external_thread_id,
        title: c.title,
        last_message_at: c.last_message_at.map(rfc3339),
        preview: c.preview,
        message_count: c.message_count,
        created_at: rfc3339(c.created_at),
    }
}

/// Renders a message.
pub fn message(m: Message) -> MessageView {
    let (kind, kind_details) = kind_parts(&m.body.kind);
    let edited = !m.body.versions.is_empty();
    let summary = m.summary();
    let reactions = m.body.reactions.into_iter().filter(|r| !r.emoji.is_empty());
    MessageView {
        summary,
        reactions: reactions.map(|r| ReactionView { by: r.by, emoji: r.emoji }).collect(),
        message_id: m.id.to_string(),
        conversation_id: m.conversation_id.to_string(),
        direction: m.direction,
        status: m.status,
        text: m.text,
        kind,
        kind_details,
        sender: m.body.sender,
        attachments: m.body.attachments,
        reply_to: m.body.reply_to,
        versions: m.body.versions.into_iter().map(|v| VersionView { text: v.text, at: ms_rfc3339(v.at_ms) }).collect(),
        edited_at: edited.then(|| ms_rfc3339(m.body.current_at_ms)),
        external_message_id: m.external_message_id,
        send_id: m.send_id,
        sent_at: rfc3339(m.sent_at),
        created_at: rfc3339(m.created_at),
    }
}

/// A message kind's name (its serde tag) and the rest of its data, whatever the kind.
fn kind_parts<K: Serialize>(kind: &K) -> (String, Option<Map<String, Value>>) {
    match serde_json::to_value(kind) {
        Ok(Value::Object(mut fields)) => {
            let name = match fields.remove("kind") {
                Some(Value::String(name)) => name,
                _ => "regular".to_owned(),
            };
            (name, (!fields.is_empty()).then_some(fields))
        }
        Ok(Value::String(name)) => (name, None),
        _ => ("regular".to_owned(), None),
    }
}

/// Formats a time as RFC 3339 (UTC, milliseconds), as every view shows times.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).expect("a UTC time formats as RFC 3339")
}

fn ms_rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    rfc3339(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::inbound::MessageKind;

    #[test]
    fn a_kind_renders_as_its_name_and_its_data() {
        assert_eq!(kind_parts(&MessageKind::Regular), ("regular".to_owned(), None));
        let (name, details) =
            kind_parts(&MessageKind::Postback { payload: Some("BUY".into()), title: Some("Buy".into()) });
        assert_eq!(name, "postback");
        assert_eq!(Value::Object(details.unwrap()), serde_json::json!({"payload": "BUY", "title": "Buy"}));
    }
}
