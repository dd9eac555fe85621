//! Channels: connect Telegram bots and Messenger pages, list, rename, activate, deactivate, and
//! (re-)register Telegram webhooks. Tokens are checked with the provider before anything is
//! kept, sealed before they are stored, and never returned.

use super::access::{Action, Caller};
use super::page::{Page, PageRequest, time_key};
use super::{ServiceError, ServiceResult};
use crate::app::App;
use crate::domain::{AuditEntry, Channel, ChannelId, ChannelKind, DisplayName, ExternalId, TenantId};
use crate::sealing::{MasterKey, SealContext};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rand::RngCore;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::json;

/// A channel as `channel add` and `channel list` print it. Never holds a credential.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    /// Channel id.
    pub channel_id: String,
    /// Owner.
    pub tenant_id: String,
    /// `telegram` or `messenger`.
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Name shown to staff.
    pub display_name: String,
    /// Bot username or page id.
    pub external_id: String,
    /// Whether it appears in the inbox and claims its bot or page.
    pub is_active: bool,
    /// Where the provider posts this channel's updates.
    pub webhook_url: String,
    /// `ok`, or `needs_reauth` after the provider refused the token (`channel rotate-credentials`).
    pub health: crate::domain::ChannelHealth,
    /// The greeting sent on a new conversation's first message, if one is set.
    pub auto_reply: Option<String>,
}

/// Credentials of a channel being added.
pub enum NewChannel {
    /// A Telegram bot by its token; `register_webhook` false skips `setWebhook`.
    Telegram {
        /// Bot API token.
        token: SecretString,
        /// Whether to call `setWebhook` now.
        register_webhook: bool,
    },
    /// A Messenger page by id and page access token.
    Messenger {
        /// Page id.
        page_id: ExternalId,
        /// Page access token.
        page_token: SecretString,
    },
    /// A Messenger page by id, its token taken from what a Facebook user token that manages it
    /// is handed by `/me/accounts`: nobody copies page tokens by hand.
    MessengerByUser {
        /// Page id.
        page_id: ExternalId,
        /// A Facebook user access token (used once, never stored).
        user_token: SecretString,
    },
}

/// A page a Facebook user token manages, as `channel pages` prints it. Never holds a token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageView {
    /// The page id (`pageId` of `channel add`).
    pub page_id: String,
    /// The page's name on Facebook.
    pub name: String,
}

/// A state change requested for an existing channel.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelChange {
    /// New display name.
    Rename(DisplayName),
    /// Active (true) or inactive (false).
    SetActive(bool),
    /// Greeting for new conversations (None turns it off).
    AutoReply(Option<String>),
}

/// Longest greeting accepted (Messenger's text limit, so it always goes out in one part).
pub const MAX_AUTO_REPLY_CHARS: usize = 2000;

/// Connects a bot or page to a tenant. Telegram: `getMe` names the bot, the channel is stored with
/// a fresh webhook secret, then `setWebhook` points the bot at us. Messenger: the channel is stored,
/// then our app is subscribed to the page. If the provider step fails the channel is removed again.
pub async fn add(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    display_name: DisplayName,
    new: NewChannel,
) -> ServiceResult<ChannelView> {
    caller.authorize(Action::ManageCredentials, tenant_id)?;
    if tenant_id.is_platform() {
        return Err(ServiceError::Invalid(
            "the platform tenant holds only platform admins: connect channels to a tenant".into(),
        ));
    }
    let store = app.store().await?;
    store.get_tenant(tenant_id).await?;
    let via_user_token = matches!(new, NewChannel::MessengerByUser { .. });
    let new = match new {
        NewChannel::MessengerByUser { page_id, user_token } => {
            let page_token = page_token_from_user(app, &page_id, &user_token).await?;
            NewChannel::Messenger { page_id, page_token }
        }
        other => other,
    };
    let key = app.master_key()?;
    let id = ChannelId::generate();
    let now = crate::domain::now();
    let (kind, external_id, token, webhook_secret) = match &new {
        NewChannel::Telegram { token, .. } => {
            let bot = app.telegram().get_me(token).await?;
            let username = ExternalId::telegram_username(&bot.username)
                .map_err(|e| ServiceError::Internal(format!("getMe answered an unusable username: {e}")))?;
            (ChannelKind::Telegram, username, token, Some(new_webhook_secret()))
        }
        NewChannel::Messenger { page_id, page_token } => (ChannelKind::Messenger, page_id.clone(), page_token, None),
        NewChannel::MessengerByUser { .. } => unreachable!("resolved to a page token above"),
    };
    let channel = Channel {
        id: id.clone(),
        tenant_id: tenant_id.clone(),
        kind,
        display_name,
        external_id,
        credentials: key.seal(token, SealContext::channel_credentials(id.as_str())),
        webhook_secret: webhook_secret.as_ref().map(|s| key.seal(s, SealContext::channel_webhook_secret(id.as_str()))),
        is_active: true,
        health: Default::default(),
        auto_reply: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_channel(&channel).await?;
    let announced = match &new {
        NewChannel::Telegram { token, register_webhook: true } => {
            let secret = webhook_secret.as_ref().expect("telegram channels have a webhook secret");
            app.telegram().set_webhook(token, &webhook_url(app, &channel), secret).await
        }
        NewChannel::Telegram { register_webhook: false, .. } => Ok(()),
        NewChannel::Messenger { page_id, page_token } => {
            app.messenger().subscribe_app(page_id.as_str(), page_token).await
        }
        NewChannel::MessengerByUser { .. } => unreachable!("resolved to a page token above"),
    };
    if let Err(e) = announced {
        store.delete_channel(tenant_id, &id).await?;
        return Err(e.into());
    }
    let webhook_registered = !matches!(new, NewChannel::Telegram { register_webhook: false, .. });
    store
        .append_audit(&AuditEntry::new(
            &caller.actor(),
            tenant_id,
            "channel.add",
            id.as_str(),
            json!({
                "type": kind.as_str(),
                "externalId": channel.external_id.as_str(),
                "displayName": channel.display_name.as_str(),
                "webhookRegistered": webhook_registered,
                "pageTokenFromUserToken": via_user_token,
            }),
        ))
        .await?;
    Ok(view(app, &channel))
}

/// The Messenger pages a Facebook user token manages (`/me/accounts`, every result page), by id:
/// what `channel add --user-token` can connect. The token is used for this call only.
pub async fn messenger_pages(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    user_token: &SecretString,
    page: &PageRequest,
) -> ServiceResult<Page<PageView>> {
    caller.authorize(Action::ManageCredentials, tenant_id)?;
    app.store().await?.get_tenant(tenant_id).await?;
    let mut pages = app.messenger().managed_pages(user_token).await?;
    pages.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Page::of_sorted(pages, page, |p| p.id.clone()).map(|p| PageView { page_id: p.id, name: p.name }))
}

/// The page token `/me/accounts` hands `user_token` for `page_id`.
async fn page_token_from_user(
    app: &App,
    page_id: &ExternalId,
    user_token: &SecretString,
) -> ServiceResult<SecretString> {
    let pages = app.messenger().managed_pages(user_token).await?;
    let page = pages
        .into_iter()
        .find(|p| p.id == page_id.as_str())
        .ok_or_else(|| ServiceError::Invalid(format!("the user token does not manage page `{}`", page_id.as_str())))?;
    page.token.ok_or_else(|| {
        ServiceError::Invalid(format!(
            "Graph gave no token for page `{}`: the user needs a task on the page that allows messaging",
            page_id.as_str()
        ))
    })
}

/// The channels of a tenant, oldest first.
pub async fn list(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    page: &PageRequest,
) -> ServiceResult<Page<ChannelView>> {
    caller.authorize(Action::ReadChannels, tenant_id)?;
    let store = app.store().await?;
    store.get_tenant(tenant_id).await?;
    let channels = store.list_channels(tenant_id).await?;
    Ok(Page::of_sorted(channels, page, |c| time_key(c.created_at, c.id.as_str())).map(|c| view(app, &c)))
}

/// One channel of a tenant.
pub async fn get(app: &App, caller: &Caller, tenant_id: &TenantId, id: &ChannelId) -> ServiceResult<ChannelView> {
    caller.authorize(Action::ReadChannels, tenant_id)?;
    let channel = app.store().await?.get_channel(tenant_id, id).await?;
    Ok(view(app, &channel))
}

/// Renames, activates or deactivates a channel, or sets its greeting: every change given, in one
/// write with one audit entry. Activating fails if another active channel holds the same bot or
/// page. Renaming and (de)activating need [`Action::UpdateChannels`]; the greeting needs
/// [`Action::ConfigureAutoReply`].
pub async fn change(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    id: &ChannelId,
    changes: &[ChannelChange],
) -> ServiceResult<ChannelView> {
    for change in changes {
        let action = match change {
            ChannelChange::Rename(_) | ChannelChange::SetActive(_) => Action::UpdateChannels,
            ChannelChange::AutoReply(_) => Action::ConfigureAutoReply,
        };
        caller.authorize(action, tenant_id)?;
    }
    let store = app.store().await?;
    let mut channel = store.get_channel(tenant_id, id).await?;
    if changes.is_empty() {
        return Ok(view(app, &channel));
    }
    let mut applied = Vec::new();
    for change in changes {
        applied.push(apply(&mut channel, change.clone())?);
    }
    let (action, details) = match applied.len() {
        1 => applied.remove(0),
        _ => (
            "channel.update",
            json!(
                applied
                    .into_iter()
                    .map(|(action, details)| json!({"action": action, "details": details}))
                    .collect::<Vec<_>>()
            ),
        ),
    };
    channel.updated_at = crate::domain::now();
    store.update_channel(&channel, &AuditEntry::new(&caller.actor(), tenant_id, action, id.as_str(), details)).await?;
    Ok(view(app, &channel))
}

/// Applies one change to a channel in memory; returns its audit action and details.
fn apply(channel: &mut Channel, change: ChannelChange) -> ServiceResult<(&'static str, serde_json::Value)> {
    Ok(match change {
        ChannelChange::Rename(name) => {
            let details = json!({"from": channel.display_name.as_str(), "to": name.as_str()});
            channel.display_name = name;
            ("channel.rename", details)
        }
        ChannelChange::SetActive(active) => {
            channel.is_active = active;
            (if active { "channel.activate" } else { "channel.deactivate" }, json!({}))
        }
        ChannelChange::AutoReply(text) => {
            let text = text.map(|t| t.trim().to_owned());
            match &text {
                Some(t) if t.is_empty() => return Err(ServiceError::Invalid("the greeting text is empty".into())),
                Some(t) if t.chars().count() > MAX_AUTO_REPLY_CHARS => {
                    return Err(ServiceError::Invalid(format!(
                        "the greeting is longer than {MAX_AUTO_REPLY_CHARS} characters"
                    )));
                }
                _ => {}
            }
            let details = json!({"enabled": text.is_some()});
            channel.auto_reply = text;
            ("channel.auto_reply", details)
        }
    })
}

/// Registers (again) a Telegram channel's webhook with its stored token and secret: for a channel
/// added with `--no-webhook`, or after the public URL changed.
pub async fn set_webhook(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    id: &ChannelId,
) -> ServiceResult<ChannelView> {
    caller.authorize(Action::ManageCredentials, tenant_id)?;
    let store = app.store().await?;
    let channel = store.get_channel(tenant_id, id).await?;
    if channel.kind != ChannelKind::Telegram {
        return Err(ServiceError::Invalid(format!(
            "channel `{id}` is a {} channel; only Telegram channels register a webhook URL",
            channel.kind
        )));
    }
    let key = app.master_key()?;
    let token = open(&key, &channel, &channel.credentials, SealContext::channel_credentials(channel.id.as_str()))?;
    let sealed_secret = channel
        .webhook_secret
        .as_ref()
        .ok_or_else(|| ServiceError::Internal(format!("telegram channel `{id}` has no webhook secret")))?;
    let secret = open(&key, &channel, sealed_secret, SealContext::channel_webhook_secret(channel.id.as_str()))?;
    let url = webhook_url(app, &channel);
    app.telegram().set_webhook(&token, &url, &secret).await?;
    store
        .append_audit(&AuditEntry::new(
            &caller.actor(),
            tenant_id,
            "channel.set_webhook",
            id.as_str(),
            json!({"url": url}),
        ))
        .await?;
    Ok(view(app, &channel))
}

/// Replaces a channel's token, keeping its id and history. Telegram: the new token must belong
/// to the same bot (getMe), and the webhook is registered again with it; Messenger: the app is
/// subscribed again with the new page token. Clears a needs-reauth flag; audited.
pub async fn rotate_credentials(
    app: &App,
    caller: &Caller,
    tenant_id: &TenantId,
    id: &ChannelId,
    token: SecretString,
) -> ServiceResult<ChannelView> {
    caller.authorize(Action::ManageCredentials, tenant_id)?;
    let store = app.store().await?;
    let mut channel = store.get_channel(tenant_id, id).await?;
    let key = app.master_key()?;
    match channel.kind {
        ChannelKind::Telegram => {
            let bot = app.telegram().get_me(&token).await?;
            if bot.username != channel.external_id.as_str() {
                return Err(ServiceError::Invalid(format!(
                    "the new token belongs to bot `{}`, not `{}`",
                    bot.username,
                    channel.external_id.as_str()
                )));
            }
            let sealed = channel
                .webhook_secret
                .as_ref()
                .ok_or_else(|| ServiceError::Internal(format!("telegram channel `{id}` has no webhook secret")))?;
            let secret = open(&key, &channel, sealed, SealContext::channel_webhook_secret(channel.id.as_str()))?;
            // Sealed again in the current format, bound to its field.
            channel.webhook_secret = Some(key.seal(&secret, SealContext::channel_webhook_secret(channel.id.as_str())));
            app.telegram().set_webhook(&token, &webhook_url(app, &channel), &secret).await?;
        }
        ChannelKind::Messenger => app.messenger().subscribe_app(channel.external_id.as_str(), &token).await?,
    }
    channel.credentials = key.seal(&token, SealContext::channel_credentials(channel.id.as_str()));
    channel.health = crate::domain::ChannelHealth::Ok;
    channel.updated_at = crate::domain::now();
    let audit = AuditEntry::new(&caller.actor(), tenant_id, "channel.rotate_credentials", id.as_str(), json!({}));
    store.update_channel(&channel, &audit).await?;
    Ok(view(app, &channel))
}

fn open(
    key: &MasterKey,
    channel: &Channel,
    sealed: &crate::sealing::Sealed,
    context: SealContext<'_>,
) -> ServiceResult<SecretString> {
    key.open(sealed, context)
        .map_err(|e| ServiceError::Internal(format!("cannot open the credentials of channel `{}`: {e}", channel.id)))
}

/// 32 random bytes as URL-safe base64: 43 characters from Telegram's allowed `A-Za-z0-9_-`.
fn new_webhook_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(B64URL.encode(bytes))
}

fn webhook_url(app: &App, channel: &Channel) -> String {
    let base = app.settings.http.public_base();
    match channel.kind {
        ChannelKind::Telegram => format!("{base}/webhooks/telegram/{}", channel.id),
        ChannelKind::Messenger => format!("{base}/webhooks/messenger"),
    }
}

fn view(app: &App, c: &Channel) -> ChannelView {
    ChannelView {
        channel_id: c.id.to_string(),
        tenant_id: c.tenant_id.to_string(),
        kind: c.kind,
        display_name: c.display_name.as_str().to_owned(),
        external_id: c.external_id.as_str().to_owned(),
        is_active: c.is_active,
        webhook_url: webhook_url(app, c),
        health: c.health,
        auto_reply: c.auto_reply.clone(),
    }
}
