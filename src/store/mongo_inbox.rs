//! The MongoDB store's conversations, messages and inbound events.

use super::inbound::{Current, Plan, plan, receipt_targets};
use super::{ApplyOutcome, InboundRecord, StoreError, StoreResult};
use crate::domain::inbound::InboundEvent;
use crate::domain::{ChannelId, Conversation, ConversationId, Message, MessageId, TenantId};
use mongodb::bson::{self, Bson, DateTime, Document, doc};
use mongodb::{ClientSession, Database};
use time::OffsetDateTime;

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

fn opt_str(d: &Document, key: &str) -> Option<String> {
    d.get_str(key).ok().map(str::to_owned)
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
        last_message_at: if d.get_datetime("lastMessageAt").is_ok() {
            Some(time_of(d, "lastMessageAt")?)
        } else {
            None
        },
        preview: opt_str(d, "preview"),
        message_count: d.get_i64("messageCount").map_err(|e| corrupt("messageCount", e))? as u64,
        created_at: time_of(d, "createdAt")?,
        updated_at: time_of(d, "updatedAt")?,
    })
}

pub(super) fn message_doc(m: &Message) -> Document {
    let mut d = doc! {
        "_id": m.id.as_str(), "tenantId": m.tenant_id.as_str(), "channelId": m.channel_id.as_str(),
        "conversationId": m.conversation_id.as_str(),
        "direction": bson::to_bson(&m.direction).expect("direction serialises"),
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

/// Applies a batch inside the caller's transaction.
pub(super) async fn apply(
    db: &Database,
    session: &mut ClientSession,
    records: &[InboundRecord],
) -> mongodb::error::Result<Vec<ApplyOutcome>> {
    let now = crate::domain::now();
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        outcomes.push(apply_one(db, session, record, now).await?);
    }
    Ok(outcomes)
}

async fn apply_one(
    db: &Database,
    s: &mut ClientSession,
    record: &InboundRecord,
    now: OffsetDateTime,
) -> mongodb::error::Result<ApplyOutcome> {
    let e = &record.envelope;
    let events = db.collection::<Document>("inbound_events");
    let key = doc! {"tenantId": e.tenant_id.as_str(), "channelId": e.channel_id.as_str(), "providerEventId": &e.provider_event_id};
    if events.find_one(key.clone()).session(&mut *s).await?.is_some() {
        return Ok(ApplyOutcome::Duplicate);
    }
    let current = load_current(db, s, record).await?;
    let plan = plan(e, &record.event, current, now);
    write_plan(db, s, &plan).await?;
    let mut event = key;
    event.extend(doc! {
        "status": "PROCESSED", "outcome": &plan.outcome,
        "payload": bson::to_bson(&e.payload).unwrap_or(Bson::Null),
        "receivedAt": DateTime::from_millis(e.received_at_ms), "processedAt": dt(now),
    });
    events.insert_one(event).session(&mut *s).await?;
    Ok(ApplyOutcome::Applied)
}

/// Reads a document within the transaction, mapping it with `convert`.
async fn find<T>(
    db: &Database,
    s: &mut ClientSession,
    collection: &str,
    filter: Document,
    convert: fn(&Document) -> StoreResult<T>,
) -> mongodb::error::Result<Option<T>> {
    let found = db.collection::<Document>(collection).find_one(filter).session(&mut *s).await?;
    found.as_ref().map(convert).transpose().map_err(|e| mongodb::error::Error::custom(CorruptRecord(e.to_string())))
}

async fn load_current(db: &Database, s: &mut ClientSession, record: &InboundRecord) -> mongodb::error::Result<Current> {
    let e = &record.envelope;
    let (tenant, channel) = (e.tenant_id.as_str(), e.channel_id.as_str());
    let conversation = find(
        db,
        s,
        "conversations",
        doc! {"tenantId": tenant, "channelId": channel, "externalThreadId": &e.thread_id},
        conversation_from,
    )
    .await?;
    let (external_id, send_id) = match &record.event {
        InboundEvent::Message(m) => (Some(m.external_message_id.as_str()), None),
        InboundEvent::Edit(edit) => (Some(edit.message.external_message_id.as_str()), None),
        InboundEvent::Echo(echo) => (Some(echo.external_message_id.as_str()), echo.send_id.as_deref()),
        InboundEvent::Receipt(_) | InboundEvent::Ignored { .. } => (None, None),
    };
    let message = match external_id {
        Some(id) => {
            let filter = doc! {"tenantId": tenant, "channelId": channel, "externalMessageId": id};
            find(db, s, "messages", filter, message_from).await?
        }
        None => None,
    };
    let by_send_id = match send_id {
        Some(id) => find(db, s, "messages", doc! {"tenantId": tenant, "sendId": id}, message_from).await?,
        None => None,
    };
    let auto_reply = match &conversation {
        Some(_) => None,
        None => db
            .collection::<Document>("channels")
            .find_one(doc! {"_id": channel})
            .session(&mut *s)
            .await?
            .and_then(|c| c.get_str("autoReply").ok().map(str::to_owned)),
    };
    Ok(Current { conversation, message, by_send_id, auto_reply })
}

async fn write_plan(db: &Database, s: &mut ClientSession, plan: &Plan) -> mongodb::error::Result<()> {
    let conversations = db.collection::<Document>("conversations");
    let messages = db.collection::<Document>("messages");
    if let Some(c) = &plan.conversation {
        conversations
            .replace_one(doc! {"_id": c.id.as_str()}, conversation_doc(c))
            .upsert(true)
            .session(&mut *s)
            .await?;
    }
    if let Some(m) = &plan.insert {
        messages.insert_one(message_doc(m)).session(&mut *s).await?;
    }
    if let Some((item, message)) = &plan.outbound {
        super::mongo_outbox::insert_outbound(db, s, item, message).await?;
    }
    if let Some(m) = &plan.update {
        messages.replace_one(doc! {"_id": m.id.as_str()}, message_doc(m)).session(&mut *s).await?;
    }
    if let Some(r) = &plan.receipt {
        let targets: Vec<&str> = receipt_targets(r.status).iter().map(|t| t.as_str()).collect();
        let filter = doc! {
            "conversationId": r.conversation_id.as_str(), "direction": "outbound", "status": {"$in": targets},
            "$or": [{"sentAt": {"$lte": DateTime::from_millis(r.watermark_ms)}}, {"externalMessageId": {"$in": &r.mids}}],
        };
        messages.update_many(filter, doc! {"$set": {"status": r.status.as_str()}}).session(&mut *s).await?;
    }
    Ok(())
}

/// A stored record that does not parse, raised inside a transaction.
#[derive(Debug)]
pub(super) struct CorruptRecord(pub String);
