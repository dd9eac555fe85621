//! Who may do what: the role matrix of `docs/architecture.md` ("Multi-tenancy and auth"), written
//! once and checked by every service function, so the CLI and the HTTP API cannot drift.
//!
//! A [`Caller`] is either the operator at the CLI (who holds the configuration and the master key,
//! so may do everything) or a signed-in user whose token agreed with the stored user record (see
//! [`super::session::authenticate`]). Deny by default: a role may do only what [`allows`] lists,
//! and a user acts only inside their own tenant; a platform admin acts on another tenant only by
//! naming it ([`Caller::tenant`]).

use super::{ServiceError, ServiceResult};
use crate::domain::{Actor, Email, Role, TenantId, UserId};
use std::fmt;

/// Something a caller may be allowed to do, in the words of the role matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create, list and show tenants (the platform's own business).
    ManageTenants,
    /// Invite users and list them.
    ManageUsers,
    /// Anything that handles a channel's credentials: connect a bot or page, discover pages with a
    /// user token, rotate a token, register a webhook with the stored token.
    ManageCredentials,
    /// Set or clear a channel's greeting (it speaks for the tenant to every new customer).
    ConfigureAutoReply,
    /// See a tenant's channels (never their credentials).
    ReadChannels,
    /// Rename, activate and deactivate channels.
    UpdateChannels,
    /// Read conversations, messages and outbox items.
    ReadInbox,
    /// Reply in a conversation, and send a failed reply again.
    Reply,
    /// Register, change and remove webhook endpoints, see and replay their deliveries (an
    /// endpoint receives every event of the tenant it asks for, and its secret is shown).
    ManageWebhooks,
}

impl Action {
    /// Every action, for tests and documentation that walk the matrix.
    pub const ALL: [Action; 9] = [
        Action::ManageTenants,
        Action::ManageUsers,
        Action::ManageCredentials,
        Action::ConfigureAutoReply,
        Action::ReadChannels,
        Action::UpdateChannels,
        Action::ReadInbox,
        Action::Reply,
        Action::ManageWebhooks,
    ];

    fn describe(self) -> &'static str {
        match self {
            Action::ManageTenants => "manage tenants",
            Action::ManageUsers => "manage users",
            Action::ManageCredentials => "manage channel credentials",
            Action::ConfigureAutoReply => "configure auto-replies",
            Action::ReadChannels => "read channels",
            Action::UpdateChannels => "change channels",
            Action::ReadInbox => "read the inbox",
            Action::Reply => "reply",
            Action::ManageWebhooks => "manage webhooks",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The role matrix. Exhaustive on purpose: a new action or role does not compile until someone
/// decides who may do it.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::PlatformAdmin => true,
        Role::TenantAdmin => match action {
            ManageUsers | ManageCredentials | ConfigureAutoReply | ReadChannels | UpdateChannels | ReadInbox
            | Reply | ManageWebhooks => true,
            ManageTenants => false,
        },
        Role::TenantManager => match action {
            ReadChannels | UpdateChannels | ReadInbox | Reply => true,
            ManageTenants | ManageUsers | ManageCredentials | ConfigureAutoReply | ManageWebhooks => false,
        },
    }
}

/// A signed-in user, as the API knows them after the token and the store agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// The identity provider's subject; the store's user id.
    pub user_id: UserId,
    /// Sign-in name, from the stored record.
    pub email: Email,
    /// The user's tenant, from the stored record (the token's claim had to match it).
    pub tenant_id: TenantId,
    /// The most powerful of [`AuthUser::roles`]: what the user may do.
    pub role: Role,
    /// Every role the token's `cognito:groups` name.
    pub roles: Vec<Role>,
    /// When the token expires (Unix seconds): an event stream ends then, and the client
    /// reconnects with a fresh token.
    pub token_expires_at: u64,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator at the CLI, named by the OS user: holds the configuration and the master key,
    /// so may do everything, in any tenant, but must always name the tenant.
    Operator(String),
    /// A signed-in API user.
    User(AuthUser),
}

impl Caller {
    /// The operator running this process (`$USER`).
    pub fn operator() -> Self {
        Caller::Operator(std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()))
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Operator(name) => Actor::Cli(name.clone()),
            Caller::User(user) => Actor::User(user.email.to_string()),
        }
    }

    /// The tenant a request acts on. A user acts on their own tenant; naming another one answers
    /// `NotFound`, exactly as a tenant that does not exist (nobody learns which ids exist). A
    /// platform admin acts on their own (`platform`) tenant unless they name one; the operator
    /// must always name one.
    pub fn tenant(&self, named: Option<TenantId>) -> ServiceResult<TenantId> {
        match (self, named) {
            (Caller::Operator(_), Some(tenant)) => Ok(tenant),
            (Caller::Operator(_), None) => Err(ServiceError::Invalid("name the tenant".into())),
            (Caller::User(user), None) => Ok(user.tenant_id.clone()),
            (Caller::User(user), Some(tenant)) if tenant == user.tenant_id || user.role == Role::PlatformAdmin => {
                Ok(tenant)
            }
            (Caller::User(_), Some(tenant)) => Err(not_found(&tenant)),
        }
    }

    /// Checks that the caller may do `action` inside `tenant`: another tenant's data does not
    /// exist for anyone but a platform admin (`NotFound`); a role outside the matrix is refused
    /// (`Forbidden`).
    pub fn authorize(&self, action: Action, tenant: &TenantId) -> ServiceResult<()> {
        let Caller::User(user) = self else { return Ok(()) };
        if user.role != Role::PlatformAdmin && *tenant != user.tenant_id {
            return Err(not_found(tenant));
        }
        self.authorize_role(action)
    }

    /// Checks that the caller may do `action` across every tenant (tenant listings, the outbox of
    /// the whole platform): the operator and platform admins only.
    pub fn authorize_platform(&self, action: Action) -> ServiceResult<()> {
        match self {
            Caller::Operator(_) => Ok(()),
            Caller::User(user) if user.role == Role::PlatformAdmin => Ok(()),
            Caller::User(user) => {
                Err(ServiceError::Forbidden(format!("role {} may not {action} across tenants", user.role)))
            }
        }
    }

    /// The role check alone, for actions that name no tenant.
    fn authorize_role(&self, action: Action) -> ServiceResult<()> {
        match self {
            Caller::Operator(_) => Ok(()),
            Caller::User(user) if allows(user.role, action) => Ok(()),
            Caller::User(user) => Err(ServiceError::Forbidden(format!("role {} may not {action}", user.role))),
        }
    }

    /// The role a user may give when inviting: only roles no stronger than their own, and
    /// `platform_admin` only by a platform admin (or the operator).
    pub fn may_grant(&self, role: Role) -> ServiceResult<()> {
        match self {
            Caller::User(user) if role == Role::PlatformAdmin && user.role != Role::PlatformAdmin => {
                Err(ServiceError::Forbidden(format!("role {} may not grant the role {role}", user.role)))
            }
            _ => Ok(()),
        }
    }
}

fn not_found(tenant: &TenantId) -> ServiceError {
    ServiceError::NotFound(format!("tenant `{tenant}` not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, tenant: &TenantId) -> Caller {
        Caller::User(AuthUser {
            user_id: UserId::generate(),
            email: Email::parse("a@example.com").unwrap(),
            tenant_id: tenant.clone(),
            role,
            roles: vec![role],
            token_expires_at: u64::MAX,
        })
    }

    #[test]
    fn managers_read_and_reply_but_touch_no_users_or_credentials() {
        let granted: Vec<Action> = Action::ALL.into_iter().filter(|a| allows(Role::TenantManager, *a)).collect();
        assert_eq!(granted, [Action::ReadChannels, Action::UpdateChannels, Action::ReadInbox, Action::Reply]);
        assert!(Action::ALL.into_iter().all(|a| allows(Role::PlatformAdmin, a)));
        assert!(!allows(Role::TenantAdmin, Action::ManageTenants));
    }

    #[test]
    fn naming_another_tenant_is_not_found_except_for_platform_admins() {
        let (own, other) = (TenantId::generate(), TenantId::generate());
        for role in [Role::TenantAdmin, Role::TenantManager] {
            let caller = user(role, &own);
            assert_eq!(caller.tenant(None).unwrap(), own);
            assert_eq!(caller.tenant(Some(own.clone())).unwrap(), own);
            assert!(matches!(caller.tenant(Some(other.clone())), Err(ServiceError::NotFound(_))));
            assert!(matches!(caller.authorize(Action::ReadInbox, &other), Err(ServiceError::NotFound(_))));
        }
        let admin = user(Role::PlatformAdmin, &TenantId::platform());
        assert_eq!(admin.tenant(Some(other.clone())).unwrap(), other);
        assert_eq!(admin.tenant(None).unwrap(), TenantId::platform());
        admin.authorize(Action::ManageCredentials, &other).unwrap();
    }

    #[test]
    fn a_role_outside_the_matrix_is_forbidden_in_its_own_tenant() {
        let own = TenantId::generate();
        let manager = user(Role::TenantManager, &own);
        assert!(matches!(manager.authorize(Action::ManageUsers, &own), Err(ServiceError::Forbidden(_))));
        assert!(matches!(manager.authorize_platform(Action::ManageTenants), Err(ServiceError::Forbidden(_))));
        assert!(matches!(
            user(Role::TenantAdmin, &own).may_grant(Role::PlatformAdmin),
            Err(ServiceError::Forbidden(_))
        ));
        Caller::operator().authorize(Action::ManageTenants, &own).unwrap();
        assert!(Caller::operator().tenant(None).is_err(), "the operator always names the tenant");
    }
}
