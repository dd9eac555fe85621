//! The `Store` port: durable tenant data. Adapters: [`sqlite`] (embedded) and [`mongo`] (production),
//! one folder each; neither imports the other. Rules both adapters share live here or in the
//! domain: [`inbound::plan`] decides what an inbound event changes, `OutboxItem::apply` what an
//! outbox step changes; adapters load, call them, and persist (docs/architecture.md, "Store").
//!
//! Every method that reads or writes one tenant's data takes its [`TenantId`]; the only unscoped
//! access is platform-admin listings, webhook routing by channel id, a user by the token's subject
//! (authentication), and the sender's `…_for_send` outbox calls, which address an item by the id
//! on the send queue.

pub(crate) mod events;
pub(crate) mod inbound;
pub mod metered;
pub mod mongo;
pub mod sqlite;

use crate::domain::inbound::{Envelope, InboundEvent, InboundEventRecord};
use crate::domain::webhook::AttemptResult;
use crate::domain::{
    AuditEntry, Channel, ChannelId, ChannelKind, Conversation, ConversationId, Email, Event, EventId, Message,
    MessageId, OutboxId, OutboxItem, OutboxKind, OutboxStatus, Tenant, TenantId, Transition, User, UserId,
    WebhookEndpoint, WebhookId,
};
use async_trait::async_trait;
use time::OffsetDateTime;

/// What went wrong in a store call, in terms callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist (or belongs to another tenant: callers cannot tell, on purpose).
    #[error("{0} not found")]
    NotFound(String),
    /// A unique key is already taken.
    #[error("{0}")]
    Conflict(String),
    /// The store cannot be reached right now; retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, corrupt data, a refused command.
    #[error("store error: {0}")]
    Other(String),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// One normalised inbound event with the envelope it arrived in.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    /// Routing, ids and the raw payload.
    pub envelope: Envelope,
    /// What the payload means.
    pub event: InboundEvent,
}

/// What creating an outbound reply did.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateOutcome {
    /// New: the outbox item and the outbound message were stored.
    Created,
    /// The sendId was used before with the same text: that item, unchanged.
    Existing(Box<OutboxItem>),
}

impl CreateOutcome {
    /// The sendId of `new` is taken by `existing`: the same reply (same conversation and text)
    /// returns the first item; anything else is a conflict.
    pub(crate) fn for_existing(new: &OutboxItem, existing: OutboxItem) -> StoreResult<CreateOutcome> {
        let same = |a: &OutboxItem, b: &OutboxItem| match (a.reply(), b.reply()) {
            (Some(a), Some(b)) => a.text == b.text && a.conversation_id == b.conversation_id,
            _ => false,
        };
        if same(&existing, new) {
            Ok(CreateOutcome::Existing(Box::new(existing)))
        } else {
            Err(StoreError::Conflict(format!(
                "idempotency key `{}` was already used for a different reply",
                new.send_id
            )))
        }
    }
}

/// The conflict both adapters report when a bot or page already feeds an active channel.
pub(crate) fn channel_conflict(c: &Channel) -> StoreError {
    let noun = match c.kind {
        ChannelKind::Telegram => "bot",
        ChannelKind::Messenger => "page",
    };
    StoreError::Conflict(format!(
        "{} {noun} `{}` is already connected to an active channel",
        c.kind,
        c.external_id.as_str()
    ))
}

/// The conflict both adapters report when an email is taken.
pub(crate) fn email_conflict(email: &Email) -> StoreError {
    StoreError::Conflict(format!("a user with email {email} already exists"))
}

/// The conflict both adapters report when a reply's sendId is taken (inserted concurrently).
pub(crate) fn send_id_conflict(item: &OutboxItem) -> StoreError {
    StoreError::Conflict(format!("idempotency key `{}` is already in use", item.send_id))
}

/// Which conversations a listing shows, newest activity first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationQuery {
    /// Only this channel's.
    pub channel: Option<ChannelId>,
    /// None of these channels' (the inactive ones, hidden from the inbox).
    pub exclude_channels: Vec<ChannelId>,
    /// Only those after this one in the listing: older activity, or the same time and a lower id.
    pub before: Option<(OffsetDateTime, ConversationId)>,
    /// At most this many.
    pub limit: u32,
}

impl ConversationQuery {
    /// The first `limit` conversations of a tenant, any channel.
    pub fn first(limit: u32) -> Self {
        Self { channel: None, exclude_channels: Vec::new(), before: None, limit }
    }
}

/// Which outbox items a listing shows, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxQuery {
    /// Only this tenant's (None: every tenant, for operators and platform admins).
    pub tenant: Option<TenantId>,
    /// Only items in this status.
    pub status: Option<OutboxStatus>,
    /// Only replies, or only webhook deliveries.
    pub kind: Option<OutboxKind>,
    /// Only the deliveries to this endpoint.
    pub webhook: Option<WebhookId>,
    /// Only those after this one in the listing: created earlier, or at the same time with a
    /// lower id.
    pub before: Option<(OffsetDateTime, OutboxId)>,
    /// At most this many.
    pub limit: u32,
}

impl OutboxQuery {
    /// The newest `limit` items, of one tenant and in one status when given.
    pub fn new(tenant: Option<&TenantId>, status: Option<OutboxStatus>, limit: u32) -> Self {
        Self { tenant: tenant.cloned(), status, kind: None, webhook: None, before: None, limit }
    }
}

/// What applying one inbound event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// First time seen: its effects are stored.
    Applied,
    /// Already applied before: nothing changed.
    Duplicate,
}

/// Why an inbound event could not be applied, recorded on its inbound event (status FAILED) so
/// `dlq peek` can show it next to the dead message.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundFailure {
    /// The error of the last attempt.
    pub error: String,
    /// The receive count of that attempt.
    pub receive_count: u32,
    /// When it failed.
    pub failed_at: OffsetDateTime,
}

/// A named, expiring claim that one process at a time holds (one redrive per queue). A holder
/// that dies keeps it until `expires_at`; one on the same host whose process is gone can be
/// replaced at once (see [`Store::acquire_lease`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// What is claimed (`redrive:incoming`).
    pub name: String,
    /// This claim's unique id.
    pub holder_id: String,
    /// Who holds it, for the refusal message (`cli:alice`).
    pub actor: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// When it was taken.
    pub acquired_at: OffsetDateTime,
    /// When it lapses unless renewed.
    pub expires_at: OffsetDateTime,
}

/// Durable state shared by the CLI and the daemon.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adapter name for logs (`sqlite`, `mongodb`).
    fn kind(&self) -> &'static str;

    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates a tenant, optionally with its first user, and the audit entry, atomically.
    /// `Conflict` if the id or (case-insensitive) name is taken, or the user's email is.
    async fn insert_tenant(&self, tenant: &Tenant, first_user: Option<&User>, audit: &AuditEntry) -> StoreResult<()>;

    /// One tenant.
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant>;

    /// Every tenant, oldest first (platform-admin listing).
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;

    /// Records a user and its audit entry atomically. `Conflict` if the email is taken.
    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()>;

    /// The users of one tenant, oldest first.
    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>>;

    /// The user with this email in any tenant (sign-in and uniqueness checks).
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// The user with this identity subject in any tenant: authentication, which then checks that
    /// the token names the user's tenant.
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>>;

    /// Whether any platform admin exists (bootstrap runs only while none does).
    async fn has_platform_admin(&self) -> StoreResult<bool>;

    /// Stores a new channel. `Conflict` if an active channel already holds its bot or page.
    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()>;

    /// One channel of a tenant.
    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel>;

    /// A channel by id alone: webhook routing, where the URL names the channel, not the tenant.
    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>>;

    /// The channels of one tenant, oldest first.
    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>>;

    /// Every channel of every tenant, in no particular order: intake's routing table, loaded
    /// ahead of the webhooks so that a store outage cannot refuse a channel intake has not yet
    /// looked up (`pipeline::intake`). Never shown across tenants.
    async fn all_channels(&self) -> StoreResult<Vec<Channel>>;

    /// Saves a changed channel (name, state, credentials, secret) with its audit entry,
    /// atomically. `Conflict` if activating it would give a bot or page two active channels.
    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()>;

    /// Removes a channel that was never announced (its provider setup failed).
    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()>;

    /// The active channel of a provider account (webhook routing by Messenger page id).
    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>>;

    /// Applies inbound events, each as one atomic unit keyed by its (tenant, channel, provider
    /// event id): raw event recorded, conversation upserted, message inserted or updated, receipts
    /// applied, the tenant's events recorded (`store::events::of_plan`, `message.status` per
    /// message a receipt advances) with their webhook deliveries, event marked PROCESSED. A
    /// replay changes nothing and reports `Duplicate`. Events of one conversation must be given in
    /// queue order; the batch may share one transaction.
    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>>;

    /// Continues the conversation of thread `from` under thread `to`: a Telegram group that
    /// became a supergroup, as a send learns it (`migrate_to_chat_id`). If `to` has a conversation
    /// too, the two become one (the older survives; messages, outbox items and aliases move to
    /// it); `from` keeps leading to it. Returns the conversation as it now is.
    async fn move_thread(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        from: &str,
        to: &str,
    ) -> StoreResult<Conversation>;

    /// One recorded inbound event of a channel, by its provider event id: what applying it did and
    /// its raw payload.
    async fn get_inbound_event(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundEventRecord>>;

    /// A tenant's conversations, most recent activity first (then by id, descending).
    async fn list_conversations(&self, tenant: &TenantId, query: &ConversationQuery) -> StoreResult<Vec<Conversation>>;

    /// One conversation of a tenant.
    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation>;

    /// A conversation's messages, newest first in provider order (order key, then id): at most
    /// `limit`, and with `before` (an order key and a message id) only those before it.
    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        before: Option<&(String, MessageId)>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;

    /// Stores a reply: the outbox item and its outbound message, counts the message in its
    /// conversation (`Conversation::count_message`), and records `reply.queued`, atomically. The sendId is unique per tenant:
    /// reused with the same text it returns the existing item and changes nothing; with other
    /// text it is a `Conflict`.
    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome>;

    /// An outbox item of a tenant.
    async fn get_outbox(&self, tenant: &TenantId, id: &OutboxId) -> StoreResult<Option<OutboxItem>>;

    /// An outbox item by id alone: the sender only, which reads the id from the send queue.
    async fn get_outbox_for_send(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>>;

    /// Outbox items, newest first (creation time, then id).
    async fn list_outbox(&self, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>>;

    /// Items the relay must publish: PENDING and due (`next_attempt_at` unset or passed), and
    /// ENQUEUED ones untouched since `stuck_before` (lost on the way to the queue). Oldest first.
    async fn outbox_due(
        &self,
        now: OffsetDateTime,
        stuck_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>>;

    /// Applies `step` to a tenant's item (`OutboxItem::apply`) and writes it, with the outbound
    /// message, the send log, the reply's event (`Applied::event`) and `audit`, atomically and
    /// only if the item's status is still the one it was loaded with (compare-and-set). Returns the item as it now is, or None if the
    /// tenant has no such item or the step does not apply to its status (someone else moved it).
    async fn transition_outbox(
        &self,
        tenant: &TenantId,
        id: &OutboxId,
        step: &Transition,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Option<OutboxItem>>;

    /// Applies [`Transition::Enqueue`] to published items (those it applies to), in one write:
    /// the relay's bookkeeping for a whole pass.
    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()>;

    /// Marks a channel's credentials as refused (or fine again), recording `channel.health` when
    /// that changes it. (`update_channel` records it too when it changes the health.)
    async fn set_channel_health(&self, id: &ChannelId, health: crate::domain::ChannelHealth) -> StoreResult<()>;

    /// Appends one audit entry.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// The newest audit entries of a tenant, newest first.
    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    /// Records that an event could not be applied: its inbound event becomes FAILED with the
    /// failure (the raw payload kept), unless it was applied meanwhile (PROCESSED stays). A later
    /// successful [`Store::apply_inbound`] takes the event over and marks it PROCESSED.
    async fn record_inbound_failure(&self, envelope: &Envelope, failure: &InboundFailure) -> StoreResult<()>;

    /// The failure recorded for an inbound event whose last attempt failed; `None` once it is
    /// applied or if it never failed.
    async fn inbound_failure(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundFailure>>;

    /// Takes `lease` if its name is free, expired, or held by `replacing` (a holder known to be
    /// dead). Returns `None` when taken, or the current holder's lease when refused.
    async fn acquire_lease(&self, lease: &Lease, replacing: Option<&str>) -> StoreResult<Option<Lease>>;

    /// Extends a lease this holder still holds; false if it lapsed and someone else took it.
    async fn renew_lease(&self, name: &str, holder_id: &str, expires_at: OffsetDateTime) -> StoreResult<bool>;

    /// Gives a lease up (a no-op if this holder no longer holds it).
    async fn release_lease(&self, name: &str, holder_id: &str) -> StoreResult<()>;

    /// How many outbox items are in `status` (the metrics' gauge).
    async fn count_outbox(&self, status: OutboxStatus) -> StoreResult<u64>;
    /// A tenant's events after `after`, oldest first, at most `limit`. Ids are gap-free and
    /// commit in order (the tenant's counter is written in each event's transaction), and the read
    /// is one snapshot, so a reader that resumes after the last id it saw never skips one; only
    /// pruning leaves a gap, at the start.
    async fn list_events(&self, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>>;

    /// One event of a tenant, if it is still kept.
    async fn get_event(&self, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>>;

    /// The last event id of each tenant named (tenants without events are left out): what live
    /// streams wait on.
    async fn event_heads(&self, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>>;

    /// Deletes up to `limit` events recorded before `before`, every tenant; returns how many.
    /// Ids are never reused: the counters stay.
    async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;

    /// Registers a webhook endpoint with its audit entry, atomically.
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()>;

    /// One endpoint of a tenant (`NotFound` for another tenant's).
    async fn get_webhook(&self, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint>;

    /// A tenant's endpoints, oldest first.
    async fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>>;

    /// Saves a changed endpoint (state, filters, description) with its audit entry, atomically.
    async fn update_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()>;

    /// Removes an endpoint with its audit entry, atomically. Its deliveries stay as history;
    /// those still pending fail when they come up.
    async fn delete_webhook(&self, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()>;

    /// Records a delivery attempt on its endpoint (`WebhookEndpoint::record`: health, and disabling
    /// it after a 410 or `disable_after` of failures), atomically. Returns the endpoint as it now
    /// is, or None if it was removed meanwhile.
    async fn record_webhook_attempt(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        attempt: &AttemptResult,
        disable_after: std::time::Duration,
    ) -> StoreResult<Option<WebhookEndpoint>>;

    /// Stores new webhook deliveries (replays), skipping any whose sendId is taken.
    async fn insert_deliveries(&self, items: &[OutboxItem]) -> StoreResult<()>;
}
