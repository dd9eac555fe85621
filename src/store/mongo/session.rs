//! The database handle the adapter's modules share, and its transactions.

use super::errors::map_err;
use crate::store::StoreResult;
use futures::TryStreamExt;
use mongodb::bson::Document;
use mongodb::{Client, ClientSession, Collection, Database};

/// A client and the database kamshub uses on it.
#[derive(Clone)]
pub(super) struct Db {
    client: Client,
    db: Database,
}

impl Db {
    pub(super) fn new(client: Client, database: &str) -> Self {
        Self { db: client.database(database), client }
    }

    /// A collection of untyped documents (the codec converts them).
    pub(super) fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// The database, for commands.
    pub(super) fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `body` in a transaction, retrying the whole of it on a transient transaction error.
    pub(super) async fn transaction<R, F>(&self, mut body: F) -> mongodb::error::Result<R>
    where
        F: for<'s> FnMut(&'s mut ClientSession) -> futures::future::BoxFuture<'s, mongodb::error::Result<R>>,
    {
        let mut session = self.client.start_session().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            session.start_transaction().await?;
            let result = match body(&mut session).await {
                Ok(value) => session.commit_transaction().await.map(|()| value),
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) if attempt < 3 && e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => continue,
                Err(e) => return Err(e),
            }
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
