//! `/tenant/outbox`: list (filter by status), get, retry a FAILED or UNKNOWN reply.

use super::extract::{Params, PathParam, Scope, needs, path_id};
use super::{ApiErrors, PageParams, TenantParam};
use crate::domain::{OutboxId, OutboxStatus};
use crate::http::{ApiError, ServerState};
use crate::service::outbox::{self, OutboxDetail, OutboxView};
use crate::service::page::Page;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::IntoParams;

/// Filters of `GET /tenant/outbox`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct OutboxParams {
    /// Only items in this status.
    status: Option<OutboxStatus>,
}

/// The tenant's outbox items, newest first.
#[utoipa::path(get, path = "/tenant/outbox", tag = "outbox", params(TenantParam, OutboxParams, PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of outbox items", body = Page<OutboxView>), ApiErrors))]
pub(super) async fn list(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadInbox>,
    Params(filter): Params<OutboxParams>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<OutboxView>>, ApiError> {
    let page = page.request()?;
    Ok(Json(outbox::inspect(&state.app, &scope.caller, Some(&scope.tenant), filter.status, &page).await?))
}

/// One outbox item in full.
#[utoipa::path(get, path = "/tenant/outbox/{outboxId}", tag = "outbox",
    params(("outboxId" = String, Path, description = "Outbox id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam), security(("idToken" = [])),
    responses((status = 200, description = "The item", body = OutboxDetail), ApiErrors))]
pub(super) async fn get(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadInbox>,
    PathParam(id): PathParam<String>,
) -> Result<Json<OutboxDetail>, ApiError> {
    let id = path_id(&id, OutboxId::parse)?;
    Ok(Json(outbox::show(&state.app, &scope.caller, &scope.tenant, &id).await?))
}

/// Sends a FAILED or UNKNOWN reply again (for UNKNOWN this accepts a possible duplicate).
#[utoipa::path(post, path = "/tenant/outbox/{outboxId}/retry", tag = "outbox",
    params(("outboxId" = String, Path, description = "Outbox id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam), security(("idToken" = [])),
    responses((status = 200, description = "The item, back to PENDING", body = OutboxDetail), ApiErrors))]
pub(super) async fn retry(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::Reply>,
    PathParam(id): PathParam<String>,
) -> Result<Json<OutboxDetail>, ApiError> {
    let id = path_id(&id, OutboxId::parse)?;
    Ok(Json(outbox::retry(&state.app, &scope.caller, &scope.tenant, &id).await?))
}
