//! The outbound pipeline through its public surface: replies created by the service, the relay
//! and sender loops, fake providers that count every send — on the embedded backends and on
//! MongoDB + SQS (SecantusDB + moto).

mod common;

use common::app::{Backend, TestApp, messenger_text, spawn_app_with, telegram_text};
use common::fake_providers::{Answer, FakeSends};
use common::queues::{Fault, Faulty};
use kamshub::domain::{ChannelHealth, ConversationId, MessageStatus, OutboxStatus, SendId};
use kamshub::pipeline::sender::{Sender, SenderConfig};
use kamshub::providers::Providers;
use kamshub::queue::QueueName;
use kamshub::service::outbox;
use kamshub::store::{ConversationQuery, OutboxQuery};
use std::sync::Arc;
use std::time::{Duration, Instant};

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $case() {
                let fake = super::FakeSends::start().await;
                let app = super::spawn_app_with(super::Backend::Embedded, &fake.uri(), &fake.uri()).await.unwrap();
                super::$case(app, fake, super::Backend::Embedded).await
            })*
        }
        mod mongodb_sqs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] async fn $case() {
                let fake = super::FakeSends::start().await;
                let Some(app) = super::spawn_app_with(super::Backend::Production, &fake.uri(), &fake.uri()).await else {
                    return;
                };
                super::$case(app, fake, super::Backend::Production).await
            })*
        }
    };
}

on_both_backends!(
    twenty_replies_in_one_conversation_arrive_in_order_and_nothing_lapses,
    a_thousand_replies_reach_fifty_chats_once_each_in_order_across_a_sender_restart,
    a_429_is_retried_no_sooner_than_retry_after,
    a_5xx_recovers_and_exhausted_attempts_fail_to_the_dlq,
    replies_waiting_behind_retries_spend_no_receives_and_never_reach_the_dlq,
    a_permanent_refusal_fails_with_the_providers_reason_and_a_bad_token_flags_the_channel,
    a_timeout_after_sending_is_unknown_until_an_operator_retries,
    messenger_replies_carry_their_send_id_and_the_echo_adds_no_message,
    a_reply_over_the_provider_limit_goes_out_in_ordered_parts,
    a_send_that_succeeded_ends_sent_even_after_its_heartbeat_failed_and_a_redelivery_gave_it_up,
    an_absurd_retry_after_waits_an_hour_at_most,
    a_sender_task_that_panics_is_counted_and_sending_goes_on,
);

/// A Telegram conversation for `chat`, created by a webhook.
async fn telegram_conversation(app: &TestApp, chat: i64) -> ConversationId {
    assert_eq!(app.post_telegram(&telegram_text(chat, chat, 1, 1_700_000_000, "hello")).await, 200);
    app.drain().await;
    conversation_of(app, &chat.to_string()).await
}

async fn conversation_of(app: &TestApp, thread: &str) -> ConversationId {
    let all = app.store().await.list_conversations(&app.tenant, &ConversationQuery::first(1000)).await.unwrap();
    all.into_iter().find(|c| c.external_thread_id == thread).expect("conversation exists").id
}

async fn reply(app: &TestApp, conversation: &ConversationId, text: &str) -> kamshub::domain::OutboxId {
    let sent = outbox::send_reply(&app.app, &operator(), &app.tenant, conversation, text, None).await.unwrap();
    kamshub::domain::OutboxId::parse(&sent.view.outbox_id).unwrap()
}

fn operator() -> kamshub::service::access::Caller {
    kamshub::service::access::Caller::operator()
}

async fn status(app: &TestApp, id: &kamshub::domain::OutboxId) -> kamshub::domain::OutboxItem {
    app.store().await.get_outbox_for_send(id).await.unwrap().unwrap()
}

/// Steps relay and sender until `done`, or panics after 60 s.
async fn pump_until<F, Fut>(app: &TestApp, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        if Instant::now() >= deadline {
            panic!("outbound condition not reached in 60 s; {}", stalled(app).await);
        }
        app.relay.run_once().await.unwrap();
        app.sender.run_once().await.unwrap();
    }
}

/// Steps the relay until `done` while a running sender sends, or panics after 60 s.
async fn relay_until<F, Fut>(app: &TestApp, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        if Instant::now() >= deadline {
            panic!("outbound condition not reached in 60 s; {}", stalled(app).await);
        }
        app.relay.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a stalled run left behind: the tenant's outbox by status (with the last errors), the
/// send queues' depths and the sender's counters.
async fn stalled(app: &TestApp) -> String {
    let store = app.store().await;
    let items = store.list_outbox(&OutboxQuery::new(Some(&app.tenant), None, 5000)).await.unwrap();
    let mut by_status = std::collections::BTreeMap::<String, usize>::new();
    let mut errors = std::collections::BTreeSet::new();
    for item in &items {
        *by_status.entry(format!("{:?}", item.status)).or_default() += 1;
        if item.status != OutboxStatus::Sent {
            errors.insert(format!("{:?} after {} attempts: {:?}", item.status, item.attempts, item.last_error));
        }
    }
    let send = app.queue.depth(QueueName::Send).await;
    let dlq = app.queue.depth(QueueName::SendDlq).await;
    format!(
        "outbox {by_status:?}; not sent: {errors:?}; send queue {send:?}; send DLQ {dlq:?}; sender {:?}",
        app.sender.stats().read()
    )
}

/// Waits (30 s at most) until a sender has claimed `id` and is calling the provider.
async fn until_claimed(app: &TestApp, id: &kamshub::domain::OutboxId) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(app, id).await.status != OutboxStatus::Sending {
        assert!(Instant::now() < deadline, "no sender claimed the reply");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A one-worker sender on `queue` whose provider calls wait 20 s for an answer (the app's own
/// sender gives up after 1 s), for tests whose fake provider answers slowly.
async fn patient_sender(app: &TestApp, queue: Arc<dyn kamshub::queue::Queue>) -> Arc<Sender> {
    let patient = Providers::new(
        app.app.telegram().clone().with_timeout(Duration::from_secs(20)),
        app.app.messenger().clone().with_timeout(Duration::from_secs(20)),
    );
    let config = SenderConfig {
        workers: 1,
        receive_wait: Duration::from_millis(300),
        visibility_timeout: app.visibility,
        pacing: common::app::fast_pacing(),
        ..SenderConfig::default()
    };
    Arc::new(Sender::new(app.store().await, queue, patient, app.app.master_key().unwrap(), config))
}

async fn until_status(
    app: &TestApp,
    id: &kamshub::domain::OutboxId,
    wanted: OutboxStatus,
) -> kamshub::domain::OutboxItem {
    let store = app.store().await;
    pump_until(app, || {
        let (store, id) = (Arc::clone(&store), id.clone());
        async move { store.get_outbox_for_send(&id).await.unwrap().unwrap().status == wanted }
    })
    .await;
    status(app, id).await
}

async fn a_thousand_replies_reach_fifty_chats_once_each_in_order_across_a_sender_restart(
    app: TestApp,
    fake: FakeSends,
    backend: Backend,
) {
    let app = Arc::new(app);
    // The full 1,000 on the embedded backends; on the stand-ins (moto answers each SQS call in
    // milliseconds, not microseconds) 200 across 20 chats keep the run short.
    let (chats, per_chat) = if backend == Backend::Embedded { (50, 20) } else { (20, 10) };
    let total = chats * per_chat;
    let mut conversations = Vec::new();
    for chat in 0..chats as i64 {
        conversations.push(telegram_conversation(&app, 5_000 + chat).await);
    }
    for i in 0..per_chat {
        for (c, conversation) in conversations.iter().enumerate() {
            reply(&app, conversation, &format!("c{c:02}-r{i:02}")).await;
        }
    }
    while app.relay.run_once().await.unwrap() > 0 {}

    if backend == Backend::Embedded {
        // A consumer that receives and dies: its messages come back after the visibility timeout.
        // (moto may reorder a group after a visibility timeout, so this runs on the embedded queue.)
        let lost = app.queue.receive(QueueName::Send, 10, Duration::from_secs(1)).await.unwrap();
        assert!(!lost.is_empty());
    }

    // A sender runs, is stopped mid-run, and a new one finishes the work.
    let stop = tokio_util::sync::CancellationToken::new();
    let first = tokio::spawn(Arc::clone(&app.sender).run(stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.sent().len() < total * 3 / 10 {
        assert!(Instant::now() < deadline, "the first sender sent too little");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    first.await.unwrap();
    let after_stop = fake.sent().len();
    assert!(after_stop < total, "the stop landed mid-run ({after_stop} sent)");

    let store = app.store().await;
    let tenant = app.tenant.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let second = tokio::spawn(Arc::clone(&app.sender).run(stop.clone()));
    relay_until(&app, || {
        let (store, tenant) = (Arc::clone(&store), tenant.clone());
        async move {
            let sent =
                store.list_outbox(&OutboxQuery::new(Some(&tenant), Some(OutboxStatus::Sent), 2000)).await.unwrap();
            sent.len() == total
        }
    })
    .await;
    stop.cancel();
    second.await.unwrap();

    let sent = fake.sent();
    assert_eq!(sent.len(), total, "each reply delivered exactly once");
    for c in 0..chats {
        let expected: Vec<String> = (0..per_chat).map(|i| format!("c{c:02}-r{i:02}")).collect();
        assert_eq!(fake.delivered_to(&(5_000 + c).to_string()), expected, "chat {c}: each reply once, in order");
    }
    // The stop was graceful: the stopped sender released what it held instead of letting it
    // lapse (the dead consumer above is not the sender's).
    assert_eq!(app.sender.stats().read().visibility_lapses, 0, "{:?}", app.sender.stats().read());
    let messages = common::messages_oldest_first(&*store, &app.tenant, &conversations[0], 100).await;
    let outbound: Vec<_> = messages.iter().filter(|m| m.direction == kamshub::domain::Direction::Outbound).collect();
    assert_eq!(outbound.len(), per_chat);
    assert!(outbound.iter().all(|m| m.status == MessageStatus::Sent && m.external_message_id.is_some()));
}

/// A fault-free run with the daemon's loops running: replies queued one after another into one
/// conversation reach the provider in that order on every backend, and no held message lapses.
async fn twenty_replies_in_one_conversation_arrive_in_order_and_nothing_lapses(
    app: TestApp,
    fake: FakeSends,
    _: Backend,
) {
    let conversation = telegram_conversation(&app, 6001).await;
    let app = Arc::new(app);
    // The daemon's loops run while the replies are queued, one after another.
    let stop = tokio_util::sync::CancellationToken::new();
    let relay = tokio::spawn(relay_loop(Arc::clone(&app), stop.clone()));
    let running = tokio::spawn(Arc::clone(&app.sender).run(stop.clone()));
    let expected: Vec<String> = (0..20).map(|i| format!("reply {i:02}")).collect();
    for text in &expected {
        reply(&app, &conversation, text).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.delivered_to("6001").len() < expected.len() {
        assert!(Instant::now() < deadline, "not all sent in 60 s: {:?}", fake.delivered_to("6001"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    running.await.unwrap();
    relay.await.unwrap();
    let counts = app.sender.stats().read();
    assert_eq!(fake.delivered_to("6001"), expected, "in the order they were queued ({counts:?})");
    assert_eq!((counts.visibility_lapses, counts.extend_failures), (0, 0), "{counts:?}");
}

/// The relay's loop as the daemon runs it (the test's relay is otherwise stepped by hand).
async fn relay_loop(app: Arc<TestApp>, stop: tokio_util::sync::CancellationToken) {
    while !stop.is_cancelled() {
        app.relay.run_once().await.unwrap();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
            () = stop.cancelled() => {}
        }
    }
}

async fn a_429_is_retried_no_sooner_than_retry_after(app: TestApp, fake: FakeSends, _: Backend) {
    let conversation = telegram_conversation(&app, 7001).await;
    fake.script(&[Answer::RateLimited(2)]);
    let id = reply(&app, &conversation, "patience").await;
    let next = reply(&app, &conversation, "and then this").await;
    let item = until_status(&app, &id, OutboxStatus::Sent).await;
    until_status(&app, &next, OutboxStatus::Sent).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 3);
    let first_call = sent.iter().find(|s| s.text == "patience").unwrap().at;
    let retry = sent.iter().rfind(|s| s.text == "patience").unwrap().at;
    let gap = retry.duration_since(first_call);
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}, before retry_after");
    assert_eq!(item.attempts, 2);
    assert_eq!(
        fake.delivered_to("7001"),
        ["patience", "and then this"],
        "the later reply waited behind the rate-limited one"
    );
}

/// A batch task of the sender panics (here: its first delete); the panic is counted and the
/// sender goes on with later replies.
async fn a_sender_task_that_panics_is_counted_and_sending_goes_on(app: TestApp, fake: FakeSends, _: Backend) {
    let conversation = telegram_conversation(&app, 7020).await;
    let store = app.store().await;
    let config = SenderConfig {
        workers: 1,
        receive_wait: Duration::from_millis(300),
        visibility_timeout: app.visibility,
        pacing: common::app::fast_pacing(),
        ..SenderConfig::default()
    };
    let sender = Arc::new(Sender::new(
        Arc::clone(&store),
        Faulty::wrap(Arc::clone(&app.queue), Fault::PanicOnFirstDelete),
        app.app.providers().clone(),
        app.app.master_key().unwrap(),
        config,
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&sender).run(stop.clone()));
    let first = reply(&app, &conversation, "the delete after this one panics").await;
    app.relay.run_once().await.unwrap();
    relay_until(&app, || {
        let (store, first) = (Arc::clone(&store), first.clone());
        async move { store.get_outbox_for_send(&first).await.unwrap().unwrap().status == OutboxStatus::Sent }
    })
    .await;
    let second = reply(&app, &conversation, "and still this one").await;
    relay_until(&app, || {
        let (store, second) = (Arc::clone(&store), second.clone());
        async move { store.get_outbox_for_send(&second).await.unwrap().unwrap().status == OutboxStatus::Sent }
    })
    .await;
    stop.cancel();
    running.await.unwrap();
    assert_eq!(fake.delivered_to("7020"), ["the delete after this one panics", "and still this one"]);
    assert_eq!(sender.stats().read().worker_restarts, 1, "the panic was noticed");
}

/// A 429 asking to wait for centuries (Telegram's number, read as is) parks the reply for the
/// bounded time instead: it stays PENDING, due within the hour, and nothing crashes.
async fn an_absurd_retry_after_waits_an_hour_at_most(app: TestApp, fake: FakeSends, _: Backend) {
    let conversation = telegram_conversation(&app, 7010).await;
    fake.script(&[Answer::RateLimited(u64::MAX / 4)]);
    let id = reply(&app, &conversation, "patience, bounded").await;
    let store = app.store().await;
    pump_until(&app, || {
        let (store, id) = (Arc::clone(&store), id.clone());
        async move { store.get_outbox_for_send(&id).await.unwrap().unwrap().attempts == 1 }
    })
    .await;
    let item = until_status(&app, &id, OutboxStatus::Pending).await;
    let due = item.next_attempt_at.expect("a retry time is set");
    let hour = kamshub::domain::now() + Duration::from_secs(3600);
    assert!(due <= hour && due > kamshub::domain::now() + Duration::from_secs(3500), "due at {due}");
    assert!(item.last_error.as_deref().unwrap().contains("rate limited"), "{:?}", item.last_error);
}

/// Replies received in one batch behind a reply that is retried wait for it without spending
/// receives: before the sender held short retries itself, each retry of the first reply cost
/// every reply behind it a receive, so a second reply that then needed one retry of its own
/// reached the queue's receive limit and the queue moved it, and every reply behind it, to the
/// DLQ without any of them having failed (found by the fault harness, tests/faults.rs).
async fn replies_waiting_behind_retries_spend_no_receives_and_never_reach_the_dlq(
    app: TestApp,
    fake: FakeSends,
    _: Backend,
) {
    let conversation = telegram_conversation(&app, 7003).await;
    // The first reply succeeds on its last allowed attempt, the second needs a retry too.
    let mut script = vec![Answer::ServerError; common::app::MAX_RECEIVES as usize - 1];
    script.extend([Answer::Accept, Answer::ServerError]);
    fake.script(&script);
    let texts = ["first", "second", "third", "fourth"];
    let mut ids = Vec::new();
    for text in texts {
        ids.push(reply(&app, &conversation, text).await);
    }
    for id in &ids {
        until_status(&app, id, OutboxStatus::Sent).await;
    }
    assert_eq!(fake.delivered_to("7003"), texts, "each once, in order");
    let dlq = app.queue.depth(QueueName::SendDlq).await.unwrap();
    assert_eq!((dlq.visible, dlq.in_flight), (0, 0), "nothing reached the send DLQ");
}

async fn a_5xx_recovers_and_exhausted_attempts_fail_to_the_dlq(app: TestApp, fake: FakeSends, _: Backend) {
    let conversation = telegram_conversation(&app, 7002).await;
    fake.script(&[Answer::ServerError]);
    let id = reply(&app, &conversation, "recovering").await;
    let item = until_status(&app, &id, OutboxStatus::Sent).await;
    assert_eq!((item.attempts, fake.delivered_to("7002").len()), (2, 1));

    // Every attempt (the test sender's limit, the queue's max receives) fails: FAILED, and the
    // queue message is dead-lettered.
    fake.script(&[Answer::ServerError; common::app::MAX_RECEIVES as usize]);
    let id = reply(&app, &conversation, "doomed").await;
    let item = until_status(&app, &id, OutboxStatus::Failed).await;
    assert_eq!(item.attempts, common::app::MAX_RECEIVES);
    assert!(item.last_error.as_deref().unwrap().contains("attempts exhausted"), "{:?}", item.last_error);

    // `dlq peek send` explains it from the outbox item; once the provider is back, `dlq redrive
    // send` gives the item one more attempt and it is delivered once.
    let cli = |args: &[&str]| {
        let out = app.cli().args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let peeked = cli(&["-o", "json", "dlq", "peek", "send"]);
    let rows = peeked.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{peeked}");
    assert_eq!(rows[0]["tenantId"], app.tenant.as_str());
    assert_eq!(rows[0]["receiveCount"], common::app::MAX_RECEIVES);
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("FAILED: attempts exhausted"), "{reason}");
    let moved = cli(&["-o", "json", "dlq", "redrive", "send", "--yes"]);
    assert_eq!(moved, serde_json::json!({"moved": 1, "skipped": 0, "failed": 0}));
    let item = until_status(&app, &id, OutboxStatus::Sent).await;
    assert_eq!(item.attempts, common::app::MAX_RECEIVES + 1, "one more attempt");
    assert_eq!(fake.delivered_to("7002"), ["recovering", "doomed"], "delivered once");
    let dlq = app.queue.depth(QueueName::SendDlq).await.unwrap();
    assert_eq!(dlq.visible + dlq.in_flight, 0);
}

async fn a_permanent_refusal_fails_with_the_providers_reason_and_a_bad_token_flags_the_channel(
    app: TestApp,
    fake: FakeSends,
    _: Backend,
) {
    let conversation = telegram_conversation(&app, 7003).await;
    fake.script(&[Answer::Blocked]);
    let id = reply(&app, &conversation, "are you there?").await;
    let item = until_status(&app, &id, OutboxStatus::Failed).await;
    assert_eq!(item.attempts, 1, "a permanent error is not retried");
    assert!(item.last_error.as_deref().unwrap().contains("bot was blocked by the user"), "{:?}", item.last_error);
    let messages = common::messages_oldest_first(&*app.store().await, &app.tenant, &conversation, 10).await;
    assert_eq!(messages.last().unwrap().status, MessageStatus::Failed);

    fake.script(&[Answer::BadToken]);
    let id = reply(&app, &conversation, "with a revoked token").await;
    until_status(&app, &id, OutboxStatus::Failed).await;
    let channel = app.store().await.get_channel(&app.tenant, &app.telegram).await.unwrap();
    assert_eq!(channel.health, ChannelHealth::NeedsReauth);
}

async fn a_timeout_after_sending_is_unknown_until_an_operator_retries(app: TestApp, fake: FakeSends, _: Backend) {
    let conversation = telegram_conversation(&app, 7004).await;
    fake.script(&[Answer::AcceptThenHang]);
    let id = reply(&app, &conversation, "did it arrive?").await;
    let item = until_status(&app, &id, OutboxStatus::Unknown).await;
    assert!(item.last_error.as_deref().unwrap().contains("not resent automatically"), "{:?}", item.last_error);
    // Nothing resends it by itself.
    for _ in 0..3 {
        app.relay.run_once().await.unwrap();
        app.sender.run_once().await.unwrap();
    }
    assert_eq!(fake.sent().len(), 1);
    // The operator decides to resend (audited).
    let actor = kamshub::service::access::Caller::Operator("sre".into());
    let retried = outbox::retry(&app.app, &actor, &app.tenant, &id).await.unwrap();
    assert_eq!(retried.item.status, OutboxStatus::Pending);
    until_status(&app, &id, OutboxStatus::Sent).await;
    assert_eq!(fake.delivered_to("7004"), ["did it arrive?", "did it arrive?"], "the accepted duplicate");
    let audit = app.store().await.list_audit(&app.tenant, 10).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "outbox.retry" && a.actor == "cli:sre"));
    let again = outbox::retry(&app.app, &actor, &app.tenant, &id).await.unwrap_err();
    assert!(again.to_string().contains("only FAILED or UNKNOWN"), "{again}");
}

async fn messenger_replies_carry_their_send_id_and_the_echo_adds_no_message(app: TestApp, fake: FakeSends, _: Backend) {
    let psid = "2400000000000777";
    assert_eq!(app.post_messenger(&messenger_text(psid, "m_in_1", 1_700_000_000_000, "hi page")).await, 200);
    app.drain().await;
    let conversation = conversation_of(&app, psid).await;
    let key = SendId::parse("client-key-1").unwrap();
    let sent =
        outbox::send_reply(&app.app, &operator(), &app.tenant, &conversation, "hello from us", Some(key.clone()))
            .await
            .unwrap();
    let view = sent.view;
    // A client retry with the same key sends nothing more.
    let again = outbox::send_reply(&app.app, &operator(), &app.tenant, &conversation, "hello from us", Some(key))
        .await
        .unwrap();
    assert!(again.replayed && !sent.replayed);
    assert_eq!(again.view.outbox_id, view.outbox_id);
    let id = kamshub::domain::OutboxId::parse(&view.outbox_id).unwrap();
    let item = until_status(&app, &id, OutboxStatus::Sent).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].chat.as_str(), sent[0].metadata.as_deref()), (psid, Some("client-key-1")));

    // Meta echoes our message back with our metadata: it confirms the reply, adds nothing.
    let mid = item.provider_message_ids[0].clone();
    let echo = serde_json::json!({
        "object": "page",
        "entry": [{"id": common::app::PAGE_ID, "time": 1_700_000_001_000i64, "messaging": [{
            "sender": {"id": common::app::PAGE_ID}, "recipient": {"id": psid}, "timestamp": 1_700_000_001_000i64,
            "message": {"mid": mid, "is_echo": true, "app_id": 1234, "metadata": "client-key-1", "text": "hello from us"}
        }]}]
    })
    .to_string();
    assert_eq!(app.post_messenger(&echo).await, 200);
    app.drain().await;
    let messages = common::messages_oldest_first(&*app.store().await, &app.tenant, &conversation, 10).await;
    let texts: Vec<_> = messages.iter().map(|m| (m.direction, m.text.clone().unwrap(), m.status)).collect();
    use kamshub::domain::Direction::*;
    assert_eq!(
        texts,
        [
            (Inbound, "hi page".to_owned(), MessageStatus::Received),
            (Outbound, "hello from us".to_owned(), MessageStatus::Sent)
        ]
    );
}

/// A sender whose heartbeat fails keeps sending a slow reply; its visibility lapses, and a second
/// sender receives the message and gives the item up as UNKNOWN. The first send did succeed: the
/// item ends SENT with its provider id, sent once, and the first sender counted what went wrong.
async fn a_send_that_succeeded_ends_sent_even_after_its_heartbeat_failed_and_a_redelivery_gave_it_up(
    app: TestApp,
    fake: FakeSends,
    _: Backend,
) {
    let conversation = telegram_conversation(&app, 7100).await;
    // Slow enough that the message lapses while the provider takes its time.
    fake.script(&[Answer::AcceptAfter(app.visibility * 2)]);
    let id = reply(&app, &conversation, "slow but sure").await;
    app.relay.run_once().await.unwrap();
    let store = app.store().await;
    let first = patient_sender(&app, Faulty::wrap(Arc::clone(&app.queue), Fault::NoVisibility)).await;
    let sending = tokio::spawn({
        let first = Arc::clone(&first);
        async move { first.run_once().await }
    });
    // The first sender claims it and calls the slow provider...
    until_claimed(&app, &id).await;
    // ...the message lapses and comes back to the second sender, which takes the item for abandoned.
    pump_until(&app, || {
        let (store, id) = (Arc::clone(&store), id.clone());
        async move { store.get_outbox_for_send(&id).await.unwrap().unwrap().status == OutboxStatus::Unknown }
    })
    .await;
    let step = sending.await.unwrap();
    assert!(step.is_ok() || app.queue.kind() == "sqs", "{step:?}");
    let item = status(&app, &id).await;
    assert_eq!(item.status, OutboxStatus::Sent, "{:?}", item.last_error);
    assert_eq!(item.provider_message_ids.len(), 1);
    assert_eq!(fake.delivered_to("7100"), ["slow but sure"], "sent once");
    let messages = common::messages_oldest_first(&*store, &app.tenant, &conversation, 10).await;
    let ours = messages.iter().find(|m| m.id == item.reply().unwrap().message_id).unwrap();
    assert_eq!(
        (ours.status, ours.external_message_id.as_ref()),
        (MessageStatus::Sent, item.provider_message_ids.first())
    );
    let counts = first.stats().read();
    assert!(counts.extend_failures > 0 && counts.visibility_lapses == 1, "{counts:?}");
}

/// The sender is stopped while a provider call is under way and the store is locked by another
/// process when the answer comes: the stop waits for the store ([`kamshub::pipeline::sender::RECORD_GRACE`])
/// and records the send, instead of leaving the reply SENDING for the next sender to call UNKNOWN.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_send_answered_during_shutdown_is_recorded_once_the_store_is_back() {
    let fake = FakeSends::start().await;
    let app = spawn_app_with(Backend::Embedded, &fake.uri(), &fake.uri()).await.unwrap();
    let conversation = telegram_conversation(&app, 7200).await;
    fake.script(&[Answer::AcceptAfter(Duration::from_secs(2))]);
    let id = reply(&app, &conversation, "sent while stopping").await;
    app.relay.run_once().await.unwrap();
    let sender = patient_sender(&app, Arc::clone(&app.queue)).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(Arc::clone(&sender).run(stop.clone()));
    until_claimed(&app, &id).await;
    // Another process holds the store's write lock past the embedded store's own bound on a busy
    // write (about 20 s), so the record of the answer fails at least once after the stop.
    let db = app.app.settings.data_dir.join("kamshub.sqlite3");
    let (locked, is_locked) = std::sync::mpsc::channel();
    let locker = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(24));
        conn.execute_batch("COMMIT").unwrap();
    });
    is_locked.recv().unwrap();
    stop.cancel();
    running.await.unwrap();
    locker.join().unwrap();
    let item = status(&app, &id).await;
    assert_eq!(item.status, OutboxStatus::Sent, "{:?}", item.last_error);
    assert_eq!(fake.delivered_to("7200"), ["sent while stopping"], "sent once");
    assert!(sender.stats().read().store_retries > 0, "the record did wait for the store");
}

async fn a_reply_over_the_provider_limit_goes_out_in_ordered_parts(app: TestApp, fake: FakeSends, _: Backend) {
    let conversation = telegram_conversation(&app, 7005).await;
    let words: Vec<String> = (0..1200).map(|i| format!("word{i:04}")).collect();
    let text = words.join(" ");
    assert!(text.chars().count() > 4096 * 2);
    let id = reply(&app, &conversation, &text).await;
    let item = until_status(&app, &id, OutboxStatus::Sent).await;
    let parts = fake.delivered_to("7005");
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.chars().count() <= 4096 && !p.starts_with(' ') && !p.ends_with(' ')));
    assert_eq!(parts.join(" "), text, "split on word boundaries, in order");
    assert_eq!(item.provider_message_ids.len(), 3);
}

/// The operator's view through the real binary (embedded backends): `message send`, `outbox
/// inspect|show|retry`, `channel auto-reply`, `channel rotate-credentials`.
mod cli {
    use super::*;
    use common::cli::keys;

    struct Cli<'a> {
        app: &'a TestApp,
        fake: &'a FakeSends,
    }

    impl Cli<'_> {
        fn run(&self, args: &[&str]) -> (i32, String, String) {
            let mut cmd = assert_cmd::Command::cargo_bin("kamshub").unwrap();
            for (key, _) in std::env::vars() {
                if key.starts_with("KAMSHUB_") {
                    cmd.env_remove(key);
                }
            }
            let out = cmd
                .env("KAMSHUB_DATA_DIR", &self.app.app.settings.data_dir)
                .env("KAMSHUB_PROVIDERS__TELEGRAM_API_BASE", self.fake.uri())
                .env("KAMSHUB_PROVIDERS__GRAPH_API_BASE", self.fake.uri())
                .args(args)
                .output()
                .unwrap();
            let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
            (out.status.code().unwrap(), text(out.stdout), text(out.stderr))
        }

        fn json(&self, args: &[&str]) -> serde_json::Value {
            let mut all = vec!["-o", "json"];
            all.extend_from_slice(args);
            let (code, stdout, stderr) = self.run(&all);
            assert_eq!(code, 0, "{args:?}: {stderr}");
            serde_json::from_str(&stdout).unwrap()
        }
    }

    async fn setup() -> (TestApp, FakeSends) {
        let fake = FakeSends::start().await;
        let app = spawn_app_with(Backend::Embedded, &fake.uri(), &fake.uri()).await.unwrap();
        (app, fake)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn message_send_and_outbox_tooling() {
        let (app, fake) = setup().await;
        let cli = Cli { app: &app, fake: &fake };
        let conversation = telegram_conversation(&app, 8001).await;
        let (tenant, conv) = (app.tenant.to_string(), conversation.to_string());
        let send = |text: &str| {
            cli.json(&[
                "message",
                "send",
                "--tenant",
                &tenant,
                "--conversation",
                &conv,
                "--text",
                text,
                "--idempotency-key",
                "k-1",
            ])
        };
        let sent = send("first reply");
        assert_eq!(keys(&sent), ["outboxId", "sendId", "status"]);
        assert_eq!((sent["sendId"].as_str(), sent["status"].as_str()), (Some("k-1"), Some("PENDING")));
        assert_eq!(send("first reply")["outboxId"], sent["outboxId"], "same key, same text: the same item");
        let (code, _, stderr) = cli.run(&[
            "message",
            "send",
            "--tenant",
            &tenant,
            "--conversation",
            &conv,
            "--text",
            "other",
            "--idempotency-key",
            "k-1",
        ]);
        assert_eq!(code, 1);
        assert!(stderr.contains("already used for a different reply"), "{stderr}");

        let listed = cli.json(&["outbox", "inspect", "--tenant", &tenant, "--status", "PENDING"]);
        assert_eq!(
            keys(&listed[0]),
            ["attempts", "createdAt", "lastError", "outboxId", "sendId", "status", "tenantId", "updatedAt"]
        );
        let outbox_id = sent["outboxId"].as_str().unwrap();
        let id = kamshub::domain::OutboxId::parse(outbox_id).unwrap();
        until_status(&app, &id, OutboxStatus::Sent).await;
        let shown = cli.json(&["outbox", "show", outbox_id, "--tenant", &tenant]);
        assert_eq!((shown["status"].as_str(), shown["text"].as_str()), (Some("SENT"), Some("first reply")));
        assert_eq!(shown["providerMessageIds"].as_array().unwrap().len(), 1);
        assert_eq!(cli.json(&["outbox", "inspect", "--status", "SENT"]).as_array().unwrap().len(), 1);
        let (code, _, stderr) = cli.run(&["outbox", "retry", outbox_id, "--tenant", &tenant]);
        assert_eq!(code, 1);
        assert!(stderr.contains("only FAILED or UNKNOWN"), "{stderr}");
        let (code, _, stderr) = cli.run(&["outbox", "inspect", "--status", "LOST"]);
        assert_eq!(code, 2, "{stderr}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_channel_greets_each_new_conversation_once() {
        let (app, fake) = setup().await;
        let cli = Cli { app: &app, fake: &fake };
        let (tenant, channel) = (app.tenant.to_string(), app.telegram.to_string());
        cli.json(&["channel", "auto-reply", &channel, "--tenant", &tenant, "--text", "Thanks, we reply soon."]);
        let first = telegram_text(1, 9001, 1, 1_700_000_000, "hello");
        assert_eq!(app.post_telegram(&first).await, 200);
        assert_eq!(app.post_telegram(&first).await, 200, "a redelivered webhook");
        assert_eq!(app.post_telegram(&telegram_text(2, 9001, 2, 1_700_000_001, "anyone?")).await, 200);
        app.drain().await;
        let store = app.store().await;
        let tenant_id = app.tenant.clone();
        pump_until(&app, || {
            let (store, tenant) = (Arc::clone(&store), tenant_id.clone());
            async move {
                !store
                    .list_outbox(&OutboxQuery::new(Some(&tenant), Some(OutboxStatus::Sent), 10))
                    .await
                    .unwrap()
                    .is_empty()
            }
        })
        .await;
        assert_eq!(fake.delivered_to("9001"), ["Thanks, we reply soon."], "greeted once");

        cli.json(&["channel", "auto-reply", &channel, "--tenant", &tenant, "--off"]);
        assert_eq!(app.post_telegram(&telegram_text(3, 9002, 1, 1_700_000_002, "hi")).await, 200);
        app.drain().await;
        assert_eq!(
            store.list_outbox(&OutboxQuery::new(Some(&app.tenant), None, 10)).await.unwrap().len(),
            1,
            "no greeting once off"
        );
    }

    /// A client key shaped like a greeting's old derived key (`auto-reply:{channel}:{thread}`)
    /// made the customer's first message fail to apply on every redelivery. Greetings now use keys
    /// in kamshub's own namespace, which clients cannot enter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_client_key_cannot_take_the_greeting_of_a_customer() {
        let (app, fake) = setup().await;
        let cli = Cli { app: &app, fake: &fake };
        let (tenant, channel) = (app.tenant.to_string(), app.telegram.to_string());
        cli.json(&["channel", "auto-reply", &channel, "--tenant", &tenant, "--text", "Thanks, we reply soon."]);
        let other = telegram_conversation(&app, 6400).await.to_string();
        let send = |key: &str| {
            let args = [
                "message",
                "send",
                "--tenant",
                &tenant,
                "--conversation",
                &other,
                "--text",
                "hi",
                "--idempotency-key",
                key,
            ];
            cli.run(&args)
        };
        let (code, _, stderr) = send(&format!("auto-reply:{channel}:6500"));
        assert_eq!(code, 0, "an ordinary key, whatever it looks like: {stderr}");

        assert_eq!(app.post_telegram(&telegram_text(7, 6500, 1, 1_700_000_100, "first message")).await, 200);
        app.drain().await;
        let conversation = conversation_of(&app, "6500").await;
        let mut stored = app.store().await.list_messages(&app.tenant, &conversation, None, 10).await.unwrap();
        stored.reverse();
        let texts: Vec<_> = stored.iter().map(|m| m.text.clone().unwrap_or_default()).collect();
        assert_eq!(texts, ["first message", "Thanks, we reply soon."], "applied, and greeted");
        pump_until(&app, || {
            let fake = fake.clone();
            async move { fake.delivered_to("6500") == ["Thanks, we reply soon."] }
        })
        .await;

        // The greeting's own key is out of any client's reach.
        let greeting = app.store().await.list_outbox(&OutboxQuery::new(Some(&app.tenant), None, 10)).await.unwrap();
        let greeting = greeting.iter().find(|i| i.conversation_id() == Some(&conversation)).expect("the greeting");
        let (code, _, stderr) = send(greeting.send_id.as_str());
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("reserved for kamshub"), "{stderr}");
        let (code, _, stderr) = send(&greeting.send_id.as_str().to_uppercase());
        assert_eq!(code, 2, "the namespace is reserved in any case: {stderr}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rotating_credentials_keeps_history_and_clears_needs_reauth() {
        let (app, fake) = setup().await;
        let cli = Cli { app: &app, fake: &fake };
        let conversation = telegram_conversation(&app, 8101).await;
        let store = app.store().await;
        let channel = store.get_channel(&app.tenant, &app.telegram).await.unwrap();
        store.set_channel_health(&channel.id, ChannelHealth::NeedsReauth).await.unwrap();
        let (tenant, channel_id) = (app.tenant.to_string(), channel.id.to_string());
        let listed = cli.json(&["channel", "list", "--tenant", &tenant]);
        assert!(listed.as_array().unwrap().iter().any(|c| c["health"] == "needs_reauth"), "{listed}");

        let bot = |username: &str| serde_json::json!({"ok": true, "result": {"id": 1, "is_bot": true, "first_name": "B", "username": username}});
        for (token, username) in [("2:NEW", channel.external_id.as_str()), ("3:OTHER", "someone_else_bot")] {
            wiremock::Mock::given(wiremock::matchers::path(format!("/bot{token}/getMe")))
                .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(bot(username)))
                .mount(&fake.server)
                .await;
        }
        wiremock::Mock::given(wiremock::matchers::path("/bot2:NEW/setWebhook"))
            .respond_with(
                wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({"ok": true, "result": true})),
            )
            .mount(&fake.server)
            .await;
        let (code, _, stderr) =
            cli.run(&["channel", "rotate-credentials", &channel_id, "--tenant", &tenant, "--token", "3:OTHER"]);
        assert_eq!(code, 1);
        assert!(stderr.contains("belongs to bot `someone_else_bot`"), "{stderr}");
        let rotated =
            cli.json(&["channel", "rotate-credentials", &channel_id, "--tenant", &tenant, "--token", "2:NEW"]);
        assert_eq!(
            (rotated["health"].as_str(), rotated["channelId"].as_str()),
            (Some("ok"), Some(channel_id.as_str()))
        );
        let hooks: Vec<serde_json::Value> = fake
            .server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/bot2:NEW/setWebhook")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0]["secret_token"], app.telegram_secret.as_str(), "the webhook secret is kept");

        // History is kept and replies go out with the new token.
        let id = reply(&app, &conversation, "after rotation").await;
        until_status(&app, &id, OutboxStatus::Sent).await;
        let paths: Vec<String> =
            fake.server.received_requests().await.unwrap().into_iter().map(|r| r.url.path().to_owned()).collect();
        assert!(paths.contains(&"/bot2:NEW/sendMessage".to_owned()), "{paths:?}");
        assert_eq!(common::messages_oldest_first(&*store, &app.tenant, &conversation, 10).await.len(), 2);
        let audit = store.list_audit(&app.tenant, 10).await.unwrap();
        assert!(audit.iter().any(|a| a.action == "channel.rotate_credentials"));
    }
}
