//! `kamshub serve`: opens the backends, serves HTTP, and shuts down cleanly on SIGINT/SIGTERM.

use crate::app::App;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A backend could not be opened at start.
    #[error("cannot start: {0}")]
    Start(String),
    /// The listener could not be bound or failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(app: App) -> Result<(), DaemonError> {
    tracing::info!("starting kamshub {}: {}", env!("CARGO_PKG_VERSION"), app.describe());
    let listen = app.settings.http.listen;
    let listener =
        TcpListener::bind(listen).await.map_err(|e| DaemonError::Start(format!("cannot listen on {listen}: {e}")))?;
    serve(Arc::new(app), listener, shutdown_signal()).await
}

/// Opens the store, then serves HTTP on `listener` until `shutdown` completes; in-flight
/// requests finish first.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let store = app.store().await.map_err(|e| DaemonError::Start(e.to_string()))?;
    tracing::info!(store = store.kind(), address = %listener.local_addr()?, "listening");
    axum::serve(listener, crate::http::router(app)).with_graceful_shutdown(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
