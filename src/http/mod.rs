//! The HTTP face of the daemon: the tenant API ([`api`]), provider webhooks, health checks,
//! Prometheus metrics, the local identity's JWKS, and `GET /openapi.json` describing all of them.
//!
//! Every route is registered with its OpenAPI description (utoipa), so the served document lists
//! exactly the routes that exist; `tests/api_matrix.rs` walks it. Around every route: a body size
//! limit (413), a request timeout and a server-wide concurrency limit (503), and JSON error bodies
//! for answers that did not come from a handler (unknown route, wrong method, timeout).

pub(crate) mod api;
mod error;
mod health;
mod limits;
mod metrics;
mod webhooks;

pub use error::ApiError;
pub use health::Readiness;
pub use limits::AuthLimits;

use crate::app::App;
use crate::pipeline::intake::Intake;
use crate::service::events::EventHub;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body accepted anywhere (Meta batches up to 1000 events in one POST); larger
/// bodies get 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Shared state of every handler.
pub struct ServerState {
    /// The adapters.
    pub app: Arc<App>,
    /// Webhook intake.
    pub intake: Arc<Intake>,
    /// Sign-in rate limits.
    pub limits: AuthLimits,
    /// Whether the daemon still takes new work (`/readyz`).
    pub readiness: Arc<Readiness>,
    /// Live event feeds.
    pub events: Arc<EventHub>,
}

impl ServerState {
    /// State for the daemon's HTTP role, with the limits the settings name; event streams end at
    /// `shutdown`.
    pub fn new(app: Arc<App>, intake: Arc<Intake>, shutdown: CancellationToken) -> Self {
        let http = &app.settings.http;
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let limits = AuthLimits::new(
            nonzero(http.sign_ins_per_email_per_minute),
            nonzero(http.sign_ins_per_address_per_minute),
            http.trusted_proxies,
        );
        let events = EventHub::new(Arc::clone(&app), shutdown);
        Self { app, intake, limits, readiness: Arc::default(), events }
    }
}

/// Every route with its description.
fn routes() -> OpenApiRouter<Arc<ServerState>> {
    api::routes()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(health::jwks))
        .routes(routes!(openapi_json))
        .routes(routes!(webhooks::telegram))
        .routes(routes!(webhooks::messenger_verify, webhooks::messenger))
}

/// The OpenAPI document of every route, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

static OPENAPI_JSON: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_json::to_value(openapi()).expect("the OpenAPI document serialises"));

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(OPENAPI_JSON.clone())
}

/// The daemon's routes.
pub fn router(state: Arc<ServerState>) -> Router {
    let http = &state.app.settings.http;
    let timeout = Duration::from_secs(u64::from(http.request_timeout_secs));
    let concurrency = tower::limit::GlobalConcurrencyLimitLayer::new(http.max_concurrent_requests as usize);
    let (router, _) = routes().split_for_parts();
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(concurrency)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}
