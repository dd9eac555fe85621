//! The `Store` port contract, run against every adapter: SQLite always, MongoDB (SecantusDB)
//! when `KAMSHUB_TEST_MONGODB_URI` is set (required under `KAMSHUB_REQUIRE_SERVICES=1`).

mod common;

use kamshub::domain::inbound::{
    ENVELOPE_VERSION, EchoedMessage, Envelope, InboundEvent, IncomingMessage, MessageEdit, ReactionUpdate, Receipt,
    ReceiptStatus, Sender, order_key,
};
use kamshub::domain::webhook::{AttemptResult, EndpointHealth, EndpointState, SigningSecret};
use kamshub::domain::{
    Actor, AuditEntry, Channel, ChannelId, ChannelKind, DisplayName, Email, ExternalId, Role, Tenant, TenantId,
    TenantName, User, UserId,
};
use kamshub::domain::{
    ChannelHealth, ConversationId, Direction, EventId, EventType, Message, MessageStatus, NewReply, OutboxId,
    OutboxItem, OutboxKind, OutboxStatus, Reaction, Revision, SendId, Transition, WebhookEndpoint, WebhookId,
};
use kamshub::sealing::{MasterKey, SealContext};
use kamshub::store::{ApplyOutcome, CreateOutcome, InboundFailure, InboundRecord, Lease, Store, StoreError};
use kamshub::store::{ConversationQuery, OutboxQuery};
use secrecy::SecretString;
use serde_json::json;
use std::sync::Arc;

/// A store under test, with whatever keeps it alive (a temp dir).
struct Fixture {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let store = kamshub::store::sqlite::SqliteStore::open(&dir.path().join("store.sqlite3")).unwrap();
    Some(Fixture { store: Arc::new(store), _dir: Some(dir) })
}

async fn mongodb() -> Option<Fixture> {
    let uri = common::mongodb_uri()?;
    let store = kamshub::store::mongo::MongoStore::connect(&uri, &common::unique_name("kamsg_test")).await.unwrap();
    Some(Fixture { store: Arc::new(store), _dir: None })
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::$case(super::sqlite().await.unwrap().store).await })*
        }
        mod mongodb {
            $(#[tokio::test] async fn $case() {
                let Some(fixture) = super::mongodb().await else { return };
                super::$case(fixture.store).await
            })*
        }
    };
}

contract!(
    tenants_round_trip_and_list_oldest_first,
    tenant_names_are_unique_ignoring_case,
    a_tenant_whose_admin_email_is_taken_is_not_created,
    unknown_tenant_is_not_found,
    users_are_listed_per_tenant_only,
    user_emails_are_unique_and_a_refused_user_leaves_no_audit,
    platform_admin_presence_is_reported,
    channels_round_trip_with_sealed_credentials,
    every_channel_of_every_tenant_is_listed_for_routing,
    another_tenants_channel_is_not_found,
    an_active_bot_or_page_feeds_one_channel,
    concurrent_adds_of_one_bot_store_exactly_one,
    update_of_a_missing_channel_changes_nothing,
    deleted_channels_are_gone,
    audit_is_listed_newest_first_per_tenant,
    ping_answers,
    messenger_pages_route_to_their_active_channel,
    a_message_creates_its_conversation_and_a_replay_changes_nothing,
    messages_list_in_provider_order_whatever_the_arrival_order,
    edits_keep_history_in_either_arrival_order,
    duplicates_inside_one_batch_apply_once,
    a_batch_leaves_what_its_events_applied_one_at_a_time_leave,
    echoes_are_stored_once_as_outbound_and_receipts_advance_them,
    ignored_events_store_no_message,
    conversations_are_scoped_by_tenant_and_channel,
    a_reply_is_stored_once_per_send_id,
    an_operator_resend_is_audited_with_the_step,
    outbox_transitions_are_compare_and_set,
    the_relay_sees_due_and_stuck_items_only,
    a_greeting_is_queued_once_for_a_new_conversation,
    a_greeting_whose_send_id_is_taken_never_blocks_the_message_it_answers,
    versions_in_the_same_millisecond_are_ordered_by_their_sequence,
    a_reactors_later_set_replaces_the_earlier_one_whatever_the_arrival_order,
    a_moved_thread_joins_its_conversations_and_the_old_thread_still_leads_there,
    recorded_events_keep_their_outcome_and_raw_payload,
    an_echo_carrying_our_send_id_confirms_the_reply_instead_of_adding_one,
    channel_health_is_kept,
    users_are_found_by_their_subject,
    a_reply_counts_in_its_conversation_once,
    an_outbox_item_is_nobody_elses,
    listings_page_newest_first_without_repeats_or_gaps,
    a_failed_event_records_its_reason_until_it_is_applied,
    a_failure_never_overwrites_an_applied_event,
    a_lease_is_held_by_one_holder_until_released_or_lapsed,
    outbox_items_are_counted_by_status,
    every_change_records_its_event_in_the_same_unit_and_in_order,
    event_ids_are_gap_free_and_readers_never_skip_under_concurrent_writers,
    old_events_are_pruned_and_their_ids_never_come_back,
    each_event_is_queued_for_the_enabled_endpoints_that_want_it,
    webhook_endpoints_are_the_tenants_own_and_keep_their_health,
);

fn actor() -> Actor {
    Actor::Cli("tester".into())
}

fn tenant(name: &str) -> Tenant {
    Tenant { id: TenantId::generate(), name: TenantName::parse(name).unwrap(), created_at: kamshub::domain::now() }
}

fn user(tenant: &TenantId, email: &str, role: Role) -> User {
    User {
        id: UserId::generate(),
        email: Email::parse(email).unwrap(),
        tenant_id: tenant.clone(),
        role,
        created_at: kamshub::domain::now(),
    }
}

fn audit(tenant: &TenantId, action: &str) -> AuditEntry {
    AuditEntry::new(&actor(), tenant, action, "target", json!({"k": "v"}))
}

fn key() -> MasterKey {
    MasterKey::from_bytes(&[9; 32])
}

fn channel(tenant: &TenantId, kind: ChannelKind, external: &str) -> Channel {
    let id = ChannelId::generate();
    let now = kamshub::domain::now();
    let external_id = match kind {
        ChannelKind::Telegram => ExternalId::telegram_username(external).unwrap(),
        ChannelKind::Messenger => ExternalId::page_id(external).unwrap(),
    };
    Channel {
        credentials: key().seal(&SecretString::from("123:token-value"), SealContext::channel_credentials(id.as_str())),
        webhook_secret: (kind == ChannelKind::Telegram)
            .then(|| key().seal(&SecretString::from("hook"), SealContext::channel_webhook_secret(id.as_str()))),
        id,
        tenant_id: tenant.clone(),
        kind,
        display_name: DisplayName::parse("Support").unwrap(),
        external_id,
        is_active: true,
        health: Default::default(),
        auto_reply: None,
        created_at: now,
        updated_at: now,
    }
}

/// A unique email per call, so suites sharing a server never collide.
fn email(local: &str) -> String {
    format!("{local}@{}.example.com", common::unique_name("d").replace('_', "-"))
}

/// A unique Messenger page id per call.
fn unique_page() -> String {
    (100_000_000_000 + uuid::Uuid::new_v4().as_u128() % 900_000_000_000).to_string()
}

/// A unique bot username per call.
fn bot() -> String {
    common::unique_name("bot")
}

async fn insert_tenant(store: &Arc<dyn Store>, name: &str) -> Tenant {
    let t = tenant(name);
    store.insert_tenant(&t, None, &audit(&t.id, "tenant.create")).await.unwrap();
    t
}

async fn tenants_round_trip_and_list_oldest_first(store: Arc<dyn Store>) {
    let a = insert_tenant(&store, "Alpha").await;
    let b = insert_tenant(&store, "Beta").await;
    assert_eq!(store.get_tenant(&a.id).await.unwrap(), a);
    let ids: Vec<TenantId> = store.list_tenants().await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![a.id, b.id]);
}

async fn tenant_names_are_unique_ignoring_case(store: Arc<dyn Store>) {
    insert_tenant(&store, "Acme").await;
    let dup = tenant("ACME");
    let err = store.insert_tenant(&dup, None, &audit(&dup.id, "tenant.create")).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("ACME")), "{err:?}");
    assert_eq!(store.list_tenants().await.unwrap().len(), 1);
    assert!(store.list_audit(&dup.id, 10).await.unwrap().is_empty(), "a refused tenant leaves no audit entry");
}

async fn a_tenant_whose_admin_email_is_taken_is_not_created(store: Arc<dyn Store>) {
    let first = tenant("First");
    let taken = email("admin");
    store
        .insert_tenant(&first, Some(&user(&first.id, &taken, Role::TenantAdmin)), &audit(&first.id, "x"))
        .await
        .unwrap();
    let second = tenant("Second");
    let err = store
        .insert_tenant(&second, Some(&user(&second.id, &taken, Role::TenantAdmin)), &audit(&second.id, "x"))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains(&taken)), "{err:?}");
    assert!(matches!(store.get_tenant(&second.id).await, Err(StoreError::NotFound(_))), "tenant insert rolled back");
    assert!(store.list_audit(&second.id, 10).await.unwrap().is_empty());
}

async fn unknown_tenant_is_not_found(store: Arc<dyn Store>) {
    let err = store.get_tenant(&TenantId::generate()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn users_are_listed_per_tenant_only(store: Arc<dyn Store>) {
    let a = insert_tenant(&store, "A").await;
    let b = insert_tenant(&store, "B").await;
    let ua = user(&a.id, &email("a"), Role::TenantAdmin);
    let ub = user(&b.id, &email("b"), Role::TenantManager);
    store.insert_user(&ua, &audit(&a.id, "user.create")).await.unwrap();
    store.insert_user(&ub, &audit(&b.id, "user.create")).await.unwrap();
    assert_eq!(store.list_users(&a.id).await.unwrap(), vec![ua.clone()]);
    assert_eq!(store.list_users(&b.id).await.unwrap(), vec![ub]);
    assert_eq!(store.find_user_by_email(&ua.email).await.unwrap(), Some(ua));
    assert_eq!(store.find_user_by_email(&Email::parse(&email("nobody")).unwrap()).await.unwrap(), None);
}

async fn user_emails_are_unique_and_a_refused_user_leaves_no_audit(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "T").await;
    let address = email("dup");
    store.insert_user(&user(&t.id, &address, Role::TenantAdmin), &audit(&t.id, "first")).await.unwrap();
    let err =
        store.insert_user(&user(&t.id, &address, Role::TenantManager), &audit(&t.id, "second")).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains(&address)), "{err:?}");
    let actions: Vec<String> = store.list_audit(&t.id, 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert!(!actions.contains(&"second".to_owned()), "{actions:?}");
    assert_eq!(store.list_users(&t.id).await.unwrap().len(), 1);
}

async fn platform_admin_presence_is_reported(store: Arc<dyn Store>) {
    assert!(!store.has_platform_admin().await.unwrap());
    let t = insert_tenant(&store, "Tenant").await;
    store.insert_user(&user(&t.id, &email("m"), Role::TenantAdmin), &audit(&t.id, "x")).await.unwrap();
    assert!(!store.has_platform_admin().await.unwrap());
    let platform = Tenant { id: TenantId::platform(), ..tenant("Platform") };
    let admin = user(&platform.id, &email("root"), Role::PlatformAdmin);
    store.insert_tenant(&platform, Some(&admin), &audit(&platform.id, "bootstrap")).await.unwrap();
    assert!(store.has_platform_admin().await.unwrap());
}

async fn channels_round_trip_with_sealed_credentials(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "T").await;
    let c = channel(&t.id, ChannelKind::Telegram, &bot());
    store.insert_channel(&c).await.unwrap();
    let read = store.get_channel(&t.id, &c.id).await.unwrap();
    assert_eq!(read, c);
    assert_eq!(
        key()
            .open(&read.credentials, SealContext::channel_credentials(c.id.as_str()))
            .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
            .unwrap(),
        "123:token-value"
    );
    assert_eq!(store.find_channel(&c.id).await.unwrap(), Some(c.clone()));
    let m = channel(&t.id, ChannelKind::Messenger, "1234567890");
    store.insert_channel(&m).await.unwrap();
    assert_eq!(store.list_channels(&t.id).await.unwrap(), vec![c, m]);
}

async fn every_channel_of_every_tenant_is_listed_for_routing(store: Arc<dyn Store>) {
    let (a, b) = (insert_tenant(&store, "A").await, insert_tenant(&store, "B").await);
    let mine = [
        channel(&a.id, ChannelKind::Telegram, &bot()),
        channel(&a.id, ChannelKind::Messenger, &unique_page()),
        channel(&b.id, ChannelKind::Telegram, &bot()),
    ];
    for c in &mine {
        store.insert_channel(c).await.unwrap();
    }
    let gone = channel(&b.id, ChannelKind::Telegram, &bot());
    store.insert_channel(&gone).await.unwrap();
    store.delete_channel(&b.id, &gone.id).await.unwrap();
    let listed: Vec<Channel> = store.all_channels().await.unwrap();
    for c in &mine {
        assert_eq!(listed.iter().find(|l| l.id == c.id), Some(c), "{} is listed whole", c.id);
    }
    assert!(listed.iter().all(|l| l.id != gone.id), "a deleted channel is not");
}

async fn another_tenants_channel_is_not_found(store: Arc<dyn Store>) {
    let owner = insert_tenant(&store, "Owner").await;
    let other = insert_tenant(&store, "Other").await;
    let c = channel(&owner.id, ChannelKind::Telegram, &bot());
    store.insert_channel(&c).await.unwrap();
    assert!(matches!(store.get_channel(&other.id, &c.id).await, Err(StoreError::NotFound(_))));
    assert!(store.list_channels(&other.id).await.unwrap().is_empty());
    let mut hijack = c.clone();
    hijack.tenant_id = other.id.clone();
    hijack.display_name = DisplayName::parse("Hijacked").unwrap();
    let err = store.update_channel(&hijack, &audit(&other.id, "channel.rename")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.get_channel(&owner.id, &c.id).await.unwrap().display_name.as_str(), "Support");
    store.delete_channel(&other.id, &c.id).await.unwrap();
    assert!(store.find_channel(&c.id).await.unwrap().is_some(), "another tenant cannot delete it");
}

async fn an_active_bot_or_page_feeds_one_channel(store: Arc<dyn Store>) {
    let a = insert_tenant(&store, "A").await;
    let b = insert_tenant(&store, "B").await;
    let name = bot();
    let first = channel(&a.id, ChannelKind::Telegram, &name);
    store.insert_channel(&first).await.unwrap();
    let err = store.insert_channel(&channel(&b.id, ChannelKind::Telegram, &name)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains(&name)), "{err:?}");
    // The same external id as a page is another thing entirely.
    let page = channel(&a.id, ChannelKind::Messenger, "42424242");
    store.insert_channel(&page).await.unwrap();
    assert!(store.insert_channel(&channel(&b.id, ChannelKind::Messenger, "42424242")).await.is_err());

    // Once the first is inactive, the bot may be connected again...
    let mut inactive = first.clone();
    inactive.is_active = false;
    store.update_channel(&inactive, &audit(&a.id, "channel.deactivate")).await.unwrap();
    let second = channel(&b.id, ChannelKind::Telegram, &name);
    store.insert_channel(&second).await.unwrap();
    // ...and the old one cannot come back while the new one holds it: nothing changes.
    let err = store.update_channel(&first, &audit(&a.id, "channel.activate")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!store.get_channel(&a.id, &first.id).await.unwrap().is_active);
    let actions: Vec<String> = store.list_audit(&a.id, 10).await.unwrap().into_iter().map(|e| e.action).collect();
    assert!(!actions.contains(&"channel.activate".to_owned()), "{actions:?}");
}

async fn concurrent_adds_of_one_bot_store_exactly_one(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "T").await;
    let name = bot();
    let attempts = (0..8).map(|_| {
        let (store, c) = (Arc::clone(&store), channel(&t.id, ChannelKind::Telegram, &name));
        tokio::spawn(async move { store.insert_channel(&c).await })
    });
    let results = futures::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let conflicts = results.iter().filter(|r| matches!(r, Ok(Err(StoreError::Conflict(_))))).count();
    assert_eq!((ok, conflicts), (1, 7));
    assert_eq!(store.list_channels(&t.id).await.unwrap().len(), 1);
}

async fn update_of_a_missing_channel_changes_nothing(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "T").await;
    let ghost = channel(&t.id, ChannelKind::Telegram, &bot());
    let err = store.update_channel(&ghost, &audit(&t.id, "channel.rename")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let actions: Vec<String> = store.list_audit(&t.id, 10).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, vec!["tenant.create".to_owned()]);
}

async fn deleted_channels_are_gone(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "T").await;
    let name = bot();
    let c = channel(&t.id, ChannelKind::Telegram, &name);
    store.insert_channel(&c).await.unwrap();
    store.delete_channel(&t.id, &c.id).await.unwrap();
    assert_eq!(store.find_channel(&c.id).await.unwrap(), None);
    store.insert_channel(&channel(&t.id, ChannelKind::Telegram, &name)).await.unwrap();
}

async fn audit_is_listed_newest_first_per_tenant(store: Arc<dyn Store>) {
    let a = insert_tenant(&store, "A").await;
    let b = insert_tenant(&store, "B").await;
    let start = kamshub::domain::now();
    for (i, action) in (1..).zip(["one", "two", "three"]) {
        let entry = AuditEntry { at: start + std::time::Duration::from_millis(i), ..audit(&a.id, action) };
        store.append_audit(&entry).await.unwrap();
    }
    let entries = store.list_audit(&a.id, 3).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["three", "two", "one"]);
    assert_eq!(entries[0].details, json!({"k": "v"}));
    assert_eq!(entries[0].actor, "cli:tester");
    assert!(store.list_audit(&b.id, 10).await.unwrap().iter().all(|e| e.action == "tenant.create"));
}

async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

// ---- inbound events, conversations, messages ----

/// A tenant with one Telegram channel, for inbound tests.
async fn inbox(store: &Arc<dyn Store>) -> (TenantId, ChannelId) {
    let t = insert_tenant(store, &common::unique_name("Inbox")).await;
    let c = channel(&t.id, ChannelKind::Telegram, &bot());
    store.insert_channel(&c).await.unwrap();
    (t.id, c.id)
}

fn record(tenant: &TenantId, channel: &ChannelId, event_id: &str, thread: &str, event: InboundEvent) -> InboundRecord {
    InboundRecord {
        envelope: Envelope {
            v: ENVELOPE_VERSION,
            tenant_id: tenant.clone(),
            channel_id: channel.clone(),
            provider: ChannelKind::Telegram,
            provider_event_id: event_id.to_owned(),
            thread_id: thread.to_owned(),
            received_at_ms: 1_700_000_000_000,
            payload: json!({"update_id": event_id}),
            unusable: None,
        },
        event,
    }
}

fn text(thread: &str, message_id: u64, at_s: i64, text: &str) -> IncomingMessage {
    IncomingMessage {
        external_message_id: format!("{thread}:{message_id}"),
        sender: Sender { id: Some("42".into()), name: Some("Ada".into()), username: Some("ada".into()) },
        sent_at_ms: at_s * 1000,
        order_key: order_key(at_s * 1000, &message_id.to_string()),
        text: Some(text.to_owned()),
        attachments: Vec::new(),
        reply_to: None,
        kind: Default::default(),
        thread_title: None,
        thread: None,
        revision: Revision { at_ms: at_s * 1000, seq: 0 },
    }
}

async fn only_conversation(store: &Arc<dyn Store>, tenant: &TenantId) -> ConversationId {
    let conversations = store.list_conversations(tenant, &ConversationQuery::first(10)).await.unwrap();
    assert_eq!(conversations.len(), 1, "{conversations:?}");
    conversations[0].id.clone()
}

async fn texts(store: &Arc<dyn Store>, tenant: &TenantId, conversation: &ConversationId) -> Vec<String> {
    let messages = common::messages_oldest_first(&**store, tenant, conversation, 1000).await;
    messages.into_iter().map(|m| m.text.unwrap_or_default()).collect()
}

async fn messenger_pages_route_to_their_active_channel(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "T").await;
    let page = channel(&t.id, ChannelKind::Messenger, "555000111");
    store.insert_channel(&page).await.unwrap();
    assert_eq!(store.find_active_channel(ChannelKind::Messenger, "555000111").await.unwrap(), Some(page.clone()));
    assert_eq!(store.find_active_channel(ChannelKind::Telegram, "555000111").await.unwrap(), None);
    let mut inactive = page.clone();
    inactive.is_active = false;
    store.update_channel(&inactive, &audit(&t.id, "channel.deactivate")).await.unwrap();
    assert_eq!(store.find_active_channel(ChannelKind::Messenger, "555000111").await.unwrap(), None);
}

async fn a_message_creates_its_conversation_and_a_replay_changes_nothing(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let r = record(&tenant, &channel, "1001", "777", InboundEvent::Message(text("777", 5, 100, "hello")));
    assert_eq!(store.apply_inbound(std::slice::from_ref(&r)).await.unwrap(), vec![ApplyOutcome::Applied]);
    assert_eq!(store.apply_inbound(std::slice::from_ref(&r)).await.unwrap(), vec![ApplyOutcome::Duplicate]);
    let conversation = store.get_conversation(&tenant, &only_conversation(&store, &tenant).await).await.unwrap();
    assert_eq!(conversation.external_thread_id, "777");
    assert_eq!(conversation.message_count, 1);
    assert_eq!(conversation.preview.as_deref(), Some("hello"));
    let messages = common::messages_oldest_first(&*store, &tenant, &conversation.id, 10).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.external_message_id.as_deref(), Some("777:5"));
    assert_eq!((m.direction, m.status), (Direction::Inbound, MessageStatus::Received));
    assert_eq!(m.body.sender.name.as_deref(), Some("Ada"));
}

async fn messages_list_in_provider_order_whatever_the_arrival_order(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    // Telegram's parallel connections deliver out of order; same-second messages order by id.
    for (event, id, at, body) in [("3", 12, 200, "third"), ("1", 10, 100, "first"), ("2", 11, 200, "second")] {
        let r = record(&tenant, &channel, event, "9", InboundEvent::Message(text("9", id, at, body)));
        store.apply_inbound(&[r]).await.unwrap();
    }
    let conversation = only_conversation(&store, &tenant).await;
    assert_eq!(texts(&store, &tenant, &conversation).await, ["first", "second", "third"]);
    let c = store.get_conversation(&tenant, &conversation).await.unwrap();
    assert_eq!(c.message_count, 3);
    assert_eq!(c.last_message_at.unwrap().unix_timestamp(), 200);
    let newest_two = common::messages_oldest_first(&*store, &tenant, &conversation, 2).await;
    assert_eq!(newest_two.iter().map(|m| m.text.clone().unwrap()).collect::<Vec<_>>(), ["second", "third"]);
}

async fn edits_keep_history_in_either_arrival_order(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let edit = |event: &str, id: u64, at: i64, body: &str, edited: i64| {
        let message =
            IncomingMessage { revision: Revision { at_ms: edited * 1000, seq: 0 }, ..text("5", id, at, body) };
        record(&tenant, &channel, event, "5", InboundEvent::Edit(MessageEdit { message, replaces_attachments: true }))
    };
    // Original first, then its edit.
    store
        .apply_inbound(&[record(&tenant, &channel, "1", "5", InboundEvent::Message(text("5", 1, 100, "helo")))])
        .await
        .unwrap();
    store.apply_inbound(&[edit("2", 1, 100, "hello", 150)]).await.unwrap();
    // The edit of another message arrives before that message.
    store.apply_inbound(&[edit("4", 2, 200, "good bye", 250)]).await.unwrap();
    store
        .apply_inbound(&[record(&tenant, &channel, "3", "5", InboundEvent::Message(text("5", 2, 200, "goodbye")))])
        .await
        .unwrap();

    let conversation = only_conversation(&store, &tenant).await;
    let messages = common::messages_oldest_first(&*store, &tenant, &conversation, 10).await;
    assert_eq!(messages.len(), 2, "an edit never creates a second message");
    assert_eq!(messages[0].text.as_deref(), Some("hello"));
    assert_eq!(messages[0].body.versions.iter().map(|v| v.text.clone().unwrap()).collect::<Vec<_>>(), ["helo"]);
    assert_eq!(messages[1].text.as_deref(), Some("good bye"), "the latest version wins whatever arrives last");
    assert_eq!(messages[1].body.versions.iter().map(|v| v.text.clone().unwrap()).collect::<Vec<_>>(), ["goodbye"]);
    assert_eq!(store.get_conversation(&tenant, &conversation).await.unwrap().message_count, 2);
}

async fn duplicates_inside_one_batch_apply_once(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let a = record(&tenant, &channel, "10", "1", InboundEvent::Message(text("1", 1, 10, "a")));
    let b = record(&tenant, &channel, "11", "2", InboundEvent::Message(text("2", 1, 11, "b")));
    let outcomes = store.apply_inbound(&[a.clone(), a, b]).await.unwrap();
    assert_eq!(outcomes, [ApplyOutcome::Applied, ApplyOutcome::Duplicate, ApplyOutcome::Applied]);
    assert_eq!(store.list_conversations(&tenant, &ConversationQuery::first(10)).await.unwrap().len(), 2);
}

/// Events of one conversation often share a batch (a message and its edit, a burst): each must
/// see what the earlier ones in the batch wrote, exactly as if applied one batch each.
async fn a_batch_leaves_what_its_events_applied_one_at_a_time_leave(store: Arc<dyn Store>) {
    let greeted_inbox = || async {
        let (tenant, channel) = inbox(&store).await;
        let mut c = store.get_channel(&tenant, &channel).await.unwrap();
        c.auto_reply = Some("Thanks! We reply within an hour.".into());
        store.update_channel(&c, &audit(&tenant, "channel.auto_reply")).await.unwrap();
        (tenant, channel)
    };
    let events = |tenant: &TenantId, channel: &ChannelId| {
        let at = |thread: &str, event: &str, e: InboundEvent| record(tenant, channel, event, thread, e);
        let edit = |event: &str, id: u64, at_s: i64, body: &str, edited_s: i64| {
            let message =
                IncomingMessage { revision: Revision { at_ms: edited_s * 1000, seq: 0 }, ..text("5", id, at_s, body) };
            at("5", event, InboundEvent::Edit(MessageEdit { message, replaces_attachments: true }))
        };
        let reaction = Reaction {
            by: Sender { id: Some("42".into()), name: None, username: None },
            emoji: vec!["👍".into()],
            revision: Revision { at_ms: 300_000, seq: 1 },
        };
        let first = at("5", "1", InboundEvent::Message(text("5", 1, 100, "helo")));
        vec![
            first.clone(),
            at("5", "2", InboundEvent::Message(text("5", 2, 110, "anyone?"))),
            edit("3", 1, 100, "hello", 150),
            // An edit ahead of its message, then the message.
            edit("4", 3, 200, "good bye", 250),
            at("5", "5", InboundEvent::Message(text("5", 3, 200, "goodbye"))),
            at("5", "6", InboundEvent::Reaction(ReactionUpdate { target: "5:2".into(), reaction })),
            at("7", "7", InboundEvent::Message(text("7", 1, 120, "another chat"))),
            first,
            edit("3", 1, 100, "hello", 150),
        ]
    };
    let state = |tenant: TenantId| {
        let store = store.clone();
        async move {
            let mut conversations = store.list_conversations(&tenant, &ConversationQuery::first(10)).await.unwrap();
            conversations.sort_by(|a, b| a.external_thread_id.cmp(&b.external_thread_id));
            let mut seen = Vec::new();
            for c in conversations {
                let messages = common::messages_oldest_first(&*store, &tenant, &c.id, 100).await;
                let messages: Vec<_> = messages
                    .into_iter()
                    .map(|m| (m.direction, m.text, m.order_key, m.body.versions, m.body.reactions, m.send_id.is_some()))
                    .collect();
                seen.push((c.external_thread_id, c.preview, c.message_count, c.last_message_at, messages));
            }
            let outbox = store.list_outbox(&OutboxQuery::new(Some(&tenant), None, 10)).await.unwrap();
            let greetings: Vec<_> = outbox.iter().map(|item| item.reply().unwrap().text.clone()).collect();
            let log = store.list_events(&tenant, EventId::new(0), 100).await.unwrap();
            let log: Vec<_> = log.into_iter().map(|e| (e.id, e.event_type)).collect();
            (seen, greetings, log)
        }
    };

    let (one_by_one, channel) = greeted_inbox().await;
    let mut outcomes = Vec::new();
    for r in events(&one_by_one, &channel) {
        outcomes.extend(store.apply_inbound(&[r]).await.unwrap());
    }
    let (batched, channel) = greeted_inbox().await;
    let batch_outcomes = store.apply_inbound(&events(&batched, &channel)).await.unwrap();

    assert_eq!(batch_outcomes, outcomes);
    assert_eq!(outcomes.iter().filter(|o| **o == ApplyOutcome::Duplicate).count(), 2, "{outcomes:?}");
    let (expected, batch) = (state(one_by_one).await, state(batched).await);
    assert_eq!(batch, expected);
    let (conversations, greetings, _) = &batch;
    let texts: Vec<_> = conversations[0].4.iter().map(|m| m.1.clone().unwrap_or_default()).collect();
    assert_eq!(texts, ["hello", "Thanks! We reply within an hour.", "anyone?", "good bye"], "{conversations:?}");
    assert_eq!(greetings.len(), 2, "one greeting per new conversation, the batch's included");
}

async fn echoes_are_stored_once_as_outbound_and_receipts_advance_them(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let psid = "2400000000000001";
    let customer = record(
        &tenant,
        &channel,
        "m_in",
        psid,
        InboundEvent::Message(IncomingMessage { external_message_id: "m_in".into(), ..text(psid, 1, 100, "hi") }),
    );
    let echo = |event: &str, mid: &str, at_s: i64| {
        record(
            &tenant,
            &channel,
            event,
            psid,
            InboundEvent::Echo(EchoedMessage {
                external_message_id: mid.to_owned(),
                send_id: None,
                sent_at_ms: at_s * 1000,
                order_key: order_key(at_s * 1000, mid),
                text: Some(format!("reply {mid}")),
                attachments: Vec::new(),
            }),
        )
    };
    let receipt = |event: &str, status: ReceiptStatus, watermark_s: i64| {
        record(
            &tenant,
            &channel,
            event,
            psid,
            InboundEvent::Receipt(Receipt { status, watermark_ms: watermark_s * 1000, mids: Vec::new() }),
        )
    };
    store.apply_inbound(&[customer, echo("e1", "m_out1", 110), echo("e2", "m_out2", 130)]).await.unwrap();
    // The same echo under another event id (a redelivery with a new hash) stores nothing new.
    store.apply_inbound(&[echo("e1-again", "m_out1", 110)]).await.unwrap();
    store.apply_inbound(&[receipt("d1", ReceiptStatus::Delivered, 120)]).await.unwrap();
    let conversation = only_conversation(&store, &tenant).await;
    let statuses = |messages: Vec<kamshub::domain::Message>| -> Vec<(Direction, MessageStatus)> {
        messages.into_iter().map(|m| (m.direction, m.status)).collect()
    };
    let messages = common::messages_oldest_first(&*store, &tenant, &conversation, 10).await;
    assert_eq!(
        statuses(messages),
        [
            (Direction::Inbound, MessageStatus::Received),
            (Direction::Outbound, MessageStatus::Delivered),
            (Direction::Outbound, MessageStatus::Sent)
        ]
    );
    store
        .apply_inbound(&[receipt("r1", ReceiptStatus::Read, 200), receipt("d2", ReceiptStatus::Delivered, 200)])
        .await
        .unwrap();
    let messages = common::messages_oldest_first(&*store, &tenant, &conversation, 10).await;
    assert_eq!(
        statuses(messages),
        [
            (Direction::Inbound, MessageStatus::Received),
            (Direction::Outbound, MessageStatus::Read),
            (Direction::Outbound, MessageStatus::Read)
        ],
        "a late delivery receipt never downgrades read"
    );
}

async fn ignored_events_store_no_message(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let r =
        record(&tenant, &channel, "99", "1", InboundEvent::Ignored { reason: "unsupported update type poll".into() });
    assert_eq!(store.apply_inbound(std::slice::from_ref(&r)).await.unwrap(), [ApplyOutcome::Applied]);
    assert_eq!(
        store.apply_inbound(&[r]).await.unwrap(),
        [ApplyOutcome::Duplicate],
        "recorded, so a replay is a duplicate"
    );
    assert!(store.list_conversations(&tenant, &ConversationQuery::first(10)).await.unwrap().is_empty());
}

async fn conversations_are_scoped_by_tenant_and_channel(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let second = channel_in(&store, &tenant).await;
    store
        .apply_inbound(&[record(&tenant, &channel, "1", "1", InboundEvent::Message(text("1", 1, 10, "a")))])
        .await
        .unwrap();
    store
        .apply_inbound(&[record(&tenant, &second, "1", "1", InboundEvent::Message(text("1", 1, 20, "b")))])
        .await
        .unwrap();
    let all = store.list_conversations(&tenant, &ConversationQuery::first(10)).await.unwrap();
    assert_eq!(all.len(), 2, "the same thread id on two channels is two conversations");
    assert_eq!(all[0].channel_id, second, "most recent first");
    let only = store
        .list_conversations(
            &tenant,
            &ConversationQuery { channel: Some(channel.clone()), ..ConversationQuery::first(10) },
        )
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    let (other, _) = inbox(&store).await;
    assert!(matches!(store.get_conversation(&other, &only[0].id).await, Err(StoreError::NotFound(_))));
    assert!(common::messages_oldest_first(&*store, &other, &only[0].id, 10).await.is_empty());
}

async fn channel_in(store: &Arc<dyn Store>, tenant: &TenantId) -> ChannelId {
    let c = channel(tenant, ChannelKind::Telegram, &bot());
    store.insert_channel(&c).await.unwrap();
    c.id
}

// ---- outbox ----

/// A conversation with one inbound message, and a reply to it (not yet stored).
async fn reply_setup(store: &Arc<dyn Store>, text: &str, send_id: &str) -> (TenantId, OutboxItem, Message) {
    let (tenant, channel) = inbox(store).await;
    store
        .apply_inbound(&[record(&tenant, &channel, "1", "77", InboundEvent::Message(self::text("77", 1, 100, "hi")))])
        .await
        .unwrap();
    let conversation = only_conversation(store, &tenant).await;
    let (item, message) = reply(&tenant, &channel, &conversation, text, send_id);
    (tenant, item, message)
}

fn reply(
    tenant: &TenantId,
    channel: &ChannelId,
    conversation: &ConversationId,
    text: &str,
    send_id: &str,
) -> (OutboxItem, Message) {
    let now = kamshub::domain::now();
    let reply = NewReply {
        tenant_id: tenant.clone(),
        send_id: SendId::parse(send_id).unwrap(),
        channel_id: channel.clone(),
        conversation_id: conversation.clone(),
        text: text.to_owned(),
        order_key: order_key(200_000, "z"),
        sent_at: now,
    };
    OutboxItem::new_reply(reply, now)
}

async fn a_reply_is_stored_once_per_send_id(store: Arc<dyn Store>) {
    let (tenant, item, message) = reply_setup(&store, "on my way", "key-1").await;
    assert_eq!(store.create_outbound(&item, &message).await.unwrap(), CreateOutcome::Created);
    // The same key and text again (a client retry) returns the first item, stores nothing new.
    let (retry, retry_message) =
        reply(&tenant, &item.reply().unwrap().channel_id, &item.reply().unwrap().conversation_id, "on my way", "key-1");
    match store.create_outbound(&retry, &retry_message).await.unwrap() {
        CreateOutcome::Existing(existing) => assert_eq!(existing.id, item.id),
        other => panic!("expected the existing item, got {other:?}"),
    }
    // The same key with other text is a client bug: refused.
    let (other, other_message) =
        reply(&tenant, &item.reply().unwrap().channel_id, &item.reply().unwrap().conversation_id, "different", "key-1");
    let err = store.create_outbound(&other, &other_message).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("key-1")), "{err:?}");
    let messages = common::messages_oldest_first(&*store, &tenant, &item.reply().unwrap().conversation_id, 10).await;
    let outbound: Vec<_> = messages.iter().filter(|m| m.direction == Direction::Outbound).collect();
    assert_eq!(outbound.len(), 1);
    assert_eq!((outbound[0].status, outbound[0].send_id.as_deref()), (MessageStatus::Pending, Some("key-1")));
    assert_eq!(store.get_outbox(&tenant, &item.id).await.unwrap().unwrap().status, OutboxStatus::Pending);
    let listed = store.list_outbox(&OutboxQuery::new(Some(&tenant), Some(OutboxStatus::Pending), 10)).await.unwrap();
    assert_eq!(listed.iter().map(|o| o.id.clone()).collect::<Vec<_>>(), vec![item.id.clone()]);
    assert!(
        store.list_outbox(&OutboxQuery::new(Some(&tenant), Some(OutboxStatus::Sent), 10)).await.unwrap().is_empty()
    );
}

async fn outbox_transitions_are_compare_and_set(store: Arc<dyn Store>) {
    let (tenant, item, message) = reply_setup(&store, "hello", "key-2").await;
    store.create_outbound(&item, &message).await.unwrap();
    use OutboxStatus::*;
    let enqueued = store.transition_outbox(&tenant, &item.id, &Transition::Enqueue, None).await.unwrap();
    assert_eq!(enqueued.unwrap().status, Enqueued);
    let claimed = store.transition_outbox(&tenant, &item.id, &Transition::Claim, None).await.unwrap().unwrap();
    assert_eq!((claimed.status, claimed.attempts), (Sending, 1));
    assert_eq!(
        store.transition_outbox(&tenant, &item.id, &Transition::Claim, None).await.unwrap(),
        None,
        "a second claim loses"
    );
    assert_eq!(store.get_outbox(&tenant, &item.id).await.unwrap().unwrap(), claimed, "a refused step changes nothing");
    let sent = Transition::Sent { provider_ids: vec!["777:5001".into(), "777:5002".into()] };
    let done = store.transition_outbox(&tenant, &item.id, &sent, None).await.unwrap().unwrap();
    assert_eq!(done.status, Sent);
    assert_eq!(done.provider_message_ids, ["777:5001", "777:5002"]);
    assert_eq!(
        store.get_outbox(&tenant, &item.id).await.unwrap().unwrap(),
        done,
        "the stored item is the one returned"
    );
    let again = store.transition_outbox(&tenant, &item.id, &sent, None).await.unwrap().unwrap();
    assert_eq!(again.provider_message_ids, ["777:5001", "777:5002"], "a success recorded twice adds nothing");
    assert_eq!(
        store.transition_outbox(&tenant, &item.id, &Transition::Claim, None).await.unwrap(),
        None,
        "SENT is final"
    );
    assert_eq!(
        store.transition_outbox(&tenant, &item.id, &Transition::Resend, None).await.unwrap(),
        None,
        "even for operators"
    );
    let messages = common::messages_oldest_first(&*store, &tenant, &item.reply().unwrap().conversation_id, 10).await;
    let ours = messages.iter().find(|m| m.id == item.reply().unwrap().message_id).unwrap();
    assert_eq!((ours.status, ours.external_message_id.as_deref()), (MessageStatus::Sent, Some("777:5001")));
    let missing = store.transition_outbox(&tenant, &OutboxId::generate(), &Transition::Claim, None).await.unwrap();
    assert_eq!(missing, None);
}

async fn an_operator_resend_is_audited_with_the_step(store: Arc<dyn Store>) {
    let (tenant, item, message) = reply_setup(&store, "hello", "key-3").await;
    store.create_outbound(&item, &message).await.unwrap();
    store.transition_outbox(&tenant, &item.id, &Transition::Claim, None).await.unwrap().unwrap();
    let failed = Transition::Fail { error: "code 403: blocked".into(), provider_ids: vec![] };
    let item = store.transition_outbox(&tenant, &item.id, &failed, None).await.unwrap().unwrap();
    assert_eq!((item.status, item.last_error.as_deref()), (OutboxStatus::Failed, Some("code 403: blocked")));
    let outbound = |messages: Vec<Message>| {
        messages.into_iter().find(|m| m.id == item.reply().unwrap().message_id).unwrap().status
    };
    assert_eq!(
        outbound(common::messages_oldest_first(&*store, &tenant, &item.reply().unwrap().conversation_id, 10).await),
        MessageStatus::Failed
    );

    let audit = AuditEntry::new(&Actor::Cli("sre".into()), &tenant, "outbox.retry", item.id.as_str(), json!({}));
    let again = store.transition_outbox(&tenant, &item.id, &Transition::Resend, Some(&audit)).await.unwrap().unwrap();
    assert_eq!((again.status, again.last_error), (OutboxStatus::Pending, None));
    assert_eq!(
        outbound(common::messages_oldest_first(&*store, &tenant, &item.reply().unwrap().conversation_id, 10).await),
        MessageStatus::Pending
    );
    let logged = store.list_audit(&tenant, 10).await.unwrap();
    assert!(logged.iter().any(|a| a.action == "outbox.retry" && a.target == item.id.as_str()), "{logged:?}");
}

async fn the_relay_sees_due_and_stuck_items_only(store: Arc<dyn Store>) {
    use OutboxStatus::*;
    let (tenant, due, due_message) = reply_setup(&store, "due", "due").await;
    store.create_outbound(&due, &due_message).await.unwrap();
    let (later, later_message) =
        reply(&tenant, &due.reply().unwrap().channel_id, &due.reply().unwrap().conversation_id, "later", "later");
    store.create_outbound(&later, &later_message).await.unwrap();
    let wait = Transition::Retry {
        error: "rate limited".into(),
        delay: std::time::Duration::from_secs(3600),
        provider_ids: vec![],
    };
    store.transition_outbox(&tenant, &later.id, &Transition::Claim, None).await.unwrap().unwrap();
    store.transition_outbox(&tenant, &later.id, &wait, None).await.unwrap().unwrap();
    let (queued, queued_message) =
        reply(&tenant, &due.reply().unwrap().channel_id, &due.reply().unwrap().conversation_id, "queued", "queued");
    store.create_outbound(&queued, &queued_message).await.unwrap();
    store.transition_outbox(&tenant, &queued.id, &Transition::Enqueue, None).await.unwrap().unwrap();

    let now = kamshub::domain::now();
    let ids = |items: Vec<OutboxItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let fresh = ids(store.outbox_due(now, now - std::time::Duration::from_secs(60), 10).await.unwrap());
    assert_eq!(fresh, vec![due.id.clone()], "a retry waiting out its delay and a fresh ENQUEUED are not due");
    let stuck = ids(store.outbox_due(now, now + std::time::Duration::from_secs(1), 10).await.unwrap());
    assert_eq!(stuck, vec![due.id.clone(), queued.id], "ENQUEUED untouched since the cutoff is published again");
    store.mark_enqueued(std::slice::from_ref(&due.id)).await.unwrap();
    assert_eq!(store.get_outbox(&tenant, &due.id).await.unwrap().unwrap().status, Enqueued);
    let fresh =
        ids(store.outbox_due(kamshub::domain::now(), now - std::time::Duration::from_secs(60), 10).await.unwrap());
    assert!(fresh.is_empty(), "marked items are no longer due: {fresh:?}");
}

/// The relay marks an item ENQUEUED while one sender's transaction holds a write to it and a
/// second sender's transaction writes another item: all three finish. On SecantusDB a plain
/// write that met a transaction's write waited for it holding the collection's lock; the second
/// transaction's statement waited for that lock holding its transaction's mutex; the first one's
/// commit waited for the registry of transactions, whose lifetime sweep waited for that mutex:
/// stalled for good, and every reply and delivery with them (seen in CI).
#[tokio::test]
async fn mongodb_a_relay_mark_never_wedges_the_senders_transactions() {
    use ::mongodb::bson::{Document, doc};
    let Some(uri) = common::mongodb_uri() else { return };
    let database = common::unique_name("kamsg_test");
    let store: Arc<dyn Store> = Arc::new(kamshub::store::mongo::MongoStore::connect(&uri, &database).await.unwrap());
    let (tenant, first, message) = reply_setup(&store, "wedge", "wedge").await;
    store.create_outbound(&first, &message).await.unwrap();
    let reply_to = first.reply().unwrap();
    let (second, message) = reply(&tenant, &reply_to.channel_id, &reply_to.conversation_id, "other", "other");
    store.create_outbound(&second, &message).await.unwrap();
    let client = ::mongodb::Client::with_uri_str(&uri).await.unwrap();
    let outbox = client.database(&database).collection::<Document>("outbox_send");
    let probe = doc! {"$set": {"probe": 1}};

    let mut one = client.start_session().await.unwrap();
    one.start_transaction().await.unwrap();
    outbox.update_one(doc! {"_id": first.id.as_str()}, probe.clone()).session(&mut one).await.unwrap();
    let marking = tokio::spawn({
        let (store, id) = (Arc::clone(&store), first.id.clone());
        async move { store.mark_enqueued(&[id]).await }
    });
    // Each step needs the one before it to have reached the server: give it that time (in any
    // order the fixed code passes).
    let settle = std::time::Duration::from_millis(500);
    tokio::time::sleep(settle).await;
    let two = tokio::spawn({
        let (client, outbox, id, probe) = (client.clone(), outbox.clone(), second.id.clone(), probe.clone());
        async move {
            let mut two = client.start_session().await.unwrap();
            two.start_transaction().await.unwrap();
            outbox.update_one(doc! {"_id": id.as_str()}, probe).session(&mut two).await.unwrap();
            two.commit_transaction().await.unwrap();
        }
    });
    tokio::time::sleep(settle).await;
    let wait = std::time::Duration::from_secs(20);
    let committed = tokio::time::timeout(wait, one.commit_transaction()).await;
    assert!(committed.is_ok(), "the first transaction's commit waited {wait:?}: wedged behind the relay's write");
    committed.unwrap().unwrap();
    tokio::time::timeout(wait, two).await.expect("the second transaction finished").unwrap();
    tokio::time::timeout(wait, marking).await.expect("the mark finished").unwrap().unwrap();
    assert_eq!(store.get_outbox(&tenant, &first.id).await.unwrap().unwrap().status, OutboxStatus::Enqueued);
}

async fn a_greeting_is_queued_once_for_a_new_conversation(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let mut c = store.get_channel(&tenant, &channel).await.unwrap();
    c.auto_reply = Some("Thanks! We reply within an hour.".into());
    store.update_channel(&c, &audit(&tenant, "channel.auto_reply")).await.unwrap();
    let first = record(&tenant, &channel, "1", "31", InboundEvent::Message(text("31", 1, 100, "hello?")));
    store.apply_inbound(std::slice::from_ref(&first)).await.unwrap();
    store.apply_inbound(&[first]).await.unwrap();
    store
        .apply_inbound(&[record(&tenant, &channel, "2", "31", InboundEvent::Message(text("31", 2, 101, "anyone?")))])
        .await
        .unwrap();
    let items = store.list_outbox(&OutboxQuery::new(Some(&tenant), None, 10)).await.unwrap();
    assert_eq!(items.len(), 1, "one greeting per conversation: {items:?}");
    assert_eq!(items[0].reply().unwrap().text, "Thanks! We reply within an hour.");
    assert_eq!(items[0].status, OutboxStatus::Pending);
    let conversation = only_conversation(&store, &tenant).await;
    let texts = texts(&store, &tenant, &conversation).await;
    assert_eq!(
        texts,
        ["hello?", "Thanks! We reply within an hour.", "anyone?"],
        "the greeting follows the first message"
    );
}

async fn a_greeting_whose_send_id_is_taken_never_blocks_the_message_it_answers(store: Arc<dyn Store>) {
    let (tenant, first, _) = reply_setup(&store, "an earlier reply", "unused").await;
    let channel = first.reply().unwrap().channel_id.clone();
    let mut c = store.get_channel(&tenant, &channel).await.unwrap();
    c.auto_reply = Some("Thanks! We reply within an hour.".into());
    store.update_channel(&c, &audit(&tenant, "channel.auto_reply")).await.unwrap();
    // Whatever took the greeting's key (a key kamshub derives: `kamshub:auto-reply:{channel}:{thread}`,
    // which no client may use, stored here directly), the customer's first message must apply.
    let taken = SendId::from_stored(&format!("kamshub:auto-reply:{channel}:6500")).unwrap();
    let (blocker, blocker_message) = OutboxItem::new_reply(
        NewReply { send_id: taken, text: "not a greeting".into(), ..new_reply_of(&first) },
        kamshub::domain::now(),
    );
    store.create_outbound(&blocker, &blocker_message).await.unwrap();
    let hello = record(&tenant, &channel, "2", "6500", InboundEvent::Message(text("6500", 1, 100, "hello?")));
    assert_eq!(store.apply_inbound(&[hello]).await.unwrap(), [ApplyOutcome::Applied]);
    let conversations = store.list_conversations(&tenant, &ConversationQuery::first(10)).await.unwrap();
    let customer = conversations.iter().find(|c| c.external_thread_id == "6500").expect("the conversation exists");
    assert_eq!(texts(&store, &tenant, &customer.id).await, ["hello?"], "stored, without a greeting");
    let items = store.list_outbox(&OutboxQuery::new(Some(&tenant), None, 10)).await.unwrap();
    assert_eq!(items.len(), 1, "only the item that held the key: {items:?}");
}

async fn versions_in_the_same_millisecond_are_ordered_by_their_sequence(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let version = |event: &str, seq: i64, body: &str| {
        let message = IncomingMessage { revision: Revision { at_ms: 100_000, seq }, ..text("8", 1, 100, body) };
        let event_kind = if seq == 1 {
            InboundEvent::Message(message)
        } else {
            InboundEvent::Edit(MessageEdit { message, replaces_attachments: true })
        };
        record(&tenant, &channel, event, "8", event_kind)
    };
    // All written within one millisecond; the latest arrives first.
    for r in [version("3", 3, "third"), version("1", 1, "first"), version("2", 2, "second")] {
        assert_eq!(store.apply_inbound(&[r]).await.unwrap(), [ApplyOutcome::Applied]);
    }
    let conversation = only_conversation(&store, &tenant).await;
    let messages = store.list_messages(&tenant, &conversation, None, 10).await.unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].text.as_deref(), Some("third"));
    let history: Vec<_> = messages[0].body.versions.iter().map(|v| v.text.clone().unwrap()).collect();
    assert_eq!(history, ["first", "second"], "none dropped as already stored");
}

async fn a_reactors_later_set_replaces_the_earlier_one_whatever_the_arrival_order(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    store
        .apply_inbound(&[record(&tenant, &channel, "1", "6", InboundEvent::Message(text("6", 1, 100, "hi")))])
        .await
        .unwrap();
    let react = |event: &str, target: &str, by: &str, emoji: &[&str], seq: i64| {
        let reaction = Reaction {
            by: Sender { id: Some(by.into()), name: None, username: None },
            emoji: emoji.iter().map(|e| e.to_string()).collect(),
            revision: Revision { at_ms: 200_000, seq },
        };
        let update = ReactionUpdate { target: target.into(), reaction };
        record(&tenant, &channel, event, "6", InboundEvent::Reaction(update))
    };
    for r in [
        react("r3", "6:1", "42", &["🔥"], 3),
        react("r2", "6:1", "42", &["👍"], 2),
        react("r4", "6:1", "43", &["❤"], 4),
        react("r5", "6:99", "42", &["👍"], 5),
    ] {
        store.apply_inbound(&[r]).await.unwrap();
    }
    let conversation = only_conversation(&store, &tenant).await;
    let message = &store.list_messages(&tenant, &conversation, None, 10).await.unwrap()[0];
    let sets: Vec<(Option<String>, Vec<String>)> =
        message.body.reactions.iter().map(|r| (r.by.id.clone(), r.emoji.clone())).collect();
    assert_eq!(sets, [(Some("42".into()), vec!["🔥".to_owned()]), (Some("43".into()), vec!["❤".to_owned()])]);
    let ignored = store.get_inbound_event(&tenant, &channel, "r5").await.unwrap().unwrap();
    assert!(
        ignored.outcome.starts_with("ignored: reaction to a message kamshub has not stored"),
        "{}",
        ignored.outcome
    );
}

async fn a_moved_thread_joins_its_conversations_and_the_old_thread_still_leads_there(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let message = |event: &str, thread: &str, id: u64, at: i64, body: &str| {
        record(&tenant, &channel, event, thread, InboundEvent::Message(text(thread, id, at, body)))
    };
    store.apply_inbound(&[message("1", "-400", 1, 100, "in the group")]).await.unwrap();
    store.apply_inbound(&[message("2", "-1009", 1, 300, "in the supergroup")]).await.unwrap();
    let conversations = store.list_conversations(&tenant, &ConversationQuery::first(10)).await.unwrap();
    let old = conversations.iter().find(|c| c.external_thread_id == "-400").unwrap().id.clone();
    let moved = store.move_thread(&tenant, &channel, "-400", "-1009").await.unwrap();
    assert_eq!((moved.id.clone(), moved.external_thread_id.as_str()), (old.clone(), "-1009"), "the older survives");
    assert_eq!(moved.message_count, 2);
    assert_eq!(only_conversation(&store, &tenant).await, old, "the other one is gone");
    assert_eq!(texts(&store, &tenant, &old).await, ["in the group", "in the supergroup"]);
    // A late event of the old chat lands in it; moving again changes nothing.
    store.apply_inbound(&[message("3", "-400", 2, 200, "late from the group")]).await.unwrap();
    assert_eq!(store.move_thread(&tenant, &channel, "-400", "-1009").await.unwrap().id, old);
    assert_eq!(texts(&store, &tenant, &old).await, ["in the group", "late from the group", "in the supergroup"]);
    assert_eq!(store.get_conversation(&tenant, &old).await.unwrap().message_count, 3);
}

async fn recorded_events_keep_their_outcome_and_raw_payload(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let mut r =
        record(&tenant, &channel, "77", "7", InboundEvent::Ignored { reason: "unsupported update type x".into() });
    r.envelope.payload = json!({"update_id": 77, "x": {"big": u64::MAX, "$key": "kept", "deep": [[[[1]]]]}});
    store.apply_inbound(std::slice::from_ref(&r)).await.unwrap();
    let recorded = store.get_inbound_event(&tenant, &channel, "77").await.unwrap().unwrap();
    assert_eq!(recorded.outcome, "ignored: unsupported update type x");
    let payload: serde_json::Value = serde_json::from_str(&recorded.payload).unwrap();
    assert_eq!(payload, r.envelope.payload, "exactly as received");
    assert_eq!(store.get_inbound_event(&tenant, &channel, "78").await.unwrap(), None);
}

/// The parts of a stored reply, to build another one like it.
fn new_reply_of(item: &OutboxItem) -> NewReply {
    NewReply {
        tenant_id: item.tenant_id.clone(),
        send_id: item.send_id.clone(),
        channel_id: item.reply().unwrap().channel_id.clone(),
        conversation_id: item.reply().unwrap().conversation_id.clone(),
        text: item.reply().unwrap().text.clone(),
        order_key: order_key(200_000, "z"),
        sent_at: kamshub::domain::now(),
    }
}

async fn an_echo_carrying_our_send_id_confirms_the_reply_instead_of_adding_one(store: Arc<dyn Store>) {
    let (tenant, item, message) = reply_setup(&store, "we sent this", "send-echo-1").await;
    store.create_outbound(&item, &message).await.unwrap();
    let echo = record(
        &tenant,
        &item.reply().unwrap().channel_id,
        "m_echo",
        "77",
        InboundEvent::Echo(EchoedMessage {
            external_message_id: "m_echo".into(),
            send_id: Some("send-echo-1".into()),
            sent_at_ms: 300_000,
            order_key: order_key(300_000, "m_echo"),
            text: Some("we sent this".into()),
            attachments: Vec::new(),
        }),
    );
    store.apply_inbound(&[echo]).await.unwrap();
    let messages = common::messages_oldest_first(&*store, &tenant, &item.reply().unwrap().conversation_id, 10).await;
    let outbound: Vec<_> = messages.iter().filter(|m| m.direction == Direction::Outbound).collect();
    assert_eq!(outbound.len(), 1, "{messages:?}");
    assert_eq!((outbound[0].status, outbound[0].external_message_id.as_deref()), (MessageStatus::Sent, Some("m_echo")));
}

async fn channel_health_is_kept(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    assert_eq!(store.get_channel(&tenant, &channel).await.unwrap().health, ChannelHealth::Ok);
    store.set_channel_health(&channel, ChannelHealth::NeedsReauth).await.unwrap();
    assert_eq!(store.get_channel(&tenant, &channel).await.unwrap().health, ChannelHealth::NeedsReauth);
}

async fn users_are_found_by_their_subject(store: Arc<dyn Store>) {
    let t = insert_tenant(&store, "Subjects").await;
    let u = user(&t.id, &email("sub"), Role::TenantManager);
    store.insert_user(&u, &audit(&t.id, "user.invite")).await.unwrap();
    assert_eq!(store.get_user(&u.id).await.unwrap(), Some(u));
    assert_eq!(store.get_user(&UserId::generate()).await.unwrap(), None);
}

async fn a_reply_counts_in_its_conversation_once(store: Arc<dyn Store>) {
    let (tenant, item, message) = reply_setup(&store, "on my way", "key-count").await;
    let before = store.get_conversation(&tenant, &item.reply().unwrap().conversation_id).await.unwrap();
    assert_eq!((before.message_count, before.preview.as_deref()), (1, Some("hi")));
    store.create_outbound(&item, &message).await.unwrap();
    let after = store.get_conversation(&tenant, &item.reply().unwrap().conversation_id).await.unwrap();
    assert_eq!(after.message_count, 2, "an agent's reply is a message of the conversation");
    assert_eq!((after.preview.as_deref(), after.last_message_at), (Some("on my way"), Some(message.sent_at)));
    let (retry, retry_message) = reply(
        &tenant,
        &item.reply().unwrap().channel_id,
        &item.reply().unwrap().conversation_id,
        "on my way",
        "key-count",
    );
    assert!(matches!(store.create_outbound(&retry, &retry_message).await.unwrap(), CreateOutcome::Existing(_)));
    let (other, other_message) =
        reply(&tenant, &item.reply().unwrap().channel_id, &item.reply().unwrap().conversation_id, "else", "key-count");
    assert!(store.create_outbound(&other, &other_message).await.is_err());
    let last = store.get_conversation(&tenant, &item.reply().unwrap().conversation_id).await.unwrap();
    assert_eq!(last.message_count, 2, "a replayed or refused key counts nothing");
}

async fn an_outbox_item_is_nobody_elses(store: Arc<dyn Store>) {
    let (tenant, item, message) = reply_setup(&store, "hello", "key-scope").await;
    store.create_outbound(&item, &message).await.unwrap();
    let (other, _) = inbox(&store).await;
    assert_eq!(store.get_outbox(&other, &item.id).await.unwrap(), None);
    assert_eq!(store.transition_outbox(&other, &item.id, &Transition::Claim, None).await.unwrap(), None);
    assert!(store.list_outbox(&OutboxQuery::new(Some(&other), None, 10)).await.unwrap().is_empty());
    let mine = store.get_outbox(&tenant, &item.id).await.unwrap().unwrap();
    assert_eq!((mine.status, mine.attempts), (OutboxStatus::Pending, 0), "another tenant's step changed nothing");
    assert_eq!(store.get_outbox_for_send(&item.id).await.unwrap(), Some(mine), "the sender finds it by id alone");
}

async fn listings_page_newest_first_without_repeats_or_gaps(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let hidden = channel_in(&store, &tenant).await;
    // Threads 0..4 at distinct times, 5 and 6 at the same time (the id breaks the tie), one thread
    // on a channel the listing excludes.
    for (thread, at) in [(0, 100), (1, 101), (2, 102), (3, 103), (4, 104), (5, 200), (6, 200)] {
        let t = thread.to_string();
        let event = InboundEvent::Message(text(&t, 1, at, "hi"));
        store.apply_inbound(&[record(&tenant, &channel, &format!("e{thread}"), &t, event)]).await.unwrap();
    }
    let event = InboundEvent::Message(text("9", 1, 300, "hidden"));
    store.apply_inbound(&[record(&tenant, &hidden, "e9", "9", event)]).await.unwrap();

    let mut seen = Vec::new();
    let mut query = ConversationQuery { exclude_channels: vec![hidden.clone()], ..ConversationQuery::first(2) };
    loop {
        let page = store.list_conversations(&tenant, &query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.before = Some((last.last_message_at.unwrap(), last.id.clone()));
        seen.extend(page);
    }
    let threads: Vec<&str> = seen.iter().map(|c| c.external_thread_id.as_str()).collect();
    let tied: Vec<&str> = {
        let mut pair: Vec<_> =
            seen.iter().filter(|c| c.external_thread_id == "5" || c.external_thread_id == "6").collect();
        pair.sort_by(|a, b| b.id.cmp(&a.id));
        pair.iter().map(|c| c.external_thread_id.as_str()).collect()
    };
    assert_eq!(&threads[..2], &tied[..], "same time: higher id first");
    assert_eq!(&threads[2..], ["4", "3", "2", "1", "0"], "then newest activity first, each once");

    // Messages of one conversation, newest first, across pages.
    for n in 2..=5 {
        let event = InboundEvent::Message(text("0", n, 100 + n as i64, &format!("m{n}")));
        store.apply_inbound(&[record(&tenant, &channel, &format!("m{n}"), "0", event)]).await.unwrap();
    }
    let conversation = seen.iter().find(|c| c.external_thread_id == "0").unwrap().id.clone();
    let (mut texts, mut before) = (Vec::new(), None);
    loop {
        let page = store.list_messages(&tenant, &conversation, before.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some((last.order_key.clone(), last.id.clone()));
        texts.extend(page.into_iter().map(|m| m.text.unwrap()));
    }
    assert_eq!(texts, ["m5", "m4", "m3", "m2", "hi"]);

    // Outbox items, newest first.
    let mut sent = Vec::new();
    for n in 0..3 {
        let (item, message) = reply(&tenant, &channel, &conversation, &format!("r{n}"), &format!("page-{n}"));
        store.create_outbound(&item, &message).await.unwrap();
        sent.push(item.id);
    }
    let mut query = OutboxQuery::new(Some(&tenant), None, 2);
    let mut listed = Vec::new();
    loop {
        let page = store.list_outbox(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        query.before = Some((last.created_at, last.id.clone()));
        listed.extend(page.into_iter().map(|i| i.id));
    }
    sent.reverse();
    assert_eq!(listed, sent);
}

fn failure(error: &str, receive_count: u32) -> InboundFailure {
    // Whole milliseconds: both stores keep times at that precision.
    let now = kamshub::domain::now().replace_nanosecond(0).unwrap();
    InboundFailure { error: error.into(), receive_count, failed_at: now }
}

async fn a_failed_event_records_its_reason_until_it_is_applied(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let r = record(&tenant, &channel, "2001", "55", InboundEvent::Message(text("55", 1, 100, "late")));
    let key = (&tenant, &channel, "2001");
    assert_eq!(store.inbound_failure(key.0, key.1, key.2).await.unwrap(), None, "never failed");

    store.record_inbound_failure(&r.envelope, &failure("first try", 1)).await.unwrap();
    let second = failure("store refused the message", 2);
    store.record_inbound_failure(&r.envelope, &second).await.unwrap();
    assert_eq!(store.inbound_failure(key.0, key.1, key.2).await.unwrap(), Some(second), "the last attempt's reason");
    assert!(store.inbound_failure(&TenantId::generate(), key.1, key.2).await.unwrap().is_none(), "scoped by tenant");

    // A failed event is not a replay: applying it stores the message once and clears the failure.
    assert_eq!(store.apply_inbound(std::slice::from_ref(&r)).await.unwrap(), vec![ApplyOutcome::Applied]);
    assert_eq!(store.apply_inbound(std::slice::from_ref(&r)).await.unwrap(), vec![ApplyOutcome::Duplicate]);
    assert_eq!(store.inbound_failure(key.0, key.1, key.2).await.unwrap(), None);
    let conversation = only_conversation(&store, &tenant).await;
    assert_eq!(texts(&store, &tenant, &conversation).await, ["late"]);
}

async fn a_failure_never_overwrites_an_applied_event(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let r = record(&tenant, &channel, "2002", "56", InboundEvent::Message(text("56", 1, 100, "once")));
    store.apply_inbound(std::slice::from_ref(&r)).await.unwrap();
    // A slow worker reports a failure of an attempt that another worker's replay already beat.
    store.record_inbound_failure(&r.envelope, &failure("too late", 3)).await.unwrap();
    assert_eq!(store.inbound_failure(&tenant, &channel, "2002").await.unwrap(), None);
    assert_eq!(store.apply_inbound(std::slice::from_ref(&r)).await.unwrap(), vec![ApplyOutcome::Duplicate]);
}

fn lease(name: &str, holder: &str, ttl_secs: i64) -> Lease {
    let now = kamshub::domain::now().replace_nanosecond(0).unwrap();
    Lease {
        name: name.into(),
        holder_id: holder.into(),
        actor: "cli:tester".into(),
        host: "host-a".into(),
        pid: 4242,
        acquired_at: now,
        expires_at: now + time::Duration::seconds(ttl_secs),
    }
}

async fn a_lease_is_held_by_one_holder_until_released_or_lapsed(store: Arc<dyn Store>) {
    let name = format!("redrive:test:{}", TenantId::generate());
    let first = lease(&name, "run-1", 60);
    assert_eq!(store.acquire_lease(&first, None).await.unwrap(), None, "a free name is taken");
    let refused = store.acquire_lease(&lease(&name, "run-2", 60), None).await.unwrap();
    assert_eq!(refused, Some(first.clone()), "the refusal names the holder");
    assert!(store.renew_lease(&name, "run-1", first.expires_at + time::Duration::seconds(30)).await.unwrap());
    assert!(!store.renew_lease(&name, "run-2", first.expires_at).await.unwrap(), "only the holder renews");

    // A holder known to be dead can be replaced; then the old holder can neither renew nor release.
    assert_eq!(store.acquire_lease(&lease(&name, "run-3", 60), Some("run-1")).await.unwrap(), None);
    assert!(!store.renew_lease(&name, "run-1", first.expires_at).await.unwrap());
    store.release_lease(&name, "run-1").await.unwrap();
    assert!(store.acquire_lease(&lease(&name, "run-4", 60), None).await.unwrap().is_some(), "run-3 still holds it");
    store.release_lease(&name, "run-3").await.unwrap();
    assert_eq!(store.acquire_lease(&lease(&name, "run-4", -1), None).await.unwrap(), None, "released: free again");

    // run-4's lease has lapsed (it expired a second ago): anyone may take it.
    assert_eq!(store.acquire_lease(&lease(&name, "run-5", 60), None).await.unwrap(), None);
    let other = format!("redrive:other:{}", TenantId::generate());
    assert_eq!(store.acquire_lease(&lease(&other, "run-6", 60), None).await.unwrap(), None, "names are separate");
}

async fn outbox_items_are_counted_by_status(store: Arc<dyn Store>) {
    let before = store.count_outbox(OutboxStatus::Pending).await.unwrap();
    let (tenant, channel) = inbox(&store).await;
    let r = record(&tenant, &channel, "3001", "57", InboundEvent::Message(text("57", 1, 100, "hi")));
    store.apply_inbound(&[r]).await.unwrap();
    let conversation = only_conversation(&store, &tenant).await;
    for n in 0..3 {
        let (item, message) = reply(&tenant, &channel, &conversation, "text", &format!("count-{n}"));
        store.create_outbound(&item, &message).await.unwrap();
    }
    assert_eq!(store.count_outbox(OutboxStatus::Pending).await.unwrap(), before + 3);
}

// ---- events and outgoing webhooks ----

/// The (id, type) of a tenant's events after `after`.
async fn event_log(store: &Arc<dyn Store>, tenant: &TenantId, after: u64) -> Vec<(u64, &'static str)> {
    let events = store.list_events(tenant, EventId::new(after), 500).await.unwrap();
    events.iter().map(|e| (e.id.get(), e.event_type.as_str())).collect()
}

async fn every_change_records_its_event_in_the_same_unit_and_in_order(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let psid = "2400000000000077";
    let first = IncomingMessage { external_message_id: "m_1".into(), ..text(psid, 1, 100, "where is my order?") };
    store.apply_inbound(&[record(&tenant, &channel, "m_1", psid, InboundEvent::Message(first.clone()))]).await.unwrap();
    let edit = MessageEdit {
        message: IncomingMessage {
            text: Some("where is order 5531?".into()),
            revision: Revision { at_ms: 105_000, seq: 1 },
            ..first.clone()
        },
        replaces_attachments: false,
    };
    store.apply_inbound(&[record(&tenant, &channel, "edit_1", psid, InboundEvent::Edit(edit))]).await.unwrap();
    // A replay of an applied event records nothing.
    store.apply_inbound(&[record(&tenant, &channel, "m_1", psid, InboundEvent::Message(first))]).await.unwrap();
    let conversation = only_conversation(&store, &tenant).await;
    let (item, message) = reply(&tenant, &channel, &conversation, "it ships today", "key-events");
    store.create_outbound(&item, &message).await.unwrap();
    store.create_outbound(&item, &message).await.unwrap();
    store.transition_outbox(&tenant, &item.id, &Transition::Claim, None).await.unwrap().unwrap();
    let sent = Transition::Sent { provider_ids: vec!["m_out".into()] };
    store.transition_outbox(&tenant, &item.id, &sent, None).await.unwrap().unwrap();
    let receipt = InboundEvent::Receipt(Receipt {
        status: ReceiptStatus::Read,
        watermark_ms: kamshub::domain::inbound::to_ms(kamshub::domain::now()) + 60_000,
        mids: Vec::new(),
    });
    store.apply_inbound(&[record(&tenant, &channel, "read_1", psid, receipt)]).await.unwrap();
    store.set_channel_health(&channel, ChannelHealth::NeedsReauth).await.unwrap();
    store.set_channel_health(&channel, ChannelHealth::NeedsReauth).await.unwrap();

    assert_eq!(
        event_log(&store, &tenant, 0).await,
        [
            (1, "conversation.created"),
            (2, "message.received"),
            (3, "message.edited"),
            (4, "reply.queued"),
            (5, "reply.sent"),
            (6, "message.status"),
            (7, "channel.health"),
        ],
        "one event per change, none for a replay or a change that changes nothing"
    );
    let events = store.list_events(&tenant, EventId::START, 100).await.unwrap();
    assert!(events.iter().all(|e| e.tenant_id == tenant));
    assert!(events.windows(2).all(|w| w[0].at <= w[1].at), "times never go back");
    assert_eq!(events[1].data["message"]["text"], "where is my order?", "what it read then");
    assert_eq!(events[2].data["message"]["text"], "where is order 5531?");
    assert_eq!(events[2].data["message"]["versions"][0]["text"], "where is my order?");
    assert_eq!(events[3].data["reply"]["status"], "PENDING");
    assert_eq!(
        (events[4].data["reply"]["status"].as_str(), events[4].conversation_id.as_ref()),
        (Some("SENT"), Some(&conversation))
    );
    assert_eq!(events[5].data["status"], "read");
    assert_eq!(events[5].data["messageId"], json!(message.id));
    assert_eq!((events[6].data["health"].as_str(), events[6].conversation_id.as_ref()), (Some("needs_reauth"), None));
    assert_eq!(event_log(&store, &tenant, 5).await, [(6, "message.status"), (7, "channel.health")], "after a cursor");
    assert_eq!(store.get_event(&tenant, EventId::new(2)).await.unwrap().unwrap(), events[1]);
    assert_eq!(store.event_heads(std::slice::from_ref(&tenant)).await.unwrap(), [(tenant.clone(), EventId::new(7))]);
    let other = insert_tenant(&store, &common::unique_name("Other")).await;
    assert!(store.list_events(&other.id, EventId::START, 100).await.unwrap().is_empty(), "another tenant's log");
    assert_eq!(store.get_event(&other.id, EventId::new(2)).await.unwrap(), None);
    assert!(store.event_heads(&[other.id]).await.unwrap().iter().all(|(_, id)| *id == EventId::START));
}

/// Writers on several tasks record one tenant's events while a reader follows the log: ids are
/// 1, 2, 3, … with no gap and no repeat, and the reader, always asking after the last id it saw,
/// never skips one that commits late.
async fn event_ids_are_gap_free_and_readers_never_skip_under_concurrent_writers(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let (writers, per_writer) = (6, 15);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, tenant, done) = (Arc::clone(&store), tenant.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut seen, mut cursor) = (Vec::new(), EventId::START);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                for event in store.list_events(&tenant, cursor, 7).await.unwrap() {
                    assert_eq!(event.id, cursor.next(), "the reader skipped an event");
                    cursor = event.id;
                    seen.push(event.id.get());
                }
                if finished && store.list_events(&tenant, cursor, 1).await.unwrap().is_empty() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let tasks = (0..writers).map(|w| {
        let (store, tenant, channel) = (Arc::clone(&store), tenant.clone(), channel.clone());
        tokio::spawn(async move {
            for n in 0..per_writer {
                let thread = format!("{}", 9000 + w);
                let event = InboundEvent::Message(text(&thread, n + 1, 100 + n as i64, "hello"));
                store.apply_inbound(&[record(&tenant, &channel, &format!("{w}-{n}"), &thread, event)]).await.unwrap();
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    // Each writer's conversation: conversation.created and a message.received per message.
    let total = writers * (per_writer + 1);
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());
    assert_eq!(store.event_heads(std::slice::from_ref(&tenant)).await.unwrap()[0].1, EventId::new(total));
}

async fn old_events_are_pruned_and_their_ids_never_come_back(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let message = |n: u64| InboundEvent::Message(text("31", n, 100 + n as i64, "hi"));
    store.apply_inbound(&[record(&tenant, &channel, "1", "31", message(1))]).await.unwrap();
    store.apply_inbound(&[record(&tenant, &channel, "2", "31", message(2))]).await.unwrap();
    let past = kamshub::domain::now() - std::time::Duration::from_secs(3600);
    assert_eq!(store.prune_events(past, 100).await.unwrap(), 0, "nothing is older than an hour");
    let future = kamshub::domain::now() + std::time::Duration::from_secs(1);
    let mut pruned = 0;
    while let n @ 1.. = store.prune_events(future, 2).await.unwrap() {
        assert!(n <= 2, "bounded batches");
        pruned += n;
    }
    assert!(pruned >= 3, "this tenant's three events went (others' too): {pruned}");
    assert!(store.list_events(&tenant, EventId::START, 10).await.unwrap().is_empty());
    store.apply_inbound(&[record(&tenant, &channel, "3", "31", message(3))]).await.unwrap();
    assert_eq!(event_log(&store, &tenant, 0).await, [(4, "message.received")], "the count goes on");
}

fn endpoint(tenant: &TenantId, types: Vec<EventType>) -> WebhookEndpoint {
    let (id, now) = (WebhookId::generate(), kamshub::domain::now());
    let secret = SecretString::from(SigningSecret::generate().expose().to_owned());
    WebhookEndpoint {
        secret: key().seal(&secret, SealContext::webhook_signing_secret(id.as_str())),
        id,
        tenant_id: tenant.clone(),
        url: "https://hooks.example.com/kamshub".into(),
        event_types: types,
        description: Some("CRM".into()),
        state: EndpointState::Enabled,
        disabled_reason: None,
        health: EndpointHealth::default(),
        created_at: now,
        updated_at: now,
    }
}

/// The (endpoint, event id) of each webhook delivery of a tenant, oldest first.
async fn deliveries(store: &Arc<dyn Store>, tenant: &TenantId) -> Vec<(WebhookId, u64)> {
    let query = OutboxQuery { kind: Some(OutboxKind::Webhook), ..OutboxQuery::new(Some(tenant), None, 100) };
    let mut items = store.list_outbox(&query).await.unwrap();
    items.reverse();
    items.iter().map(|i| (i.delivery().unwrap().webhook_id.clone(), i.delivery().unwrap().event_id.get())).collect()
}

async fn each_event_is_queued_for_the_enabled_endpoints_that_want_it(store: Arc<dyn Store>) {
    let (tenant, channel) = inbox(&store).await;
    let other = insert_tenant(&store, &common::unique_name("Other")).await;
    let all = endpoint(&tenant, Vec::new());
    let received = endpoint(&tenant, vec![EventType::MessageReceived]);
    let mut off = endpoint(&tenant, Vec::new());
    off.state = EndpointState::Disabled;
    let elsewhere = endpoint(&other.id, Vec::new());
    for e in [&all, &received, &off, &elsewhere] {
        store.insert_webhook(e, &audit(&e.tenant_id, "webhook.create")).await.unwrap();
    }
    store
        .apply_inbound(&[record(&tenant, &channel, "1", "41", InboundEvent::Message(text("41", 1, 100, "hi")))])
        .await
        .unwrap();
    let made = deliveries(&store, &tenant).await;
    assert_eq!(made, [(all.id.clone(), 1), (all.id.clone(), 2), (received.id.clone(), 2)], "{made:?}");
    assert!(deliveries(&store, &other.id).await.is_empty(), "another tenant's endpoint gets nothing");
    let query = OutboxQuery { webhook: Some(received.id.clone()), ..OutboxQuery::new(Some(&tenant), None, 10) };
    let listed = store.list_outbox(&query).await.unwrap();
    assert_eq!(listed.len(), 1);
    let delivery = listed[0].delivery().unwrap();
    assert_eq!((delivery.event_type, listed[0].status), (EventType::MessageReceived, OutboxStatus::Pending));
    let conversation = only_conversation(&store, &tenant).await;
    assert_eq!(delivery.conversation_id.as_ref(), Some(&conversation));
    let replies = OutboxQuery { kind: Some(OutboxKind::Reply), ..OutboxQuery::new(Some(&tenant), None, 10) };
    assert!(store.list_outbox(&replies).await.unwrap().is_empty(), "deliveries are not replies");

    // Due in event order (the relay publishes them so), and a replay is a new delivery.
    let now = kamshub::domain::now();
    let due: Vec<_> =
        store.outbox_due(now, now, 100).await.unwrap().into_iter().filter(|i| i.tenant_id == tenant).collect();
    let order: Vec<u64> = due.iter().map(|i| i.delivery().unwrap().event_id.get()).collect();
    assert_eq!(order, [1, 2, 2]);
    let event = store.get_event(&tenant, EventId::new(2)).await.unwrap().unwrap();
    let replay = OutboxItem::new_delivery(&received, &event, Some("r1"), kamshub::domain::now());
    store.insert_deliveries(&[replay.clone(), replay]).await.unwrap();
    assert_eq!(deliveries(&store, &tenant).await.len(), 4, "the replay once, whatever the retries");
}

async fn webhook_endpoints_are_the_tenants_own_and_keep_their_health(store: Arc<dyn Store>) {
    let owner = insert_tenant(&store, &common::unique_name("Owner")).await;
    let other = insert_tenant(&store, &common::unique_name("Other")).await;
    let e = endpoint(&owner.id, vec![EventType::ReplyFailed]);
    store.insert_webhook(&e, &audit(&owner.id, "webhook.create")).await.unwrap();
    assert_eq!(store.get_webhook(&owner.id, &e.id).await.unwrap(), e);
    assert_eq!(store.list_webhooks(&owner.id).await.unwrap(), std::slice::from_ref(&e));
    assert!(matches!(store.get_webhook(&other.id, &e.id).await, Err(StoreError::NotFound(_))));
    assert!(store.list_webhooks(&other.id).await.unwrap().is_empty());
    let hijack = WebhookEndpoint { tenant_id: other.id.clone(), ..e.clone() };
    assert!(matches!(store.update_webhook(&hijack, &audit(&other.id, "x")).await, Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.delete_webhook(&other.id, &e.id, &audit(&other.id, "x")).await,
        Err(StoreError::NotFound(_))
    ));
    let after = std::time::Duration::from_secs(60);
    assert_eq!(store.record_webhook_attempt(&other.id, &e.id, &gone(), after).await.unwrap(), None);

    let failed = AttemptResult { status: Some(503), error: Some("HTTP 503".into()) };
    let now = store.record_webhook_attempt(&owner.id, &e.id, &failed, after).await.unwrap().unwrap();
    assert_eq!(
        (now.state, now.health.consecutive_failures, now.health.last_status),
        (EndpointState::Enabled, 1, Some(503))
    );
    let now = store.record_webhook_attempt(&owner.id, &e.id, &gone(), after).await.unwrap().unwrap();
    assert_eq!(now.state, EndpointState::Disabled);
    assert_eq!(store.get_webhook(&owner.id, &e.id).await.unwrap(), now, "kept as returned");
    let mut enabled = now.clone();
    enabled.enable(kamshub::domain::now());
    store.update_webhook(&enabled, &audit(&owner.id, "webhook.update")).await.unwrap();
    assert_eq!(store.get_webhook(&owner.id, &e.id).await.unwrap().state, EndpointState::Enabled);
    store.delete_webhook(&owner.id, &e.id, &audit(&owner.id, "webhook.delete")).await.unwrap();
    assert!(matches!(store.get_webhook(&owner.id, &e.id).await, Err(StoreError::NotFound(_))));
    let actions: Vec<String> = store.list_audit(&owner.id, 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert_eq!(actions[..3], ["webhook.delete", "webhook.update", "webhook.create"], "{actions:?}");
}

fn gone() -> AttemptResult {
    AttemptResult { status: Some(410), error: Some("HTTP 410".into()) }
}
