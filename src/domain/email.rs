//! A validated, lower-cased email address: the sign-in name of a user.

use super::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An email address, trimmed and lower-cased so that one person has one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` with no spaces, at most 254 characters.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim().to_lowercase();
        let invalid = |reason: &str| Err(ValidationError::new("email", format!("`{s}` {reason}")));
        if s.len() > 254 {
            return invalid("is longer than 254 characters");
        }
        let Some((local, domain)) = s.split_once('@') else {
            return invalid("has no `@`");
        };
        if local.is_empty() || local.len() > 64 {
            return invalid("needs 1 to 64 characters before the `@`");
        }
        if domain.contains('@') {
            return invalid("has more than one `@`");
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            return invalid("needs a domain such as example.com after the `@`");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c)) {
            return invalid("holds a space or a character not allowed in an address");
        }
        Ok(Self(s))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_spaces() {
        assert_eq!(Email::parse("  Ops@Example.COM ").unwrap().as_str(), "ops@example.com");
    }

    #[test]
    fn rejects_malformed_addresses_with_the_reason() {
        for bad in ["", "no-at", "@example.com", "a@b", "a@@b.com", "a b@c.com", "a@b..com"] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.what, "email", "{bad}");
        }
    }
}
