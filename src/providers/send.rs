//! What a send returns, what a failed send means for the sender ([`classify`]), and how a long
//! reply is cut to the providers' length limits ([`split_text`]). Pure: no I/O here.

use super::{ProviderError, messenger};
use crate::domain::SendFailure;
use std::time::Duration;

/// Longest `sendMessage` text, in characters (Unicode scalar values).
pub const TELEGRAM_MAX_TEXT: usize = 4096;

/// Longest Messenger `message.text`, in characters.
pub const MESSENGER_MAX_TEXT: usize = 2000;

/// Wait after a Telegram 429 that names no `retry_after` (Telegram normally always does).
pub const TELEGRAM_DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Wait after a Graph app-level rate limit (code 4 "Application request limit reached", 613
/// "Calls to this api have exceeded the rate limit"): these count every page of the app over a
/// rolling window and Graph names no time, so probe again after a minute.
pub const GRAPH_APP_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Wait after a Graph page-level rate limit (code 32 page request limit, 80006 Messenger
/// throughput limit on the page or thread) that names no time in `X-Business-Use-Case-Usage`.
pub const GRAPH_PAGE_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Longest wait a provider's rate-limit answer is honoured for. A 429's `retry_after` (seconds)
/// and Graph's `estimated_time_to_regain_access` (minutes) are the provider's numbers: an absurd
/// one must not park a reply for days, or overflow a timestamp. After this long the sender tries
/// again; a provider still limiting answers with its then-current wait (the attempt counts).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// Shortest wait after a rate-limit answer: a `retry_after` of 0 would retry at once, in a loop.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// A provider-given wait within [`MIN_RETRY_AFTER`] and [`MAX_RETRY_AFTER`].
fn bounded_wait(wait: Duration) -> SendFailure {
    SendFailure::RetryAfter(wait.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER))
}

/// A message the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The provider's id for it (Telegram `message_id` in the chat, Messenger `mid`): stored as
    /// the outbound message's provider id, and how echoes and replies are matched to it.
    pub message_id: String,
}

/// Reads a failed send as a [`SendFailure`].
///
/// Telegram (by HTTP status, since `error_code` mirrors it):
/// - a `migrate_to_chat_id` answer is `Moved` to the new chat id: the group became a supergroup,
///   nothing was delivered, and the conversation continues there;
/// - 429 is `RetryAfter(retry_after)`, bounded by [`MIN_RETRY_AFTER`] and [`MAX_RETRY_AFTER`];
///   5xx is `Transient`;
/// - 401 (token revoked) and 404 (no such bot: the token is wrong) are `Permanent` with `needs_reauth`;
/// - any other 4xx (403 blocked or kicked, 400 chat not found or message too long) is `Permanent`.
///
/// Graph (by `error.code` and `error_subcode`):
/// - 190 (invalid or expired token) is `Permanent` with `needs_reauth`;
/// - 4 and 613 (app-level) and 32 and 80006 (page-level) are `RetryAfter`, using the time in
///   `X-Business-Use-Case-Usage` when Graph sent one (bounded like Telegram's), else
///   [`GRAPH_APP_LIMIT_RETRY_AFTER`] or [`GRAPH_PAGE_LIMIT_RETRY_AFTER`];
/// - 1 (unknown), 2 (temporary), 1200 (temporary send failure) and any HTTP 5xx are `Transient`;
/// - 10 with subcode 2018278 (outside the messaging window), 551 (person unavailable) and any
///   other error are `Permanent`.
///
/// Transport: `Unreachable` (never sent, or a 5xx without a readable answer) is `Transient`;
/// `Unknown` and `Malformed` are `Unknown`, because the message may already be out.
pub fn classify(error: &ProviderError) -> SendFailure {
    match error {
        ProviderError::Rejected { provider, .. } if *provider == messenger::PROVIDER => classify_graph(error),
        ProviderError::Rejected { .. } => classify_telegram(error),
        ProviderError::Unreachable { .. } => SendFailure::Transient(error.to_string()),
        ProviderError::Unknown { .. } | ProviderError::Malformed { .. } => SendFailure::Unknown(error.to_string()),
    }
}

/// Telegram's rules (by HTTP status, which Telegram's `error_code` mirrors).
fn classify_telegram(error: &ProviderError) -> SendFailure {
    let ProviderError::Rejected { status, code, description, retry_after, migrate_to_chat_id, .. } = error else {
        unreachable!("only called with Rejected");
    };
    let permanent =
        |needs_reauth| SendFailure::Permanent { code: *code, description: description.clone(), needs_reauth };
    if let Some(new_chat) = migrate_to_chat_id {
        let description = format!("the group became the supergroup {new_chat} ({description})");
        return SendFailure::Moved { thread: new_chat.to_string(), description };
    }
    match status {
        429 => bounded_wait(retry_after.map_or(TELEGRAM_DEFAULT_RETRY_AFTER, Duration::from_secs)),
        500.. => SendFailure::Transient(error.to_string()),
        401 | 404 => permanent(true),
        _ => permanent(false),
    }
}

/// Graph's rules: by `error.code`, then `error_subcode`, then status.
fn classify_graph(error: &ProviderError) -> SendFailure {
    let ProviderError::Rejected { status, code, error_subcode, description, retry_after, .. } = error else {
        unreachable!("only called with Rejected");
    };
    let told = retry_after.map(Duration::from_secs);
    let permanent = |why: &str, needs_reauth| SendFailure::Permanent {
        code: *code,
        description: format!("{why}{description}"),
        needs_reauth,
    };
    match (code, error_subcode) {
        (Some(190), _) => permanent("the page token is invalid or expired: ", true),
        (Some(4 | 613), _) => bounded_wait(told.unwrap_or(GRAPH_APP_LIMIT_RETRY_AFTER)),
        (Some(32 | 80006), _) => bounded_wait(told.unwrap_or(GRAPH_PAGE_LIMIT_RETRY_AFTER)),
        (Some(1 | 2 | 1200), _) => SendFailure::Transient(error.to_string()),
        _ if *status >= 500 => SendFailure::Transient(error.to_string()),
        _ if *status == 429 => bounded_wait(told.unwrap_or(GRAPH_PAGE_LIMIT_RETRY_AFTER)),
        (Some(10), Some(2018278)) => permanent("outside the messaging window: ", false),
        (Some(551), _) => permanent("the person is not available: ", false),
        _ => permanent("", false),
    }
}

/// Cuts `text` into ordered parts of at most `max_chars` characters (Unicode scalar values), for
/// providers that refuse longer texts.
///
/// A cut goes at whitespace when the window holds any: at the last newline if it lies in the
/// second half of the window (so a short first line does not become a tiny message), else at the
/// last whitespace. The whitespace run at a cut is dropped; everything else is kept, so joining
/// the parts with the dropped runs gives back `text`. A word longer than `max_chars` is cut
/// inside. No part is empty; an empty text gives no parts.
///
/// # Panics
/// If `max_chars` is 0.
pub fn split_text(text: &str, max_chars: usize) -> Vec<String> {
    assert!(max_chars > 0, "split_text needs room for at least one character");
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // Byte offset of the first character that does not fit.
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            parts.push(rest.to_owned());
            break;
        };
        let (part, next) = match whitespace_cut(rest, limit, max_chars) {
            Some(cut) => (rest[..cut].trim_end(), rest[cut..].trim_start()),
            None => (&rest[..limit], &rest[limit..]),
        };
        parts.push(part.to_owned());
        rest = next;
    }
    parts
}

/// Where to cut `rest` at whitespace so that the part before holds at most `max_chars` characters
/// (the character at `limit` may itself be the cut), or `None` to cut a word at `limit`.
fn whitespace_cut(rest: &str, limit: usize, max_chars: usize) -> Option<usize> {
    let content_starts = rest.find(|c: char| !c.is_whitespace())?;
    let mut last_newline = None;
    let mut last_space = None;
    for (position, (at, c)) in rest.char_indices().enumerate().take(max_chars + 1) {
        if at <= content_starts || !c.is_whitespace() {
            continue;
        }
        last_space = Some(at);
        if c == '\n' && position >= max_chars / 2 {
            last_newline = Some(at);
        }
    }
    debug_assert!(last_space.is_none_or(|at| at <= limit));
    last_newline.or(last_space)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::telegram;

    fn telegram_refusal(status: u16, description: &str) -> ProviderError {
        ProviderError::Rejected {
            provider: telegram::PROVIDER,
            status,
            code: Some(i64::from(status)),
            error_subcode: None,
            description: description.to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    fn graph_refusal(status: u16, code: i64, subcode: Option<i64>) -> ProviderError {
        ProviderError::Rejected {
            provider: messenger::PROVIDER,
            status,
            code: Some(code),
            error_subcode: subcode,
            description: "graph says no".to_owned(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    fn is_permanent(failure: &SendFailure, reauth: bool) -> bool {
        matches!(failure, SendFailure::Permanent { needs_reauth, .. } if *needs_reauth == reauth)
    }

    #[test]
    fn telegram_refusals_are_read_by_status() {
        let mut flood = telegram_refusal(429, "Too Many Requests: retry after 7");
        if let ProviderError::Rejected { retry_after, .. } = &mut flood {
            *retry_after = Some(7);
        }
        assert_eq!(classify(&flood), SendFailure::RetryAfter(Duration::from_secs(7)));
        assert_eq!(
            classify(&telegram_refusal(429, "Too Many Requests")),
            SendFailure::RetryAfter(TELEGRAM_DEFAULT_RETRY_AFTER)
        );
        assert!(matches!(classify(&telegram_refusal(500, "Internal Server Error")), SendFailure::Transient(_)));
        assert!(is_permanent(&classify(&telegram_refusal(401, "Unauthorized")), true));
        assert!(is_permanent(&classify(&telegram_refusal(404, "Not Found")), true));
        assert!(is_permanent(&classify(&telegram_refusal(403, "Forbidden: bot was blocked by the user")), false));
        assert!(is_permanent(&classify(&telegram_refusal(400, "Bad Request: chat not found")), false));
        assert!(is_permanent(&classify(&telegram_refusal(400, "Bad Request: message is too long")), false));
    }

    #[test]
    fn a_migrated_group_names_the_new_chat() {
        let mut migrated = telegram_refusal(400, "Bad Request: group chat was upgraded to a supergroup chat");
        if let ProviderError::Rejected { migrate_to_chat_id, .. } = &mut migrated {
            *migrate_to_chat_id = Some(-1001234567890);
        }
        let SendFailure::Moved { thread, description } = classify(&migrated) else {
            panic!("a migration moves the conversation");
        };
        assert_eq!(thread, "-1001234567890");
        assert!(description.contains("upgraded to a supergroup"), "keeps Telegram's words: {description}");
    }

    #[test]
    fn graph_refusals_are_read_by_code() {
        assert!(is_permanent(&classify(&graph_refusal(400, 190, Some(463))), true));
        assert_eq!(classify(&graph_refusal(400, 4, None)), SendFailure::RetryAfter(GRAPH_APP_LIMIT_RETRY_AFTER));
        assert_eq!(classify(&graph_refusal(400, 613, None)), SendFailure::RetryAfter(GRAPH_APP_LIMIT_RETRY_AFTER));
        assert_eq!(classify(&graph_refusal(400, 32, None)), SendFailure::RetryAfter(GRAPH_PAGE_LIMIT_RETRY_AFTER));
        assert_eq!(classify(&graph_refusal(400, 80006, None)), SendFailure::RetryAfter(GRAPH_PAGE_LIMIT_RETRY_AFTER));
        assert!(matches!(classify(&graph_refusal(500, 2, None)), SendFailure::Transient(_)));
        assert!(matches!(classify(&graph_refusal(400, 1, None)), SendFailure::Transient(_)));
        assert!(matches!(classify(&graph_refusal(503, 100, None)), SendFailure::Transient(_)));
        assert!(is_permanent(&classify(&graph_refusal(400, 551, None)), false));
        assert!(is_permanent(&classify(&graph_refusal(400, 100, None)), false));
        assert!(is_permanent(&classify(&graph_refusal(403, 10, None)), false));

        let SendFailure::Permanent { description, .. } = classify(&graph_refusal(400, 10, Some(2018278))) else {
            panic!("outside the window is permanent");
        };
        assert!(description.starts_with("outside the messaging window"), "{description}");
    }

    #[test]
    fn a_graph_rate_limit_uses_the_time_graph_names() {
        let mut limited = graph_refusal(400, 80006, None);
        if let ProviderError::Rejected { retry_after, .. } = &mut limited {
            *retry_after = Some(300);
        }
        assert_eq!(classify(&limited), SendFailure::RetryAfter(Duration::from_secs(300)));
    }

    #[test]
    fn provider_waits_are_bounded() {
        let limited = |retry_after| {
            let mut error = telegram_refusal(429, "Too Many Requests");
            if let ProviderError::Rejected { retry_after: r, .. } = &mut error {
                *r = Some(retry_after);
            }
            classify(&error)
        };
        assert_eq!(limited(u64::MAX), SendFailure::RetryAfter(MAX_RETRY_AFTER), "a retry_after of centuries");
        assert_eq!(limited(86_400), SendFailure::RetryAfter(MAX_RETRY_AFTER));
        assert_eq!(limited(0), SendFailure::RetryAfter(MIN_RETRY_AFTER), "zero would retry in a loop");
        let mut graph = graph_refusal(400, 80006, None);
        if let ProviderError::Rejected { retry_after, .. } = &mut graph {
            *retry_after = Some(u64::MAX / 60 * 60); // Graph's minutes, already in seconds
        }
        assert_eq!(classify(&graph), SendFailure::RetryAfter(MAX_RETRY_AFTER));
    }

    #[test]
    fn transport_failures_are_retried_only_when_nothing_was_sent() {
        let never_sent = ProviderError::Unreachable { provider: telegram::PROVIDER, detail: "refused".into() };
        assert!(matches!(classify(&never_sent), SendFailure::Transient(_)));
        let maybe_sent = ProviderError::Unknown { provider: telegram::PROVIDER, detail: "timed out".into() };
        assert!(matches!(classify(&maybe_sent), SendFailure::Unknown(_)));
        let unreadable = ProviderError::Malformed { provider: messenger::PROVIDER, detail: "no message_id".into() };
        assert!(matches!(classify(&unreadable), SendFailure::Unknown(_)));
    }

    #[test]
    fn short_texts_stay_whole() {
        assert_eq!(split_text("", 10), Vec::<String>::new());
        assert_eq!(split_text("hello", 5), ["hello"]);
        assert_eq!(split_text("  indented\n", 20), ["  indented\n"]);
    }

    #[test]
    fn cuts_prefer_a_late_newline_then_a_space() {
        assert_eq!(split_text("first line\nsecond line", 15), ["first line", "second line"]);
        assert_eq!(split_text("aa\nbbb ccc ddd", 10), ["aa\nbbb ccc", "ddd"], "a newline early in the window loses");
        assert_eq!(split_text("one two three", 7), ["one two", "three"], "whitespace right after the limit");
        assert_eq!(split_text("one   \n\n  two", 5), ["one", "two"], "the whole run at a cut goes");
    }

    #[test]
    fn long_words_are_cut_inside() {
        assert_eq!(split_text("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(split_text("ab cdefghijk", 4), ["ab", "cdef", "ghij", "k"]);
        assert_eq!(split_text("   abcdefgh", 5), ["   ab", "cdefg", "h"], "leading space is no cut point");
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let emoji = "😀".repeat(10);
        let parts = split_text(&emoji, 4);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(parts.concat(), emoji);

        let cyrillic = "Привет мир, как дела";
        assert_eq!(split_text(cyrillic, 11), ["Привет мир,", "как дела"]);
        assert_eq!(split_text(&"ж".repeat(TELEGRAM_MAX_TEXT), TELEGRAM_MAX_TEXT).len(), 1);
        assert_eq!(split_text(&"ж".repeat(MESSENGER_MAX_TEXT + 1), MESSENGER_MAX_TEXT).len(), 2);
    }

    /// xorshift64: a small deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Text of words (some longer than any limit) in ASCII, Cyrillic, CJK and emoji, separated by
    /// runs of spaces, newlines and tabs, sometimes with whitespace at either end.
    fn generated_text(rng: &mut Rng) -> String {
        const LETTERS: [char; 8] = ['a', 'z', 'ж', 'Я', '中', '😀', '👍', 'é'];
        const SPACES: [char; 4] = [' ', ' ', '\n', '\t'];
        let mut text = String::new();
        for _ in 0..rng.below(40) {
            let word_len = if rng.below(10) == 0 { 5 + rng.below(40) } else { 1 + rng.below(8) };
            for _ in 0..word_len {
                text.push(LETTERS[rng.below(LETTERS.len())]);
            }
            for _ in 0..rng.below(4) {
                text.push(SPACES[rng.below(SPACES.len())]);
            }
        }
        if rng.below(4) == 0 {
            text.insert(0, SPACES[rng.below(SPACES.len())]);
        }
        text
    }

    /// Checks that `parts` are `text` in order, with only whitespace (or nothing, at a cut inside a
    /// word) between them and after the last.
    fn assert_reassembles(text: &str, parts: &[String], limit: usize) {
        let mut rest = text;
        for (i, part) in parts.iter().enumerate() {
            assert!(!part.is_empty(), "empty part in {parts:?}");
            assert!(part.chars().count() <= limit, "part {i} over {limit}: {part:?}");
            if !rest.starts_with(part.as_str()) {
                let skipped = rest.len() - rest.trim_start().len();
                assert!(i > 0 && skipped > 0, "part {i} {part:?} does not follow in {text:?}");
                rest = &rest[skipped..];
            }
            assert!(rest.starts_with(part.as_str()), "part {i} {part:?} lost text of {text:?} ({parts:?})");
            rest = &rest[part.len()..];
        }
        assert!(rest.trim().is_empty(), "text after the last part: {rest:?} of {text:?}");
        let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(squeeze(&parts.concat()), squeeze(text), "every non-space character is kept");
    }

    #[test]
    fn generated_texts_split_within_limits_and_reassemble() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut split = 0;
        for _ in 0..5000 {
            let text = generated_text(&mut rng);
            let limit = 1 + rng.below(30);
            let parts = split_text(&text, limit);
            assert_reassembles(&text, &parts, limit);
            if text.chars().count() <= limit {
                assert_eq!(parts.len(), usize::from(!text.is_empty()), "a text that fits is one part");
            }
            split += usize::from(parts.len() > 1);
        }
        assert!(split > 3000, "the generator mostly makes texts that need cutting: {split}");
    }

    #[test]
    fn generated_texts_at_provider_limits() {
        let mut rng = Rng(42);
        for _ in 0..50 {
            let text: String = (0..60).map(|_| generated_text(&mut rng)).collect();
            for limit in [MESSENGER_MAX_TEXT, TELEGRAM_MAX_TEXT] {
                assert_reassembles(&text, &split_text(&text, limit), limit);
            }
        }
    }
}
