//! `POST|GET /tenant/users`: invite with a role, list (tenant admins).

use super::extract::{Body, Params, Scope, needs};
use super::{ApiErrors, PageParams, TenantParam};
use crate::domain::{Email, Role};
use crate::http::{ApiError, ServerState};
use crate::service::onboarding::{self, UserListItem, UserView};
use crate::service::page::Page;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /tenant/users`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct InviteRequest {
    /// The new user's email (sign-in name).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// `tenant_admin` or `tenant_manager` (`platform_admin` only in the platform tenant, by a
    /// platform admin).
    role: Role,
}

/// Invites a user with a temporary password, returned once.
#[utoipa::path(post, path = "/tenant/users", tag = "users", params(TenantParam), request_body = InviteRequest,
    security(("idToken" = [])),
    responses((status = 201, description = "The invited user", body = UserView), ApiErrors))]
pub(super) async fn invite(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageUsers>,
    Body(body): Body<InviteRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let email = Email::parse(&body.email)?;
    let view = onboarding::invite_user(&state.app, &scope.caller, &scope.tenant, email, body.role).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The tenant's users, oldest first.
#[utoipa::path(get, path = "/tenant/users", tag = "users", params(TenantParam, PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of users", body = Page<UserListItem>), ApiErrors))]
pub(super) async fn list(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ManageUsers>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<UserListItem>>, ApiError> {
    Ok(Json(onboarding::list_users(&state.app, &scope.caller, &scope.tenant, &page.request()?).await?))
}
