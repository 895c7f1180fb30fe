//! Where Audiomill keeps its state.
//!
//! - [`Database`]: users, login sessions, refresh tokens and jobs, on SQLite (embedded) or
//!   MySQL/MariaDB, through one portable set of migrations.
//! - [`ObjectStore`]: uploaded videos and finished MP3s, as plain files under a directory
//!   (embedded).

mod database;
mod error;
mod objects;
pub mod time;

pub use database::{Database, Job, NewJob, RefreshOutcome, User};
pub use error::StoreError;
pub use objects::{ObjectBody, ObjectStore, PutError};
