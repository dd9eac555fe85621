//! Telegram Bot API client: `{base}/bot{token}/{method}`.

use super::{ProviderError, http_client, transport_detail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const PROVIDER: &str = "Telegram";

/// The update types the processor handles; sent as `allowed_updates` in `setWebhook`.
pub const UPDATE_TYPES: &[&str] =
    &["message", "edited_message", "channel_post", "edited_channel_post", "callback_query"];

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
}

impl TelegramClient {
    /// A client for the Bot API at `base` (`https://api.telegram.org`, or a fake in tests).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: http_client() }
    }

    /// `getMe`: checks the token and returns the bot's identity.
    pub async fn get_me(&self, token: &SecretString) -> Result<BotInfo, ProviderError> {
        self.call(token, "getMe", &json!({})).await
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
            "allowed_updates": UPDATE_TYPES,
        });
        let _: bool = self.call(token, "setWebhook", &body).await?;
        Ok(())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        method: &str,
        body: &Value,
    ) -> Result<T, ProviderError> {
        let url = format!("{}/bot{}/{method}", self.base, token.expose_secret());
        let response = self
            .http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable { provider: PROVIDER, detail: transport_detail(e) })?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| ProviderError::Unreachable { provider: PROVIDER, detail: transport_detail(e) })?;
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
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                status,
                code: envelope.error_code,
                description: envelope.description.unwrap_or_else(|| "no description".to_owned()),
                retry_after: envelope.parameters.and_then(|p| p.retry_after),
            });
        }
        let result = envelope.result.unwrap_or(Value::Null);
        serde_json::from_value(result)
            .map_err(|e| ProviderError::Malformed { provider: PROVIDER, detail: format!("{method} result: {e}") })
    }
}
