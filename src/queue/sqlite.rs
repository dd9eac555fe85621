//! Embedded `Queue` adapter: the six FIFO queues in one SQLite file (WAL, full sync) with the SQS
//! FIFO semantics of [`super`].
//!
//! Every write (send, receive, delete, visibility, dead-letter) goes to one writer thread, which
//! runs whatever is pending in ONE transaction and answers the callers after its commit (group
//! commit): many concurrent senders share each fsync, and an acknowledged send survives a crash.
//! Each job runs inside a savepoint, so one caller's failure never undoes another's work.

use super::{
    DEDUPE_WINDOW, Depth, OutgoingMessage, PeekedMessage, Queue, QueueError, QueueName, QueueResult, Receipt,
    ReceiveLimits, ReceivedMessage, check_outgoing, check_peek, check_receive, check_visibility,
};
use crate::embedded::{Database, OpenError, WRITE_ATTEMPTS, is_busy, millis};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::convert::Infallible;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Most messages one embedded receive hands out.
const EMBEDDED_MAX_RECEIVE: usize = 100;

/// Schema migrations, applied in order at open.
const MIGRATIONS: &[&str] = &["
-- `seq` is the arrival order: a new row always sorts after every row that exists.
-- `invisible_until` (unix ms) is NULL until the first receive and after a release.
CREATE TABLE queue_messages (
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    dedupe_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    invisible_until INTEGER,
    receipt TEXT
);
CREATE INDEX queue_messages_order ON queue_messages (queue, seq);
CREATE INDEX queue_messages_group ON queue_messages (queue, group_id, invisible_until);
CREATE INDEX queue_messages_visibility ON queue_messages (queue, invisible_until);
CREATE UNIQUE INDEX queue_messages_receipt ON queue_messages (receipt) WHERE receipt IS NOT NULL;
-- Deduplication ids seen in the last 5 minutes, kept after their message is deleted.
CREATE TABLE queue_dedupe (
    queue TEXT NOT NULL,
    dedupe_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, dedupe_id)
) WITHOUT ROWID;
CREATE INDEX queue_dedupe_expiry ON queue_dedupe (expires_at);
"];

/// Most jobs committed together; bounds one transaction's size and latency.
const MAX_JOBS_PER_COMMIT: usize = 1024;
/// How often expired deduplication ids are deleted.
const PRUNE_EVERY_MS: i64 = 60_000;
/// Longest a waiting receive sleeps between checks when nothing wakes it (a safety net: sends,
/// deletes, releases and visibility expiries already wake it).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The SQLite queues.
pub struct SqliteQueue {
    db: Database,
    /// Jobs for the writer thread; dropping the queue closes it and the thread ends.
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
    /// Receives waiting on each queue (indexed by [`slot`]); woken when a message may have
    /// become available.
    arrivals: [Notify; 6],
    rules: Rules,
}

/// What the queues were opened with.
#[derive(Debug, Clone, Copy)]
struct Rules {
    limits: ReceiveLimits,
    visibility_ms: i64,
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue file, brings its schema up to date and starts its
    /// writer thread. `max_receive_count` receives move a message to its DLQ on the next one;
    /// `visibility_timeout` is how long a received message stays invisible.
    pub fn open(path: &Path, max_receive_count: u32, visibility_timeout: Duration) -> QueueResult<Self> {
        let db = Database::open(path, MIGRATIONS).map_err(|e| match e {
            OpenError::Open { .. } => QueueError::Unavailable(e.to_string()),
            _ => QueueError::Other(e.to_string()),
        })?;
        let jobs = spawn_writer(db.clone())?;
        let visibility_ms = i64::try_from(visibility_timeout.as_millis()).unwrap_or(i64::MAX);
        let limits = ReceiveLimits::uniform(max_receive_count);
        Ok(Self { db, jobs, arrivals: Default::default(), rules: Rules { limits, visibility_ms } })
    }

    /// The queues with per-queue receive limits (the deliveries queue allows more).
    pub fn with_limits(mut self, limits: ReceiveLimits) -> Self {
        self.rules.limits = limits;
        self
    }

    /// Runs `work` in the writer's next transaction and returns its result once that commits.
    async fn write<T, F>(&self, work: F) -> QueueResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> QueueResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work: Some(work), result: None, reply });
        self.jobs.send(job).map_err(|_| QueueError::Other("the queue writer has stopped".into()))?;
        answer.await.map_err(|_| QueueError::Other("the queue writer stopped before answering".into()))?
    }

    fn arrivals(&self, queue: QueueName) -> &Notify {
        &self.arrivals[slot(queue)]
    }
}

fn slot(queue: QueueName) -> usize {
    queue.slot()
}

fn now_ms() -> i64 {
    millis(time::OffsetDateTime::now_utc())
}

fn db_error(e: rusqlite::Error) -> QueueError {
    if is_busy(&e) { QueueError::Unavailable(e.to_string()) } else { QueueError::Other(e.to_string()) }
}

/// A random token naming one delivery: a new one each receive, so an old delivery's receipt
/// never matches a redelivered message.
fn new_receipt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---------------------------------------------------------------------------------------------
// The writer: group commit.

/// One caller's unit of work in a group commit.
trait Job: Send {
    /// Runs inside the batch transaction; `false` when it failed (its savepoint is rolled back).
    fn run(&mut self, conn: &Connection, now: i64) -> bool;
    /// Answers the caller once the batch has committed, or with the reason it did not.
    fn finish(self: Box<Self>, committed: Result<(), &QueueError>);
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<QueueResult<T>>,
    reply: oneshot::Sender<QueueResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection, i64) -> QueueResult<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection, now: i64) -> bool {
        let work = self.work.take().expect("a job runs once");
        let result = work(conn, now);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &QueueError>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(e), _) => Err(copy_error(e)),
            (Ok(()), None) => Err(QueueError::Other("queue job was not run".into())),
        };
        // The caller may have gone away (a cancelled receive); its effects stand, as on SQS.
        let _ = self.reply.send(answer);
    }
}

fn copy_error(e: &QueueError) -> QueueError {
    match e {
        QueueError::Unavailable(why) => QueueError::Unavailable(why.clone()),
        other => QueueError::Other(other.to_string()),
    }
}

/// Starts the writer thread. It has its own small runtime, so the queue keeps working whatever
/// runtime its callers use, and ends when the queue (the last sender) is dropped.
fn spawn_writer(db: Database) -> QueueResult<mpsc::UnboundedSender<Box<dyn Job>>> {
    let (jobs, pending) = mpsc::unbounded_channel::<Box<dyn Job>>();
    std::thread::Builder::new()
        .name("kamshub-queue-writer".into())
        .spawn(move || match tokio::runtime::Builder::new_current_thread().build() {
            Ok(runtime) => runtime.block_on(write_loop(db, pending)),
            // Dropping `pending` fails every call with "the queue writer has stopped".
            Err(e) => tracing::error!(error = %e, "cannot start the queue writer"),
        })
        .map_err(|e| QueueError::Other(format!("cannot start the queue writer: {e}")))?;
    Ok(jobs)
}

/// Takes everything pending (up to [`MAX_JOBS_PER_COMMIT`]), commits it, answers, repeats.
async fn write_loop(db: Database, mut pending: mpsc::UnboundedReceiver<Box<dyn Job>>) {
    let mut last_prune = i64::MIN;
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match pending.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let prune = now.saturating_sub(last_prune) >= PRUNE_EVERY_MS;
        if prune {
            last_prune = now;
        }
        let done = db.run(move |conn| Ok::<_, Infallible>(commit(conn, batch, now, prune))).await;
        let (batch, committed) = match done {
            Ok(done) => done,
            Err(never) => match never {},
        };
        let committed = committed.as_ref().map(|_| ()).inspect_err(|e| {
            tracing::warn!(error = %e, jobs = batch.len(), "queue commit failed");
        });
        for job in batch {
            job.finish(committed);
        }
    }
}

/// Runs `batch` in one immediate transaction, each job in its own savepoint, and commits once.
fn commit(
    conn: &mut Connection,
    mut batch: Vec<Box<dyn Job>>,
    now: i64,
    prune: bool,
) -> (Vec<Box<dyn Job>>, QueueResult<()>) {
    let result = (|| {
        let tx = begin_immediate(conn)?;
        for job in &mut batch {
            tx.execute_batch("SAVEPOINT job").map_err(db_error)?;
            let ok = job.run(&tx, now);
            if !ok {
                tx.execute_batch("ROLLBACK TO job").map_err(db_error)?;
            }
            tx.execute_batch("RELEASE job").map_err(db_error)?;
        }
        if prune {
            tx.prepare_cached("DELETE FROM queue_dedupe WHERE expires_at <= ?1")
                .and_then(|mut s| s.execute([now]))
                .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    })();
    (batch, result)
}

/// BEGIN IMMEDIATE, retried while another process keeps the file busy beyond the busy timeout
/// (a CLI command next to the daemon), [`WRITE_ATTEMPTS`] times at most. Nothing has run yet,
/// so a retry is safe.
fn begin_immediate(conn: &Connection) -> QueueResult<rusqlite::Transaction<'_>> {
    let mut attempt = 1;
    loop {
        match rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Ok(tx) => return Ok(tx),
            Err(e) if is_busy(&e) && attempt < WRITE_ATTEMPTS => {
                tracing::debug!(attempt, "queue database busy; retrying BEGIN IMMEDIATE");
                std::thread::sleep(Duration::from_millis(20 << attempt));
                attempt += 1;
            }
            Err(e) => return Err(db_error(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The jobs, each run inside the writer's transaction.

fn insert_messages(conn: &Connection, queue: QueueName, messages: &[OutgoingMessage], now: i64) -> QueueResult<()> {
    let expires_at = now + i64::try_from(DEDUPE_WINDOW.as_millis()).expect("5 minutes fit in i64");
    let mut claim = conn
        .prepare_cached(
            "INSERT INTO queue_dedupe (queue, dedupe_id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (queue, dedupe_id) DO UPDATE SET expires_at = excluded.expires_at
             WHERE queue_dedupe.expires_at <= ?4",
        )
        .map_err(db_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO queue_messages (queue, message_id, group_id, dedupe_id, body, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(db_error)?;
    for m in messages {
        // A live row for this id means a send in the last 5 minutes: accepted, not enqueued.
        if claim.execute(params![queue.suffix(), m.dedupe_id, expires_at, now]).map_err(db_error)? == 0 {
            continue;
        }
        let id = uuid::Uuid::new_v4().to_string();
        insert.execute(params![queue.suffix(), id, m.group_id, m.dedupe_id, m.body, now]).map_err(db_error)?;
    }
    Ok(())
}

/// A receive's outcome.
struct Received {
    messages: Vec<ReceivedMessage>,
    /// Whether some message was moved to the DLQ (its waiters should wake).
    moved_to_dlq: bool,
    /// When the next in-flight message becomes visible again, if none was delivered.
    next_visible_at: Option<i64>,
}

/// A message that may be delivered now: available, and no message of its group in flight.
struct Candidate {
    seq: i64,
    message_id: String,
    group_id: String,
    body: String,
    receive_count: u32,
}

fn receive_now(conn: &Connection, queue: QueueName, max: usize, rules: Rules, now: i64) -> QueueResult<Received> {
    let mut out = Received { messages: Vec::new(), moved_to_dlq: false, next_visible_at: None };
    // Several pages only when messages at the head went to the DLQ instead of being delivered.
    loop {
        let limit = max - out.messages.len() + 16;
        let page = candidates(conn, queue, limit, now)?;
        let exhausted = page.len() < limit;
        for c in page {
            if out.messages.len() == max {
                break;
            }
            match (queue.dlq(), rules.limits.of(queue)) {
                (Some(dlq), Some(limit)) if c.receive_count >= limit => {
                    move_to(conn, c.seq, dlq)?;
                    out.moved_to_dlq = true;
                }
                _ => out.messages.push(deliver(conn, c, rules, now)?),
            }
        }
        if exhausted || out.messages.len() == max {
            break;
        }
    }
    if out.messages.is_empty() {
        out.next_visible_at = conn
            .prepare_cached("SELECT MIN(invisible_until) FROM queue_messages WHERE queue = ?1 AND invisible_until > ?2")
            .and_then(|mut s| s.query_row(params![queue.suffix(), now], |r| r.get(0)))
            .map_err(db_error)?;
    }
    Ok(out)
}

/// The oldest deliverable messages, in arrival order: every available message of every group
/// with nothing in flight (all of such a group's messages are available, so its order holds).
fn candidates(conn: &Connection, queue: QueueName, limit: usize, now: i64) -> QueueResult<Vec<Candidate>> {
    let mut select = conn
        .prepare_cached(
            "SELECT m.seq, m.message_id, m.group_id, m.body, m.receive_count FROM queue_messages m
             WHERE m.queue = ?1 AND (m.invisible_until IS NULL OR m.invisible_until <= ?2)
               AND NOT EXISTS (SELECT 1 FROM queue_messages b
                               WHERE b.queue = ?1 AND b.group_id = m.group_id AND b.invisible_until > ?2)
             ORDER BY m.seq LIMIT ?3",
        )
        .map_err(db_error)?;
    let rows = select
        .query_map(params![queue.suffix(), now, limit as i64], |r| {
            Ok(Candidate {
                seq: r.get(0)?,
                message_id: r.get(1)?,
                group_id: r.get(2)?,
                body: r.get(3)?,
                receive_count: r.get(4)?,
            })
        })
        .map_err(db_error)?;
    rows.collect::<Result<_, _>>().map_err(db_error)
}

fn deliver(conn: &Connection, c: Candidate, rules: Rules, now: i64) -> QueueResult<ReceivedMessage> {
    let receipt = new_receipt();
    conn.prepare_cached(
        "UPDATE queue_messages SET receive_count = receive_count + 1, invisible_until = ?2, receipt = ?3
         WHERE seq = ?1",
    )
    .and_then(|mut s| s.execute(params![c.seq, now.saturating_add(rules.visibility_ms), receipt]))
    .map_err(db_error)?;
    Ok(ReceivedMessage {
        message_id: c.message_id,
        receipt: Receipt(receipt),
        group_id: c.group_id,
        body: c.body,
        receive_count: c.receive_count + 1,
    })
}

/// Moves a message to the end of `dlq`: same id, group, body; never received there.
fn move_to(conn: &Connection, seq: i64, dlq: QueueName) -> QueueResult<()> {
    conn.prepare_cached(
        "INSERT INTO queue_messages (queue, message_id, group_id, dedupe_id, body, sent_at)
         SELECT ?2, message_id, group_id, dedupe_id, body, sent_at FROM queue_messages WHERE seq = ?1",
    )
    .and_then(|mut s| s.execute(params![seq, dlq.suffix()]))
    .map_err(db_error)?;
    conn.prepare_cached("DELETE FROM queue_messages WHERE seq = ?1")
        .and_then(|mut s| s.execute([seq]))
        .map_err(db_error)?;
    Ok(())
}

/// Deletes by receipt; stale receipts match nothing and are skipped. Returns how many went.
fn delete_receipts(conn: &Connection, queue: QueueName, receipts: &[Receipt]) -> QueueResult<usize> {
    let mut delete =
        conn.prepare_cached("DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2").map_err(db_error)?;
    let mut deleted = 0;
    for r in receipts {
        deleted += delete.execute(params![queue.suffix(), r.0]).map_err(db_error)?;
    }
    Ok(deleted)
}

/// Extends or ends (`timeout_ms == 0`) a delivery that is still in flight.
fn change_visibility(
    conn: &Connection,
    queue: QueueName,
    receipt: &Receipt,
    timeout_ms: i64,
    now: i64,
) -> QueueResult<()> {
    let until = (timeout_ms > 0).then(|| now.saturating_add(timeout_ms));
    let changed = conn
        .prepare_cached(
            "UPDATE queue_messages SET invisible_until = ?3
             WHERE queue = ?1 AND receipt = ?2 AND invisible_until > ?4",
        )
        .and_then(|mut s| s.execute(params![queue.suffix(), receipt.0, until, now]))
        .map_err(db_error)?;
    if changed == 0 { Err(QueueError::StaleReceipt) } else { Ok(()) }
}

fn dead_letter_now(conn: &Connection, queue: QueueName, dlq: QueueName, receipt: &Receipt) -> QueueResult<()> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT seq FROM queue_messages WHERE queue = ?1 AND receipt = ?2")
        .and_then(|mut s| s.query_row(params![queue.suffix(), receipt.0], |r| r.get(0)).optional())
        .map_err(db_error)?;
    move_to(conn, seq.ok_or(QueueError::StaleReceipt)?, dlq)
}

#[async_trait]
impl Queue for SqliteQueue {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// One transaction can hand out many messages: the processor's batches, and so its write
    /// transactions, grow with the load instead of stopping at SQS's 10.
    fn max_receive(&self) -> usize {
        EMBEDDED_MAX_RECEIVE
    }

    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> QueueResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        messages.iter().try_for_each(check_outgoing)?;
        let messages = messages.to_vec();
        self.write(move |conn, now| insert_messages(conn, queue, &messages, now)).await?;
        self.arrivals(queue).notify_waiters();
        Ok(())
    }

    async fn receive(&self, queue: QueueName, max: usize, wait: Duration) -> QueueResult<Vec<ReceivedMessage>> {
        self.receive_until(queue, max, wait, &CancellationToken::new()).await
    }

    /// Stops at `stop` only between looks, never while a look (which claims messages) runs.
    async fn receive_until(
        &self,
        queue: QueueName,
        max: usize,
        wait: Duration,
        stop: &CancellationToken,
    ) -> QueueResult<Vec<ReceivedMessage>> {
        check_receive(max, self.max_receive(), wait)?;
        let deadline = Instant::now() + wait;
        let rules = self.rules;
        while !stop.is_cancelled() {
            // Registered before looking, so a send that lands in between still wakes us.
            let arrival = self.arrivals(queue).notified();
            tokio::pin!(arrival);
            arrival.as_mut().enable();
            let received = self.write(move |conn, now| receive_now(conn, queue, max, rules, now)).await?;
            if received.moved_to_dlq
                && let Some(dlq) = queue.dlq()
            {
                self.arrivals(dlq).notify_waiters();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !received.messages.is_empty() || left.is_zero() {
                return Ok(received.messages);
            }
            let mut nap = left.min(POLL_INTERVAL);
            if let Some(at) = received.next_visible_at {
                let until_visible = u64::try_from(at.saturating_sub(now_ms()).max(0)).unwrap_or(0) + 1;
                nap = nap.min(Duration::from_millis(until_visible));
            }
            tokio::select! {
                () = &mut arrival => {}
                () = tokio::time::sleep(nap) => {}
                () = stop.cancelled() => {}
            }
        }
        Ok(Vec::new())
    }

    async fn delete(&self, queue: QueueName, receipts: &[Receipt]) -> QueueResult<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let receipts = receipts.to_vec();
        let asked = receipts.len();
        let deleted = self.write(move |conn, _| delete_receipts(conn, queue, &receipts)).await?;
        if deleted < asked {
            tracing::debug!(%queue, asked, deleted, "stale receipts skipped on delete");
        }
        // A deleted in-flight message unblocks the rest of its group.
        self.arrivals(queue).notify_waiters();
        Ok(())
    }

    async fn set_visibility(&self, queue: QueueName, receipt: &Receipt, timeout: Duration) -> QueueResult<()> {
        check_visibility(timeout)?;
        let receipt = receipt.clone();
        let timeout_ms = i64::try_from(timeout.as_millis()).expect("12 h fit in i64");
        self.write(move |conn, now| change_visibility(conn, queue, &receipt, timeout_ms, now)).await?;
        if timeout.is_zero() {
            self.arrivals(queue).notify_waiters();
        }
        Ok(())
    }

    /// One transaction for all: a stale receipt answers [`QueueError::StaleReceipt`] and changes
    /// nothing; a database error fails the whole call (and rolls it back).
    async fn set_visibility_batch(
        &self,
        queue: QueueName,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> QueueResult<Vec<QueueResult<()>>> {
        check_visibility(timeout)?;
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let receipts = receipts.to_vec();
        let timeout_ms = i64::try_from(timeout.as_millis()).expect("12 h fit in i64");
        let answers = self
            .write(move |conn, now| {
                receipts
                    .iter()
                    .map(|receipt| match change_visibility(conn, queue, receipt, timeout_ms, now) {
                        Err(QueueError::StaleReceipt) => Ok(Err(QueueError::StaleReceipt)),
                        changed => changed.map(Ok),
                    })
                    .collect::<QueueResult<Vec<_>>>()
            })
            .await?;
        if timeout.is_zero() && answers.iter().any(Result::is_ok) {
            self.arrivals(queue).notify_waiters();
        }
        Ok(answers)
    }

    async fn dead_letter(&self, queue: QueueName, message: &ReceivedMessage) -> QueueResult<()> {
        let dlq = queue.dlq().ok_or_else(|| QueueError::Invalid(format!("{queue} is a DLQ; it has no DLQ")))?;
        let receipt = message.receipt.clone();
        self.write(move |conn, _| dead_letter_now(conn, queue, dlq, &receipt)).await?;
        self.arrivals(queue).notify_waiters();
        self.arrivals(dlq).notify_waiters();
        Ok(())
    }

    async fn depth(&self, queue: QueueName) -> QueueResult<Depth> {
        let now = now_ms();
        self.db
            .run(move |conn| {
                conn.prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(invisible_until > ?2), 0) FROM queue_messages WHERE queue = ?1",
                )
                .and_then(|mut s| {
                    s.query_row(params![queue.suffix(), now], |r| {
                        let (all, in_flight): (u64, u64) = (r.get(0)?, r.get(1)?);
                        Ok(Depth { visible: all - in_flight, in_flight })
                    })
                })
                .map_err(db_error)
            })
            .await
    }

    /// A read: nothing is received, so nothing changes.
    async fn peek(&self, queue: QueueName, max: usize) -> QueueResult<Vec<PeekedMessage>> {
        check_peek(queue, max)?;
        self.db
            .run(move |conn| {
                let mut select = conn
                    .prepare_cached(
                        "SELECT message_id, group_id, body, sent_at FROM queue_messages WHERE queue = ?1
                         ORDER BY seq LIMIT ?2",
                    )
                    .map_err(db_error)?;
                let rows = select
                    .query_map(params![queue.suffix(), i64::try_from(max).unwrap_or(i64::MAX)], |r| {
                        Ok(PeekedMessage {
                            message_id: r.get(0)?,
                            group_id: r.get(1)?,
                            body: r.get(2)?,
                            sent_at_ms: r.get(3)?,
                        })
                    })
                    .map_err(db_error)?;
                rows.collect::<Result<_, _>>().map_err(db_error)
            })
            .await
    }

    async fn oldest_sent_at(&self, queue: QueueName) -> QueueResult<Option<i64>> {
        self.db
            .run(move |conn| {
                conn.prepare_cached("SELECT MIN(sent_at) FROM queue_messages WHERE queue = ?1")
                    .and_then(|mut s| s.query_row([queue.suffix()], |r| r.get(0)))
                    .map_err(db_error)
            })
            .await
    }
}
