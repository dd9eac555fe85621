//! The fault harness (docs/reliability.md): kamshub as real `kamshub serve` processes, killed
//! with SIGKILL and restarted at random moments, reporting per scenario attempted /
//! acknowledged / stored / lost / duplicated / double-sent.
//!
//! The test suite runs the short version. The full one is the documented command:
//!
//! ```text
//! KAMSHUB_FAULTS=full scripts/test -E 'binary(faults)' --no-capture
//! ```
//!
//! Every run appends its reports, one JSON line each, to `target/faults/report.jsonl`.

mod common;
#[path = "faults/cost.rs"]
mod cost;
#[path = "faults/harness.rs"]
mod harness;
#[path = "faults/outage.rs"]
mod outage;
#[path = "faults/poison.rs"]
mod poison;
#[path = "faults/provider.rs"]
mod provider;
#[path = "faults/replies.rs"]
mod replies;
#[path = "faults/webhooks.rs"]
mod webhooks;

use harness::{Backend, Report, Scale};
use provider::Faults;
use replies::Nemesis;

/// What every inbound scenario must show, whatever the scale.
fn assert_inbound_exactly_once(report: &Report) {
    assert_eq!(report.acknowledged, report.attempted, "every update was acknowledged in the end: {report:?}");
    assert_eq!(report.lost, 0, "acknowledged updates lost: {report:?}");
    assert_eq!(report.duplicated, 0, "updates stored twice: {report:?}");
    assert_eq!(report.unexpected, 0, "messages nobody sent: {report:?}");
    assert_eq!(report.order_violations, 0, "messages listed out of provider order: {report:?}");
    assert_eq!(report.dead_lettered, 0, "nothing of a fault-free content reaches the DLQ: {report:?}");
    assert!(report.kills > 0, "the daemon was killed at least once: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_survive_kill9_of_the_daemon_embedded() {
    let report = webhooks::kill9_daemon(Backend::Embedded, Scale::from_env(Backend::Embedded)).await.unwrap();
    assert_inbound_exactly_once(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_survive_kill9_of_the_daemon_mongodb_sqs() {
    let Some(report) = webhooks::kill9_daemon(Backend::MongoSqs, Scale::from_env(Backend::MongoSqs)).await else {
        return;
    };
    assert_inbound_exactly_once(&report);
}

/// What every reply scenario must show: each reply ends SENT (delivered), FAILED or UNKNOWN,
/// and every double send is explained.
fn assert_replies_accounted(report: &Report) {
    assert_eq!(report.acknowledged, report.attempted, "every reply was accepted: {report:?}");
    assert_eq!(report.lost, 0, "replies lost (not delivered, yet neither UNKNOWN nor FAILED): {report:?}");
    assert_eq!(report.unexpected, 0, "deliveries no reply asked for: {report:?}");
    assert_eq!(report.double_sent, report.double_sent_explained, "unexplained double sends: {report:?}");
    // Order after a kill is asserted on the embedded queue: moto hands out a group's next message
    // first once a visibility timeout lapses, which real SQS does not (docs/dev/stand-ins.md); and
    // replies a dead-lettered message held back come after later ones once redriven.
    if report.backend == "embedded" && report.other["dlqBeforeRedrive"] == 0 {
        assert_eq!(report.order_violations, 0, "replies delivered out of order: {report:?}");
    }
    assert_eq!(report.dead_lettered, 0, "the send DLQ is empty after the redrive: {report:?}");
    assert!(report.kills > 0, "the sender was killed at least once: {report:?}");
}

/// Kills at chosen provider calls and at random moments; less often on the stand-ins, where a
/// sender takes a second or two to start (a sender killed before it works proves little).
fn sender_kills(scale: &Scale, backend: Backend) -> Nemesis {
    Nemesis {
        crash_calls: if scale.full { 30 } else { 4 },
        random_kill_ms: match backend {
            Backend::Embedded => 2_000,
            Backend::MongoSqs => 5_000,
        },
        faults: Faults::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_survive_kill9_of_the_sender_embedded() {
    let scale = Scale::from_env(Backend::Embedded);
    let report =
        replies::run("replies-kill9-sender", Backend::Embedded, scale, sender_kills(&scale, Backend::Embedded))
            .await
            .unwrap();
    assert_replies_accounted(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_survive_kill9_of_the_sender_mongodb_sqs() {
    let scale = Scale::from_env(Backend::MongoSqs);
    let Some(report) =
        replies::run("replies-kill9-sender", Backend::MongoSqs, scale, sender_kills(&scale, Backend::MongoSqs)).await
    else {
        return;
    };
    assert_replies_accounted(&report);
}

/// 429s and 502s for a fifth of the calls, and calls that never answer (every other one
/// delivered first); no kills.
/// (The short run on the stand-ins leaves the hang, 35 s, to the embedded one.)
fn provider_faults(scale: &Scale, backend: Backend) -> Nemesis {
    const SHORT_HANGS: &[usize] = &[11];
    // Ten calls spread over the run; every call number below the number of replies is reached
    // (retries only add calls). Embedded: 50, 250, …, 1850 of 2,000; stand-ins: 10, 50, …, 370.
    let full_hangs: Vec<usize> = (0..10).map(|i| scale.replies / 40 + i * scale.replies / 10).collect();
    Nemesis {
        crash_calls: 0,
        random_kill_ms: 0,
        faults: Faults {
            rate_limited: 0.1,
            server_error: 0.1,
            hang_calls: match (scale.full, backend) {
                (true, _) => full_hangs.leak(),
                (false, Backend::Embedded) => SHORT_HANGS,
                (false, Backend::MongoSqs) => &[],
            },
            // Past the daemon's provider timeout (providers::DEFAULT_TIMEOUT, 30 s).
            hang_for: std::time::Duration::from_secs(35),
            // One short of the sender's attempts: `max_receive_count` (5, the harness's queue)
            // caps them (src/daemon.rs).
            max_in_a_row: 4,
        },
    }
}

/// Under 429 / 5xx / hangs alone, only the hung calls may end UNKNOWN; everything else is sent
/// exactly once.
fn assert_provider_faults_absorbed(report: &Report, hangs: usize) {
    assert_eq!(report.acknowledged, report.attempted, "every reply was accepted: {report:?}");
    assert_eq!(report.lost, 0, "replies lost: {report:?}");
    assert_eq!(report.double_sent, 0, "nothing is sent twice without a crash: {report:?}");
    assert_eq!(report.order_violations, 0, "replies delivered out of order: {report:?}");
    let unknown = report.other.get("unknownDelivered").copied().unwrap_or(0)
        + report.other.get("unknownUndelivered").copied().unwrap_or(0);
    assert_eq!(unknown as usize, hangs, "exactly the hung calls end UNKNOWN: {report:?}");
    assert_eq!(report.other.get("sent").copied().unwrap_or(0) as usize, report.attempted - hangs, "{report:?}");
    assert!(report.other.get("provider:429").copied().unwrap_or(0) > 0, "some calls were refused 429: {report:?}");
    assert!(report.other.get("provider:502").copied().unwrap_or(0) > 0, "some calls failed 502: {report:?}");
    assert_eq!(report.other["dlqBeforeRedrive"], 0, "retries cost nothing a DLQ: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_get_through_a_provider_answering_429_5xx_and_hanging_embedded() {
    let scale = Scale::from_env(Backend::Embedded);
    let nemesis = provider_faults(&scale, Backend::Embedded);
    let report = replies::run("replies-provider-faults", Backend::Embedded, scale, nemesis).await.unwrap();
    assert_provider_faults_absorbed(&report, nemesis.faults.hang_calls.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_get_through_a_provider_answering_429_5xx_and_hanging_mongodb_sqs() {
    let scale = Scale::from_env(Backend::MongoSqs);
    let nemesis = provider_faults(&scale, Backend::MongoSqs);
    let Some(report) = replies::run("replies-provider-faults", Backend::MongoSqs, scale, nemesis).await else {
        return;
    };
    assert_provider_faults_absorbed(&report, nemesis.faults.hang_calls.len());
}

/// Poison in many conversations: dead-lettered alone, then redriven once by the real CLI.
fn assert_poison_redriven(report: &Report) {
    assert_eq!(report.acknowledged, report.attempted, "{report:?}");
    let poison = report.other["poison"];
    assert_eq!(report.other["dlqBeforeRedrive"], poison, "each poison message, and only those, in the DLQ: {report:?}");
    assert_eq!(report.other["poisonStoredBeforeRedrive"], 0, "{report:?}");
    assert_eq!(
        report.other["storedBeforeRedrive"] as usize,
        report.attempted - poison as usize,
        "the rest applied: {report:?}"
    );
    assert_eq!(report.other["redriveMoved"], poison, "{report:?}");
    assert_eq!((report.lost, report.duplicated, report.unexpected), (0, 0, 0), "{report:?}");
    assert_eq!(report.stored, report.attempted, "{report:?}");
    assert_eq!(report.order_violations, 0, "{report:?}");
    assert_eq!(report.dead_lettered, 0, "the DLQ is empty after the redrive: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_reaches_the_dlq_alone_and_is_redriven_once_embedded() {
    let scale = Scale::from_env(Backend::Embedded);
    let report = poison::run(Backend::Embedded, scale).await.unwrap();
    assert_poison_redriven(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_reaches_the_dlq_alone_and_is_redriven_once_mongodb_sqs() {
    let Some(report) = poison::run(Backend::MongoSqs, Scale::from_env(Backend::MongoSqs)).await else { return };
    assert_poison_redriven(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mongodb_outage_costs_no_acknowledgement_and_nothing_reaches_the_dlq() {
    let Some(report) = outage::run(Scale::from_env(Backend::MongoSqs)).await else { return };
    assert_eq!(report.other["refusedDuringOutage"], 0, "intake kept acknowledging: {report:?}");
    assert_eq!(report.other["refusedWhileRestarting"], 0, "and while the store came back: {report:?}");
    assert!(report.other["acknowledgedDuringOutage"] > 0, "webhooks arrived during the outage: {report:?}");
    assert_eq!(report.acknowledged, report.attempted, "{report:?}");
    assert_eq!((report.lost, report.duplicated, report.unexpected), (0, 0, 0), "{report:?}");
    assert_eq!(report.dead_lettered, 0, "the outage sent nothing to the DLQ: {report:?}");
    assert_eq!(report.order_violations, 0, "{report:?}");
}

/// What an inbound event costs on SQS and MongoDB, at a low and a high webhook concurrency
/// (docs/reliability.md, "Cost"). The figures are printed; the test holds the costs the design
/// promises as bounds a regression would cross.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbound_cost_on_sqs_and_mongodb() {
    let scale = Scale::from_env(Backend::MongoSqs);
    // `KAMSHUB_COST_POSTERS=4,16,64` measures other concurrencies at this scale (by hand).
    let chosen: Option<Vec<usize>> = std::env::var("KAMSHUB_COST_POSTERS")
        .ok()
        .map(|list| list.split(',').map(|n| n.trim().parse().expect("KAMSHUB_COST_POSTERS: numbers")).collect());
    let concurrencies = chosen.unwrap_or_else(|| if scale.full { vec![1, 4, 16, 64] } else { vec![16] });
    for concurrency in concurrencies {
        let Some(report) = cost::measure(scale, concurrency).await else { return };
        assert_eq!((report.lost, report.duplicated), (0, 0), "{report:?}");
        assert_eq!(report.stored, report.attempted, "{report:?}");
    }
}

/// What a reply costs on SQS and MongoDB (docs/reliability.md, "Cost"): every reply sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reply_cost_on_sqs_and_mongodb() {
    let Some(report) = cost::measure_replies(Scale::from_env(Backend::MongoSqs)).await else { return };
    assert_eq!(report.attempted, Scale::from_env(Backend::MongoSqs).replies, "every reply was accepted: {report:?}");
    assert_eq!((report.lost, report.double_sent), (0, 0), "every reply delivered once: {report:?}");
}
