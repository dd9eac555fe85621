//! The SQLite store's outbox rows: written by the outbox (replies) and by the event fan-out
//! (webhook deliveries), read by both.

use super::codec::json_text;
use crate::domain::{ConversationId, OutboxItem};
use crate::embedded::millis;
use rusqlite::{Connection, params};

/// Inserts an item's row; with `if_absent`, an item whose (tenant, sendId) is taken is skipped.
/// Returns how many rows were written (0 or 1).
pub(super) fn insert(c: &Connection, item: &OutboxItem, if_absent: bool) -> rusqlite::Result<usize> {
    let sql = if if_absent {
        "INSERT OR IGNORE INTO outbox_send (id, tenant_id, send_id, kind, channel_id, conversation_id, message_id, text,
             reply_to, webhook_id, event_id, event_type, status, attempts, last_error, next_attempt_at,
             provider_message_ids, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    } else {
        "INSERT INTO outbox_send (id, tenant_id, send_id, kind, channel_id, conversation_id, message_id, text,
             reply_to, webhook_id, event_id, event_type, status, attempts, last_error, next_attempt_at,
             provider_message_ids, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
    };
    let (reply, delivery) = (item.reply(), item.delivery());
    let conversation = item.conversation_id().map(ConversationId::as_str);
    c.prepare_cached(sql)?.execute(params![
        item.id.as_str(),
        item.tenant_id.as_str(),
        item.send_id.as_str(),
        item.kind().as_str(),
        reply.map(|r| r.channel_id.as_str()),
        conversation,
        reply.map(|r| r.message_id.as_str()),
        reply.map(|r| r.text.as_str()),
        reply.and_then(|r| r.reply_to.as_deref()),
        delivery.map(|d| d.webhook_id.as_str()),
        delivery.map(|d| d.event_id.get() as i64),
        delivery.map(|d| d.event_type.as_str()),
        item.status.as_str(),
        item.attempts,
        item.last_error,
        item.next_attempt_at.map(millis),
        json_text(&item.provider_message_ids),
        millis(item.created_at),
        millis(item.updated_at)
    ])
}
