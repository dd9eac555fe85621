//! Clients for the providers' APIs: [`telegram`] (Bot API) and [`messenger`] (Graph API).
//! Tokens travel in request paths or bodies and never appear in an error: every transport error
//! is stripped of its URL before it is kept.

pub mod messenger;
pub mod messenger_webhook;
pub mod telegram;
pub mod telegram_webhook;

use std::time::Duration;

/// What went wrong talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered and refused (bad token, bad request, ...), in its own words.
    #[error("{provider} refused the request (HTTP {status}{}): {description}", code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Rejected {
        /// `Telegram` or `Meta Graph API`.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// Provider error code (`error_code`, Graph `error.code`).
        code: Option<i64>,
        /// Provider's explanation.
        description: String,
        /// Seconds the provider asked us to wait (429 `retry_after`).
        retry_after: Option<u64>,
    },
    /// The provider could not be reached or timed out; retrying later may succeed.
    #[error("{provider} is unreachable: {detail}")]
    Unreachable {
        /// `Telegram` or `Meta Graph API`.
        provider: &'static str,
        /// Transport error, without the URL.
        detail: String,
    },
    /// The provider answered with something we cannot read.
    #[error("{provider} sent an unexpected answer: {detail}")]
    Malformed {
        /// `Telegram` or `Meta Graph API`.
        provider: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// An HTTP client for provider calls: bounded connect and total times.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("kamshub/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds with static settings")
}

/// A transport error as text, without the URL (which can hold a bot token).
fn transport_detail(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut detail = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    detail
}
