//! The MongoDB store's records for operators: inbound failures (`dlq peek` shows them), leases
//! (one redrive per queue, across hosts), and outbox counts (metrics).

use super::codec::{dt, str_of, time_of};
use super::errors::map_err;
use super::session::Db;
use crate::domain::inbound::{Envelope, InboundEventStatus};
use crate::domain::{ChannelId, OutboxStatus, TenantId};
use crate::store::{InboundFailure, Lease, StoreError, StoreResult};
use mongodb::bson::{DateTime, Document, doc};
use time::OffsetDateTime;

fn event_key(tenant: &str, channel: &str, provider_event_id: &str) -> Document {
    doc! {"tenantId": tenant, "channelId": channel, "providerEventId": provider_event_id}
}

/// FAILED with the failure, unless PROCESSED. An upsert whose filter excludes a PROCESSED event
/// tries to insert it again and hits the unique key: that conflict means "already applied".
pub(super) async fn record_inbound_failure(db: &Db, e: &Envelope, f: &InboundFailure) -> StoreResult<()> {
    let mut filter = event_key(e.tenant_id.as_str(), e.channel_id.as_str(), &e.provider_event_id);
    filter.insert("status", doc! {"$ne": InboundEventStatus::Processed.as_str()});
    let update = doc! {
        "$set": {
            "status": InboundEventStatus::Failed.as_str(), "error": &f.error,
            "receiveCount": i64::from(f.receive_count), "failedAt": dt(f.failed_at),
        },
        "$setOnInsert": {
            "outcome": "", "payload": e.payload.to_string(),
            "receivedAt": DateTime::from_millis(e.received_at_ms), "processedAt": dt(f.failed_at),
        },
    };
    // In a transaction for the reason `outbox::mark_enqueued` gives: a write that meets the
    // write of a processor's transaction (a duplicate of this event applied meanwhile) must not
    // wait for it inside SecantusDB.
    let events = db.coll("inbound_events");
    let upserted = db
        .transaction(move |s| {
            let (events, filter, update) = (events.clone(), filter.clone(), update.clone());
            Box::pin(async move { events.update_one(filter, update).upsert(true).session(s).await.map(drop) })
        })
        .await;
    match upserted.map_err(map_err) {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) async fn inbound_failure(
    db: &Db,
    tenant: &TenantId,
    channel: &ChannelId,
    provider_event_id: &str,
) -> StoreResult<Option<InboundFailure>> {
    let mut filter = event_key(tenant.as_str(), channel.as_str(), provider_event_id);
    filter.insert("status", InboundEventStatus::Failed.as_str());
    let Some(d) = db.coll("inbound_events").find_one(filter).await.map_err(map_err)? else { return Ok(None) };
    Ok(Some(InboundFailure {
        error: d.get_str("error").unwrap_or_default().to_owned(),
        receive_count: d.get_i64("receiveCount").ok().and_then(|n| u32::try_from(n).ok()).unwrap_or_default(),
        failed_at: time_of(&d, "failedAt")?,
    }))
}

fn lease_doc(l: &Lease) -> Document {
    doc! {
        "_id": &l.name, "holderId": &l.holder_id, "actor": &l.actor, "host": &l.host, "pid": i64::from(l.pid),
        "acquiredAt": dt(l.acquired_at), "expiresAt": dt(l.expires_at),
    }
}

fn lease_from(d: &Document) -> StoreResult<Lease> {
    Ok(Lease {
        name: str_of(d, "_id")?.to_owned(),
        holder_id: str_of(d, "holderId")?.to_owned(),
        actor: str_of(d, "actor")?.to_owned(),
        host: str_of(d, "host")?.to_owned(),
        pid: d.get_i64("pid").ok().and_then(|p| u32::try_from(p).ok()).unwrap_or_default(),
        acquired_at: time_of(d, "acquiredAt")?,
        expires_at: time_of(d, "expiresAt")?,
    })
}

/// Replaces the lease document if it lapsed or is `replacing`'s, else inserts it; a duplicate
/// `_id` on insert means someone holds it.
pub(super) async fn acquire_lease(db: &Db, lease: &Lease, replacing: Option<&str>) -> StoreResult<Option<Lease>> {
    let leases = db.coll("leases");
    let mut free = vec![doc! {"expiresAt": {"$lte": dt(crate::domain::now())}}];
    if let Some(holder) = replacing {
        free.push(doc! {"holderId": holder});
    }
    let filter = doc! {"_id": &lease.name, "$or": free};
    match leases.replace_one(filter, lease_doc(lease)).upsert(true).await.map_err(map_err) {
        Ok(_) => Ok(None),
        Err(StoreError::Conflict(_)) => {
            let current = leases.find_one(doc! {"_id": &lease.name}).await.map_err(map_err)?;
            current.as_ref().map(lease_from).transpose()
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn renew_lease(db: &Db, name: &str, holder_id: &str, expires_at: OffsetDateTime) -> StoreResult<bool> {
    let renewed = db
        .coll("leases")
        .update_one(doc! {"_id": name, "holderId": holder_id}, doc! {"$set": {"expiresAt": dt(expires_at)}})
        .await
        .map_err(map_err)?;
    Ok(renewed.matched_count == 1)
}

pub(super) async fn release_lease(db: &Db, name: &str, holder_id: &str) -> StoreResult<()> {
    db.coll("leases").delete_one(doc! {"_id": name, "holderId": holder_id}).await.map_err(map_err)?;
    Ok(())
}

pub(super) async fn count_outbox(db: &Db, status: OutboxStatus) -> StoreResult<u64> {
    db.coll("outbox_send").count_documents(doc! {"status": status.as_str()}).await.map_err(map_err)
}
