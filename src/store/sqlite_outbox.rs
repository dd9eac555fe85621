//! The SQLite store's outbox: replies, their state machine, the send log.

use super::sqlite::parsed;
use super::{CreateOutcome, OutboxTransition, StoreError};
use crate::domain::{ChannelId, ConversationId, Message, MessageId, OutboxId, OutboxItem, SendId, TenantId};
use crate::embedded::{from_millis, millis, unique_violation};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

pub(super) fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: parsed(OutboxId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        send_id: parsed(SendId::parse(&r.get::<_, String>("send_id")?))?,
        channel_id: parsed(ChannelId::parse(&r.get::<_, String>("channel_id")?))?,
        conversation_id: parsed(ConversationId::parse(&r.get::<_, String>("conversation_id")?))?,
        message_id: parsed(MessageId::parse(&r.get::<_, String>("message_id")?))?,
        text: r.get("text")?,
        reply_to: r.get("reply_to")?,
        status: parsed(r.get::<_, String>("status")?.parse())?,
        attempts: r.get("attempts")?,
        last_error: r.get("last_error")?,
        next_attempt_at: r.get::<_, Option<i64>>("next_attempt_at")?.map(from_millis).transpose()?,
        provider_message_ids: parsed(serde_json::from_str(&r.get::<_, String>("provider_message_ids")?))?,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

/// Inserts an item and its outbound message in `tx` (the caller commits).
pub(super) fn insert_outbound(tx: &Transaction<'_>, item: &OutboxItem, message: &Message) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO outbox_send (id, tenant_id, send_id, channel_id, conversation_id, message_id, text, reply_to,
                                  status, attempts, last_error, next_attempt_at, provider_message_ids, created_at,
                                  updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        item.id.as_str(),
        item.tenant_id.as_str(),
        item.send_id.as_str(),
        item.channel_id.as_str(),
        item.conversation_id.as_str(),
        item.message_id.as_str(),
        item.text,
        item.reply_to,
        item.status.as_str(),
        item.attempts,
        item.last_error,
        item.next_attempt_at.map(millis),
        serde_json::to_string(&item.provider_message_ids).expect("ids serialise"),
        millis(item.created_at),
        millis(item.updated_at)
    ])?;
    super::sqlite_inbox::insert_message(tx, message)
}

pub(super) fn create(conn: &mut Connection, item: &OutboxItem, message: &Message) -> Result<CreateOutcome, StoreError> {
    let tx = conn.transaction().map_err(super::sqlite::other)?;
    let existing = tx
        .query_row(
            "SELECT * FROM outbox_send WHERE tenant_id = ?1 AND send_id = ?2",
            params![item.tenant_id.as_str(), item.send_id.as_str()],
            outbox_row,
        )
        .optional()
        .map_err(super::sqlite::other)?;
    if let Some(existing) = existing {
        return same_request(item, existing);
    }
    insert_outbound(&tx, item, message).map_err(|e| match unique_violation(&e) {
        Some(_) => StoreError::Conflict(format!("idempotency key `{}` is already in use", item.send_id)),
        None => super::sqlite::other(e),
    })?;
    tx.commit().map_err(super::sqlite::other)?;
    Ok(CreateOutcome::Created)
}

/// The same sendId again: the same reply (same conversation and text) returns the first item;
/// anything else is a conflict.
pub(super) fn same_request(new: &OutboxItem, existing: OutboxItem) -> Result<CreateOutcome, StoreError> {
    if existing.text == new.text && existing.conversation_id == new.conversation_id {
        Ok(CreateOutcome::Existing(Box::new(existing)))
    } else {
        Err(StoreError::Conflict(format!("idempotency key `{}` was already used for a different reply", new.send_id)))
    }
}

pub(super) fn transition(
    conn: &mut Connection,
    id: &OutboxId,
    t: &OutboxTransition,
) -> rusqlite::Result<Option<OutboxItem>> {
    let tx = conn.transaction()?;
    let Some(mut item) =
        tx.query_row("SELECT * FROM outbox_send WHERE id = ?1", [id.as_str()], outbox_row).optional()?
    else {
        return Ok(None);
    };
    if !t.from.contains(&item.status) {
        return Ok(None);
    }
    let now = crate::domain::now();
    item.status = t.to;
    if t.count_attempt {
        item.attempts += 1;
    }
    item.last_error = t.last_error.clone();
    item.next_attempt_at = t.next_attempt_at;
    item.provider_message_ids.extend(t.add_provider_ids.iter().cloned());
    item.updated_at = now;
    tx.execute(
        "UPDATE outbox_send SET status = ?2, attempts = ?3, last_error = ?4, next_attempt_at = ?5,
                                provider_message_ids = ?6, updated_at = ?7
         WHERE id = ?1",
        params![
            item.id.as_str(),
            item.status.as_str(),
            item.attempts,
            item.last_error,
            item.next_attempt_at.map(millis),
            serde_json::to_string(&item.provider_message_ids).expect("ids serialise"),
            millis(now)
        ],
    )?;
    if let Some(status) = t.message_status {
        tx.execute(
            "UPDATE messages SET status = ?2, external_message_id = COALESCE(external_message_id, ?3) WHERE id = ?1",
            params![item.message_id.as_str(), status.as_str(), item.provider_message_ids.first()],
        )?;
    }
    if let Some(log) = &t.log {
        tx.execute(
            "INSERT INTO send_log (id, tenant_id, outbox_id, attempt, outcome, provider_message_id, detail, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                format!("log_{}", uuid::Uuid::now_v7().simple()),
                item.tenant_id.as_str(),
                item.id.as_str(),
                log.attempt,
                log.outcome,
                log.provider_message_id,
                log.detail,
                millis(now)
            ],
        )?;
    }
    if let Some(audit) = &t.audit {
        super::sqlite::write_audit(&tx, audit)?;
    }
    tx.commit()?;
    Ok(Some(item))
}
