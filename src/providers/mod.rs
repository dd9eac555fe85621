//! What kamshub knows about each provider, behind one abstraction: [`Provider`] (text limit,
//! pacing, message references, sending, webhook normalisation), one per channel kind, found
//! through [`Providers`]. The loops never `match` on a channel kind; they ask its provider.
//!
//! - [`telegram`] (Bot API client) and [`telegram_webhook`] (Update parsing);
//! - [`messenger`] (Graph API client) and [`messenger_webhook`] (page event parsing);
//! - [`send`]: reads a failed send as a [`SendFailure`](crate::domain::SendFailure) and splits
//!   long texts.
//!
//! Tokens travel in request paths, bodies or headers and never appear in an error: every transport
//! error is stripped of its URL before it is kept.

mod json;
pub mod messenger;
pub mod messenger_webhook;
pub mod send;
pub mod telegram;
pub mod telegram_webhook;

pub(crate) use json::lone_surrogates_replaced;

use crate::domain::inbound::InboundEvent;
use crate::domain::{ChannelId, ChannelKind, SendId};
use crate::pipeline::pacing::{PaceKey, PacingLimits};
use async_trait::async_trait;
use messenger::MessengerClient;
use messenger_webhook::WebhookError;
use secrecy::SecretString;
use std::time::Duration;
use telegram::TelegramClient;

/// One provider's rules and API, as the pipelines use them.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The channel kind it serves.
    fn kind(&self) -> ChannelKind;

    /// Longest text one message may carry, in characters; longer replies go out in parts
    /// ([`send::split_text`]).
    fn max_text_chars(&self) -> usize;

    /// The pacing meters a send to `thread` through `channel` counts against, under `limits`.
    fn pace_key(&self, limits: &PacingLimits, channel: &ChannelId, thread: &str) -> PaceKey;

    /// Sends one part of a reply. Returns the reference kamshub stores for the sent message: the
    /// same format the webhook normaliser gives the message's external id, so echoes, receipts
    /// and replies match it.
    async fn send_part(&self, token: &SecretString, part: &ReplyPart<'_>) -> Result<String, ProviderError>;

    /// Reads one webhook event (a Telegram Update; one Messenger `messaging[]` item).
    fn normalize(&self, payload: &serde_json::Value) -> Result<InboundEvent, WebhookError>;
}

/// One part of a reply, as [`Provider::send_part`] sends it.
#[derive(Debug, Clone, Copy)]
pub struct ReplyPart<'a> {
    /// The conversation's thread: Telegram chat id, Messenger PSID.
    pub thread: &'a str,
    /// The part's text (within [`Provider::max_text_chars`]).
    pub text: &'a str,
    /// Position among the reply's parts, from 0.
    pub index: usize,
    /// Reference of the message the reply answers (the first part quotes it).
    pub reply_to: Option<&'a str>,
    /// The reply's sendId (Messenger echoes it back as `metadata`).
    pub send_id: &'a SendId,
}

/// The providers of this process, one per channel kind. Cheap to clone.
#[derive(Clone)]
pub struct Providers {
    telegram: TelegramClient,
    messenger: MessengerClient,
}

impl Providers {
    /// Providers over these clients (base URLs and timeouts are the clients').
    pub fn new(telegram: TelegramClient, messenger: MessengerClient) -> Self {
        Self { telegram, messenger }
    }

    /// The provider of a channel kind.
    pub fn of(&self, kind: ChannelKind) -> &dyn Provider {
        match kind {
            ChannelKind::Telegram => &self.telegram,
            ChannelKind::Messenger => &self.messenger,
        }
    }

    /// The Bot API client, for Telegram-only operations (getMe, setWebhook).
    pub fn telegram(&self) -> &TelegramClient {
        &self.telegram
    }

    /// The Graph API client, for Messenger-only operations (page subscription).
    pub fn messenger(&self) -> &MessengerClient {
        &self.messenger
    }
}

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
