//! Outbound benchmark: sends per second through the relay and the sender with pacing on.
//!
//! One process (recipe and results: `docs/benchmarks.md`, "Outbound: sends per second with pacing"):
//! - a fake Telegram Bot API (axum, on its own thread) that answers `sendMessage` with a per-chat
//!   message id, logs every accepted send per bot and chat, and answers 429 with `retry_after`
//!   whenever a send would break Telegram's limits as the pacer models them: more than 30 sends of
//!   one bot in any rolling second, or a chat over its bucket (3 at once, then 1/s). Zero 429s
//!   means the pacer kept the limits as seen by the provider, after network and scheduling jitter;
//! - the embedded backends in a fresh temp dir: a tenant with `--bots` Telegram channels (token
//!   `{i}:TOKEN`), `--chats-per-bot` private conversations each (applied with `Store::apply_inbound`),
//!   and `--replies` replies spread over them (created with `service::outbox::send_reply`);
//! - `Relay::run` and `Sender::run` (default `SenderConfig` but `workers` and
//!   `visibility_timeout`; `--pacing-margin-ms` is an experiment on the pacing limits) until every
//!   reply is SENT. The store and queue they use are wrapped to count and time each call, so the
//!   report says where a send's time goes.
//!
//! It reports sends/s from the first to the last send the fake accepted, the busiest rolling
//! second of any bot and of any chat, the 429s, exactly-once and per-chat order checks, the CPU per
//! thread, the disk's flush rate, and the raw SQLite commit rate of the same file system.

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use kamshub::app::App;
use kamshub::config::{FlagOverrides, Settings};
use kamshub::domain::inbound::{ENVELOPE_VERSION, Envelope, InboundEvent, IncomingMessage, order_key};
use kamshub::domain::webhook::AttemptResult;
use kamshub::domain::{
    Actor, AuditEntry, Channel, ChannelId, ChannelKind, Conversation, ConversationId, DisplayName, Email, Event,
    EventId, ExternalId, Message, MessageId, OutboxId, OutboxItem, OutboxStatus, Tenant, TenantId, TenantName,
    Transition, User, UserId, WebhookEndpoint, WebhookId,
};
use kamshub::pipeline::pacing::{Limit, PacingLimits};
use kamshub::pipeline::relay::{Relay, RelayConfig};
use kamshub::pipeline::sender::{Sender, SenderConfig};
use kamshub::queue::{Depth, OutgoingMessage, Queue, QueueName, QueueResult, Receipt, ReceivedMessage};
use kamshub::store::{ApplyOutcome, ConversationQuery, CreateOutcome, InboundRecord, OutboxQuery, Store, StoreResult};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// Telegram's bulk limit: sends of one bot in any rolling second.
const BOT_PER_SECOND: usize = 30;
/// A chat's bucket: this many back to back from rest...
const CHAT_BURST: u32 = 3;
/// ...then one per this.
const CHAT_EVERY: Duration = Duration::from_secs(1);
const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Parser)]
#[command(about = "Outbound send benchmark for kamshub: relay + sender + pacing against a fake Telegram")]
struct Args {
    /// Telegram channels (bots) of the tenant.
    #[arg(long, default_value_t = 100)]
    bots: usize,
    /// Private conversations per bot.
    #[arg(long, default_value_t = 40)]
    chats_per_bot: usize,
    /// Replies queued before the loops start, spread over all conversations.
    #[arg(long, default_value_t = 20_000)]
    replies: usize,
    /// `spread`: reply rounds over all conversations (a conversation's replies lie far apart in
    /// the queue); `bursty`: each conversation's replies back to back.
    #[arg(long, value_enum, default_value_t = Order::Spread)]
    order: Order,
    /// Sender workers (`SenderConfig::workers`).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Queue visibility timeout and `SenderConfig::visibility_timeout`, in seconds.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// Experiment, not a product setting: add this much to the pacer's Telegram bot period and chat
    /// spacing (30 per 1 s + margin; 1 s + margin), a guard against jitter between the pacer's
    /// slot and the provider's clock. 0 keeps `PacingLimits::default()`.
    #[arg(long, default_value_t = 0)]
    pacing_margin_ms: u64,
    /// Publish every reply to the send queue before the sender starts (isolates the sender from
    /// the relay); by default both run together from the start.
    #[arg(long)]
    relay_first: bool,
    /// Where the temp data dir goes (its file system is what fsyncs cost): default the system's
    /// temp dir; `/dev/shm` takes the disk out of the picture.
    #[arg(long)]
    data_dir_in: Option<PathBuf>,
    /// Worker threads of the kamshub runtime (the fake Telegram has a thread of its own).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Replies created at once during setup.
    #[arg(long, default_value_t = 32)]
    create_concurrency: usize,
    /// Before the run, wait up to this many seconds for the rest of the machine to be nearly idle
    /// (other benchmarks and builds share the cores and skew the figures).
    #[arg(long, default_value_t = 300)]
    wait_quiet: u64,
    /// Give up after this many seconds of sending.
    #[arg(long, default_value_t = 1800)]
    timeout: u64,
    /// Append the results as one JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Order {
    Spread,
    Bursty,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.bots > 0 && args.chats_per_bot > 0 && args.replies > 0, "bots, chats and replies must be positive");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .thread_name("kamshub-rt")
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let base = args.data_dir_in.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new().prefix("sendbench-").tempdir_in(&base)?;
    let fake = FakeTelegram::start()?;
    let commit_rate = sqlite_commit_rate(&dir.path().join("baseline.sqlite"), Duration::from_secs(2))?;
    eprintln!("data dir {}; raw SQLite commits (WAL, synchronous=FULL): {commit_rate:.0}/s", dir.path().display());

    let app = Arc::new(open_app(dir.path(), &fake.url, args.visibility_timeout)?);
    let started = Instant::now();
    let (tenant, channels) = seed_channels(&app, args.bots).await?;
    let conversations = seed_conversations(&app, &tenant, &channels, args.chats_per_bot).await?;
    let seeded = started.elapsed();
    let started = Instant::now();
    create_replies(&app, &tenant, &conversations, &args).await?;
    let created = started.elapsed();
    eprintln!(
        "setup: {} bots, {} conversations in {:.1} s; {} replies in {:.1} s ({:.0}/s)",
        args.bots,
        conversations.len(),
        seeded.as_secs_f64(),
        args.replies,
        created.as_secs_f64(),
        args.replies as f64 / created.as_secs_f64()
    );

    let stats = Arc::new(CallStats::default());
    let store: Arc<dyn Store> = Arc::new(TimedStore { inner: app.store().await?, stats: Arc::clone(&stats) });
    let queue: Arc<dyn Queue> = Arc::new(TimedQueue { inner: app.queue().await?, stats: Arc::clone(&stats) });
    let relay = Arc::new(Relay::new(Arc::clone(&store), Arc::clone(&queue), RelayConfig::default()));
    let config = SenderConfig {
        workers: args.workers,
        visibility_timeout: Duration::from_secs(args.visibility_timeout),
        pacing: pacing(Duration::from_millis(args.pacing_margin_ms)),
        ..SenderConfig::default()
    };
    let sender = Arc::new(Sender::new(
        Arc::clone(&store),
        Arc::clone(&queue),
        app.providers().clone(),
        app.master_key()?,
        config.clone(),
    ));
    let prerelay = if args.relay_first { Some(publish_all(&relay).await?) } else { None };

    wait_quiet(Duration::from_secs(args.wait_quiet)).await;
    let before = Snapshot::take();
    let run_started = Instant::now();
    let stop = CancellationToken::new();
    let loops = [tokio::spawn(Arc::clone(&relay).run(stop.clone())), tokio::spawn(sender.run(stop.clone()))];
    let outcome = wait_until_sent(&fake, &store, &tenant, args.replies, Duration::from_secs(args.timeout)).await;
    let all_sent = run_started.elapsed();
    let after = Snapshot::take();
    stop.cancel();
    for handle in loops {
        handle.await?;
    }
    outcome?;

    let report = Report::new(&fake, &args, &stats, Phase::between(&before, &after));
    report.print(all_sent, commit_rate, prerelay);
    if let Some(path) = &args.json_out {
        use std::io::Write;
        let line = json!({
            "at": OffsetDateTime::now_utc().unix_timestamp(),
            "args": format!("{args:?}"),
            "pacing_margin_ms": args.pacing_margin_ms,
            "sender": {"workers": config.workers, "visibility_timeout_s": config.visibility_timeout.as_secs(),
                       "receive_wait_s": config.receive_wait.as_secs()},
            "setup": {"conversations": conversations.len(), "seed_s": seeded.as_secs_f64(),
                      "replies_created_per_s": args.replies as f64 / created.as_secs_f64()},
            "sqlite_commits_per_s": commit_rate,
            "relay_first_s": prerelay.map(|d| d.as_secs_f64()),
            "run_to_all_sent_s": all_sent.as_secs_f64(),
            "results": report.to_json(),
        });
        writeln!(std::fs::OpenOptions::new().create(true).append(true).open(path)?, "{line}")?;
    }
    drop(app);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The app and its data.

/// An app on the embedded backends in `dir`, with Telegram at `telegram`.
fn open_app(dir: &Path, telegram: &str, visibility_secs: u64) -> anyhow::Result<App> {
    let config = dir.join("kamshub.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[providers]\ntelegram_api_base = \"{telegram}\"\ngraph_api_base = \"http://127.0.0.1:9\"\n\
             [queue]\nvisibility_timeout_secs = {visibility_secs}\n",
            dir.join("data").display()
        ),
    )?;
    Ok(App::new(Settings::load(Some(&config), &FlagOverrides::default())?))
}

/// A tenant with `bots` Telegram channels; bot `i` has the token `{i}:TOKEN`.
async fn seed_channels(app: &App, bots: usize) -> anyhow::Result<(TenantId, Vec<ChannelId>)> {
    let store = app.store().await?;
    let key = app.master_key()?;
    let stamp = OffsetDateTime::now_utc().unix_timestamp();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: TenantName::parse(&format!("Sendbench {stamp}"))?,
        created_at: kamshub::domain::now(),
    };
    let audit = AuditEntry::new(&Actor::cli_operator(), &tenant.id, "tenant.create", tenant.id.as_str(), json!({}));
    store.insert_tenant(&tenant, None, &audit).await?;
    let mut channels = Vec::with_capacity(bots);
    for i in 0..bots {
        let id = ChannelId::generate();
        let now = kamshub::domain::now();
        let channel = Channel {
            credentials: key.seal(
                &SecretString::from(format!("{i}:TOKEN")),
                kamshub::sealing::SealContext::channel_credentials(id.as_str()),
            ),
            webhook_secret: None,
            tenant_id: tenant.id.clone(),
            kind: ChannelKind::Telegram,
            display_name: DisplayName::parse(&format!("Sendbench bot {i}"))?,
            external_id: ExternalId::telegram_username(&format!("sendbench_{stamp}_{i}_bot"))?,
            is_active: true,
            health: Default::default(),
            auto_reply: None,
            created_at: now,
            updated_at: now,
            id,
        };
        store.insert_channel(&channel).await?;
        channels.push(channel.id);
    }
    Ok((tenant.id, channels))
}

/// The Telegram chat id of conversation `chat` of bot `bot` (private chats: positive).
fn chat_id(bot: usize, chat: usize) -> i64 {
    (10_000_000 + bot * 10_000 + chat) as i64
}

/// `per_bot` private conversations on every channel, each opened by one inbound message; returned
/// chat-major (chat 0 of every bot, then chat 1…), so consecutive conversations are on different bots.
async fn seed_conversations(
    app: &App,
    tenant: &TenantId,
    channels: &[ChannelId],
    per_bot: usize,
) -> anyhow::Result<Vec<ConversationId>> {
    let store = app.store().await?;
    let at_s = OffsetDateTime::now_utc().unix_timestamp() - 60;
    let mut by_thread = HashMap::new();
    for (bot, channel) in channels.iter().enumerate() {
        let records: Vec<InboundRecord> =
            (0..per_bot).map(|chat| inbound(tenant, channel, chat_id(bot, chat), at_s)).collect();
        let outcomes = store.apply_inbound(&records).await?;
        ensure!(outcomes.iter().all(|o| *o == ApplyOutcome::Applied), "inbound events not applied: {outcomes:?}");
        for conversation in store
            .list_conversations(
                tenant,
                &ConversationQuery {
                    channel: Some(channel.clone()),
                    ..ConversationQuery::first((per_bot + 10) as u32)
                },
            )
            .await?
        {
            by_thread.insert((bot, conversation.external_thread_id.clone()), conversation.id);
        }
    }
    let mut ordered = Vec::with_capacity(channels.len() * per_bot);
    for chat in 0..per_bot {
        for bot in 0..channels.len() {
            let id = by_thread.remove(&(bot, chat_id(bot, chat).to_string())).context("conversation not created")?;
            ordered.push(id);
        }
    }
    Ok(ordered)
}

/// A customer's first message in a private chat, as the processor would apply it.
fn inbound(tenant: &TenantId, channel: &ChannelId, chat: i64, at_s: i64) -> InboundRecord {
    let thread = chat.to_string();
    InboundRecord {
        envelope: Envelope {
            v: ENVELOPE_VERSION,
            tenant_id: tenant.clone(),
            channel_id: channel.clone(),
            provider: ChannelKind::Telegram,
            provider_event_id: thread.clone(),
            thread_id: thread.clone(),
            received_at_ms: at_s * 1000,
            payload: json!({"update_id": chat, "message": {"message_id": 1, "chat": {"id": chat, "type": "private"}}}),
            unusable: None,
        },
        event: InboundEvent::Message(IncomingMessage {
            external_message_id: format!("{thread}:1"),
            sender: kamshub::domain::inbound::Sender {
                id: Some(thread),
                name: Some("Ada".into()),
                username: Some("ada".into()),
            },
            sent_at_ms: at_s * 1000,
            order_key: order_key(at_s * 1000, "1"),
            text: Some("hello".into()),
            attachments: Vec::new(),
            reply_to: None,
            kind: Default::default(),
            thread_title: None,
            thread: None,
            revision: kamshub::domain::Revision { at_ms: at_s * 1000, seq: chat },
        }),
    }
}

/// The text of reply number `round` in conversation `conversation`; the fake reads the round back
/// to check each chat's order.
fn reply_text(conversation: usize, round: usize) -> String {
    format!("sendbench c{conversation} r{round}")
}

fn round_of(text: &str) -> Option<usize> {
    text.rsplit_once(" r")?.1.parse().ok()
}

/// Creates `args.replies` replies through the service, a conversation's replies in round order.
async fn create_replies(
    app: &App,
    tenant: &TenantId,
    conversations: &[ConversationId],
    args: &Args,
) -> anyhow::Result<()> {
    let n = conversations.len();
    let rounds = args.replies.div_ceil(n);
    let reply = |c: usize, round: usize| async move {
        let text = reply_text(c, round);
        kamshub::service::outbox::send_reply(
            app,
            &kamshub::service::access::Caller::operator(),
            tenant,
            &conversations[c],
            &text,
            None,
        )
        .await
        .map(|_| ())
    };
    match args.order {
        // Round by round, so a conversation's replies keep their order whatever the concurrency.
        Order::Spread => {
            for round in 0..rounds {
                let count = n.min(args.replies - round * n);
                let mut creating =
                    futures::stream::iter(0..count).map(|c| reply(c, round)).buffered(args.create_concurrency);
                while let Some(created) = creating.next().await {
                    created?;
                }
            }
        }
        Order::Bursty => {
            let chain = |c: usize| async move {
                let mine = (0..rounds).filter(|round| round * n + c < args.replies);
                for round in mine {
                    reply(c, round).await?;
                }
                Ok::<_, kamshub::service::ServiceError>(())
            };
            let mut creating = futures::stream::iter(0..n).map(chain).buffered(args.create_concurrency);
            while let Some(created) = creating.next().await {
                created?;
            }
        }
    }
    Ok(())
}

/// The default limits, with `margin` added to the Telegram bot window and chat spacing.
fn pacing(margin: Duration) -> PacingLimits {
    let widen = |limit| match limit {
        Limit::Window { count, period } => Limit::Window { count, period: period + margin },
        Limit::Bucket { every, burst } => Limit::Bucket { every: every + margin, burst },
    };
    let defaults = PacingLimits::default();
    PacingLimits {
        telegram_bot: widen(defaults.telegram_bot),
        telegram_chat: widen(defaults.telegram_chat),
        ..defaults
    }
}

/// Runs relay passes until nothing is due; returns how long publishing everything took.
async fn publish_all(relay: &Relay) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while relay.run_once().await? > 0 {}
    Ok(started.elapsed())
}

/// Waits until the fake has accepted `expected` sends and the store has them all SENT.
async fn wait_until_sent(
    fake: &FakeTelegram,
    store: &Arc<dyn Store>,
    tenant: &TenantId,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_report = (Instant::now(), 0usize);
    loop {
        let (accepted, refused) = fake.counts();
        if last_report.0.elapsed() >= Duration::from_secs(5) {
            let rate = (accepted - last_report.1) as f64 / last_report.0.elapsed().as_secs_f64();
            eprintln!(
                "  {:>5.0} s: {accepted} sent, {refused} refused (429), {rate:.0}/s",
                started.elapsed().as_secs_f64()
            );
            last_report = (Instant::now(), accepted);
        }
        if accepted >= expected {
            let sent = store
                .list_outbox(&OutboxQuery::new(Some(tenant), Some(OutboxStatus::Sent), (expected + 1) as u32))
                .await?
                .len();
            if sent == expected {
                return Ok(());
            }
            ensure!(sent < expected, "{sent} items SENT, more than the {expected} replies");
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?}: {accepted} of {expected} sends accepted, {refused} refused");
        }
        tokio::time::sleep(Duration::from_millis(if accepted >= expected { 100 } else { 250 })).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The fake Telegram.

/// A Bot API that enforces Telegram's limits and logs what it accepted.
struct FakeTelegram {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    /// Accepted sends in the last second, per bot token.
    bots: HashMap<String, VecDeque<Instant>>,
    chats: HashMap<(String, i64), ChatMeter>,
    accepted: Vec<Accepted>,
    refused_bot: usize,
    refused_chat: usize,
    /// How much too early each refused send came, relative to the earliest instant it would fit.
    early_by: Vec<Duration>,
}

/// A chat's bucket (GCRA: `tat` is the theoretical arrival time of the next send) and its ids.
struct ChatMeter {
    tat: Instant,
    last_message_id: i64,
}

struct Accepted {
    bot: String,
    chat: i64,
    at: Instant,
    round: Option<usize>,
}

impl FakeTelegram {
    /// Starts the fake on a free port, on a thread of its own.
    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(FakeState::default()));
        let router = Router::new().route("/{bot}/sendMessage", post(send_message)).with_state(Arc::clone(&state));
        std::thread::Builder::new().name("fake-telegram".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("fake runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("fake listener");
                axum::serve(listener, router).await.expect("fake Telegram serves");
            });
        })?;
        Ok(Self { url, state })
    }

    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.accepted.len(), state.refused_bot + state.refused_chat)
    }
}

async fn send_message(
    State(state): State<Arc<Mutex<FakeState>>>,
    UrlPath(bot): UrlPath<String>,
    body: Bytes,
) -> Response {
    let now = Instant::now();
    let Some(token) = bot.strip_prefix("bot") else { return StatusCode::NOT_FOUND.into_response() };
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let Some(chat) = request["chat_id"].as_i64() else {
        let refusal = json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"});
        return (StatusCode::BAD_REQUEST, axum::Json(refusal)).into_response();
    };
    let round = request["text"].as_str().and_then(round_of);
    let answer = state.lock().unwrap_or_else(PoisonError::into_inner).admit(token, chat, round, now);
    match answer {
        Ok(message_id) => axum::Json(json!({
            "ok": true,
            "result": {"message_id": message_id, "chat": {"id": chat, "type": "private"}, "date": 1_700_000_000}
        }))
        .into_response(),
        Err(wait) => {
            let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
            let refusal = json!({
                "ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {retry_after}"),
                "parameters": {"retry_after": retry_after}
            });
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(refusal)).into_response()
        }
    }
}

impl FakeState {
    /// Accepts a send at `now` (returning the chat's next message id) unless it breaks a limit
    /// (returning how long until it would fit). A refused send does not count against the limits.
    fn admit(&mut self, token: &str, chat: i64, round: Option<usize>, now: Instant) -> Result<i64, Duration> {
        let recent = self.bots.entry(token.to_owned()).or_default();
        while recent.front().is_some_and(|t| *t + SECOND <= now) {
            recent.pop_front();
        }
        let bot_wait = (recent.len() >= BOT_PER_SECOND).then(|| recent[recent.len() - BOT_PER_SECOND] + SECOND - now);
        let meter = self.chats.entry((token.to_owned(), chat)).or_insert(ChatMeter { tat: now, last_message_id: 1 });
        let tolerance = CHAT_EVERY * (CHAT_BURST - 1);
        let chat_wait = meter.tat.checked_sub(tolerance).filter(|fits| *fits > now).map(|fits| fits - now);
        if bot_wait.is_some() || chat_wait.is_some() {
            self.refused_bot += usize::from(bot_wait.is_some());
            self.refused_chat += usize::from(chat_wait.is_some() && bot_wait.is_none());
            let wait = bot_wait.unwrap_or_default().max(chat_wait.unwrap_or_default());
            self.early_by.push(wait);
            return Err(wait);
        }
        recent.push_back(now);
        meter.tat = meter.tat.max(now) + CHAT_EVERY;
        meter.last_message_id += 1;
        self.accepted.push(Accepted { bot: token.to_owned(), chat, at: now, round });
        Ok(meter.last_message_id)
    }
}

// ---------------------------------------------------------------------------------------------
// The results.

/// The figures of one run.
struct Report {
    accepted: usize,
    span: Duration,
    sends_per_sec: f64,
    /// Busiest rolling second of the busiest bot.
    max_bot_per_sec: usize,
    /// Mean sends/s of a bot over the span.
    mean_bot_per_sec: f64,
    /// Busiest rolling second of the busiest chat.
    max_chat_per_sec: usize,
    refused_bot: usize,
    refused_chat: usize,
    /// How early the refused sends came: median, 99th percentile, most.
    early: [Duration; 3],
    duplicates: usize,
    order_violations: usize,
    /// Sends accepted in each second from the first one.
    timeline: Vec<usize>,
    calls: BTreeMap<&'static str, CallStat>,
    phase: Phase,
}

impl Report {
    fn new(fake: &FakeTelegram, args: &Args, stats: &CallStats, phase: Phase) -> Self {
        let state = fake.state.lock().unwrap_or_else(PoisonError::into_inner);
        let sends = &state.accepted;
        let first = sends.iter().map(|s| s.at).min().expect("sends were accepted");
        let last = sends.iter().map(|s| s.at).max().expect("sends were accepted");
        let span = last - first;
        let mut per_bot: HashMap<&str, Vec<Instant>> = HashMap::new();
        let mut per_chat: HashMap<(&str, i64), Vec<&Accepted>> = HashMap::new();
        let mut timeline = vec![0; span.as_secs() as usize + 1];
        for s in sends {
            per_bot.entry(&s.bot).or_default().push(s.at);
            per_chat.entry((&s.bot, s.chat)).or_default().push(s);
            timeline[(s.at - first).as_secs() as usize] += 1;
        }
        let mut seen = HashSet::new();
        let duplicates = sends.iter().filter(|s| !seen.insert((s.bot.as_str(), s.chat, s.round))).count();
        let order_violations = per_chat
            .values()
            .map(|log| {
                log.windows(2).filter(|w| !matches!((w[0].round, w[1].round), (Some(a), Some(b)) if a < b)).count()
            })
            .sum();
        let max_chat_per_sec =
            per_chat.values().map(|log| busiest(&log.iter().map(|s| s.at).collect::<Vec<_>>(), SECOND)).max();
        let secs = span.as_secs_f64().max(1e-9);
        Self {
            accepted: sends.len(),
            span,
            sends_per_sec: sends.len().saturating_sub(1) as f64 / secs,
            max_bot_per_sec: per_bot.values().map(|log| busiest(log, SECOND)).max().unwrap_or(0),
            mean_bot_per_sec: sends.len() as f64 / args.bots as f64 / secs,
            max_chat_per_sec: max_chat_per_sec.unwrap_or(0),
            refused_bot: state.refused_bot,
            refused_chat: state.refused_chat,
            early: percentiles(&state.early_by),
            duplicates,
            order_violations,
            timeline,
            calls: stats.snapshot(),
            phase,
        }
    }

    fn print(&self, all_sent: Duration, commit_rate: f64, prerelay: Option<Duration>) {
        if let Some(d) = prerelay {
            println!("relay published everything first, in {:.1} s", d.as_secs_f64());
        }
        println!(
            "sends accepted: {} in {:.2} s (first to last, as the fake saw them) = {:.0} sends/s; all SENT in the store after {:.2} s",
            self.accepted,
            self.span.as_secs_f64(),
            self.sends_per_sec,
            all_sent.as_secs_f64()
        );
        println!(
            "per bot: busiest rolling second {} (limit {BOT_PER_SECOND}); mean {:.1}/s per bot",
            self.max_bot_per_sec, self.mean_bot_per_sec
        );
        println!("per chat: busiest rolling second {} (bucket: {CHAT_BURST} at once, then 1/s)", self.max_chat_per_sec);
        println!(
            "429s from the fake: {} (bot limit {}, chat limit {}); refused sends came too early by {:.1} ms \
             (median), {:.1} ms (p99), {:.1} ms (most)",
            self.refused_bot + self.refused_chat,
            self.refused_bot,
            self.refused_chat,
            self.early[0].as_secs_f64() * 1000.0,
            self.early[1].as_secs_f64() * 1000.0,
            self.early[2].as_secs_f64() * 1000.0
        );
        println!("duplicate sends: {}; per-chat order violations: {}", self.duplicates, self.order_violations);
        let steady = steady(&self.timeline);
        println!("sends per second over the run: {:?} (steady median {steady})", self.timeline);
        let p = &self.phase;
        println!(
            "CPU over the run: machine {:.2} of 2 cores busy ({:.2} stolen), this process {:.2}, others {:.2}; by thread: {}",
            p.machine_busy_cores,
            p.steal_cores,
            p.process_cores,
            (p.machine_busy_cores - p.process_cores).max(0.0),
            p.threads.iter().map(|(name, (n, cores))| format!("{name}×{n} {cores:.2}")).collect::<Vec<_>>().join(", ")
        );
        for (disk, rate) in &p.disks {
            println!(
                "disk {disk}: {:.0} flushes/s, {:.0} writes/s, {:.1} MB/s (raw SQLite commit rate here: {commit_rate:.0}/s)",
                rate.0, rate.1, rate.2
            );
        }
        let sent = self.accepted.max(1) as f64;
        println!("store and queue calls during the run (per accepted send, mean and max latency):");
        for (name, stat) in &self.calls {
            println!(
                "  {name:<28} {:>7} calls ({:>5.2}/send)  mean {:>7.2} ms  max {:>8.1} ms  total {:>7.1} s",
                stat.count,
                stat.count as f64 / sent,
                stat.mean().as_secs_f64() * 1000.0,
                stat.max.as_secs_f64() * 1000.0,
                stat.total.as_secs_f64()
            );
        }
    }

    fn to_json(&self) -> Value {
        let calls: serde_json::Map<String, Value> = self
            .calls
            .iter()
            .map(|(name, s)| {
                let value = json!({"count": s.count, "mean_ms": s.mean().as_secs_f64() * 1000.0,
                                   "max_ms": s.max.as_secs_f64() * 1000.0});
                ((*name).to_owned(), value)
            })
            .collect();
        json!({
            "accepted": self.accepted, "span_s": self.span.as_secs_f64(), "sends_per_s": self.sends_per_sec,
            "max_bot_per_rolling_s": self.max_bot_per_sec, "mean_bot_per_s": self.mean_bot_per_sec,
            "max_chat_per_rolling_s": self.max_chat_per_sec,
            "refused_429_bot": self.refused_bot, "refused_429_chat": self.refused_chat,
            "early_ms_p50_p99_max": self.early.map(|d| d.as_secs_f64() * 1000.0),
            "duplicates": self.duplicates, "order_violations": self.order_violations,
            "timeline": self.timeline, "steady_median_per_s": steady(&self.timeline),
            "machine_busy_cores": self.phase.machine_busy_cores, "process_cores": self.phase.process_cores,
            "threads": self.phase.threads.iter().map(|(k, (n, c))| (k.clone(), json!({"n": n, "cores": c})))
                .collect::<serde_json::Map<_, _>>(),
            "disks": self.phase.disks.iter().map(|(k, r)| (k.clone(), json!({"flushes_per_s": r.0, "writes_per_s": r.1})))
                .collect::<serde_json::Map<_, _>>(),
            "calls": calls,
        })
    }
}

/// Median, 99th percentile and maximum of `values` (zeros when empty).
fn percentiles(values: &[Duration]) -> [Duration; 3] {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
    [at(0.5), at(0.99), at(1.0)]
}

/// The most of `times` in any half-open window `[t, t + width)`.
fn busiest(times: &[Instant], width: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut end = 0;
    let mut most = 0;
    for (start, at) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < *at + width {
            end += 1;
        }
        most = most.max(end - start);
    }
    most
}

/// The median of the whole seconds between the first and the last (ramp-up and tail left out).
fn steady(timeline: &[usize]) -> usize {
    if timeline.len() < 3 {
        return timeline.iter().copied().max().unwrap_or(0);
    }
    let mut middle = timeline[1..timeline.len() - 1].to_vec();
    middle.sort_unstable();
    middle[middle.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// CPU and disk, from /proc.

struct Snapshot {
    at: Instant,
    /// CPU ns per thread id, with the thread's name.
    threads: HashMap<u32, (String, u64)>,
    /// Flushes and writes completed per whole disk.
    disks: HashMap<String, (u64, u64, u64)>,
    /// The machine's busy and stolen CPU seconds.
    machine: (f64, f64),
}

/// CPU and disk use between two snapshots.
struct Phase {
    machine_busy_cores: f64,
    steal_cores: f64,
    process_cores: f64,
    /// Per thread name: how many threads, and the cores they used together.
    threads: BTreeMap<String, (usize, f64)>,
    /// Per disk: flushes/s, writes/s, MB/s written.
    disks: BTreeMap<String, (f64, f64, f64)>,
}

impl Snapshot {
    fn take() -> Self {
        Self { at: Instant::now(), threads: thread_cpu(), disks: disk_counters(), machine: machine_cpu_secs() }
    }
}

impl Phase {
    fn between(a: &Snapshot, b: &Snapshot) -> Self {
        let secs = (b.at - a.at).as_secs_f64().max(1e-9);
        let mut threads: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for (tid, (name, ns)) in &b.threads {
            let used = ns.saturating_sub(a.threads.get(tid).map_or(0, |(_, ns)| *ns)) as f64 / 1e9 / secs;
            let entry = threads.entry(name.clone()).or_default();
            entry.0 += 1;
            entry.1 += used;
        }
        let disks = b
            .disks
            .iter()
            .filter_map(|(name, &(flushes, writes, sectors))| {
                let &(f0, w0, s0) = a.disks.get(name)?;
                (writes > w0).then(|| {
                    let rate = ((flushes - f0) as f64 / secs, (writes - w0) as f64 / secs);
                    (name.clone(), (rate.0, rate.1, (sectors - s0) as f64 * 512.0 / 1e6 / secs))
                })
            })
            .collect();
        Self {
            machine_busy_cores: (b.machine.0 - a.machine.0) / secs,
            steal_cores: (b.machine.1 - a.machine.1) / secs,
            process_cores: threads.values().map(|(_, cores)| cores).sum(),
            threads,
            disks,
        }
    }
}

/// Waits until the machine, this process aside, has been nearly idle for 2 s, or `limit` passed.
async fn wait_quiet(limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let before = Snapshot::take();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let phase = Phase::between(&before, &Snapshot::take());
        let others = phase.machine_busy_cores - phase.process_cores;
        if others < 0.3 {
            return;
        }
        if Instant::now() > until {
            eprintln!("the machine is still busy ({others:.2} cores outside this process); starting anyway");
            return;
        }
        eprintln!("waiting for a quiet machine: {others:.2} cores busy outside this process");
    }
}

/// CPU time per thread of this process, from `/proc/self/task/*/schedstat` (ns on CPU).
fn thread_cpu() -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return out };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim().to_owned();
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0);
        out.insert(tid, (name, ns));
    }
    out
}

/// The machine's busy (all but idle and iowait) and stolen CPU seconds, from `/proc/stat`.
fn machine_cpu_secs() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy as f64 / 100.0, at(7) as f64 / 100.0)
}

/// Whole disks (as in `/sys/block`): flushes completed, writes completed, sectors written.
fn disk_counters() -> HashMap<String, (u64, u64, u64)> {
    let disks: HashSet<String> = std::fs::read_dir("/sys/block")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let stats = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
    stats
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            (f.len() > 2 && disks.contains(f[2])).then(|| (f[2].to_owned(), (n(18), n(7), n(9))))
        })
        .collect()
}

/// Single-row commits per second into a fresh file at `path` with the embedded adapters' pragmas
/// (WAL, synchronous=FULL): the most write transactions this file system allows one connection.
fn sqlite_commit_rate(path: &Path, for_how_long: Duration) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")?;
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < for_how_long {
        conn.execute("INSERT INTO t (body) VALUES ('an outbox transition')", [])?;
        commits += 1;
    }
    let rate = commits as f64 / started.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate)
}

// ---------------------------------------------------------------------------------------------
// Timing wrappers around the ports the loops use.

/// Count and latency of each port method.
#[derive(Default)]
struct CallStats {
    calls: Mutex<BTreeMap<&'static str, CallStat>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct CallStat {
    count: u64,
    total: Duration,
    max: Duration,
}

impl CallStat {
    fn mean(&self) -> Duration {
        self.total.checked_div(self.count.max(1) as u32).unwrap_or_default()
    }
}

impl CallStats {
    async fn time<T>(&self, name: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        self.add(name, 1, started.elapsed());
        out
    }

    fn add(&self, name: &'static str, count: u64, took: Duration) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let stat = calls.entry(name).or_default();
        stat.count += count;
        stat.total += took;
        stat.max = stat.max.max(took);
    }

    fn snapshot(&self) -> BTreeMap<&'static str, CallStat> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A [`Store`] that times every call.
struct TimedStore {
    inner: Arc<dyn Store>,
    stats: Arc<CallStats>,
}

#[async_trait]
impl Store for TimedStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.stats.time("store.ping", self.inner.ping()).await
    }
    async fn insert_tenant(&self, tenant: &Tenant, first_user: Option<&User>, audit: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.insert_tenant", self.inner.insert_tenant(tenant, first_user, audit)).await
    }
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Tenant> {
        self.stats.time("store.get_tenant", self.inner.get_tenant(id)).await
    }
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.stats.time("store.list_tenants", self.inner.list_tenants()).await
    }
    async fn insert_user(&self, user: &User, audit: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.insert_user", self.inner.insert_user(user, audit)).await
    }
    async fn list_users(&self, tenant: &TenantId) -> StoreResult<Vec<User>> {
        self.stats.time("store.list_users", self.inner.list_users(tenant)).await
    }
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.stats.time("store.find_user_by_email", self.inner.find_user_by_email(email)).await
    }
    async fn get_user(&self, id: &UserId) -> StoreResult<Option<User>> {
        self.stats.time("store.get_user", self.inner.get_user(id)).await
    }
    async fn has_platform_admin(&self) -> StoreResult<bool> {
        self.stats.time("store.has_platform_admin", self.inner.has_platform_admin()).await
    }
    async fn insert_channel(&self, channel: &Channel) -> StoreResult<()> {
        self.stats.time("store.insert_channel", self.inner.insert_channel(channel)).await
    }
    async fn get_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<Channel> {
        self.stats.time("store.get_channel", self.inner.get_channel(tenant, id)).await
    }
    async fn find_channel(&self, id: &ChannelId) -> StoreResult<Option<Channel>> {
        self.stats.time("store.find_channel", self.inner.find_channel(id)).await
    }
    async fn list_channels(&self, tenant: &TenantId) -> StoreResult<Vec<Channel>> {
        self.stats.time("store.list_channels", self.inner.list_channels(tenant)).await
    }
    async fn all_channels(&self) -> StoreResult<Vec<Channel>> {
        self.stats.time("store.all_channels", self.inner.all_channels()).await
    }
    async fn update_channel(&self, channel: &Channel, audit: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.update_channel", self.inner.update_channel(channel, audit)).await
    }
    async fn delete_channel(&self, tenant: &TenantId, id: &ChannelId) -> StoreResult<()> {
        self.stats.time("store.delete_channel", self.inner.delete_channel(tenant, id)).await
    }
    async fn find_active_channel(&self, kind: ChannelKind, external_id: &str) -> StoreResult<Option<Channel>> {
        self.stats.time("store.find_active_channel", self.inner.find_active_channel(kind, external_id)).await
    }
    async fn apply_inbound(&self, records: &[InboundRecord]) -> StoreResult<Vec<ApplyOutcome>> {
        self.stats.time("store.apply_inbound", self.inner.apply_inbound(records)).await
    }
    async fn list_conversations(&self, tenant: &TenantId, query: &ConversationQuery) -> StoreResult<Vec<Conversation>> {
        self.stats.time("store.list_conversations", self.inner.list_conversations(tenant, query)).await
    }
    async fn get_conversation(&self, tenant: &TenantId, id: &ConversationId) -> StoreResult<Conversation> {
        self.stats.time("store.get_conversation", self.inner.get_conversation(tenant, id)).await
    }
    async fn move_thread(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        from: &str,
        to: &str,
    ) -> StoreResult<Conversation> {
        self.stats.time("store.move_thread", self.inner.move_thread(tenant, channel, from, to)).await
    }
    async fn get_inbound_event(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<kamshub::domain::inbound::InboundEventRecord>> {
        self.stats
            .time("store.get_inbound_event", self.inner.get_inbound_event(tenant, channel, provider_event_id))
            .await
    }
    async fn list_messages(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        before: Option<&(String, MessageId)>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        self.stats.time("store.list_messages", self.inner.list_messages(tenant, conversation, before, limit)).await
    }
    async fn create_outbound(&self, item: &OutboxItem, message: &Message) -> StoreResult<CreateOutcome> {
        self.stats.time("store.create_outbound", self.inner.create_outbound(item, message)).await
    }
    async fn get_outbox(&self, tenant: &TenantId, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        self.stats.time("store.get_outbox", self.inner.get_outbox(tenant, id)).await
    }
    async fn get_outbox_for_send(&self, id: &OutboxId) -> StoreResult<Option<OutboxItem>> {
        self.stats.time("store.get_outbox", self.inner.get_outbox_for_send(id)).await
    }
    async fn list_outbox(&self, query: &OutboxQuery) -> StoreResult<Vec<OutboxItem>> {
        self.stats.time("store.list_outbox (bench poll)", self.inner.list_outbox(query)).await
    }
    async fn outbox_due(
        &self,
        now: OffsetDateTime,
        stuck_before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.stats.time("store.outbox_due", self.inner.outbox_due(now, stuck_before, limit)).await
    }
    async fn transition_outbox(
        &self,
        tenant: &TenantId,
        id: &OutboxId,
        step: &Transition,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Option<OutboxItem>> {
        self.stats.time(transition_name(step), self.inner.transition_outbox(tenant, id, step, audit)).await
    }
    async fn mark_enqueued(&self, ids: &[OutboxId]) -> StoreResult<()> {
        self.stats.time("store.mark_enqueued", self.inner.mark_enqueued(ids)).await
    }
    async fn set_channel_health(&self, id: &ChannelId, health: kamshub::domain::ChannelHealth) -> StoreResult<()> {
        self.stats.time("store.set_channel_health", self.inner.set_channel_health(id, health)).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.append_audit", self.inner.append_audit(entry)).await
    }
    async fn list_audit(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        self.stats.time("store.list_audit", self.inner.list_audit(tenant, limit)).await
    }
    async fn record_inbound_failure(
        &self,
        envelope: &kamshub::domain::inbound::Envelope,
        failure: &kamshub::store::InboundFailure,
    ) -> StoreResult<()> {
        self.stats.time("store.record_inbound_failure", self.inner.record_inbound_failure(envelope, failure)).await
    }
    async fn inbound_failure(
        &self,
        tenant: &TenantId,
        channel: &ChannelId,
        provider_event_id: &str,
    ) -> StoreResult<Option<kamshub::store::InboundFailure>> {
        self.stats.time("store.inbound_failure", self.inner.inbound_failure(tenant, channel, provider_event_id)).await
    }
    async fn acquire_lease(
        &self,
        lease: &kamshub::store::Lease,
        replacing: Option<&str>,
    ) -> StoreResult<Option<kamshub::store::Lease>> {
        self.stats.time("store.acquire_lease", self.inner.acquire_lease(lease, replacing)).await
    }
    async fn renew_lease(&self, name: &str, holder_id: &str, expires_at: time::OffsetDateTime) -> StoreResult<bool> {
        self.stats.time("store.renew_lease", self.inner.renew_lease(name, holder_id, expires_at)).await
    }
    async fn release_lease(&self, name: &str, holder_id: &str) -> StoreResult<()> {
        self.stats.time("store.release_lease", self.inner.release_lease(name, holder_id)).await
    }
    async fn count_outbox(&self, status: OutboxStatus) -> StoreResult<u64> {
        self.stats.time("store.count_outbox", self.inner.count_outbox(status)).await
    }
    async fn list_events(&self, tenant: &TenantId, after: EventId, limit: u32) -> StoreResult<Vec<Event>> {
        self.stats.time("store.list_events", self.inner.list_events(tenant, after, limit)).await
    }
    async fn get_event(&self, tenant: &TenantId, id: EventId) -> StoreResult<Option<Event>> {
        self.stats.time("store.get_event", self.inner.get_event(tenant, id)).await
    }
    async fn event_heads(&self, tenants: &[TenantId]) -> StoreResult<Vec<(TenantId, EventId)>> {
        self.stats.time("store.event_heads", self.inner.event_heads(tenants)).await
    }
    async fn prune_events(&self, before: time::OffsetDateTime, limit: u32) -> StoreResult<u64> {
        self.stats.time("store.prune_events", self.inner.prune_events(before, limit)).await
    }
    async fn insert_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.insert_webhook", self.inner.insert_webhook(endpoint, audit)).await
    }
    async fn get_webhook(&self, tenant: &TenantId, id: &WebhookId) -> StoreResult<WebhookEndpoint> {
        self.stats.time("store.get_webhook", self.inner.get_webhook(tenant, id)).await
    }
    async fn list_webhooks(&self, tenant: &TenantId) -> StoreResult<Vec<WebhookEndpoint>> {
        self.stats.time("store.list_webhooks", self.inner.list_webhooks(tenant)).await
    }
    async fn update_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.update_webhook", self.inner.update_webhook(endpoint, audit)).await
    }
    async fn delete_webhook(&self, tenant: &TenantId, id: &WebhookId, audit: &AuditEntry) -> StoreResult<()> {
        self.stats.time("store.delete_webhook", self.inner.delete_webhook(tenant, id, audit)).await
    }
    async fn record_webhook_attempt(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        attempt: &AttemptResult,
        disable_after: Duration,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let call = self.inner.record_webhook_attempt(tenant, id, attempt, disable_after);
        self.stats.time("store.record_webhook_attempt", call).await
    }
    async fn insert_deliveries(&self, items: &[OutboxItem]) -> StoreResult<()> {
        self.stats.time("store.insert_deliveries", self.inner.insert_deliveries(items)).await
    }
}

/// The stats name of an outbox step.
fn transition_name(step: &Transition) -> &'static str {
    match step.target() {
        OutboxStatus::Enqueued => "store.transition→ENQUEUED",
        OutboxStatus::Sending => "store.transition→SENDING",
        OutboxStatus::Sent => "store.transition→SENT",
        _ => "store.transition→other",
    }
}

/// A [`Queue`] that times every call (a receive's time includes its long-poll wait).
struct TimedQueue {
    inner: Arc<dyn Queue>,
    stats: Arc<CallStats>,
}

#[async_trait]
impl Queue for TimedQueue {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn max_receive(&self) -> usize {
        self.inner.max_receive()
    }
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> QueueResult<()> {
        self.stats.time("queue.send", self.inner.send(queue, messages)).await
    }
    async fn receive(&self, queue: QueueName, max: usize, wait: Duration) -> QueueResult<Vec<ReceivedMessage>> {
        let received = self.stats.time("queue.receive", self.inner.receive(queue, max, wait)).await;
        if let Ok(messages) = &received {
            self.stats.add("queue.receive (messages)", messages.len() as u64, Duration::ZERO);
        }
        received
    }
    async fn delete(&self, queue: QueueName, receipts: &[Receipt]) -> QueueResult<()> {
        self.stats.time("queue.delete", self.inner.delete(queue, receipts)).await
    }
    async fn set_visibility(&self, queue: QueueName, receipt: &Receipt, timeout: Duration) -> QueueResult<()> {
        self.stats.time("queue.set_visibility", self.inner.set_visibility(queue, receipt, timeout)).await
    }
    async fn set_visibility_batch(
        &self,
        queue: QueueName,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> QueueResult<Vec<QueueResult<()>>> {
        let call = self.inner.set_visibility_batch(queue, receipts, timeout);
        self.stats.time("queue.set_visibility_batch", call).await
    }
    async fn dead_letter(&self, queue: QueueName, message: &ReceivedMessage) -> QueueResult<()> {
        self.stats.time("queue.dead_letter", self.inner.dead_letter(queue, message)).await
    }
    async fn depth(&self, queue: QueueName) -> QueueResult<Depth> {
        self.stats.time("queue.depth", self.inner.depth(queue)).await
    }
    async fn peek(&self, queue: QueueName, max: usize) -> QueueResult<Vec<kamshub::queue::PeekedMessage>> {
        self.stats.time("queue.peek", self.inner.peek(queue, max)).await
    }
    async fn oldest_sent_at(&self, queue: QueueName) -> QueueResult<Option<i64>> {
        self.stats.time("queue.oldest_sent_at", self.inner.oldest_sent_at(queue)).await
    }
}
