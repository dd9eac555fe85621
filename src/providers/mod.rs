//! Clients for the providers' APIs: [`telegram`] (Bot API) and [`messenger`] (Graph API), and
//! [`send`], which reads a failed send as a retry decision and splits long texts.
//! Tokens travel in request paths, bodies or headers and never appear in an error: every transport
//! error is stripped of its URL before it is kept.

pub mod messenger;
pub mod messenger_webhook;
pub mod send;
pub mod telegram;
pub mod telegram_webhook;

use std::time::Duration;

/// Total time allowed for one provider request unless a client is built `with_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for a TCP/TLS connection. A failure inside it proves the request never left.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered and refused (bad token, bad request, ...), in its own words.
    #[error("{provider} refused the request (HTTP {status}{}): {description}", codes(code, error_subcode))]
    Rejected {
        /// `Telegram` or `Meta Graph API`.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// Provider error code (`error_code`, Graph `error.code`).
        code: Option<i64>,
        /// Graph `error.error_subcode`, which tells apart cases sharing a code (10/2018278: outside
        /// the messaging window). Always `None` for Telegram.
        error_subcode: Option<i64>,
        /// Provider's explanation.
        description: String,
        /// Seconds the provider asked us to wait (429 `retry_after`).
        retry_after: Option<u64>,
        /// Telegram `parameters.migrate_to_chat_id`: the group became a supergroup with this id,
        /// and sends must go there instead.
        migrate_to_chat_id: Option<i64>,
    },
    /// The request never reached the provider (connection refused, DNS, TLS, connect timeout), or
    /// the provider's edge answered 5xx without a readable answer. Retrying later may succeed and
    /// cannot duplicate anything.
    #[error("{provider} is unreachable: {detail}")]
    Unreachable {
        /// `Telegram` or `Meta Graph API`.
        provider: &'static str,
        /// Transport error, without the URL.
        detail: String,
    },
    /// A send was written to the provider but no answer came back (timeout, connection lost while
    /// waiting or reading). The provider may have acted on it: a resend could deliver twice.
    /// Only calls with an effect ([`telegram::TelegramClient::send_message`],
    /// [`messenger::MessengerClient::send_text`]) report this; idempotent calls say `Unreachable`.
    #[error("{provider} may have received the request, but no answer came back: {detail}")]
    Unknown {
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

/// `, code C, subcode S` for the message of [`ProviderError::Rejected`].
fn codes(code: &Option<i64>, subcode: &Option<i64>) -> String {
    let mut out = String::new();
    if let Some(c) = code {
        out.push_str(&format!(", code {c}"));
    }
    if let Some(s) = subcode {
        out.push_str(&format!(", subcode {s}"));
    }
    out
}

/// Whether repeating a request can have a second effect; decides what a transport failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Safe to repeat (`getMe`, `setWebhook`, `subscribed_apps`): every failure is `Unreachable`.
    Idempotent,
    /// Delivers a message: a failure after the request was written is `Unknown`.
    Delivers,
}

/// An HTTP client for provider calls: `timeout` for the whole call, and a connect timeout kept
/// below it, so that a slow connection fails as "connect" (never sent) rather than as a total
/// timeout, which cannot tell whether the request was written.
fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout / 2))
        .timeout(timeout)
        .user_agent(concat!("kamshub/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds with static settings")
}

/// A transport error as a [`ProviderError`]. For a call that [`Effect::Delivers`], only a failure
/// to connect (or to build the request) proves nothing was sent; a timeout or a broken connection
/// after that point leaves the outcome unknown.
fn transport_error(provider: &'static str, effect: Effect, e: reqwest::Error) -> ProviderError {
    let never_sent = e.is_connect() || e.is_builder();
    let detail = transport_detail(e);
    if effect == Effect::Idempotent || never_sent {
        ProviderError::Unreachable { provider, detail }
    } else {
        ProviderError::Unknown { provider, detail }
    }
}

/// A transport error as text, without the URL (which can hold a bot token).
fn transport_detail(e: reqwest::Error) -> String {
    let kind = if e.is_connect() && e.is_timeout() {
        "connect timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
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
