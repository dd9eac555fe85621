//! `GET /healthz` (the process answers), `GET /readyz` (it takes work: not draining, store and
//! queues answer), and the local identity's `GET /.well-known/jwks.json`.

use super::{ApiError, ServerState};
use crate::queue::QueueName;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest a readiness probe waits for one backend before calling it unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the daemon takes new work. Set to draining on SIGTERM, so `/readyz` answers 503 and
/// load balancers stop routing here before the listener closes.
#[derive(Debug, Default)]
pub struct Readiness {
    draining: AtomicBool,
}

impl Readiness {
    /// From now on `/readyz` answers 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Liveness: answers while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The process serves HTTP", body = Object)))]
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: not draining, the store answers a ping, and every queue answers a depth query.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "Not draining; the store and the queues answer", body = Object), super::api::ApiErrors))]
pub(super) async fn readyz(State(state): State<Arc<ServerState>>) -> Result<Json<Value>, ApiError> {
    if state.readiness.is_draining() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", "shutting down; not taking new work"));
    }
    let unready = |what: &'static str, message: &'static str| {
        move |cause: String| {
            tracing::warn!(%cause, "not ready: {what}");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
        }
    };
    let store_down = unready("store", "the store is not reachable");
    let store = state.app.store().await.map_err(|e| store_down(e.to_string()))?;
    probe(store.ping()).await.map_err(store_down)?;
    let queue_down = unready("queues", "the queues are not reachable");
    let queue = state.app.queue().await.map_err(|e| queue_down(e.to_string()))?;
    for name in QueueName::ALL {
        probe(queue.depth(name)).await.map_err(|cause| queue_down(format!("{name}: {cause}")))?;
    }
    Ok(Json(json!({"status": "ready", "store": store.kind(), "queue": queue.kind()})))
}

/// A backend call within [`PROBE_TIMEOUT`], its error as text.
async fn probe<T, E: std::fmt::Display>(call: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

/// The local identity's public keys; 404 when Cognito is the identity provider.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "system",
    responses((status = 200, description = "The JWKS tokens are signed with", body = Object), super::api::ApiErrors))]
pub(super) async fn jwks(State(state): State<Arc<ServerState>>) -> Result<Json<Value>, ApiError> {
    let local = state.app.local_identity().await.map_err(crate::service::ServiceError::from)?;
    let local = local.ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "this deployment uses Cognito; fetch its JWKS instead")
    })?;
    Ok(Json(serde_json::to_value(local.jwks()).expect("a JWKS serialises")))
}
