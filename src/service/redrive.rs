//! `dlq redrive`: moves messages from a DLQ back to its source queue, the same way on both queue
//! backends (SQS's `StartMessageMoveTask` is not used: it cannot filter, and the stand-in lacks it).
//!
//! - **Nothing is lost.** Each message is received from the DLQ, sent to the source, and only
//!   then deleted from the DLQ. A crash in between leaves it in both queues for a moment; the
//!   processor and sender are idempotent by the body's key, so it takes effect once.
//! - **Order within each group is kept.** The DLQ hands out a group's messages in order and
//!   holds back the rest of a group while one is in flight; they are sent in that order, with
//!   their group id.
//! - **A fresh deduplication id derived from the body's key** (the original is gone: SQS
//!   replaces it on a DLQ move): `sha256("redrive:{dlq message id}:{tenant}:{key}")`. It never
//!   collides with intake's or the relay's ids, and a rerun after a crash that resends the same
//!   DLQ message within 5 minutes is deduplicated by the queue.
//! - **One at a time.** A redrive claims its DLQ in the store (a lease, renewed while it runs),
//!   so a second redrive of the same queue, from any process or host, is refused; a claim whose
//!   process died on this host is replaced at once, elsewhere it lapses after 30 s.
//! - **Filters and pace.** `--tenant` leaves other tenants' messages where they are (held hidden
//!   during the run, so their groups stay blocked, then released); `--max` stops after that many;
//!   `--rate` spaces the sends so no second sees more than the rate.
//! - **Send items come back to life.** A send message whose outbox item is FAILED (its attempts
//!   ran out) makes the item ENQUEUED again, so the sender gives it one more attempt.

use super::dlq::{body_key, queue_error, source_queue};
use super::{ServiceError, ServiceResult};
use crate::app::App;
use crate::domain::{Actor, AuditEntry, TenantId, Transition};
use crate::queue::{OutgoingMessage, Queue, QueueName, Receipt, ReceivedMessage};
use crate::store::{Lease, Store};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// What to move.
#[derive(Debug, Clone, Default)]
pub struct RedriveOptions {
    /// Only this tenant's messages.
    pub tenant: Option<TenantId>,
    /// Stop after moving this many.
    pub max: Option<u64>,
    /// At most this many messages per second.
    pub rate: Option<f64>,
}

/// What a redrive did (`-o json`: `{moved, skipped, failed}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    /// Sent back to the source queue and deleted from the DLQ.
    pub moved: u64,
    /// Seen and left in the DLQ on purpose: another tenant's (with `--tenant`), or a body that
    /// cannot be parsed (moving it would only dead-letter it again).
    pub skipped: u64,
    /// Left in the DLQ because moving failed (the queue or store refused); run again later.
    pub failed: u64,
    /// Why the run stopped early, if it did (the counts say how far it got).
    #[serde(skip)]
    pub error: Option<String>,
}

/// Someone watching a redrive (the CLI's progress bar).
pub trait Progress: Send + Sync {
    /// About `estimate` messages will be moved.
    fn begin(&self, estimate: u64);
    /// `n` more were moved.
    fn advance(&self, n: u64);
    /// Something worth telling while it waits.
    fn note(&self, message: &str);
}

/// Watches nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn note(&self, _: &str) {}
}

/// Most messages one receive takes from the DLQ (SQS's limit, kept on both backends so the
/// batch a crash can leave in flight stays small).
const BATCH: usize = 10;
/// How long a DLQ receive waits for a message.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// How long a claim on a DLQ lasts unless renewed (every third of it while its holder runs).
const LEASE_TTL: Duration = Duration::from_secs(30);

/// One process's claim on a DLQ, held in the store: one redrive (or, on SQS, one peek) of a
/// DLQ at a time, across processes and hosts. A holder that dies keeps the claim until it lapses,
/// unless it ran on this host and its process is gone: then it is replaced at once.
pub(crate) struct DlqLease {
    store: Arc<dyn Store>,
    name: String,
    holder_id: String,
    renewer: tokio::task::JoinHandle<()>,
    lost: Arc<std::sync::atomic::AtomicBool>,
    /// The dead holder this claim replaced, if any.
    pub(crate) replaced: Option<Lease>,
}

impl DlqLease {
    /// Claims `dlq` for `purpose` (`redrive`, `peek`), or says who holds it.
    pub(crate) async fn take(
        store: Arc<dyn Store>,
        dlq: QueueName,
        purpose: &str,
        actor: &Actor,
    ) -> ServiceResult<Self> {
        let now = crate::domain::now();
        let ttl = time::Duration::try_from(LEASE_TTL).expect("30 s fits");
        let lease = Lease {
            name: format!("dlq:{}", dlq.suffix()),
            holder_id: uuid::Uuid::new_v4().to_string(),
            actor: format!("{actor} ({purpose})"),
            host: host_name(),
            pid: std::process::id(),
            acquired_at: now,
            expires_at: now + ttl,
        };
        let mut replaced = None;
        if let Some(current) = store.acquire_lease(&lease, None).await? {
            let dead = current.host == lease.host && !process_alive(current.pid);
            if !dead || store.acquire_lease(&lease, Some(&current.holder_id)).await?.is_some() {
                return Err(ServiceError::Conflict(format!(
                    "{dlq} is busy: {} on {} (pid {}) since {}; if that process died, its claim lapses at {}",
                    current.actor,
                    current.host,
                    current.pid,
                    super::rfc3339(current.acquired_at),
                    super::rfc3339(current.expires_at)
                )));
            }
            tracing::warn!(holder = %current.actor, pid = current.pid, "{dlq}: replacing the claim of a process that is gone");
            replaced = Some(current);
        }
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renewer =
            tokio::spawn(renew(Arc::clone(&store), lease.name.clone(), lease.holder_id.clone(), Arc::clone(&lost)));
        Ok(Self { store, name: lease.name, holder_id: lease.holder_id, renewer, lost, replaced })
    }

    /// Whether the claim lapsed and someone else took it (the holder must stop).
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Gives the claim up.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.store.release_lease(&self.name, &self.holder_id).await {
            tracing::warn!(error = %e, lease = %self.name, "cannot release the DLQ claim; it lapses by itself");
        }
    }
}

/// Renews a claim every third of its lifetime until aborted, or until it is found lost.
async fn renew(store: Arc<dyn Store>, name: String, holder_id: String, lost: Arc<std::sync::atomic::AtomicBool>) {
    loop {
        tokio::time::sleep(LEASE_TTL / 3).await;
        let until = crate::domain::now() + time::Duration::try_from(LEASE_TTL).expect("30 s fits");
        match store.renew_lease(&name, &holder_id, until).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(error = %e, lease = %name, "cannot renew the DLQ claim; retrying"),
        }
    }
}

/// This host's name, as leases record it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether process `pid` of this host still runs (a zombie does not). Without `/proc` it is
/// assumed alive, so only the lease's expiry frees it.
fn process_alive(pid: u32) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: `pid (comm) S ...`.
        Ok(stat) => stat.rsplit_once(')').is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Moves `source`'s DLQ messages back to `source` as the options say, then writes one audit
/// record (actor, filter, counts). A failure once messages started moving ends the run early and
/// is reported in [`RedriveSummary::error`], with the counts of what was done.
pub async fn redrive(
    app: &App,
    actor: &Actor,
    source: QueueName,
    options: &RedriveOptions,
    progress: &dyn Progress,
) -> ServiceResult<RedriveSummary> {
    let source = source_queue(source)?;
    if let Some(rate) = options.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(ServiceError::Invalid(format!(
            "--rate must be a positive number of messages per second, not {rate}"
        )));
    }
    let queue = app.queue().await?;
    let store = app.store().await?;
    let dlq = source.dlq().expect("checked: a source queue");
    let lease = DlqLease::take(Arc::clone(&store), dlq, "redrive", actor).await?;
    // `queues init` gives the DLQs the configured visibility timeout, as the embedded queue has.
    let visibility = Duration::from_secs(app.settings.queue.visibility_timeout_secs.into());
    let started = crate::domain::now();
    let mut run = Run::new(Arc::clone(&queue), store.as_ref(), source, options, visibility, &lease);
    let outcome = match queue.depth(dlq).await.map_err(queue_error) {
        Ok(depth) => {
            let total = depth.visible + depth.in_flight;
            progress.begin(options.max.map_or(total, |m| m.min(total)));
            run.move_all(progress).await
        }
        Err(e) => Err(e),
    };
    run.release_held().await;
    let mut summary = run.summary.clone();
    summary.error = outcome.err().map(|e| e.to_string());
    let replaced = lease
        .replaced
        .as_ref()
        .map(|l| json!({"actor": l.actor, "host": l.host, "pid": l.pid, "since": super::rfc3339(l.acquired_at)}));
    let audit = AuditEntry::new(
        actor,
        &TenantId::platform(),
        "dlq.redrive",
        source.dlq().expect("checked").full_name(&app.settings.queue.prefix),
        json!({
            "from": run.dlq.suffix(),
            "to": source.suffix(),
            "filter": {"tenant": options.tenant.as_ref().map(TenantId::as_str), "max": options.max, "rate": options.rate},
            "moved": summary.moved,
            "skipped": summary.skipped,
            "failed": summary.failed,
            "startedAt": super::rfc3339(started),
            "error": summary.error,
            "replacedDeadRun": replaced,
        }),
    );
    let audited = store.append_audit(&audit).await;
    lease.release().await;
    audited?;
    Ok(summary)
}

/// One redrive in progress.
struct Run<'a> {
    queue: Arc<dyn Queue>,
    store: &'a dyn Store,
    source: QueueName,
    dlq: QueueName,
    options: &'a RedriveOptions,
    visibility: Duration,
    /// Messages left in the DLQ on purpose, kept hidden until the end so the run does not see
    /// them again; extended while the run lasts.
    held: Vec<Receipt>,
    held_extended_at: Instant,
    /// When the next send may go, under `--rate`.
    next_send: Instant,
    /// The claim on the DLQ: the run stops if it is lost.
    lease: &'a DlqLease,
    summary: RedriveSummary,
}

impl<'a> Run<'a> {
    fn new(
        queue: Arc<dyn Queue>,
        store: &'a dyn Store,
        source: QueueName,
        options: &'a RedriveOptions,
        visibility: Duration,
        lease: &'a DlqLease,
    ) -> Self {
        let now = Instant::now();
        Self {
            queue,
            store,
            source,
            dlq: source.dlq().expect("a source queue has a DLQ"),
            options,
            visibility,
            held: Vec::new(),
            held_extended_at: now,
            next_send: now,
            lease,
            summary: RedriveSummary::default(),
        }
    }

    /// How many to receive at once: no more than `--max` leaves, and few enough that `--rate`
    /// sends them all within a third of the visibility timeout (they must not reappear mid-run).
    fn batch_size(&self) -> usize {
        let by_rate = self.options.rate.map_or(BATCH, |rate| (rate * self.visibility.as_secs_f64() / 3.0) as usize);
        let left = self.options.max.map_or(u64::MAX, |max| max - self.summary.moved);
        by_rate.clamp(1, BATCH).min(usize::try_from(left).unwrap_or(BATCH))
    }

    fn done(&self) -> bool {
        self.options.max.is_some_and(|max| self.summary.moved >= max)
    }

    async fn move_all(&mut self, progress: &dyn Progress) -> ServiceResult<()> {
        // Messages another process holds in flight (a redrive killed mid-batch, a peek) come
        // back within their visibility timeout; wait that long for them, then stop.
        let patience =
            self.visibility.max(Duration::from_secs(u64::try_from(crate::queue::sqs::PEEK_HOLD_SECS).unwrap_or(60)))
                + Duration::from_secs(5);
        let mut empty_since: Option<Instant> = None;
        while !self.done() {
            if self.lease.lost() {
                return Err(ServiceError::Conflict("the claim on the DLQ lapsed and another process took it".into()));
            }
            self.extend_held().await;
            let batch = self.queue.receive(self.dlq, self.batch_size(), RECEIVE_WAIT).await.map_err(queue_error)?;
            if batch.is_empty() {
                let depth = self.queue.depth(self.dlq).await.map_err(queue_error)?;
                let elsewhere = depth.in_flight.saturating_sub(self.held.len() as u64);
                let since = *empty_since.get_or_insert_with(Instant::now);
                // Visible messages that a receive did not hand out (SQS counts are approximate,
                // and a group can stay blocked a moment after another holder let go) are waited
                // for too, within the same patience, unless this run holds messages: then they
                // are the rest of groups it left in place on purpose.
                let blocked = if self.held.is_empty() { depth.visible } else { 0 };
                if (elsewhere == 0 && blocked == 0) || since.elapsed() > patience {
                    break;
                }
                progress.note(&format!(
                    "{elsewhere} DLQ messages are in flight elsewhere (an interrupted redrive or a peek); waiting for them"
                ));
                continue;
            }
            empty_since = None;
            let moved = self.move_batch(batch).await?;
            progress.advance(moved);
        }
        Ok(())
    }

    /// Moves what the batch should move, in order; deletes those from the DLQ once sent.
    async fn move_batch(&mut self, batch: Vec<ReceivedMessage>) -> ServiceResult<u64> {
        let mut to_move = Vec::new();
        for message in batch {
            match body_key(self.source, &message.body) {
                Ok(key) if self.options.tenant.as_ref().is_none_or(|t| *t == key.tenant) => {
                    to_move.push((message, key));
                }
                _ => {
                    self.summary.skipped += 1;
                    self.held.push(message.receipt);
                }
            }
        }
        let mut sent: Vec<Receipt> = Vec::new();
        let mut failure = None;
        for (index, (message, key)) in to_move.iter().enumerate() {
            if let Err(e) = self.move_one(message, key).await {
                // The rest stay in the DLQ, in order behind this one.
                self.summary.failed += (to_move.len() - index) as u64;
                self.held.extend(to_move[index..].iter().map(|(m, _)| m.receipt.clone()));
                failure = Some(e);
                break;
            }
            sent.push(message.receipt.clone());
        }
        if !sent.is_empty() {
            self.queue.delete(self.dlq, &sent).await.map_err(queue_error)?;
        }
        self.summary.moved += sent.len() as u64;
        match failure {
            Some(e) => Err(e),
            None => Ok(sent.len() as u64),
        }
    }

    /// Revives a FAILED send item, then sends the message to the source queue (paced).
    async fn move_one(&mut self, message: &ReceivedMessage, key: &super::dlq::BodyKey) -> ServiceResult<()> {
        if let Some(outbox) = &key.outbox {
            // Refused (None) unless FAILED: other items are moved as they are.
            self.store.transition_outbox(&key.tenant, outbox, &Transition::Redrive, None).await?;
        }
        if let Some(rate) = self.options.rate {
            tokio::time::sleep_until(self.next_send).await;
            self.next_send = self.next_send.max(Instant::now()) + Duration::from_secs_f64(1.0 / rate);
        }
        let outgoing = OutgoingMessage {
            group_id: message.group_id.clone(),
            dedupe_id: dedupe_id(&message.message_id, &key.tenant, &key.key),
            body: message.body.clone(),
        };
        self.queue.send(self.source, &[outgoing]).await.map_err(queue_error)
    }

    /// Keeps held messages hidden while the run lasts.
    async fn extend_held(&mut self) {
        if self.held.is_empty() || self.held_extended_at.elapsed() < self.visibility / 3 {
            return;
        }
        for receipt in &self.held {
            let _ = self.queue.set_visibility(self.dlq, receipt, self.visibility).await;
        }
        self.held_extended_at = Instant::now();
    }

    /// Makes held messages visible again in the DLQ, where they stay.
    async fn release_held(&mut self) {
        for receipt in std::mem::take(&mut self.held) {
            if let Err(e) = self.queue.set_visibility(self.dlq, &receipt, Duration::ZERO).await {
                tracing::warn!(error = %e, "redrive: could not release a held DLQ message; it reappears after its visibility timeout");
            }
        }
    }
}

/// The deduplication id of a redriven message: see the module docs.
fn dedupe_id(dlq_message_id: &str, tenant: &TenantId, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("redrive:{dlq_message_id}:{tenant}:{key}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrive_dedupe_ids_fit_sqs_and_differ_per_dlq_message() {
        let tenant = TenantId::generate();
        let a = dedupe_id("m-1", &tenant, "42");
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, dedupe_id("m-1", &tenant, "42"), "a rerun resending the same DLQ message is deduplicated");
        assert_ne!(a, dedupe_id("m-2", &tenant, "42"), "the same event dead-lettered again is a new message");
    }
}
