//! A tenant's webhook endpoints: register (the signing secret is shown once), list, show, change
//! (enable, disable, event types), remove; their deliveries, and replays. Tenant admins only
//! (`Action::ManageWebhooks`): an endpoint receives every event of the tenant it asks for.
//!
//! Registration checks the URL and every address its name resolves to (`crate::delivery`): an
//! endpoint must be `https` and public unless `[webhooks]` allows otherwise.

use super::access::{Action, Caller};
use super::page::{Page, PageRequest, time_key};
use super::{ServiceError, ServiceResult, rfc3339};
use crate::app::App;
use crate::domain::webhook::{EndpointHealth, EndpointState, SigningSecret};
use crate::domain::{
    AuditEntry, Event, EventId, EventType, OutboxId, OutboxItem, OutboxKind, OutboxStatus, TenantId, WebhookEndpoint,
    WebhookId,
};
use crate::sealing::SealContext;
use crate::store::OutboxQuery;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// Most endpoints one tenant may register (each event is delivered to each of them).
pub const MAX_PER_TENANT: usize = 20;
/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// Most events one replay queues.
pub const MAX_REPLAY: usize = 10_000;

/// What registering an endpoint takes.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Where deliveries go: `https`, public.
    pub url: String,
    /// The event types to deliver; empty: every type.
    pub event_types: Vec<EventType>,
    /// What the owner calls it.
    pub description: Option<String>,
}

/// What changing an endpoint may change.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    /// Turn deliveries on (`true`, which also clears its failure count) or off.
    pub enabled: Option<bool>,
    /// New event types (empty: every type).
    pub event_types: Option<Vec<EventType>>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

/// How an endpoint has been answering.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The first failure since the last success (RFC 3339).
    pub failing_since: Option<String>,
    /// The last successful delivery (RFC 3339).
    pub last_success_at: Option<String>,
    /// The last failed attempt (RFC 3339).
    pub last_failure_at: Option<String>,
    /// The HTTP status of the last answer.
    pub last_status: Option<u16>,
    /// What went wrong last.
    pub last_error: Option<String>,
}

/// An endpoint, as listed (never with its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    /// Endpoint id.
    pub webhook_id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types delivered; empty: every type.
    pub event_types: Vec<EventType>,
    /// What the owner calls it.
    pub description: Option<String>,
    /// `enabled`, or `disabled` (see `disabledReason`).
    pub status: EndpointState,
    /// Why it is disabled: by its owner, or by kamshub after a `410 Gone` or a whole retry window
    /// of failures.
    pub disabled_reason: Option<String>,
    /// How it has been answering.
    pub health: HealthView,
    /// When it was registered (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// A newly registered endpoint, with its signing secret: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The key of its deliveries' `webhook-signature` (`whsec_…`, Standard Webhooks' format).
    /// Store it now: it is not shown again.
    pub secret: String,
}

/// One delivery of an event to an endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    /// Delivery id (an outbox item).
    pub delivery_id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// The event delivered (its `webhook-id` and `Idempotency-Key` header is
    /// `evt_{tenantId}_{eventId}`).
    pub event_id: u64,
    /// Its type.
    pub event_type: EventType,
    /// Its conversation: deliveries keep their order per endpoint and conversation.
    pub conversation_id: Option<String>,
    /// `PENDING`/`ENQUEUED` (waiting, or waiting to retry), `SENDING`, `SENT`, `FAILED`.
    pub status: OutboxStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// The last failure: the endpoint's status and the start of its answer, or why no call was
    /// made.
    pub last_error: Option<String>,
    /// The answer that took it (`HTTP 200`).
    pub response: Option<String>,
    /// The next attempt, when one is scheduled (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// Whether it is a replay.
    pub replay: bool,
    /// When it was queued (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The event of one delivery.
    Delivery(OutboxId),
    /// Every event from this id on that the endpoint asks for (and the log still keeps).
    FromEvent(EventId),
}

/// What a replay queued.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayView {
    /// New deliveries queued, in event order.
    pub replayed: usize,
    /// The first and last event replayed.
    pub first_event_id: Option<u64>,
    /// The last event replayed.
    pub last_event_id: Option<u64>,
}

/// Registers an endpoint. The URL must pass `[webhooks]`' address rules, its name resolving
/// only to allowed addresses.
pub async fn create(app: &App, caller: &Caller, tenant: &TenantId, new: NewWebhook) -> ServiceResult<CreatedWebhook> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    let description = check_description(new.description)?;
    let url = app.webhook_client()?.check_url(&new.url).await?;
    let store = app.store().await?;
    store.get_tenant(tenant).await?;
    if store.list_webhooks(tenant).await?.len() >= MAX_PER_TENANT {
        return Err(ServiceError::Conflict(format!("a tenant has at most {MAX_PER_TENANT} webhook endpoints")));
    }
    let (id, now, secret) = (WebhookId::generate(), crate::domain::now(), SigningSecret::generate());
    let plain = secrecy::SecretString::from(secret.expose().to_owned());
    let sealed = app.master_key()?.seal(&plain, SealContext::webhook_signing_secret(id.as_str()));
    let endpoint = WebhookEndpoint {
        id,
        tenant_id: tenant.clone(),
        url: url.to_string(),
        event_types: dedup(new.event_types),
        description,
        secret: sealed,
        state: EndpointState::Enabled,
        disabled_reason: None,
        health: EndpointHealth::default(),
        created_at: now,
        updated_at: now,
    };
    let audit = AuditEntry::new(
        &caller.actor(),
        tenant,
        "webhook.create",
        endpoint.id.as_str(),
        json!({"url": endpoint.url, "eventTypes": endpoint.event_types}),
    );
    store.insert_webhook(&endpoint, &audit).await?;
    Ok(CreatedWebhook { webhook: view(&endpoint), secret: secret.expose().to_owned() })
}

/// The tenant's endpoints, oldest first.
pub async fn list(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    page: &PageRequest,
) -> ServiceResult<Page<WebhookView>> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    let endpoints = app.store().await?.list_webhooks(tenant).await?;
    Ok(Page::of_sorted(endpoints, page, |e| time_key(e.created_at, e.id.as_str())).map(|e| view(&e)))
}

/// One endpoint.
pub async fn get(app: &App, caller: &Caller, tenant: &TenantId, id: &WebhookId) -> ServiceResult<WebhookView> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    Ok(view(&app.store().await?.get_webhook(tenant, id).await?))
}

/// Changes an endpoint: enables it (its failure count cleared; replay what it missed), disables
/// it, or sets its event types or description.
pub async fn update(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    id: &WebhookId,
    change: WebhookChange,
) -> ServiceResult<WebhookView> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    let store = app.store().await?;
    let mut endpoint = store.get_webhook(tenant, id).await?;
    let now = crate::domain::now();
    match change.enabled {
        Some(true) => endpoint.enable(now),
        Some(false) => endpoint.disable(&format!("disabled by {}", caller.actor()), now),
        None => {}
    }
    if let Some(types) = change.event_types {
        endpoint.event_types = dedup(types);
    }
    if let Some(description) = change.description {
        endpoint.description = check_description(description)?;
    }
    endpoint.updated_at = now;
    let audit = AuditEntry::new(
        &caller.actor(),
        tenant,
        "webhook.update",
        id.as_str(),
        json!({"status": endpoint.state, "eventTypes": endpoint.event_types}),
    );
    store.update_webhook(&endpoint, &audit).await?;
    Ok(view(&endpoint))
}

/// Removes an endpoint. Its deliveries stay listed; those not made yet fail when they come up.
pub async fn remove(app: &App, caller: &Caller, tenant: &TenantId, id: &WebhookId) -> ServiceResult<()> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    let store = app.store().await?;
    let endpoint = store.get_webhook(tenant, id).await?;
    let audit = AuditEntry::new(&caller.actor(), tenant, "webhook.delete", id.as_str(), json!({"url": endpoint.url}));
    store.delete_webhook(tenant, id, &audit).await?;
    Ok(())
}

/// An endpoint's deliveries, newest first, in one status when given.
pub async fn deliveries(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    id: &WebhookId,
    status: Option<OutboxStatus>,
    page: &PageRequest,
) -> ServiceResult<Page<DeliveryView>> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    let store = app.store().await?;
    store.get_webhook(tenant, id).await?;
    let before = page.after.as_ref().map(|c| c.time_position(OutboxId::parse)).transpose()?;
    let query = OutboxQuery {
        tenant: Some(tenant.clone()),
        status,
        kind: Some(OutboxKind::Webhook),
        webhook: Some(id.clone()),
        before,
        limit: page.limit + 1,
    };
    let items = store.list_outbox(&query).await?;
    Ok(Page::from_fetched(items, page, |i| time_key(i.created_at, i.id.as_str())).map(|i| delivery_view(&i)))
}

/// Delivers events to the endpoint again, as new deliveries after whatever it has pending (in
/// event order within each conversation). The endpoint must be enabled; events must still be kept.
pub async fn replay(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    id: &WebhookId,
    what: Replay,
) -> ServiceResult<ReplayView> {
    caller.authorize(Action::ManageWebhooks, tenant)?;
    let store = app.store().await?;
    let endpoint = store.get_webhook(tenant, id).await?;
    if endpoint.state == EndpointState::Disabled {
        return Err(ServiceError::Conflict(format!("webhook `{id}` is disabled; enable it before replaying")));
    }
    let events: Vec<Event> = match &what {
        Replay::Delivery(delivery) => {
            let item = store.get_outbox(tenant, delivery).await?;
            let event = item.as_ref().and_then(OutboxItem::delivery).filter(|d| d.webhook_id == *id);
            let Some(event) = event else {
                return Err(ServiceError::NotFound(format!("delivery `{delivery}` of webhook `{id}` not found")));
            };
            let kept = store.get_event(tenant, event.event_id).await?;
            vec![kept.ok_or_else(|| gone(event.event_id))?]
        }
        Replay::FromEvent(first) => {
            let mut events = Vec::new();
            let mut after = EventId::new(first.get().saturating_sub(1));
            loop {
                let batch = store.list_events(tenant, after, super::events::MAX_PAGE).await?;
                let full = batch.len() == super::events::MAX_PAGE as usize;
                if events.is_empty() && batch.first().is_some_and(|e| e.id > *first) {
                    return Err(gone(*first));
                }
                after = batch.last().map_or(after, |e| e.id);
                events.extend(batch.into_iter().filter(|e| endpoint.wants(e.event_type)));
                if events.len() > MAX_REPLAY {
                    return Err(ServiceError::Invalid(format!(
                        "more than {MAX_REPLAY} events to replay; replay from a later event, in steps"
                    )));
                }
                if !full {
                    break;
                }
            }
            events
        }
    };
    let (tag, now) = (uuid::Uuid::now_v7().simple().to_string(), crate::domain::now());
    let items: Vec<OutboxItem> =
        events.iter().map(|event| OutboxItem::new_delivery(&endpoint, event, Some(&tag), now)).collect();
    store.insert_deliveries(&items).await?;
    let audit = AuditEntry::new(
        &caller.actor(),
        tenant,
        "webhook.replay",
        id.as_str(),
        json!({"events": events.len(), "from": events.first().map(|e| e.id), "to": events.last().map(|e| e.id)}),
    );
    store.append_audit(&audit).await?;
    Ok(ReplayView {
        replayed: items.len(),
        first_event_id: events.first().map(|e| e.id.get()),
        last_event_id: events.last().map(|e| e.id.get()),
    })
}

fn gone(event: EventId) -> ServiceError {
    ServiceError::Conflict(format!("event {event} is no longer kept ([events] retention_secs); it cannot be replayed"))
}

fn check_description(description: Option<String>) -> ServiceResult<Option<String>> {
    let description = description.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control))
    {
        return Err(ServiceError::Invalid(format!(
            "the description must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"
        )));
    }
    Ok(description)
}

fn dedup(mut types: Vec<EventType>) -> Vec<EventType> {
    types.sort();
    types.dedup();
    types
}

fn view(e: &WebhookEndpoint) -> WebhookView {
    WebhookView {
        webhook_id: e.id.to_string(),
        tenant_id: e.tenant_id.to_string(),
        url: e.url.clone(),
        event_types: e.event_types.clone(),
        description: e.description.clone(),
        status: e.state,
        disabled_reason: e.disabled_reason.clone(),
        health: HealthView {
            consecutive_failures: e.health.consecutive_failures,
            failing_since: e.health.failing_since.map(rfc3339),
            last_success_at: e.health.last_success_at.map(rfc3339),
            last_failure_at: e.health.last_failure_at.map(rfc3339),
            last_status: e.health.last_status,
            last_error: e.health.last_error.clone(),
        },
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
    }
}

fn delivery_view(item: &OutboxItem) -> DeliveryView {
    let delivery = item.delivery().expect("the listing asked for deliveries only");
    DeliveryView {
        delivery_id: item.id.to_string(),
        webhook_id: delivery.webhook_id.to_string(),
        event_id: delivery.event_id.get(),
        event_type: delivery.event_type,
        conversation_id: delivery.conversation_id.as_ref().map(ToString::to_string),
        status: item.status,
        attempts: item.attempts,
        last_error: item.last_error.clone(),
        response: item.provider_message_ids.last().cloned(),
        next_attempt_at: item.next_attempt_at.map(rfc3339),
        replay: item.send_id.as_str().starts_with("kamshub:webhook-replay:"),
        created_at: rfc3339(item.created_at),
        updated_at: rfc3339(item.updated_at),
    }
}
