//! The event log as clients read it: a page after a cursor (polling), and live feeds (the
//! daemon's event streams). Feeds read the store, not this process's memory, so every `serve`
//! streams every event whichever process stored it: one [`EventHub`] per process looks at the
//! tenants' event counters (`Store::event_heads`) every `[events] poll_ms` while feeds are open,
//! and each feed reads its own events after its cursor when its tenant's head moves.
//!
//! A feed never holds more than `[events] stream_buffer` events for its client; a client that
//! leaves them unread for `[events] slow_client_secs` is disconnected (it resumes with
//! `Last-Event-ID`), so no reader grows the daemon's memory. A feed ends when its token expires
//! and when the daemon shuts down.

use super::access::{Action, Caller};
use super::{ServiceError, ServiceResult};
use crate::app::App;
use crate::config::EventSettings;
use crate::domain::event::EventView;
use crate::domain::{Event, EventId, TenantId};
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// Most events one poll answers.
pub const MAX_PAGE: u32 = 500;
/// Events a feed reads from the store at once.
const FEED_BATCH: u32 = 100;

/// Events that were no longer kept when a reader asked for them: those after `after` and before
/// `oldestEventId` were pruned (`[events] retention_secs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Missed {
    /// The cursor the reader gave.
    pub after: u64,
    /// The oldest event still kept.
    pub oldest_event_id: u64,
}

/// A page of events, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// The events after the cursor, oldest first.
    pub items: Vec<EventView>,
    /// Pass it back as `after` to read on (the last event's id, or the cursor given when there was
    /// none).
    pub next_after: u64,
    /// Present when events after the cursor are no longer kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<Missed>,
}

/// The tenant's events after `after` (from the oldest kept when `after` is 0), oldest first.
pub async fn list(
    app: &App,
    caller: &Caller,
    tenant: &TenantId,
    after: EventId,
    limit: u32,
) -> ServiceResult<EventPage> {
    caller.authorize(Action::ReadInbox, tenant)?;
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::Invalid(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let events = app.store().await?.list_events(tenant, after, limit).await?;
    let missed = gap(after, &events);
    let next_after = events.last().map_or(after, |e| e.id).get();
    Ok(EventPage { items: events.iter().map(Event::view).collect(), next_after, missed })
}

/// The events between `after` and the first one read that are gone. Ids are gap-free and a read
/// is one snapshot (`Store::list_events`), so a hole at the start can only be pruning.
fn gap(after: EventId, events: &[Event]) -> Option<Missed> {
    let first = events.first()?;
    (after != EventId::START && first.id > after.next())
        .then(|| Missed { after: after.get(), oldest_event_id: first.id.get() })
}

/// What a live feed yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    /// The next event.
    Event(Box<EventView>),
    /// Events after the cursor were pruned before they could be sent.
    Missed(Missed),
}

/// This process's live feeds: which tenants they follow, and how far each tenant's log goes.
pub struct EventHub {
    app: Arc<App>,
    settings: EventSettings,
    heads: Mutex<HashMap<TenantId, watch::Sender<EventId>>>,
    streams: Arc<Semaphore>,
    shutdown: CancellationToken,
    poller: std::sync::Once,
}

impl EventHub {
    /// A hub for `app`'s store; its feeds end when `shutdown` is cancelled.
    pub fn new(app: Arc<App>, shutdown: CancellationToken) -> Arc<Self> {
        let settings = app.settings.events.clone();
        Arc::new(Self {
            streams: Arc::new(Semaphore::new(settings.max_streams as usize)),
            app,
            settings,
            heads: Mutex::default(),
            shutdown,
            poller: std::sync::Once::new(),
        })
    }

    /// Seconds between keep-alive comments on an idle stream.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.keep_alive_secs))
    }

    /// Opens a feed of the tenant's events after `after` (None: from now on) for `caller`.
    /// Refused with `Unavailable` when `[events] max_streams` feeds are open.
    pub async fn open(
        self: &Arc<Self>,
        caller: &Caller,
        tenant: &TenantId,
        after: Option<EventId>,
    ) -> ServiceResult<mpsc::Receiver<Feed>> {
        caller.authorize(Action::ReadInbox, tenant)?;
        let permit = Arc::clone(&self.streams).try_acquire_owned().map_err(|_| {
            ServiceError::Unavailable(format!(
                "this server has {} event streams open already; retry later",
                self.settings.max_streams
            ))
        })?;
        let store = self.app.store().await?;
        let cursor = match after {
            Some(after) => after,
            None => head_of(&*store, tenant).await?,
        };
        let head = self.follow(tenant);
        self.start_poller();
        let (tx, rx) = mpsc::channel(self.settings.stream_buffer as usize);
        let feed = FeedTask {
            store,
            tenant: tenant.clone(),
            cursor,
            resumed: after.is_some(),
            head,
            tx,
            slow_client: Duration::from_secs(u64::from(self.settings.slow_client_secs)),
            ends_at: token_end(caller),
            shutdown: self.shutdown.clone(),
            _permit: permit,
        };
        tokio::spawn(feed.run());
        Ok(rx)
    }

    /// A watch of the tenant's head, registering the tenant with the poller.
    fn follow(&self, tenant: &TenantId) -> watch::Receiver<EventId> {
        let mut heads = self.heads.lock().expect("event hub lock");
        heads.entry(tenant.clone()).or_insert_with(|| watch::channel(EventId::START).0).subscribe()
    }

    fn start_poller(self: &Arc<Self>) {
        self.poller.call_once(|| {
            let hub = Arc::clone(self);
            tokio::spawn(async move { hub.poll().await });
        });
    }

    /// Until shutdown: every `poll_ms`, reads the heads of the tenants with open feeds and
    /// publishes those that moved.
    async fn poll(self: Arc<Self>) {
        let interval = Duration::from_millis(u64::from(self.settings.poll_ms));
        let mut backoff = crate::pipeline::Backoff::new(interval, Duration::from_secs(10));
        loop {
            let tenants: Vec<TenantId> = {
                let mut heads = self.heads.lock().expect("event hub lock");
                heads.retain(|_, head| head.receiver_count() > 0);
                heads.keys().cloned().collect()
            };
            let mut wait = interval;
            if !tenants.is_empty() {
                match self.read_heads(&tenants).await {
                    Ok(found) => {
                        backoff.reset();
                        let heads = self.heads.lock().expect("event hub lock");
                        for (tenant, id) in found {
                            if let Some(head) = heads.get(&tenant) {
                                head.send_if_modified(|known| std::mem::replace(known, id) != id);
                            }
                        }
                    }
                    Err(e) => {
                        wait = backoff.next_delay();
                        tracing::warn!(error = %e, ?wait, "event streams: cannot read the event log's heads");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    async fn read_heads(&self, tenants: &[TenantId]) -> Result<Vec<(TenantId, EventId)>, ServiceError> {
        Ok(self.app.store().await?.event_heads(tenants).await?)
    }
}

/// The tenant's last event id (0 without events).
async fn head_of(store: &dyn Store, tenant: &TenantId) -> ServiceResult<EventId> {
    let heads = store.event_heads(std::slice::from_ref(tenant)).await?;
    Ok(heads.into_iter().map(|(_, id)| id).next().unwrap_or(EventId::START))
}

/// When a caller's feed must end: its token's expiry (the operator's: never).
fn token_end(caller: &Caller) -> Option<tokio::time::Instant> {
    let Caller::User(user) = caller else { return None };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let left = u64::try_from(i64::try_from(user.token_expires_at).unwrap_or(i64::MAX).saturating_sub(now)).unwrap_or(0);
    Some(tokio::time::Instant::now() + Duration::from_secs(left))
}

/// One open feed: reads its tenant's events after its cursor and hands them to its client.
struct FeedTask {
    store: Arc<dyn Store>,
    tenant: TenantId,
    cursor: EventId,
    /// Whether the client gave a cursor (only then can it have missed pruned events).
    resumed: bool,
    head: watch::Receiver<EventId>,
    tx: mpsc::Sender<Feed>,
    slow_client: Duration,
    ends_at: Option<tokio::time::Instant>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

/// Why a feed stopped.
enum Stop {
    /// The client went away.
    Client,
    /// The daemon ended it, for this reason (`kamshub_event_streams_ended_total`): `slow_client`,
    /// `token_expired`, `shutdown`, `store_error`.
    Ended(&'static str),
}

/// Counts an open feed in `kamshub_event_streams` while it lives.
struct OpenFeed;

impl OpenFeed {
    fn new() -> Self {
        metrics::gauge!(crate::metrics::EVENT_STREAMS).increment(1.0);
        Self
    }
}

impl Drop for OpenFeed {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::EVENT_STREAMS).decrement(1.0);
    }
}

impl FeedTask {
    async fn run(self) {
        let _open = OpenFeed::new();
        if let Stop::Ended(reason) = self.follow().await {
            metrics::counter!(crate::metrics::EVENT_STREAMS_ENDED, "reason" => reason).increment(1);
        }
    }

    /// Sends events as the log grows, until the feed stops.
    async fn follow(mut self) -> Stop {
        let ends_at = self.ends_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        loop {
            match self.read().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(stop) => return stop,
            }
            let cursor = self.cursor;
            tokio::select! {
                moved = self.head.wait_for(|head| *head > cursor) => if moved.is_err() { return Stop::Ended("shutdown") },
                () = self.tx.closed() => return Stop::Client,
                () = tokio::time::sleep_until(ends_at) => return Stop::Ended("token_expired"),
                () = self.shutdown.cancelled() => return Stop::Ended("shutdown"),
            }
        }
    }

    /// Sends the events after the cursor; true if a whole batch came (read on at once).
    async fn read(&mut self) -> Result<bool, Stop> {
        let mut backoff = crate::pipeline::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let events = loop {
            match self.store.list_events(&self.tenant, self.cursor, FEED_BATCH).await {
                Ok(events) => break events,
                Err(StoreError::Unavailable(why)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%why, ?delay, tenant = %self.tenant, "event stream: store unavailable; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.tx.closed() => return Err(Stop::Client),
                        () = self.shutdown.cancelled() => return Err(Stop::Ended("shutdown")),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, tenant = %self.tenant, "event stream: cannot read events; closing it");
                    return Err(Stop::Ended("store_error"));
                }
            }
        };
        if self.resumed
            && let Some(missed) = gap(self.cursor, &events)
        {
            self.send(Feed::Missed(missed)).await?;
        }
        self.resumed = true;
        let full = events.len() as u32 == FEED_BATCH;
        for event in events {
            self.cursor = event.id;
            self.send(Feed::Event(Box::new(event.view()))).await?;
        }
        Ok(full)
    }

    /// Hands one item to the client's buffer, waiting at most `slow_client` for room.
    async fn send(&self, item: Feed) -> Result<(), Stop> {
        match self.tx.send_timeout(item, self.slow_client).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                tracing::info!(tenant = %self.tenant, cursor = %self.cursor, "event stream: client too slow; disconnecting it");
                Err(Stop::Ended("slow_client"))
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Stop::Client),
        }
    }
}
