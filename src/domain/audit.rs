//! Audit log entries: who changed what, when.

use super::{AuditId, TenantId};
use std::fmt;
use time::OffsetDateTime;

/// Who made a change: an operator at the CLI or a signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An operator running the CLI, named by the OS user.
    Cli(String),
    /// A user of the HTTP API, by email.
    User(String),
    /// Whoever presented the configured bootstrap token to `POST /platform/bootstrap`.
    BootstrapToken,
}

impl Actor {
    /// The operator running this process, from `$USER` (or `unknown`).
    pub fn cli_operator() -> Self {
        Actor::Cli(std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned()))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Cli(who) => write!(f, "cli:{who}"),
            Actor::User(who) => write!(f, "user:{who}"),
            Actor::BootstrapToken => f.write_str("http:bootstrap-token"),
        }
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Unique, time-ordered id.
    pub id: AuditId,
    /// The tenant the change touched (`platform` for platform-level changes).
    pub tenant_id: TenantId,
    /// Who made it, as `cli:NAME` or `user:EMAIL`.
    pub actor: String,
    /// What was done, as `noun.verb` (`channel.add`, `user.invite`, ...).
    pub action: String,
    /// The id of what was changed.
    pub target: String,
    /// Extra facts about the change. Never holds a secret.
    pub details: serde_json::Value,
    /// When it happened.
    pub at: OffsetDateTime,
}

impl AuditEntry {
    /// A new entry stamped now.
    pub fn new(
        actor: &Actor,
        tenant_id: &TenantId,
        action: &str,
        target: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        Self {
            id: AuditId::generate(),
            tenant_id: tenant_id.clone(),
            actor: actor.to_string(),
            action: action.to_owned(),
            target: target.into(),
            details,
            at: super::now(),
        }
    }
}
