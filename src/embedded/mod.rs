//! Plumbing shared by the embedded adapters: a SQLite database in the data dir, migrated at open.
//! [`Database`] is one connection whose blocking calls run on tokio's blocking pool (reads, the
//! local identity); [`writer::Writer`] is the group-committing write side of the store's file.

pub(crate) mod writer;

pub use writer::defer_to_other_processes;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One SQLite connection behind a mutex. SQLite serialises writers anyway; callers batch where
/// throughput matters.
#[derive(Clone)]
pub(crate) struct Database {
    conn: Arc<Mutex<Connection>>,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("cannot migrate {path}: {source}")]
    Migrate { path: String, source: rusqlite::Error },
    #[error("{path} has schema version {found}, newer than this kamshub knows ({known}); upgrade kamshub")]
    TooNew { path: String, found: usize, known: usize },
}

impl Database {
    /// Opens (creating if needed) `path` in WAL mode with full sync, and applies the
    /// `migrations` not yet applied (`PRAGMA user_version` counts them).
    pub(crate) fn open(path: &Path, migrations: &[&str]) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let open_err = |source| OpenError::Open { path: shown.clone(), source };
        let mut conn = Connection::open(path).map_err(open_err)?;
        configure(&conn, path).map_err(open_err)?;
        migrate(&mut conn, &shown, migrations)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// A read-only connection to a database already opened (and migrated) by [`Database::open`].
    /// In WAL mode readers never wait for the writer's commits.
    pub(crate) fn open_reader(path: &Path) -> Result<Self, OpenError> {
        let shown = path.display().to_string();
        let open_err = |source| OpenError::Open { path: shown.clone(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(open_err)?;
        conn.pragma_update(None, "query_only", "ON").map_err(open_err)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `f` with the connection on the blocking pool. A panic in `f` is re-raised here.
    pub(crate) async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let task = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("embedded database task was cancelled: {e}"),
        }
    }
}

/// The settings every connection that writes an embedded database uses.
pub(super) fn configure(conn: &Connection, path: &Path) -> rusqlite::Result<()> {
    restrict_to_owner(path);
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals of large savepoints (a batch of hundreds of messages) stay in memory
    // instead of going to temp files: measured at ~40 MB/2 s of temp-file writes at 5,000
    // webhooks/s with the default (examples/loadgen.rs, docs/benchmarks.md).
    conn.pragma_update(None, "temp_store", "MEMORY")
}

/// Applies the `migrations` not yet applied (`PRAGMA user_version` counts them), under the write
/// lock: two processes opening a new file at once must not both apply the same migration.
pub(super) fn migrate(conn: &mut Connection, shown: &str, migrations: &[&str]) -> Result<(), OpenError> {
    let migrate_err = |source| OpenError::Migrate { path: shown.to_owned(), source };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(migrate_err)?;
    let version: usize = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(migrate_err)?;
    if version > migrations.len() {
        return Err(OpenError::TooNew { path: shown.to_owned(), found: version, known: migrations.len() });
    }
    for (i, sql) in migrations.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(migrate_err)?;
        tx.pragma_update(None, "user_version", i + 1).map_err(migrate_err)?;
    }
    tx.commit().map_err(migrate_err)
}

/// Attempts of one write transaction while the database stays busy. Each attempt already waits up
/// to the busy timeout for the write lock, so this bounds a write at about 20 s of contention.
pub(crate) const WRITE_ATTEMPTS: u32 = 4;

/// Runs `work` in an IMMEDIATE transaction and commits it.
///
/// The write lock is taken at BEGIN, where SQLite's busy handler waits for it. A deferred
/// transaction that reads and then writes instead fails with SQLITE_BUSY at once, without
/// waiting, when another connection (the daemon, next to a CLI command) committed in between:
/// that made CLI writes fail while `serve` was busy. A transaction that still meets a busy
/// database (`is_busy_error`) is rolled back and retried, [`WRITE_ATTEMPTS`] times at most, after
/// a short jittered pause.
pub(crate) fn write_immediate<T, E>(
    conn: &mut Connection,
    mut work: impl FnMut(&Transaction<'_>) -> Result<T, E>,
    from_sqlite: impl Fn(rusqlite::Error) -> E,
    is_busy_error: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut attempt = 1;
    loop {
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&from_sqlite)?;
            let value = work(&tx)?;
            tx.commit().map_err(&from_sqlite)?;
            Ok(value)
        })();
        match result {
            Err(e) if attempt < WRITE_ATTEMPTS && is_busy_error(&e) => {
                let pause = Duration::from_millis(20 << attempt).mul_f64(0.5 + rand::random::<f64>() / 2.0);
                tracing::debug!(attempt, ?pause, "database busy; retrying the write transaction");
                std::thread::sleep(pause);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Database files hold password hashes and sealed secrets: owner-only, whatever the umask.
fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot restrict database file to its owner");
        }
    }
}

/// The text of a failed UNIQUE constraint (`table.column, ...`), if that is what `e` is.
pub(crate) fn unique_violation(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(msg)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            msg.strip_prefix("UNIQUE constraint failed: ")
        }
        _ => None,
    }
}

/// Whether `e` means another process holds the database (retrying later may succeed).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Unix milliseconds, the embedded adapters' time format.
pub(crate) fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Reads back [`millis`].
pub(crate) fn from_millis(ms: i64) -> rusqlite::Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e)))
}
