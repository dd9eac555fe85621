//! A MongoDB outage while webhooks flow: the harness starts its own SecantusDB (from the project's
//! `.venv-test`), stops it for a while and starts it again on the same port and storage. Intake
//! must keep acknowledging (it needs the queue, not the store), nothing may reach a DLQ because
//! of the outage, and everything acknowledged must be applied once the store is back.

use crate::harness::{Backend, Cluster, Report, Scale};
use crate::webhooks::{Poster, await_stored, dlq_depth, workload};
use kamshub::queue::QueueName;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A SecantusDB server the harness can stop and start again.
pub struct SecantusDb {
    binary: PathBuf,
    port: u16,
    storage: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl SecantusDb {
    /// `secantusd-py` beside the test virtualenv's Python (`KAMSHUB_TEST_PYTHON`), or `None` to skip.
    pub fn locate(dir: &std::path::Path) -> Option<SecantusDb> {
        let python = crate::common::python()?;
        let binary = PathBuf::from(python).parent()?.join("secantusd-py");
        assert!(binary.exists(), "{} is missing: scripts/test installs it", binary.display());
        let config = dir.join("secantusd.toml");
        std::fs::write(&config, "").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Some(SecantusDb {
            binary,
            port,
            storage: dir.join("secantus"),
            config,
            log: dir.join("secantusd.log"),
            child: None,
        })
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Starts the server and waits until it answers a ping.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--storage-path"])
            .arg(&self.storage)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let options = format!("{}&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000", self.uri());
        loop {
            if let Ok(client) = mongodb::Client::with_uri_str(&options).await
                && client.database("admin").run_command(mongodb::bson::doc! {"ping": 1}).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "SecantusDB did not come up: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the server (SIGTERM, as an operator's restart does) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    child.kill().unwrap();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for SecantusDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The phases a POST can be sent in: the store up, stopped, starting again (until it answers a
/// ping), up again.
const BEFORE: usize = 0;
const DOWN: usize = 1;
const RESTARTING: usize = 2;
const AFTER: usize = 3;

/// Seconds of webhooks before, during and after the outage.
fn phases(scale: &Scale) -> (u64, u64, u64) {
    if scale.full { (10, 30, 15) } else { (3, 8, 3) }
}

/// The workload, reordered so that every update of tenant `late` is sent a second into the
/// outage (the sending is evenly paced over `total` seconds): its channel's first webhook arrives
/// while the store is down, so intake must know it without asking the store (it loads every
/// channel ahead of the webhooks). Each conversation's updates keep their order.
fn first_seen_during_the_outage(
    updates: Vec<crate::webhooks::Update>,
    late: usize,
    outage_starts: u64,
    total: u64,
) -> Vec<crate::webhooks::Update> {
    let (held, mut rest): (Vec<_>, Vec<_>) = updates.into_iter().partition(|u| u.tenant == late);
    let at = (rest.len() + held.len()) * (outage_starts as usize + 1) / total as usize;
    let tail = rest.split_off(at.min(rest.len()));
    rest.extend(held);
    rest.extend(tail);
    rest
}

pub async fn run(scale: Scale) -> Option<Report> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let mut db = SecantusDb::locate(scratch.path())?;
    db.start().await;
    let cluster =
        Arc::new(Cluster::new_on(Backend::MongoSqs, scale.tenants, "http://127.0.0.1:9", "", Some(&db.uri())).await?);
    let mut report = Report::new("mongodb-outage", Backend::MongoSqs, &scale);
    let (before, during, after) = phases(&scale);
    report.other.insert("outageSecs".into(), during);
    let updates =
        Arc::new(first_seen_during_the_outage(workload(&scale), scale.tenants - 1, before, before + during + after));

    let mut daemon = cluster.start("http,processor,relay,sender");
    cluster.wait_ready(&mut daemon).await;
    let poster = Poster::new(&cluster);
    // Webhooks at an even pace over the three phases; each update once (retried until acked).
    let total = Duration::from_secs(before + during + after);
    // Each POST counts in the phase it was sent in, whenever its answer (or timeout) comes.
    let phase = Arc::new(AtomicUsize::new(BEFORE));
    let outcomes: Arc<[[AtomicUsize; 2]; 4]> = Arc::default();
    let sending = {
        let (poster, updates, phase, outcomes) =
            (poster.clone(), Arc::clone(&updates), Arc::clone(&phase), Arc::clone(&outcomes));
        tokio::spawn(async move {
            let gap = total / updates.len() as u32;
            let begun = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..updates.len() {
                let due = begun + gap * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let (poster, updates, phase, outcomes) =
                    (poster.clone(), Arc::clone(&updates), Arc::clone(&phase), Arc::clone(&outcomes));
                tasks.spawn(async move {
                    let sent_in = phase.load(Ordering::Relaxed);
                    let ok = poster.post(i, &updates[i]).await;
                    outcomes[sent_in][usize::from(ok)].fetch_add(1, Ordering::Relaxed);
                });
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    tokio::time::sleep(Duration::from_secs(before)).await;
    db.stop();
    phase.store(DOWN, Ordering::Relaxed);
    let outage_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(during).saturating_sub(outage_started.elapsed())).await;
    phase.store(RESTARTING, Ordering::Relaxed);
    let restart_began = Instant::now();
    db.start().await;
    phase.store(AFTER, Ordering::Relaxed);
    report.other.insert("outageMs".into(), outage_started.elapsed().as_millis() as u64);
    report.other.insert("restartMs".into(), restart_began.elapsed().as_millis() as u64);
    sending.await.unwrap();
    poster.retry_unacknowledged(&updates, scale.posters).await;
    daemon.assert_running();

    let acked = poster.acked.lock().unwrap().clone();
    let stored = await_stored(&cluster, &acked, updates.len(), Duration::from_secs(90)).await;
    stored.count_into(&mut report, updates.len(), &poster, &acked);
    report.dead_lettered = dlq_depth(&cluster, QueueName::IncomingDlq).await;
    for (name, at) in
        [("BeforeOutage", BEFORE), ("DuringOutage", DOWN), ("WhileRestarting", RESTARTING), ("After", AFTER)]
    {
        let [refused, acked] = &outcomes[at];
        report.other.insert(format!("acknowledged{name}"), acked.load(Ordering::Relaxed) as u64);
        report.other.insert(format!("refused{name}"), refused.load(Ordering::Relaxed) as u64);
    }
    for (failure, n) in poster.failures.lock().unwrap().iter() {
        report.other.insert(format!("failed:{failure}"), *n);
    }
    daemon.kill9();
    report.seconds = started.elapsed().as_secs_f64();
    report.publish();
    Some(report)
}
