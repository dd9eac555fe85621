//! The indexes the adapter relies on: unique keys that make every effect idempotent, and the
//! lookups the queries need. Created idempotently at connect.

use super::errors::map_err;
use super::session::Db;
use crate::store::StoreResult;
use mongodb::IndexModel;
use mongodb::bson::{Document, doc};
use mongodb::options::IndexOptions;

/// Index names, so a duplicate-key error says which key clashed.
pub(super) const TENANT_NAME_INDEX: &str = "tenants_name_key";
pub(super) const USER_EMAIL_INDEX: &str = "users_email";
pub(super) const CHANNEL_ACTIVE_INDEX: &str = "channels_active_external";

pub(super) async fn ensure(db: &Db) -> StoreResult<()> {
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
                index(doc! {"tenantId": 1, "channelId": 1, "externalThreadId": 1}, unique("conversations_by_thread")),
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
                index(doc! {"tenantId": 1, "conversationId": 1, "orderKey": -1, "_id": -1}, named("messages_by_order")),
            ],
        ),
        (
            "thread_aliases",
            vec![
                index(doc! {"tenantId": 1, "channelId": 1, "threadId": 1}, unique("thread_aliases_key")),
                index(doc! {"tenantId": 1, "conversationId": 1}, named("thread_aliases_by_conversation")),
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
                index(doc! {"tenantId": 1, "createdAt": -1, "_id": -1}, named("outbox_by_tenant")),
                index(doc! {"tenantId": 1, "conversationId": 1}, named("outbox_by_conversation")),
                index(doc! {"webhookId": 1, "createdAt": -1, "_id": -1}, named("outbox_by_webhook")),
            ],
        ),
        (
            "events",
            vec![
                index(doc! {"tenantId": 1, "seq": 1}, unique("events_by_seq")),
                index(doc! {"at": 1}, named("events_by_time")),
            ],
        ),
        ("webhooks", vec![index(doc! {"tenantId": 1, "createdAt": 1}, named("webhooks_by_tenant"))]),
        ("send_log", vec![index(doc! {"tenantId": 1, "outboxId": 1, "attempt": 1}, named("send_log_by_outbox"))]),
    ];
    for (collection, indexes) in plan {
        db.coll(collection).create_indexes(indexes).await.map_err(map_err)?;
    }
    Ok(())
}
