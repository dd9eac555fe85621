//! `kamshub channel …`

use super::output::{Format, print};
use super::{CliError, collect, parse_with, secret_arg};
use crate::app::App;
use crate::domain::{ChannelId, ChannelKind, DisplayName, ExternalId, TenantId};
use crate::service::access::Caller;
use crate::service::channels::{self, ChannelChange, NewChannel};
use clap::Subcommand;

/// `kamshub channel …`
#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Connect a Telegram bot (--token) or a Messenger page (--page-id with --page-token or --user-token).
    Add {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// telegram or messenger.
        #[arg(long = "type", value_parser = parse_with(|s: &str| s.parse::<ChannelKind>()))]
        kind: ChannelKind,
        /// Name shown to staff.
        #[arg(long, value_parser = parse_with(DisplayName::parse))]
        display_name: DisplayName,
        /// Telegram bot token (`-` reads it from stdin).
        #[arg(long, required_if_eq("kind", "telegram"), conflicts_with_all = ["page_id", "page_token", "user_token"])]
        token: Option<String>,
        /// Skip setWebhook (register later with `channel set-webhook`).
        #[arg(long, conflicts_with_all = ["page_id", "page_token", "user_token"])]
        no_webhook: bool,
        /// Messenger page id.
        #[arg(long, required_if_eq("kind", "messenger"), value_parser = parse_with(ExternalId::page_id))]
        page_id: Option<ExternalId>,
        /// Messenger page access token (`-` reads it from stdin).
        #[arg(long, conflicts_with = "user_token")]
        page_token: Option<String>,
        /// A Facebook user access token that manages the page: its page token is taken from
        /// `/me/accounts` (`-` reads it from stdin; see `channel pages`).
        #[arg(long)]
        user_token: Option<String>,
    },
    /// List the Messenger pages a Facebook user token manages (to connect one with --user-token).
    Pages {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// A Facebook user access token (`-` reads it from stdin).
        #[arg(long)]
        user_token: String,
    },
    /// List a tenant's channels.
    List {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Rename a channel.
    Rename {
        /// Channel id.
        #[arg(value_parser = parse_with(ChannelId::parse))]
        channel: ChannelId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// New display name.
        #[arg(long, value_parser = parse_with(DisplayName::parse))]
        name: DisplayName,
    },
    /// Activate a channel (show it in the inbox again).
    Activate {
        /// Channel id.
        #[arg(value_parser = parse_with(ChannelId::parse))]
        channel: ChannelId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Deactivate a channel (it keeps ingesting, hidden from the inbox).
    Deactivate {
        /// Channel id.
        #[arg(value_parser = parse_with(ChannelId::parse))]
        channel: ChannelId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Set (--text) or turn off (--off) the greeting sent on a new conversation's first message.
    AutoReply {
        /// Channel id.
        #[arg(value_parser = parse_with(ChannelId::parse))]
        channel: ChannelId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// The greeting.
        #[arg(long, required_unless_present = "off", conflicts_with = "off")]
        text: Option<String>,
        /// Turn the greeting off.
        #[arg(long)]
        off: bool,
    },
    /// Replace a channel's token, keeping its history (`-` reads the token from stdin).
    RotateCredentials {
        /// Channel id.
        #[arg(value_parser = parse_with(ChannelId::parse))]
        channel: ChannelId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// New Telegram bot token.
        #[arg(long, required_unless_present = "page_token", conflicts_with = "page_token")]
        token: Option<String>,
        /// New Messenger page access token.
        #[arg(long)]
        page_token: Option<String>,
    },
    /// Register a Telegram channel's webhook (after --no-webhook, or a new public URL).
    SetWebhook {
        /// Channel id.
        #[arg(value_parser = parse_with(ChannelId::parse))]
        channel: ChannelId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
}

pub(crate) async fn run(app: &App, format: Format, command: ChannelCommand) -> Result<(), CliError> {
    let caller = &Caller::operator();
    let view = match command {
        ChannelCommand::Add { tenant, kind, display_name, token, no_webhook, page_id, page_token, user_token } => {
            let new = match kind {
                ChannelKind::Telegram => NewChannel::Telegram {
                    token: secret_arg(token.as_deref().expect("clap requires --token for telegram"), "bot token")?,
                    register_webhook: !no_webhook,
                },
                ChannelKind::Messenger => {
                    let page_id = page_id.expect("clap requires --page-id for messenger");
                    match (page_token, user_token) {
                        (Some(page_token), None) => {
                            NewChannel::Messenger { page_id, page_token: secret_arg(&page_token, "page token")? }
                        }
                        (None, Some(user_token)) => {
                            NewChannel::MessengerByUser { page_id, user_token: secret_arg(&user_token, "user token")? }
                        }
                        _ => return Err(CliError::usage("a messenger channel needs --page-token or --user-token")),
                    }
                }
            };
            channels::add(app, caller, &tenant, display_name, new).await?
        }
        ChannelCommand::Pages { tenant, user_token } => {
            let token = secret_arg(&user_token, "user token")?;
            let all = collect(u32::MAX, |page| {
                let (tenant, token) = (&tenant, &token);
                async move { channels::messenger_pages(app, caller, tenant, token, &page).await }
            })
            .await?;
            return print(format, &all);
        }
        ChannelCommand::List { tenant } => {
            let all = collect(u32::MAX, |page| {
                let tenant = &tenant;
                async move { channels::list(app, caller, tenant, &page).await }
            })
            .await?;
            return print(format, &all);
        }
        ChannelCommand::Rename { channel, tenant, name } => {
            channels::change(app, caller, &tenant, &channel, &[ChannelChange::Rename(name)]).await?
        }
        ChannelCommand::Activate { channel, tenant } => {
            channels::change(app, caller, &tenant, &channel, &[ChannelChange::SetActive(true)]).await?
        }
        ChannelCommand::Deactivate { channel, tenant } => {
            channels::change(app, caller, &tenant, &channel, &[ChannelChange::SetActive(false)]).await?
        }
        ChannelCommand::SetWebhook { channel, tenant } => channels::set_webhook(app, caller, &tenant, &channel).await?,
        ChannelCommand::AutoReply { channel, tenant, text, off: _ } => {
            channels::change(app, caller, &tenant, &channel, &[ChannelChange::AutoReply(text)]).await?
        }
        ChannelCommand::RotateCredentials { channel, tenant, token, page_token } => {
            let token = token.or(page_token).expect("clap requires --token or --page-token");
            let token = secret_arg(&token, "token")?;
            channels::rotate_credentials(app, caller, &tenant, &channel, token).await?
        }
    };
    print(format, &view)
}
