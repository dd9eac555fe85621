//! Onboarding: bootstrap the first platform admin, create tenants with their first admin, invite
//! users. The identity user is created first; if the store write then fails it is deleted again,
//! so a failed command leaves nothing behind.

use super::access::{Action, Caller};
use super::page::{Page, PageRequest, time_key};
use super::{ServiceError, ServiceResult, rfc3339};
use crate::app::App;
use crate::domain::{Actor, AuditEntry, Email, Role, Tenant, TenantId, TenantName, User};
use crate::identity::{InitialPassword, NewIdentityUser, check_password_policy, generate_temporary_password};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

/// A user as `bootstrap`, `user invite` and `user list` print it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Identity subject.
    pub user_id: String,
    /// Sign-in name.
    pub email: String,
    /// Tenant.
    pub tenant_id: String,
    /// Role.
    pub role: Role,
    /// Generated first password, shown once; the first sign-in must replace it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

/// A user in listings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserListItem {
    /// Identity subject.
    pub user_id: String,
    /// Sign-in name.
    pub email: String,
    /// Tenant.
    pub tenant_id: String,
    /// Role.
    pub role: Role,
    /// When the user was invited.
    pub created_at: String,
}

/// What `tenant create` prints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenantView {
    /// New tenant id.
    pub tenant_id: String,
    /// Its name.
    pub name: String,
    /// Its first tenant admin.
    pub admin: TenantAdminView,
}

/// The first admin inside [`CreatedTenantView`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantAdminView {
    /// Identity subject.
    pub user_id: String,
    /// Sign-in name.
    pub email: String,
    /// Always `tenant_admin`.
    pub role: Role,
    /// Generated first password, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

/// A tenant in listings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// Tenant id.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// When it was created.
    pub created_at: String,
}

/// What `tenant show` prints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDetailView {
    /// Tenant id.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// When it was created.
    pub created_at: String,
    /// How many users it has.
    pub user_count: usize,
    /// How many channels it has (active or not).
    pub channel_count: usize,
}

/// A user created in both the identity provider and the store.
struct Created {
    user: User,
    temporary_password: Option<SecretString>,
}

/// Creates the first platform admin in tenant `platform`. Fails, changing nothing, once any
/// platform admin exists. With `password` the admin signs in with it; without, a temporary
/// password is generated and returned once.
pub async fn bootstrap(
    app: &App,
    actor: &Actor,
    email: Email,
    password: Option<SecretString>,
) -> ServiceResult<UserView> {
    let store = app.store().await?;
    if store.has_platform_admin().await? {
        return Err(ServiceError::Conflict("kamshub is already bootstrapped: a platform admin exists".into()));
    }
    let platform = TenantId::platform();
    let first_time = match store.get_tenant(&platform).await {
        Ok(_) => false,
        Err(crate::store::StoreError::NotFound(_)) => true,
        Err(e) => return Err(e.into()),
    };
    let new =
        NewUser { tenant_id: &platform, email, role: Role::PlatformAdmin, password, action: "platform.bootstrap" };
    let created = create_user(app, actor, new, |user, audit| async move {
        if first_time {
            let tenant = Tenant {
                id: TenantId::platform(),
                name: TenantName::parse("Platform").expect("literal name"),
                created_at: crate::domain::now(),
            };
            store.insert_tenant(&tenant, Some(&user), &audit).await
        } else {
            store.insert_user(&user, &audit).await
        }
    })
    .await?;
    Ok(user_view(created))
}

/// [`bootstrap`] over HTTP: only with the configured bootstrap token (`KAMSHUB_BOOTSTRAP_TOKEN`),
/// compared in constant time. Without a configured token HTTP bootstrap does not exist.
pub async fn bootstrap_with_token(
    app: &App,
    presented: Option<&str>,
    email: Email,
    password: Option<SecretString>,
) -> ServiceResult<UserView> {
    let Some(expected) = &app.settings.bootstrap_token else {
        return Err(ServiceError::NotFound(
            "HTTP bootstrap is disabled: set KAMSHUB_BOOTSTRAP_TOKEN, or run `kamshub bootstrap`".into(),
        ));
    };
    let matches = presented.is_some_and(|p| {
        use subtle::ConstantTimeEq;
        bool::from(p.as_bytes().ct_eq(expected.expose_secret().as_bytes()))
    });
    if !matches {
        return Err(ServiceError::Unauthenticated("a valid X-Bootstrap-Token header is required".into()));
    }
    bootstrap(app, &Actor::BootstrapToken, email, password).await
}

/// Creates a tenant and its first tenant admin (temporary password).
pub async fn create_tenant(
    app: &App,
    caller: &Caller,
    name: TenantName,
    admin_email: Email,
) -> ServiceResult<CreatedTenantView> {
    caller.authorize_platform(Action::ManageTenants)?;
    let actor = &caller.actor();
    let store = app.store().await?;
    let tenant = Tenant { id: TenantId::generate(), name, created_at: crate::domain::now() };
    let new = NewUser {
        tenant_id: &tenant.id,
        email: admin_email,
        role: Role::TenantAdmin,
        password: None,
        action: "tenant.create",
    };
    // The tenant.create entry names the tenant, not the user, so the closure writes its own.
    let created = create_user(app, actor, new, |user, _| {
        let tenant = tenant.clone();
        let audit = AuditEntry::new(
            actor,
            &tenant.id,
            "tenant.create",
            tenant.id.as_str(),
            json!({"name": tenant.name.as_str(), "adminEmail": user.email.as_str()}),
        );
        async move { store.insert_tenant(&tenant, Some(&user), &audit).await }
    })
    .await?;
    Ok(CreatedTenantView {
        tenant_id: tenant.id.to_string(),
        name: tenant.name.to_string(),
        admin: TenantAdminView {
            user_id: created.user.id.to_string(),
            email: created.user.email.to_string(),
            role: created.user.role,
            temporary_password: created.temporary_password.map(|p| p.expose_secret().to_owned()),
        },
    })
}

/// Every tenant, oldest first (platform-admin listing).
pub async fn list_tenants(app: &App, caller: &Caller, page: &PageRequest) -> ServiceResult<Page<TenantView>> {
    caller.authorize_platform(Action::ManageTenants)?;
    let tenants = app.store().await?.list_tenants().await?;
    Ok(Page::of_sorted(tenants, page, |t| time_key(t.created_at, t.id.as_str())).map(tenant_view))
}

/// One tenant with its user and channel counts.
pub async fn show_tenant(app: &App, caller: &Caller, id: &TenantId) -> ServiceResult<TenantDetailView> {
    caller.authorize_platform(Action::ManageTenants)?;
    let store = app.store().await?;
    let tenant = store.get_tenant(id).await?;
    let user_count = store.list_users(id).await?.len();
    let channel_count = store.list_channels(id).await?.len();
    Ok(TenantDetailView {
        tenant_id: tenant.id.to_string(),
        name: tenant.name.to_string(),
        created_at: rfc3339(tenant.created_at),
        user_count,
        channel_count,
    })
}

/// Invites a user into a tenant with a temporary password. `platform_admin` belongs only in the
/// `platform` tenant, and the `platform` tenant holds only platform admins.
pub async fn invite_user(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    email: Email,
    role: Role,
) -> ServiceResult<UserView> {
    caller.authorize(Action::ManageUsers, tenant_id)?;
    caller.may_grant(role)?;
    let actor = &caller.actor();
    if tenant_id.is_platform() != (role == Role::PlatformAdmin) {
        return Err(ServiceError::Invalid(format!(
            "role {role} cannot be given in tenant `{tenant_id}`: platform_admin exists only in tenant `platform`, which holds nothing else"
        )));
    }
    let store = app.store().await?;
    store.get_tenant(tenant_id).await?;
    let new = NewUser { tenant_id, email, role, password: None, action: "user.invite" };
    let created =
        create_user(app, actor, new, |user, audit| async move { store.insert_user(&user, &audit).await }).await?;
    Ok(user_view(created))
}

/// The users of a tenant, oldest first.
pub async fn list_users(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    page: &PageRequest,
) -> ServiceResult<Page<UserListItem>> {
    caller.authorize(Action::ManageUsers, tenant_id)?;
    let store = app.store().await?;
    store.get_tenant(tenant_id).await?;
    let users = store.list_users(tenant_id).await?;
    Ok(Page::of_sorted(users, page, |u| time_key(u.created_at, u.id.as_str())).map(|u| UserListItem {
        user_id: u.id.to_string(),
        email: u.email.to_string(),
        tenant_id: u.tenant_id.to_string(),
        role: u.role,
        created_at: rfc3339(u.created_at),
    }))
}

/// A user to create: where, who, with which first password, audited as `action`.
struct NewUser<'a> {
    tenant_id: &'a TenantId,
    email: Email,
    role: Role,
    /// A permanent password; `None` generates a temporary one.
    password: Option<SecretString>,
    action: &'static str,
}

/// Creates the identity user, then runs `persist` with the store's mirror of it and its audit
/// entry; if `persist` fails the identity user is deleted again.
async fn create_user<F, Fut>(app: &App, actor: &Actor, new: NewUser<'_>, persist: F) -> ServiceResult<Created>
where
    F: FnOnce(User, AuditEntry) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::store::StoreError>>,
{
    let NewUser { tenant_id, email, role, password, action } = new;
    let store = app.store().await?;
    if store.find_user_by_email(&email).await?.is_some() {
        return Err(ServiceError::Conflict(format!("a user with email {email} already exists")));
    }
    let (initial, temporary_password) = match password {
        Some(p) => {
            check_password_policy(&p)?;
            (InitialPassword::Permanent(p), None)
        }
        None => {
            let p = generate_temporary_password();
            (InitialPassword::Temporary(p.clone()), Some(p))
        }
    };
    let identity = app.identity().await?;
    let id = identity.create_user(NewIdentityUser { email: &email, tenant_id, role, password: initial }).await?;
    let user = User { id, email, tenant_id: tenant_id.clone(), role, created_at: crate::domain::now() };
    let audit = AuditEntry::new(
        actor,
        tenant_id,
        action,
        user.id.as_str(),
        json!({"email": user.email.as_str(), "role": role.as_str()}),
    );
    if let Err(e) = persist(user.clone(), audit).await {
        if let Err(undo) = identity.delete_user(&user.email).await {
            tracing::error!(email = %user.email, error = %undo, "could not delete the identity user of a failed creation");
        }
        return Err(e.into());
    }
    Ok(Created { user, temporary_password })
}

fn user_view(created: Created) -> UserView {
    UserView {
        user_id: created.user.id.to_string(),
        email: created.user.email.to_string(),
        tenant_id: created.user.tenant_id.to_string(),
        role: created.user.role,
        temporary_password: created.temporary_password.map(|p| p.expose_secret().to_owned()),
    }
}

fn tenant_view(t: Tenant) -> TenantView {
    TenantView { tenant_id: t.id.to_string(), name: t.name.to_string(), created_at: rfc3339(t.created_at) }
}
