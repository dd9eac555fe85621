//! A tenant: one company using kamshub.

use super::{TenantId, ValidationError};
use serde::Serialize;
use std::fmt;
use time::OffsetDateTime;

/// A tenant's display name: 1 to 100 characters, trimmed. Unique ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    /// Trims and checks a name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        let len = s.chars().count();
        if len == 0 || len > 100 {
            return Err(ValidationError::new("tenant name", "must be 1 to 100 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::new("tenant name", "must not hold control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is checked on: two names differing only in case are the same tenant.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One company.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Stable id, printed by `tenant create` and used by every other command.
    pub id: TenantId,
    /// What people call it.
    pub name: TenantName,
    /// When it was created.
    pub created_at: OffsetDateTime,
}
