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
#[path = "faults/harness.rs"]
mod harness;
#[path = "faults/webhooks.rs"]
mod webhooks;

use harness::{Backend, Report, Scale};

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
