//! The MongoDB store's conversations, messages, inbound events and receipts. What an event
//! changes is decided by [`plan`] (shared with the SQLite adapter); this module loads and writes.

use super::codec::{
    CorruptRecord, conversation_doc, conversation_from, dt, inbound_event_from, message_doc, message_from,
};
use super::errors::map_err;
use super::session::{Db, collect};
use super::{events, outbox};
use crate::domain::inbound::{InboundEventRecord, InboundEventStatus};
use crate::domain::{ChannelId, Conversation, ConversationId, Direction, Message, MessageId, NewEvent, TenantId};
use crate::store::inbound::{Current, Lookups, Merge, Plan, greeting_send_id, join, lookups, plan, receipt_targets};
use crate::store::{ApplyOutcome, ConversationQuery, InboundRecord, StoreError, StoreResult};
use mongodb::ClientSession;
use mongodb::bson::{DateTime, Document, doc};
use time::OffsetDateTime;

/// Applies a batch in one transaction, each event as its own unit of effects.
pub(super) async fn apply(db: &Db, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
    let (handle, records) = (db.clone(), records.to_vec());
    db.transaction(move |s| {
        let (db, records) = (handle.clone(), records.clone());
        Box::pin(async move { apply_in(&db, s, &records).await })
    })
    .await
    .map_err(map_err)
}

/// Applies the batch's events in order, then records the events they made, per tenant in order,
/// last: the tenants' event counters are held for as short a time as the transaction allows.
async fn apply_in(
    db: &Db,
    session: &mut ClientSession,
    records: &[InboundRecord],
) -> mongodb::error::Result<Vec<ApplyOutcome>> {
    let now = crate::domain::now();
    let mut outcomes = Vec::with_capacity(records.len());
    let mut made: Vec<(TenantId, Vec<NewEvent>)> = Vec::new();
    for record in records {
        let (outcome, drafts) = apply_one(db, session, record, now).await?;
        outcomes.push(outcome);
        let tenant = &record.envelope.tenant_id;
        match made.iter_mut().find(|(t, _)| t == tenant) {
            Some((_, all)) => all.extend(drafts),
            None => made.push((tenant.clone(), drafts)),
        }
    }
    for (tenant, drafts) in made {
        events::record_in(db, session, &tenant, drafts, now).await?;
    }
    Ok(outcomes)
}

async fn apply_one(
    db: &Db,
    s: &mut ClientSession,
    record: &InboundRecord,
    now: OffsetDateTime,
) -> mongodb::error::Result<(ApplyOutcome, Vec<NewEvent>)> {
    let e = &record.envelope;
    let events = db.coll("inbound_events");
    let key = doc! {"tenantId": e.tenant_id.as_str(), "channelId": e.channel_id.as_str(), "providerEventId": &e.provider_event_id};
    // An event whose earlier attempts failed (FAILED) is applied now; anything else is a replay.
    let failed_before = match events.find_one(key.clone()).session(&mut *s).await? {
        Some(existing) if existing.get_str("status").ok() == Some(InboundEventStatus::Failed.as_str()) => true,
        Some(_) => return Ok((ApplyOutcome::Duplicate, Vec::new())),
        None => false,
    };
    let current = load_current(db, s, record).await?;
    let created = current.conversation.is_none();
    let plan = plan(e, &record.event, current, now);
    let mut made = crate::store::events::of_plan(&record.event, &plan, created);
    made.extend(write_plan(db, s, &plan).await?);
    let processed =
        doc! {"status": InboundEventStatus::Processed.as_str(), "outcome": &plan.outcome, "processedAt": dt(now)};
    if failed_before {
        // Only if still FAILED: a concurrent apply of the same event conflicts and retries.
        let mut still_failed = key;
        still_failed.insert("status", InboundEventStatus::Failed.as_str());
        events.update_one(still_failed, doc! {"$set": processed}).session(&mut *s).await?;
    } else {
        let mut event = key;
        event.extend(processed);
        event.extend(doc! {
            // The raw event as JSON text, as the SQLite adapter keeps it: exactly what arrived, with
            // nothing BSON cannot hold lost (integers beyond 64 bits, `$` keys, deep nesting).
            "payload": e.payload.to_string(),
            "receivedAt": DateTime::from_millis(e.received_at_ms),
        });
        events.insert_one(event).session(&mut *s).await?;
    }
    Ok((ApplyOutcome::Applied, made))
}

/// Reads a document within the transaction, mapping it with `convert`.
async fn find<T>(
    db: &Db,
    s: &mut ClientSession,
    collection: &str,
    filter: Document,
    convert: fn(&Document) -> StoreResult<T>,
) -> mongodb::error::Result<Option<T>> {
    let found = db.coll(collection).find_one(filter).session(&mut *s).await?;
    found.as_ref().map(convert).transpose().map_err(|e| mongodb::error::Error::custom(CorruptRecord(e.to_string())))
}

async fn load_current(db: &Db, s: &mut ClientSession, record: &InboundRecord) -> mongodb::error::Result<Current> {
    let e = &record.envelope;
    let (tenant, channel) = (e.tenant_id.as_str(), e.channel_id.as_str());
    let Lookups { thread, peer_thread, external_id, send_id } = lookups(e, &record.event);
    let conversation = conversation_of_thread(db, s, tenant, channel, thread).await?;
    let migration_peer = match peer_thread {
        Some(peer) => conversation_of_thread(db, s, tenant, channel, peer).await?,
        None => None,
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
            .coll("channels")
            .find_one(doc! {"_id": channel})
            .session(&mut *s)
            .await?
            .and_then(|c| c.get_str("autoReply").ok().map(str::to_owned)),
    };
    let greeting_taken = match auto_reply {
        Some(_) => {
            let taken = doc! {"tenantId": tenant, "sendId": greeting_send_id(e, thread).as_str()};
            db.coll("outbox_send").find_one(taken.clone()).session(&mut *s).await?.is_some()
                || db.coll("messages").find_one(taken).session(&mut *s).await?.is_some()
        }
        None => false,
    };
    Ok(Current { conversation, message, by_send_id, auto_reply, greeting_taken, migration_peer })
}

/// The conversation a thread leads to: the one that holds it, or the one a thread alias (a
/// migrated group's old chat id) points at.
async fn conversation_of_thread(
    db: &Db,
    s: &mut ClientSession,
    tenant: &str,
    channel: &str,
    thread: &str,
) -> mongodb::error::Result<Option<Conversation>> {
    let held = doc! {"tenantId": tenant, "channelId": channel, "externalThreadId": thread};
    if let Some(found) = find(db, s, "conversations", held, conversation_from).await? {
        return Ok(Some(found));
    }
    let alias = db
        .coll("thread_aliases")
        .find_one(doc! {"tenantId": tenant, "channelId": channel, "threadId": thread})
        .session(&mut *s)
        .await?;
    match alias.as_ref().and_then(|a| a.get_str("conversationId").ok()) {
        Some(id) => find(db, s, "conversations", doc! {"_id": id, "tenantId": tenant}, conversation_from).await,
        None => Ok(None),
    }
}

/// Continues the conversation of thread `from` under thread `to` (a group that became a
/// supergroup, as the sender learns it from Telegram), joining the two if both exist.
pub(super) async fn move_thread(
    db: &Db,
    tenant: &TenantId,
    channel: &ChannelId,
    from: &str,
    to: &str,
) -> StoreResult<Conversation> {
    let (handle, tenant, channel, from, to) =
        (db.clone(), tenant.clone(), channel.clone(), from.to_owned(), to.to_owned());
    db.transaction(move |s| {
        let (db, tenant, channel, from, to) =
            (handle.clone(), tenant.clone(), channel.clone(), from.clone(), to.clone());
        Box::pin(async move {
            let this = conversation_of_thread(&db, s, tenant.as_str(), channel.as_str(), &from).await?;
            let peer = conversation_of_thread(&db, s, tenant.as_str(), channel.as_str(), &to).await?;
            let (conversation, merge) = join(&tenant, &channel, &from, &to, this, peer, crate::domain::now());
            let plan = Plan {
                outcome: String::new(),
                merge: Some(merge),
                conversation: Some(conversation),
                ..Plan::default()
            };
            write_plan(&db, s, &plan).await?;
            Ok(plan.conversation.expect("set above"))
        })
    })
    .await
    .map_err(map_err)
}

/// The first half of joining two conversations ([`Merge`]): everything of the absorbed one moves
/// to the kept one, and the absorbed one goes (before the kept one takes its thread).
async fn absorb(db: &Db, s: &mut ClientSession, tenant: &str, merge: &Merge) -> mongodb::error::Result<()> {
    let Some(absorbed) = &merge.absorb else { return Ok(()) };
    let moved = doc! {"$set": {"conversationId": merge.keep.as_str()}};
    for collection in ["messages", "outbox_send", "thread_aliases"] {
        let filter = doc! {"tenantId": tenant, "conversationId": absorbed.as_str()};
        db.coll(collection).update_many(filter, moved.clone()).session(&mut *s).await?;
    }
    db.coll("conversations").delete_one(doc! {"_id": absorbed.as_str()}).session(&mut *s).await?;
    Ok(())
}

/// Writes the plan; returns the `message.status` events of the messages a receipt advanced.
async fn write_plan(db: &Db, s: &mut ClientSession, plan: &Plan) -> mongodb::error::Result<Vec<NewEvent>> {
    let conversations = db.coll("conversations");
    let messages = db.coll("messages");
    if let (Some(merge), Some(c)) = (&plan.merge, &plan.conversation) {
        absorb(db, s, c.tenant_id.as_str(), merge).await?;
    }
    if let Some(c) = &plan.conversation {
        conversations
            .replace_one(doc! {"_id": c.id.as_str()}, conversation_doc(c))
            .upsert(true)
            .session(&mut *s)
            .await?;
        for alias in plan.merge.iter().flat_map(|m| &m.aliases) {
            let key = doc! {"tenantId": c.tenant_id.as_str(), "channelId": c.channel_id.as_str(), "threadId": alias};
            let mut row = key.clone();
            row.extend(doc! {"conversationId": c.id.as_str(), "createdAt": dt(c.updated_at)});
            db.coll("thread_aliases").replace_one(key, row).upsert(true).session(&mut *s).await?;
        }
    }
    if let Some(m) = &plan.insert {
        messages.insert_one(message_doc(m)).session(&mut *s).await?;
    }
    if let Some((item, message)) = &plan.outbound {
        outbox::insert_outbound(db, s, item, message).await?;
    }
    if let Some(m) = &plan.update {
        messages.replace_one(doc! {"_id": m.id.as_str()}, message_doc(m)).session(&mut *s).await?;
    }
    if let Some(r) = &plan.receipt {
        let targets: Vec<&str> = receipt_targets(r.status).iter().map(|t| t.as_str()).collect();
        let filter = doc! {
            "conversationId": r.conversation_id.as_str(), "direction": Direction::Outbound.as_str(),
            "status": {"$in": targets},
            "$or": [{"sentAt": {"$lte": DateTime::from_millis(r.watermark_ms)}}, {"externalMessageId": {"$in": &r.mids}}],
        };
        let mut advancing = messages.find(filter.clone()).sort(doc! {"orderKey": 1, "_id": 1}).session(&mut *s).await?;
        let mut advanced = Vec::new();
        while let Some(d) = advancing.next(&mut *s).await.transpose()? {
            let id = d.get_str("_id").ok().and_then(|id| MessageId::parse(id).ok());
            let Some(id) = id else { continue };
            let external = d.get_str("externalMessageId").ok().map(str::to_owned);
            advanced.push(NewEvent::message_status(&r.conversation_id, &id, external.as_deref(), r.status));
        }
        messages.update_many(filter, doc! {"$set": {"status": r.status.as_str()}}).session(&mut *s).await?;
        return Ok(advanced);
    }
    Ok(Vec::new())
}

pub(super) async fn list_conversations(
    db: &Db,
    tenant: &TenantId,
    query: &ConversationQuery,
) -> StoreResult<Vec<Conversation>> {
    let mut filter = doc! {"tenantId": tenant.as_str()};
    let excluded: Vec<&str> = query.exclude_channels.iter().map(ChannelId::as_str).collect();
    match &query.channel {
        Some(channel) => filter.insert("channelId", doc! {"$eq": channel.as_str(), "$nin": excluded}),
        None => filter.insert("channelId", doc! {"$nin": excluded}),
    };
    if let Some((at, id)) = &query.before {
        filter.insert(
            "$or",
            vec![
                doc! {"lastMessageAt": {"$lt": dt(*at)}},
                doc! {"lastMessageAt": dt(*at), "_id": {"$lt": id.as_str()}},
            ],
        );
    }
    let cursor = db
        .coll("conversations")
        .find(filter)
        .sort(doc! {"lastMessageAt": -1, "_id": -1})
        .limit(i64::from(query.limit))
        .await
        .map_err(map_err)?;
    collect(cursor, conversation_from).await
}

pub(super) async fn get_conversation(db: &Db, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
    let found = db
        .coll("conversations")
        .find_one(doc! {"_id": id.as_str(), "tenantId": tenant.as_str()})
        .await
        .map_err(map_err)?;
    conversation_from(&found.ok_or_else(|| StoreError::NotFound(format!("conversation `{id}` in tenant `{tenant}`")))?)
}

pub(super) async fn list_messages(
    db: &Db,
    tenant: &TenantId,
    conversation: &ConversationId,
    before: Option<&(String, MessageId)>,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    let mut filter = doc! {"tenantId": tenant.as_str(), "conversationId": conversation.as_str()};
    if let Some((key, id)) = before {
        filter.insert(
            "$or",
            vec![
                doc! {"orderKey": {"$lt": key.as_str()}},
                doc! {"orderKey": key.as_str(), "_id": {"$lt": id.as_str()}},
            ],
        );
    }
    let cursor = db
        .coll("messages")
        .find(filter)
        .sort(doc! {"orderKey": -1, "_id": -1})
        .limit(i64::from(limit))
        .await
        .map_err(map_err)?;
    collect(cursor, message_from).await
}

pub(super) async fn get_inbound_event(
    db: &Db,
    tenant: &TenantId,
    channel: &ChannelId,
    provider_event_id: &str,
) -> StoreResult<Option<InboundEventRecord>> {
    let filter =
        doc! {"tenantId": tenant.as_str(), "channelId": channel.as_str(), "providerEventId": provider_event_id};
    let found = db.coll("inbound_events").find_one(filter).await.map_err(map_err)?;
    found.as_ref().map(inbound_event_from).transpose()
}
