//! The MongoDB store's tenants, users, channels and audit log.

use super::codec::{
    audit_doc, audit_from, channel_doc, channel_from, dt, tenant_doc, tenant_from, user_doc, user_from,
};
use super::errors::{NotFoundMarker, conflict_on, map_err};
use super::events;
use super::indexes::{CHANNEL_ACTIVE_INDEX, TENANT_NAME_INDEX, USER_EMAIL_INDEX};
use super::session::{Db, collect, owner_of};
use crate::domain::{
    AuditEntry, Channel, ChannelHealth, ChannelId, ChannelKind, Email, NewEvent, Role, Tenant, TenantId, User, UserId,
};
use crate::store::{StoreError, StoreResult, channel_conflict, email_conflict};
use mongodb::bson::doc;

pub(super) async fn insert_tenant(
    db: &Db,
    tenant: &Tenant,
    user: Option<&User>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let (tenants, users, audit_log) = (db.coll("tenants"), db.coll("users"), db.coll("audit_log"));
    let counters = db.coll("event_counters");
    let (t, u, a) = (tenant_doc(tenant), user.map(user_doc), audit_doc(audit));
    db.transaction(move |s| {
        let (tenants, users, audit_log) = (tenants.clone(), users.clone(), audit_log.clone());
        let counters = counters.clone();
        let (t, u, a) = (t.clone(), u.clone(), a.clone());
        Box::pin(async move {
            let counter = events::new_counter(t.get_str("_id").unwrap_or_default());
            tenants.insert_one(t).session(&mut *s).await?;
            counters.insert_one(counter).session(&mut *s).await?;
            if let Some(u) = u {
                users.insert_one(u).session(&mut *s).await?;
            }
            audit_log.insert_one(a).session(&mut *s).await?;
            Ok(())
        })
    })
    .await
    .map_err(|e| match map_err(e) {
        StoreError::Conflict(raw) if raw.contains(TENANT_NAME_INDEX) => {
            StoreError::Conflict(format!("a tenant named `{}` already exists", tenant.name))
        }
        StoreError::Conflict(raw) if raw.contains(USER_EMAIL_INDEX) => match user {
            Some(u) => email_conflict(&u.email),
            None => StoreError::Conflict(raw),
        },
        StoreError::Conflict(_) => StoreError::Conflict(format!("tenant `{}` already exists", tenant.id)),
        other => other,
    })
}

pub(super) async fn get_tenant(db: &Db, id: &TenantId) -> StoreResult<Tenant> {
    let found = db.coll("tenants").find_one(doc! {"_id": id.as_str()}).await.map_err(map_err)?;
    tenant_from(&found.ok_or_else(|| StoreError::NotFound(format!("tenant `{id}`")))?)
}

pub(super) async fn list_tenants(db: &Db) -> StoreResult<Vec<Tenant>> {
    let cursor = db.coll("tenants").find(doc! {}).sort(doc! {"createdAt": 1, "_id": 1}).await.map_err(map_err)?;
    collect(cursor, tenant_from).await
}

pub(super) async fn insert_user(db: &Db, user: &User, audit: &AuditEntry) -> StoreResult<()> {
    let (users, audit_log) = (db.coll("users"), db.coll("audit_log"));
    let (u, a) = (user_doc(user), audit_doc(audit));
    db.transaction(move |s| {
        let (users, audit_log, u, a) = (users.clone(), audit_log.clone(), u.clone(), a.clone());
        Box::pin(async move {
            users.insert_one(u).session(&mut *s).await?;
            audit_log.insert_one(a).session(&mut *s).await?;
            Ok(())
        })
    })
    .await
    .map_err(|e| conflict_on(e, USER_EMAIL_INDEX, || email_conflict(&user.email)))
}

pub(super) async fn list_users(db: &Db, tenant: &TenantId) -> StoreResult<Vec<User>> {
    let cursor = db
        .coll("users")
        .find(doc! {"tenantId": tenant.as_str()})
        .sort(doc! {"createdAt": 1, "_id": 1})
        .await
        .map_err(map_err)?;
    collect(cursor, user_from).await
}

pub(super) async fn find_user_by_email(db: &Db, email: &Email) -> StoreResult<Option<User>> {
    let found = db.coll("users").find_one(doc! {"email": email.as_str()}).await.map_err(map_err)?;
    found.as_ref().map(user_from).transpose()
}

pub(super) async fn get_user(db: &Db, id: &UserId) -> StoreResult<Option<User>> {
    let found = db.coll("users").find_one(doc! {"_id": id.as_str()}).await.map_err(map_err)?;
    found.as_ref().map(user_from).transpose()
}

pub(super) async fn has_platform_admin(db: &Db) -> StoreResult<bool> {
    let found = db.coll("users").find_one(doc! {"role": Role::PlatformAdmin.as_str()}).await.map_err(map_err)?;
    Ok(found.is_some())
}

pub(super) async fn insert_channel(db: &Db, channel: &Channel) -> StoreResult<()> {
    db.coll("channels")
        .insert_one(channel_doc(channel))
        .await
        .map_err(|e| conflict_on(e, CHANNEL_ACTIVE_INDEX, || channel_conflict(channel)))?;
    Ok(())
}

pub(super) async fn get_channel(db: &Db, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
    let found =
        db.coll("channels").find_one(doc! {"_id": id.as_str(), "tenantId": tenant.as_str()}).await.map_err(map_err)?;
    channel_from(&found.ok_or_else(|| StoreError::NotFound(format!("channel `{id}` in tenant `{tenant}`")))?)
}

pub(super) async fn find_channel(db: &Db, id: &ChannelId) -> StoreResult<Option<Channel>> {
    let found = db.coll("channels").find_one(doc! {"_id": id.as_str()}).await.map_err(map_err)?;
    found.as_ref().map(channel_from).transpose()
}

pub(super) async fn list_channels(db: &Db, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
    let cursor = db
        .coll("channels")
        .find(doc! {"tenantId": tenant.as_str()})
        .sort(doc! {"createdAt": 1, "_id": 1})
        .await
        .map_err(map_err)?;
    collect(cursor, channel_from).await
}

pub(super) async fn all_channels(db: &Db) -> StoreResult<Vec<Channel>> {
    let cursor = db.coll("channels").find(doc! {}).await.map_err(map_err)?;
    collect(cursor, channel_from).await
}

pub(super) async fn update_channel(db: &Db, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
    let (channels, audit_log) = (db.coll("channels"), db.coll("audit_log"));
    let filter = doc! {"_id": channel.id.as_str(), "tenantId": channel.tenant_id.as_str()};
    let set = doc! {"$set": {
        "displayName": channel.display_name.as_str(),
        "credentials": channel.credentials.as_str(),
        "webhookSecret": channel.webhook_secret.as_ref().map(|s| s.as_str()),
        "isActive": channel.is_active,
        "health": channel.health.as_str(),
        "autoReply": channel.auto_reply.clone(),
        "updatedAt": dt(channel.updated_at),
    }};
    let a = audit_doc(audit);
    let (handle, changed) = (db.clone(), channel.clone());
    let result = db
        .recording([channel.tenant_id.as_str()], move |s| {
            let (channels, audit_log) = (channels.clone(), audit_log.clone());
            let (filter, set, a, db, changed) =
                (filter.clone(), set.clone(), a.clone(), handle.clone(), changed.clone());
            Box::pin(async move {
                let before = channels.find_one(filter.clone()).session(&mut *s).await?;
                let updated = channels.update_one(filter, set).session(&mut *s).await?;
                if updated.matched_count == 0 {
                    return Err(mongodb::error::Error::custom(NotFoundMarker));
                }
                audit_log.insert_one(a).session(&mut *s).await?;
                let was = before.as_ref().and_then(|b| b.get_str("health").ok()).and_then(|h| h.parse().ok());
                record_health(&db, s, &changed, was).await
            })
        })
        .await;
    match result {
        Err(e) if e.get_custom::<NotFoundMarker>().is_some() => {
            Err(StoreError::NotFound(format!("channel `{}` in tenant `{}`", channel.id, channel.tenant_id)))
        }
        Err(e) => Err(conflict_on(e, CHANNEL_ACTIVE_INDEX, || channel_conflict(channel))),
        Ok(()) => Ok(()),
    }
}

pub(super) async fn delete_channel(db: &Db, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
    db.coll("channels").delete_one(doc! {"_id": id.as_str(), "tenantId": tenant.as_str()}).await.map_err(map_err)?;
    Ok(())
}

pub(super) async fn find_active_channel(db: &Db, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
    let filter = doc! {"type": kind.as_str(), "externalId": external_id, "isActive": true};
    let found = db.coll("channels").find_one(filter).await.map_err(map_err)?;
    found.as_ref().map(channel_from).transpose()
}

pub(super) async fn set_channel_health(db: &Db, id: &ChannelId, health: ChannelHealth) -> StoreResult<()> {
    let Some(owner) = owner_of(db, "channels", id.as_str()).await? else {
        return Ok(());
    };
    let (handle, id) = (db.clone(), id.clone());
    db.recording([owner.as_str()], move |s| {
        let (db, id) = (handle.clone(), id.clone());
        Box::pin(async move {
            let channels = db.coll("channels");
            let Some(stored) = channels.find_one(doc! {"_id": id.as_str()}).session(&mut *s).await? else {
                return Ok(());
            };
            let mut channel = channel_from(&stored)
                .map_err(|e| mongodb::error::Error::custom(super::codec::CorruptRecord(e.to_string())))?;
            let before = channel.health;
            channels
                .update_one(doc! {"_id": id.as_str()}, doc! {"$set": {"health": health.as_str()}})
                .session(&mut *s)
                .await?;
            channel.health = health;
            record_health(&db, s, &channel, Some(before)).await
        })
    })
    .await
    .map_err(map_err)
}

/// Records `channel.health` when the channel's health differs from `before`.
async fn record_health(
    db: &Db,
    s: &mut mongodb::ClientSession,
    channel: &Channel,
    before: Option<ChannelHealth>,
) -> mongodb::error::Result<()> {
    if before.is_some_and(|b| b != channel.health) {
        let event = NewEvent::channel_health(channel, channel.health);
        events::record_in(db, s, &channel.tenant_id, vec![event], crate::domain::now()).await?;
    }
    Ok(())
}

pub(super) async fn append_audit(db: &Db, entry: &AuditEntry) -> StoreResult<()> {
    db.coll("audit_log").insert_one(audit_doc(entry)).await.map_err(map_err)?;
    Ok(())
}

pub(super) async fn list_audit(db: &Db, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
    let cursor = db
        .coll("audit_log")
        .find(doc! {"tenantId": tenant.as_str()})
        .sort(doc! {"at": -1, "_id": -1})
        .limit(i64::from(limit))
        .await
        .map_err(map_err)?;
    collect(cursor, audit_from).await
}
