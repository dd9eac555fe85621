//! The MongoDB store's webhook endpoints.

use super::codec::{audit_doc, webhook_doc, webhook_from};
use super::errors::{NotFoundMarker, map_err};
use super::session::{Db, collect};
use crate::domain::webhook::AttemptResult;
use crate::domain::{AuditEntry, TenantId, WebhookEndpoint, WebhookId};
use crate::store::{StoreError, StoreResult};
use mongodb::bson::{Document, doc};
use std::time::Duration;

fn key(tenant: &TenantId, id: &WebhookId) -> Document {
    doc! {"_id": id.as_str(), "tenantId": tenant.as_str()}
}

fn not_found(id: &WebhookId) -> StoreError {
    StoreError::NotFound(format!("webhook `{id}`"))
}

/// What a change of an endpoint does inside its transaction.
#[derive(Clone)]
enum Change {
    Update(Document),
    Delete,
}

/// Updates or deletes an endpoint with its audit entry, in one transaction; `NotFound` if the
/// tenant has no such endpoint.
async fn change(db: &Db, tenant: &TenantId, id: &WebhookId, change: Change, audit: &AuditEntry) -> StoreResult<()> {
    let (handle, filter, a) = (db.clone(), key(tenant, id), audit_doc(audit));
    let result = db
        .transaction(move |s| {
            let (db, filter, a, change) = (handle.clone(), filter.clone(), a.clone(), change.clone());
            Box::pin(async move {
                let webhooks = db.coll("webhooks");
                let matched = match change {
                    Change::Update(set) => webhooks.update_one(filter, set).session(&mut *s).await?.matched_count,
                    Change::Delete => webhooks.delete_one(filter).session(&mut *s).await?.deleted_count,
                };
                if matched == 0 {
                    return Err(mongodb::error::Error::custom(NotFoundMarker));
                }
                db.coll("audit_log").insert_one(a).session(&mut *s).await?;
                Ok(())
            })
        })
        .await;
    match result {
        Err(e) if e.get_custom::<NotFoundMarker>().is_some() => Err(not_found(id)),
        other => other.map_err(map_err),
    }
}

pub(super) async fn insert(db: &Db, e: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
    let (handle, d, a) = (db.clone(), webhook_doc(e), audit_doc(audit));
    db.transaction(move |s| {
        let (db, d, a) = (handle.clone(), d.clone(), a.clone());
        Box::pin(async move {
            db.coll("webhooks").insert_one(d).session(&mut *s).await?;
            db.coll("audit_log").insert_one(a).session(&mut *s).await?;
            Ok(())
        })
    })
    .await
    .map_err(map_err)
}

pub(super) async fn get(db: &Db, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint> {
    let found = db.coll("webhooks").find_one(key(tenant, id)).await.map_err(map_err)?;
    found.as_ref().map(webhook_from).transpose()?.ok_or_else(|| not_found(id))
}

pub(super) async fn list(db: &Db, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
    let cursor = db
        .coll("webhooks")
        .find(doc! {"tenantId": tenant.as_str()})
        .sort(doc! {"createdAt": 1, "_id": 1})
        .await
        .map_err(map_err)?;
    collect(cursor, webhook_from).await
}

fn changes(e: &WebhookEndpoint) -> Document {
    let d = webhook_doc(e);
    let mut set = Document::new();
    for field in ["eventTypes", "description", "state", "disabledReason", "health", "updatedAt"] {
        if let Some(value) = d.get(field) {
            set.insert(field, value.clone());
        }
    }
    doc! {"$set": set}
}

pub(super) async fn update(db: &Db, e: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
    change(db, &e.tenant_id, &e.id, Change::Update(changes(e)), audit).await
}

pub(super) async fn delete(db: &Db, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()> {
    change(db, tenant, id, Change::Delete, audit).await
}

pub(super) async fn record_attempt(
    db: &Db,
    tenant: &TenantId,
    id: &WebhookId,
    attempt: &AttemptResult,
    disable_after: Duration,
) -> StoreResult<Option<WebhookEndpoint>> {
    let (handle, filter, attempt) = (db.clone(), key(tenant, id), attempt.clone());
    db.transaction(move |s| {
        let (db, filter, attempt) = (handle.clone(), filter.clone(), attempt.clone());
        Box::pin(async move {
            let webhooks = db.coll("webhooks");
            let Some(stored) = webhooks.find_one(filter.clone()).session(&mut *s).await? else {
                return Ok(None);
            };
            let mut endpoint = webhook_from(&stored)
                .map_err(|e| mongodb::error::Error::custom(super::codec::CorruptRecord(e.to_string())))?;
            endpoint.record(&attempt, crate::domain::now(), disable_after);
            webhooks.update_one(filter, changes(&endpoint)).session(&mut *s).await?;
            Ok(Some(endpoint))
        })
    })
    .await
    .map_err(map_err)
}
