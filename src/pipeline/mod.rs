//! The pipelines: [`intake`] (webhook → incoming queue), [`processor`] (incoming queue → store),
//! [`relay`] (outbox → send queue) and [`sender`] (send queue → providers, paced by [`pacing`]).
//! Each loop has `run(shutdown)` (built on [`worker`]) and a steppable `run_once()` for tests.
//! See docs/architecture.md, "Pipelines".

pub mod batcher;
pub mod intake;
pub mod pacing;
pub mod processor;
pub mod relay;
pub mod sender;
pub mod worker;

use std::time::Duration;

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
