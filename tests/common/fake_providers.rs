//! Fake Telegram and Graph APIs that count every send, with scripted answers (429 with
//! retry_after, 5xx, permanent refusals, a hang past the client timeout after accepting).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One send the fake received (and, unless refused, delivered).
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat: String,
    pub text: String,
    pub metadata: Option<String>,
    pub reply_to: Option<i64>,
    /// Telegram `message_thread_id`: the forum topic it went to.
    pub topic: Option<i64>,
    pub at: Instant,
    pub delivered: bool,
}

/// How the fake answers the next send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    RateLimited(u64),
    ServerError,
    Blocked,
    BadToken,
    /// Accepts (the customer gets it) but answers only after the client has given up.
    AcceptThenHang,
    /// Telegram: the group became this supergroup; nothing delivered.
    Migrated(i64),
    /// Accepts, answering after this long (within the client's timeout).
    AcceptAfter(Duration),
}

#[derive(Default)]
struct State {
    sent: Vec<Sent>,
    script: VecDeque<Answer>,
    next_id: u64,
}

/// A fake provider API: Telegram `sendMessage` and Graph `/me/messages` on one server.
#[derive(Clone)]
pub struct FakeSends {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

struct Responder {
    state: Arc<Mutex<State>>,
    telegram: bool,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let mut state = self.state.lock().unwrap();
        let answer = state.script.pop_front().unwrap_or(Answer::Accept);
        let (chat, text, metadata, reply_to) = if self.telegram {
            (
                body["chat_id"].to_string().trim_matches('"').to_owned(),
                body["text"].as_str().unwrap_or_default().to_owned(),
                None,
                body["reply_parameters"]["message_id"].as_i64(),
            )
        } else {
            let recipient = &body["recipient"];
            let user_ref = recipient["user_ref"].as_str().map(|r| format!("user_ref:{r}"));
            (
                user_ref.unwrap_or_else(|| recipient["id"].as_str().unwrap_or_default().to_owned()),
                body["message"]["text"].as_str().unwrap_or_default().to_owned(),
                body["message"]["metadata"].as_str().map(str::to_owned),
                None,
            )
        };
        let topic = body["message_thread_id"].as_i64();
        let delivered = matches!(answer, Answer::Accept | Answer::AcceptThenHang | Answer::AcceptAfter(_));
        state.sent.push(Sent { chat: chat.clone(), text, metadata, reply_to, topic, at: Instant::now(), delivered });
        // Telegram numbers a chat's messages in one sequence for both sides: start above the
        // inbound ids the tests use.
        state.next_id += 1;
        let id = 100_000 + state.next_id;
        let ok = if self.telegram {
            serde_json::json!({"ok": true, "result": {"message_id": id, "chat": {"id": chat}, "date": 1_700_000_000}})
        } else {
            serde_json::json!({"recipient_id": chat, "message_id": format!("m_out_{id}")})
        };
        let tg_error = |status: u16, description: &str| {
            ResponseTemplate::new(status)
                .set_body_json(serde_json::json!({"ok": false, "error_code": status, "description": description}))
        };
        let graph_error = |status: u16, code: i64, message: &str| {
            ResponseTemplate::new(status).set_body_json(
                serde_json::json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "x"}}),
            )
        };
        match (answer, self.telegram) {
            (Answer::Accept, _) => ResponseTemplate::new(200).set_body_json(ok),
            (Answer::AcceptThenHang, _) => {
                ResponseTemplate::new(200).set_body_json(ok).set_delay(Duration::from_secs(3))
            }
            (Answer::AcceptAfter(delay), _) => ResponseTemplate::new(200).set_body_json(ok).set_delay(delay),
            (Answer::RateLimited(after), true) => ResponseTemplate::new(429).set_body_json(serde_json::json!({
                "ok": false, "error_code": 429, "description": format!("Too Many Requests: retry after {after}"),
                "parameters": {"retry_after": after}
            })),
            (Answer::RateLimited(_), false) => graph_error(400, 613, "Calls to this api have exceeded the rate limit."),
            (Answer::ServerError, true) => tg_error(502, "Bad Gateway"),
            (Answer::ServerError, false) => graph_error(500, 2, "An unexpected error has occurred."),
            (Answer::Blocked, true) => tg_error(403, "Forbidden: bot was blocked by the user"),
            (Answer::Blocked, false) => graph_error(400, 551, "This person isn't available right now."),
            (Answer::BadToken, true) => tg_error(401, "Unauthorized"),
            (Answer::BadToken, false) => {
                graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
            }
            (Answer::Migrated(to), _) => ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "ok": false, "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": to}
            })),
        }
    }
}

impl FakeSends {
    pub async fn start() -> FakeSends {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(method("POST"))
            .and(path_regex(r"^/bot[^/]+/sendMessage$"))
            .respond_with(Responder { state: Arc::clone(&state), telegram: true })
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/me/messages"))
            .respond_with(Responder { state: Arc::clone(&state), telegram: false })
            .mount(&server)
            .await;
        FakeSends { server: Arc::new(server), state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Answers the next sends in this order, then accepts.
    pub fn script(&self, answers: &[Answer]) {
        self.state.lock().unwrap().script.extend(answers.iter().copied());
    }

    /// Every send received so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.state.lock().unwrap().sent.clone()
    }

    /// The texts delivered to `chat`, in order.
    pub fn delivered_to(&self, chat: &str) -> Vec<String> {
        self.sent().into_iter().filter(|s| s.delivered && s.chat == chat).map(|s| s.text).collect()
    }
}
