//! The inbox as clients see it (rendered in `domain::view`, which the event log shares), and the
//! sort keys its listings page by.

pub use crate::domain::view::{ConversationView, MessageView, ReactionView, VersionView, conversation, message};

use super::page::time_key;
use crate::domain::{Conversation, Message};

/// The sort key of a message in a conversation: its provider order, then its id.
pub fn message_key(m: &Message) -> String {
    format!("{}|{}", m.order_key, m.id)
}

/// The sort key of a conversation in inbox order: its newest message's time, then its id.
pub fn conversation_key(c: &Conversation) -> String {
    time_key(c.last_message_at.unwrap_or(c.created_at), c.id.as_str())
}
