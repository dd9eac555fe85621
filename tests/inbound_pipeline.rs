//! The inbound pipeline through its public surface: webhooks over HTTP, the processor loop, the
//! store — on the embedded backends and on MongoDB + SQS (SecantusDB + moto).

mod common;

use common::app::{Backend, PAGE_ID, TestApp, messenger_text, spawn_app, telegram_text};
use common::queues::{Fault, Faulty};
use kamshub::domain::{ConversationId, Direction};
use kamshub::pipeline::processor::{Processor, ProcessorConfig};
use kamshub::queue::QueueName;
use kamshub::store::ConversationQuery;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::Duration;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $case() {
                super::$case(super::spawn_app(super::Backend::Embedded).await.unwrap()).await
            })*
        }
        mod mongodb_sqs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $case() {
                let Some(app) = super::spawn_app(super::Backend::Production).await else { return };
                super::$case(app).await
            })*
        }
    };
}

on_both_backends!(
    a_telegram_update_delivered_three_times_at_once_is_stored_once,
    a_reused_telegram_update_id_after_a_quiet_week_is_a_new_update,
    a_messenger_mid_delivered_three_times_is_stored_once_and_echoes_are_not_inbound,
    two_hundred_messages_of_one_chat_are_stored_in_order_while_other_chats_proceed,
    a_poison_message_reaches_the_dlq_and_the_rest_flow_on,
    a_processor_worker_that_panics_is_restarted_and_nothing_is_lost,
);

async fn conversations(app: &TestApp) -> Vec<kamshub::domain::Conversation> {
    app.store().await.list_conversations(&app.tenant, &ConversationQuery::first(1000)).await.unwrap()
}

async fn messages(app: &TestApp, conversation: &ConversationId) -> Vec<kamshub::domain::Message> {
    common::messages_oldest_first(&*app.store().await, &app.tenant, conversation, 10_000).await
}

async fn conversation_of(app: &TestApp, thread: &str) -> ConversationId {
    let all = conversations(app).await;
    all.into_iter().find(|c| c.external_thread_id == thread).unwrap_or_else(|| panic!("no conversation {thread}")).id
}

async fn a_telegram_update_delivered_three_times_at_once_is_stored_once(app: TestApp) {
    let update = telegram_text(9001, 555, 1, 1_700_000_000, "hello once");
    let (a, b, c) = tokio::join!(app.post_telegram(&update), app.post_telegram(&update), app.post_telegram(&update));
    assert_eq!([a, b, c], [StatusCode::OK; 3], "every delivery is acknowledged");
    app.drain().await;
    // A late retry after processing is acknowledged and changes nothing either.
    assert_eq!(app.post_telegram(&update).await, StatusCode::OK);
    app.drain().await;
    let conversation = conversation_of(&app, "555").await;
    let stored = messages(&app, &conversation).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].text.as_deref(), Some("hello once"));
    assert_eq!(stored[0].external_message_id.as_deref(), Some("555:1"));
}

/// Telegram restarts `update_id`s at a random number after a week without updates: an id seen
/// before can name a new message, which must be stored (a retry of it still is not stored twice).
async fn a_reused_telegram_update_id_after_a_quiet_week_is_a_new_update(app: TestApp) {
    let before = telegram_text(777, 9100, 1, 1_700_000_000, "before the quiet week");
    assert_eq!(app.post_telegram(&before).await, StatusCode::OK);
    app.drain().await;
    let after = telegram_text(777, 9200, 5, 1_700_700_000, "after the quiet week");
    assert_eq!(app.post_telegram(&after).await, StatusCode::OK);
    assert_eq!(app.post_telegram(&after).await, StatusCode::OK, "Telegram retries it");
    app.drain().await;
    for (chat, text) in [("9100", "before the quiet week"), ("9200", "after the quiet week")] {
        let stored = messages(&app, &conversation_of(&app, chat).await).await;
        let texts: Vec<_> = stored.iter().map(|m| m.text.as_deref()).collect();
        assert_eq!(texts, [Some(text)], "chat {chat}");
    }
}

async fn a_messenger_mid_delivered_three_times_is_stored_once_and_echoes_are_not_inbound(app: TestApp) {
    let psid = "2400000000000042";
    let body = messenger_text(psid, "m_AbC123", 1_700_000_000_000, "hi page");
    let (a, b, c) = tokio::join!(app.post_messenger(&body), app.post_messenger(&body), app.post_messenger(&body));
    assert_eq!([a, b, c], [StatusCode::OK; 3]);
    let echo = serde_json::json!({
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": 1_700_000_001_000i64, "messaging": [{
            "sender": {"id": PAGE_ID}, "recipient": {"id": psid}, "timestamp": 1_700_000_001_000i64,
            "message": {"mid": "m_Echo1", "is_echo": true, "app_id": 1234, "metadata": "send_abc", "text": "hello customer"}
        }]}]
    })
    .to_string();
    assert_eq!(app.post_messenger(&echo).await, StatusCode::OK);
    assert_eq!(app.post_messenger(&echo).await, StatusCode::OK);
    app.drain().await;
    let conversation = conversation_of(&app, psid).await;
    let stored = messages(&app, &conversation).await;
    let shape: Vec<(Direction, Option<&str>)> = stored.iter().map(|m| (m.direction, m.text.as_deref())).collect();
    assert_eq!(shape, [(Direction::Inbound, Some("hi page")), (Direction::Outbound, Some("hello customer"))]);
}

async fn two_hundred_messages_of_one_chat_are_stored_in_order_while_other_chats_proceed(app: TestApp) {
    let app = Arc::new(app);
    // Chat 100 gets 200 messages posted from 8 concurrent senders (so they arrive out of order);
    // 20 other chats get 5 each, interleaved.
    let mut updates = Vec::new();
    for i in 0..200i64 {
        updates.push(telegram_text(10_000 + i, 100, i + 1, 1_700_000_000 + i / 3, &format!("m{i:03}")));
    }
    for chat in 0..20i64 {
        for i in 0..5i64 {
            updates.push(telegram_text(20_000 + chat * 10 + i, 1_000 + chat, i + 1, 1_700_000_000 + i, "other"));
        }
    }
    let chunks: Vec<Vec<serde_json::Value>> = updates.chunks(updates.len().div_ceil(8)).map(<[_]>::to_vec).collect();
    let senders = chunks.into_iter().enumerate().map(|(n, mut chunk)| {
        let app = Arc::clone(&app);
        if n % 2 == 1 {
            chunk.reverse();
        }
        tokio::spawn(async move {
            for u in chunk {
                assert_eq!(app.post_telegram(&u).await, StatusCode::OK);
            }
        })
    });
    // Process while the webhooks are still coming in, with several workers.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                for _ in 0..20 {
                    app.processor.run_once().await.unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    for w in workers {
        w.await.unwrap();
    }
    app.drain().await;

    let chat = conversation_of(&app, "100").await;
    let texts: Vec<String> = messages(&app, &chat).await.into_iter().map(|m| m.text.unwrap()).collect();
    let expected: Vec<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    assert_eq!(texts, expected, "stored in provider order");
    let all = conversations(&app).await;
    assert_eq!(all.len(), 21);
    assert!(all.iter().filter(|c| c.external_thread_id != "100").all(|c| c.message_count == 5));
    let counts = app.processor.stats().read();
    assert_eq!((counts.visibility_lapses, counts.extend_failures), (0, 0), "a fault-free run: {counts:?}");
}

/// The processor's only worker panics (here: on its first delete, after the events were
/// applied); it is counted and started again, and every event is stored once.
async fn a_processor_worker_that_panics_is_restarted_and_nothing_is_lost(app: TestApp) {
    let store = app.store().await;
    let config = ProcessorConfig {
        workers: 1,
        receive_wait: Duration::from_millis(300),
        visibility_timeout: app.visibility,
        max_attempts: common::app::MAX_RECEIVES,
    };
    let queue = Faulty::wrap(Arc::clone(&app.queue), Fault::PanicOnFirstDelete);
    let processor = Arc::new(Processor::new(Arc::clone(&store), queue, app.app.providers().clone(), config));
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&processor).run(stop.clone()));
    for i in 0..3i64 {
        assert_eq!(
            app.post_telegram(&telegram_text(30_000 + i, 3_000 + i, 1, 1_700_000_000, "hi")).await,
            StatusCode::OK
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let depth = app.queue.depth(QueueName::Incoming).await.unwrap();
        if conversations(&app).await.len() == 3 && depth.visible == 0 && depth.in_flight == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the processor stopped processing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    running.await.unwrap();
    assert!(conversations(&app).await.iter().all(|c| c.message_count == 1), "each event stored once");
    assert_eq!(processor.stats().read().worker_restarts, 1, "the panic was noticed");
}

async fn a_poison_message_reaches_the_dlq_and_the_rest_flow_on(app: TestApp) {
    // A message whose date is not a number parses at intake but cannot be normalised.
    let poison = serde_json::json!({
        "update_id": 31337,
        "message": {"message_id": 1, "chat": {"id": 666, "type": "private"}, "date": "yesterday", "text": "x"}
    });
    assert_eq!(app.post_telegram(&poison).await, StatusCode::OK);
    // The same chat goes on after it, and other chats never wait.
    assert_eq!(app.post_telegram(&telegram_text(31338, 666, 2, 1_700_000_000, "next")).await, StatusCode::OK);
    for i in 0..10 {
        assert_eq!(
            app.post_telegram(&telegram_text(40_000 + i, 700 + i, 1, 1_700_000_000, "fine")).await,
            StatusCode::OK
        );
    }
    let queue = Arc::clone(&app.queue);
    let steps = app
        .process_until(move || {
            let queue = Arc::clone(&queue);
            async move {
                let (dlq, incoming) = (
                    queue.depth(QueueName::IncomingDlq).await.unwrap(),
                    queue.depth(QueueName::Incoming).await.unwrap(),
                );
                dlq.visible == 1 && incoming.visible + incoming.in_flight == 0
            }
        })
        .await;
    assert_eq!(steps.applied, 11, "the other chats, and its own next message, were applied: {steps:?}");
    assert_eq!((steps.dead_lettered, steps.retried), (1, 0), "straight to the DLQ: retrying cannot help");
    let dead = app.queue.receive(QueueName::IncomingDlq, 10, std::time::Duration::from_secs(1)).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].body.contains("yesterday"), "the poison message itself is in the DLQ");
    assert!(dead[0].group_id.ends_with(":666"), "its group id is kept: {}", dead[0].group_id);
    assert_eq!(conversations(&app).await.len(), 11);
    let chat = conversation_of(&app, "666").await;
    assert_eq!(messages(&app, &chat).await.len(), 1);
}

/// Bad requests: each refused with the right status and nothing enqueued. (Bad content in an
/// authenticated request is never refused: see tests/hostile_input.rs.)
mod bad_input {
    use super::*;

    async fn app() -> TestApp {
        spawn_app(Backend::Embedded).await.unwrap()
    }

    async fn nothing_enqueued(app: &TestApp) {
        let depth = app.queue.depth(QueueName::Incoming).await.unwrap();
        assert_eq!((depth.visible, depth.in_flight), (0, 0));
    }

    #[tokio::test]
    async fn telegram_secrets_channels_and_bodies_are_checked() {
        let app = app().await;
        let url = app.url(&format!("/webhooks/telegram/{}", app.telegram));
        let update = telegram_text(1, 1, 1, 1_700_000_000, "x");
        let post = |secret: Option<&str>, url: &str, body: String| {
            let mut request = app.http.post(url).header("content-type", "application/json").body(body);
            if let Some(secret) = secret {
                request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
            }
            request.send()
        };
        assert_eq!(post(None, &url, update.to_string()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(post(Some("wrong"), &url, update.to_string()).await.unwrap().status(), StatusCode::FORBIDDEN);
        let secret = Some(app.telegram_secret.as_str());
        let unknown = app.url("/webhooks/telegram/chn_doesnotexist");
        assert_eq!(post(secret, &unknown, update.to_string()).await.unwrap().status(), StatusCode::NOT_FOUND);
        let page_channel = app.url(&format!("/webhooks/telegram/{}", app.messenger));
        assert_eq!(post(secret, &page_channel, update.to_string()).await.unwrap().status(), StatusCode::NOT_FOUND);
        let huge = format!("{{\"update_id\":1,\"pad\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
        assert_eq!(post(secret, &url, huge).await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        nothing_enqueued(&app).await;
        let error: serde_json::Value =
            post(Some("wrong"), &url, update.to_string()).await.unwrap().json().await.unwrap();
        assert_eq!(error["error"]["code"], "bad_credential");
    }

    #[tokio::test]
    async fn messenger_signatures_are_checked_and_unknown_pages_dropped_with_200() {
        let app = app().await;
        let body = messenger_text("2400000000000001", "m_x", 1_700_000_000_000, "hi");
        let url = app.url("/webhooks/messenger");
        let post = |signature: Option<String>, body: String| {
            let mut request = app.http.post(&url).header("content-type", "application/json").body(body);
            if let Some(signature) = signature {
                request = request.header("X-Hub-Signature-256", signature);
            }
            request.send()
        };
        assert_eq!(post(None, body.clone()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
        let forged = format!("sha256={}", "0".repeat(64));
        assert_eq!(post(Some(forged), body.clone()).await.unwrap().status(), StatusCode::FORBIDDEN);
        // Re-serialising the body changes the bytes: the original signature no longer matches.
        let reserialised =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&body).unwrap()).unwrap();
        let signature = common::app::sign(body.as_bytes());
        assert_eq!(post(Some(signature), reserialised).await.unwrap().status(), StatusCode::FORBIDDEN);
        nothing_enqueued(&app).await;

        let other_page = body.replace(PAGE_ID, "999999999999999");
        let response = post(Some(common::app::sign(other_page.as_bytes())), other_page).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "Meta must not see errors for pages we do not serve");
        assert_eq!(response.json::<serde_json::Value>().await.unwrap()["accepted"], 0);
        nothing_enqueued(&app).await;
    }

    #[tokio::test]
    async fn messenger_subscription_check_answers_the_challenge_only_with_the_token() {
        let app = app().await;
        let check = |token: &str| {
            app.http
                .get(app.url("/webhooks/messenger"))
                .query(&[("hub.mode", "subscribe"), ("hub.verify_token", token), ("hub.challenge", "1158201444")])
                .send()
        };
        let ok = check(common::app::VERIFY_TOKEN).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.text().await.unwrap(), "1158201444");
        assert_eq!(check("nope").await.unwrap().status(), StatusCode::FORBIDDEN);
    }
}

/// Outages: the store pausing the processor, the queue refusing intake.
mod outages {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_store_outage_holds_messages_instead_of_burning_receive_counts() {
        let app = spawn_app(Backend::Embedded).await.unwrap();
        for i in 0..5 {
            assert_eq!(
                app.post_telegram(&telegram_text(50_000 + i, 800 + i, 1, 1_700_000_000, "held")).await,
                StatusCode::OK
            );
        }
        // Another process takes the store's write lock for longer than MAX_RECEIVES visibility
        // timeouts (3 × 2 s): without holding, the messages would be redelivered into the DLQ.
        let db = app.app.settings.data_dir.join("kamshub.sqlite3");
        let locker = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
            std::thread::sleep(Duration::from_secs(8));
            conn.execute_batch("COMMIT").unwrap();
        });
        let step = app.processor.run_once().await.unwrap();
        locker.join().unwrap();
        assert_eq!((step.received, step.applied, step.retried), (5, 5, 0), "{step:?}");
        let dlq = app.queue.depth(QueueName::IncomingDlq).await.unwrap();
        assert_eq!(dlq.visible, 0, "an outage sends nothing to the DLQ");
        assert_eq!(conversations(&app).await.len(), 5);
    }

    #[tokio::test]
    async fn a_queue_outage_answers_503_so_the_provider_retries() {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "data_dir = \"{}\"\n[queue]\nkind = \"sqs\"\nendpoint_url = \"http://127.0.0.1:9\"\n",
            dir.path().display()
        );
        let config = dir.path().join("kamshub.toml");
        std::fs::write(&config, toml).unwrap();
        let settings = kamshub::config::Settings::load(Some(&config), &Default::default()).unwrap();
        let app = Arc::new(kamshub::app::App::new(settings));
        let seeded = common::app::seed(&app).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = Arc::clone(&app);
        tokio::spawn(async move {
            kamshub::daemon::serve(server, Some(listener), &[kamshub::daemon::Role::Http], std::future::pending()).await
        });
        let response = reqwest::Client::new()
            .post(format!("http://{address}/webhooks/telegram/{}", seeded.telegram))
            .header("X-Telegram-Bot-Api-Secret-Token", &seeded.telegram_secret)
            .json(&telegram_text(1, 1, 1, 1_700_000_000, "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(!body.to_string().contains("127.0.0.1:9"), "5xx bodies do not leak internals: {body}");
    }
}

/// `kamshub conversation list|show` print what the pipeline stored, in the contract's shapes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conversation_cli_shows_what_the_pipeline_stored() {
    let app = spawn_app(Backend::Embedded).await.unwrap();
    for (update, message, text) in [(2, 11, "second"), (1, 10, "first")] {
        assert_eq!(app.post_telegram(&telegram_text(update, 4242, message, 1_700_000_000, text)).await, StatusCode::OK);
    }
    app.drain().await;
    let kamshub = |args: &[&str]| -> serde_json::Value {
        let mut cmd = assert_cmd::Command::cargo_bin("kamshub").unwrap();
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMSHUB_") {
                cmd.env_remove(key);
            }
        }
        let out =
            cmd.env("KAMSHUB_DATA_DIR", &app.app.settings.data_dir).args(["-o", "json"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let tenant = app.tenant.to_string();
    let list = kamshub(&["conversation", "list", "--tenant", &tenant]);
    let first = &list[0];
    assert_eq!(
        common::cli::keys(first),
        ["channelId", "conversationId", "createdAt", "externalThreadId", "lastMessageAt", "messageCount", "preview"]
    );
    assert_eq!(first["externalThreadId"], "4242");
    assert_eq!(first["messageCount"], 2);
    let id = first["conversationId"].as_str().unwrap();
    let shown = kamshub(&["conversation", "show", id, "--tenant", &tenant]);
    assert_eq!(shown["conversationId"], id);
    let messages = shown["messages"].as_array().unwrap();
    assert_eq!(
        common::cli::keys(&messages[0]),
        [
            "attachments",
            "conversationId",
            "createdAt",
            "direction",
            "externalMessageId",
            "kind",
            "messageId",
            "reactions",
            "replyTo",
            "sender",
            "sentAt",
            "status",
            "summary",
            "text",
            "versions"
        ]
    );
    let texts: Vec<&str> = messages.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["first", "second"]);
    assert_eq!(messages[0]["direction"], "inbound");
    assert_eq!(messages[0]["status"], "received");
    let filtered = kamshub(&["conversation", "list", "--tenant", &tenant, "--channel", app.messenger.as_str()]);
    assert_eq!(filtered, serde_json::json!([]));
}

/// Intake loads every channel ahead of the webhooks (so a store outage cannot refuse one it had
/// not looked up yet), and the next load forgets a channel deleted since: its webhooks are
/// refused from then on, without waiting for the cached lookup to expire.
#[tokio::test]
async fn intake_loads_every_channel_ahead_and_forgets_a_deleted_one_at_the_next_load() {
    use kamshub::pipeline::intake::{Intake, IntakeError};
    let app = spawn_app(Backend::Embedded).await.unwrap();
    let store = app.store().await;
    let intake = Intake::new(
        Arc::clone(&store),
        Arc::clone(&app.queue),
        app.app.master_key().unwrap(),
        Some(secrecy::SecretString::from(common::app::APP_SECRET.to_owned())),
        None,
    );
    assert_eq!(intake.preload().await.unwrap(), 2, "the test tenant's bot and page");
    let (secret, channel) = (app.telegram_secret.as_bytes(), app.telegram.to_string());
    let update = |id: i64| telegram_text(id, 7, id, 1_718_110_000, "hello").to_string();
    intake.telegram(&channel, Some(secret), update(1).as_bytes()).await.unwrap();

    store.delete_channel(&app.tenant, &app.telegram).await.unwrap();
    intake.preload().await.unwrap();
    let refused = intake.telegram(&channel, Some(secret), update(2).as_bytes()).await;
    assert!(matches!(refused, Err(IntakeError::UnknownChannel)), "{refused:?}");
    assert_eq!(app.queue.depth(QueueName::Incoming).await.unwrap().visible, 1, "only the first was enqueued");
}
