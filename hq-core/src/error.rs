//! Errors as values. Each variant maps to one clear answer at the HTTP edge.

use thiserror::Error;

/// A failure of an adapter (disk, network, AWS). Never caused by user input.
#[derive(Debug, Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// What a service call can answer besides success.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("username is already taken")]
    UsernameTaken,
    #[error("invalid username or password")]
    BadCredentials,
    #[error("too many failed sign-in attempts; try again in {retry_after_secs} s")]
    LoginLocked { retry_after_secs: u64 },
    #[error("not signed in, or the session has expired")]
    Unauthenticated,
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
