//! Embedded `Store` adapter: one SQLite file in the data dir (WAL, full sync), migrated at open.
//!
//! - [`codec`]: rows to domain values, driver errors to [`StoreError`] (a leaf);
//! - [`tenants`]: tenants, users, channels, audit log;
//! - [`messages`]: message rows, shared by the inbox and the outbox;
//! - [`items`]: outbox rows, shared by the outbox and the event fan-out;
//! - [`webhooks`]: webhook endpoints;
//! - [`events`]: the event log, numbered per tenant, and its webhook deliveries;
//! - [`outbox`]: replies and deliveries, their compare-and-set transitions, the send log;
//! - [`inbox`]: conversations, inbound events, receipts;
//! - [`operations`]: inbound failures, leases, outbox counts (operators' records);
//! - `schema_v1.sql`, `schema_v2.sql` (thread aliases), `schema_v3.sql` (inbound failures, leases),
//!   `schema_v4.sql` (events, webhook endpoints, deliveries in the outbox): the schema, applied in
//!   order.
//!
//! Imports run one way (inbox → outbox → events → {webhooks, items, messages, tenants} → codec).
//! Every write runs on the group-committing writer (`embedded::writer`, [`SqliteStore::write`]):
//! concurrent writes share one transaction and one fsync, each in its own savepoint. Reads use
//! reader connections.

mod codec;
mod events;
mod inbox;
mod items;
mod messages;
mod operations;
mod outbox;
mod tenants;
mod webhooks;

use super::{
    ApplyOutcome, ConversationQuery, CreateOutcome, InboundFailure, InboundRecord, Lease, OutboxQuery, Store,
    StoreError, StoreResult,
};
use crate::domain::inbound::InboundEventRecord;
use crate::domain::webhook::AttemptResult;
use crate::domain::{
    AuditEntry, Channel, ChannelHealth, ChannelId, ChannelKind, Conversation, ConversationId, Email, Event, EventId,
    Message, MessageId, NewEvent, OutboxId, OutboxItem, Tenant, TenantId, Transition, User, UserId, WebhookEndpoint,
    WebhookId,
};
use crate::embedded::writer::{CommitError, Writer};
use crate::embedded::{Database, OpenError};
use async_trait::async_trait;
use codec::other;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::OffsetDateTime;

/// Schema migrations, applied in order at open.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2.sql"),
    include_str!("schema_v3.sql"),
    include_str!("schema_v4.sql"),
];

/// Read-only connections next to the writer: reads (the sender's and the API's lookups) never
/// queue behind a write's fsync.
const READERS: usize = 4;

/// What a write is assumed to add to its commit when its caller does not say: a row or two and
/// their index entries. Commits are sized by these estimates (`embedded::writer::MAX_COMMIT_BYTES`).
const SMALL_WRITE: usize = 1 << 10;
/// What one applied inbound event is assumed to write: its event row with the payload, a message,
/// the conversation and their index entries.
const INBOUND_WRITE: usize = 4 << 10;

/// The SQLite store.
pub struct SqliteStore {
    writer: Writer,
    readers: Vec<Database>,
    next_reader: AtomicUsize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let opened = |e: OpenError| match e {
            OpenError::Open { .. } => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        };
        let writer = Writer::open(path, MIGRATIONS).map_err(opened)?;
        let readers = (0..READERS).map(|_| Database::open_reader(path)).collect::<Result<_, _>>().map_err(opened)?;
        Ok(Self { writer, readers, next_reader: AtomicUsize::new(0) })
    }

    /// Runs a read on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[n].run(move |c| f(c)).await
    }

    /// Runs `f` in the writer's next transaction (in its own savepoint, so a failed `f` changes
    /// nothing) and returns once that transaction has committed. Concurrent writes share the
    /// commit; another process keeping the file busy is waited for at BEGIN, before `f` runs.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.write_sized(SMALL_WRITE, f).await
    }

    /// [`SqliteStore::write`] for a write of about `bytes`.
    async fn write_sized<T, F>(&self, bytes: usize, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(bytes, f, uncommitted).await
    }
}

/// A transaction that did not commit, in the port's terms: another process kept the database busy
/// is `Unavailable` (retrying later may succeed), anything else `Other`.
fn uncommitted(e: CommitError) -> StoreError {
    match e {
        CommitError::Busy(why) => StoreError::Unavailable(why),
        CommitError::Failed(why) => StoreError::Other(why),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(other)).await
    }

    async fn insert_tenant(&self, tenant: &Tenant, first_user: Option<&User>, audit: &AuditEntry) -> StoreResult<()> {
        let (tenant, user, audit) = (tenant.clone(), first_user.cloned(), audit.clone());
        self.write(move |c| tenants::insert_tenant(c, &tenant, user.as_ref(), &audit)).await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        let id = id.clone();
        self.read(move |c| tenants::get_tenant(c, &id)).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(tenants::list_tenants).await
    }

    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()> {
        let (user, audit) = (user.clone(), audit.clone());
        self.write(move |c| {
            tenants::insert_user(c, &user)?;
            tenants::append_audit(c, &audit)
        })
        .await
    }

    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        let tenant = tenant.clone();
        self.read(move |c| tenants::list_users(c, &tenant)).await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let email = email.clone();
        self.read(move |c| tenants::find_user_by_email(c, &email)).await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.clone();
        self.read(move |c| tenants::get_user(c, &id)).await
    }

    async fn has_platform_admin(&self) -> StoreResult<bool> {
        self.read(tenants::has_platform_admin).await
    }

    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        let channel = channel.clone();
        self.write(move |c| tenants::insert_channel(c, &channel)).await
    }

    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| tenants::get_channel(c, &tenant, &id)).await
    }

    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>> {
        let id = id.clone();
        self.read(move |c| tenants::find_channel(c, &id)).await
    }

    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
        let tenant = tenant.clone();
        self.read(move |c| tenants::list_channels(c, &tenant)).await
    }

    async fn all_channels(&self) -> StoreResult<Vec<Channel>> {
        self.read(tenants::all_channels).await
    }

    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
        let (channel, audit) = (channel.clone(), audit.clone());
        self.write(move |c| {
            let before = tenants::find_channel(c, &channel.id)?;
            tenants::update_channel(c, &channel, &audit)?;
            record_health(c, &channel, before.map(|b| b.health))
        })
        .await
    }

    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |c| tenants::delete_channel(c, &tenant, &id)).await
    }

    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
        let external_id = external_id.to_owned();
        self.read(move |c| tenants::find_active_channel(c, kind, &external_id)).await
    }

    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
        let records = records.to_vec();
        self.write_sized(INBOUND_WRITE * records.len(), move |c| inbox::apply(c, &records)).await
    }

    async fn list_conversations(&self, tenant: &TenantId, query: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.read(move |c| inbox::list_conversations(c, &tenant, &query)).await
    }

    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| inbox::get_conversation(c, &tenant, &id)).await
    }

    async fn move_thread(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        from: &str,
        to: &str,
    ) -> StoreResult<Conversation> {
        let (tenant, channel, from, to) = (tenant.clone(), channel.clone(), from.to_owned(), to.to_owned());
        self.write(move |c| inbox::move_thread(c, &tenant, &channel, &from, &to).map_err(other)).await
    }

    async fn get_inbound_event(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundEventRecord>> {
        let (tenant, channel, id) = (tenant.clone(), channel.clone(), provider_event_id.to_owned());
        self.read(move |c| inbox::get_inbound_event(c, &tenant, &channel, &id)).await
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        before: Option<&(String, MessageId)>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let (tenant, conversation, before) = (tenant.clone(), conversation.clone(), before.cloned());
        self.read(move |c| messages::list(c, &tenant, &conversation, before.as_ref(), limit)).await
    }

    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
        let (item, message) = (item.clone(), message.clone());
        self.write(move |c| outbox::create(c, &item, &message)).await
    }

    async fn get_outbox(&self, tenant: &TenantId, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| outbox::get(c, Some(&tenant), &id)).await
    }

    async fn get_outbox_for_send(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        let id = id.clone();
        self.read(move |c| outbox::get(c, None, &id)).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>> {
        let query = query.clone();
        self.read(move |c| outbox::list(c, &query)).await
    }

    async fn outbox_due(
        &self,
        now: OffsetDateTime,
        stuck_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.read(move |c| outbox::due(c, now, stuck_before, limit)).await
    }

    async fn transition_outbox(
        &self,
        tenant: &TenantId,
        id: &OutboxId,
        step: &Transition,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Option<OutboxItem>> {
        let (tenant, id, step, audit) = (tenant.clone(), id.clone(), step.clone(), audit.cloned());
        self.write(move |c| outbox::transition(c, &tenant, &id, &step, audit.as_ref())).await
    }

    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()> {
        let ids = ids.to_vec();
        self.write(move |c| outbox::mark_enqueued(c, &ids)).await
    }

    async fn set_channel_health(&self, id: &ChannelId, health: ChannelHealth) -> StoreResult<()> {
        let id = id.clone();
        self.write(move |c| {
            let Some(mut channel) = tenants::find_channel(c, &id)? else { return Ok(()) };
            let before = channel.health;
            tenants::set_channel_health(c, &id, health)?;
            channel.health = health;
            record_health(c, &channel, Some(before))
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let entry = entry.clone();
        self.write(move |c| tenants::append_audit(c, &entry)).await
    }

    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let tenant = tenant.clone();
        self.read(move |c| tenants::list_audit(c, &tenant, limit)).await
    }

    async fn record_inbound_failure(
        &self,
        envelope: &crate::domain::inbound::Envelope,
        failure: &InboundFailure,
    ) -> StoreResult<()> {
        let (envelope, failure) = (envelope.clone(), failure.clone());
        self.write(move |c| operations::record_inbound_failure(c, &envelope, &failure)).await
    }

    async fn inbound_failure(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundFailure>> {
        let (tenant, channel, event) = (tenant.clone(), channel.clone(), provider_event_id.to_owned());
        self.read(move |c| operations::inbound_failure(c, &tenant, &channel, &event)).await
    }

    async fn acquire_lease(&self, lease: &Lease, replacing: Option<&str>) -> StoreResult<Option<Lease>> {
        let (lease, replacing) = (lease.clone(), replacing.map(str::to_owned));
        self.write(move |c| operations::acquire_lease(c, &lease, replacing.as_deref())).await
    }

    async fn renew_lease(&self, name: &str, holder_id: &str, expires_at: OffsetDateTime) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder_id.to_owned());
        self.write(move |c| operations::renew_lease(c, &name, &holder, expires_at)).await
    }

    async fn release_lease(&self, name: &str, holder_id: &str) -> StoreResult<()> {
        let (name, holder) = (name.to_owned(), holder_id.to_owned());
        self.write(move |c| operations::release_lease(c, &name, &holder)).await
    }

    async fn count_outbox(&self, status: crate::domain::OutboxStatus) -> StoreResult<u64> {
        self.read(move |c| operations::count_outbox(c, status)).await
    }

    async fn list_events(&self, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>> {
        let tenant = tenant.clone();
        self.read(move |c| events::list(c, &tenant, after, limit)).await
    }

    async fn get_event(&self, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>> {
        let tenant = tenant.clone();
        self.read(move |c| events::get(c, &tenant, id)).await
    }

    async fn event_heads(&self, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>> {
        let tenants = tenants.to_vec();
        self.read(move |c| events::heads(c, &tenants)).await
    }

    async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.write(move |c| events::prune(c, before, limit)).await
    }

    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        let (endpoint, audit) = (endpoint.clone(), audit.clone());
        self.write(move |c| webhooks::insert(c, &endpoint, &audit)).await
    }

    async fn get_webhook(&self, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| webhooks::get(c, &tenant, &id)).await
    }

    async fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
        let tenant = tenant.clone();
        self.read(move |c| webhooks::list(c, &tenant)).await
    }

    async fn update_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        let (endpoint, audit) = (endpoint.clone(), audit.clone());
        self.write(move |c| {
            webhooks::update(c, &endpoint)?;
            tenants::append_audit(c, &audit)
        })
        .await
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()> {
        let (tenant, id, audit) = (tenant.clone(), id.clone(), audit.clone());
        self.write(move |c| webhooks::delete(c, &tenant, &id, &audit)).await
    }

    async fn record_webhook_attempt(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        attempt: &AttemptResult,
        disable_after: std::time::Duration,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let (tenant, id, attempt) = (tenant.clone(), id.clone(), attempt.clone());
        self.write(move |c| webhooks::record_attempt(c, &tenant, &id, &attempt, disable_after)).await
    }

    async fn insert_deliveries(&self, items: &[OutboxItem]) -> StoreResult<()> {
        let items = items.to_vec();
        self.write(move |c| {
            for item in &items {
                items::insert(c, item, true).map_err(other)?;
            }
            Ok(())
        })
        .await
    }
}

/// Records `channel.health` when the channel's health differs from `before`.
fn record_health(c: &Connection, channel: &Channel, before: Option<ChannelHealth>) -> StoreResult<()> {
    if before.is_some_and(|b| b != channel.health) {
        let event = NewEvent::channel_health(channel, channel.health);
        events::record(c, &channel.tenant_id, vec![event], crate::domain::now()).map_err(other)?;
    }
    Ok(())
}
