//! Intake: verifies a webhook, turns each provider event into an [`Envelope`] and enqueues it on
//! **incoming**; the provider gets 200 only once the enqueue is durable.
//!
//! Content never costs a 5xx, and one event never costs another (docs/architecture.md, "Inbound
//! pipeline"):
//! - only a refusal of the request itself is an error: unknown channel (404), missing or wrong
//!   secret or signature (401/403), intake not configured or the queue down (503);
//! - an authenticated body intake cannot read (not JSON, no `update_id`, nested too deep) is
//!   enqueued raw with the reason ([`Envelope::unusable`]): the processor records it as ignored,
//!   so it is kept for inspection, and the provider gets 200 and stops retrying;
//! - a Messenger POST keeps every event it can route, whatever its neighbours hold; what cannot be
//!   routed (a body that is not a page webhook, an entry without a page id) is dropped, counted
//!   and logged, and answered 200;
//! - every envelope is encoded so the queue accepts it ([`Envelope::queue_body`]); one the queue
//!   refuses anyway is dropped alone, counted and logged, never failing the rest of its batch.
//!
//! Every refusal and drop is counted in [`IntakeStats`] and logged, rate-limited, without secrets.
//!
//! Channel lookups are cached for a short while, and a stale entry is still used while the store
//! is unreachable, so intake keeps acknowledging through a short store outage: the queue, not the
//! store, is what must be up.

mod cache;
mod trace;

pub use trace::{IntakeStats, LOG_EVERY};

use super::batcher::{EnqueueBatcher, EnqueueError};
use crate::domain::inbound::{ENVELOPE_VERSION, Envelope, telegram_event_id};
use crate::domain::{Channel, ChannelId, ChannelKind, TenantId};
use crate::providers::{lone_surrogates_replaced, messenger_webhook, telegram_webhook};
use crate::queue::{OutgoingMessage, Queue, QueueName, check_outgoing};
use crate::sealing::{MasterKey, SealContext};
use crate::store::{Store, StoreError};
use cache::Lookups;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::RwLock;
use trace::{LogLimiter, count};

/// Deepest JSON nesting intake passes on as parsed JSON. Provider events nest a few levels; a
/// deeper one is kept raw (as text), since the queue message wrapping it must stay within the
/// JSON reader's limit of 128 levels.
pub const MAX_DEPTH: usize = 120;

/// Why a webhook request was refused; the HTTP layer maps each to a status.
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

/// Channel lookups by webhook URL id and by Messenger page id ([`cache`]: bounded).
#[derive(Default)]
struct Cache {
    by_id: Lookups<ChannelId, Route>,
    by_page: Lookups<String, Route>,
}

/// The intake of one daemon.
pub struct Intake {
    store: Arc<dyn Store>,
    key: Arc<MasterKey>,
    batcher: EnqueueBatcher,
    meta_app_secret: Option<SecretString>,
    meta_verify_token: Option<SecretString>,
    cache: RwLock<Cache>,
    log: LogLimiter,
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
            log: LogLimiter::default(),
            stats: IntakeStats::default(),
        }
    }

    /// Loads every channel into the lookups intake remembers, as the store has them now: a webhook
    /// for any of them is routed from memory while the entry is fresh ([`cache::TTL`]) and,
    /// through a store outage, from the stale entry, even for a channel that no webhook had
    /// reached before the outage (such a channel used to be refused until the store came back).
    /// A channel deleted, or a page deactivated, since the last load is forgotten. Returns how many
    /// channels it loaded.
    pub async fn preload(&self) -> Result<usize, StoreError> {
        let channels = self.store.all_channels().await?;
        let routes: Vec<_> = channels.iter().filter_map(|c| self.route(c).ok().map(|route| (c, route))).collect();
        let ids: HashSet<&ChannelId> = channels.iter().map(|c| &c.id).collect();
        let pages: HashSet<&str> = channels.iter().filter_map(page_of).collect();
        let now = Instant::now();
        let mut cache = self.cache.write().await;
        // A channel deleted (or a page deactivated) since is forgotten now rather than at expiry.
        cache.by_id.forget_found_unless(|id| ids.contains(id));
        cache.by_page.forget_found_unless(|page| pages.contains(page.as_str()));
        for (channel, route) in &routes {
            if let Some(page) = page_of(channel) {
                cache.by_page.remember(page.to_owned(), Some(route.clone()), now);
            }
            cache.by_id.remember(channel.id.clone(), Some(route.clone()), now);
        }
        Ok(routes.len())
    }

    /// Runs [`Intake::preload`] now and every [`cache::PRELOAD_EVERY`] until `stop`, so the
    /// entries of existing channels never expire while the store answers. A failed load is
    /// logged once per outage and tried again at the next turn.
    pub async fn keep_routes_loaded(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut failing = false;
        loop {
            match self.preload().await {
                Ok(n) if failing => {
                    tracing::info!(channels = n, "intake: channel routes loaded again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "intake: cannot load the channel routes; routing from what it knows");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(cache::PRELOAD_EVERY) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Forgets cached lookups of a channel (after a change in this process).
    pub async fn invalidate(&self, channel: &ChannelId) {
        let mut cache = self.cache.write().await;
        cache.by_id.forget(channel);
        cache.by_page.clear();
    }

    /// `POST /webhooks/telegram/{channelId}`: one Update.
    pub async fn telegram(&self, channel_id: &str, secret: Option<&[u8]>, body: &[u8]) -> Result<(), IntakeError> {
        let route = self.telegram_route(channel_id).await?;
        let expected = route.webhook_secret.as_ref();
        if secret.is_none() {
            self.reject(&self.stats.rejected_credentials, "telegram_missing_secret", channel_id);
            return Err(IntakeError::MissingCredential);
        }
        if !expected.is_some_and(|expected| telegram_webhook::secret_matches(expected, secret)) {
            self.reject(&self.stats.rejected_credentials, "telegram_bad_secret", channel_id);
            return Err(IntakeError::BadCredential);
        }
        let read = parse(body).and_then(shallow).and_then(|update| match telegram_webhook::update_key(&update) {
            Ok(key) => Ok((update, key)),
            Err(e) => Err(e.to_string()),
        });
        let envelope = match read {
            Ok((update, key)) => envelope(&route, telegram_event_id(key.update_id, &update), key.thread_id, update),
            Err(why) => self.unusable(&route, body, why),
        };
        self.enqueue(vec![envelope]).await.map(|_| ())
    }

    async fn telegram_route(&self, channel_id: &str) -> Result<Route, IntakeError> {
        let route = match ChannelId::parse(channel_id) {
            Ok(id) => self.route_by_id(&id).await?,
            Err(_) => None,
        };
        match route {
            Some(route) if route.kind == ChannelKind::Telegram && route.webhook_secret.is_some() => Ok(route),
            _ => {
                self.reject(&self.stats.rejected_unknown_channel, "telegram_unknown_channel", channel_id);
                Err(IntakeError::UnknownChannel)
            }
        }
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

    /// `POST /webhooks/messenger`: a signed batch of page events; returns how many were enqueued.
    /// Events for pages no active channel holds are dropped and counted (answering an error would
    /// get the app unsubscribed), as is anything that cannot be routed to a page at all.
    pub async fn messenger(&self, signature: Option<&str>, body: &[u8]) -> Result<usize, IntakeError> {
        let Some(secret) = self.meta_app_secret.as_ref() else {
            self.reject(&self.stats.rejected_not_configured, "messenger_not_configured", "-");
            return Err(IntakeError::NotConfigured("meta_app_secret"));
        };
        if signature.is_none() {
            self.reject(&self.stats.rejected_credentials, "messenger_missing_signature", "-");
            return Err(IntakeError::MissingCredential);
        }
        if !messenger_webhook::verify_signature(secret, body, signature) {
            self.reject(&self.stats.rejected_credentials, "messenger_bad_signature", "-");
            return Err(IntakeError::BadCredential);
        }
        let split = parse(body).and_then(|json| messenger_webhook::split(&json).map_err(|e| e.to_string()));
        let split = match split {
            Ok(split) => split,
            Err(why) => {
                self.drop_part("messenger_unusable_body", None, &why);
                return Ok(0);
            }
        };
        for why in &split.dropped {
            self.drop_part("messenger_unroutable_entry", None, why);
        }
        let mut envelopes = Vec::with_capacity(split.items.len());
        for item in split.items {
            match self.route_by_page(&item.page_id).await? {
                Some(route) => {
                    envelopes.push(if depth(&item.payload) <= MAX_DEPTH {
                        envelope(&route, item.provider_event_id, item.thread_id, item.payload)
                    } else {
                        let raw = item.payload.to_string();
                        self.unusable(&route, raw.as_bytes(), format!("nested deeper than {MAX_DEPTH} levels"))
                    });
                }
                None => {
                    count(&self.stats.dropped_unknown_page, 1);
                    tracing::warn!(page_id = %item.page_id, "messenger event for a page no active channel holds: dropped");
                }
            }
        }
        self.enqueue(envelopes).await
    }

    /// Enqueues what the queue accepts; returns how many. An envelope the queue would refuse is
    /// dropped alone (counted, logged); only the queue being down is an error.
    async fn enqueue(&self, envelopes: Vec<Envelope>) -> Result<usize, IntakeError> {
        let mut messages = Vec::with_capacity(envelopes.len());
        for e in &envelopes {
            let message = OutgoingMessage { group_id: e.group_id(), dedupe_id: e.dedupe_id(), body: e.queue_body() };
            match check_outgoing(&message) {
                Ok(()) => messages.push(message),
                Err(why) => self.drop_part("refused_by_queue", Some(e), &why.to_string()),
            }
        }
        let n = messages.len();
        if n == 0 {
            return Ok(0);
        }
        match self.batcher.enqueue(messages).await {
            Ok(()) => {
                count(&self.stats.accepted, n as u64);
                Ok(n)
            }
            Err(EnqueueError::Refused(why)) => {
                self.drop_part("refused_by_queue", None, &format!("{n} events: {why}"));
                Ok(0)
            }
            Err(EnqueueError::Unavailable(why)) => Err(IntakeError::Unavailable(why)),
        }
    }

    /// An envelope for an event intake could not read: the raw body, keyed by its hash, in a
    /// group of its own, for the processor to record as ignored with `why`.
    fn unusable(&self, route: &Route, body: &[u8], why: String) -> Envelope {
        count(&self.stats.unusable, 1);
        if let Some(held) = self.log.admit("unusable", Instant::now()) {
            tracing::warn!(channel = %route.channel_id, reason = %why, held_back = held,
                "webhook event intake cannot read: recorded raw as ignored");
        }
        let raw = String::from_utf8_lossy(body).into_owned();
        let mut e = envelope(route, format!("unusable:{}", sha256_hex(body)), "unusable".into(), Value::String(raw));
        e.unusable = Some(why);
        e
    }

    /// Counts and logs (rate-limited) a refused request.
    fn reject(&self, counter: &std::sync::atomic::AtomicU64, kind: &'static str, channel: &str) {
        count(counter, 1);
        if let Some(held) = self.log.admit(kind, Instant::now()) {
            let channel: String = channel.chars().take(64).collect();
            tracing::warn!(reason = kind, channel = ?channel, held_back = held, "webhook rejected");
        }
    }

    /// Counts and logs (rate-limited) a part of an authenticated webhook that cannot be enqueued.
    fn drop_part(&self, kind: &'static str, envelope: Option<&Envelope>, why: &str) {
        count(&self.stats.dropped, 1);
        if let Some(held) = self.log.admit(kind, Instant::now()) {
            let (channel, event) = envelope.map_or((None, None), |e| (Some(&e.channel_id), Some(&e.provider_event_id)));
            tracing::warn!(reason = kind, channel = ?channel, event = ?event, detail = %why, held_back = held,
                "webhook content dropped (answered 200 so the provider stops retrying)");
        }
    }

    async fn route_by_id(&self, id: &ChannelId) -> Result<Option<Route>, IntakeError> {
        let cached = self.cache.read().await.by_id.get(id);
        if let Some((route, at)) = &cached
            && at.elapsed() < cache::TTL
        {
            return Ok(route.clone());
        }
        let stale = cached.map(|(route, _)| route);
        match lookup(stale.is_some(), self.store.find_channel(id)).await {
            Ok(channel) => {
                let route = channel.map(|c| self.route(&c)).transpose()?;
                self.cache.write().await.by_id.remember(id.clone(), route.clone(), Instant::now());
                Ok(route)
            }
            Err(e) => {
                let route = stale_or_unavailable(stale, e)?;
                self.cache.write().await.by_id.keep_stale(id.clone(), route.clone(), Instant::now());
                Ok(route)
            }
        }
    }

    async fn route_by_page(&self, page_id: &str) -> Result<Option<Route>, IntakeError> {
        let cached = self.cache.read().await.by_page.get(page_id);
        if let Some((route, at)) = &cached
            && at.elapsed() < cache::TTL
        {
            return Ok(route.clone());
        }
        let stale = cached.map(|(route, _)| route);
        match lookup(stale.is_some(), self.store.find_active_channel(ChannelKind::Messenger, page_id)).await {
            Ok(channel) => {
                let route = channel.map(|c| self.route(&c)).transpose()?;
                self.cache.write().await.by_page.remember(page_id.to_owned(), route.clone(), Instant::now());
                Ok(route)
            }
            Err(e) => {
                let route = stale_or_unavailable(stale, e)?;
                self.cache.write().await.by_page.keep_stale(page_id.to_owned(), route.clone(), Instant::now());
                Ok(route)
            }
        }
    }

    fn route(&self, channel: &Channel) -> Result<Route, IntakeError> {
        let webhook_secret = channel
            .webhook_secret
            .as_ref()
            .map(|sealed| self.key.open(sealed, SealContext::channel_webhook_secret(channel.id.as_str())))
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

/// The page id a Messenger webhook finds `channel` by (`Store::find_active_channel`'s rule), if any.
fn page_of(channel: &Channel) -> Option<&str> {
    (channel.kind == ChannelKind::Messenger && channel.is_active).then(|| channel.external_id.as_str())
}

/// A channel lookup; with a stale entry to fall back to, given up after
/// [`cache::STALE_LOOKUP_WAIT`] (a store that is down can take seconds to say so).
async fn lookup<T>(
    has_stale: bool,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    if !has_stale {
        return call.await;
    }
    tokio::time::timeout(cache::STALE_LOOKUP_WAIT, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("the channel lookup took too long".into())))
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

fn envelope(route: &Route, provider_event_id: String, thread_id: String, payload: Value) -> Envelope {
    Envelope {
        v: ENVELOPE_VERSION,
        tenant_id: route.tenant_id.clone(),
        channel_id: route.channel_id.clone(),
        provider: route.kind,
        provider_event_id,
        thread_id,
        received_at_ms: crate::domain::inbound::to_ms(crate::domain::now()),
        payload,
        unusable: None,
    }
}

/// A webhook body as JSON, read leniently: a UTF-8 byte order mark before it is skipped, and a
/// lone UTF-16 surrogate escape reads as U+FFFD (`lone_surrogates_replaced`); else why not.
/// The provider event id intake gives a Telegram update body (`domain::inbound::telegram_event_id`),
/// or None when intake cannot read the body (it is then kept as `unusable:{sha256}`). Operators
/// and tests find an update's inbound event by it.
pub fn telegram_event_id_of(body: &[u8]) -> Option<String> {
    let update = parse(body).and_then(shallow).ok()?;
    let key = telegram_webhook::update_key(&update).ok()?;
    Some(telegram_event_id(key.update_id, &update))
}

fn parse(body: &[u8]) -> Result<Value, String> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    serde_json::from_slice(&lone_surrogates_replaced(body)).map_err(|e| format!("body is not JSON: {e}"))
}

/// A value at most [`MAX_DEPTH`] levels deep; else why not.
fn shallow(value: Value) -> Result<Value, String> {
    if depth(&value) > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(value)
}

/// How deep a value nests (a scalar is 0), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
