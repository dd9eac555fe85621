//! Documents to domain values and back. A leaf: the other modules of the adapter use it; it uses
//! none of them.

use crate::domain::inbound::{InboundEventRecord, InboundEventStatus};
use crate::domain::webhook::EndpointState;
use crate::domain::{
    AuditEntry, AuditId, Channel, ChannelId, ChannelKind, Conversation, ConversationId, Delivery, DisplayName, Email,
    Event, EventId, ExternalId, Message, MessageId, OutboxId, OutboxItem, OutboxKind, Reply, SendId, Target, Tenant,
    TenantId, TenantName, User, UserId, WebhookEndpoint, WebhookId,
};
use crate::sealing::Sealed;
use crate::store::{StoreError, StoreResult};
use mongodb::bson::{self, Bson, DateTime, Document, doc};
use time::OffsetDateTime;

/// A stored record that does not parse, raised inside a transaction (the driver's error type
/// carries it out; the adapter's error mapping turns it back into [`StoreError::Other`]).
#[derive(Debug)]
pub(super) struct CorruptRecord(pub String);

pub(super) fn dt(t: OffsetDateTime) -> DateTime {
    DateTime::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("stored {what} is malformed: {e}"))
}

pub(super) fn time_of(d: &Document, key: &str) -> StoreResult<OffsetDateTime> {
    let ms = d.get_datetime(key).map_err(|e| corrupt(key, e))?.timestamp_millis();
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|e| corrupt(key, e))
}

pub(super) fn str_of<'d>(d: &'d Document, key: &str) -> StoreResult<&'d str> {
    d.get_str(key).map_err(|e| corrupt(key, e))
}

/// An optional date field: absent or null is None.
pub(super) fn opt_time_of(d: &Document, key: &str) -> StoreResult<Option<OffsetDateTime>> {
    if d.get_datetime(key).is_ok() { time_of(d, key).map(Some) } else { Ok(None) }
}

pub(super) fn opt_str(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
}

pub(super) fn tenant_doc(t: &Tenant) -> Document {
    doc! {"_id": t.id.as_str(), "name": t.name.as_str(), "nameKey": t.name.key(), "createdAt": dt(t.created_at)}
}

pub(super) fn tenant_from(d: &Document) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: TenantId::parse(str_of(d, "_id")?).map_err(|e| corrupt("tenant id", e))?,
        name: TenantName::parse(str_of(d, "name")?).map_err(|e| corrupt("tenant name", e))?,
        created_at: time_of(d, "createdAt")?,
    })
}

pub(super) fn user_doc(u: &User) -> Document {
    doc! {
        "_id": u.id.as_str(), "email": u.email.as_str(), "tenantId": u.tenant_id.as_str(),
        "role": u.role.as_str(), "createdAt": dt(u.created_at),
    }
}

pub(super) fn user_from(d: &Document) -> StoreResult<User> {
    Ok(User {
        id: UserId::parse(str_of(d, "_id")?).map_err(|e| corrupt("user id", e))?,
        email: Email::parse(str_of(d, "email")?).map_err(|e| corrupt("email", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        role: str_of(d, "role")?.parse().map_err(|e| corrupt("role", e))?,
        created_at: time_of(d, "createdAt")?,
    })
}

pub(super) fn channel_doc(c: &Channel) -> Document {
    doc! {
        "_id": c.id.as_str(), "tenantId": c.tenant_id.as_str(), "type": c.kind.as_str(),
        "displayName": c.display_name.as_str(), "externalId": c.external_id.as_str(),
        "credentials": c.credentials.as_str(),
        "webhookSecret": c.webhook_secret.as_ref().map(|s| s.as_str()),
        "isActive": c.is_active, "health": c.health.as_str(), "autoReply": c.auto_reply.clone(),
        "createdAt": dt(c.created_at), "updatedAt": dt(c.updated_at),
    }
}

pub(super) fn channel_from(d: &Document) -> StoreResult<Channel> {
    Ok(Channel {
        id: ChannelId::parse(str_of(d, "_id")?).map_err(|e| corrupt("channel id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        kind: str_of(d, "type")?.parse::<ChannelKind>().map_err(|e| corrupt("channel type", e))?,
        display_name: DisplayName::parse(str_of(d, "displayName")?).map_err(|e| corrupt("display name", e))?,
        external_id: ExternalId::from_stored(str_of(d, "externalId")?.to_owned()),
        credentials: Sealed::from_stored(str_of(d, "credentials")?.to_owned()),
        webhook_secret: d.get_str("webhookSecret").ok().map(|s| Sealed::from_stored(s.to_owned())),
        is_active: d.get_bool("isActive").map_err(|e| corrupt("isActive", e))?,
        health: d.get_str("health").unwrap_or("ok").parse().map_err(|e| corrupt("health", e))?,
        auto_reply: d.get_str("autoReply").ok().map(str::to_owned),
        created_at: time_of(d, "createdAt")?,
        updated_at: time_of(d, "updatedAt")?,
    })
}

pub(super) fn audit_doc(a: &AuditEntry) -> Document {
    doc! {
        "_id": a.id.as_str(), "tenantId": a.tenant_id.as_str(), "actor": &a.actor, "action": &a.action,
        "target": &a.target,
        "details": bson::to_bson(&a.details).unwrap_or(Bson::Null),
        "at": dt(a.at),
    }
}

pub(super) fn audit_from(d: &Document) -> StoreResult<AuditEntry> {
    let details = d.get("details").cloned().unwrap_or(Bson::Null).into_relaxed_extjson();
    Ok(AuditEntry {
        id: AuditId::parse(str_of(d, "_id")?).map_err(|e| corrupt("audit id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        actor: str_of(d, "actor")?.to_owned(),
        action: str_of(d, "action")?.to_owned(),
        target: str_of(d, "target")?.to_owned(),
        details,
        at: time_of(d, "at")?,
    })
}

pub(super) fn conversation_doc(c: &Conversation) -> Document {
    doc! {
        "_id": c.id.as_str(), "tenantId": c.tenant_id.as_str(), "channelId": c.channel_id.as_str(),
        "externalThreadId": &c.external_thread_id, "title": c.title.clone(),
        "lastMessageAt": c.last_message_at.map(dt), "preview": c.preview.clone(),
        "messageCount": c.message_count as i64, "createdAt": dt(c.created_at), "updatedAt": dt(c.updated_at),
    }
}

pub(super) fn conversation_from(d: &Document) -> StoreResult<Conversation> {
    Ok(Conversation {
        id: ConversationId::parse(str_of(d, "_id")?).map_err(|e| corrupt("conversation id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        channel_id: ChannelId::parse(str_of(d, "channelId")?).map_err(|e| corrupt("channel id", e))?,
        external_thread_id: str_of(d, "externalThreadId")?.to_owned(),
        title: opt_str(d, "title"),
        last_message_at: opt_time_of(d, "lastMessageAt")?,
        preview: opt_str(d, "preview"),
        message_count: d.get_i64("messageCount").map_err(|e| corrupt("messageCount", e))? as u64,
        created_at: time_of(d, "createdAt")?,
        updated_at: time_of(d, "updatedAt")?,
    })
}

pub(super) fn inbound_event_from(d: &Document) -> StoreResult<InboundEventRecord> {
    let payload = match d.get("payload") {
        Some(Bson::String(text)) => text.clone(),
        // Written as a document before raw payloads were kept as text.
        Some(other) => other.clone().into_relaxed_extjson().to_string(),
        None => String::new(),
    };
    Ok(InboundEventRecord {
        provider_event_id: str_of(d, "providerEventId")?.to_owned(),
        status: str_of(d, "status")?.parse::<InboundEventStatus>().map_err(|e| corrupt("status", e))?,
        outcome: str_of(d, "outcome")?.to_owned(),
        payload,
        received_at: time_of(d, "receivedAt")?,
    })
}

pub(super) fn message_doc(m: &Message) -> Document {
    let mut d = doc! {
        "_id": m.id.as_str(), "tenantId": m.tenant_id.as_str(), "channelId": m.channel_id.as_str(),
        "conversationId": m.conversation_id.as_str(),
        "direction": m.direction.as_str(),
        "status": m.status.as_str(), "text": m.text.clone(), "orderKey": &m.order_key,
        "sentAt": dt(m.sent_at), "body": bson::to_bson(&m.body).expect("message body serialises"),
        "createdAt": dt(m.created_at),
    };
    // Absent, not null: the unique indexes cover only messages that have these ids.
    if let Some(id) = &m.external_message_id {
        d.insert("externalMessageId", id);
    }
    if let Some(id) = &m.send_id {
        d.insert("sendId", id);
    }
    d
}

pub(super) fn message_from(d: &Document) -> StoreResult<Message> {
    let body = d.get("body").cloned().unwrap_or(Bson::Document(Document::new()));
    Ok(Message {
        id: MessageId::parse(str_of(d, "_id")?).map_err(|e| corrupt("message id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        channel_id: ChannelId::parse(str_of(d, "channelId")?).map_err(|e| corrupt("channel id", e))?,
        conversation_id: ConversationId::parse(str_of(d, "conversationId")?)
            .map_err(|e| corrupt("conversation id", e))?,
        external_message_id: opt_str(d, "externalMessageId"),
        send_id: opt_str(d, "sendId"),
        direction: str_of(d, "direction")?.parse().map_err(|e| corrupt("direction", e))?,
        status: str_of(d, "status")?.parse().map_err(|e| corrupt("status", e))?,
        text: opt_str(d, "text"),
        order_key: str_of(d, "orderKey")?.to_owned(),
        sent_at: time_of(d, "sentAt")?,
        body: bson::from_bson(body).map_err(|e| corrupt("message body", e))?,
        created_at: time_of(d, "createdAt")?,
    })
}

pub(super) fn outbox_doc(o: &OutboxItem) -> Document {
    let mut d = doc! {
        "_id": o.id.as_str(), "tenantId": o.tenant_id.as_str(), "sendId": o.send_id.as_str(),
        "kind": o.kind().as_str(), "conversationId": o.conversation_id().map(ConversationId::as_str),
        "status": o.status.as_str(), "attempts": i64::from(o.attempts), "lastError": o.last_error.clone(),
        "nextAttemptAt": o.next_attempt_at.map(dt), "providerMessageIds": o.provider_message_ids.clone(),
        "createdAt": dt(o.created_at), "updatedAt": dt(o.updated_at),
    };
    match &o.target {
        Target::Reply(r) => d.extend(doc! {
            "channelId": r.channel_id.as_str(), "messageId": r.message_id.as_str(), "text": &r.text,
            "replyTo": r.reply_to.clone(),
        }),
        Target::Webhook(w) => d.extend(doc! {
            "webhookId": w.webhook_id.as_str(), "eventId": w.event_id.get() as i64, "eventType": w.event_type.as_str(),
        }),
    }
    d
}

pub(super) fn outbox_from(d: &Document) -> StoreResult<OutboxItem> {
    let ids = d.get_array("providerMessageIds").map_err(|e| corrupt("providerMessageIds", e))?;
    let conversation = opt_str(d, "conversationId")
        .map(|c| ConversationId::parse(&c).map_err(|e| corrupt("conversation id", e)))
        .transpose()?;
    // Items stored before webhook deliveries existed have no kind: they are replies.
    let kind =
        opt_str(d, "kind").map_or(Ok(OutboxKind::Reply), |k| OutboxKind::parse(&k).map_err(|e| corrupt("kind", e)))?;
    let target = match kind {
        OutboxKind::Reply => Target::Reply(Reply {
            channel_id: ChannelId::parse(str_of(d, "channelId")?).map_err(|e| corrupt("channel id", e))?,
            conversation_id: conversation.ok_or_else(|| corrupt("conversation id", "missing"))?,
            message_id: MessageId::parse(str_of(d, "messageId")?).map_err(|e| corrupt("message id", e))?,
            text: str_of(d, "text")?.to_owned(),
            reply_to: opt_str(d, "replyTo"),
        }),
        OutboxKind::Webhook => Target::Webhook(Delivery {
            webhook_id: WebhookId::parse(str_of(d, "webhookId")?).map_err(|e| corrupt("webhook id", e))?,
            event_id: EventId::new(d.get_i64("eventId").map_err(|e| corrupt("event id", e))? as u64),
            event_type: str_of(d, "eventType")?.parse().map_err(|e| corrupt("event type", e))?,
            conversation_id: conversation,
        }),
    };
    Ok(OutboxItem {
        id: OutboxId::parse(str_of(d, "_id")?).map_err(|e| corrupt("outbox id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        send_id: SendId::from_stored(str_of(d, "sendId")?).map_err(|e| corrupt("send id", e))?,
        target,
        status: str_of(d, "status")?.parse().map_err(|e| corrupt("status", e))?,
        attempts: d.get_i64("attempts").map_err(|e| corrupt("attempts", e))? as u32,
        last_error: opt_str(d, "lastError"),
        next_attempt_at: opt_time_of(d, "nextAttemptAt")?,
        provider_message_ids: ids.iter().filter_map(Bson::as_str).map(str::to_owned).collect(),
        created_at: time_of(d, "createdAt")?,
        updated_at: time_of(d, "updatedAt")?,
    })
}

/// An event's document. Its data is kept as JSON text, as the raw inbound payloads are: nothing
/// a provider sent (integers beyond 64 bits, `$` keys) is lost or refused by BSON.
pub(super) fn event_doc(e: &Event) -> Document {
    doc! {
        "tenantId": e.tenant_id.as_str(), "seq": e.id.get() as i64, "type": e.event_type.as_str(), "at": dt(e.at),
        "conversationId": e.conversation_id.as_ref().map(ConversationId::as_str), "data": e.data.to_string(),
    }
}

pub(super) fn event_from(d: &Document) -> StoreResult<Event> {
    Ok(Event {
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        id: EventId::new(d.get_i64("seq").map_err(|e| corrupt("event id", e))? as u64),
        event_type: str_of(d, "type")?.parse().map_err(|e| corrupt("event type", e))?,
        at: time_of(d, "at")?,
        conversation_id: opt_str(d, "conversationId")
            .map(|c| ConversationId::parse(&c).map_err(|e| corrupt("conversation id", e)))
            .transpose()?,
        data: serde_json::from_str(str_of(d, "data")?).map_err(|e| corrupt("event data", e))?,
    })
}

pub(super) fn webhook_doc(e: &WebhookEndpoint) -> Document {
    let types: Vec<&str> = e.event_types.iter().map(|t| t.as_str()).collect();
    doc! {
        "_id": e.id.as_str(), "tenantId": e.tenant_id.as_str(), "url": &e.url, "eventTypes": types,
        "description": e.description.clone(), "secret": e.secret.as_str(), "state": e.state.as_str(),
        "disabledReason": e.disabled_reason.clone(),
        "health": serde_json::to_string(&e.health).expect("endpoint health serialises"),
        "createdAt": dt(e.created_at), "updatedAt": dt(e.updated_at),
    }
}

pub(super) fn webhook_from(d: &Document) -> StoreResult<WebhookEndpoint> {
    let types = d.get_array("eventTypes").map_err(|e| corrupt("eventTypes", e))?;
    Ok(WebhookEndpoint {
        id: WebhookId::parse(str_of(d, "_id")?).map_err(|e| corrupt("webhook id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        url: str_of(d, "url")?.to_owned(),
        event_types: types
            .iter()
            .map(|t| t.as_str().unwrap_or_default().parse().map_err(|e| corrupt("event type", e)))
            .collect::<StoreResult<_>>()?,
        description: opt_str(d, "description"),
        secret: Sealed::from_stored(str_of(d, "secret")?.to_owned()),
        state: EndpointState::parse(str_of(d, "state")?).map_err(|e| corrupt("webhook state", e))?,
        disabled_reason: opt_str(d, "disabledReason"),
        health: serde_json::from_str(str_of(d, "health")?).map_err(|e| corrupt("webhook health", e))?,
        created_at: time_of(d, "createdAt")?,
        updated_at: time_of(d, "updatedAt")?,
    })
}
