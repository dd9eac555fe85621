//! Traces of webhooks intake refused or could not use: a counter per reason (plain atomics in
//! [`IntakeStats`], exported as metrics) and a warning in the log, at most one per reason per
//! [`LOG_EVERY`] with the number of others since, so a flood of bad requests cannot flood the
//! log. Never a secret: no header values, no bodies; ids and reasons only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shortest gap between two warnings of the same kind.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters an operator reads to see what intake did. Each counts events (a Messenger POST
/// carries several) except the `rejected_*` ones, which count requests.
#[derive(Debug, Default)]
pub struct IntakeStats {
    /// Events enqueued.
    pub accepted: AtomicU64,
    /// Messenger events for pages no active channel holds (answered 200, dropped).
    pub dropped_unknown_page: AtomicU64,
    /// Webhooks refused for a missing or wrong secret or signature (401/403).
    pub rejected_credentials: AtomicU64,
    /// Webhooks for a channel that does not exist or is of the other provider (404).
    pub rejected_unknown_channel: AtomicU64,
    /// Messenger webhooks received while no Meta app secret is configured (503).
    pub rejected_not_configured: AtomicU64,
    /// Authenticated events intake could not read (not JSON, no `update_id`, nested too deep):
    /// enqueued raw with the reason, recorded as ignored by the processor, answered 200.
    pub unusable: AtomicU64,
    /// Authenticated parts that could not be enqueued at all (a Messenger body that is not a page
    /// webhook, an entry without a page id, an event the queue refuses even encoded): answered
    /// 200 so the provider stops retrying, counted and logged.
    pub dropped: AtomicU64,
}

/// Rate limit of warnings, per kind.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// Whether a warning of `kind` may be written at `now`: `Some(n)` with the number of warnings
    /// of that kind held back since the last one written, or `None` to hold this one back.
    pub fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match last.get_mut(kind) {
            Some((at, held)) if now.saturating_duration_since(*at) < LOG_EVERY => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let since = *held;
                (*at, *held) = (now, 0);
                Some(since)
            }
            None => {
                last.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

/// Adds `n` to a counter.
pub fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_kind_per_interval_with_the_count_held_back() {
        let log = LogLimiter::default();
        let start = Instant::now();
        assert_eq!(log.admit("bad_secret", start), Some(0));
        assert_eq!(log.admit("bad_secret", start + Duration::from_secs(1)), None);
        assert_eq!(log.admit("bad_secret", start + Duration::from_secs(9)), None);
        assert_eq!(log.admit("unknown_channel", start + Duration::from_secs(9)), Some(0), "kinds are apart");
        assert_eq!(log.admit("bad_secret", start + LOG_EVERY), Some(2), "two held back since");
        assert_eq!(log.admit("bad_secret", start + LOG_EVERY), None);
        assert_eq!(log.admit("bad_secret", start + LOG_EVERY * 2), Some(1));
    }
}
