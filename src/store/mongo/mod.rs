//! Production `Store` adapter: MongoDB (database `kamsg` by default). Indexes are created
//! idempotently at connect; multi-document changes run in transactions (a replica set is needed).
//!
//! - [`codec`]: documents to domain values and back (a leaf);
//! - [`errors`]: driver errors to [`StoreError`] (a leaf);
//! - [`session`]: the shared database handle and its transactions;
//! - [`indexes`]: the unique keys and lookups, created at connect;
//! - [`tenants`]: tenants, users, channels, audit log;
//! - [`webhooks`]: webhook endpoints;
//! - [`events`]: the event log, numbered per tenant, and its webhook deliveries;
//! - [`outbox`]: replies and deliveries, their compare-and-set transitions, the send log;
//! - [`inbox`]: conversations, messages, inbound events, receipts;
//! - [`operations`]: inbound failures, leases, outbox counts (operators' records).
//!
//! Imports run one way (inbox → outbox → events → session → errors → codec; `tenants` also
//! records events; `webhooks` and `indexes` beside `outbox`).

mod codec;
mod errors;
mod events;
mod inbox;
mod indexes;
mod operations;
mod outbox;
mod session;
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
    Message, MessageId, OutboxId, OutboxItem, Tenant, TenantId, Transition, User, UserId, WebhookEndpoint, WebhookId,
};
use async_trait::async_trait;
use errors::{map_err, redact_error};
use mongodb::Client;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use session::Db;
use std::time::Duration;
use time::OffsetDateTime;

/// The MongoDB store.
pub struct MongoStore {
    db: Db,
}

impl MongoStore {
    /// Connects, checks the server answers, and creates the indexes (a no-op when they exist).
    pub async fn connect(uri: &str, database: &str) -> StoreResult<Self> {
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Other(format!("invalid MongoDB URI: {}", redact_error(&e))))?;
        options.app_name.get_or_insert_with(|| "kamshub".to_owned());
        options.server_selection_timeout.get_or_insert(Duration::from_secs(5));
        options.connect_timeout.get_or_insert(Duration::from_secs(5));
        let client = Client::with_options(options).map_err(map_err)?;
        let db = Db::new(client, database);
        indexes::ensure(&db).await?;
        events::ensure_counters(&db).await?;
        Ok(Self { db })
    }
}

#[async_trait]
impl Store for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.database().run_command(doc! {"ping": 1}).await.map_err(map_err)?;
        Ok(())
    }

    async fn insert_tenant(&self, tenant: &Tenant, first_user: Option<&User>, audit: &AuditEntry) -> StoreResult<()> {
        tenants::insert_tenant(&self.db, tenant, first_user, audit).await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        tenants::get_tenant(&self.db, id).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        tenants::list_tenants(&self.db).await
    }

    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()> {
        tenants::insert_user(&self.db, user, audit).await
    }

    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        tenants::list_users(&self.db, tenant).await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        tenants::find_user_by_email(&self.db, email).await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        tenants::get_user(&self.db, id).await
    }

    async fn has_platform_admin(&self) -> StoreResult<bool> {
        tenants::has_platform_admin(&self.db).await
    }

    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        tenants::insert_channel(&self.db, channel).await
    }

    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
        tenants::get_channel(&self.db, tenant, id).await
    }

    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>> {
        tenants::find_channel(&self.db, id).await
    }

    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
        tenants::list_channels(&self.db, tenant).await
    }

    async fn all_channels(&self) -> StoreResult<Vec<Channel>> {
        tenants::all_channels(&self.db).await
    }

    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
        tenants::update_channel(&self.db, channel, audit).await
    }

    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
        tenants::delete_channel(&self.db, tenant, id).await
    }

    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
        tenants::find_active_channel(&self.db, kind, external_id).await
    }

    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
        inbox::apply(&self.db, records).await
    }

    async fn list_conversations(&self, tenant: &TenantId, query: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        inbox::list_conversations(&self.db, tenant, query).await
    }

    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
        inbox::get_conversation(&self.db, tenant, id).await
    }

    async fn move_thread(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        from: &str,
        to: &str,
    ) -> StoreResult<Conversation> {
        inbox::move_thread(&self.db, tenant, channel, from, to).await
    }

    async fn get_inbound_event(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundEventRecord>> {
        inbox::get_inbound_event(&self.db, tenant, channel, provider_event_id).await
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        before: Option<&(String, MessageId)>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        inbox::list_messages(&self.db, tenant, conversation, before, limit).await
    }

    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
        outbox::create(&self.db, item, message).await
    }

    async fn get_outbox(&self, tenant: &TenantId, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        outbox::get(&self.db, Some(tenant), id).await
    }

    async fn get_outbox_for_send(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        outbox::get(&self.db, None, id).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>> {
        outbox::list(&self.db, query).await
    }

    async fn outbox_due(
        &self,
        now: OffsetDateTime,
        stuck_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        outbox::due(&self.db, now, stuck_before, limit).await
    }

    async fn transition_outbox(
        &self,
        tenant: &TenantId,
        id: &OutboxId,
        step: &Transition,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Option<OutboxItem>> {
        outbox::transition(&self.db, tenant, id, step, audit).await
    }

    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()> {
        outbox::mark_enqueued(&self.db, ids).await
    }

    async fn set_channel_health(&self, id: &ChannelId, health: ChannelHealth) -> StoreResult<()> {
        tenants::set_channel_health(&self.db, id, health).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        tenants::append_audit(&self.db, entry).await
    }

    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        tenants::list_audit(&self.db, tenant, limit).await
    }

    async fn record_inbound_failure(
        &self,
        envelope: &crate::domain::inbound::Envelope,
        failure: &InboundFailure,
    ) -> StoreResult<()> {
        operations::record_inbound_failure(&self.db, envelope, failure).await
    }

    async fn inbound_failure(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundFailure>> {
        operations::inbound_failure(&self.db, tenant, channel, provider_event_id).await
    }

    async fn acquire_lease(&self, lease: &Lease, replacing: Option<&str>) -> StoreResult<Option<Lease>> {
        operations::acquire_lease(&self.db, lease, replacing).await
    }

    async fn renew_lease(&self, name: &str, holder_id: &str, expires_at: OffsetDateTime) -> StoreResult<bool> {
        operations::renew_lease(&self.db, name, holder_id, expires_at).await
    }

    async fn release_lease(&self, name: &str, holder_id: &str) -> StoreResult<()> {
        operations::release_lease(&self.db, name, holder_id).await
    }

    async fn count_outbox(&self, status: crate::domain::OutboxStatus) -> StoreResult<u64> {
        operations::count_outbox(&self.db, status).await
    }

    async fn list_events(&self, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>> {
        events::list(&self.db, tenant, after, limit).await
    }

    async fn get_event(&self, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>> {
        events::get(&self.db, tenant, id).await
    }

    async fn event_heads(&self, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>> {
        events::heads(&self.db, tenants).await
    }

    async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        events::prune(&self.db, before, limit).await
    }

    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        webhooks::insert(&self.db, endpoint, audit).await
    }

    async fn get_webhook(&self, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint> {
        webhooks::get(&self.db, tenant, id).await
    }

    async fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
        webhooks::list(&self.db, tenant).await
    }

    async fn update_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        webhooks::update(&self.db, endpoint, audit).await
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()> {
        webhooks::delete(&self.db, tenant, id, audit).await
    }

    async fn record_webhook_attempt(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        attempt: &AttemptResult,
        disable_after: std::time::Duration,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        webhooks::record_attempt(&self.db, tenant, id, attempt, disable_after).await
    }

    async fn insert_deliveries(&self, items: &[OutboxItem]) -> StoreResult<()> {
        outbox::insert_deliveries(&self.db, items).await
    }
}
