//! The inbox: a tenant's conversations and their messages. Conversations of inactive channels are
//! hidden unless asked for (their webhooks still ingest).

use super::ServiceResult;
use super::access::{Action, Caller};
use super::page::{Page, PageRequest};
use super::views::{self, ConversationView, MessageView};
use crate::app::App;
use crate::domain::{ChannelId, ConversationId, TenantId};
use serde::Serialize;
use std::collections::HashSet;

/// The most messages or conversations read from the store for one listing.
const SCAN_LIMIT: u32 = 100_000;

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
    let hidden: HashSet<ChannelId> = match (&filter.channel, filter.include_inactive) {
        (Some(channel), _) => {
            store.get_channel(tenant, channel).await?;
            HashSet::new()
        }
        (None, true) => HashSet::new(),
        (None, false) => {
            store.list_channels(tenant).await?.into_iter().filter(|c| !c.is_active).map(|c| c.id).collect()
        }
    };
    let mut conversations = store.list_conversations(tenant, filter.channel.as_ref(), SCAN_LIMIT).await?;
    conversations.retain(|c| !hidden.contains(&c.channel_id));
    // Newest first: the page order is the reverse of the key order.
    conversations.sort_by_key(|c| std::cmp::Reverse(views::conversation_key(c)));
    let after = page.after.as_ref().map(|cursor| cursor.key().to_owned());
    let rest = conversations
        .into_iter()
        .filter(|c| after.as_deref().is_none_or(|after| views::conversation_key(c).as_str() < after))
        .take(page.limit as usize + 1)
        .collect();
    Ok(Page::from_fetched(rest, page, views::conversation_key).map(views::conversation))
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
    let mut messages = store.list_messages(tenant, id, SCAN_LIMIT).await?;
    messages.reverse();
    let after = page.after.as_ref().map(|cursor| cursor.key().to_owned());
    let rest = messages
        .into_iter()
        .filter(|m| after.as_deref().is_none_or(|after| views::message_key(m).as_str() < after))
        .take(page.limit as usize + 1)
        .collect();
    Ok(Page::from_fetched(rest, page, views::message_key).map(views::message))
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
    let messages = store.list_messages(tenant, id, limit).await?;
    Ok(ConversationDetail {
        conversation: views::conversation(conversation),
        messages: messages.into_iter().map(views::message).collect(),
    })
}
