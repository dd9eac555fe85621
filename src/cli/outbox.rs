//! `kamshub message send` and `kamshub outbox …`

use super::output::{Format, print};
use super::{CliError, parse_with};
use crate::app::App;
use crate::domain::{Actor, ConversationId, OutboxId, OutboxStatus, SendId, TenantId};
use crate::service::outbox;
use clap::{Args, Subcommand};

/// `kamshub message send`
#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Queue a reply in a conversation (sent by `kamshub serve`'s relay and sender).
    Send(SendArgs),
}

/// Arguments of `message send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Tenant id.
    #[arg(long, value_parser = parse_with(TenantId::parse))]
    tenant: TenantId,
    /// Conversation id.
    #[arg(long, value_parser = parse_with(ConversationId::parse))]
    conversation: ConversationId,
    /// The text (split into parts if longer than the provider allows).
    #[arg(long)]
    text: String,
    /// Makes the send idempotent: the same key and text never send twice. Keys starting with
    /// `kamshub:` are reserved for kamshub's own.
    #[arg(long, value_parser = parse_with(SendId::parse))]
    idempotency_key: Option<SendId>,
}

/// `kamshub outbox …`
#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List outbox items, newest first.
    Inspect {
        /// Only this tenant's items.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: Option<TenantId>,
        /// Only items in this status (PENDING, ENQUEUED, SENDING, SENT, FAILED, UNKNOWN).
        #[arg(long, value_parser = parse_with(|s: &str| s.parse::<OutboxStatus>()))]
        status: Option<OutboxStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show one item in full.
    Show {
        /// Outbox id.
        #[arg(value_parser = parse_with(OutboxId::parse))]
        outbox: OutboxId,
    },
    /// Send a FAILED or UNKNOWN item again (audited; for UNKNOWN this accepts a possible duplicate).
    Retry {
        /// Outbox id.
        #[arg(value_parser = parse_with(OutboxId::parse))]
        outbox: OutboxId,
    },
}

pub(crate) async fn message(app: &App, format: Format, command: MessageCommand) -> Result<(), CliError> {
    let MessageCommand::Send(args) = command;
    let view = outbox::send_reply(app, &args.tenant, &args.conversation, &args.text, args.idempotency_key).await?;
    print(format, &view)
}

pub(crate) async fn run(app: &App, format: Format, command: OutboxCommand) -> Result<(), CliError> {
    match command {
        OutboxCommand::Inspect { tenant, status, limit } => {
            print(format, &outbox::inspect(app, tenant.as_ref(), status, limit).await?)
        }
        OutboxCommand::Show { outbox: id } => print(format, &outbox::show(app, &id).await?),
        OutboxCommand::Retry { outbox: id } => print(format, &outbox::retry(app, &Actor::cli_operator(), &id).await?),
    }
}
