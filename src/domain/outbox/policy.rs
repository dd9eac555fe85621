//! The sender's policy, as pure decisions: what to do with an item whose queue message arrives
//! ([`OutboxItem::on_arrival`]), and what a provider call's result means for the item and for its
//! queue message ([`after_send`]). The sender only carries these decisions out.

use super::{OutboxItem, OutboxStatus, Transition};
use std::time::Duration;
use time::OffsetDateTime;

/// What a failed send means, read from the provider's answer (`providers::send::classify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// Rate limited: retry no sooner than this.
    RetryAfter(Duration),
    /// Nothing was delivered (never sent, or the provider failed before acting): retry with backoff.
    Transient(String),
    /// The provider refused for good (blocked, chat gone, outside the window, bad token): do not retry.
    Permanent {
        /// Provider error code, when it gave one.
        code: Option<i64>,
        /// Why, in the provider's words (prefixed with our reading where that helps an operator).
        description: String,
        /// The channel's token no longer works: the channel needs new credentials, and every
        /// other send on it will fail the same way.
        needs_reauth: bool,
    },
    /// The request may have been delivered (timeout or lost connection after it was written, or an
    /// answer we cannot read). Resending could deliver twice; record it as UNKNOWN.
    Unknown(String),
    /// Nothing was delivered because the conversation moved (a Telegram group became a
    /// supergroup): it continues under `thread`; send there, at once.
    Moved {
        /// The thread the conversation continues under.
        thread: String,
        /// The provider's words.
        description: String,
    },
}

/// How hard the sender tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Provider attempts before an item is FAILED. Must not exceed the queue's
    /// `max_receive_count`, or the queue would dead-letter the message first.
    pub max_attempts: u32,
    /// First delay after a transient failure.
    pub backoff_base: Duration,
    /// Longest delay after a transient failure.
    pub backoff_cap: Duration,
    /// Retries stop once the next attempt would come this long after the item was created
    /// (webhook deliveries: `[webhooks] retry_for_secs`); the item is FAILED then, without the
    /// DLQ. None: only `max_attempts` counts (replies).
    pub give_up_after: Option<Duration>,
}

impl RetryPolicy {
    /// The most attempts that fit in `window` after an item is created, at the shortest waits
    /// the backoff gives (jitter at its least): the first attempt at once, then one after each
    /// wait. How many receives a queue must allow before dead-lettering such an item.
    pub fn attempts_within(&self, window: Duration) -> u32 {
        let (mut elapsed, mut attempts) = (Duration::ZERO, 1u32);
        loop {
            let wait = backoff(attempts, self.backoff_base, self.backoff_cap, 0.0);
            if wait.is_zero() || elapsed + wait > window || attempts == u32::MAX {
                return attempts;
            }
            elapsed += wait;
            attempts += 1;
        }
    }
}

/// What the sender does with an item whose queue message just arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Already final (SENT, FAILED, UNKNOWN): acknowledge, send nothing.
    Skip,
    /// Found SENDING: its sender stopped mid-call. Apply [`Transition::Abandoned`] and acknowledge.
    Abandoned,
    /// A webhook delivery found SENDING: its sender stopped mid-call. Deliveries are at least
    /// once (endpoints deduplicate by `Idempotency-Key`): apply [`Arrival::retry_abandoned`],
    /// then claim it again.
    Resume,
    /// Back before its retry time: hide the message for this long.
    Wait(Duration),
    /// Due: claim it and call the provider.
    Claim,
}

/// What happens to an item's queue message after a provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueAction {
    /// A final outcome is recorded: delete it.
    Delete,
    /// Attempts are spent: move it to the DLQ (the item is FAILED).
    DeadLetter,
    /// Keep it in flight, hidden this long, so the conversation's later replies wait behind it.
    RetryIn(Duration),
}

/// The sender's decision after a provider call.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The item's next step.
    pub transition: Transition,
    /// What to do with its queue message.
    pub queue: QueueAction,
    /// The provider refused the channel's token: flag the channel `needs_reauth`.
    pub needs_reauth: bool,
    /// The conversation continues under this thread: move it (`Store::move_thread`) before the
    /// retry, which then goes there.
    pub move_thread: Option<String>,
}

impl Arrival {
    /// The step that puts an abandoned delivery back to PENDING ([`Arrival::Resume`]).
    pub fn retry_abandoned() -> Transition {
        Transition::Retry {
            error: "the sender stopped during the call; delivering again".into(),
            delay: Duration::ZERO,
            provider_ids: Vec::new(),
        }
    }
}

impl OutboxItem {
    /// The sender's first decision on an item whose queue message arrived at `now`.
    pub fn on_arrival(&self, now: OffsetDateTime) -> Arrival {
        match self.status {
            OutboxStatus::Sent | OutboxStatus::Failed | OutboxStatus::Unknown => Arrival::Skip,
            OutboxStatus::Sending if self.delivery().is_some() => Arrival::Resume,
            OutboxStatus::Sending => Arrival::Abandoned,
            OutboxStatus::Pending | OutboxStatus::Enqueued => match self.next_attempt_at {
                Some(at) if at > now => Arrival::Wait((at - now).unsigned_abs()),
                _ => Arrival::Claim,
            },
        }
    }
}

/// Decides what a provider call on the claimed `item` at `now` means: `sent` holds the
/// references of the parts it got out, `failure` what stopped it (None: every part went out).
/// `jitter` in `[0, 1)` spreads transient retries (the sender passes a random number; tests pass
/// a fixed one).
pub fn after_send(
    item: &OutboxItem,
    sent: Vec<String>,
    failure: Option<SendFailure>,
    policy: &RetryPolicy,
    jitter: f64,
    now: OffsetDateTime,
) -> Decision {
    let decided = |transition, queue| Decision { transition, queue, needs_reauth: false, move_thread: None };
    match failure {
        None => decided(Transition::Sent { provider_ids: sent }, QueueAction::Delete),
        Some(SendFailure::RetryAfter(delay)) => retry_or_fail(item, sent, delay, "rate limited", policy, now),
        Some(SendFailure::Transient(why)) => {
            let delay = backoff(item.attempts, policy.backoff_base, policy.backoff_cap, jitter);
            retry_or_fail(item, sent, delay, &why, policy, now)
        }
        Some(SendFailure::Permanent { code, description, needs_reauth }) => {
            let error = match code {
                Some(code) => format!("code {code}: {description}"),
                None => description,
            };
            Decision {
                transition: Transition::Fail { error, provider_ids: sent },
                queue: QueueAction::Delete,
                needs_reauth,
                move_thread: None,
            }
        }
        Some(SendFailure::Moved { thread, description }) => {
            let why = format!("the conversation moved to {thread}: {description}");
            Decision { move_thread: Some(thread), ..retry_or_fail(item, sent, Duration::ZERO, &why, policy, now) }
        }
        Some(SendFailure::Unknown(why)) => {
            let error =
                format!("outcome unknown ({why}); policy: not resent automatically, `kamshub outbox retry` resends");
            decided(Transition::Unknown { error, provider_ids: sent }, QueueAction::Delete)
        }
    }
}

/// Another attempt after `delay`, unless the attempts are spent (then FAILED and the DLQ) or the
/// next attempt would come after the policy's `give_up_after` (then FAILED without the DLQ: the
/// item's record is what its owner inspects, and a webhook delivery is replayed from there).
fn retry_or_fail(
    item: &OutboxItem,
    sent: Vec<String>,
    delay: Duration,
    why: &str,
    policy: &RetryPolicy,
    now: OffsetDateTime,
) -> Decision {
    if let Some(window) = policy.give_up_after
        && now + delay > item.created_at + window
    {
        let until = crate::domain::view::rfc3339(item.created_at + window);
        let error = format!("gave up after {} attempts (retries end {until}); last: {why}", item.attempts);
        return Decision {
            transition: Transition::Fail { error, provider_ids: sent },
            queue: QueueAction::Delete,
            needs_reauth: false,
            move_thread: None,
        };
    }
    if item.attempts >= policy.max_attempts {
        let error = format!("attempts exhausted after {} tries; last: {why}", item.attempts);
        return Decision {
            transition: Transition::Fail { error, provider_ids: sent },
            queue: QueueAction::DeadLetter,
            needs_reauth: false,
            move_thread: None,
        };
    }
    Decision {
        transition: Transition::Retry { error: why.to_owned(), delay, provider_ids: sent },
        queue: QueueAction::RetryIn(delay),
        needs_reauth: false,
        move_thread: None,
    }
}

/// Capped exponential backoff with jitter: base × 2^(attempt−1), then 50–100 % of it.
fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(cap);
    ceiling.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::now;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(10),
        give_up_after: None,
    };

    fn claimed(attempts: u32) -> OutboxItem {
        let mut item = super::super::test_item(OutboxStatus::Sending);
        item.attempts = attempts;
        item
    }

    fn permanent(needs_reauth: bool) -> SendFailure {
        SendFailure::Permanent { code: Some(403), description: "blocked".into(), needs_reauth }
    }

    fn failure_kind(case: &str) -> &str {
        if case.contains("Moved") { "Moved" } else { "other" }
    }

    /// The decision table: every provider result, with attempts left and with attempts spent.
    #[test]
    fn decision_table() {
        use QueueAction::*;
        let transient = || Some(SendFailure::Transient("HTTP 502".into()));
        let rate_limited = || Some(SendFailure::RetryAfter(Duration::from_secs(7)));
        let unknown = || Some(SendFailure::Unknown("timed out".into()));
        let moved = || Some(SendFailure::Moved { thread: "-1002003004005".into(), description: "upgraded".into() });
        // (attempts so far, result, expected target status, expected queue action, needs_reauth)
        let table: Vec<(u32, Option<SendFailure>, OutboxStatus, QueueAction, bool)> = vec![
            (1, None, OutboxStatus::Sent, Delete, false),
            (3, None, OutboxStatus::Sent, Delete, false),
            (1, rate_limited(), OutboxStatus::Pending, RetryIn(Duration::from_secs(7)), false),
            (3, rate_limited(), OutboxStatus::Failed, DeadLetter, false),
            (1, transient(), OutboxStatus::Pending, RetryIn(Duration::from_millis(750)), false),
            (2, transient(), OutboxStatus::Pending, RetryIn(Duration::from_millis(1500)), false),
            (3, transient(), OutboxStatus::Failed, DeadLetter, false),
            (1, Some(permanent(false)), OutboxStatus::Failed, Delete, false),
            (1, Some(permanent(true)), OutboxStatus::Failed, Delete, true),
            (3, Some(permanent(false)), OutboxStatus::Failed, Delete, false),
            (1, unknown(), OutboxStatus::Unknown, Delete, false),
            (3, unknown(), OutboxStatus::Unknown, Delete, false),
            (1, moved(), OutboxStatus::Pending, RetryIn(Duration::ZERO), false),
            (3, moved(), OutboxStatus::Failed, DeadLetter, false),
        ];
        for (attempts, failure, status, queue, reauth) in table {
            let case = format!("attempt {attempts}, {failure:?}");
            let decision = after_send(&claimed(attempts), vec![], failure, &POLICY, 0.5, now());
            assert_eq!(decision.transition.target(), status, "{case}");
            assert_eq!(decision.queue, queue, "{case}");
            assert_eq!(decision.needs_reauth, reauth, "{case}");
            let moves = matches!(failure_kind(&case), "Moved");
            assert_eq!(decision.move_thread.as_deref(), moves.then_some("-1002003004005"), "{case}");
            let mut item = claimed(attempts);
            item.apply(&decision.transition, crate::domain::now()).expect("every decision applies to a claimed item");
        }
    }

    #[test]
    fn errors_say_what_happened_and_the_policy() {
        let error_of = |d: Decision| match d.transition {
            Transition::Fail { error, .. } | Transition::Unknown { error, .. } | Transition::Retry { error, .. } => {
                error
            }
            other => panic!("no error in {other:?}"),
        };
        let spent =
            after_send(&claimed(3), vec![], Some(SendFailure::Transient("HTTP 502".into())), &POLICY, 0.0, now());
        assert_eq!(error_of(spent), "attempts exhausted after 3 tries; last: HTTP 502");
        assert_eq!(
            error_of(after_send(&claimed(1), vec![], Some(permanent(false)), &POLICY, 0.0, now())),
            "code 403: blocked"
        );
        let unknown =
            after_send(&claimed(1), vec![], Some(SendFailure::Unknown("timed out".into())), &POLICY, 0.0, now());
        assert!(error_of(unknown).contains("not resent automatically"));
        let limited =
            after_send(&claimed(1), vec![], Some(SendFailure::RetryAfter(Duration::ZERO)), &POLICY, 0.0, now());
        assert_eq!(error_of(limited), "rate limited");
    }

    #[test]
    fn parts_sent_before_a_failure_are_kept() {
        let sent = vec!["1:10".to_owned()];
        let decision =
            after_send(&claimed(1), sent.clone(), Some(SendFailure::Transient("x".into())), &POLICY, 0.0, now());
        assert!(matches!(decision.transition, Transition::Retry { provider_ids, .. } if provider_ids == sent));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_between_half_and_all() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(backoff(1, base, cap, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(30, base, cap, 1.0), cap);
    }

    #[test]
    fn arrival_depends_on_status_and_retry_time() {
        let now = crate::domain::now();
        let at = |status, next: Option<i64>| {
            let mut item = claimed(1);
            item.status = status;
            item.next_attempt_at = next.map(|s| now + time::Duration::seconds(s));
            item.on_arrival(now)
        };
        for done in [OutboxStatus::Sent, OutboxStatus::Failed, OutboxStatus::Unknown] {
            assert_eq!(at(done, None), Arrival::Skip);
        }
        assert_eq!(at(OutboxStatus::Sending, None), Arrival::Abandoned);
        let mut delivery = super::super::test_delivery(OutboxStatus::Sending, now);
        assert_eq!(delivery.on_arrival(now), Arrival::Resume, "a delivery is at least once");
        delivery.apply(&Arrival::retry_abandoned(), now).unwrap();
        assert_eq!(delivery.on_arrival(now), Arrival::Claim);
        assert_eq!(at(OutboxStatus::Enqueued, None), Arrival::Claim);
        assert_eq!(at(OutboxStatus::Pending, Some(-5)), Arrival::Claim);
        assert_eq!(at(OutboxStatus::Enqueued, Some(5)), Arrival::Wait(Duration::from_secs(5)));
    }

    #[test]
    fn a_delivery_retries_until_its_window_ends_then_fails_without_the_dlq() {
        let t0 = now();
        let mut item = super::super::test_delivery(OutboxStatus::Sending, t0);
        item.attempts = 1;
        let policy = RetryPolicy { max_attempts: 1000, give_up_after: Some(Duration::from_secs(60)), ..POLICY };
        let transient = || Some(SendFailure::Transient("HTTP 500".into()));
        let early = after_send(&item, vec![], transient(), &policy, 0.5, t0);
        assert_eq!(early.queue, QueueAction::RetryIn(Duration::from_millis(750)));
        let late = after_send(&item, vec![], transient(), &policy, 0.5, t0 + time::Duration::seconds(60));
        assert_eq!(late.queue, QueueAction::Delete, "the delivery record keeps it; no DLQ");
        match late.transition {
            Transition::Fail { error, .. } => assert!(error.starts_with("gave up after 1 attempts"), "{error}"),
            other => panic!("{other:?}"),
        }
        let rate_limited = Some(SendFailure::RetryAfter(Duration::from_secs(120)));
        assert_eq!(after_send(&item, vec![], rate_limited, &policy, 0.5, t0).transition.target(), OutboxStatus::Failed);
    }

    #[test]
    fn a_window_holds_the_attempts_of_its_shortest_waits() {
        let policy = |base_ms, cap_s| RetryPolicy {
            max_attempts: 1,
            backoff_base: Duration::from_millis(base_ms),
            backoff_cap: Duration::from_secs(cap_s),
            give_up_after: None,
        };
        // waits 0.5 s, 1 s, 2 s, 4 s: 7.5 s after four of them, the fifth would pass 10 s.
        assert_eq!(policy(1000, 60).attempts_within(Duration::from_secs(10)), 5);
        // The defaults: 5 s doubling to an hour, over a day.
        let day = policy(5000, 3600).attempts_within(Duration::from_secs(86_400));
        assert!((40..=60).contains(&day), "{day}");
    }
}
