//! `kamshub doctor`: checks a deployment the way an SRE would before trusting it, and says how to
//! fix each problem. Every check is bounded in time, reads only (it never creates a queue, a key
//! or a user), and never prints a secret.

use crate::app::App;
use crate::config::{IdentityKind, Provenance, QueueKind, StoreKind};
use crate::domain::{Channel, ChannelKind};
use crate::identity::cognito::CognitoIdentity;
use crate::queue::sqs::SqsQueue;
use crate::queue::{Queue, QueueName};
use crate::sealing::{MasterKey, SealContext};
use secrecy::ExposeSecret;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Longest one check waits for a backend.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// SQS's longest retention, which kamshub gives its DLQs so failures wait for a redrive.
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but something deserves attention.
    Warn,
    /// Broken: `doctor` exits 1.
    Fail,
}

/// One line of the report (`-o json`: `[{check, status, detail, fix}]`).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub check: String,
    /// OK, WARN or FAIL.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do about it (`null` when OK).
    pub fix: Option<String>,
}

impl Check {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }
    fn warn(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { check: check.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check, in the order an operator fixes things.
pub async fn run(app: &App, provenance: &Provenance) -> Vec<Check> {
    let mut report = vec![config(provenance)];
    let channels = match bounded(store(app)).await {
        Ok((check, channels)) => {
            report.push(check);
            Some(channels)
        }
        Err(why) => {
            report.push(store_unreachable(app, &why));
            None
        }
    };
    report.extend(bounded(queues(app)).await.unwrap_or_else(|why| vec![queues_unreachable(&why)]));
    report.push(bounded(identity(app)).await.unwrap_or_else(|why| identity_unreachable(&why)));
    report.push(master_key(app, channels.as_deref()));
    for kind in [ChannelKind::Telegram, ChannelKind::Messenger] {
        report.push(provider(app, kind, channels.as_deref()).await);
    }
    report.push(webhooks(app, channels.as_deref()));
    report
}

/// Whether any check failed.
pub fn failed(report: &[Check]) -> bool {
    report.iter().any(|c| c.status == Status::Fail)
}

async fn bounded<T>(check: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())))
}

fn config(p: &Provenance) -> Check {
    let file = match &p.file {
        Some((path, chosen_by)) if p.file_keys.is_empty() => {
            format!("file {} (via {chosen_by}) sets nothing", path.display())
        }
        Some((path, chosen_by)) => format!("file {} (via {chosen_by}) sets {}", path.display(), p.file_keys.join(", ")),
        None => "no config file".to_owned(),
    };
    let env = if p.env_vars.is_empty() {
        "no KAMSHUB_* settings in the environment".to_owned()
    } else {
        format!("environment sets {}", p.env_vars.join(", "))
    };
    let flags = if p.flags.is_empty() { String::new() } else { format!("; flags set {}", p.flags.join(", ")) };
    let detail = format!("{file}; {env}{flags}; everything else is the default");
    if p.ignored_env_vars.is_empty() {
        Check::ok("config", detail)
    } else {
        Check::warn(
            "config",
            format!("{detail}; ignored (not settings): {}", p.ignored_env_vars.join(", ")),
            "a section key needs two underscores (KAMSHUB_QUEUE__KIND, not KAMSHUB_QUEUE_KIND); see examples/kamshub.toml",
        )
    }
}

/// The store answers, and every channel (for the key and provider checks).
async fn store(app: &App) -> Result<(Check, Vec<Channel>), String> {
    let store = app.store().await.map_err(|e| e.to_string())?;
    store.ping().await.map_err(|e| e.to_string())?;
    let mut channels = Vec::new();
    let tenants = store.list_tenants().await.map_err(|e| e.to_string())?;
    for tenant in &tenants {
        channels.extend(store.list_channels(&tenant.id).await.map_err(|e| e.to_string())?);
    }
    let s = &app.settings;
    let what = match s.store.kind {
        StoreKind::Embedded => format!("SQLite {} (schema migrated)", s.data_dir.join("kamshub.sqlite3").display()),
        StoreKind::Mongodb => format!("MongoDB database `{}` (indexes ensured)", s.store.database),
    };
    Ok((Check::ok("store", format!("{what}: {} tenants, {} channels", tenants.len(), channels.len())), channels))
}

fn store_unreachable(app: &App, why: &str) -> Check {
    let fix = match app.settings.store.kind {
        StoreKind::Embedded => "check that the data dir is readable and writable by this user, and its disk has room",
        StoreKind::Mongodb => "check [store] uri (KAMSHUB_STORE__URI), the network path and credentials to MongoDB",
    };
    Check::fail("store", format!("unreachable: {why}"), fix)
}

async fn queues(app: &App) -> Result<Vec<Check>, String> {
    let s = &app.settings.queue;
    let mut checks = Vec::new();
    match s.kind {
        QueueKind::Embedded => {
            app.queue().await.map_err(|e| e.to_string())?;
            checks.push(Check::ok(
                "queues",
                format!(
                    "embedded FIFO queues in {} (DLQ after {} receives, visibility {} s, as configured)",
                    app.settings.data_dir.join("queues.sqlite3").display(),
                    s.max_receive_count,
                    s.visibility_timeout_secs
                ),
            ));
        }
        QueueKind::Sqs => {
            let sqs = SqsQueue::connect(s).await.map_err(|e| e.to_string())?;
            let setups = sqs.describe().await.map_err(|e| e.to_string())?;
            let limits = app.settings.receive_limits();
            checks.extend(setups.iter().map(|setup| sqs_queue(setup, s, limits)));
            if setups.iter().any(|q| !q.exists) {
                return Ok(checks);
            }
        }
    }
    let queue = app.queue().await.map_err(|e| e.to_string())?;
    for source in QueueName::SOURCES {
        checks.push(dlq_depth(queue.as_ref(), source).await?);
    }
    Ok(checks)
}

/// One SQS queue against what the daemon expects of it.
fn sqs_queue(
    q: &crate::queue::sqs::QueueSetup,
    s: &crate::config::QueueSettings,
    limits: crate::queue::ReceiveLimits,
) -> Check {
    let check = format!("queue {}", q.queue);
    let init = "kamshub queues init";
    if !q.exists {
        return Check::fail(check, format!("{} does not exist", q.name), init);
    }
    if !q.fifo {
        return Check::fail(check, format!("{} is not a FIFO queue", q.name), format!("delete it, then {init}"));
    }
    let mut problems = Vec::new();
    let mut failed = false;
    let mut detail = format!("{}: FIFO", q.name);
    if let Some(dlq) = q.queue.dlq() {
        let expected = dlq.full_name(&s.prefix);
        match &q.redrive {
            None => {
                failed = true;
                problems.push(
                    "no redrive policy: a failing message is retried forever and blocks its conversation".to_owned(),
                );
            }
            Some((target, _)) if *target != expected => {
                failed = true;
                problems.push(format!("its redrive policy sends to {target}, not {expected}"));
            }
            Some((_, count)) if Some(*count) != limits.of(q.queue) => {
                let wanted = limits.of(q.queue).unwrap_or(s.max_receive_count);
                problems.push(format!("maxReceiveCount is {count}, the daemon is configured for {wanted}"));
            }
            Some((target, count)) => detail.push_str(&format!(", to {target} after {count} receives")),
        }
        match q.visibility_secs {
            Some(v) if v == s.visibility_timeout_secs => detail.push_str(&format!(", visibility {v} s")),
            Some(v) => problems.push(format!(
                "visibility timeout is {v} s, the daemon's heartbeats assume {} s",
                s.visibility_timeout_secs
            )),
            None => problems.push("no visibility timeout reported".to_owned()),
        }
    } else if q.retention_secs.is_some_and(|r| r < DLQ_RETENTION_SECS) {
        problems.push(format!(
            "retention is {} s: dead messages expire before 14 days",
            q.retention_secs.unwrap_or_default()
        ));
    }
    if q.content_based_dedupe {
        problems.push("content-based deduplication is on (kamshub sets its own ids)".to_owned());
    }
    match (failed, problems.is_empty()) {
        (true, _) => Check::fail(check, format!("{}: {}", q.name, problems.join("; ")), init),
        (false, false) => Check::warn(check, format!("{}: {}", q.name, problems.join("; ")), init),
        (false, true) => Check::ok(check, detail),
    }
}

async fn dlq_depth(queue: &dyn Queue, source: QueueName) -> Result<Check, String> {
    let dlq = source.dlq().expect("a source queue has a DLQ");
    let depth = queue.depth(dlq).await.map_err(|e| e.to_string())?;
    let count = depth.visible + depth.in_flight;
    Ok(if count == 0 {
        Check::ok(format!("dlq {source}"), format!("{dlq} is empty"))
    } else {
        Check::warn(
            format!("dlq {source}"),
            format!("{dlq} holds {count} messages"),
            format!("see why with `kamshub dlq peek {source}`; after fixing the cause, `kamshub dlq redrive {source}`"),
        )
    })
}

fn queues_unreachable(why: &str) -> Check {
    Check::fail("queues", format!("unreachable: {why}"), "check [queue] region/endpoint_url and the AWS credentials")
}

async fn identity(app: &App) -> Result<Check, String> {
    let s = &app.settings.identity;
    if s.kind == IdentityKind::Local {
        app.local_identity().await.map_err(|e| e.to_string())?;
        return Ok(Check::ok("identity", format!("local users in {}", app.settings.data_dir.display())));
    }
    let cognito = CognitoIdentity::new(s).await.map_err(|e| e.to_string())?;
    let pool = cognito.inspect().await.map_err(|e| e.to_string())?;
    let pool_id = s.user_pool_id.as_deref().unwrap_or_default();
    if !pool.has_tenant_attribute {
        return Ok(Check::fail(
            "identity",
            format!("user pool {pool_id} does not declare custom:tenantID"),
            "add a mutable String attribute `tenantID` to the pool's schema",
        ));
    }
    if !pool.admin_password_auth {
        return Ok(Check::fail(
            "identity",
            "the app client does not allow ADMIN_USER_PASSWORD_AUTH: sign-in fails",
            "enable ALLOW_ADMIN_USER_PASSWORD_AUTH (and ALLOW_REFRESH_TOKEN_AUTH) on the app client",
        ));
    }
    let groups = if pool.groups.is_empty() { "none yet".to_owned() } else { pool.groups.join(", ") };
    let detail = format!(
        "pool {} ({pool_id}), app client {} a secret, groups: {groups} (role groups are created on first use)",
        pool.pool_name,
        if pool.client_has_secret { "with" } else { "without" }
    );
    Ok(if pool.client_writes_tenant {
        Check::warn(
            "identity",
            format!("{detail}; the app client may write custom:tenantID (kamshub checks it against the store)"),
            "set the app client's write attributes to exclude custom:tenantID (aws cognito-idp update-user-pool-client --write-attributes email ...)",
        )
    } else {
        Check::ok("identity", detail)
    })
}

fn identity_unreachable(why: &str) -> Check {
    Check::fail(
        "identity",
        format!("cannot inspect the identity provider: {why}"),
        "check [identity] user_pool_id, client_id, region/endpoint_url and the AWS credentials",
    )
}

/// The master key exists (without creating one) and opens every sealed credential.
fn master_key(app: &App, channels: Option<&[Channel]>) -> Check {
    let key_file = app.settings.data_dir.join("master.key");
    let key: Result<Option<Arc<MasterKey>>, String> = match &app.settings.master_key {
        Some(text) => MasterKey::from_base64(text.expose_secret()).map(|k| Some(Arc::new(k))),
        None if key_file.is_file() => app.master_key().map(Some).map_err(|e| e.to_string()),
        None => Ok(None),
    };
    let source = if app.settings.master_key.is_some() {
        "KAMSHUB_MASTER_KEY".to_owned()
    } else {
        key_file.display().to_string()
    };
    let key = match key {
        Ok(key) => key,
        Err(why) => {
            return Check::fail(
                "master key",
                format!("{source}: {why}"),
                "set KAMSHUB_MASTER_KEY to the base64 of 32 bytes",
            );
        }
    };
    let Some(channels) = channels else {
        return Check::warn(
            "master key",
            format!("{source} present; cannot try it: the store is unreachable"),
            "fix the store first",
        );
    };
    let Some(key) = key else {
        return if channels.is_empty() {
            Check::ok("master key", format!("none yet: {source} is created with the first channel"))
        } else {
            Check::fail(
                "master key",
                format!("{} channels hold sealed credentials but {source} is missing", channels.len()),
                "restore the key file from backup, or set KAMSHUB_MASTER_KEY to the key they were sealed with",
            )
        };
    };
    let mut sealed = 0;
    let mut refused = Vec::new();
    for channel in channels {
        let id = channel.id.as_str();
        let secrets = std::iter::once((&channel.credentials, SealContext::channel_credentials(id)))
            .chain(channel.webhook_secret.as_ref().map(|s| (s, SealContext::channel_webhook_secret(id))));
        for (secret, context) in secrets {
            sealed += 1;
            if key.open(secret, context).is_err() {
                refused.push(channel.id.to_string());
            }
        }
    }
    refused.dedup();
    if refused.is_empty() {
        Check::ok("master key", format!("{source} opens all {sealed} sealed secrets of {} channels", channels.len()))
    } else {
        Check::fail(
            "master key",
            format!(
                "{source} cannot open the sealed secrets of {} channels (e.g. {}): wrong key?",
                refused.len(),
                refused[0]
            ),
            "use the key the credentials were sealed with (KAMSHUB_MASTER_KEY or the data dir's master.key)",
        )
    }
}

async fn provider(app: &App, kind: ChannelKind, channels: Option<&[Channel]>) -> Check {
    let (check, base, key) = match kind {
        ChannelKind::Telegram => {
            ("telegram api", &app.settings.providers.telegram_api_base, "[providers] telegram_api_base")
        }
        ChannelKind::Messenger => ("graph api", &app.settings.providers.graph_api_base, "[providers] graph_api_base"),
    };
    let used = channels.is_none_or(|all| all.iter().any(|c| c.kind == kind));
    let client = reqwest::Client::builder().timeout(CHECK_TIMEOUT).build().expect("a plain HTTP client builds");
    match client.get(base.as_str()).send().await {
        Ok(response) => Check::ok(check, format!("{base} answers (HTTP {})", response.status().as_u16())),
        Err(e) => {
            let detail = format!("{base} unreachable: {}", error_chain(&e.without_url()));
            let fix = format!("check {key}, DNS and the egress firewall/proxy");
            if used {
                Check::fail(check, detail, fix)
            } else {
                Check::warn(check, format!("{detail} (no such channel yet)"), fix)
            }
        }
    }
}

fn webhooks(app: &App, channels: Option<&[Channel]>) -> Check {
    let s = &app.settings;
    let base = s.http.public_base();
    let messenger = channels.is_some_and(|all| all.iter().any(|c| c.kind == ChannelKind::Messenger));
    if messenger && s.providers.meta_app_secret.is_none() {
        return Check::fail(
            "webhooks",
            "Messenger channels exist but [providers] meta_app_secret is unset: their webhooks are refused",
            "set KAMSHUB_PROVIDERS__META_APP_SECRET to the Meta app's secret",
        );
    }
    if !base.starts_with("https://") {
        return Check::warn(
            "webhooks",
            format!("public URL {base} is not HTTPS; Telegram and Meta only deliver to HTTPS"),
            "set [http] public_url (KAMSHUB_HTTP__PUBLIC_URL) to the HTTPS address providers reach",
        );
    }
    Check::ok("webhooks", format!("providers deliver to {base}/webhooks/..."))
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
