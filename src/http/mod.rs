//! The HTTP face of the daemon: health checks, the local identity's JWKS, and the provider
//! webhooks (the tenant API builds on this router).

mod error;
mod health;
mod webhooks;

pub use error::ApiError;

use crate::app::App;
use crate::pipeline::intake::Intake;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// Largest request body accepted anywhere (Meta batches up to 1000 events in one POST); larger
/// bodies get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Shared state of every handler.
pub struct ServerState {
    /// The adapters.
    pub app: Arc<App>,
    /// Webhook intake.
    pub intake: Arc<Intake>,
}

/// The daemon's routes.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/.well-known/jwks.json", get(health::jwks))
        .route("/webhooks/telegram/{channel_id}", post(webhooks::telegram))
        .route("/webhooks/messenger", get(webhooks::messenger_verify).post(webhooks::messenger))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
