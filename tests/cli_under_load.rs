//! An operator's CLI writes while `kamshub serve` applies inbound traffic on the same embedded
//! store: every write succeeds (the daemon being busy is never the operator's error).

mod common;

use common::app::telegram_text;
use common::daemon::Daemon;
use common::fake_providers::FakeSends;
use kamshub::domain::OutboxStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// CLI writes made during the load.
const CLI_WRITES: usize = 200;
/// CLI processes running at once.
const CLI_PARALLEL: usize = 4;
/// Concurrent webhook posters making the load.
const POSTERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_cli_writes_succeed_while_serve_applies_inbound_load() {
    let fake = FakeSends::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flags = kamshub::config::FlagOverrides { data_dir: Some(data.clone()) };
    let app = kamshub::app::App::new(kamshub::config::Settings::load(None, &flags).unwrap());
    let seeded = common::app::seed(&app).await;
    let store = app.store().await.unwrap();

    let data_dir = data.display().to_string();
    let env = [
        ("KAMSHUB_DATA_DIR", data_dir.as_str()),
        ("KAMSHUB_PROVIDERS__TELEGRAM_API_BASE", &fake.uri()),
        ("KAMSHUB_PROVIDERS__GRAPH_API_BASE", &fake.uri()),
    ];
    let mut daemon = Daemon::start(dir.path(), &env);
    let address = daemon.address();
    let post = {
        let (http, address) = (reqwest::Client::new(), address.clone());
        let (channel, secret) = (seeded.telegram.to_string(), seeded.telegram_secret.clone());
        move |update: serde_json::Value| {
            let (http, url, secret) =
                (http.clone(), format!("http://{address}/webhooks/telegram/{channel}"), secret.clone());
            async move {
                let response = http.post(url).header("X-Telegram-Bot-Api-Secret-Token", secret).json(&update).send();
                response.await.map(|r| r.status().as_u16()).unwrap_or(0)
            }
        }
    };

    // The conversation the operator replies in.
    assert_eq!(post(telegram_text(1, 5000, 1, 1_700_000_000, "hello")).await, 200);
    let conversation = wait_for(Duration::from_secs(30), || {
        let store = Arc::clone(&store);
        let tenant = seeded.tenant.clone();
        async move {
            store
                .list_conversations(&tenant, &kamshub::store::ConversationQuery::first(10))
                .await
                .unwrap()
                .into_iter()
                .next()
                .map(|c| c.id)
        }
    })
    .await;
    // Inbound load: posters send new messages to many chats until the CLI is done.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let posters: Vec<_> = (0..POSTERS)
        .map(|p| {
            let (post, stop, accepted) = (post.clone(), Arc::clone(&stop), Arc::clone(&accepted));
            tokio::spawn(async move {
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let update_id = 1_000_000 * (p as i64 + 1) + n;
                    let chat = 10_000 + (update_id % 300);
                    if post(telegram_text(update_id, chat, update_id, 1_700_000_000 + n, "load")).await == 200 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let messages_before = stored_messages(&store, &seeded.tenant).await;

    // The operator's writes, through the real binary, while the load runs.
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clis: Vec<_> = (0..CLI_PARALLEL)
        .map(|_| {
            let (next, failures) = (Arc::clone(&next), Arc::clone(&failures));
            let (tenant, conversation, data_dir) = (seeded.tenant.to_string(), conversation.to_string(), data.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= CLI_WRITES {
                        break;
                    }
                    let out = cli(&data_dir)
                        .args(["message", "send", "--tenant", &tenant, "--conversation", &conversation])
                        .args(["--text", &format!("reply {i}"), "--idempotency-key", &format!("op-{i}")])
                        .output()
                        .unwrap();
                    if !out.status.success() {
                        failures.lock().unwrap().push(String::from_utf8_lossy(&out.stderr).into_owned());
                    }
                }
            })
        })
        .collect();
    for cli in clis {
        tokio::task::spawn_blocking(move || cli.join().unwrap()).await.unwrap();
    }
    // Conversations count replies too: what the daemon applied is the rest.
    let messages_during =
        (stored_messages(&store, &seeded.tenant).await - messages_before).saturating_sub(CLI_WRITES as u64);
    stop.store(true, Ordering::Relaxed);
    for poster in posters {
        poster.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {CLI_WRITES} CLI writes failed: {:#?}",
        failures.len(),
        &failures[..3.min(failures.len())]
    );
    assert!(
        messages_during >= 100,
        "the daemon applied inbound messages while the CLI wrote ({messages_during} applied, {} webhooks accepted)",
        accepted.load(Ordering::Relaxed)
    );
    let replies = store.list_outbox(&kamshub::store::OutboxQuery::new(Some(&seeded.tenant), None, 1000)).await.unwrap();
    let ours = replies.iter().filter(|r| r.send_id.as_str().starts_with("op-")).count();
    assert_eq!(ours, CLI_WRITES, "every reply is stored once");
    assert!(replies.iter().all(|r| r.status != OutboxStatus::Failed));
    let (status, log) = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{log:#?}");
}

/// A `kamshub` command on the data dir, with no other configuration.
fn cli(data_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kamshub"));
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMSHUB_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("KAMSHUB_DATA_DIR", data_dir);
    cmd
}

/// Messages stored so far in the tenant's conversations (inbound, and replies).
async fn stored_messages(store: &Arc<dyn kamshub::store::Store>, tenant: &kamshub::domain::TenantId) -> u64 {
    store
        .list_conversations(tenant, &kamshub::store::ConversationQuery::first(1000))
        .await
        .unwrap()
        .iter()
        .map(|c| c.message_count)
        .sum()
}

/// Polls `probe` until it gives a value, or panics after `limit`.
async fn wait_for<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not reached in {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
