//! `kamshub serve` as systemd runs it: no configuration but a port, embedded backends, health
//! endpoints, a first log line naming the backends, the sd_notify protocol (READY, WATCHDOG,
//! STATUS, STOPPING), a drain period with `/readyz` at 503, JSON logs when configured, and a
//! clean exit on SIGTERM.

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

/// A stand-in for systemd's notification socket: collects what the daemon sends.
struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(dir: &std::path::Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        NotifySocket { socket, path, seen: Vec::new() }
    }

    /// Reads datagrams until one has the line `wanted`; returns that datagram's lines.
    fn wait_for(&mut self, wanted: &str) -> Vec<String> {
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .socket
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {wanted:?} from the daemon ({e}); seen: {:#?}", self.seen));
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            self.seen.push(text.clone());
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.iter().any(|l| l == wanted) {
                return lines;
            }
        }
    }
}

#[tokio::test]
async fn serve_speaks_sd_notify_ready_watchdog_status_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let mut notify = NotifySocket::bind(dir.path());
    let socket = notify.path.display().to_string();
    // WatchdogSec=2: systemd expects a ping at least every 2 s; kamshub pings every second.
    let mut daemon = Daemon::start(dir.path(), &[("NOTIFY_SOCKET", &socket), ("WATCHDOG_USEC", "2000000")]);
    let address = daemon.address();

    let ready = notify.wait_for("READY=1");
    let status = ready.iter().find(|l| l.starts_with("STATUS=")).expect("READY comes with a STATUS line");
    assert!(status.contains(&address) && status.contains("processor"), "{status}");
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("http://{address}/readyz")).send().await.unwrap().status(), 200, "ready means ready");
    notify.wait_for("WATCHDOG=1");
    notify.wait_for("WATCHDOG=1");

    daemon.sigterm();
    let stopping = notify.wait_for("STOPPING=1");
    assert!(stopping.iter().any(|l| l.starts_with("STATUS=draining")), "{stopping:?}");
    let (status, log) = daemon.wait();
    assert_eq!(status.code(), Some(0), "log: {log:#?}");
    let ready_at = notify.seen.iter().position(|d| d.contains("READY=1")).unwrap();
    let stopping_at = notify.seen.iter().position(|d| d.contains("STOPPING=1")).unwrap();
    assert!(ready_at < stopping_at, "{:#?}", notify.seen);
}

#[tokio::test]
async fn sigterm_turns_readyz_to_503_while_the_drain_period_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), &[("KAMSHUB_HTTP__DRAIN_SECS", "3")]);
    let address = daemon.address();
    let http = reqwest::Client::new();
    let ready = http.get(format!("http://{address}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["queue"], "sqlite", "queues are checked too");

    daemon.sigterm();
    daemon.wait_for("draining");
    let draining = http.get(format!("http://{address}/readyz")).send().await.unwrap();
    assert_eq!(draining.status(), 503);
    assert_eq!(draining.json::<serde_json::Value>().await.unwrap()["error"]["code"], "draining");
    let health = http.get(format!("http://{address}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "still alive and serving during the drain");
    let (status, log) = daemon.wait();
    assert_eq!(status.code(), Some(0), "log: {log:#?}");
}

#[tokio::test]
async fn serve_writes_json_log_lines_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kamshub.toml"), "[log]\nformat = \"json\"\n").unwrap();
    let mut daemon = Daemon::start(dir.path(), &[]);
    let first = daemon.wait_for("starting kamshub");
    let line: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
    assert_eq!(line["level"], "INFO");
    assert!(line["message"].as_str().unwrap().contains("store=embedded(sqlite)"), "{line}");
    let listening: serde_json::Value = serde_json::from_str(&daemon.wait_for("listening")).unwrap();
    assert!(listening["address"].as_str().unwrap().starts_with("127.0.0.1:"), "{listening}");
    let (status, log) = daemon.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(log.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "every line is JSON: {log:#?}");
    assert!(log.iter().all(|l| !l.contains('\u{1b}')), "no colour codes");
}
