//! Inbound under kill -9: every webhook update delivered three times (some copies at the same
//! instant) to a daemon that is killed and restarted at random moments; what was acknowledged
//! must end up stored exactly once, in provider order.

use crate::harness::{Backend, Cluster, Proc, Report, Scale, Tenant};
use kamshub::store::ConversationQuery;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One Telegram update of the workload.
#[derive(Debug, Clone)]
pub struct Update {
    pub tenant: usize,
    pub body: serde_json::Value,
}

/// The workload: text updates over every tenant's conversations, each conversation's messages
/// dated in order. The text of update `i` is `w{i}`.
pub fn workload(scale: &Scale) -> Vec<Update> {
    workload_with(scale, |i| format!("w{i}"))
}

/// The workload with the text of update `i` from `text` (which must start with `w{i}`).
pub fn workload_with(scale: &Scale, text: impl Fn(usize) -> String) -> Vec<Update> {
    let mut updates = Vec::new();
    for m in 0..scale.messages_per_conversation {
        for t in 0..scale.tenants {
            for c in 0..scale.conversations_per_tenant {
                let i = updates.len() as i64;
                let chat = 10_000 + (t * scale.conversations_per_tenant + c) as i64;
                let body = crate::common::app::telegram_text(
                    1 + i,
                    chat,
                    1 + m as i64,
                    1_700_000_000 + m as i64,
                    &text(i as usize),
                );
                updates.push(Update { tenant: t, body });
            }
        }
    }
    updates
}

/// Deliveries of the workload: each update three times, the first copies in workload order, the
/// redeliveries later at random; a third of the updates get two of their copies at the same
/// instant. Each entry is (update index, copies sent at once).
fn deliveries(n: usize, rng: &mut impl Rng) -> Vec<(usize, usize)> {
    let mut keyed: Vec<(f64, (usize, usize))> = Vec::new();
    for i in 0..n {
        let late = |rng: &mut dyn rand::RngCore| i as f64 + rng.gen_range(1.0..(n as f64 / 4.0).max(2.0));
        if rng.gen_bool(1.0 / 3.0) {
            keyed.push((i as f64, (i, 2)));
            keyed.push((late(rng), (i, 1)));
        } else {
            keyed.push((i as f64, (i, 1)));
            keyed.push((late(rng), (i, 1)));
            keyed.push((late(rng), (i, 1)));
        }
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    keyed.into_iter().map(|(_, d)| d).collect()
}

/// Posts webhook updates to a daemon at a fixed address, counting what was acknowledged.
#[derive(Clone)]
pub struct Poster {
    http: reqwest::Client,
    base: String,
    tenants: Arc<Vec<Tenant>>,
    pub acked: Arc<Mutex<BTreeSet<usize>>>,
    pub requests: Arc<AtomicUsize>,
    /// Failed POSTs by what happened: the status, or the client's error kind.
    pub failures: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Poster {
    pub fn new(cluster: &Cluster) -> Poster {
        Poster {
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap(),
            base: cluster.base_url(),
            tenants: Arc::new(cluster.tenants.clone()),
            acked: Arc::default(),
            requests: Arc::default(),
            failures: Arc::default(),
        }
    }

    /// Posts update `i` once; true when acknowledged (200).
    pub async fn post(&self, i: usize, update: &Update) -> bool {
        let tenant = &self.tenants[update.tenant];
        self.requests.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .http
            .post(format!("{}/webhooks/telegram/{}", self.base, tenant.telegram))
            .header("X-Telegram-Bot-Api-Secret-Token", &tenant.telegram_secret)
            .json(&update.body)
            .send()
            .await;
        let failure = match &answer {
            Ok(r) if r.status() == 200 => None,
            Ok(r) => Some(format!("status {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timeout".to_owned()),
            Err(e) if e.is_connect() => Some("connect".to_owned()),
            Err(_) => Some("other".to_owned()),
        };
        let ok = failure.is_none();
        if let Some(failure) = failure {
            *self.failures.lock().unwrap().entry(failure).or_default() += 1;
        }
        if ok {
            self.acked.lock().unwrap().insert(i);
        } else {
            // As a provider does: back off a little before the next attempt.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ok
    }

    /// Sends `deliveries` with `concurrency` posters.
    pub async fn post_all(&self, updates: &Arc<Vec<Update>>, deliveries: Vec<(usize, usize)>, concurrency: usize) {
        let next = Arc::new(AtomicUsize::new(0));
        let deliveries = Arc::new(deliveries);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (me, next, deliveries, updates) =
                    (self.clone(), Arc::clone(&next), Arc::clone(&deliveries), Arc::clone(updates));
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(i, copies)) = deliveries.get(n) else { break };
                        let posts = (0..copies).map(|_| me.post(i, &updates[i]));
                        futures::future::join_all(posts).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }

    /// Re-posts every update not yet acknowledged until it is, as a provider retries.
    pub async fn retry_unacknowledged(&self, updates: &Arc<Vec<Update>>, concurrency: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let missing: Vec<(usize, usize)> = {
                let acked = self.acked.lock().unwrap();
                (0..updates.len()).filter(|i| !acked.contains(i)).map(|i| (i, 1)).collect()
            };
            if missing.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "{} updates still unacknowledged after 120 s", missing.len());
            self.post_all(updates, missing, concurrency).await;
        }
    }
}

/// Kills `roles` with SIGKILL each time an order arrives and restarts it at once (waiting for
/// `/readyz` when it serves HTTP), until the orders end; returns the last process (running) and
/// the number of kills.
pub fn spawn_killer(
    cluster: Arc<Cluster>,
    roles: &'static str,
    mut proc: Proc,
    http: bool,
    mut orders: tokio::sync::mpsc::UnboundedReceiver<()>,
) -> tokio::task::JoinHandle<(Proc, usize)> {
    tokio::spawn(async move {
        let mut kills = 0;
        while orders.recv().await.is_some() {
            proc.assert_running();
            proc.kill9();
            kills += 1;
            proc = cluster.start(roles);
            if http {
                cluster.wait_ready(&mut proc).await;
            }
        }
        (proc, kills)
    })
}

/// Orders a kill each time `progress` passes one of `points`, then once more `after_ms` later
/// (so the apply side is killed with a backlog, not only intake); the orders end after that.
pub fn kill_at_progress(
    progress: Arc<AtomicUsize>,
    mut points: Vec<usize>,
    after_ms: u64,
    orders: tokio::sync::mpsc::UnboundedSender<()>,
) -> tokio::task::JoinHandle<()> {
    points.sort_unstable();
    tokio::spawn(async move {
        for point in points {
            while progress.load(Ordering::Relaxed) < point {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let _ = orders.send(());
        }
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        let _ = orders.send(());
    })
}

/// What the store holds for the workload.
pub struct Stored {
    /// Update index → copies stored.
    pub copies: BTreeMap<usize, usize>,
    /// Messages whose text names no update of the workload.
    pub unexpected: usize,
    /// Adjacent pairs of a conversation listed against provider order.
    pub order_violations: usize,
}

impl Stored {
    /// Fills `report`'s inbound counts: what was posted and acknowledged against what the store
    /// holds.
    pub fn count_into(&self, report: &mut Report, attempted: usize, poster: &Poster, acked: &BTreeSet<usize>) {
        report.attempted = attempted;
        report.requests = poster.requests.load(Ordering::Relaxed);
        report.acknowledged = acked.len();
        report.stored = self.copies.len();
        report.lost = acked.iter().filter(|i| !self.copies.contains_key(i)).count();
        report.duplicated = self.copies.values().map(|n| n - 1).sum();
        report.unexpected = self.unexpected;
        report.order_violations = self.order_violations;
    }
}

/// Reads every tenant's conversations and messages.
pub async fn read_store(cluster: &Cluster, total: usize) -> Stored {
    let store = cluster.app.store().await.unwrap();
    let mut stored = Stored { copies: BTreeMap::new(), unexpected: 0, order_violations: 0 };
    for tenant in &cluster.tenants {
        let conversations = store.list_conversations(&tenant.id, &ConversationQuery::first(1000)).await.unwrap();
        for c in conversations {
            let messages = crate::common::messages_oldest_first(&*store, &tenant.id, &c.id, 100_000).await;
            let mut previous = None;
            for m in messages {
                let text = m.text.unwrap_or_default();
                let token = text.split_whitespace().next().unwrap_or_default();
                match token.strip_prefix('w').and_then(|n| n.parse::<usize>().ok()).filter(|&i| i < total) {
                    Some(i) => {
                        *stored.copies.entry(i).or_default() += 1;
                        if previous.is_some_and(|p| p > i) {
                            stored.order_violations += 1;
                        }
                        previous = Some(i);
                    }
                    None => stored.unexpected += 1,
                }
            }
        }
    }
    stored
}

/// Waits until every acknowledged update is stored, or until the store stops making progress
/// for `patience`; returns the last reading.
pub async fn await_stored(cluster: &Cluster, acked: &BTreeSet<usize>, total: usize, patience: Duration) -> Stored {
    let mut progress_at = Instant::now();
    let mut last_count = 0;
    loop {
        let stored = read_store(cluster, total).await;
        if acked.iter().all(|i| stored.copies.contains_key(i)) {
            return stored;
        }
        if stored.copies.len() > last_count {
            last_count = stored.copies.len();
            progress_at = Instant::now();
        }
        if progress_at.elapsed() > patience {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Counts what sits in a queue's DLQ.
pub async fn dlq_depth(cluster: &Cluster, name: kamshub::queue::QueueName) -> usize {
    let queue = cluster.app.queue().await.unwrap();
    let depth = queue.depth(name).await.unwrap();
    (depth.visible + depth.in_flight) as usize
}

const ALL_ROLES: &str = "http,processor,relay,sender";

/// The scenario: the whole daemon (all roles) killed and restarted while the workload's
/// deliveries arrive.
pub async fn kill9_daemon(backend: Backend, scale: Scale) -> Option<Report> {
    let started = Instant::now();
    let cluster = Arc::new(Cluster::new(backend, scale.tenants, "http://127.0.0.1:9", "").await?);
    let mut report = Report::new("webhooks-kill9-daemon", backend, &scale);
    let updates = Arc::new(workload(&scale));
    let seed = rand::random::<u64>();
    report.other.insert("seed".into(), seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut plan = deliveries(updates.len(), &mut rng);
    // A sprinkle of disorder among the first copies too: providers do not promise order across chats.
    plan.chunks_mut(8).for_each(|c| c.shuffle(&mut rng));

    let mut first = cluster.start(ALL_ROLES);
    cluster.wait_ready(&mut first).await;
    let poster = Poster::new(&cluster);
    let (orders, ordered) = tokio::sync::mpsc::unbounded_channel();
    let killer = spawn_killer(Arc::clone(&cluster), ALL_ROLES, first, true, ordered);
    let points = (0..scale.kills).map(|_| rng.gen_range(0..plan.len())).collect();
    let trigger = kill_at_progress(Arc::clone(&poster.requests), points, rng.gen_range(0..500), orders);
    poster.post_all(&updates, plan, scale.posters).await;
    trigger.await.unwrap();
    let (mut daemon, kills) = killer.await.unwrap();
    cluster.wait_ready(&mut daemon).await;
    poster.retry_unacknowledged(&updates, scale.posters).await;

    report.other.insert("ackedAtMs".into(), started.elapsed().as_millis() as u64);
    let acked = poster.acked.lock().unwrap().clone();
    let stored = await_stored(&cluster, &acked, updates.len(), Duration::from_secs(60)).await;
    report.other.insert("storedAtMs".into(), started.elapsed().as_millis() as u64);
    stored.count_into(&mut report, updates.len(), &poster, &acked);
    report.kills = kills;
    report.dead_lettered = dlq_depth(&cluster, kamshub::queue::QueueName::IncomingDlq).await;
    // No drain at the end: on SQS it waits out a 20 s long poll, and the figures are in.
    daemon.kill9();
    report.seconds = started.elapsed().as_secs_f64();
    report.publish();
    Some(report)
}
