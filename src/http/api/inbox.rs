//! `/tenant/conversations`: list (inactive channels' hidden unless asked), get, messages newest
//! first, and replies with an `Idempotency-Key`.

use super::extract::{Body, Params, PathParam, Scope, needs, path_id};
use super::{ApiErrors, PageParams, TenantParam};
use crate::domain::{ChannelId, ConversationId, SendId};
use crate::http::{ApiError, ServerState};
use crate::service::inbox::{self, ConversationFilter};
use crate::service::outbox::{self, SendView};
use crate::service::page::Page;
use crate::service::views::{ConversationView, MessageView};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Filters of `GET /tenant/conversations`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct ConversationParams {
    /// Only this channel's conversations.
    #[param(pattern = "^[a-z0-9_-]{1,48}$")]
    channel_id: Option<String>,
    /// Also the conversations of inactive channels (default false).
    include_inactive: Option<bool>,
}

/// `POST /tenant/conversations/{conversationId}/messages`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReplyRequest {
    /// The reply (longer texts go out in several parts).
    #[schema(min_length = 1, max_length = 20000)]
    text: String,
}

/// The header that makes a reply idempotent.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The tenant's conversations, most recent first.
#[utoipa::path(get, path = "/tenant/conversations", tag = "inbox",
    params(TenantParam, ConversationParams, PageParams), security(("idToken" = [])),
    responses((status = 200, description = "A page of conversations", body = Page<ConversationView>), ApiErrors))]
pub(super) async fn list_conversations(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadInbox>,
    Params(filter): Params<ConversationParams>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<ConversationView>>, ApiError> {
    let channel = filter
        .channel_id
        .as_deref()
        .map(ChannelId::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let filter = ConversationFilter { channel, include_inactive: filter.include_inactive.unwrap_or(false) };
    Ok(Json(inbox::list_conversations(&state.app, &scope.caller, &scope.tenant, &filter, &page.request()?).await?))
}

/// One conversation.
#[utoipa::path(get, path = "/tenant/conversations/{conversationId}", tag = "inbox",
    params(("conversationId" = String, Path, description = "Conversation id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    security(("idToken" = [])),
    responses((status = 200, description = "The conversation", body = ConversationView), ApiErrors))]
pub(super) async fn get_conversation(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadInbox>,
    PathParam(id): PathParam<String>,
) -> Result<Json<ConversationView>, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    Ok(Json(inbox::get_conversation(&state.app, &scope.caller, &scope.tenant, &id).await?))
}

/// A conversation's messages, newest first (page back with the cursor).
#[utoipa::path(get, path = "/tenant/conversations/{conversationId}/messages", tag = "inbox",
    params(("conversationId" = String, Path, description = "Conversation id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam, PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of messages", body = Page<MessageView>), ApiErrors))]
pub(super) async fn list_messages(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadInbox>,
    PathParam(id): PathParam<String>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<MessageView>>, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    Ok(Json(inbox::list_messages(&state.app, &scope.caller, &scope.tenant, &id, &page.request()?).await?))
}

/// Queues a reply. With an `Idempotency-Key`, the same key and body answer the same response
/// again (with `Idempotent-Replayed: true`) and send nothing twice; the same key with another
/// body is 422 `idempotency_key_reused`. Keys are scoped to the tenant.
#[utoipa::path(post, path = "/tenant/conversations/{conversationId}/messages", tag = "inbox",
    params(
        ("conversationId" = String, Path, description = "Conversation id", pattern = "^[a-z0-9_-]{1,48}$"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters, not starting with `kamshub:`"),
        TenantParam
    ),
    request_body = ReplyRequest, security(("idToken" = [])),
    responses(
        (status = 202, description = "Queued (or replayed)", body = SendView,
            headers(("Idempotent-Replayed" = bool, description = "Present and true on a replay"))),
        ApiErrors
    ))]
pub(super) async fn reply(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::Reply>,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    Body(body): Body<ReplyRequest>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, ConversationId::parse)?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(value) => {
            let text = value.to_str().map_err(|_| ApiError::bad_request("the Idempotency-Key header is not ASCII"))?;
            Some(SendId::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let sent = outbox::send_reply(&state.app, &scope.caller, &scope.tenant, &id, &body.text, key).await?;
    let mut response = (StatusCode::ACCEPTED, Json(sent.view)).into_response();
    if sent.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
