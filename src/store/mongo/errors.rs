//! Driver errors in the port's terms. A leaf, beside [`super::codec`].

use super::codec::CorruptRecord;
use crate::store::StoreError;
use mongodb::error::{ErrorKind, WriteFailure};

/// Aborts a transaction whose target document is missing; turned into `NotFound` by the caller.
#[derive(Debug)]
pub(super) struct NotFoundMarker;

/// The driver's error text, which for a bad URI could echo credentials, reduced to its kind.
pub(super) fn redact_error(e: &mongodb::error::Error) -> String {
    match e.kind.as_ref() {
        ErrorKind::InvalidArgument { .. } => "the connection string is malformed".to_owned(),
        _ => "the connection string could not be used".to_owned(),
    }
}

fn duplicate_key_message(e: &mongodb::error::Error) -> Option<String> {
    let (code, message) = match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => (w.code, w.message.clone()),
        ErrorKind::Command(c) => (c.code, c.message.clone()),
        ErrorKind::InsertMany(m) => {
            let w = m.write_errors.as_ref()?.first()?;
            (w.code, w.message.clone())
        }
        _ => return None,
    };
    (code == 11000).then_some(message)
}

/// A driver error as a [`StoreError`]: duplicate keys are `Conflict` (with the server's text, which
/// names the index); lost connections, retryable writes and transient transaction errors (still
/// failing after the transaction's own retries) `Unavailable`; the rest `Other`.
pub(super) fn map_err(e: mongodb::error::Error) -> StoreError {
    if let Some(CorruptRecord(why)) = e.get_custom::<CorruptRecord>() {
        return StoreError::Other(why.clone());
    }
    if let Some(message) = duplicate_key_message(&e) {
        return StoreError::Conflict(message);
    }
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            StoreError::Unavailable(e.to_string())
        }
        _ if e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR)
            || e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
            || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

/// Turns a duplicate-key conflict on the index `index` into `friendly`; other errors map as usual.
pub(super) fn conflict_on(e: mongodb::error::Error, index: &str, friendly: impl FnOnce() -> StoreError) -> StoreError {
    match map_err(e) {
        StoreError::Conflict(raw) if raw.contains(index) => friendly(),
        other => other,
    }
}
