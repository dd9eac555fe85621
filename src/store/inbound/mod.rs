//! What applying one inbound event changes, decided once for every adapter: a pure function from
//! the event and the current state of its conversation and message to the writes to make.
//! Adapters load what [`lookups`] names into [`Current`], call [`plan`], and write the [`Plan`]
//! in the same transaction.
//!
//! - Versions of a message are ordered by [`Revision`] (provider time, then Telegram's
//!   `update_id` or Messenger's edit count), so edits within the same second keep their order and
//!   every distinct version stays in the history.
//! - A reaction replaces its reactor's earlier reactions to the message if it is later.
//! - A group that became a supergroup continues as one conversation ([`Merge`]): whichever side's
//!   event comes first, the old chat id keeps leading to it.

mod migration;

pub(crate) use migration::{Merge, join};

use crate::domain::inbound::{Envelope, InboundEvent, IncomingMessage, MessageKind, ReactionUpdate, ReceiptStatus};
use crate::domain::{
    Conversation, ConversationId, Direction, Message, MessageBody, MessageId, MessageStatus, MessageVersion, NewReply,
    OutboxItem, Revision, SendId,
};
use migration::migration;
use time::OffsetDateTime;

/// What an adapter loads into [`Current`] for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookups<'e> {
    /// The conversation's thread (`Current::conversation`): the event's own (a forum topic) or the
    /// envelope's. Found by the conversation's thread, or by a thread that leads to it.
    pub thread: &'e str,
    /// For a group migration, the other side's thread (`Current::migration_peer`).
    pub peer_thread: Option<&'e str>,
    /// The provider id of the message the event creates, changes or reacts to (`Current::message`).
    pub external_id: Option<&'e str>,
    /// An echo's sendId (`Current::by_send_id`).
    pub send_id: Option<&'e str>,
}

/// What to load for `event` in `envelope`.
pub(crate) fn lookups<'e>(envelope: &'e Envelope, event: &'e InboundEvent) -> Lookups<'e> {
    let (external_id, send_id) = match event {
        InboundEvent::Message(m) => (Some(m.external_message_id.as_str()), None),
        InboundEvent::Edit(edit) => (Some(edit.message.external_message_id.as_str()), None),
        InboundEvent::Echo(echo) => (Some(echo.external_message_id.as_str()), echo.send_id.as_deref()),
        InboundEvent::Reaction(r) => (Some(r.target.as_str()), None),
        InboundEvent::Receipt(_) | InboundEvent::Ignored { .. } => (None, None),
    };
    let own = match event {
        InboundEvent::Message(m) => m.thread.as_deref(),
        InboundEvent::Edit(edit) => edit.message.thread.as_deref(),
        _ => None,
    };
    let thread = own.unwrap_or(&envelope.thread_id);
    let peer_thread = migration(envelope, event).map(|(old, new)| if old == thread { new } else { old });
    Lookups { thread, peer_thread, external_id, send_id }
}

/// The sendId of a conversation's greeting: derived from the channel and the conversation's
/// thread, so a replay never greets twice, and in kamshub's reserved namespace, so no client key
/// can take it.
pub(crate) fn greeting_send_id(envelope: &Envelope, thread: &str) -> SendId {
    SendId::derived("auto-reply", &[envelope.channel_id.as_str(), thread])
}

/// The state an event is applied to.
#[derive(Debug, Default)]
pub(crate) struct Current {
    /// The conversation of the event's thread ([`conversation_thread`]), found by its thread or by
    /// a thread it continues (a migrated group's old chat id).
    pub conversation: Option<Conversation>,
    /// The message the event names ([`target_message`]), if it exists.
    pub message: Option<Message>,
    /// For an echo carrying our sendId: the outbound message with that sendId.
    pub by_send_id: Option<Message>,
    /// The channel's greeting, loaded when the conversation does not exist yet.
    pub auto_reply: Option<String>,
    /// Whether the greeting's sendId ([`greeting_send_id`]) is already taken, loaded with the
    /// greeting. A taken sendId skips the greeting; it never fails the message.
    pub greeting_taken: bool,
    /// For a migration ([`migration`]): the conversation of the other side's thread.
    pub migration_peer: Option<Conversation>,
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
    /// Conversations to join, before anything else is written.
    pub merge: Option<Merge>,
    /// The conversation's new state (insert or replace by id, its thread included).
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
pub(crate) fn plan(envelope: &Envelope, event: &InboundEvent, mut current: Current, now: OffsetDateTime) -> Plan {
    let merge = migration(envelope, event).map(|(old, new)| {
        let (tenant, channel) = (&envelope.tenant_id, &envelope.channel_id);
        let (merged, merge) =
            join(tenant, channel, old, new, current.conversation.take(), current.migration_peer.take(), now);
        current.conversation = Some(merged);
        merge
    });
    let mut plan = match event {
        InboundEvent::Message(m) => new_message(envelope, m, current, now),
        InboundEvent::Edit(edit) => {
            let thread = lookups(envelope, event).thread;
            apply_message(envelope, thread, &edit.message, Some(edit.replaces_attachments), current, now, "edit")
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
                thread: None,
                revision: Revision { at_ms: echo.sent_at_ms, seq: 0 },
            };
            let current = Current { conversation, ..Current::default() };
            let mut plan = apply_message(
                envelope,
                &envelope.thread_id,
                &incoming,
                None,
                current,
                now,
                "echo: sent outside kamshub",
            );
            if let Some(m) = plan.insert.as_mut() {
                m.direction = Direction::Outbound;
                m.status = MessageStatus::Sent;
                m.send_id = echo.send_id.clone();
            }
            plan
        }
        InboundEvent::Reaction(reaction) => react(reaction, current.message),
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
    };
    if let Some(merge) = merge {
        plan.outcome = format!("{}; conversations joined", plan.outcome);
        plan.merge = Some(merge);
    }
    plan
}

/// A new message; the first one a person sends opens the conversation and, if the channel has an
/// auto-reply, is greeted (unless the greeting's sendId is somehow taken: the message is applied
/// all the same). A system event opening a conversation (a member joined, a referral) is not
/// greeted: there is no one's message to answer yet.
fn new_message(envelope: &Envelope, m: &IncomingMessage, current: Current, now: OffsetDateTime) -> Plan {
    let thread = m.thread.as_deref().unwrap_or(&envelope.thread_id);
    let opens = current.conversation.is_none();
    let person_speaks = !matches!(m.kind, MessageKind::System { .. });
    let greeting = current.auto_reply.clone().filter(|_| opens && person_speaks);
    let taken = current.greeting_taken;
    let mut plan = apply_message(envelope, thread, m, None, current, now, "message");
    match (greeting, plan.conversation.as_mut()) {
        (Some(_), Some(_)) if taken => plan.outcome = "message: greeting skipped, its sendId is taken".into(),
        (Some(text), Some(conversation)) => {
            plan.outbound = Some(auto_reply(greeting_send_id(envelope, thread), conversation, m, text, now));
            plan.outcome = "message: new conversation greeted".into();
        }
        _ => {}
    }
    plan
}

/// Stores a message, or a version of one: `edit` is `Some(replaces_attachments)` for an edit.
fn apply_message(
    envelope: &Envelope,
    thread: &str,
    m: &IncomingMessage,
    edit: Option<bool>,
    current: Current,
    now: OffsetDateTime,
    outcome: &str,
) -> Plan {
    let mut conversation = current.conversation.unwrap_or_else(|| {
        Conversation::new(envelope.tenant_id.clone(), envelope.channel_id.clone(), thread.to_owned(), now)
    });
    if m.thread_title.is_some() {
        conversation.title = m.thread_title.clone();
    }
    conversation.updated_at = now;

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
                    reactions: Vec::new(),
                    current_at_ms: m.revision.at_ms,
                    current_seq: m.revision.seq,
                },
                created_at: now,
            };
            // The preview is the summary: a system event or a photo heads the list as what it is.
            conversation.count_message(Some(&message.summary()), message.sent_at);
            (Some(message), None)
        }
        Some(mut existing) => {
            let newest = merge_version(&mut existing, m.text.clone(), m.revision);
            let Some(newest) = newest else {
                return Plan { outcome: format!("{outcome}: version already stored"), ..Plan::default() };
            };
            if newest && edit == Some(true) {
                existing.body.attachments = m.attachments.clone();
            }
            if edit.is_none() {
                // The message itself (not an edit) says where it belongs: it may have been
                // created from an edit that arrived first (Messenger edits carry only the text).
                existing.order_key = m.order_key.clone();
                existing.sent_at = from_ms(m.sent_at_ms);
                existing.body.reply_to = existing.body.reply_to.take().or_else(|| m.reply_to.clone());
                if existing.body.attachments.is_empty() {
                    existing.body.attachments = m.attachments.clone();
                }
            }
            conversation.show_if_newest(Some(&existing.summary()), existing.sent_at);
            (None, Some(existing))
        }
    };
    Plan { outcome: outcome.to_owned(), conversation: Some(conversation), insert, update, ..Plan::default() }
}

/// A person's reactions to a message: replaces their earlier set if this update is later.
fn react(update: &ReactionUpdate, target: Option<Message>) -> Plan {
    let Some(mut message) = target else {
        return Plan {
            outcome: format!("ignored: reaction to a message kamshub has not stored ({})", update.target),
            ..Plan::default()
        };
    };
    let reaction = &update.reaction;
    let reactions = &mut message.body.reactions;
    match reactions.iter_mut().find(|r| r.by.id == reaction.by.id) {
        Some(stored) if stored.revision >= reaction.revision => {
            return Plan { outcome: "reaction: a later one is stored".into(), ..Plan::default() };
        }
        Some(stored) => *stored = reaction.clone(),
        None => reactions.push(reaction.clone()),
    }
    Plan { outcome: "reaction".into(), update: Some(message), ..Plan::default() }
}

/// The greeting for a conversation's first message: an outbox item and its pending outbound
/// message, keyed by `send_id` so a replay never greets twice.
fn auto_reply(
    send_id: SendId,
    conversation: &mut Conversation,
    first: &IncomingMessage,
    text: String,
    now: OffsetDateTime,
) -> (OutboxItem, Message) {
    let reply = NewReply {
        tenant_id: conversation.tenant_id.clone(),
        send_id,
        channel_id: conversation.channel_id.clone(),
        conversation_id: conversation.id.clone(),
        text,
        order_key: format!("{}~auto", first.order_key),
        sent_at: from_ms(first.sent_at_ms),
    };
    let (item, message) = OutboxItem::new_reply(reply, now);
    conversation.count_message(message.text.as_deref(), message.sent_at);
    (item, message)
}

/// Adds the version of a message's text written at `revision`: the latest revision is the
/// message's text, the others stay in its history, oldest first. Returns `None` if that revision
/// is already stored, else whether it is now the current one.
fn merge_version(message: &mut Message, text: Option<String>, revision: Revision) -> Option<bool> {
    let body = &mut message.body;
    let current = Revision { at_ms: body.current_at_ms, seq: body.current_seq };
    if current == revision || body.versions.iter().any(|v| v.revision() == revision) {
        return None;
    }
    let newest = revision > current;
    if newest {
        body.versions.push(MessageVersion { text: message.text.take(), at_ms: current.at_ms, seq: current.seq });
        message.text = text;
        body.current_at_ms = revision.at_ms;
        body.current_seq = revision.seq;
    } else {
        body.versions.push(MessageVersion { text, at_ms: revision.at_ms, seq: revision.seq });
    }
    body.versions.sort_by_key(MessageVersion::revision);
    Some(newest)
}

fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
