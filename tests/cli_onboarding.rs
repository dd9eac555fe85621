//! Onboarding through the real `kamshub` binary, as a platform admin's script does it, on the
//! embedded backends and on MongoDB + Cognito (SecantusDB + moto) with the same commands.

mod common;

use common::cli::{FakeGraph, FakeTelegram, Kamshub, any_file_contains, keys};
use kamshub::identity::Login;
use secrecy::SecretString;
use serde_json::Value;

const BOT_TOKEN: &str = "7000001:AAH-canary-bot-token-x9Zq";
const PAGE_ID: &str = "102030405060";
const PAGE_TOKEN: &str = "EAAG-canary-page-token-Qw7";

/// Which backends an installation uses; its settings go in `./kamshub.toml`, found by discovery.
enum Backends {
    Embedded,
    Production { uri: String, database: String, pool: common::TestPool },
}

impl Backends {
    async fn production() -> Option<Backends> {
        let uri = common::mongodb_uri()?;
        let endpoint = common::aws_endpoint()?;
        let pool = common::TestPool::create(&endpoint).await;
        Some(Backends::Production { uri, database: common::unique_name("kamsg_cli"), pool })
    }

    fn config_toml(&self) -> String {
        match self {
            Backends::Embedded => String::new(),
            Backends::Production { uri, database, pool } => format!(
                "master_key = \"{}\"\n[store]\nkind = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{database}\"\n\
                 [identity]\nkind = \"cognito\"\nuser_pool_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
                 region = \"{}\"\nendpoint_url = \"{}\"\n",
                kamshub::sealing::MasterKey::generate_base64(),
                pool.pool_id,
                pool.client_id,
                pool.client_secret,
                pool.region,
                pool.endpoint
            ),
        }
    }
}

struct Setup {
    kamshub: Kamshub,
    telegram: FakeTelegram,
    graph: FakeGraph,
}

async fn setup(backends: Backends) -> Setup {
    let telegram = FakeTelegram::start().await;
    let graph = FakeGraph::start(PAGE_ID, PAGE_TOKEN).await;
    let kamshub = Kamshub::embedded(&telegram.uri(), &graph.uri());
    std::fs::write(kamshub.dir.path().join("kamshub.toml"), backends.config_toml()).unwrap();
    Setup { kamshub, telegram, graph }
}

/// The app the CLI uses, built in-process from the same settings, to look behind the CLI.
fn app_of(k: &Kamshub, telegram: &str, graph: &str) -> kamshub::app::App {
    let flags = kamshub::config::FlagOverrides { data_dir: Some(k.data_dir()) };
    let mut settings =
        kamshub::config::Settings::load(Some(&k.dir.path().join("kamshub.toml")), &flags).expect("test settings load");
    settings.providers.telegram_api_base = telegram.to_owned();
    settings.providers.graph_api_base = graph.to_owned();
    kamshub::app::App::new(settings)
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread")] async fn $case() {
                super::$case(super::setup(super::Backends::Embedded).await).await
            })*
        }
        mod mongodb_cognito {
            $(#[tokio::test(flavor = "multi_thread")] async fn $case() {
                let Some(backends) = super::Backends::production().await else { return };
                super::$case(super::setup(backends).await).await
            })*
        }
    };
}

on_both_backends!(onboarding_flow_by_cli, rejected_provider_steps_leave_nothing_behind);

async fn onboarding_flow_by_cli(s: Setup) {
    let k = &s.kamshub;
    let app = app_of(k, &s.telegram.uri(), &s.graph.uri());

    // Bootstrap with a generated password: shown once, must be replaced at first sign-in.
    let admin = k.json(&["bootstrap", "--email", "Root@Example.com"]);
    assert_eq!(keys(&admin), ["email", "role", "temporaryPassword", "tenantId", "userId"]);
    assert_eq!(admin["tenantId"], "platform");
    assert_eq!(admin["role"], "platform_admin");
    assert_eq!(admin["email"], "root@example.com");
    let temporary = SecretString::from(admin["temporaryPassword"].as_str().unwrap().to_owned());
    let email = kamshub::domain::Email::parse("root@example.com").unwrap();
    let login = app.identity().await.unwrap().login(&email, &temporary).await.unwrap();
    assert!(matches!(login, Login::NewPasswordRequired { .. }), "first sign-in must replace the temporary password");

    // A second bootstrap fails and changes nothing.
    let again = k.run(&["bootstrap", "--email", "other@example.com", "--password", "Another-Pass-1"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(again.stderr.contains("already bootstrapped"), "{}", again.stderr);
    assert_eq!(k.json(&["user", "list", "--tenant", "platform"]).as_array().unwrap().len(), 1);

    // A tenant with its first admin, then a manager.
    let tenant = k.json(&["tenant", "create", "--name", "Acme Inc", "--admin-email", "ops@acme.example"]);
    assert_eq!(keys(&tenant), ["admin", "name", "tenantId"]);
    assert_eq!(keys(&tenant["admin"]), ["email", "role", "temporaryPassword", "userId"]);
    assert_eq!(tenant["admin"]["role"], "tenant_admin");
    let tenant_id = tenant["tenantId"].as_str().unwrap().to_owned();
    let manager =
        k.json(&["user", "invite", "--tenant", &tenant_id, "--email", "desk@acme.example", "--role", "tenant_manager"]);
    assert_eq!(manager["tenantId"], tenant_id.as_str());
    assert_eq!(manager["role"], "tenant_manager");
    let users = k.json(&["user", "list", "--tenant", &tenant_id]);
    let emails: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["ops@acme.example", "desk@acme.example"]);
    let listed: Vec<Value> = k.json(&["tenant", "list"]).as_array().unwrap().clone();
    assert_eq!(listed.iter().map(|t| t["name"].as_str().unwrap()).collect::<Vec<_>>(), ["Platform", "Acme Inc"]);
    let shown = k.json(&["tenant", "show", &tenant_id]);
    assert_eq!((shown["userCount"].as_u64(), shown["channelCount"].as_u64()), (Some(2), Some(0)));

    // A Telegram bot: getMe names it, setWebhook points it at us with a fresh secret.
    s.telegram.bot(BOT_TOKEN, "acme_support_bot", true).await;
    let bot = k.json(&[
        "channel",
        "add",
        "--tenant",
        &tenant_id,
        "--type",
        "telegram",
        "--display-name",
        "Support bot",
        "--token",
        BOT_TOKEN,
    ]);
    assert_eq!(
        keys(&bot),
        ["autoReply", "channelId", "displayName", "externalId", "health", "isActive", "tenantId", "type", "webhookUrl"]
    );
    assert_eq!(bot["externalId"], "acme_support_bot");
    assert_eq!(bot["type"], "telegram");
    assert_eq!(bot["isActive"], true);
    let bot_id = bot["channelId"].as_str().unwrap().to_owned();
    let expected_url = format!("https://inbox.example.com/webhooks/telegram/{bot_id}");
    assert_eq!(bot["webhookUrl"], expected_url.as_str());
    let calls = s.telegram.set_webhook_calls(BOT_TOKEN).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["url"], expected_url.as_str());
    let secret = calls[0]["secret_token"].as_str().unwrap();
    assert!(
        (1..=256).contains(&secret.len())
            && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    let updates: Vec<&str> =
        calls[0]["allowed_updates"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert!(updates.contains(&"message") && updates.contains(&"callback_query"), "{updates:?}");

    // The same bot cannot feed a second active channel, in this tenant or another.
    let dup = k.run(&[
        "channel",
        "add",
        "--tenant",
        &tenant_id,
        "--type",
        "telegram",
        "--display-name",
        "Again",
        "--token",
        BOT_TOKEN,
    ]);
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("already connected"), "{}", dup.stderr);

    // A Messenger page (token read from stdin): the app is subscribed to the page's fields.
    let run = k.run_with_stdin(
        &[
            "-o",
            "json",
            "channel",
            "add",
            "--tenant",
            &tenant_id,
            "--type",
            "messenger",
            "--display-name",
            "Acme page",
            "--page-id",
            PAGE_ID,
            "--page-token",
            "-",
        ],
        &format!("{PAGE_TOKEN}\n"),
    );
    let page = run.json();
    assert_eq!(page["externalId"], PAGE_ID);
    assert_eq!(page["webhookUrl"], "https://inbox.example.com/webhooks/messenger");
    let subscribe = s.graph.subscribe_calls().await;
    assert_eq!(subscribe.len(), 1);
    assert!(
        subscribe[0].contains(
            "subscribed_fields=messages%2Cmessage_echoes%2Cmessage_deliveries%2Cmessage_reads%2Cmessaging_postbacks\
             %2Cmessaging_referrals%2Cmessage_edits%2Cmessage_reactions&"
        ),
        "{}",
        subscribe[0]
    );

    // Rename, deactivate, activate.
    let renamed = k.json(&["channel", "rename", &bot_id, "--tenant", &tenant_id, "--name", "Night shift"]);
    assert_eq!(renamed["displayName"], "Night shift");
    assert_eq!(k.json(&["channel", "deactivate", &bot_id, "--tenant", &tenant_id])["isActive"], false);
    assert_eq!(k.json(&["channel", "activate", &bot_id, "--tenant", &tenant_id])["isActive"], true);
    let channels = k.json(&["channel", "list", "--tenant", &tenant_id]);
    assert_eq!(channels.as_array().unwrap().len(), 2);

    // Another tenant cannot touch the channel by id.
    let other = k.json(&["tenant", "create", "--name", "Globex", "--admin-email", "ops@globex.example"]);
    let other_id = other["tenantId"].as_str().unwrap();
    let cross = k.run(&["channel", "rename", &bot_id, "--tenant", other_id, "--name", "Mine now"]);
    assert_eq!(cross.code, 1);
    assert!(cross.stderr.contains("not found"), "{}", cross.stderr);

    // Every change is audited.
    let store = app.store().await.unwrap();
    let tenant_key = kamshub::domain::TenantId::parse(&tenant_id).unwrap();
    let actions: Vec<String> = store.list_audit(&tenant_key, 50).await.unwrap().into_iter().map(|a| a.action).collect();
    for action in
        ["tenant.create", "user.invite", "channel.add", "channel.rename", "channel.deactivate", "channel.activate"]
    {
        assert!(actions.iter().any(|a| a == action), "{action} missing from {actions:?}");
    }

    // Tokens never appear in anything printed, nor in plaintext in the data files.
    let printed = k.printed.borrow().clone();
    for token in [BOT_TOKEN, PAGE_TOKEN, secret] {
        assert!(!printed.contains(token), "a secret was printed");
        if k.data_dir().exists() {
            assert!(!any_file_contains(&k.data_dir(), token), "a secret is stored in plaintext");
        }
    }
    let stored = store.get_channel(&tenant_key, &kamshub::domain::ChannelId::parse(&bot_id).unwrap()).await.unwrap();
    assert!(!stored.credentials.as_str().contains(BOT_TOKEN));
}

async fn rejected_provider_steps_leave_nothing_behind(s: Setup) {
    let k = &s.kamshub;
    let tenant = k.json(&["tenant", "create", "--name", "Initech", "--admin-email", "ops@initech.example"]);
    let tenant_id = tenant["tenantId"].as_str().unwrap();

    // A token getMe refuses.
    let refused = k.run(&[
        "channel",
        "add",
        "--tenant",
        tenant_id,
        "--type",
        "telegram",
        "--display-name",
        "X",
        "--token",
        "1:bad",
    ]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("Unauthorized"), "{}", refused.stderr);

    // setWebhook fails: the channel is removed again, and the bot can be added once fixed.
    s.telegram.bot("2:webhook-fails", "flaky_bot", false).await;
    let failed = k.run(&[
        "channel",
        "add",
        "--tenant",
        tenant_id,
        "--type",
        "telegram",
        "--display-name",
        "X",
        "--token",
        "2:webhook-fails",
    ]);
    assert_eq!(failed.code, 1);
    assert!(failed.stderr.contains("HTTPS url must be provided"), "{}", failed.stderr);
    assert_eq!(k.json(&["channel", "list", "--tenant", tenant_id]), serde_json::json!([]));

    // --no-webhook skips it; set-webhook does it later (and reports the provider's refusal).
    let later = k.json(&[
        "channel",
        "add",
        "--tenant",
        tenant_id,
        "--type",
        "telegram",
        "--display-name",
        "Later",
        "--token",
        "2:webhook-fails",
        "--no-webhook",
    ]);
    assert!(s.telegram.set_webhook_calls("2:webhook-fails").await.len() == 1, "--no-webhook made no setWebhook call");
    let channel_id = later["channelId"].as_str().unwrap();
    let set = k.run(&["channel", "set-webhook", channel_id, "--tenant", tenant_id]);
    assert_eq!(set.code, 1, "{}", set.stderr);
    assert_eq!(s.telegram.set_webhook_calls("2:webhook-fails").await.len(), 2);

    // A page token Meta refuses (code 190): nothing stored.
    let page = k.run(&[
        "channel",
        "add",
        "--tenant",
        tenant_id,
        "--type",
        "messenger",
        "--display-name",
        "P",
        "--page-id",
        "99",
        "--page-token",
        "wrong",
    ]);
    assert_eq!(page.code, 1);
    assert!(page.stderr.contains("code 190"), "{}", page.stderr);
    assert_eq!(k.json(&["channel", "list", "--tenant", tenant_id]).as_array().unwrap().len(), 1);

    // Unknown tenant.
    let unknown = k.run(&["channel", "list", "--tenant", "tnt_missing"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("tenant `tnt_missing` not found"), "{}", unknown.stderr);

    // A duplicate email fails whole, in the same or another tenant.
    let dup =
        k.run(&["user", "invite", "--tenant", tenant_id, "--email", "ops@initech.example", "--role", "tenant_manager"]);
    assert_eq!(dup.code, 1);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);
    assert_eq!(k.json(&["user", "list", "--tenant", tenant_id]).as_array().unwrap().len(), 1);
    let dup_tenant = k.run(&["tenant", "create", "--name", "Initech 2", "--admin-email", "ops@initech.example"]);
    assert_eq!(dup_tenant.code, 1);
    assert_eq!(k.json(&["tenant", "list"]).as_array().unwrap().len(), 1, "no tenant without its admin");

    // Same tenant name, another case: refused, and its would-be admin was not left in identity.
    let same_name = k.run(&["tenant", "create", "--name", "INITECH", "--admin-email", "new@initech.example"]);
    assert_eq!(same_name.code, 1);
    assert!(same_name.stderr.contains("already exists"), "{}", same_name.stderr);
    let retry = k.json(&[
        "user",
        "invite",
        "--tenant",
        tenant_id,
        "--email",
        "new@initech.example",
        "--role",
        "tenant_manager",
    ]);
    assert_eq!(retry["email"], "new@initech.example", "identity user of the failed tenant was cleaned up");
}

/// Usage and configuration errors exit 2 with one line naming what is wrong.
mod usage_errors {
    use super::*;

    fn kamshub() -> Kamshub {
        Kamshub::embedded("http://127.0.0.1:9", "http://127.0.0.1:9")
    }

    #[test]
    fn malformed_values_are_usage_errors() {
        let k = kamshub();
        for (args, needle) in [
            (vec!["bootstrap", "--email", "not-an-email"], "invalid email"),
            (vec!["user", "invite", "--tenant", "platform", "--email", "a@b.co", "--role", "boss"], "invalid role"),
            (vec!["channel", "list", "--tenant", "../etc"], "invalid tenant id"),
            (
                vec!["channel", "add", "--tenant", "t1", "--type", "whatsapp", "--display-name", "x", "--token", "t"],
                "channel type",
            ),
            (vec!["channel", "add", "--tenant", "t1", "--type", "messenger", "--display-name", "x"], "--page-id"),
        ] {
            let run = k.run(&args);
            assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
            assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        }
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let k = kamshub().with("KAMSHUB_QUEUE__MAX_RECEIVE_COUNT", "many");
        let run = k.run(&["tenant", "list"]);
        assert_eq!(run.code, 2);
        assert!(
            run.stderr.contains("queue.max_receive_count") && run.stderr.contains("KAMSHUB_QUEUE__MAX_RECEIVE_COUNT"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

        let k = kamshub().with("KAMSHUB_STORE__KIND", "mongodb");
        let run = k.run(&["tenant", "list"]);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("KAMSHUB_STORE__URI"), "{}", run.stderr);

        let run = kamshub().run(&["--config", "missing.toml", "tenant", "list"]);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("missing.toml") && run.stderr.contains("does not exist"), "{}", run.stderr);

        let k = kamshub().with("KAMSHUB_MASTER_KEY", "c2hvcnQ=");
        let run = k.run(&["tenant", "list"]);
        assert_eq!(run.code, 2);
        assert!(run.stderr.contains("KAMSHUB_MASTER_KEY") && run.stderr.contains("32 bytes"), "{}", run.stderr);
        assert!(!run.stderr.contains("c2hvcnQ="), "the key itself is not echoed");
    }

    #[test]
    fn an_unreachable_store_fails_the_operation_without_leaking_the_uri() {
        let k = kamshub()
            .with("KAMSHUB_STORE__KIND", "mongodb")
            .with("KAMSHUB_STORE__URI", "mongodb://kamshub:hunter2-secret@127.0.0.1:9/?serverSelectionTimeoutMS=300")
            .with("KAMSHUB_MASTER_KEY", &kamshub::sealing::MasterKey::generate_base64());
        let run = k.run(&["tenant", "list"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("unavailable"), "{}", run.stderr);
        assert!(!run.stderr.contains("hunter2-secret"), "{}", run.stderr);
    }

    #[test]
    fn an_unreachable_provider_is_named() {
        let k = kamshub();
        let tenant = k.json(&["tenant", "create", "--name", "Hooli", "--admin-email", "ops@hooli.example"]);
        let run = k.run(&[
            "channel",
            "add",
            "--tenant",
            tenant["tenantId"].as_str().unwrap(),
            "--type",
            "telegram",
            "--display-name",
            "x",
            "--token",
            "123:unreachable-canary",
        ]);
        assert_eq!(run.code, 1);
        assert!(run.stderr.contains("Telegram is unreachable"), "{}", run.stderr);
        assert!(!run.stderr.contains("unreachable-canary"), "the token is not in the error: {}", run.stderr);
    }
}
