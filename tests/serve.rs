//! `kamshub serve` as systemd runs it: no configuration but a port, embedded backends, health
//! endpoints, a first log line naming the backends, and a clean exit on SIGTERM.

mod common;

use common::daemon::{Daemon, strip_ansi};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn serve_starts_embedded_answers_health_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);

    let first = strip_ansi(&daemon.wait_for("starting kamshub"));
    for backend in ["store=embedded(sqlite)", "queue=embedded(sqlite)", "identity=local", "data_dir=./kamshub-data"] {
        assert!(first.contains(backend), "first log line should name {backend}: {first}");
    }
    assert_eq!(daemon.log.len(), 1, "the backends are named in the first line: {:?}", daemon.log);

    let address = daemon.address();
    let http = reqwest::Client::new();
    let health = http.get(format!("http://{address}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(format!("http://{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["store"], "sqlite");
    let jwks: serde_json::Value =
        http.get(format!("http://{address}/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
    assert!(jwks["keys"][0].get("d").is_none(), "only the public key is published");
    assert!(dir.path().join("kamshub-data/kamshub.sqlite3").exists(), "embedded store lives in ./kamshub-data");

    let (status, log) = daemon.terminate();
    assert_eq!(status.code(), Some(0), "log: {log:#?}");
    assert!(log.iter().any(|l| l.contains("SIGTERM received")), "{log:#?}");
}

#[test]
fn serve_refuses_a_busy_port_with_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(assert_cmd::cargo::cargo_bin("kamshub"))
        .arg("serve")
        .current_dir(dir.path())
        .env("KAMSHUB_HTTP__LISTEN", taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on"));
}

#[test]
fn serve_refuses_a_visibility_timeout_of_0_with_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("kamshub")
        .unwrap()
        .arg("serve")
        .current_dir(dir.path())
        .env("KAMSHUB_HTTP__LISTEN", "127.0.0.1:0")
        .env("KAMSHUB_QUEUE__VISIBILITY_TIMEOUT_SECS", "0")
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("[queue] visibility_timeout_secs"), "{stderr}");
    assert!(stderr.contains("KAMSHUB_QUEUE__VISIBILITY_TIMEOUT_SECS"), "{stderr}");
}
