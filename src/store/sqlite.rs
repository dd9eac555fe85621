//! Embedded `Store` adapter: one SQLite file in the data dir (WAL, full sync), migrated at open.

use super::sqlite_inbox::{self, conversation_row, message_row};
use super::sqlite_outbox::{self, outbox_row};
use super::{ApplyOutcome, CreateOutcome, InboundRecord, OutboxTransition};
use super::{Store, StoreError, StoreResult};
use crate::domain::{
    AuditEntry, AuditId, Channel, ChannelId, ChannelKind, Conversation, ConversationId, DisplayName, Email, ExternalId,
    Message, OutboxId, OutboxItem, OutboxStatus, Role, Tenant, TenantId, TenantName, User, UserId,
};
use crate::embedded::{Database, OpenError, from_millis, is_busy, millis, unique_violation};
use crate::sealing::Sealed;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;

/// Schema migrations, applied in order at open.
const MIGRATIONS: &[&str] = &[include_str!("sqlite_schema_v1.sql")];

/// Read-only connections next to the writer: reads (the sender's and the API's lookups) never
/// queue behind a write's fsync.
const READERS: usize = 4;

/// The SQLite store.
pub struct SqliteStore {
    db: Database,
    readers: Vec<Database>,
    next_reader: std::sync::atomic::AtomicUsize,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let opened = |e: OpenError| match e {
            OpenError::Open { .. } => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Other(e.to_string()),
        };
        let db = Database::open(path, MIGRATIONS).map_err(opened)?;
        let readers = (0..READERS).map(|_| Database::open_reader(path)).collect::<Result<_, _>>().map_err(opened)?;
        Ok(Self { db, readers, next_reader: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// Runs a read on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let n = self.next_reader.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.readers.len();
        self.readers[n].run(f).await
    }

    async fn with_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        self.db.run(f).await
    }
}

pub(super) fn other(e: rusqlite::Error) -> StoreError {
    if is_busy(&e) { StoreError::Unavailable(e.to_string()) } else { StoreError::Other(e.to_string()) }
}

pub(super) fn parsed<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> rusqlite::Result<T> {
    r.map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: parsed(TenantId::parse(&r.get::<_, String>("id")?))?,
        name: parsed(TenantName::parse(&r.get::<_, String>("name")?))?,
        created_at: from_millis(r.get("created_at")?)?,
    })
}

fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: parsed(UserId::parse(&r.get::<_, String>("id")?))?,
        email: parsed(Email::parse(&r.get::<_, String>("email")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        role: parsed(r.get::<_, String>("role")?.parse::<Role>())?,
        created_at: from_millis(r.get("created_at")?)?,
    })
}

fn channel_row(r: &Row<'_>) -> rusqlite::Result<Channel> {
    Ok(Channel {
        id: parsed(ChannelId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        kind: parsed(r.get::<_, String>("kind")?.parse::<ChannelKind>())?,
        display_name: parsed(DisplayName::parse(&r.get::<_, String>("display_name")?))?,
        external_id: ExternalId::from_stored(r.get("external_id")?),
        credentials: Sealed::from_stored(r.get("credentials")?),
        webhook_secret: r.get::<_, Option<String>>("webhook_secret")?.map(Sealed::from_stored),
        is_active: r.get("is_active")?,
        health: parsed(r.get::<_, String>("health")?.parse())?,
        auto_reply: r.get("auto_reply")?,
        created_at: from_millis(r.get("created_at")?)?,
        updated_at: from_millis(r.get("updated_at")?)?,
    })
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        id: parsed(AuditId::parse(&r.get::<_, String>("id")?))?,
        tenant_id: parsed(TenantId::parse(&r.get::<_, String>("tenant_id")?))?,
        actor: r.get("actor")?,
        action: r.get("action")?,
        target: r.get("target")?,
        details: parsed(serde_json::from_str(&r.get::<_, String>("details")?))?,
        at: from_millis(r.get("at")?)?,
    })
}

pub(super) fn write_audit(conn: &Connection, a: &AuditEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit_log (id, tenant_id, actor, action, target, details, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![a.id.as_str(), a.tenant_id.as_str(), a.actor, a.action, a.target, a.details.to_string(), millis(a.at)],
    )?;
    Ok(())
}

fn write_user(conn: &Connection, u: &User) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO users (id, email, tenant_id, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![u.id.as_str(), u.email.as_str(), u.tenant_id.as_str(), u.role.as_str(), millis(u.created_at)],
    )
    .map_err(|e| match unique_violation(&e) {
        Some(c) if c.contains("users.email") => {
            StoreError::Conflict(format!("a user with email {} already exists", u.email))
        }
        Some(_) => StoreError::Conflict(format!("user {} already exists", u.id)),
        None => other(e),
    })?;
    Ok(())
}

fn channel_conflict(c: &Channel) -> StoreError {
    StoreError::Conflict(format!(
        "{} {} `{}` is already connected to an active channel",
        c.kind,
        if c.kind == ChannelKind::Telegram { "bot" } else { "page" },
        c.external_id.as_str()
    ))
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
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(other)?;
            tx.execute(
                "INSERT INTO tenants (id, name, name_key, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![tenant.id.as_str(), tenant.name.as_str(), tenant.name.key(), millis(tenant.created_at)],
            )
            .map_err(|e| match unique_violation(&e) {
                Some(c) if c.contains("name_key") => {
                    StoreError::Conflict(format!("a tenant named `{}` already exists", tenant.name))
                }
                Some(_) => StoreError::Conflict(format!("tenant `{}` already exists", tenant.id)),
                None => other(e),
            })?;
            if let Some(user) = &user {
                write_user(&tx, user)?;
            }
            write_audit(&tx, &audit).map_err(other)?;
            tx.commit().map_err(other)
        })
        .await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row("SELECT * FROM tenants WHERE id = ?1", [id.as_str()], tenant_row)
                .optional()
                .map_err(other)?
                .ok_or_else(|| StoreError::NotFound(format!("tenant `{id}`")))
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT * FROM tenants ORDER BY created_at, id").map_err(other)?;
            stmt.query_map([], tenant_row).map_err(other)?.collect::<Result<_, _>>().map_err(other)
        })
        .await
    }

    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()> {
        let (user, audit) = (user.clone(), audit.clone());
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(other)?;
            write_user(&tx, &user)?;
            write_audit(&tx, &audit).map_err(other)?;
            tx.commit().map_err(other)
        })
        .await
    }

    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT * FROM users WHERE tenant_id = ?1 ORDER BY created_at, id").map_err(other)?;
            stmt.query_map([tenant.as_str()], user_row).map_err(other)?.collect::<Result<_, _>>().map_err(other)
        })
        .await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let email = email.clone();
        self.read(move |c| {
            c.query_row("SELECT * FROM users WHERE email = ?1", [email.as_str()], user_row).optional().map_err(other)
        })
        .await
    }

    async fn has_platform_admin(&self) -> StoreResult<bool> {
        self.read(|c| {
            c.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE role = ?1)", [Role::PlatformAdmin.as_str()], |r| {
                r.get(0)
            })
            .map_err(other)
        })
        .await
    }

    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        let ch = channel.clone();
        self.with_conn(move |c| {
            c.execute(
                "INSERT INTO channels (id, tenant_id, kind, display_name, external_id, credentials, webhook_secret,
                                       is_active, created_at, updated_at, health, auto_reply)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    ch.id.as_str(),
                    ch.tenant_id.as_str(),
                    ch.kind.as_str(),
                    ch.display_name.as_str(),
                    ch.external_id.as_str(),
                    ch.credentials.as_str(),
                    ch.webhook_secret.as_ref().map(Sealed::as_str),
                    ch.is_active,
                    millis(ch.created_at),
                    millis(ch.updated_at),
                    ch.health.as_str(),
                    ch.auto_reply
                ],
            )
            .map_err(|e| match unique_violation(&e) {
                Some(c) if c.contains("external_id") => channel_conflict(&ch),
                Some(_) => StoreError::Conflict(format!("channel `{}` already exists", ch.id)),
                None => other(e),
            })?;
            Ok(())
        })
        .await
    }

    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| {
            c.query_row(
                "SELECT * FROM channels WHERE tenant_id = ?1 AND id = ?2",
                [tenant.as_str(), id.as_str()],
                channel_row,
            )
            .optional()
            .map_err(other)?
            .ok_or_else(|| StoreError::NotFound(format!("channel `{id}` in tenant `{tenant}`")))
        })
        .await
    }

    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row("SELECT * FROM channels WHERE id = ?1", [id.as_str()], channel_row).optional().map_err(other)
        })
        .await
    }

    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT * FROM channels WHERE tenant_id = ?1 ORDER BY created_at, id")
                .map_err(other)?;
            stmt.query_map([tenant.as_str()], channel_row).map_err(other)?.collect::<Result<_, _>>().map_err(other)
        })
        .await
    }

    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
        let (ch, audit) = (channel.clone(), audit.clone());
        self.with_conn(move |conn| {
            let tx = conn.transaction().map_err(other)?;
            let changed = tx
                .execute(
                    "UPDATE channels SET display_name = ?3, credentials = ?4, webhook_secret = ?5, is_active = ?6,
                                         updated_at = ?7, health = ?8, auto_reply = ?9
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![
                        ch.tenant_id.as_str(),
                        ch.id.as_str(),
                        ch.display_name.as_str(),
                        ch.credentials.as_str(),
                        ch.webhook_secret.as_ref().map(Sealed::as_str),
                        ch.is_active,
                        millis(ch.updated_at),
                        ch.health.as_str(),
                        ch.auto_reply
                    ],
                )
                .map_err(|e| if unique_violation(&e).is_some() { channel_conflict(&ch) } else { other(e) })?;
            if changed == 0 {
                return Err(StoreError::NotFound(format!("channel `{}` in tenant `{}`", ch.id, ch.tenant_id)));
            }
            write_audit(&tx, &audit).map_err(other)?;
            tx.commit().map_err(other)
        })
        .await
    }

    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.with_conn(move |c| {
            c.execute("DELETE FROM channels WHERE tenant_id = ?1 AND id = ?2", [tenant.as_str(), id.as_str()])
                .map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
        let external_id = external_id.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM channels WHERE kind = ?1 AND external_id = ?2 AND is_active = 1")
                .map_err(other)?
                .query_row(params![kind.as_str(), external_id], channel_row)
                .optional()
                .map_err(other)
        })
        .await
    }

    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
        let records = records.to_vec();
        self.with_conn(move |c| sqlite_inbox::apply(c, &records).map_err(other)).await
    }

    async fn list_conversations(
        &self,
        tenant: &TenantId,
        channel: Option<&ChannelId>,
        limit: u32,
    ) -> StoreResult<Vec<Conversation>> {
        let (tenant, channel) = (tenant.clone(), channel.cloned());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT * FROM conversations WHERE tenant_id = ?1 AND (?2 IS NULL OR channel_id = ?2)
                     ORDER BY last_message_at DESC, id DESC LIMIT ?3",
                )
                .map_err(other)?;
            stmt.query_map(params![tenant.as_str(), channel.as_ref().map(ChannelId::as_str), limit], conversation_row)
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)
        })
        .await
    }

    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| {
            c.query_row(
                "SELECT * FROM conversations WHERE tenant_id = ?1 AND id = ?2",
                [tenant.as_str(), id.as_str()],
                conversation_row,
            )
            .optional()
            .map_err(other)?
            .ok_or_else(|| StoreError::NotFound(format!("conversation `{id}` in tenant `{tenant}`")))
        })
        .await
    }

    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let (tenant, conversation) = (tenant.clone(), conversation.clone());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT * FROM (SELECT * FROM messages WHERE tenant_id = ?1 AND conversation_id = ?2
                                    ORDER BY order_key DESC LIMIT ?3)
                     ORDER BY order_key ASC",
                )
                .map_err(other)?;
            stmt.query_map(params![tenant.as_str(), conversation.as_str(), limit], message_row)
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)
        })
        .await
    }

    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
        let (item, message) = (item.clone(), message.clone());
        self.with_conn(move |c| sqlite_outbox::create(c, &item, &message)).await
    }

    async fn get_outbox(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row("SELECT * FROM outbox_send WHERE id = ?1", [id.as_str()], outbox_row).optional().map_err(other)
        })
        .await
    }

    async fn list_outbox(
        &self,
        tenant: Option<&TenantId>,
        status: Option<OutboxStatus>,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        let (tenant, status) = (tenant.cloned(), status.map(OutboxStatus::as_str));
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT * FROM outbox_send WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR status = ?2)
                     ORDER BY created_at DESC, id DESC LIMIT ?3",
                )
                .map_err(other)?;
            stmt.query_map(params![tenant.as_ref().map(TenantId::as_str), status, limit], outbox_row)
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)
        })
        .await
    }

    async fn outbox_due(
        &self,
        now: time::OffsetDateTime,
        stuck_before: time::OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT * FROM outbox_send
                     WHERE (status = 'PENDING' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1))
                        OR (status = 'ENQUEUED' AND updated_at < ?2)
                     ORDER BY created_at, id LIMIT ?3",
                )
                .map_err(other)?;
            stmt.query_map(params![millis(now), millis(stuck_before), limit], outbox_row)
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)
        })
        .await
    }

    async fn transition_outbox(&self, id: &OutboxId, transition: &OutboxTransition) -> StoreResult<Option<OutboxItem>> {
        let (id, transition) = (id.clone(), transition.clone());
        self.with_conn(move |c| sqlite_outbox::transition(c, &id, &transition).map_err(other)).await
    }

    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()> {
        let ids = ids.to_vec();
        self.with_conn(move |c| {
            let tx = c.transaction().map_err(other)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE outbox_send SET status = 'ENQUEUED', updated_at = ?2
                         WHERE id = ?1 AND status IN ('PENDING', 'ENQUEUED')",
                    )
                    .map_err(other)?;
                let now = millis(crate::domain::now());
                for id in &ids {
                    stmt.execute(params![id.as_str(), now]).map_err(other)?;
                }
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn set_channel_health(&self, id: &ChannelId, health: crate::domain::ChannelHealth) -> StoreResult<()> {
        let id = id.clone();
        self.with_conn(move |c| {
            c.execute("UPDATE channels SET health = ?2 WHERE id = ?1", params![id.as_str(), health.as_str()])
                .map_err(other)?;
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let entry = entry.clone();
        self.with_conn(move |c| write_audit(c, &entry).map_err(other)).await
    }

    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT * FROM audit_log WHERE tenant_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2")
                .map_err(other)?;
            stmt.query_map(params![tenant.as_str(), limit], audit_row)
                .map_err(other)?
                .collect::<Result<_, _>>()
                .map_err(other)
        })
        .await
    }
}
