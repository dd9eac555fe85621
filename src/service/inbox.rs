//! The inbox: a tenant's conversations and their messages.

use super::{ServiceResult, rfc3339};
use crate::app::App;
use crate::domain::{ChannelId, Conversation, ConversationId, Direction, MessageStatus, TenantId};
use serde::Serialize;

/// A conversation as `conversation list` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// Conversation id.
    pub conversation_id: String,
    /// Its channel.
    pub channel_id: String,
    /// Telegram chat id or Messenger PSID.
    pub external_thread_id: String,
    /// Provider time of its newest message.
    pub last_message_at: Option<String>,
    /// Messages stored in it.
    pub message_count: u64,
}

/// A message inside [`ConversationDetail`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Message id.
    pub message_id: String,
    /// inbound or outbound.
    pub direction: Direction,
    /// Latest text.
    pub text: Option<String>,
    /// Provider id (Telegram `chatId:messageId`, Messenger `mid`).
    pub external_message_id: Option<String>,
    /// received, pending, sent, delivered, read, failed.
    pub status: MessageStatus,
    /// Provider time of the message.
    pub created_at: String,
}

/// What `conversation show` prints: the conversation's fields and its messages.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: ConversationView,
    /// Its messages, oldest first.
    pub messages: Vec<MessageView>,
}

/// A tenant's conversations, most recent first.
pub async fn list_conversations(
    app: &App,
    tenant: &TenantId,
    channel: Option<&ChannelId>,
    limit: u32,
) -> ServiceResult<Vec<ConversationView>> {
    let store = app.store().await?;
    store.get_tenant(tenant).await?;
    if let Some(channel) = channel {
        store.get_channel(tenant, channel).await?;
    }
    Ok(store.list_conversations(tenant, channel, limit).await?.into_iter().map(conversation_view).collect())
}

/// A conversation with its newest `limit` messages in provider order.
pub async fn show_conversation(
    app: &App,
    tenant: &TenantId,
    id: &ConversationId,
    limit: u32,
) -> ServiceResult<ConversationDetail> {
    let store = app.store().await?;
    let conversation = store.get_conversation(tenant, id).await?;
    let messages = store.list_messages(tenant, id, limit).await?;
    Ok(ConversationDetail {
        conversation: conversation_view(conversation),
        messages: messages
            .into_iter()
            .map(|m| MessageView {
                message_id: m.id.to_string(),
                direction: m.direction,
                text: m.text,
                external_message_id: m.external_message_id,
                status: m.status,
                created_at: rfc3339(m.sent_at),
            })
            .collect(),
    })
}

fn conversation_view(c: Conversation) -> ConversationView {
    ConversationView {
        conversation_id: c.id.to_string(),
        channel_id: c.channel_id.to_string(),
        external_thread_id: c.external_thread_id,
        last_message_at: c.last_message_at.map(rfc3339),
        message_count: c.message_count,
    }
}
