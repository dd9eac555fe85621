//! The tenant API as its clients use it: sign-in with a new password and refresh on the local
//! identity and on Cognito (moto) with the same test, a Cognito user rewriting their own tenant,
//! what a message looks like, reply idempotency, cursor pages, precise errors and sign-in limits.

mod common;

use common::api::{Api, NEW_PASSWORD};
use common::app::{Backend, PAGE_ID, TestApp, seed_tenant, spawn_app, spawn_app_configured, telegram_text};
use common::{PoolSetup, TestPool, aws_endpoint, unique_name};
use kamshub::domain::{ConversationId, Email, Role, TenantId};
use kamshub::service::access::Caller;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A user of `tenant` with `role`, invited by the operator and signed in through the API (the
/// temporary password answered with a new one). Returns the email and the tokens.
async fn staff(app: &TestApp, tenant: &TenantId, role: Role) -> (String, Value) {
    let email = format!("{}@staff.example.com", unique_name("u").replace('_', "-"));
    let invited = kamshub::service::onboarding::invite_user(
        &app.app,
        &Caller::operator(),
        tenant,
        Email::parse(&email).unwrap(),
        role,
    )
    .await
    .unwrap();
    let tokens = Api::new(app.url("")).first_sign_in(&email, invited.temporary_password.as_deref().unwrap()).await;
    (email, tokens)
}

fn bearer(tokens: &Value) -> String {
    tokens["idToken"].as_str().unwrap().to_owned()
}

/// The conversation of a Telegram chat in the test app's tenant.
async fn conversation_of(app: &TestApp, thread: &str) -> ConversationId {
    let (store, query) = (app.store().await, kamshub::store::ConversationQuery::first(100));
    let all = store.list_conversations(&app.tenant, &query).await.unwrap();
    all.into_iter().find(|c| c.external_thread_id == thread).expect("conversation").id
}

// ---- sign-in ----

mod sign_in {
    use super::*;

    #[tokio::test]
    async fn local() {
        let app = spawn_app(Backend::Embedded).await.unwrap();
        super::sign_in_new_password_me_and_refresh(app).await;
    }

    #[tokio::test]
    async fn cognito() {
        let Some(endpoint) = aws_endpoint() else { return };
        let pool = TestPool::create(&endpoint).await;
        let app = spawn_app_configured(Backend::Embedded, "http://127.0.0.1:9", "http://127.0.0.1:9", &pool.toml())
            .await
            .unwrap();
        super::sign_in_new_password_me_and_refresh(app).await;
    }
}

/// Login with a temporary password → the challenge → a new password → `/me` → refresh → `/me`.
async fn sign_in_new_password_me_and_refresh(app: TestApp) {
    let api = Api::new(app.url(""));
    let email = format!("{}@flow.example.com", unique_name("u").replace('_', "-"));
    let invited = kamshub::service::onboarding::invite_user(
        &app.app,
        &Caller::operator(),
        &app.tenant,
        Email::parse(&email).unwrap(),
        Role::TenantManager,
    )
    .await
    .unwrap();
    let temporary = invited.temporary_password.clone().unwrap();

    let login = api.post("/auth/login", None, &json!({"email": email, "password": temporary})).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["challenge"], "NEW_PASSWORD_REQUIRED");
    assert!(login.body.get("idToken").is_none(), "no tokens before the new password");
    let session = login.body["session"].as_str().unwrap();
    let weak = api
        .post("/auth/complete-new-password", None, &json!({"email": email, "session": session, "newPassword": "weak"}))
        .await;
    assert_eq!(
        (weak.status, weak.body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request"))
    );
    let tokens = api
        .post(
            "/auth/complete-new-password",
            None,
            &json!({"email": email, "session": session, "newPassword": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    assert!(tokens.body["expiresIn"].as_u64().unwrap() > 0);
    let expected_me =
        json!({"userId": invited.user_id, "email": email, "tenantId": app.tenant, "roles": ["tenant_manager"]});
    let me = api.get("/me", &bearer(&tokens.body)).await;
    assert_eq!((me.status, &me.body), (StatusCode::OK, &expected_me));
    for not_an_id_token in ["accessToken", "refreshToken"] {
        let refused = api.get("/me", tokens.body[not_an_id_token].as_str().unwrap()).await;
        assert_eq!(refused.status, 401, "{not_an_id_token} is not a bearer token for the API");
        assert_eq!(refused.headers["www-authenticate"], "Bearer");
    }

    let refreshed =
        api.post("/auth/refresh", None, &json!({"refreshToken": tokens.body["refreshToken"], "email": email})).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    assert!(refreshed.body.get("refreshToken").is_none(), "the refresh token in hand stays the one to use");
    let me = api.get("/me", &bearer(&refreshed.body)).await;
    assert_eq!((me.status, &me.body), (StatusCode::OK, &expected_me));

    let old = api.post("/auth/login", None, &json!({"email": email, "password": temporary})).await;
    assert_eq!((old.status, old.body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    api.sign_in(&email, NEW_PASSWORD).await;
}

/// The claims of a JWT, unverified (to show what the identity provider put in it).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_cognito_user_who_rewrites_their_tenant_reaches_nothing_of_the_other() {
    let Some(endpoint) = aws_endpoint() else { return };
    let pool = TestPool::create_with(&endpoint, PoolSetup::Misconfigured).await;
    let app = spawn_app_configured(Backend::Embedded, "http://127.0.0.1:9", "http://127.0.0.1:9", &pool.toml())
        .await
        .unwrap();
    let api = Api::new(app.url(""));
    let other = seed_tenant(&app.app, "104857600077777").await;
    let update = telegram_text(1, 7100, 1, 1_700_000_000, "a secret of the other tenant");
    let posted = app
        .http
        .post(app.url(&format!("/webhooks/telegram/{}", other.telegram)))
        .header("X-Telegram-Bot-Api-Secret-Token", &other.telegram_secret)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    app.drain().await;

    let (email, tokens) = staff(&app, &app.tenant, Role::TenantAdmin).await;
    assert_eq!(api.get("/tenant/conversations", &bearer(&tokens)).await.status, 200);
    // The attack: the user rewrites their own custom:tenantID with their access token, which a
    // mutable attribute and an app client without write attributes allow.
    let rewritten = pool
        .client()
        .await
        .update_user_attributes()
        .access_token(tokens["accessToken"].as_str().unwrap())
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("custom:tenantID")
                .value(other.tenant.as_str())
                .build()
                .unwrap(),
        )
        .send()
        .await;
    assert!(rewritten.is_ok(), "the stand-in lets the user rewrite the attribute: {rewritten:?}");
    let forged = api.sign_in(&email, NEW_PASSWORD).await;
    assert_eq!(claims(&forged)["custom:tenantID"], json!(other.tenant), "the new ID token names the other tenant");

    let secrets = [other.tenant.to_string(), other.telegram.to_string(), "a secret of the other tenant".to_owned()];
    for path in [
        "/me".to_owned(),
        "/tenant/conversations".to_owned(),
        "/tenant/channels".to_owned(),
        format!("/tenant/conversations?tenantId={}", other.tenant),
        format!("/tenant/channels/{}?tenantId={}", other.telegram, other.tenant),
    ] {
        let answer = api.get(&path, &forged).await;
        assert_eq!(answer.status, 401, "{path}: {}", answer.text);
        assert!(!secrets.iter().any(|s| answer.text.contains(s.as_str())), "{path} leaked: {}", answer.text);
    }
    // The token issued before the rewrite still names the user's own tenant, and only that.
    let named = api.get(&format!("/tenant/conversations?tenantId={}", other.tenant), &bearer(&tokens)).await;
    assert_eq!(named.status, 404);

    // The daemon's start-up check names the hole; a pool set up as documented has none.
    let risks = app.app.identity().await.unwrap().tenant_attribute_risks().await.unwrap();
    assert_eq!(risks.len(), 1, "{risks:?}");
    assert!(risks[0].contains("custom:tenantID") && risks[0].contains("WriteAttributes"), "{}", risks[0]);
    let safe = TestPool::create(&endpoint).await;
    let identity = kamshub::identity::cognito::CognitoIdentity::new(&safe.settings()).await.unwrap();
    assert!(kamshub::identity::Identity::tenant_attribute_risks(&identity).await.unwrap().is_empty());
}

// ---- the inbox ----

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::spawn_app(super::Backend::Embedded).await.unwrap(), true).await })*
        }
        mod mongodb_sqs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(app) = super::spawn_app(super::Backend::Production).await else { return };
                super::$case(app, false).await
            })*
        }
    };
}

on_both_backends!(messages_show_media_captions_senders_and_edit_history, replies_are_idempotent_per_tenant);

fn fixture(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("tests/fixtures/{path}")).unwrap()).unwrap()
}

async fn messages_show_media_captions_senders_and_edit_history(app: TestApp, embedded: bool) {
    assert_eq!(app.post_telegram(&fixture("telegram/photo_caption.json")).await, 200);
    let edited = fixture("telegram/edited_message.json");
    let mut original = json!({"update_id": 827391051, "message": edited["edited_message"].clone()});
    original["message"]["text"] = json!("Hei! Is my order shipped yet?");
    original["message"].as_object_mut().unwrap().remove("edit_date");
    assert_eq!(app.post_telegram(&original).await, 200);
    assert_eq!(app.post_telegram(&edited).await, 200);
    let image = serde_json::to_string(&fixture("messenger/image.json")).unwrap().replace("107362198765432", PAGE_ID);
    assert_eq!(app.post_messenger(&image).await, 200);
    app.drain().await;

    let (_, tokens) = staff(&app, &app.tenant, Role::TenantManager).await;
    let api = Api::new(app.url(""));
    let telegram = conversation_of(&app, "284619503").await;
    let listed = api.get(&format!("/tenant/conversations/{telegram}/messages"), &bearer(&tokens)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "newest first: the photo, then the edited text");
    let (photo, text) = (&items[0], &items[1]);
    assert_eq!(photo["text"], "The box arrived like this", "the caption is the text");
    assert_eq!(photo["kind"], "regular");
    assert_eq!(photo["sender"], json!({"id": "284619503", "name": "Aino Virtanen", "username": "ainov"}));
    let attachment = &photo["attachments"][0];
    assert_eq!(attachment["kind"], "photo");
    assert!(attachment["fileId"].as_str().unwrap().ends_with("1280x960"), "the largest size: {attachment}");
    assert_eq!(attachment["size"], 187_344);
    assert_eq!(photo["direction"], "inbound");
    assert_eq!(photo["externalMessageId"], "284619503:4830");
    assert_eq!(text["text"], "Hei! Is my order #5532 shipped yet?");
    assert_eq!(text["versions"][0]["text"], "Hei! Is my order shipped yet?", "the history keeps the first version");
    assert_eq!(text["versions"].as_array().unwrap().len(), 1);
    assert!(text["editedAt"].as_str().unwrap().starts_with("2024-06-10T11:55:17"), "{text}");

    let messenger = conversation_of(&app, "6543210987654321").await;
    let listed = api.get(&format!("/tenant/conversations/{messenger}/messages"), &bearer(&tokens)).await;
    let message = &listed.body["items"][0];
    assert_eq!(message["attachments"][0]["kind"], "image");
    assert!(message["attachments"][0]["url"].as_str().unwrap().starts_with("https://scontent.xx.fbcdn.net/"));
    assert_eq!(message["attachments"][1]["kind"], "sticker");
    assert_eq!(message["sender"]["id"], "6543210987654321");

    if embedded {
        // `conversation show -o json` prints the same messages, oldest first.
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("kamshub"))
            .env("KAMSHUB_DATA_DIR", &app.app.settings.data_dir)
            .args(["-o", "json", "conversation", "show", telegram.as_str(), "--tenant", app.tenant.as_str()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut from_api = items.clone();
        from_api.reverse();
        assert_eq!(shown["messages"], Value::Array(from_api), "the CLI and the API render one view");
    }
}

async fn replies_are_idempotent_per_tenant(app: TestApp, _: bool) {
    assert_eq!(app.post_telegram(&telegram_text(1, 8100, 1, 1_700_000_000, "hello?")).await, 200);
    assert_eq!(app.post_telegram(&telegram_text(2, 8200, 1, 1_700_000_001, "anyone?")).await, 200);
    app.drain().await;
    let (first, second) = (conversation_of(&app, "8100").await, conversation_of(&app, "8200").await);
    let (_, tokens) = staff(&app, &app.tenant, Role::TenantManager).await;
    let token = bearer(&tokens);
    let api = Api::new(app.url(""));
    let reply = |conversation: ConversationId, key: &'static str, text: &'static str, token: String| {
        let api = api.clone();
        async move {
            let response = api
                .http
                .post(format!("{}/tenant/conversations/{conversation}/messages", api.base))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"text": text}))
                .send()
                .await
                .unwrap();
            common::api::answer(response).await
        }
    };
    let sent = reply(first.clone(), "reply-0001", "On it!", token.clone()).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    assert_eq!(sent.body["status"], "PENDING");
    assert!(sent.headers.get("idempotent-replayed").is_none());
    let again = reply(first.clone(), "reply-0001", "On it!", token.clone()).await;
    assert_eq!((again.status, &again.body), (sent.status, &sent.body), "the same response");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    for (conversation, text) in [(first.clone(), "Something else"), (second.clone(), "On it!")] {
        let reused = reply(conversation, "reply-0001", text, token.clone()).await;
        assert_eq!(
            (reused.status, reused.body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")),
            "{}",
            reused.text
        );
    }
    let reserved = reply(first.clone(), "kamshub:auto-reply:x", "On it!", token.clone()).await;
    assert_eq!(reserved.status, 400, "{}", reserved.text);
    let outbox = api.get("/tenant/outbox", &token).await;
    assert_eq!(outbox.body["items"].as_array().unwrap().len(), 1, "one reply queued: {}", outbox.text);
    let conversation = api.get(&format!("/tenant/conversations/{first}"), &token).await;
    assert_eq!(
        (conversation.body["messageCount"].as_u64(), conversation.body["preview"].as_str()),
        (Some(2), Some("On it!"))
    );

    // The key is the tenant's: another tenant may use it for its own reply.
    let other = seed_tenant(&app.app, "104857600066666").await;
    let posted = app
        .http
        .post(app.url(&format!("/webhooks/telegram/{}", other.telegram)))
        .header("X-Telegram-Bot-Api-Secret-Token", &other.telegram_secret)
        .json(&telegram_text(3, 8300, 1, 1_700_000_002, "hi from elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    app.drain().await;
    let (store, query) = (app.store().await, kamshub::store::ConversationQuery::first(10));
    let theirs = store.list_conversations(&other.tenant, &query).await.unwrap().remove(0).id;
    let (_, other_tokens) = staff(&app, &other.tenant, Role::TenantManager).await;
    let elsewhere = reply(theirs, "reply-0001", "On it!", bearer(&other_tokens)).await;
    assert_eq!(elsewhere.status, 202, "{}", elsewhere.text);
    assert!(elsewhere.headers.get("idempotent-replayed").is_none());
    assert_ne!(elsewhere.body["outboxId"], sent.body["outboxId"]);
}

#[tokio::test]
async fn lists_page_newest_first_with_opaque_cursors() {
    let app = spawn_app(Backend::Embedded).await.unwrap();
    for chat in 0..5 {
        let update = telegram_text(chat + 1, 9000 + chat, 1, 1_700_000_000 + chat, "hi");
        assert_eq!(app.post_telegram(&update).await, 200);
    }
    for n in 2..=6 {
        assert_eq!(app.post_telegram(&telegram_text(10 + n, 9000, n, 1_700_000_100 + n, &format!("m{n}"))).await, 200);
    }
    app.drain().await;
    let (_, tokens) = staff(&app, &app.tenant, Role::TenantManager).await;
    let (api, token) = (Api::new(app.url("")), bearer(&tokens));
    let all = |path: &'static str, field: &'static str| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                let url = match &cursor {
                    Some(c) => format!("{path}limit=2&cursor={c}"),
                    None => format!("{path}limit=2"),
                };
                let page = api.get(&url, &token).await;
                assert_eq!(page.status, 200, "{}", page.text);
                pages += 1;
                seen.extend(
                    page.body["items"].as_array().unwrap().iter().map(|i| i[field].as_str().unwrap().to_owned()),
                );
                match page.body.get("nextCursor").and_then(Value::as_str) {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return (seen, pages),
                }
            }
        }
    };
    let (threads, pages) = all("/tenant/conversations?", "externalThreadId").await;
    assert_eq!(threads, ["9000", "9004", "9003", "9002", "9001"], "most recent activity first, each once");
    assert_eq!(pages, 3);
    let conversation = conversation_of(&app, "9000").await;
    let path: &'static str = Box::leak(format!("/tenant/conversations/{conversation}/messages?").into_boxed_str());
    let (texts, _) = all(path, "text").await;
    assert_eq!(texts, ["m6", "m5", "m4", "m3", "m2", "hi"]);

    for bad in ["limit=0", "limit=201", "limit=abc", "cursor=not-a-cursor"] {
        let answer = api.get(&format!("/tenant/conversations?{bad}"), &token).await;
        assert_eq!(
            (answer.status, answer.body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_request")),
            "{bad}"
        );
    }
    // A cursor of another listing is refused, not misread.
    let first = api.get(&format!("/tenant/conversations/{conversation}/messages?limit=1"), &token).await;
    let foreign = first.body["nextCursor"].as_str().unwrap();
    let answer = api.get(&format!("/tenant/conversations?cursor={foreign}"), &token).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
}

#[tokio::test]
async fn errors_are_json_with_precise_statuses_and_sign_ins_are_limited() {
    let limits = "[http]\nsign_ins_per_email_per_minute = 3\nsign_ins_per_address_per_minute = 6\n";
    let app =
        spawn_app_configured(Backend::Embedded, "http://127.0.0.1:9", "http://127.0.0.1:9", limits).await.unwrap();
    let api = Api::new(app.url(""));
    let (_, tokens) = staff(&app, &app.tenant, Role::TenantAdmin).await; // 2 sign-in calls
    let token = bearer(&tokens);
    let code = |a: &common::api::Answer| (a.status.as_u16(), a.body["error"]["code"].as_str().map(str::to_owned));

    let huge = json!({"email": "x@example.com", "role": "tenant_manager", "pad": "x".repeat(1024 * 1024 + 1)});
    assert_eq!(code(&api.post("/tenant/users", Some(&token), &huge).await), (413, Some("payload_too_large".into())));
    let plain = api
        .http
        .post(app.url("/tenant/users"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("email=x")
        .send()
        .await
        .unwrap();
    assert_eq!(code(&common::api::answer(plain).await), (415, Some("unsupported_media_type".into())));
    let broken = api
        .http
        .post(app.url("/tenant/users"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(code(&common::api::answer(broken).await), (400, Some("bad_request".into())));
    let injected = json!({"email": "x@example.com", "role": "tenant_manager", "tenantId": "tnt_other"});
    assert_eq!(code(&api.post("/tenant/users", Some(&token), &injected).await), (422, Some("invalid_request".into())));
    assert_eq!(
        code(&api.call(Method::DELETE, "/me", Some(&token), None).await),
        (405, Some("method_not_allowed".into()))
    );
    assert_eq!(code(&api.get("/no/such/route", &token).await), (404, Some("not_found".into())));
    assert_eq!(code(&api.get("/tenant/channels/..%2Fetc", &token).await), (400, Some("bad_request".into())));
    let unknown = api.get(&format!("/tenant/channels/{}", kamshub::domain::ChannelId::generate()), &token).await;
    assert_eq!(code(&unknown), (404, Some("not_found".into())));

    // Sign-ins: 3 a minute per email, 6 per address (the staff sign-in above used 2).
    let wrong = |email: &'static str| {
        let api = api.clone();
        async move { api.post("/auth/login", None, &json!({"email": email, "password": "Wrong-Pass-1"})).await }
    };
    for _ in 0..3 {
        assert_eq!(wrong("target@example.com").await.status, 401);
    }
    let limited = wrong("target@example.com").await;
    assert_eq!(code(&limited), (429, Some("rate_limited".into())), "{}", limited.text);
    let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // The address has spent 6 (2 + 4): another email from it is refused too.
    let spread = wrong("someone-else@example.com").await;
    assert_eq!(code(&spread), (429, Some("rate_limited".into())), "{}", spread.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_ends_in_503_and_the_concurrency_limit_makes_others_wait() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    // Graph answers page discovery only after 3 s; a request may take 1 s; one runs at a time.
    let graph = MockServer::start().await;
    let late =
        ResponseTemplate::new(200).set_body_json(json!({"data": []})).set_delay(std::time::Duration::from_secs(3));
    Mock::given(path("/me/accounts")).respond_with(late).mount(&graph).await;
    let extra = "[http]\nrequest_timeout_secs = 1\nmax_concurrent_requests = 1\n";
    let app = spawn_app_configured(Backend::Embedded, "http://127.0.0.1:9", &graph.uri(), extra).await.unwrap();
    let (_, tokens) = staff(&app, &app.tenant, Role::TenantAdmin).await;
    let api = Api::new(app.url(""));
    let slow = {
        let (api, token) = (api.clone(), bearer(&tokens));
        tokio::spawn(async move {
            let request = api.http.get(format!("{}/tenant/channels/messenger/pages", api.base));
            let response = request.bearer_auth(token).header("X-Facebook-User-Token", "EAAUslow").send().await.unwrap();
            (common::api::answer(response).await, std::time::Instant::now())
        })
    };
    // While the slow request holds the only slot (Graph has it), a health check waits its turn:
    // no answer comes while the slot is held, then it is served.
    while graph.received_requests().await.unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let waiting = api.http.get(app.url("/healthz")).timeout(std::time::Duration::from_millis(300)).send().await;
    assert!(waiting.is_err_and(|e| e.is_timeout()), "no answer while the only slot is taken");
    let (slow, _) = slow.await.unwrap();
    assert_eq!(
        (slow.status.as_u16(), slow.body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{}",
        slow.text
    );
    let health = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, 200, "served once the slot is free: {}", health.text);
}
