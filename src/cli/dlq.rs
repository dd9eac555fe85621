//! `kamshub dlq list | peek | redrive`

use super::output::{Format, print};
use super::{CliError, parse_with};
use crate::app::App;
use crate::domain::{Actor, TenantId};
use crate::queue::QueueName;
use crate::service::dlq;
use crate::service::redrive::{self, Progress, RedriveOptions};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

/// `kamshub dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Each queue and its DLQ: messages waiting and in flight (approximate on SQS) and the oldest
    /// message's age (embedded queues; SQS tells it only through CloudWatch).
    List,
    /// Show DLQ messages with their tenant, channel, group, key, receive count, the reason their
    /// last attempt failed, and age, without taking them.
    Peek {
        /// Which DLQ: that of `incoming` or of `send`.
        #[arg(value_enum)]
        queue: SourceQueue,
        /// At most this many messages.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Only this tenant's messages.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: Option<TenantId>,
    },
    /// Move DLQ messages back to their source queue, in order within each conversation, keeping
    /// their group (audited). Asks first unless --yes; refuses while another redrive of the same
    /// queue runs.
    Redrive {
        /// Which DLQ: that of `incoming` or of `send`.
        #[arg(value_enum)]
        queue: SourceQueue,
        /// Count what would move, per tenant and reason; move nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this tenant's messages.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: Option<TenantId>,
        /// Move at most this many.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// At most this many messages per second.
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// A source queue, named by the DLQ commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceQueue {
    /// Webhook events for the processor.
    Incoming,
    /// Replies for the sender.
    Send,
    /// Webhook deliveries for the webhook sender.
    Deliveries,
}

impl From<SourceQueue> for QueueName {
    fn from(q: SourceQueue) -> Self {
        match q {
            SourceQueue::Incoming => QueueName::Incoming,
            SourceQueue::Send => QueueName::Send,
            SourceQueue::Deliveries => QueueName::Deliveries,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("`{s}` is not a positive number of messages per second")),
    }
}

pub(crate) async fn run(app: &App, format: Format, command: DlqCommand) -> Result<(), CliError> {
    match command {
        DlqCommand::List => print(format, &dlq::list(app).await?),
        DlqCommand::Peek { queue, limit, tenant } => {
            let peeked = dlq::peek(app, queue.into(), limit as usize, tenant.as_ref()).await?;
            print(format, &peeked.messages)?;
            if peeked.hidden > 0 {
                eprintln!(
                    "{} of the {} messages in the DLQ are not shown: SQS hands out a conversation's later messages \
                     only once its earlier ones leave the queue",
                    peeked.hidden, peeked.depth
                );
            }
            Ok(())
        }
        DlqCommand::Redrive { queue, dry_run: true, tenant, max, .. } => {
            print(format, &dlq::dry_run(app, queue.into(), tenant.as_ref(), max).await?)
        }
        DlqCommand::Redrive { queue, dry_run: false, tenant, max, rate, yes } => {
            let options = RedriveOptions { tenant, max, rate };
            if !yes {
                confirm(app, queue.into(), &options).await?;
            }
            let bar = Bar::new();
            let summary = redrive::redrive(app, &Actor::cli_operator(), queue.into(), &options, &bar).await?;
            bar.finish();
            print(format, &summary)?;
            match summary.error {
                Some(why) => Err(CliError::failed(format!("redrive stopped early: {why}"))),
                None if summary.failed > 0 => {
                    Err(CliError::failed(format!("{} messages could not be moved", summary.failed)))
                }
                None => Ok(()),
            }
        }
    }
}

/// Asks on the terminal before a bulk move; anything but `y`/`yes` (or no answer) aborts.
async fn confirm(app: &App, source: QueueName, options: &RedriveOptions) -> Result<(), CliError> {
    let dlq_name = source.dlq().expect("a source queue has a DLQ");
    let depth = app.queue().await?.depth(dlq_name).await.map_err(|e| CliError::failed(e.to_string()))?;
    let mut count = depth.visible + depth.in_flight;
    if let Some(max) = options.max {
        count = count.min(max);
    }
    let whose = options.tenant.as_ref().map_or_else(String::new, |t| format!(" of tenant {t}"));
    eprint!("Move up to {count} messages{whose} from {dlq_name} back to {source}? [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::failed("aborted; nothing moved (--yes skips this question)")),
    }
}

/// An indicatif progress bar on a terminal; nothing (but notes, once each) elsewhere.
struct Bar {
    bar: Option<ProgressBar>,
    last_note: Mutex<String>,
}

impl Bar {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} moved ({per_sec}) {msg}",
                )
                .expect("a valid template"),
            );
            bar
        });
        Self { bar, last_note: Mutex::new(String::new()) }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn begin(&self, estimate: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(estimate);
        }
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_owned()),
            None => {
                let mut last = self.last_note.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *last != message {
                    eprintln!("{message}");
                    *last = message.to_owned();
                }
            }
        }
    }
}
