//! Embedded `Queue` adapter: the six FIFO queues in one SQLite file (WAL, full sync) with the SQS
//! FIFO semantics of [`super`].
//!
//! Every write (send, receive, delete, visibility, dead-letter) is a job of the file's
//! group-committing writer (`embedded::writer`, the store's too): whatever is pending runs in ONE
//! transaction, each job in its own savepoint, and the callers are answered after the commit, so
//! many concurrent senders share each fsync and an acknowledged send survives a crash; one
//! caller's failure never undoes another's work. Checkpoints run on the writer's checkpointer
//! thread, off the commits that acknowledge webhooks. The queues keep a file of their own rather
//! than living in the store's: one SQLite file has one writer at a time, and sharing it made the
//! intake's sends wait behind the processor's applies (docs/benchmarks.md, "One database or two").

use super::{
    DEDUPE_WINDOW, Depth, OutgoingMessage, PeekedMessage, Queue, QueueError, QueueName, QueueResult, Receipt,
    ReceiveLimits, ReceivedMessage, check_outgoing, check_peek, check_receive, check_visibility,
};
use crate::embedded::writer::{CommitError, Writer};
use crate::embedded::{Database, OpenError, millis};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
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

/// How often the next send also deletes expired deduplication ids, [`PRUNE_BATCH`] at most: a
/// bounded piece every second instead of a minute's worth (300,000 ids at 5,000 sends/s) in one
/// commit that every acknowledgement waiting on it would feel.
const PRUNE_EVERY_MS: i64 = 1_000;
/// Most expired deduplication ids one prune deletes (more than a second's sends at any rate
/// measured, so the table never grows behind).
const PRUNE_BATCH: i64 = 50_000;
/// Longest a waiting receive sleeps between checks when nothing wakes it (a safety net: sends,
/// deletes, releases and visibility expiries already wake it).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// What a queue job other than a send is assumed to write (commits are sized by estimates).
const SMALL_WRITE: usize = 1 << 10;
/// What a sent message adds to its commit besides its body: its row, its index entries and its
/// deduplication id.
const MESSAGE_OVERHEAD: usize = 512;

/// The SQLite queues.
pub struct SqliteQueue {
    writer: Writer,
    /// Depth, peek and age: reads beside the writer.
    reader: Database,
    /// Receives waiting on each queue (indexed by [`slot`]); woken when a message may have
    /// become available.
    arrivals: [Notify; 6],
    rules: Rules,
    /// When expired deduplication ids were last deleted (unix ms).
    last_prune: AtomicI64,
}

/// What the queues were opened with.
#[derive(Debug, Clone, Copy)]
struct Rules {
    limits: ReceiveLimits,
    visibility_ms: i64,
}

impl SqliteQueue {
    /// Opens (creating if needed) the queue file, brings its schema up to date and starts its
    /// writer. `max_receive_count` receives move a message to its DLQ on the next one;
    /// `visibility_timeout` is how long a received message stays invisible.
    pub fn open(path: &Path, max_receive_count: u32, visibility_timeout: Duration) -> QueueResult<Self> {
        let writer = Writer::open(path, MIGRATIONS).map_err(opened)?;
        let reader = Database::open_reader(path).map_err(opened)?;
        let visibility_ms = i64::try_from(visibility_timeout.as_millis()).unwrap_or(i64::MAX);
        let limits = ReceiveLimits::uniform(max_receive_count);
        Ok(Self {
            writer,
            reader,
            arrivals: Default::default(),
            rules: Rules { limits, visibility_ms },
            last_prune: AtomicI64::new(i64::MIN),
        })
    }

    /// The queues with per-queue receive limits (the deliveries queue allows more).
    pub fn with_limits(mut self, limits: ReceiveLimits) -> Self {
        self.rules.limits = limits;
        self
    }

    /// Runs `work` in the writer's next transaction and returns its result once that commits.
    /// `bytes` estimates what it writes.
    async fn write<T, F>(&self, bytes: usize, work: F) -> QueueResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> QueueResult<T> + Send + 'static,
    {
        self.writer.write(bytes, move |conn| work(conn, now_ms()), uncommitted).await
    }

    fn arrivals(&self, queue: QueueName) -> &Notify {
        &self.arrivals[slot(queue)]
    }

    /// Whether the next send should also delete expired deduplication ids (once a second).
    fn prune_due(&self) -> bool {
        let now = now_ms();
        let last = self.last_prune.load(Ordering::Relaxed);
        now.saturating_sub(last) >= PRUNE_EVERY_MS
            && self.last_prune.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

fn opened(e: OpenError) -> QueueError {
    match e {
        OpenError::Open { .. } => QueueError::Unavailable(e.to_string()),
        _ => QueueError::Other(e.to_string()),
    }
}

/// A transaction that did not commit: another process kept the database busy is `Unavailable`
/// (retrying later may succeed), anything else `Other`.
fn uncommitted(e: CommitError) -> QueueError {
    match e {
        CommitError::Busy(why) => QueueError::Unavailable(why),
        CommitError::Failed(why) => QueueError::Other(why),
    }
}

fn slot(queue: QueueName) -> usize {
    queue.slot()
}

fn now_ms() -> i64 {
    millis(time::OffsetDateTime::now_utc())
}

fn db_error(e: rusqlite::Error) -> QueueError {
    if crate::embedded::is_busy(&e) { QueueError::Unavailable(e.to_string()) } else { QueueError::Other(e.to_string()) }
}

/// A random token naming one delivery: a new one each receive, so an old delivery's receipt
/// never matches a redelivered message.
fn new_receipt() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---------------------------------------------------------------------------------------------
// The jobs, each run inside the writer's transaction.

fn prune_dedupe(conn: &Connection, now: i64) -> QueueResult<()> {
    conn.prepare_cached(
        "DELETE FROM queue_dedupe WHERE (queue, dedupe_id) IN
           (SELECT queue, dedupe_id FROM queue_dedupe WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
    )
    .and_then(|mut s| s.execute([now, PRUNE_BATCH]))
    .map_err(db_error)?;
    Ok(())
}

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
        let bytes = messages.iter().map(|m| m.body.len() + MESSAGE_OVERHEAD).sum();
        let messages = messages.to_vec();
        let prune = self.prune_due();
        self.write(bytes, move |conn, now| {
            if prune {
                prune_dedupe(conn, now)?;
            }
            insert_messages(conn, queue, &messages, now)
        })
        .await?;
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
            let received = self.write(SMALL_WRITE, move |conn, now| receive_now(conn, queue, max, rules, now)).await?;
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
        let deleted = self.write(SMALL_WRITE, move |conn, _| delete_receipts(conn, queue, &receipts)).await?;
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
        self.write(SMALL_WRITE, move |conn, now| change_visibility(conn, queue, &receipt, timeout_ms, now)).await?;
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
            .write(SMALL_WRITE, move |conn, now| {
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
        self.write(SMALL_WRITE, move |conn, _| dead_letter_now(conn, queue, dlq, &receipt)).await?;
        self.arrivals(queue).notify_waiters();
        self.arrivals(dlq).notify_waiters();
        Ok(())
    }

    async fn depth(&self, queue: QueueName) -> QueueResult<Depth> {
        let now = now_ms();
        self.reader
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
        self.reader
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
        self.reader
            .run(move |conn| {
                conn.prepare_cached("SELECT MIN(sent_at) FROM queue_messages WHERE queue = ?1")
                    .and_then(|mut s| s.query_row([queue.suffix()], |r| r.get(0)))
                    .map_err(db_error)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dedupe_rows(conn: &Connection) -> (i64, i64) {
        conn.query_row("SELECT COUNT(*), COALESCE(SUM(expires_at > 1000), 0) FROM queue_dedupe", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
    }

    /// A prune deletes expired deduplication ids a bounded piece at a time, oldest first, and never
    /// a live one: the window still suppresses repeats, and no commit carries a minute's worth.
    #[test]
    fn a_prune_deletes_a_bounded_piece_of_the_expired_ids_only() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        let expired = PRUNE_BATCH + 10;
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO queue_dedupe (queue, dedupe_id, expires_at) SELECT 'incoming', 'old-' || i, i % 900 FROM n",
            [expired],
        )
        .unwrap();
        for id in ["a", "b", "c"] {
            conn.execute("INSERT INTO queue_dedupe VALUES ('incoming', ?1, 5000)", [id]).unwrap();
        }
        prune_dedupe(&conn, 1000).unwrap();
        assert_eq!(dedupe_rows(&conn), (10 + 3, 3));
        prune_dedupe(&conn, 1000).unwrap();
        assert_eq!(dedupe_rows(&conn), (3, 3));
    }
}
