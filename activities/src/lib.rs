//! The `ConvertVideo` workflow's activities, one struct of injected clients.
//!
//! - [`ConvertActivities`]: `validate_token`, `fetch_source`, `transcode`, `store_mp3`,
//!   `send_email`. Each body is idempotent, because Temporal may run an activity again after a
//!   timeout or a lost worker, and an old attempt can still be finishing beside a new one.
//! - [`ImportActivities`]: `import_source`, a job's video fetched from its link into storage,
//!   under the address rules of webhooks.
//! - [`ExportActivities`]: `export_mp3`, a job's MP3 written to the user's own storage.
//! - [`HostFolders`]: folders of the workers' hosts an operator lets be watched.
//! - [`WatchActivities`]: `scan_watch`, a page of a watch folder and the jobs its new
//!   videos make.
//! - [`transcode`]: the FFmpeg conversion, with its media limits.
//! - [`isolated`]: runs that conversion in a child process with resource limits, so a crash
//!   or hang of a decoder costs one attempt and never the worker.
//! - [`mailer`]: the notification e-mail, as `.eml` files or over SMTP.
//! - [`WebhookActivities`]: `prepare_webhooks` and `deliver_webhook`, of the `DeliverWebhooks`
//!   workflow a job starts when it ends.
//! - [`LifecycleActivities`]: `discard_source` and `clean_expired`, what retention removes.
//! - [`AccountMailActivities`]: `send_account_mail`, of the `SendAccountMail` workflow (a
//!   password reset link).
//! - [`ProgressTeller`]: how a transcode starts telling `job.progress` milestones.
//! - [`metered`]: step metrics around every activity.
//! - [`WorkDir`]: a worker's own scratch directory, safe beside other workers'.

mod account_mail;
mod buckets;
mod convert;
mod export;
mod failures;
mod held;
mod host_folders;
mod import;
mod in_parts;
pub mod isolated;
mod lifecycle;
pub mod mailer;
pub mod metered;
mod progress;
mod scratch;
pub mod transcode;
mod watch;
mod webhooks;

pub use account_mail::AccountMailActivities;
pub use buckets::ConnectionAccess;
pub use convert::{ConvertActivities, WorkerSettings};
pub use export::ExportActivities;
pub use host_folders::HostFolders;
pub use import::{ImportActivities, ImportSettings};
pub use lifecycle::LifecycleActivities;
pub use mailer::Mailer;
pub use progress::ProgressTeller;
pub use scratch::WorkDir;
pub use watch::WatchActivities;
pub use webhooks::{WebhookActivities, WebhookSettings};
