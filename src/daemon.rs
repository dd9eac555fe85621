//! `kamshub serve`: opens the backends, runs the chosen roles (HTTP: API and webhooks;
//! processor, relay, sender), tells systemd when it is ready (and keeps its watchdog fed while the
//! loops make progress), and on SIGINT/SIGTERM drains: `/readyz` turns 503 for `[http]
//! drain_secs`, then it stops taking work, finishes or releases what is in flight, and exits 0.

use crate::app::App;
use crate::http::{Readiness, ServerState};
use crate::pipeline::intake::Intake;
use crate::pipeline::processor::{Processor, ProcessorConfig};
use crate::pipeline::pruner::Pruner;
use crate::pipeline::relay::{Relay, RelayConfig};
use crate::pipeline::sender::{Sender, SenderConfig, Webhooks};
use crate::queue::QueueName;
use clap::ValueEnum;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What one `serve` process runs; roles can run on separate hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Role {
    /// HTTP: webhooks, API, health.
    Http,
    /// The inbound processor loop.
    Processor,
    /// The outbox relay loop (outbox → send and deliveries queues), and the pruning of expired
    /// events.
    Relay,
    /// The sender loops (send queue → providers; deliveries queue → webhook endpoints).
    Sender,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Http, Role::Processor, Role::Relay, Role::Sender];
}

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A backend could not be opened at start.
    #[error("cannot start: {0}")]
    Start(String),
    /// The listener could not be bound or failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// A role's loop stopped (a panic that escaped its workers) while the daemon ran: the daemon
    /// stopped too, so that systemd restarts it instead of it running on without that role.
    #[error("the {0} stopped unexpectedly: {1}")]
    RoleFailed(&'static str, String),
}

/// The longest a healthy loop goes without a heartbeat: a 20 s long-poll receive, then the
/// batch it brought. A loop silent for longer than this (or than `WatchdogSec`, if longer) is
/// wedged, and the systemd watchdog pings stop.
const LONGEST_QUIET: Duration = Duration::from_secs(45);
/// How often the relay role looks for expired events.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(app: App, roles: &[Role]) -> Result<(), DaemonError> {
    // An operator's command writing the same embedded store goes before the daemon's next
    // transaction (embedded::writer::Turn): a CLI write never waits on the daemon's stream of commits.
    crate::embedded::defer_to_other_processes();
    let names: Vec<String> = roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
    tracing::info!("starting kamshub {}: {} roles={}", env!("CARGO_PKG_VERSION"), app.describe(), names.join(","));
    let listener = if roles.contains(&Role::Http) {
        let listen = app.settings.http.listen;
        Some(
            TcpListener::bind(listen)
                .await
                .map_err(|e| DaemonError::Start(format!("cannot listen on {listen}: {e}")))?,
        )
    } else {
        None
    };
    serve(Arc::new(app), listener, roles, shutdown_signal()).await
}

/// Opens the backends, then runs `roles` until `shutdown` completes: HTTP stops accepting (in-flight
/// requests finish), then the loops finish or release their in-flight messages.
pub async fn serve(
    app: Arc<App>,
    listener: Option<TcpListener>,
    roles: &[Role],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let start = |e: crate::app::AppError| DaemonError::Start(e.to_string());
    crate::metrics::install();
    let store = app.store().await.map_err(start)?;
    let queue = app.queue().await.map_err(start)?;
    let stop = CancellationToken::new();
    let readiness = Arc::new(Readiness::default());

    let failure: Arc<Mutex<Option<DaemonError>>> = Arc::default();
    let mut loops = Vec::new();
    if roles.contains(&Role::Processor) {
        let config = ProcessorConfig {
            visibility_timeout: Duration::from_secs(u64::from(app.settings.queue.visibility_timeout_secs)),
            max_attempts: app.settings.queue.max_receive_count,
            ..ProcessorConfig::default()
        };
        let processor =
            Arc::new(Processor::new(Arc::clone(&store), Arc::clone(&queue), app.providers().clone(), config));
        let watched_stats = Arc::clone(&processor);
        crate::metrics::watch_loop(QueueName::Incoming, move || watched_stats.stats().read());
        loops.push(watched("processor", &stop, &failure, processor.run(stop.clone())));
    }
    if roles.contains(&Role::Relay) {
        let relay = Arc::new(Relay::new(Arc::clone(&store), Arc::clone(&queue), RelayConfig::default()));
        loops.push(watched("relay", &stop, &failure, relay.run(stop.clone())));
        let retention = Duration::from_secs(u64::from(app.settings.events.retention_secs));
        let pruner = Arc::new(Pruner::new(Arc::clone(&store), retention, PRUNE_EVERY));
        loops.push(watched("pruner", &stop, &failure, pruner.run(stop.clone())));
    }
    if roles.contains(&Role::Sender) {
        let visibility_timeout = Duration::from_secs(u64::from(app.settings.queue.visibility_timeout_secs));
        let sender = Arc::new(Sender::new(
            Arc::clone(&store),
            Arc::clone(&queue),
            app.providers().clone(),
            app.master_key().map_err(start)?,
            SenderConfig {
                visibility_timeout,
                // The sender gives up before the queue would dead-letter the message on its own.
                max_attempts: SenderConfig::default().max_attempts.min(app.settings.queue.max_receive_count),
                ..SenderConfig::default()
            },
        ));
        let watched_stats = Arc::clone(&sender);
        crate::metrics::watch_loop(QueueName::Send, move || watched_stats.stats().read());
        loops.push(watched("sender", &stop, &failure, sender.run(stop.clone())));
        let hooks = &app.settings.webhooks;
        let policy = hooks.retry_policy();
        let deliveries = Arc::new(
            Sender::new(
                Arc::clone(&store),
                Arc::clone(&queue),
                app.providers().clone(),
                app.master_key().map_err(start)?,
                SenderConfig {
                    visibility_timeout,
                    // Within the deliveries queue's receive limit (`Settings::receive_limits`).
                    max_attempts: policy.max_attempts,
                    backoff_base: policy.backoff_base,
                    backoff_cap: policy.backoff_cap,
                    give_up_after: policy.give_up_after,
                    ..SenderConfig::default()
                },
            )
            .for_webhooks(Webhooks {
                client: app.webhook_client().map_err(start)?,
                disable_after: hooks.disable_after(),
            }),
        );
        let watched_stats = Arc::clone(&deliveries);
        crate::metrics::watch_loop(QueueName::Deliveries, move || watched_stats.stats().read());
        loops.push(watched("webhook sender", &stop, &failure, deliveries.run(stop.clone())));
    }

    let address = listener.as_ref().map(TcpListener::local_addr).transpose()?;
    tokio::spawn(drain_then_stop(shutdown, Arc::clone(&readiness), app.settings.http.drain_secs, stop.clone()));
    let watchdog = crate::systemd::watchdog_interval().map(|interval| {
        let allowance = interval.max(LONGEST_QUIET);
        tracing::info!(?interval, ?allowance, "systemd watchdog enabled");
        let heartbeats = Arc::clone(crate::systemd::heartbeats());
        tokio::spawn(crate::systemd::watchdog(heartbeats, interval, allowance, stop.clone()))
    });
    let ready = ready_status(address, roles);
    match listener {
        Some(listener) => {
            let key = app.master_key().map_err(start)?;
            let providers = &app.settings.providers;
            let intake = Arc::new(Intake::new(
                Arc::clone(&store),
                Arc::clone(&queue),
                key,
                providers.meta_app_secret.clone(),
                providers.meta_verify_token.clone(),
            ));
            tokio::spawn(Arc::clone(&intake).keep_routes_loaded(stop.clone()));
            tracing::info!(store = store.kind(), queue = queue.kind(), address = %listener.local_addr()?, "listening");
            warn_about_identity(&app).await;
            let state = Arc::new(ServerState { readiness, ..ServerState::new(Arc::clone(&app), intake, stop.clone()) });
            let service = crate::http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
            let stopped = stop.clone().cancelled_owned();
            crate::systemd::ready(&ready);
            axum::serve(listener, service).with_graceful_shutdown(stopped).await?;
        }
        None => {
            crate::systemd::ready(&ready);
            stop.cancelled().await;
        }
    }
    stop.cancel();
    for (name, task) in loops {
        let _ = task.await;
        tracing::info!("{name} drained");
    }
    if let Some(watchdog) = watchdog {
        let _ = watchdog.await;
    }
    match failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
        Some(failed) => Err(failed),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Runs a role's loop as its own task and watches it: if it ends while the daemon runs (a panic
/// that escaped its workers' supervision, or an unexpected return), the failure is logged and
/// kept, and the whole daemon stops (exit 1) rather than run on without that role.
fn watched(
    name: &'static str,
    stop: &CancellationToken,
    failure: &Arc<Mutex<Option<DaemonError>>>,
    role: impl Future<Output = ()> + Send + 'static,
) -> (&'static str, tokio::task::JoinHandle<()>) {
    tracing::info!("{name} started");
    let (stop, failure) = (stop.clone(), Arc::clone(failure));
    let task = tokio::spawn(async move {
        let ended = tokio::spawn(role).await;
        let why = match ended {
            Ok(()) if stop.is_cancelled() => return,
            Ok(()) => "its loop returned".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::error!(role = name, %why, "a role stopped while the daemon runs; stopping the daemon");
        failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(DaemonError::RoleFailed(name, why));
        stop.cancel();
    });
    (name, task)
}

/// Logs a warning for each way the identity provider's setup lets a user rewrite their own tenant
/// (see `identity::cognito::CognitoIdentity::tenant_attribute_risks`). The API refuses such
/// tokens anyway; the warning tells the operator to close the hole at its source.
async fn warn_about_identity(app: &App) {
    let identity = match app.identity().await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the identity provider's setup");
            return;
        }
    };
    match identity.tenant_attribute_risks().await {
        Ok(risks) => {
            for risk in risks {
                tracing::warn!("identity provider: {risk}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot check the identity provider's setup"),
    }
}

/// The `STATUS=` line once ready: where it listens and which loops run.
fn ready_status(address: Option<std::net::SocketAddr>, roles: &[Role]) -> String {
    let loops: Vec<String> =
        roles.iter().filter(|r| **r != Role::Http).map(|r| format!("{r:?}").to_lowercase()).collect();
    let http = address.map_or_else(|| "no HTTP".to_owned(), |a| format!("listening on {a}"));
    let loops = if loops.is_empty() { "no loops".to_owned() } else { format!("running {}", loops.join(", ")) };
    format!("ready: {http}; {loops}")
}

/// Waits for `signal`, then drains: `/readyz` answers 503 and systemd hears `STOPPING=1` at
/// once; new requests are still served for `drain_secs` (so a load balancer that polls
/// readiness stops routing here first), then `stop` is cancelled and the future completes, which
/// closes the listener and stops the loops.
async fn drain_then_stop(
    signal: impl Future<Output = ()> + Send + 'static,
    readiness: Arc<Readiness>,
    drain_secs: u32,
    stop: CancellationToken,
) {
    signal.await;
    readiness.start_draining();
    crate::systemd::stopping("draining: finishing in-flight work");
    if drain_secs > 0 {
        tracing::info!(drain_secs, "draining: /readyz answers 503; still serving until the drain period ends");
        tokio::time::sleep(Duration::from_secs(u64::from(drain_secs))).await;
    }
    stop.cancel();
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a SIGTERM that arrives while the daemon is still starting (systemd
/// may send it right after READY=1) starts a clean shutdown instead of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        (listen(SignalKind::interrupt(), "SIGINT"), listen(SignalKind::terminate(), "SIGTERM"))
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |stream: Option<tokio::signal::unix::Signal>| async move {
                match stream {
                    Some(mut stream) => {
                        stream.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => tracing::info!("SIGINT received, shutting down"),
                () = wait(terminate) => tracing::info!("SIGTERM received, shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received, shutting down");
        }
    }
}
