//! Telegram Bot API client: `{base}/bot{token}/{method}`.

use super::send::{SentMessage, TELEGRAM_MAX_TEXT};
use super::telegram_webhook::parse_thread;
use super::{DEFAULT_TIMEOUT, Effect, Provider, ProviderError, ReplyPart, http_client, transport_error};
use crate::domain::inbound::InboundEvent;
use crate::domain::{ChannelId, ChannelKind};
use crate::pipeline::pacing::{PaceKey, PacingLimits};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// The provider name in [`ProviderError`]s from this client; [`super::send::classify`] reads it.
pub const PROVIDER: &str = "Telegram";

/// A Bot API client. Cheap to clone.
#[derive(Clone)]
pub struct TelegramClient {
    base: String,
    http: reqwest::Client,
}

/// What `getMe` says about a bot.
#[derive(Debug, Clone, Deserialize)]
pub struct BotInfo {
    /// Numeric bot id.
    pub id: i64,
    /// The bot's @username (without the @): the channel's external id.
    pub username: String,
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    result: Option<Value>,
    error_code: Option<i64>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
    migrate_to_chat_id: Option<i64>,
}

/// The part of a sent `Message` we keep.
#[derive(Deserialize)]
struct Sent {
    message_id: i64,
}

impl TelegramClient {
    /// A client for the Bot API at `base` (`https://api.telegram.org`, or a fake in tests).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: http_client(DEFAULT_TIMEOUT) }
    }

    /// The same client with another total time per request (default [`DEFAULT_TIMEOUT`]). A send
    /// that outlives it ends as [`ProviderError::Unknown`]; tests shorten it to provoke that.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = http_client(timeout);
        self
    }

    /// `getMe`: checks the token and returns the bot's identity.
    pub async fn get_me(&self, token: &SecretString) -> Result<BotInfo, ProviderError> {
        self.call(token, "getMe", &json!({}), Effect::Idempotent).await
    }

    /// `sendMessage`: sends `text` (at most 4096 characters, see [`super::send::split_text`]) to
    /// `chat_id`, a numeric chat id or an `@channelusername`, in the forum topic
    /// `message_thread_id` if given. With `reply_to_message_id` the message quotes that message, or
    /// goes out unquoted if it was deleted meanwhile.
    ///
    /// Not idempotent: Telegram has no idempotency key, so a timeout after the request was written
    /// is [`ProviderError::Unknown`] and must not be resent blindly.
    pub async fn send_message(
        &self,
        token: &SecretString,
        chat_id: &str,
        message_thread_id: Option<i64>,
        text: &str,
        reply_to_message_id: Option<i64>,
    ) -> Result<SentMessage, ProviderError> {
        let body = send_message_body(chat_id, message_thread_id, text, reply_to_message_id);
        let sent: Sent = self.call(token, "sendMessage", &body, Effect::Delivers).await?;
        Ok(SentMessage { message_id: sent.message_id.to_string() })
    }

    /// `setWebhook` with our URL, the channel's secret token and the update types we handle.
    pub async fn set_webhook(
        &self,
        token: &SecretString,
        url: &str,
        secret: &SecretString,
    ) -> Result<(), ProviderError> {
        let body = json!({
            "url": url,
            "secret_token": secret.expose_secret(),
            // The same list the normaliser handles: `message_reaction` only arrives if named.
            "allowed_updates": super::telegram_webhook::allowed_updates(),
        });
        let _: bool = self.call(token, "setWebhook", &body, Effect::Idempotent).await?;
        Ok(())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        method: &str,
        body: &Value,
        effect: Effect,
    ) -> Result<T, ProviderError> {
        let url = format!("{}/bot{}/{method}", self.base, token.expose_secret());
        let response = self.http.post(url).json(body).send().await.map_err(|e| transport_error(PROVIDER, effect, e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| transport_error(PROVIDER, effect, e))?;
        let envelope: Envelope = serde_json::from_str(&text).map_err(|_| {
            if status >= 500 {
                ProviderError::Unreachable { provider: PROVIDER, detail: format!("HTTP {status}") }
            } else {
                ProviderError::Malformed {
                    provider: PROVIDER,
                    detail: format!("HTTP {status} with a body that is not a Bot API answer"),
                }
            }
        })?;
        if !envelope.ok {
            let (retry_after, migrate_to_chat_id) =
                envelope.parameters.map_or((None, None), |p| (p.retry_after, p.migrate_to_chat_id));
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                status,
                code: envelope.error_code,
                error_subcode: None,
                description: envelope.description.unwrap_or_else(|| "no description".to_owned()),
                retry_after,
                migrate_to_chat_id,
            });
        }
        let result = envelope.result.unwrap_or(Value::Null);
        serde_json::from_value(result)
            .map_err(|e| ProviderError::Malformed { provider: PROVIDER, detail: format!("{method} result: {e}") })
    }
}

#[async_trait]
impl Provider for TelegramClient {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Telegram
    }

    fn max_text_chars(&self) -> usize {
        TELEGRAM_MAX_TEXT
    }

    fn pace_key(&self, limits: &PacingLimits, channel: &ChannelId, thread: &str) -> PaceKey {
        // A forum topic's sends count against its chat's limits.
        pace_key(limits, channel, parse_thread(thread).0)
    }

    async fn send_part(&self, token: &SecretString, part: &ReplyPart<'_>) -> Result<String, ProviderError> {
        let reply_to = part.reply_to.filter(|_| part.index == 0).and_then(message_id_of);
        let (chat, topic) = parse_thread(part.thread);
        let sent = self.send_message(token, chat, topic, part.text, reply_to).await?;
        Ok(message_reference(chat, &sent.message_id))
    }

    fn normalize(&self, payload: &Value) -> Result<InboundEvent, super::messenger_webhook::WebhookError> {
        super::telegram_webhook::normalize(payload)
    }
}

/// How kamshub refers to a Telegram message: `chatId:messageId` (message ids are unique only
/// within a chat).
pub fn message_reference(chat_id: &str, message_id: &str) -> String {
    format!("{chat_id}:{message_id}")
}

/// The message id inside a [`message_reference`].
fn message_id_of(reference: &str) -> Option<i64> {
    reference.rsplit(':').next()?.parse().ok()
}

/// The meters a send to `chat_id` counts against: the bot's, the chat's, and for a group,
/// supergroup or channel (a negative id or an `@username`) the group's per-minute cap too.
pub fn pace_key(limits: &PacingLimits, channel: &ChannelId, chat_id: &str) -> PaceKey {
    let is_group = chat_id.starts_with('-') || chat_id.starts_with('@');
    PaceKey {
        channel: channel.clone(),
        chat: chat_id.to_owned(),
        per_channel: limits.telegram_bot,
        per_chat: limits.telegram_chat,
        per_group: is_group.then_some(limits.telegram_group),
    }
}

/// The `sendMessage` body. A chat id that parses as an integer goes as a JSON number, anything
/// else (`@channelusername`) as a string, as the Bot API expects.
fn send_message_body(
    chat_id: &str,
    message_thread_id: Option<i64>,
    text: &str,
    reply_to_message_id: Option<i64>,
) -> Value {
    let chat_id = chat_id.parse::<i64>().map_or_else(|_| json!(chat_id), |id| json!(id));
    let mut body = json!({ "chat_id": chat_id, "text": text });
    if let Some(topic) = message_thread_id {
        body["message_thread_id"] = json!(topic);
    }
    if let Some(message_id) = reply_to_message_id {
        body["reply_parameters"] = json!({ "message_id": message_id, "allow_sending_without_reply": true });
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SendFailure;
    use crate::providers::send::classify;
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const TOKEN: &str = "123456:secret-canary";
    const SEND_PATH: &str = "/bot123456:secret-canary/sendMessage";

    fn token() -> SecretString {
        SecretString::from(TOKEN)
    }

    /// A fake Bot API answering `sendMessage` with `answer`.
    async fn bot_api(answer: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path(SEND_PATH)).respond_with(answer).mount(&server).await;
        server
    }

    fn refusal(status: u16, description: &str) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .set_body_json(json!({"ok": false, "error_code": status, "description": description}))
    }

    async fn send_fails(answer: ResponseTemplate) -> ProviderError {
        let server = bot_api(answer).await;
        let error =
            TelegramClient::new(&server.uri()).send_message(&token(), "42", None, "hi", None).await.unwrap_err();
        assert!(!error.to_string().contains("secret-canary"), "the token stays out of errors: {error}");
        error
    }

    #[tokio::test]
    async fn a_sent_message_returns_its_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .and(body_json(json!({"chat_id": 42, "text": "hello"})))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "result": {"message_id": 777, "chat": {"id": 42, "type": "private"}, "date": 1700000000, "text": "hello"},
            })))
            .expect(1)
            .mount(&server)
            .await;
        let sent = TelegramClient::new(&server.uri()).send_message(&token(), "42", None, "hello", None).await.unwrap();
        assert_eq!(sent, SentMessage { message_id: "777".to_owned() });
    }

    #[tokio::test]
    async fn a_reply_quotes_the_message_and_a_username_stays_a_string() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .and(body_json(json!({
                "chat_id": "@news",
                "text": "re",
                "reply_parameters": {"message_id": 5, "allow_sending_without_reply": true},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {"message_id": 6}})))
            .expect(1)
            .mount(&server)
            .await;
        let client = TelegramClient::new(&server.uri());
        assert_eq!(client.send_message(&token(), "@news", None, "re", Some(5)).await.unwrap().message_id, "6");
    }

    #[test]
    fn negative_group_ids_go_as_numbers() {
        assert_eq!(
            send_message_body("-1001234567890", None, "x", None),
            json!({"chat_id": -1001234567890_i64, "text": "x"})
        );
    }

    #[tokio::test]
    async fn a_reply_to_a_forum_topic_goes_to_its_topic_and_refers_to_its_chat() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(SEND_PATH))
            .and(body_json(json!({
                "chat_id": -1001987654321_i64,
                "message_thread_id": 77,
                "text": "on it",
                "reply_parameters": {"message_id": 78, "allow_sending_without_reply": true},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {"message_id": 79}})))
            .expect(1)
            .mount(&server)
            .await;
        let client = TelegramClient::new(&server.uri());
        let send_id = crate::domain::SendId::parse("k").unwrap();
        let part = ReplyPart {
            thread: "-1001987654321:topic:77",
            text: "on it",
            index: 0,
            reply_to: Some("-1001987654321:78"),
            send_id: &send_id,
        };
        let reference = client.send_part(&token(), &part).await.unwrap();
        assert_eq!(reference, "-1001987654321:79", "the chat's message reference, as webhooks name it");
        let key = client.pace_key(&PacingLimits::default(), &ChannelId::generate(), part.thread);
        assert_eq!(key.chat, "-1001987654321", "paced as its chat");
    }

    #[tokio::test]
    async fn set_webhook_subscribes_to_exactly_the_updates_the_normaliser_handles() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/bot123456:secret-canary/setWebhook"))
            .and(body_json(json!({
                "url": "https://inbox.example.com/webhooks/telegram/chn_1",
                "secret_token": "s3cret",
                "allowed_updates": ["message", "edited_message", "channel_post", "edited_channel_post",
                    "callback_query", "message_reaction", "my_chat_member"],
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
            .expect(1)
            .mount(&server)
            .await;
        let client = TelegramClient::new(&server.uri());
        let secret = SecretString::from("s3cret");
        client.set_webhook(&token(), "https://inbox.example.com/webhooks/telegram/chn_1", &secret).await.unwrap();
        for update in super::super::telegram_webhook::allowed_updates() {
            let handled = super::super::telegram_webhook::normalize(&json!({ "update_id": 1, update: {} }));
            assert!(
                !matches!(handled, Ok(InboundEvent::Ignored { ref reason }) if reason.starts_with("unsupported")),
                "{update} is subscribed but not handled"
            );
        }
    }

    #[tokio::test]
    async fn flood_control_waits_as_told() {
        let answer = ResponseTemplate::new(429).set_body_json(json!({
            "ok": false,
            "error_code": 429,
            "description": "Too Many Requests: retry after 2",
            "parameters": {"retry_after": 2},
        }));
        assert_eq!(classify(&send_fails(answer).await), SendFailure::RetryAfter(Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn a_bad_gateway_is_retried() {
        let error = send_fails(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>")).await;
        assert!(matches!(error, ProviderError::Unreachable { .. }), "{error:?}");
        assert!(matches!(classify(&error), SendFailure::Transient(_)));
    }

    #[tokio::test]
    async fn a_blocked_bot_fails_for_good() {
        let error = send_fails(refusal(403, "Forbidden: bot was blocked by the user")).await;
        let SendFailure::Permanent { code, description, needs_reauth } = classify(&error) else {
            panic!("blocked is permanent: {error:?}");
        };
        assert_eq!((code, needs_reauth), (Some(403), false));
        assert_eq!(description, "Forbidden: bot was blocked by the user");
    }

    #[tokio::test]
    async fn a_revoked_token_needs_new_credentials() {
        let error = send_fails(refusal(401, "Unauthorized")).await;
        assert!(matches!(classify(&error), SendFailure::Permanent { needs_reauth: true, .. }), "{error:?}");
    }

    #[tokio::test]
    async fn a_migrated_group_moves_the_conversation_to_the_supergroup() {
        let answer = ResponseTemplate::new(400).set_body_json(json!({
            "ok": false,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -1009876543210_i64},
        }));
        let SendFailure::Moved { thread, description } = classify(&send_fails(answer).await) else {
            panic!("a migration moves the conversation");
        };
        assert_eq!(thread, "-1009876543210");
        assert!(description.contains("upgraded to a supergroup"), "{description}");
    }

    #[tokio::test]
    async fn no_answer_after_sending_is_an_unknown_outcome() {
        let server = bot_api(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"message_id": 1}}))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let client = TelegramClient::new(&server.uri()).with_timeout(Duration::from_millis(300));
        let error = client.send_message(&token(), "42", None, "hi", None).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unknown { .. }), "{error:?}");
        assert!(matches!(classify(&error), SendFailure::Unknown(_)));
        assert!(!error.to_string().contains("secret-canary"), "{error}");
        assert_eq!(server.received_requests().await.unwrap().len(), 1, "the request did reach the provider");
    }

    #[tokio::test]
    async fn a_closed_port_was_never_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = TelegramClient::new(&base).with_timeout(Duration::from_secs(2));
        let error = client.send_message(&token(), "42", None, "hi", None).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unreachable { .. }), "{error:?}");
        assert!(matches!(classify(&error), SendFailure::Transient(_)));
        assert!(error.to_string().starts_with("Telegram is unreachable"), "{error}");
        assert!(!error.to_string().contains("secret-canary"), "{error}");
    }

    #[tokio::test]
    async fn a_timeout_on_an_idempotent_call_stays_unreachable() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/bot123456:secret-canary/getMe"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let client = TelegramClient::new(&server.uri()).with_timeout(Duration::from_millis(300));
        let error = client.get_me(&token()).await.unwrap_err();
        assert!(matches!(error, ProviderError::Unreachable { .. }), "getMe is safe to repeat: {error:?}");
    }
}
