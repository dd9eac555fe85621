//! Prometheus metrics: the names kamshub exports (one place, documented in `docs/deploy.md`),
//! the process-wide recorder `serve` installs, and the gauges read from the backends on each
//! scrape (queue depths, outbox items by status).
//!
//! Code records through the `metrics` macros with the names below. Nothing is recorded until
//! [`install`] runs (the CLI never installs it, so its calls cost next to nothing).

use crate::domain::OutboxStatus;
use crate::pipeline::LoopCounts;
use crate::queue::{Queue, QueueName};
use crate::store::Store;
use metrics::counter;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Webhook requests, by `provider` (`telegram`, `messenger`) and `result` (`accepted`,
/// `missing_credential`, `bad_credential`, `unknown_channel`, `malformed`, `too_large`,
/// `unavailable`, `not_configured`, `other`).
pub const WEBHOOK_REQUESTS: &str = "kamshub_webhook_requests_total";
/// HTTP requests by matched `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "kamshub_http_requests_total";
/// HTTP request latency by matched `route`.
pub const HTTP_DURATION: &str = "kamshub_http_request_duration_seconds";
/// Messages per send call, by `queue` (on `incoming`: intake's enqueue batches).
pub const QUEUE_SEND_BATCH: &str = "kamshub_queue_send_batch_size";
/// Messages sent, by `queue`.
pub const QUEUE_SENT: &str = "kamshub_queue_messages_sent_total";
/// Messages received, by `queue`.
pub const QUEUE_RECEIVED: &str = "kamshub_queue_messages_received_total";
/// Messages deleted (acknowledged), by `queue`.
pub const QUEUE_DELETED: &str = "kamshub_queue_messages_deleted_total";
/// Messages moved to a DLQ by kamshub itself (unparseable, attempts spent), by source `queue`.
pub const QUEUE_DEAD_LETTERED: &str = "kamshub_queue_messages_dead_lettered_total";
/// Queue call latency, by `queue` and `op` (`send`, `receive`, `delete`, `set_visibility`,
/// `set_visibility_batch`, `dead_letter`, `depth`, `peek`); a receive's time includes its
/// long-poll wait.
pub const QUEUE_CALL: &str = "kamshub_queue_call_duration_seconds";
/// Queue calls that failed, by `queue`, `op` and `error` (`missing`, `stale_receipt`, `invalid`,
/// `unavailable`, `other`); a `set_visibility_batch` counts each receipt that failed.
pub const QUEUE_ERRORS: &str = "kamshub_queue_call_errors_total";
/// Messages a queue holds, by `queue` and `state` (`visible`, `in_flight`); sampled. On the DLQs
/// this is the DLQ depth.
pub const QUEUE_DEPTH: &str = "kamshub_queue_messages";
/// Age of the oldest message, by `queue`; sampled, embedded queues only (SQS does not tell
/// without CloudWatch).
pub const QUEUE_OLDEST_AGE: &str = "kamshub_queue_oldest_message_age_seconds";
/// Inbound events by `outcome`: `applied`, `duplicate` (already applied: a redelivery or a
/// provider retry), `failed` (an attempt failed; retried until the DLQ), `dead_lettered`
/// (unparseable, straight to the DLQ).
pub const INBOUND_EVENTS: &str = "kamshub_inbound_events_total";
/// Time the processor takes for one received batch, from receipt to acknowledgement.
pub const PROCESSING_DURATION: &str = "kamshub_processing_duration_seconds";
/// Time from intake's acknowledgement of an event to its application.
pub const INBOUND_EVENT_AGE: &str = "kamshub_inbound_event_age_seconds";
/// Provider send attempts by `provider` (`telegram`, `messenger`; `webhook` for deliveries to
/// tenants' webhook endpoints) and `result` (`sent`, `retry`, `failed`, `unknown`).
pub const SENDS: &str = "kamshub_sends_total";
/// Provider answers of 429 (rate limited), by `provider` (`webhook`: an endpoint's).
pub const RATE_LIMITED: &str = "kamshub_provider_rate_limited_total";
/// Sends that waited for a pacing slot, by `provider`.
pub const PACING_WAITS: &str = "kamshub_pacing_waits_total";
/// How long sends waited for their pacing slot, by `provider`.
pub const PACING_WAIT: &str = "kamshub_pacing_wait_seconds";
/// Outbox items by `status` (every status but SENT, which only grows: see `kamshub_sends_total`);
/// sampled on each scrape.
pub const OUTBOX_ITEMS: &str = "kamshub_outbox_items";
/// Store call latency, by `op` (the `Store` method).
pub const STORE_CALL: &str = "kamshub_store_call_duration_seconds";
/// Store calls that failed, by `op` and `error` (`not_found`, `conflict`, `unavailable`, `other`).
pub const STORE_ERRORS: &str = "kamshub_store_call_errors_total";
/// Deliveries whose visibility timeout expired before they were finished, by `queue`
/// (`incoming`: the processor; `send`: the sender). A fault-free run has none.
pub const VISIBILITY_LAPSES: &str = "kamshub_visibility_lapses_total";
/// Failed heartbeat extensions of held messages, by `queue`.
pub const EXTEND_FAILURES: &str = "kamshub_visibility_extend_failures_total";
/// Store calls retried while holding messages through a store outage, by `queue`.
pub const STORE_RETRIES: &str = "kamshub_store_retries_total";
/// Worker tasks that panicked and were restarted, by `queue`.
pub const WORKER_RESTARTS: &str = "kamshub_worker_restarts_total";
/// Event streams (`GET /tenant/events` as Server-Sent Events) open in this process.
pub const EVENT_STREAMS: &str = "kamshub_event_streams";
/// Event streams this process ended itself, by `reason` (`slow_client`: the client left its
/// buffer full for `[events] slow_client_secs`; `token_expired`; `shutdown`; `store_error`).
pub const EVENT_STREAMS_ENDED: &str = "kamshub_event_streams_ended_total";
/// Expired events deleted by the pruner (`[events] retention_secs`).
pub const EVENTS_PRUNED: &str = "kamshub_events_pruned_total";
/// Webhook endpoints disabled by their deliveries' outcomes, by `reason` (`gone`: an answer of
/// 410; `failing`: failing for `[webhooks] disable_after_secs` without a success).
pub const WEBHOOK_ENDPOINTS_DISABLED: &str = "kamshub_webhook_endpoints_disabled_total";

/// Every metric's help text, registered with the recorder so `/metrics` carries `# HELP`.
fn describe() {
    describe_counter!(WEBHOOK_REQUESTS, "Webhook requests by provider and result.");
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route, method and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request latency by route.");
    describe_histogram!(QUEUE_SEND_BATCH, Unit::Count, "Messages per queue send call (intake's enqueue batches).");
    describe_counter!(QUEUE_SENT, "Messages sent to a queue.");
    describe_counter!(QUEUE_RECEIVED, "Messages received from a queue.");
    describe_counter!(QUEUE_DELETED, "Messages deleted (acknowledged) from a queue.");
    describe_counter!(QUEUE_DEAD_LETTERED, "Messages kamshub moved to a DLQ itself.");
    describe_histogram!(QUEUE_CALL, Unit::Seconds, "Queue call latency (receive includes its long-poll wait).");
    describe_counter!(QUEUE_ERRORS, "Queue calls that failed.");
    describe_gauge!(QUEUE_DEPTH, "Messages a queue holds (sampled); on a DLQ, its depth.");
    describe_gauge!(QUEUE_OLDEST_AGE, Unit::Seconds, "Age of a queue's oldest message (sampled, embedded only).");
    describe_counter!(INBOUND_EVENTS, "Inbound events by outcome (applied, duplicate, failed, dead_lettered).");
    describe_histogram!(
        PROCESSING_DURATION,
        Unit::Seconds,
        "Processor time per received batch, receipt to acknowledgement."
    );
    describe_histogram!(
        INBOUND_EVENT_AGE,
        Unit::Seconds,
        "Time from intake's acknowledgement to the event's application."
    );
    describe_counter!(SENDS, "Provider send attempts (webhook deliveries: provider webhook) by provider and result.");
    describe_counter!(RATE_LIMITED, "Provider 429 answers by provider.");
    describe_counter!(PACING_WAITS, "Sends that waited for a pacing slot, by provider.");
    describe_histogram!(PACING_WAIT, Unit::Seconds, "Time sends waited for their pacing slot.");
    describe_gauge!(OUTBOX_ITEMS, "Outbox items by status, SENT excluded (sampled on each scrape).");
    describe_histogram!(STORE_CALL, Unit::Seconds, "Store call latency by operation.");
    describe_counter!(STORE_ERRORS, "Store calls that failed, by operation and error.");
    describe_counter!(EXTEND_FAILURES, "Failed heartbeat extensions of held messages.");
    describe_counter!(STORE_RETRIES, "Store calls retried while holding messages through a store outage.");
    describe_counter!(WORKER_RESTARTS, "Worker tasks that panicked and were restarted.");
    describe_counter!(VISIBILITY_LAPSES, "Deliveries whose visibility expired before they were finished.");
    describe_gauge!(EVENT_STREAMS, "Event streams (Server-Sent Events) open in this process.");
    describe_counter!(EVENT_STREAMS_ENDED, "Event streams the daemon ended itself, by reason.");
    describe_counter!(EVENTS_PRUNED, "Expired events deleted by the pruner.");
    describe_counter!(
        WEBHOOK_ENDPOINTS_DISABLED,
        "Webhook endpoints disabled by their deliveries' outcomes, by reason."
    );
}

/// Latency buckets from 1 ms to about 1 min (a long-poll receive waits up to 20 s).
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0];
/// Batch size buckets: one message up to the embedded queue's largest receive.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first, by an embedding program: its metrics are its own.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), BATCH_BUCKETS))
                .expect("bucket lists are non-empty");
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: another recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The exposition text for `GET /metrics` (empty when no recorder is ours).
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// A consumer loop's counters (`pipeline::LoopStats`), read on each scrape.
type LoopReader = Box<dyn Fn() -> LoopCounts + Send + Sync>;

/// The consumer loops of this process, by the queue they consume.
static LOOPS: Mutex<Vec<(&'static str, LoopReader)>> = Mutex::new(Vec::new());

/// Exports a consumer loop's `pipeline::LoopStats` (lapses, heartbeat failures, store retries, worker
/// restarts) under `queue` on every scrape.
pub fn watch_loop(queue: QueueName, read: impl Fn() -> LoopCounts + Send + Sync + 'static) {
    let mut loops = LOOPS.lock().unwrap_or_else(PoisonError::into_inner);
    loops.retain(|(name, _)| *name != queue.suffix());
    loops.push((queue.suffix(), Box::new(read)));
}

fn publish_loops() {
    for (queue, read) in LOOPS.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        let c = read();
        counter!(VISIBILITY_LAPSES, "queue" => *queue).absolute(c.visibility_lapses);
        counter!(EXTEND_FAILURES, "queue" => *queue).absolute(c.extend_failures);
        counter!(STORE_RETRIES, "queue" => *queue).absolute(c.store_retries);
        counter!(WORKER_RESTARTS, "queue" => *queue).absolute(c.worker_restarts);
    }
}

/// Longest a scrape waits for the backends before answering with the gauges it has.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);

/// Refreshes the backend gauges (run on each scrape, so they are as fresh as the scrape):
/// every queue's depth, so the DLQ depth, and where known its oldest message's age; outbox
/// items by status. A backend
/// that does not answer within [`REFRESH_TIMEOUT`] leaves the last values (and `/readyz` reports
/// it down).
pub async fn refresh_gauges(queue: &dyn Queue, store: &dyn Store) {
    publish_loops();
    let sample = async { tokio::join!(sample_queues(queue), sample_outbox(store)) };
    if tokio::time::timeout(REFRESH_TIMEOUT, sample).await.is_err() {
        tracing::debug!("metrics: the backends did not answer in time; gauges keep their last values");
    }
}

/// Outbox items per status, SENT excluded (it only grows, and counting it would scan the table).
async fn sample_outbox(store: &dyn Store) {
    for status in OutboxStatus::ALL.into_iter().filter(|s| *s != OutboxStatus::Sent) {
        match store.count_outbox(status).await {
            Ok(n) => gauge!(OUTBOX_ITEMS, "status" => status.as_str()).set(n as f64),
            Err(e) => tracing::debug!(%status, error = %e, "metrics: cannot count outbox items"),
        }
    }
}

/// One sample of every queue's gauges.
async fn sample_queues(queue: &dyn Queue) {
    let now_ms = crate::domain::inbound::to_ms(crate::domain::now());
    for name in QueueName::ALL {
        let depth = match queue.depth(name).await {
            Ok(depth) => depth,
            Err(e) => {
                tracing::debug!(queue = %name, error = %e, "metrics: cannot sample the queue depth");
                continue;
            }
        };
        gauge!(QUEUE_DEPTH, "queue" => name.suffix(), "state" => "visible").set(depth.visible as f64);
        gauge!(QUEUE_DEPTH, "queue" => name.suffix(), "state" => "in_flight").set(depth.in_flight as f64);
        // An empty queue's oldest message is 0 s old; a backend that cannot tell exports nothing.
        match queue.oldest_sent_at(name).await {
            Ok(Some(sent)) => {
                gauge!(QUEUE_OLDEST_AGE, "queue" => name.suffix()).set((now_ms - sent).max(0) as f64 / 1000.0);
            }
            Ok(None) if depth.visible + depth.in_flight == 0 => {
                gauge!(QUEUE_OLDEST_AGE, "queue" => name.suffix()).set(0.0);
            }
            Ok(None) | Err(_) => {}
        }
    }
}
