//! The HTTP operations, in groups: [`accounts`] (logging in and tokens), [`keys`] (API keys), [`logins`] (signing out everywhere, the password), [`password`] (a forgotten password), [`jobs`] (uploading,
//! following and deleting jobs), [`imports`] (jobs whose videos are fetched from links), [`connections`] (users' own buckets), [`resumable`] (tus uploads), [`batches`] (the jobs of an upload with several files), [`listing`] (a user's jobs, page by page), [`downloads`] (the
//! MP3s), [`health`], [`stats`], [`webhooks`] (endpoints told when jobs end) and [`users`] (deleting all of one's jobs, admins changing accounts), [`admin`] (the accounts as admins see them, adding one), [`signup`] (invitations and making an account), [`sign_on`] (single sign-on with an OpenID provider), [`upload_tokens`] (credentials that may only upload). Each operation returns a typed response whose variants document every status;
//! the status code is decided there and nowhere else. What the groups share is in `context`: the security schemes,
//! authentication, finding the caller's job, and the common errors.

#[macro_use]
mod context;

mod accepted;
mod accounts;
mod admin;
mod batches;
mod connections;
mod downloads;
mod events;
mod health;
mod imports;
pub use health::CHECK_TIMEOUT;
mod jobs;
mod keys;
mod listing;
mod logins;
mod password;
mod resumable;
mod session;
mod sign_on;
mod signup;
mod stats;
mod upload_tokens;
mod users;
mod watches;
mod webhooks;

use crate::gateway::Gateway;
use context::Context;
use std::sync::Arc;

/// Every operation of the gateway, as poem-openapi serves and documents them: those about
/// people and their credentials, then those about jobs and the service (two groups, since
/// poem-openapi takes at most sixteen in one).
pub type Api = (IdentityApi, WorkApi);

type IdentityApi = (
    accounts::AccountsApi,
    session::SessionApi,
    keys::KeysApi,
    logins::LoginsApi,
    password::PasswordApi,
    signup::SignupApi,
    users::UsersApi,
    admin::AdminApi,
    sign_on::SignOnApi,
);

type WorkApi = (
    jobs::JobsApi,
    imports::ImportsApi,
    connections::ConnectionsApi,
    watches::WatchesApi,
    upload_tokens::UploadTokensApi,
    resumable::ResumableApi,
    batches::BatchesApi,
    listing::ListingApi,
    events::EventsApi,
    downloads::DownloadsApi,
    health::HealthApi,
    stats::StatsApi,
    webhooks::WebhooksApi,
);

/// The operations, serving `gateway`.
pub fn api(gateway: Arc<Gateway>) -> Api {
    with_context(Context::serving(gateway))
}

/// The operations, able to describe themselves but not to serve (for printing the document).
pub fn spec_only() -> Api {
    with_context(Context::describing())
}

fn with_context(cx: Context) -> Api {
    let identity = (
        accounts::AccountsApi { cx: cx.clone() },
        session::SessionApi { cx: cx.clone() },
        keys::KeysApi { cx: cx.clone() },
        logins::LoginsApi { cx: cx.clone() },
        password::PasswordApi { cx: cx.clone() },
        signup::SignupApi { cx: cx.clone() },
        users::UsersApi { cx: cx.clone() },
        admin::AdminApi { cx: cx.clone() },
        sign_on::SignOnApi { cx: cx.clone() },
    );
    let work = (
        jobs::JobsApi { cx: cx.clone() },
        imports::ImportsApi { cx: cx.clone() },
        connections::ConnectionsApi { cx: cx.clone() },
        watches::WatchesApi { cx: cx.clone() },
        upload_tokens::UploadTokensApi { cx: cx.clone() },
        resumable::ResumableApi { cx: cx.clone() },
        batches::BatchesApi { cx: cx.clone() },
        listing::ListingApi { cx: cx.clone() },
        events::EventsApi { cx: cx.clone() },
        downloads::DownloadsApi { cx: cx.clone() },
        health::HealthApi::new(cx.clone()),
        stats::StatsApi { cx: cx.clone() },
        webhooks::WebhooksApi { cx },
    );
    (identity, work)
}
