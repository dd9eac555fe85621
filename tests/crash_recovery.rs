//! A daemon killed with SIGKILL mid-stream and restarted loses no acknowledged webhook and
//! duplicates nothing (embedded backends, the real binary).

mod common;

use common::app::{seed, telegram_text};
use kamshub::store::ConversationQuery;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    address: String,
}

fn start_daemon(data_dir: &std::path::Path) -> Daemon {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kamshub"));
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMSHUB_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .arg("serve")
        .env("KAMSHUB_DATA_DIR", data_dir)
        .env("KAMSHUB_HTTP__LISTEN", "127.0.0.1:0")
        .env("KAMSHUB_QUEUE__VISIBILITY_TIMEOUT_SECS", "2")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("daemon exited before listening").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining stderr so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Daemon { child, address }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_daemon_killed_mid_stream_loses_no_acknowledged_webhook_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let settings =
        kamshub::config::Settings::load(None, &kamshub::config::FlagOverrides { data_dir: Some(data_dir.clone()) })
            .unwrap();
    let app = kamshub::app::App::new(settings);
    let seeded = seed(&app).await;

    const TOTAL: i64 = 600;
    let updates: Vec<serde_json::Value> = (0..TOTAL)
        .map(|i| telegram_text(1 + i, 100 + i % 30, 1 + i / 30, 1_700_000_000 + i / 30, &format!("u{i}")))
        .collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let secret = seeded.telegram_secret.clone();
    let post_all = |address: String, indexes: Vec<usize>| {
        let (http, acked, secret, updates) = (http.clone(), Arc::clone(&acked), secret.clone(), updates.clone());
        let url = format!("http://{address}/webhooks/telegram/{}", seeded.telegram);
        async move {
            let tasks: Vec<_> = indexes
                .chunks(indexes.len().div_ceil(16).max(1))
                .map(|chunk| {
                    let (http, acked, secret, url, updates) =
                        (http.clone(), Arc::clone(&acked), secret.clone(), url.clone(), updates.clone());
                    let chunk = chunk.to_vec();
                    tokio::spawn(async move {
                        for i in chunk {
                            let sent = http
                                .post(&url)
                                .header("X-Telegram-Bot-Api-Secret-Token", &secret)
                                .json(&updates[i])
                                .send()
                                .await;
                            if sent.is_ok_and(|r| r.status() == 200) {
                                acked.lock().unwrap().insert(i);
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        }
    };

    // First daemon: killed with SIGKILL while webhooks are arriving and being processed.
    let mut first = start_daemon(&data_dir);
    let sending = tokio::spawn(post_all(first.address.clone(), (0..TOTAL as usize).collect()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < (TOTAL / 3) as usize {
        assert!(Instant::now() < deadline, "the first daemon acknowledged too little");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    sending.await.unwrap();
    let acked_before_kill = acked.lock().unwrap().len();
    assert!(acked_before_kill < TOTAL as usize, "the kill landed mid-stream");

    // Second daemon: providers retry everything not acknowledged.
    let mut second = start_daemon(&data_dir);
    let missing: Vec<usize> = (0..TOTAL as usize).filter(|i| !acked.lock().unwrap().contains(i)).collect();
    post_all(second.address.clone(), missing).await;
    assert_eq!(acked.lock().unwrap().len(), TOTAL as usize, "the second daemon acknowledged every retry");

    // Every acknowledged update ends up stored exactly once.
    let store = app.store().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let conversations = store.list_conversations(&seeded.tenant, &ConversationQuery::first(1000)).await.unwrap();
        let mut texts = Vec::new();
        for c in &conversations {
            for m in common::messages_oldest_first(&*store, &seeded.tenant, &c.id, 10_000).await {
                texts.push(m.text.unwrap_or_default());
            }
        }
        if texts.len() >= TOTAL as usize || Instant::now() > deadline {
            break texts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no duplicated messages");
    let expected: BTreeSet<String> = (0..TOTAL).map(|i| format!("u{i}")).collect();
    let lost: Vec<&String> = expected.iter().filter(|t| !unique.contains(t)).collect();
    assert!(lost.is_empty(), "lost {} acknowledged updates: {lost:?}", lost.len());

    let status = Command::new("kill").args(["-TERM", &second.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(second.child.wait().unwrap().code(), Some(0));
}
