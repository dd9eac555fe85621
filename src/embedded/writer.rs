//! The write side of an embedded database: one connection, owned by one thread, that runs
//! whatever writes are pending in ONE transaction and answers their callers after its commit
//! (group commit). Many concurrent writers share each fsync, and a write that returned has
//! survived a crash (WAL, `synchronous=FULL`).
//!
//! - Each job runs in its own savepoint, so one caller's failure never undoes another's work; a
//!   job alone in its transaction needs none.
//! - A transaction takes jobs until [`MAX_COMMIT_BYTES`] (callers estimate what they write) or
//!   [`MAX_COMMIT_JOBS`]: under overload commits grow to a bounded size instead of without end.
//! - Checkpoints run on their own thread and connection ([`Checkpointer`]), off the path of the
//!   writes waiting for their commit; the writer only rewinds the log now and then, once most of
//!   it is already copied into the database file.
//! - Other processes (the CLI next to `kamshub serve`) get their turn: see [`Turn`].

use super::{OpenError, WRITE_ATTEMPTS, configure, is_busy, migrate};
use rusqlite::Connection;
use std::any::Any;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most bytes (as callers estimate them) one transaction carries: bounds a commit's latency.
pub(crate) const MAX_COMMIT_BYTES: usize = 4 << 20;
/// Most jobs one transaction carries.
const MAX_COMMIT_JOBS: usize = 4096;
/// How often the checkpointer copies committed pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Log size (in 4 KiB pages) past which the writer rewinds the log between two transactions: a
/// log written without pause is never found fully copied by a passive checkpoint, so it would
/// otherwise grow without end.
const REWIND_PAGES: u64 = 16_384;
/// The writer connection's page cache, in KiB.
const WRITER_CACHE_KIB: i64 = 16 << 10;
/// Size the log file is cut back to after a rewind.
const LOG_SIZE_LIMIT: i64 = 64 << 20;

/// Whether this process's writers let other processes' writers go first. `kamshub serve` sets
/// it ([`defer_to_other_processes`]); commands leave it unset and take their turn.
static DEFER: AtomicBool = AtomicBool::new(false);

/// Makes this process's writers (opened from now on or already open) wait for other processes
/// that want to write the same database: the daemon, so a CLI write never waits on its stream of
/// commits. See [`Turn`].
pub fn defer_to_other_processes() {
    DEFER.store(true, Ordering::Relaxed);
}

/// Why a transaction did not commit.
#[derive(Debug, Clone)]
pub(crate) enum CommitError {
    /// Another process kept the database locked through every attempt; retrying later may work.
    Busy(String),
    /// Anything else (disk full, I/O error, the writer stopped).
    Failed(String),
}

impl CommitError {
    fn of(e: &rusqlite::Error) -> Self {
        if is_busy(e) { CommitError::Busy(e.to_string()) } else { CommitError::Failed(e.to_string()) }
    }
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Busy(why) | CommitError::Failed(why) => f.write_str(why),
        }
    }
}

/// The writer of one database file. Cheap to clone; the thread ends when the last handle goes.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl Writer {
    /// Opens (creating if needed) `path`, applies the `migrations` not yet applied, and starts the
    /// writer and checkpointer threads.
    pub(crate) fn open(path: &Path, migrations: &[&str]) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let open_err = |source| OpenError::Open { path: shown.clone(), source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        configure(&conn, path).map_err(open_err)?;
        // The checkpointer copies pages into the database file; this connection never does it
        // inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(open_err)?;
        conn.pragma_update(None, "journal_size_limit", LOG_SIZE_LIMIT).map_err(open_err)?;
        // The pages a commit touches stay in this connection's cache instead of being read back
        // from the kernel (copied) on every transaction: the indexes' hot pages fit.
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(open_err)?;
        let turn = Turn::open(path).map_err(|e| OpenError::Open {
            path: shown.clone(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })?;
        {
            let _mine = turn.take();
            migrate(&mut conn, &shown, migrations)?;
        }
        let checkpoints = Checkpointer::start(path).map_err(open_err)?;
        let (jobs, pending) = mpsc::unbounded_channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("kamshub-writer".into())
            .spawn(move || write_loop(conn, pending, turn, checkpoints))
            .map_err(|e| OpenError::Open {
                path: shown,
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the writer's next transaction (in its own savepoint) and returns its result
    /// once that transaction has committed. `bytes` estimates what it writes (it sizes commits).
    /// A failed `work` changes nothing; a commit that fails is `lift`ed into the caller's error.
    /// A panic in `work` is re-raised here.
    pub(crate) async fn write<T, E, F>(&self, bytes: usize, work: F, lift: fn(CommitError) -> E) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work: Some(work), bytes, result: None, lift, reply });
        let stopped = || lift(CommitError::Failed("the database writer has stopped".into()));
        self.jobs.send(job).map_err(|_| stopped())?;
        match answer.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => Err(stopped()),
        }
    }
}

/// One caller's unit of work in a group commit.
trait Job: Send {
    /// What it expects to write, in bytes.
    fn bytes(&self) -> usize;
    /// Runs inside the transaction; `false` when it failed (its changes are then rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the transaction committed, or with the reason it did not.
    fn finish(self: Box<Self>, committed: Result<(), &CommitError>);
}

type Answer<T, E> = Result<Result<T, E>, Box<dyn Any + Send>>;

struct Pending<T, E, F> {
    work: Option<F>,
    bytes: usize,
    result: Option<Answer<T, E>>,
    lift: fn(CommitError) -> E,
    reply: oneshot::Sender<Answer<T, E>>,
}

impl<T, E, F> Job for Pending<T, E, F>
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
{
    fn bytes(&self) -> usize {
        self.bytes
    }

    fn run(&mut self, conn: &Connection) -> bool {
        let work = self.work.take().expect("a job runs once");
        let result = catch_unwind(AssertUnwindSafe(|| work(conn)));
        let ok = matches!(result, Ok(Ok(_)));
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &CommitError>) {
        let answer = match (committed, self.result) {
            // A failed job answers its own error: nothing of it was committed.
            (_, Some(Ok(Err(e)))) => Ok(Err(e)),
            (_, Some(Err(panic))) => Err(panic),
            (Ok(()), Some(ok)) => ok,
            (Err(e), _) => Ok(Err((self.lift)(e.clone()))),
            (Ok(()), None) => Ok(Err((self.lift)(CommitError::Failed("the write was not run".into())))),
        };
        // The caller may have gone away (a cancelled request); its effects stand.
        let _ = self.reply.send(answer);
    }
}

/// Takes what is pending (bounded by bytes and jobs), commits it, answers, repeats; ends when
/// every [`Writer`] handle is gone.
fn write_loop(
    conn: Connection,
    mut pending: mpsc::UnboundedReceiver<Box<dyn Job>>,
    turn: Turn,
    checkpoints: Checkpointer,
) {
    while let Some(first) = pending.blocking_recv() {
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_COMMIT_JOBS && bytes < MAX_COMMIT_BYTES {
            match pending.try_recv() {
                Ok(job) => {
                    bytes += job.bytes();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let committed = {
            let _mine = turn.take();
            commit(&conn, &mut batch)
        };
        if let Err(e) = &committed {
            tracing::warn!(error = %e, jobs = batch.len(), "database commit failed");
        }
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
        if committed.is_ok() {
            checkpoints.after_commit(&conn);
        }
    }
}

/// Runs `batch` in one IMMEDIATE transaction and commits once. The jobs' own failures are theirs
/// (rolled back to their savepoint); an error here failed the whole transaction.
fn commit(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), CommitError> {
    begin_immediate(conn)?;
    let result = (|| {
        if let [only] = batch {
            if !only.run(conn) {
                // Nothing else is in the transaction: roll all of it back.
                conn.execute_batch("ROLLBACK")?;
                return Ok(());
            }
        } else {
            for job in batch.iter_mut() {
                conn.prepare_cached("SAVEPOINT job")?.execute([])?;
                if !job.run(conn) {
                    conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
                }
                conn.prepare_cached("RELEASE job")?.execute([])?;
            }
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    })();
    result.map_err(|e: rusqlite::Error| {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        CommitError::of(&e)
    })
}

/// BEGIN IMMEDIATE, retried while another process keeps the file locked beyond the busy timeout,
/// [`WRITE_ATTEMPTS`] times at most. Nothing has run yet, so a retry is safe.
fn begin_immediate(conn: &Connection) -> Result<(), CommitError> {
    let mut attempt = 1;
    loop {
        match conn.prepare_cached("BEGIN IMMEDIATE").and_then(|mut s| s.execute([])) {
            Ok(_) => return Ok(()),
            Err(e) if is_busy(&e) && attempt < WRITE_ATTEMPTS => {
                tracing::debug!(attempt, "database busy; retrying BEGIN IMMEDIATE");
                std::thread::sleep(Duration::from_millis(20 << attempt));
                attempt += 1;
            }
            Err(e) => return Err(CommitError::of(&e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Turns between processes.

/// Who writes next when several processes write one database. SQLite lets one writer at a time
/// in, and a waiting process only polls for the lock (its busy handler sleeps between looks), so
/// a daemon committing back to back could keep a CLI command out until it gives up. A lock file
/// next to the database (`{db}-lock`, advisory `flock`) settles it:
/// - a command's writer holds it exclusively from before BEGIN to after COMMIT;
/// - the daemon's writer ([`defer_to_other_processes`]) takes it shared, and only for the moment
///   before each BEGIN: while a command holds or waits for it, the daemon waits, so a command
///   waits for at most the daemon's transaction under way.
///
/// The kernel drops the lock of a process that dies. Processes that do not take it (an older
/// kamshub, the `sqlite3` shell) are still waited for by the busy timeout and retries.
struct Turn {
    file: File,
}

/// The lock held for one transaction (a command's), released on drop.
struct Mine<'a>(Option<&'a File>);

impl Drop for Mine<'_> {
    fn drop(&mut self) {
        if let Some(file) = self.0 {
            let _ = file.unlock();
        }
    }
}

impl Turn {
    fn open(db: &Path) -> std::io::Result<Self> {
        let mut path = db.as_os_str().to_owned();
        path.push("-lock");
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        Ok(Self { file: options.open(PathBuf::from(path))? })
    }

    /// Waits for this process's turn to write; the turn lasts until the guard drops.
    fn take(&self) -> Mine<'_> {
        if DEFER.load(Ordering::Relaxed) {
            // Let any command that holds or wants the lock finish first.
            if !matches!(self.file.try_lock_shared(), Ok(())) {
                let _ = self.file.lock_shared();
            }
            let _ = self.file.unlock();
            Mine(None)
        } else {
            match self.file.lock() {
                Ok(()) => Mine(Some(&self.file)),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot take the writers' lock file; relying on the busy timeout");
                    Mine(None)
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

/// Copies committed pages from the log into the database file on its own thread, so no write
/// waits for it; tells the writer how long the log is.
struct Checkpointer {
    /// Wakes the checkpointer after a commit; dropping it stops the thread.
    commits: std_mpsc::SyncSender<()>,
    /// Pages in the log at the last checkpoint.
    log_pages: Arc<AtomicU64>,
}

impl Checkpointer {
    fn start(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (commits, woken) = std_mpsc::sync_channel::<()>(1);
        let log_pages = Arc::new(AtomicU64::new(0));
        let pages = Arc::clone(&log_pages);
        std::thread::Builder::new()
            .name("kamshub-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &woken, &pages))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self { commits, log_pages })
    }

    /// Called by the writer between transactions.
    fn after_commit(&self, conn: &Connection) {
        let _ = self.commits.try_send(());
        if self.log_pages.load(Ordering::Relaxed) >= REWIND_PAGES {
            // Most of the log is already in the database file: copying the rest and rewinding
            // takes a moment, once per REWIND_PAGES pages written.
            match conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0)) {
                Ok(0) => self.log_pages.store(0, Ordering::Relaxed),
                Ok(_) => tracing::debug!("log rewind postponed: a reader is still on the log"),
                Err(e) => tracing::warn!(error = %e, "cannot rewind the database log"),
            }
        }
    }
}

fn checkpoint_loop(conn: &Connection, woken: &std_mpsc::Receiver<()>, log_pages: &AtomicU64) {
    loop {
        match woken.recv() {
            Ok(()) => {}
            Err(_) => return,
        }
        std::thread::sleep(CHECKPOINT_EVERY);
        // (busy, pages in the log, pages copied)
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
            Ok((log, _)) => log_pages.store(u64::try_from(log).unwrap_or(0), Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "checkpoint skipped"),
        }
    }
}
