//! Delivering events to tenants' webhook endpoints: one signed HTTP POST per attempt, made only to
//! addresses the `[webhooks]` policy allows.
//!
//! An endpoint's host is checked when it is registered ([`WebhookClient::check_url`]) and again at
//! every delivery, after resolution: the client resolves names through [`GuardedResolver`], which
//! hands the connector only allowed addresses, so a name that pointed at a public address at
//! registration and at a private one later (DNS rebinding) is never connected to. Address
//! literals and `localhost` names are checked before the request. Redirects are not followed
//! (a 3xx would lead elsewhere) and no proxy is used (it would resolve the name itself).
//!
//! A delivery (docs/architecture.md, "Events and outgoing webhooks"): `POST` with the event's
//! JSON as body and Standard Webhooks' headers, `webhook-id` (also `Idempotency-Key`: the event's
//! key, the same at each attempt and replay), `webhook-timestamp` (this attempt's Unix seconds)
//! and `webhook-signature` (`v1,` HMAC-SHA256 of `{id}.{timestamp}.{body}`). A 2xx is success;
//! 408, 429, 5xx, timeouts and connection failures are retried; any other answer is final.

use crate::domain::webhook::{AddressPolicy, AttemptResult, EndpointUrl, HINT, SigningSecret, delivery_key};
use crate::domain::{Event, SendFailure, ValidationError, WebhookEndpoint};
use crate::sealing::{MasterKey, SealContext};
use futures::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How names are looked up: the system resolver in production; tests substitute their own.
pub type Lookup = Arc<dyn Fn(String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> + Send + Sync>;

/// The system resolver (`getaddrinfo` through tokio).
pub fn system_lookup() -> Lookup {
    Arc::new(|name: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((name.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    })
}

/// Longest a registration waits for a name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves names for the delivery client and keeps only the addresses the policy allows.
pub struct GuardedResolver {
    policy: AddressPolicy,
    lookup: Lookup,
}

/// Why a name gave the connector no address.
#[derive(Debug, thiserror::Error)]
#[error("`{name}` resolves only to refused addresses ({why}); {HINT}")]
pub struct AddressRefused {
    name: String,
    why: &'static str,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (policy, lookup) = (self.policy, Arc::clone(&self.lookup));
        Box::pin(async move {
            let name = name.as_str().to_owned();
            let found = lookup(name.clone()).await?;
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|ip| match policy.refuses(*ip) {
                    Some(why) => {
                        refused = Some(why);
                        false
                    }
                    None => true,
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or("no address");
                return Err(Box::new(AddressRefused { name, why }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The client that makes deliveries.
pub struct WebhookClient {
    http: reqwest::Client,
    policy: AddressPolicy,
    lookup: Lookup,
    key: Arc<MasterKey>,
}

/// What one attempt came to: the sender's policy input and the endpoint's health record.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// What the far side gave back when it took the delivery (`HTTP 200`).
    pub accepted: Option<String>,
    /// Why it failed, in the outbox policy's terms.
    pub failure: Option<SendFailure>,
    /// What the endpoint's health records (None: no call was made).
    pub result: Option<AttemptResult>,
}

impl WebhookClient {
    /// A client under `policy`, giving each endpoint `timeout` to answer, opening secrets with `key`.
    pub fn new(policy: AddressPolicy, timeout: Duration, key: Arc<MasterKey>) -> Self {
        Self::with_lookup(policy, timeout, key, system_lookup())
    }

    /// Like [`WebhookClient::new`] with names resolved by `lookup`.
    pub fn with_lookup(policy: AddressPolicy, timeout: Duration, key: Arc<MasterKey>, lookup: Lookup) -> Self {
        let resolver = GuardedResolver { policy, lookup: Arc::clone(&lookup) };
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("kamshub-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook HTTP client builds");
        Self { http, policy, lookup, key }
    }

    /// The address rules this client applies.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// Checks a URL for registration: the rules as written, then every address its name resolves
    /// to (all must be allowed; a name that does not resolve is refused).
    pub async fn check_url(&self, text: &str) -> Result<EndpointUrl, ValidationError> {
        let url = EndpointUrl::parse(text, &self.policy)?;
        let Some(name) = url.host_name() else { return Ok(url) };
        let invalid = |why: String| ValidationError::new("webhook URL", why);
        let found = match tokio::time::timeout(RESOLVE_TIMEOUT, (self.lookup)(name.to_owned())).await {
            Ok(Ok(found)) if !found.is_empty() => found,
            Ok(Ok(_)) | Ok(Err(_)) => return Err(invalid(format!("host `{name}` does not resolve"))),
            Err(_) => return Err(invalid(format!("host `{name}` did not resolve within 5 s"))),
        };
        for ip in found {
            if let Some(why) = self.policy.refuses(ip) {
                return Err(invalid(format!("host `{name}` resolves to {why} ({ip}); {HINT}")));
            }
        }
        Ok(url)
    }

    /// Makes one delivery attempt of `event` to `endpoint`.
    pub async fn deliver(&self, endpoint: &WebhookEndpoint, event: &Event) -> Attempt {
        let refused = |why: String| Attempt {
            accepted: None,
            failure: Some(SendFailure::Permanent { code: None, description: why.clone(), needs_reauth: false }),
            result: Some(AttemptResult { status: None, error: Some(why) }),
        };
        // The URL was checked at registration; the policy may have changed since, and literals
        // never reach the resolver.
        let url = match EndpointUrl::from_stored(&endpoint.url, &self.policy) {
            Ok(url) => url,
            Err(e) => return refused(e.to_string()),
        };
        let secret = match self.key.open(&endpoint.secret, SealContext::webhook_signing_secret(endpoint.id.as_str())) {
            Ok(text) => SigningSecret::from_text(secrecy::ExposeSecret::expose_secret(&text).to_owned()),
            Err(e) => return refused(format!("cannot open the endpoint's signing secret: {e}")),
        };
        let secret = match secret {
            Ok(secret) => secret,
            Err(e) => return refused(e.to_string()),
        };
        let id = delivery_key(&event.tenant_id, event.id);
        let body = serde_json::to_string(&event.view()).expect("an event view serialises");
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let request = self
            .http
            .post(url.as_str())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", secret.sign(&id, timestamp, &body))
            .header("idempotency-key", &id)
            .body(body);
        match request.send().await {
            Ok(response) => read_answer(response).await,
            Err(e) => failed_call(&e),
        }
    }
}

/// What an endpoint's answer means.
async fn read_answer(response: reqwest::Response) -> Attempt {
    let status = response.status();
    let code = status.as_u16();
    if status.is_success() {
        return Attempt {
            accepted: Some(format!("HTTP {code}")),
            failure: None,
            result: Some(AttemptResult { status: Some(code), error: None }),
        };
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let excerpt = excerpt(response).await;
    let error = match excerpt.is_empty() {
        true => format!("HTTP {code}"),
        false => format!("HTTP {code}: {excerpt}"),
    };
    let failure = match code {
        429 | 408 => match retry_after {
            Some(delay) if code == 429 => SendFailure::RetryAfter(delay.max(Duration::from_secs(1))),
            _ => SendFailure::Transient(error.clone()),
        },
        500..=599 => SendFailure::Transient(error.clone()),
        300..=399 => SendFailure::Permanent {
            code: Some(i64::from(code)),
            description: format!("{error} (redirects are not followed: register the final URL)"),
            needs_reauth: false,
        },
        _ => SendFailure::Permanent { code: Some(i64::from(code)), description: error.clone(), needs_reauth: false },
    };
    Attempt {
        accepted: None,
        failure: Some(failure),
        result: Some(AttemptResult { status: Some(code), error: Some(error) }),
    }
}

/// The start of an answer's body, for the delivery's error (at most 200 characters of the first
/// chunk; the rest is not read).
async fn excerpt(mut response: reqwest::Response) -> String {
    let chunk = response.chunk().await.ok().flatten().unwrap_or_default();
    let text = String::from_utf8_lossy(&chunk[..chunk.len().min(800)]);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    text.trim().to_owned()
}

/// A call that got no answer: refused addresses are final; timeouts and connection failures are
/// retried (a delivery may arrive twice: the endpoint deduplicates by `Idempotency-Key`).
fn failed_call(e: &reqwest::Error) -> Attempt {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<AddressRefused>() {
            let why = refused.to_string();
            return Attempt {
                accepted: None,
                failure: Some(SendFailure::Permanent { code: None, description: why.clone(), needs_reauth: false }),
                result: Some(AttemptResult { status: None, error: Some(why) }),
            };
        }
        source = cause.source();
    }
    let why = if e.is_timeout() {
        "the endpoint did not answer in time".to_owned()
    } else if e.is_connect() {
        format!("cannot connect: {}", root_cause(e))
    } else {
        format!("the call failed: {}", root_cause(e))
    };
    Attempt {
        accepted: None,
        failure: Some(SendFailure::Transient(why.clone())),
        result: Some(AttemptResult { status: None, error: Some(why) }),
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    const STRICT: AddressPolicy = AddressPolicy { allow_http: true, allow_private: false };

    fn endpoint(url: &str, key: &MasterKey) -> WebhookEndpoint {
        use crate::domain::webhook::{EndpointHealth, EndpointState, WebhookId};
        let (id, now) = (WebhookId::generate(), crate::domain::now());
        let secret = secrecy::SecretString::from(SigningSecret::generate().expose().to_owned());
        WebhookEndpoint {
            secret: key.seal(&secret, SealContext::webhook_signing_secret(id.as_str())),
            id,
            tenant_id: crate::domain::TenantId::generate(),
            url: url.to_owned(),
            event_types: Vec::new(),
            description: None,
            state: EndpointState::Enabled,
            disabled_reason: None,
            health: EndpointHealth::default(),
            created_at: now,
            updated_at: now,
        }
    }

    fn event(tenant: &crate::domain::TenantId) -> Event {
        Event {
            tenant_id: tenant.clone(),
            id: crate::domain::EventId::new(1),
            event_type: crate::domain::EventType::ChannelHealth,
            at: crate::domain::now(),
            conversation_id: None,
            data: serde_json::json!({}),
        }
    }

    fn flipping(public_first: Arc<AtomicBool>) -> Lookup {
        Arc::new(move |_name: String| {
            let public = public_first.swap(false, Ordering::SeqCst);
            Box::pin(async move {
                let ip = if public { "93.184.215.14" } else { "10.0.0.7" };
                Ok(vec![ip.parse().unwrap()])
            })
        })
    }

    #[tokio::test]
    async fn registration_resolves_the_name_and_refuses_private_answers() {
        let key = Arc::new(MasterKey::from_bytes(&[7; 32]));
        let private: Lookup = Arc::new(|_| Box::pin(async { Ok(vec!["192.168.1.5".parse().unwrap()]) }));
        let client = WebhookClient::with_lookup(STRICT, Duration::from_secs(1), key.clone(), private);
        let error = client.check_url("http://hooks.example.com/x").await.unwrap_err().to_string();
        assert!(error.contains("resolves to a private address (192.168.1.5)"), "{error}");
        let nowhere: Lookup = Arc::new(|_| Box::pin(async { Err(std::io::Error::other("NXDOMAIN")) }));
        let client = WebhookClient::with_lookup(STRICT, Duration::from_secs(1), key, nowhere);
        let error = client.check_url("http://nowhere.example.com/").await.unwrap_err().to_string();
        assert!(error.contains("does not resolve"), "{error}");
    }

    /// DNS rebinding: a public answer at registration, a private one at delivery. The delivery is
    /// refused before any connection (the private address would not even answer here).
    #[tokio::test]
    async fn a_name_that_rebinds_to_a_private_address_is_refused_at_delivery() {
        let key = Arc::new(MasterKey::from_bytes(&[7; 32]));
        let client =
            WebhookClient::with_lookup(STRICT, Duration::from_secs(2), key.clone(), flipping(Arc::new(true.into())));
        let url = client.check_url("http://rebind.example.com:8080/hook").await.unwrap();
        let endpoint = endpoint(url.as_str(), &key);
        let event = event(&endpoint.tenant_id);
        let attempt = client.deliver(&endpoint, &event).await;
        let Some(SendFailure::Permanent { description, .. }) = &attempt.failure else {
            panic!("{attempt:?}");
        };
        assert!(description.contains("resolves only to refused addresses (a private address)"), "{description}");
        assert_eq!(attempt.result.unwrap().status, None, "no endpoint answered");
    }
}
