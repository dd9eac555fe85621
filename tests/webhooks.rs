//! Outgoing webhooks end to end, on a real `kamshub serve` (all roles) and a fake integrator:
//!
//! - an endpoint that answers 500 for a while, then 200, receives every event once its retries
//!   succeed, each signature verifying with the secret shown at registration (by this test and by
//!   the Standard Webhooks reference library), in order per conversation; a replay delivers again;
//! - a 410 endpoint is not retried and is disabled; later events are not sent to it;
//! - private, loopback and link-local endpoints are refused at registration (API and CLI), and a
//!   name that resolves to a refused address at delivery time is never called.
//!
//! The failing window is [`FAILING_FOR`] and kamshub's backoff is shortened to match, so the test
//! takes seconds; the defaults (`[webhooks]`) stay as documented.

mod common;

use common::api::{Answer, Api};
use common::app::{Backend, Seeded, open_app, seed_tenant, telegram_text, write_config};
use common::daemon::Daemon;
use kamshub::domain::{Email, Role};
use kamshub::service::access::Caller;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// How long the integrator answers 500 before it answers 200.
const FAILING_FOR: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(60);

/// kamshub's webhook settings for these tests: plain http and loopback allowed (the integrator is
/// a local fake), a backoff of 200 ms doubling to 1 s.
const DEVELOPMENT: &str = "[webhooks]\nallow_http = true\nallow_private_addresses = true\nbackoff_base_ms = 200\n\
    backoff_cap_secs = 1\nretry_for_secs = 120\ntimeout_secs = 2\n[events]\npoll_ms = 100\n";

/// An integrator's endpoint: answers `failing` until a time, then `healthy`; keeps every request
/// with the status it got.
#[derive(Clone)]
struct Integrator {
    failing: u16,
    healthy: u16,
    fail_until: Arc<Mutex<Instant>>,
    seen: Arc<Mutex<Vec<(Request, u16)>>>,
}

impl Respond for Integrator {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let status = if Instant::now() < *self.fail_until.lock().unwrap() { self.failing } else { self.healthy };
        self.seen.lock().unwrap().push((request.clone(), status));
        ResponseTemplate::new(status).set_body_string(if status == 200 { "ok" } else { "upstream crm is down" })
    }
}

impl Integrator {
    async fn start(failing: u16, healthy: u16) -> (MockServer, Integrator) {
        let integrator =
            Integrator { failing, healthy, fail_until: Arc::new(Mutex::new(Instant::now())), seen: Arc::default() };
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any()).respond_with(integrator.clone()).mount(&server).await;
        (server, integrator)
    }

    fn fail_for(&self, window: Duration) {
        *self.fail_until.lock().unwrap() = Instant::now() + window;
    }

    /// Every request so far: its body as JSON, headers, and the status it was answered.
    fn requests(&self) -> Vec<Delivered> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(r, status)| Delivered {
                body: String::from_utf8(r.body.clone()).unwrap(),
                headers: r.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned())).collect(),
                status: *status,
            })
            .collect()
    }
}

/// One request the integrator received.
#[derive(Debug, Clone)]
struct Delivered {
    body: String,
    headers: BTreeMap<String, String>,
    status: u16,
}

impl Delivered {
    fn event(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn event_id(&self) -> u64 {
        self.event()["eventId"].as_u64().unwrap()
    }
}

/// A running kamshub (all roles) with one seeded tenant and a tenant admin's token.
struct Kamshub {
    daemon: Option<Daemon>,
    api: Api,
    url: String,
    token: String,
    seeded: Seeded,
    app: Arc<kamshub::app::App>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Kamshub {
    async fn start(backend: Backend, extra: &str) -> Option<Kamshub> {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), backend, "http://127.0.0.1:9", "http://127.0.0.1:9", extra)?;
        let app = open_app(&config).await;
        let seeded = seed_tenant(&app, &format!("10485760{}", 1000 + rand_suffix())).await;
        let env = [("KAMSHUB_CONFIG", config.to_str().unwrap())];
        let mut daemon = Daemon::start(dir.path(), &env);
        let url = format!("http://{}", daemon.address());
        let api = Api::new(&url);
        let email = format!("{}@hooks.example.com", common::unique_name("admin").replace('_', "-"));
        let invited = kamshub::service::onboarding::invite_user(
            &app,
            &Caller::operator(),
            &seeded.tenant,
            Email::parse(&email).unwrap(),
            Role::TenantAdmin,
        )
        .await
        .unwrap();
        let token = api.first_sign_in(&email, invited.temporary_password.as_deref().unwrap()).await["idToken"]
            .as_str()
            .unwrap()
            .to_owned();
        Some(Kamshub { daemon: Some(daemon), api, url, token, seeded, app, config, _dir: dir })
    }

    async fn post(&self, update: i64, chat: i64, message: i64, text: &str) {
        let status = reqwest::Client::new()
            .post(format!("{}/webhooks/telegram/{}", self.url, self.seeded.telegram))
            .header("X-Telegram-Bot-Api-Secret-Token", &self.seeded.telegram_secret)
            .json(&telegram_text(update, chat, message, 1_700_000_000 + update, text))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }

    async fn register(&self, body: Value) -> Answer {
        self.api.post("/tenant/webhooks", Some(&self.token), &body).await
    }

    /// Waits until `done` holds for the integrator's requests.
    async fn until(
        &mut self,
        integrator: &Integrator,
        what: &str,
        done: impl Fn(&[Delivered]) -> bool,
    ) -> Vec<Delivered> {
        let deadline = Instant::now() + WAIT;
        loop {
            let requests = integrator.requests();
            if done(&requests) {
                return requests;
            }
            if Instant::now() >= deadline {
                let log = self.daemon.as_mut().map(|d| d.recent_log(80)).unwrap_or_default();
                panic!(
                    "{what}: not within {WAIT:?}; {} requests so far; the daemon's log ends:\n{log}",
                    requests.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tenant's whole event log, as the polling API returns it.
    async fn events(&self) -> Vec<Value> {
        let page = self.api.get("/tenant/events?after=0&limit=500", &self.token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        page.body["items"].as_array().unwrap().clone()
    }

    fn stop(mut self) {
        let (status, log) = self.daemon.take().unwrap().terminate();
        assert!(status.success(), "{log:#?}");
    }
}

fn rand_suffix() -> u32 {
    rand::random::<u32>() % 9000
}

/// Checks a delivery's headers and signature the way an integrator would: `webhook-id` and
/// `Idempotency-Key` are the event's key, the timestamp is fresh, and the signature is
/// `v1,base64(HMAC-SHA256(secret, id.timestamp.body))` with the secret's decoded bytes.
fn verify(delivered: &Delivered, secret: &str, tenant: &str) {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    let event = delivered.event();
    let key = format!("evt_{tenant}_{}", event["eventId"]);
    assert_eq!(delivered.headers["webhook-id"], key);
    assert_eq!(delivered.headers["idempotency-key"], key);
    assert_eq!(delivered.headers["content-type"], "application/json");
    assert_eq!(event["tenantId"], tenant);
    let timestamp: i64 = delivered.headers["webhook-timestamp"].parse().unwrap();
    assert!((timestamp - common::api::now_secs()).abs() < 300, "a fresh timestamp at each attempt");
    let secret = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
    mac.update(format!("{key}.{timestamp}.{}", delivered.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(delivered.headers["webhook-signature"], expected);
}

/// The Python of the test virtualenv, with the Standard Webhooks reference library.
fn python() -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(!common::services_required(), "{} is missing but KAMSHUB_REQUIRE_SERVICES=1", bin.display());
    None
}

/// Verifies every delivery with the Standard Webhooks reference library (`standardwebhooks`,
/// pinned in scripts/test-requirements.txt): what any integrator using it would do.
fn verify_with_reference_library(deliveries: &[Delivered], secret: &str, dir: &Path) {
    let Some(python) = python() else { return };
    let cases: Vec<Value> = deliveries.iter().map(|d| json!({"body": d.body, "headers": d.headers})).collect();
    let file = dir.join("deliveries.json");
    std::fs::write(&file, serde_json::to_string(&json!({"secret": secret, "cases": cases})).unwrap()).unwrap();
    let script = "import json, sys\nfrom standardwebhooks.webhooks import Webhook\n\
        run = json.load(open(sys.argv[1]))\nhook = Webhook(run['secret'])\n\
        for case in run['cases']:\n    hook.verify(case['body'], case['headers'])\n\
        print(len(run['cases']), 'verified')\n";
    let out = std::process::Command::new(python).args(["-c", script]).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "the reference library refused a signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{} verified", deliveries.len()));
}

/// Per conversation, the order the integrator saw its events in: an event is never sent before
/// every earlier event of its conversation was accepted (the queue holds the conversation behind
/// a retry), and ids only grow.
fn assert_ordered_per_conversation(requests: &[Delivered]) {
    let mut accepted: BTreeMap<String, u64> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for r in requests {
        let event = r.event();
        let conversation = event["conversationId"].as_str().unwrap_or("-").to_owned();
        let id = r.event_id();
        if let Some(prev) = last.get(&conversation) {
            assert!(id >= *prev, "conversation {conversation}: event {id} after {prev}");
            if id > *prev {
                assert_eq!(accepted.get(&conversation), Some(prev), "{id} sent before {prev} was accepted");
            }
        }
        last.insert(conversation.clone(), id);
        if r.status == 200 {
            accepted.insert(conversation, id);
        }
    }
}

async fn an_endpoint_that_fails_for_a_while_receives_every_event_in_order_once_it_recovers(backend: Backend) {
    let Some(mut k) = Kamshub::start(backend, DEVELOPMENT).await else { return };
    let (_server, integrator) = Integrator::start(500, 200).await;
    let registered = k
        .register(json!({
            "url": format!("{}/crm/hooks", _server.uri()),
            "eventTypes": ["message.received", "conversation.created"],
            "description": "CRM"
        }))
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let secret = registered.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let webhook = registered.body["webhookId"].as_str().unwrap().to_owned();
    let listed = k.api.get("/tenant/webhooks", &k.token).await;
    assert!(!listed.text.contains(&secret), "the secret is shown once: {}", listed.text);

    integrator.fail_for(FAILING_FOR);
    let started = Instant::now();
    let chats = [601, 602, 603];
    for n in 0..12_i64 {
        let chat = chats[(n % 3) as usize];
        k.post(n + 1, chat, n / 3 + 1, &format!("message {}", n + 1)).await;
    }
    let tenant = k.seeded.tenant.to_string();
    let expected = 12 + 3; // messages and their conversations' starts
    let requests = k
        .until(&integrator, "every event accepted", |r| r.iter().filter(|d| d.status == 200).count() >= expected)
        .await;
    assert!(started.elapsed() >= FAILING_FOR, "nothing got through while the endpoint failed");
    assert!(requests.iter().any(|r| r.status == 500), "the failing window was exercised");
    let mut accepted: Vec<u64> = requests.iter().filter(|r| r.status == 200).map(Delivered::event_id).collect();
    accepted.sort();
    let log: Vec<u64> = k.events().await.iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    assert_eq!(accepted, log, "every event once");
    for r in &requests {
        verify(r, &secret, &tenant);
    }
    verify_with_reference_library(&requests, &secret, k._dir.path());
    assert_ordered_per_conversation(&requests);

    // What the tenant admin sees: every delivery SENT, the early ones after retries; a healthy
    // endpoint.
    let deliveries = k.api.get(&format!("/tenant/webhooks/{webhook}/deliveries?limit=200"), &k.token).await;
    let items = deliveries.body["items"].as_array().unwrap();
    assert_eq!(items.len(), expected, "{}", deliveries.text);
    assert!(items.iter().all(|d| d["status"] == "SENT" && d["response"] == "HTTP 200"), "{}", deliveries.text);
    assert!(items.iter().any(|d| d["attempts"].as_u64().unwrap() > 1));
    let endpoint = k.api.get(&format!("/tenant/webhooks/{webhook}"), &k.token).await;
    assert_eq!(endpoint.body["status"], "enabled");
    assert_eq!(endpoint.body["health"]["consecutiveFailures"], 0);
    assert_eq!(endpoint.body["health"]["lastStatus"], 200);

    // A replay delivers the log again, as new deliveries.
    let replay =
        k.api.post(&format!("/tenant/webhooks/{webhook}/replay"), Some(&k.token), &json!({"fromEventId": 1})).await;
    assert_eq!(
        (replay.status.as_u16(), replay.body["replayed"].as_u64()),
        (202, Some(expected as u64)),
        "{}",
        replay.text
    );
    let requests =
        k.until(&integrator, "the replay", |r| r.iter().filter(|d| d.status == 200).count() >= 2 * expected).await;
    for r in &requests {
        verify(r, &secret, &tenant);
    }
    let deliveries = k.api.get(&format!("/tenant/webhooks/{webhook}/deliveries?limit=200"), &k.token).await;
    let replays = deliveries.body["items"].as_array().unwrap().iter().filter(|d| d["replay"] == true).count();
    assert_eq!(replays, expected);
    k.stop();
}

mod recovering_endpoint {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded() {
        an_endpoint_that_fails_for_a_while_receives_every_event_in_order_once_it_recovers(Backend::Embedded).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mongodb_sqs() {
        an_endpoint_that_fails_for_a_while_receives_every_event_in_order_once_it_recovers(Backend::Production).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_endpoint_is_not_retried_and_is_disabled() {
    let mut k = Kamshub::start(Backend::Embedded, DEVELOPMENT).await.unwrap();
    let (gone_server, gone) = Integrator::start(410, 410).await;
    let (ok_server, ok) = Integrator::start(200, 200).await;
    let gone_hook = k.register(json!({"url": format!("{}/old", gone_server.uri())})).await.body["webhookId"].clone();
    k.register(json!({"url": format!("{}/new", ok_server.uri())})).await;

    k.post(1, 611, 1, "first").await;
    k.until(&ok, "the healthy endpoint took both events", |r| r.len() == 2).await;
    let until_disabled = Instant::now() + WAIT;
    let endpoint = loop {
        let endpoint = k.api.get(&format!("/tenant/webhooks/{}", gone_hook.as_str().unwrap()), &k.token).await;
        if endpoint.body["status"] == "disabled" {
            break endpoint;
        }
        assert!(Instant::now() < until_disabled, "not disabled: {}", endpoint.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(endpoint.body["disabledReason"], "the endpoint answered 410 Gone");
    assert_eq!(endpoint.body["health"]["lastStatus"], 410);
    // Later events: the healthy endpoint gets them, the gone one nothing more. Its two deliveries
    // (the events made while it was enabled) end FAILED: the 410, and the next one without a call.
    k.post(2, 611, 2, "second").await;
    k.until(&ok, "the later event", |r| r.len() == 3).await;
    let gone_deliveries = format!("/tenant/webhooks/{}/deliveries", gone_hook.as_str().unwrap());
    let deadline = Instant::now() + WAIT;
    let deliveries = loop {
        let page = k.api.get(&gone_deliveries, &k.token).await;
        let items = page.body["items"].as_array().unwrap();
        if items.len() == 2 && items.iter().all(|d| d["status"] == "FAILED") {
            break page;
        }
        assert!(Instant::now() < deadline, "deliveries not final: {}", page.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(gone.requests().len(), 1, "the first attempt only: {:?}", gone.requests());
    let items = deliveries.body["items"].as_array().unwrap();
    assert!(
        items.iter().any(|d| d["lastError"].as_str().unwrap().starts_with("code 410: HTTP 410")),
        "{}",
        deliveries.text
    );
    assert!(items.iter().any(|d| d["attempts"] == 1 && d["lastError"].as_str().unwrap().contains("is disabled")));
    if let Some(python) = common::python() {
        let metrics = reqwest::get(format!("{}/metrics", k.url)).await.unwrap().text().await.unwrap();
        let samples = common::prometheus::parse(&python, &metrics);
        let sends = |result| {
            common::prometheus::value(&samples, "kamshub_sends_total", &[("provider", "webhook"), ("result", result)])
        };
        assert_eq!((sends("sent"), sends("failed")), (3.0, 2.0), "deliveries count as sends of provider webhook");
        let disabled = &[("reason", "gone")];
        assert_eq!(common::prometheus::value(&samples, "kamshub_webhook_endpoints_disabled_total", disabled), 1.0);
    }
    // Re-enabled, it is delivered to again (and a replay would bring what it missed).
    let enabled = k
        .api
        .call(
            reqwest::Method::PATCH,
            &format!("/tenant/webhooks/{}", gone_hook.as_str().unwrap()),
            Some(&k.token),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!((enabled.status.as_u16(), enabled.body["status"].as_str()), (200, Some("enabled")), "{}", enabled.text);
    k.stop();
}

/// The machine's host name, which resolves to a loopback address (as /etc/hosts has it on Linux).
async fn loopback_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let found: Vec<_> = tokio::net::lookup_host((name.as_str(), 80)).await.unwrap().collect();
    assert!(found.iter().all(|a| a.ip().is_loopback()), "{name} should resolve to loopback: {found:?}");
    name
}

/// `kamshub -o json --config CONFIG ARGS`: exit code, stdout, stderr.
fn cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("kamshub").unwrap();
    for (key, _) in std::env::vars() {
        if key.starts_with("KAMSHUB_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.arg("--config").arg(config).args(["-o", "json"]).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_local_endpoints_are_refused_at_registration_and_a_name_that_rebinds_is_never_called() {
    // The default policy: https and public addresses only.
    let k = Kamshub::start(Backend::Embedded, "[events]\npoll_ms = 100\n").await.unwrap();
    for (url, why) in [
        ("https://127.0.0.1:8443/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("https://[::1]/hook", "loopback"),
        ("https://[fd00::5]/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://localhost:9000/hook", "loopback"),
        ("http://hooks.example.com/hook", "must be https"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://does-not-resolve.invalid/hook", "does not resolve"),
    ] {
        let answer = k.register(json!({"url": url})).await;
        assert_eq!(answer.status, 422, "{url}: {}", answer.text);
        assert!(answer.body["error"]["message"].as_str().unwrap().contains(why), "{url}: {}", answer.text);
    }
    let tenant = k.seeded.tenant.to_string();
    let (code, _, stderr) = cli(&k.config, &["webhook", "add", "--tenant", &tenant, "--url", "https://10.0.0.8/x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("private address"), "{stderr}");
    let (code, _, stderr) = cli(
        &k.config,
        &["webhook", "add", "--tenant", &tenant, "--url", "https://x.example/", "--event", "message.deleted"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("message.received"), "names the types: {stderr}");
    let listed = k.api.get("/tenant/webhooks", &k.token).await;
    assert_eq!(listed.body["items"], json!([]), "nothing was registered");
    k.stop();

    // A name registered while it resolved elsewhere, now resolving to loopback (here: the machine's
    // own name, which /etc/hosts maps to a loopback address): the delivery is refused after
    // resolution and the endpoint never sees a request. (`localhost` itself is refused before.)
    let k =
        Kamshub::start(Backend::Embedded, "[webhooks]\nallow_http = true\n[events]\npoll_ms = 100\n").await.unwrap();
    let (server, integrator) = Integrator::start(200, 200).await;
    let port = server.address().port();
    let (now, id) = (kamshub::domain::now(), kamshub::domain::WebhookId::generate());
    let secret = secrecy::SecretString::from(kamshub::domain::webhook::SigningSecret::generate().expose().to_owned());
    let endpoint = kamshub::domain::WebhookEndpoint {
        secret: k
            .app
            .master_key()
            .unwrap()
            .seal(&secret, kamshub::sealing::SealContext::webhook_signing_secret(id.as_str())),
        id: id.clone(),
        tenant_id: k.seeded.tenant.clone(),
        url: format!("http://{}:{port}/hook", loopback_name().await),
        event_types: Vec::new(),
        description: None,
        state: kamshub::domain::webhook::EndpointState::Enabled,
        disabled_reason: None,
        health: Default::default(),
        created_at: now,
        updated_at: now,
    };
    let audit = kamshub::domain::AuditEntry::new(
        &kamshub::domain::Actor::Cli("test".into()),
        &k.seeded.tenant,
        "webhook.create",
        id.as_str(),
        json!({}),
    );
    k.app.store().await.unwrap().insert_webhook(&endpoint, &audit).await.unwrap();
    k.post(1, 621, 1, "hello").await;
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let page = k.api.get(&format!("/tenant/webhooks/{id}/deliveries?status=FAILED"), &k.token).await;
        if page.body["items"].as_array().unwrap().len() == 2 {
            break page;
        }
        assert!(Instant::now() < deadline, "{}", page.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(failed.text.contains("resolves only to refused addresses (a loopback address)"), "{}", failed.text);
    assert!(integrator.requests().is_empty(), "never called");
    k.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_registers_lists_shows_deliveries_replays_and_removes() {
    let mut k = Kamshub::start(Backend::Embedded, DEVELOPMENT).await.unwrap();
    let (server, integrator) = Integrator::start(200, 200).await;
    let tenant = k.seeded.tenant.to_string();
    let url = format!("{}/cli", server.uri());
    let (code, out, err) = cli(
        &k.config,
        &[
            "webhook",
            "add",
            "--tenant",
            &tenant,
            "--url",
            &url,
            "--event",
            "message.received",
            "--description",
            "from the CLI",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let added: Value = serde_json::from_str(&out).unwrap();
    let (webhook, secret) =
        (added["webhookId"].as_str().unwrap().to_owned(), added["secret"].as_str().unwrap().to_owned());
    assert_eq!(added["eventTypes"], json!(["message.received"]));
    let (_, out, _) = cli(&k.config, &["webhook", "list", "--tenant", &tenant]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["webhookId"], webhook.as_str());
    assert!(!out.contains(&secret), "the secret is shown once");

    k.post(1, 631, 1, "via the cli").await;
    let requests = k.until(&integrator, "the event", |r| !r.is_empty()).await;
    verify(&requests[0], &secret, &tenant);
    let (code, out, err) = cli(&k.config, &["webhook", "deliveries", &webhook, "--tenant", &tenant]);
    assert_eq!(code, 0, "{err}");
    let deliveries: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (deliveries[0]["status"].as_str(), deliveries[0]["eventType"].as_str()),
        (Some("SENT"), Some("message.received"))
    );
    let delivery = deliveries[0]["deliveryId"].as_str().unwrap().to_owned();
    let (code, out, err) =
        cli(&k.config, &["webhook", "replay", &webhook, "--tenant", &tenant, "--delivery", &delivery]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["replayed"], 1);
    let again = k.until(&integrator, "the replay", |r| r.len() == 2).await;
    assert_eq!(
        again[1].headers["idempotency-key"], again[0].headers["idempotency-key"],
        "same key: the integrator can tell"
    );
    let (code, _, err) = cli(&k.config, &["webhook", "disable", &webhook, "--tenant", &tenant]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&k.config, &["webhook", "replay", &webhook, "--tenant", &tenant, "--from-event", "1"]);
    assert_eq!(code, 1, "a disabled endpoint is not replayed to");
    assert!(err.contains("disabled"), "{err}");
    let (code, _, err) = cli(&k.config, &["webhook", "remove", &webhook, "--tenant", &tenant]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&k.config, &["webhook", "show", &webhook, "--tenant", &tenant]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    k.stop();
}
