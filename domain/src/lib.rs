//! The vocabulary every Audiomill component shares.
//!
//! - [`ids`]: checked identifiers and values (`JobId`, `UserId`, `EmailAddress`, `ObjectKey`).
//! - [`job`]: the life cycle of a conversion job as users see it.
//! - [`duration`]: durations as people read them.
//! - [`output`]: what an MP3 is to be (encoding, trim, loudness, presets), as an upload asks.
//! - [`lifecycle`]: how long a job's objects are kept, and the quotas of a user.
//! - [`link`]: signed download links, issued by the worker and the gateway, checked by the
//!   gateway.
//! - [`secret`]: one-time secrets sent by mail, and the hash they are kept as.
//! - [`connection`]: a user's own S3-compatible storage: its endpoint, bucket and the keys
//!   MP3s are written at.
//! - [`container`]: the video containers converted, known by their first bytes.
//! - [`address`]: where a URL a user names may lead, and whether it may be reached.
//! - [`import`]: the links a job imports its video from, and what of them may be shown.
//! - [`watch`]: watch folders: what a scan of one is asked and answers, and the job an
//!   object's version makes.
//! - [`webhook`]: webhook events, endpoint URLs and the addresses they may reach, secrets and
//!   Standard Webhooks signatures.
//! - [`segment`]: how a long source is cut into parts converted apart and joined.
//! - [`contract`]: the `ConvertVideo` workflow's task queue, activity names, their inputs and
//!   outputs, and the typed failure names. Both the gateway (which starts workflows) and the
//!   worker (which runs them) import these, so the two can never disagree.

pub mod address;
pub mod connection;
pub mod container;
pub mod contract;
pub mod duration;
pub mod ids;
pub mod import;
pub mod in_parts;
pub mod job;
pub mod lifecycle;
pub mod link;
pub mod output;
pub mod secret;
pub mod watch;
pub mod webhook;

pub use ids::{
    BatchId, ConnectionId, EmailAddress, InvalidValue, JobId, ObjectKey, UploadId, UserId, WatchId,
    WebhookId,
};
pub use job::{JobStatus, Step};
