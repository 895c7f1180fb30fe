//! What can go wrong with stored state, by kind, so callers can tell a missing object from an
//! outage.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database schema could not be migrated: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Reading or writing local files failed (the file store, a worker's scratch files).
    #[error("object storage failed: {0}")]
    Io(#[from] io::Error),
    /// The object store could not be reached, or refused the request.
    #[error("object storage is unavailable: {0}")]
    Unavailable(String),
    /// The object store is reachable but not usable as configured (a missing bucket).
    #[error("object storage is not set up: {0}")]
    NotSetUp(String),
    #[error("that {0} already exists")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}
