//! Hostile reality at the webhooks, on the embedded backends and on MongoDB + SQS: providers send
//! any Unicode, huge numbers, deep nesting, unknown update types and missing fields. No content
//! ever costs a 5xx, and no event ever costs a neighbour: every authenticated request is answered
//! 2xx, every neighbour posted at the same moment is stored, and every bad event is kept for
//! inspection (recorded as ignored with its raw body, or in the DLQ).
//!
//! The corpus is tests/fixtures/corpus/ (written by its generate.py).

mod common;

use base64::Engine;
use common::app::{Backend, PAGE_ID, TestApp, spawn_app, telegram_text};
use kamshub::domain::inbound::InboundEventRecord;
use kamshub::pipeline::intake::telegram_event_id_of;
use kamshub::queue::QueueName;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
    every_telegram_body_is_acknowledged_kept_and_never_costs_a_neighbour,
    every_messenger_item_is_acknowledged_and_its_neighbours_kept,
    messenger_bodies_that_are_no_page_webhook_are_acknowledged,
);

/// What becomes of one corpus case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Stored as a message (its inbound event, keyed by `update_id` and a digest, applied).
    Message(i64),
    /// Recorded (keyed by `update_id` and a digest) as ignored (an update type kamshub does not
    /// handle).
    Ignored(i64),
    /// Intake could not read it: recorded raw, as ignored, under `unusable:{sha256 of the body}`.
    Unusable,
    /// Read, but not as an event its provider defines: moved to the DLQ at once.
    DeadLetter(i64),
}

/// The fate of each Telegram corpus case, by name: what a demanding operator expects of it.
fn telegram_fate(name: &str) -> Fate {
    use Fate::*;
    match name {
        "noncharacter U+FFFF in text" => Message(827_392_001),
        "noncharacter U+FFFE in text" => Message(827_392_002),
        "noncharacters as escapes" => Message(827_392_003),
        "control characters" => Message(827_392_004),
        "lone surrogate escape" => Message(827_392_005),
        "astral and combining" => Message(827_392_006),
        "BOM before the body" => Message(827_392_007),
        "huge update_id" => Unusable,
        "huge chat id" => Unusable,
        "float date" => DeadLetter(827_392_010),
        "date beyond any calendar" => Message(827_392_011),
        "number overflowing f64" => Unusable,
        "huge file size" => Message(827_392_013),
        "deeply nested array" => Unusable,
        "deeply nested object in an unknown field" => Unusable,
        "nesting deep but parseable" => Message(827_392_016),
        "nesting inside an attachment" => Message(827_392_037),
        "unknown update type" => Ignored(827_392_017),
        "two update types at once" => Ignored(827_392_018),
        "no update_id" => Unusable,
        "update_id as string" => Unusable,
        "message without chat" => Unusable,
        "message without message_id" => DeadLetter(827_392_022),
        "message without date" => DeadLetter(827_392_023),
        "message is a string" => Unusable,
        "text is a number" => Message(827_392_025),
        "photo is an object" => Message(827_392_026),
        "update is an array" | "update is null" | "update is a string" => Unusable,
        "empty body" | "truncated JSON" | "not JSON at all" | "invalid UTF-8" => Unusable,
        "duplicate keys" => Message(827_392_034),
        "very long text" => Message(827_392_035),
        "keys with a dollar and dots" => Message(827_392_036),
        "dollar keys inside the message" => Message(827_392_038),
        other => panic!("no expected fate for corpus case {other:?}: add it here"),
    }
}

/// The corpus cases as (name, raw body).
fn corpus(file: &str, key: &str) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(format!("tests/fixtures/corpus/{file}")).unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    cases
        .into_iter()
        .map(|case| {
            let name = case["name"].as_str().unwrap().to_owned();
            let body = match case.get(key) {
                Some(Value::String(body)) => body.clone().into_bytes(),
                _ => base64::engine::general_purpose::STANDARD.decode(case["base64"].as_str().unwrap()).unwrap(),
            };
            (name, body)
        })
        .collect()
}

async fn event(app: &TestApp, channel: &kamshub::domain::ChannelId, id: &str) -> Option<InboundEventRecord> {
    app.store().await.get_inbound_event(&app.tenant, channel, id).await.unwrap()
}

async fn texts_of(app: &TestApp, thread: &str) -> Vec<String> {
    let store = app.store().await;
    let conversations =
        store.list_conversations(&app.tenant, &kamshub::store::ConversationQuery::first(10_000)).await.unwrap();
    let Some(c) = conversations.into_iter().find(|c| c.external_thread_id == thread) else { return Vec::new() };
    let messages = common::messages_oldest_first(&*store, &app.tenant, &c.id, 10_000).await;
    messages.into_iter().filter_map(|m| m.text).collect()
}

/// Processes until nothing is left on the incoming queue.
async fn settle(app: &TestApp) {
    app.drain().await;
}

async fn every_telegram_body_is_acknowledged_kept_and_never_costs_a_neighbour(app: TestApp) {
    let app = Arc::new(app);
    let cases = corpus("telegram_bodies.json", "body");
    // Each case is posted at the same moment as an ordinary update from another chat, so the two
    // share intake's enqueue batch.
    for (i, (name, body)) in cases.iter().enumerate() {
        let neighbour = telegram_text(1_000_000 + i as i64, 900_000 + i as i64, 1, 1_718_110_000, "neighbour");
        let (bad, good) = tokio::join!(app.post_telegram_raw(body.clone()), app.post_telegram(&neighbour));
        assert_eq!(bad, StatusCode::OK, "{name}: authenticated content is never refused");
        assert_eq!(good, StatusCode::OK, "{name}: its neighbour");
    }
    settle(&app).await;

    let dead = app.queue.receive(QueueName::IncomingDlq, 10, std::time::Duration::from_secs(1)).await.unwrap();
    let dead_ids: Vec<i64> = dead
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.body).unwrap()["payload"]["update_id"].as_i64().unwrap())
        .collect();
    for (i, (name, body)) in cases.iter().enumerate() {
        assert_eq!(texts_of(&app, &(900_000 + i).to_string()).await, ["neighbour"], "{name}: its neighbour is stored");
        match telegram_fate(name) {
            Fate::Message(_) => {
                let record = event(&app, &app.telegram, &telegram_event_id_of(body).unwrap()).await;
                let outcome = record.unwrap_or_else(|| panic!("{name}: not recorded")).outcome;
                assert!(outcome.starts_with("message"), "{name}: {outcome}");
            }
            Fate::Ignored(_) => {
                let record = event(&app, &app.telegram, &telegram_event_id_of(body).unwrap()).await;
                let outcome = record.unwrap_or_else(|| panic!("{name}: not recorded")).outcome;
                assert!(outcome.starts_with("ignored: unsupported update type"), "{name}: {outcome}");
            }
            Fate::Unusable => {
                let id = format!("unusable:{}", hex(&Sha256::digest(body)));
                let record = event(&app, &app.telegram, &id).await.unwrap_or_else(|| panic!("{name}: not kept"));
                assert!(record.outcome.starts_with("ignored: unusable webhook: "), "{name}: {}", record.outcome);
                let kept: Value = serde_json::from_str(&record.payload).unwrap();
                assert_eq!(kept, json!(String::from_utf8_lossy(body)), "{name}: the raw body is kept");
            }
            Fate::DeadLetter(id) => assert!(dead_ids.contains(&id), "{name}: not in the DLQ ({dead_ids:?})"),
        }
    }
    let expected_dead = cases.iter().filter(|(name, _)| matches!(telegram_fate(name), Fate::DeadLetter(_))).count();
    assert_eq!(dead.len(), expected_dead, "nothing else went to the DLQ");

    // Odd Unicode reaches the store exactly as sent.
    let texts = texts_of(&app, "284619503").await;
    for sent in ["before \u{FFFF} after", "\u{FFFE} leading", "esc \u{FFFF}\u{FFFE}", "bell\u{7} nul\u{0} esc\u{1b}"] {
        assert!(texts.iter().any(|t| t == sent), "{sent:?} not stored unchanged: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("🧑🏽\u{200d}🚀 Z̸̢͓̈́a̴̛͉l̷g̶o̷ \u{202e}RTL")), "{texts:?}");
    assert!(texts.iter().any(|t| t == "second"), "duplicate keys: the later one wins");
    assert!(texts.iter().any(|t| t == "half \u{FFFD} pair"), "a lone surrogate reads as U+FFFD: {texts:?}");
}

async fn every_messenger_item_is_acknowledged_and_its_neighbours_kept(app: TestApp) {
    let cases = corpus("messenger_items.json", "item");
    for (i, (name, item)) in cases.iter().enumerate() {
        let neighbour = |n: usize| {
            json!({
                "sender": {"id": format!("31000000000{i:03}{n}")}, "recipient": {"id": PAGE_ID},
                "timestamp": 1_718_120_000_000_i64, "message": {"mid": format!("m_neighbour_{i}_{n}"), "text": "neighbour"}
            })
            .to_string()
        };
        let item = String::from_utf8(item.clone()).unwrap();
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"{PAGE_ID}","time":1,"messaging":[{},{item},{}]}}]}}"#,
            neighbour(1),
            neighbour(2)
        );
        assert_eq!(app.post_messenger(&body).await, StatusCode::OK, "{name}");
    }
    settle(&app).await;
    for (i, (name, _)) in cases.iter().enumerate() {
        for n in [1, 2] {
            let thread = format!("31000000000{i:03}{n}");
            assert_eq!(texts_of(&app, &thread).await, ["neighbour"], "{name}: neighbour {n} is stored");
        }
    }
    // Items that name a person and a message are stored, odd characters and all.
    assert_eq!(texts_of(&app, "6543210987654399").await, ["numeric psid"]);
    assert_eq!(texts_of(&app, "2400000000000107").await, ["a\u{FFFF}b\u{FFFE}c"]);
    assert_eq!(texts_of(&app, "2400000000000108").await, ["nul\u{0}bell\u{7}"]);
    assert_eq!(texts_of(&app, "user_ref:cp_corpus_1").await, ["plugin guest"], "a Chat Plugin guest");
    assert_eq!(texts_of(&app, "Ääkkönen 42").await, ["odd psid"], "any PSID makes a valid queue group");
    assert_eq!(texts_of(&app, &"9".repeat(300)).await, ["long psid"]);
    assert_eq!(texts_of(&app, "2400000000000109").await, ["half \u{FFFD}"], "a lone surrogate reads as U+FFFD");
    assert_eq!(texts_of(&app, "2400000000000112").await, Vec::<String>::new(), "not an array: no attachments");
    // Items whose event cannot be read are in the DLQ; the others are recorded.
    let dead = app.queue.depth(QueueName::IncomingDlq).await.unwrap();
    assert_eq!(
        dead.visible, 6,
        "no mid, mid a number, no timestamp, a timestamp beyond 64 bits, no delivery watermark, a text read watermark"
    );
}

async fn messenger_bodies_that_are_no_page_webhook_are_acknowledged(app: TestApp) {
    for (name, body) in corpus("messenger_bodies.json", "body") {
        let body = String::from_utf8(body).unwrap();
        assert_eq!(
            app.post_messenger(&body).await,
            StatusCode::OK,
            "{name}: Meta would unsubscribe the app after an hour of errors"
        );
    }
    let depth = app.queue.depth(QueueName::Incoming).await.unwrap();
    assert_eq!((depth.visible, depth.in_flight), (0, 0), "nothing routable in them, nothing enqueued");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A rejected or dropped webhook leaves a trace: a counter per reason, and a warning in the log,
/// at most one per reason per interval, naming no secret.
#[tokio::test(flavor = "current_thread")]
async fn every_rejected_or_dropped_webhook_is_counted_and_logged_without_secrets() {
    use kamshub::pipeline::intake::{Intake, IntakeError};
    use std::sync::atomic::Ordering::Relaxed;
    let app = spawn_app(Backend::Embedded).await.unwrap();
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = app.store().await;
    let intake = |secret: Option<&str>| {
        Intake::new(
            Arc::clone(&store),
            Arc::clone(&app.queue),
            app.app.master_key().unwrap(),
            secret.map(|s| secrecy::SecretString::from(s.to_owned())),
            None,
        )
    };
    let intake_a = intake(Some(common::app::APP_SECRET));
    let update = telegram_text(1, 1, 1, 1_718_110_000, "x").to_string();
    let telegram = app.telegram.to_string();
    let wrong = "wrong-secret-canary-7f3a";
    assert!(matches!(
        intake_a.telegram("chn_nope", Some(b"x"), update.as_bytes()).await,
        Err(IntakeError::UnknownChannel)
    ));
    assert!(matches!(intake_a.telegram(&telegram, None, update.as_bytes()).await, Err(IntakeError::MissingCredential)));
    for _ in 0..5 {
        let refused = intake_a.telegram(&telegram, Some(wrong.as_bytes()), update.as_bytes()).await;
        assert!(matches!(refused, Err(IntakeError::BadCredential)));
    }
    let forged = format!("sha256={}", "0".repeat(64));
    assert!(matches!(intake_a.messenger(None, b"{}").await, Err(IntakeError::MissingCredential)));
    assert!(matches!(intake_a.messenger(Some(&forged), b"{}").await, Err(IntakeError::BadCredential)));
    let secret = app.telegram_secret.as_bytes();
    intake_a.telegram(&telegram, Some(secret), b"not json").await.unwrap();
    let not_json = b"this is not json";
    assert_eq!(intake_a.messenger(Some(&common::app::sign(not_json)), not_json).await.unwrap(), 0);
    let unconfigured = intake(None);
    assert!(matches!(unconfigured.messenger(Some(&forged), b"{}").await, Err(IntakeError::NotConfigured(_))));

    let stats = &intake_a.stats;
    assert_eq!(stats.rejected_unknown_channel.load(Relaxed), 1);
    assert_eq!(stats.rejected_credentials.load(Relaxed), 1 + 5 + 2);
    assert_eq!((stats.unusable.load(Relaxed), stats.accepted.load(Relaxed)), (1, 1), "kept raw, enqueued");
    assert_eq!(stats.dropped.load(Relaxed), 1, "a signed body that is no page webhook");
    assert_eq!(unconfigured.stats.rejected_not_configured.load(Relaxed), 1);

    let text = log.text();
    assert_eq!(text.matches("reason=\"telegram_bad_secret\"").count(), 1, "five refusals, one warning: {text}");
    for reason in [
        "telegram_unknown_channel",
        "telegram_missing_secret",
        "messenger_missing_signature",
        "messenger_bad_signature",
    ] {
        assert!(text.contains(&format!("reason=\"{reason}\"")), "{reason}: {text}");
    }
    assert!(text.contains("messenger_unusable_body") && text.contains("unusable"), "{text}");
    for secret in [wrong, app.telegram_secret.as_str(), common::app::APP_SECRET, &forged[7..]] {
        assert!(!text.contains(secret), "a secret reached the log: {text}");
    }
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
