//! The `Queue` port contract, run against every adapter: SQLite always, SQS (moto) when
//! `KAMSHUB_TEST_AWS_ENDPOINT` is set (required under `KAMSHUB_REQUIRE_SERVICES=1`). Also the
//! embedded queue's durability, `kamshub queues init`, and an ignored send-throughput benchmark.

mod common;

use common::queues::Faulty;
use kamshub::config::{QueueKind, QueueSettings};
use kamshub::pipeline::LoopStats;
use kamshub::pipeline::lease::Leases;
use kamshub::queue::sqlite::SqliteQueue;
use kamshub::queue::sqs::{InitStatus, SqsQueue};
use kamshub::queue::{Depth, OutgoingMessage, Queue, QueueError, QueueName, ReceivedMessage};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use QueueName::{Deliveries, DeliveriesDlq, Incoming, IncomingDlq, Send, SendDlq};

/// Short, so redelivery tests are quick; tests that must not see a redelivery extend it.
const VISIBILITY: Duration = Duration::from_secs(2);
/// Receives before a message moves to its DLQ.
const MAX_RECEIVES: u32 = 2;
/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(15);

/// A queue under test, with whatever keeps it alive (a temp dir).
struct Fixture {
    queue: Arc<dyn Queue>,
    /// Whether the adapter keeps a group's order even after redelivery (the embedded queue does;
    /// moto may not, see docs/dev/stand-ins.md).
    strict_order: bool,
    /// Whether the adapter refuses a superseded receipt (the embedded queue does; SQS only
    /// promises the call succeeds).
    strict_receipts: bool,
    /// Whether a deduplication id outlives its deleted message (SQS promises it; moto forgets it).
    dedupe_outlives_delete: bool,
    /// Requests the adapter has made so far, where it counts them (SQS).
    requests: Option<Box<dyn Fn() -> u64>>,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let queue = SqliteQueue::open(&dir.path().join("queues.sqlite3"), MAX_RECEIVES, VISIBILITY).unwrap();
    Some(Fixture {
        queue: Arc::new(queue),
        strict_order: true,
        strict_receipts: true,
        dedupe_outlives_delete: true,
        requests: None,
        _dir: Some(dir),
    })
}

async fn sqs() -> Option<Fixture> {
    let queue = Arc::new(SqsQueue::connect(&sqs_settings(&common::aws_endpoint()?)).await.unwrap());
    queue.init().await.unwrap();
    let counted = Arc::clone(&queue);
    Some(Fixture {
        queue,
        strict_order: false,
        strict_receipts: false,
        dedupe_outlives_delete: false,
        requests: Some(Box::new(move || counted.request_count())),
        _dir: None,
    })
}

/// Settings for a fresh set of four queues on the stand-in.
fn sqs_settings(endpoint: &str) -> QueueSettings {
    QueueSettings {
        kind: QueueKind::Sqs,
        prefix: common::unique_name("q").replace('_', "-"),
        region: "us-east-2".into(),
        endpoint_url: Some(endpoint.to_owned()),
        max_receive_count: MAX_RECEIVES,
        visibility_timeout_secs: VISIBILITY.as_secs() as u32,
    }
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::$case(super::sqlite().await.unwrap()).await })*
        }
        mod sqs {
            $(#[tokio::test] async fn $case() {
                let Some(fixture) = super::sqs().await else { return };
                super::$case(fixture).await
            })*
        }
    };
}

contract!(
    a_message_goes_round_trip_and_queues_are_separate,
    a_dedupe_id_suppresses_repeats_even_after_delete,
    groups_keep_their_order_across_interleaved_batches,
    an_in_flight_message_blocks_its_group_only,
    an_expired_delivery_comes_back_counted,
    zero_visibility_releases_at_once,
    a_heartbeat_prevents_redelivery,
    a_batch_extension_keeps_every_message_invisible,
    a_batch_extension_fails_stale_receipts_and_extends_the_rest,
    a_heartbeat_round_extends_a_held_batch_in_one_call,
    too_many_receives_move_a_message_to_its_dlq,
    dead_letter_moves_a_message_now,
    a_superseded_receipt_cannot_touch_the_redelivery,
    depth_counts_waiting_and_in_flight,
    a_waiting_receive_answers_as_soon_as_a_message_arrives,
    limits_are_refused_before_sending,
    a_peek_shows_dlq_messages_in_order_and_takes_nothing,
    a_peek_refuses_source_queues,
);

fn msg(group: &str, dedupe: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage { group_id: group.into(), dedupe_id: dedupe.into(), body: body.into() }
}

fn bodies(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// Receives until `want` messages came (or `PATIENCE` ran out), leaving them in flight.
async fn receive_n(queue: &dyn Queue, name: QueueName, want: usize) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(queue.receive(name, (want - got.len()).min(10), Duration::from_secs(1)).await.unwrap());
    }
    assert_eq!(got.len(), want, "expected {want} messages, got {:?}", bodies(&got));
    got
}

/// Receives once more and expects nothing.
async fn assert_nothing_to_receive(queue: &dyn Queue, name: QueueName) {
    let got = queue.receive(name, 10, Duration::from_secs(1)).await.unwrap();
    assert!(got.is_empty(), "expected nothing, got {:?}", bodies(&got));
}

async fn a_message_goes_round_trip_and_queues_are_separate(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g1", "d1", r#"{"hello":"world"}"#)]).await.unwrap();
    q.send(Send, &[msg("g1", "d1", "for the sender")]).await.unwrap();
    let got = receive_n(q, Incoming, 1).await;
    let m = &got[0];
    assert_eq!((m.group_id.as_str(), m.body.as_str(), m.receive_count), ("g1", r#"{"hello":"world"}"#, 1));
    assert!(!m.message_id.is_empty() && !m.receipt.0.is_empty());
    q.delete(Incoming, std::slice::from_ref(&m.receipt)).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
    assert_nothing_to_receive(q, Incoming).await;
    assert_eq!(bodies(&receive_n(q, Send, 1).await), vec!["for the sender"]);
    for dlq in [IncomingDlq, SendDlq] {
        assert_eq!(q.depth(dlq).await.unwrap(), Depth::default());
    }
}

async fn a_dedupe_id_suppresses_repeats_even_after_delete(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "same", "first"), msg("g", "same", "twin in the batch")]).await.unwrap();
    q.send(Incoming, &[msg("g", "same", "again")]).await.unwrap();
    let got = receive_n(q, Incoming, 1).await;
    assert_eq!(bodies(&got), vec!["first"]);
    q.delete(Incoming, &[got[0].receipt.clone()]).await.unwrap();
    if f.dedupe_outlives_delete {
        // Accepted, not enqueued: the id is remembered after the delete.
        q.send(Incoming, &[msg("g", "same", "after delete")]).await.unwrap();
        assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
        assert_nothing_to_receive(q, Incoming).await;
    }
    // The window is per queue.
    q.send(Send, &[msg("g", "same", "other queue")]).await.unwrap();
    assert_eq!(bodies(&receive_n(q, Send, 1).await), vec!["other queue"]);
}

async fn groups_keep_their_order_across_interleaved_batches(f: Fixture) {
    let q = f.queue.as_ref();
    let groups = ["a", "b", "c"];
    let all: Vec<OutgoingMessage> =
        (0..50).map(|i| msg(groups[i % 3], &format!("d{i}"), &format!("{}-{i}", groups[i % 3]))).collect();
    // Uneven calls; the middle one is more than one SQS batch.
    for part in [&all[..1], &all[1..24], &all[24..]] {
        q.send(Incoming, part).await.unwrap();
    }
    let mut per_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE * 2;
    let mut received = 0;
    while received < all.len() && Instant::now() < deadline {
        let batch = q.receive(Incoming, 10, Duration::from_secs(1)).await.unwrap();
        // Within one receive, each group's messages come in order.
        let mut last_in_batch: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &batch {
            let i: usize = m.body.split_once('-').unwrap().1.parse().unwrap();
            assert_eq!(m.group_id, groups[i % 3]);
            if let Some(prev) = last_in_batch.insert(m.group_id.as_str(), i) {
                assert!(prev < i, "group {} out of order in one receive: {:?}", m.group_id, bodies(&batch));
            }
            per_group.entry(m.group_id.clone()).or_default().push(i);
        }
        received += batch.len();
        let receipts: Vec<_> = batch.iter().map(|m| m.receipt.clone()).collect();
        q.delete(Incoming, &receipts).await.unwrap();
    }
    let mut everything: Vec<usize> = per_group.values().flatten().copied().collect();
    everything.sort_unstable();
    assert_eq!(everything, (0..50).collect::<Vec<_>>(), "every message exactly once");
    if f.strict_order {
        for (group, seen) in &per_group {
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "group {group} out of order: {seen:?}");
        }
    }
}

async fn an_in_flight_message_blocks_its_group_only(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g1", "a1", "a1"), msg("g1", "a2", "a2")]).await.unwrap();
    let first = q.receive(Incoming, 1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(bodies(&first), vec!["a1"]);
    // Keep a1 in flight for the whole test, whatever the pace of the backend.
    q.set_visibility(Incoming, &first[0].receipt, Duration::from_secs(60)).await.unwrap();
    q.send(Incoming, &[msg("g2", "b1", "b1")]).await.unwrap();
    assert_eq!(bodies(&receive_n(q, Incoming, 1).await), vec!["b1"]);
    assert_nothing_to_receive(q, Incoming).await;
    q.delete(Incoming, &[first[0].receipt.clone()]).await.unwrap();
    assert_eq!(bodies(&receive_n(q, Incoming, 1).await), vec!["a2"]);
}

async fn an_expired_delivery_comes_back_counted(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "d", "slow work")]).await.unwrap();
    let first = receive_n(q, Incoming, 1).await.remove(0);
    let received_at = Instant::now();
    let again = receive_n(q, Incoming, 1).await.remove(0);
    assert!(received_at.elapsed() >= VISIBILITY / 2, "redelivered after {:?}", received_at.elapsed());
    assert_eq!((again.message_id.as_str(), again.receive_count), (first.message_id.as_str(), 2));
    assert_ne!(again.receipt, first.receipt, "each delivery has its own receipt");
}

async fn zero_visibility_releases_at_once(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "d", "try later")]).await.unwrap();
    let first = receive_n(q, Incoming, 1).await.remove(0);
    let released_at = Instant::now();
    q.set_visibility(Incoming, &first.receipt, Duration::ZERO).await.unwrap();
    let again = receive_n(q, Incoming, 1).await.remove(0);
    assert!(released_at.elapsed() < VISIBILITY, "came back only after {:?}", released_at.elapsed());
    assert_eq!((again.message_id.as_str(), again.receive_count), (first.message_id.as_str(), 2));
}

async fn a_heartbeat_prevents_redelivery(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "d", "long work")]).await.unwrap();
    let m = receive_n(q, Incoming, 1).await.remove(0);
    q.set_visibility(Incoming, &m.receipt, VISIBILITY * 4).await.unwrap();
    let past_first_timeout = Instant::now() + VISIBILITY + Duration::from_secs(1);
    while Instant::now() < past_first_timeout {
        assert_nothing_to_receive(q, Incoming).await;
    }
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 0, in_flight: 1 });
    q.delete(Incoming, &[m.receipt]).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
}

/// `n` messages, each in a group of its own (so all can be received at once).
fn one_per_group(n: usize) -> Vec<OutgoingMessage> {
    (0..n).map(|i| msg(&format!("g{i}"), &i.to_string(), &format!("m{i}"))).collect()
}

/// Receives nothing until `until`.
async fn assert_nothing_to_receive_until(q: &dyn Queue, name: QueueName, until: Instant) {
    while Instant::now() < until {
        assert_nothing_to_receive(q, name).await;
    }
}

/// 12 receipts: more than one SQS batch (two `ChangeMessageVisibilityBatch` requests).
async fn a_batch_extension_keeps_every_message_invisible(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &one_per_group(12)).await.unwrap();
    let held = receive_n(q, Incoming, 12).await;
    let received_at = Instant::now();
    let receipts: Vec<_> = held.iter().map(|m| m.receipt.clone()).collect();
    let requests = f.requests.as_ref().map(|count| count());
    let answers = q.set_visibility_batch(Incoming, &receipts, VISIBILITY * 4).await.unwrap();
    if let (Some(count), Some(before)) = (&f.requests, requests) {
        assert_eq!(count() - before, 2, "12 receipts take two requests of 10 at most");
    }
    assert_eq!(answers.len(), 12, "{answers:?}");
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_nothing_to_receive_until(q, Incoming, received_at + VISIBILITY + Duration::from_secs(1)).await;
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 0, in_flight: 12 });
    q.delete(Incoming, &receipts).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
    assert!(q.set_visibility_batch(Incoming, &[], VISIBILITY).await.unwrap().is_empty());
}

/// A deleted delivery's receipt fails (both adapters refuse it), and so does a superseded one
/// where the adapter refuses those (embedded; SQS only promises the call succeeds): the batch's
/// other receipts are extended all the same.
async fn a_batch_extension_fails_stale_receipts_and_extends_the_rest(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &one_per_group(3)).await.unwrap();
    let held = receive_n(q, Incoming, 3).await;
    q.delete(Incoming, std::slice::from_ref(&held[1].receipt)).await.unwrap();
    let mut receipts: Vec<_> = held.iter().map(|m| m.receipt.clone()).collect();
    let mut stale = vec![false, true, false];
    if f.strict_receipts {
        q.send(Incoming, &[msg("again", "again", "twice")]).await.unwrap();
        let first = receive_n(q, Incoming, 1).await.remove(0);
        q.set_visibility(Incoming, &first.receipt, Duration::ZERO).await.unwrap();
        let second = receive_n(q, Incoming, 1).await.remove(0);
        receipts.extend([first.receipt, second.receipt]);
        stale.extend([true, false]);
    }
    let received_at = Instant::now();
    let answers = q.set_visibility_batch(Incoming, &receipts, VISIBILITY * 4).await.unwrap();
    assert_eq!(answers.len(), receipts.len(), "{answers:?}");
    for (answer, stale) in answers.iter().zip(&stale) {
        if *stale {
            assert!(matches!(answer, Err(QueueError::StaleReceipt)), "{answers:?}");
        } else {
            assert!(answer.is_ok(), "{answers:?}");
        }
    }
    assert_nothing_to_receive_until(q, Incoming, received_at + VISIBILITY + Duration::from_secs(1)).await;
    let valid: Vec<_> = receipts.iter().zip(&stale).filter(|(_, stale)| !**stale).map(|(r, _)| r.clone()).collect();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 0, in_flight: valid.len() as u64 });
    q.delete(Incoming, &valid).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
}

/// The heartbeat (`Leases`) extends a held batch of 10 with one call per round (one request on
/// SQS), never one per message, and keeps it past its first timeout without a lapse or failure.
/// The batch is held for 6 s rather than the queue's 2 s: a heartbeat round every 2 s leaves a
/// moto slowed by a whole test run time to answer (docs/dev/stand-ins.md).
async fn a_heartbeat_round_extends_a_held_batch_in_one_call(f: Fixture) {
    const HOLD: Duration = Duration::from_secs(6);
    let counting = Faulty::counting(Arc::clone(&f.queue));
    let q: Arc<dyn Queue> = counting.clone();
    q.send(Incoming, &one_per_group(10)).await.unwrap();
    let held = receive_n(q.as_ref(), Incoming, 10).await;
    let receipts: Vec<_> = held.iter().map(|m| m.receipt.clone()).collect();
    let held_at = Instant::now();
    let answers = f.queue.set_visibility_batch(Incoming, &receipts, HOLD).await.unwrap();
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let stats = Arc::new(LoopStats::default());
    let leases = Arc::new(Leases::new(Arc::clone(&q), Incoming, HOLD, Arc::clone(&stats), receipts.clone()));
    let requests = f.requests.as_ref().map(|count| count());
    let heartbeat = leases.heartbeat();
    assert_nothing_to_receive_until(q.as_ref(), Incoming, held_at + HOLD + Duration::from_secs(1)).await;
    drop(heartbeat);
    let rounds = counting.batches.load(Ordering::SeqCst);
    assert!(rounds >= 2, "{rounds} heartbeat rounds in {:?}", HOLD + Duration::from_secs(1));
    assert_eq!(counting.batched.load(Ordering::SeqCst), 10 * rounds, "each round extends the whole batch");
    assert_eq!(counting.single.load(Ordering::SeqCst), 0, "no message is extended on its own");
    if let (Some(count), Some(before)) = (&f.requests, requests) {
        // Besides the rounds: the receives of assert_nothing_to_receive_until, 1 s each at least.
        let others = count() - before - rounds;
        assert!(others <= 8, "{rounds} rounds and {others} other requests");
    }
    for receipt in &receipts {
        leases.end(receipt).await;
    }
    assert_eq!(stats.visibility_lapses.load(Ordering::SeqCst), 0);
    assert_eq!(stats.extend_failures.load(Ordering::SeqCst), 0);
    q.delete(Incoming, &receipts).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
}

async fn too_many_receives_move_a_message_to_its_dlq(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g1", "p", "poison"), msg("g1", "n", "next in group")]).await.unwrap();
    for count in 1..=MAX_RECEIVES {
        let m = q.receive(Incoming, 1, Duration::from_secs(5)).await.unwrap().remove(0);
        assert_eq!((m.body.as_str(), m.receive_count), ("poison", count));
        q.set_visibility(Incoming, &m.receipt, Duration::ZERO).await.unwrap();
    }
    q.send(Incoming, &[msg("g2", "o", "other group")]).await.unwrap();
    // The next receive moves it instead; the rest of its group and other groups flow on.
    let mut flowing: Vec<String> = receive_n(q, Incoming, 2).await.into_iter().map(|m| m.body).collect();
    flowing.sort();
    assert_eq!(flowing, vec!["next in group", "other group"]);
    let dead = receive_n(q, IncomingDlq, 1).await.remove(0);
    assert_eq!((dead.group_id.as_str(), dead.body.as_str()), ("g1", "poison"));
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 0, in_flight: 2 });
    assert_eq!(q.depth(SendDlq).await.unwrap(), Depth::default());
}

async fn dead_letter_moves_a_message_now(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Send, &[msg("conv", "s1", "unparseable"), msg("conv", "s2", "fine")]).await.unwrap();
    let bad = q.receive(Send, 1, Duration::from_secs(5)).await.unwrap().remove(0);
    assert_eq!(bad.body, "unparseable");
    q.dead_letter(Send, &bad).await.unwrap();
    // Gone from the source at once, so its group moves on.
    assert_eq!(bodies(&receive_n(q, Send, 1).await), vec!["fine"]);
    let dead = receive_n(q, SendDlq, 1).await.remove(0);
    assert_eq!((dead.group_id.as_str(), dead.body.as_str()), ("conv", "unparseable"));
    let err = q.dead_letter(SendDlq, &dead).await.unwrap_err();
    assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
    assert_eq!(q.depth(IncomingDlq).await.unwrap(), Depth::default());
}

/// Moves `bodies` (in one group each as given) from `Incoming` to its DLQ, in order.
async fn dead_letter_all(q: &dyn Queue, messages: &[(&str, &str)]) {
    let outgoing: Vec<_> = messages.iter().map(|(group, body)| msg(group, body, body)).collect();
    q.send(Incoming, &outgoing).await.unwrap();
    for _ in messages {
        let m = receive_n(q, Incoming, 1).await.remove(0);
        q.dead_letter(Incoming, &m).await.unwrap();
    }
}

async fn a_peek_shows_dlq_messages_in_order_and_takes_nothing(f: Fixture) {
    let q = f.queue.as_ref();
    let before = now_ms();
    dead_letter_all(q, &[("g1", "a1"), ("g2", "b1"), ("g1", "a2"), ("g1", "a3"), ("g2", "b2")]).await;
    let after = now_ms();

    let first = q.peek(IncomingDlq, 100).await.unwrap();
    let per_group = |peeked: &[kamshub::queue::PeekedMessage], group: &str| -> Vec<String> {
        peeked.iter().filter(|m| m.group_id == group).map(|m| m.body.clone()).collect()
    };
    assert_eq!(first.len(), 5);
    assert_eq!(per_group(&first, "g1"), vec!["a1", "a2", "a3"], "each group in order");
    assert_eq!(per_group(&first, "g2"), vec!["b1", "b2"]);
    assert!(first.iter().all(|m| (before - 1000..=after + 1000).contains(&m.sent_at_ms)), "{first:?}");
    assert_eq!(q.peek(IncomingDlq, 2).await.unwrap().len(), 2, "at most `max`");

    // Nothing was taken: a second peek sees the same, and a consumer gets every message at once.
    let second = q.peek(IncomingDlq, 100).await.unwrap();
    assert_eq!(
        second.iter().map(|m| &m.message_id).collect::<Vec<_>>(),
        first.iter().map(|m| &m.message_id).collect::<Vec<_>>()
    );
    assert_eq!(q.depth(IncomingDlq).await.unwrap().visible, 5);
    let all = receive_n(q, IncomingDlq, 5).await;
    let mut got: Vec<&str> = bodies(&all);
    got.sort();
    assert_eq!(got, vec!["a1", "a2", "a3", "b1", "b2"]);
    if let Some(oldest) = q.oldest_sent_at(IncomingDlq).await.unwrap() {
        assert!((before - 1000..=after + 1000).contains(&oldest));
    }
    assert!(q.peek(SendDlq, 10).await.unwrap().is_empty());
}

async fn a_peek_refuses_source_queues(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "d", "live")]).await.unwrap();
    for source in [Incoming, Send] {
        let err = q.peek(source, 10).await.unwrap_err();
        assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
    }
    assert_eq!(bodies(&receive_n(q, Incoming, 1).await), vec!["live"], "the message was not touched");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn a_superseded_receipt_cannot_touch_the_redelivery(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "d", "twice")]).await.unwrap();
    let first = receive_n(q, Incoming, 1).await.remove(0);
    q.set_visibility(Incoming, &first.receipt, Duration::ZERO).await.unwrap();
    let second = receive_n(q, Incoming, 1).await.remove(0);
    assert_ne!(first.receipt, second.receipt);
    // SQS accepts an old receipt on delete ("succeeds, but the message might not be deleted").
    q.delete(Incoming, std::slice::from_ref(&first.receipt)).await.unwrap();
    if f.strict_receipts {
        assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 0, in_flight: 1 });
        let err = q.set_visibility(Incoming, &first.receipt, Duration::from_secs(30)).await.unwrap_err();
        assert!(matches!(err, QueueError::StaleReceipt), "{err:?}");
        let err = q.dead_letter(Incoming, &first).await.unwrap_err();
        assert!(matches!(err, QueueError::StaleReceipt), "{err:?}");
    }
    q.delete(Incoming, std::slice::from_ref(&second.receipt)).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default());
    // A deleted delivery cannot be extended (both adapters refuse it).
    let err = q.set_visibility(Incoming, &second.receipt, Duration::from_secs(30)).await.unwrap_err();
    assert!(matches!(err, QueueError::StaleReceipt), "{err:?}");
}

async fn depth_counts_waiting_and_in_flight(f: Fixture) {
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("a", "1", "a1"), msg("b", "2", "b1"), msg("c", "3", "c1")]).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 3, in_flight: 0 });
    let got = receive_n(q, Incoming, 2).await;
    for m in &got {
        q.set_visibility(Incoming, &m.receipt, Duration::from_secs(60)).await.unwrap();
    }
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 1, in_flight: 2 });
    q.delete(Incoming, &[got[0].receipt.clone()]).await.unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 1, in_flight: 1 });
}

async fn a_waiting_receive_answers_as_soon_as_a_message_arrives(f: Fixture) {
    let wait = Duration::from_secs(20);
    let receiver = {
        let q = Arc::clone(&f.queue);
        tokio::spawn(async move {
            let got = q.receive(Incoming, 10, wait).await.unwrap();
            (got, Instant::now())
        })
    };
    // Whether or not the receiver is waiting yet, it must get the message well before `wait`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.queue.send(Incoming, &[msg("g", "d", "wake up")]).await.unwrap();
    let sent_at = Instant::now();
    let (got, received_at) = tokio::time::timeout(wait, receiver).await.expect("receive returned").unwrap();
    assert_eq!(bodies(&got), vec!["wake up"]);
    let latency = received_at.saturating_duration_since(sent_at);
    assert!(latency < Duration::from_secs(5), "answered {latency:?} after the send");
}

async fn limits_are_refused_before_sending(f: Fixture) {
    let q = f.queue.as_ref();
    for bad in [
        msg(&"g".repeat(129), "d", "x"),
        msg("g", "", "x"),
        msg("has space", "d", "x"),
        msg("g", "d", ""),
        msg("g", "d", &"x".repeat(1_048_577)),
    ] {
        let err = q.send(Incoming, &[msg("g", "fine", "x"), bad]).await.unwrap_err();
        assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
    }
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth::default(), "nothing of a refused call is sent");
    for (max, wait) in [(0, Duration::ZERO), (q.max_receive() + 1, Duration::ZERO), (1, Duration::from_secs(21))] {
        let err = q.receive(Incoming, max, wait).await.unwrap_err();
        assert!(matches!(err, QueueError::Invalid(_)), "{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Embedded only.

/// Strict order also holds after a redelivery: the released head comes back before the rest.
#[tokio::test]
async fn embedded_redelivery_keeps_the_group_order() {
    let f = sqlite().await.unwrap();
    let q = f.queue.as_ref();
    q.send(Incoming, &[msg("g", "1", "m1"), msg("g", "2", "m2"), msg("g", "3", "m3")]).await.unwrap();
    let got = q.receive(Incoming, 2, Duration::ZERO).await.unwrap();
    assert_eq!(bodies(&got), vec!["m1", "m2"]);
    q.set_visibility(Incoming, &got[0].receipt, Duration::ZERO).await.unwrap();
    // m2 is still in flight, so the group stays blocked until it expires.
    assert_nothing_to_receive(q, Incoming).await;
    let again = receive_n(q, Incoming, 3).await;
    assert_eq!(bodies(&again), vec!["m1", "m2", "m3"]);
    assert_eq!(again.iter().map(|m| m.receive_count).collect::<Vec<_>>(), vec![2, 2, 1]);
}

/// An acknowledged send survives closing the file; in-flight messages come back after their
/// timeout when the file is opened again.
#[tokio::test]
async fn embedded_messages_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.sqlite3");
    let in_flight = {
        let q = SqliteQueue::open(&path, MAX_RECEIVES, VISIBILITY).unwrap();
        q.send(Incoming, &[msg("a", "1", "in flight"), msg("b", "2", "waiting")]).await.unwrap();
        let got = q.receive(Incoming, 1, Duration::ZERO).await.unwrap();
        assert_eq!(bodies(&got), vec!["in flight"]);
        got.into_iter().next().unwrap()
    };
    let q = SqliteQueue::open(&path, MAX_RECEIVES, VISIBILITY).unwrap();
    assert_eq!(q.depth(Incoming).await.unwrap(), Depth { visible: 1, in_flight: 1 });
    // The dedupe window survives too.
    q.send(Incoming, &[msg("b", "2", "waiting, again")]).await.unwrap();
    assert_eq!(bodies(&receive_n(&q, Incoming, 1).await), vec!["waiting"]);
    let back = receive_n(&q, Incoming, 1).await.remove(0);
    assert_eq!((back.message_id, back.body.as_str(), back.receive_count), (in_flight.message_id, "in flight", 2));
}

/// Many concurrent single-message senders all land, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_concurrent_senders_all_land() {
    let f = sqlite().await.unwrap();
    let senders = (0..50).map(|t| {
        let q = Arc::clone(&f.queue);
        tokio::spawn(async move {
            for i in 0..10 {
                q.send(Incoming, &[msg(&format!("g{t}"), &format!("{t}-{i}"), &format!("{t}-{i}"))]).await.unwrap();
            }
        })
    });
    for s in futures::future::join_all(senders).await {
        s.unwrap();
    }
    assert_eq!(f.queue.depth(Incoming).await.unwrap(), Depth { visible: 500, in_flight: 0 });
}

/// Run with `cargo test --release --test queue_contract -- --ignored --nocapture`; prints the
/// figure, asserts nothing about timing.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark"]
async fn embedded_send_throughput() {
    let (tasks, per_task) = (200, 100);
    let f = sqlite().await.unwrap();
    let started = Instant::now();
    let senders = (0..tasks).map(|t| {
        let q = Arc::clone(&f.queue);
        tokio::spawn(async move {
            for i in 0..per_task {
                let m = msg(&format!("tenant:chan:{}", t % 50), &format!("{t}-{i}"), &format!(r#"{{"v":1,"n":{i}}}"#));
                q.send(Incoming, &[m]).await.unwrap();
            }
        })
    });
    for s in futures::future::join_all(senders).await {
        s.unwrap();
    }
    let elapsed = started.elapsed();
    let total = tasks * per_task;
    println!(
        "embedded send: {total} single-message sends from {tasks} tasks in {elapsed:?} = {:.0} msg/s",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(f.queue.depth(Incoming).await.unwrap().visible, total as u64);
}

// ---------------------------------------------------------------------------------------------
// SQS only: init and the CLI.

#[tokio::test]
async fn sqs_init_is_idempotent_and_sets_the_redrive_policy() {
    let Some(endpoint) = common::aws_endpoint() else { return };
    let mut settings = sqs_settings(&endpoint);
    let queues = SqsQueue::connect(&settings).await.unwrap();
    let err = queues.depth(Incoming).await.unwrap_err();
    assert!(matches!(err, QueueError::Missing(ref name) if name.ends_with("-incoming.fifo")), "{err:?}");

    let first = queues.init().await.unwrap();
    let order: Vec<QueueName> = first.iter().map(|q| q.queue).collect();
    assert_eq!(
        order,
        vec![IncomingDlq, Incoming, SendDlq, Send, DeliveriesDlq, Deliveries],
        "each DLQ before its source"
    );
    assert!(first.iter().all(|q| q.status == InitStatus::Created), "{first:?}");
    assert!(first.iter().all(|q| q.name == q.queue.full_name(&settings.prefix) && q.url.ends_with(&q.name)));
    let again = queues.init().await.unwrap();
    assert!(again.iter().all(|q| q.status == InitStatus::Exists), "{again:?}");
    assert_eq!(again.iter().map(|q| &q.url).collect::<Vec<_>>(), first.iter().map(|q| &q.url).collect::<Vec<_>>());

    let sqs = raw_client(&endpoint).await;
    let attributes = source_attributes(&sqs, &first[1].url).await;
    assert_eq!(attributes.0["maxReceiveCount"].to_string().trim_matches('"'), MAX_RECEIVES.to_string());
    assert!(attributes.0["deadLetterTargetArn"].as_str().unwrap().ends_with(&first[0].name), "{:?}", attributes.0);
    assert_eq!(attributes.1, VISIBILITY.as_secs().to_string());

    // A changed redrive count updates the sources only (the deliveries queue takes its own receive
    // limit); a changed visibility timeout every queue.
    settings.max_receive_count = 7;
    let limits = kamshub::queue::ReceiveLimits { common: 7, deliveries: 60 };
    let changed = SqsQueue::connect(&settings).await.unwrap().with_limits(limits).init().await.unwrap();
    let statuses: Vec<InitStatus> = changed.iter().map(|q| q.status).collect();
    use InitStatus::{Exists, Updated};
    assert_eq!(statuses, vec![Exists, Updated, Exists, Updated, Exists, Updated]);
    settings.visibility_timeout_secs = 45;
    let changed = SqsQueue::connect(&settings).await.unwrap().with_limits(limits).init().await.unwrap();
    assert!(changed.iter().all(|q| q.status == InitStatus::Updated), "{changed:?}");
    let attributes = source_attributes(&sqs, &first[3].url).await;
    assert_eq!(attributes.0["maxReceiveCount"].to_string().trim_matches('"'), "7");
    assert_eq!(attributes.1, "45");
    let deliveries = source_attributes(&sqs, &first[5].url).await;
    assert_eq!(deliveries.0["maxReceiveCount"].to_string().trim_matches('"'), "60");
    assert!(deliveries.0["deadLetterTargetArn"].as_str().unwrap().ends_with(&first[4].name));
}

/// A consumer's heartbeat is paced by its configured visibility timeout, so a receive must hold
/// for that long even where the queue's own attribute is shorter (created by an older `queues
/// init`, or by hand): otherwise every batch held past the attribute lapses and is redelivered.
#[tokio::test]
async fn sqs_a_receive_holds_for_the_configured_visibility_not_the_queues() {
    let Some(endpoint) = common::aws_endpoint() else { return };
    let settings = sqs_settings(&endpoint);
    let created = SqsQueue::connect(&settings).await.unwrap();
    created.init().await.unwrap();
    let longer = QueueSettings { visibility_timeout_secs: (VISIBILITY * 4).as_secs() as u32, ..settings };
    let consumer = SqsQueue::connect(&longer).await.unwrap();
    consumer.send(Incoming, &[msg("g", "d", "held")]).await.unwrap();
    let held = receive_n(&consumer, Incoming, 1).await.remove(0);
    let received_at = Instant::now();
    assert_nothing_to_receive_until(&created, Incoming, received_at + VISIBILITY + Duration::from_secs(1)).await;
    assert_eq!(created.depth(Incoming).await.unwrap(), Depth { visible: 0, in_flight: 1 });
    consumer.delete(Incoming, &[held.receipt]).await.unwrap();
}

async fn raw_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-2"))
        .endpoint_url(endpoint)
        .load()
        .await;
    aws_sdk_sqs::Client::new(&config)
}

/// A source queue's redrive policy (parsed) and visibility timeout.
async fn source_attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> (serde_json::Value, String) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::RedrivePolicy)
        .attribute_names(A::VisibilityTimeout)
        .send()
        .await
        .unwrap();
    let attributes = out.attributes().unwrap();
    (serde_json::from_str(&attributes[&A::RedrivePolicy]).unwrap(), attributes[&A::VisibilityTimeout].clone())
}

/// `kamshub` with only the given `KAMSHUB_*` settings (none inherited from the environment).
fn kamshub(data_dir: &std::path::Path, env: &[(&str, &str)]) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("kamshub").unwrap();
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMSHUB_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(data_dir).env("KAMSHUB_DATA_DIR", data_dir.join("data"));
    cmd.envs(env.iter().copied());
    cmd
}

#[test]
fn cli_queues_init_creates_then_reports_existing_queues() {
    let Some(endpoint) = common::aws_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let prefix = common::unique_name("cli").replace('_', "-");
    let env = [
        ("KAMSHUB_QUEUE__KIND", "sqs"),
        ("KAMSHUB_QUEUE__ENDPOINT_URL", endpoint.as_str()),
        ("KAMSHUB_QUEUE__PREFIX", prefix.as_str()),
    ];
    let run = || {
        let out = kamshub(dir.path(), &env).args(["-o", "json", "queues", "init"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    let rows = first.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["queue"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["incoming-dlq", "incoming", "send-dlq", "send", "deliveries-dlq", "deliveries"]);
    for row in rows {
        assert_eq!(common::cli::keys(row), vec!["name", "queue", "status", "url"]);
        assert_eq!(row["status"], "created");
        assert_eq!(row["name"], format!("{prefix}-{}.fifo", row["queue"].as_str().unwrap()));
    }
    let second = run();
    assert!(second.as_array().unwrap().iter().all(|r| r["status"] == "exists"), "{second}");
    let table = kamshub(dir.path(), &env).args(["queues", "init"]).output().unwrap();
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains(&format!("{prefix}-send-dlq.fifo")));
}

#[test]
fn cli_queues_init_needs_no_step_when_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let out = kamshub(dir.path(), &[]).args(["-o", "json", "queues", "init"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("embedded queues need no init step"));
}

/// Prints the SQS requests one message costs end to end (send, receive, delete) in batches of
/// 10, with `cargo test --test queue_contract -- --ignored --nocapture sqs_requests`.
#[tokio::test]
#[ignore = "benchmark"]
async fn sqs_requests_per_message() {
    let Some(endpoint) = common::aws_endpoint() else { return };
    let queues = SqsQueue::connect(&sqs_settings(&endpoint)).await.unwrap();
    queues.init().await.unwrap();
    let before = queues.request_count();
    let all: Vec<_> = (0..100).map(|i| msg(&format!("g{}", i % 20), &i.to_string(), "{}")).collect();
    queues.send(Incoming, &all).await.unwrap();
    let mut seen = HashSet::new();
    while seen.len() < all.len() {
        let got = queues.receive(Incoming, 10, Duration::from_secs(1)).await.unwrap();
        let receipts: Vec<_> = got.iter().map(|m| m.receipt.clone()).collect();
        queues.delete(Incoming, &receipts).await.unwrap();
        seen.extend(got.into_iter().map(|m| m.message_id));
    }
    let requests = queues.request_count() - before;
    println!("sqs: {requests} requests for {} messages = {:.2} per message", all.len(), requests as f64 / 100.0);
}
