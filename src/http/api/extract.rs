//! The extractors every API handler is built from: who is calling ([`Auth`]), on which tenant
//! ([`Scope`]), and the request's JSON body and query with errors in the API's shape.
//!
//! Authentication runs before the body is read, so a caller without a valid token learns nothing
//! about what a route accepts.

use super::super::{ApiError, ServerState};
use crate::domain::{TenantId, ValidationError};
use crate::service::access::{Action, Caller};
use crate::service::session;
use axum::extract::{FromRequest, FromRequestParts, Query};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;

/// The signed-in caller, from `Authorization: Bearer <ID token>` checked by
/// [`session::authenticate`] (token verified, tenant agreeing with the stored user).
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<ServerState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let missing = || {
            ApiError::from(crate::service::ServiceError::Unauthenticated(
                "send the ID token from /auth/login as `Authorization: Bearer <token>`".into(),
            ))
        };
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(missing)?;
        let (scheme, token) = header.split_once(' ').ok_or_else(missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(missing());
        }
        Ok(Auth(session::authenticate(&state.app, token.trim()).await?))
    }
}

/// What a route needs the caller to be allowed: an [`Action`] named by a marker type, so the
/// handler's signature says it (`Scope<needs::Reply>`).
pub trait Needs: Send + Sync + 'static {
    /// The action of the role matrix this route performs.
    const ACTION: Action;
}

/// Marker types for [`Scope`], one per [`Action`].
pub mod needs {
    use super::{Action, Needs};

    macro_rules! markers {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Routes that need [`Action::", stringify!($name), "`].")]
            pub struct $name;
            impl Needs for $name {
                const ACTION: Action = Action::$name;
            }
        )*};
    }
    markers!(
        ManageUsers,
        ManageCredentials,
        ConfigureAutoReply,
        ReadChannels,
        UpdateChannels,
        ReadInbox,
        Reply,
        ManageWebhooks
    );
}

/// The caller and the tenant a `/tenant/…` request acts on: the caller's own, or the one a
/// platform admin names with `?tenantId=` (anyone else naming another tenant gets 404); the caller
/// must be allowed `A::ACTION` there (else 403). Checked before the body is read, so a caller who
/// may not do something learns nothing about what the route accepts. The service function checks
/// again: the CLI goes through the same check.
pub struct Scope<A: Needs> {
    /// Who is asking.
    pub caller: Caller,
    /// Whose data the request reads or changes.
    pub tenant: TenantId,
    action: PhantomData<A>,
}

impl<A: Needs> Scope<A> {
    /// The scope of an authenticated caller naming `named` (`?tenantId=`), for handlers that must
    /// check something else between authentication and the tenant (a required header).
    pub fn resolve(caller: Caller, named: Option<&str>) -> Result<Self, ApiError> {
        let named = named.map(TenantId::parse).transpose().map_err(bad_request)?;
        let tenant = caller.tenant(named)?;
        caller.authorize(A::ACTION, &tenant)?;
        Ok(Scope { caller, tenant, action: PhantomData })
    }
}

impl<A: Needs> FromRequestParts<Arc<ServerState>> for Scope<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        let Query(query) = Query::<super::TenantParam>::from_request_parts(parts, state).await?;
        Self::resolve(caller, query.tenant_id.as_deref())
    }
}

/// A caller allowed to act on the whole platform (`/platform/…` routes).
pub struct PlatformCaller(pub Caller);

impl FromRequestParts<Arc<ServerState>> for PlatformCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        let Auth(caller) = Auth::from_request_parts(parts, state).await?;
        caller.authorize_platform(Action::ManageTenants)?;
        Ok(PlatformCaller(caller))
    }
}

/// The address a request comes from, as the sign-in rate limits count it.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<Arc<ServerState>> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ServerState>) -> Result<Self, ApiError> {
        Ok(ClientAddress(state.limits.client_address(parts)))
    }
}

/// A JSON body; errors answer 400 (unreadable), 413 (too large), 415 (not JSON) or 422 (fields).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// A query string; errors answer 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Params<T>(pub T);

/// A path segment; errors answer 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParam<T>(pub T);

/// Parses an id from the path; a malformed one is a 400 (it cannot name anything).
pub fn path_id<T>(raw: &str, parse: fn(&str) -> Result<T, ValidationError>) -> Result<T, ApiError> {
    parse(raw).map_err(bad_request)
}

fn bad_request(e: ValidationError) -> ApiError {
    ApiError::bad_request(e.to_string())
}
