//! Audiomill's workflows: they decide, and do no I/O; every side effect is an activity with
//! explicit timeouts and a retry policy ([`options`]).
//!
//! - [`ConvertVideo`] (`convert_video.rs`): one upload, one durable run.
//! - [`DeliverWebhooks`] (`deliver_webhooks.rs`): how a job ended (or how far it got), told to
//!   its owner's webhook endpoints, in a child run that outlives the job.
//! - [`CleanExpired`] (`clean_expired.rs`): what retention no longer keeps, removed on a
//!   schedule.
//!
//! A change to what a workflow does, in an order that a run already under way would replay
//! differently, goes behind `ctx.patched(...)`; `tests/histories.rs` replays recorded runs of
//! every workflow through the code as it is, so a change that breaks them fails the tests.

mod all_at_once;
mod clean_expired;
mod convert_video;
mod deliver_webhooks;
mod options;

pub use clean_expired::CleanExpired;
pub use convert_video::ConvertVideo;
pub use deliver_webhooks::DeliverWebhooks;
