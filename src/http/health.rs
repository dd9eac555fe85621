//! `GET /healthz` (the process answers), `GET /readyz` (the store answers too), and the local
//! identity's `GET /.well-known/jwks.json`.

use super::{ApiError, ServerState};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Liveness: answers while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "The process serves HTTP", body = Object)))]
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store must answer a ping.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "The store answers", body = Object), super::api::ApiErrors))]
pub(super) async fn readyz(State(state): State<Arc<ServerState>>) -> Result<Json<Value>, ApiError> {
    let unready = |cause: String| {
        tracing::warn!(%cause, "not ready: store");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the store is not reachable")
    };
    let store = state.app.store().await.map_err(|e| unready(e.to_string()))?;
    store.ping().await.map_err(|e| unready(e.to_string()))?;
    Ok(Json(json!({"status": "ready", "store": store.kind()})))
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
