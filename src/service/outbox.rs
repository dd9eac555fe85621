//! Replies and the outbox: send a reply (idempotent by sendId), inspect, show, and retry items.

use super::{ServiceError, ServiceResult, rfc3339};
use crate::app::App;
use crate::domain::{
    Actor, AuditEntry, ConversationId, NewReply, OutboxId, OutboxItem, OutboxStatus, SendId, TenantId, Transition,
};
use crate::store::CreateOutcome;
use serde::Serialize;
use serde_json::json;

/// Longest reply accepted; longer texts are split into provider-sized parts when sent.
pub const MAX_REPLY_CHARS: usize = 20_000;

/// What `message send` prints.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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

/// Queues a reply in a conversation. With an idempotency key, a retry with the same text returns
/// the first item and sends nothing twice; the same key with another text is refused.
pub async fn send_reply(
    app: &App,
    tenant: &TenantId,
    conversation_id: &ConversationId,
    text: &str,
    idempotency_key: Option<SendId>,
) -> ServiceResult<SendView> {
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
    let stored = match store.create_outbound(&item, &message).await? {
        CreateOutcome::Created => item,
        CreateOutcome::Existing(existing) => *existing,
    };
    Ok(SendView { outbox_id: stored.id.to_string(), send_id: stored.send_id.to_string(), status: stored.status })
}

/// Outbox items, newest first, filtered by tenant and status.
pub async fn inspect(
    app: &App,
    tenant: Option<&TenantId>,
    status: Option<OutboxStatus>,
    limit: u32,
) -> ServiceResult<Vec<OutboxView>> {
    let items = app.store().await?.list_outbox(tenant, status, limit).await?;
    Ok(items.iter().map(view).collect())
}

/// One item in full.
pub async fn show(app: &App, id: &OutboxId) -> ServiceResult<OutboxDetail> {
    let item = find(app, id).await?;
    Ok(detail(&item))
}

/// Puts a FAILED or UNKNOWN item back to PENDING so it is sent again (audited). For UNKNOWN this
/// is the operator accepting a possible duplicate at the customer.
pub async fn retry(app: &App, actor: &Actor, id: &OutboxId) -> ServiceResult<OutboxDetail> {
    let item = find(app, id).await?;
    let audit = AuditEntry::new(
        actor,
        &item.tenant_id,
        "outbox.retry",
        item.id.as_str(),
        json!({"from": item.status.as_str(), "lastError": item.last_error}),
    );
    let store = app.store().await?;
    match store.transition_outbox(id, &Transition::Resend, Some(&audit)).await? {
        Some(item) => Ok(detail(&item)),
        None => Err(ServiceError::Conflict(format!(
            "outbox item `{id}` is {}; only FAILED or UNKNOWN items can be retried",
            item.status
        ))),
    }
}

async fn find(app: &App, id: &OutboxId) -> ServiceResult<OutboxItem> {
    app.store()
        .await?
        .get_outbox(id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("outbox item `{id}` not found")))
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
    OutboxDetail {
        item: view(item),
        channel_id: item.channel_id.to_string(),
        conversation_id: item.conversation_id.to_string(),
        message_id: item.message_id.to_string(),
        text: item.text.clone(),
        next_attempt_at: item.next_attempt_at.map(rfc3339),
        provider_message_ids: item.provider_message_ids.clone(),
    }
}
