//! The SQLite store's event log: events numbered by the tenant's counter in the transaction of
//! the change they describe, with their webhook deliveries (`store::events`); reads, heads, pruning.
//!
//! SQLite has one writer at a time, so ids commit in order; a read is one snapshot.

use super::codec::{all, event_row, json_text, other, webhook_row};
use super::items;
use crate::domain::event::EventCounter;
use crate::domain::webhook::EndpointState;
use crate::domain::{Event, EventId, NewEvent, TenantId};
use crate::embedded::{from_millis, millis};
use crate::store::StoreResult;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

/// Numbers `drafts` with the tenant's counter, writes them and their deliveries to the tenant's
/// enabled endpoints, inside the caller's transaction.
pub(super) fn record(
    c: &Connection,
    tenant: &TenantId,
    drafts: Vec<NewEvent>,
    now: OffsetDateTime,
) -> rusqlite::Result<Vec<Event>> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let counter = c
        .prepare_cached("SELECT last_id, last_at FROM event_counters WHERE tenant_id = ?1")?
        .query_row([tenant.as_str()], |r| {
            Ok(EventCounter { last: EventId::new(r.get::<_, i64>(0)? as u64), last_at: Some(from_millis(r.get(1)?)?) })
        })
        .optional()?
        .unwrap_or_default();
    let (events, counter) = counter.assign(tenant, drafts, now);
    let mut insert = c.prepare_cached(
        "INSERT INTO events (tenant_id, id, type, at, conversation_id, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for e in &events {
        insert.execute(params![
            tenant.as_str(),
            e.id.get() as i64,
            e.event_type.as_str(),
            millis(e.at),
            e.conversation_id.as_ref().map(|c| c.as_str()),
            json_text(&e.data)
        ])?;
    }
    c.prepare_cached(
        "INSERT INTO event_counters (tenant_id, last_id, last_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id) DO UPDATE SET last_id = excluded.last_id, last_at = excluded.last_at",
    )?
    .execute(params![tenant.as_str(), counter.last.get() as i64, counter.last_at.map(millis)])?;
    let endpoints = c
        .prepare_cached("SELECT * FROM webhooks WHERE tenant_id = ?1 AND state = ?2 ORDER BY created_at, id")?
        .query_map(params![tenant.as_str(), EndpointState::Enabled.as_str()], webhook_row)?
        .collect::<Result<Vec<_>, _>>()?;
    for delivery in crate::store::events::deliveries(&events, &endpoints, now) {
        items::insert(c, &delivery, true)?;
    }
    Ok(events)
}

pub(super) fn list(c: &Connection, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>> {
    all(
        c,
        "SELECT * FROM events WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        params![tenant.as_str(), after.get() as i64, limit],
        event_row,
    )
}

pub(super) fn get(c: &Connection, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>> {
    c.query_row(
        "SELECT * FROM events WHERE tenant_id = ?1 AND id = ?2",
        params![tenant.as_str(), id.get() as i64],
        event_row,
    )
    .optional()
    .map_err(other)
}

pub(super) fn heads(c: &Connection, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>> {
    let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
    all(
        c,
        "SELECT tenant_id, last_id FROM event_counters WHERE tenant_id IN (SELECT value FROM json_each(?1))",
        [json_text(&names)],
        |r| {
            let tenant = super::codec::parsed(TenantId::parse(&r.get::<_, String>(0)?))?;
            Ok((tenant, EventId::new(r.get::<_, i64>(1)? as u64)))
        },
    )
}

pub(super) fn prune(c: &Connection, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
    let deleted = c
        .prepare_cached(
            "DELETE FROM events WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM events WHERE at < ?1 LIMIT ?2)",
        )
        .and_then(|mut stmt| stmt.execute(params![millis(before), limit]))
        .map_err(other)?;
    Ok(deleted as u64)
}
