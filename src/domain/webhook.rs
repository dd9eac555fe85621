//! Outgoing webhooks: a tenant's endpoints, which addresses they may point at, their signing
//! secrets and signatures (Standard Webhooks), and their health. No I/O: the delivery client
//! (`crate::delivery`) resolves names and calls endpoints under the same address rules.
//!
//! A signature is Standard Webhooks' `v1`: `base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))`,
//! where the key is the base64-decoded part of the `whsec_…` secret shown once at registration.

use super::event::EventType;
use super::ids::id_type;
use super::{TenantId, ValidationError};
use crate::sealing::Sealed;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use time::OffsetDateTime;

id_type!(
    /// A tenant's webhook endpoint.
    WebhookId, "webhook id", "whk"
);

/// Which addresses endpoints may use: the `[webhooks]` settings. By default only public `https`
/// endpoints: a tenant must not make kamshub call into its own network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// Plain `http://` URLs are accepted (development only).
    pub allow_http: bool,
    /// Loopback, private (RFC 1918, unique local) and shared (100.64/10) addresses are accepted.
    /// Link-local addresses (cloud metadata services live there) never are.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Why kamshub must not connect to `ip`, or None if it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let class = classify(ip);
        match class {
            Class::Public => None,
            Class::Private | Class::Loopback if self.allow_private => None,
            Class::Private => Some("a private address"),
            Class::Loopback => Some("a loopback address"),
            Class::LinkLocal => Some("a link-local address"),
            Class::Special => Some("a reserved, multicast or unspecified address"),
        }
    }
}

enum Class {
    Public,
    Private,
    Loopback,
    LinkLocal,
    Special,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Class::Private
    } else if ip.is_link_local() {
        Class::LinkLocal
    } else if a == 0
        || a >= 224
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19 || (b == 51 && c == 100)))
        || (a == 203 && b == 0 && c == 113)
    {
        // this network, multicast, reserved, broadcast; IETF assignments, documentation, benchmarks
        Class::Special
    } else {
        Class::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Class::Loopback
    } else if ip.is_unspecified() || ip.is_multicast() || first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Class::Special
    } else if first & 0xfe00 == 0xfc00 {
        Class::Private
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Class::LinkLocal
    } else {
        Class::Public
    }
}

/// The IPv4 address an IPv6 address stands for: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// An endpoint URL that passed the address rules as written: `https` (or `http` when allowed),
/// no credentials, no fragment, and a host that is not an address the policy refuses. A host
/// name is checked again after every resolution (`crate::delivery`), at registration and at each
/// delivery: a name that resolves elsewhere later (DNS rebinding) is refused then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    /// Checks `text` against `policy`.
    pub fn parse(text: &str, policy: &AddressPolicy) -> Result<Self, ValidationError> {
        let invalid = |why: String| ValidationError::new("webhook URL", why);
        if text.len() > MAX_URL_LEN {
            return Err(invalid(format!("is longer than {MAX_URL_LEN} characters")));
        }
        let url = url::Url::parse(text.trim()).map_err(|e| invalid(format!("`{text}` is not a URL ({e})")))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => {
                return Err(invalid("must be https (plain http is allowed only by `[webhooks] allow_http`)".into()));
            }
            other => return Err(invalid(format!("must be https, not {other}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry credentials; authenticate deliveries with their signature".into()));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment".into()));
        }
        let endpoint = Self(url);
        endpoint.check_host(policy)?;
        Ok(endpoint)
    }

    /// A URL read back from the store, checked again under the current policy (the policy may have
    /// been tightened since it was registered).
    pub fn from_stored(text: &str, policy: &AddressPolicy) -> Result<Self, ValidationError> {
        Self::parse(text, policy)
    }

    /// Checks the host as written: an address literal against the policy; `localhost` names
    /// against the loopback rule. Names are checked after resolution by the caller.
    pub fn check_host(&self, policy: &AddressPolicy) -> Result<(), ValidationError> {
        let refused = |why: &str| ValidationError::new("webhook URL", format!("host is {why}; {}", HINT));
        match self.0.host() {
            None => Err(ValidationError::new("webhook URL", "has no host")),
            Some(url::Host::Ipv4(ip)) => policy.refuses(IpAddr::V4(ip)).map_or(Ok(()), |why| Err(refused(why))),
            Some(url::Host::Ipv6(ip)) => policy.refuses(IpAddr::V6(ip)).map_or(Ok(()), |why| Err(refused(why))),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let local = name == "localhost" || name.ends_with(".localhost");
                match local {
                    true => policy.refuses(IpAddr::V4(Ipv4Addr::LOCALHOST)).map_or(Ok(()), |why| Err(refused(why))),
                    false => Ok(()),
                }
            }
        }
    }

    /// The host name when the host is a name (to resolve), None for an address literal.
    pub fn host_name(&self) -> Option<&str> {
        match self.0.host() {
            Some(url::Host::Domain(name)) => Some(name),
            _ => None,
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// What a refused address's error message adds.
pub const HINT: &str = "endpoints must be public addresses (`[webhooks] allow_private_addresses` permits \
                        private ones)";

/// An endpoint's signing secret in the form shown to its owner once: `whsec_` and the base64 of
/// 32 random bytes (Standard Webhooks' format; its libraries take it as it is).
pub struct SigningSecret(String);

impl SigningSecret {
    /// Prefix of every secret.
    pub const PREFIX: &'static str = "whsec_";

    /// A fresh random secret.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(format!("{}{}", Self::PREFIX, B64.encode(key)))
    }

    /// A secret opened from its sealed form.
    pub fn from_text(text: String) -> Result<Self, ValidationError> {
        let secret = Self(text);
        secret.key()?;
        Ok(secret)
    }

    /// The secret as shown (`whsec_…`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the decoded bytes after the prefix.
    fn key(&self) -> Result<Vec<u8>, ValidationError> {
        let encoded = self.0.strip_prefix(Self::PREFIX).unwrap_or(&self.0);
        B64.decode(encoded).map_err(|_| ValidationError::new("webhook secret", "is not whsec_ and base64"))
    }

    /// The `webhook-signature` header of a delivery: `v1,` and the base64 HMAC-SHA256 of
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        use hmac::{Hmac, Mac};
        let key = self.key().unwrap_or_default();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(..)")
    }
}

/// Whether an endpoint receives deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Deliveries are made.
    Enabled,
    /// No deliveries: switched off by its owner, or by kamshub after it answered `410 Gone` or
    /// kept failing (see `disabled_reason`). Re-enable it, then replay what it missed.
    Disabled,
}

impl EndpointState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Enabled => "enabled",
            EndpointState::Disabled => "disabled",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "enabled" => Ok(EndpointState::Enabled),
            "disabled" => Ok(EndpointState::Disabled),
            _ => Err(ValidationError::new("endpoint state", format!("`{s}` is not enabled or disabled"))),
        }
    }
}

/// How an endpoint has been answering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The first failure since the last success: how long it has been failing.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub failing_since: Option<OffsetDateTime>,
    /// The last successful delivery.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_success_at: Option<OffsetDateTime>,
    /// The last failed attempt.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_failure_at: Option<OffsetDateTime>,
    /// The HTTP status of the last attempt that got an answer.
    pub last_status: Option<u16>,
    /// What went wrong last.
    pub last_error: Option<String>,
}

/// What one delivery attempt to an endpoint came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    /// Why it failed (None: a 2xx).
    pub error: Option<String>,
}

impl AttemptResult {
    /// Whether the endpoint took the delivery.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// A tenant's endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEndpoint {
    /// Stable id.
    pub id: WebhookId,
    /// Owner: only its events are delivered here.
    pub tenant_id: TenantId,
    /// Where deliveries go.
    pub url: String,
    /// The event types delivered; empty means every type.
    pub event_types: Vec<EventType>,
    /// What the owner calls it.
    pub description: Option<String>,
    /// The signing secret, sealed under the master key (bound to the endpoint id).
    pub secret: Sealed,
    /// Whether deliveries are made.
    pub state: EndpointState,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// How it has been answering.
    pub health: EndpointHealth,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

impl WebhookEndpoint {
    /// Whether an event of `event_type` is delivered here now.
    pub fn wants(&self, event_type: EventType) -> bool {
        self.state == EndpointState::Enabled && (self.event_types.is_empty() || self.event_types.contains(&event_type))
    }

    /// Records an attempt at `now`. After a failure, the endpoint is disabled if it answered
    /// `410 Gone` (it says it is gone for good) or has failed without a success for
    /// `disable_after`. Returns whether this attempt disabled it.
    pub fn record(&mut self, attempt: &AttemptResult, now: OffsetDateTime, disable_after: std::time::Duration) -> bool {
        let health = &mut self.health;
        if attempt.status.is_some() {
            health.last_status = attempt.status;
        }
        self.updated_at = now;
        let Some(error) = &attempt.error else {
            health.consecutive_failures = 0;
            health.failing_since = None;
            health.last_success_at = Some(now);
            health.last_error = None;
            return false;
        };
        health.consecutive_failures += 1;
        health.last_failure_at = Some(now);
        health.last_error = Some(error.clone());
        let since = *health.failing_since.get_or_insert(now);
        if self.state == EndpointState::Disabled {
            return false;
        }
        let reason = if attempt.status == Some(410) {
            Some("the endpoint answered 410 Gone".to_owned())
        } else if now - since >= disable_after {
            Some(format!(
                "failing since {} ({} attempts without a success); last: {error}",
                super::view::rfc3339(since),
                health.consecutive_failures
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.state = EndpointState::Disabled;
                self.disabled_reason = Some(reason);
                true
            }
            None => false,
        }
    }

    /// Turns deliveries on again, with a clean slate of health (what it missed is replayed
    /// separately).
    pub fn enable(&mut self, now: OffsetDateTime) {
        self.state = EndpointState::Enabled;
        self.disabled_reason = None;
        self.health.consecutive_failures = 0;
        self.health.failing_since = None;
        self.updated_at = now;
    }

    /// Turns deliveries off, for `reason`.
    pub fn disable(&mut self, reason: &str, now: OffsetDateTime) {
        self.state = EndpointState::Disabled;
        self.disabled_reason = Some(reason.to_owned());
        self.updated_at = now;
    }
}

/// The `webhook-id` and `Idempotency-Key` of a tenant's event: its event id, qualified by the
/// tenant, because one integrator URL may be registered by several tenants and event ids are
/// unique per tenant only. The same for every attempt and every replay of the event.
pub fn delivery_key(tenant: &TenantId, event: super::EventId) -> String {
    format!("evt_{tenant}_{event}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: AddressPolicy = AddressPolicy { allow_http: false, allow_private: false };
    const DEV: AddressPolicy = AddressPolicy { allow_http: true, allow_private: true };

    #[test]
    fn only_public_addresses_pass_the_default_policy() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.10",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
            "2001:db8::1",
        ];
        for ip in refused {
            assert!(STRICT.refuses(ip.parse().unwrap()).is_some(), "{ip} must be refused");
        }
        for ip in ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert_eq!(STRICT.refuses(ip.parse().unwrap()), None, "{ip} is public");
        }
    }

    #[test]
    fn allowing_private_addresses_never_opens_link_local_or_special_ones() {
        for ip in ["127.0.0.1", "10.0.0.1", "fd00::1", "::1"] {
            assert_eq!(DEV.refuses(ip.parse().unwrap()), None, "{ip}");
        }
        for ip in ["169.254.169.254", "fe80::1", "0.0.0.0", "224.0.0.1", "::ffff:169.254.169.254"] {
            assert!(DEV.refuses(ip.parse().unwrap()).is_some(), "{ip}");
        }
    }

    #[test]
    fn urls_must_be_https_public_and_without_credentials() {
        assert!(EndpointUrl::parse("https://hooks.example.com/kamshub?x=1", &STRICT).is_ok());
        for (url, why) in [
            ("http://hooks.example.com/", "must be https"),
            ("ftp://hooks.example.com/", "must be https"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("https://hooks.example.com/#frag", "fragment"),
            ("https://127.0.0.1/", "loopback"),
            ("https://[::1]:8443/", "loopback"),
            ("https://10.0.0.7/", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://localhost:9000/", "loopback"),
            ("https://api.localhost/", "loopback"),
            ("https://2130706433/", "loopback"),
            ("not a url", "not a URL"),
        ] {
            let error = EndpointUrl::parse(url, &STRICT).unwrap_err().to_string();
            assert!(error.contains(why), "{url}: {error}");
        }
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook", &DEV).is_ok());
        assert!(EndpointUrl::parse("https://169.254.169.254/", &DEV).is_err());
    }

    #[test]
    fn signatures_match_the_standard_webhooks_reference() {
        // The example of the Standard Webhooks specification, also the test vector of its
        // reference libraries; checked with the Python one (`standardwebhooks` 1.1.0, `Webhook.sign`).
        let secret = SigningSecret::from_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()).unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let fresh = SigningSecret::generate();
        assert!(fresh.expose().starts_with("whsec_"));
        assert_ne!(fresh.sign("a", 1, "x"), SigningSecret::generate().sign("a", 1, "x"));
    }

    fn endpoint() -> WebhookEndpoint {
        let now = crate::domain::now();
        WebhookEndpoint {
            id: WebhookId::generate(),
            tenant_id: TenantId::generate(),
            url: "https://hooks.example.com/".into(),
            event_types: vec![EventType::MessageReceived],
            description: None,
            secret: Sealed::from_stored("sealed".into()),
            state: EndpointState::Enabled,
            disabled_reason: None,
            health: EndpointHealth::default(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn an_endpoint_wants_its_types_while_enabled() {
        let mut e = endpoint();
        assert!(e.wants(EventType::MessageReceived));
        assert!(!e.wants(EventType::ReplySent));
        e.event_types.clear();
        assert!(e.wants(EventType::ReplySent), "no filter: every type");
        e.disable("owner", crate::domain::now());
        assert!(!e.wants(EventType::MessageReceived));
    }

    #[test]
    fn an_endpoint_is_disabled_by_a_410_or_by_failing_for_the_whole_window() {
        let window = std::time::Duration::from_secs(3600);
        let t0 = crate::domain::now();
        let failed = |status: u16| AttemptResult { status: Some(status), error: Some(format!("HTTP {status}")) };
        let mut e = endpoint();
        assert!(!e.record(&failed(500), t0, window));
        assert!(!e.record(&failed(500), t0 + time::Duration::minutes(59), window));
        assert_eq!((e.health.consecutive_failures, e.state), (2, EndpointState::Enabled));
        assert!(e.record(&failed(503), t0 + time::Duration::minutes(60), window), "an hour of failures");
        assert!(e.disabled_reason.as_deref().unwrap().contains("failing since"), "{:?}", e.disabled_reason);

        let mut e = endpoint();
        e.record(&failed(500), t0, window);
        e.record(&AttemptResult { status: Some(200), error: None }, t0 + time::Duration::minutes(30), window);
        assert_eq!((e.health.consecutive_failures, e.health.failing_since), (0, None), "a success resets it");
        assert!(!e.record(&failed(500), t0 + time::Duration::minutes(61), window), "the clock restarted");

        let mut e = endpoint();
        assert!(e.record(&failed(410), t0, window), "410 Gone disables at once");
        assert_eq!(e.disabled_reason.as_deref(), Some("the endpoint answered 410 Gone"));
        e.enable(t0);
        assert_eq!((e.state, e.health.consecutive_failures), (EndpointState::Enabled, 0));
    }
}
