//! `kamshub queues …`: sets up the SQS FIFO queues; the embedded queues need no step.

use super::CliError;
use super::output::{Format, print};
use crate::app::App;
use crate::config::QueueKind;
use crate::queue::sqs::SqsQueue;
use clap::Subcommand;
use serde::Serialize;

/// `kamshub queues …`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Create the six FIFO queues (incoming, send, deliveries and a DLQ for each, each DLQ before
    /// its source) with the configured redrive policy and visibility timeout, or update existing
    /// ones to match. Safe to run again.
    Init,
}

/// One queue in the `init` report (`-o json`: `[{queue, name, url, status}]`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueInitView {
    /// `incoming`, `incoming-dlq`, `send`, `send-dlq`, `deliveries` or `deliveries-dlq`.
    queue: String,
    /// Full SQS name.
    name: String,
    /// Queue URL.
    url: String,
    /// `created`, `exists` or `updated`.
    status: &'static str,
}

/// Runs a `queues` subcommand.
pub(crate) async fn run(app: &App, format: Format, command: QueuesCommand) -> Result<(), CliError> {
    match command {
        QueuesCommand::Init => init(app, format).await,
    }
}

async fn init(app: &App, format: Format) -> Result<(), CliError> {
    let settings = &app.settings.queue;
    if settings.kind == QueueKind::Embedded {
        let note = format!(
            "embedded queues need no init step: they are created in {} on first use",
            app.settings.data_dir.join("queues.sqlite3").display()
        );
        return match format {
            Format::Table => {
                println!("{note}");
                Ok(())
            }
            Format::Json => {
                eprintln!("{note}");
                print(format, &Vec::<QueueInitView>::new())
            }
        };
    }
    let failed = |e: crate::queue::QueueError| CliError::failed(e.to_string());
    let queues = SqsQueue::connect(settings).await.map_err(failed)?.with_limits(app.settings.receive_limits());
    let report = queues.init().await.map_err(failed)?;
    let views: Vec<QueueInitView> = report
        .into_iter()
        .map(|q| QueueInitView { queue: q.queue.to_string(), name: q.name, url: q.url, status: q.status.as_str() })
        .collect();
    print(format, &views)
}
