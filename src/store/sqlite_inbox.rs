//! The SQLite store's conversations, messages and inbound events.

use super::inbound::{Current, Plan, ReceiptUpdate, plan, receipt_targets};
use super::sqlite::parsed;
use super::{ApplyOutcome, InboundRecord};
use crate::domain::inbound::InboundEvent;
use crate::domain::{ChannelId, Conversation, ConversationId, Message, MessageId, TenantId};
use crate::embedded::{from_millis, millis};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

pub(super) fn conversation_row(r: &Row<'_>) -> rusqlite::Result<Conversation> {
    Ok(Conversation {
        id: parsed(ConversationId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        channel_id: parsed(ChannelId::parse(&r.get::<_, String>("channel_id")?))?,
        external_thread_id: r.get("external_thread_id")?,
        title: r.get("title")?,
        last_message_at: r.get::<_, Option<i64>>("last_message_at")?.map(from_millis).transpose()?,
        preview: r.get("preview")?,
        message_count: r.get::<_, i64>("message_count")? as u64,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

pub(super) fn message_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: parsed(MessageId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        channel_id: parsed(ChannelId::parse(&r.get::<_, String>("channel_id")?))?,
        conversation_id: parsed(ConversationId::parse(&r.get::<_, String>("conversation_id")?))?,
        external_message_id: r.get("external_message_id")?,
        send_id: r.get("send_id")?,
        direction: parsed(r.get::<_, String>("direction")?.parse())?,
        status: parsed(r.get::<_, String>("status")?.parse())?,
        text: r.get("text")?,
        order_key: r.get("order_key")?,
        sent_at: from_millis(r.get("sent_at")?)?,
        body: parsed(serde_json::from_str(&r.get::<_, String>("body")?))?,
        created_at: from_millis(r.get("created_at")?)?,
    })
}

/// Applies a batch in one transaction.
pub(super) fn apply(conn: &mut Connection, records: &[InboundRecord]) -> rusqlite::Result<Vec<ApplyOutcome>> {
    let tx = conn.transaction()?;
    let now = crate::domain::now();
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        outcomes.push(apply_one(&tx, record, now)?);
    }
    tx.commit()?;
    Ok(outcomes)
}

fn apply_one(
    tx: &Transaction<'_>,
    record: &InboundRecord,
    now: time::OffsetDateTime,
) -> rusqlite::Result<ApplyOutcome> {
    let e = &record.envelope;
    let claimed = tx.execute(
        "INSERT OR IGNORE INTO inbound_events
             (tenant_id, channel_id, provider_event_id, status, outcome, payload, received_at, processed_at)
         VALUES (?1, ?2, ?3, 'PROCESSING', '', ?4, ?5, ?6)",
        params![
            e.tenant_id.as_str(),
            e.channel_id.as_str(),
            e.provider_event_id,
            e.payload.to_string(),
            e.received_at_ms,
            millis(now)
        ],
    )?;
    if claimed == 0 {
        return Ok(ApplyOutcome::Duplicate);
    }
    let current = load_current(tx, record)?;
    let plan = plan(e, &record.event, current, now);
    write_plan(tx, &plan)?;
    tx.execute(
        "UPDATE inbound_events SET status = 'PROCESSED', outcome = ?4
         WHERE tenant_id = ?1 AND channel_id = ?2 AND provider_event_id = ?3",
        params![e.tenant_id.as_str(), e.channel_id.as_str(), e.provider_event_id, plan.outcome],
    )?;
    Ok(ApplyOutcome::Applied)
}

fn load_current(tx: &Transaction<'_>, record: &InboundRecord) -> rusqlite::Result<Current> {
    let e = &record.envelope;
    let conversation = tx
        .prepare_cached(
            "SELECT * FROM conversations WHERE tenant_id = ?1 AND channel_id = ?2 AND external_thread_id = ?3",
        )?
        .query_row(params![e.tenant_id.as_str(), e.channel_id.as_str(), e.thread_id], conversation_row)
        .optional()?;
    let (external_id, send_id) = match &record.event {
        InboundEvent::Message(m) => (Some(m.external_message_id.as_str()), None),
        InboundEvent::Edit(edit) => (Some(edit.message.external_message_id.as_str()), None),
        InboundEvent::Echo(echo) => (Some(echo.external_message_id.as_str()), echo.send_id.as_deref()),
        InboundEvent::Receipt(_) | InboundEvent::Ignored { .. } => (None, None),
    };
    let message = match external_id {
        Some(id) => tx
            .prepare_cached(
                "SELECT * FROM messages WHERE tenant_id = ?1 AND channel_id = ?2 AND external_message_id = ?3",
            )?
            .query_row(params![e.tenant_id.as_str(), e.channel_id.as_str(), id], message_row)
            .optional()?,
        None => None,
    };
    let by_send_id = match send_id {
        Some(id) => tx
            .prepare_cached("SELECT * FROM messages WHERE tenant_id = ?1 AND send_id = ?2")?
            .query_row(params![e.tenant_id.as_str(), id], message_row)
            .optional()?,
        None => None,
    };
    let auto_reply = if conversation.is_none() {
        tx.prepare_cached("SELECT auto_reply FROM channels WHERE id = ?1")?
            .query_row([e.channel_id.as_str()], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten()
    } else {
        None
    };
    Ok(Current { conversation, message, by_send_id, auto_reply })
}

fn write_plan(tx: &Transaction<'_>, plan: &Plan) -> rusqlite::Result<()> {
    if let Some(c) = &plan.conversation {
        tx.prepare_cached(
            "INSERT INTO conversations (id, tenant_id, channel_id, external_thread_id, title, last_message_at, preview,
                                        message_count, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (id) DO UPDATE SET title = excluded.title, last_message_at = excluded.last_message_at,
                 preview = excluded.preview, message_count = excluded.message_count, updated_at = excluded.updated_at",
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
    }
    if let Some(m) = &plan.insert {
        insert_message(tx, m)?;
    }
    if let Some((item, message)) = &plan.outbound {
        super::sqlite_outbox::insert_outbound(tx, item, message)?;
    }
    if let Some(m) = &plan.update {
        tx.prepare_cached(
            "UPDATE messages SET external_message_id = ?2, status = ?3, text = ?4, body = ?5 WHERE id = ?1",
        )?
        .execute(params![
            m.id.as_str(),
            m.external_message_id,
            m.status.as_str(),
            m.text,
            serde_json::to_string(&m.body).expect("message body serialises")
        ])?;
    }
    if let Some(r) = &plan.receipt {
        apply_receipt(tx, r)?;
    }
    Ok(())
}

/// Inserts a message row.
pub(super) fn insert_message(tx: &Transaction<'_>, m: &Message) -> rusqlite::Result<()> {
    tx.prepare_cached(
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
        serde_json::to_value(m.direction).unwrap().as_str(),
        m.status.as_str(),
        m.text,
        m.order_key,
        millis(m.sent_at),
        serde_json::to_string(&m.body).expect("message body serialises"),
        millis(m.created_at)
    ])?;
    Ok(())
}

fn apply_receipt(tx: &Transaction<'_>, r: &ReceiptUpdate) -> rusqlite::Result<()> {
    let targets: Vec<&str> = receipt_targets(r.status).iter().map(|s| s.as_str()).collect();
    let mids = serde_json::to_string(&r.mids).expect("mids serialise");
    let placeholders = (0..targets.len()).map(|i| format!("?{}", i + 5)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "UPDATE messages SET status = ?2
         WHERE conversation_id = ?1 AND direction = 'outbound' AND status IN ({placeholders})
           AND (sent_at <= ?3 OR external_message_id IN (SELECT value FROM json_each(?4)))"
    );
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&r.conversation_id as &dyn rusqlite::ToSql];
    let status = r.status.as_str();
    values.push(&status);
    values.push(&r.watermark_ms);
    values.push(&mids);
    for t in &targets {
        values.push(t);
    }
    tx.execute(&sql, values.as_slice())?;
    Ok(())
}

impl rusqlite::ToSql for ConversationId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}
