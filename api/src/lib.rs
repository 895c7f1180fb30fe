//! The Audiomill gateway: a poem-openapi service.
//!
//! - [`auth`]: password hashing, access JWTs and refresh tokens.
//! - [`scopes`]: what a credential may do, named by every operation that needs one.
//! - [`routes`]: the operations (`/login`, `/validate`, `/token/refresh`, `/upload`,
//!   `/status/{id}`, `/download/{id}`, `/health`), each returning a typed response.
//! - [`error`]: the one error shape, `{"error", "message"}`, for every failure, including
//!   the framework's own.
//! - [`body`]: one cap, deadline and content-type rule for every body but the upload's.
//! - [`uploads`]: everything an upload (a form or tus) goes through before its job starts.
//! - [`limits`]: rate limits in front of every operation.
//! - [`params`]: checked values (job ids) as the API types them.
//! - [`metrics`]: Prometheus metrics, labelled with route templates only.
//! - `page`: errors as a page for browsers that open a download link.
//! - [`status`]: a job's status, read from the job row and Temporal's describe.
//! - `webapp`: the web app people use, embedded, at `/` and `/app/{file}`.
//! - `session_cookie`: the browser session's cookie (its refresh token), read and written.
//! - [`sign_on`]: single sign-on with an OpenID provider.
//! - [`Gateway`] (`gateway.rs`): what the handlers share; [`app`] (`app.rs`): the routes with
//!   the layers in front of them, the Swagger UI and the document.

mod app;
pub mod auth;
pub mod body;
mod document;
pub mod error;
mod gateway;
mod identify;
pub mod limits;
pub mod live;
pub mod metrics;
mod page;
pub mod params;
mod request_log;
pub mod routes;
pub mod scopes;
pub mod server;
mod session_cookie;
pub mod sign_on;
pub mod status;
pub mod uploads;
mod webapp;

pub use app::{app, openapi_json};
pub use gateway::{Gateway, Probe, ResumableLimits, UploadLimits};
