//! The pipelines: [`intake`] (webhook → incoming queue), [`processor`] (incoming queue → store),
//! [`relay`] (outbox → send and deliveries queues), [`sender`] (send queue → providers, paced by
//! [`pacing`]; deliveries queue → webhook endpoints) and [`pruner`] (expired events).
//! Each loop has `run(shutdown)` (built on [`worker`]) and a steppable `run_once()` for tests.
//! See docs/architecture.md, "Pipelines".

pub mod batcher;
pub mod intake;
pub mod lease;
pub mod pacing;
pub mod processor;
pub mod pruner;
pub mod relay;
pub mod sender;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters a consumer loop keeps (processor, sender): plain atomics, so the HTTP layer can
/// export them as metrics and tests can read them.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Messages whose visibility ran out while this process still held them. The queue may then
    /// hand them to another consumer (moto also reorders their group). A fault-free run has none.
    pub visibility_lapses: AtomicU64,
    /// Failed attempts to extend a held message's visibility (heartbeat).
    pub extend_failures: AtomicU64,
    /// Store calls retried while holding messages because the store was unavailable.
    pub store_retries: AtomicU64,
    /// Worker tasks that panicked and were restarted.
    pub worker_restarts: AtomicU64,
}

/// A reading of [`LoopStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopCounts {
    /// See [`LoopStats::visibility_lapses`].
    pub visibility_lapses: u64,
    /// See [`LoopStats::extend_failures`].
    pub extend_failures: u64,
    /// See [`LoopStats::store_retries`].
    pub store_retries: u64,
    /// See [`LoopStats::worker_restarts`].
    pub worker_restarts: u64,
}

impl LoopStats {
    /// The counters now.
    pub fn read(&self) -> LoopCounts {
        LoopCounts {
            visibility_lapses: self.visibility_lapses.load(Ordering::Relaxed),
            extend_failures: self.extend_failures.load(Ordering::Relaxed),
            store_retries: self.store_retries.load(Ordering::Relaxed),
            worker_restarts: self.worker_restarts.load(Ordering::Relaxed),
        }
    }
}

/// Capped exponential backoff with full jitter, reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Backoff starting near `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, attempt: 0 }
    }

    /// The next wait: a random time up to `min(cap, base * 2^attempt)`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << self.attempt.min(16)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let jitter: f64 = rand::random();
        ceiling.mul_f64(0.5 + jitter / 2.0)
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(50));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        assert!(b.next_delay() >= Duration::from_secs(1), "stays near the cap");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
