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

/// How to check a delivery's signature (README.md, "Live events and outgoing webhooks").
const VERIFY_SNIPPET: &str = r#"```python
import base64, hashlib, hmac, time

def verify(secret: str, headers: dict, body: bytes) -> bool:
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(ts)) > 300:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    return any(hmac.compare_digest(expected, sig.split(",", 1)[1])
               for sig in headers["webhook-signature"].split() if sig.startswith("v1,"))
```"#;

/// Describes what kamshub sends to a registered endpoint, as the document's top-level `webhooks`
/// (OpenAPI 3.1): the request, its headers and signature, and what each answer means.
pub(super) struct Deliveries;

impl utoipa::Modify for Deliveries {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::{Content, HttpMethod, ObjectBuilder, PathItem, Ref, Required, Response, Type};
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let description = format!(
            "kamshub `POST`s each event of a type the endpoint asked for (`POST /tenant/webhooks`) as \
             JSON, signed as [Standard Webhooks](https://www.standardwebhooks.com/) sign: \
             `webhook-signature` is `v1,` + base64 of HMAC-SHA256 over `{{webhook-id}}.{{webhook-timestamp}}.{{body}}`, \
             keyed with the base64-decoded part of the endpoint's secret after `whsec_`. Verify it on the raw \
             body and refuse old timestamps:\n\n{VERIFY_SNIPPET}\n\nDeliveries are at least once (deduplicate on \
             `Idempotency-Key`) and in order per conversation. 408, 429 (after `Retry-After`), 5xx, timeouts \
             and connection failures are retried with capped, jittered backoff for `[webhooks] retry_for_secs` \
             (24 h) after the event; any other answer is final; 410 also disables the endpoint, as does \
             failing for a whole retry window. Redirects are not followed."
        );
        let operation = OperationBuilder::new()
            .tag("webhooks")
            .operation_id(Some("eventDelivery"))
            .summary(Some("An event delivered to your endpoint"))
            .description(Some(description))
            .parameter(header("webhook-id", "`evt_{tenantId}_{eventId}`: the same at every attempt and replay"))
            .parameter(header("Idempotency-Key", "The same as `webhook-id`: deduplicate on it"))
            .parameter(header("webhook-timestamp", "Unix seconds of this attempt"))
            .parameter(header("webhook-signature", "`v1,<base64 HMAC-SHA256>` (see above)"))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", Content::new(Some(Ref::from_schema_name("EventView"))))
                    .build(),
            ))
            .response("2XX", Response::new("Taken: the delivery is SENT"))
            .response("410", Response::new("Gone: the delivery FAILED and the endpoint is disabled"))
            .response("default", Response::new("408, 429, 5xx: retried; anything else: the delivery FAILED"));
        let item = PathItem::new(HttpMethod::Post, operation);
        openapi.webhooks.get_or_insert_with(Default::default).paths.insert("event".to_owned(), item);
    }
}

#[cfg(test)]
mod tests {
    /// `/openapi.json` tells integrators what a delivery looks like and how to verify it.
    #[test]
    fn the_document_describes_a_delivery_and_its_signature() {
        let doc = serde_json::to_value(crate::http::openapi()).unwrap();
        let delivery = &doc["webhooks"]["event"]["post"];
        let headers: Vec<&str> =
            delivery["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(headers, ["webhook-id", "Idempotency-Key", "webhook-timestamp", "webhook-signature"]);
        assert!(delivery["parameters"].as_array().unwrap().iter().all(|p| p["in"] == "header"));
        let body = &delivery["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(body, "#/components/schemas/EventView");
        assert!(doc["components"]["schemas"]["EventView"]["properties"]["eventId"].is_object());
        let description = delivery["description"].as_str().unwrap();
        assert!(description.contains("hmac.new(key, f\"{msg_id}.{ts}.\".encode() + body"), "{description}");
        assert!(delivery["responses"]["410"]["description"].as_str().unwrap().contains("disabled"));
    }
}
