//! Signing in and proving who you are: login, the new-password challenge, refresh, and
//! [`authenticate`], which turns a bearer ID token into the [`Caller`] every other service checks.
//!
//! A token alone is not trusted for the tenant: a Cognito user can rewrite a mutable custom
//! attribute (`custom:tenantID`) with their own access token, so the token's tenant must agree
//! with the user's record in the store, found by the token's subject.

use super::access::{AuthUser, Caller};
use super::{ServiceError, ServiceResult};
use crate::app::App;
use crate::domain::{Email, Role};
use crate::identity::jwt::{TokenUse, VerifyError};
use crate::identity::{Login, Tokens};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use utoipa::ToSchema;

/// Tokens of a signed-in user, as login, the new-password answer and refresh return them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokensView {
    /// ID token: send it as `Authorization: Bearer …` to the API.
    pub id_token: String,
    /// Access token (for the identity provider's own user APIs).
    pub access_token: String,
    /// Refresh token; absent on a refresh answer (the one you hold stays valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the ID and access tokens expire.
    pub expires_in: u64,
}

/// Which challenge a sign-in must answer.
#[derive(Serialize, ToSchema)]
pub enum ChallengeName {
    /// The password was temporary: answer with `POST /auth/complete-new-password`.
    #[serde(rename = "NEW_PASSWORD_REQUIRED")]
    NewPasswordRequired,
}

/// A sign-in that needs one more step.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeView {
    /// The step to take.
    pub challenge: ChallengeName,
    /// Opaque; valid for a few minutes.
    pub session: String,
}

/// The answer to a sign-in.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginView {
    /// Signed in.
    Tokens(TokensView),
    /// A new password is required first.
    Challenge(ChallengeView),
}

/// Who the caller is, as `GET /me` shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    /// Identity subject.
    pub user_id: String,
    /// Sign-in name.
    pub email: String,
    /// The caller's tenant (`platform` for platform admins).
    pub tenant_id: String,
    /// The caller's roles (`cognito:groups`).
    pub roles: Vec<Role>,
}

/// Signs in with email and password.
pub async fn login(app: &App, email: &Email, password: &SecretString) -> ServiceResult<LoginView> {
    match app.identity().await?.login(email, password).await? {
        Login::Tokens(tokens) => Ok(LoginView::Tokens(tokens_view(tokens))),
        Login::NewPasswordRequired { session } => {
            Ok(LoginView::Challenge(ChallengeView { challenge: ChallengeName::NewPasswordRequired, session }))
        }
    }
}

/// Answers `NEW_PASSWORD_REQUIRED` with the user's own new password.
pub async fn complete_new_password(
    app: &App,
    email: &Email,
    session: &str,
    new_password: &SecretString,
) -> ServiceResult<TokensView> {
    let tokens = app.identity().await?.complete_new_password(email, session, new_password).await?;
    Ok(tokens_view(tokens))
}

/// New ID and access tokens from a refresh token.
pub async fn refresh(app: &App, refresh_token: &SecretString, email: Option<&Email>) -> ServiceResult<TokensView> {
    let tokens = app.identity().await?.refresh(email, refresh_token).await?;
    Ok(tokens_view(tokens))
}

/// Checks a bearer ID token and finds its user: signature, expiry, issuer and audience through the
/// one verifier; then the stored user with the token's subject, whose tenant the token's
/// `custom:tenantID` must name. Roles come from `cognito:groups`; `platform_admin` counts only
/// for a user of the `platform` tenant.
pub async fn authenticate(app: &App, id_token: &str) -> ServiceResult<Caller> {
    let identity = app.identity().await?;
    let principal = identity.verifier().verify(id_token, TokenUse::Id).await.map_err(|e| match e {
        VerifyError::Invalid(why) => {
            tracing::debug!(%why, "token refused");
            ServiceError::Unauthenticated("the token is invalid or expired; sign in again".into())
        }
        VerifyError::KeysUnavailable(why) => ServiceError::Unavailable(format!("cannot check tokens: {why}")),
    })?;
    let refused = || ServiceError::Unauthenticated("the token does not match a kamshub user; sign in again".into());
    let claimed_tenant = principal.tenant_id.clone().ok_or_else(refused)?;
    let user = app.store().await?.get_user(&principal.user_id).await?.ok_or_else(refused)?;
    if user.tenant_id != claimed_tenant {
        tracing::warn!(
            user = %user.id,
            stored_tenant = %user.tenant_id,
            claimed_tenant = %claimed_tenant,
            "refused a token whose custom:tenantID differs from the user's tenant (attribute rewritten?)"
        );
        return Err(refused());
    }
    let roles: Vec<Role> = principal
        .roles
        .iter()
        .copied()
        .filter(|role| *role != Role::PlatformAdmin || user.tenant_id.is_platform())
        .collect();
    let role = *roles
        .first()
        .ok_or_else(|| ServiceError::Forbidden("the token grants no kamshub role (cognito:groups)".into()))?;
    Ok(Caller::User(AuthUser {
        user_id: user.id,
        email: user.email,
        tenant_id: user.tenant_id,
        role,
        roles,
        token_expires_at: principal.expires_at,
    }))
}

/// Who the caller is. The operator has no user record.
pub fn me(caller: &Caller) -> ServiceResult<MeView> {
    match caller {
        Caller::User(user) => Ok(MeView {
            user_id: user.user_id.to_string(),
            email: user.email.to_string(),
            tenant_id: user.tenant_id.to_string(),
            roles: user.roles.clone(),
        }),
        Caller::Operator(_) => Err(ServiceError::Invalid("the CLI operator is not a signed-in user".into())),
    }
}

fn tokens_view(tokens: Tokens) -> TokensView {
    TokensView {
        id_token: tokens.id_token.expose_secret().to_owned(),
        access_token: tokens.access_token.expose_secret().to_owned(),
        refresh_token: tokens.refresh_token.map(|t| t.expose_secret().to_owned()),
        expires_in: tokens.expires_in,
    }
}
