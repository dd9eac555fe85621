//! The DLQ scenario an SRE lives through, on the embedded backends and on MongoDB + SQS (the
//! stand-ins), with the real `kamshub` binary for every `dlq` command:
//!
//! 300 inbound events in 10 conversations, 30 of them poison: the store refuses them (a
//! database rule that rejects their text: a SQLite trigger, a MongoDB collection validator, as a
//! DBA's rule would). They fail `max_receive_count` times and reach the DLQ; `dlq peek` shows
//! each with the database's reason; the rule is removed; `dlq redrive --rate 50 --yes` puts all
//! 30 back, they are applied exactly once, in order within each conversation, and the redrive is
//! audited. The second scenario kills the redrive with SIGKILL halfway: a rerun finishes the job
//! and nothing is lost or applied twice; a second redrive while one runs is refused.

mod common;

use common::app::{Backend, MAX_RECEIVES, TestApp, spawn_app, telegram_text};
use kamshub::domain::TenantId;
use kamshub::queue::{Queue, QueueName, ReceivedMessage};
use kamshub::store::ConversationQuery;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHATS: i64 = 10;
const PER_CHAT: i64 = 30;
/// Positions of the poison messages in each conversation.
const POISON_AT: [i64; 3] = [5, 15, 25];
const DEADLINE: Duration = Duration::from_secs(120);

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

on_both_backends!(poison_messages_are_explained_then_redriven_once_in_order, a_redrive_killed_halfway_loses_nothing);

fn text(chat: i64, i: i64) -> String {
    if POISON_AT.contains(&i) { format!("poison {chat} {i}") } else { format!("ok {chat} {i}") }
}

fn update_id(chat: i64, i: i64) -> i64 {
    chat * 1000 + i
}

/// Every stored message's text, per conversation (by its chat), in listing (provider) order.
async fn stored(app: &TestApp) -> BTreeMap<String, Vec<(String, time::OffsetDateTime)>> {
    let store = app.store().await;
    let mut all = BTreeMap::new();
    for c in store.list_conversations(&app.tenant, &ConversationQuery::first(1000)).await.unwrap() {
        // Newest first from the store: reversed, the conversation in provider order.
        let messages = store.list_messages(&app.tenant, &c.id, None, 1000).await.unwrap();
        all.insert(c.external_thread_id, messages.into_iter().rev().map(|m| (m.text.unwrap(), m.created_at)).collect());
    }
    all
}

async fn count_stored(app: &TestApp) -> usize {
    stored(app).await.values().map(Vec::len).sum()
}

async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn dlq_depth(queue: &dyn Queue) -> u64 {
    let d = queue.depth(QueueName::IncomingDlq).await.unwrap();
    d.visible + d.in_flight
}

fn embedded(app: &TestApp) -> bool {
    app.app.settings.queue.kind == kamshub::config::QueueKind::Embedded
}

/// Posts the 300 updates (each conversation in order, conversations in parallel) with the poison
/// rule on, and waits until every event is either stored or dead. Returns the DLQ's depth: the 30
/// poison events, plus on moto any later message of their conversation that its visibility-lapse
/// quirk (docs/dev/stand-ins.md) handed out ahead of the poison one, which then used up its own
/// receives, or redelivered while it was being dead-lettered (a copy in both places, applied once
/// either way); real SQS and the embedded queue never do that.
async fn poison_the_dlq(app: &TestApp) -> u64 {
    common::poison::rule(&app.app.settings, true).await;
    let posts = (1..=CHATS).map(|chat| async move {
        for i in 1..=PER_CHAT {
            let update = telegram_text(update_id(chat, i), chat, i, 1_700_000_000 + i, &text(chat, i));
            assert_eq!(app.post_telegram(&update).await, StatusCode::OK);
        }
    });
    futures::future::join_all(posts).await;
    let queue = Arc::clone(&app.queue);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let incoming = queue.depth(QueueName::Incoming).await.unwrap();
        let (stored, dead) = (count_stored(app).await as u64, dlq_depth(queue.as_ref()).await);
        // `>=`: on moto a lapse can also leave a copy of an applied message in the DLQ.
        if incoming.visible + incoming.in_flight == 0 && stored + dead >= 300 && dead >= 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every event is stored or dead: stored {stored}, dead {dead}, incoming {incoming:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dlq_depth(app.queue.as_ref()).await;
    if embedded(app) {
        assert_eq!((count_stored(app).await, dead), (270, 30), "only the poison events die");
    }
    dead
}

/// The Telegram update id in a provider event id (`{update_id}:{digest of the update}`).
fn update_id_of(provider_event_id: &str) -> i64 {
    provider_event_id.split(':').next().unwrap().parse().unwrap()
}

/// The update id of a `dlq peek` row's key.
fn update_of(row: &Value) -> i64 {
    update_id_of(row["key"].as_str().unwrap())
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "kamshub failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `dlq peek` shows the poison events with the database's reason and the receive count they
/// died at (on SQS, the first dead messages of each conversation: the rest stay hidden behind
/// them until they leave); `list` and the dry run count all `dead`.
fn assert_peek_explains(app: &TestApp, dead: u64) {
    let peek = app.cli().args(["-o", "json", "dlq", "peek", "incoming", "--limit", "100"]).output().unwrap();
    let peeked = json(&peek);
    let rows = peeked.as_array().unwrap();
    let poison: BTreeSet<String> =
        (1..=CHATS).flat_map(|chat| POISON_AT.iter().map(move |i| update_id(chat, *i).to_string())).collect();
    let keys: BTreeSet<String> = rows.iter().map(|r| update_of(r).to_string()).collect();
    if embedded(app) {
        assert_eq!(keys.len(), rows.len(), "each dead message once");
        assert_eq!(keys, poison, "the poison events");
    } else {
        let chats: BTreeSet<i64> = rows.iter().map(|r| update_of(r) / 1000).collect();
        assert_eq!(chats.len(), CHATS as usize, "every stuck conversation is shown: {peeked}");
        if (rows.len() as u64) < dead {
            let note = String::from_utf8_lossy(&peek.stderr);
            assert!(note.contains(&format!("{} of the {dead} messages", dead - rows.len() as u64)), "{note}");
        }
    }
    for r in rows {
        assert_eq!(r["tenantId"], app.tenant.as_str());
        assert_eq!(r["channelId"], app.telegram.as_str());
        let chat = update_of(r) / 1000;
        assert!(r["group"].as_str().unwrap().ends_with(&format!(":{chat}")), "{r}");
        let reason = r["reason"].as_str().unwrap();
        if poison.contains(&update_of(r).to_string()) {
            assert!(
                reason.contains("refuse_poison") || reason.contains("failed validation"),
                "the database's reason: {r}"
            );
            let count = r["receiveCount"].as_u64().unwrap();
            if embedded(app) {
                assert_eq!(count, u64::from(MAX_RECEIVES), "{r}");
            } else {
                // A lapse on moto can redeliver it once without an attempt being recorded.
                assert!((1..=u64::from(MAX_RECEIVES)).contains(&count), "{r}");
            }
        } else {
            assert_eq!(reason, "no failure recorded", "a message that never failed says so: {r}");
        }
    }
    // Another tenant's filter: nothing.
    let other = TenantId::generate();
    let none =
        json(&app.cli().args(["-o", "json", "dlq", "peek", "incoming", "--tenant", other.as_str()]).output().unwrap());
    assert_eq!(none, serde_json::json!([]));
    let listed = json(&app.cli().args(["-o", "json", "dlq", "list"]).output().unwrap());
    let dlq = listed.as_array().unwrap().iter().find(|q| q["queue"] == "incoming-dlq").unwrap();
    assert_eq!(dlq["visible"].as_u64().unwrap() + dlq["inFlight"].as_u64().unwrap(), dead, "{listed}");
    let dry = json(&app.cli().args(["-o", "json", "dlq", "redrive", "incoming", "--dry-run"]).output().unwrap());
    let counted: u64 = dry.as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, dead, "{dry}");
}

/// Every conversation holds its 30 messages once each, in provider order.
async fn assert_all_applied_once(app: &TestApp) {
    wait_for("all 300 stored", || async { count_stored(app).await >= 300 }).await;
    let all = stored(app).await;
    assert_eq!(all.len(), CHATS as usize);
    for chat in 1..=CHATS {
        let texts: Vec<&str> = all[&chat.to_string()].iter().map(|(t, _)| t.as_str()).collect();
        let expected: Vec<String> = (1..=PER_CHAT).map(|i| text(chat, i)).collect();
        assert_eq!(texts, expected, "conversation {chat}: each message once, in provider order");
    }
}

/// The redrive's audit record: actor, filter and counts.
async fn assert_audited(app: &TestApp, moved: u64) {
    let audit = app.store().await.list_audit(&TenantId::platform(), 20).await.unwrap();
    let redrives: Vec<_> = audit.iter().filter(|a| a.action == "dlq.redrive").collect();
    assert!(!redrives.is_empty(), "no dlq.redrive audit record: {audit:?}");
    let last = redrives[0];
    assert!(last.actor.starts_with("cli:"), "{last:?}");
    assert!(last.target.ends_with("-incoming-dlq.fifo"), "{last:?}");
    assert_eq!(last.details["moved"], moved, "{last:?}");
    assert_eq!(last.details["failed"], 0);
    assert_eq!(last.details["filter"]["rate"], 50.0);
}

async fn poison_messages_are_explained_then_redriven_once_in_order(app: TestApp) {
    let (stop, processor) = app.run_processor().await;
    let dead = poison_the_dlq(&app).await;
    assert_peek_explains(&app, dead);
    assert_eq!(dlq_depth(app.queue.as_ref()).await, dead, "peeks and dry runs take nothing");

    common::poison::rule(&app.app.settings, false).await;
    let started = Instant::now();
    let summary =
        json(&app.cli().args(["-o", "json", "dlq", "redrive", "incoming", "--rate", "50", "--yes"]).output().unwrap());
    assert_eq!(summary, serde_json::json!({"moved": dead, "skipped": 0, "failed": 0}));
    let least = Duration::from_secs_f64((dead - 1) as f64 / 50.0);
    assert!(started.elapsed() >= least, "{dead} sends at 50/s take at least {least:?}");
    assert_eq!(dlq_depth(app.queue.as_ref()).await, 0);

    assert_all_applied_once(&app).await;
    // Within each conversation the redriven events were applied in their original order. Asserted
    // on the embedded queue: on moto a retried message's visibility lapse can reorder its
    // conversation before it reaches the DLQ (docs/dev/stand-ins.md); the redrive is the same code.
    let all = stored(&app).await;
    for chat in (1..=CHATS).filter(|_| embedded(&app)) {
        let applied_at: Vec<time::OffsetDateTime> = POISON_AT
            .iter()
            .map(|i| all[&chat.to_string()].iter().find(|(t, _)| *t == text(chat, *i)).unwrap().1)
            .collect();
        assert!(applied_at.windows(2).all(|w| w[0] <= w[1]), "conversation {chat}: {applied_at:?}");
    }
    assert_audited(&app, dead).await;
    stop.cancel();
    processor.await.unwrap();
}

/// Receives what the incoming queue holds (without the processor), checks each conversation's
/// messages come in order (if `strict`: see above for moto), and releases them. Returns the update
/// ids seen.
async fn queued_in_order(queue: &dyn Queue, strict: bool) -> Vec<i64> {
    let mut seen: Vec<ReceivedMessage> = Vec::new();
    loop {
        let got = queue.receive(QueueName::Incoming, queue.max_receive(), Duration::from_secs(1)).await.unwrap();
        if got.is_empty() {
            break;
        }
        seen.extend(got);
    }
    let mut per_group: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut ids = Vec::new();
    for m in &seen {
        let envelope: kamshub::domain::inbound::Envelope = serde_json::from_str(&m.body).unwrap();
        let id = update_id_of(&envelope.provider_event_id);
        per_group.entry(m.group_id.clone()).or_default().push(id);
        ids.push(id);
        queue.set_visibility(QueueName::Incoming, &m.receipt, Duration::ZERO).await.unwrap();
    }
    for (group, ids) in per_group.iter().filter(|_| strict) {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "group {group} out of order: {ids:?}");
    }
    ids
}

async fn a_redrive_killed_halfway_loses_nothing(app: TestApp) {
    let (stop, processor) = app.run_processor().await;
    let dead = poison_the_dlq(&app).await;
    common::poison::rule(&app.app.settings, false).await;
    // The processor stops, so the queue shows exactly what the redrives put back.
    stop.cancel();
    processor.await.unwrap();

    let mut first = app
        .cli()
        .args(["-o", "json", "dlq", "redrive", "incoming", "--rate", "2", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let queue = Arc::clone(&app.queue);
    // Moved means gone from the DLQ, not just received from it: the batch a run receives (up to
    // a third of the visibility timeout's worth of sends at `--rate`) is deleted only once sent.
    wait_for("the first redrive to move some", || {
        let queue = Arc::clone(&queue);
        async move { dlq_depth(queue.as_ref()).await + 10 <= dead }
    })
    .await;

    // While it runs, a second redrive of the same queue is refused, from another process.
    let second = app.cli().args(["dlq", "redrive", "incoming", "--yes"]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let refusal = String::from_utf8_lossy(&second.stderr);
    assert!(refusal.contains("incoming-dlq is busy") && refusal.contains("redrive"), "{refusal}");

    first.kill().unwrap(); // SIGKILL, mid-batch
    first.wait().unwrap();
    let left = dlq_depth(app.queue.as_ref()).await;
    assert!(left > 0 && left < dead, "killed halfway: {left} of {dead} left");

    // The rerun replaces the dead run's claim at once and moves the rest, waiting for the batch
    // the killed run held in flight.
    let rerun =
        json(&app.cli().args(["-o", "json", "dlq", "redrive", "incoming", "--rate", "50", "--yes"]).output().unwrap());
    assert_eq!(rerun["failed"], 0);
    assert!(rerun["moved"].as_u64().unwrap() >= 1, "{rerun}");
    assert_eq!(dlq_depth(app.queue.as_ref()).await, 0, "nothing left behind");

    // The queue holds each dead event once, each conversation in order: nothing lost, nothing twice.
    let ids = queued_in_order(app.queue.as_ref(), embedded(&app)).await;
    if embedded(&app) {
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!((ids.len(), distinct.len()), (30, 30), "each redriven event queued once: {ids:?}");
    }
    let (stop, processor) = app.run_processor().await;
    assert_all_applied_once(&app).await;
    assert_audited(&app, rerun["moved"].as_u64().unwrap()).await;
    let audit = app.store().await.list_audit(&TenantId::platform(), 20).await.unwrap();
    let last = audit.iter().find(|a| a.action == "dlq.redrive").unwrap();
    assert!(last.details["replacedDeadRun"]["pid"].is_number(), "the rerun says whose claim it replaced: {last:?}");
    stop.cancel();
    processor.await.unwrap();
}
