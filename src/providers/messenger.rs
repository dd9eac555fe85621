//! Meta Graph API client for Messenger pages: `{graph_api_base}/...`.

use super::send::{MESSENGER_MAX_TEXT, SentMessage};
use super::{DEFAULT_TIMEOUT, Effect, Provider, ProviderError, ReplyPart, http_client, transport_error};
use crate::domain::inbound::InboundEvent;
use crate::domain::{ChannelId, ChannelKind};
use crate::pipeline::pacing::{PaceKey, PacingLimits};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// The provider name in [`ProviderError`]s from this client; [`super::send::classify`] reads it.
pub const PROVIDER: &str = "Meta Graph API";

/// A Graph API client. Cheap to clone.
#[derive(Clone)]
pub struct MessengerClient {
    base: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: String,
    code: Option<i64>,
    error_subcode: Option<i64>,
}

#[derive(Deserialize)]
struct Success {
    success: bool,
}

/// One page of `GET /me/accounts`.
#[derive(Deserialize)]
struct Accounts {
    #[serde(default)]
    data: Vec<Account>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Account {
    id: String,
    #[serde(default)]
    name: String,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    after: Option<String>,
}

/// The most result pages of `/me/accounts` followed (100 pages each): a user managing more is
/// not a Messenger inbox.
const MAX_ACCOUNT_PAGES: usize = 50;

/// A Facebook page a user token manages, with that page's access token.
#[derive(Debug, Clone)]
pub struct ManagedPage {
    /// The page id.
    pub id: String,
    /// The page's name.
    pub name: String,
    /// The page access token Graph hands out for it (absent if the user lacks a task that grants one).
    pub token: Option<SecretString>,
}

/// The Send API's answer: `{recipient_id, message_id}`.
#[derive(Deserialize)]
struct Sent {
    message_id: String,
}

impl MessengerClient {
    /// A client for the Graph API at `base` (with its version, e.g. `https://graph.facebook.com/v21.0`).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: http_client(DEFAULT_TIMEOUT) }
    }

    /// The same client with another total time per request (default [`DEFAULT_TIMEOUT`]). A send
    /// that outlives it ends as [`ProviderError::Unknown`]; tests shorten it to provoke that.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = http_client(timeout);
        self
    }

    /// The pages a Facebook user access token manages (`GET /me/accounts`), each with its page
    /// access token, following Graph's cursor paging to the end. The user token travels in the
    /// `Authorization` header, never in a URL; `paging.next` links (which carry the token in their
    /// query) are not followed as given: the next page is asked for with the `after` cursor.
    pub async fn managed_pages(&self, user_token: &SecretString) -> Result<Vec<ManagedPage>, ProviderError> {
        let effect = Effect::Idempotent;
        let mut pages = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_ACCOUNT_PAGES {
            let mut query = vec![("fields", "id,name,access_token".to_owned()), ("limit", "100".to_owned())];
            if let Some(cursor) = &after {
                query.push(("after", cursor.clone()));
            }
            let request = self.http.get(format!("{}/me/accounts", self.base)).query(&query);
            let (_, text) = call(request.bearer_auth(user_token.expose_secret()), effect).await?;
            let accounts: Accounts = serde_json::from_str(&text).map_err(|e| ProviderError::Malformed {
                provider: PROVIDER,
                detail: format!("/me/accounts answered an unreadable page: {e}"),
            })?;
            pages.extend(accounts.data.into_iter().map(|a| ManagedPage {
                id: a.id,
                name: a.name,
                token: a.access_token.map(SecretString::from),
            }));
            let next = accounts.paging.filter(|p| p.next.is_some()).and_then(|p| p.cursors).and_then(|c| c.after);
            match next {
                Some(cursor) if after.as_ref() != Some(&cursor) => after = Some(cursor),
                _ => return Ok(pages),
            }
        }
        Err(ProviderError::Malformed {
            provider: PROVIDER,
            detail: format!("/me/accounts has more than {MAX_ACCOUNT_PAGES} pages of results"),
        })
    }

    /// Subscribes our app to the page's webhook fields. Also proves the page token works.
    pub async fn subscribe_app(&self, page_id: &str, page_token: &SecretString) -> Result<(), ProviderError> {
        let url = format!("{}/{page_id}/subscribed_apps", self.base);
        // The same list the normaliser handles: subscribed to what it handles, and nothing else.
        let fields = super::messenger_webhook::subscribed_fields();
        let form = [("subscribed_fields", fields.as_str()), ("access_token", page_token.expose_secret())];
        let effect = Effect::Idempotent;
        let (_, text) = call(self.http.post(url).form(&form), effect).await?;
        match serde_json::from_str::<Success>(&text) {
            Ok(Success { success: true }) => Ok(()),
            _ => Err(ProviderError::Malformed {
                provider: PROVIDER,
                detail: "subscribed_apps did not answer success".to_owned(),
            }),
        }
    }

    /// Send API: a text reply (at most 2000 characters, see [`super::send::split_text`]) to the
    /// person `psid`, as `messaging_type: RESPONSE` (inside the 24-hour window). `metadata` (at
    /// most 1000 characters) comes back on the echo webhook, so the echo can be matched to this send.
    ///
    /// The page token goes in the `Authorization: Bearer` header, never in the URL, so no URL
    /// logged by a proxy or kept in an error can hold it. Not idempotent: a timeout after the
    /// request was written is [`ProviderError::Unknown`].
    pub async fn send_text(
        &self,
        page_token: &SecretString,
        psid: &str,
        text: &str,
        metadata: &str,
    ) -> Result<SentMessage, ProviderError> {
        let url = format!("{}/me/messages", self.base);
        // A Chat Plugin visitor has no PSID: their thread is `user_ref:{ref}`, and the Send API
        // addresses them by it.
        let recipient = match psid.strip_prefix(super::messenger_webhook::USER_REF_PREFIX) {
            Some(user_ref) => json!({ "user_ref": user_ref }),
            None => json!({ "id": psid }),
        };
        let body = json!({
            "recipient": recipient,
            "messaging_type": "RESPONSE",
            "message": { "text": text, "metadata": metadata },
        });
        let effect = Effect::Delivers;
        let (status, text) =
            call(self.http.post(url).bearer_auth(page_token.expose_secret()).json(&body), effect).await?;
        // A 2xx we cannot read most likely delivered the message: `Malformed` is classified as
        // an unknown outcome, not as a failure to retry.
        let sent: Sent = serde_json::from_str(&text).map_err(|_| ProviderError::Malformed {
            provider: PROVIDER,
            detail: format!("HTTP {} without a message_id", status.as_u16()),
        })?;
        Ok(SentMessage { message_id: sent.message_id })
    }
}

#[async_trait]
impl Provider for MessengerClient {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Messenger
    }

    fn max_text_chars(&self) -> usize {
        MESSENGER_MAX_TEXT
    }

    fn pace_key(&self, limits: &PacingLimits, channel: &ChannelId, thread: &str) -> PaceKey {
        pace_key(limits, channel, thread)
    }

    /// The reference is the message's `mid`; `send_id` travels as `metadata`, so the echo webhook
    /// names the reply it confirms.
    async fn send_part(&self, token: &SecretString, part: &ReplyPart<'_>) -> Result<String, ProviderError> {
        Ok(self.send_text(token, part.thread, part.text, part.send_id.as_str()).await?.message_id)
    }

    fn normalize(&self, payload: &serde_json::Value) -> Result<InboundEvent, super::messenger_webhook::WebhookError> {
        super::messenger_webhook::normalize(payload)
    }
}

/// The meters a send to the person `psid` counts against: the page's and the thread's.
pub fn pace_key(limits: &PacingLimits, channel: &ChannelId, psid: &str) -> PaceKey {
    PaceKey {
        channel: channel.clone(),
        chat: psid.to_owned(),
        per_channel: limits.messenger_page,
        per_chat: limits.messenger_thread,
        per_group: None,
    }
}

/// Sends a Graph request and reads its answer: the status and body of a 2xx, else the Graph error
/// (with the wait the usage header names). Transport errors say whether the call may have acted.
async fn call(
    request: reqwest::RequestBuilder,
    effect: Effect,
) -> Result<(reqwest::StatusCode, String), ProviderError> {
    let response = request.send().await.map_err(|e| transport_error(PROVIDER, effect, e))?;
    let status = response.status();
    let regain_after = regain_access_after(response.headers());
    let text = response.text().await.map_err(|e| transport_error(PROVIDER, effect, e))?;
    if !status.is_success() {
        return Err(graph_error(status, &text, regain_after));
    }
    Ok((status, text))
}

/// Seconds until Graph lifts a rate limit, from `X-Business-Use-Case-Usage`
/// (`{"<id>": [{"type": ..., "estimated_time_to_regain_access": <minutes>}]}`); `None` when absent or 0.
fn regain_access_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let usage: serde_json::Value = serde_json::from_slice(headers.get("x-business-use-case-usage")?.as_bytes()).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(|entries| entries.as_array())
        .flatten()
        .filter_map(|entry| entry.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| minutes.saturating_mul(60))
}

/// A non-2xx Graph answer as an error: the Graph error when there is one (with `retry_after` from
/// the usage header), else `Unreachable` for a 5xx (an edge or proxy failure) and `Malformed`.
fn graph_error(status: reqwest::StatusCode, text: &str, retry_after: Option<u64>) -> ProviderError {
    match serde_json::from_str::<GraphErrorBody>(text) {
        Ok(GraphErrorBody { error }) => ProviderError::Rejected {
            provider: PROVIDER,
            status: status.as_u16(),
            code: error.code,
            error_subcode: error.error_subcode,
            description: error.message,
            retry_after,
            migrate_to_chat_id: None,
        },
        Err(_) if status.is_server_error() => {
            ProviderError::Unreachable { provider: PROVIDER, detail: format!("HTTP {}", status.as_u16()) }
        }
        Err(_) => ProviderError::Malformed {
            provider: PROVIDER,
            detail: format!("HTTP {} without a Graph error", status.as_u16()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SendFailure;
    use crate::providers::send::classify;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PAGE_TOKEN: &str = "EAAB-page-canary";

    fn page_token() -> SecretString {
        SecretString::from(PAGE_TOKEN)
    }

    fn graph_refusal(status: u16, code: i64, subcode: Option<i64>, message: &str) -> ResponseTemplate {
        let mut error = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Abc"});
        if let Some(subcode) = subcode {
            error["error_subcode"] = json!(subcode);
        }
        ResponseTemplate::new(status).set_body_json(json!({ "error": error }))
    }

    async fn send_fails(answer: ResponseTemplate) -> ProviderError {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/v21.0/me/messages")).respond_with(answer).mount(&server).await;
        let client = MessengerClient::new(&format!("{}/v21.0", server.uri()));
        let error = client.send_text(&page_token(), "psid-1", "hi", "snd_1").await.unwrap_err();
        assert!(!error.to_string().contains("page-canary"), "the token stays out of errors: {error}");
        error
    }

    #[tokio::test]
    async fn managed_pages_follow_the_after_cursor_with_the_token_in_the_header() {
        use wiremock::matchers::query_param;
        let server = MockServer::start().await;
        let next = |after: &str| format!("{}/v21.0/me/accounts?access_token=EAAU-user&after={after}", server.uri());
        Mock::given(method("GET"))
            .and(path("/v21.0/me/accounts"))
            .and(query_param("after", "QVFI2"))
            .and(header("authorization", "Bearer EAAU-user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": [{"id": "202", "name": "Second", "access_token": "EAAP-202", "tasks": ["MESSAGING"]}],
                "paging": {"cursors": {"before": "QVFI2", "after": "QVFI2"}}
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v21.0/me/accounts"))
            .and(header("authorization", "Bearer EAAU-user"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": [{"id": "101", "name": "First", "access_token": "EAAP-101"}],
                "paging": {"cursors": {"before": "QVFI1", "after": "QVFI2"}, "next": next("QVFI2")}
            })))
            .with_priority(10)
            .mount(&server)
            .await;
        let client = MessengerClient::new(&format!("{}/v21.0", server.uri()));
        let pages = client.managed_pages(&SecretString::from("EAAU-user")).await.unwrap();
        let seen: Vec<(&str, &str, &str)> =
            pages.iter().map(|p| (p.id.as_str(), p.name.as_str(), p.token.as_ref().unwrap().expose_secret())).collect();
        assert_eq!(seen, [("101", "First", "EAAP-101"), ("202", "Second", "EAAP-202")]);
        for request in server.received_requests().await.unwrap() {
            assert!(!request.url.as_str().contains("EAAU"), "the user token stays out of URLs: {}", request.url);
        }
    }

    #[tokio::test]
    async fn an_expired_user_token_is_the_providers_refusal() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v21.0/me/accounts"))
            .respond_with(graph_refusal(400, 190, Some(463), "Error validating access token: Session has expired"))
            .mount(&server)
            .await;
        let client = MessengerClient::new(&format!("{}/v21.0", server.uri()));
        let error = client.managed_pages(&SecretString::from("EAAU-user")).await.unwrap_err();
        assert!(matches!(error, ProviderError::Rejected { code: Some(190), .. }), "{error:?}");
        assert!(!error.to_string().contains("EAAU"), "{error}");
    }

    #[tokio::test]
    async fn a_sent_text_returns_its_mid_and_keeps_the_token_out_of_the_url() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v21.0/me/messages"))
            .and(header("authorization", "Bearer EAAB-page-canary"))
            .and(body_json(json!({
                "recipient": {"id": "psid-1"},
                "messaging_type": "RESPONSE",
                "message": {"text": "hello", "metadata": "snd_0123"},
            })))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"recipient_id": "psid-1", "message_id": "m_abc"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let client = MessengerClient::new(&format!("{}/v21.0/", server.uri()));
        let sent = client.send_text(&page_token(), "psid-1", "hello", "snd_0123").await.unwrap();
        assert_eq!(sent, SentMessage { message_id: "m_abc".to_owned() });

        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].url.query(), None, "no access_token in the URL");
        assert!(!requests[0].url.as_str().contains("page-canary"));
    }

    #[tokio::test]
    async fn a_chat_plugin_visitor_is_addressed_by_user_ref() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v21.0/me/messages"))
            .and(body_json(json!({
                "recipient": {"user_ref": "cp_5f1d3a9e"},
                "messaging_type": "RESPONSE",
                "message": {"text": "hello", "metadata": "snd_0124"},
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message_id": "m_def"})))
            .expect(1)
            .mount(&server)
            .await;
        let client = MessengerClient::new(&format!("{}/v21.0/", server.uri()));
        let sent = client.send_text(&page_token(), "user_ref:cp_5f1d3a9e", "hello", "snd_0124").await.unwrap();
        assert_eq!(sent.message_id, "m_def");
    }

    #[tokio::test]
    async fn an_expired_token_needs_new_credentials() {
        let error = send_fails(graph_refusal(400, 190, Some(463), "Error validating access token")).await;
        assert!(error.to_string().contains("code 190"), "{error}");
        assert!(matches!(classify(&error), SendFailure::Permanent { needs_reauth: true, .. }), "{error:?}");
    }

    #[tokio::test]
    async fn outside_the_window_fails_for_good() {
        let error =
            send_fails(graph_refusal(400, 10, Some(2018278), "(#10) This message is sent outside of allowed window."))
                .await;
        assert!(error.to_string().contains("code 10, subcode 2018278"), "{error}");
        let SendFailure::Permanent { code, description, needs_reauth } = classify(&error) else {
            panic!("outside the window is permanent: {error:?}");
        };
        assert_eq!((code, needs_reauth), (Some(10), false));
        assert!(description.contains("outside of allowed window"), "{description}");
    }

    #[tokio::test]
    async fn a_temporary_error_is_retried() {
        let error = send_fails(graph_refusal(500, 2, None, "An unexpected error has occurred.")).await;
        assert!(matches!(classify(&error), SendFailure::Transient(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_rate_limit_waits_the_time_graph_names() {
        let usage = json!({"1234": [{"type": "messenger", "call_count": 100, "estimated_time_to_regain_access": 5}]});
        let answer = graph_refusal(400, 80006, None, "There have been too many messages sent to this Page")
            .insert_header("x-business-use-case-usage", usage.to_string().as_str());
        assert_eq!(classify(&send_fails(answer).await), SendFailure::RetryAfter(Duration::from_secs(300)));

        let usage = json!({"1234": [{"type": "messenger", "estimated_time_to_regain_access": u64::MAX}]});
        let absurd = graph_refusal(400, 80006, None, "There have been too many messages sent to this Page")
            .insert_header("x-business-use-case-usage", usage.to_string().as_str());
        assert_eq!(
            classify(&send_fails(absurd).await),
            SendFailure::RetryAfter(crate::providers::send::MAX_RETRY_AFTER),
            "Graph's minutes are bounded too"
        );

        let app_limit = graph_refusal(400, 4, None, "(#4) Application request limit reached");
        assert_eq!(
            classify(&send_fails(app_limit).await),
            SendFailure::RetryAfter(crate::providers::send::GRAPH_APP_LIMIT_RETRY_AFTER)
        );
    }

    #[tokio::test]
    async fn no_answer_after_sending_is_an_unknown_outcome() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/me/messages"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let client = MessengerClient::new(&server.uri()).with_timeout(Duration::from_millis(300));
        let error = client.send_text(&page_token(), "psid-1", "hi", "snd_1").await.unwrap_err();
        assert!(matches!(classify(&error), SendFailure::Unknown(_)), "{error:?}");
    }

    #[tokio::test]
    async fn an_unreadable_success_is_not_resent() {
        let error = send_fails(ResponseTemplate::new(200).set_body_string("<html>ok</html>")).await;
        assert!(matches!(error, ProviderError::Malformed { .. }), "{error:?}");
        assert!(matches!(classify(&error), SendFailure::Unknown(_)), "the message may be out");
    }
}
