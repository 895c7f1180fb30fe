//! The machinery of resumable (tus) uploads behind the operations in `routes::resumable`:
//! what the requests share (`request`: the parsed request, the caller's upload, the
//! refusals), the lease that lets one request at a time touch an upload (`lease`), creating
//! an upload (`creation`), and appending a chunk and starting the job once the last byte is
//! in (`appending`).

mod appending;
mod creation;
mod lease;
mod request;

pub(crate) use appending::{AppendRefusal, remove, start_when_due, take_chunk};
pub(crate) use creation::{CreateRefusal, Creating};
pub(crate) use lease::{LeaseRefusal, under_lease};
pub(crate) use request::{
    LookupRefusal, Standing, TusHeaders, TusRefusal, TusRequest, callers, lost_task,
};
