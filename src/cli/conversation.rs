//! `kamshub conversation …`

use super::output::{Format, print};
use super::{CliError, collect, parse_with};
use crate::app::App;
use crate::domain::{ChannelId, ConversationId, TenantId};
use crate::service::access::Caller;
use crate::service::inbox::{self, ConversationFilter};
use clap::Subcommand;

/// `kamshub conversation …`
#[derive(Debug, Subcommand)]
pub enum ConversationCommand {
    /// List a tenant's conversations, most recent first.
    List {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// Only this channel's conversations.
        #[arg(long, value_parser = parse_with(ChannelId::parse))]
        channel: Option<ChannelId>,
        /// Also the conversations of inactive channels.
        #[arg(long)]
        include_inactive: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show a conversation with its messages in provider order.
    Show {
        /// Conversation id.
        #[arg(value_parser = parse_with(ConversationId::parse))]
        conversation: ConversationId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// At most this many of the newest messages.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
}

pub(crate) async fn run(app: &App, format: Format, command: ConversationCommand) -> Result<(), CliError> {
    let caller = Caller::operator();
    match command {
        ConversationCommand::List { tenant, channel, include_inactive, limit } => {
            let filter = ConversationFilter { channel, include_inactive };
            let all = collect(limit, |page| {
                let (caller, tenant, filter) = (&caller, &tenant, &filter);
                async move { inbox::list_conversations(app, caller, tenant, filter, &page).await }
            })
            .await?;
            print(format, &all)
        }
        ConversationCommand::Show { conversation, tenant, limit } => {
            let view = inbox::show_conversation(app, &caller, &tenant, &conversation, limit).await?;
            match format {
                Format::Json => print(format, &view),
                Format::Table => {
                    print(format, &view.conversation)?;
                    print(format, &view.messages)
                }
            }
        }
    }
}
