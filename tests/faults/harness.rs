//! The harness's machinery: a deployment (config file, tenants), `kamshub serve` processes that
//! can be `kill -9`-ed and restarted, the scale of a run, and the per-scenario report.

use crate::common;
use kamshub::app::App;
use kamshub::domain::TenantId;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which backends a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// SQLite store and queues in a data dir.
    Embedded,
    /// MongoDB (SecantusDB) and SQS (moto).
    MongoSqs,
}

/// How big a run is: the test suite's short run, or the documented full one
/// (`KAMSHUB_FAULTS=full`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scale {
    pub full: bool,
    pub tenants: usize,
    pub conversations_per_tenant: usize,
    pub messages_per_conversation: usize,
    /// Concurrent webhook posters.
    pub posters: usize,
    /// kill -9s of the daemon during the webhook scenario (at random points of the stream).
    pub kills: usize,
    /// Replies in the sender scenario.
    pub replies: usize,
}

impl Scale {
    /// The scale `KAMSHUB_FAULTS` asks for. On the stand-ins (moto and SecantusDB are Python and
    /// take some tens of requests a second on a shared 2-core machine) the full run is a tenth of
    /// the embedded one, and the short run smaller still.
    pub fn from_env(backend: Backend) -> Scale {
        let full = std::env::var("KAMSHUB_FAULTS").is_ok_and(|v| v == "full");
        match (full, backend) {
            (true, Backend::Embedded) => Scale {
                full,
                tenants: 20,
                conversations_per_tenant: 10,
                messages_per_conversation: 50,
                posters: 48,
                kills: 12,
                replies: 2_000,
            },
            (true, Backend::MongoSqs) => Scale {
                full,
                tenants: 20,
                conversations_per_tenant: 10,
                messages_per_conversation: 5,
                posters: 16,
                kills: 6,
                replies: 400,
            },
            (false, Backend::Embedded) => Scale {
                full,
                tenants: 4,
                conversations_per_tenant: 5,
                messages_per_conversation: 30,
                posters: 16,
                kills: 3,
                replies: 150,
            },
            (false, Backend::MongoSqs) => Scale {
                full,
                tenants: 2,
                conversations_per_tenant: 3,
                messages_per_conversation: 20,
                posters: 8,
                kills: 2,
                replies: 24,
            },
        }
    }
}

/// One tenant of the deployment with its Telegram channel.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub telegram: kamshub::domain::ChannelId,
    pub telegram_secret: String,
}

/// A deployment the harness runs `kamshub serve` processes on: its configuration file, the
/// library over the same configuration (seeding, verification), and a fixed HTTP port so a
/// restarted daemon answers at the same address.
pub struct Cluster {
    pub app: Arc<App>,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub port: u16,
    pub tenants: Vec<Tenant>,
    /// `KAMSHUB_*` variables the daemons get on top of the configuration file (the harness's own
    /// library calls go by the file alone).
    pub daemon_env: Vec<(String, String)>,
    _temp: Option<tempfile::TempDir>,
}

impl Cluster {
    /// A fresh deployment with `tenants` tenants, providers at `provider_base` (both APIs), and
    /// `extra` TOML appended. `None` when the backend's services are not configured (a failure
    /// under KAMSHUB_REQUIRE_SERVICES=1).
    pub async fn new(backend: Backend, tenants: usize, provider_base: &str, extra: &str) -> Option<Cluster> {
        Self::new_on(backend, tenants, provider_base, extra, None).await
    }

    /// Like [`Cluster::new`], on the MongoDB server at `mongodb_uri` instead of the suite's.
    pub async fn new_on(
        backend: Backend,
        tenants: usize,
        provider_base: &str,
        extra: &str,
        mongodb_uri: Option<&str>,
    ) -> Option<Cluster> {
        let mut temp = tempfile::tempdir().unwrap();
        if std::env::var_os("KAMSHUB_FAULTS_KEEP").is_some() {
            temp.disable_cleanup(true);
            println!("faults: keeping the deployment in {}", temp.path().display());
        }
        let dir = temp.path().to_owned();
        let port = free_port();
        let mut toml = format!(
            "data_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [providers]\nmeta_app_secret = \"{}\"\ntelegram_api_base = \"{provider_base}\"\ngraph_api_base = \"{provider_base}\"\n\
             [queue]\nmax_receive_count = 5\nvisibility_timeout_secs = 4\n",
            dir.join("data").display(),
            common::app::APP_SECRET,
        );
        if backend == Backend::MongoSqs {
            let uri = match mongodb_uri {
                Some(uri) => uri.to_owned(),
                None => common::mongodb_uri()?,
            };
            let endpoint = common::aws_endpoint()?;
            let prefix = common::unique_name("kf").replace('_', "-");
            toml = format!(
                "master_key = \"{}\"\n{toml}kind = \"sqs\"\nprefix = \"{prefix}\"\nendpoint_url = \"{endpoint}\"\n\
                 [store]\nkind = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{}\"\n",
                kamshub::sealing::MasterKey::generate_base64(),
                common::unique_name("kamsg_faults")
            );
        }
        toml.push_str(extra);
        let config = dir.join("kamshub.toml");
        std::fs::write(&config, toml).unwrap();
        let settings = kamshub::config::Settings::load(Some(&config), &Default::default()).unwrap();
        let app = Arc::new(App::new(settings));
        if backend == Backend::MongoSqs {
            let sqs = kamshub::queue::sqs::SqsQueue::connect(&app.settings.queue).await.unwrap();
            sqs.init().await.unwrap();
        }
        let mut seeded = Vec::new();
        for n in 0..tenants {
            let page = format!("{}", 104_857_600_100_000u64 + n as u64);
            let s = common::app::seed_tenant(&app, &page).await;
            seeded.push(Tenant { id: s.tenant, telegram: s.telegram, telegram_secret: s.telegram_secret });
        }
        Some(Cluster { app, config, dir, port, tenants: seeded, daemon_env: Vec::new(), _temp: Some(temp) })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts `kamshub serve --roles ROLES` on this deployment; its log goes to a file in the
    /// deployment's directory.
    pub fn start(&self, roles: &str) -> Proc {
        let log_path = self.dir.join(format!("serve-{}.log", roles.replace(',', "-")));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kamshub"));
        // The deployment's settings are its config file's alone; the log filter (`KAMSHUB_LOG`)
        // passes through, to debug a run.
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMSHUB_") && key != "KAMSHUB_LOG" {
                cmd.env_remove(key);
            }
        }
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .args(["serve", "--roles", roles])
            .envs(self.daemon_env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc { child: Some(child), log: log_path }
    }

    /// Runs `kamshub --config FILE ARGS` (the real CLI, as an operator would) and returns its
    /// JSON output; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kamshub"));
        // The deployment's settings are its config file's alone; the log filter (`KAMSHUB_LOG`)
        // passes through, to debug a run.
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMSHUB_") && key != "KAMSHUB_LOG" {
                cmd.env_remove(key);
            }
        }
        let out = cmd.arg("--config").arg(&self.config).args(args).output().unwrap();
        assert!(out.status.success(), "kamshub {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until the HTTP role answers `/readyz` with 200.
    pub async fn wait_ready(&self, proc: &mut Proc) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/readyz", self.base_url())).send().await
                && r.status() == 200
            {
                return;
            }
            proc.assert_running();
            assert!(Instant::now() < deadline, "the daemon did not become ready in 60 s; log: {}", proc.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Picks a loopback port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `kamshub serve`.
pub struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    /// `kill -9`: no drain, no cleanup, whatever was in flight stays where it was.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let exited = child.try_wait().unwrap();
            assert!(exited.is_none(), "serve exited ({exited:?}); log: {}", tail(&self.log));
        }
    }

    /// A check, usable while the process is owned elsewhere, that it has not exited.
    pub fn alive(&self) -> impl Fn() -> bool + use<> {
        let pid = self.child.as_ref().map(|c| c.id());
        move || pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}/stat")).exists() && !zombie(pid))
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// What one scenario found, in Jepsen's terms: of what was attempted, what the system
/// acknowledged, what it stored, what it lost (acknowledged, never stored), what it duplicated,
/// and, for replies, what the provider received twice.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: String,
    pub backend: String,
    pub full: bool,
    /// Distinct items the scenario tried to get in (webhook updates, replies).
    pub attempted: usize,
    /// Requests made for them (deliveries, redeliveries, concurrent copies).
    pub requests: usize,
    /// Distinct items kamshub acknowledged (200 to a webhook, 202/created for a reply).
    pub acknowledged: usize,
    /// Distinct items found in the store (inbound) or delivered by the fake provider (replies).
    pub stored: usize,
    /// Acknowledged and never stored (inbound) or never delivered and not reported UNKNOWN or
    /// FAILED (replies).
    pub lost: usize,
    /// Extra copies in the store beyond one per item.
    pub duplicated: usize,
    /// Stored items nobody sent.
    pub unexpected: usize,
    /// Provider deliveries beyond one per reply.
    pub double_sent: usize,
    /// Double sends matched to an UNKNOWN item or a crash window.
    pub double_sent_explained: usize,
    /// Conversations whose messages are listed out of provider order (adjacent pairs).
    pub order_violations: usize,
    /// Processes killed with SIGKILL during the run.
    pub kills: usize,
    /// Items the run left in a DLQ.
    pub dead_lettered: usize,
    /// Further counts a scenario reports (by name).
    pub other: std::collections::BTreeMap<String, u64>,
    pub seconds: f64,
}

impl Report {
    pub fn new(scenario: &str, backend: Backend, scale: &Scale) -> Report {
        Report {
            scenario: scenario.to_owned(),
            backend: serde_json::to_value(backend).unwrap().as_str().unwrap().to_owned(),
            full: scale.full,
            ..Report::default()
        }
    }

    /// Prints the report and appends it as one JSON line to `target/faults/report.jsonl`.
    pub fn publish(&self) {
        println!(
            "FAULTS {:<26} {:<9} attempted={} requests={} acknowledged={} stored={} lost={} duplicated={} \
             unexpected={} double-sent={} (explained {}) order-violations={} kills={} dlq={} {:?} {:.1}s",
            self.scenario,
            self.backend,
            self.attempted,
            self.requests,
            self.acknowledged,
            self.stored,
            self.lost,
            self.duplicated,
            self.unexpected,
            self.double_sent,
            self.double_sent_explained,
            self.order_violations,
            self.kills,
            self.dead_lettered,
            self.other,
            self.seconds,
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/faults");
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("report.jsonl")) {
            use std::io::Write;
            let _ = writeln!(file, "{}", serde_json::to_string(self).unwrap());
        }
    }
}
