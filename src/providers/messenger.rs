//! Meta Graph API client for Messenger pages: `{graph_api_base}/...`.

use super::{ProviderError, http_client, transport_detail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const PROVIDER: &str = "Meta Graph API";

/// Webhook fields a page is subscribed to: what the processor handles.
pub const SUBSCRIBED_FIELDS: &str = "messages,message_echoes,message_deliveries,message_reads,messaging_postbacks";

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
}

#[derive(Deserialize)]
struct Success {
    success: bool,
}

impl MessengerClient {
    /// A client for the Graph API at `base` (with its version, e.g. `https://graph.facebook.com/v21.0`).
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), http: http_client() }
    }

    /// Subscribes our app to the page's webhook fields. Also proves the page token works.
    pub async fn subscribe_app(&self, page_id: &str, page_token: &SecretString) -> Result<(), ProviderError> {
        let url = format!("{}/{page_id}/subscribed_apps", self.base);
        let form = [("subscribed_fields", SUBSCRIBED_FIELDS), ("access_token", page_token.expose_secret())];
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable { provider: PROVIDER, detail: transport_detail(e) })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| ProviderError::Unreachable { provider: PROVIDER, detail: transport_detail(e) })?;
        if status.is_success() {
            return match serde_json::from_str::<Success>(&text) {
                Ok(Success { success: true }) => Ok(()),
                _ => Err(ProviderError::Malformed {
                    provider: PROVIDER,
                    detail: "subscribed_apps did not answer success".to_owned(),
                }),
            };
        }
        match serde_json::from_str::<GraphErrorBody>(&text) {
            Ok(body) => Err(ProviderError::Rejected {
                provider: PROVIDER,
                status: status.as_u16(),
                code: body.error.code,
                description: body.error.message,
                retry_after: None,
            }),
            Err(_) if status.is_server_error() => {
                Err(ProviderError::Unreachable { provider: PROVIDER, detail: format!("HTTP {}", status.as_u16()) })
            }
            Err(_) => Err(ProviderError::Malformed {
                provider: PROVIDER,
                detail: format!("HTTP {} without a Graph error", status.as_u16()),
            }),
        }
    }
}
