//! `spawn_app()`: a kamshub with real adapters (embedded, or MongoDB + SQS on the stand-ins),
//! one tenant with a Telegram channel and a Messenger page, HTTP on port 0, and a processor the
//! test steps itself.

use kamshub::app::App;
use kamshub::domain::{Channel, ChannelId, ChannelKind, DisplayName, ExternalId, TenantId, TenantName};
use kamshub::pipeline::pacing::{Limit, PacingLimits};
use kamshub::pipeline::processor::{Processor, ProcessorConfig, Step};
use kamshub::pipeline::relay::{Relay, RelayConfig};
use kamshub::pipeline::sender::{Sender, SenderConfig};
use kamshub::queue::{Queue, QueueName};
use kamshub::sealing::SealContext;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Meta app secret the test daemon verifies signatures with.
pub const APP_SECRET: &str = "test-app-secret-5f2c";
/// Verify token for Meta's subscription check.
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The Messenger page of the test channel.
pub const PAGE_ID: &str = "104857600012345";
/// The bootstrap token of the test daemon (`POST /platform/bootstrap`).
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0f3e";
/// Receives before a message moves to the DLQ, in tests.
pub const MAX_RECEIVES: u32 = 3;

/// Which adapters to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    /// MongoDB (SecantusDB) + SQS (moto).
    Production,
}

/// The queues' visibility timeout in tests, which the test's consumers heartbeat against: short,
/// so that a message a test abandons comes back soon. Longer on moto: idle it answers in
/// milliseconds, but while the whole suite runs against it a call can take more than a second,
/// and a heartbeat due every third of 2 s then misses its deadline; the message lapses, moto
/// hands out its group's next message first, and with [`MAX_RECEIVES`] of 3 a few lapses send a
/// message to the DLQ (both seen in CI runs of `scripts/test`).
pub fn visibility(backend: Backend) -> Duration {
    match backend {
        Backend::Embedded => Duration::from_secs(2),
        Backend::Production => Duration::from_secs(6),
    }
}

pub struct TestApp {
    pub app: Arc<App>,
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub tenant: TenantId,
    pub telegram: ChannelId,
    pub telegram_secret: String,
    pub messenger: ChannelId,
    pub processor: Processor,
    pub relay: Relay,
    pub sender: Arc<Sender>,
    pub queue: Arc<dyn Queue>,
    /// The queues' visibility timeout ([`visibility`]), which the app's consumers heartbeat against.
    pub visibility: Duration,
    /// The `kamshub.toml` this app runs on: `--config` for the CLI, on either backend.
    pub config: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a kamshub on `backend`, or `None` when the backend's services are not configured
/// (which fails instead under KAMSHUB_REQUIRE_SERVICES=1).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, "http://127.0.0.1:9", "http://127.0.0.1:9").await
}

/// Like [`spawn_app`], with the provider APIs at `telegram` and `graph` (fakes).
pub async fn spawn_app_with(backend: Backend, telegram: &str, graph: &str) -> Option<TestApp> {
    spawn_app_configured(backend, telegram, graph, "").await
}

/// Like [`spawn_app_with`], with `extra` appended to the configuration file (whole TOML sections,
/// e.g. `[identity]` for a Cognito pool or `[http]` limits).
pub async fn spawn_app_configured(backend: Backend, telegram: &str, graph: &str, extra: &str) -> Option<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), backend, telegram, graph, extra)?;
    let app = open_app(&config_path).await;

    let Seeded { tenant, telegram, telegram_secret, messenger } = seed(&app).await;

    let queue = app.queue().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon_app = Arc::clone(&app);
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        kamshub::daemon::serve(daemon_app, Some(listener), &[kamshub::daemon::Role::Http], shutdown).await.unwrap();
    });
    let config = ProcessorConfig {
        workers: 1,
        receive_wait: Duration::from_millis(300),
        visibility_timeout: visibility(backend),
        max_attempts: MAX_RECEIVES,
    };
    let store = app.store().await.unwrap();
    let processor = Processor::new(Arc::clone(&store), Arc::clone(&queue), app.providers().clone(), config);
    let relay = Relay::new(Arc::clone(&store), Arc::clone(&queue), RelayConfig::default());
    let sender_config = SenderConfig {
        workers: 2,
        receive_wait: Duration::from_millis(300),
        max_attempts: MAX_RECEIVES,
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(1),
        pacing: fast_pacing(),
        visibility_timeout: visibility(backend),
        give_up_after: None,
    };
    let sender = Arc::new(Sender::new(
        store,
        Arc::clone(&queue),
        kamshub::providers::Providers::new(
            app.telegram().clone().with_timeout(Duration::from_secs(1)),
            app.messenger().clone().with_timeout(Duration::from_secs(1)),
        ),
        app.master_key().unwrap(),
        sender_config,
    ));
    Some(TestApp {
        app,
        address,
        http: reqwest::Client::new(),
        tenant,
        telegram,
        telegram_secret,
        messenger,
        processor,
        relay,
        sender,
        queue,
        visibility: visibility(backend),
        config: config_path,
        stop: Some(stop),
        _dir: dir,
    })
}

/// Writes `kamshub.toml` in `dir` for `backend` (its data dir inside `dir`; a fresh database and
/// queue prefix on the stand-ins) with `extra` appended; `None` when the backend's services are
/// not configured.
pub fn write_config(
    dir: &std::path::Path,
    backend: Backend,
    telegram: &str,
    graph: &str,
    extra: &str,
) -> Option<std::path::PathBuf> {
    let mut toml = format!(
        "data_dir = \"{}\"\nbootstrap_token = \"{BOOTSTRAP_TOKEN}\"\n[providers]\nmeta_app_secret = \"{APP_SECRET}\"\nmeta_verify_token = \"{VERIFY_TOKEN}\"\n\
         telegram_api_base = \"{telegram}\"\ngraph_api_base = \"{graph}\"\n\
         [queue]\nmax_receive_count = {MAX_RECEIVES}\nvisibility_timeout_secs = {}\n",
        dir.join("data").display(),
        visibility(backend).as_secs()
    );
    if backend == Backend::Production {
        let uri = super::mongodb_uri()?;
        let endpoint = super::aws_endpoint()?;
        let prefix = super::unique_name("kh").replace('_', "-");
        toml = format!(
            "master_key = \"{}\"\n{toml}kind = \"sqs\"\nprefix = \"{prefix}\"\nendpoint_url = \"{endpoint}\"\n\
             [store]\nkind = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{}\"\n",
            kamshub::sealing::MasterKey::generate_base64(),
            super::unique_name("kamsg_app")
        );
    }
    toml.push_str(extra);
    let config = dir.join("kamshub.toml");
    std::fs::write(&config, toml).unwrap();
    Some(config)
}

/// The app a configuration file describes, with its SQS queues created when it uses SQS.
pub async fn open_app(config: &std::path::Path) -> Arc<App> {
    let settings = kamshub::config::Settings::load(Some(config), &Default::default()).unwrap();
    let app = Arc::new(App::new(settings));
    if app.settings.queue.kind == kamshub::config::QueueKind::Sqs {
        let sqs = kamshub::queue::sqs::SqsQueue::connect(&app.settings.queue)
            .await
            .unwrap()
            .with_limits(app.settings.receive_limits());
        sqs.init().await.unwrap();
    }
    app
}

/// What [`seed`] created.
pub struct Seeded {
    pub tenant: TenantId,
    pub telegram: ChannelId,
    pub telegram_secret: String,
    pub messenger: ChannelId,
}

/// Creates a tenant with a Telegram channel (known webhook secret) and the test Messenger page.
pub async fn seed(app: &App) -> Seeded {
    seed_tenant(app, PAGE_ID).await
}

/// Creates a tenant with a Telegram channel (known webhook secret) and the Messenger page `page_id`.
pub async fn seed_tenant(app: &App, page_id: &str) -> Seeded {
    let store = app.store().await.unwrap();
    let key = app.master_key().unwrap();
    let tenant = kamshub::domain::Tenant {
        id: TenantId::generate(),
        name: TenantName::parse(&super::unique_name("Tenant")).unwrap(),
        created_at: kamshub::domain::now(),
    };
    let audit = kamshub::domain::AuditEntry::new(
        &kamshub::domain::Actor::Cli("test".into()),
        &tenant.id,
        "tenant.create",
        tenant.id.as_str(),
        serde_json::json!({}),
    );
    store.insert_tenant(&tenant, None, &audit).await.unwrap();
    let telegram_secret = format!("secret-{}", super::unique_name("s").replace('_', "-"));
    let telegram = channel(&tenant.id, ChannelKind::Telegram, &super::unique_name("bot"), &key, Some(&telegram_secret));
    let messenger = channel(&tenant.id, ChannelKind::Messenger, page_id, &key, None);
    store.insert_channel(&telegram).await.unwrap();
    store.insert_channel(&messenger).await.unwrap();
    Seeded { tenant: tenant.id, telegram: telegram.id, telegram_secret, messenger: messenger.id }
}

fn channel(
    tenant: &TenantId,
    kind: ChannelKind,
    external: &str,
    key: &kamshub::sealing::MasterKey,
    secret: Option<&str>,
) -> Channel {
    let id = ChannelId::generate();
    let now = kamshub::domain::now();
    Channel {
        credentials: key.seal(&SecretString::from("token"), SealContext::channel_credentials(id.as_str())),
        webhook_secret: secret
            .map(|s| key.seal(&SecretString::from(s.to_owned()), SealContext::channel_webhook_secret(id.as_str()))),
        tenant_id: tenant.clone(),
        kind,
        display_name: DisplayName::parse("Test").unwrap(),
        external_id: match kind {
            ChannelKind::Telegram => ExternalId::telegram_username(external).unwrap(),
            ChannelKind::Messenger => ExternalId::page_id(external).unwrap(),
        },
        is_active: true,
        health: Default::default(),
        auto_reply: None,
        created_at: now,
        updated_at: now,
        id,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Posts a Telegram update with the channel's secret.
    pub async fn post_telegram(&self, update: &serde_json::Value) -> reqwest::StatusCode {
        self.http
            .post(self.url(&format!("/webhooks/telegram/{}", self.telegram)))
            .header("X-Telegram-Bot-Api-Secret-Token", &self.telegram_secret)
            .json(update)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Posts raw bytes as a Telegram update with the channel's secret.
    pub async fn post_telegram_raw(&self, body: Vec<u8>) -> reqwest::StatusCode {
        self.http
            .post(self.url(&format!("/webhooks/telegram/{}", self.telegram)))
            .header("X-Telegram-Bot-Api-Secret-Token", &self.telegram_secret)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Posts a Messenger body signed with the app secret.
    pub async fn post_messenger(&self, body: &str) -> reqwest::StatusCode {
        self.http
            .post(self.url("/webhooks/messenger"))
            .header("X-Hub-Signature-256", sign(body.as_bytes()))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Steps the processor until `done` holds (checked after each step), or panics after 60 s.
    pub async fn process_until<F, Fut>(&self, mut done: F) -> Step
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut total = Step::default();
        loop {
            if done().await {
                return total;
            }
            assert!(Instant::now() < deadline, "condition not reached in 60 s; processed so far: {total:?}");
            let step = self.processor.run_once().await.unwrap();
            total.received += step.received;
            total.applied += step.applied;
            total.duplicates += step.duplicates;
            total.dead_lettered += step.dead_lettered;
            total.retried += step.retried;
        }
    }

    /// Steps the processor until the incoming queue is empty and nothing is in flight.
    pub async fn drain(&self) -> Step {
        let queue = Arc::clone(&self.queue);
        self.process_until(move || {
            let queue = Arc::clone(&queue);
            async move {
                let depth = queue.depth(QueueName::Incoming).await.unwrap();
                depth.visible == 0 && depth.in_flight == 0
            }
        })
        .await
    }

    /// Runs the real `kamshub` binary on this app's config (either backend) with `-o json`;
    /// panics unless it succeeds.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli().args(["-o", "json"]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Like [`TestApp::cli_json`], printing a table: the text a person reads.
    pub fn cli_table(&self, args: &[&str]) -> String {
        let out = self.cli().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub async fn store(&self) -> Arc<dyn kamshub::store::Store> {
        self.app.store().await.unwrap()
    }

    /// Runs a processor (four workers) in the background, as `serve` does, until the token is
    /// cancelled; the task ends once its in-flight batches are finished.
    pub async fn run_processor(&self) -> (tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
        let config = ProcessorConfig {
            workers: 4,
            receive_wait: Duration::from_millis(500),
            visibility_timeout: self.visibility,
            max_attempts: MAX_RECEIVES,
        };
        let processor =
            Arc::new(Processor::new(self.store().await, Arc::clone(&self.queue), self.app.providers().clone(), config));
        let stop = tokio_util::sync::CancellationToken::new();
        (stop.clone(), tokio::spawn(processor.run(stop)))
    }

    /// `kamshub --config <this app's settings> ARGS`, with no `KAMSHUB_*` from the environment.
    pub fn cli(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kamshub"));
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMSHUB_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("--config").arg(&self.config);
        cmd
    }
}

/// Pacing loose enough for tests that are not about pacing.
pub fn fast_pacing() -> PacingLimits {
    let fast = Limit::Bucket { every: Duration::from_micros(100), burst: 1000 };
    PacingLimits {
        telegram_bot: fast,
        telegram_chat: fast,
        telegram_group: fast,
        messenger_page: fast,
        messenger_thread: fast,
    }
}

/// `sha256=<hex>` of `body` under the test app secret.
pub fn sign(body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A private-chat text update.
pub fn telegram_text(update_id: i64, chat_id: i64, message_id: i64, date: i64, text: &str) -> serde_json::Value {
    serde_json::json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "from": {"id": chat_id, "is_bot": false, "first_name": "Ada", "username": "ada"},
            "chat": {"id": chat_id, "first_name": "Ada", "type": "private"},
            "date": date,
            "text": text
        }
    })
}

/// A Messenger POST body with one inbound text message.
pub fn messenger_text(psid: &str, mid: &str, timestamp_ms: i64, text: &str) -> String {
    serde_json::json!({
        "object": "page",
        "entry": [{"id": PAGE_ID, "time": timestamp_ms, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": timestamp_ms,
            "message": {"mid": mid, "text": text}
        }]}]
    })
    .to_string()
}
