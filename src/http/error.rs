//! One JSON error type for every endpoint: `{"error":{"code":"snake_case","message":"…"}}`, with
//! the status chosen in one place ([`From<ServiceError>`]). 5xx bodies never carry internals; the
//! cause goes to the log.

use crate::domain::ValidationError;
use crate::providers::ProviderError;
use crate::service::ServiceError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds to wait, sent as `Retry-After` (429, 503).
    retry_after: Option<u64>,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and people (`message`).
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, snake_case: `unauthorized`, `forbidden`, `not_found`, `invalid_request`,
    /// `idempotency_key_reused`, `rate_limited`, ...
    pub code: String,
    /// A sentence for a person; never holds internals on a 5xx.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status, code and public message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 400: the request cannot be read (malformed JSON, query or path).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many attempts; retry later")
        }
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", m),
            ServiceError::Unauthenticated(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            ServiceError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            ServiceError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::KeyReused(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", m),
            ServiceError::Provider(p) => provider_error(p),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(%cause, "backend unavailable");
                Self {
                    retry_after: Some(5),
                    ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a backend is unavailable; retry later")
                }
            }
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// A provider's answer to a call made for the request: a refusal of what the client gave (a bad
/// token, an unknown page) is the client's to fix (422); a provider rate limit is a 503 with its
/// wait; a provider that failed or could not be reached is a 502.
fn provider_error(p: ProviderError) -> ApiError {
    match &p {
        ProviderError::Rejected { status: 429, retry_after, .. } => ApiError {
            retry_after: Some(retry_after.unwrap_or(5)),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "provider_busy", p.to_string())
        },
        ProviderError::Rejected { status: 400..=499, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "provider_refused", p.to_string())
        }
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", p.to_string()),
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        match e {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::JsonDataError(e) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.body_text())
            }
            JsonRejection::JsonSyntaxError(e) => Self::bad_request(e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {} bytes", super::MAX_BODY_BYTES),
            ),
            other => Self::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Gives error answers that did not come from a handler (an unknown path, a method the path does
/// not take, a request timeout, an extractor's plain-text rejection) the same JSON body as every
/// other error, keeping a short plain-text reason as the message.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok());
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = match (status, text) {
        (StatusCode::NOT_FOUND, _) => "no such route".to_owned(),
        (StatusCode::METHOD_NOT_ALLOWED, _) => "this route does not take that method".to_owned(),
        (StatusCode::SERVICE_UNAVAILABLE, _) => "the request took too long or the server is busy; retry".to_owned(),
        (s, Some(text)) if s.is_client_error() && !text.trim().is_empty() => text.trim().to_owned(),
        (s, _) => s.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}
