//! Outbound under kill -9 and a faulty provider: replies created while the sender process is
//! killed at random moments and at chosen provider calls (while the provider holds its answer,
//! and the instant it answers), with a share of calls answered 429, 502 or not at all. Every
//! reply must end SENT (delivered once), FAILED, or UNKNOWN; every double send must fall in a
//! crash window or belong to an UNKNOWN item.

use crate::harness::{Backend, Cluster, Report, Scale};
use crate::provider::{CrashKind, FakeTelegram, Faults};
use crate::webhooks::{Poster, await_stored, spawn_killer, workload};
use kamshub::domain::{ConversationId, OutboxStatus, TenantId};
use kamshub::service::access::Caller;
use kamshub::store::{ConversationQuery, OutboxQuery};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a reply scenario does to the sender.
#[derive(Debug, Clone, Copy)]
pub struct Nemesis {
    /// Kills ordered by the provider at random calls (half while holding the answer, half at
    /// the answer).
    pub crash_calls: usize,
    /// Kills at random moments (`kill_now`), every `random_kill_ms` on average; 0: none.
    pub random_kill_ms: u64,
    pub faults: Faults,
}

/// How long a crash window reaches back from a kill: longer than any provider call plus the
/// outbox update takes on a busy machine, so a send that went out in it may not be recorded.
const CRASH_WINDOW: Duration = Duration::from_secs(3);

pub async fn run(scenario: &str, backend: Backend, scale: Scale, nemesis: Nemesis) -> Option<Report> {
    let started = Instant::now();
    let seed = rand::random::<u64>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let crash_points: BTreeMap<usize, CrashKind> = (0..nemesis.crash_calls)
        .map(|n| {
            let call = rng.gen_range(1..=scale.replies);
            (call, if n % 2 == 0 { CrashKind::Held } else { CrashKind::Answered })
        })
        .collect();
    let fake = FakeTelegram::start(nemesis.faults, crash_points).await;
    let cluster = Arc::new(Cluster::new(backend, scale.tenants, &fake.base, "").await?);
    let mut report = Report::new(scenario, backend, &scale);
    report.other.insert("seed".into(), seed);

    // Open the conversations: one inbound message each, through the front daemon.
    let mut front = cluster.start("http,processor,relay");
    cluster.wait_ready(&mut front).await;
    let conversations = open_conversations(&cluster, &scale).await;

    // The sender, killed on the provider's orders and at random moments.
    let (orders, ordered) = tokio::sync::mpsc::unbounded_channel();
    fake.order_kills_to(orders.clone());
    let killer = spawn_killer(Arc::clone(&cluster), "sender", cluster.start("sender"), false, ordered);
    let killing = Arc::new(AtomicBool::new(true));
    let random_kills = {
        let (killing, fake, every) = (Arc::clone(&killing), fake.clone(), nemesis.random_kill_ms);
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 1);
            while every > 0 && killing.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(every / 2..=every * 3 / 2))).await;
                if killing.load(Ordering::Relaxed) {
                    fake.kill_now();
                }
            }
        })
    };
    drop(orders);

    let created = create_replies(&cluster, &conversations, scale.replies).await;
    let store = cluster.app.store().await.unwrap();

    // Kill until most replies are through, then let the rest finish.
    let settled = |store: Arc<dyn kamshub::store::Store>| async move { open_replies(&store).await };
    // (Or until nothing moved for 20 s: what a dead-lettered message holds back waits for the
    // operator's redrive below.)
    let deadline = Instant::now() + Duration::from_secs(if scale.full { 900 } else { 150 });
    let mut moved = (u64::MAX, Instant::now());
    loop {
        let open = settled(Arc::clone(&store)).await;
        if open as usize <= scale.replies / 10 || moved.1.elapsed() > Duration::from_secs(20) {
            break;
        }
        if open != moved.0 {
            moved = (open, Instant::now());
        }
        assert!(Instant::now() < deadline, "replies still open at the deadline");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    killing.store(false, Ordering::Relaxed);
    fake.stop_killing();
    random_kills.await.unwrap();
    let (mut sender, kills) = killer.await.unwrap();
    let patience = Duration::from_secs(if nemesis.faults.hang_calls.is_empty() { 45 } else { 90 });
    let settle = |sender: &mut crate::harness::Proc| {
        let store = Arc::clone(&store);
        let sender_alive = sender.alive();
        async move {
            let mut open_since = (u64::MAX, Instant::now());
            loop {
                let open = settled(Arc::clone(&store)).await;
                if open == 0 {
                    return;
                }
                if open != open_since.0 {
                    open_since = (open, Instant::now());
                }
                // Hangs (past the provider timeout) are the slowest steps; without them, 45 s
                // without progress (a lapse after a kill, then an SQS long poll of 20 s) means
                // what is left waits in the DLQ.
                if open_since.1.elapsed() > patience || Instant::now() > deadline {
                    return;
                }
                assert!(sender_alive(), "the sender exited");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    settle(&mut sender).await;
    // A message received by senders killed `max_receive_count` times went to the send DLQ, as the
    // queue's redrive policy says (whatever else of its conversation was received with it too):
    // the operator's redrive brings it back, and the item ends as its state says (SENDING:
    // UNKNOWN; ENQUEUED: sent).
    let dead = crate::webhooks::dlq_depth(&cluster, kamshub::queue::QueueName::SendDlq).await;
    report.other.insert("dlqBeforeRedrive".into(), dead as u64);
    if dead > 0 {
        let out = cluster.cli(&["-o", "json", "dlq", "redrive", "send", "--yes"]);
        report.other.insert("redriveMoved".into(), out["moved"].as_u64().unwrap_or_default());
        settle(&mut sender).await;
    }

    // Account for every reply.
    let record = fake.take_record();
    let mut deliveries: HashMap<&str, Vec<Instant>> = HashMap::new();
    let mut by_chat: HashMap<&str, Vec<usize>> = HashMap::new();
    for d in &record.deliveries {
        match created.get(d.text.as_str()) {
            Some(&i) => {
                let seen = deliveries.entry(d.text.as_str()).or_default();
                if seen.is_empty() {
                    by_chat.entry(d.chat.as_str()).or_default().push(i);
                }
                seen.push(d.at);
            }
            None => report.unexpected += 1,
        }
    }
    let mut status_of: HashMap<String, OutboxStatus> = HashMap::new();
    for tenant in &cluster.tenants {
        for item in store.list_outbox(&OutboxQuery::new(Some(&tenant.id), None, 1_000_000)).await.unwrap() {
            if let Some(reply) = item.reply() {
                status_of.insert(reply.text.clone(), item.status);
            }
        }
    }
    let in_crash_window =
        |at: Instant| record.kills.iter().any(|(kill, _)| at <= *kill && kill.duration_since(at) <= CRASH_WINDOW);
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for text in created.keys() {
        let status = status_of.get(text).copied();
        let times = deliveries.get(text.as_str()).map(Vec::as_slice).unwrap_or_default();
        let name = match (status, times.len()) {
            (Some(OutboxStatus::Sent), 0) => "sentButNotDelivered",
            (Some(OutboxStatus::Sent), _) => "sent",
            (Some(OutboxStatus::Unknown), 0) => "unknownUndelivered",
            (Some(OutboxStatus::Unknown), _) => "unknownDelivered",
            (Some(OutboxStatus::Failed), 0) => "failed",
            (Some(OutboxStatus::Failed), _) => "failedButDelivered",
            (_, 0) => "stuckUndelivered",
            _ => "stuckDelivered",
        };
        *counts.entry(name.into()).or_default() += 1;
        if matches!(name, "sentButNotDelivered" | "stuckUndelivered") {
            report.lost += 1;
        }
        if times.len() > 1 {
            report.double_sent += times.len() - 1;
            if status == Some(OutboxStatus::Unknown) || in_crash_window(times[0]) {
                report.double_sent_explained += times.len() - 1;
            }
        }
    }
    for (answer, n) in &record.answers {
        counts.insert(format!("provider:{answer}"), *n);
    }
    counts.insert("crashKills".into(), record.kills.iter().filter(|(_, text)| text.is_some()).count() as u64);
    report.order_violations = by_chat.values().map(|seq| seq.windows(2).filter(|w| w[0] > w[1]).count()).sum();
    report.attempted = scale.replies;
    report.requests = record.answers.values().sum::<u64>() as usize;
    report.acknowledged = created.len();
    report.stored = deliveries.len();
    report.kills = kills;
    report.dead_lettered = crate::webhooks::dlq_depth(&cluster, kamshub::queue::QueueName::SendDlq).await;
    report.other.extend(counts);
    sender.kill9();
    front.kill9();
    report.seconds = started.elapsed().as_secs_f64();
    report.publish();
    Some(report)
}

/// Opens the scale's conversations, one inbound message each, through the running daemon's
/// webhooks; returns them.
pub async fn open_conversations(cluster: &Cluster, scale: &Scale) -> Vec<(TenantId, ConversationId)> {
    let openers = Arc::new(workload(&Scale { messages_per_conversation: 1, ..*scale }));
    let poster = Poster::new(cluster);
    poster.post_all(&openers, (0..openers.len()).map(|i| (i, 1)).collect(), scale.posters).await;
    poster.retry_unacknowledged(&openers, scale.posters).await;
    let acked = poster.acked.lock().unwrap().clone();
    await_stored(cluster, &acked, openers.len(), Duration::from_secs(60)).await;
    let store = cluster.app.store().await.unwrap();
    let mut conversations: Vec<(TenantId, ConversationId)> = Vec::new();
    for tenant in &cluster.tenants {
        for c in store.list_conversations(&tenant.id, &ConversationQuery::first(1000)).await.unwrap() {
            conversations.push((tenant.id.clone(), c.id));
        }
    }
    assert_eq!(conversations.len(), scale.tenants * scale.conversations_per_tenant, "every conversation opened");
    conversations
}

/// Creates `n` replies as `kamshub message send` does, round-robin over `conversations`; returns
/// the accepted ones' texts (`r0`, `r1`, …) with their numbers.
pub async fn create_replies(
    cluster: &Cluster,
    conversations: &[(TenantId, ConversationId)],
    n: usize,
) -> HashMap<String, usize> {
    let operator = Caller::Operator("faults".into());
    let mut created = HashMap::new();
    for i in 0..n {
        let (tenant, conversation) = &conversations[i % conversations.len()];
        let text = format!("r{i}");
        let outcome =
            kamshub::service::outbox::send_reply(&cluster.app, &operator, tenant, conversation, &text, None).await;
        if outcome.is_ok() {
            created.insert(text, i);
        }
    }
    created
}

/// Replies not yet settled (PENDING, ENQUEUED or SENDING).
pub async fn open_replies(store: &Arc<dyn kamshub::store::Store>) -> u64 {
    let mut open = 0;
    for status in [OutboxStatus::Pending, OutboxStatus::Enqueued, OutboxStatus::Sending] {
        open += store.count_outbox(status).await.unwrap();
    }
    open
}
