//! `GET /tenant/events`: the tenant's event log. With `Accept: text/event-stream`, a live stream
//! (Server-Sent Events: `id` is the event id, `event` its type, `data` its JSON), resumed after
//! `Last-Event-ID` (or `?after=`), else from now; keep-alive comments while idle. Without it, a
//! page of events after `?after=` (default: from the oldest kept) for polling.

use super::extract::{Params, Scope, needs};
use super::{ApiErrors, TenantParam};
use crate::domain::EventId;
use crate::http::{ApiError, ServerState};
use crate::service::events::{self, EventPage, Feed};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use utoipa::IntoParams;

/// Events a poll returns when it does not say.
const DEFAULT_POLL_LIMIT: u32 = 100;

/// `?after=&limit=` of `GET /tenant/events`.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    /// Only events after this id (`nextAfter` of the previous poll, or the last id a stream
    /// delivered). A poll without it starts at the oldest event kept; a stream, at the next event.
    #[param(minimum = 0)]
    after: Option<u64>,
    /// Polls: at most this many events (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The tenant's events, oldest first: with `Accept: text/event-stream` a live Server-Sent Events
/// stream (`id` the event id, `event` its type, `data` the event; keep-alive comments while idle;
/// it ends when the token expires: reconnect with `Last-Event-ID`), otherwise a page for polling. Each event is `{eventId, tenantId, type, at, conversationId?, data}`; `eventId`
/// counts up by one per tenant. A stream sends `event: gap` with `{after, oldestEventId}` when
/// events after its cursor were pruned; a poll says so in `missed`.
#[utoipa::path(get, path = "/tenant/events", tag = "events",
    params(
        TenantParam, EventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (EventSource sends it on reconnect); wins over `after`")
    ),
    security(("idToken" = [])),
    responses(
        (status = 200, description = "A page of events, or (`text/event-stream`) the live stream",
            content((EventPage = "application/json"), (String = "text/event-stream"))),
        ApiErrors
    ))]
pub(super) async fn events(
    State(state): State<Arc<ServerState>>,
    scope: Scope<needs::ReadInbox>,
    Params(params): Params<EventParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => {
            let text = value.to_str().map_err(|_| ApiError::bad_request("Last-Event-ID is not ASCII"))?;
            Some(EventId::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let after = last_event_id.or(params.after.map(EventId::new));
    let wants_stream = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with("text/event-stream")));
    if !wants_stream {
        let limit = params.limit.unwrap_or(DEFAULT_POLL_LIMIT);
        let page = events::list(&state.app, &scope.caller, &scope.tenant, after.unwrap_or_default(), limit).await?;
        return Ok(Json(page).into_response());
    }
    let mut feed = state.events.open(&scope.caller, &scope.tenant, after).await?;
    let stream = futures::stream::poll_fn(move |cx| feed.poll_recv(cx)).map(|item| Ok::<_, Infallible>(sse(item)));
    let keep_alive = KeepAlive::new().interval(state.events.keep_alive());
    let mut response = Sse::new(stream).keep_alive(keep_alive).into_response();
    // Proxies that buffer responses (nginx) would hold the stream back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn sse(item: Feed) -> SseEvent {
    match item {
        Feed::Event(event) => SseEvent::default()
            .id(event.event_id.to_string())
            .event(event.event_type.as_str())
            .json_data(&*event)
            .expect("an event view serialises"),
        Feed::Missed(missed) => SseEvent::default().event("gap").json_data(&missed).expect("a gap serialises"),
    }
}
