//! Rows to domain values, and SQLite errors to the port's [`StoreError`]. A leaf: the other
//! modules of the adapter use it; it uses none of them.

use crate::domain::inbound::{InboundEventRecord, InboundEventStatus};
use crate::domain::webhook::EndpointState;
use crate::domain::{
    AuditEntry, AuditId, Channel, ChannelId, ChannelKind, Conversation, ConversationId, Delivery, DisplayName, Email,
    Event, EventId, ExternalId, Message, MessageId, OutboxId, OutboxItem, OutboxKind, Reply, Role, SendId, Target,
    Tenant, TenantId, TenantName, User, UserId, WebhookEndpoint, WebhookId,
};
use crate::embedded::{from_millis, is_busy};
use crate::sealing::Sealed;
use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, Row};

/// A driver error in the port's terms: a busy or locked database is `Unavailable` (retrying
/// later may succeed), anything else `Other`. Unique violations are mapped where they happen,
/// since only the caller can name the key in a user's terms.
pub(super) fn other(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) { StoreError::Unavailable(e.to_string()) } else { StoreError::Other(e.to_string()) }
}

/// A stored value that does not parse, as a row conversion error.
pub(super) fn parsed<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

/// Every row of `sql` with `params`, converted by `row`.
pub(super) fn all<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = c.prepare_cached(sql).map_err(other)?;
    stmt.query_map(params, row).map_err(other)?.collect::<Result<_, _>>().map_err(other)
}

pub(super) fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: parsed(TenantId::parse(&r.get::<_, String>("id")?))?,
        name: parsed(TenantName::parse(&r.get::<_, String>("name")?))?,
        created_at: from_millis(r.get("created_at")?)?,
    })
}

pub(super) fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: parsed(UserId::parse(&r.get::<_, String>("id")?))?,
        email: parsed(Email::parse(&r.get::<_, String>("email")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        role: parsed(r.get::<_, String>("role")?.parse::<Role>())?,
        created_at: from_millis(r.get("created_at")?)?,
    })
}

pub(super) fn channel_row(r: &Row<'_>) -> rusqlite::Result<Channel> {
    Ok(Channel {
        id: parsed(ChannelId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        kind: parsed(r.get::<_, String>("kind")?.parse::<ChannelKind>())?,
        display_name: parsed(DisplayName::parse(&r.get::<_, String>("display_name")?))?,
        external_id: ExternalId::from_stored(r.get("external_id")?),
        credentials: Sealed::from_stored(r.get("credentials")?),
        webhook_secret: r.get::<_, Option<String>>("webhook_secret")?.map(Sealed::from_stored),
        is_active: r.get("is_active")?,
        health: parsed(r.get::<_, String>("health")?.parse())?,
        auto_reply: r.get("auto_reply")?,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

pub(super) fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: parsed(AuditId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        actor: r.get("actor")?,
        action: r.get("action")?,
        target: r.get("target")?,
        details: parsed(serde_json::from_str(&r.get::<_, String>("details")?))?,
        at: from_millis(r.get("at")?)?,
    })
}

pub(super) fn conversation_row(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: parsed(ConversationId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        channel_id: parsed(ChannelId::parse(&r.get::<_, String>("channel_id")?))?,
        external_thread_id: r.get("external_thread_id")?,
        title: r.get("title")?,
        last_message_at: r.get::<_, Option<i64>>("last_message_at")?.map(from_millis).transpose()?,
        preview: r.get("preview")?,
        message_count: r.get::<_, i64>("message_count")? as u64,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

pub(super) fn inbound_event_row(r: &Row<'_>) -> rusqlite::Result<InboundEventRecord> {
    Ok(InboundEventRecord {
        provider_event_id: r.get("provider_event_id")?,
        status: parsed(r.get::<_, String>("status")?.parse::<InboundEventStatus>())?,
        outcome: r.get("outcome")?,
        payload: r.get("payload")?,
        received_at: from_millis(r.get("received_at")?)?,
    })
}

pub(super) fn message_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: parsed(MessageId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        channel_id: parsed(ChannelId::parse(&r.get::<_, String>("channel_id")?))?,
        conversation_id: parsed(ConversationId::parse(&r.get::<_, String>("conversation_id")?))?,
        external_message_id: r.get("external_message_id")?,
        send_id: r.get("send_id")?,
        direction: parsed(r.get::<_, String>("direction")?.parse())?,
        status: parsed(r.get::<_, String>("status")?.parse())?,
        text: r.get("text")?,
        order_key: r.get("order_key")?,
        sent_at: from_millis(r.get("sent_at")?)?,
        body: parsed(serde_json::from_str(&r.get::<_, String>("body")?))?,
        created_at: from_millis(r.get("created_at")?)?,
    })
}

pub(super) fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let conversation = r.get::<_, Option<String>>("conversation_id")?.map(|c| parsed(ConversationId::parse(&c)));
    let target = match parsed(OutboxKind::parse(&r.get::<_, String>("kind")?))? {
        OutboxKind::Reply => Target::Reply(Reply {
            channel_id: parsed(ChannelId::parse(&r.get::<_, String>("channel_id")?))?,
            conversation_id: conversation.transpose()?.ok_or(rusqlite::Error::InvalidColumnType(
                0,
                "conversation_id".into(),
                rusqlite::types::Type::Null,
            ))?,
            message_id: parsed(MessageId::parse(&r.get::<_, String>("message_id")?))?,
            text: r.get("text")?,
            reply_to: r.get("reply_to")?,
        }),
        OutboxKind::Webhook => Target::Webhook(Delivery {
            webhook_id: parsed(WebhookId::parse(&r.get::<_, String>("webhook_id")?))?,
            event_id: EventId::new(r.get::<_, i64>("event_id")? as u64),
            event_type: parsed(r.get::<_, String>("event_type")?.parse())?,
            conversation_id: conversation.transpose()?,
        }),
    };
    Ok(OutboxItem {
        id: parsed(OutboxId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        send_id: parsed(SendId::from_stored(&r.get::<_, String>("send_id")?))?,
        target,
        status: parsed(r.get::<_, String>("status")?.parse())?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        next_attempt_at: r.get::<_, Option<i64>>("next_attempt_at")?.map(from_millis).transpose()?,
        provider_message_ids: parsed(serde_json::from_str(&r.get::<_, String>("provider_message_ids")?))?,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

pub(super) fn event_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        id: EventId::new(r.get::<_, i64>("id")? as u64),
        event_type: parsed(r.get::<_, String>("type")?.parse())?,
        at: from_millis(r.get("at")?)?,
        conversation_id: r
            .get::<_, Option<String>>("conversation_id")?
            .map(|c| parsed(ConversationId::parse(&c)))
            .transpose()?,
        data: parsed(serde_json::from_str(&r.get::<_, String>("data")?))?,
    })
}

pub(super) fn webhook_row(r: &Row<'_>) -> rusqlite::Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: parsed(WebhookId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        url: r.get("url")?,
        event_types: parsed(serde_json::from_str(&r.get::<_, String>("event_types")?))?,
        description: r.get("description")?,
        secret: Sealed::from_stored(r.get("secret")?),
        state: parsed(EndpointState::parse(&r.get::<_, String>("state")?))?,
        disabled_reason: r.get("disabled_reason")?,
        health: parsed(serde_json::from_str(&r.get::<_, String>("health")?))?,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

/// A JSON column's text.
pub(super) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("values kamshub stores serialise to JSON")
}
