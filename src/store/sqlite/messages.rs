//! The SQLite store's message rows: written by the inbox (inbound, echoes) and the outbox
//! (replies), read by both.

use super::codec::{all, json_text, message_row};
use crate::domain::{ChannelId, ConversationId, Message, MessageId, MessageStatus, TenantId};
use crate::embedded::millis;
use crate::store::StoreResult;
use rusqlite::{Connection, OptionalExtension, params};

/// Inserts a message row.
pub(super) fn insert(c: &Connection, m: &Message) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO messages (id, tenant_id, channel_id, conversation_id, external_message_id, send_id, direction,
                               status, text, order_key, sent_at, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        m.id.as_str(),
        m.tenant_id.as_str(),
        m.channel_id.as_str(),
        m.conversation_id.as_str(),
        m.external_message_id,
        m.send_id,
        m.direction.as_str(),
        m.status.as_str(),
        m.text,
        m.order_key,
        millis(m.sent_at),
        json_text(&m.body),
        millis(m.created_at)
    ])?;
    Ok(())
}

/// Replaces the changeable fields of a message row (provider id, status, text, position, body).
pub(super) fn update(c: &Connection, m: &Message) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE messages SET external_message_id = ?2, status = ?3, text = ?4, order_key = ?5, sent_at = ?6, body = ?7
         WHERE id = ?1",
    )?
    .execute(params![
        m.id.as_str(),
        m.external_message_id,
        m.status.as_str(),
        m.text,
        m.order_key,
        millis(m.sent_at),
        json_text(&m.body)
    ])?;
    Ok(())
}

/// Sets an outbound message's status, and its provider id if it has none yet.
pub(super) fn set_status(
    c: &Connection,
    id: &MessageId,
    status: MessageStatus,
    provider_id: Option<&String>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE messages SET status = ?2, external_message_id = COALESCE(external_message_id, ?3) WHERE id = ?1",
    )?
    .execute(params![id.as_str(), status.as_str(), provider_id])?;
    Ok(())
}

/// The message with a provider id in a channel.
pub(super) fn by_external_id(
    c: &Connection,
    tenant: &TenantId,
    channel: &ChannelId,
    external_id: &str,
) -> rusqlite::Result<Option<Message>> {
    c.prepare_cached("SELECT * FROM messages WHERE tenant_id = ?1 AND channel_id = ?2 AND external_message_id = ?3")?
        .query_row(params![tenant.as_str(), channel.as_str(), external_id], message_row)
        .optional()
}

/// The outbound message with a sendId.
pub(super) fn by_send_id(c: &Connection, tenant: &TenantId, send_id: &str) -> rusqlite::Result<Option<Message>> {
    c.prepare_cached("SELECT * FROM messages WHERE tenant_id = ?1 AND send_id = ?2")?
        .query_row(params![tenant.as_str(), send_id], message_row)
        .optional()
}

/// A conversation's messages, newest first, before `before` (order key, id) when given.
pub(super) fn list(
    c: &Connection,
    tenant: &TenantId,
    conversation: &ConversationId,
    before: Option<&(String, MessageId)>,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    all(
        c,
        "SELECT * FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2
           AND (?3 IS NULL OR order_key < ?3 OR (order_key = ?3 AND id < ?4))
         ORDER BY order_key DESC, id DESC LIMIT ?5",
        params![
            tenant.as_str(),
            conversation.as_str(),
            before.map(|(key, _)| key.as_str()),
            before.map(|(_, id)| id.as_str()),
            limit
        ],
        message_row,
    )
}
