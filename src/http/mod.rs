//! The HTTP face of the daemon: health checks and the local identity's JWKS (the API and the
//! webhooks build on this router).

mod error;
mod health;

pub use error::ApiError;

use crate::app::App;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use std::sync::Arc;

/// Largest request body accepted anywhere (Meta batches up to 1000 events in one POST).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Shared state of every handler.
pub type AppState = Arc<App>;

/// The daemon's routes.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/.well-known/jwks.json", get(health::jwks))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}
