//! What a consumer holds: the queue messages it received and until when each stays invisible.
//!
//! A message whose visibility runs out while its consumer still works on it **lapses**: the queue
//! may hand it to another consumer, and moto even hands out the next message of its group first.
//! A fault-free run must lapse nothing (docs/architecture.md, "Queues"), so consumers extend what
//! they hold ([`Leases::extend_all`], the heartbeat), end each hold explicitly (delete, hide for a
//! planned retry, release), and count a lapse when a hold ended after its deadline.

use super::LoopStats;
use crate::queue::{Queue, QueueError, QueueName, Receipt};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The messages one received batch still holds, with the instant each one's visibility ends.
/// The lock is held only to read or update the deadlines, never across a queue call.
pub struct Leases {
    queue: Arc<dyn Queue>,
    name: QueueName,
    timeout: Duration,
    stats: Arc<LoopStats>,
    held: Mutex<HashMap<Receipt, Instant>>,
}

impl Leases {
    /// Holds `receipts`, received from `name` just now with visibility `timeout`.
    pub fn new(
        queue: Arc<dyn Queue>,
        name: QueueName,
        timeout: Duration,
        stats: Arc<LoopStats>,
        receipts: impl IntoIterator<Item = Receipt>,
    ) -> Self {
        let deadline = Instant::now() + timeout;
        let held = receipts.into_iter().map(|r| (r, deadline)).collect();
        Self { queue, name, timeout, stats, held: Mutex::new(held) }
    }

    /// Whether `receipt` is still held with at least `margin` of visibility left, extending it
    /// now if the heartbeat has fallen behind (a loaded machine, a slow queue). False means the
    /// message may already be another consumer's: leave it alone.
    pub async fn secure(&self, receipt: &Receipt, margin: Duration) -> bool {
        let Some(deadline) = self.lock().get(receipt).copied() else { return false };
        let now = Instant::now();
        if deadline > now + margin {
            return true;
        }
        if deadline <= now {
            return false;
        }
        self.extend(receipt).await
    }

    /// Extends every held message by the visibility timeout in one call
    /// ([`Queue::set_visibility_batch`]: one `ChangeMessageVisibilityBatch` per 10 messages on
    /// SQS), each message's deadline from its own answer. A slow answer is waited for until the
    /// earliest held deadline (a sixth of the timeout at least), as in [`Leases::extend`]. A failed
    /// extension is logged and counted; the message keeps its old deadline (and lapses if no later
    /// extension succeeds). Returns whether every extension succeeded.
    pub async fn extend_all(&self) -> bool {
        let asked = Instant::now();
        let (receipts, earliest): (Vec<Receipt>, Option<Instant>) = {
            let held = self.lock();
            (held.keys().cloned().collect(), held.values().min().copied())
        };
        let Some(earliest) = earliest else { return true };
        let call = self.queue.set_visibility_batch(self.name, &receipts, self.timeout);
        let answers = match tokio::time::timeout_at(earliest.max(asked + self.timeout / 6), call).await {
            Ok(Ok(answers)) if answers.len() == receipts.len() => answers,
            Ok(Ok(answers)) => {
                let why = format!("{} answers for {} visibility changes", answers.len(), receipts.len());
                receipts.iter().map(|_| Err(QueueError::Other(why.clone()))).collect()
            }
            Ok(Err(e)) => receipts.iter().map(|_| Err(e.clone())).collect(),
            Err(_) => receipts
                .iter()
                .map(|_| Err(QueueError::Unavailable("the visibility change did not answer in time".into())))
                .collect(),
        };
        let mut failed = 0;
        let mut first_error = None;
        {
            let mut held = self.lock();
            for (receipt, answer) in receipts.iter().zip(answers) {
                match (held.get_mut(receipt), answer) {
                    (Some(deadline), Ok(())) => *deadline = asked + self.timeout,
                    // Finished meanwhile (its hold ends before it is deleted or hidden): nothing lost.
                    (None, _) => {}
                    (Some(_), Err(e)) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            self.stats.extend_failures.fetch_add(failed, Ordering::Relaxed);
            tracing::warn!(queue = ?self.name, failed, error = %e, "cannot extend held messages' visibility");
        }
        failed == 0
    }

    /// Extends one held message ([`Leases::secure`]). A slow answer is waited for as long as it
    /// can still help: until the message's visibility ends (a sixth of the timeout at least, for a
    /// deadline already close). Giving up sooner turned a slow queue (moto under load) into lapses although its
    /// answers would have come in time.
    async fn extend(&self, receipt: &Receipt) -> bool {
        let asked = Instant::now();
        let Some(deadline) = self.lock().get(receipt).copied() else { return true };
        let call = self.queue.set_visibility(self.name, receipt, self.timeout);
        let result = match tokio::time::timeout_at(deadline.max(asked + self.timeout / 6), call).await {
            Ok(result) => result,
            Err(_) => Err(QueueError::Unavailable("the visibility change did not answer in time".into())),
        };
        match result {
            Ok(()) => {
                // Not for a hold that ended meanwhile.
                if let Some(deadline) = self.lock().get_mut(receipt) {
                    *deadline = asked + self.timeout;
                }
                true
            }
            // Finished meanwhile (its hold ends before it is deleted or hidden): nothing lost.
            Err(_) if !self.lock().contains_key(receipt) => true,
            Err(e) => {
                self.stats.extend_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(queue = ?self.name, error = %e, "cannot extend a held message's visibility");
                false
            }
        }
    }

    /// Ends the hold on `receipt` (the caller deletes, hides or releases it): counts a lapse if
    /// its visibility had already run out.
    pub async fn end(&self, receipt: &Receipt) {
        let deadline = self.lock().remove(receipt);
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            self.stats.visibility_lapses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(queue = ?self.name, "a held message's visibility lapsed before it was finished");
        }
    }

    /// Ends the hold on `receipt` and makes it visible again at once (its turn comes again).
    pub async fn release(&self, receipt: &Receipt) {
        self.end(receipt).await;
        if let Err(e) = self.queue.set_visibility(self.name, receipt, Duration::ZERO).await {
            tracing::warn!(queue = ?self.name, error = %e, "cannot release a message; it returns after its timeout");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Receipt, Instant>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the heartbeat until the returned guard is dropped (also when the consumer panics, so
    /// its messages lapse and come back instead of staying hidden for ever): extends every held
    /// message at a third of the timeout, and sooner (a sixth) after a failure.
    pub fn heartbeat(self: &Arc<Self>) -> Heartbeat {
        let leases = Arc::clone(self);
        Heartbeat(tokio::spawn(async move {
            let mut pause = leases.timeout / 3;
            loop {
                tokio::time::sleep(pause).await;
                pause = if leases.extend_all().await { leases.timeout / 3 } else { leases.timeout / 6 };
            }
        }))
    }
}

/// A running heartbeat; stops when dropped.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One lock per message group, so that the workers of one process never work on two messages of
/// a group at once, whatever the queue does. SQS FIFO already promises that no other message of a
/// group is delivered while one is in flight, so on SQS the lock is never contended; a queue that
/// breaks the promise (moto hands a group's next message to a second concurrent long poll) cannot
/// reorder a conversation inside one process.
#[derive(Default)]
pub struct GroupLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held group lock; released (and forgotten when nobody waits for it) on drop.
pub struct GroupGuard<'a> {
    locks: &'a GroupLocks,
    group: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl GroupLocks {
    /// Waits for `group`'s lock.
    pub async fn lock(&self, group: &str) -> GroupGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(group.to_owned()).or_default())
        };
        GroupGuard { locks: self, group: group.to_owned(), guard: Some(lock.lock_owned().await) }
    }

    /// Groups with a lock held or awaited.
    pub fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no lock is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.locks.locks.lock().unwrap_or_else(PoisonError::into_inner);
        if locks.get(&self.group).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            locks.remove(&self.group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_is_worked_on_by_one_task_at_a_time_and_forgotten_after() {
        let locks = Arc::new(GroupLocks::default());
        let first = locks.lock("g").await;
        let other = locks.lock("h").await;
        let waiting = {
            let locks = Arc::clone(&locks);
            tokio::spawn(async move {
                let _second = locks.lock("g").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second task waits for the first");
        drop(other);
        drop(first);
        waiting.await.unwrap();
        assert!(locks.is_empty(), "no lock is kept once nobody holds or awaits it");
    }
}
