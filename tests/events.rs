//! The tenant's event log over HTTP: live streams (Server-Sent Events) and polling.
//!
//! - A stream on one `serve` shows, in order, the events of webhooks another `serve` on the same
//!   store received, and resumes after `Last-Event-ID` with exactly what it missed (embedded, and
//!   MongoDB + SQS on the stand-ins).
//! - Two tenants under load: each stream carries all of its tenant's events and none of the other's.
//! - A reader that stops reading is cut off (the daemon holds a bounded buffer for it) and resumes
//!   where it stopped; a stream ends when its token expires; idle streams get keep-alives.
//! - Polling pages through the log and says when events after its cursor were pruned.

mod common;

use common::api::{Api, now_secs, resign_local};
use common::app::{Backend, Seeded, TestApp, open_app, seed_tenant, spawn_app_configured, telegram_text, write_config};
use common::daemon::Daemon;
use common::sse::{Frame, Sse};
use futures::StreamExt;
use kamshub::domain::{Email, Role, TenantId};
use kamshub::service::access::Caller;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Invites a user into `tenant` and signs them in at `api`; returns the ID token.
async fn user_token(app: &kamshub::app::App, api: &Api, tenant: &TenantId, role: Role) -> String {
    let email = format!("{}@events.example.com", common::unique_name("u").replace('_', "-"));
    let invited = kamshub::service::onboarding::invite_user(
        app,
        &Caller::operator(),
        tenant,
        Email::parse(&email).unwrap(),
        role,
    )
    .await
    .unwrap();
    let tokens = api.first_sign_in(&email, invited.temporary_password.as_deref().unwrap()).await;
    tokens["idToken"].as_str().unwrap().to_owned()
}

/// Posts a Telegram text update to the daemon at `base` for a seeded channel, then waits until the
/// tenant's log (read at `base` with `token`) holds `stored` events. One at a time: moto hands a
/// group's next message to a second concurrent receive (docs/dev/stand-ins.md), which real SQS
/// never does, so the processor's workers could store one chat's messages out of order there.
async fn post_and_wait(base: &str, token: &str, seeded: &Seeded, (update, chat, message, text): Post, stored: u64) {
    post_text(base, seeded, update, chat, message, text).await;
    let api = Api::new(base);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = api.get(&format!("/tenant/events?after={}", stored - 1), token).await;
        if page.body["items"].as_array().is_some_and(|items| !items.is_empty()) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "event {stored} was not stored: {}", page.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Telegram text message: update id, chat, message id, text.
type Post = (i64, i64, i64, &'static str);

/// Posts a Telegram text update to the daemon at `base` for a seeded channel.
async fn post_text(base: &str, seeded: &Seeded, update: i64, chat: i64, message: i64, text: &str) {
    let status = reqwest::Client::new()
        .post(format!("{base}/webhooks/telegram/{}", seeded.telegram))
        .header("X-Telegram-Bot-Api-Secret-Token", &seeded.telegram_secret)
        .json(&telegram_text(update, chat, message, 1_700_000_000 + update, text))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}

/// The text of a `message.received` frame.
fn text_of(frame: &Frame) -> String {
    frame.json()["data"]["message"]["text"].as_str().unwrap_or_default().to_owned()
}

/// Checks what a stream showed: consecutive ids after `after`, the tenant's own, and per
/// conversation its start, then its messages in the order they were sent. Returns the texts per
/// Telegram chat (its external thread id).
fn per_chat(frames: &[Frame], tenant: &TenantId, after: u64) -> BTreeMap<String, Vec<String>> {
    let mut chats: BTreeMap<String, String> = BTreeMap::new(); // conversation id → chat
    let mut texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, frame) in frames.iter().enumerate() {
        let event = frame.json();
        let id = event["eventId"].as_u64().unwrap();
        assert_eq!(frame.id.as_deref(), Some(id.to_string().as_str()), "SSE id is the event id");
        assert_eq!(id, after + 1 + n as u64, "consecutive ids: {frames:#?}");
        assert_eq!(event["tenantId"], tenant.as_str());
        assert_eq!(frame.event.as_deref(), event["type"].as_str(), "SSE event is the type");
        let conversation = event["conversationId"].as_str().unwrap().to_owned();
        match event["type"].as_str().unwrap() {
            "conversation.created" => {
                let chat = event["data"]["conversation"]["externalThreadId"].as_str().unwrap().to_owned();
                assert!(chats.insert(conversation, chat).is_none(), "created once");
            }
            "message.received" => {
                let chat = chats.get(&conversation).expect("a conversation's start comes before its messages");
                texts.entry(chat.clone()).or_default().push(text_of(frame));
            }
            other => panic!("unexpected {other}: {event}"),
        }
    }
    texts
}

async fn a_stream_on_one_serve_shows_what_another_received_and_resumes_with_exactly_what_it_missed(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) =
        write_config(dir.path(), backend, "http://127.0.0.1:9", "http://127.0.0.1:9", "[events]\npoll_ms = 100\n")
    else {
        return;
    };
    let app = open_app(&config).await;
    let seeded = seed_tenant(&app, "104857600011111").await;
    let config_env = config.display().to_string();
    let env = [("KAMSHUB_CONFIG", config_env.as_str())];
    // A receives the webhooks and runs the pipeline; B only serves HTTP on the same store.
    let mut a = Daemon::start_with(dir.path(), &["--roles", "http,processor,relay,sender"], &env);
    let mut b = Daemon::start_with(dir.path(), &["--roles", "http"], &env);
    let (a_url, b_url) = (format!("http://{}", a.address()), format!("http://{}", b.address()));
    let token = user_token(&app, &Api::new(&b_url), &seeded.tenant, Role::TenantManager).await;

    let mut stream = Sse::connect(&b_url, "", &token, None).await;
    let first: [(Post, u64); 4] = [
        ((1, 501, 1, "hello"), 2),
        ((2, 502, 1, "hi there"), 4),
        ((3, 501, 2, "my order 5531"), 5),
        ((4, 502, 2, "refund?"), 6),
    ];
    for (post, stored) in first {
        post_and_wait(&a_url, &token, &seeded, post, stored).await;
    }
    let seen = stream.events(6, WAIT).await;
    let texts = per_chat(&seen, &seeded.tenant, 0);
    assert_eq!(texts["501"], ["hello", "my order 5531"]);
    assert_eq!(texts["502"], ["hi there", "refund?"]);
    let last = 6;
    drop(stream);

    // While the client is away: more webhooks, and a new conversation.
    let missed: [(Post, u64); 3] =
        [((5, 501, 3, "still there?"), 7), ((6, 503, 1, "new customer"), 9), ((7, 501, 4, "hello??"), 10)];
    for (post, stored) in missed {
        post_and_wait(&a_url, &token, &seeded, post, stored).await;
    }
    let mut resumed = Sse::connect(&b_url, "", &token, Some(last)).await;
    let again = resumed.events(4, WAIT).await;
    let texts = per_chat_resumed(&again, &seeded.tenant, last, &seen);
    let expected = [("501", "still there?"), ("503", "new customer"), ("501", "hello??")];
    assert_eq!(texts, expected.map(|(c, t)| (c.to_owned(), t.to_owned())));
    // Exactly those: the next event the stream carries is the next one stored.
    post_text(&a_url, &seeded, 8, 503, 2, "ok").await;
    let next = resumed.next_event(WAIT).await.unwrap();
    assert_eq!((next.id.as_deref(), text_of(&next).as_str()), (Some("11"), "ok"));
    drop(resumed);
    for daemon in [a, b] {
        let (status, log) = daemon.terminate();
        assert!(status.success(), "{log:#?}");
    }
}

/// Like [`per_chat`] for a resumed stream, whose conversations may have started before it: the
/// (chat, text) of each message, in order.
fn per_chat_resumed(frames: &[Frame], tenant: &TenantId, after: u64, earlier: &[Frame]) -> Vec<(String, String)> {
    let mut chats: BTreeMap<String, String> = BTreeMap::new();
    for frame in earlier.iter().chain(frames) {
        let event = frame.json();
        if event["type"] == "conversation.created" {
            let chat = event["data"]["conversation"]["externalThreadId"].as_str().unwrap().to_owned();
            chats.insert(event["conversationId"].as_str().unwrap().to_owned(), chat);
        }
    }
    let mut out = Vec::new();
    for (n, frame) in frames.iter().enumerate() {
        let event = frame.json();
        assert_eq!(event["eventId"].as_u64().unwrap(), after + 1 + n as u64, "{frames:#?}");
        assert_eq!(event["tenantId"], tenant.as_str());
        if event["type"] == "message.received" {
            out.push((chats[event["conversationId"].as_str().unwrap()].clone(), text_of(frame)));
        }
    }
    out
}

mod across_serves {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded() {
        a_stream_on_one_serve_shows_what_another_received_and_resumes_with_exactly_what_it_missed(Backend::Embedded)
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongodb_sqs() {
        a_stream_on_one_serve_shows_what_another_received_and_resumes_with_exactly_what_it_missed(Backend::Production)
            .await;
    }
}

/// Both tenants' webhooks arrive interleaved and at once; each tenant's stream carries exactly its
/// own events, every one of them, in order.
async fn two_tenants_under_load_never_see_each_others_events(backend: Backend, per_tenant: i64) {
    let Some(app) =
        spawn_app_configured(backend, "http://127.0.0.1:9", "http://127.0.0.1:9", "[events]\npoll_ms = 50\n").await
    else {
        return;
    };
    let api = Api::new(app.url(""));
    let a = Seeded {
        tenant: app.tenant.clone(),
        telegram: app.telegram.clone(),
        telegram_secret: app.telegram_secret.clone(),
        messenger: app.messenger.clone(),
    };
    let b = seed_tenant(&app.app, "104857600022222").await;
    let (token_a, token_b) = (
        user_token(&app.app, &api, &a.tenant, Role::TenantManager).await,
        user_token(&app.app, &api, &b.tenant, Role::TenantAdmin).await,
    );
    let mut stream_a = Sse::connect(&app.url(""), "", &token_a, None).await;
    let mut stream_b = Sse::connect(&app.url(""), "", &token_b, None).await;

    let base = app.url("");
    let posts = (1..=per_tenant).flat_map(|n| {
        let chat = 700 + n % 5;
        let message = n / 5 + 1;
        [(&a, n, chat, message, format!("a-{n}")), (&b, n, chat, message, format!("b-{n}"))]
    });
    futures::stream::iter(posts)
        .for_each_concurrent(16, |(seeded, n, chat, message, text)| {
            let base = base.clone();
            async move { post_text(&base, seeded, n, chat, message, &text).await }
        })
        .await;
    app.drain().await;

    let expected = per_tenant as usize + 5; // five conversations each
    for (stream, tenant, other, prefix) in [(&mut stream_a, &a.tenant, &b, "a-"), (&mut stream_b, &b.tenant, &a, "b-")]
    {
        let frames = stream.events(expected, WAIT).await;
        let texts = per_chat(&frames, tenant, 0);
        let all: Vec<&String> = texts.values().flatten().collect();
        assert_eq!(all.len(), per_tenant as usize);
        assert!(all.iter().all(|t| t.starts_with(prefix)), "{all:?}");
        for frame in &frames {
            for foreign in [other.tenant.to_string(), other.telegram.to_string()] {
                assert!(!frame.data.contains(&foreign), "{foreign} in {}", frame.data);
            }
        }
        // Every message once, each in its own conversation (concurrent webhooks of one chat are
        // stored, and streamed, in the order they arrived).
        for (chat, chat_texts) in &texts {
            let mut numbers: Vec<i64> = chat_texts.iter().map(|t| t[2..].parse().unwrap()).collect();
            numbers.sort();
            let wanted: Vec<i64> = (1..=per_tenant).filter(|n| (700 + n % 5).to_string() == *chat).collect();
            assert_eq!(numbers, wanted, "chat {chat}");
        }
    }
    // Nothing more for either stream.
    app.app
        .store()
        .await
        .unwrap()
        .set_channel_health(&a.telegram, kamshub::domain::ChannelHealth::NeedsReauth)
        .await
        .unwrap();
    let next = stream_a.next_event(WAIT).await.unwrap();
    assert_eq!(next.event.as_deref(), Some("channel.health"));
    assert_eq!(next.json()["eventId"].as_u64(), Some(expected as u64 + 1));
}

mod under_load {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded() {
        two_tenants_under_load_never_see_each_others_events(Backend::Embedded, 150).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongodb_sqs() {
        two_tenants_under_load_never_see_each_others_events(Backend::Production, 40).await;
    }
}

/// Stores `n` messages of about `size` bytes for the test app's tenant directly through the
/// store (the fastest way to a long log).
async fn store_messages(app: &TestApp, n: usize, size: usize) {
    use kamshub::domain::inbound::InboundEvent;
    let store = app.store().await;
    let payload = "x".repeat(size);
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let records: Vec<kamshub::store::InboundRecord> = batch
            .iter()
            .map(|i| {
                let update = telegram_text(*i as i64 + 1, 800, *i as i64 + 1, 1_700_000_000 + *i as i64, &payload);
                let envelope = kamshub::domain::inbound::Envelope {
                    v: kamshub::domain::inbound::ENVELOPE_VERSION,
                    tenant_id: app.tenant.clone(),
                    channel_id: app.telegram.clone(),
                    provider: kamshub::domain::ChannelKind::Telegram,
                    provider_event_id: (i + 1).to_string(),
                    thread_id: "800".into(),
                    received_at_ms: 1_700_000_000_000,
                    payload: update.clone(),
                    unusable: None,
                };
                let provider = app.app.providers().of(kamshub::domain::ChannelKind::Telegram);
                let event: InboundEvent = provider.normalize(&update).expect("a text update normalises");
                kamshub::store::InboundRecord { envelope, event }
            })
            .collect();
        store.apply_inbound(&records).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_cut_off_and_resumes_where_it_stopped() {
    let extra = "[events]\npoll_ms = 50\nstream_buffer = 4\nslow_client_secs = 1\nkeep_alive_secs = 1\n";
    let app = spawn_app_configured(Backend::Embedded, "http://127.0.0.1:9", "http://127.0.0.1:9", extra).await.unwrap();
    let api = Api::new(app.url(""));
    let token = user_token(&app.app, &api, &app.tenant, Role::TenantManager).await;
    // 3,000 events of ~4 KB: far more than the buffer and the sockets' buffers hold.
    let total = 3000;
    store_messages(&app, total - 1, 4000).await; // and one conversation.created
    let mut stream = Sse::connect(&app.url(""), "?after=0", &token, None).await;
    tokio::time::sleep(Duration::from_secs(4)).await; // not reading: the daemon gives up on us
    let mut got = Vec::new();
    while let Some(frame) = stream.next_event(WAIT).await {
        got.push(frame.json()["eventId"].as_u64().unwrap());
    }
    assert!(!got.is_empty() && got.len() < total, "cut off part way: {} of {total}", got.len());
    assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>(), "what did arrive is whole and in order");
    // Resuming after the last event read brings the rest, and nothing twice.
    let last = *got.last().unwrap();
    let mut resumed = Sse::connect(&app.url(""), "", &token, Some(last)).await;
    let rest = resumed.events(total - got.len(), WAIT).await;
    let ids: Vec<u64> = rest.iter().map(|f| f.json()["eventId"].as_u64().unwrap()).collect();
    assert_eq!(ids, (last + 1..=total as u64).collect::<Vec<_>>());
    if let Some(python) = common::python() {
        let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let samples = common::prometheus::parse(&python, &metrics);
        let ended =
            common::prometheus::value(&samples, "kamshub_event_streams_ended_total", &[("reason", "slow_client")]);
        assert_eq!(ended, 1.0, "the cut-off is counted");
        assert_eq!(
            common::prometheus::value(&samples, "kamshub_event_streams", &[]),
            1.0,
            "the resumed stream is open"
        );
    }

    // An idle stream gets keep-alive comments; a stream ends when its token expires.
    let short = resign_local(&app.app.settings.data_dir, &token, |claims| claims["exp"] = now_secs().into());
    let short = resign_local(&app.app.settings.data_dir, &short, |claims| {
        claims["exp"] = (claims["exp"].as_i64().unwrap() + 3).into()
    });
    let mut expiring = Sse::connect(&app.url(""), "", &short, None).await;
    let started = std::time::Instant::now();
    let mut keep_alives = 0;
    while let Some(frame) = expiring.next_frame(WAIT).await {
        assert!(frame.event.is_none(), "no events happen: {frame:?}");
        keep_alives += frame.comments.len();
    }
    assert!(keep_alives >= 1, "keep-alive comments while idle");
    assert!(started.elapsed() < Duration::from_secs(10), "ended at the token's expiry: {:?}", started.elapsed());
}

#[tokio::test]
async fn polling_pages_through_the_log_and_says_what_was_pruned() {
    let app = spawn_app_configured(Backend::Embedded, "http://127.0.0.1:9", "http://127.0.0.1:9", "").await.unwrap();
    let api = Api::new(app.url(""));
    let token = user_token(&app.app, &api, &app.tenant, Role::TenantManager).await;
    store_messages(&app, 5, 10).await;
    let page = api.get("/tenant/events?after=0&limit=4", &token).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let ids: Vec<u64> = page.body["items"].as_array().unwrap().iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    assert_eq!((ids, page.body["nextAfter"].as_u64()), (vec![1, 2, 3, 4], Some(4)));
    assert!(page.body.get("missed").is_none());
    let rest = api.get("/tenant/events?after=4", &token).await;
    let ids: Vec<u64> = rest.body["items"].as_array().unwrap().iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    assert_eq!((ids, rest.body["nextAfter"].as_u64()), (vec![5, 6], Some(6)));
    let empty = api.get("/tenant/events?after=6", &token).await;
    assert_eq!((empty.body["items"].as_array().unwrap().len(), empty.body["nextAfter"].as_u64()), (0, Some(6)));

    // Pruned (older than the retention): a reader that was at 2 learns what it missed.
    let store = app.store().await;
    while store.prune_events(kamshub::domain::now() + Duration::from_secs(1), 1000).await.unwrap() > 0 {}
    store_messages_from(&app, 100, 2).await;
    let after_prune = api.get("/tenant/events?after=2", &token).await;
    assert_eq!(after_prune.body["missed"], serde_json::json!({"after": 2, "oldestEventId": 7}), "{}", after_prune.text);
    assert_eq!(after_prune.body["items"][0]["eventId"], 7);

    for bad in ["?after=-1", "?after=x", "?limit=0", "?limit=501"] {
        let answer = api.get(&format!("/tenant/events{bad}"), &token).await;
        assert!(answer.status == 400 || answer.status == 422, "{bad}: {} {}", answer.status, answer.text);
        assert!(answer.body["error"]["code"].is_string());
    }
    let bad_cursor = reqwest::Client::new()
        .get(app.url("/tenant/events"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("last-event-id", "not-a-number")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_cursor.status(), 400);
    let anonymous = api.call(reqwest::Method::GET, "/tenant/events", None, None).await;
    assert_eq!(anonymous.status, 401);
    let _: Value = anonymous.body;
}

/// Stores `n` more messages for the test app's tenant, ids from `first` on.
async fn store_messages_from(app: &TestApp, first: i64, n: i64) {
    for i in first..first + n {
        let status = app.post_telegram(&telegram_text(i, 801, i, 1_700_000_000 + i, "later")).await;
        assert_eq!(status, 200);
    }
    app.drain().await;
}
