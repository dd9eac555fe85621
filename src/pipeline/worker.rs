//! The loop every background worker runs (processor, relay, sender): step, then go again at once,
//! idle for a while, or back off after a failure (capped exponential backoff with jitter, reset
//! on success), until shutdown.

use super::{Backoff, LoopStats};
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// First wait after a failed step.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest wait after failed steps.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// What a step asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Step again at once (the step itself waited, e.g. a long-poll receive, or found more work).
    Again,
    /// Nothing to do: wait this long (or until woken) before the next step.
    Idle(Duration),
    /// Stop the loop (the step saw shutdown with work it had to release).
    Stop,
}

/// Runs `step` until `shutdown` is cancelled or a step returns [`Next::Stop`]. A failed step is
/// logged under `name` and followed by a backoff wait. `wake` cuts an idle wait short.
pub async fn run_loop<F, Fut, E>(name: &'static str, shutdown: &CancellationToken, wake: Option<&Notify>, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Next, E>>,
    E: Display,
{
    crate::systemd::beating(name, async {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_CAP);
        while !shutdown.is_cancelled() {
            // Each turn of the loop is progress the systemd watchdog counts.
            crate::systemd::still_alive();
            let wait = match step().await {
                Ok(Next::Stop) => break,
                Ok(Next::Again) => {
                    backoff.reset();
                    continue;
                }
                Ok(Next::Idle(wait)) => {
                    backoff.reset();
                    wait
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(worker = name, error = %e, ?delay, "{name}: step failed, backing off");
                    delay
                }
            };
            let woken = async {
                match wake {
                    Some(notify) => notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = woken => {}
                () = shutdown.cancelled() => {}
            }
        }
    })
    .await
}

/// Runs `workers` (at least one) copies of the loop `make` builds, each as its own task, and
/// returns when all have ended. A worker that panics is logged with the panic's message, counted
/// in `stats.worker_restarts`, and started again (after a second, so a worker that keeps
/// panicking cannot spin), unless shutdown has begun: a worker is never silently gone.
pub async fn run_workers<F, Fut>(
    name: &'static str,
    workers: usize,
    shutdown: &CancellationToken,
    stats: &LoopStats,
    make: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        tasks.spawn(make());
    }
    while let Some(ended) = tasks.join_next().await {
        let Err(e) = ended else { continue };
        stats.worker_restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(worker = name, error = %e, "{name}: a worker task panicked; restarting it");
        if shutdown.is_cancelled() {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(RESTART_PAUSE) => {}
            () = shutdown.cancelled() => continue,
        }
        tasks.spawn(make());
    }
}

/// Pause before a panicked worker starts again.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_a_stop_ends_the_loop() {
        let calls = Arc::new(AtomicU32::new(0));
        let started = tokio::time::Instant::now();
        let counter = Arc::clone(&calls);
        run_loop("test", &CancellationToken::new(), None, move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { if n < 3 { Err("down") } else { Ok(Next::Stop) } }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(started.elapsed() >= BACKOFF_BASE / 2 * 3, "three backoff waits: {:?}", started.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_worker_is_counted_and_started_again() {
        let (shutdown, stats, runs) = (CancellationToken::new(), LoopStats::default(), Arc::new(AtomicU32::new(0)));
        let stop = shutdown.clone();
        run_workers("test", 1, &shutdown, &stats, || {
            let (runs, stop) = (Arc::clone(&runs), stop.clone());
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first run fails");
                }
                stop.cancel();
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the worker ran again after its panic");
        assert_eq!(stats.read().worker_restarts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_an_idle_wait() {
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let started = tokio::time::Instant::now();
        run_loop("test", &shutdown, None, move || {
            stop.cancel();
            async { Ok::<_, String>(Next::Idle(Duration::from_secs(3600))) }
        })
        .await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
