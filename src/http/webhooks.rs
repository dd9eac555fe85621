//! Provider webhooks: `POST /webhooks/telegram/{channelId}`, `GET|POST /webhooks/messenger`.
//! Thin: extract, hand the raw body to intake, map the outcome to the status providers expect.

use super::{ApiError, ServerState};
use crate::pipeline::intake::IntakeError;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Telegram's secret-token header.
const TELEGRAM_SECRET: &str = "x-telegram-bot-api-secret-token";
/// Meta's signature header.
const META_SIGNATURE: &str = "x-hub-signature-256";

/// A Telegram update for one channel; needs the channel's `X-Telegram-Bot-Api-Secret-Token`.
#[utoipa::path(post, path = "/webhooks/telegram/{channelId}", tag = "system",
    params(
        ("channelId" = String, Path, description = "Channel id", pattern = "^[a-z0-9_-]{1,48}$"),
        ("X-Telegram-Bot-Api-Secret-Token" = Option<String>, Header, description = "The channel's webhook secret"),
    ),
    request_body(content = Object, description = "A Telegram Update"),
    responses((status = 200, description = "Durably queued", body = Object), super::api::ApiErrors))]
pub(super) async fn telegram(
    State(state): State<Arc<ServerState>>,
    Path(channel_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secret = headers.get(TELEGRAM_SECRET).map(|v| v.as_bytes());
    state.intake.telegram(&channel_id, secret, &body).await.map_err(intake_error)?;
    Ok((StatusCode::OK, axum::Json(json!({"ok": true}))).into_response())
}

/// Meta's subscription check.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct Verification {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription check: answers `hub.challenge` when `hub.verify_token` matches.
#[utoipa::path(get, path = "/webhooks/messenger", tag = "system", params(Verification),
    responses((status = 200, description = "The challenge, echoed", body = String, content_type = "text/plain"),
        super::api::ApiErrors))]
pub(super) async fn messenger_verify(
    State(state): State<Arc<ServerState>>,
    Query(q): Query<Verification>,
) -> Result<String, ApiError> {
    state
        .intake
        .messenger_challenge(q.mode.as_deref(), q.token.as_deref(), q.challenge.as_deref())
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "verification_failed", "verify token does not match"))
}

/// Messenger events for any page; needs `X-Hub-Signature-256` over the raw body.
#[utoipa::path(post, path = "/webhooks/messenger", tag = "system",
    params(("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=HMAC of the body under the app secret")),
    request_body(content = Object, description = "A Messenger webhook batch"),
    responses((status = 200, description = "Durably queued", body = Object), super::api::ApiErrors))]
pub(super) async fn messenger(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let signature = headers.get(META_SIGNATURE).and_then(|v| v.to_str().ok());
    let accepted = state.intake.messenger(signature, &body).await.map_err(intake_error)?;
    Ok((StatusCode::OK, axum::Json(json!({"accepted": accepted}))).into_response())
}

fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::UnknownChannel => ApiError::new(StatusCode::NOT_FOUND, "unknown_channel", "no such channel"),
        IntakeError::MissingCredential => {
            ApiError::new(StatusCode::UNAUTHORIZED, "missing_credential", "webhook secret or signature missing")
        }
        IntakeError::BadCredential => {
            ApiError::new(StatusCode::FORBIDDEN, "bad_credential", "webhook secret or signature does not match")
        }
        IntakeError::Unavailable(why) => {
            tracing::warn!(%why, "webhook not accepted: backend unavailable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "cannot accept the webhook now; retry")
        }
        IntakeError::NotConfigured(key) => {
            tracing::error!(key, "messenger webhook received but [providers] {key} is not set");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", "messenger intake is not configured")
        }
    }
}
