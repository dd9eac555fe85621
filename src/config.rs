//! Settings: built-in defaults → `kamshub.toml` → `KAMSHUB_*` environment (`__` nests) → flags.
//!
//! A bad or missing required setting fails with one line that names the key (the CLI exits 2).

use crate::sealing::MasterKey;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A setting that is malformed or missing; the message names the key and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Everything `kamshub` can be configured with. `Debug` never shows a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded adapters keep their files (`KAMSHUB_DATA_DIR`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The HTTP listener.
    #[serde(default)]
    pub http: HttpSettings,
    /// Which store, and where.
    #[serde(default)]
    pub store: StoreSettings,
    /// Which queues, and their redelivery rules.
    #[serde(default)]
    pub queue: QueueSettings,
    /// Which identity provider.
    #[serde(default)]
    pub identity: IdentitySettings,
    /// Provider API endpoints and Meta app secrets.
    #[serde(default)]
    pub providers: ProviderSettings,
    /// How log lines are written.
    #[serde(default)]
    pub log: LogSettings,
    /// The event log and live streams.
    #[serde(default)]
    pub events: EventSettings,
    /// Outgoing webhooks: which endpoints are allowed, how long deliveries are retried.
    #[serde(default)]
    pub webhooks: WebhookSettings,
    /// Base64 of the 32-byte key that seals channel credentials (`KAMSHUB_MASTER_KEY`). Without
    /// it the embedded deployment keeps a generated key file in the data dir.
    #[serde(default)]
    pub master_key: Option<SecretString>,
    /// Token that `POST /platform/bootstrap` requires (`KAMSHUB_BOOTSTRAP_TOKEN`); unset disables it.
    #[serde(default)]
    pub bootstrap_token: Option<SecretString>,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address the daemon listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Public base URL that providers reach us at; used in `setWebhook`. Defaults to `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Seconds a request may take before it is answered 503 (webhooks, API alike).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u32,
    /// Requests served at once; more wait (and time out if the wait is long).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: u32,
    /// Sign-in attempts (login, new password, refresh) allowed per email per minute.
    #[serde(default = "default_sign_ins_per_email")]
    pub sign_ins_per_email_per_minute: u32,
    /// Sign-in attempts allowed per client address per minute.
    #[serde(default = "default_sign_ins_per_address")]
    pub sign_ins_per_address_per_minute: u32,
    /// Proxies in front of kamshub that append to `X-Forwarded-For` (0: the TCP peer is the
    /// client). The client address is the entry this many hops from the right.
    #[serde(default)]
    pub trusted_proxies: u8,
    /// Seconds `serve` keeps answering after SIGTERM with `/readyz` at 503, so a load balancer
    /// stops routing to it before it stops accepting connections.
    #[serde(default)]
    pub drain_secs: u32,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            public_url: None,
            request_timeout_secs: default_request_timeout(),
            max_concurrent_requests: default_max_concurrent_requests(),
            sign_ins_per_email_per_minute: default_sign_ins_per_email(),
            sign_ins_per_address_per_minute: default_sign_ins_per_address(),
            trusted_proxies: 0,
            drain_secs: 0,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event; coloured only on a terminal (and never with `NO_COLOR`).
    #[default]
    Text,
    /// One JSON object per line, for journald-to-Loki/Elasticsearch pipelines.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Line format. (The level is `KAMSHUB_LOG`, an `EnvFilter` directive such as `info` or
    /// `kamshub=debug`, or `-v`.)
    #[serde(default)]
    pub format: LogFormat,
}

impl HttpSettings {
    /// The base URL webhooks are registered under, without a trailing slash.
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// Store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// SQLite in the data dir.
    #[default]
    Embedded,
    /// MongoDB at `[store] uri`.
    Mongodb,
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// Backend.
    #[serde(default)]
    pub kind: StoreKind,
    /// MongoDB connection string (may hold a password, so it is secret).
    #[serde(default)]
    pub uri: Option<SecretString>,
    /// MongoDB database name.
    #[serde(default = "default_database")]
    pub database: String,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self { kind: StoreKind::default(), uri: None, database: default_database() }
    }
}

/// Queue backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// SQLite-backed FIFO queues in the data dir.
    #[default]
    Embedded,
    /// Amazon SQS FIFO queues.
    Sqs,
}

/// `[queue]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Backend.
    #[serde(default)]
    pub kind: QueueKind,
    /// Queue name prefix: `{prefix}-incoming.fifo` and so on.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// AWS region of the queues.
    #[serde(default = "default_region")]
    pub region: String,
    /// Endpoint override (a local SQS stand-in).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Receives after which a message moves to the DLQ.
    #[serde(default = "default_max_receive_count")]
    pub max_receive_count: u32,
    /// Seconds a received message stays invisible before redelivery.
    #[serde(default = "default_visibility_timeout")]
    pub visibility_timeout_secs: u32,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            kind: QueueKind::default(),
            prefix: default_prefix(),
            region: default_region(),
            endpoint_url: None,
            max_receive_count: default_max_receive_count(),
            visibility_timeout_secs: default_visibility_timeout(),
        }
    }
}

/// Identity backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityKind {
    /// Users in the data dir, tokens signed by a local key.
    #[default]
    Local,
    /// An Amazon Cognito user pool.
    Cognito,
}

/// `[identity]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// Backend.
    #[serde(default)]
    pub kind: IdentityKind,
    /// Cognito user pool id (`us-east-2_AbC123`).
    #[serde(default)]
    pub user_pool_id: Option<String>,
    /// Cognito app client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Cognito app client secret, when the client has one (SECRET_HASH is sent then).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Region of the user pool; defaults to the pool id's prefix.
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override (a local Cognito stand-in).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// JWKS URL override; defaults to the pool's `/.well-known/jwks.json`.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

/// `[providers]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Telegram Bot API base URL.
    #[serde(default = "default_telegram_api_base")]
    pub telegram_api_base: String,
    /// Meta Graph API base URL, with its version.
    #[serde(default = "default_graph_api_base")]
    pub graph_api_base: String,
    /// Meta app secret: the key of `X-Hub-Signature-256`.
    #[serde(default)]
    pub meta_app_secret: Option<SecretString>,
    /// The token Meta echoes when verifying the webhook subscription.
    #[serde(default)]
    pub meta_verify_token: Option<SecretString>,
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self {
            telegram_api_base: default_telegram_api_base(),
            graph_api_base: default_graph_api_base(),
            meta_app_secret: None,
            meta_verify_token: None,
        }
    }
}

/// `[events]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Seconds an event is kept (streams resume, webhooks deliver and replay from the log) before
    /// it is pruned. At least `[webhooks] retry_for_secs`.
    #[serde(default = "default_retention")]
    pub retention_secs: u32,
    /// Milliseconds between looks at the store for new events, while streams are open (events
    /// stored by this process are streamed at once).
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u32,
    /// Seconds between keep-alive comments on an idle stream.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u32,
    /// Event streams open at once per process; more are answered 503.
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    /// Events waiting for one stream's client to read them. A client that leaves its buffer full
    /// for `slow_client_secs` is disconnected (it resumes with `Last-Event-ID`), so a slow reader
    /// never grows the daemon's memory.
    #[serde(default = "default_stream_buffer")]
    pub stream_buffer: u32,
    /// Seconds a stream's buffer may stay full before its client is disconnected.
    #[serde(default = "default_slow_client")]
    pub slow_client_secs: u32,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retention_secs: default_retention(),
            poll_ms: default_poll_ms(),
            keep_alive_secs: default_keep_alive(),
            max_streams: default_max_streams(),
            stream_buffer: default_stream_buffer(),
            slow_client_secs: default_slow_client(),
        }
    }
}

/// `[webhooks]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Accept plain `http://` endpoint URLs (development only).
    #[serde(default)]
    pub allow_http: bool,
    /// Accept endpoints on loopback, private and shared addresses (development, or integrators
    /// inside your own network). Link-local addresses are refused regardless.
    #[serde(default)]
    pub allow_private_addresses: bool,
    /// Seconds a delivery is retried (5xx, 408, 429, timeouts, refused connections) before it
    /// is FAILED.
    #[serde(default = "default_retry_for")]
    pub retry_for_secs: u32,
    /// Milliseconds before the first retry; each next one waits twice as long (with jitter).
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u32,
    /// Longest wait between two attempts, in seconds (at most 43200, SQS's visibility limit).
    #[serde(default = "default_backoff_cap")]
    pub backoff_cap_secs: u32,
    /// Seconds an endpoint has to answer one delivery.
    #[serde(default = "default_webhook_timeout")]
    pub timeout_secs: u32,
    /// Seconds of failures without a success after which an endpoint is disabled; default
    /// `retry_for_secs`.
    #[serde(default)]
    pub disable_after_secs: Option<u32>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private_addresses: false,
            retry_for_secs: default_retry_for(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_cap_secs: default_backoff_cap(),
            timeout_secs: default_webhook_timeout(),
            disable_after_secs: None,
        }
    }
}

impl WebhookSettings {
    /// Which endpoint addresses are allowed.
    pub fn address_policy(&self) -> crate::domain::webhook::AddressPolicy {
        crate::domain::webhook::AddressPolicy {
            allow_http: self.allow_http,
            allow_private: self.allow_private_addresses,
        }
    }

    /// How long deliveries are retried.
    pub fn retry_for(&self) -> Duration {
        Duration::from_secs(u64::from(self.retry_for_secs))
    }

    /// How long an endpoint may fail before it is disabled.
    pub fn disable_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.disable_after_secs.unwrap_or(self.retry_for_secs)))
    }

    /// The deliveries' retry policy: backoff, and retries ending `retry_for_secs` after the event;
    /// `max_attempts` is what fits in that window at the shortest waits (a safety net: the window
    /// ends retries first).
    pub fn retry_policy(&self) -> crate::domain::RetryPolicy {
        let mut policy = crate::domain::RetryPolicy {
            max_attempts: u32::MAX,
            backoff_base: Duration::from_millis(u64::from(self.backoff_base_ms)),
            backoff_cap: Duration::from_secs(u64::from(self.backoff_cap_secs)),
            give_up_after: Some(self.retry_for()),
        };
        policy.max_attempts = policy.attempts_within(self.retry_for());
        policy
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./kamshub-data")
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_request_timeout() -> u32 {
    30
}
fn default_max_concurrent_requests() -> u32 {
    1024
}
fn default_sign_ins_per_email() -> u32 {
    10
}
fn default_sign_ins_per_address() -> u32 {
    60
}
fn default_database() -> String {
    "kamsg".to_owned()
}
fn default_prefix() -> String {
    "kamshub-msg-dev".to_owned()
}
fn default_region() -> String {
    "us-east-2".to_owned()
}
fn default_max_receive_count() -> u32 {
    5
}
fn default_visibility_timeout() -> u32 {
    30
}
fn default_retention() -> u32 {
    7 * 24 * 3600
}
fn default_poll_ms() -> u32 {
    500
}
fn default_keep_alive() -> u32 {
    15
}
fn default_max_streams() -> u32 {
    1000
}
fn default_stream_buffer() -> u32 {
    256
}
fn default_slow_client() -> u32 {
    30
}
fn default_retry_for() -> u32 {
    24 * 3600
}
fn default_backoff_base_ms() -> u32 {
    5000
}
fn default_backoff_cap() -> u32 {
    3600
}
fn default_webhook_timeout() -> u32 {
    10
}
fn default_telegram_api_base() -> String {
    "https://api.telegram.org".to_owned()
}
fn default_graph_api_base() -> String {
    "https://graph.facebook.com/v21.0".to_owned()
}

/// Top-level names the environment may set; other `KAMSHUB_*` variables (`KAMSHUB_CONFIG`,
/// test switches) are not settings.
const ENV_KEYS: &[&str] = &[
    "data_dir",
    "http",
    "store",
    "queue",
    "identity",
    "providers",
    "events",
    "webhooks",
    "log",
    "master_key",
    "bootstrap_token",
];

/// `KAMSHUB_LOG` alone is the log filter (`KAMSHUB_LOG=debug`), not the `[log]` section, which
/// the environment sets key by key (`KAMSHUB_LOG__FORMAT=json`).
fn is_setting(key: &str) -> bool {
    let top = key.split('.').next().unwrap_or_default();
    ENV_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top)) && !key.eq_ignore_ascii_case("log")
}

/// Values given as command-line flags: the last layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FlagOverrides {
    /// `--data-dir`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads the layers. `config_file` is `--config`; without it `$KAMSHUB_CONFIG`, then
    /// `./kamshub.toml` if present.
    pub fn load(config_file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = config_path(config_file)? {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed("KAMSHUB_").split("__").filter(|key| is_setting(key.as_str())))
            .merge(Serialized::defaults(flags));
        let settings: Settings = figment.extract().map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: keys required by the chosen backends, and value formats.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let missing = |key: &str, env: &str, why: &str| {
            Err(ConfigError(format!("missing required setting `{key}` ({env}): {why}")))
        };
        if self.store.kind == StoreKind::Mongodb {
            if self.store.uri.is_none() {
                return missing("[store] uri", "KAMSHUB_STORE__URI", "[store] kind is mongodb");
            }
            if self.master_key.is_none() {
                return missing(
                    "master_key",
                    "KAMSHUB_MASTER_KEY",
                    "a shared store needs a shared key; a key file on one host cannot serve others",
                );
            }
        }
        if self.identity.kind == IdentityKind::Cognito {
            if self.identity.user_pool_id.is_none() {
                return missing(
                    "[identity] user_pool_id",
                    "KAMSHUB_IDENTITY__USER_POOL_ID",
                    "[identity] kind is cognito",
                );
            }
            if self.identity.client_id.is_none() {
                return missing("[identity] client_id", "KAMSHUB_IDENTITY__CLIENT_ID", "[identity] kind is cognito");
            }
        }
        if let Some(key) = &self.master_key {
            MasterKey::from_base64(key.expose_secret())
                .map_err(|why| ConfigError(format!("invalid setting `master_key` (KAMSHUB_MASTER_KEY): {why}")))?;
        }
        if self.queue.max_receive_count == 0 || self.queue.max_receive_count > 1000 {
            return Err(ConfigError(
                "invalid setting `[queue] max_receive_count`: must be 1 to 1000 (SQS's range)".to_owned(),
            ));
        }
        for (key, value) in [
            ("[http] request_timeout_secs", self.http.request_timeout_secs),
            ("[http] max_concurrent_requests", self.http.max_concurrent_requests),
            ("[http] sign_ins_per_email_per_minute", self.http.sign_ins_per_email_per_minute),
            ("[http] sign_ins_per_address_per_minute", self.http.sign_ins_per_address_per_minute),
        ] {
            if value == 0 {
                return Err(ConfigError(format!("invalid setting `{key}`: must be at least 1")));
            }
        }
        self.validate_events()?;
        if !(MIN_VISIBILITY_TIMEOUT_SECS..=43_200).contains(&self.queue.visibility_timeout_secs) {
            return Err(ConfigError(format!(
                "invalid setting `[queue] visibility_timeout_secs` (KAMSHUB_QUEUE__VISIBILITY_TIMEOUT_SECS): must be \
                 {MIN_VISIBILITY_TIMEOUT_SECS} to 43200 (12 h), not {}: consumers extend what they hold every third \
                 of it, and SQS counts whole seconds",
                self.queue.visibility_timeout_secs
            )));
        }
        for (key, url) in [
            ("[providers] telegram_api_base", Some(&self.providers.telegram_api_base)),
            ("[providers] graph_api_base", Some(&self.providers.graph_api_base)),
            ("[http] public_url", self.http.public_url.as_ref()),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError(format!("invalid setting `{key}`: `{url}` is not an http(s) URL")));
            }
        }
        Ok(())
    }
}

/// Shortest `[queue] visibility_timeout_secs`. Consumers extend what they hold every third of the
/// timeout and SQS counts visibility in whole seconds: below this a held message cannot be
/// extended in time (0 would make every received message visible again at once).
pub const MIN_VISIBILITY_TIMEOUT_SECS: u32 = 2;
impl Settings {
    /// Receives after which each source queue dead-letters a message: `[queue] max_receive_count`,
    /// and for webhook deliveries the attempts their retry window holds on top of it.
    pub fn receive_limits(&self) -> crate::queue::ReceiveLimits {
        let common = self.queue.max_receive_count;
        let deliveries = self.webhooks.retry_policy().max_attempts.saturating_add(common).min(1000);
        crate::queue::ReceiveLimits { common, deliveries }
    }

    fn validate_events(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, why: String| Err(ConfigError(format!("invalid setting `{key}`: {why}")));
        let (events, hooks) = (&self.events, &self.webhooks);
        for (key, value) in [
            ("[events] retention_secs", events.retention_secs),
            ("[events] keep_alive_secs", events.keep_alive_secs),
            ("[events] max_streams", events.max_streams),
            ("[events] stream_buffer", events.stream_buffer),
            ("[events] slow_client_secs", events.slow_client_secs),
            ("[webhooks] retry_for_secs", hooks.retry_for_secs),
            ("[webhooks] backoff_base_ms", hooks.backoff_base_ms),
            ("[webhooks] backoff_cap_secs", hooks.backoff_cap_secs),
            ("[webhooks] timeout_secs", hooks.timeout_secs),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if events.poll_ms < 20 {
            return invalid("[events] poll_ms", "must be at least 20".into());
        }
        if events.retention_secs < hooks.retry_for_secs {
            return invalid(
                "[events] retention_secs",
                format!(
                    "must be at least `[webhooks] retry_for_secs` ({}): deliveries read their event",
                    hooks.retry_for_secs
                ),
            );
        }
        if hooks.retry_for_secs > 3 * 24 * 3600 {
            return invalid(
                "[webhooks] retry_for_secs",
                "must be at most 259200 (3 days; SQS keeps messages 4)".into(),
            );
        }
        if hooks.backoff_cap_secs > 43_200 {
            return invalid("[webhooks] backoff_cap_secs", "must be at most 43200 (12 h)".into());
        }
        let needed = hooks.retry_policy().max_attempts.saturating_add(self.queue.max_receive_count);
        if needed > 1000 {
            return invalid(
                "[webhooks] backoff_cap_secs",
                format!(
                    "retries within `retry_for_secs` need {needed} receives of the deliveries queue, more than SQS's \
                     1000: raise the backoff"
                ),
            );
        }
        Ok(())
    }
}

fn config_path(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    Ok(chosen_file(explicit)?.map(|(path, _)| path))
}

/// The config file to read and what chose it (`--config`, `KAMSHUB_CONFIG`, or the working
/// directory's `kamshub.toml`).
fn chosen_file(explicit: Option<&Path>) -> Result<Option<(PathBuf, &'static str)>, ConfigError> {
    let chosen = explicit
        .map(|p| (p.to_path_buf(), "--config"))
        .or_else(|| std::env::var_os("KAMSHUB_CONFIG").map(|p| (PathBuf::from(p), "KAMSHUB_CONFIG")));
    match chosen {
        Some((path, source)) if !path.is_file() => {
            Err(ConfigError(format!("config file {} (from {source}) does not exist", path.display())))
        }
        Some(chosen) => Ok(Some(chosen)),
        None => Ok(Some(PathBuf::from("kamshub.toml")).filter(|p| p.is_file()).map(|p| (p, "./kamshub.toml"))),
    }
}

/// `KAMSHUB_*` variables that are kamshub's own switches rather than settings.
const SWITCHES: &[&str] = &["KAMSHUB_CONFIG", "KAMSHUB_LOG", "KAMSHUB_REQUIRE_SERVICES"];

/// Where the settings came from, for `kamshub doctor`. Names only: never a value.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The file read, and what chose it.
    pub file: Option<(PathBuf, &'static str)>,
    /// Keys the file sets, dotted (`queue.kind`).
    pub file_keys: Vec<String>,
    /// `KAMSHUB_*` variables that set a setting.
    pub env_vars: Vec<String>,
    /// `KAMSHUB_*` variables that are neither a setting nor a switch: ignored, likely a typo
    /// (`KAMSHUB_QUEUE_KIND` for `KAMSHUB_QUEUE__KIND`).
    pub ignored_env_vars: Vec<String>,
    /// Flags that set a setting.
    pub flags: Vec<String>,
}

impl Provenance {
    /// Reads which layer sets what, as [`Settings::load`] would layer them.
    pub fn read(config_file: Option<&Path>, flags: &FlagOverrides) -> Result<Self, ConfigError> {
        let file = chosen_file(config_file)?;
        let file_keys = match &file {
            Some((path, _)) => {
                let value: serde_json::Value = Figment::from(Toml::file_exact(path)).extract().map_err(describe)?;
                let mut keys = Vec::new();
                leaf_keys("", &value, &mut keys);
                keys
            }
            None => Vec::new(),
        };
        let (mut env_vars, mut ignored_env_vars) = (Vec::new(), Vec::new());
        for (name, _) in std::env::vars() {
            let Some(rest) = name.strip_prefix("KAMSHUB_") else { continue };
            let key = rest.to_lowercase().replace("__", ".");
            if is_setting(&key) {
                env_vars.push(name);
            } else if !SWITCHES.contains(&name.as_str()) && !name.starts_with("KAMSHUB_TEST_") {
                ignored_env_vars.push(name);
            }
        }
        env_vars.sort();
        ignored_env_vars.sort();
        let flags = flags.data_dir.iter().map(|_| "--data-dir".to_owned()).collect();
        Ok(Self { file, file_keys, env_vars, ignored_env_vars, flags })
    }
}

fn leaf_keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaf_keys(&key, v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// figment's error as one line: what is wrong, for which key, from which source (the file, or
/// the exact environment variable).
fn describe(e: figment::Error) -> ConfigError {
    let first = e.into_iter().next().expect("a figment error holds at least one error");
    let key = (!first.path.is_empty()).then(|| first.path.join("."));
    let source = first.metadata.as_ref().map(|m| match (&m.source, &key) {
        (Some(figment::Source::File(path)), _) => path.display().to_string(),
        (_, Some(key)) if m.name.contains("environment") => {
            format!("KAMSHUB_{}", key.replace('.', "__").to_uppercase())
        }
        _ => m.name.to_string(),
    });
    let mut line = first.kind.to_string();
    if let Some(key) = &key {
        line = format!("`{key}`: {line}");
    }
    if let Some(source) = source {
        line = format!("{line} (from {source})");
    }
    ConfigError(format!("invalid setting {line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        let settings: Settings = Figment::new().merge(Toml::string(text)).extract().map_err(describe)?;
        settings.validate()?;
        Ok(settings)
    }

    #[test]
    fn defaults_are_the_embedded_deployment() {
        let s = from_toml("").unwrap();
        assert_eq!(s.store.kind, StoreKind::Embedded);
        assert_eq!(s.queue.kind, QueueKind::Embedded);
        assert_eq!(s.identity.kind, IdentityKind::Local);
        assert_eq!(s.http.public_base(), "http://127.0.0.1:8080");
        assert_eq!(s.queue.prefix, "kamshub-msg-dev");
        assert_eq!(s.store.database, "kamsg");
    }

    #[test]
    fn mongodb_without_uri_names_the_key() {
        let err = from_toml("[store]\nkind = \"mongodb\"").unwrap_err().to_string();
        assert!(err.contains("[store] uri") && err.contains("KAMSHUB_STORE__URI"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_types_name_the_key() {
        let err = from_toml("[http]\nlisen = \"x\"").unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
        let err = from_toml("[queue]\nmax_receive_count = \"many\"").unwrap_err().to_string();
        assert!(err.contains("queue.max_receive_count"), "{err}");
    }

    #[test]
    fn a_visibility_timeout_too_short_to_extend_is_refused_naming_the_key() {
        for short in [0, 1] {
            let err = from_toml(&format!("[queue]\nvisibility_timeout_secs = {short}")).unwrap_err().to_string();
            assert!(
                err.contains("[queue] visibility_timeout_secs")
                    && err.contains("KAMSHUB_QUEUE__VISIBILITY_TIMEOUT_SECS"),
                "{err}"
            );
        }
        assert!(from_toml("[queue]\nvisibility_timeout_secs = 2").is_ok());
        assert!(from_toml("[queue]\nvisibility_timeout_secs = 43201").is_err());
    }

    #[test]
    fn the_log_filter_variable_is_not_the_log_section() {
        assert!(!is_setting("log") && !is_setting("LOG"));
        assert!(is_setting("log.format") && is_setting("queue.kind") && is_setting("master_key"));
        assert!(!is_setting("config") && !is_setting("test_mongodb_uri"));
        let s = from_toml("[log]\nformat = \"json\"\n[http]\ndrain_secs = 10").unwrap();
        assert_eq!((s.log.format, s.http.drain_secs), (LogFormat::Json, 10));
        let err = from_toml("[log]\nformat = \"xml\"").unwrap_err().to_string();
        assert!(err.contains("log.format"), "{err}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let s = from_toml("master_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n[providers]\nmeta_app_secret = \"s3cr3t-value\"")
            .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-value") && !shown.contains("AAAAAAAA"), "{shown}");
    }
}
