//! Load generator for the inbound pipeline (webhook → incoming queue → processor → store).
//!
//! Modes (recipe and results: `docs/benchmarks.md`):
//! - `--setup`: creates, through the library and with the daemon's data dir and config, a tenant
//!   with Telegram channels and Messenger pages, and writes `loadgen-setup.json` (channel ids,
//!   webhook secrets, page ids, and the Meta app secret the daemon must be started with).
//! - load (the default): posts realistic, correctly authenticated webhooks at a fixed rate on an
//!   open-loop schedule (latency counts from the scheduled send time, so a slow server cannot hide
//!   its stalls), with a share of exact duplicates, then waits until the store has applied every
//!   unique accepted event. Reports ack throughput and latency, processed/s, the daemon's memory,
//!   where the machine's CPU went (daemon threads, load generator, other processes), and the
//!   disk's flush and write rates. `--ack-only` stops at the acks (a daemon run with
//!   `--roles http`); `--drain-only` sends nothing and times a `--roles processor` daemon
//!   emptying the backlog such a run left.
//! - `--baseline`: the limits the figures are compared with, on the same machine: raw SQLite
//!   inserts (WAL, `synchronous=FULL`, batches of 100 and of 1) and a bare axum handler answering
//!   200. `--baseline --load` runs both and prints the ratios.

use anyhow::{Context, bail};
use axum::body::Bytes;
use clap::{Parser, ValueEnum};
use hmac::{Hmac, Mac};
use kamshub::app::App;
use kamshub::config::{FlagOverrides, Settings};
use kamshub::domain::{Channel, ChannelId, ChannelKind, DisplayName, Email, ExternalId, TenantId, TenantName};
use kamshub::sealing::{MasterKey, SealContext};
use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OpenFlags};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{Semaphore, mpsc};

#[derive(Debug, Parser)]
#[command(about = "Load generator for kamshub's inbound pipeline (see docs/benchmarks.md)")]
struct Args {
    /// The daemon's data dir: setup writes the tenant there, load counts applied events in its
    /// store, the SQLite baseline writes its scratch file there (same file system).
    #[arg(long, env = "KAMSHUB_DATA_DIR")]
    data_dir: PathBuf,
    /// Create a tenant with channels and write the setup file, then exit.
    #[arg(long)]
    setup: bool,
    /// Telegram channels to create (`--setup`).
    #[arg(long, default_value_t = 8)]
    telegram_channels: usize,
    /// Messenger pages to create (`--setup`).
    #[arg(long, default_value_t = 4)]
    messenger_pages: usize,
    /// Meta app secret to record instead of a generated one (`--setup`), for a daemon that already has one.
    #[arg(long)]
    meta_app_secret: Option<String>,
    /// The setup file; default `DATA_DIR/loadgen-setup.json`.
    #[arg(long)]
    setup_file: Option<PathBuf>,
    /// Measure the baselines (raw SQLite inserts, bare axum handler).
    #[arg(long)]
    baseline: bool,
    /// With `--baseline`: also run the load afterwards and print the ratios.
    #[arg(long)]
    load: bool,
    /// Measure acknowledgements only: do not wait for the store (a daemon run with `--roles http`).
    #[arg(long, conflicts_with = "drain_only")]
    ack_only: bool,
    /// Send nothing: measure a processor (`--roles processor`) emptying the incoming backlog.
    #[arg(long)]
    drain_only: bool,
    /// Before starting, wait up to this many seconds for the machine to be quiet (under 0.2 busy
    /// cores outside the daemon for 2 s), so other work on a shared machine does not skew the run.
    #[arg(long, default_value_t = 0.0)]
    wait_quiet: f64,
    /// Webhook POSTs per second (offered, open loop).
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Share of POSTs that re-send an earlier POST byte for byte (half of them at the same instant).
    #[arg(long, default_value_t = 0.2)]
    duplicates: f64,
    /// Distinct conversations per provider (chats for Telegram, customer PSIDs for Messenger).
    #[arg(long, default_value_t = 500)]
    chats: usize,
    /// Which webhooks to send; `mixed` sends each half of the time.
    #[arg(long, value_enum, default_value_t = Provider::Mixed)]
    provider: Provider,
    /// Most messaging items in one Messenger POST.
    #[arg(long, default_value_t = 3)]
    messenger_batch: usize,
    /// The daemon's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Most requests in flight (one connection each); beyond it sends wait, and the wait counts.
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// The daemon's pid: peak RSS, CPU per thread.
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Longest wait, after the last ack, for the store to apply every event (seconds).
    #[arg(long, default_value_t = 300.0)]
    drain_timeout: f64,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seed of the workload; random when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Append the results as one JSON line to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Seconds each SQLite baseline runs.
    #[arg(long, default_value_t = 3.0)]
    baseline_secs: f64,
    /// Concurrent clients hitting the bare axum handler at max rate.
    #[arg(long, default_value_t = 64)]
    baseline_concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Provider {
    Telegram,
    Messenger,
    Mixed,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()?;
    runtime.block_on(async {
        if args.setup {
            return setup(&args).await;
        }
        let mut results = json!({"at": unix_ms(), "args": args_json(&args)});
        let baseline = if args.baseline { Some(run_baselines(&args).await?) } else { None };
        if let Some(b) = &baseline {
            results["baseline"] = serde_json::to_value(b)?;
        }
        if !args.baseline || args.load {
            let load = run_load(&args).await?;
            if let Some(b) = &baseline {
                print_ratios(&load, b);
            }
            results["load"] = serde_json::to_value(&load)?;
        }
        if let Some(path) = &args.json_out {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(file, "{results}")?;
        }
        Ok(())
    })
}

fn args_json(a: &Args) -> Value {
    json!({"rate": a.rate, "duration": a.duration, "duplicates": a.duplicates, "chats": a.chats,
           "provider": a.provider, "messengerBatch": a.messenger_batch, "maxInFlight": a.max_in_flight,
           "threads": a.threads})
}

// ---------------------------------------------------------------------------------------------
// Setup: a tenant, its channels, and the secrets the load needs.

/// What `--setup` writes and the load reads. Holds secrets: written 0600.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetupFile {
    tenant_id: String,
    /// Start the daemon with `KAMSHUB_PROVIDERS__META_APP_SECRET` set to this.
    meta_app_secret: String,
    telegram: Vec<TelegramTarget>,
    messenger: Vec<MessengerTarget>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TelegramTarget {
    channel_id: String,
    /// Plaintext of the sealed `webhook_secret`: the `X-Telegram-Bot-Api-Secret-Token` to send.
    webhook_secret: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessengerTarget {
    channel_id: String,
    page_id: String,
}

fn setup_path(args: &Args) -> PathBuf {
    args.setup_file.clone().unwrap_or_else(|| args.data_dir.join("loadgen-setup.json"))
}

async fn setup(args: &Args) -> anyhow::Result<()> {
    // The same layers as the daemon: kamshub.toml, KAMSHUB_* environment, then the data dir flag.
    let settings = Settings::load(None, &FlagOverrides { data_dir: Some(args.data_dir.clone()) })?;
    let app = App::new(settings);
    let stamp = unix_ms();
    let name = TenantName::parse(&format!("Loadgen {stamp}"))?;
    let email = Email::parse(&format!("loadgen-{stamp}@example.com"))?;
    let created =
        kamshub::service::onboarding::create_tenant(&app, &kamshub::service::access::Caller::operator(), name, email)
            .await?;
    let tenant = TenantId::parse(&created.tenant_id)?;
    let store = app.store().await?;
    let key = app.master_key()?;
    let mut rng = StdRng::from_entropy();
    let mut file = SetupFile {
        tenant_id: created.tenant_id.clone(),
        meta_app_secret: args.meta_app_secret.clone().unwrap_or_else(|| token(&mut rng, 32)),
        telegram: Vec::new(),
        messenger: Vec::new(),
    };
    for i in 0..args.telegram_channels {
        let secret = token(&mut rng, 48);
        let external = ExternalId::telegram_username(&format!("loadgen_{stamp}_{i}_bot"))?;
        let channel = new_channel(&key, &tenant, ChannelKind::Telegram, external, Some(&secret))?;
        store.insert_channel(&channel).await?;
        file.telegram.push(TelegramTarget { channel_id: channel.id.to_string(), webhook_secret: secret });
    }
    for _ in 0..args.messenger_pages {
        let page_id = format!("1{:014}", rng.gen_range(0..100_000_000_000_000u64));
        let channel = new_channel(&key, &tenant, ChannelKind::Messenger, ExternalId::page_id(&page_id)?, None)?;
        store.insert_channel(&channel).await?;
        file.messenger.push(MessengerTarget { channel_id: channel.id.to_string(), page_id });
    }
    let path = setup_path(args);
    write_private(&path, &serde_json::to_string_pretty(&file)?)?;
    println!(
        "tenant {} with {} Telegram channels and {} Messenger pages",
        file.tenant_id, args.telegram_channels, args.messenger_pages
    );
    println!("setup file: {}", path.display());
    println!("start the daemon with:");
    println!(
        "  KAMSHUB_DATA_DIR={} KAMSHUB_PROVIDERS__META_APP_SECRET={} target/release/kamshub serve",
        args.data_dir.display(),
        file.meta_app_secret
    );
    Ok(())
}

fn new_channel(
    key: &MasterKey,
    tenant: &TenantId,
    kind: ChannelKind,
    external_id: ExternalId,
    webhook_secret: Option<&str>,
) -> anyhow::Result<Channel> {
    let id = ChannelId::generate();
    let now = kamshub::domain::now();
    Ok(Channel {
        credentials: key
            .seal(&SecretString::from("123456789:loadgen-fake-token"), SealContext::channel_credentials(id.as_str())),
        webhook_secret: webhook_secret
            .map(|s| key.seal(&SecretString::from(s.to_owned()), SealContext::channel_webhook_secret(id.as_str()))),
        display_name: DisplayName::parse(&format!("Loadgen {kind} {}", external_id.as_str()))?,
        tenant_id: tenant.clone(),
        kind,
        external_id,
        is_active: true,
        health: Default::default(),
        auto_reply: None,
        created_at: now,
        updated_at: now,
        id,
    })
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// The workload: realistic webhook bodies, authenticated as the providers do.

/// One webhook POST, ready to send; a duplicate re-sends the same `Arc`.
struct Prepared {
    id: u64,
    path: String,
    auth: (&'static str, String),
    body: Bytes,
    /// Provider events in the body (one per Telegram update, one per Messenger messaging item).
    events: u32,
}

/// A POST and when to send it (seconds after the start).
struct Slot {
    at: f64,
    request: Arc<Prepared>,
}

struct TelegramChat {
    channel: usize,
    chat: Value,
    members: Vec<Value>,
    next_message_id: i64,
}

struct MessengerChat {
    page: usize,
    psid: String,
}

struct Generator {
    rng: StdRng,
    /// Time-based start of every counter, so runs against one setup never reuse an id.
    base: i64,
    next_id: u64,
    telegram: Vec<(String, String, i64)>,
    telegram_chats: Vec<TelegramChat>,
    pages: Vec<String>,
    messenger_chats: Vec<MessengerChat>,
    app_secret: Vec<u8>,
    messenger_batch: usize,
}

const FIRST_NAMES: [&str; 10] = ["Aino", "Lars", "Mira", "Jonas", "Leila", "Tomás", "Yuki", "Amara", "Pekka", "Sofía"];
const TEXTS: [&str; 8] = [
    "Hei! Is my order #{} shipped yet?",
    "Do you ship to Finland? Asking for order {}",
    "The box arrived damaged 😞 — order {}",
    "Can I change the delivery address for #{}?",
    "Thanks, got it! 🙏",
    "What are your opening hours on Midsummer?",
    "Tracking says \"in transit\" since Monday ({})",
    "I'd like a refund for order {}, please",
];

impl Generator {
    fn new(setup: &SetupFile, args: &Args, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let base = unix_ms() as i64;
        let telegram: Vec<_> =
            setup.telegram.iter().map(|t| (t.channel_id.clone(), t.webhook_secret.clone(), base * 1000)).collect();
        let mut telegram_chats = Vec::new();
        if !telegram.is_empty() {
            for i in 0..args.chats {
                telegram_chats.push(telegram_chat(&mut rng, i % telegram.len(), i, base));
            }
        }
        let pages: Vec<_> = setup.messenger.iter().map(|m| m.page_id.clone()).collect();
        let mut messenger_chats = Vec::new();
        if !pages.is_empty() {
            for i in 0..args.chats {
                messenger_chats.push(MessengerChat {
                    page: i % pages.len(),
                    psid: format!("{}", 6_500_000_000_000_000u64 + i as u64 * 7_919),
                });
            }
        }
        Self {
            rng,
            base,
            next_id: 0,
            telegram,
            telegram_chats,
            pages,
            messenger_chats,
            app_secret: setup.meta_app_secret.as_bytes().to_vec(),
            messenger_batch: args.messenger_batch.max(1),
        }
    }

    fn next(&mut self, provider: Provider) -> anyhow::Result<Prepared> {
        let telegram = match provider {
            Provider::Telegram => true,
            Provider::Messenger => false,
            Provider::Mixed => self.rng.gen_bool(0.5),
        };
        self.next_id += 1;
        if telegram {
            if self.telegram_chats.is_empty() {
                bail!("the setup has no Telegram channels (or --chats is 0)");
            }
            Ok(self.telegram_update())
        } else {
            if self.messenger_chats.is_empty() {
                bail!("the setup has no Messenger pages (or --chats is 0)");
            }
            Ok(self.messenger_post())
        }
    }

    fn telegram_update(&mut self) -> Prepared {
        let index = self.rng.gen_range(0..self.telegram_chats.len());
        let chat = &mut self.telegram_chats[index];
        let (channel_id, secret, next_update) = &mut self.telegram[chat.channel];
        let update_id = *next_update;
        *next_update += 1;
        let message_id = chat.next_message_id;
        chat.next_message_id += 1;
        let from = chat.members[self.rng.gen_range(0..chat.members.len())].clone();
        let mut message = json!({
            "message_id": message_id,
            "from": from,
            "chat": chat.chat,
            "date": unix_ms() / 1000,
        });
        let (field, content) = telegram_content(&mut self.rng, message_id);
        message[field] = content;
        if field == "photo" {
            message["caption"] = json!("The box arrived like this");
        }
        let body = json!({"update_id": update_id, "message": message}).to_string();
        Prepared {
            id: self.next_id,
            path: format!("/webhooks/telegram/{channel_id}"),
            auth: ("x-telegram-bot-api-secret-token", secret.clone()),
            body: Bytes::from(body),
            events: 1,
        }
    }

    fn messenger_post(&mut self) -> Prepared {
        let roll: f64 = self.rng.r#gen();
        let count =
            if roll < 0.7 || self.messenger_batch == 1 { 1 } else { self.rng.gen_range(2..=self.messenger_batch) };
        let now = unix_ms();
        // One entry per page, in first-seen order, as Meta groups them.
        let mut entries: Vec<(usize, Vec<Value>)> = Vec::new();
        for _ in 0..count {
            let chat = &self.messenger_chats[self.rng.gen_range(0..self.messenger_chats.len())];
            let (page, psid) = (chat.page, chat.psid.clone());
            let page_id = self.pages[page].clone();
            let item = self.messenger_item(&psid, &page_id, now);
            match entries.iter_mut().find(|(p, _)| *p == page) {
                Some((_, items)) => items.push(item),
                None => entries.push((page, vec![item])),
            }
        }
        let entry: Vec<Value> = entries
            .into_iter()
            .map(|(page, messaging)| json!({"id": self.pages[page], "time": now + 200, "messaging": messaging}))
            .collect();
        let body = json!({"object": "page", "entry": entry}).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.app_secret).expect("HMAC takes any key length");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex(&mac.finalize().into_bytes()));
        Prepared {
            id: self.next_id,
            path: "/webhooks/messenger".into(),
            auth: ("x-hub-signature-256", signature),
            body: Bytes::from(body),
            events: count as u32,
        }
    }

    fn messenger_item(&mut self, psid: &str, page: &str, now: u64) -> Value {
        self.base += 1;
        let mid = format!("m_{}{}", self.base, token(&mut self.rng, 60));
        let roll: f64 = self.rng.r#gen();
        let mut item = json!({"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": now});
        if roll < 0.85 {
            let text =
                TEXTS[self.rng.gen_range(0..TEXTS.len())].replace("{}", &self.rng.gen_range(1000..9999).to_string());
            item["message"] = json!({"mid": mid, "text": text});
        } else if roll < 0.95 {
            let url = format!(
                "https://scontent.xx.fbcdn.net/v/t1.15752-9/{}_n.jpg?_nc_cat=105&ccb=1-7&oh=03_{}",
                self.rng.gen_range(100_000_000u64..999_999_999),
                token(&mut self.rng, 12)
            );
            item["message"] = json!({"mid": mid, "attachments": [{"type": "image", "payload": {"url": url}}]});
        } else {
            item["postback"] = json!({"title": "Track my order", "payload": "TRACK_ORDER", "mid": mid});
        }
        item
    }
}

fn telegram_chat(rng: &mut StdRng, channel: usize, i: usize, base: i64) -> TelegramChat {
    let person = |rng: &mut StdRng, id: i64| {
        let name = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
        json!({"id": id, "is_bot": false, "first_name": name, "username": format!("{}_{id}", name.to_lowercase()),
               "language_code": "en"})
    };
    let user_id = 284_000_000 + i as i64 * 7_919;
    // One chat in ten is a supergroup with a few members; the rest are private chats.
    if i % 10 == 9 {
        let members = (0..5).map(|m| person(rng, user_id + m)).collect();
        let chat = json!({"id": -1_001_000_000_000 - i as i64, "title": format!("Customers Lounge {i}"),
                          "is_forum": false, "type": "supergroup"});
        TelegramChat { channel, chat, members, next_message_id: base * 10 }
    } else {
        let user = person(rng, user_id);
        let chat =
            json!({"id": user_id, "first_name": user["first_name"], "username": user["username"], "type": "private"});
        TelegramChat { channel, chat, members: vec![user], next_message_id: base * 10 }
    }
}

/// The content of a Telegram message: mostly text, some photos, voice notes, documents, stickers.
fn telegram_content(rng: &mut StdRng, message_id: i64) -> (&'static str, Value) {
    let file = |rng: &mut StdRng, size: u32| {
        json!({"file_id": format!("AgACAgQAAxkBAAI{}", token(rng, 56)), "file_unique_id": token(rng, 16),
               "file_size": rng.gen_range(size / 2..size)})
    };
    let roll: f64 = rng.r#gen();
    if roll < 0.80 {
        let text = TEXTS[rng.gen_range(0..TEXTS.len())].replace("{}", &(message_id % 10_000).to_string());
        ("text", json!(text))
    } else if roll < 0.88 {
        let sizes = [(90, 67, 1_500), (320, 240, 20_000), (800, 600, 80_000), (1280, 960, 190_000)];
        let photo: Vec<Value> = sizes
            .iter()
            .map(|&(w, h, size)| {
                let mut f = file(rng, size);
                f["width"] = json!(w);
                f["height"] = json!(h);
                f
            })
            .collect();
        ("photo", json!(photo))
    } else if roll < 0.93 {
        let mut f = file(rng, 60_000);
        f["duration"] = json!(rng.gen_range(1..60));
        f["mime_type"] = json!("audio/ogg");
        ("voice", f)
    } else if roll < 0.97 {
        let mut f = file(rng, 500_000);
        f["file_name"] = json!("invoice.pdf");
        f["mime_type"] = json!("application/pdf");
        ("document", f)
    } else {
        let mut f = file(rng, 30_000);
        for (k, v) in
            [("width", json!(512)), ("height", json!(512)), ("emoji", json!("👍")), ("type", json!("regular"))]
        {
            f[k] = v;
        }
        f["is_animated"] = json!(false);
        f["is_video"] = json!(false);
        ("sticker", f)
    }
}

/// The whole schedule, built before the clock starts so generation costs nothing during the run.
/// A duplicate re-sends an earlier POST byte for byte: half at the same instant as the POST just
/// before it (concurrent), half a recent POST again (a provider retry).
fn plan(generator: &mut Generator, args: &Args) -> anyhow::Result<Vec<Slot>> {
    let total = (args.rate * args.duration).round() as usize;
    let mut recent: VecDeque<Arc<Prepared>> = VecDeque::with_capacity(4096);
    let mut slots: Vec<Slot> = Vec::with_capacity(total);
    let mut rng = StdRng::seed_from_u64(generator.rng.r#gen());
    for i in 0..total {
        let at = i as f64 / args.rate;
        if let Some(last) = slots.last()
            && rng.gen_bool(args.duplicates.clamp(0.0, 1.0))
        {
            let slot = if rng.gen_bool(0.5) {
                Slot { at: last.at, request: Arc::clone(&last.request) }
            } else {
                Slot { at, request: Arc::clone(&recent[rng.gen_range(0..recent.len())]) }
            };
            slots.push(slot);
            continue;
        }
        let request = Arc::new(generator.next(args.provider)?);
        if recent.len() == recent.capacity() {
            recent.pop_front();
        }
        recent.push_back(Arc::clone(&request));
        slots.push(Slot { at, request });
    }
    Ok(slots)
}

// ---------------------------------------------------------------------------------------------
// The open-loop sender.

/// What happened to one POST.
struct Sample {
    request: u64,
    events: u32,
    /// `200`, another status, or a client-side error kind.
    outcome: Result<u16, &'static str>,
    /// From the scheduled send time to the full response.
    latency: Duration,
    /// From the scheduled send time to the actual start (the load generator's own lateness).
    lag: Duration,
    done: Instant,
}

/// What the sender saw.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct SendStats {
    sent: u64,
    accepted: u64,
    /// Non-200 answers and client errors, by status or kind.
    errors: BTreeMap<String, u64>,
    /// Offered POSTs per second (sent / scheduled span).
    offered_per_sec: f64,
    /// 200s per second, from the first scheduled send to the last 200.
    accepted_per_sec: f64,
    /// Provider events carried by the POSTs answered 200, each counted once.
    unique_events_accepted: u64,
    /// Ack latency of the 200s, ms.
    ack_ms: Percentiles,
    /// How late the load generator itself started sends, ms (subtract it if it is large).
    send_lag_ms: Percentiles,
    /// From the first scheduled send to the last answer, s.
    span_secs: f64,
    /// Ack p99 (ms) of the POSTs scheduled in each window of [`WINDOW_SECS`]: shows whether
    /// latency holds or climbs during the run.
    ack_p99_ms_by_window: Vec<f64>,
}

/// Width of the windows of [`SendStats::ack_p99_ms_by_window`], s.
const WINDOW_SECS: f64 = 5.0;

#[derive(Debug, Default, Clone, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    /// From durations in microseconds; sorts them.
    fn of(values: &mut [u64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[rank - 1] as f64 / 1000.0
        };
        Self { p50: at(0.50), p90: at(0.90), p99: at(0.99), p999: at(0.999), max: at(1.0) }
    }
}

fn client(max_in_flight: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(max_in_flight)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Opens up to `n` connections before the clock starts, so the run does not pay for them.
async fn warm_up(client: &reqwest::Client, base: &str, n: usize) {
    let calls = (0..n).map(|_| client.get(format!("{base}/healthz")).send());
    for r in futures::future::join_all(calls).await.into_iter().flatten() {
        let _ = r.bytes().await;
    }
}

/// Sends every slot at its time whatever the server does (open loop), and collects the answers.
async fn send_open_loop(
    client: &reqwest::Client,
    base: &str,
    slots: Vec<Slot>,
    max_in_flight: usize,
) -> (SendStats, Instant) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = Instant::now() + Duration::from_millis(50);
    let span = slots.last().map_or(0.0, |s| s.at);
    let sent = slots.len() as u64;
    // A plain thread keeps the schedule: tokio's timer ticks in whole milliseconds, which would
    // add up to 1 ms of the load generator's own lateness to every latency.
    let runtime = tokio::runtime::Handle::current();
    let (client, base) = (client.clone(), base.to_owned());
    let scheduler = std::thread::spawn(move || {
        for slot in slots {
            let at = start + Duration::from_secs_f64(slot.at);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let (client, permits, tx) = (client.clone(), Arc::clone(&permits), tx.clone());
            let url = format!("{base}{}", slot.request.path);
            runtime.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("never closed");
                let lag = at.elapsed();
                let outcome = post(&client, url, &slot.request).await;
                let done = Instant::now();
                let (request, events) = (slot.request.id, slot.request.events);
                let _ = tx.send(Sample { request, events, outcome, latency: done - at, lag, done });
            });
        }
    });
    let mut stats = SendStats { sent, offered_per_sec: sent as f64 / span.max(1e-9), ..SendStats::default() };
    let (mut acks, mut lags) = (Vec::with_capacity(sent as usize), Vec::with_capacity(sent as usize));
    let mut windows: Vec<Vec<u64>> = Vec::new();
    let mut accepted_requests = HashSet::new();
    let (mut last_ack, mut last_answer) = (start, start);
    while let Some(s) = rx.recv().await {
        lags.push(s.lag.as_micros() as u64);
        last_answer = last_answer.max(s.done);
        match s.outcome {
            Ok(200) => {
                stats.accepted += 1;
                acks.push(s.latency.as_micros() as u64);
                let scheduled = (s.done - s.latency).saturating_duration_since(start).as_secs_f64();
                let window = (scheduled / WINDOW_SECS) as usize;
                if windows.len() <= window {
                    windows.resize_with(window + 1, Vec::new);
                }
                windows[window].push(s.latency.as_micros() as u64);
                last_ack = last_ack.max(s.done);
                if accepted_requests.insert(s.request) {
                    stats.unique_events_accepted += u64::from(s.events);
                }
            }
            Ok(status) => *stats.errors.entry(status.to_string()).or_default() += 1,
            Err(kind) => *stats.errors.entry(kind.to_owned()).or_default() += 1,
        }
    }
    scheduler.join().expect("the scheduler does not panic");
    stats.accepted_per_sec = stats.accepted as f64 / (last_ack - start).as_secs_f64().max(1e-9);
    stats.span_secs = (last_answer - start).as_secs_f64();
    stats.ack_ms = Percentiles::of(&mut acks);
    stats.send_lag_ms = Percentiles::of(&mut lags);
    stats.ack_p99_ms_by_window = windows.iter_mut().map(|w| Percentiles::of(w).p99).collect();
    (stats, start)
}

/// Posts one webhook and reads the whole answer: its status, or the kind of client error.
async fn post(client: &reqwest::Client, url: String, request: &Prepared) -> Result<u16, &'static str> {
    let (name, value) = &request.auth;
    let sending =
        client.post(url).header(*name, value).header("content-type", "application/json").body(request.body.clone());
    let response = sending.send().await.map_err(|e| error_kind(&e))?;
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| error_kind(&e))?;
    Ok(status)
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "client timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    }
}

// ---------------------------------------------------------------------------------------------
// The load run: send, then wait for the store to apply everything, watching the daemon.

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LoadReport {
    /// What the sender saw (absent with `--drain-only`).
    send: Option<SendStats>,
    /// Unique events the store had to apply (accepted ones; with `--drain-only`, the backlog).
    expected: u64,
    /// Events the store applied during the run (new `inbound_events` rows).
    applied: u64,
    /// From the first scheduled send (or the start of watching) until every expected event was applied, s.
    all_applied_secs: Option<f64>,
    /// `expected` / `all_applied_secs`.
    processed_per_sec: Option<f64>,
    /// Apply rate while sending, and after the last answer while the backlog drains.
    apply_per_sec_sending: Option<f64>,
    apply_per_sec_draining: Option<f64>,
    /// Largest incoming queue backlog seen.
    peak_backlog: u64,
    /// The daemon's memory: highest VmRSS sampled every 100 ms, and the kernel's VmHWM.
    daemon_rss_mb: Option<(f64, f64)>,
    sending: Option<Phase>,
    draining: Option<Phase>,
}

/// Where the machine's CPU and disk went during one phase.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Phase {
    secs: f64,
    /// Whole machine, in cores (of `nproc`), from `/proc/stat`; steal is time the hypervisor took.
    machine_busy_cores: f64,
    steal_cores: f64,
    daemon_cores: f64,
    loadgen_cores: f64,
    /// Everything else running on the machine (other sessions' builds and test services...).
    other_cores: f64,
    /// Daemon thread name → (threads, cores).
    daemon_threads: BTreeMap<String, (usize, f64)>,
    /// The daemon's busiest threads: `tid name` → cores.
    busiest: Vec<(String, f64)>,
    /// Per disk: cache flushes (≈ fsyncs reaching the device) and writes per second.
    disks: BTreeMap<String, DiskRate>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DiskRate {
    flushes_per_sec: f64,
    writes_per_sec: f64,
    write_mb_per_sec: f64,
}

fn read_setup(args: &Args) -> anyhow::Result<SetupFile> {
    let path = setup_path(args);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {} (run --setup first)", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

async fn run_load(args: &Args) -> anyhow::Result<LoadReport> {
    let watcher = Watcher::open(&args.data_dir, args.daemon_pid)?;
    if args.wait_quiet > 0.0 {
        wait_quiet(args.daemon_pid, Duration::from_secs_f64(args.wait_quiet)).await;
    }
    if args.drain_only {
        return drain_only(args, watcher).await;
    }
    let setup = read_setup(args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut generator = Generator::new(&setup, args, seed);
    let slots = plan(&mut generator, args)?;
    let unique_posts = slots.iter().map(|s| s.request.id).collect::<HashSet<_>>().len();
    println!(
        "load: {} POSTs at {}/s for {} s ({} unique, {:.0}% duplicates), provider {:?}, {} chats, seed {seed}",
        slots.len(),
        args.rate,
        args.duration,
        unique_posts,
        100.0 * (1.0 - unique_posts as f64 / slots.len().max(1) as f64),
        args.provider,
        args.chats
    );
    let target = args.target.trim_end_matches('/');
    let client = client(args.max_in_flight)?;
    warm_up(&client, target, args.max_in_flight.min(128)).await;
    if !args.ack_only {
        watcher.wait_for_empty_backlog(Duration::from_secs(120))?;
    }
    let before = Snapshot::take(args.daemon_pid);
    let watching = watcher.spawn()?;

    let (send, start) = send_open_loop(&client, target, slots, args.max_in_flight).await;
    let sent_end = Instant::now();
    let after_send = Snapshot::take(args.daemon_pid);
    let expected = send.unique_events_accepted;
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    while !args.ack_only && watching.applied.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after_drain = Snapshot::take(args.daemon_pid);
    let timeline = watching.finish();

    let all_applied = timeline.iter().find(|p| p.applied >= expected).map(|p| p.at);
    let all_applied_secs = all_applied.map(|t| t.saturating_duration_since(start).as_secs_f64());
    let applied_at_send_end = timeline.iter().take_while(|p| p.at <= sent_end).last().map_or(0, |p| p.applied);
    let report = LoadReport {
        expected,
        applied: timeline.last().map_or(0, |p| p.applied),
        all_applied_secs,
        processed_per_sec: all_applied_secs.map(|s| expected as f64 / s),
        apply_per_sec_sending: Some(applied_at_send_end as f64 / (sent_end - start).as_secs_f64()),
        apply_per_sec_draining: all_applied
            .filter(|t| *t > sent_end)
            .map(|t| (expected.saturating_sub(applied_at_send_end)) as f64 / (t - sent_end).as_secs_f64()),
        peak_backlog: timeline.iter().map(|p| p.backlog).max().unwrap_or(0),
        daemon_rss_mb: args.daemon_pid.map(|pid| rss_mb(pid, &timeline)),
        sending: Some(Phase::between(&before, &after_send)),
        draining: (!args.ack_only).then(|| Phase::between(&after_send, &after_drain)),
        send: Some(send),
    };
    print_load(&report);
    Ok(report)
}

/// `--drain-only`: a processor (`serve --roles processor`) empties a backlog that an http-only
/// run left; measures how fast, from now until the incoming queue is empty.
async fn drain_only(args: &Args, watcher: Watcher) -> anyhow::Result<LoadReport> {
    let expected = watcher.backlog()?;
    println!("drain: {expected} messages in the incoming queue");
    let before = Snapshot::take(args.daemon_pid);
    let start = before.at;
    let watching = watcher.spawn()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    while watching.backlog.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = Snapshot::take(args.daemon_pid);
    let timeline = watching.finish();
    let emptied = timeline.iter().find(|p| p.backlog == 0).map(|p| p.at.saturating_duration_since(start).as_secs_f64());
    let applied = timeline.last().map_or(0, |p| p.applied);
    let report = LoadReport {
        send: None,
        expected,
        applied,
        all_applied_secs: emptied,
        processed_per_sec: emptied.map(|s| applied as f64 / s),
        apply_per_sec_sending: None,
        apply_per_sec_draining: emptied.map(|s| applied as f64 / s),
        peak_backlog: expected,
        daemon_rss_mb: args.daemon_pid.map(|pid| rss_mb(pid, &timeline)),
        sending: None,
        draining: Some(Phase::between(&before, &after)),
    };
    print_load(&report);
    Ok(report)
}

/// Waits until the machine, the daemon aside, has been nearly idle for 2 s, or `limit` passed.
async fn wait_quiet(pid: Option<u32>, limit: Duration) {
    let until = Instant::now() + limit;
    loop {
        let before = Snapshot::take(pid);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let phase = Phase::between(&before, &Snapshot::take(pid));
        let busy = phase.machine_busy_cores - phase.daemon_cores;
        if busy < 0.2 {
            return;
        }
        if Instant::now() > until {
            eprintln!("the machine is still busy ({busy:.2} cores outside the daemon); starting anyway");
            return;
        }
        eprintln!("waiting for a quiet machine: {busy:.2} cores busy outside the daemon");
    }
}

fn rss_mb(pid: u32, timeline: &[Point]) -> (f64, f64) {
    let sampled = timeline.iter().map(|p| p.rss_kb).max().unwrap_or(0) as f64 / 1024.0;
    (sampled, proc_status_kb(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0)
}

/// One look at the store, the queue and the daemon.
struct Point {
    at: Instant,
    applied: u64,
    backlog: u64,
    rss_kb: u64,
}

/// Reads the daemon's SQLite files (read-only; WAL lets readers run beside the writer).
struct Watcher {
    store: Connection,
    queue: Connection,
    pid: Option<u32>,
}

/// A watcher sampling on its own thread.
struct Watching {
    stop: Arc<AtomicBool>,
    /// Events applied since the watching started.
    applied: Arc<AtomicU64>,
    /// The incoming queue's depth at the last sample.
    backlog: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<Vec<Point>>,
}

impl Watching {
    fn finish(self) -> Vec<Point> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the watcher does not panic")
    }
}

impl Watcher {
    fn open(data_dir: &Path, pid: Option<u32>) -> anyhow::Result<Self> {
        let open = |name: &str| -> anyhow::Result<Connection> {
            let path = data_dir.join(name);
            let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("opening {} read-only (is the daemon running on it?)", path.display()))?;
            conn.busy_timeout(Duration::from_secs(2))?;
            Ok(conn)
        };
        Ok(Self { store: open("kamshub.sqlite3")?, queue: open("queues.sqlite3")?, pid })
    }

    /// The newest `inbound_events` rowid: rows are only ever added, so its growth counts applied
    /// events in O(log n), without scanning a table that grows with every run.
    fn applied_rowid(&self) -> rusqlite::Result<u64> {
        self.store.query_row("SELECT COALESCE(MAX(rowid), 0) FROM inbound_events", [], |r| r.get(0))
    }

    fn backlog(&self) -> rusqlite::Result<u64> {
        self.queue.query_row("SELECT COUNT(*) FROM queue_messages WHERE queue = 'incoming'", [], |r| r.get(0))
    }

    /// A previous run's leftovers would be counted as this run's work: wait until they are gone.
    fn wait_for_empty_backlog(&self, limit: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + limit;
        loop {
            let backlog = self.backlog()?;
            if backlog == 0 {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("the incoming queue still holds {backlog} messages; is the processor running?");
            }
            eprintln!("waiting for a backlog of {backlog} to drain before starting");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Samples every 100 ms on its own thread until finished.
    fn spawn(self) -> anyhow::Result<Watching> {
        let base = self.applied_rowid()?;
        let stop = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(AtomicU64::new(0));
        let backlog = Arc::new(AtomicU64::new(self.backlog()?));
        let (s, a, b) = (Arc::clone(&stop), Arc::clone(&applied), Arc::clone(&backlog));
        let handle = std::thread::spawn(move || {
            let mut points = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let at = Instant::now();
                let applied = self.applied_rowid().unwrap_or(base).saturating_sub(base);
                a.store(applied, Ordering::Relaxed);
                let backlog = self.backlog().unwrap_or(u64::MAX);
                b.store(backlog, Ordering::Relaxed);
                let rss_kb = self.pid.and_then(|pid| proc_status_kb(pid, "VmRSS:")).unwrap_or(0);
                points.push(Point { at, applied, backlog, rss_kb });
                std::thread::sleep(Duration::from_millis(100).saturating_sub(at.elapsed()));
            }
            // A last look, so the final count is read after whatever the loop's last look raced with.
            let applied = self.applied_rowid().unwrap_or(base).saturating_sub(base);
            let last = points.last().map_or((0, 0), |p| (p.backlog, p.rss_kb));
            points.push(Point { at: Instant::now(), applied, backlog: last.0, rss_kb: last.1 });
            points
        });
        Ok(Watching { stop, applied, backlog, handle })
    }
}

/// CPU and disk counters at one instant.
struct Snapshot {
    at: Instant,
    /// Daemon tid → (name, CPU ns).
    threads: HashMap<u32, (String, u64)>,
    /// disk → (flushes, writes, sectors written).
    disks: HashMap<String, (u64, u64, u64)>,
    /// This process's CPU seconds.
    own_cpu: f64,
    /// The machine's busy and stolen CPU seconds.
    machine: (f64, f64),
}

impl Snapshot {
    fn take(pid: Option<u32>) -> Self {
        let at = Instant::now();
        Self {
            at,
            threads: pid.map(thread_cpu).unwrap_or_default(),
            disks: disk_counters(),
            own_cpu: own_cpu_secs(),
            machine: machine_cpu_secs(at, *ORIGIN),
        }
    }
}

impl Phase {
    fn between(from: &Snapshot, to: &Snapshot) -> Self {
        let secs = (to.at - from.at).as_secs_f64().max(1e-9);
        let mut threads: Vec<(u32, &str, f64)> = to
            .threads
            .iter()
            .map(|(tid, (name, ns))| {
                let before = from.threads.get(tid).map_or(0, |(_, ns)| *ns);
                (*tid, name.as_str(), ns.saturating_sub(before) as f64 / 1e9 / secs)
            })
            .collect();
        threads.sort_by(|x, y| y.2.total_cmp(&x.2));
        let mut daemon_threads: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        for (_, name, cores) in &threads {
            let entry = daemon_threads.entry((*name).to_owned()).or_default();
            entry.0 += 1;
            entry.1 += cores;
        }
        let daemon_cores: f64 = threads.iter().map(|t| t.2).sum();
        let loadgen_cores = (to.own_cpu - from.own_cpu) / secs;
        let machine_busy_cores = ((to.machine.0 - from.machine.0) / secs).max(0.0);
        Self {
            secs,
            machine_busy_cores,
            steal_cores: (to.machine.1 - from.machine.1) / secs,
            daemon_cores,
            loadgen_cores,
            other_cores: (machine_busy_cores - daemon_cores - loadgen_cores).max(0.0),
            daemon_threads,
            busiest: threads.iter().take(6).map(|(tid, name, cores)| (format!("{tid} {name}"), *cores)).collect(),
            disks: disk_rates(from, to),
        }
    }
}

fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time per thread from `/proc/PID/task/*/schedstat` (ns on CPU).
fn thread_cpu(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return out };
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

/// A fixed instant that machine CPU time is measured against (only differences are used).
static ORIGIN: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

/// Clock ticks per second of `/proc` times (`USER_HZ`, 100 on Linux).
const TICKS: f64 = 100.0;

/// This process's CPU seconds (user + system) from `/proc/self/stat`.
fn own_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / TICKS
}

/// The machine's busy and stolen CPU seconds, from `/proc/stat`. Busy is the CPUs' time minus
/// idle and iowait (both counted exactly on tickless kernels, unlike the tick-sampled busy fields).
fn machine_cpu_secs(at: Instant, origin: Instant) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpus = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count().max(1);
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).map(|v| v.parse().unwrap_or(0)).collect();
    let field = |i: usize| cpu.get(i).copied().unwrap_or(0) as f64 / TICKS;
    // user nice system idle iowait irq softirq steal
    let elapsed = (at - origin).as_secs_f64() * cpus as f64;
    (elapsed - field(3) - field(4), field(7))
}

/// Whole disks (as listed in `/sys/block`): flushes completed, writes completed, sectors written.
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

fn disk_rates(a: &Snapshot, b: &Snapshot) -> BTreeMap<String, DiskRate> {
    let secs = (b.at - a.at).as_secs_f64().max(1e-9);
    b.disks
        .iter()
        .filter_map(|(name, &(flushes, writes, sectors))| {
            let &(f0, w0, s0) = a.disks.get(name)?;
            (writes > w0).then(|| {
                let rate = DiskRate {
                    flushes_per_sec: (flushes - f0) as f64 / secs,
                    writes_per_sec: (writes - w0) as f64 / secs,
                    write_mb_per_sec: (sectors - s0) as f64 * 512.0 / 1e6 / secs,
                };
                (name.clone(), rate)
            })
        })
        .collect()
}

fn print_load(r: &LoadReport) {
    if let Some(s) = &r.send {
        println!("requests sent       {}  (offered {:.0}/s)", s.sent, s.offered_per_sec);
        println!("accepted (200)      {}  ({:.0}/s)", s.accepted, s.accepted_per_sec);
        let errors = if s.errors.is_empty() { "none".to_owned() } else { format!("{:?}", s.errors) };
        println!("errors              {errors}");
        println!("ack latency ms      {}", fmt_percentiles(&s.ack_ms));
        let windows: Vec<String> = s.ack_p99_ms_by_window.iter().map(|p| format!("{p:.1}")).collect();
        println!("ack p99 ms per {WINDOW_SECS} s  {}", windows.join(", "));
        println!("send lag ms         {}  (load generator lateness, included above)", fmt_percentiles(&s.send_lag_ms));
    }
    println!("unique events       {} expected, {} applied", r.expected, r.applied);
    match (r.all_applied_secs, r.processed_per_sec) {
        (Some(secs), Some(rate)) => println!("all applied after   {secs:.2} s  → processed {rate:.0} events/s"),
        _ => println!("all applied after   not reached (processor not running, or the drain timeout passed)"),
    }
    let rate = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.0}/s"));
    println!(
        "apply rate          {} while sending, {} draining; peak backlog {}",
        rate(r.apply_per_sec_sending),
        rate(r.apply_per_sec_draining),
        r.peak_backlog
    );
    if let Some((sampled, hwm)) = r.daemon_rss_mb {
        println!("daemon RSS          peak sampled {sampled:.1} MB, VmHWM {hwm:.1} MB");
    }
    for (name, phase) in [("sending", &r.sending), ("draining", &r.draining)] {
        let Some(p) = phase else { continue };
        println!(
            "CPU {name:<15} {:.1} s: machine {:.2} cores busy (steal {:.2}) = daemon {:.2} + loadgen {:.2} + other {:.2}",
            p.secs, p.machine_busy_cores, p.steal_cores, p.daemon_cores, p.loadgen_cores, p.other_cores
        );
        if !p.daemon_threads.is_empty() {
            let names: Vec<String> =
                p.daemon_threads.iter().map(|(name, (n, cores))| format!("{name} ×{n}: {cores:.2}")).collect();
            println!("  daemon threads    {}", names.join(", "));
            println!("  busiest           {}", fmt_threads(&p.busiest));
        }
        for (disk, d) in &p.disks {
            println!(
                "  disk {disk:<12} {:.0} flushes/s, {:.0} writes/s, {:.1} MB/s",
                d.flushes_per_sec, d.writes_per_sec, d.write_mb_per_sec
            );
        }
    }
}

fn fmt_percentiles(p: &Percentiles) -> String {
    format!("p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}", p.p50, p.p90, p.p99, p.p999, p.max)
}

fn fmt_threads(threads: &[(String, f64)]) -> String {
    threads.iter().map(|(t, c)| format!("{t} {c:.2}")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// Baselines.

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Baseline {
    /// Rows/s into a WAL, synchronous=FULL SQLite file, 100 rows per transaction.
    sqlite_rows_per_sec_batch100: f64,
    /// Rows/s (= commits/s) with one row per transaction.
    sqlite_rows_per_sec_batch1: f64,
    /// A bare axum handler answering 200, closed loop at max rate.
    bare_axum_max_per_sec: f64,
    bare_axum_max_ms: Percentiles,
    /// The same handler under this run's open-loop schedule (`--rate`, `--duration`).
    bare_axum_open_loop: SendStats,
}

async fn run_baselines(args: &Args) -> anyhow::Result<Baseline> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let setup = SetupFile {
        tenant_id: String::new(),
        meta_app_secret: "baseline-secret".into(),
        telegram: vec![TelegramTarget { channel_id: "ch_baseline".into(), webhook_secret: "baseline".into() }],
        messenger: vec![MessengerTarget { channel_id: "ch_baseline".into(), page_id: "100000000000001".into() }],
    };
    let mut generator = Generator::new(&setup, args, seed);
    let body = String::from_utf8_lossy(&generator.telegram_update().body).into_owned();
    let db = args.data_dir.join("loadgen-baseline.sqlite3");
    let secs = args.baseline_secs;
    let (db2, body2) = (db.clone(), body.clone());
    let batch100 = tokio::task::spawn_blocking(move || sqlite_inserts(&db2, 100, secs, &body2)).await??;
    let batch1 = tokio::task::spawn_blocking(move || sqlite_inserts(&db, 1, secs, &body)).await??;
    println!(
        "baseline sqlite     {batch100:.0} rows/s in batches of 100, {batch1:.0} rows/s (= commits/s) one per commit"
    );

    let base = spawn_bare_server()?;
    let client = client(args.max_in_flight)?;
    warm_up(&client, &base, args.baseline_concurrency.min(128)).await;
    let request = Arc::new(generator.telegram_update());
    let (max_rate, max_ms) = closed_loop(&client, &base, &request, args.baseline_concurrency, 5.0).await;
    println!(
        "baseline bare axum  {max_rate:.0} req/s at max rate ({} clients): {}",
        args.baseline_concurrency,
        fmt_percentiles(&max_ms)
    );
    let slots = plan(&mut generator, args)?;
    let (open_loop, _) = send_open_loop(&client, &base, slots, args.max_in_flight).await;
    println!(
        "baseline bare axum  open loop at {}/s: {:.0}/s accepted, {}",
        args.rate,
        open_loop.accepted_per_sec,
        fmt_percentiles(&open_loop.ack_ms)
    );
    Ok(Baseline {
        sqlite_rows_per_sec_batch100: batch100,
        sqlite_rows_per_sec_batch1: batch1,
        bare_axum_max_per_sec: max_rate,
        bare_axum_max_ms: max_ms,
        bare_axum_open_loop: open_loop,
    })
}

/// Inserts rows like a queue message (ids, group, a webhook body) for `secs`, `batch` per commit,
/// into a fresh file with the embedded adapters' pragmas. Returns rows per second.
fn sqlite_inserts(path: &Path, batch: usize, secs: f64, body: &str) -> anyhow::Result<f64> {
    let remove = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    };
    remove();
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE rows (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, group_id TEXT NOT NULL,
                            dedupe_id TEXT NOT NULL, body TEXT NOT NULL)",
    )?;
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO rows (message_id, group_id, dedupe_id, body) VALUES (?1, ?2, ?3, ?4)")?;
            for _ in 0..batch {
                rows += 1;
                insert.execute(rusqlite::params![
                    format!("m{rows}"),
                    format!("g{}", rows % 500),
                    format!("d{rows}"),
                    body
                ])?;
            }
        }
        tx.commit()?;
    }
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    drop(conn);
    remove();
    Ok(rate)
}

/// A bare axum server on its own two-worker runtime (as the daemon has on this machine), on a
/// free port; it answers every webhook route 200 after reading the body.
fn spawn_bare_server() -> anyhow::Result<String> {
    use axum::routing::{get, post};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
        let Ok(runtime) = runtime else { return };
        runtime.block_on(async move {
            let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else { return };
            let _ = tx.send(listener.local_addr().ok());
            let ok = |body: Bytes| async move { axum::Json(json!({"ok": !body.is_empty()})) };
            let router = axum::Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/webhooks/telegram/{channel_id}", post(ok))
                .route("/webhooks/messenger", post(ok));
            let _ = axum::serve(listener, router).await;
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10))?.context("cannot bind the bare server")?;
    Ok(format!("http://{addr}"))
}

/// `clients` loops each posting `request` back to back for `secs`: the handler's max rate.
async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    request: &Arc<Prepared>,
    clients: usize,
    secs: f64,
) -> (f64, Percentiles) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let loops = (0..clients.max(1)).map(|_| {
        let (client, request, latencies) = (client.clone(), Arc::clone(request), Arc::clone(&latencies));
        let url = format!("{base}{}", request.path);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                let at = Instant::now();
                let (name, value) = &request.auth;
                let sent = client.post(&url).header(*name, value).body(request.body.clone()).send().await;
                if let Ok(r) = sent
                    && r.status().is_success()
                    && r.bytes().await.is_ok()
                {
                    mine.push(at.elapsed().as_micros() as u64);
                }
            }
            latencies.lock().expect("not poisoned").extend(mine);
        })
    });
    futures::future::join_all(loops).await;
    let mut all = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (rate, Percentiles::of(&mut all))
}

fn print_ratios(load: &LoadReport, b: &Baseline) {
    println!("ratios to baseline:");
    let Some(send) = &load.send else { return };
    println!("  accepted/s ÷ bare axum max          {:.2}", send.accepted_per_sec / b.bare_axum_max_per_sec);
    println!(
        "  ack p99 ÷ bare axum open-loop p99    {:.1}×",
        send.ack_ms.p99 / b.bare_axum_open_loop.ack_ms.p99.max(1e-3)
    );
    if let Some(p) = load.processed_per_sec {
        println!("  processed/s ÷ SQLite batch-100 rows/s {:.3}", p / b.sqlite_rows_per_sec_batch100);
    }
}

// ---------------------------------------------------------------------------------------------

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn token(rng: &mut StdRng, len: usize) -> String {
    rng.sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
