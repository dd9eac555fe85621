//! What applying one inbound event changes, decided once for every adapter: a pure function from
//! the event and the current state of its conversation and message to the writes to make.
//! Adapters load the state, call [`plan`], and write the result in the same transaction.

use crate::domain::inbound::{Envelope, InboundEvent, IncomingMessage, ReceiptStatus};
use crate::domain::{
    Conversation, ConversationId, Direction, Message, MessageBody, MessageId, MessageStatus, MessageVersion, NewReply,
    OutboxItem, SendId,
};
use time::OffsetDateTime;

/// The state an event is applied to.
#[derive(Debug, Default)]
pub(crate) struct Current {
    /// The conversation of the envelope's thread, if it exists.
    pub conversation: Option<Conversation>,
    /// The message with the event's external id, if it exists.
    pub message: Option<Message>,
    /// For an echo carrying our sendId: the outbound message with that sendId.
    pub by_send_id: Option<Message>,
    /// The channel's greeting, loaded when the conversation does not exist yet.
    pub auto_reply: Option<String>,
    /// Whether the greeting's sendId ([`greeting_send_id`]) is taken already; loaded with the
    /// greeting. A taken sendId skips the greeting: it never fails the message it answers.
    pub greeting_taken: bool,
}

/// The sendId of a conversation's greeting: derived from the channel and thread, so a replay
/// never greets twice, and in kamshub's reserved namespace, so no client key can take it.
pub(crate) fn greeting_send_id(envelope: &Envelope) -> SendId {
    SendId::derived("auto-reply", &[envelope.channel_id.as_str(), &envelope.thread_id])
}

/// The messages an adapter loads into [`Current`] for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookups<'e> {
    /// The provider id of the message the event is about (`Current::message`).
    pub external_id: Option<&'e str>,
    /// An echo's sendId (`Current::by_send_id`).
    pub send_id: Option<&'e str>,
}

/// What to load for `event`.
pub(crate) fn lookups(event: &InboundEvent) -> Lookups<'_> {
    let (external_id, send_id) = match event {
        InboundEvent::Message(m) => (Some(m.external_message_id.as_str()), None),
        InboundEvent::Edit(edit) => (Some(edit.message.external_message_id.as_str()), None),
        InboundEvent::Echo(echo) => (Some(echo.external_message_id.as_str()), echo.send_id.as_deref()),
        InboundEvent::Receipt(_) | InboundEvent::Ignored { .. } => (None, None),
    };
    Lookups { external_id, send_id }
}

/// Outbound messages a receipt advances.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReceiptUpdate {
    pub conversation_id: ConversationId,
    pub status: MessageStatus,
    pub watermark_ms: i64,
    pub mids: Vec<String>,
}

/// The writes applying one event makes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Short description for the inbound event log (`message`, `edit`, `ignored: …`).
    pub outcome: String,
    /// The conversation's new state (insert or replace by id).
    pub conversation: Option<Conversation>,
    /// A message to insert.
    pub insert: Option<Message>,
    /// A message's new state (replace by id).
    pub update: Option<Message>,
    /// Outbound messages to advance.
    pub receipt: Option<ReceiptUpdate>,
    /// An auto-reply to queue: the outbox item and its outbound message.
    pub outbound: Option<(OutboxItem, Message)>,
}

/// The statuses a receipt may advance, and to what.
pub(crate) fn receipt_targets(status: MessageStatus) -> &'static [MessageStatus] {
    match status {
        MessageStatus::Delivered => &[MessageStatus::Sent],
        MessageStatus::Read => &[MessageStatus::Sent, MessageStatus::Delivered],
        _ => &[],
    }
}

/// Decides the writes for `event` on `current`.
pub(crate) fn plan(envelope: &Envelope, event: &InboundEvent, current: Current, now: OffsetDateTime) -> Plan {
    match event {
        InboundEvent::Message(m) => {
            let greeting = current.auto_reply.clone().filter(|_| current.conversation.is_none());
            let taken = current.greeting_taken;
            let mut plan = apply_message(envelope, m, None, current, now, "message");
            match (greeting, plan.conversation.as_mut()) {
                (Some(_), Some(_)) if taken => {
                    plan.outcome = "message: greeting skipped, its sendId is taken".into();
                }
                (Some(text), Some(conversation)) => {
                    plan.outbound = Some(auto_reply(envelope, conversation, m, text, now));
                    plan.outcome = "message: new conversation greeted".into();
                }
                _ => {}
            }
            plan
        }
        InboundEvent::Edit(edit) => {
            apply_message(envelope, &edit.message, Some(edit.edited_at_ms), current, now, "edit")
        }
        InboundEvent::Echo(echo) => {
            let Current { conversation, message, by_send_id, .. } = current;
            if message.is_some() {
                return Plan { outcome: "echo: already stored".into(), ..Plan::default() };
            }
            if let Some(mut ours) = by_send_id {
                ours.external_message_id = Some(echo.external_message_id.clone());
                if ours.status < MessageStatus::Sent {
                    ours.status = MessageStatus::Sent;
                }
                return Plan { outcome: "echo: matched our send".into(), update: Some(ours), ..Plan::default() };
            }
            // Sent by the page outside kamshub (Meta's inbox, another app): record it as outbound.
            let incoming = IncomingMessage {
                external_message_id: echo.external_message_id.clone(),
                sender: Default::default(),
                sent_at_ms: echo.sent_at_ms,
                order_key: echo.order_key.clone(),
                text: echo.text.clone(),
                attachments: echo.attachments.clone(),
                reply_to: None,
                kind: Default::default(),
                thread_title: None,
            };
            let current = Current { conversation, ..Current::default() };
            let mut plan = apply_message(envelope, &incoming, None, current, now, "echo: sent outside kamshub");
            if let Some(m) = plan.insert.as_mut() {
                m.direction = Direction::Outbound;
                m.status = MessageStatus::Sent;
                m.send_id = echo.send_id.clone();
            }
            plan
        }
        InboundEvent::Receipt(receipt) => {
            let status = match receipt.status {
                ReceiptStatus::Delivered => MessageStatus::Delivered,
                ReceiptStatus::Read => MessageStatus::Read,
            };
            match current.conversation {
                Some(c) => Plan {
                    outcome: format!("receipt: {status}"),
                    receipt: Some(ReceiptUpdate {
                        conversation_id: c.id,
                        status,
                        watermark_ms: receipt.watermark_ms,
                        mids: receipt.mids.clone(),
                    }),
                    ..Plan::default()
                },
                None => Plan { outcome: "receipt: no such conversation".into(), ..Plan::default() },
            }
        }
        InboundEvent::Ignored { reason } => Plan { outcome: format!("ignored: {reason}"), ..Plan::default() },
    }
}

fn apply_message(
    envelope: &Envelope,
    m: &IncomingMessage,
    edited_at_ms: Option<i64>,
    current: Current,
    now: OffsetDateTime,
    outcome: &str,
) -> Plan {
    let mut conversation = current.conversation.unwrap_or_else(|| Conversation {
        id: ConversationId::generate(),
        tenant_id: envelope.tenant_id.clone(),
        channel_id: envelope.channel_id.clone(),
        external_thread_id: envelope.thread_id.clone(),
        title: None,
        last_message_at: None,
        preview: None,
        message_count: 0,
        created_at: now,
        updated_at: now,
    });
    if m.thread_title.is_some() {
        conversation.title = m.thread_title.clone();
    }
    conversation.updated_at = now;
    let version_at = edited_at_ms.unwrap_or(m.sent_at_ms);

    let (insert, update) = match current.message {
        None => {
            let message = Message {
                id: MessageId::generate(),
                tenant_id: envelope.tenant_id.clone(),
                channel_id: envelope.channel_id.clone(),
                conversation_id: conversation.id.clone(),
                external_message_id: Some(m.external_message_id.clone()),
                send_id: None,
                direction: Direction::Inbound,
                status: MessageStatus::Received,
                text: m.text.clone(),
                order_key: m.order_key.clone(),
                sent_at: from_ms(m.sent_at_ms),
                body: MessageBody {
                    sender: m.sender.clone(),
                    attachments: m.attachments.clone(),
                    kind: m.kind.clone(),
                    reply_to: m.reply_to.clone(),
                    versions: Vec::new(),
                    current_at_ms: version_at,
                },
                created_at: now,
            };
            conversation.count_message(message.text.as_deref(), message.sent_at);
            (Some(message), None)
        }
        Some(mut existing) => {
            let changed = merge_version(&mut existing, m.text.clone(), version_at);
            if !changed {
                return Plan { outcome: format!("{outcome}: version already stored"), ..Plan::default() };
            }
            if edited_at_ms.is_some() && existing.body.current_at_ms == version_at {
                existing.body.attachments = m.attachments.clone();
            }
            conversation.show_if_newest(existing.text.as_deref(), existing.sent_at);
            (None, Some(existing))
        }
    };
    Plan { outcome: outcome.to_owned(), conversation: Some(conversation), insert, update, ..Plan::default() }
}

/// The greeting for a conversation's first message: an outbox item and its pending outbound
/// message, keyed by a sendId derived from the conversation, so a replay never greets twice.
fn auto_reply(
    envelope: &Envelope,
    conversation: &mut Conversation,
    first: &IncomingMessage,
    text: String,
    now: OffsetDateTime,
) -> (OutboxItem, Message) {
    let send_id = greeting_send_id(envelope);
    let reply = NewReply {
        tenant_id: envelope.tenant_id.clone(),
        send_id,
        channel_id: envelope.channel_id.clone(),
        conversation_id: conversation.id.clone(),
        text,
        order_key: format!("{}~auto", first.order_key),
        sent_at: from_ms(first.sent_at_ms),
    };
    let (item, message) = OutboxItem::new_reply(reply, now);
    conversation.count_message(message.text.as_deref(), message.sent_at);
    (item, message)
}

/// Adds a version of a message's text written at `at_ms`: the newest version is the message's
/// text, the others stay in its history, oldest first. Returns false if that version is known.
fn merge_version(message: &mut Message, text: Option<String>, at_ms: i64) -> bool {
    let known = message.body.current_at_ms == at_ms || message.body.versions.iter().any(|v| v.at_ms == at_ms);
    if known {
        return false;
    }
    if at_ms > message.body.current_at_ms {
        let previous = MessageVersion { text: message.text.take(), at_ms: message.body.current_at_ms };
        message.body.versions.push(previous);
        message.text = text;
        message.body.current_at_ms = at_ms;
    } else {
        message.body.versions.push(MessageVersion { text, at_ms });
    }
    message.body.versions.sort_by_key(|v| v.at_ms);
    true
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
