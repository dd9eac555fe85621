//! Provider coverage, from payloads in the shapes the Bot API and the Graph API document
//! (tests/fixtures/telegram, tests/fixtures/messenger), through webhooks, the processor, the store
//! and the sender, on the embedded backends and on MongoDB + SQS: forum topics, service messages
//! and unmodelled content, group migration, explicit nulls and legacy shapes, edits within the
//! same second, reactions, and Chat Plugin visitors known by `user_ref`.

mod common;

use common::app::{Backend, PAGE_ID, TestApp, spawn_app_with};
use common::fake_providers::{Answer, FakeSends};
use kamshub::domain::inbound::{InboundEvent, MessageKind};
use kamshub::domain::{Conversation, ConversationId, Message, OutboxStatus, SystemEvent, summary};
use kamshub::providers::{messenger_webhook, telegram_webhook};
use kamshub::service::outbox;
use kamshub::store::ConversationQuery;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $case() {
                let fake = super::FakeSends::start().await;
                let app = super::spawn_app_with(super::Backend::Embedded, &fake.uri(), &fake.uri()).await.unwrap();
                super::$case(app, fake).await
            })*
        }
        mod mongodb_sqs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $case() {
                let fake = super::FakeSends::start().await;
                let Some(app) = super::spawn_app_with(super::Backend::Production, &fake.uri(), &fake.uri()).await
                else { return };
                super::$case(app, fake).await
            })*
        }
    };
}

on_both_backends!(
    a_forum_topic_is_its_own_conversation_and_replies_go_back_to_the_topic,
    service_messages_and_unmodelled_content_are_shown_by_their_summaries,
    a_group_that_became_a_supergroup_continues_as_one_conversation,
    a_reply_to_a_group_that_moved_follows_it_to_the_supergroup,
    explicit_nulls_and_legacy_shapes_lose_nothing,
    edits_within_one_second_keep_every_version_and_the_latest_wins,
    reactions_keep_each_reactors_latest_set,
    chat_plugin_visitors_are_threaded_by_user_ref_and_opt_ins_recorded_as_ignored,
);

/// The page of the Messenger fixtures; the test app's page replaces it.
const FIXTURE_PAGE: &str = "107362198765432";

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/{path}")).unwrap()
}

async fn post_telegram(app: &TestApp, update: &Value) {
    assert_eq!(app.post_telegram(update).await, StatusCode::OK, "{update}");
}

async fn post_telegram_fixture(app: &TestApp, name: &str) {
    let update: Value = serde_json::from_str(&fixture(&format!("telegram/{name}"))).unwrap();
    match update {
        Value::Array(updates) => {
            for u in updates {
                post_telegram(app, &u).await;
            }
        }
        one => post_telegram(app, &one).await,
    }
}

/// A Messenger fixture, addressed to the test app's page.
fn messenger_fixture(name: &str) -> String {
    fixture(&format!("messenger/{name}")).replace(FIXTURE_PAGE, PAGE_ID)
}

/// Posts a Messenger fixture, signed, to the test app's page.
async fn post_messenger_fixture(app: &TestApp, name: &str) {
    assert_eq!(app.post_messenger(&messenger_fixture(name)).await, StatusCode::OK, "{name}");
}

async fn conversation(app: &TestApp, thread: &str) -> Conversation {
    let all = app.store().await.list_conversations(&app.tenant, &ConversationQuery::first(1000)).await.unwrap();
    all.into_iter().find(|c| c.external_thread_id == thread).unwrap_or_else(|| panic!("no conversation {thread}"))
}

async fn messages(app: &TestApp, conversation: &ConversationId) -> Vec<Message> {
    common::messages_oldest_first(app.store().await.as_ref(), &app.tenant, conversation, 1000).await
}

async fn summaries(app: &TestApp, thread: &str) -> Vec<String> {
    let c = conversation(app, thread).await;
    messages(app, &c.id).await.iter().map(Message::summary).collect()
}

/// Steps relay and sender until `id` reaches `status`.
async fn sent(app: &TestApp, id: &str) -> kamshub::domain::OutboxItem {
    let id = kamshub::domain::OutboxId::parse(id).unwrap();
    let store = app.store().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let item = store.get_outbox(&app.tenant, &id).await.unwrap().unwrap();
        if item.status == OutboxStatus::Sent {
            return item;
        }
        assert!(Instant::now() < deadline, "not sent in 60 s: {item:?}");
        app.relay.run_once().await.unwrap();
        app.sender.run_once().await.unwrap();
    }
}

async fn reply(app: &TestApp, conversation: &ConversationId, text: &str) -> kamshub::domain::OutboxItem {
    let caller = kamshub::service::access::Caller::operator();
    let sent_reply = outbox::send_reply(&app.app, &caller, &app.tenant, conversation, text, None).await.unwrap();
    sent(app, &sent_reply.view.outbox_id).await
}

const DESK: &str = "-1001987654321";

async fn a_forum_topic_is_its_own_conversation_and_replies_go_back_to_the_topic(app: TestApp, fake: FakeSends) {
    for name in ["forum_topic_created.json", "forum_topic_message.json", "forum_topic_reply.json"] {
        post_telegram_fixture(&app, name).await;
    }
    post_telegram_fixture(&app, "forum_general_message.json").await;
    app.drain().await;

    let topic = conversation(&app, &format!("{DESK}:topic:77")).await;
    assert_eq!(topic.title.as_deref(), Some("Kams Support Desk › Order #5531: damaged box"));
    let stored = messages(&app, &topic.id).await;
    let shown: Vec<String> = stored.iter().map(Message::summary).collect();
    assert_eq!(
        shown,
        [
            "Mira Koskinen created the topic “Order #5531: damaged box”",
            "The corner of the box was crushed, photos coming",
            "Sorry to hear that! A replacement is on its way.",
        ]
    );
    assert_eq!(stored[1].body.reply_to, None, "hanging under the topic is not a reply");
    assert_eq!(stored[2].body.reply_to.as_deref(), Some("-1001987654321:78"));
    let general = conversation(&app, DESK).await;
    assert_eq!((general.title.as_deref(), general.message_count), (Some("Kams Support Desk"), 1));

    let answer = reply(&app, &topic.id, "We have sent a new box.").await;
    let general_answer = reply(&app, &general.id, "Yes, 10 to 14.").await;
    let sends = fake.sent();
    let to_topic = sends.iter().find(|s| s.text == "We have sent a new box.").unwrap();
    assert_eq!((to_topic.chat.as_str(), to_topic.topic), (DESK, Some(77)), "the reply goes to its topic");
    let to_general = sends.iter().find(|s| s.text == "Yes, 10 to 14.").unwrap();
    assert_eq!((to_general.chat.as_str(), to_general.topic), (DESK, None));
    for item in [answer, general_answer] {
        let reference = &item.provider_message_ids[0];
        assert!(reference.starts_with("-1001987654321:") && !reference.contains("topic"), "{reference}");
    }
}

async fn service_messages_and_unmodelled_content_are_shown_by_their_summaries(app: TestApp, _: FakeSends) {
    post_telegram_fixture(&app, "service_messages.json").await;
    post_telegram_fixture(&app, "unmodelled_content.json").await;
    app.drain().await;

    // Stored and listed as the normaliser reads them (each summary is checked in
    // src/providers/telegram_webhook/tests.rs), in provider order.
    let updates: Vec<Value> = serde_json::from_str(&fixture("telegram/service_messages.json")).unwrap();
    let in_the_lounge: Vec<String> = updates
        .iter()
        .filter(|u| u["message"]["chat"]["id"] == -1_001_234_567_890_i64)
        .map(|u| match telegram_webhook::normalize(u).unwrap() {
            InboundEvent::Message(m) => summary(m.text.as_deref(), &m.kind, &m.sender, &m.attachments),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(in_the_lounge.len(), 16);
    assert_eq!(summaries(&app, "-1001234567890").await, in_the_lounge);
    let private = conversation(&app, "284619503").await;
    let stored = messages(&app, &private.id).await;
    assert!(stored.iter().all(|m| m.text.is_none()), "no blank text passed off as content");
    assert_eq!(stored.len(), 17);
    assert_eq!(private.preview.as_deref(), Some("Unsupported content: some future content"));
    let pinned = &messages(&app, &conversation(&app, "-1001234567890").await.id).await[6];
    assert!(
        matches!(&pinned.body.kind, MessageKind::System { event: SystemEvent::MessagePinned { message: Some(m), .. } }
            if m == "-1001234567890:90417"),
        "{:?}",
        pinned.body.kind
    );

    // `conversation show` renders them: the JSON a script reads, and the table a person reads.
    let tenant = app.tenant.to_string();
    let shown = app.cli_json(&["conversation", "show", private.id.as_str(), "--tenant", &tenant]);
    let summaries: Vec<&str> =
        shown["messages"].as_array().unwrap().iter().map(|m| m["summary"].as_str().unwrap()).collect();
    assert_eq!(summaries[0], "Aino Virtanen allowed the bot to write");
    assert_eq!(summaries[1], "🎲 rolled 4");
    assert_eq!(summaries[3], "Invoice: Express shipping (14.90 EUR)");
    assert_eq!(summaries[16], "Unsupported content: some future content");
    let table = app.cli_table(&["conversation", "show", private.id.as_str(), "--tenant", &tenant]);
    for line in ["Checklist: Before you return the parcel (1/3 done)", "Payment received (14.90 EUR)", "Shared 2 users"]
    {
        assert!(table.contains(line), "{line} not in the table:\n{table}");
    }
}

/// The migration fixtures with their chat ids and update ids moved, for a second, independent run.
fn migration_fixture(name: &str, shift: i64) -> Value {
    let text = fixture(&format!("telegram/{name}"))
        .replace("4012345678", &(4_012_345_678 + shift).to_string())
        .replace("1002003004005", &(1_002_003_004_005 + shift).to_string())
        .replace("82739140", &(82_739_140 + shift).to_string());
    serde_json::from_str(&text).unwrap()
}

/// The history with the two upgrade events (one from each chat, sent in the same second, their
/// message ids from two unrelated sequences) in a fixed order: only their place between the
/// messages around them is provider order.
fn in_any_order_within_the_upgrade<S: AsRef<str>>(history: &[S]) -> Vec<String> {
    let mut history: Vec<String> = history.iter().map(|s| s.as_ref().to_owned()).collect();
    if history.len() == 4 {
        history[1..3].sort();
    }
    history
}

async fn a_group_that_became_a_supergroup_continues_as_one_conversation(app: TestApp, _: FakeSends) {
    let names =
        ["migration_before.json", "migrate_to_chat_id.json", "migrate_from_chat_id.json", "migration_after.json"];
    let expected = [
        "Can we get the pilot pricing sheet here?",
        "The group became a supergroup (chat -1002003004005)",
        "Supergroup continued from the group (chat -4012345678)",
        "Thanks, the sheet is pinned now",
    ];
    // In Telegram's order: the old group's side first.
    for name in names {
        post_telegram(&app, &migration_fixture(name, 0)).await;
        app.drain().await;
    }
    let before = conversation(&app, "-1002003004005").await;
    let shown = summaries(&app, "-1002003004005").await;
    assert_eq!(
        in_any_order_within_the_upgrade(&shown),
        in_any_order_within_the_upgrade(&expected),
        "one conversation, history included"
    );
    assert_eq!(before.message_count, 4);

    // The supergroup's side first, the old group's messages last: still one conversation.
    for name in names.into_iter().rev() {
        post_telegram(&app, &migration_fixture(name, 1)).await;
        app.drain().await;
    }
    let joined = conversation(&app, "-1002003004006").await;
    let shown = summaries(&app, "-1002003004006").await;
    let expected: Vec<String> = expected
        .iter()
        .map(|e| e.replace("4012345678", "4012345679").replace("1002003004005", "1002003004006"))
        .collect();
    assert_eq!(
        in_any_order_within_the_upgrade(&shown),
        in_any_order_within_the_upgrade(&expected),
        "in provider order"
    );
    assert_eq!(joined.message_count, 4);
    let threads: Vec<String> = app
        .store()
        .await
        .list_conversations(&app.tenant, &ConversationQuery::first(100))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.external_thread_id)
        .collect();
    assert_eq!(threads.len(), 2, "one conversation per migrated group: {threads:?}");
    // A late message from the old chat id still lands in it.
    let mut late = migration_fixture("migration_before.json", 1);
    late["update_id"] = serde_json::json!(827_392_999);
    late["message"]["message_id"] = serde_json::json!(309);
    late["message"]["text"] = serde_json::json!("sent just before the upgrade");
    post_telegram(&app, &late).await;
    app.drain().await;
    assert_eq!(conversation(&app, "-1002003004006").await.message_count, 5);
}

async fn a_reply_to_a_group_that_moved_follows_it_to_the_supergroup(app: TestApp, fake: FakeSends) {
    post_telegram_fixture(&app, "migration_before.json").await;
    app.drain().await;
    let group = conversation(&app, "-4012345678").await;
    fake.script(&[Answer::Migrated(-1_002_003_004_005)]);
    let item = reply(&app, &group.id, "Here is the sheet.").await;
    let sends: Vec<(String, bool)> = fake.sent().into_iter().map(|s| (s.chat, s.delivered)).collect();
    assert_eq!(
        sends,
        [("-4012345678".to_owned(), false), ("-1002003004005".to_owned(), true)],
        "told where the group went, the sender follows it"
    );
    assert!(item.provider_message_ids[0].starts_with("-1002003004005:"));
    let moved = app.store().await.get_conversation(&app.tenant, &group.id).await.unwrap();
    assert_eq!(moved.external_thread_id, "-1002003004005", "the conversation continues under the new id");
    // The migration updates themselves, and the supergroup's messages, join the same conversation.
    for name in ["migrate_from_chat_id.json", "migration_after.json", "migrate_to_chat_id.json"] {
        post_telegram_fixture(&app, name).await;
    }
    app.drain().await;
    let all = app.store().await.list_conversations(&app.tenant, &ConversationQuery::first(100)).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].id, group.id);
    let history = summaries(&app, "-1002003004005").await;
    assert_eq!(history.len(), 5, "four from Telegram and the reply: {history:?}");
    assert!(history.contains(&"Here is the sheet.".to_owned()));
}

async fn explicit_nulls_and_legacy_shapes_lose_nothing(app: TestApp, _: FakeSends) {
    post_telegram_fixture(&app, "explicit_nulls.json").await;
    post_telegram_fixture(&app, "explicit_null_media.json").await;
    post_messenger_fixture(&app, "fallback_legacy_url.json").await;
    post_messenger_fixture(&app, "explicit_nulls.json").await;
    app.drain().await;
    let private = conversation(&app, "284619503").await;
    let stored = messages(&app, &private.id).await;
    assert_eq!(stored[0].text.as_deref(), Some("Sent from a client library that writes every field"));
    assert!(
        stored[0].body.attachments.is_empty(),
        "no empty audio, photo or document: {:?}",
        stored[0].body.attachments
    );
    let kinds: Vec<&str> = stored[1].body.attachments.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!((kinds.as_slice(), stored[1].text.as_deref()), (&["photo"][..], Some("the receipt")));
    let customer = conversation(&app, "6543210987654321").await;
    let stored = messages(&app, &customer.id).await;
    let fallback = &stored[0].body.attachments[0];
    assert_eq!(fallback.kind, "fallback");
    assert!(fallback.url.as_deref().unwrap().contains("shop.kams.example%2Forders%2F5531"), "the legacy URL is kept");
    assert_eq!(stored[1].text.as_deref(), Some("Null everywhere"));
    assert!(stored[1].body.attachments.is_empty());
}

async fn edits_within_one_second_keep_every_version_and_the_latest_wins(app: TestApp, _: FakeSends) {
    // Telegram: edited twice within the second it was sent, delivered newest first.
    let updates: Vec<Value> = serde_json::from_str(&fixture("telegram/edits_same_second.json")).unwrap();
    for u in [&updates[2], &updates[0], &updates[1]] {
        post_telegram(&app, u).await;
    }
    app.drain().await;
    let private = conversation(&app, "284619503").await;
    let stored = messages(&app, &private.id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].text.as_deref(), Some("My order number is #5531"), "update_id orders same-second edits");
    let history: Vec<&str> = stored[0].body.versions.iter().map(|v| v.text.as_deref().unwrap()).collect();
    assert_eq!(history, ["My order number is 5513", "My order number is 5531"], "every version kept, in order");

    // Messenger: two edits with the same timestamp (the count orders them), then an earlier one.
    for name in ["edit_original.json", "message_edits_same_time.json", "message_edit.json"] {
        post_messenger_fixture(&app, name).await;
    }
    app.drain().await;
    let customer = conversation(&app, "6543210987654321").await;
    let stored = messages(&app, &customer.id).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].text.as_deref(), Some("Deliver to Mannerheimintie 10 B 12"));
    let history: Vec<&str> = stored[0].body.versions.iter().map(|v| v.text.as_deref().unwrap()).collect();
    assert_eq!(
        history,
        ["Deliver to Mannerheimintie 1", "Deliver to Mannerheimintie 10", "Deliver to Mannerheimintie 10 B"]
    );
}

async fn reactions_keep_each_reactors_latest_set(app: TestApp, _: FakeSends) {
    post_telegram_fixture(&app, "group_message.json").await;
    app.drain().await;
    // Delivered out of order: the change (👍 → 🔥) before the first reaction.
    for name in ["message_reaction_changed.json", "message_reaction.json", "message_reaction_anonymous.json"] {
        post_telegram_fixture(&app, name).await;
    }
    app.drain().await;
    let lounge = conversation(&app, "-1001234567890").await;
    let reactions = |m: &Message| -> Vec<(Option<String>, Vec<String>)> {
        m.body.reactions.iter().map(|r| (r.by.id.clone(), r.emoji.clone())).collect()
    };
    let stored = &messages(&app, &lounge.id).await[0];
    assert_eq!(
        reactions(stored),
        [
            (Some("284619503".into()), vec!["🔥".to_owned(), "custom_emoji:5368324170671202286".to_owned()]),
            (Some("-1001234567890".into()), vec!["❤".to_owned(), "paid".to_owned()]),
        ],
        "the later change wins, whatever arrived last"
    );
    post_telegram_fixture(&app, "message_reaction_removed.json").await;
    app.drain().await;
    let stored = &messages(&app, &lounge.id).await[0];
    assert_eq!(reactions(stored)[0], (Some("284619503".into()), vec![]), "taken back");

    // Messenger: a customer reacts to a message the page sent.
    post_messenger_fixture(&app, "echo_metadata.json").await;
    post_messenger_fixture(&app, "reaction.json").await;
    app.drain().await;
    let customer = conversation(&app, "6543210987654321").await;
    let ours = &messages(&app, &customer.id).await[0];
    assert_eq!(reactions(ours), [(Some("6543210987654321".into()), vec!["\u{2764}".to_owned()])]);
    post_messenger_fixture(&app, "reaction_unreact.json").await;
    app.drain().await;
    let ours = &messages(&app, &customer.id).await[0];
    assert_eq!(reactions(ours), [(Some("6543210987654321".into()), vec![])]);
}

async fn chat_plugin_visitors_are_threaded_by_user_ref_and_opt_ins_recorded_as_ignored(app: TestApp, fake: FakeSends) {
    post_messenger_fixture(&app, "postback_user_ref.json").await;
    post_messenger_fixture(&app, "referral_user_ref.json").await;
    post_messenger_fixture(&app, "optin_checkbox.json").await;
    app.drain().await;
    let thread = "user_ref:cp_5f1d3a9e-7b42-4c0e-9a61-2b8e4d7c1f30";
    assert_eq!(
        summaries(&app, thread).await,
        ["Get Started", "Came from the chat plugin on https://shop.kams.example/orders/5531 (ref order-5531)"]
    );
    let all = app.store().await.list_conversations(&app.tenant, &ConversationQuery::first(100)).await.unwrap();
    assert_eq!(all.len(), 1, "the opt-in names no one: no conversation");
    let optin: Value = serde_json::from_str(&messenger_fixture("optin_checkbox.json")).unwrap();
    let event_id = messenger_webhook::split(&optin).unwrap().items.remove(0).provider_event_id;
    let recorded = app.store().await.get_inbound_event(&app.tenant, &app.messenger, &event_id).await.unwrap().unwrap();
    assert!(
        recorded.outcome.starts_with("ignored: checkbox opt-in with user_ref chk_9d2c7e10"),
        "{}",
        recorded.outcome
    );
    assert!(recorded.payload.contains("checkout-5531"), "the raw event is kept");

    let visitor = conversation(&app, thread).await;
    reply(&app, &visitor.id, "Hi! How can we help?").await;
    let last = fake.sent().pop().unwrap();
    assert_eq!((last.chat.as_str(), last.delivered), (thread, true), "addressed by user_ref");
}
