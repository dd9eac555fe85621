//! `kamshub message send` and `kamshub outbox …`

use super::output::{Format, print};
use super::{CliError, collect, parse_with};
use crate::app::App;
use crate::domain::{ConversationId, OutboxId, OutboxStatus, SendId, TenantId};
use crate::service::access::Caller;
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
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Send a FAILED or UNKNOWN item again (audited; for UNKNOWN this accepts a possible duplicate).
    Retry {
        /// Outbox id.
        #[arg(value_parser = parse_with(OutboxId::parse))]
        outbox: OutboxId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
}

pub(crate) async fn message(app: &App, format: Format, command: MessageCommand) -> Result<(), CliError> {
    let MessageCommand::Send(args) = command;
    let caller = Caller::operator();
    let sent =
        outbox::send_reply(app, &caller, &args.tenant, &args.conversation, &args.text, args.idempotency_key).await?;
    print(format, &sent.view)
}

pub(crate) async fn run(app: &App, format: Format, command: OutboxCommand) -> Result<(), CliError> {
    let caller = &Caller::operator();
    match command {
        OutboxCommand::Inspect { tenant, status, limit } => {
            let all = collect(limit, |page| {
                let tenant = tenant.as_ref();
                async move { outbox::inspect(app, caller, tenant, status, &page).await }
            })
            .await?;
            print(format, &all)
        }
        OutboxCommand::Show { outbox: id, tenant } => print(format, &outbox::show(app, caller, &tenant, &id).await?),
        OutboxCommand::Retry { outbox: id, tenant } => print(format, &outbox::retry(app, caller, &tenant, &id).await?),
    }
}
