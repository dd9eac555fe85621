//! The MongoDB store's event log: events numbered by the tenant's counter document, incremented
//! inside the transaction of the change they describe, with their webhook deliveries
//! (`store::events`); reads, heads, pruning.
//!
//! Why ids never commit out of order: every transaction that records a tenant's events writes the
//! tenant's counter document. MongoDB lets one open transaction at a time hold a written
//! document; a second that writes it meets a write conflict, aborts and is retried whole (see
//! `session::Db::transaction`) after the first commits, so it reads the first's count. Ids are
//! therefore gap-free (an aborted transaction's increment is rolled back with it) and commit in
//! id order; a read inside a transaction is one snapshot, so a reader that sees id n also sees
//! every id below it. The counter is written last, to keep that window short.

use super::codec::{dt, event_doc, event_from, outbox_doc, time_of, webhook_from};
use super::errors::map_err;
use super::session::{Db, collect};
use crate::domain::event::EventCounter;
use crate::domain::webhook::EndpointState;
use crate::domain::{Event, EventId, NewEvent, TenantId};
use crate::store::StoreResult;
use mongodb::ClientSession;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::ReturnDocument;
use time::OffsetDateTime;

/// A record (or a write) the adapter cannot make sense of, as a driver error that aborts the
/// transaction; `errors::map_err` reports it as `StoreError::Other` with `why`.
pub(super) fn corrupt(why: impl std::fmt::Display) -> mongodb::error::Error {
    mongodb::error::Error::custom(super::codec::CorruptRecord(why.to_string()))
}

/// Numbers `drafts` with the tenant's counter and writes them and their deliveries to the
/// tenant's enabled endpoints, inside the caller's transaction.
pub(super) async fn record_in(
    db: &Db,
    s: &mut ClientSession,
    tenant: &TenantId,
    drafts: Vec<NewEvent>,
    now: OffsetDateTime,
) -> mongodb::error::Result<Vec<Event>> {
    record_all_in(db, s, vec![(tenant.clone(), drafts)], now).await
}

/// [`record_in`] for several tenants at once: one read of their endpoints, one counter increment
/// per tenant, one insert of all the events and one of all their deliveries, whatever the number
/// of tenants. Each tenant's drafts are numbered in the order given.
pub(super) async fn record_all_in(
    db: &Db,
    s: &mut ClientSession,
    made: Vec<(TenantId, Vec<NewEvent>)>,
    now: OffsetDateTime,
) -> mongodb::error::Result<Vec<Event>> {
    let made: Vec<_> = made.into_iter().filter(|(_, drafts)| !drafts.is_empty()).collect();
    if made.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = made.iter().map(|(t, _)| t.as_str()).collect();
    let mut cursor = db
        .coll("webhooks")
        .find(doc! {"tenantId": {"$in": &tenants}, "state": EndpointState::Enabled.as_str()})
        .sort(doc! {"createdAt": 1, "_id": 1})
        .session(&mut *s)
        .await?;
    let mut endpoints = Vec::new();
    while let Some(d) = cursor.next(&mut *s).await.transpose()? {
        endpoints.push(webhook_from(&d).map_err(corrupt)?);
    }
    let mut events = Vec::new();
    for (tenant, drafts) in made {
        let n = drafts.len() as i64;
        let counter = db
            .coll("event_counters")
            .find_one_and_update(
                doc! {"_id": tenant.as_str()},
                doc! {"$inc": {"lastId": n}, "$max": {"lastAt": dt(now)}},
            )
            // Every tenant has its counter (`new_counter`, `ensure_counters`); upserting covers a
            // tenant stored by a version that made none.
            .upsert(true)
            .return_document(ReturnDocument::After)
            .session(&mut *s)
            .await?
            .ok_or_else(|| corrupt(format!("the event counter of tenant `{tenant}` is missing")))?;
        let last = counter.get_i64("lastId").map_err(corrupt)?;
        let at = time_of(&counter, "lastAt").map_err(corrupt)?;
        let before = EventCounter { last: EventId::new((last - n) as u64), last_at: Some(at) };
        events.extend(before.assign(&tenant, drafts, at).0);
    }
    db.coll("events").insert_many(events.iter().map(event_doc)).session(&mut *s).await?;
    let deliveries = crate::store::events::deliveries(&events, &endpoints, now);
    if !deliveries.is_empty() {
        db.coll("outbox_send").insert_many(deliveries.iter().map(outbox_doc)).session(&mut *s).await?;
    }
    Ok(events)
}

/// The counter document of a new tenant, inserted with the tenant.
pub(super) fn new_counter(tenant: &str) -> Document {
    doc! {"_id": tenant, "lastId": 0_i64, "lastAt": DateTime::from_millis(0)}
}

/// Gives every tenant without an event counter one (tenants stored before events existed), at
/// connect. Idempotent.
pub(super) async fn ensure_counters(db: &Db) -> StoreResult<()> {
    let cursor = db.coll("tenants").find(doc! {}).projection(doc! {"_id": 1}).await.map_err(map_err)?;
    let tenants = collect(cursor, |d| Ok(d.get_str("_id").map(str::to_owned).ok())).await?;
    for tenant in tenants.into_iter().flatten() {
        let initial = doc! {"$setOnInsert": {"lastId": 0_i64, "lastAt": DateTime::from_millis(0)}};
        match db.coll("event_counters").update_one(doc! {"_id": &tenant}, initial).upsert(true).await.map_err(map_err) {
            Ok(_) | Err(crate::store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub(super) async fn list(db: &Db, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>> {
    let (handle, tenant) = (db.clone(), tenant.clone());
    // In a transaction: one snapshot (see the module's note).
    db.transaction(move |s| {
        let (db, tenant) = (handle.clone(), tenant.clone());
        Box::pin(async move {
            let mut cursor = db
                .coll("events")
                .find(doc! {"tenantId": tenant.as_str(), "seq": {"$gt": after.get() as i64}})
                .sort(doc! {"seq": 1})
                .limit(i64::from(limit))
                .session(&mut *s)
                .await?;
            let mut events = Vec::new();
            while let Some(d) = cursor.next(&mut *s).await.transpose()? {
                events.push(event_from(&d).map_err(corrupt)?);
            }
            Ok(events)
        })
    })
    .await
    .map_err(map_err)
}

pub(super) async fn get(db: &Db, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>> {
    let found = db
        .coll("events")
        .find_one(doc! {"tenantId": tenant.as_str(), "seq": id.get() as i64})
        .await
        .map_err(map_err)?;
    found.as_ref().map(event_from).transpose()
}

pub(super) async fn heads(db: &Db, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>> {
    let ids: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
    let cursor = db.coll("event_counters").find(doc! {"_id": {"$in": ids}}).await.map_err(map_err)?;
    collect(cursor, |d| {
        let tenant = TenantId::parse(super::codec::str_of(d, "_id")?)
            .map_err(|e| crate::store::StoreError::Other(e.to_string()))?;
        let last = d.get_i64("lastId").map_err(|e| crate::store::StoreError::Other(e.to_string()))?;
        Ok((tenant, EventId::new(last as u64)))
    })
    .await
}

pub(super) async fn prune(db: &Db, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
    let events = db.coll("events");
    let cursor = events
        .find(doc! {"at": {"$lt": dt(before)}})
        .projection(doc! {"_id": 1})
        .limit(i64::from(limit))
        .await
        .map_err(map_err)?;
    let old: Vec<_> = collect(cursor, |d| Ok(d.get("_id").cloned())).await?.into_iter().flatten().collect();
    if old.is_empty() {
        return Ok(0);
    }
    let deleted = events.delete_many(doc! {"_id": {"$in": old}}).await.map_err(map_err)?;
    Ok(deleted.deleted_count)
}
