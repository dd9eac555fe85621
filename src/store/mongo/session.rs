//! The database handle the adapter's modules share, and its transactions.

use super::errors::map_err;
use crate::store::StoreResult;
use futures::TryStreamExt;
use mongodb::bson::Document;
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::{Client, ClientSession, Collection, Database};
use std::sync::Arc;
use std::time::Duration;

/// A client and the database kamshub uses on it.
#[derive(Clone)]
pub(super) struct Db {
    client: Client,
    db: Database,
    appliers: Arc<tokio::sync::Mutex<()>>,
}

impl Db {
    pub(super) fn new(client: Client, database: &str) -> Self {
        Self { db: client.database(database), client, appliers: Arc::default() }
    }

    /// Waits for this process's turn to run an inbound apply transaction (`inbox::apply` says
    /// why there is one at a time). Applies from other processes still meet in the server, as
    /// write conflicts that `transaction` retries.
    pub(super) async fn appliers_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.appliers.lock().await
    }

    /// A collection of untyped documents (the codec converts them).
    pub(super) fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// The database, for commands.
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `body` in a transaction. A transaction that meets a transient error (a write
    /// conflict with a concurrent transaction, an election) is retried whole after a short
    /// jittered pause, for [`TRANSACTION_BUDGET`] at most (writers of one tenant's events meet on
    /// its event counter, so conflicts are an expected part of load); a commit whose result is unknown
    /// is retried (commits are idempotent). What still fails transiently after that maps to
    /// `StoreError::Unavailable` (see `errors::map_err`), so callers hold and retry instead of
    /// treating it as a bug.
    pub(super) async fn transaction<R, F>(&self, mut body: F) -> mongodb::error::Result<R>
    where
        F: for<'s> FnMut(&'s mut ClientSession) -> futures::future::BoxFuture<'s, mongodb::error::Result<R>>,
    {
        let mut session = self.client.start_session().await?;
        let (started, mut attempt) = (std::time::Instant::now(), 1);
        loop {
            session.start_transaction().await?;
            let result = match body(&mut session).await {
                Ok(value) => commit(&mut session).await.map(|()| value),
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if started.elapsed() < TRANSACTION_BUDGET && e.contains_label(TRANSIENT_TRANSACTION_ERROR) => {
                    let pause = Duration::from_millis(5 << attempt.min(7)).mul_f64(0.5 + rand::random::<f64>() / 2.0);
                    tracing::debug!(attempt, ?pause, error = %e, "transient transaction error; retrying the transaction");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// How long a transaction that keeps meeting transient errors is retried (pauses growing from
/// 10 ms to 640 ms, with jitter) before the store reports itself unavailable.
const TRANSACTION_BUDGET: Duration = Duration::from_secs(10);

/// Commits, retrying while the server cannot tell whether the commit happened.
async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut attempt = 1;
    loop {
        match session.commit_transaction().await {
            Err(e) if attempt < 3 && e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => attempt += 1,
            other => return other,
        }
    }
}

/// Every document of `cursor`, converted by `convert`.
pub(super) async fn collect<T>(
    cursor: mongodb::Cursor<Document>,
    convert: fn(&Document) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let docs: Vec<Document> = cursor.try_collect().await.map_err(map_err)?;
    docs.iter().map(convert).collect()
}
