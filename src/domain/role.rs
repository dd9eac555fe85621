//! The three roles a user can hold.

use super::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a user may do. Carried as the Cognito group of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the platform: tenants, bootstrap, everything.
    PlatformAdmin,
    /// Everything inside one tenant, including users and credentials.
    TenantAdmin,
    /// Channels (rename, activate, deactivate) and the inbox of one tenant.
    TenantManager,
}

impl Role {
    /// Every role, in order of power.
    pub const ALL: [Role; 3] = [Role::PlatformAdmin, Role::TenantAdmin, Role::TenantManager];

    /// The wire name (`platform_admin`, ...), also the Cognito group name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::TenantManager => "tenant_manager",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            ValidationError::new("role", format!("`{s}` is not one of platform_admin, tenant_admin, tenant_manager"))
        })
    }
}
