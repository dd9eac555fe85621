//! A channel: one Telegram bot or one Messenger page connected by a tenant.

use super::{ChannelId, TenantId, ValidationError};
use crate::sealing::Sealed;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// Which provider a channel talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A Telegram bot (Bot API token).
    Telegram,
    /// A Meta Messenger page (page access token).
    Messenger,
}

impl ChannelKind {
    /// The wire name (`telegram`, `messenger`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Telegram => "telegram",
            ChannelKind::Messenger => "messenger",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "telegram" => Ok(ChannelKind::Telegram),
            "messenger" => Ok(ChannelKind::Messenger),
            _ => Err(ValidationError::new("channel type", format!("`{s}` is not one of telegram, messenger"))),
        }
    }
}

/// A channel's name as the tenant's staff see it: 1 to 100 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims and checks a name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        let len = s.chars().count();
        if len == 0 || len > 100 {
            return Err(ValidationError::new("display name", "must be 1 to 100 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(ValidationError::new("display name", "must not hold control characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The provider's id for the channel: the bot's username (Telegram) or the page id (Messenger).
/// Unique per kind among active channels, so one bot or page feeds one inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ExternalId(String);

impl ExternalId {
    /// A Telegram bot username as `getMe` returns it.
    pub fn telegram_username(s: &str) -> Result<Self, ValidationError> {
        let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(ValidationError::new("bot username", format!("`{s}` is not a bot username")));
        }
        Ok(Self(s.to_owned()))
    }

    /// A Messenger page id: digits only.
    pub fn page_id(s: &str) -> Result<Self, ValidationError> {
        let s = s.trim();
        if !(1..=32).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new("page id", format!("`{s}` is not a numeric page id")));
        }
        Ok(Self(s.to_owned()))
    }

    /// Rebuilds a value the store wrote (already checked when it was created).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a channel's credentials still work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelHealth {
    /// No credential problem seen.
    #[default]
    Ok,
    /// The provider refused the token: `channel rotate-credentials` is needed.
    NeedsReauth,
}

impl ChannelHealth {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelHealth::Ok => "ok",
            ChannelHealth::NeedsReauth => "needs_reauth",
        }
    }
}

impl FromStr for ChannelHealth {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(ChannelHealth::Ok),
            "needs_reauth" => Ok(ChannelHealth::NeedsReauth),
            _ => Err(ValidationError::new("channel health", format!("`{s}` is not ok or needs_reauth"))),
        }
    }
}

/// A connected bot or page. Its credentials and webhook secret are sealed: they are decrypted only
/// at the moment a provider call or a webhook check needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Stable id, also the last segment of the Telegram webhook URL.
    pub id: ChannelId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Provider.
    pub kind: ChannelKind,
    /// Name shown to staff.
    pub display_name: DisplayName,
    /// Bot username or page id.
    pub external_id: ExternalId,
    /// Bot token or page access token, sealed under the master key.
    pub credentials: Sealed,
    /// Secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`, sealed. None for Messenger,
    /// whose webhooks are signed with the app secret instead.
    pub webhook_secret: Option<Sealed>,
    /// Inactive channels still ingest but are hidden from the inbox; only active ones claim their
    /// bot or page.
    pub is_active: bool,
    /// Whether the provider still accepts its credentials.
    pub health: ChannelHealth,
    /// Greeting sent automatically on the first message of a new conversation.
    pub auto_reply: Option<String>,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}
