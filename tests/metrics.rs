//! `GET /metrics`: Prometheus text that the Prometheus project's own parser accepts, whose
//! counters and gauges move as webhooks flow through intake, the queue, the processor and the
//! store.

mod common;

use common::app::{Backend, TestApp, spawn_app, telegram_text};
use common::prometheus::{Sample, parse, value};
use kamshub::queue::QueueName;
use reqwest::StatusCode;
use std::sync::Arc;

async fn scrape(app: &TestApp, python: &str) -> Vec<Sample> {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse(python, &response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let Some(python) = common::python() else { return };
    let app = spawn_app(Backend::Embedded).await.unwrap();
    let before = scrape(&app, &python).await;
    let webhooks = |s: &[Sample], result: &str| {
        value(s, "kamshub_webhook_requests_total", &[("provider", "telegram"), ("result", result)])
    };
    assert_eq!(webhooks(&before, "accepted"), 0.0);

    // Five good updates, one forged, one for a channel that does not exist.
    for i in 0..5 {
        assert_eq!(app.post_telegram(&telegram_text(100 + i, 42, 1 + i, 1_700_000_000, "hello")).await, StatusCode::OK);
    }
    let forged = app
        .http
        .post(app.url(&format!("/webhooks/telegram/{}", app.telegram)))
        .header("X-Telegram-Bot-Api-Secret-Token", "wrong")
        .json(&telegram_text(200, 42, 9, 1_700_000_000, "forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // A poison update: it parses at intake but cannot be read, so it goes straight to the DLQ.
    let poison = serde_json::json!({
        "update_id": 31337,
        "message": {"message_id": 1, "chat": {"id": 666, "type": "private"}, "date": "yesterday", "text": "x"}
    });
    assert_eq!(app.post_telegram(&poison).await, StatusCode::OK);
    let queue = Arc::clone(&app.queue);
    app.process_until(move || {
        let queue = Arc::clone(&queue);
        async move {
            let dlq = queue.depth(QueueName::IncomingDlq).await.unwrap();
            let incoming = queue.depth(QueueName::Incoming).await.unwrap();
            dlq.visible == 1 && incoming.visible + incoming.in_flight == 0
        }
    })
    .await;

    let after = scrape(&app, &python).await;
    assert_eq!(webhooks(&after, "accepted"), 6.0);
    assert_eq!(webhooks(&after, "bad_credential"), 1.0);
    let incoming = [("queue", "incoming")];
    assert_eq!(value(&after, "kamshub_queue_messages_sent_total", &incoming), 6.0);
    assert!(value(&after, "kamshub_queue_messages_received_total", &incoming) >= 6.0);
    assert_eq!(value(&after, "kamshub_queue_messages_deleted_total", &incoming), 5.0);
    assert!(value(&after, "kamshub_queue_send_batch_size_count", &incoming) >= 1.0, "enqueue batches are measured");
    assert_eq!(
        value(&after, "kamshub_queue_messages", &[("queue", "incoming-dlq"), ("state", "visible")]),
        1.0,
        "the DLQ depth"
    );
    let receive_calls =
        value(&after, "kamshub_queue_call_duration_seconds_count", &[("queue", "incoming"), ("op", "receive")]);
    assert!(receive_calls >= 1.0, "queue call latency is measured: {receive_calls}");
    let events = |outcome: &str| value(&after, "kamshub_inbound_events_total", &[("outcome", outcome)]);
    assert_eq!(events("applied"), 5.0, "events applied by outcome");
    assert_eq!(events("failed"), 1.0, "the poison event's one attempt");
    assert_eq!(events("dead_lettered"), 1.0);
    assert!(value(&after, "kamshub_processing_duration_seconds_count", &[]) >= 1.0, "processing latency");
    assert!(value(&after, "kamshub_store_call_duration_seconds_count", &[("op", "apply_inbound")]) >= 1.0);
    assert_eq!(value(&after, "kamshub_outbox_items", &[("status", "PENDING")]), 0.0, "outbox items by status");
    assert!(after.iter().any(|s| s.name == "kamshub_outbox_items" && s.labels["status"] == "UNKNOWN"));
    let webhook_route = [("route", "/webhooks/telegram/{channelId}"), ("status", "200")];
    assert_eq!(value(&after, "kamshub_http_requests_total", &webhook_route), 6.0, "routes, never raw paths");
    assert!(after.iter().any(|s| s.family == "kamshub_http_request_duration_seconds" && s.kind == "histogram"));
}
