//! `GET /metrics` (Prometheus text) and the middleware that counts every request: by route,
//! method and status, with its latency, and for provider webhooks by provider and result.

use super::ServerState;
use crate::metrics::{HTTP_DURATION, HTTP_REQUESTS, WEBHOOK_REQUESTS};
use axum::extract::State;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, histogram};
use std::sync::Arc;
use std::time::Instant;

/// The Prometheus text exposition format's content type.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in the Prometheus text format, backend gauges refreshed first.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")))]
pub(super) async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    if let (Ok(queue), Ok(store)) = (state.app.queue().await, state.app.store().await) {
        crate::metrics::refresh_gauges(queue.as_ref(), store.as_ref()).await;
    }
    ([(header::CONTENT_TYPE, EXPOSITION)], crate::metrics::render())
}

/// Counts and times the request under its route pattern (never its raw path: channel ids would
/// make a series per channel).
pub(super) async fn track(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    histogram!(HTTP_DURATION, "route" => route.clone()).record(started.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.to_string(), "status" => status.as_str().to_owned())
        .increment(1);
    if let Some(provider) = webhook_provider(&route, &method) {
        counter!(WEBHOOK_REQUESTS, "provider" => provider, "result" => webhook_result(status)).increment(1);
    }
    response
}

/// The provider whose event delivery this route receives (not Meta's subscription check).
fn webhook_provider(route: &str, method: &Method) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    match route {
        r if r.starts_with("/webhooks/telegram/") => Some("telegram"),
        "/webhooks/messenger" => Some("messenger"),
        _ => None,
    }
}

/// A webhook's result, from the status intake answered with (see `http/webhooks.rs`).
fn webhook_result(status: StatusCode) -> &'static str {
    match status {
        s if s.is_success() => "accepted",
        StatusCode::UNAUTHORIZED => "missing_credential",
        StatusCode::FORBIDDEN => "bad_credential",
        StatusCode::NOT_FOUND => "unknown_channel",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNSUPPORTED_MEDIA_TYPE => "malformed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "error",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_results_follow_intake_statuses() {
        assert_eq!(webhook_result(StatusCode::OK), "accepted");
        assert_eq!(webhook_result(StatusCode::FORBIDDEN), "bad_credential");
        assert_eq!(webhook_result(StatusCode::PAYLOAD_TOO_LARGE), "too_large");
        assert_eq!(webhook_result(StatusCode::SERVICE_UNAVAILABLE), "unavailable");
        assert_eq!(
            webhook_provider("/webhooks/messenger", &Method::GET),
            None,
            "the subscription check is no delivery"
        );
        assert_eq!(webhook_provider("/webhooks/telegram/{channelId}", &Method::POST), Some("telegram"));
    }
}
