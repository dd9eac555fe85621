//! Domain values and entities: validated newtypes, tenants, users, channels, audit entries, events
//! and webhook endpoints, and the views clients see them through. No I/O.

mod audit;
mod channel;
mod content;
mod conversation;
mod email;
pub mod event;
mod ids;
pub mod inbound;
mod outbox;
mod role;
mod tenant;
mod user;
pub mod view;
pub mod webhook;

pub use audit::{Actor, AuditEntry};
pub use channel::{Channel, ChannelHealth, ChannelKind, DisplayName, ExternalId};
pub use content::{Reaction, Revision, SystemEvent, attachment_summary, summary};
pub use conversation::{
    Conversation, ConversationId, Direction, Message, MessageBody, MessageId, MessageStatus, MessageVersion,
};
pub use email::Email;
pub use event::{Event, EventId, EventType, NewEvent};
pub use ids::{AuditId, ChannelId, TenantId, UserId};
pub use outbox::{
    Applied, Arrival, Decision, Delivery, NewReply, OutboxId, OutboxItem, OutboxKind, OutboxStatus, QueueAction, Reply,
    RetryPolicy, SEND_ENVELOPE_VERSION, SendEnvelope, SendFailure, SendId, SendLogEntry, SendOutcome, Target,
    Transition, TransitionRefused, after_send,
};
pub use role::Role;
pub use tenant::{Tenant, TenantName};
pub use user::User;
pub use webhook::{WebhookEndpoint, WebhookId};

use time::OffsetDateTime;

/// A value from the outside world that does not satisfy the domain's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ValidationError {
    /// Which value was rejected ("email", "tenant id", ...), for the message a user reads.
    pub what: &'static str,
    /// Why it was rejected.
    pub reason: String,
}

impl ValidationError {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self { what, reason: reason.into() }
    }
}

/// The current time at millisecond precision, the precision both stores keep, so a value read
/// back compares equal to the value written.
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    truncate_to_millis(now)
}

/// Drops sub-millisecond precision.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    let millis = t.millisecond();
    t.replace_nanosecond(u32::from(millis) * 1_000_000).expect("nanosecond within range")
}
