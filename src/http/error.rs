//! One JSON error type for every endpoint: `{"error":{"code":"snake_case","message":"…"}}`.
//! 5xx bodies never carry internals; the cause goes to the log.

use crate::service::ServiceError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status, code and public message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
            ServiceError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::Provider(p) => Self::new(StatusCode::BAD_GATEWAY, "provider_error", p.to_string()),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(%cause, "backend unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a backend is unavailable; retry later")
            }
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}
