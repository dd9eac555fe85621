//! The MongoDB store's conversations, messages, inbound events and receipts. What an event
//! changes is decided by [`plan`] (shared with the SQLite adapter); this module loads and writes.

use super::codec::{
    conversation_doc, conversation_from, dt, inbound_event_from, message_doc, message_from, outbox_doc,
};
use super::errors::map_err;
use super::session::{Db, collect};
use super::{events, outbox};
use crate::domain::inbound::{InboundEvent, InboundEventRecord, InboundEventStatus};
use crate::domain::{ChannelId, Conversation, ConversationId, Direction, Message, MessageId, NewEvent, TenantId};
use crate::store::inbound::{Current, Lookups, Merge, Plan, greeting_send_id, join, lookups, plan, receipt_targets};
use crate::store::{ApplyOutcome, ConversationQuery, InboundRecord, StoreError, StoreResult};
use mongodb::ClientSession;
use mongodb::bson::{DateTime, Document, doc};
use std::collections::HashMap;
use time::OffsetDateTime;

/// Applies a batch in one transaction, each event as its own unit of effects.
///
/// It waits for its tenants' turns among this process's event-recording transactions
/// (`Db::recording`):
/// concurrent applies of batches spanning many tenants used to abort each other most of the time
/// on the tenants' event counters (see docs/reliability.md, "Cost"). A turn costs little because
/// the transaction is short: its reads are done ahead ([`ReadAhead`]), its writes buffered
/// ([`Pending`]) and sent with one command per collection.
pub(super) async fn apply(db: &Db, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
    let tenants = records.iter().map(|r| r.envelope.tenant_id.as_str());
    let (handle, owned) = (db.clone(), records.to_vec());
    db.recording(tenants, move |s| {
        let (db, records) = (handle.clone(), owned.clone());
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
    let mut pending = Pending::default();
    let mut ahead: Option<ReadAhead> = None;
    for (i, record) in records.iter().enumerate() {
        let direct = reads_others(record);
        let known = match ahead.take() {
            Some(known) => known,
            None => {
                // Up to the next event that reads the database directly, which makes it stale.
                let end = records[i..].iter().position(reads_others).map_or(records.len(), |n| i + n + 1);
                ReadAhead::load(db, session, &records[i..end]).await?
            }
        };
        let (outcome, drafts) = apply_one(db, session, &mut pending, &known, record, direct, now).await?;
        if !direct {
            ahead = Some(known);
        }
        outcomes.push(outcome);
        let tenant = &record.envelope.tenant_id;
        match made.iter_mut().find(|(t, _)| t == tenant) {
            Some((_, all)) => all.extend(drafts),
            None => made.push((tenant.clone(), drafts)),
        }
    }
    pending.flush(db, session).await?;
    events::record_all_in(db, session, made, now).await?;
    Ok(outcomes)
}

/// What the batch's events have written so far but not yet sent to the server: later events of
/// the batch read it before the database, and [`Pending::flush`] writes it with one command per
/// collection. Events whose writes reach beyond their own conversation and message (receipts,
/// group migrations, echoes of our sends: see [`reads_others`]) flush it first and read and
/// write the database directly.
#[derive(Default)]
struct Pending {
    /// Events applied in this batch: a repeat later in the batch is a replay.
    applied: Vec<Key>,
    /// New `inbound_events` documents.
    events: Vec<Document>,
    /// Conversations to write (insert or replace), in their latest state.
    conversations: Vec<Conversation>,
    /// New messages, in their latest state.
    inserts: Vec<Message>,
    /// Stored messages to replace, in their latest state.
    updates: Vec<Message>,
    /// New outbox items (greetings).
    outbox: Vec<Document>,
}

impl Pending {
    fn conversation(&self, tenant: &str, channel: &str, thread: &str) -> Option<Conversation> {
        let held = |c: &&Conversation| {
            c.tenant_id.as_str() == tenant && c.channel_id.as_str() == channel && c.external_thread_id == thread
        };
        self.conversations.iter().find(held).cloned()
    }

    fn message(&self, tenant: &str, channel: &str, external_id: &str) -> Option<Message> {
        let named = |m: &&Message| {
            m.tenant_id.as_str() == tenant
                && m.channel_id.as_str() == channel
                && m.external_message_id.as_deref() == Some(external_id)
        };
        self.inserts.iter().chain(&self.updates).find(named).cloned()
    }

    fn send_id_taken(&self, tenant: &str, send_id: &str) -> bool {
        self.inserts
            .iter()
            .any(|m| m.tenant_id.as_str() == tenant && m.send_id.as_ref().is_some_and(|s| s.as_str() == send_id))
    }

    /// Takes a plan's writes (none of which is a merge or a receipt: those go directly).
    fn take(&mut self, plan: Plan) {
        debug_assert!(plan.merge.is_none() && plan.receipt.is_none(), "written directly");
        if let Some(c) = plan.conversation {
            replace_or_push(&mut self.conversations, c, |a, b| a.id == b.id);
        }
        if let Some((item, message)) = plan.outbound {
            self.outbox.push(outbox_doc(&item));
            self.inserts.push(message);
        }
        self.inserts.extend(plan.insert);
        if let Some(m) = plan.update {
            match self.inserts.iter_mut().find(|new| new.id == m.id) {
                Some(new) => *new = m,
                None => replace_or_push(&mut self.updates, m, |a, b| a.id == b.id),
            }
        }
    }

    /// Sends what is pending: an insert per collection for new documents, one `update` command
    /// per collection for the replaced ones.
    async fn flush(&mut self, db: &Db, s: &mut ClientSession) -> mongodb::error::Result<()> {
        let Pending { applied: _, events, conversations, inserts, updates, outbox } = self;
        if !events.is_empty() {
            db.coll("inbound_events").insert_many(events.drain(..)).session(&mut *s).await?;
        }
        if !outbox.is_empty() {
            db.coll("outbox_send").insert_many(outbox.drain(..)).session(&mut *s).await?;
        }
        if !inserts.is_empty() {
            db.coll("messages").insert_many(inserts.drain(..).map(|m| message_doc(&m))).session(&mut *s).await?;
        }
        let replaced = updates.drain(..).map(|m| (m.id.as_str().to_owned(), message_doc(&m))).collect();
        replace_all(db, s, "messages", replaced, false).await?;
        let replaced = conversations.drain(..).map(|c| (c.id.as_str().to_owned(), conversation_doc(&c))).collect();
        replace_all(db, s, "conversations", replaced, true).await
    }
}

fn replace_or_push<T>(all: &mut Vec<T>, new: T, same: fn(&T, &T) -> bool) {
    match all.iter_mut().find(|old| same(old, &new)) {
        Some(old) => *old = new,
        None => all.push(new),
    }
}

/// Replaces documents by `_id` (inserting the missing ones if `upsert`) with one `update` command
/// of one statement each: the driver's `replace_one` would take a round trip per document.
async fn replace_all(
    db: &Db,
    s: &mut ClientSession,
    collection: &str,
    documents: Vec<(String, Document)>,
    upsert: bool,
) -> mongodb::error::Result<()> {
    if documents.is_empty() {
        return Ok(());
    }
    let statements: Vec<Document> =
        documents.into_iter().map(|(id, d)| doc! {"q": {"_id": id}, "u": d, "upsert": upsert}).collect();
    let reply = db
        .database()
        .run_command(doc! {"update": collection, "updates": statements, "ordered": true})
        .session(&mut *s)
        .await?;
    // A statement's failure (a duplicate key, a validator's refusal) comes back in an otherwise
    // successful reply; it fails the batch like any write error (`StoreError::Other`).
    match reply.get_array("writeErrors") {
        Ok(errors) if !errors.is_empty() => {
            Err(events::corrupt(format!("replacing documents in `{collection}` failed: {errors:?}")))
        }
        _ => Ok(()),
    }
}

/// A key of (tenant, channel, id): an inbound event, a conversation's thread, a message.
type Key = (String, String, String);

fn key_of(tenant: &str, channel: &str, id: &str) -> Key {
    (tenant.to_owned(), channel.to_owned(), id.to_owned())
}

/// What the database held for a run of the batch's events, read with one query per collection
/// and (tenant, channel) instead of one per event. An entry is the answer for its key (`None`:
/// there is none); a key with no entry was not read ahead and is looked up on its own. Valid
/// until the run's end: an event that reads the database directly ([`reads_others`]) ends it.
#[derive(Default)]
struct ReadAhead {
    /// Inbound events' statuses.
    events: HashMap<Key, Option<String>>,
    /// Conversations by a thread they hold or continue.
    conversations: HashMap<Key, Option<Conversation>>,
    /// Messages by provider id.
    messages: HashMap<Key, Option<Message>>,
}

/// What a run needs read for one (tenant, channel).
#[derive(Default)]
struct Wanted<'r> {
    tenant: &'r str,
    channel: &'r str,
    events: Vec<&'r str>,
    threads: Vec<&'r str>,
    messages: Vec<&'r str>,
}

impl ReadAhead {
    async fn load(db: &Db, s: &mut ClientSession, run: &[InboundRecord]) -> mongodb::error::Result<Self> {
        // Per (tenant, channel): event ids, and the threads and messages of the events that
        // read only their own.
        let mut wanted: Vec<Wanted> = Vec::new();
        for record in run {
            let e = &record.envelope;
            let (tenant, channel) = (e.tenant_id.as_str(), e.channel_id.as_str());
            let at = match wanted.iter().position(|w| w.tenant == tenant && w.channel == channel) {
                Some(at) => at,
                None => {
                    wanted.push(Wanted { tenant, channel, ..Wanted::default() });
                    wanted.len() - 1
                }
            };
            let w = &mut wanted[at];
            w.events.push(e.provider_event_id.as_str());
            if !reads_others(record) {
                let found = lookups(e, &record.event);
                w.threads.push(found.thread);
                w.messages.extend(found.external_id);
            }
        }
        let mut ahead = ReadAhead::default();
        for Wanted { tenant, channel, events, threads, messages } in wanted {
            let of = |field: &str, ids: &[&str]| doc! {"tenantId": tenant, "channelId": channel, field: {"$in": ids}};
            let mut cursor = db
                .coll("inbound_events")
                .find(of("providerEventId", &events))
                .projection(doc! {"providerEventId": 1, "status": 1})
                .session(&mut *s)
                .await?;
            ahead.events.extend(events.iter().map(|id| (key_of(tenant, channel, id), None)));
            while let Some(d) = cursor.next(&mut *s).await.transpose()? {
                let (id, status) =
                    (d.get_str("providerEventId").unwrap_or_default(), d.get_str("status").unwrap_or_default());
                ahead.events.insert(key_of(tenant, channel, id), Some(status.to_owned()));
            }
            if !threads.is_empty() {
                ahead.load_conversations(db, s, tenant, channel, &threads).await?;
            }
            if !messages.is_empty() {
                ahead.messages.extend(messages.iter().map(|id| (key_of(tenant, channel, id), None)));
                for m in find_all(db, s, "messages", of("externalMessageId", &messages), message_from).await? {
                    let id = m.external_message_id.clone().unwrap_or_default();
                    ahead.messages.insert(key_of(tenant, channel, &id), Some(m));
                }
            }
        }
        Ok(ahead)
    }

    /// The conversations of `threads`: those that hold them, then for the rest those a thread
    /// alias (a migrated group's old chat id) leads to.
    async fn load_conversations(
        &mut self,
        db: &Db,
        s: &mut ClientSession,
        tenant: &str,
        channel: &str,
        threads: &[&str],
    ) -> mongodb::error::Result<()> {
        self.conversations.extend(threads.iter().map(|t| (key_of(tenant, channel, t), None)));
        let held = doc! {"tenantId": tenant, "channelId": channel, "externalThreadId": {"$in": threads}};
        for c in find_all(db, s, "conversations", held, conversation_from).await? {
            let thread = c.external_thread_id.clone();
            self.conversations.insert(key_of(tenant, channel, &thread), Some(c));
        }
        let rest: Vec<&str> =
            threads.iter().copied().filter(|t| self.conversations[&key_of(tenant, channel, t)].is_none()).collect();
        if rest.is_empty() {
            return Ok(());
        }
        let aliases = doc! {"tenantId": tenant, "channelId": channel, "threadId": {"$in": &rest}};
        let mut cursor = db.coll("thread_aliases").find(aliases).session(&mut *s).await?;
        let mut leads = Vec::new();
        while let Some(d) = cursor.next(&mut *s).await.transpose()? {
            let (thread, to) =
                (d.get_str("threadId").unwrap_or_default(), d.get_str("conversationId").unwrap_or_default());
            leads.push((thread.to_owned(), to.to_owned()));
        }
        if leads.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = leads.iter().map(|(_, to)| to.as_str()).collect();
        let found =
            find_all(db, s, "conversations", doc! {"_id": {"$in": ids}, "tenantId": tenant}, conversation_from).await?;
        for (thread, to) in &leads {
            let c = found.iter().find(|c| c.id.as_str() == to).cloned();
            self.conversations.insert(key_of(tenant, channel, thread), c);
        }
        Ok(())
    }
}

/// Whether applying `record` reads or writes beyond its conversation and its message, which
/// [`Pending`] does not track: a receipt advances other messages, a group migration joins two
/// conversations, and an echo of our send finds its message by sendId.
fn reads_others(record: &InboundRecord) -> bool {
    match &record.event {
        InboundEvent::Receipt(_) => true,
        InboundEvent::Echo(echo) => echo.send_id.is_some(),
        event => lookups(&record.envelope, event).peer_thread.is_some(),
    }
}

async fn apply_one(
    db: &Db,
    s: &mut ClientSession,
    pending: &mut Pending,
    known: &ReadAhead,
    record: &InboundRecord,
    direct: bool,
    now: OffsetDateTime,
) -> mongodb::error::Result<(ApplyOutcome, Vec<NewEvent>)> {
    let e = &record.envelope;
    let events = db.coll("inbound_events");
    let event_key: Key = (e.tenant_id.to_string(), e.channel_id.to_string(), e.provider_event_id.clone());
    if pending.applied.contains(&event_key) {
        return Ok((ApplyOutcome::Duplicate, Vec::new()));
    }
    let key = doc! {"tenantId": e.tenant_id.as_str(), "channelId": e.channel_id.as_str(), "providerEventId": &e.provider_event_id};
    // An event whose earlier attempts failed (FAILED) is applied now; anything else is a replay.
    let status = match known.events.get(&event_key) {
        Some(status) => status.clone(),
        None => events
            .find_one(key.clone())
            .session(&mut *s)
            .await?
            .map(|d| d.get_str("status").unwrap_or_default().to_owned()),
    };
    let failed_before = match status {
        Some(status) if status == InboundEventStatus::Failed.as_str() => true,
        Some(_) => return Ok((ApplyOutcome::Duplicate, Vec::new())),
        None => false,
    };
    if direct {
        pending.flush(db, s).await?;
    }
    let current = load_current(db, s, pending, known, record).await?;
    let created = current.conversation.is_none();
    let plan = plan(e, &record.event, current, now);
    let mut made = crate::store::events::of_plan(&record.event, &plan, created);
    let processed =
        doc! {"status": InboundEventStatus::Processed.as_str(), "outcome": &plan.outcome, "processedAt": dt(now)};
    if direct {
        made.extend(write_plan(db, s, &plan).await?);
    } else {
        pending.take(plan);
    }
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
        pending.events.push(event);
    }
    pending.applied.push(event_key);
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
    found.as_ref().map(convert).transpose().map_err(events::corrupt)
}

/// Reads every document matching `filter` within the transaction, mapping each with `convert`.
async fn find_all<T>(
    db: &Db,
    s: &mut ClientSession,
    collection: &str,
    filter: Document,
    convert: fn(&Document) -> StoreResult<T>,
) -> mongodb::error::Result<Vec<T>> {
    let mut cursor = db.coll(collection).find(filter).session(&mut *s).await?;
    let mut found = Vec::new();
    while let Some(d) = cursor.next(&mut *s).await.transpose()? {
        found.push(convert(&d).map_err(events::corrupt)?);
    }
    Ok(found)
}

/// The state `record` applies to: what the batch has pending, else what was read ahead, else
/// what the database holds.
async fn load_current(
    db: &Db,
    s: &mut ClientSession,
    pending: &Pending,
    known: &ReadAhead,
    record: &InboundRecord,
) -> mongodb::error::Result<Current> {
    let e = &record.envelope;
    let (tenant, channel) = (e.tenant_id.as_str(), e.channel_id.as_str());
    let Lookups { thread, peer_thread, external_id, send_id } = lookups(e, &record.event);
    let conversation = match pending.conversation(tenant, channel, thread) {
        Some(c) => Some(c),
        None => match known.conversations.get(&key_of(tenant, channel, thread)) {
            Some(found) => found.clone(),
            None => conversation_of_thread(db, s, tenant, channel, thread).await?,
        },
    };
    let migration_peer = match peer_thread {
        Some(peer) => conversation_of_thread(db, s, tenant, channel, peer).await?,
        None => None,
    };
    let message = match external_id {
        Some(id) if let Some(m) = pending.message(tenant, channel, id) => Some(m),
        Some(id) if let Some(found) = known.messages.get(&key_of(tenant, channel, id)) => found.clone(),
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
            let send_id = greeting_send_id(e, thread);
            let taken = doc! {"tenantId": tenant, "sendId": send_id.as_str()};
            pending.send_id_taken(tenant, send_id.as_str())
                || db.coll("outbox_send").find_one(taken.clone()).session(&mut *s).await?.is_some()
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
