//! Speaking systemd's language (`Type=notify`): `READY=1` once `serve` listens and its loops run,
//! `STATUS=` lines, `STOPPING=1` on shutdown, and `WATCHDOG=1` pings sent only while every loop
//! makes progress, so a wedged loop stops the pings and systemd restarts the daemon.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every notification is a no-op.

use sd_notify::NotifyState;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The loops of one daemon and when each last showed progress.
#[derive(Debug)]
pub struct Heartbeats {
    epoch: Instant,
    loops: Mutex<Vec<Arc<Beat>>>,
}

#[derive(Debug)]
struct Beat {
    name: String,
    /// Milliseconds after the epoch of the last beat.
    last_ms: AtomicU64,
    /// The loop ended on purpose (shutdown): silence is not a stall.
    finished: AtomicBool,
}

/// One loop's handle: call [`Heartbeat::beat`] on every iteration (and during long waits that
/// are themselves progress, such as pacing).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    beat: Arc<Beat>,
    epoch: Instant,
}

impl Heartbeat {
    /// The loop is alive and moving.
    pub fn beat(&self) {
        self.beat.last_ms.store(ms_since(self.epoch, Instant::now()), Ordering::Relaxed);
    }

    /// The loop ended on purpose; it no longer counts.
    pub fn finished(&self) {
        self.beat.finished.store(true, Ordering::Relaxed);
    }
}

impl Heartbeats {
    /// No loops yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self { epoch: Instant::now(), loops: Mutex::new(Vec::new()) })
    }

    /// A loop named `name` (as logs and `STATUS=` show it), beating from now.
    pub fn register(&self, name: impl Into<String>) -> Heartbeat {
        let beat = Arc::new(Beat {
            name: name.into(),
            last_ms: AtomicU64::new(ms_since(self.epoch, Instant::now())),
            finished: AtomicBool::new(false),
        });
        self.loops.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&beat));
        Heartbeat { beat, epoch: self.epoch }
    }

    /// The running loops whose last beat is more than `allowance` before `now`, with how long
    /// they have been silent.
    pub fn stalled(&self, now: Instant, allowance: Duration) -> Vec<(String, Duration)> {
        let now_ms = ms_since(self.epoch, now);
        self.loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|b| !b.finished.load(Ordering::Relaxed))
            .filter_map(|b| {
                let silent = Duration::from_millis(now_ms.saturating_sub(b.last_ms.load(Ordering::Relaxed)));
                (silent > allowance).then(|| (b.name.clone(), silent))
            })
            .collect()
    }
}

fn ms_since(epoch: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// Sends `states` to the service manager, if there is one; a failure is logged, never fatal.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1` with a `STATUS=` line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A `STATUS=` line (`systemctl status` shows it).
pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// `STOPPING=1` with a `STATUS=` line.
pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

tokio::task_local! {
    /// The heartbeat of the loop this task runs, set by [`beating`].
    static CURRENT: Heartbeat;
}

/// The process's loops, which [`watchdog`] watches.
pub fn heartbeats() -> &'static Arc<Heartbeats> {
    static ALL: std::sync::OnceLock<Arc<Heartbeats>> = std::sync::OnceLock::new();
    ALL.get_or_init(Heartbeats::new)
}

/// Runs a loop named `name`, registered in [`heartbeats`] for as long as it runs; inside it,
/// [`still_alive`] beats its heartbeat.
pub async fn beating<F: Future>(name: &str, body: F) -> F::Output {
    let heartbeat = heartbeats().register(name);
    let output = CURRENT.scope(heartbeat.clone(), body).await;
    heartbeat.finished();
    output
}

/// The loop running this task is alive and moving (a no-op outside [`beating`]).
pub fn still_alive() {
    let _ = CURRENT.try_with(Heartbeat::beat);
}

/// The watchdog interval systemd asked for (`WatchdogSec=`, passed as `WATCHDOG_USEC`).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Until `shutdown`, every half `interval`: `WATCHDOG=1` if no loop has been silent for more
/// than `allowance`; otherwise no ping (systemd then restarts the daemon once `interval` passes)
/// and a log line and `STATUS=` naming the stalled loops.
pub async fn watchdog(
    heartbeats: Arc<Heartbeats>,
    interval: Duration,
    allowance: Duration,
    shutdown: CancellationToken,
) {
    let mut stalled_before = false;
    loop {
        let stalled = heartbeats.stalled(Instant::now(), allowance);
        if stalled.is_empty() {
            if stalled_before {
                tracing::info!("watchdog: every loop is making progress again");
                status("running");
            }
            notify(&[NotifyState::Watchdog]);
        } else if !stalled_before {
            let names: Vec<String> = stalled.iter().map(|(name, silent)| format!("{name} ({silent:?})")).collect();
            tracing::error!(
                stalled = %names.join(", "),
                "watchdog: loops made no progress; withholding the watchdog ping so systemd restarts kamshub"
            );
            status(&format!("stalled: {}", names.join(", ")));
        }
        stalled_before = !stalled.is_empty();
        tokio::select! {
            () = tokio::time::sleep(interval / 2) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_loop_is_stalled_and_a_finished_one_is_not() {
        let beats = Heartbeats::new();
        let processor = beats.register("processor");
        let sender = beats.register("sender");
        let start = Instant::now();
        let allowance = Duration::from_secs(30);
        assert!(beats.stalled(start, allowance).is_empty());

        // 31 s later only the sender has beaten since: the processor is stalled.
        sender.beat.last_ms.store(ms_since(beats.epoch, start + Duration::from_secs(31)), Ordering::Relaxed);
        let stalled = beats.stalled(start + Duration::from_secs(31), allowance);
        assert_eq!(stalled.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["processor"]);
        assert!(stalled[0].1 > allowance);

        // A beat clears it; a loop that finished on purpose never counts.
        processor.beat.last_ms.store(ms_since(beats.epoch, start + Duration::from_secs(31)), Ordering::Relaxed);
        assert!(beats.stalled(start + Duration::from_secs(31), allowance).is_empty());
        processor.finished();
        let later = start + Duration::from_secs(120);
        let stalled = beats.stalled(later, allowance);
        assert_eq!(stalled.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["sender"]);
    }

    #[test]
    fn a_beat_records_now() {
        let beats = Heartbeats::new();
        let relay = beats.register("relay");
        relay.beat();
        assert!(beats.stalled(Instant::now(), Duration::from_millis(500)).is_empty());
    }
}
