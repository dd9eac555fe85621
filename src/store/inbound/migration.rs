//! A group that became a supergroup continues as one conversation: detecting the migration in an
//! event, and joining the conversations of its two chat ids ([`join`]), decided once for both
//! adapters. Adapters write a [`Merge`] before the conversation it keeps.

use crate::domain::inbound::{Envelope, InboundEvent, MessageKind};
use crate::domain::{ChannelId, Conversation, ConversationId, SystemEvent, TenantId};
use time::OffsetDateTime;

/// For a group migration (Telegram `migrate_to_chat_id` in the old group, `migrate_from_chat_id`
/// in the supergroup): the old and the new thread, whichever side the event came from.
pub(super) fn migration<'e>(envelope: &'e Envelope, event: &'e InboundEvent) -> Option<(&'e str, &'e str)> {
    let InboundEvent::Message(m) = event else { return None };
    match &m.kind {
        MessageKind::System { event: SystemEvent::MigratedTo { chat_id } } => Some((&envelope.thread_id, chat_id)),
        MessageKind::System { event: SystemEvent::MigratedFrom { chat_id } } => Some((chat_id, &envelope.thread_id)),
        _ => None,
    }
}

/// Two conversations becoming one (a group that became a supergroup): written before the
/// conversation itself.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Merge {
    /// The conversation that continues.
    pub keep: ConversationId,
    /// The conversation that ends: its messages, outbox items and thread aliases move to `keep`,
    /// then it is deleted.
    pub absorb: Option<ConversationId>,
    /// Threads that now lead to `keep` (the old chat id).
    pub aliases: Vec<String>,
}

/// Joins the conversations of a group's `old` and `new` chat ids into one that continues under
/// `new`: the older conversation survives (its id is what inboxes and API clients hold), the other
/// is absorbed into it, and `old` keeps leading to it.
pub(crate) fn join(
    tenant: &TenantId,
    channel: &ChannelId,
    old: &str,
    new: &str,
    this: Option<Conversation>,
    peer: Option<Conversation>,
    now: OffsetDateTime,
) -> (Conversation, Merge) {
    let mut candidates: Vec<Conversation> = this.into_iter().chain(peer).collect();
    candidates.sort_by_key(|c| c.created_at);
    candidates.dedup_by(|a, b| a.id == b.id);
    let mut parts = candidates.into_iter();
    let mut keep =
        parts.next().unwrap_or_else(|| Conversation::new(tenant.clone(), channel.clone(), new.to_owned(), now));
    let absorb = parts.next();
    if let Some(other) = &absorb {
        keep.message_count += other.message_count;
        if other.last_message_at > keep.last_message_at {
            keep.last_message_at = other.last_message_at;
            keep.preview = other.preview.clone();
        }
        if other.external_thread_id == new {
            keep.title = other.title.clone().or(keep.title);
        }
    }
    keep.external_thread_id = new.to_owned();
    keep.updated_at = now;
    let merge = Merge { keep: keep.id.clone(), absorb: absorb.map(|c| c.id), aliases: vec![old.to_owned()] };
    (keep, merge)
}
