//! The SQLite store's outbox: replies and webhook deliveries, their state machine (applied by the
//! domain, persisted here by compare-and-set), the send log, and the events a reply's steps make.

use super::codec::{all, conversation_row, json_text, other, outbox_row};
use super::{events, items, messages, tenants};
use crate::domain::{
    AuditEntry, EventType, Message, NewEvent, OutboxId, OutboxItem, OutboxKind, OutboxStatus, SendLogEntry, TenantId,
    Transition, WebhookId,
};
use crate::embedded::{millis, unique_violation};
use crate::store::{CreateOutcome, OutboxQuery, StoreResult, send_id_conflict};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

/// Inserts a reply and its outbound message (the caller's transaction makes them one unit).
pub(super) fn insert_outbound(c: &Connection, item: &OutboxItem, message: &Message) -> rusqlite::Result<()> {
    items::insert(c, item, false)?;
    messages::insert(c, message)
}

/// Stores a reply, counts it in its conversation and records `reply.queued`, or returns the item
/// that already holds its sendId.
pub(super) fn create(c: &Connection, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
    let existing = c
        .query_row(
            "SELECT * FROM outbox_send WHERE tenant_id = ?1 AND send_id = ?2",
            params![item.tenant_id.as_str(), item.send_id.as_str()],
            outbox_row,
        )
        .optional()
        .map_err(other)?;
    if let Some(existing) = existing {
        return CreateOutcome::for_existing(item, existing);
    }
    insert_outbound(c, item, message).map_err(|e| match unique_violation(&e) {
        Some(_) => send_id_conflict(item),
        None => other(e),
    })?;
    count_in_conversation(c, message)?;
    let queued = NewEvent::reply(EventType::ReplyQueued, item).into_iter().collect();
    events::record(c, &item.tenant_id, queued, crate::domain::now()).map_err(other)?;
    Ok(CreateOutcome::Created)
}

/// Counts a new outbound message in its conversation (`Conversation::count_message`).
fn count_in_conversation(c: &Connection, message: &Message) -> StoreResult<()> {
    let mut conversation = c
        .query_row(
            "SELECT * FROM conversations WHERE tenant_id = ?1 AND id = ?2",
            [message.tenant_id.as_str(), message.conversation_id.as_str()],
            conversation_row,
        )
        .map_err(other)?;
    conversation.count_message(message.text.as_deref(), message.sent_at);
    c.prepare_cached(
        "UPDATE conversations SET message_count = ?2, last_message_at = ?3, preview = ?4, updated_at = ?5
         WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            conversation.id.as_str(),
            conversation.message_count as i64,
            conversation.last_message_at.map(millis),
            conversation.preview,
            millis(message.created_at)
        ])
    })
    .map_err(other)?;
    Ok(())
}

/// An item by id, of `tenant` when given (None: the sender's lookup by queue id).
pub(super) fn get(c: &Connection, tenant: Option<&TenantId>, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
    c.query_row(
        "SELECT * FROM outbox_send WHERE id = ?1 AND (?2 IS NULL OR tenant_id = ?2)",
        params![id.as_str(), tenant.map(TenantId::as_str)],
        outbox_row,
    )
    .optional()
    .map_err(other)
}

pub(super) fn list(c: &Connection, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>> {
    let (before_at, before_id) = match &query.before {
        Some((at, id)) => (Some(millis(*at)), Some(id.as_str())),
        None => (None, None),
    };
    all(
        c,
        "SELECT * FROM outbox_send WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR status = ?2)
           AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4))
           AND (?6 IS NULL OR kind = ?6) AND (?7 IS NULL OR webhook_id = ?7)
         ORDER BY created_at DESC, id DESC LIMIT ?5",
        params![
            query.tenant.as_ref().map(TenantId::as_str),
            query.status.map(OutboxStatus::as_str),
            before_at,
            before_id,
            query.limit,
            query.kind.map(OutboxKind::as_str),
            query.webhook.as_ref().map(WebhookId::as_str)
        ],
        outbox_row,
    )
}

pub(super) fn due(
    c: &Connection,
    now: OffsetDateTime,
    stuck_before: OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<OutboxItem>> {
    all(
        c,
        "SELECT * FROM outbox_send
         WHERE (status = ?4 AND (next_attempt_at IS NULL OR next_attempt_at <= ?1))
            OR (status = ?5 AND updated_at < ?2)
         ORDER BY created_at, event_id, id LIMIT ?3",
        params![
            millis(now),
            millis(stuck_before),
            limit,
            OutboxStatus::Pending.as_str(),
            OutboxStatus::Enqueued.as_str()
        ],
        outbox_row,
    )
}

/// Loads the item, applies `step` (the domain decides), and writes the result if the status is
/// still the one loaded. None if the item is missing or the step does not apply.
pub(super) fn transition(
    c: &Connection,
    tenant: &TenantId,
    id: &OutboxId,
    step: &Transition,
    audit: Option<&AuditEntry>,
) -> StoreResult<Option<OutboxItem>> {
    let Some(mut item) = get(c, Some(tenant), id)? else {
        return Ok(None);
    };
    let loaded = item.status;
    let Ok(applied) = item.apply(step, crate::domain::now()) else {
        return Ok(None);
    };
    let changed = c
        .prepare_cached(
            "UPDATE outbox_send SET status = ?3, attempts = ?4, last_error = ?5, next_attempt_at = ?6,
                                    provider_message_ids = ?7, updated_at = ?8
             WHERE id = ?1 AND status = ?2",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                item.id.as_str(),
                loaded.as_str(),
                item.status.as_str(),
                item.attempts,
                item.last_error,
                item.next_attempt_at.map(millis),
                json_text(&item.provider_message_ids),
                millis(item.updated_at)
            ])
        })
        .map_err(other)?;
    if changed == 0 {
        return Ok(None);
    }
    if let (Some(status), Some(reply)) = (applied.message_status, item.reply()) {
        messages::set_status(c, &reply.message_id, status, item.provider_message_ids.first()).map_err(other)?;
    }
    if let Some(log) = &applied.log {
        append_send_log(c, &item, log).map_err(other)?;
    }
    if let Some(audit) = audit {
        tenants::append_audit(c, audit)?;
    }
    let made = applied.event.and_then(|event| NewEvent::reply(event, &item)).into_iter().collect();
    events::record(c, &item.tenant_id, made, item.updated_at).map_err(other)?;
    Ok(Some(item))
}

fn append_send_log(c: &Connection, item: &OutboxItem, log: &SendLogEntry) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO send_log (id, tenant_id, outbox_id, attempt, outcome, provider_message_id, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        format!("log_{}", uuid::Uuid::now_v7().simple()),
        item.tenant_id.as_str(),
        item.id.as_str(),
        log.attempt,
        log.outcome.as_str(),
        log.provider_message_id,
        log.detail,
        millis(item.updated_at)
    ])?;
    Ok(())
}

/// Applies [`Transition::Enqueue`] to every listed item it applies to.
pub(super) fn mark_enqueued(c: &Connection, ids: &[OutboxId]) -> StoreResult<()> {
    let step = Transition::Enqueue;
    let from = step.allowed_from();
    debug_assert_eq!(from.len(), 2, "the statement below names two statuses");
    let mut stmt = c
        .prepare_cached("UPDATE outbox_send SET status = ?2, updated_at = ?3 WHERE id = ?1 AND status IN (?4, ?5)")
        .map_err(other)?;
    let now = millis(crate::domain::now());
    for id in ids {
        stmt.execute(params![id.as_str(), step.target().as_str(), now, from[0].as_str(), from[1].as_str()])
            .map_err(other)?;
    }
    Ok(())
}
