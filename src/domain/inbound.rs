//! Inbound events: the envelope intake puts on the queue, and the normalised event the processor
//! applies. Provider parsing lives in `providers`; this is the shape both providers map to.

use super::{ChannelId, ChannelKind, Reaction, Revision, SystemEvent, TenantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Version of the envelope format on the incoming queue.
pub const ENVELOPE_VERSION: u32 = 1;

/// One provider event as intake enqueues it. The payload is the provider's JSON for this one
/// event, kept raw so it can be stored and re-parsed later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Format version ([`ENVELOPE_VERSION`]).
    pub v: u32,
    /// Owner of the channel, resolved at intake.
    pub tenant_id: TenantId,
    /// The channel the webhook came in on.
    pub channel_id: ChannelId,
    /// Which provider's payload this is.
    pub provider: ChannelKind,
    /// The provider's id for the event (Telegram `update_id`; Messenger `mid`, or a stable hash).
    pub provider_event_id: String,
    /// The conversation it belongs to (Telegram `chat.id`; Messenger customer PSID).
    pub thread_id: String,
    /// When intake acknowledged it (Unix milliseconds).
    pub received_at_ms: i64,
    /// The provider's event JSON (a Telegram `Update`; one Messenger `messaging[]` item), or, for
    /// an event intake could not read, the raw body as a JSON string.
    pub payload: serde_json::Value,
    /// Why intake could not read this event (not JSON, no `update_id`, nested too deep): the
    /// processor records it as ignored with this reason, keeping the raw body for inspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<String>,
}

impl Envelope {
    /// `MessageGroupId`: events of one conversation are applied in order. A thread id that would
    /// break the queue's limits (over-long, or not visible ASCII, as a Chat Plugin `user_ref` may
    /// be) is replaced by a hash of it: the same thread, the same group.
    pub fn group_id(&self) -> String {
        let plain = format!("{}:{}:{}", self.tenant_id, self.channel_id, self.thread_id);
        if plain.len() <= 128 && plain.bytes().all(|b| b.is_ascii_graphic()) {
            return plain;
        }
        format!("{}:{}:h{}", self.tenant_id, self.channel_id, &sha256_hex(&self.thread_id)[..48])
    }

    /// `MessageDeduplicationId`: sha256 of `tenantId:channelId:providerEventId`, hex.
    pub fn dedupe_id(&self) -> String {
        sha256_hex(&format!("{}:{}:{}", self.tenant_id, self.channel_id, self.provider_event_id))
    }

    /// The envelope as a queue message body: JSON in which every character SQS refuses in a
    /// message (the noncharacters U+FFFE and U+FFFF; controls are escaped by any JSON encoder)
    /// is written as a `\u` escape. JSON readers decode the escape to the same character, so
    /// the body parses back to this envelope unchanged, whatever a provider put in it.
    pub fn queue_body(&self) -> String {
        let json = serde_json::to_string(self).expect("an envelope serialises");
        if !json.contains(['\u{FFFE}', '\u{FFFF}']) {
            return json;
        }
        let mut out = String::with_capacity(json.len() + 16);
        for c in json.chars() {
            match c {
                '\u{FFFE}' | '\u{FFFF}' => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }
}

fn sha256_hex(input: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(input.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Where an inbound event is: RECEIVED → PROCESSING → PROCESSED | FAILED. Both stores record an
/// event PROCESSED in the same atomic unit as its effects, so the other states are transient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InboundEventStatus {
    /// Accepted by intake, on the incoming queue.
    Received,
    /// Claimed by the processor inside the transaction that applies it.
    Processing,
    /// Applied (or recognised as needing nothing).
    Processed,
    /// Could not be applied.
    Failed,
}

impl InboundEventStatus {
    /// The stored name (`RECEIVED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            InboundEventStatus::Received => "RECEIVED",
            InboundEventStatus::Processing => "PROCESSING",
            InboundEventStatus::Processed => "PROCESSED",
            InboundEventStatus::Failed => "FAILED",
        }
    }
}

impl std::str::FromStr for InboundEventStatus {
    type Err = super::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use InboundEventStatus::*;
        [Received, Processing, Processed, Failed]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| super::ValidationError::new("inbound event status", format!("`{s}` is not one")))
    }
}

/// An inbound event as recorded: what applying it did, and the raw event, kept for inspection
/// (the provider cannot be asked again).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEventRecord {
    /// The provider's id for the event (see [`Envelope::provider_event_id`]).
    pub provider_event_id: String,
    /// Where it is.
    pub status: InboundEventStatus,
    /// What applying it did (`message`, `edit`, `ignored: <why>`, ...).
    pub outcome: String,
    /// The raw event as JSON text ([`Envelope::payload`]).
    pub payload: String,
    /// When intake acknowledged it.
    pub received_at: OffsetDateTime,
}

/// A provider event in kamshub's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum InboundEvent {
    /// A new message in the conversation (from a customer, a group member, or a channel post).
    Message(IncomingMessage),
    /// A new version of a message (Telegram `edited_message` / `edited_channel_post`, Messenger
    /// `message_edit`). Creates the message if the original has not arrived yet.
    Edit(MessageEdit),
    /// One of our page's own outbound messages, seen back (Messenger `is_echo`). Never a new
    /// inbound message: it confirms an outbound message, or records one sent outside kamshub.
    Echo(EchoedMessage),
    /// Delivery or read watermark for the page's outbound messages (Messenger).
    Receipt(Receipt),
    /// Someone's reactions to a message changed (Telegram `message_reaction`, Messenger
    /// `reaction`).
    Reaction(ReactionUpdate),
    /// Recorded, but nothing to apply (unsupported update types).
    Ignored {
        /// Why, for operators reading the inbound event log.
        reason: String,
    },
}

/// A message as received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncomingMessage {
    /// Unique per channel: Telegram `chatId:messageId` (message ids repeat across chats);
    /// Messenger `mid`; a callback query `callback:{id}`; a postback its `mid` or a hash.
    pub external_message_id: String,
    /// Who sent it.
    pub sender: Sender,
    /// Provider time of the message (Unix milliseconds).
    pub sent_at_ms: i64,
    /// Provider order within the conversation, as a sortable string (see [`order_key`]).
    pub order_key: String,
    /// Text, or the caption of a media message.
    pub text: Option<String>,
    /// Media and other non-text content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The external id of the message this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// What kind of message this is beyond plain text.
    #[serde(default)]
    pub kind: MessageKind,
    /// The conversation's title as far as this message tells (a Telegram group or channel
    /// title; for a forum topic "{group} › {topic}" when the message names the topic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_title: Option<String>,
    /// The conversation the message belongs to when it is not the envelope's thread: a Telegram
    /// forum topic (`{chat}:topic:{id}`), whose messages share their chat's queue group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Where this version stands among the message's versions: the later revision wins.
    pub revision: Revision,
}

/// A message's kind, for the inbox to render.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum MessageKind {
    /// Text and/or attachments.
    #[default]
    Regular,
    /// A Telegram inline-button press (`callback_query`).
    CallbackQuery {
        /// The button's data.
        data: Option<String>,
    },
    /// A Messenger postback (button or menu).
    Postback {
        /// The postback payload.
        payload: Option<String>,
        /// The button title.
        title: Option<String>,
    },
    /// A Messenger quick reply.
    QuickReply {
        /// The quick reply payload.
        payload: String,
    },
    /// Something that happened in the conversation rather than something said in it (members
    /// joining, a pin, a topic closed, the group upgraded, a referral): see [`SystemEvent`].
    System {
        /// What happened.
        event: SystemEvent,
    },
}

/// Who sent a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    /// Provider id of the sender (Telegram user id, Messenger PSID); absent for channel posts.
    pub id: Option<String>,
    /// Display name where the provider gives one.
    pub name: Option<String>,
    /// Telegram @username, if any.
    pub username: Option<String>,
}

/// Typed metadata of a non-text part. Files are not downloaded; the provider's ids are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `photo`, `document`, `voice`, `audio`, `video`, `sticker`, `location`, `contact` (Telegram);
    /// `image`, `audio`, `video`, `file`, `fallback`, `template`, `reel`, ... (Messenger).
    pub kind: String,
    /// Telegram `file_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// Messenger payload URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIME type, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Size in bytes, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// File name, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Kind-specific fields (location coordinates, contact phone and name, sticker emoji, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// A new version of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEdit {
    /// The message as it now reads (same external id as the original); its revision is the
    /// edit's.
    pub message: IncomingMessage,
    /// Whether the edit carries the whole message, attachments included (Telegram), or only its
    /// new text (Messenger, where attachments cannot be edited): then the attachments stay.
    pub replaces_attachments: bool,
}

/// A change of one person's (or an anonymous chat's) reactions to a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReactionUpdate {
    /// The external id of the message reacted to (it may be one of ours).
    pub target: String,
    /// The reactor's reactions now.
    pub reaction: Reaction,
}

/// An outbound message seen back from the provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EchoedMessage {
    /// The provider's id of the outbound message (Messenger `mid`).
    pub external_message_id: String,
    /// Our sendId when kamshub sent it (Messenger `metadata`).
    pub send_id: Option<String>,
    /// Provider time (Unix milliseconds).
    pub sent_at_ms: i64,
    /// Provider order key.
    pub order_key: String,
    /// Text.
    pub text: Option<String>,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// How far the customer has got with our outbound messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Delivered or read.
    pub status: ReceiptStatus,
    /// Every outbound message sent at or before this time (Unix milliseconds) is covered.
    pub watermark_ms: i64,
    /// Messages named explicitly (Messenger `delivery.mids`, may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mids: Vec<String>,
}

/// Receipt kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// Delivered to the customer's device.
    Delivered,
    /// Seen by the customer.
    Read,
}

/// The provider event id of a Telegram update: its `update_id` and a digest of the update
/// (`{update_id}:{16 hex digits}`). Telegram numbers a bot's updates with `update_id`, but after a
/// week without updates it starts again from a random number, so an old id can name a new update,
/// which deduplication on the bare id would drop for ever. A redelivery of one update carries the
/// same content, so the pair names exactly one update, with no window to tune.
pub fn telegram_event_id(update_id: i64, update: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(update.to_string());
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{update_id}:{short}")
}

/// A sortable provider position: the time as 15 zero-padded digits of milliseconds, then a
/// tie-breaker (Telegram `message_id`, zero-padded; Messenger the `mid`). String order is
/// provider order.
pub fn order_key(time_ms: i64, tie_breaker: &str) -> String {
    let tie = match tie_breaker.parse::<u64>() {
        Ok(n) => format!("{n:020}"),
        Err(_) => tie_breaker.to_owned(),
    };
    format!("{:015}:{tie}", time_ms.max(0))
}

/// Milliseconds since the epoch of a time.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_by_time_then_numeric_id() {
        let mut keys = vec![order_key(2_000, "1"), order_key(1_000, "10"), order_key(1_000, "9")];
        keys.sort();
        assert_eq!(keys, vec![order_key(1_000, "9"), order_key(1_000, "10"), order_key(2_000, "1")]);
    }

    #[test]
    fn a_reused_update_id_names_another_update_and_a_redelivery_the_same() {
        let first = serde_json::json!({"update_id": 7, "message": {"message_id": 1, "chat": {"id": 1}, "text": "a"}});
        let reused = serde_json::json!({"update_id": 7, "message": {"message_id": 9, "chat": {"id": 2}, "text": "b"}});
        assert_ne!(telegram_event_id(7, &first), telegram_event_id(7, &reused));
        assert_eq!(telegram_event_id(7, &first), telegram_event_id(7, &first.clone()));
        assert!(telegram_event_id(i64::MAX, &first).len() <= 128);
    }

    #[test]
    fn envelope_keys_fit_sqs_limits() {
        let e = Envelope {
            v: ENVELOPE_VERSION,
            tenant_id: TenantId::generate(),
            channel_id: ChannelId::generate(),
            provider: ChannelKind::Telegram,
            provider_event_id: "123".into(),
            thread_id: "-1001234567890123".into(),
            received_at_ms: 0,
            payload: serde_json::json!({}),
            unusable: None,
        };
        assert!(e.group_id().len() <= 128);
        assert_eq!(e.dedupe_id().len(), 64);
    }

    fn envelope(thread: &str, payload: serde_json::Value) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            tenant_id: TenantId::generate(),
            channel_id: ChannelId::generate(),
            provider: ChannelKind::Messenger,
            provider_event_id: "m_1".into(),
            thread_id: thread.into(),
            received_at_ms: 0,
            payload,
            unusable: None,
        }
    }

    #[test]
    fn a_queue_body_holds_no_character_sqs_refuses_and_reads_back_unchanged() {
        let text = "a\u{FFFF}b\u{FFFE}c \u{0}\u{7} 🧑‍🚀 \u{10FFFF}";
        let e = envelope("1", serde_json::json!({ "message": { "text": text }, "\u{FFFF}key": 1 }));
        let body = e.queue_body();
        assert!(!body.contains(['\u{FFFE}', '\u{FFFF}']), "{body}");
        assert!(body.contains("\\uffff") && body.contains("\\ufffe"), "written as escapes: {body}");
        assert!(body.chars().all(|c| c >= ' '), "controls are escaped too");
        let back: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.payload["message"]["text"], text);
        let plain = envelope("1", serde_json::json!({ "text": "plain" }));
        assert_eq!(plain.queue_body(), serde_json::to_string(&plain).unwrap(), "untouched when nothing to escape");
    }

    #[test]
    fn any_thread_makes_a_valid_group_id_and_the_same_thread_the_same_group() {
        for thread in ["6543210987654321", "user_ref:cp_ä ö", &"9".repeat(300), "-1001987654321:topic:77"] {
            let e = envelope(thread, serde_json::json!({}));
            let group = e.group_id();
            assert!(group.len() <= 128 && group.bytes().all(|b| b.is_ascii_graphic()), "{group}");
            let again = Envelope { provider_event_id: "m_2".into(), ..e.clone() };
            assert_eq!(again.group_id(), group);
        }
        let readable = envelope("6543210987654321", serde_json::json!({}));
        assert!(readable.group_id().ends_with(":6543210987654321"), "plain when it fits");
    }
}
