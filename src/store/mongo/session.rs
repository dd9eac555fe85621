//! The database handle the adapter's modules share, and its transactions.

use super::errors::map_err;
use crate::domain::TenantId;
use crate::store::StoreResult;
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::error::{TRANSIENT_TRANSACTION_ERROR, UNKNOWN_TRANSACTION_COMMIT_RESULT};
use mongodb::{Client, ClientSession, Collection, Database};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A client and the database kamshub uses on it.
#[derive(Clone)]
pub(super) struct Db {
    client: Client,
    db: Database,
    recorders: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Db {
    pub(super) fn new(client: Client, database: &str) -> Self {
        Self { db: client.database(database), client, recorders: Arc::default() }
    }

    /// Runs `body` in a transaction (see [`Db::transaction`]) that records events of `tenants`,
    /// so writes their event counters: inbound applies, reply creation, outbox transitions,
    /// channel health. In this process one such transaction at a time runs per tenant: it waits
    /// for the turns of all its tenants first (taken in name order, so two transactions never
    /// wait for each other), and holds them to the end.
    ///
    /// MongoDB aborts a transaction that writes a document written by another transaction since
    /// its own snapshot was taken, committed or not, so waiting for the counter alone does not
    /// help once the snapshot is old: the turn covers the whole transaction. Without it,
    /// concurrent writers of one tenant's events aborted each other most of the time, and under
    /// load a sender's outbox transitions kept aborting for their whole retry budget
    /// (docs/reliability.md, "Cost"). Different tenants' transactions still run side by side.
    /// Recorders in other processes still meet in the server, as write conflicts that
    /// [`Db::transaction`] retries.
    pub(super) async fn recording<'t, R, F>(
        &self,
        tenants: impl IntoIterator<Item = &'t str>,
        body: F,
    ) -> mongodb::error::Result<R>
    where
        F: for<'s> FnMut(&'s mut ClientSession) -> futures::future::BoxFuture<'s, mongodb::error::Result<R>>,
    {
        let names: BTreeSet<&str> = tenants.into_iter().collect();
        let turns: Vec<_> = {
            let mut recorders = self.recorders.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget the turns no one holds or waits for, once there are many.
            if recorders.len() > FORGET_TURNS_ABOVE {
                recorders.retain(|_, turn| Arc::strong_count(turn) > 1);
            }
            names.iter().map(|name| Arc::clone(recorders.entry((*name).to_owned()).or_default())).collect()
        };
        let mut held = Vec::with_capacity(turns.len());
        for turn in turns {
            held.push(turn.lock_owned().await);
        }
        self.transaction(body).await
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
    /// jittered pause, for [`TRANSACTION_BUDGET`] at most (writers of one tenant's events in two
    /// processes meet on its event counter, so conflicts are an expected part of load; in one
    /// process they take turns, [`Db::recording`]); a commit whose result is unknown is retried
    /// (commits are idempotent). What still fails transiently after that maps to
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

/// How many tenants' turns [`Db::recording`] keeps before it forgets the idle ones.
const FORGET_TURNS_ABOVE: usize = 1024;

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

/// The tenant that owns document `id` of `collection` (read outside any transaction), if it exists.
pub(super) async fn owner_of(db: &Db, collection: &str, id: &str) -> StoreResult<Option<TenantId>> {
    let found =
        db.coll(collection).find_one(doc! {"_id": id}).projection(doc! {"tenantId": 1}).await.map_err(map_err)?;
    match found {
        Some(d) => {
            let tenant = super::codec::str_of(&d, "tenantId")?;
            TenantId::parse(tenant).map(Some).map_err(|e| crate::store::StoreError::Other(e.to_string()))
        }
        None => Ok(None),
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
