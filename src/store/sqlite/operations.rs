//! The SQLite store's records for operators: inbound failures (`dlq peek` shows them), leases
//! (one redrive per queue, across processes), and outbox counts (metrics).

use super::codec::other;
use crate::domain::inbound::{Envelope, InboundEventStatus};
use crate::domain::{ChannelId, OutboxStatus, TenantId};
use crate::embedded::{from_millis, millis};
use crate::store::{InboundFailure, Lease, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

/// FAILED with the failure, unless PROCESSED: an event that was applied stays applied.
pub(super) fn record_inbound_failure(c: &Connection, e: &Envelope, f: &InboundFailure) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO inbound_events
             (tenant_id, channel_id, provider_event_id, status, outcome, payload, received_at, processed_at,
              error, receive_count, failed_at)
         VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?7, ?8, ?9, ?7)
         ON CONFLICT (tenant_id, channel_id, provider_event_id) DO UPDATE
             SET status = excluded.status, error = excluded.error, receive_count = excluded.receive_count,
                 failed_at = excluded.failed_at
             WHERE inbound_events.status <> ?10",
    )
    .and_then(|mut s| {
        s.execute(params![
            e.tenant_id.as_str(),
            e.channel_id.as_str(),
            e.provider_event_id,
            InboundEventStatus::Failed.as_str(),
            e.payload.to_string(),
            e.received_at_ms,
            millis(f.failed_at),
            f.error,
            f.receive_count,
            InboundEventStatus::Processed.as_str(),
        ])
    })
    .map_err(other)?;
    Ok(())
}

pub(super) fn inbound_failure(
    c: &Connection,
    tenant: &TenantId,
    channel: &ChannelId,
    provider_event_id: &str,
) -> StoreResult<Option<InboundFailure>> {
    c.prepare_cached(
        "SELECT error, receive_count, failed_at FROM inbound_events
         WHERE tenant_id = ?1 AND channel_id = ?2 AND provider_event_id = ?3 AND status = ?4",
    )
    .and_then(|mut s| {
        s.query_row(
            params![tenant.as_str(), channel.as_str(), provider_event_id, InboundEventStatus::Failed.as_str()],
            |r| {
                Ok(InboundFailure {
                    error: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    receive_count: r.get::<_, Option<u32>>(1)?.unwrap_or_default(),
                    failed_at: from_millis(r.get::<_, Option<i64>>(2)?.unwrap_or_default())?,
                })
            },
        )
        .optional()
    })
    .map_err(other)
}

fn lease_row(r: &Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        name: r.get("name")?,
        holder_id: r.get("holder_id")?,
        actor: r.get("actor")?,
        host: r.get("host")?,
        pid: r.get("pid")?,
        acquired_at: from_millis(r.get("acquired_at")?)?,
        expires_at: from_millis(r.get("expires_at")?)?,
    })
}

/// Inserts the lease, or replaces one that lapsed or whose holder is `replacing`.
pub(super) fn acquire_lease(c: &Connection, lease: &Lease, replacing: Option<&str>) -> StoreResult<Option<Lease>> {
    let now = millis(crate::domain::now());
    let taken = c
        .prepare_cached(
            "INSERT INTO leases (name, holder_id, actor, host, pid, acquired_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO UPDATE
                 SET holder_id = excluded.holder_id, actor = excluded.actor, host = excluded.host,
                     pid = excluded.pid, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
                 WHERE leases.expires_at <= ?8 OR leases.holder_id = ?9",
        )
        .and_then(|mut s| {
            s.execute(params![
                lease.name,
                lease.holder_id,
                lease.actor,
                lease.host,
                lease.pid,
                millis(lease.acquired_at),
                millis(lease.expires_at),
                now,
                replacing,
            ])
        })
        .map_err(other)?;
    if taken == 1 {
        return Ok(None);
    }
    c.query_row("SELECT * FROM leases WHERE name = ?1", [&lease.name], lease_row).optional().map_err(other)
}

pub(super) fn renew_lease(
    c: &Connection,
    name: &str,
    holder_id: &str,
    expires_at: OffsetDateTime,
) -> StoreResult<bool> {
    let renewed = c
        .execute(
            "UPDATE leases SET expires_at = ?3 WHERE name = ?1 AND holder_id = ?2",
            params![name, holder_id, millis(expires_at)],
        )
        .map_err(other)?;
    Ok(renewed == 1)
}

pub(super) fn release_lease(c: &Connection, name: &str, holder_id: &str) -> StoreResult<()> {
    c.execute("DELETE FROM leases WHERE name = ?1 AND holder_id = ?2", params![name, holder_id]).map_err(other)?;
    Ok(())
}

pub(super) fn count_outbox(c: &Connection, status: OutboxStatus) -> StoreResult<u64> {
    c.prepare_cached("SELECT COUNT(*) FROM outbox_send WHERE status = ?1")
        .and_then(|mut s| s.query_row([status.as_str()], |r| r.get::<_, i64>(0)))
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(other)
}
