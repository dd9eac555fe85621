//! Use cases, written once and called by both the CLI and the HTTP API. Inputs are already
//! parsed domain values; outputs are the serialisable views both faces print.

pub mod access;
pub mod channels;
pub mod dlq;
pub mod doctor;
pub mod events;
pub mod inbox;
pub mod onboarding;
pub mod outbox;
pub mod page;
pub mod redrive;
pub mod session;
pub mod views;
pub mod webhooks;

use crate::app::AppError;
use crate::identity::IdentityError;
use crate::providers::ProviderError;
use crate::store::StoreError;

/// Why a use case failed, in the terms a CLI exit code or an HTTP status is chosen by.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but not allowed by the rules (wrong role for a tenant, ...).
    #[error("{0}")]
    Invalid(String),
    /// No valid credentials: wrong password, an unknown or expired token or session.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known, but the role matrix does not let their role do this.
    #[error("{0}")]
    Forbidden(String),
    /// Something named does not exist (or is another tenant's).
    #[error("{0}")]
    NotFound(String),
    /// An idempotency key was used before for a different request.
    #[error("{0}")]
    KeyReused(String),
    /// A unique thing is taken, or the operation was already done.
    #[error("{0}")]
    Conflict(String),
    /// A provider refused or could not be reached.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A backend is down; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt data; details go to the log.
    #[error("{0}")]
    Internal(String),
}

/// Result of a use case.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ServiceError::NotFound(format!("{what} not found")),
            StoreError::Conflict(why) => ServiceError::Conflict(why),
            StoreError::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
            StoreError::Other(_) => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<crate::domain::ValidationError> for ServiceError {
    fn from(e: crate::domain::ValidationError) -> Self {
        ServiceError::Invalid(e.to_string())
    }
}

impl From<IdentityError> for ServiceError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::AlreadyExists(_) => ServiceError::Conflict(e.to_string()),
            IdentityError::InvalidPassword(_) | IdentityError::UsernameRequired(_) => {
                ServiceError::Invalid(e.to_string())
            }
            IdentityError::NotAuthorized | IdentityError::InvalidSession => {
                ServiceError::Unauthenticated(e.to_string())
            }
            IdentityError::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
            IdentityError::Other(_) => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<AppError> for ServiceError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Store(e) => e.into(),
            AppError::Identity(e) => e.into(),
            AppError::Queue(e @ crate::queue::QueueError::Unavailable(_)) => ServiceError::Unavailable(e.to_string()),
            AppError::Queue(e) => ServiceError::Internal(e.to_string()),
            AppError::Local(why) => ServiceError::Internal(why),
        }
    }
}

pub(crate) use crate::domain::view::rfc3339;
