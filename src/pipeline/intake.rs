//! Intake: verifies a webhook, turns each provider event into an [`Envelope`] and enqueues it on
//! **incoming**; the provider gets 200 only once the enqueue is durable.
//!
//! Channel lookups are cached for a short while, and a stale entry is still used while the store
//! is unreachable, so intake keeps acknowledging through a short store outage: the queue, not the
//! store, is what must be up.

use super::batcher::{EnqueueBatcher, EnqueueError};
use crate::domain::inbound::{ENVELOPE_VERSION, Envelope};
use crate::domain::{Channel, ChannelId, ChannelKind, TenantId};
use crate::providers::{messenger_webhook, telegram_webhook};
use crate::queue::{OutgoingMessage, Queue, QueueName};
use crate::sealing::MasterKey;
use crate::store::{Store, StoreError};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How long a channel lookup is trusted before the store is asked again.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// Why a webhook was not accepted; the HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// No such channel (or not of this provider): 404.
    #[error("unknown channel")]
    UnknownChannel,
    /// Secret header or signature missing: 401.
    #[error("missing webhook secret or signature")]
    MissingCredential,
    /// Secret header or signature wrong: 403.
    #[error("webhook secret or signature does not match")]
    BadCredential,
    /// The body is not what the provider sends: 400.
    #[error("malformed webhook: {0}")]
    Malformed(String),
    /// The queue (or, for an uncached channel, the store) is down: 503, so the provider retries.
    #[error("cannot accept now: {0}")]
    Unavailable(String),
    /// Intake is not configured for this provider (no Meta app secret): 503, logged.
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
}

/// What intake knows about a channel.
#[derive(Clone)]
struct Route {
    tenant_id: TenantId,
    channel_id: ChannelId,
    kind: ChannelKind,
    webhook_secret: Option<SecretString>,
}

#[derive(Default)]
struct Cache {
    by_id: HashMap<ChannelId, (Option<Route>, Instant)>,
    by_page: HashMap<String, (Option<Route>, Instant)>,
}

/// Counters an operator reads to see what intake did.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Events enqueued.
    pub accepted: AtomicU64,
    /// Messenger events for pages no active channel holds (answered 200, dropped).
    pub dropped_unknown_page: AtomicU64,
    /// Webhooks refused for a missing or wrong secret or signature.
    pub rejected_credentials: AtomicU64,
}

/// The intake of one daemon.
pub struct Intake {
    store: Arc<dyn Store>,
    key: Arc<MasterKey>,
    batcher: EnqueueBatcher,
    meta_app_secret: Option<SecretString>,
    meta_verify_token: Option<SecretString>,
    cache: RwLock<Cache>,
    /// What intake did so far.
    pub stats: IntakeStats,
}

impl Intake {
    /// An intake writing to `queue`'s incoming queue.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        key: Arc<MasterKey>,
        meta_app_secret: Option<SecretString>,
        meta_verify_token: Option<SecretString>,
    ) -> Self {
        Self {
            store,
            key,
            batcher: EnqueueBatcher::start(queue, QueueName::Incoming),
            meta_app_secret,
            meta_verify_token,
            cache: RwLock::new(Cache::default()),
            stats: IntakeStats::default(),
        }
    }

    /// Forgets cached lookups of a channel (after a change in this process).
    pub async fn invalidate(&self, channel: &ChannelId) {
        let mut cache = self.cache.write().await;
        cache.by_id.remove(channel);
        cache.by_page.clear();
    }

    /// `POST /webhooks/telegram/{channelId}`: one Update.
    pub async fn telegram(&self, channel_id: &str, secret: Option<&[u8]>, body: &[u8]) -> Result<(), IntakeError> {
        let channel_id = ChannelId::parse(channel_id).map_err(|_| IntakeError::UnknownChannel)?;
        let route = self.route_by_id(&channel_id).await?.ok_or(IntakeError::UnknownChannel)?;
        if route.kind != ChannelKind::Telegram {
            return Err(IntakeError::UnknownChannel);
        }
        let expected = route.webhook_secret.as_ref().ok_or(IntakeError::UnknownChannel)?;
        if secret.is_none() {
            self.stats.rejected_credentials.fetch_add(1, Ordering::Relaxed);
            return Err(IntakeError::MissingCredential);
        }
        if !telegram_webhook::secret_matches(expected, secret) {
            self.stats.rejected_credentials.fetch_add(1, Ordering::Relaxed);
            return Err(IntakeError::BadCredential);
        }
        let update: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| IntakeError::Malformed(format!("body is not JSON: {e}")))?;
        let key = telegram_webhook::update_key(&update).map_err(|e| IntakeError::Malformed(e.to_string()))?;
        let envelope = envelope(&route, key.update_id.to_string(), key.thread_id, update);
        self.enqueue(vec![envelope]).await
    }

    /// `GET /webhooks/messenger`: answers Meta's subscription check with the challenge.
    pub fn messenger_challenge(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Option<String> {
        let expected = self.meta_verify_token.as_ref()?;
        let token = token?;
        let matches = subtle::ConstantTimeEq::ct_eq(expected.expose_secret().as_bytes(), token.as_bytes());
        (mode == Some("subscribe") && bool::from(matches)).then(|| challenge.unwrap_or_default().to_owned())
    }

    /// `POST /webhooks/messenger`: a signed batch of page events. Events for pages no active
    /// channel holds are dropped and counted (answering an error would get the app unsubscribed).
    pub async fn messenger(&self, signature: Option<&str>, body: &[u8]) -> Result<usize, IntakeError> {
        let secret = self.meta_app_secret.as_ref().ok_or(IntakeError::NotConfigured("meta_app_secret"))?;
        if signature.is_none() {
            self.stats.rejected_credentials.fetch_add(1, Ordering::Relaxed);
            return Err(IntakeError::MissingCredential);
        }
        if !messenger_webhook::verify_signature(secret, body, signature) {
            self.stats.rejected_credentials.fetch_add(1, Ordering::Relaxed);
            return Err(IntakeError::BadCredential);
        }
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| IntakeError::Malformed(format!("body is not JSON: {e}")))?;
        let items = messenger_webhook::split(&json).map_err(|e| IntakeError::Malformed(e.to_string()))?;
        let mut envelopes = Vec::with_capacity(items.len());
        for item in items {
            match self.route_by_page(&item.page_id).await? {
                Some(route) => envelopes.push(envelope(&route, item.provider_event_id, item.thread_id, item.payload)),
                None => {
                    self.stats.dropped_unknown_page.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(page_id = %item.page_id, "messenger event for a page no active channel holds: dropped");
                }
            }
        }
        let count = envelopes.len();
        if count > 0 {
            self.enqueue(envelopes).await?;
        }
        Ok(count)
    }

    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<(), IntakeError> {
        let count = envelopes.len() as u64;
        let messages = envelopes
            .iter()
            .map(|e| OutgoingMessage {
                group_id: e.group_id(),
                dedupe_id: e.dedupe_id(),
                body: serde_json::to_string(e).expect("an envelope serialises"),
            })
            .collect();
        self.batcher.enqueue(messages).await.map_err(|EnqueueError(why)| IntakeError::Unavailable(why))?;
        self.stats.accepted.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    async fn route_by_id(&self, id: &ChannelId) -> Result<Option<Route>, IntakeError> {
        let cached = self.cache.read().await.by_id.get(id).cloned();
        if let Some((route, at)) = &cached
            && at.elapsed() < CACHE_TTL
        {
            return Ok(route.clone());
        }
        match self.store.find_channel(id).await {
            Ok(channel) => {
                let route = channel.map(|c| self.route(&c)).transpose()?;
                self.cache.write().await.by_id.insert(id.clone(), (route.clone(), Instant::now()));
                Ok(route)
            }
            Err(e) => stale_or_unavailable(cached.map(|(route, _)| route), e),
        }
    }

    async fn route_by_page(&self, page_id: &str) -> Result<Option<Route>, IntakeError> {
        let cached = self.cache.read().await.by_page.get(page_id).cloned();
        if let Some((route, at)) = &cached
            && at.elapsed() < CACHE_TTL
        {
            return Ok(route.clone());
        }
        match self.store.find_active_channel(ChannelKind::Messenger, page_id).await {
            Ok(channel) => {
                let route = channel.map(|c| self.route(&c)).transpose()?;
                self.cache.write().await.by_page.insert(page_id.to_owned(), (route.clone(), Instant::now()));
                Ok(route)
            }
            Err(e) => stale_or_unavailable(cached.map(|(route, _)| route), e),
        }
    }

    fn route(&self, channel: &Channel) -> Result<Route, IntakeError> {
        let webhook_secret = channel
            .webhook_secret
            .as_ref()
            .map(|sealed| self.key.open(sealed, channel.id.as_str()))
            .transpose()
            .map_err(|e| {
                tracing::error!(channel = %channel.id, error = %e, "cannot open the channel's webhook secret");
                IntakeError::Unavailable("channel secret unreadable".into())
            })?;
        Ok(Route {
            tenant_id: channel.tenant_id.clone(),
            channel_id: channel.id.clone(),
            kind: channel.kind,
            webhook_secret,
        })
    }
}

/// During a store outage a stale cache entry still routes; without one the provider must retry.
fn stale_or_unavailable(stale: Option<Option<Route>>, e: StoreError) -> Result<Option<Route>, IntakeError> {
    match stale {
        Some(route) => {
            tracing::warn!(error = %e, "store unavailable: routing from a stale channel cache entry");
            Ok(route)
        }
        None => Err(IntakeError::Unavailable(format!("channel lookup failed: {e}"))),
    }
}

fn envelope(route: &Route, provider_event_id: String, thread_id: String, payload: serde_json::Value) -> Envelope {
    Envelope {
        v: ENVELOPE_VERSION,
        tenant_id: route.tenant_id.clone(),
        channel_id: route.channel_id.clone(),
        provider: route.kind,
        provider_event_id,
        thread_id,
        received_at_ms: crate::domain::inbound::to_ms(crate::domain::now()),
        payload,
    }
}
