//! Telegram webhooks: the secret-token check, the keys intake needs from an `Update`, and the
//! mapping of an `Update` to an [`InboundEvent`]. Files are described, never downloaded.
//!
//! [`UPDATES`] is the one list of the update types kamshub handles: `setWebhook` subscribes to
//! exactly these (`allowed_updates`), and [`normalize`] maps each with the handler beside it.
//!
//! Explicit nulls (`"audio": null`, written by some client libraries) mean the same as an absent
//! field everywhere here.
//!
//! Forum topics: a topic of a forum supergroup is its own conversation, keyed
//! `{chat}:topic:{thread}` ([`topic_thread`]); the General topic and every non-forum chat are the
//! chat itself. The FIFO group stays the chat, so a topic's messages, the reactions to them and
//! the group's pins are applied in the order they arrived.

mod content;

use super::json::{array, get};
pub use super::messenger_webhook::WebhookError;
use crate::domain::inbound::{
    InboundEvent, IncomingMessage, MessageEdit, MessageKind, ReactionUpdate, Sender, order_key,
};
use crate::domain::{Reaction, Revision, SystemEvent};
use content::{attachments, system_event, unmodelled};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// An update type kamshub handles: its field in `Update` (its name in `allowed_updates` too) and
/// how it maps.
pub struct UpdateType {
    /// The `Update` field.
    pub field: &'static str,
    normalize: fn(&str, &Value, i64) -> Result<InboundEvent, WebhookError>,
}

/// Every update type kamshub subscribes to, each with its handler. `message_reaction` is listed
/// explicitly because Telegram leaves it out unless asked; `my_chat_member` tells when a person
/// blocks the bot or a group removes it.
pub const UPDATES: &[UpdateType] = &[
    UpdateType { field: "message", normalize: new_message },
    UpdateType { field: "edited_message", normalize: edited_message },
    UpdateType { field: "channel_post", normalize: new_message },
    UpdateType { field: "edited_channel_post", normalize: edited_message },
    UpdateType { field: "callback_query", normalize: callback_query },
    UpdateType { field: "message_reaction", normalize: message_reaction },
    UpdateType { field: "my_chat_member", normalize: my_chat_member },
];

/// The `allowed_updates` of `setWebhook`: the fields of [`UPDATES`], in order.
pub fn allowed_updates() -> Vec<&'static str> {
    UPDATES.iter().map(|u| u.field).collect()
}

/// Update fields that carry a `Message`.
const MESSAGE_FIELDS: [&str; 4] = ["message", "edited_message", "channel_post", "edited_channel_post"];

/// What intake needs from an update, without parsing the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateKey {
    /// `update_id`: the provider event id (unique per bot, so per channel).
    pub update_id: i64,
    /// The FIFO group: the chat id as a decimal string (forum topics included: the chat keeps
    /// its events in order); `user:{id}` for updates with a user but no chat (inline callback
    /// queries, inline queries, poll answers); `update:{update_id}` when the update names neither.
    pub thread_id: String,
}

/// Reads the event id and thread of an update. Fails only when `update_id` is missing or not an
/// integer, or a message-carrying update has a message without an integer `chat.id`.
pub fn update_key(update: &Value) -> Result<UpdateKey, WebhookError> {
    let update_id = update_id(update)?;
    let (field, body) = update_field(update);
    let body = body.unwrap_or(&Value::Null);
    let chat_id = if MESSAGE_FIELDS.contains(&field) {
        Some(
            int_at(body, "/chat/id")
                .ok_or_else(|| WebhookError::malformed(format!("{field} has no integer chat.id")))?,
        )
    } else if field == "callback_query" {
        int_at(body, "/message/chat/id")
    } else {
        int_at(body, "/chat/id")
    };
    let user_id = int_at(body, "/from/id").or_else(|| int_at(body, "/user/id"));
    let thread_id = match (chat_id, user_id) {
        (Some(chat), _) => chat.to_string(),
        (None, Some(user)) => format!("user:{user}"),
        (None, None) => format!("update:{update_id}"),
    };
    Ok(UpdateKey { update_id, thread_id })
}

/// Maps an update with the handler [`UPDATES`] lists for its type; an update of any other type is
/// `Ignored` (Telegram only sends those if subscribed elsewhere, or from before a `setWebhook`).
pub fn normalize(update: &Value) -> Result<InboundEvent, WebhookError> {
    let update_id = update_id(update)?;
    let (field, body) = update_field(update);
    let Some(body) = body else {
        return Ok(InboundEvent::Ignored { reason: "update has no content".into() });
    };
    match UPDATES.iter().find(|u| u.field == field) {
        Some(handler) => (handler.normalize)(field, body, update_id),
        None => Ok(InboundEvent::Ignored { reason: format!("unsupported update type {field}") }),
    }
}

/// The conversation thread of a forum topic: `{chat}:topic:{message_thread_id}`.
pub fn topic_thread(chat_id: i64, topic: i64) -> String {
    format!("{chat_id}:topic:{topic}")
}

/// A conversation thread read back: the chat to send to, and the forum topic if it is one.
pub fn parse_thread(thread: &str) -> (&str, Option<i64>) {
    match thread.split_once(":topic:") {
        Some((chat, topic)) => match topic.parse() {
            Ok(topic) => (chat, Some(topic)),
            Err(_) => (thread, None),
        },
        None => (thread, None),
    }
}

/// Compares the `X-Telegram-Bot-Api-Secret-Token` header with the channel's secret in constant
/// time. A missing header, or an empty expected secret (never valid for setWebhook), is `false`.
pub fn secret_matches(expected: &SecretString, header: Option<&[u8]>) -> bool {
    let expected = expected.expose_secret().as_bytes();
    match header {
        Some(header) if !expected.is_empty() => expected.ct_eq(header).into(),
        _ => false,
    }
}

fn update_id(update: &Value) -> Result<i64, WebhookError> {
    update
        .get("update_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| WebhookError::malformed("update has no integer update_id"))
}

/// The update's one optional field (Telegram sends at most one besides `update_id`): its name and
/// value, or `("(none)", None)`. Explicit nulls are skipped.
fn update_field(update: &Value) -> (&str, Option<&Value>) {
    let fields = update.as_object().into_iter().flat_map(Map::iter);
    fields
        .filter(|(k, v)| *k != "update_id" && !v.is_null())
        .map(|(k, v)| (k.as_str(), Some(v)))
        .next()
        .unwrap_or(("(none)", None))
}

fn new_message(field: &str, msg: &Value, update_id: i64) -> Result<InboundEvent, WebhookError> {
    Ok(InboundEvent::Message(message(msg, field, update_id, None)?))
}

/// A new version of a message: the whole message as it now reads, at its `edit_date` (its `date`
/// when absent); `update_id` orders edits within the same second.
fn edited_message(field: &str, msg: &Value, update_id: i64) -> Result<InboundEvent, WebhookError> {
    let edited_at = int_at(msg, "/edit_date").map(seconds_to_ms);
    Ok(InboundEvent::Edit(MessageEdit {
        message: message(msg, field, update_id, edited_at)?,
        replaces_attachments: true,
    }))
}

/// A `Message` (or channel post) in kamshub's terms; `field` names it in errors. Its revision is
/// `(edited_at or date, update_id)`.
fn message(msg: &Value, field: &str, update_id: i64, edited_at: Option<i64>) -> Result<IncomingMessage, WebhookError> {
    let missing = |what: &str| WebhookError::malformed(format!("{field} has no integer {what}"));
    let chat_id = int_at(msg, "/chat/id").ok_or_else(|| missing("chat.id"))?;
    let message_id = int_at(msg, "/message_id").ok_or_else(|| missing("message_id"))?;
    let sent_at_ms = int_at(msg, "/date").map(seconds_to_ms).ok_or_else(|| missing("date"))?;
    let topic = topic_of(msg);
    let reply_to = get(msg, "reply_to_message").and_then(|r| {
        let id = int_at(r, "/message_id")?;
        // Inside a topic, a message that answers nothing in particular "replies" to the topic's
        // creation: that is where it is, not what it answers.
        if topic == Some(id) {
            return None;
        }
        Some(format!("{}:{id}", int_at(r, "/chat/id").unwrap_or(chat_id)))
    });
    let event = system_event(msg, chat_id);
    let text = str_at(msg, "/text").or_else(|| str_at(msg, "/caption"));
    let mut attachments = attachments(msg);
    if text.is_none() && attachments.is_empty() && event.is_none() {
        attachments.extend(unmodelled(msg));
    }
    Ok(IncomingMessage {
        external_message_id: format!("{chat_id}:{message_id}"),
        sender: sender(msg),
        sent_at_ms,
        order_key: order_key(sent_at_ms, &message_id.to_string()),
        text,
        attachments,
        reply_to,
        kind: event.map_or(MessageKind::Regular, |event| MessageKind::System { event }),
        thread_title: thread_title(msg, topic),
        thread: topic.map(|t| topic_thread(chat_id, t)),
        revision: Revision { at_ms: edited_at.unwrap_or(sent_at_ms), seq: update_id },
    })
}

/// The forum topic a message is in: its `message_thread_id` when it is a topic message. In a
/// supergroup that is not a forum, `message_thread_id` names a reply thread, which stays in the
/// chat's conversation.
fn topic_of(msg: &Value) -> Option<i64> {
    let in_topic = get(msg, "is_topic_message").and_then(Value::as_bool) == Some(true)
        || get(msg, "forum_topic_created").is_some();
    in_topic.then(|| int_at(msg, "/message_thread_id")).flatten()
}

/// The conversation's title as far as this message tells: the chat's title; for a forum topic
/// "{chat title} › {topic name}" when the message names the topic (its creation, a rename, or the
/// creation message it hangs under), else nothing.
fn thread_title(msg: &Value, topic: Option<i64>) -> Option<String> {
    let chat_title = str_at(msg, "/chat/title");
    if topic.is_none() {
        return chat_title;
    }
    let name = str_at(msg, "/forum_topic_created/name")
        .or_else(|| str_at(msg, "/forum_topic_edited/name"))
        .or_else(|| str_at(msg, "/reply_to_message/forum_topic_created/name"))?;
    Some(match chat_title {
        Some(chat) => format!("{chat} › {name}"),
        None => name,
    })
}

/// An inline-button press. It has no time of its own: `sent_at_ms` is the date of the message the
/// button is on (0 when that message is absent: inline mode), and its order key sorts it right
/// after that message. Its reply_to is that message; its conversation is that message's.
fn callback_query(_: &str, query: &Value, update_id: i64) -> Result<InboundEvent, WebhookError> {
    let id = str_at(query, "/id").ok_or_else(|| WebhookError::malformed("callback_query has no id"))?;
    let data = str_at(query, "/data");
    let chat_id = int_at(query, "/message/chat/id");
    let message_id = int_at(query, "/message/message_id");
    let sent_at_ms = int_at(query, "/message/date").map_or(0, seconds_to_ms);
    let topic = get(query, "message").and_then(topic_of);
    Ok(InboundEvent::Message(IncomingMessage {
        external_message_id: format!("callback:{id}"),
        sender: user(get(query, "from").unwrap_or(&Value::Null)),
        sent_at_ms,
        order_key: order_key(sent_at_ms, &format!("{:020}:callback:{id}", message_id.unwrap_or(0))),
        text: data.clone().or_else(|| str_at(query, "/game_short_name")),
        attachments: Vec::new(),
        reply_to: chat_id.zip(message_id).map(|(chat, message)| format!("{chat}:{message}")),
        kind: MessageKind::CallbackQuery { data },
        thread_title: get(query, "message").and_then(|m| thread_title(m, topic)),
        thread: chat_id.zip(topic).map(|(chat, topic)| topic_thread(chat, topic)),
        revision: Revision { at_ms: sent_at_ms, seq: update_id },
    }))
}

/// A change of one person's (or an anonymous chat's) reactions to a message: the full new set.
fn message_reaction(_: &str, update: &Value, update_id: i64) -> Result<InboundEvent, WebhookError> {
    let missing = |what: &str| WebhookError::malformed(format!("message_reaction has no integer {what}"));
    let chat_id = int_at(update, "/chat/id").ok_or_else(|| missing("chat.id"))?;
    let message_id = int_at(update, "/message_id").ok_or_else(|| missing("message_id"))?;
    let at_ms = int_at(update, "/date").map(seconds_to_ms).ok_or_else(|| missing("date"))?;
    let by = match get(update, "user") {
        Some(user_value) => user(user_value),
        None => chat_sender(get(update, "actor_chat").unwrap_or(&Value::Null)),
    };
    let emoji = array(update, "new_reaction")
        .filter_map(|r| match str_at(r, "/type").as_deref() {
            Some("emoji") => str_at(r, "/emoji"),
            Some("custom_emoji") => str_at(r, "/custom_emoji_id").map(|id| format!("custom_emoji:{id}")),
            Some(other) => Some(other.to_owned()),
            None => None,
        })
        .collect();
    Ok(InboundEvent::Reaction(ReactionUpdate {
        target: format!("{chat_id}:{message_id}"),
        reaction: Reaction { by, emoji, revision: Revision { at_ms, seq: update_id } },
    }))
}

/// The bot's own membership changed: added to or removed from a group, or blocked and unblocked
/// by a person in a private chat. A system event in the chat's conversation, by whoever did it.
fn my_chat_member(_: &str, update: &Value, update_id: i64) -> Result<InboundEvent, WebhookError> {
    let missing = |what: &str| WebhookError::malformed(format!("my_chat_member has no {what}"));
    let chat_id = int_at(update, "/chat/id").ok_or_else(|| missing("integer chat.id"))?;
    let at_ms = int_at(update, "/date").map(seconds_to_ms).ok_or_else(|| missing("integer date"))?;
    let status = |at: &str| str_at(update, at).unwrap_or_else(|| "unknown".to_owned());
    let event = SystemEvent::BotMembership {
        old_status: status("/old_chat_member/status"),
        new_status: status("/new_chat_member/status"),
        private: str_at(update, "/chat/type").as_deref() == Some("private"),
    };
    let id = format!("member:{}:{update_id}", at_ms / 1000);
    Ok(InboundEvent::Message(IncomingMessage {
        external_message_id: format!("{chat_id}:{id}"),
        sender: user(get(update, "from").unwrap_or(&Value::Null)),
        sent_at_ms: at_ms,
        order_key: order_key(at_ms, &id),
        text: None,
        attachments: Vec::new(),
        reply_to: None,
        kind: MessageKind::System { event },
        thread_title: str_at(update, "/chat/title"),
        thread: None,
        revision: Revision { at_ms, seq: update_id },
    }))
}

/// Who sent a message: `sender_chat` when the message was sent on behalf of a chat (channel
/// posts, anonymous group admins, whose `from` is a placeholder bot), else `from`.
fn sender(msg: &Value) -> Sender {
    match get(msg, "sender_chat") {
        Some(chat) => chat_sender(chat),
        None => user(get(msg, "from").unwrap_or(&Value::Null)),
    }
}

/// A chat acting as a sender: id, title, username.
fn chat_sender(chat: &Value) -> Sender {
    Sender {
        id: int_at(chat, "/id").map(|id| id.to_string()),
        name: str_at(chat, "/title"),
        username: str_at(chat, "/username"),
    }
}

/// A Telegram `User`: id, "first last", username.
fn user(from: &Value) -> Sender {
    let name = [str_at(from, "/first_name"), str_at(from, "/last_name")].into_iter().flatten().collect::<Vec<_>>();
    Sender {
        id: int_at(from, "/id").map(|id| id.to_string()),
        name: (!name.is_empty()).then(|| name.join(" ")),
        username: str_at(from, "/username"),
    }
}

fn int_at(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

fn str_at(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

fn seconds_to_ms(seconds: i64) -> i64 {
    seconds.saturating_mul(1000)
}

#[cfg(test)]
mod tests;
