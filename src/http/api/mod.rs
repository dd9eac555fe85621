//! The tenant HTTP API: thin handlers over the same `service::` functions the CLI calls. Each
//! handler extracts (who, which tenant, the body), parses into domain values, calls one service
//! function, and renders its view. Routes are registered with their OpenAPI description in one
//! place ([`routes`]), so the served `/openapi.json` lists exactly the routes that exist.

mod auth;
mod channels;
mod events;
pub(super) mod extract;
mod inbox;
mod outbox;
mod platform;
mod users;
mod webhooks;

use super::error::ErrorBody;
use super::{ApiError, ServerState};
use crate::service::page::PageRequest;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use webhooks::Deliveries as WebhookDeliveries;

/// The API's description: title, version, security schemes; the paths come from [`routes`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kamshub",
        description = "Multi-tenant unified inbox for Telegram bots and Messenger pages. Sign in with \
            `POST /auth/login`, then send the ID token as `Authorization: Bearer <token>`. Users act inside \
            their own tenant; platform admins name another tenant with `?tenantId=`. Lists are \
            cursor-paginated: pass `nextCursor` back as `cursor`. Errors are \
            `{\"error\":{\"code\",\"message\"}}`."
    ),
    modifiers(&SecuritySchemes, &WebhookDeliveries),
    components(schemas(ErrorBody, super::error::ErrorDetail, crate::domain::event::EventView)),
    tags(
        (name = "auth", description = "Sign in, new password, refresh, who am I"),
        (name = "platform", description = "Platform admins: bootstrap and tenants"),
        (name = "channels", description = "A tenant's Telegram bots and Messenger pages"),
        (name = "users", description = "A tenant's users"),
        (name = "inbox", description = "Conversations, messages and replies"),
        (name = "outbox", description = "Replies on their way to the providers"),
        (name = "events", description = "The tenant's event log: a live stream (Server-Sent Events) or polling"),
        (name = "webhooks", description = "Outgoing webhooks: endpoints that receive the tenant's events, signed \
            (Standard Webhooks), retried, in order per conversation. What an endpoint receives, and how to verify \
            its signature, is this document's `webhooks.event`"),
        (name = "system", description = "Health, keys, this description, provider webhooks"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "idToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The ID token returned by /auth/login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bootstrapToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Bootstrap-Token",
                "The configured KAMSHUB_BOOTSTRAP_TOKEN",
            ))),
        );
    }
}

/// Every error status the API answers with; the body is always [`ErrorBody`].
#[derive(IntoResponses)]
#[expect(dead_code, reason = "only describes responses for the OpenAPI document")]
pub(crate) enum ApiErrors {
    /// The request cannot be read: malformed JSON, query, path id or cursor.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No valid ID token (or wrong credentials on sign-in).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's role may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing in the caller's tenant.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// Taken already, or not in a state that allows this.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The body is larger than the limit.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A field is invalid, an idempotency key was used for another request, or a provider refused
    /// what the request gave it (a token, a page).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many sign-in attempts; see `Retry-After`.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooManyRequests(ErrorBody),
    /// A provider (Telegram, Graph) failed or could not be reached.
    #[response(status = 502)]
    BadGateway(ErrorBody),
    /// A backend is unavailable, a provider rate-limits us, or the server is busy; retry (see
    /// `Retry-After` when present).
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// `?tenantId=`, on every `/tenant/…` route.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct TenantParam {
    /// Platform admins: the tenant to act on. Anyone else naming another tenant gets 404.
    #[param(pattern = "^[a-z0-9_-]{1,48}$")]
    pub tenant_id: Option<String>,
}

/// `?limit=&cursor=`, on every list.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct PageParams {
    /// At most this many items (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,256}$")]
    pub cursor: Option<String>,
}

impl PageParams {
    /// The page asked for; a bad limit or cursor is a 400.
    pub fn request(&self) -> Result<PageRequest, ApiError> {
        PageRequest::parse(self.limit, self.cursor.as_deref()).map_err(|e| ApiError::bad_request(e.to_string()))
    }
}

/// Every API route with its OpenAPI description.
pub(super) fn routes() -> OpenApiRouter<Arc<ServerState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::complete_new_password))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::me))
        .routes(routes!(platform::bootstrap))
        .routes(routes!(platform::create_tenant, platform::list_tenants))
        .routes(routes!(platform::get_tenant))
        .routes(routes!(channels::create, channels::list))
        .routes(routes!(channels::get, channels::update))
        .routes(routes!(channels::rotate_credentials))
        .routes(routes!(channels::set_auto_reply))
        .routes(routes!(channels::messenger_pages))
        .routes(routes!(users::invite, users::list))
        .routes(routes!(inbox::list_conversations))
        .routes(routes!(inbox::get_conversation))
        .routes(routes!(inbox::list_messages, inbox::reply))
        .routes(routes!(outbox::list))
        .routes(routes!(outbox::get))
        .routes(routes!(outbox::retry))
        .routes(routes!(events::events))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::replay))
}
