//! A `Store` that records metrics around another: call latency and errors per operation. The
//! app wraps whichever adapter the settings chose.

use super::*;
use crate::metrics::{STORE_CALL, STORE_ERRORS};
use metrics::{counter, histogram};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Measures every call of the store it wraps.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self { inner }
    }

    /// Runs one call, recording its latency under `op` and, if it fails, its error kind.
    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        histogram!(STORE_CALL, "op" => op).record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            let kind = match e {
                StoreError::NotFound(_) => "not_found",
                StoreError::Conflict(_) => "conflict",
                StoreError::Unavailable(_) => "unavailable",
                StoreError::Other(_) => "other",
            };
            counter!(STORE_ERRORS, "op" => op, "error" => kind).increment(1);
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn insert_tenant(&self, tenant: &Tenant, first_user: Option<&User>, audit: &AuditEntry) -> StoreResult<()> {
        self.timed("insert_tenant", self.inner.insert_tenant(tenant, first_user, audit)).await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        self.timed("get_tenant", self.inner.get_tenant(id)).await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.timed("list_tenants", self.inner.list_tenants()).await
    }

    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()> {
        self.timed("insert_user", self.inner.insert_user(user, audit)).await
    }

    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        self.timed("list_users", self.inner.list_users(tenant)).await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.timed("find_user_by_email", self.inner.find_user_by_email(email)).await
    }

    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.timed("get_user", self.inner.get_user(id)).await
    }

    async fn has_platform_admin(&self) -> StoreResult<bool> {
        self.timed("has_platform_admin", self.inner.has_platform_admin()).await
    }

    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        self.timed("insert_channel", self.inner.insert_channel(channel)).await
    }

    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
        self.timed("get_channel", self.inner.get_channel(tenant, id)).await
    }

    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>> {
        self.timed("find_channel", self.inner.find_channel(id)).await
    }

    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
        self.timed("list_channels", self.inner.list_channels(tenant)).await
    }

    async fn all_channels(&self) -> StoreResult<Vec<Channel>> {
        self.timed("all_channels", self.inner.all_channels()).await
    }

    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
        self.timed("update_channel", self.inner.update_channel(channel, audit)).await
    }

    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
        self.timed("delete_channel", self.inner.delete_channel(tenant, id)).await
    }

    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
        self.timed("find_active_channel", self.inner.find_active_channel(kind, external_id)).await
    }

    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
        self.timed("apply_inbound", self.inner.apply_inbound(records)).await
    }

    async fn move_thread(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        from: &str,
        to: &str,
    ) -> StoreResult<Conversation> {
        self.timed("move_thread", self.inner.move_thread(tenant, channel, from, to)).await
    }

    async fn get_inbound_event(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundEventRecord>> {
        self.timed("get_inbound_event", self.inner.get_inbound_event(tenant, channel, provider_event_id)).await
    }

    async fn list_conversations(&self, tenant: &TenantId, query: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        self.timed("list_conversations", self.inner.list_conversations(tenant, query)).await
    }

    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
        self.timed("get_conversation", self.inner.get_conversation(tenant, id)).await
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        before: Option<&(String, MessageId)>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        self.timed("list_messages", self.inner.list_messages(tenant, conversation, before, limit)).await
    }

    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
        self.timed("create_outbound", self.inner.create_outbound(item, message)).await
    }

    async fn get_outbox(&self, tenant: &TenantId, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        self.timed("get_outbox", self.inner.get_outbox(tenant, id)).await
    }

    async fn get_outbox_for_send(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        self.timed("get_outbox_for_send", self.inner.get_outbox_for_send(id)).await
    }

    async fn list_outbox(&self, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>> {
        self.timed("list_outbox", self.inner.list_outbox(query)).await
    }

    async fn outbox_due(
        &self,
        now: OffsetDateTime,
        stuck_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.timed("outbox_due", self.inner.outbox_due(now, stuck_before, limit)).await
    }

    async fn transition_outbox(
        &self,
        tenant: &TenantId,
        id: &OutboxId,
        step: &Transition,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Option<OutboxItem>> {
        self.timed("transition_outbox", self.inner.transition_outbox(tenant, id, step, audit)).await
    }

    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()> {
        self.timed("mark_enqueued", self.inner.mark_enqueued(ids)).await
    }

    async fn set_channel_health(&self, id: &ChannelId, health: crate::domain::ChannelHealth) -> StoreResult<()> {
        self.timed("set_channel_health", self.inner.set_channel_health(id, health)).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.timed("append_audit", self.inner.append_audit(entry)).await
    }

    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.timed("list_audit", self.inner.list_audit(tenant, limit)).await
    }

    async fn record_inbound_failure(&self, envelope: &Envelope, failure: &InboundFailure) -> StoreResult<()> {
        self.timed("record_inbound_failure", self.inner.record_inbound_failure(envelope, failure)).await
    }

    async fn inbound_failure(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<InboundFailure>> {
        self.timed("inbound_failure", self.inner.inbound_failure(tenant, channel, provider_event_id)).await
    }

    async fn acquire_lease(&self, lease: &Lease, replacing: Option<&str>) -> StoreResult<Option<Lease>> {
        self.timed("acquire_lease", self.inner.acquire_lease(lease, replacing)).await
    }

    async fn renew_lease(&self, name: &str, holder_id: &str, expires_at: OffsetDateTime) -> StoreResult<bool> {
        self.timed("renew_lease", self.inner.renew_lease(name, holder_id, expires_at)).await
    }

    async fn release_lease(&self, name: &str, holder_id: &str) -> StoreResult<()> {
        self.timed("release_lease", self.inner.release_lease(name, holder_id)).await
    }

    async fn count_outbox(&self, status: OutboxStatus) -> StoreResult<u64> {
        self.timed("count_outbox", self.inner.count_outbox(status)).await
    }

    async fn list_events(&self, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>> {
        self.timed("list_events", self.inner.list_events(tenant, after, limit)).await
    }

    async fn get_event(&self, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>> {
        self.timed("get_event", self.inner.get_event(tenant, id)).await
    }

    async fn event_heads(&self, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>> {
        self.timed("event_heads", self.inner.event_heads(tenants)).await
    }

    async fn prune_events(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.timed("prune_events", self.inner.prune_events(before, limit)).await
    }

    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        self.timed("insert_webhook", self.inner.insert_webhook(endpoint, audit)).await
    }

    async fn get_webhook(&self, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint> {
        self.timed("get_webhook", self.inner.get_webhook(tenant, id)).await
    }

    async fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
        self.timed("list_webhooks", self.inner.list_webhooks(tenant)).await
    }

    async fn update_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        self.timed("update_webhook", self.inner.update_webhook(endpoint, audit)).await
    }

    async fn delete_webhook(&self, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()> {
        self.timed("delete_webhook", self.inner.delete_webhook(tenant, id, audit)).await
    }

    async fn record_webhook_attempt(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        attempt: &AttemptResult,
        disable_after: std::time::Duration,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        self.timed("record_webhook_attempt", self.inner.record_webhook_attempt(tenant, id, attempt, disable_after))
            .await
    }

    async fn insert_deliveries(&self, items: &[OutboxItem]) -> StoreResult<()> {
        self.timed("insert_deliveries", self.inner.insert_deliveries(items)).await
    }
}
