//! What both store adapters record with a change, decided once: the events an inbound event's
//! [`Plan`] makes, and the webhook deliveries an event fans out to. Adapters write both in the
//! transaction of the change, after numbering the events with the tenant's
//! [`EventCounter`](crate::domain::event::EventCounter) (docs/architecture.md, "Events and
//! outgoing webhooks").

use super::inbound::Plan;
use crate::domain::inbound::InboundEvent;
use crate::domain::{Event, EventType, NewEvent, OutboxItem, WebhookEndpoint};
use time::OffsetDateTime;

/// The events applying `event` makes, in the order they happened: the conversation's start, the
/// message, the greeting queued for it. `created` tells whether the plan starts the conversation.
pub(crate) fn of_plan(event: &InboundEvent, plan: &Plan, created: bool) -> Vec<NewEvent> {
    let mut events = Vec::new();
    if created && let Some(conversation) = &plan.conversation {
        events.push(NewEvent::conversation_created(conversation));
    }
    if let Some(message) = &plan.insert {
        events.push(NewEvent::message(EventType::MessageReceived, message));
    }
    match (&plan.update, event) {
        (Some(message), InboundEvent::Edit(_)) => events.push(NewEvent::message(EventType::MessageEdited, message)),
        (Some(message), InboundEvent::Reaction(_)) => {
            events.push(NewEvent::message(EventType::MessageReacted, message));
        }
        _ => {}
    }
    if let Some((item, _)) = &plan.outbound {
        events.extend(NewEvent::reply(EventType::ReplyQueued, item));
    }
    events
}

/// The deliveries `events` make: one per event and enabled endpoint of the tenant that wants its
/// type. Keyed by endpoint and event, so recording them twice stores them once.
pub(crate) fn deliveries(events: &[Event], endpoints: &[WebhookEndpoint], now: OffsetDateTime) -> Vec<OutboxItem> {
    events
        .iter()
        .flat_map(|event| {
            endpoints
                .iter()
                .filter(|endpoint| endpoint.tenant_id == event.tenant_id && endpoint.wants(event.event_type))
                .map(move |endpoint| OutboxItem::new_delivery(endpoint, event, None, now))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::{EndpointHealth, EndpointState, WebhookId};
    use crate::domain::{EventId, TenantId};
    use crate::sealing::Sealed;

    fn endpoint(tenant: &TenantId, types: Vec<EventType>, state: EndpointState) -> WebhookEndpoint {
        let now = crate::domain::now();
        WebhookEndpoint {
            id: WebhookId::generate(),
            tenant_id: tenant.clone(),
            url: "https://hooks.example.com/".into(),
            event_types: types,
            description: None,
            secret: Sealed::from_stored("x".into()),
            state,
            disabled_reason: None,
            health: EndpointHealth::default(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn each_event_goes_to_the_enabled_endpoints_of_its_tenant_that_want_it() {
        let (a, b) = (TenantId::generate(), TenantId::generate());
        let now = crate::domain::now();
        let event = |tenant: &TenantId, id, event_type| Event {
            tenant_id: tenant.clone(),
            id: EventId::new(id),
            event_type,
            at: now,
            conversation_id: None,
            data: serde_json::json!({}),
        };
        let all = endpoint(&a, vec![], EndpointState::Enabled);
        let received_only = endpoint(&a, vec![EventType::MessageReceived], EndpointState::Enabled);
        let disabled = endpoint(&a, vec![], EndpointState::Disabled);
        let other_tenant = endpoint(&b, vec![], EndpointState::Enabled);
        let endpoints = [all.clone(), received_only.clone(), disabled, other_tenant];
        let events = [event(&a, 1, EventType::MessageReceived), event(&a, 2, EventType::ReplySent)];
        let made: Vec<(String, u64)> = deliveries(&events, &endpoints, now)
            .iter()
            .map(|item| {
                let d = item.delivery().unwrap();
                (d.webhook_id.to_string(), d.event_id.get())
            })
            .collect();
        assert_eq!(
            made,
            [(all.id.to_string(), 1), (received_only.id.to_string(), 1), (all.id.to_string(), 2)],
            "by event, then endpoint"
        );
        let again = deliveries(&events, &endpoints, now);
        assert_eq!(again[0].send_id, deliveries(&events, &endpoints, now)[0].send_id, "keyed: stored once");
    }
}
