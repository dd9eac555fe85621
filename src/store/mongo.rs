//! Production `Store` adapter: MongoDB (database `kamsg` by default). Indexes are created
//! idempotently at connect; multi-document changes run in transactions (a replica set is needed).

use super::mongo_inbox::{
    self, CorruptRecord, conversation_from, corrupt, dt, message_from, str_of as get_str, time_of as get_time,
};
use super::mongo_outbox;
use super::{ApplyOutcome, CreateOutcome, InboundRecord, OutboxTransition, Store, StoreError, StoreResult};
use crate::domain::{
    AuditEntry, AuditId, Channel, ChannelId, ChannelKind, Conversation, ConversationId, DisplayName, Email, ExternalId,
    Message, OutboxId, OutboxItem, OutboxStatus, Role, Tenant, TenantId, TenantName, User, UserId,
};
use crate::sealing::Sealed;
use async_trait::async_trait;
use futures::TryStreamExt;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use std::time::Duration;

/// The MongoDB store.
pub struct MongoStore {
    client: Client,
    db: Database,
}

/// Index names, so a duplicate-key error says which key clashed.
const TENANT_NAME_INDEX: &str = "tenants_name_key";
const USER_EMAIL_INDEX: &str = "users_email";
const CHANNEL_ACTIVE_INDEX: &str = "channels_active_external";

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
        let store = Self { db: client.database(database), client };
        store.ensure_indexes().await?;
        Ok(store)
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn ensure_indexes(&self) -> StoreResult<()> {
        let unique = |name: &str| IndexOptions::builder().name(name.to_owned()).unique(true).build();
        let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
        let unique_where = |name: &str, filter: Document| {
            IndexOptions::builder().name(name.to_owned()).unique(true).partial_filter_expression(filter).build()
        };
        let index = |keys: Document, options: IndexOptions| IndexModel::builder().keys(keys).options(options).build();
        let plan: Vec<(&str, Vec<IndexModel>)> = vec![
            ("tenants", vec![index(doc! {"nameKey": 1}, unique(TENANT_NAME_INDEX))]),
            (
                "users",
                vec![
                    index(doc! {"email": 1}, unique(USER_EMAIL_INDEX)),
                    index(doc! {"tenantId": 1, "createdAt": 1}, named("users_by_tenant")),
                    index(doc! {"role": 1}, named("users_by_role")),
                ],
            ),
            (
                "channels",
                vec![
                    index(
                        doc! {"type": 1, "externalId": 1},
                        IndexOptions::builder()
                            .name(CHANNEL_ACTIVE_INDEX.to_owned())
                            .unique(true)
                            .partial_filter_expression(doc! {"isActive": true})
                            .build(),
                    ),
                    index(doc! {"tenantId": 1, "createdAt": 1}, named("channels_by_tenant")),
                ],
            ),
            ("audit_log", vec![index(doc! {"tenantId": 1, "at": -1}, named("audit_by_tenant"))]),
            (
                "conversations",
                vec![
                    index(
                        doc! {"tenantId": 1, "channelId": 1, "externalThreadId": 1},
                        unique("conversations_by_thread"),
                    ),
                    index(doc! {"tenantId": 1, "lastMessageAt": -1}, named("conversations_by_recency")),
                ],
            ),
            (
                "messages",
                vec![
                    index(
                        doc! {"tenantId": 1, "channelId": 1, "externalMessageId": 1},
                        unique_where("messages_by_external_id", doc! {"externalMessageId": {"$type": "string"}}),
                    ),
                    index(
                        doc! {"tenantId": 1, "sendId": 1},
                        unique_where("messages_by_send_id", doc! {"sendId": {"$type": "string"}}),
                    ),
                    index(
                        doc! {"tenantId": 1, "conversationId": 1, "providerOrder": 1},
                        named("messages_by_conversation"),
                    ),
                ],
            ),
            (
                "inbound_events",
                vec![index(doc! {"tenantId": 1, "channelId": 1, "providerEventId": 1}, unique("inbound_events_key"))],
            ),
            (
                "outbox_send",
                vec![
                    index(doc! {"tenantId": 1, "sendId": 1}, unique("outbox_by_send_id")),
                    index(doc! {"status": 1, "updatedAt": 1}, named("outbox_by_status")),
                ],
            ),
            ("send_log", vec![index(doc! {"tenantId": 1, "outboxId": 1, "attempt": 1}, named("send_log_by_outbox"))]),
        ];
        for (collection, indexes) in plan {
            self.coll(collection).create_indexes(indexes).await.map_err(map_err)?;
        }
        Ok(())
    }

    /// Runs `body` in a transaction, retrying the whole of it on a transient transaction error.
    async fn transaction<R, F>(&self, mut body: F) -> mongodb::error::Result<R>
    where
        F: for<'s> FnMut(&'s mut ClientSession) -> futures::future::BoxFuture<'s, mongodb::error::Result<R>>,
    {
        let mut session = self.client.start_session().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            session.start_transaction().await?;
            let result = match body(&mut session).await {
                Ok(value) => session.commit_transaction().await.map(|()| value),
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) if attempt < 3 && e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The driver's error text, which for a bad URI could echo credentials, reduced to its kind.
fn redact_error(e: &mongodb::error::Error) -> String {
    match e.kind.as_ref() {
        ErrorKind::InvalidArgument { .. } => "the connection string is malformed".to_owned(),
        _ => "the connection string could not be used".to_owned(),
    }
}

fn duplicate_key_message(e: &mongodb::error::Error) -> Option<String> {
    let (code, message) = match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => (w.code, w.message.clone()),
        ErrorKind::Command(c) => (c.code, c.message.clone()),
        ErrorKind::InsertMany(m) => {
            let w = m.write_errors.as_ref()?.first()?;
            (w.code, w.message.clone())
        }
        _ => return None,
    };
    (code == 11000).then_some(message)
}

fn map_err(e: mongodb::error::Error) -> StoreError {
    if let Some(CorruptRecord(why)) = e.get_custom::<CorruptRecord>() {
        return StoreError::Other(why.clone());
    }
    if let Some(message) = duplicate_key_message(&e) {
        return StoreError::Conflict(message);
    }
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            StoreError::Unavailable(e.to_string())
        }
        _ if e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

/// Turns a duplicate-key conflict into `friendly`, naming the key in terms a user knows.
fn conflict_as(e: mongodb::error::Error, friendly: impl Fn(&str) -> Option<String>) -> StoreError {
    match map_err(e) {
        StoreError::Conflict(raw) => StoreError::Conflict(friendly(&raw).unwrap_or(raw)),
        other => other,
    }
}

fn tenant_doc(t: &Tenant) -> Document {
    doc! {"_id": t.id.as_str(), "name": t.name.as_str(), "nameKey": t.name.key(), "createdAt": dt(t.created_at)}
}

fn tenant_from(d: &Document) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: TenantId::parse(get_str(d, "_id")?).map_err(|e| corrupt("tenant id", e))?,
        name: TenantName::parse(get_str(d, "name")?).map_err(|e| corrupt("tenant name", e))?,
        created_at: get_time(d, "createdAt")?,
    })
}

fn user_doc(u: &User) -> Document {
    doc! {
        "_id": u.id.as_str(), "email": u.email.as_str(), "tenantId": u.tenant_id.as_str(),
        "role": u.role.as_str(), "createdAt": dt(u.created_at),
    }
}

fn user_from(d: &Document) -> StoreResult<User> {
    Ok(User {
        id: UserId::parse(get_str(d, "_id")?).map_err(|e| corrupt("user id", e))?,
        email: Email::parse(get_str(d, "email")?).map_err(|e| corrupt("email", e))?,
        tenant_id: TenantId::parse(get_str(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        role: get_str(d, "role")?.parse().map_err(|e| corrupt("role", e))?,
        created_at: get_time(d, "createdAt")?,
    })
}

fn channel_doc(c: &Channel) -> Document {
    doc! {
        "_id": c.id.as_str(), "tenantId": c.tenant_id.as_str(), "type": c.kind.as_str(),
        "displayName": c.display_name.as_str(), "externalId": c.external_id.as_str(),
        "credentials": c.credentials.as_str(),
        "webhookSecret": c.webhook_secret.as_ref().map(|s| s.as_str()),
        "isActive": c.is_active, "health": c.health.as_str(), "autoReply": c.auto_reply.clone(),
        "createdAt": dt(c.created_at), "updatedAt": dt(c.updated_at),
    }
}

fn channel_from(d: &Document) -> StoreResult<Channel> {
    Ok(Channel {
        id: ChannelId::parse(get_str(d, "_id")?).map_err(|e| corrupt("channel id", e))?,
        tenant_id: TenantId::parse(get_str(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        kind: get_str(d, "type")?.parse::<ChannelKind>().map_err(|e| corrupt("channel type", e))?,
        display_name: DisplayName::parse(get_str(d, "displayName")?).map_err(|e| corrupt("display name", e))?,
        external_id: ExternalId::from_stored(get_str(d, "externalId")?.to_owned()),
        credentials: Sealed::from_stored(get_str(d, "credentials")?.to_owned()),
        webhook_secret: d.get_str("webhookSecret").ok().map(|s| Sealed::from_stored(s.to_owned())),
        is_active: d.get_bool("isActive").map_err(|e| corrupt("isActive", e))?,
        health: d.get_str("health").unwrap_or("ok").parse().map_err(|e| corrupt("health", e))?,
        auto_reply: d.get_str("autoReply").ok().map(str::to_owned),
        created_at: get_time(d, "createdAt")?,
        updated_at: get_time(d, "updatedAt")?,
    })
}

pub(super) fn audit_doc(a: &AuditEntry) -> Document {
    doc! {
        "_id": a.id.as_str(), "tenantId": a.tenant_id.as_str(), "actor": &a.actor, "action": &a.action,
        "target": &a.target,
        "details": bson::to_bson(&a.details).unwrap_or(Bson::Null),
        "at": dt(a.at),
    }
}

fn audit_from(d: &Document) -> StoreResult<AuditEntry> {
    let details = d.get("details").cloned().unwrap_or(Bson::Null).into_relaxed_extjson();
    Ok(AuditEntry {
        id: AuditId::parse(get_str(d, "_id")?).map_err(|e| corrupt("audit id", e))?,
        tenant_id: TenantId::parse(get_str(d, "tenantId")?).map_err(|e| corrupt("tenant id", e))?,
        actor: get_str(d, "actor")?.to_owned(),
        action: get_str(d, "action")?.to_owned(),
        target: get_str(d, "target")?.to_owned(),
        details,
        at: get_time(d, "at")?,
    })
}

fn channel_conflict(c: &Channel) -> impl Fn(&str) -> Option<String> + '_ {
    move |raw| {
        raw.contains(CHANNEL_ACTIVE_INDEX).then(|| {
            let noun = if c.kind == ChannelKind::Telegram { "bot" } else { "page" };
            format!("{} {noun} `{}` is already connected to an active channel", c.kind, c.external_id.as_str())
        })
    }
}

fn user_conflict(u: &User) -> impl Fn(&str) -> Option<String> + '_ {
    move |raw| raw.contains(USER_EMAIL_INDEX).then(|| format!("a user with email {} already exists", u.email))
}

async fn collect<T>(
    cursor: mongodb::Cursor<Document>,
    convert: fn(&Document) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let docs: Vec<Document> = cursor.try_collect().await.map_err(map_err)?;
    docs.iter().map(convert).collect()
}

#[async_trait]
impl Store for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db.run_command(doc! {"ping": 1}).await.map_err(map_err)?;
        Ok(())
    }

    async fn insert_tenant(&self, tenant: &Tenant, first_user: Option<&User>, audit: &AuditEntry) -> StoreResult<()> {
        let (tenants, users, audit_log) = (self.coll("tenants"), self.coll("users"), self.coll("audit_log"));
        let (t, u, a) = (tenant_doc(tenant), first_user.map(user_doc), audit_doc(audit));
        self.transaction(move |s| {
            let (tenants, users, audit_log) = (tenants.clone(), users.clone(), audit_log.clone());
            let (t, u, a) = (t.clone(), u.clone(), a.clone());
            Box::pin(async move {
                tenants.insert_one(t).session(&mut *s).await?;
                if let Some(u) = u {
                    users.insert_one(u).session(&mut *s).await?;
                }
                audit_log.insert_one(a).session(&mut *s).await?;
                Ok(())
            })
        })
        .await
        .map_err(|e| match map_err(e) {
            StoreError::Conflict(raw) if raw.contains(TENANT_NAME_INDEX) => {
                StoreError::Conflict(format!("a tenant named `{}` already exists", tenant.name))
            }
            StoreError::Conflict(raw) if raw.contains(USER_EMAIL_INDEX) => StoreError::Conflict(format!(
                "a user with email {} already exists",
                first_user.map(|u| u.email.as_str()).unwrap_or_default()
            )),
            StoreError::Conflict(_) => StoreError::Conflict(format!("tenant `{}` already exists", tenant.id)),
            other => other,
        })
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        let found = self.coll("tenants").find_one(doc! {"_id": id.as_str()}).await.map_err(map_err)?;
        tenant_from(&found.ok_or_else(|| StoreError::NotFound(format!("tenant `{id}`")))?)
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let cursor = self.coll("tenants").find(doc! {}).sort(doc! {"createdAt": 1, "_id": 1}).await.map_err(map_err)?;
        collect(cursor, tenant_from).await
    }

    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()> {
        let (users, audit_log) = (self.coll("users"), self.coll("audit_log"));
        let (u, a) = (user_doc(user), audit_doc(audit));
        let result = self
            .transaction(move |s| {
                let (users, audit_log, u, a) = (users.clone(), audit_log.clone(), u.clone(), a.clone());
                Box::pin(async move {
                    users.insert_one(u).session(&mut *s).await?;
                    audit_log.insert_one(a).session(&mut *s).await?;
                    Ok(())
                })
            })
            .await;
        result.map_err(|e| conflict_as(e, user_conflict(user)))
    }

    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        let cursor = self
            .coll("users")
            .find(doc! {"tenantId": tenant.as_str()})
            .sort(doc! {"createdAt": 1, "_id": 1})
            .await
            .map_err(map_err)?;
        collect(cursor, user_from).await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let found = self.coll("users").find_one(doc! {"email": email.as_str()}).await.map_err(map_err)?;
        found.as_ref().map(user_from).transpose()
    }

    async fn has_platform_admin(&self) -> StoreResult<bool> {
        let found = self.coll("users").find_one(doc! {"role": Role::PlatformAdmin.as_str()}).await.map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        self.coll("channels")
            .insert_one(channel_doc(channel))
            .await
            .map_err(|e| conflict_as(e, channel_conflict(channel)))?;
        Ok(())
    }

    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
        let found = self
            .coll("channels")
            .find_one(doc! {"_id": id.as_str(), "tenantId": tenant.as_str()})
            .await
            .map_err(map_err)?;
        channel_from(&found.ok_or_else(|| StoreError::NotFound(format!("channel `{id}` in tenant `{tenant}`")))?)
    }

    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>> {
        let found = self.coll("channels").find_one(doc! {"_id": id.as_str()}).await.map_err(map_err)?;
        found.as_ref().map(channel_from).transpose()
    }

    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
        let cursor = self
            .coll("channels")
            .find(doc! {"tenantId": tenant.as_str()})
            .sort(doc! {"createdAt": 1, "_id": 1})
            .await
            .map_err(map_err)?;
        collect(cursor, channel_from).await
    }

    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
        let (channels, audit_log) = (self.coll("channels"), self.coll("audit_log"));
        let filter = doc! {"_id": channel.id.as_str(), "tenantId": channel.tenant_id.as_str()};
        let set = doc! {"$set": {
            "displayName": channel.display_name.as_str(),
            "credentials": channel.credentials.as_str(),
            "webhookSecret": channel.webhook_secret.as_ref().map(|s| s.as_str()),
            "isActive": channel.is_active,
            "health": channel.health.as_str(),
            "autoReply": channel.auto_reply.clone(),
            "updatedAt": dt(channel.updated_at),
        }};
        let a = audit_doc(audit);
        let missing = StoreError::NotFound(format!("channel `{}` in tenant `{}`", channel.id, channel.tenant_id));
        let result = self
            .transaction(move |s| {
                let (channels, audit_log) = (channels.clone(), audit_log.clone());
                let (filter, set, a) = (filter.clone(), set.clone(), a.clone());
                Box::pin(async move {
                    let updated = channels.update_one(filter, set).session(&mut *s).await?;
                    if updated.matched_count == 0 {
                        return Err(mongodb::error::Error::custom(NotFoundMarker));
                    }
                    audit_log.insert_one(a).session(&mut *s).await?;
                    Ok(())
                })
            })
            .await;
        match result {
            Err(e) if e.get_custom::<NotFoundMarker>().is_some() => Err(missing),
            Err(e) => Err(conflict_as(e, channel_conflict(channel))),
            Ok(()) => Ok(()),
        }
    }

    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
        self.coll("channels")
            .delete_one(doc! {"_id": id.as_str(), "tenantId": tenant.as_str()})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
        let filter = doc! {"type": kind.as_str(), "externalId": external_id, "isActive": true};
        let found = self.coll("channels").find_one(filter).await.map_err(map_err)?;
        found.as_ref().map(channel_from).transpose()
    }

    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
        let db = self.db.clone();
        let records = records.to_vec();
        self.transaction(move |s| {
            let (db, records) = (db.clone(), records.clone());
            Box::pin(async move { mongo_inbox::apply(&db, s, &records).await })
        })
        .await
        .map_err(map_err)
    }

    async fn list_conversations(
        &self,
        tenant: &TenantId,
        channel: Option<&ChannelId>,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let mut filter = doc! {"tenantId": tenant.as_str()};
        if let Some(channel) = channel {
            filter.insert("channelId", channel.as_str());
        }
        let cursor = self
            .coll("conversations")
            .find(filter)
            .sort(doc! {"lastMessageAt": -1, "_id": -1})
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, conversation_from).await
    }

    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
        let found = self
            .coll("conversations")
            .find_one(doc! {"_id": id.as_str(), "tenantId": tenant.as_str()})
            .await
            .map_err(map_err)?;
        conversation_from(
            &found.ok_or_else(|| StoreError::NotFound(format!("conversation `{id}` in tenant `{tenant}`")))?,
        )
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let cursor = self
            .coll("messages")
            .find(doc! {"tenantId": tenant.as_str(), "conversationId": conversation.as_str()})
            .sort(doc! {"orderKey": -1})
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        let mut messages = collect(cursor, message_from).await?;
        messages.reverse();
        Ok(messages)
    }

    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
        let (db, owned_item, owned_message) = (self.db.clone(), item.clone(), message.clone());
        let created = self
            .transaction(move |s| {
                let (db, item, message) = (db.clone(), owned_item.clone(), owned_message.clone());
                Box::pin(async move { mongo_outbox::create(&db, s, &item, &message).await })
            })
            .await
            .map_err(|e| match map_err(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("idempotency key `{}` is already in use", item.send_id))
                }
                other => other,
            })?;
        mongo_outbox::created_outcome(item, created)
    }

    async fn get_outbox(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        let found = self.coll("outbox_send").find_one(doc! {"_id": id.as_str()}).await.map_err(map_err)?;
        found.as_ref().map(mongo_outbox::outbox_from).transpose()
    }

    async fn list_outbox(
        &self,
        tenant: Option<&TenantId>,
        status: Option<OutboxStatus>,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        let mut filter = doc! {};
        if let Some(tenant) = tenant {
            filter.insert("tenantId", tenant.as_str());
        }
        if let Some(status) = status {
            filter.insert("status", status.as_str());
        }
        let cursor = self
            .coll("outbox_send")
            .find(filter)
            .sort(doc! {"createdAt": -1, "_id": -1})
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, mongo_outbox::outbox_from).await
    }

    async fn outbox_due(
        &self,
        now: time::OffsetDateTime,
        stuck_before: time::OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        let filter = doc! {"$or": [
            {"status": "PENDING", "$or": [{"nextAttemptAt": null}, {"nextAttemptAt": {"$lte": dt(now)}}]},
            {"status": "ENQUEUED", "updatedAt": {"$lt": dt(stuck_before)}},
        ]};
        let cursor = self
            .coll("outbox_send")
            .find(filter)
            .sort(doc! {"createdAt": 1, "_id": 1})
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, mongo_outbox::outbox_from).await
    }

    async fn transition_outbox(&self, id: &OutboxId, transition: &OutboxTransition) -> StoreResult<Option<OutboxItem>> {
        let (db, id_owned, transition) = (self.db.clone(), id.clone(), transition.clone());
        let found = self
            .transaction(move |s| {
                let (db, id, transition) = (db.clone(), id_owned.clone(), transition.clone());
                Box::pin(async move { mongo_outbox::transition(&db, s, &id, &transition).await })
            })
            .await
            .map_err(map_err)?;
        found.as_ref().map(mongo_outbox::outbox_from).transpose()
    }

    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()> {
        let ids: Vec<&str> = ids.iter().map(OutboxId::as_str).collect();
        self.coll("outbox_send")
            .update_many(
                doc! {"_id": {"$in": ids}, "status": {"$in": ["PENDING", "ENQUEUED"]}},
                doc! {"$set": {"status": "ENQUEUED", "updatedAt": dt(crate::domain::now())}},
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn set_channel_health(&self, id: &ChannelId, health: crate::domain::ChannelHealth) -> StoreResult<()> {
        self.coll("channels")
            .update_one(doc! {"_id": id.as_str()}, doc! {"$set": {"health": health.as_str()}})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.coll("audit_log").insert_one(audit_doc(entry)).await.map_err(map_err)?;
        Ok(())
    }

    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let cursor = self
            .coll("audit_log")
            .find(doc! {"tenantId": tenant.as_str()})
            .sort(doc! {"at": -1, "_id": -1})
            .limit(i64::from(limit))
            .await
            .map_err(map_err)?;
        collect(cursor, audit_from).await
    }
}

/// Aborts a transaction whose target document is missing; turned into `NotFound` by the caller.
#[derive(Debug)]
struct NotFoundMarker;
