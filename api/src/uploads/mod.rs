//! Everything an upload goes through before its job starts, for both ways of uploading (a
//! multipart form on `POST /upload`, tus on `/uploads`):
//!
//! - [`file`]: the uploaded file: its name, its container (sniffed from the first bytes) and
//!   the minimum rate its bytes must arrive at.
//! - [`framing`]: the multipart form's framing limits, checked as the bytes stream in.
//! - `choices`: the form's fields as the OpenAPI document describes them.
//! - `intake`: the one entry point of a form upload (`intake::receive`): the caller's
//!   allowance, the form read and its videos streamed into storage, a job started for each;
//!   and what a tus upload shares with it (`intake::start_resumed`).
//! - `import`: a job whose video is fetched from a link (`POST /imports`) instead of sent.
//! - `export`: where a job's MP3 goes besides Audiomill's storage (`export_to`, `export_url`).
//! - `idempotency`: `Idempotency-Key`s, reserved once and naming their job.
//! - [`tus`]: the tus protocol's headers and the checks on each chunk.
//! - `resumable`: creating a tus upload, appending its chunks under a lease, starting its
//!   job when the last byte is in.

pub(crate) mod allowance;
pub(crate) mod choices;
pub(crate) mod export;
pub mod file;
pub(crate) mod form;
pub mod framing;
pub(crate) mod grant;
pub(crate) mod idempotency;
pub(crate) mod import;
pub(crate) mod intake;
pub(crate) mod refusal;
pub(crate) mod resumable;
pub(crate) mod storing;
pub mod tus;
