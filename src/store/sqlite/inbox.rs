//! The SQLite store's conversations, inbound events and receipts. What an event changes is
//! decided by [`plan`] (shared with the MongoDB adapter); this module loads and writes.

use super::codec::{all, conversation_row, inbound_event_row, json_text, other, parsed};
use super::{events, messages, outbox};
use crate::domain::inbound::{InboundEventRecord, InboundEventStatus};
use crate::domain::{ChannelId, Conversation, ConversationId, Direction, MessageId, NewEvent, TenantId};
use crate::embedded::millis;
use crate::store::inbound::{
    Current, Lookups, Merge, Plan, ReceiptUpdate, greeting_send_id, join, lookups, plan, receipt_targets,
};
use crate::store::{ApplyOutcome, ConversationQuery, InboundRecord, StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};

/// Applies a batch inside the caller's transaction, each event as its own unit of effects.
pub(super) fn apply(c: &Connection, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
    let now = crate::domain::now();
    records.iter().map(|record| apply_one(c, record, now).map_err(other)).collect()
}

fn apply_one(c: &Connection, record: &InboundRecord, now: time::OffsetDateTime) -> rusqlite::Result<ApplyOutcome> {
    let e = &record.envelope;
    let claimed = c
        .prepare_cached(
            "INSERT INTO inbound_events
                 (tenant_id, channel_id, provider_event_id, status, outcome, payload, received_at, processed_at)
             VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7)
             ON CONFLICT (tenant_id, channel_id, provider_event_id) DO UPDATE
                 SET status = excluded.status, processed_at = excluded.processed_at
                 WHERE inbound_events.status = ?8",
        )?
        .execute(params![
            e.tenant_id.as_str(),
            e.channel_id.as_str(),
            e.provider_event_id,
            InboundEventStatus::Processing.as_str(),
            e.payload.to_string(),
            e.received_at_ms,
            millis(now),
            // An event whose earlier attempts failed is applied now; anything else is a replay.
            InboundEventStatus::Failed.as_str(),
        ])?;
    if claimed == 0 {
        return Ok(ApplyOutcome::Duplicate);
    }
    let current = load_current(c, record)?;
    let created = current.conversation.is_none();
    let plan = plan(e, &record.event, current, now);
    let mut made = crate::store::events::of_plan(&record.event, &plan, created);
    made.extend(write_plan(c, &plan)?);
    events::record(c, &e.tenant_id, made, now)?;
    c.prepare_cached(
        "UPDATE inbound_events SET status = ?4, outcome = ?5
         WHERE tenant_id = ?1 AND channel_id = ?2 AND provider_event_id = ?3",
    )?
    .execute(params![
        e.tenant_id.as_str(),
        e.channel_id.as_str(),
        e.provider_event_id,
        InboundEventStatus::Processed.as_str(),
        plan.outcome
    ])?;
    Ok(ApplyOutcome::Applied)
}

fn load_current(c: &Connection, record: &InboundRecord) -> rusqlite::Result<Current> {
    let e = &record.envelope;
    let (tenant, channel) = (&e.tenant_id, &e.channel_id);
    let Lookups { thread, peer_thread, external_id, send_id } = lookups(e, &record.event);
    let conversation = conversation_of_thread(c, tenant, channel, thread)?;
    let migration_peer = match peer_thread {
        Some(peer) => conversation_of_thread(c, tenant, channel, peer)?,
        None => None,
    };
    let message = match external_id {
        Some(id) => messages::by_external_id(c, tenant, channel, id)?,
        None => None,
    };
    let by_send_id = match send_id {
        Some(id) => messages::by_send_id(c, tenant, id)?,
        None => None,
    };
    let auto_reply = if conversation.is_none() {
        c.prepare_cached("SELECT auto_reply FROM channels WHERE id = ?1")?
            .query_row([channel.as_str()], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten()
    } else {
        None
    };
    let greeting_taken = match auto_reply {
        Some(_) => send_id_taken(c, tenant, greeting_send_id(e, thread).as_str())?,
        None => false,
    };
    Ok(Current { conversation, message, by_send_id, auto_reply, greeting_taken, migration_peer })
}

/// The conversation a thread leads to: the one that holds it, or the one a thread alias (a
/// migrated group's old chat id) points at.
fn conversation_of_thread(
    c: &Connection,
    tenant: &TenantId,
    channel: &ChannelId,
    thread: &str,
) -> rusqlite::Result<Option<Conversation>> {
    let held = c
        .prepare_cached(
            "SELECT * FROM conversations WHERE tenant_id = ?1 AND channel_id = ?2 AND external_thread_id = ?3",
        )?
        .query_row(params![tenant.as_str(), channel.as_str(), thread], conversation_row)
        .optional()?;
    if held.is_some() {
        return Ok(held);
    }
    c.prepare_cached(
        "SELECT conversations.* FROM thread_aliases JOIN conversations ON conversations.id = thread_aliases.conversation_id
         WHERE thread_aliases.tenant_id = ?1 AND thread_aliases.channel_id = ?2 AND thread_aliases.thread_id = ?3",
    )?
    .query_row(params![tenant.as_str(), channel.as_str(), thread], conversation_row)
    .optional()
}

/// Continues the conversation of thread `from` under thread `to` (a group that became a
/// supergroup, as the sender learns it from Telegram), joining the two if both exist.
pub(super) fn move_thread(
    c: &Connection,
    tenant: &TenantId,
    channel: &ChannelId,
    from: &str,
    to: &str,
) -> rusqlite::Result<Conversation> {
    let this = conversation_of_thread(c, tenant, channel, from)?;
    let peer = conversation_of_thread(c, tenant, channel, to)?;
    let (conversation, merge) = join(tenant, channel, from, to, this, peer, crate::domain::now());
    let plan = Plan { outcome: String::new(), merge: Some(merge), conversation: Some(conversation), ..Plan::default() };
    write_plan(c, &plan)?;
    Ok(plan.conversation.expect("set above"))
}

/// The first half of joining two conversations ([`Merge`]): everything of the absorbed one moves
/// to the kept one, and the absorbed one goes (before the kept one takes its thread).
fn absorb(c: &Connection, merge: &Merge) -> rusqlite::Result<()> {
    if let Some(absorbed) = &merge.absorb {
        let ids = params![merge.keep.as_str(), absorbed.as_str()];
        for table in ["messages", "outbox_send", "thread_aliases"] {
            c.execute(&format!("UPDATE {table} SET conversation_id = ?1 WHERE conversation_id = ?2"), ids)?;
        }
        c.execute("DELETE FROM conversations WHERE id = ?1", [absorbed.as_str()])?;
    }
    Ok(())
}

/// Whether an outbox item or a message of the tenant holds `send_id`.
fn send_id_taken(c: &Connection, tenant: &TenantId, send_id: &str) -> rusqlite::Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM outbox_send WHERE tenant_id = ?1 AND send_id = ?2)
             OR EXISTS (SELECT 1 FROM messages WHERE tenant_id = ?1 AND send_id = ?2)",
    )?
    .query_row([tenant.as_str(), send_id], |r| r.get(0))
}

/// Writes the plan; returns the `message.status` events of the messages a receipt advanced.
fn write_plan(tx: &Connection, plan: &Plan) -> rusqlite::Result<Vec<NewEvent>> {
    if let Some(merge) = &plan.merge {
        absorb(tx, merge)?;
    }
    if let Some(c) = &plan.conversation {
        tx.prepare_cached(
            "INSERT INTO conversations (id, tenant_id, channel_id, external_thread_id, title, last_message_at, preview,
                                        message_count, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO UPDATE SET external_thread_id = excluded.external_thread_id, title = excluded.title,
                 last_message_at = excluded.last_message_at, preview = excluded.preview,
                 message_count = excluded.message_count, updated_at = excluded.updated_at",
        )?
        .execute(params![
            c.id.as_str(),
            c.tenant_id.as_str(),
            c.channel_id.as_str(),
            c.external_thread_id,
            c.title,
            c.last_message_at.map(millis),
            c.preview,
            c.message_count as i64,
            millis(c.created_at),
            millis(c.updated_at)
        ])?;
        for alias in plan.merge.iter().flat_map(|m| &m.aliases) {
            tx.prepare_cached(
                "INSERT INTO thread_aliases (tenant_id, channel_id, thread_id, conversation_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, channel_id, thread_id) DO UPDATE SET conversation_id = excluded.conversation_id",
            )?
            .execute(params![c.tenant_id.as_str(), c.channel_id.as_str(), alias, c.id.as_str(), millis(c.updated_at)])?;
        }
    }
    if let Some(m) = &plan.insert {
        messages::insert(tx, m)?;
    }
    if let Some((item, message)) = &plan.outbound {
        outbox::insert_outbound(tx, item, message)?;
    }
    if let Some(m) = &plan.update {
        messages::update(tx, m)?;
    }
    match &plan.receipt {
        Some(r) => apply_receipt(tx, r),
        None => Ok(Vec::new()),
    }
}

/// Advances the receipt's messages; returns a `message.status` event for each, in provider order.
fn apply_receipt(tx: &Connection, r: &ReceiptUpdate) -> rusqlite::Result<Vec<NewEvent>> {
    let targets: Vec<&str> = receipt_targets(r.status).iter().map(|s| s.as_str()).collect();
    let targets = serde_json::to_string(&targets).expect("statuses serialise");
    let mids = serde_json::to_string(&r.mids).expect("mids serialise");
    let mut advanced = tx
        .prepare_cached(
            "UPDATE messages SET status = ?2
             WHERE conversation_id = ?1 AND direction = ?6 AND status IN (SELECT value FROM json_each(?5))
               AND (sent_at <= ?3 OR external_message_id IN (SELECT value FROM json_each(?4)))
             RETURNING id, external_message_id, order_key",
        )?
        .query_map(
            params![
                r.conversation_id.as_str(),
                r.status.as_str(),
                r.watermark_ms,
                mids,
                targets,
                Direction::Outbound.as_str()
            ],
            |row| {
                let id = parsed(MessageId::parse(&row.get::<_, String>(0)?))?;
                Ok((row.get::<_, String>(2)?, id, row.get::<_, Option<String>>(1)?))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    advanced.sort();
    Ok(advanced
        .into_iter()
        .map(|(_, id, external)| NewEvent::message_status(&r.conversation_id, &id, external.as_deref(), r.status))
        .collect())
}

pub(super) fn list_conversations(
    c: &Connection,
    tenant: &TenantId,
    query: &ConversationQuery,
) -> StoreResult<Vec<Conversation>> {
    let excluded: Vec<&str> = query.exclude_channels.iter().map(ChannelId::as_str).collect();
    let (before_at, before_id) = match &query.before {
        Some((at, id)) => (Some(millis(*at)), Some(id.as_str())),
        None => (None, None),
    };
    all(
        c,
        "SELECT * FROM conversations
         WHERE tenant_id = ?1 AND (?2 IS NULL OR channel_id = ?2)
           AND channel_id NOT IN (SELECT value FROM json_each(?3))
           AND (?4 IS NULL OR last_message_at < ?4 OR (last_message_at = ?4 AND id < ?5))
         ORDER BY last_message_at DESC, id DESC LIMIT ?6",
        params![
            tenant.as_str(),
            query.channel.as_ref().map(ChannelId::as_str),
            json_text(&excluded),
            before_at,
            before_id,
            query.limit
        ],
        conversation_row,
    )
}

pub(super) fn get_conversation(c: &Connection, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
    c.query_row(
        "SELECT * FROM conversations WHERE tenant_id = ?1 AND id = ?2",
        [tenant.as_str(), id.as_str()],
        conversation_row,
    )
    .optional()
    .map_err(other)?
    .ok_or_else(|| StoreError::NotFound(format!("conversation `{id}` in tenant `{tenant}`")))
}

pub(super) fn get_inbound_event(
    c: &Connection,
    tenant: &TenantId,
    channel: &ChannelId,
    provider_event_id: &str,
) -> StoreResult<Option<InboundEventRecord>> {
    c.query_row(
        "SELECT * FROM inbound_events WHERE tenant_id = ?1 AND channel_id = ?2 AND provider_event_id = ?3",
        [tenant.as_str(), channel.as_str(), provider_event_id],
        inbound_event_row,
    )
    .optional()
    .map_err(other)
}
