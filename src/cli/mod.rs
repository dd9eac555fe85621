//! The `kamshub` command line: parse, build the app from settings, call a service, print the
//! result as a table (people) or JSON (scripts). Exit 0 ok, 1 operation failed, 2 usage/config.

mod channel;
mod conversation;
mod dlq;
mod docs;
mod doctor;
mod onboarding;
mod outbox;
mod output;
mod queues;
mod webhook;

use crate::app::App;
use crate::config::{FlagOverrides, LogFormat, Settings};
use crate::service::ServiceError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use output::Format;

/// kamshub: a multi-tenant unified inbox for Telegram bots and Messenger pages.
#[derive(Debug, Parser)]
#[command(name = "kamshub", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: $KAMSHUB_CONFIG, else ./kamshub.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Data directory for the embedded backends (overrides KAMSHUB_DATA_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP (webhooks, API, health) and the pipeline loops.
    Serve {
        /// Roles to run, comma-separated (default: all), so roles can run on separate hosts.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = crate::daemon::Role::ALL)]
        roles: Vec<crate::daemon::Role>,
    },
    /// Create the first platform admin (tenant `platform`). Fails once one exists.
    Bootstrap(onboarding::BootstrapArgs),
    /// Create, list and show tenants.
    #[command(subcommand)]
    Tenant(onboarding::TenantCommand),
    /// Invite and list users.
    #[command(subcommand)]
    User(onboarding::UserCommand),
    /// Connect and manage Telegram bots and Messenger pages.
    #[command(subcommand)]
    Channel(channel::ChannelCommand),
    /// List and show a tenant's conversations.
    #[command(subcommand)]
    Conversation(conversation::ConversationCommand),
    /// Queue replies.
    #[command(subcommand)]
    Message(outbox::MessageCommand),
    /// Inspect, show and retry outbox items.
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// Dead-letter queues: list depths, peek at what is stuck and why, redrive it.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Outgoing webhooks: register endpoints, see their health and deliveries, replay events.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Create the SQS queues and their redrive policies (embedded queues need none).
    #[command(subcommand)]
    Queues(queues::QueuesCommand),
    /// Check the deployment: configuration, store, queues, identity, master key, providers;
    /// OK/WARN/FAIL with the fix for each; exit 1 on any FAIL.
    Doctor,
    /// Print a shell completion script.
    Completions {
        /// Shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (kamshub.1 and one per subcommand) into a directory.
    Man {
        /// Where to write the pages.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
}

/// Exit codes, as scripts rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked.
    Ok = 0,
    /// The operation failed (not found, conflict, provider refused, backend down).
    Failed = 1,
    /// The command line or the configuration is wrong.
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// An error on the way out of a command, with the exit code it earns.
pub(crate) struct CliError {
    exit: Exit,
    message: String,
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self { exit: Exit::Usage, message: message.into() }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self { exit: Exit::Failed, message: message.into() }
    }
}

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        CliError::failed(e.to_string())
    }
}

impl From<crate::app::AppError> for CliError {
    fn from(e: crate::app::AppError) -> Self {
        CliError::failed(e.to_string())
    }
}

/// Parses the process arguments, runs the command, and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Exit::Usage.into() } else { Exit::Ok.into() };
        }
    };
    let outcome = match &cli.command {
        Command::Completions { shell } => {
            init_logging(&cli, LogFormat::Text);
            docs::completions(*shell)
        }
        Command::Man { out_dir } => {
            init_logging(&cli, LogFormat::Text);
            docs::man(out_dir)
        }
        _ => {
            let flags = FlagOverrides { data_dir: cli.data_dir.clone() };
            match Settings::load(cli.config.as_deref(), &flags) {
                Ok(settings) => {
                    init_logging(&cli, settings.log.format);
                    run(cli, settings)
                }
                Err(e) => Err(CliError::usage(e.to_string())),
            }
        }
    };
    match outcome {
        Ok(()) => Exit::Ok.into(),
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.exit.into()
        }
    }
}

/// Logs go to stderr: JSON lines when `[log] format = "json"`, else text, coloured only on a
/// terminal and never under `NO_COLOR` (journald and files get plain lines). The level is
/// `KAMSHUB_LOG` if set, else `-v`/`-vv`, else `info` for `serve` and `warn` for the rest.
fn init_logging(cli: &Cli, format: LogFormat) {
    let default = match (&cli.command, cli.verbose) {
        (_, 2..) => "debug",
        (Command::Serve { .. }, _) | (_, 1) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAMSHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_ansi(colour_logs()).try_init(),
    };
}

/// Colour only for a person at a terminal who has not asked for none (<https://no-color.org>).
fn colour_logs() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

fn run(cli: Cli, settings: Settings) -> Result<(), CliError> {
    let app = App::new(settings);
    let format = cli.output;
    if let Command::Serve { roles } = &cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
        return runtime.block_on(crate::daemon::run(app, roles)).map_err(|e| CliError::failed(e.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(async {
        match cli.command {
            Command::Bootstrap(args) => onboarding::bootstrap(&app, format, args).await,
            Command::Tenant(command) => onboarding::tenant(&app, format, command).await,
            Command::User(command) => onboarding::user(&app, format, command).await,
            Command::Channel(command) => channel::run(&app, format, command).await,
            Command::Queues(command) => queues::run(&app, format, command).await,
            Command::Conversation(command) => conversation::run(&app, format, command).await,
            Command::Message(command) => outbox::message(&app, format, command).await,
            Command::Outbox(command) => outbox::run(&app, format, command).await,
            Command::Dlq(command) => dlq::run(&app, format, command).await,
            Command::Doctor => {
                let flags = FlagOverrides { data_dir: cli.data_dir.clone() };
                let provenance = crate::config::Provenance::read(cli.config.as_deref(), &flags)
                    .map_err(|e| CliError::usage(e.to_string()))?;
                doctor::run(&app, format, &provenance).await
            }
            Command::Webhook(command) => webhook::run(&app, format, command).await,
            Command::Serve { .. } | Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        }
    })
}

/// Reads a secret given on the command line; `-` reads one line from standard input instead,
/// which keeps it out of the process list and shell history.
pub(crate) fn secret_arg(value: &str, what: &str) -> Result<secrecy::SecretString, CliError> {
    if value != "-" {
        return Ok(secrecy::SecretString::from(value.to_owned()));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("cannot read {what} from stdin: {e}")))?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(CliError::usage(format!("{what} read from stdin is empty")));
    }
    Ok(secrecy::SecretString::from(line.to_owned()))
}

/// Every item of a paged listing, up to `limit`: commands print whole lists, a page at a time.
pub(crate) async fn collect<T, F, Fut>(limit: u32, mut fetch: F) -> Result<Vec<T>, ServiceError>
where
    F: FnMut(crate::service::page::PageRequest) -> Fut,
    Fut: std::future::Future<Output = crate::service::ServiceResult<crate::service::page::Page<T>>>,
{
    use crate::service::page::{Cursor, MAX_LIMIT, PageRequest};
    let mut items = Vec::new();
    let mut after = None;
    while items.len() < limit as usize {
        let want = (limit as usize - items.len()).min(MAX_LIMIT as usize) as u32;
        let page = fetch(PageRequest { limit: want, after: after.take() }).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => after = Some(Cursor::parse(&next).expect("a cursor the service issued parses")),
            None => break,
        }
    }
    Ok(items)
}

/// clap value parser for domain newtypes with a `parse(&str)`.
pub(crate) fn parse_with<T>(
    f: fn(&str) -> Result<T, crate::domain::ValidationError>,
) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |s| f(s).map_err(|e| e.to_string())
}
