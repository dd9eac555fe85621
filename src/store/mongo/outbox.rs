//! The MongoDB store's outbox: replies and webhook deliveries, their state machine (applied by the
//! domain, persisted here by compare-and-set), the send log, and the events a reply's steps make.

use super::codec::{CorruptRecord, audit_doc, conversation_from, dt, message_doc, outbox_doc, outbox_from};
use super::errors::map_err;
use super::events;
use super::session::{Db, collect};
use crate::domain::{
    AuditEntry, EventType, Message, NewEvent, OutboxId, OutboxItem, OutboxStatus, TenantId, Transition,
};
use crate::store::{CreateOutcome, OutboxQuery, StoreError, StoreResult, send_id_conflict};
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use time::OffsetDateTime;

/// Inserts an item and its outbound message inside the caller's transaction.
pub(super) async fn insert_outbound(
    db: &Db,
    s: &mut ClientSession,
    item: &OutboxItem,
    message: &Message,
) -> mongodb::error::Result<()> {
    db.coll("outbox_send").insert_one(outbox_doc(item)).session(&mut *s).await?;
    db.coll("messages").insert_one(message_doc(message)).session(&mut *s).await?;
    Ok(())
}

/// Stores a reply, counts it in its conversation and records `reply.queued`, or returns the item
/// that already holds its sendId.
pub(super) async fn create(db: &Db, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
    let (handle, owned_item, owned_message) = (db.clone(), item.clone(), message.clone());
    let existing = db
        .recording([item.tenant_id.as_str()], move |s| {
            let (db, item, message) = (handle.clone(), owned_item.clone(), owned_message.clone());
            Box::pin(async move {
                let filter = doc! {"tenantId": item.tenant_id.as_str(), "sendId": item.send_id.as_str()};
                if let Some(existing) = db.coll("outbox_send").find_one(filter).session(&mut *s).await? {
                    return Ok(Some(existing));
                }
                insert_outbound(&db, s, &item, &message).await?;
                count_in_conversation(&db, s, &message).await?;
                let queued = NewEvent::reply(EventType::ReplyQueued, &item).into_iter().collect();
                events::record_in(&db, s, &item.tenant_id, queued, crate::domain::now()).await?;
                Ok(None)
            })
        })
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(_) => send_id_conflict(item),
            other => other,
        })?;
    match existing {
        Some(doc) => CreateOutcome::for_existing(item, outbox_from(&doc)?),
        None => Ok(CreateOutcome::Created),
    }
}

/// Counts a new outbound message in its conversation (`Conversation::count_message`).
async fn count_in_conversation(db: &Db, s: &mut ClientSession, message: &Message) -> mongodb::error::Result<()> {
    let conversations = db.coll("conversations");
    let filter = doc! {"_id": message.conversation_id.as_str(), "tenantId": message.tenant_id.as_str()};
    let Some(stored) = conversations.find_one(filter.clone()).session(&mut *s).await? else {
        return Err(mongodb::error::Error::custom(CorruptRecord(format!(
            "reply to conversation `{}`, which does not exist",
            message.conversation_id
        ))));
    };
    let mut conversation =
        conversation_from(&stored).map_err(|e| mongodb::error::Error::custom(CorruptRecord(e.to_string())))?;
    conversation.count_message(message.text.as_deref(), message.sent_at);
    let set = doc! {
        "messageCount": conversation.message_count as i64, "lastMessageAt": conversation.last_message_at.map(dt),
        "preview": conversation.preview, "updatedAt": dt(message.created_at),
    };
    conversations.update_one(filter, doc! {"$set": set}).session(&mut *s).await?;
    Ok(())
}

/// An item by id, of `tenant` when given (None: the sender's lookup by queue id).
pub(super) async fn get(db: &Db, tenant: Option<&TenantId>, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
    let found = db.coll("outbox_send").find_one(filter(tenant, id)).await.map_err(map_err)?;
    found.as_ref().map(outbox_from).transpose()
}

fn filter(tenant: Option<&TenantId>, id: &OutboxId) -> Document {
    let mut filter = doc! {"_id": id.as_str()};
    if let Some(tenant) = tenant {
        filter.insert("tenantId", tenant.as_str());
    }
    filter
}

pub(super) async fn list(db: &Db, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>> {
    let mut filter = doc! {};
    if let Some(tenant) = &query.tenant {
        filter.insert("tenantId", tenant.as_str());
    }
    if let Some(status) = query.status {
        filter.insert("status", status.as_str());
    }
    if let Some(kind) = query.kind {
        // Items stored before webhook deliveries existed have no kind: they are replies.
        match kind {
            crate::domain::OutboxKind::Reply => filter.insert("kind", doc! {"$ne": "webhook"}),
            crate::domain::OutboxKind::Webhook => filter.insert("kind", "webhook"),
        };
    }
    if let Some(webhook) = &query.webhook {
        filter.insert("webhookId", webhook.as_str());
    }
    if let Some((at, id)) = &query.before {
        filter.insert(
            "$or",
            vec![doc! {"createdAt": {"$lt": dt(*at)}}, doc! {"createdAt": dt(*at), "_id": {"$lt": id.as_str()}}],
        );
    }
    let cursor = db
        .coll("outbox_send")
        .find(filter)
        .sort(doc! {"createdAt": -1, "_id": -1})
        .limit(i64::from(query.limit))
        .await
        .map_err(map_err)?;
    collect(cursor, outbox_from).await
}

/// Due items, read in a transaction: one snapshot, so a delivery is never published before an
/// earlier event's delivery of the same stream that committed first (see `events`).
pub(super) async fn due(
    db: &Db,
    now: OffsetDateTime,
    stuck_before: OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<OutboxItem>> {
    let filter = doc! {"$or": [
        {"status": OutboxStatus::Pending.as_str(), "$or": [{"nextAttemptAt": null}, {"nextAttemptAt": {"$lte": dt(now)}}]},
        {"status": OutboxStatus::Enqueued.as_str(), "updatedAt": {"$lt": dt(stuck_before)}},
    ]};
    let handle = db.clone();
    db.transaction(move |s| {
        let (db, filter) = (handle.clone(), filter.clone());
        Box::pin(async move {
            let mut cursor = db
                .coll("outbox_send")
                .find(filter)
                .sort(doc! {"createdAt": 1, "eventId": 1, "_id": 1})
                .limit(i64::from(limit))
                .session(&mut *s)
                .await?;
            let mut items = Vec::new();
            while let Some(d) = cursor.next(&mut *s).await.transpose()? {
                items.push(outbox_from(&d).map_err(|e| mongodb::error::Error::custom(CorruptRecord(e.to_string())))?);
            }
            Ok(items)
        })
    })
    .await
    .map_err(map_err)
}

/// Loads the item, applies `step` (the domain decides), and writes the result if the status is
/// still the one loaded, with the message status, send log and audit entry, in one transaction.
pub(super) async fn transition(
    db: &Db,
    tenant: &TenantId,
    id: &OutboxId,
    step: &Transition,
    audit: Option<&AuditEntry>,
) -> StoreResult<Option<OutboxItem>> {
    let (handle, id, step, audit) = (db.clone(), id.clone(), step.clone(), audit.map(audit_doc));
    let owned = tenant.clone();
    db.recording([tenant.as_str()], move |s| {
        let (db, id, step, audit, tenant) = (handle.clone(), id.clone(), step.clone(), audit.clone(), owned.clone());
        Box::pin(async move { transition_in(&db, s, &tenant, &id, &step, audit).await })
    })
    .await
    .map_err(map_err)
}

async fn transition_in(
    db: &Db,
    s: &mut ClientSession,
    tenant: &TenantId,
    id: &OutboxId,
    step: &Transition,
    audit: Option<Document>,
) -> mongodb::error::Result<Option<OutboxItem>> {
    let outbox = db.coll("outbox_send");
    let Some(stored) = outbox.find_one(filter(Some(tenant), id)).session(&mut *s).await? else {
        return Ok(None);
    };
    let mut item = outbox_from(&stored).map_err(|e| mongodb::error::Error::custom(CorruptRecord(e.to_string())))?;
    let loaded = item.status;
    let Ok(applied) = item.apply(step, crate::domain::now()) else {
        return Ok(None);
    };
    let set = doc! {
        "status": item.status.as_str(), "attempts": i64::from(item.attempts), "lastError": item.last_error.clone(),
        "nextAttemptAt": item.next_attempt_at.map(dt), "providerMessageIds": item.provider_message_ids.clone(),
        "updatedAt": dt(item.updated_at),
    };
    // Compare-and-set: the status must still be the one loaded.
    let filter = doc! {"_id": id.as_str(), "status": loaded.as_str()};
    if outbox.update_one(filter, doc! {"$set": set}).session(&mut *s).await?.matched_count == 0 {
        return Ok(None);
    }
    if let (Some(status), Some(reply)) = (applied.message_status, item.reply()) {
        let messages = db.coll("messages");
        let message_id = reply.message_id.as_str();
        let mut set = doc! {"status": status.as_str()};
        let has_external = messages
            .find_one(doc! {"_id": message_id, "externalMessageId": {"$type": "string"}})
            .session(&mut *s)
            .await?
            .is_some();
        if let (false, Some(first)) = (has_external, item.provider_message_ids.first()) {
            set.insert("externalMessageId", first);
        }
        messages.update_one(doc! {"_id": message_id}, doc! {"$set": set}).session(&mut *s).await?;
    }
    if let Some(log) = &applied.log {
        let entry = doc! {
            "_id": format!("log_{}", uuid::Uuid::now_v7().simple()), "tenantId": item.tenant_id.as_str(),
            "outboxId": id.as_str(), "attempt": i64::from(log.attempt), "outcome": log.outcome.as_str(),
            "providerMessageId": log.provider_message_id.clone(), "detail": log.detail.clone(),
            "at": dt(item.updated_at),
        };
        db.coll("send_log").insert_one(entry).session(&mut *s).await?;
    }
    if let Some(audit) = audit {
        db.coll("audit_log").insert_one(audit).session(&mut *s).await?;
    }
    let made = applied.event.and_then(|event| NewEvent::reply(event, &item)).into_iter().collect();
    events::record_in(db, s, &item.tenant_id, made, item.updated_at).await?;
    Ok(Some(item))
}

/// Applies [`Transition::Enqueue`] to every listed item it applies to, in one write.
///
/// In a transaction of its own, although it is one statement: the sender may already be working
/// on an item in its transaction when the relay marks it, and a write that meets a transaction's
/// write then aborts and retries here (`Db::transaction`) instead of waiting inside the server.
/// SecantusDB waits for such a write while holding its collection lock, and the transaction's
/// next statement on `outbox_send` waits for that lock: both stalled for good, and with them every
/// reply and delivery (found by CI; docs/dev/stand-ins.md).
pub(super) async fn mark_enqueued(db: &Db, ids: &[OutboxId]) -> StoreResult<()> {
    let step = Transition::Enqueue;
    let from: Vec<&str> = step.allowed_from().iter().map(|s| s.as_str()).collect();
    let ids: Vec<&str> = ids.iter().map(OutboxId::as_str).collect();
    let filter = doc! {"_id": {"$in": ids}, "status": {"$in": from}};
    let update = doc! {"$set": {"status": step.target().as_str(), "updatedAt": dt(crate::domain::now())}};
    let outbox = db.coll("outbox_send");
    db.transaction(move |s| {
        let (outbox, filter, update) = (outbox.clone(), filter.clone(), update.clone());
        Box::pin(async move { outbox.update_many(filter, update).session(s).await.map(drop) })
    })
    .await
    .map_err(map_err)
}

/// Stores new webhook deliveries; one whose (tenant, sendId) is taken is skipped.
pub(super) async fn insert_deliveries(db: &Db, items: &[OutboxItem]) -> StoreResult<()> {
    for item in items {
        match db.coll("outbox_send").insert_one(outbox_doc(item)).await.map_err(map_err) {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
