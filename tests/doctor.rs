//! `kamshub doctor` through the real binary: FAIL (exit 1) for an unreachable store, a missing
//! queue, a queue without a redrive policy and a wrong master key; no FAIL (exit 0) on a healthy
//! embedded deployment and on a healthy stand-in deployment (MongoDB + SQS + Cognito).

mod common;

use common::cli::{FakeGraph, FakeTelegram, Kamshub, Run};
use serde_json::Value;

const BOT_TOKEN: &str = "7000002:AAH-doctor-bot-token-Lk3";

/// The report's rows by check name, and the exit code.
fn doctor(k: &Kamshub) -> (i32, Vec<Value>, Run) {
    let run = k.run(&["-o", "json", "doctor"]);
    let rows: Vec<Value> =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout));
    (run.code, rows, run)
}

fn row<'a>(rows: &'a [Value], check: &str) -> &'a Value {
    rows.iter().find(|r| r["check"] == check).unwrap_or_else(|| panic!("no `{check}` row in {rows:#?}"))
}

fn status<'a>(rows: &'a [Value], check: &str) -> &'a str {
    row(rows, check)["status"].as_str().unwrap()
}

fn assert_no_fail(code: i32, rows: &[Value], run: &Run) {
    let failed: Vec<&Value> = rows.iter().filter(|r| r["status"] == "FAIL").collect();
    assert!(failed.is_empty(), "unexpected FAIL: {failed:#?}");
    assert_eq!(code, 0, "{}", run.stderr);
    for r in rows {
        assert_eq!(common::cli::keys(r), ["check", "detail", "fix", "status"]);
    }
}

/// One tenant with one Telegram bot, connected through the CLI (its credentials sealed).
async fn connect_a_bot(k: &Kamshub, telegram: &FakeTelegram) {
    telegram.bot(BOT_TOKEN, "doctor_bot", true).await;
    let tenant = k.json(&["tenant", "create", "--name", "Doc Inc", "--admin-email", "ops@doc.example"]);
    let tenant = tenant["tenantId"].as_str().unwrap();
    k.json(&[
        "channel",
        "add",
        "--tenant",
        tenant,
        "--type",
        "telegram",
        "--display-name",
        "Bot",
        "--token",
        BOT_TOKEN,
    ]);
}

/// An embedded installation with one Telegram bot whose credentials are sealed.
async fn embedded_with_a_channel() -> (Kamshub, FakeTelegram, FakeGraph) {
    let telegram = FakeTelegram::start().await;
    let graph = FakeGraph::start("1", "unused").await;
    let k = Kamshub::embedded(&telegram.uri(), &graph.uri());
    connect_a_bot(&k, &telegram).await;
    (k, telegram, graph)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_embedded_deployment_has_no_fail() {
    let (k, _telegram, _graph) = embedded_with_a_channel().await;
    let (code, rows, run) = doctor(&k);
    assert_no_fail(code, &rows, &run);
    for check in [
        "config",
        "store",
        "queues",
        "dlq incoming",
        "dlq send",
        "identity",
        "master key",
        "telegram api",
        "graph api",
        "webhooks",
    ] {
        assert_eq!(status(&rows, check), "OK", "{:#}", row(&rows, check));
    }
    assert!(row(&rows, "master key")["detail"].as_str().unwrap().contains("opens all 2 sealed secrets of 1 channels"));
    let config = row(&rows, "config")["detail"].as_str().unwrap();
    assert!(config.contains("KAMSHUB_DATA_DIR") && config.contains("KAMSHUB_PROVIDERS__TELEGRAM_API_BASE"), "{config}");
    assert!(!k.printed.borrow().contains(BOT_TOKEN), "doctor never prints a secret");

    // The table says the same for people.
    let table = k.run(&["doctor"]);
    assert_eq!(table.code, 0);
    assert!(table.stdout.contains("master key") && table.stdout.contains("OK"), "{}", table.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_master_key_fails() {
    let (k, _telegram, _graph) = embedded_with_a_channel().await;
    let k = k.with("KAMSHUB_MASTER_KEY", &kamshub::sealing::MasterKey::generate_base64());
    let (code, rows, _) = doctor(&k);
    assert_eq!(code, 1);
    assert_eq!(status(&rows, "master key"), "FAIL", "{:#}", row(&rows, "master key"));
    assert!(row(&rows, "master key")["detail"].as_str().unwrap().contains("cannot open"));
    assert_eq!(status(&rows, "store"), "OK", "only the key is wrong");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typo_in_an_environment_variable_is_a_warning() {
    let k = Kamshub::embedded("http://127.0.0.1:9", "http://127.0.0.1:9").with("KAMSHUB_QUEUE_KIND", "sqs");
    let (_, rows, _) = doctor(&k);
    assert_eq!(status(&rows, "config"), "WARN");
    assert!(row(&rows, "config")["fix"].as_str().unwrap().contains("KAMSHUB_QUEUE__KIND"));
}

#[test]
fn an_unreachable_store_fails() {
    // Nothing listens on port 1; the driver gives up after the URI's 1 s server selection.
    let k = Kamshub::embedded("http://127.0.0.1:9", "http://127.0.0.1:9")
        .with("KAMSHUB_STORE__KIND", "mongodb")
        .with("KAMSHUB_STORE__URI", "mongodb://127.0.0.1:1/?directConnection=true&serverSelectionTimeoutMS=1000")
        .with("KAMSHUB_MASTER_KEY", &kamshub::sealing::MasterKey::generate_base64());
    let (code, rows, _) = doctor(&k);
    assert_eq!(code, 1);
    assert_eq!(status(&rows, "store"), "FAIL", "{:#}", row(&rows, "store"));
    assert!(row(&rows, "store")["detail"].as_str().unwrap().contains("unreachable"));
    assert!(row(&rows, "store")["fix"].as_str().unwrap().contains("KAMSHUB_STORE__URI"));
}

/// An installation on the SQS stand-in with a fresh queue prefix (no queues yet).
fn on_sqs(endpoint: &str) -> (Kamshub, String) {
    let prefix = common::unique_name("doc").replace('_', "-");
    let k = Kamshub::embedded("http://127.0.0.1:9", "http://127.0.0.1:9")
        .with("KAMSHUB_QUEUE__KIND", "sqs")
        .with("KAMSHUB_QUEUE__ENDPOINT_URL", endpoint)
        .with("KAMSHUB_QUEUE__PREFIX", &prefix);
    (k, prefix)
}

#[test]
fn a_missing_queue_fails() {
    let Some(endpoint) = common::aws_endpoint() else { return };
    let (k, prefix) = on_sqs(&endpoint);
    let (code, rows, _) = doctor(&k);
    assert_eq!(code, 1);
    for queue in ["incoming", "incoming-dlq", "send", "send-dlq"] {
        let r = row(&rows, &format!("queue {queue}"));
        assert_eq!(r["status"], "FAIL", "{r:#}");
        assert!(r["detail"].as_str().unwrap().contains(&format!("{prefix}-{queue}.fifo does not exist")), "{r:#}");
        assert_eq!(r["fix"], "kamshub queues init");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_without_a_redrive_policy_fails() {
    let Some(endpoint) = common::aws_endpoint() else { return };
    let (k, prefix) = on_sqs(&endpoint);
    // Four FIFO queues made by hand, without the redrive policies `queues init` would set.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-2"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    for queue in ["incoming", "incoming-dlq", "send", "send-dlq"] {
        sqs.create_queue()
            .queue_name(format!("{prefix}-{queue}.fifo"))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "30")
            .send()
            .await
            .unwrap();
    }
    let (code, rows, _) = doctor(&k);
    assert_eq!(code, 1);
    for queue in ["incoming", "send"] {
        let r = row(&rows, &format!("queue {queue}"));
        assert_eq!(r["status"], "FAIL", "{r:#}");
        assert!(r["detail"].as_str().unwrap().contains("no redrive policy"), "{r:#}");
    }
    // `queues init` is the fix, and after it the queues pass.
    assert_eq!(k.run(&["queues", "init"]).code, 0);
    let (_, rows, _) = doctor(&k);
    for queue in ["incoming", "incoming-dlq", "send", "send-dlq"] {
        assert_eq!(status(&rows, &format!("queue {queue}")), "OK", "{:#}", row(&rows, &format!("queue {queue}")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_stand_in_deployment_has_no_fail() {
    let (Some(uri), Some(endpoint)) = (common::mongodb_uri(), common::aws_endpoint()) else { return };
    let pool = common::TestPool::create(&endpoint).await;
    // As production should be: the app client cannot write custom:tenantID.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-2"))
        .endpoint_url(&endpoint)
        .load()
        .await;
    aws_sdk_cognitoidentityprovider::Client::new(&config)
        .update_user_pool_client()
        .user_pool_id(&pool.pool_id)
        .client_id(&pool.client_id)
        .write_attributes("email")
        .explicit_auth_flows(aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
        .explicit_auth_flows(aws_sdk_cognitoidentityprovider::types::ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .send()
        .await
        .unwrap();
    let telegram = FakeTelegram::start().await;
    let graph = FakeGraph::start("1", "unused").await;
    let (k, _) = on_sqs(&endpoint);
    let mut k = k
        .with("KAMSHUB_PROVIDERS__TELEGRAM_API_BASE", &telegram.uri())
        .with("KAMSHUB_PROVIDERS__GRAPH_API_BASE", &graph.uri())
        .with("KAMSHUB_STORE__KIND", "mongodb")
        .with("KAMSHUB_STORE__URI", &uri)
        .with("KAMSHUB_STORE__DATABASE", &common::unique_name("kamsg_doctor"))
        .with("KAMSHUB_MASTER_KEY", &kamshub::sealing::MasterKey::generate_base64());
    for (key, value) in pool.env() {
        k = k.with(&key, &value);
    }
    assert_eq!(k.run(&["queues", "init"]).code, 0);
    connect_a_bot(&k, &telegram).await;

    let (code, rows, run) = doctor(&k);
    assert_no_fail(code, &rows, &run);
    for check in ["store", "queue incoming", "queue send-dlq", "dlq incoming", "identity", "master key", "telegram api"]
    {
        assert_eq!(status(&rows, check), "OK", "{:#}", row(&rows, check));
    }
    assert!(row(&rows, "store")["detail"].as_str().unwrap().contains("MongoDB"));
    assert!(row(&rows, "identity")["detail"].as_str().unwrap().contains(&pool.pool_id));
}
