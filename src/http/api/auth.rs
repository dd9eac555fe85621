//! `POST /auth/login`, `POST /auth/complete-new-password`, `POST /auth/refresh` (rate-limited per
//! email and client address) and `GET /me`.

use super::ApiErrors;
use super::extract::{Auth, Body, ClientAddress};
use crate::domain::Email;
use crate::http::{ApiError, ServerState};
use crate::service::session::{self, LoginView, MeView, TokensView};
use axum::Json;
use axum::extract::State;
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /auth/login`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// Sign-in name.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Password (a temporary one answers with a challenge).
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// `POST /auth/complete-new-password`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewPasswordRequest {
    /// Sign-in name.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// The `session` of the login's challenge.
    session: String,
    /// At least 8 characters with a lower-case and an upper-case letter, a digit and a symbol.
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// `POST /auth/refresh`
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    /// The refresh token from login.
    #[schema(value_type = String)]
    refresh_token: SecretString,
    /// The user's email: required where the Cognito app client has a secret.
    email: Option<String>,
}

/// Signs in. A temporary password answers `{challenge: "NEW_PASSWORD_REQUIRED", session}`.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "Tokens, or a challenge to answer", body = LoginView), ApiErrors))]
pub(super) async fn login(
    State(state): State<Arc<ServerState>>,
    ClientAddress(address): ClientAddress,
    Body(body): Body<LoginRequest>,
) -> Result<Json<LoginView>, ApiError> {
    state.limits.check_address(address)?;
    let email = Email::parse(&body.email)?;
    state.limits.check_email(&email)?;
    Ok(Json(session::login(&state.app, &email, &body.password).await?))
}

/// Replaces a temporary password and signs in.
#[utoipa::path(post, path = "/auth/complete-new-password", tag = "auth", request_body = NewPasswordRequest,
    responses((status = 200, description = "Signed in", body = TokensView), ApiErrors))]
pub(super) async fn complete_new_password(
    State(state): State<Arc<ServerState>>,
    ClientAddress(address): ClientAddress,
    Body(body): Body<NewPasswordRequest>,
) -> Result<Json<TokensView>, ApiError> {
    state.limits.check_address(address)?;
    let email = Email::parse(&body.email)?;
    state.limits.check_email(&email)?;
    Ok(Json(session::complete_new_password(&state.app, &email, &body.session, &body.new_password).await?))
}

/// New ID and access tokens from a refresh token.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "Fresh tokens (no new refresh token)", body = TokensView), ApiErrors))]
pub(super) async fn refresh(
    State(state): State<Arc<ServerState>>,
    ClientAddress(address): ClientAddress,
    Body(body): Body<RefreshRequest>,
) -> Result<Json<TokensView>, ApiError> {
    state.limits.check_address(address)?;
    let email = body.email.as_deref().map(Email::parse).transpose()?;
    if let Some(email) = &email {
        state.limits.check_email(email)?;
    }
    Ok(Json(session::refresh(&state.app, &body.refresh_token, email.as_ref()).await?))
}

/// Who the bearer of the token is.
#[utoipa::path(get, path = "/me", tag = "auth", security(("idToken" = [])),
    responses((status = 200, description = "The signed-in user", body = MeView), ApiErrors))]
pub(super) async fn me(Auth(caller): Auth) -> Result<Json<MeView>, ApiError> {
    Ok(Json(session::me(&caller)?))
}
