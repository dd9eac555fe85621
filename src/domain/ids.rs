//! Opaque identifiers. Each is a newtype built only by `generate` or `parse`, so an id that reaches
//! a service or a store has already been checked.

use super::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id accepted. SQS limits `MessageGroupId` (`tenant:channel:thread`) to 128 characters,
/// so tenant and channel ids stay well under half of that.
const MAX_ID_LEN: usize = 48;

pub(crate) fn check_id(what: &'static str, s: &str) -> Result<(), ValidationError> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(ValidationError::new(what, format!("must be 1 to {MAX_ID_LEN} characters")));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        return Err(ValidationError::new(what, format!("`{s}` may hold only a-z, 0-9, `_` and `-`")));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $what:literal, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(format!(concat!($prefix, "_{}"), uuid::Uuid::now_v7().simple()))
            }

            /// Checks an id that came from outside (a flag, a path, a stored row).
            pub fn parse(s: &str) -> Result<Self, $crate::domain::ValidationError> {
                $crate::domain::ids::check_id($what, s)?;
                Ok(Self(s.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                $crate::domain::ids::check_id($what, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

pub(crate) use id_type;

id_type!(
    /// A tenant (one company). Every read and write of tenant data is scoped by one.
    TenantId, "tenant id", "tnt"
);
id_type!(
    /// A connected Telegram bot or Messenger page; appears in webhook URLs.
    ChannelId, "channel id", "chn"
);
id_type!(
    /// An audit log entry.
    AuditId, "audit id", "aud"
);

impl TenantId {
    /// The tenant that holds the platform admins, created by `bootstrap`.
    pub fn platform() -> Self {
        Self("platform".to_owned())
    }

    /// Whether this is the platform tenant.
    pub fn is_platform(&self) -> bool {
        self.0 == "platform"
    }
}

/// A user's identity-provider subject (`sub`): a UUID from Cognito, or one the local identity mints.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Checks a subject received from an identity provider or the store.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        if s.is_empty() || s.len() > 128 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ValidationError::new("user id", "must be 1 to 128 visible characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A fresh random subject, for the local identity.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UserId {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_carry_their_prefix() {
        let id = ChannelId::generate();
        assert!(id.as_str().starts_with("chn_"));
        assert_eq!(ChannelId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn ids_reject_path_tricks_and_oversize_values() {
        assert!(TenantId::parse("../etc").is_err());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse(&"a".repeat(49)).is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("platform").unwrap().is_platform());
    }
}
