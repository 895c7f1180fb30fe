//! Where Audiomill keeps its state.
//!
//! - [`Database`]: users, login sessions, refresh tokens, API keys ([`ApiKey`]) and jobs, on SQLite (embedded) or
//!   MySQL/MariaDB, through one portable set of migrations.
//! - [`ObjectStore`]: uploaded videos and finished MP3s, as plain files under a directory
//!   (embedded) or in an S3 bucket.
//! - [`JobFilter`]: listing jobs newest first, a keyset page at a time.
//! - [`WebhookEndpoint`]: webhook endpoints, their messages and delivery attempts.
//! - [`DueJob`], [`Usage`]: retention's due objects, quotas' usage, removing a user's jobs.
//! - [`Resumable`], [`PendingObject`]: resumable (tus) uploads, their rows and their bytes.
//! - [`Connection`]: users' own S3-compatible storage, their secrets sealed ([`Sealer`]);
//!   jobs that import from one or export to one.
//! - [`Watch`]: watch folders, and the object versions each has made a job of.
//! - Jobs imported from a link: the link, kept apart until the video is in.
//! - [`UploadStats`]: statistics of a user's or everyone's jobs, computed by the database.

mod connections;
mod database;
mod directory;
mod error;
mod idempotency;
mod imports;
mod invitations;
mod keys;
mod lifecycle;
mod listing;
mod objects;
mod one_time_links;
mod pending;
mod quota;
mod resets;
mod resumable;
mod s3;
mod sealed;
mod sign_on;
mod sources;
mod stats;
mod stream;
pub mod time;
mod upload_tokens;
mod user_bucket;
mod watches;
mod webhooks;

pub use database::{Database, Job, NewJob, RefreshOutcome, User};
pub use error::StoreError;
pub use idempotency::{ABANDONED_AFTER_MS, KEY_LIFETIME_MS, KeyClaim, KeyedUpload};
pub use invitations::{INVITATION_LIFETIME_MS, JoinRefusal};
pub use keys::{ApiKey, NewApiKey, TooManyKeys};
pub use lifecycle::DueJob;
pub use listing::{JobFilter, PageAfter};
pub use objects::{InPlace, ObjectStore, PutError, write_pieces};
pub use pending::{Appended, PendingObject};
pub use quota::{NotRecorded, OverQuota, OwnQuota, Usage};
pub use resets::{MAX_RESETS_PER_HOUR, RESET_LIFETIME_MS};
pub use resumable::{Creation, CreationLimits, CreationRefusal, NewResumable, Resumable};
pub use s3::{PART_SIZE, S3Settings};
pub use sealed::Sealer;
pub use sign_on::{SIGN_ON_LIFETIME_MS, SignOnAccount, SignOnAttempt};
pub use sources::{
    Connection, Export, JobImport, MAX_CONNECTIONS_PER_USER, NewConnection, NewExport, SealedExport,
};
pub use stats::{DayCount, OutcomeCounts, StatsScope, UploadStats};
pub use stream::ObjectBody;
pub use upload_tokens::UploadToken;
pub use user_bucket::{BucketTrouble, ListedObject, UserBucket};
pub use watches::{
    MAX_WATCHES_PER_USER, NewWatch, Watch, WatchCounts, WatchRecord, WatchedObject, WatchedPlace,
};
pub use webhooks::{
    DeliveryAttempt, EndpointChanges, MAX_ENDPOINTS_PER_USER, NewEndpoint, ROTATION_OVERLAP_MS,
    WebhookEndpoint, WebhookMessage,
};
