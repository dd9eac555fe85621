//! The inbox: a tenant's conversations and their messages. Conversations of inactive channels are
//! hidden unless asked for (their webhooks still ingest).

use super::ServiceResult;
use super::access::{Action, Caller};
use super::page::{Page, PageRequest};
use super::views::{self, ConversationView, MessageView};
use crate::app::App;
use crate::domain::{ChannelId, ConversationId, MessageId, TenantId};
use crate::store::ConversationQuery;
use serde::Serialize;

/// Which conversations a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this channel's (shown even if the channel is inactive: it was named).
    pub channel: Option<ChannelId>,
    /// Also those of inactive channels.
    pub include_inactive: bool,
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
    caller: &Caller,
    tenant: &TenantId,
    filter: &ConversationFilter,
    page: &PageRequest,
) -> ServiceResult<Page<ConversationView>> {
    caller.authorize(Action::ReadInbox, tenant)?;
    let store = app.store().await?;
    store.get_tenant(tenant).await?;
    let exclude_channels = match (&filter.channel, filter.include_inactive) {
        (Some(channel), _) => {
            store.get_channel(tenant, channel).await?;
            Vec::new()
        }
        (None, true) => Vec::new(),
        (None, false) => {
            store.list_channels(tenant).await?.into_iter().filter(|c| !c.is_active).map(|c| c.id).collect()
        }
    };
    let before = page.after.as_ref().map(|c| c.time_position(ConversationId::parse)).transpose()?;
    let query = ConversationQuery { channel: filter.channel.clone(), exclude_channels, before, limit: page.limit + 1 };
    let conversations = store.list_conversations(tenant, &query).await?;
    Ok(Page::from_fetched(conversations, page, views::conversation_key).map(views::conversation))
}

/// One conversation.
pub async fn get_conversation(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    id: &ConversationId,
) -> ServiceResult<ConversationView> {
    caller.authorize(Action::ReadInbox, tenant)?;
    Ok(views::conversation(app.store().await?.get_conversation(tenant, id).await?))
}

/// A conversation's messages, newest first, for paging back through its history.
pub async fn list_messages(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    id: &ConversationId,
    page: &PageRequest,
) -> ServiceResult<Page<MessageView>> {
    caller.authorize(Action::ReadInbox, tenant)?;
    let store = app.store().await?;
    store.get_conversation(tenant, id).await?;
    let before = page.after.as_ref().map(|c| c.keyed_position(MessageId::parse)).transpose()?;
    let messages = store.list_messages(tenant, id, before.as_ref(), page.limit + 1).await?;
    Ok(Page::from_fetched(messages, page, views::message_key).map(views::message))
}

/// A conversation with its newest `limit` messages in provider order (oldest first).
pub async fn show_conversation(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    id: &ConversationId,
    limit: u32,
) -> ServiceResult<ConversationDetail> {
    caller.authorize(Action::ReadInbox, tenant)?;
    let store = app.store().await?;
    let conversation = store.get_conversation(tenant, id).await?;
    let mut messages = store.list_messages(tenant, id, None, limit).await?;
    messages.reverse();
    Ok(ConversationDetail {
        conversation: views::conversation(conversation),
        messages: messages.into_iter().map(views::message).collect(),
    })
}
