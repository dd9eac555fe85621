//! `POST /platform/bootstrap` (bootstrap token), `POST|GET /platform/tenants`,
//! `GET /platform/tenants/{id}` (platform admins).

use super::extract::{Body, Params, PathParam, PlatformCaller, path_id};
use super::{ApiErrors, PageParams};
use crate::domain::{Email, TenantId, TenantName};
use crate::http::{ApiError, ServerState};
use crate::service::onboarding::{self, CreatedTenantView, TenantDetailView, TenantView, UserView};
use crate::service::page::Page;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /platform/bootstrap`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BootstrapRequest {
    /// The first platform admin's email.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// A permanent password; without it a temporary one is returned once.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
}

/// `POST /platform/tenants`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateTenantRequest {
    /// The company's name (unique ignoring case).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// Email of its first tenant admin (a temporary password is returned once).
    #[schema(format = Email, max_length = 254)]
    admin_email: String,
}

/// Creates the first platform admin: only with the configured bootstrap token, only while no
/// platform admin exists (409 after).
#[utoipa::path(post, path = "/platform/bootstrap", tag = "platform", request_body = BootstrapRequest,
    security(("bootstrapToken" = [])),
    responses((status = 201, description = "The platform admin", body = UserView), ApiErrors))]
pub(super) async fn bootstrap(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Body(body): Body<BootstrapRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let presented = headers.get("x-bootstrap-token").and_then(|v| v.to_str().ok());
    let email = Email::parse(&body.email)?;
    let view = onboarding::bootstrap_with_token(&state.app, presented, email, body.password).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Creates a tenant and its first tenant admin.
#[utoipa::path(post, path = "/platform/tenants", tag = "platform", request_body = CreateTenantRequest,
    security(("idToken" = [])),
    responses((status = 201, description = "The tenant and its admin", body = CreatedTenantView), ApiErrors))]
pub(super) async fn create_tenant(
    State(state): State<Arc<ServerState>>,
    PlatformCaller(caller): PlatformCaller,
    Body(body): Body<CreateTenantRequest>,
) -> Result<(StatusCode, Json<CreatedTenantView>), ApiError> {
    let (name, admin) = (TenantName::parse(&body.name)?, Email::parse(&body.admin_email)?);
    let view = onboarding::create_tenant(&state.app, &caller, name, admin).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Every tenant, oldest first.
#[utoipa::path(get, path = "/platform/tenants", tag = "platform", params(PageParams),
    security(("idToken" = [])),
    responses((status = 200, description = "A page of tenants", body = Page<TenantView>), ApiErrors))]
pub(super) async fn list_tenants(
    State(state): State<Arc<ServerState>>,
    PlatformCaller(caller): PlatformCaller,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    Ok(Json(onboarding::list_tenants(&state.app, &caller, &page.request()?).await?))
}

/// One tenant with its user and channel counts.
#[utoipa::path(get, path = "/platform/tenants/{tenantId}", tag = "platform",
    params(("tenantId" = String, Path, description = "Tenant id", pattern = "^[a-z0-9_-]{1,48}$")),
    security(("idToken" = [])),
    responses((status = 200, description = "The tenant", body = TenantDetailView), ApiErrors))]
pub(super) async fn get_tenant(
    State(state): State<Arc<ServerState>>,
    PlatformCaller(caller): PlatformCaller,
    PathParam(id): PathParam<String>,
) -> Result<Json<TenantDetailView>, ApiError> {
    let id = path_id(&id, TenantId::parse)?;
    Ok(Json(onboarding::show_tenant(&state.app, &caller, &id).await?))
}
