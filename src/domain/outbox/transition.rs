//! The outbox state machine, once: which step may happen in which status, and what it changes.
//!
//! ```text
//! PENDING ──Enqueue──▶ ENQUEUED ──Claim──▶ SENDING ──Sent──▶ SENT
//!    ▲  ╰──────────Claim──────────────────▶   │ ├──Fail────▶ FAILED  ──Resend──▶ PENDING
//!    ╰────────────────Retry───────────────────╯ ├──Unknown─▶ UNKNOWN ──Resend──▶ PENDING
//!                                               ╰─Abandoned▶ UNKNOWN
//!                                                            FAILED  ──Redrive─▶ ENQUEUED
//! ```
//! A provider success is a fact, so `Sent` applies from every status: a sender whose message
//! was taken for abandoned (its visibility lapsed and a redelivery marked the item UNKNOWN), or
//! whose item an operator put back meanwhile, still records SENT with its provider ids; on an
//! item already SENT it adds the ids it does not have.
//!
//! Store adapters load an item, [`OutboxItem::apply`] a [`Transition`], and write the result
//! only if the stored status is still the one they loaded (compare-and-set). Nothing else in
//! kamshub changes an item's status.

use super::{OutboxItem, OutboxStatus};
use crate::domain::MessageStatus;
use crate::domain::event::EventType;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

/// One step of an outbox item's life.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// The relay published it on the send queue: PENDING | ENQUEUED → ENQUEUED (a stuck item is
    /// published again). Keeps its error and retry time.
    Enqueue,
    /// A sender takes it for one provider attempt: PENDING | ENQUEUED → SENDING, attempts + 1.
    Claim,
    /// The provider accepted every part: any status → SENT (a success wins over whatever
    /// happened to the item meanwhile); the outbound message becomes `sent`.
    Sent {
        /// Provider references of the parts sent by this attempt, in order.
        provider_ids: Vec<String>,
    },
    /// Worth another attempt after `delay`: SENDING → PENDING with `next_attempt_at`.
    Retry {
        /// Why this attempt failed.
        error: String,
        /// How long to wait before the next attempt.
        delay: Duration,
        /// Parts this attempt did get out before failing (the next attempt resumes after them).
        provider_ids: Vec<String>,
    },
    /// Given up: SENDING → FAILED; the outbound message becomes `failed`.
    Fail {
        /// Why, in the provider's words or ours.
        error: String,
        /// Parts that did get out.
        provider_ids: Vec<String>,
    },
    /// The provider may have it: SENDING → UNKNOWN. Never resent automatically.
    Unknown {
        /// What happened and the policy applied.
        error: String,
        /// Parts that did get out.
        provider_ids: Vec<String>,
    },
    /// Found SENDING when its queue message came back: its sender stopped during the provider
    /// call, so the outcome is unknown. SENDING → UNKNOWN.
    Abandoned,
    /// An operator asks for a resend (`outbox retry`): FAILED | UNKNOWN → PENDING; the outbound
    /// message is `pending` again. For UNKNOWN this accepts a possible duplicate.
    Resend,
    /// An operator moves its dead-lettered send message back to the send queue (`dlq redrive
    /// send`): FAILED → ENQUEUED, so that message drives one more attempt (the relay publishes
    /// it again only if it gets stuck). UNKNOWN items stay put: they are never resent without
    /// an explicit `outbox retry`.
    Redrive,
}

/// Why [`OutboxItem::apply`] refused a step: the item is in a status the step does not leave from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbox item is {status}; {step} needs {}", names(.allowed))]
pub struct TransitionRefused {
    /// Where the item is.
    pub status: OutboxStatus,
    /// The refused step.
    pub step: &'static str,
    /// Where the step may start.
    pub allowed: &'static [OutboxStatus],
}

fn names(statuses: &[OutboxStatus]) -> String {
    statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ")
}

/// What an applied step asks the store to write besides the item itself, in the same atomic unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// A reply's outbound message's new status (and, once sent, its provider id from the first part).
    pub message_status: Option<MessageStatus>,
    /// A record of a provider attempt for the send log.
    pub log: Option<SendLogEntry>,
    /// The event a reply's step makes (`reply.sent`, ...); webhook deliveries make none.
    pub event: Option<EventType>,
}

/// What became of one provider attempt, as the send log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Every part accepted.
    Sent,
    /// Failed; another attempt is scheduled.
    Retry,
    /// Given up.
    Failed,
    /// Maybe delivered; not resent automatically.
    Unknown,
}

impl SendOutcome {
    /// The stored name (`sent`, `retry`, `failed`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            SendOutcome::Sent => "sent",
            SendOutcome::Retry => "retry",
            SendOutcome::Failed => "failed",
            SendOutcome::Unknown => "unknown",
        }
    }
}

impl fmt::Display for SendOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record of a provider attempt, for the send log.
#[derive(Debug, Clone, PartialEq)]
pub struct SendLogEntry {
    /// Which attempt (1-based).
    pub attempt: u32,
    /// What became of it.
    pub outcome: SendOutcome,
    /// Provider reference of the first part sent by it, if any.
    pub provider_message_id: Option<String>,
    /// The provider's words, or our policy note.
    pub detail: Option<String>,
}

/// The note an abandoned item carries: what an operator reading `outbox show` must know.
const ABANDONED: &str = "the sender stopped during the provider call; outcome unknown, not resent automatically \
                         (`kamshub outbox retry` resends)";

impl Transition {
    /// The statuses this step may start from.
    pub fn allowed_from(&self) -> &'static [OutboxStatus] {
        use OutboxStatus::*;
        match self {
            Transition::Enqueue | Transition::Claim => &[Pending, Enqueued],
            Transition::Sent { .. } => &OutboxStatus::ALL,
            Transition::Retry { .. } | Transition::Fail { .. } | Transition::Unknown { .. } | Transition::Abandoned => {
                &[Sending]
            }
            Transition::Resend => &[Failed, Unknown],
            Transition::Redrive => &[Failed],
        }
    }

    /// The status this step ends in.
    pub fn target(&self) -> OutboxStatus {
        match self {
            Transition::Enqueue | Transition::Redrive => OutboxStatus::Enqueued,
            Transition::Claim => OutboxStatus::Sending,
            Transition::Sent { .. } => OutboxStatus::Sent,
            Transition::Retry { .. } | Transition::Resend => OutboxStatus::Pending,
            Transition::Fail { .. } => OutboxStatus::Failed,
            Transition::Unknown { .. } | Transition::Abandoned => OutboxStatus::Unknown,
        }
    }

    /// The event a reply's step makes: where the reply now is, for inbox clients and webhooks.
    pub fn event(&self) -> Option<EventType> {
        match self {
            Transition::Sent { .. } => Some(EventType::ReplySent),
            Transition::Fail { .. } => Some(EventType::ReplyFailed),
            Transition::Unknown { .. } | Transition::Abandoned => Some(EventType::ReplyUnknown),
            Transition::Resend | Transition::Redrive => Some(EventType::ReplyQueued),
            Transition::Enqueue | Transition::Claim | Transition::Retry { .. } => None,
        }
    }

    /// The step's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Transition::Enqueue => "enqueue",
            Transition::Claim => "claim",
            Transition::Sent { .. } => "sent",
            Transition::Retry { .. } => "retry",
            Transition::Fail { .. } => "fail",
            Transition::Unknown { .. } => "unknown",
            Transition::Abandoned => "abandoned",
            Transition::Resend => "resend",
            Transition::Redrive => "redrive",
        }
    }
}

impl OutboxItem {
    /// Applies `step` at `now`, or refuses it (leaving the item unchanged) when the item's status
    /// is not one the step starts from.
    pub fn apply(&mut self, step: &Transition, now: OffsetDateTime) -> Result<Applied, TransitionRefused> {
        if !step.allowed_from().contains(&self.status) {
            return Err(TransitionRefused { status: self.status, step: step.name(), allowed: step.allowed_from() });
        }
        let attempt = self.attempts;
        let log = |outcome, ids: &[String], detail: Option<String>| {
            Some(SendLogEntry { attempt, outcome, provider_message_id: ids.first().cloned(), detail })
        };
        let mut applied = Applied { message_status: None, log: None, event: None };
        match step {
            Transition::Enqueue => {}
            Transition::Claim => {
                self.attempts += 1;
                self.next_attempt_at = None;
            }
            Transition::Sent { provider_ids } => {
                let new: Vec<String> =
                    provider_ids.iter().filter(|id| !self.provider_message_ids.contains(id)).cloned().collect();
                self.provider_message_ids.extend(new);
                self.last_error = None;
                self.next_attempt_at = None;
                applied.message_status = Some(MessageStatus::Sent);
                applied.log = log(SendOutcome::Sent, provider_ids, None);
            }
            Transition::Retry { error, delay, provider_ids } => {
                self.provider_message_ids.extend(provider_ids.iter().cloned());
                self.last_error = Some(error.clone());
                self.next_attempt_at = Some(later(now, *delay));
                applied.log =
                    log(SendOutcome::Retry, provider_ids, Some(format!("{error}; next attempt in {delay:?}")));
            }
            Transition::Fail { error, provider_ids } => {
                self.provider_message_ids.extend(provider_ids.iter().cloned());
                self.last_error = Some(error.clone());
                self.next_attempt_at = None;
                applied.message_status = Some(MessageStatus::Failed);
                applied.log = log(SendOutcome::Failed, provider_ids, Some(error.clone()));
            }
            Transition::Unknown { error, provider_ids } => {
                self.provider_message_ids.extend(provider_ids.iter().cloned());
                self.last_error = Some(error.clone());
                self.next_attempt_at = None;
                applied.log = log(SendOutcome::Unknown, provider_ids, Some(error.clone()));
            }
            Transition::Abandoned => {
                self.last_error = Some(ABANDONED.to_owned());
                self.next_attempt_at = None;
                applied.log = log(SendOutcome::Unknown, &[], Some("sender stopped mid-call".to_owned()));
            }
            Transition::Resend | Transition::Redrive => {
                self.last_error = None;
                self.next_attempt_at = None;
                applied.message_status = Some(MessageStatus::Pending);
            }
        }
        self.status = step.target();
        self.updated_at = now;
        if self.reply().is_some() {
            applied.event = step.event();
        } else {
            applied.message_status = None;
        }
        Ok(applied)
    }
}

/// `now + delay`, saturating (a delay too long to represent waits a century) instead of
/// panicking.
fn later(now: OffsetDateTime, delay: Duration) -> OffsetDateTime {
    let century = time::Duration::days(36_525);
    let delay = time::Duration::try_from(delay).map_or(century, |d| d.min(century));
    now.checked_add(delay).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OutboxStatus::*;

    fn item(status: OutboxStatus) -> OutboxItem {
        super::super::test_item(status)
    }

    fn every_step() -> Vec<Transition> {
        let ids = vec!["1:2".to_owned()];
        vec![
            Transition::Enqueue,
            Transition::Claim,
            Transition::Sent { provider_ids: ids.clone() },
            Transition::Retry { error: "5xx".into(), delay: Duration::from_secs(3), provider_ids: vec![] },
            Transition::Fail { error: "blocked".into(), provider_ids: vec![] },
            Transition::Unknown { error: "timeout".into(), provider_ids: ids },
            Transition::Abandoned,
            Transition::Resend,
            Transition::Redrive,
        ]
    }

    #[test]
    fn each_step_leaves_only_from_its_statuses_and_a_refusal_changes_nothing() {
        let now = crate::domain::now();
        for step in every_step() {
            for status in OutboxStatus::ALL {
                let mut it = item(status);
                let before = it.clone();
                let result = it.apply(&step, now);
                if step.allowed_from().contains(&status) {
                    assert!(result.is_ok(), "{} from {status}", step.name());
                    assert_eq!(it.status, step.target());
                } else {
                    let refused = result.unwrap_err();
                    assert_eq!(refused.status, status);
                    assert_eq!(it, before, "{} from {status} changed the item", step.name());
                }
            }
        }
    }

    #[test]
    fn final_statuses_leave_only_by_an_operator_resend_redrive_or_a_late_success() {
        let now = crate::domain::now();
        for status in [Sent, Failed, Unknown] {
            let leaving: Vec<_> = every_step()
                .into_iter()
                .filter(|step| item(status).apply(step, now).is_ok())
                .map(|step| step.name())
                .collect();
            let expected: &[&str] = match status {
                Sent => &["sent"],
                Failed => &["sent", "resend", "redrive"],
                _ => &["sent", "resend"],
            };
            assert_eq!(leaving, expected, "from {status}");
        }
    }

    #[test]
    fn a_success_wins_over_an_abandoned_item_and_keeps_its_ids() {
        let now = crate::domain::now();
        let mut it = item(Sending);
        it.apply(&Transition::Abandoned, now).unwrap();
        assert_eq!(it.status, Unknown);
        let applied = it.apply(&Transition::Sent { provider_ids: vec!["9:1".into()] }, now).unwrap();
        assert_eq!(
            (it.status, it.provider_message_ids.as_slice(), it.last_error.as_deref()),
            (Sent, &["9:1".to_owned()][..], None)
        );
        assert_eq!(applied.message_status, Some(MessageStatus::Sent));
        // Recorded twice (a retried write): the ids are not doubled.
        it.apply(&Transition::Sent { provider_ids: vec!["9:1".into()] }, now).unwrap();
        assert_eq!(it.provider_message_ids, ["9:1"]);
    }

    #[test]
    fn a_claim_counts_an_attempt_and_keeps_the_last_error() {
        let mut it = item(Enqueued);
        it.last_error = Some("rate limited".into());
        it.next_attempt_at = Some(crate::domain::now());
        let applied = it.apply(&Transition::Claim, crate::domain::now()).unwrap();
        assert_eq!((it.status, it.attempts), (Sending, 1));
        assert_eq!(it.last_error.as_deref(), Some("rate limited"));
        assert_eq!(it.next_attempt_at, None);
        assert_eq!(applied, Applied { message_status: None, log: None, event: None });
    }

    #[test]
    fn a_retry_schedules_the_next_attempt_and_logs_it() {
        let now = crate::domain::now();
        let mut it = item(Sending);
        it.attempts = 2;
        let step =
            Transition::Retry { error: "rate limited".into(), delay: Duration::from_secs(7), provider_ids: vec![] };
        let applied = it.apply(&step, now).unwrap();
        assert_eq!((it.status, it.next_attempt_at), (Pending, Some(now + Duration::from_secs(7))));
        let log = applied.log.unwrap();
        assert_eq!((log.attempt, log.outcome), (2, SendOutcome::Retry));
        assert!(log.detail.unwrap().starts_with("rate limited; next attempt in 7s"));
    }

    #[test]
    fn sent_parts_accumulate_across_attempts() {
        let now = crate::domain::now();
        let mut it = item(Sending);
        let part_one = Transition::Retry { error: "5xx".into(), delay: Duration::ZERO, provider_ids: vec!["a".into()] };
        it.apply(&part_one, now).unwrap();
        it.apply(&Transition::Claim, now).unwrap();
        let applied = it.apply(&Transition::Sent { provider_ids: vec!["b".into()] }, now).unwrap();
        assert_eq!(it.provider_message_ids, ["a", "b"]);
        assert_eq!(it.last_error, None);
        assert_eq!(applied.message_status, Some(MessageStatus::Sent));
        assert_eq!(applied.log.unwrap().provider_message_id.as_deref(), Some("b"));
    }

    #[test]
    fn message_status_follows_the_item() {
        let now = crate::domain::now();
        let status_after = |from, step: Transition| item(from).apply(&step, now).unwrap().message_status;
        assert_eq!(
            status_after(Sending, Transition::Fail { error: "x".into(), provider_ids: vec![] }),
            Some(MessageStatus::Failed)
        );
        assert_eq!(status_after(Sending, Transition::Unknown { error: "x".into(), provider_ids: vec![] }), None);
        assert_eq!(status_after(Failed, Transition::Resend), Some(MessageStatus::Pending));
        assert_eq!(status_after(Sending, Transition::Abandoned), None);
    }
}
