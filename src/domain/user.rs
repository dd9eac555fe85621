//! The store's mirror of a user held by the identity provider.

use super::{Email, Role, TenantId, UserId};
use time::OffsetDateTime;

/// A user: belongs to exactly one tenant and holds one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The identity provider's subject.
    pub id: UserId,
    /// Sign-in name, unique across the platform.
    pub email: Email,
    /// The tenant the user belongs to.
    pub tenant_id: TenantId,
    /// What the user may do.
    pub role: Role,
    /// When the user was invited.
    pub created_at: OffsetDateTime,
}
