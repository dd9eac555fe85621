//! The role matrix over HTTP. Every route of the served OpenAPI document is called as
//! {platform_admin, tenant_admin, tenant_manager, no token, expired token} on {own tenant, other
//! tenant}, with tenantId and role injected in body, query and path. The rows come from the
//! document: a route without a row here fails the test, and so does a row without a route.
//!
//! Checked: every forbidden combination is refused with the right status (401 without a valid
//! token, 403 for a role outside the matrix, 404 for another tenant's data, 422 for injected
//! fields); no answer to a tenant user holds another tenant's ids; the other tenant's data is
//! unchanged by everyone but the platform admin who named it.

mod common;

use common::api::{Answer, Api, NEW_PASSWORD, now_secs, resign_local};
use common::app::{BOOTSTRAP_TOKEN, Backend, Seeded, TestApp, seed_tenant, spawn_app_configured, telegram_text};
use kamshub::domain::{ChannelId, ConversationId, OutboxId, Role, TenantId, Transition};
use kamshub::service::access::{Action, Caller};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    /// Anyone: sign-in, health, webhooks (their own credentials are checked by the route).
    Public,
    /// Only with the bootstrap token.
    Bootstrap,
    /// Any signed-in user.
    SignedIn,
    /// Platform admins (`/platform/…`).
    Platform,
    /// Users whose role allows the action, inside their tenant (`/tenant/…`).
    Tenant(Action),
}

/// One route's row: who may call it, what "done" answers, and a valid body for a target tenant.
struct Row {
    access: Access,
    ok: &'static [u16],
    body: Option<fn(&World, &Target) -> Value>,
}

fn rows() -> BTreeMap<&'static str, Row> {
    use Access::*;
    let row = |access, ok, body| Row { access, ok, body };
    BTreeMap::from([
        ("POST /auth/login", row(Public, &[200], Some(bodies::login as fn(&World, &Target) -> Value))),
        ("POST /auth/complete-new-password", row(Public, &[401], Some(bodies::forged_session))),
        ("POST /auth/refresh", row(Public, &[200], Some(bodies::refresh))),
        ("GET /me", row(SignedIn, &[200], None)),
        ("POST /platform/bootstrap", row(Bootstrap, &[409], Some(bodies::bootstrap))),
        ("POST /platform/tenants", row(Platform, &[201], Some(bodies::tenant))),
        ("GET /platform/tenants", row(Platform, &[200], None)),
        ("GET /platform/tenants/{tenantId}", row(Platform, &[200], None)),
        ("POST /tenant/channels", row(Tenant(Action::ManageCredentials), &[201], Some(bodies::channel))),
        ("GET /tenant/channels", row(Tenant(Action::ReadChannels), &[200], None)),
        ("GET /tenant/channels/{channelId}", row(Tenant(Action::ReadChannels), &[200], None)),
        ("PATCH /tenant/channels/{channelId}", row(Tenant(Action::UpdateChannels), &[200], Some(bodies::rename))),
        (
            "POST /tenant/channels/{channelId}/rotate-credentials",
            row(Tenant(Action::ManageCredentials), &[200], Some(bodies::rotate)),
        ),
        (
            "PUT /tenant/channels/{channelId}/auto-reply",
            row(Tenant(Action::ConfigureAutoReply), &[200], Some(bodies::greeting)),
        ),
        ("GET /tenant/channels/messenger/pages", row(Tenant(Action::ManageCredentials), &[200], None)),
        ("POST /tenant/users", row(Tenant(Action::ManageUsers), &[201], Some(bodies::invite))),
        ("GET /tenant/users", row(Tenant(Action::ManageUsers), &[200], None)),
        ("GET /tenant/conversations", row(Tenant(Action::ReadInbox), &[200], None)),
        ("GET /tenant/conversations/{conversationId}", row(Tenant(Action::ReadInbox), &[200], None)),
        ("GET /tenant/conversations/{conversationId}/messages", row(Tenant(Action::ReadInbox), &[200], None)),
        (
            "POST /tenant/conversations/{conversationId}/messages",
            row(Tenant(Action::Reply), &[202], Some(bodies::reply)),
        ),
        ("GET /tenant/outbox", row(Tenant(Action::ReadInbox), &[200], None)),
        ("GET /tenant/outbox/{outboxId}", row(Tenant(Action::ReadInbox), &[200], None)),
        ("POST /tenant/outbox/{outboxId}/retry", row(Tenant(Action::Reply), &[200], None)),
        ("GET /tenant/events", row(Tenant(Action::ReadInbox), &[200], None)),
        ("POST /tenant/webhooks", row(Tenant(Action::ManageWebhooks), &[201], Some(bodies::webhook))),
        ("GET /tenant/webhooks", row(Tenant(Action::ManageWebhooks), &[200], None)),
        ("GET /tenant/webhooks/{webhookId}", row(Tenant(Action::ManageWebhooks), &[200], None)),
        (
            "PATCH /tenant/webhooks/{webhookId}",
            row(Tenant(Action::ManageWebhooks), &[200], Some(bodies::webhook_change)),
        ),
        ("DELETE /tenant/webhooks/{webhookId}", row(Tenant(Action::ManageWebhooks), &[204], None)),
        ("GET /tenant/webhooks/{webhookId}/deliveries", row(Tenant(Action::ManageWebhooks), &[200], None)),
        ("POST /tenant/webhooks/{webhookId}/replay", row(Tenant(Action::ManageWebhooks), &[202], Some(bodies::replay))),
        ("GET /healthz", row(Public, &[200], None)),
        ("GET /readyz", row(Public, &[200], None)),
        ("GET /metrics", row(Public, &[200], None)),
        ("GET /.well-known/jwks.json", row(Public, &[200], None)),
        ("GET /openapi.json", row(Public, &[200], None)),
        ("POST /webhooks/telegram/{channelId}", row(Public, &[401], Some(bodies::update))),
        ("GET /webhooks/messenger", row(Public, &[403], None)),
        ("POST /webhooks/messenger", row(Public, &[401], Some(bodies::update))),
    ])
}

/// Valid bodies, one per route that takes one.
mod bodies {
    use super::*;

    pub fn login(w: &World, _: &Target) -> Value {
        json!({"email": w.manager_email, "password": NEW_PASSWORD})
    }
    pub fn forged_session(w: &World, _: &Target) -> Value {
        json!({"email": w.manager_email, "session": "forged-session", "newPassword": "Other-Pass-99"})
    }
    pub fn refresh(w: &World, _: &Target) -> Value {
        json!({"refreshToken": w.manager_refresh})
    }
    pub fn bootstrap(w: &World, _: &Target) -> Value {
        json!({"email": w.unique_email("second-root")})
    }
    pub fn tenant(w: &World, _: &Target) -> Value {
        json!({"name": format!("Matrix {}", w.next()), "adminEmail": w.unique_email("admin")})
    }
    pub fn channel(w: &World, _: &Target) -> Value {
        let n = w.next();
        json!({"type": "telegram", "displayName": "Matrix bot", "botToken": format!("{n}:matrix_bot_{n}"), "registerWebhook": false})
    }
    pub fn rename(w: &World, _: &Target) -> Value {
        json!({"displayName": format!("Renamed {}", w.next())})
    }
    pub fn rotate(_: &World, t: &Target) -> Value {
        json!({"token": format!("77:{}", t.bot)})
    }
    pub fn greeting(_: &World, _: &Target) -> Value {
        json!({"text": "Thanks for writing, we answer soon."})
    }
    pub fn invite(w: &World, _: &Target) -> Value {
        json!({"email": w.unique_email("invited"), "role": "tenant_manager"})
    }
    pub fn reply(w: &World, _: &Target) -> Value {
        json!({"text": format!("matrix reply {}", w.next())})
    }
    pub fn update(_: &World, _: &Target) -> Value {
        json!({"update_id": 1})
    }
    pub fn webhook(w: &World, _: &Target) -> Value {
        json!({"url": format!("http://127.0.0.1:9/matrix/{}", w.next()), "eventTypes": ["message.received"]})
    }
    pub fn webhook_change(w: &World, _: &Target) -> Value {
        json!({"description": format!("changed {}", w.next())})
    }
    pub fn replay(_: &World, _: &Target) -> Value {
        json!({"fromEventId": 1})
    }
}

/// One tenant's things the routes name.
struct Target {
    tenant: TenantId,
    channel: ChannelId,
    bot: String,
    conversation: ConversationId,
    outbox: OutboxId,
    /// Its webhook endpoint, as stored (a DELETE removes it; it is put back before the next).
    webhook: kamshub::domain::WebhookEndpoint,
}

impl Target {
    /// Every id of this tenant that must never reach another tenant's users.
    fn secrets(&self) -> Vec<String> {
        vec![
            self.tenant.to_string(),
            self.channel.to_string(),
            self.bot.clone(),
            self.conversation.to_string(),
            self.outbox.to_string(),
            self.webhook.id.to_string(),
        ]
    }
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    NoToken,
    Expired,
    Role(Role),
}

/// Which tenant's things a call names, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Aim {
    /// The caller's tenant (a platform admin names it with `?tenantId=`).
    Own,
    /// `?tenantId=` of the other tenant, with its ids in the path.
    OtherByQuery,
    /// The other tenant's ids in the path, in the caller's own scope.
    OtherByPath,
    /// Own, with `tenantId` and `role` injected into the body.
    InjectedBody,
    /// Own, with `role=platform_admin` injected into the query.
    InjectedQuery,
}

struct World {
    app: TestApp,
    api: Api,
    a: Target,
    b: Target,
    tokens: std::collections::HashMap<Role, String>,
    expired: String,
    manager_email: String,
    manager_refresh: String,
    counter: AtomicU32,
}

impl World {
    fn next(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn unique_email(&self, who: &str) -> String {
        format!("{who}-{}@matrix.example.com", self.next())
    }
}

/// Telegram's getMe for tokens shaped `N:username` (the username is the bot's), and setWebhook;
/// Graph's `/me/accounts` with one page.
struct FakeBots;

impl Respond for FakeBots {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if path.ends_with("/me/accounts") {
            return ResponseTemplate::new(200).set_body_json(
                json!({"data": [{"id": "104857600055555", "name": "Matrix page", "access_token": "EAAP"}]}),
            );
        }
        let token = path.trim_start_matches("/bot").split('/').next().unwrap_or_default();
        if path.ends_with("/getMe") {
            let username = token.split_once(':').map(|(_, u)| u).unwrap_or("nobody");
            ResponseTemplate::new(200).set_body_json(
                json!({"ok": true, "result": {"id": 1, "is_bot": true, "first_name": "Bot", "username": username}}),
            )
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true}))
        }
    }
}

async fn world() -> World {
    let telegram = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(FakeBots).mount(&telegram).await;
    // Webhook endpoints on loopback, so registering one needs no DNS (nothing is delivered here).
    let hooks = "[webhooks]\nallow_http = true\nallow_private_addresses = true\n";
    let app = spawn_app_configured(Backend::Embedded, &telegram.uri(), &telegram.uri(), hooks).await.unwrap();
    std::mem::forget(telegram);
    let api = Api::new(app.url(""));
    let operator = Caller::operator();

    // Tenant A is the test app's; tenant B gets its own bot and page.
    let b = seed_tenant(&app.app, "104857600099999").await;
    let a = target(
        &app,
        &operator,
        Seeded {
            tenant: app.tenant.clone(),
            telegram: app.telegram.clone(),
            telegram_secret: app.telegram_secret.clone(),
            messenger: app.messenger.clone(),
        },
        5001,
    )
    .await;
    let b = target(&app, &operator, b, 6001).await;

    // The platform admin bootstraps over HTTP; tenant A's admin and manager are invited.
    let root = api
        .call(
            Method::POST,
            "/platform/bootstrap",
            None,
            Some(&json!({"email": "root@matrix.example.com", "password": "Root-Pass-2024!"})),
        )
        .await;
    assert_eq!(root.status, 401, "bootstrap needs the token: {}", root.text);
    let boot = api
        .http
        .post(app.url("/platform/bootstrap"))
        .header("X-Bootstrap-Token", BOOTSTRAP_TOKEN)
        .json(&json!({"email": "root@matrix.example.com", "password": "Root-Pass-2024!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(boot.status(), 201);
    let mut tokens = std::collections::HashMap::new();
    tokens.insert(Role::PlatformAdmin, api.sign_in("root@matrix.example.com", "Root-Pass-2024!").await);
    let mut manager_refresh = String::new();
    for (role, email) in
        [(Role::TenantAdmin, "admin@a.matrix.example.com"), (Role::TenantManager, "manager@a.matrix.example.com")]
    {
        let invited = kamshub::service::onboarding::invite_user(
            &app.app,
            &operator,
            &a.tenant,
            kamshub::domain::Email::parse(email).unwrap(),
            role,
        )
        .await
        .unwrap();
        let signed = api.first_sign_in(email, invited.temporary_password.as_deref().unwrap()).await;
        tokens.insert(role, signed["idToken"].as_str().unwrap().to_owned());
        manager_refresh = signed["refreshToken"].as_str().unwrap().to_owned();
    }
    let expired = resign_local(&app.app.settings.data_dir, &tokens[&Role::TenantAdmin], |claims| {
        claims["exp"] = json!(now_secs() - 3600);
        claims["iat"] = json!(now_secs() - 7200);
    });
    World {
        app,
        api,
        a,
        b,
        tokens,
        expired,
        manager_email: "manager@a.matrix.example.com".into(),
        manager_refresh,
        counter: AtomicU32::new(0),
    }
}

/// A conversation (from a Telegram update) and a reply in it, for a seeded tenant.
async fn target(app: &TestApp, operator: &Caller, seeded: Seeded, chat: i64) -> Target {
    let status = app
        .http
        .post(app.url(&format!("/webhooks/telegram/{}", seeded.telegram)))
        .header("X-Telegram-Bot-Api-Secret-Token", &seeded.telegram_secret)
        .json(&telegram_text(chat, chat, 1, 1_700_000_000, "hello"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    app.drain().await;
    let store = app.store().await;
    let conversation = store
        .list_conversations(&seeded.tenant, &kamshub::store::ConversationQuery::first(10))
        .await
        .unwrap()
        .remove(0)
        .id;
    let sent = kamshub::service::outbox::send_reply(&app.app, operator, &seeded.tenant, &conversation, "first", None)
        .await
        .unwrap();
    let bot = store.get_channel(&seeded.tenant, &seeded.telegram).await.unwrap().external_id.as_str().to_owned();
    let hook = kamshub::service::webhooks::NewWebhook {
        url: format!("http://127.0.0.1:9/hooks/{chat}"),
        event_types: Vec::new(),
        description: None,
    };
    let created = kamshub::service::webhooks::create(&app.app, operator, &seeded.tenant, hook).await.unwrap();
    let webhook_id = kamshub::domain::WebhookId::parse(&created.webhook.webhook_id).unwrap();
    let webhook = store.get_webhook(&seeded.tenant, &webhook_id).await.unwrap();
    Target {
        tenant: seeded.tenant,
        channel: seeded.telegram,
        bot,
        conversation,
        outbox: OutboxId::parse(&sent.view.outbox_id).unwrap(),
        webhook,
    }
}

/// `path` with its `{…}` parameters filled from `target`.
fn fill(path: &str, target: &Target) -> String {
    path.replace("{tenantId}", target.tenant.as_str())
        .replace("{channelId}", target.channel.as_str())
        .replace("{conversationId}", target.conversation.as_str())
        .replace("{outboxId}", target.outbox.as_str())
        .replace("{webhookId}", target.webhook.id.as_str())
}

/// The role matrix (docs/architecture.md, "HTTP API and access"), written out again here so the
/// test does not trust the code it checks: platform admins everything; tenant admins everything
/// inside their tenant; managers rename/activate/deactivate channels and read and reply in the
/// inbox.
fn may(role: Role, action: Action) -> bool {
    match role {
        Role::PlatformAdmin => true,
        Role::TenantAdmin => action != Action::ManageTenants,
        Role::TenantManager => {
            matches!(action, Action::ReadChannels | Action::UpdateChannels | Action::ReadInbox | Action::Reply)
        }
    }
}

/// The statuses a call may answer: the refusal the matrix demands, or the row's "done".
fn expected(row: &Row, who: Who, aim: Aim) -> Vec<u16> {
    if matches!(row.access, Access::Public | Access::Bootstrap) {
        return row.ok.to_vec();
    }
    let role = match who {
        Who::NoToken | Who::Expired => return vec![401],
        Who::Role(role) => role,
    };
    let platform = role == Role::PlatformAdmin;
    let done = row.ok.to_vec();
    match row.access {
        Access::Public | Access::Bootstrap | Access::SignedIn => done,
        Access::Platform if !platform => vec![403],
        Access::Platform if aim == Aim::InjectedBody => vec![422],
        Access::Platform => done,
        Access::Tenant(action) => {
            let allowed = may(role, action);
            match aim {
                Aim::Own | Aim::InjectedQuery if allowed => done,
                Aim::Own | Aim::InjectedQuery => vec![403],
                Aim::OtherByQuery if platform => done,
                Aim::OtherByQuery => vec![404],
                Aim::OtherByPath if allowed => vec![404],
                Aim::OtherByPath => vec![403],
                Aim::InjectedBody if allowed => vec![422],
                Aim::InjectedBody => vec![403],
            }
        }
    }
}

/// The calls to make for a route: (aim, target whose ids fill the path, `tenantId` to name).
fn plan<'w>(w: &'w World, path: &str, row: &Row, who: Who) -> Vec<(Aim, &'w Target, Option<&'w TenantId>)> {
    let platform = who == Who::Role(Role::PlatformAdmin);
    let own_scope = if platform { Some(&w.a.tenant) } else { None };
    let has_ids = path.contains('{');
    let mut calls = vec![(Aim::Own, &w.a, own_scope)];
    if matches!(who, Who::Role(_)) && matches!(row.access, Access::Tenant(_) | Access::Platform | Access::SignedIn) {
        calls.push((Aim::OtherByQuery, &w.b, Some(&w.b.tenant)));
        if has_ids {
            calls.push((Aim::OtherByPath, &w.b, own_scope));
        }
        calls.push((Aim::InjectedQuery, &w.a, own_scope));
        if row.body.is_some() {
            calls.push((Aim::InjectedBody, &w.a, own_scope));
        }
    }
    calls
}

/// Whatever tenant B holds, as the operator sees it.
async fn snapshot(w: &World) -> Value {
    let store = w.app.store().await;
    let t = &w.b.tenant;
    let channels: Vec<String> = store
        .list_channels(t)
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{} {} {:?}", c.display_name.as_str(), c.is_active, c.auto_reply))
        .collect();
    let users: Vec<String> = store.list_users(t).await.unwrap().iter().map(|u| u.email.to_string()).collect();
    let messages = store.list_messages(t, &w.b.conversation, None, 1000).await.unwrap().len();
    let outbox: Vec<String> = store
        .list_outbox(&kamshub::store::OutboxQuery::new(Some(t), None, 1000))
        .await
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i.id, i.status))
        .collect();
    let audit = store.list_audit(t, 1000).await.unwrap().len();
    let webhooks: Vec<String> = store
        .list_webhooks(t)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {:?} {:?}", e.id, e.state.as_str(), e.event_types, e.description))
        .collect();
    json!({"channels": channels, "users": users, "messages": messages, "outbox": outbox, "audit": audit, "webhooks": webhooks})
}

/// Puts a target's webhook endpoint back if a DELETE removed it, so the next call naming it finds
/// it.
async fn restore(w: &World, target: &Target) {
    let store = w.app.store().await;
    if store.get_webhook(&target.tenant, &target.webhook.id).await.is_err() {
        let audit = kamshub::domain::AuditEntry::new(
            &kamshub::domain::Actor::Cli("matrix".into()),
            &target.tenant,
            "webhook.create",
            target.webhook.id.as_str(),
            json!({}),
        );
        store.insert_webhook(&target.webhook, &audit).await.unwrap();
    }
}

/// Puts an outbox item into FAILED (as a sender would), so a retry has something to do.
async fn fail(w: &World, target: &Target) {
    let store = w.app.store().await;
    store.transition_outbox(&target.tenant, &target.outbox, &Transition::Claim, None).await.unwrap();
    let failed = Transition::Fail { error: "refused".into(), provider_ids: Vec::new() };
    store.transition_outbox(&target.tenant, &target.outbox, &failed, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_every_forbidden_caller_and_leaks_nothing_across_tenants() {
    let w = world().await;
    let spec = w.api.call(Method::GET, "/openapi.json", None, None).await.body;
    let mut table = rows();
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let route = format!("{} {path}", method.to_uppercase());
            let row =
                table.remove(route.as_str()).unwrap_or_else(|| panic!("route `{route}` has no row in the matrix"));
            routes.push((method.to_uppercase(), path.clone(), row));
        }
    }
    assert!(table.is_empty(), "rows without a route: {:?}", table.keys().collect::<Vec<_>>());

    // B's reply is FAILED: a retry that crossed tenants would put it back to PENDING.
    fail(&w, &w.b).await;
    let before = snapshot(&w).await;
    let (mut calls, mut refused) = (0, 0);
    let mut failures = Vec::new();
    let callers = [Who::NoToken, Who::Expired, Who::Role(Role::TenantManager), Who::Role(Role::TenantAdmin)];
    for (phase, who_list) in [("tenant users", &callers[..]), ("platform admin", &[Who::Role(Role::PlatformAdmin)][..])]
    {
        for &who in who_list {
            for (method, path, row) in &routes {
                let whos = match row.access {
                    Access::Public | Access::Bootstrap if who != Who::NoToken => continue,
                    _ => who,
                };
                for (aim, target, tenant) in plan(&w, path, row, whos) {
                    if path.ends_with("/retry") && (target.tenant == w.a.tenant || phase == "platform admin") {
                        fail(&w, target).await;
                    }
                    if path.contains("{webhookId}") && (target.tenant == w.a.tenant || phase == "platform admin") {
                        restore(&w, target).await;
                    }
                    let answer = call(&w, method, path, row, whos, aim, target, tenant).await;
                    calls += 1;
                    let want = expected(row, whos, aim);
                    if !want.contains(&answer.status.as_u16()) {
                        failures.push(format!(
                            "{method} {path} as {whos:?} aiming {aim:?}: {} not in {want:?}: {}",
                            answer.status, answer.text
                        ));
                    }
                    if answer.status.is_client_error() {
                        refused += 1;
                        assert!(
                            answer.body["error"]["code"].is_string(),
                            "{method} {path}: error body {}",
                            answer.text
                        );
                    }
                    if whos != Who::Role(Role::PlatformAdmin) {
                        let sent = format!("{} {}", fill(path, target), tenant.map(|t| t.as_str()).unwrap_or_default());
                        for secret in w.b.secrets() {
                            if answer.text.contains(&secret) && !sent.contains(&secret) {
                                failures.push(format!(
                                    "{method} {path} as {whos:?} aiming {aim:?} leaked `{secret}`: {}",
                                    answer.text
                                ));
                            }
                        }
                    }
                }
            }
        }
        if phase == "tenant users" {
            let after = snapshot(&w).await;
            assert_eq!(
                after,
                before,
                "tenant A's users changed nothing of tenant B; wrong answers:\n{}",
                failures.join("\n")
            );
        }
    }
    assert!(failures.is_empty(), "{} of {calls} calls answered wrong:\n{}", failures.len(), failures.join("\n"));
    eprintln!("matrix: {} routes, {calls} calls, {refused} refused with 4xx, 0 wrong", routes.len());

    // The audit log of B names only the platform admin.
    let audit = w.app.store().await.list_audit(&w.b.tenant, 1000).await.unwrap();
    assert!(audit.iter().all(|e| !e.actor.contains("a.matrix.example.com")), "{audit:?}");
}

/// Makes one call of the matrix.
#[expect(clippy::too_many_arguments, reason = "one call is all of these")]
async fn call(
    w: &World,
    method: &str,
    path: &str,
    row: &Row,
    who: Who,
    aim: Aim,
    target: &Target,
    tenant: Option<&TenantId>,
) -> Answer {
    let mut query = Vec::new();
    if let Some(tenant) = tenant {
        query.push(format!("tenantId={tenant}"));
    }
    if aim == Aim::InjectedQuery {
        query.push("role=platform_admin".to_owned());
    }
    let url = if query.is_empty() { fill(path, target) } else { format!("{}?{}", fill(path, target), query.join("&")) };
    let mut body = row.body.map(|b| b(w, target));
    if aim == Aim::InjectedBody
        && let Some(Value::Object(fields)) = body.as_mut()
    {
        fields.insert("tenantId".into(), json!(w.b.tenant));
        fields.insert("role".into(), json!("platform_admin"));
    }
    let token = match who {
        Who::NoToken => None,
        Who::Expired => Some(w.expired.as_str()),
        Who::Role(role) => Some(w.tokens[&role].as_str()),
    };
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    if row.access == Access::Bootstrap {
        let answer = w.api.call(method.clone(), &url, None, body.as_ref()).await;
        assert_eq!(answer.status, 401, "bootstrap without its token: {}", answer.text);
        let response =
            w.api.http.request(method, w.app.url(&url)).header("X-Bootstrap-Token", BOOTSTRAP_TOKEN).json(&body).send();
        return common::api::answer(response.await.unwrap()).await;
    }
    if path.ends_with("/messenger/pages") {
        let mut request = w.api.http.request(method, w.app.url(&url)).header("X-Facebook-User-Token", "EAAU-matrix");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        return common::api::answer(request.send().await.unwrap()).await;
    }
    w.api.call(method, &url, token, body.as_ref()).await
}

#[tokio::test]
async fn a_tenant_admin_cannot_grant_platform_admin_and_me_ignores_injected_tenants() {
    let w = world().await;
    let admin = &w.tokens[&Role::TenantAdmin];
    let grant = w
        .api
        .post("/tenant/users", Some(admin), &json!({"email": w.unique_email("climber"), "role": "platform_admin"}))
        .await;
    assert_eq!(
        (grant.status.as_u16(), grant.body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        grant.text
    );
    let me = w.api.get(&format!("/me?tenantId={}", w.b.tenant), admin).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["tenantId"], json!(w.a.tenant), "the token's tenant, not the query's");
    assert_eq!(me.body["roles"], json!(["tenant_admin"]));
    let users = kamshub::service::onboarding::list_users(
        &w.app.app,
        &Caller::operator(),
        &w.a.tenant,
        &kamshub::service::page::PageRequest::first(100),
    )
    .await
    .unwrap();
    assert!(users.items.iter().all(|u| u.role != Role::PlatformAdmin));
}
