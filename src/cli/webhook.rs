//! `kamshub webhook add | list | show | enable | disable | remove | deliveries | replay`: a
//! tenant's outgoing webhook endpoints, over `service::webhooks`.

use super::output::{Format, print};
use super::{CliError, collect, parse_with};
use crate::app::App;
use crate::domain::{EventId, EventType, OutboxId, OutboxStatus, TenantId, WebhookId};
use crate::service::access::Caller;
use crate::service::webhooks::{self, NewWebhook, Replay, WebhookChange};
use clap::{ArgGroup, Subcommand};

/// `kamshub webhook …`
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register an endpoint; prints its signing secret, this once.
    Add {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// Where deliveries go: an https URL on a public address.
        #[arg(long)]
        url: String,
        /// An event type to deliver (repeat for several; none: every type), e.g.
        /// `--event message.received --event reply.failed`.
        #[arg(long = "event", value_name = "TYPE", value_parser = parse_with(|s: &str| s.parse::<EventType>()))]
        events: Vec<EventType>,
        /// What you call it.
        #[arg(long)]
        description: Option<String>,
    },
    /// List a tenant's endpoints with their health.
    List {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Show one endpoint with its health.
    Show {
        /// Webhook id.
        #[arg(value_parser = parse_with(WebhookId::parse))]
        webhook: WebhookId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Turn deliveries back on (clears the failure count; replay what it missed).
    Enable {
        /// Webhook id.
        #[arg(value_parser = parse_with(WebhookId::parse))]
        webhook: WebhookId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Turn deliveries off.
    Disable {
        /// Webhook id.
        #[arg(value_parser = parse_with(WebhookId::parse))]
        webhook: WebhookId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// Remove an endpoint (its deliveries stay listed; pending ones are not made).
    Remove {
        /// Webhook id.
        #[arg(value_parser = parse_with(WebhookId::parse))]
        webhook: WebhookId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
    /// List an endpoint's deliveries, newest first: status, attempts, last error or answer.
    Deliveries {
        /// Webhook id.
        #[arg(value_parser = parse_with(WebhookId::parse))]
        webhook: WebhookId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// Only deliveries in this status (PENDING, ENQUEUED, SENDING, SENT, FAILED).
        #[arg(long, value_parser = parse_with(|s: &str| s.parse::<OutboxStatus>()))]
        status: Option<OutboxStatus>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Deliver events again, as new deliveries: one delivery's event, or every event from an id on.
    #[command(group(ArgGroup::new("what").required(true).args(["delivery", "from_event"])))]
    Replay {
        /// Webhook id.
        #[arg(value_parser = parse_with(WebhookId::parse))]
        webhook: WebhookId,
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// Replay this delivery's event.
        #[arg(long, value_parser = parse_with(OutboxId::parse))]
        delivery: Option<OutboxId>,
        /// Replay every event from this id on that the endpoint asks for.
        #[arg(long, value_parser = parse_with(EventId::parse))]
        from_event: Option<EventId>,
    },
}

pub(crate) async fn run(app: &App, format: Format, command: WebhookCommand) -> Result<(), CliError> {
    let caller = &Caller::operator();
    match command {
        WebhookCommand::Add { tenant, url, events, description } => {
            let created = webhooks::create(app, caller, &tenant, NewWebhook { url, event_types: events, description });
            let created = created.await?;
            if format == Format::Table {
                eprintln!("the signing secret is shown this once: store it now");
            }
            print(format, &created)
        }
        WebhookCommand::List { tenant } => {
            let tenant = &tenant;
            let all = collect(u32::MAX, |page| async move { webhooks::list(app, caller, tenant, &page).await }).await?;
            print(format, &all)
        }
        WebhookCommand::Show { webhook, tenant } => {
            print(format, &webhooks::get(app, caller, &tenant, &webhook).await?)
        }
        WebhookCommand::Enable { webhook, tenant } => {
            let change = WebhookChange { enabled: Some(true), ..WebhookChange::default() };
            print(format, &webhooks::update(app, caller, &tenant, &webhook, change).await?)
        }
        WebhookCommand::Disable { webhook, tenant } => {
            let change = WebhookChange { enabled: Some(false), ..WebhookChange::default() };
            print(format, &webhooks::update(app, caller, &tenant, &webhook, change).await?)
        }
        WebhookCommand::Remove { webhook, tenant } => {
            webhooks::remove(app, caller, &tenant, &webhook).await?;
            print(format, &serde_json::json!({"removed": webhook}))
        }
        WebhookCommand::Deliveries { webhook, tenant, status, limit } => {
            let all = collect(limit, |page| {
                let (tenant, webhook) = (&tenant, &webhook);
                async move { webhooks::deliveries(app, caller, tenant, webhook, status, &page).await }
            })
            .await?;
            print(format, &all)
        }
        WebhookCommand::Replay { webhook, tenant, delivery, from_event } => {
            let what = match (delivery, from_event) {
                (Some(delivery), _) => Replay::Delivery(delivery),
                (None, Some(from)) if from.get() >= 1 => Replay::FromEvent(from),
                _ => return Err(CliError::usage("--from-event must be at least 1")),
            };
            print(format, &webhooks::replay(app, caller, &tenant, &webhook, what).await?)
        }
    }
}
