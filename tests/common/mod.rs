//! Helpers shared by the integration tests: access to the real stand-in services, and fresh
//! isolated namespaces (a database, a user pool) per test.

#![allow(dead_code, reason = "each test binary uses a different part of these helpers")]

pub mod api;
pub mod app;
pub mod cli;
pub mod daemon;
pub mod fake_providers;
pub mod poison;
pub mod prometheus;
pub mod queues;
pub mod sse;

use std::sync::atomic::{AtomicU32, Ordering};

/// Whether a missing service must fail the test instead of skipping it (set by `scripts/test`).
pub fn services_required() -> bool {
    std::env::var("KAMSHUB_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The value of a service variable, or `None` to skip; panics when services are required.
fn service_var(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if services_required() => {
            panic!("{name} is not set but KAMSHUB_REQUIRE_SERVICES=1: start the services with scripts/test")
        }
        _ => {
            eprintln!("skipping: {name} is not set (run scripts/test to start the stand-in services)");
            None
        }
    }
}

/// MongoDB-wire URI of the test server (SecantusDB).
pub fn mongodb_uri() -> Option<String> {
    service_var("KAMSHUB_TEST_MONGODB_URI")
}

/// Endpoint of the AWS stand-in (moto).
pub fn aws_endpoint() -> Option<String> {
    service_var("KAMSHUB_TEST_AWS_ENDPOINT")
}

/// A conversation's newest `limit` messages, oldest first (the store lists newest first).
pub async fn messages_oldest_first(
    store: &dyn kamshub::store::Store,
    tenant: &kamshub::domain::TenantId,
    conversation: &kamshub::domain::ConversationId,
    limit: u32,
) -> Vec<kamshub::domain::Message> {
    let mut messages = store.list_messages(tenant, conversation, None, limit).await.unwrap();
    messages.reverse();
    messages
}

/// The Python of `scripts/test`'s virtualenv, which holds the Prometheus project's own client
/// library (its text-format parser checks `/metrics`).
pub fn python() -> Option<String> {
    service_var("KAMSHUB_TEST_PYTHON")
}

/// A name no other test in this run uses, for databases and pools.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), uuid_suffix())
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{nanos:x}")
}

/// A Cognito user pool and app client created on the AWS stand-in for one test, configured as
/// production would be: `custom:tenantID` declared, a client secret, admin password auth.
pub struct TestPool {
    pub endpoint: String,
    pub region: String,
    pub pool_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// How a test pool guards the tenant attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSetup {
    /// As kamshub's docs create it: `custom:tenantID` immutable, the app client may write only
    /// `email` (moto enforces neither, but kamshub's start-up check reads both).
    Production,
    /// The attribute mutable and the app client without a write-attribute list: users can
    /// rewrite their own tenant.
    Misconfigured,
}

impl TestPool {
    pub async fn create(endpoint: &str) -> TestPool {
        Self::create_with(endpoint, PoolSetup::Production).await
    }

    pub async fn create_with(endpoint: &str, setup: PoolSetup) -> TestPool {
        use aws_sdk_cognitoidentityprovider::types::{AttributeDataType, ExplicitAuthFlowsType, SchemaAttributeType};
        let region = "us-east-2".to_owned();
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_cognitoidentityprovider::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await;
        let client = aws_sdk_cognitoidentityprovider::Client::new(&config);
        let pool = client
            .create_user_pool()
            .pool_name(unique_name("pool"))
            .schema(
                SchemaAttributeType::builder()
                    .name("tenantID")
                    .attribute_data_type(AttributeDataType::String)
                    .mutable(setup == PoolSetup::Misconfigured)
                    .build(),
            )
            .send()
            .await
            .expect("create user pool on the stand-in");
        let pool_id = pool.user_pool().and_then(|p| p.id()).expect("pool id").to_owned();
        let mut app = client
            .create_user_pool_client()
            .user_pool_id(&pool_id)
            .client_name("kamshub")
            .generate_secret(true)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth);
        if setup == PoolSetup::Production {
            app = app.write_attributes("email");
        }
        let app = app.send().await.expect("create app client on the stand-in");
        let app = app.user_pool_client().expect("app client");
        TestPool {
            endpoint: endpoint.to_owned(),
            region,
            pool_id,
            client_id: app.client_id().expect("client id").to_owned(),
            client_secret: app.client_secret().expect("client secret").to_owned(),
        }
    }

    /// The `[identity]` settings that point kamshub at this pool.
    pub fn settings(&self) -> kamshub::config::IdentitySettings {
        kamshub::config::IdentitySettings {
            kind: kamshub::config::IdentityKind::Cognito,
            user_pool_id: Some(self.pool_id.clone()),
            client_id: Some(self.client_id.clone()),
            client_secret: Some(self.client_secret.clone().into()),
            region: Some(self.region.clone()),
            endpoint_url: Some(self.endpoint.clone()),
            jwks_url: None,
        }
    }

    /// The same settings as an `[identity]` section of `kamshub.toml`.
    pub fn toml(&self) -> String {
        format!(
            "[identity]\nkind = \"cognito\"\nuser_pool_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
             region = \"{}\"\nendpoint_url = \"{}\"\n",
            self.pool_id, self.client_id, self.client_secret, self.region, self.endpoint
        )
    }

    /// A Cognito client on the stand-in, for what a user does with their own tokens.
    pub async fn client(&self) -> aws_sdk_cognitoidentityprovider::Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_cognitoidentityprovider::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .load()
            .await;
        aws_sdk_cognitoidentityprovider::Client::new(&config)
    }

    /// The same settings as `KAMSHUB_IDENTITY__*` variables, for the CLI.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KAMSHUB_IDENTITY__KIND".into(), "cognito".into()),
            ("KAMSHUB_IDENTITY__USER_POOL_ID".into(), self.pool_id.clone()),
            ("KAMSHUB_IDENTITY__CLIENT_ID".into(), self.client_id.clone()),
            ("KAMSHUB_IDENTITY__CLIENT_SECRET".into(), self.client_secret.clone()),
            ("KAMSHUB_IDENTITY__REGION".into(), self.region.clone()),
            ("KAMSHUB_IDENTITY__ENDPOINT_URL".into(), self.endpoint.clone()),
        ]
    }
}
