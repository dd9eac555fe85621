//! The SQLite store's webhook endpoints.

use super::codec::{all, json_text, other, webhook_row};
use super::tenants;
use crate::domain::webhook::AttemptResult;
use crate::domain::{AuditEntry, TenantId, WebhookEndpoint, WebhookId};
use crate::embedded::millis;
use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, params};
use std::time::Duration;

pub(super) fn insert(c: &Connection, e: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
    c.prepare_cached(
        "INSERT INTO webhooks (id, tenant_id, url, event_types, description, secret, state, disabled_reason, health,
                               created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            e.id.as_str(),
            e.tenant_id.as_str(),
            e.url,
            json_text(&e.event_types),
            e.description,
            e.secret.as_str(),
            e.state.as_str(),
            e.disabled_reason,
            json_text(&e.health),
            millis(e.created_at),
            millis(e.updated_at)
        ])
    })
    .map_err(other)?;
    tenants::append_audit(c, audit)
}

pub(super) fn find(c: &Connection, tenant: &TenantId, id: &WebhookId) -> StoreResult<Option<WebhookEndpoint>> {
    c.query_row("SELECT * FROM webhooks WHERE tenant_id = ?1 AND id = ?2", [tenant.as_str(), id.as_str()], webhook_row)
        .optional()
        .map_err(other)
}

pub(super) fn get(c: &Connection, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint> {
    find(c, tenant, id)?.ok_or_else(|| StoreError::NotFound(format!("webhook `{id}`")))
}

pub(super) fn list(c: &Connection, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
    all(c, "SELECT * FROM webhooks WHERE tenant_id = ?1 ORDER BY created_at, id", [tenant.as_str()], webhook_row)
}

/// Saves the changeable fields (filters, description, state, health).
pub(super) fn update(c: &Connection, e: &WebhookEndpoint) -> StoreResult<()> {
    let changed = c
        .prepare_cached(
            "UPDATE webhooks SET event_types = ?3, description = ?4, state = ?5, disabled_reason = ?6, health = ?7,
                                 updated_at = ?8
             WHERE tenant_id = ?1 AND id = ?2",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                e.tenant_id.as_str(),
                e.id.as_str(),
                json_text(&e.event_types),
                e.description,
                e.state.as_str(),
                e.disabled_reason,
                json_text(&e.health),
                millis(e.updated_at)
            ])
        })
        .map_err(other)?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("webhook `{}`", e.id)));
    }
    Ok(())
}

pub(super) fn delete(c: &Connection, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()> {
    let deleted = c
        .execute("DELETE FROM webhooks WHERE tenant_id = ?1 AND id = ?2", [tenant.as_str(), id.as_str()])
        .map_err(other)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("webhook `{id}`")));
    }
    tenants::append_audit(c, audit)
}

pub(super) fn record_attempt(
    c: &Connection,
    tenant: &TenantId,
    id: &WebhookId,
    attempt: &AttemptResult,
    disable_after: Duration,
) -> StoreResult<Option<WebhookEndpoint>> {
    let Some(mut endpoint) = find(c, tenant, id)? else {
        return Ok(None);
    };
    endpoint.record(attempt, crate::domain::now(), disable_after);
    update(c, &endpoint)?;
    Ok(Some(endpoint))
}
