//! A fake Telegram Bot API (`sendMessage`) that counts every delivery, answers a share of calls
//! with 429, 5xx or a hang, and at chosen calls orders the sender killed: while it holds the
//! answer (the send went out, the sender never learns it) or the moment it answers (the kill
//! lands between the provider's answer and the outbox update, or just after it).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How the fake answers the calls that are not crash points.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Share of calls answered 429 with `retry_after` 1 (nothing delivered).
    pub rate_limited: f64,
    /// Share answered 502 Bad Gateway (nothing delivered).
    pub server_error: f64,
    /// Calls (numbered from 1) that answer only after the client's timeout; every other one of
    /// them is delivered first.
    pub hang_calls: &'static [usize],
    /// How long a hang holds the answer (longer than the daemon's provider timeout).
    pub hang_for: Duration,
    /// At most this many 429s and 502s in a row for one reply (0: no bound). A reply refused as
    /// many times as the sender makes attempts is FAILED by its policy, and its queue message
    /// dead-lettered: right, but not the retries the scenario measures. Unbounded, a 20 % share
    /// refused some reply five times in a row in about one short run in twenty.
    pub max_in_a_row: u32,
}

/// What the fake did at a crash point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashKind {
    /// Delivered, kill ordered, answer held until the sender is gone.
    Held,
    /// Delivered, kill ordered at the same instant as the answer.
    Answered,
}

/// One delivery (a send the customer got).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub chat: String,
    pub text: String,
    pub at: Instant,
}

#[derive(Default)]
pub struct Record {
    pub deliveries: Vec<Delivery>,
    /// Calls by answer: "ok", "429", "502", "hang-delivered", "hang-undelivered", "crash-held",
    /// "crash-answered".
    pub answers: BTreeMap<&'static str, u64>,
    /// When each kill was ordered, and the text of the call that ordered it (if any).
    pub kills: Vec<(Instant, Option<String>)>,
}

struct Shared {
    record: Mutex<Record>,
    calls: AtomicUsize,
    /// Call numbers (1-based) at which to order a kill, with how.
    crash_points: Mutex<BTreeMap<usize, CrashKind>>,
    faults: Faults,
    /// 429s and 502s answered in a row, per reply text.
    refused_in_a_row: Mutex<BTreeMap<String, u32>>,
    kill: Mutex<Option<UnboundedSender<()>>>,
    next_id: AtomicUsize,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeTelegram {
    pub base: String,
    shared: Arc<Shared>,
}

impl FakeTelegram {
    /// Starts the fake on a free port. Calls numbered in `crash_points` order a kill through
    /// `kill` (if given).
    pub async fn start(faults: Faults, crash_points: BTreeMap<usize, CrashKind>) -> FakeTelegram {
        let shared = Arc::new(Shared {
            record: Mutex::default(),
            calls: AtomicUsize::new(0),
            crash_points: Mutex::new(crash_points),
            faults,
            refused_in_a_row: Mutex::default(),
            kill: Mutex::new(None),
            next_id: AtomicUsize::new(1_000_000),
        });
        let router = Router::new().route("/{bot}/sendMessage", post(send_message)).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeTelegram { base, shared }
    }

    /// Where kill orders go from now on.
    pub fn order_kills_to(&self, kill: UnboundedSender<()>) {
        *self.shared.kill.lock().unwrap() = Some(kill);
    }

    /// Stops ordering kills (dropping the sender ends the killer's orders).
    pub fn stop_killing(&self) {
        self.shared.kill.lock().unwrap().take();
    }

    /// Orders one kill now, not tied to a call.
    pub fn kill_now(&self) {
        order_kill(&self.shared, None);
    }

    pub fn take_record(&self) -> Record {
        std::mem::take(&mut *self.shared.record.lock().unwrap())
    }
}

fn order_kill(shared: &Shared, text: Option<String>) {
    if let Some(kill) = shared.kill.lock().unwrap().as_ref()
        && kill.send(()).is_ok()
    {
        shared.record.lock().unwrap().kills.push((Instant::now(), text));
    }
}

async fn send_message(
    State(shared): State<Arc<Shared>>,
    Path(_bot): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    let call = shared.calls.fetch_add(1, Ordering::Relaxed) + 1;
    let chat = body["chat_id"].to_string().trim_matches('"').to_owned();
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let deliver = |answer: &'static str| {
        let mut record = shared.record.lock().unwrap();
        record.deliveries.push(Delivery { chat: chat.clone(), text: text.clone(), at: Instant::now() });
        *record.answers.entry(answer).or_default() += 1;
    };
    let refuse = |answer: &'static str| {
        *shared.record.lock().unwrap().answers.entry(answer).or_default() += 1;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let ok = Json(json!({"ok": true, "result": {"message_id": id, "chat": {"id": chat}, "date": 1_700_000_000}}));
    let crash = shared.crash_points.lock().unwrap().remove(&call);
    match crash {
        Some(CrashKind::Held) => {
            deliver("crash-held");
            order_kill(&shared, Some(text.clone()));
            // The sender is gone long before this answer would reach it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return ok.into_response();
        }
        Some(CrashKind::Answered) => {
            deliver("crash-answered");
            order_kill(&shared, Some(text.clone()));
            return ok.into_response();
        }
        None => {}
    }
    let faults = shared.faults;
    if let Some(n) = faults.hang_calls.iter().position(|&c| c == call) {
        if n % 2 == 0 {
            deliver("hang-delivered");
        } else {
            refuse("hang-undelivered");
        }
        tokio::time::sleep(faults.hang_for).await;
        return ok.into_response();
    }
    // The call's place in a golden-ratio sequence: spread like a uniform draw, but every run of
    // a dozen calls holds both a 429 and a 502 at 10 % each, so a short run cannot miss a fault
    // by chance (a random draw gave no 429 in 29 calls about one run in twenty).
    let roll = (call as f64 * 0.618_033_988_749_895).fract();
    let spared = {
        let mut in_a_row = shared.refused_in_a_row.lock().unwrap();
        let refusals = in_a_row.entry(text.clone()).or_default();
        let refuse = roll < faults.rate_limited + faults.server_error
            && (faults.max_in_a_row == 0 || *refusals < faults.max_in_a_row);
        *refusals = if refuse { *refusals + 1 } else { 0 };
        !refuse
    };
    if spared {
        deliver("ok");
        return ok.into_response();
    }
    if roll < faults.rate_limited {
        refuse("429");
        return (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1}})),
        )
            .into_response();
    }
    if roll < faults.rate_limited + faults.server_error {
        refuse("502");
        return (
            axum::http::StatusCode::BAD_GATEWAY,
            Json(json!({"ok": false, "error_code": 502, "description": "Bad Gateway"})),
        )
            .into_response();
    }
    deliver("ok");
    ok.into_response()
}
