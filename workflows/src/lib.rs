//! Audiomill's workflows: they decide, and do no I/O; every side effect is an activity with
//! explicit timeouts and a retry policy ([`options`]).
//!
//! - [`ConvertVideo`] (`convert_video.rs`): one upload, one durable run.
//! - [`DeliverWebhooks`] (`deliver_webhooks.rs`): how a job ended (or how far it got), told to
//!   its owner's webhook endpoints, in a child run that outlives the job.
//! - [`CleanExpired`] (`clean_expired.rs`): what retention no longer keeps, removed on a
//!   schedule.
//! - [`WatchFolder`] (`watch_folder.rs`): a watch's folder scanned page by page, a job
//!   started for each new video, for as long as the watch runs.
//! - [`SendAccountMail`] (`account_mail.rs`): a mail about an account (a password reset link).
//!
//! A change to what a workflow does, in an order that a run already under way would replay
//! differently, goes behind `ctx.patched(...)` and is named in [`LIVE_PATCHES`]. Recorded runs
//! of every workflow are kept per set of live patches under `tests/histories/` (never
//! overwritten), and `workflows/tests/replay.rs` replays all of them through the code as it
//! is, so a change that breaks runs recorded under any earlier set fails the tests.

mod account_mail;
mod all_at_once;
mod clean_expired;
mod convert_video;
mod deliver_webhooks;
mod options;
mod watch_folder;

/// Every patch the workflows still test with `ctx.patched(...)`: runs recorded before a patch
/// take its old branch on replay, runs recorded since take its new one, and both must replay.
pub const LIVE_PATCHES: &[&str] = &[convert_video::FEWER_ROUND_TRIPS];

/// The name of the set of patches runs started now carry (`unpatched` before any): the
/// folder of `tests/histories/` their recordings go to.
pub fn patch_set() -> String {
    if LIVE_PATCHES.is_empty() {
        "unpatched".to_owned()
    } else {
        LIVE_PATCHES.join("+")
    }
}

pub use account_mail::SendAccountMail;
pub use clean_expired::CleanExpired;
pub use convert_video::ConvertVideo;
pub use deliver_webhooks::DeliverWebhooks;
pub use watch_folder::WatchFolder;
