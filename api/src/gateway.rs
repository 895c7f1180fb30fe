//! [`Gateway`]: everything the gateway's handlers share, built once by the role that serves
//! them.

use crate::{auth, limits, live, status};
use audiomill_store::{Database, ObjectStore};
use std::sync::Arc;
use temporalio_client::Client;

/// Everything the gateway's handlers use.
pub struct Gateway {
    pub db: Database,
    pub objects: ObjectStore,
    pub temporal: Client,
    pub tokens: auth::TokenIssuer,
    pub passwords: auth::Passwords,
    pub limits: UploadLimits,
    pub rate_limits: limits::Limits,
    pub uploads: limits::UploadSlots,
    /// Event streams open, per user and in all.
    pub event_streams: limits::Slots,
    /// Final views of jobs whose workflow has closed.
    pub job_views: status::JobViews,
    /// The jobs someone follows live, each read once however many follow it.
    pub watchers: live::Watchers,
    /// Origins allowed to call the API from a browser (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// Checks the mail transport for `/health` (`None`: not checked here).
    pub mail_probe: Option<Probe>,
    /// The bearer token `/metrics` asks for (`None`: open, as in `dev`).
    pub metrics_token: Option<String>,
    /// Issues and checks signed download links.
    pub links: audiomill_domain::link::LinkSigner,
    /// With S3: answer downloads with a presigned URL that works this long (`None`: stream).
    pub download_redirect: Option<std::time::Duration>,
    /// Webhook endpoints may be on loopback and private addresses (`WEBHOOK_ALLOW_PRIVATE`).
    pub webhook_allow_private: bool,
    /// Imports may fetch from loopback and private addresses (`IMPORT_ALLOW_PRIVATE`).
    /// Folders of the workers' hosts admins may watch (`WATCH_DIRECTORIES`).
    pub watch_directories: Vec<std::path::PathBuf>,
    pub import_allow_private: bool,
    /// Seals users' storage keys and upload links (`CONNECTION_SECRET_KEY`); `None`:
    /// connections are off.
    pub sealer: Option<audiomill_store::Sealer>,
    /// Every user's limits unless an admin set their own (`QUOTA_STORAGE_MB`,
    /// `QUOTA_JOBS_PER_DAY`).
    pub quota: audiomill_domain::lifecycle::Quota,
    /// Resumable (tus) uploads' limits.
    pub resumable: ResumableLimits,
    /// Whether anyone may make an account (`ALLOW_SIGNUP`); invitations work either way.
    pub allow_signup: bool,
    /// Whether people may sign in with a password (`PASSWORD_SIGN_IN`); API keys work either
    /// way.
    pub password_sign_in: bool,
    /// Single sign-on with an OpenID provider, when one is configured (`OIDC_ISSUER`).
    pub sign_on: Option<crate::sign_on::SignOn>,
}

impl live::JobViews for Gateway {
    fn watchers(&self) -> &live::Watchers {
        &self.watchers
    }

    async fn read_view(
        &self,
        job: audiomill_domain::JobId,
    ) -> Result<Option<status::JobView>, audiomill_store::StoreError> {
        let Some(row) = self.db.job(job).await? else {
            return Ok(None);
        };
        Ok(Some(self.job_views.job_view(&self.temporal, &row).await))
    }
}

/// A check of a dependency the gateway does not otherwise use: what answered, or why not.
pub type Probe =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// How long resumable uploads wait, and how many one user may leave unfinished.
#[derive(Debug, Clone, Copy)]
pub struct ResumableLimits {
    /// An unfinished upload is removed this long after its creation.
    pub expiry: std::time::Duration,
    /// Unfinished uploads one user may have at once.
    pub max_unfinished: u64,
    /// Unfinished uploads one client address may have at once, over all its users.
    pub max_unfinished_per_address: u64,
    /// A chunk whose body sends nothing for this long is cut off (what arrived is kept).
    pub idle: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// Per file.
    pub max_bytes: u64,
    /// `file` parts per upload.
    pub max_files: usize,
    pub allowed_extensions: Vec<String>,
}
