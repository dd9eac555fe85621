//! `/tenant/channels`: connect (tenant admins), list, get, `PATCH {displayName?, isActive?}`,
//! rotate credentials, the auto-reply greeting, and Messenger page discovery. Credentials go in,
//! never out.

use super::extract::{Auth, Body, Params, PathParam, Scope, needs, path_id};
use super::{ApiErrors, PageParams, TenantParam};
use crate::domain::{ChannelId, DisplayName, ExternalId};
use crate::http::{ApiError, ServerState};
use crate::service::ServiceError;
use crate::service::channels::{self, ChannelChange, ChannelView, NewChannel, PageView};
use crate::service::page::Page;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /tenant/channels`: a Telegram bot or a Messenger page.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum CreateChannelRequest {
    /// A Telegram bot, by its Bot API token.
    Telegram {
        /// Name shown to staff.
        #[schema(min_length = 1, max_length = 100)]
        #[serde(rename = "displayName")]
        display_name: String,
        /// The bot's token from @BotFather.
        #[schema(value_type = String, format = Password)]
        #[serde(rename = "botToken")]
        bot_token: SecretString,
        /// Register the webhook now (default true).
        #[serde(rename = "registerWebhook")]
        register_webhook: Option<bool>,
    },
    /// A Messenger page: give exactly one of `pageToken` and `userToken` (a Facebook user access
    /// token of someone who manages the page: kamshub takes the page's token from `/me/accounts`
    /// and does not keep the user token).
    Messenger {
        /// Name shown to staff.
        #[schema(min_length = 1, max_length = 100)]
        #[serde(rename = "displayName")]
        display_name: String,
        /// The page id.
        #[schema(pattern = "^[0-9]{1,32}$")]
        #[serde(rename = "pageId")]
        page_id: String,
        /// The page's access token.
        #[schema(value_type = Option<String>, format = Password)]
        #[serde(rename = "pageToken")]
        page_token: Option<SecretString>,
        /// A Facebook user access token that manages the page.
        #[schema(value_type = Option<String>, format = Password)]
        #[serde(rename = "userToken")]
        user_token: Option<SecretString>,
    },
}

/// `PATCH /tenant/channels/{channelId}`: only these fields can change.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateChannelRequest {
    /// New name shown to staff.
    #[schema(min_length = 1, max_length = 100)]
    display_name: Option<String>,
    /// Show (true) or hide (false) the channel's conversations in the inbox.
    is_active: Option<bool>,
}

/// `POST /tenant/channels/{channelId}/rotate-credentials`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RotateCredentialsRequest {
    /// The new bot token (Telegram) or page token (Messenger).
    #[schema(value_type = String, format = Password)]
    token: SecretString,
}

/// `PUT /tenant/channels/{channelId}/auto-reply`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AutoReplyRequest {
    /// The greeting sent on a new conversation's first message; `null` turns it off.
    #[schema(min_length = 1, max_length = 2000)]
    text: Option<String>,
}

/// Connects a Telegram bot or a Messenger page (tenant admins).
#[utoipa::path(post, path = "/tenant/channels", tag = "channels", params(TenantParam),
    request_body = CreateChannelRequest, security(("idToken" = [])),
    responses((status = 201, description = "The connected channel", body = ChannelView), ApiErrors))]
pub(super) async fn create(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageCredentials>,
    Body(body): Body<CreateChannelRequest>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    let (name, new) = match body {
        CreateChannelRequest::Telegram { display_name, bot_token, register_webhook } => (
            display_name,
            NewChannel::Telegram { token: bot_token, register_webhook: register_webhook.unwrap_or(true) },
        ),
        CreateChannelRequest::Messenger { display_name, page_id, page_token, user_token } => {
            let page_id = ExternalId::page_id(&page_id)?;
            let new = match (page_token, user_token) {
                (Some(page_token), None) => NewChannel::Messenger { page_id, page_token },
                (None, Some(user_token)) => NewChannel::MessengerByUser { page_id, user_token },
                _ => return Err(ServiceError::Invalid("give exactly one of pageToken and userToken".into()).into()),
            };
            (display_name, new)
        }
    };
    let name = DisplayName::parse(&name)?;
    let view = channels::add(&state.app, &scope.caller, &scope.tenant, name, new).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The tenant's channels, oldest first.
#[utoipa::path(get, path = "/tenant/channels", tag = "channels", params(TenantParam, PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of channels", body = Page<ChannelView>), ApiErrors))]
pub(super) async fn list(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadChannels>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<ChannelView>>, ApiError> {
    Ok(Json(channels::list(&state.app, &scope.caller, &scope.tenant, &page.request()?).await?))
}

/// One channel.
#[utoipa::path(get, path = "/tenant/channels/{channelId}", tag = "channels",
    params(("channelId" = String, Path, description = "Channel id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    security(("idToken" = [])),
    responses((status = 200, description = "The channel", body = ChannelView), ApiErrors))]
pub(super) async fn get(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadChannels>,
    PathParam(id): PathParam<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    Ok(Json(channels::get(&state.app, &scope.caller, &scope.tenant, &id).await?))
}

/// Renames, activates or deactivates a channel (tenant admins and managers).
#[utoipa::path(patch, path = "/tenant/channels/{channelId}", tag = "channels",
    params(("channelId" = String, Path, description = "Channel id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    request_body = UpdateChannelRequest, security(("idToken" = [])),
    responses((status = 200, description = "The changed channel", body = ChannelView), ApiErrors))]
pub(super) async fn update(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::UpdateChannels>,
    PathParam(id): PathParam<String>,
    Body(body): Body<UpdateChannelRequest>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    let mut changes = Vec::new();
    if let Some(name) = body.display_name {
        changes.push(ChannelChange::Rename(DisplayName::parse(&name)?));
    }
    if let Some(active) = body.is_active {
        changes.push(ChannelChange::SetActive(active));
    }
    Ok(Json(channels::change(&state.app, &scope.caller, &scope.tenant, &id, &changes).await?))
}

/// Replaces a channel's token, keeping its history (tenant admins).
#[utoipa::path(post, path = "/tenant/channels/{channelId}/rotate-credentials", tag = "channels",
    params(("channelId" = String, Path, description = "Channel id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    request_body = RotateCredentialsRequest, security(("idToken" = [])),
    responses((status = 200, description = "The channel, credentials replaced", body = ChannelView), ApiErrors))]
pub(super) async fn rotate_credentials(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageCredentials>,
    PathParam(id): PathParam<String>,
    Body(body): Body<RotateCredentialsRequest>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    Ok(Json(channels::rotate_credentials(&state.app, &scope.caller, &scope.tenant, &id, body.token).await?))
}

/// Sets or turns off the greeting of new conversations (tenant admins).
#[utoipa::path(put, path = "/tenant/channels/{channelId}/auto-reply", tag = "channels",
    params(("channelId" = String, Path, description = "Channel id", pattern = "^[a-z0-9_-]{1,48}$"), TenantParam),
    request_body = AutoReplyRequest, security(("idToken" = [])),
    responses((status = 200, description = "The channel with its greeting", body = ChannelView), ApiErrors))]
pub(super) async fn set_auto_reply(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ConfigureAutoReply>,
    PathParam(id): PathParam<String>,
    Body(body): Body<AutoReplyRequest>,
) -> Result<Json<ChannelView>, ApiError> {
    let id = path_id(&id, ChannelId::parse)?;
    let change = [ChannelChange::AutoReply(body.text)];
    Ok(Json(channels::change(&state.app, &scope.caller, &scope.tenant, &id, &change).await?))
}

/// The header that carries a Facebook user access token to page discovery.
const USER_TOKEN: &str = "x-facebook-user-token";

/// The Messenger pages a Facebook user token manages, to connect one with `userToken` (tenant
/// admins). The token goes in the `X-Facebook-User-Token` header; it is used once and never kept
/// or logged.
#[utoipa::path(get, path = "/tenant/channels/messenger/pages", tag = "channels",
    params(
        ("X-Facebook-User-Token" = String, Header, description = "A Facebook user access token"),
        TenantParam, PageParams
    ),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of the pages the token manages", body = Page<PageView>), ApiErrors))]
pub(super) async fn messenger_pages(
    State(state): State<Arc<ServerState>>,
    Auth(caller): Auth,
    headers: HeaderMap,
    Params(tenant): Params<TenantParam>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<PageView>>, ApiError> {
    // The required header is checked right after authentication, before the tenant and role.
    let token = headers
        .get(USER_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("send the Facebook user token in the X-Facebook-User-Token header"))?;
    let token = SecretString::from(token.to_owned());
    let scope = Scope::<needs::ManageCredentials>::resolve(caller, tenant.tenant_id.as_deref())?;
    let page = page.request()?;
    Ok(Json(channels::messenger_pages(&state.app, &scope.caller, &scope.tenant, &token, &page).await?))
}
