//! Audiomill's HTTP API from Rust.
//!
//! Most of it is generated from `openapi/openapi.json` by progenitor ([`Client`], its one
//! method per operation, and the request and response [`types`]); `make openapi` regenerates
//! it and a test keeps it current. Written by hand, because a generated method could not do
//! them: [`Client`] construction with a token ([`connect`]), logging in with HTTP Basic
//! ([`login`]), the streaming upload with progress and an `Idempotency-Key` ([`upload`]), the
//! resumable (tus) uploads ([`create_resumable`], [`send_resumable`], ...), and
//! a job's live events ([`events`]); and caps on what is read from the server
//! ([`MAX_ANSWER_BYTES`], [`MAX_EVENT_BYTES`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = audiomill_client::login("http://127.0.0.1:8080", "ann@example.com", "secret").await?;
//! let client = audiomill_client::connect("http://127.0.0.1:8080", &tokens.access_token)?;
//! let page = client.list_jobs().limit(10).send().await?;
//! for job in &page.jobs {
//!     println!("{} {:?} {}", job.job_id, job.status, job.filename);
//! }
//! # Ok(()) }
//! ```

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unused_imports, dead_code)]
mod generated;
mod events;
mod limited;
mod resumable;
mod upload;

pub use events::{EventsError, JobEvent, events};
pub use generated::{ByteStream, Client, ClientInfo, Error, ResponseValue, types};
pub use limited::{MAX_ANSWER_BYTES, MAX_EVENT_BYTES};
pub use resumable::{
    Resumable, create_resumable, resumable_offset, send_resumable, terminate_resumable,
};
pub use upload::{UploadAnswer, UploadOptions, import, upload};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use std::time::Duration;

/// How long to wait for a connection before giving up on the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for the server at `base_url` that sends `access_token` with every request.
pub fn connect(base_url: &str, access_token: &str) -> Result<Client, ConnectError> {
    authorized(base_url, &format!("Bearer {access_token}"))
}

/// Logs in with HTTP Basic and returns the token pair.
pub async fn login(
    base_url: &str,
    email: &str,
    password: &str,
) -> Result<types::TokenPair, Error<types::ErrorBody>> {
    let credentials = STANDARD.encode(format!("{email}:{password}"));
    let client = authorized(base_url, &format!("Basic {credentials}"))
        .map_err(|error| Error::InvalidRequest(error.to_string()))?;
    Ok(client.login().send().await?.into_inner())
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the token or credentials contain characters a header cannot carry")]
    Unsendable,
    #[error("the HTTP client could not start: {0}")]
    Http(#[from] reqwest::Error),
}

fn authorized(base_url: &str, authorization: &str) -> Result<Client, ConnectError> {
    let mut value = HeaderValue::from_str(authorization).map_err(|_| ConnectError::Unsendable)?;
    value.set_sensitive(true);
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .default_headers(HeaderMap::from_iter([(AUTHORIZATION, value)]))
        .build()?;
    Ok(Client::new_with_client(
        base_url.trim_end_matches('/'),
        http,
    ))
}
