//! `/tenant/webhooks`: a tenant admin's outgoing webhook endpoints: register (the signing secret
//! is in the answer, once), list, get, change (`enabled`, `eventTypes`, `description`), remove;
//! their deliveries and replays.

use super::extract::{Body, Params, PathParam, Scope, needs, path_id};
use super::{ApiErrors, PageParams, TenantParam};
use crate::domain::{EventId, EventType, OutboxId, OutboxStatus, WebhookId};
use crate::http::{ApiError, ServerState};
use crate::service::page::Page;
use crate::service::webhooks::{
    self, CreatedWebhook, DeliveryView, NewWebhook, Replay, ReplayView, WebhookChange, WebhookView,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// `POST /tenant/webhooks`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateWebhookRequest {
    /// Where deliveries go: an `https` URL on a public address.
    #[schema(min_length = 1, max_length = 2048)]
    url: String,
    /// The event types to deliver; absent or empty: every type.
    event_types: Option<Vec<EventType>>,
    /// What you call it.
    #[schema(max_length = 200)]
    description: Option<String>,
}

/// `PATCH /tenant/webhooks/{webhookId}`: only these fields can change (a new URL is a new
/// endpoint, with a new secret).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateWebhookRequest {
    /// `true` turns deliveries back on (and clears the failure count: replay what it missed);
    /// `false` turns them off.
    enabled: Option<bool>,
    /// New event types; empty: every type.
    event_types: Option<Vec<EventType>>,
    /// New description; empty clears it.
    #[schema(max_length = 200)]
    description: Option<String>,
}

/// `POST /tenant/webhooks/{webhookId}/replay`: exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Replay this delivery's event.
    #[schema(pattern = "^[a-z0-9_-]{1,48}$")]
    delivery_id: Option<String>,
    /// Replay every event from this id on that the endpoint asks for.
    #[schema(minimum = 1)]
    from_event_id: Option<u64>,
}

/// Filters of `GET /tenant/webhooks/{webhookId}/deliveries`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryParams {
    /// Only deliveries in this status.
    status: Option<OutboxStatus>,
}

/// Registers an endpoint (tenant admins). The answer holds its signing secret, shown this once.
#[utoipa::path(post, path = "/tenant/webhooks", tag = "webhooks", params(TenantParam),
    request_body = CreateWebhookRequest, security(("idToken" = [])),
    responses((status = 201, description = "The endpoint, with its secret", body = CreatedWebhook), ApiErrors))]
pub(super) async fn create(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    Body(body): Body<CreateWebhookRequest>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let new =
        NewWebhook { url: body.url, event_types: body.event_types.unwrap_or_default(), description: body.description };
    let created = webhooks::create(&state.app, &scope.caller, &scope.tenant, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The tenant's endpoints with their health, oldest first.
#[utoipa::path(get, path = "/tenant/webhooks", tag = "webhooks", params(TenantParam, PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of endpoints", body = Page<WebhookView>), ApiErrors))]
pub(super) async fn list(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<WebhookView>>, ApiError> {
    Ok(Json(webhooks::list(&state.app, &scope.caller, &scope.tenant, &page.request()?).await?))
}

/// One endpoint with its health.
#[utoipa::path(get, path = "/tenant/webhooks/{webhookId}", tag = "webhooks",
    params(("webhookId" = String, Path, description = "Webhook id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    security(("idToken" = [])),
    responses((status = 200, description = "The endpoint", body = WebhookView), ApiErrors))]
pub(super) async fn get(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    PathParam(id): PathParam<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let id = path_id(&id, WebhookId::parse)?;
    Ok(Json(webhooks::get(&state.app, &scope.caller, &scope.tenant, &id).await?))
}

/// Enables or disables an endpoint, or changes its event types or description.
#[utoipa::path(patch, path = "/tenant/webhooks/{webhookId}", tag = "webhooks",
    params(("webhookId" = String, Path, description = "Webhook id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    request_body = UpdateWebhookRequest, security(("idToken" = [])),
    responses((status = 200, description = "The endpoint as it now is", body = WebhookView), ApiErrors))]
pub(super) async fn update(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    PathParam(id): PathParam<String>,
    Body(body): Body<UpdateWebhookRequest>,
) -> Result<Json<WebhookView>, ApiError> {
    let id = path_id(&id, WebhookId::parse)?;
    let change =
        WebhookChange { enabled: body.enabled, event_types: body.event_types, description: body.description.map(Some) };
    Ok(Json(webhooks::update(&state.app, &scope.caller, &scope.tenant, &id, change).await?))
}

/// Removes an endpoint; its pending deliveries are not made.
#[utoipa::path(delete, path = "/tenant/webhooks/{webhookId}", tag = "webhooks",
    params(("webhookId" = String, Path, description = "Webhook id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    security(("idToken" = [])),
    responses((status = 204, description = "Removed"), ApiErrors))]
pub(super) async fn delete(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, WebhookId::parse)?;
    webhooks::remove(&state.app, &scope.caller, &scope.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, newest first: status, attempts, the last error or answer.
#[utoipa::path(get, path = "/tenant/webhooks/{webhookId}/deliveries", tag = "webhooks",
    params(("webhookId" = String, Path, description = "Webhook id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam,
        DeliveryParams, PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of deliveries", body = Page<DeliveryView>), ApiErrors))]
pub(super) async fn deliveries(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    PathParam(id): PathParam<String>,
    Params(filter): Params<DeliveryParams>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let id = path_id(&id, WebhookId::parse)?;
    let page = page.request()?;
    Ok(Json(webhooks::deliveries(&state.app, &scope.caller, &scope.tenant, &id, filter.status, &page).await?))
}

/// Delivers events again: one delivery's event, or every event from an id on (that the
/// endpoint asks for and the log still keeps), as new deliveries in event order.
#[utoipa::path(post, path = "/tenant/webhooks/{webhookId}/replay", tag = "webhooks",
    params(("webhookId" = String, Path, description = "Webhook id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    request_body = ReplayRequest, security(("idToken" = [])),
    responses((status = 202, description = "Queued", body = ReplayView), ApiErrors))]
pub(super) async fn replay(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageWebhooks>,
    PathParam(id): PathParam<String>,
    Body(body): Body<ReplayRequest>,
) -> Result<(StatusCode, Json<ReplayView>), ApiError> {
    let id = path_id(&id, WebhookId::parse)?;
    let what = match (body.delivery_id, body.from_event_id) {
        (Some(delivery), None) => Replay::Delivery(path_id(&delivery, OutboxId::parse)?),
        (None, Some(from)) if from >= 1 => Replay::FromEvent(EventId::new(from)),
        _ => {
            return Err(crate::service::ServiceError::Invalid(
                "give exactly one of deliveryId and fromEventId (at least 1)".into(),
            )
            .into());
        }
    };
    let replayed = webhooks::replay(&state.app, &scope.caller, &scope.tenant, &id, what).await?;
    Ok((StatusCode::ACCEPTED, Json(replayed)))
}
