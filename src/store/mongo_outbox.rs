//! The MongoDB store's outbox: replies, their state machine, the send log.

use super::mongo_inbox::{corrupt, dt, message_doc, str_of, time_of};
use super::{CreateOutcome, OutboxTransition, StoreResult};
use crate::domain::{ChannelId, ConversationId, Message, MessageId, OutboxId, OutboxItem, SendId, TenantId};
use mongodb::bson::{Bson, Document, doc};
use mongodb::{ClientSession, Database};

pub(super) fn outbox_doc(o: &OutboxItem) -> Document {
    doc! {
        "_id": o.id.as_str(), "tenantId": o.tenant_id.as_str(), "sendId": o.send_id.as_str(),
        "channelId": o.channel_id.as_str(), "conversationId": o.conversation_id.as_str(),
        "messageId": o.message_id.as_str(), "text": &o.text, "replyTo": o.reply_to.clone(),
        "status": o.status.as_str(), "attempts": i64::from(o.attempts), "lastError": o.last_error.clone(),
        "nextAttemptAt": o.next_attempt_at.map(dt), "providerMessageIds": o.provider_message_ids.clone(),
        "createdAt": dt(o.created_at), "updatedAt": dt(o.updated_at),
    }
}

pub(super) fn outbox_from(d: &Document) -> StoreResult<OutboxItem> {
    let ids = d.get_array("providerMessageIds").map_err(|e| corrupt("providerMessageIds", e))?;
    Ok(OutboxItem {
        id: OutboxId::parse(str_of(d, "_id")?).map_err(|e| corrupt("outbox id", e))?,
        tenant_id: TenantId::parse(str_of(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        send_id: SendId::parse(str_of(d, "sendId")?).map_err(|e| corrupt("send id", e))?,
        channel_id: ChannelId::parse(str_of(d, "channelId")?).map_err(|e| corrupt("channel id", e))?,
        conversation_id: ConversationId::parse(str_of(d, "conversationId")?)
            .map_err(|e| corrupt("conversation id", e))?,
        message_id: MessageId::parse(str_of(d, "messageId")?).map_err(|e| corrupt("message id", e))?,
        text: str_of(d, "text")?.to_owned(),
        reply_to: d.get_str("replyTo").ok().map(str::to_owned),
        status: str_of(d, "status")?.parse().map_err(|e| corrupt("status", e))?,
        attempts: d.get_i64("attempts").map_err(|e| corrupt("attempts", e))? as u32,
        last_error: d.get_str("lastError").ok().map(str::to_owned),
        next_attempt_at: if d.get_datetime("nextAttemptAt").is_ok() {
            Some(time_of(d, "nextAttemptAt")?)
        } else {
            None
        },
        provider_message_ids: ids.iter().filter_map(Bson::as_str).map(str::to_owned).collect(),
        created_at: time_of(d, "createdAt")?,
        updated_at: time_of(d, "updatedAt")?,
    })
}

/// Inserts an item and its outbound message inside the caller's transaction.
pub(super) async fn insert_outbound(
    db: &Database,
    s: &mut ClientSession,
    item: &OutboxItem,
    message: &Message,
) -> mongodb::error::Result<()> {
    db.collection::<Document>("outbox_send").insert_one(outbox_doc(item)).session(&mut *s).await?;
    db.collection::<Document>("messages").insert_one(message_doc(message)).session(&mut *s).await?;
    Ok(())
}

/// Finds the item with the sendId, inside the caller's transaction.
pub(super) async fn find_by_send_id(
    db: &Database,
    s: &mut ClientSession,
    item: &OutboxItem,
) -> mongodb::error::Result<Option<Document>> {
    let filter = doc! {"tenantId": item.tenant_id.as_str(), "sendId": item.send_id.as_str()};
    db.collection::<Document>("outbox_send").find_one(filter).session(&mut *s).await
}

/// The outcome of [`create`] before conversion, so the transaction closure stays simple.
pub(super) enum Created {
    New,
    Existing(Document),
}

pub(super) async fn create(
    db: &Database,
    s: &mut ClientSession,
    item: &OutboxItem,
    message: &Message,
) -> mongodb::error::Result<Created> {
    if let Some(existing) = find_by_send_id(db, s, item).await? {
        return Ok(Created::Existing(existing));
    }
    insert_outbound(db, s, item, message).await?;
    Ok(Created::New)
}

pub(super) fn created_outcome(item: &OutboxItem, created: Created) -> StoreResult<CreateOutcome> {
    match created {
        Created::New => Ok(CreateOutcome::Created),
        Created::Existing(doc) => super::sqlite_outbox::same_request(item, outbox_from(&doc)?),
    }
}

pub(super) async fn transition(
    db: &Database,
    s: &mut ClientSession,
    id: &OutboxId,
    t: &OutboxTransition,
) -> mongodb::error::Result<Option<Document>> {
    let outbox = db.collection::<Document>("outbox_send");
    let Some(current) = outbox.find_one(doc! {"_id": id.as_str()}).session(&mut *s).await? else {
        return Ok(None);
    };
    let status = current.get_str("status").unwrap_or_default();
    if !t.from.iter().any(|f| f.as_str() == status) {
        return Ok(None);
    }
    let now = dt(crate::domain::now());
    let mut set = doc! {
        "status": t.to.as_str(), "lastError": t.last_error.clone(),
        "nextAttemptAt": t.next_attempt_at.map(dt), "updatedAt": now,
    };
    if t.count_attempt {
        set.insert("attempts", current.get_i64("attempts").unwrap_or(0) + 1);
    }
    let mut ids: Vec<String> = current
        .get_array("providerMessageIds")
        .map(|a| a.iter().filter_map(Bson::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    ids.extend(t.add_provider_ids.iter().cloned());
    set.insert("providerMessageIds", ids.clone());
    // Compare-and-set: the status must still be what was read.
    let updated =
        outbox.update_one(doc! {"_id": id.as_str(), "status": status}, doc! {"$set": set}).session(&mut *s).await?;
    if updated.modified_count == 0 {
        return Ok(None);
    }
    let tenant = current.get_str("tenantId").unwrap_or_default().to_owned();
    if let Some(message_status) = t.message_status {
        let message_id = current.get_str("messageId").unwrap_or_default();
        let messages = db.collection::<Document>("messages");
        let mut set = doc! {"status": message_status.as_str()};
        let has_external = messages
            .find_one(doc! {"_id": message_id, "externalMessageId": {"$type": "string"}})
            .session(&mut *s)
            .await?
            .is_some();
        if let (false, Some(first)) = (has_external, ids.first()) {
            set.insert("externalMessageId", first);
        }
        messages.update_one(doc! {"_id": message_id}, doc! {"$set": set}).session(&mut *s).await?;
    }
    if let Some(log) = &t.log {
        let entry = doc! {
            "_id": format!("log_{}", uuid::Uuid::now_v7().simple()), "tenantId": &tenant, "outboxId": id.as_str(),
            "attempt": i64::from(log.attempt), "outcome": &log.outcome,
            "providerMessageId": log.provider_message_id.clone(), "detail": log.detail.clone(), "at": now,
        };
        db.collection::<Document>("send_log").insert_one(entry).session(&mut *s).await?;
    }
    if let Some(audit) = &t.audit {
        db.collection::<Document>("audit_log").insert_one(super::mongo::audit_doc(audit)).session(&mut *s).await?;
    }
    outbox.find_one(doc! {"_id": id.as_str()}).session(&mut *s).await
}
