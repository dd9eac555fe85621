//! The SQLite store's tenants, users, channels and audit log.

use super::codec::{all, audit_row, channel_row, other, tenant_row, user_row};
use crate::domain::{
    AuditEntry, Channel, ChannelHealth, ChannelId, ChannelKind, Email, Role, Tenant, TenantId, User, UserId,
};
use crate::embedded::{millis, unique_violation};
use crate::sealing::Sealed;
use crate::store::{StoreError, StoreResult, channel_conflict, email_conflict};
use rusqlite::{Connection, OptionalExtension, params};

pub(super) fn insert_tenant(
    c: &Connection,
    tenant: &Tenant,
    user: Option<&User>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    c.execute(
        "INSERT INTO tenants (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![tenant.id.as_str(), tenant.name.as_str(), tenant.name.key(), millis(tenant.created_at)],
    )
    .map_err(|e| match unique_violation(&e) {
        Some(c) if c.contains("name_key") => {
            StoreError::Conflict(format!("a tenant named `{}` already exists", tenant.name))
        }
        Some(_) => StoreError::Conflict(format!("tenant `{}` already exists", tenant.id)),
        None => other(e),
    })?;
    if let Some(user) = user {
        insert_user(c, user)?;
    }
    append_audit(c, audit)
}

pub(super) fn get_tenant(c: &Connection, id: &TenantId) -> StoreResult<Tenant> {
    c.query_row("SELECT * FROM tenants WHERE id = ?1", [id.as_str()], tenant_row)
        .optional()
        .map_err(other)?
        .ok_or_else(|| StoreError::NotFound(format!("tenant `{id}`")))
}

pub(super) fn list_tenants(c: &Connection) -> StoreResult<Vec<Tenant>> {
    all(c, "SELECT * FROM tenants ORDER BY created_at, id", [], tenant_row)
}

pub(super) fn insert_user(c: &Connection, u: &User) -> StoreResult<()> {
    c.execute(
        "INSERT INTO users (id, email, tenant_id, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![u.id.as_str(), u.email.as_str(), u.tenant_id.as_str(), u.role.as_str(), millis(u.created_at)],
    )
    .map_err(|e| match unique_violation(&e) {
        Some(c) if c.contains("users.email") => email_conflict(&u.email),
        Some(_) => StoreError::Conflict(format!("user {} already exists", u.id)),
        None => other(e),
    })?;
    Ok(())
}

pub(super) fn list_users(c: &Connection, tenant: &TenantId) -> StoreResult<Vec<User>> {
    all(c, "SELECT * FROM users WHERE tenant_id = ?1 ORDER BY created_at, id", [tenant.as_str()], user_row)
}

pub(super) fn find_user_by_email(c: &Connection, email: &Email) -> StoreResult<Option<User>> {
    c.query_row("SELECT * FROM users WHERE email = ?1", [email.as_str()], user_row).optional().map_err(other)
}

pub(super) fn get_user(c: &Connection, id: &UserId) -> StoreResult<Option<User>> {
    c.query_row("SELECT * FROM users WHERE id = ?1", [id.as_str()], user_row).optional().map_err(other)
}

pub(super) fn has_platform_admin(c: &Connection) -> StoreResult<bool> {
    c.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE role = ?1)", [Role::PlatformAdmin.as_str()], |r| r.get(0))
        .map_err(other)
}

pub(super) fn insert_channel(c: &Connection, ch: &Channel) -> StoreResult<()> {
    c.execute(
        "INSERT INTO channels (id, tenant_id, kind, display_name, external_id, credentials, webhook_secret,
                               is_active, created_at, updated_at, health, auto_reply)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            ch.id.as_str(),
            ch.tenant_id.as_str(),
            ch.kind.as_str(),
            ch.display_name.as_str(),
            ch.external_id.as_str(),
            ch.credentials.as_str(),
            ch.webhook_secret.as_ref().map(Sealed::as_str),
            ch.is_active,
            millis(ch.created_at),
            millis(ch.updated_at),
            ch.health.as_str(),
            ch.auto_reply
        ],
    )
    .map_err(|e| match unique_violation(&e) {
        Some(c) if c.contains("external_id") => channel_conflict(ch),
        Some(_) => StoreError::Conflict(format!("channel `{}` already exists", ch.id)),
        None => other(e),
    })?;
    Ok(())
}

pub(super) fn get_channel(c: &Connection, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
    c.query_row("SELECT * FROM channels WHERE tenant_id = ?1 AND id = ?2", [tenant.as_str(), id.as_str()], channel_row)
        .optional()
        .map_err(other)?
        .ok_or_else(|| StoreError::NotFound(format!("channel `{id}` in tenant `{tenant}`")))
}

pub(super) fn find_channel(c: &Connection, id: &ChannelId) -> StoreResult<Option<Channel>> {
    c.query_row("SELECT * FROM channels WHERE id = ?1", [id.as_str()], channel_row).optional().map_err(other)
}

pub(super) fn list_channels(c: &Connection, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
    all(c, "SELECT * FROM channels WHERE tenant_id = ?1 ORDER BY created_at, id", [tenant.as_str()], channel_row)
}

pub(super) fn all_channels(c: &Connection) -> StoreResult<Vec<Channel>> {
    all(c, "SELECT * FROM channels", [], channel_row)
}

pub(super) fn update_channel(c: &Connection, ch: &Channel, audit: &AuditEntry) -> StoreResult<()> {
    let changed = c
        .execute(
            "UPDATE channels SET display_name = ?3, credentials = ?4, webhook_secret = ?5, is_active = ?6,
                                 updated_at = ?7, health = ?8, auto_reply = ?9
             WHERE tenant_id = ?1 AND id = ?2",
            params![
                ch.tenant_id.as_str(),
                ch.id.as_str(),
                ch.display_name.as_str(),
                ch.credentials.as_str(),
                ch.webhook_secret.as_ref().map(Sealed::as_str),
                ch.is_active,
                millis(ch.updated_at),
                ch.health.as_str(),
                ch.auto_reply
            ],
        )
        .map_err(|e| if unique_violation(&e).is_some() { channel_conflict(ch) } else { other(e) })?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("channel `{}` in tenant `{}`", ch.id, ch.tenant_id)));
    }
    append_audit(c, audit)
}

pub(super) fn delete_channel(c: &Connection, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
    c.execute("DELETE FROM channels WHERE tenant_id = ?1 AND id = ?2", [tenant.as_str(), id.as_str()])
        .map_err(other)?;
    Ok(())
}

pub(super) fn find_active_channel(
    c: &Connection,
    kind: ChannelKind,
    external_id: &str,
) -> StoreResult<Option<Channel>> {
    c.prepare_cached("SELECT * FROM channels WHERE kind = ?1 AND external_id = ?2 AND is_active = 1")
        .map_err(other)?
        .query_row(params![kind.as_str(), external_id], channel_row)
        .optional()
        .map_err(other)
}

pub(super) fn set_channel_health(c: &Connection, id: &ChannelId, health: ChannelHealth) -> StoreResult<()> {
    c.execute("UPDATE channels SET health = ?2 WHERE id = ?1", params![id.as_str(), health.as_str()]).map_err(other)?;
    Ok(())
}

pub(super) fn append_audit(c: &Connection, a: &AuditEntry) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO audit_log (id, tenant_id, actor, action, target, details, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            a.id.as_str(),
            a.tenant_id.as_str(),
            a.actor,
            a.action,
            a.target,
            a.details.to_string(),
            millis(a.at)
        ])
    })
    .map_err(other)?;
    Ok(())
}

pub(super) fn list_audit(c: &Connection, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
    all(
        c,
        "SELECT * FROM audit_log WHERE tenant_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2",
        params![tenant.as_str(), limit],
        audit_row,
    )
}
