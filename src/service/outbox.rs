//! Replies and the outbox: send a reply (idempotent by sendId), inspect, show, and retry items.
//! These are the outbox's replies; its webhook deliveries are inspected and replayed through
//! `service::webhooks`, so an id of a delivery is not found here.

use super::access::{Action, Caller};
use super::page::{Page, PageRequest, time_key};
use super::{ServiceError, ServiceResult, rfc3339};
use crate::app::App;
use crate::domain::{
    AuditEntry, ConversationId, NewReply, OutboxId, OutboxItem, OutboxKind, OutboxStatus, SendId, TenantId, Transition,
};
use crate::store::{CreateOutcome, OutboxQuery, StoreError};
use serde::Serialize;
use serde_json::json;

/// Longest reply accepted; longer texts are split into provider-sized parts when sent.
pub const MAX_REPLY_CHARS: usize = 20_000;

/// What `message send` prints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendView {
    /// The outbox item.
    pub outbox_id: String,
    /// Its idempotency key.
    pub send_id: String,
    /// Where it is.
    pub status: OutboxStatus,
}

/// An outbox item as `outbox inspect` prints it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxView {
    /// Item id.
    pub outbox_id: String,
    /// Owner.
    pub tenant_id: String,
    /// Idempotency key.
    pub send_id: String,
    /// Where it is.
    pub status: OutboxStatus,
    /// Provider calls so far.
    pub attempts: u32,
    /// The last failure, in the provider's words.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// What `outbox show` prints: the listing fields and the details an SRE needs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutboxDetail {
    /// The listing fields.
    #[serde(flatten)]
    pub item: OutboxView,
    /// Channel it goes through.
    pub channel_id: String,
    /// Conversation it answers.
    pub conversation_id: String,
    /// The outbound message record.
    pub message_id: String,
    /// The text.
    pub text: String,
    /// Not sent before this time.
    pub next_attempt_at: Option<String>,
    /// Provider ids of the parts sent.
    pub provider_message_ids: Vec<String>,
}

/// What queueing a reply did.
#[derive(Debug)]
pub struct SendOutcome {
    /// The reply as created: for a replay, the same answer the first request got.
    pub view: SendView,
    /// The idempotency key was seen before with the same reply: nothing new was queued.
    pub replayed: bool,
}

/// Queues a reply in a conversation. With an idempotency key, a retry with the same text returns
/// the first answer and sends nothing twice; the same key for another text or conversation is
/// refused ([`ServiceError::KeyReused`]). Keys are scoped to the tenant.
pub async fn send_reply(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    conversation_id: &ConversationId,
    text: &str,
    idempotency_key: Option<SendId>,
) -> ServiceResult<SendOutcome> {
    caller.authorize(Action::Reply, tenant)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ServiceError::Invalid("the reply text is empty".into()));
    }
    if text.chars().count() > MAX_REPLY_CHARS {
        return Err(ServiceError::Invalid(format!("the reply is longer than {MAX_REPLY_CHARS} characters")));
    }
    let store = app.store().await?;
    let conversation = store.get_conversation(tenant, conversation_id).await?;
    let channel = store.get_channel(tenant, &conversation.channel_id).await?;
    if !channel.is_active {
        return Err(ServiceError::Invalid(format!("channel `{}` is inactive; activate it to reply", channel.id)));
    }
    let now = crate::domain::now();
    let send_id = idempotency_key.unwrap_or_else(SendId::generate);
    let send_id_text = send_id.to_string();
    let reply = NewReply {
        tenant_id: tenant.clone(),
        send_id,
        channel_id: channel.id,
        conversation_id: conversation.id,
        text: text.to_owned(),
        // After everything received so far: a reply follows what it answers.
        order_key: crate::domain::inbound::order_key(crate::domain::inbound::to_ms(now), &format!("~{send_id_text}")),
        sent_at: now,
    };
    let (item, message) = OutboxItem::new_reply(reply, now);
    let (stored, replayed) = match store.create_outbound(&item, &message).await {
        Ok(CreateOutcome::Created) => (item, false),
        Ok(CreateOutcome::Existing(existing)) => (*existing, true),
        Err(StoreError::Conflict(why)) => return Err(ServiceError::KeyReused(why)),
        Err(e) => return Err(e.into()),
    };
    // The answer is the item as it was created (PENDING), for a replay too: where it is now is
    // what `outbox show` tells.
    let view = SendView {
        outbox_id: stored.id.to_string(),
        send_id: stored.send_id.to_string(),
        status: OutboxStatus::Pending,
    };
    Ok(SendOutcome { view, replayed })
}

/// Outbox items, newest first, of one tenant (or, for the operator and platform admins, of all),
/// optionally in one status.
pub async fn inspect(
    app: &App,
    caller: &Caller,
    tenant: Option<&TenantId>,
    status: Option<OutboxStatus>,
    page: &PageRequest,
) -> ServiceResult<Page<OutboxView>> {
    match tenant {
        Some(tenant) => caller.authorize(Action::ReadInbox, tenant)?,
        None => caller.authorize_platform(Action::ReadInbox)?,
    }
    let before = page.after.as_ref().map(|c| c.time_position(OutboxId::parse)).transpose()?;
    let query = OutboxQuery {
        tenant: tenant.cloned(),
        status,
        kind: Some(OutboxKind::Reply),
        webhook: None,
        before,
        limit: page.limit + 1,
    };
    let items = app.store().await?.list_outbox(&query).await?;
    Ok(Page::from_fetched(items, page, key).map(|item| view(&item)))
}

/// One item of a tenant in full.
pub async fn show(app: &App, caller: &Caller, tenant: &TenantId, id: &OutboxId) -> ServiceResult<OutboxDetail> {
    caller.authorize(Action::ReadInbox, tenant)?;
    let item = find(app, tenant, id).await?;
    Ok(detail(&item))
}

/// Puts a FAILED or UNKNOWN item back to PENDING so it is sent again (audited). For UNKNOWN this
/// is the caller accepting a possible duplicate at the customer.
pub async fn retry(app: &App, caller: &Caller, tenant: &TenantId, id: &OutboxId) -> ServiceResult<OutboxDetail> {
    caller.authorize(Action::Reply, tenant)?;
    let item = find(app, tenant, id).await?;
    let audit = AuditEntry::new(
        &caller.actor(),
        &item.tenant_id,
        "outbox.retry",
        item.id.as_str(),
        json!({"from": item.status.as_str(), "lastError": item.last_error}),
    );
    let store = app.store().await?;
    match store.transition_outbox(tenant, id, &Transition::Resend, Some(&audit)).await? {
        Some(item) => Ok(detail(&item)),
        None => Err(ServiceError::Conflict(format!(
            "outbox item `{id}` is {}; only FAILED or UNKNOWN items can be retried",
            item.status
        ))),
    }
}

fn key(item: &OutboxItem) -> String {
    time_key(item.created_at, item.id.as_str())
}

/// A reply of the tenant's outbox.
async fn find(app: &App, tenant: &TenantId, id: &OutboxId) -> ServiceResult<OutboxItem> {
    let not_found = || ServiceError::NotFound(format!("outbox item `{id}` not found"));
    let item = app.store().await?.get_outbox(tenant, id).await?.ok_or_else(not_found)?;
    if item.reply().is_none() {
        return Err(not_found());
    }
    Ok(item)
}

fn view(item: &OutboxItem) -> OutboxView {
    OutboxView {
        outbox_id: item.id.to_string(),
        tenant_id: item.tenant_id.to_string(),
        send_id: item.send_id.to_string(),
        status: item.status,
        attempts: item.attempts,
        last_error: item.last_error.clone(),
        created_at: rfc3339(item.created_at),
        updated_at: rfc3339(item.updated_at),
    }
}

fn detail(item: &OutboxItem) -> OutboxDetail {
    let reply = item.reply().expect("the outbox service shows replies only (`find`)");
    OutboxDetail {
        item: view(item),
        channel_id: reply.channel_id.to_string(),
        conversation_id: reply.conversation_id.to_string(),
        message_id: reply.message_id.to_string(),
        text: reply.text.clone(),
        next_attempt_at: item.next_attempt_at.map(rfc3339),
        provider_message_ids: item.provider_message_ids.clone(),
    }
}
