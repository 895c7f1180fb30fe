//! `import_source`: a job's video fetched from the link it was given, into storage at its
//! source key, where `fetch_source` then finds it as it finds an upload.
//!
//! The address rules are the webhooks' at their strictest: every address the host resolves
//! to must be public (unless `IMPORT_ALLOW_PRIVATE`), the connection goes only to those, and
//! each redirect is read by hand and checked again. The body streams into storage under the
//! user's size limit and the room their quota leaves, is refused unless its first bytes are a
//! container we convert (so a playlist, a concatenation list or a web page never reaches a
//! demuxer), and must keep up a minimum pace. Every way a fetch fails ends in a sentence for
//! the user that names the server but never the link's credentials; what can pass (a server
//! error, a timeout) is retried by Temporal, what cannot (404, too large, not a video) is not.

mod body;
mod fetcher;

use body::{BodyStop, checked_body, megabytes, not_video, too_large};
pub(crate) use fetcher::Fetcher;
use fetcher::{request_failure, url_host};

use crate::buckets::ConnectionAccess;
use crate::convert::keep_alive;
use crate::failures::{database_down, fatal, storage_down};
use crate::host_folders::HostFolders;
use audiomill_domain::{
    JobId, ObjectKey,
    contract::{FailureKind, ImportPlan, ImportSourceInput, ImportedSource, activity},
    import::ImportUrl,
};
use audiomill_store::{BucketTrouble, Connection, Database, ObjectStore, OverQuota, PutError};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::{
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use temporalio_common::error::ApplicationFailure;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// How imports reach the network.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// Fetch from loopback and private addresses too (`IMPORT_ALLOW_PRIVATE`).
    pub allow_private: bool,
    /// How long a server may send nothing, before the headers or between two reads.
    pub idle_timeout: Duration,
    /// The slowest average pace accepted, in bytes per second, once [`PACE_GRACE`] has passed.
    pub min_bytes_per_second: u64,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            idle_timeout: Duration::from_secs(30),
            min_bytes_per_second: 8 * 1024,
        }
    }
}

/// How long a fetch runs before its average pace is held to the minimum: a server may start
/// slowly.
const PACE_GRACE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ImportActivities {
    db: Database,
    objects: ObjectStore,
    settings: Arc<ImportSettings>,
    fetcher: Arc<Fetcher>,
    access: ConnectionAccess,
    folders: HostFolders,
}

/// What the Temporal Web UI shows of an import under way.
#[derive(Serialize)]
struct ImportProgress {
    bytes: u64,
    /// The length the server announced, when it did.
    total: Option<u64>,
}

/// Why an import (or an upload to a link) stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Trying again cannot help: the sentence says why.
    Refused(String),
    /// The server or the network may do better on another attempt.
    Unreachable(String),
    /// The video is larger than the storage the user's quota leaves.
    OverQuota { limit: u64, used: u64 },
    /// Our storage failed: retried, like any step's storage outage.
    Storage(audiomill_store::StoreError),
}

#[activities]
impl ImportActivities {
    /// Fetches the job's video from its link into storage and records its size. A job whose
    /// video is in already (an attempt that ended after recording it) answers with that size.
    #[activity(definition = activity::ImportSource)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn import_source(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ImportSourceInput,
    ) -> Result<ImportedSource, ActivityError> {
        let job = self.db.job(input.job_id).await.map_err(database_down)?;
        let Some(job) = job else {
            return Err(fatal(
                FailureKind::SourceMissing,
                "The job no longer exists.",
            ));
        };
        let Some(source) = self.source(job.id).await? else {
            return Ok(ImportedSource {
                size: job.source_size,
            });
        };
        let limit = self.limit(job.user_id, &input.plan).await?;
        let received = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let server = RwLock::new(String::new());
        let fetching = async {
            let opened = self.open(&source).await?;
            *server.write().expect("not poisoned") = opened.server.clone();
            self.store_opened(opened, &job.source_key, limit, &received, &total)
                .await
        };
        let progress = || ImportProgress {
            bytes: received.load(Ordering::Relaxed),
            total: Some(total.load(Ordering::Relaxed)).filter(|t| *t > 0),
        };
        let fetched = match keep_alive(&ctx, fetching, progress).await {
            Some(fetched) => fetched,
            None => {
                self.discard(&job.source_key).await;
                return Err(ActivityError::cancelled());
            }
        };
        let server = server.into_inner().expect("not poisoned");
        let size = match fetched {
            Ok(size) => size,
            Err(stop) => return Err(self.stopped(job.id, &job.source_key, &server, stop).await),
        };
        let recorded = self.db.record_import(job.id, size, &input.plan.quota).await;
        match recorded.map_err(database_down)? {
            Ok(()) => {
                tracing::info!(size, host = server, "video imported");
                metrics::counter!("audiomill_imports_total", "outcome" => "imported").increment(1);
                Ok(ImportedSource { size })
            }
            Err(OverQuota::Storage { limit, used } | OverQuota::JobsPerDay { limit, used }) => {
                let stop = Stop::OverQuota { limit, used };
                Err(self.stopped(job.id, &job.source_key, &server, stop).await)
            }
        }
    }
}

impl ImportActivities {
    pub fn new(
        db: Database,
        objects: ObjectStore,
        settings: ImportSettings,
        (access, folders): (ConnectionAccess, HostFolders),
    ) -> Self {
        let fetcher = Fetcher::new(settings.allow_private, settings.idle_timeout);
        Self {
            db,
            objects,
            settings: Arc::new(settings),
            fetcher: Arc::new(fetcher),
            access,
            folders,
        }
    }

    /// Where job `job`'s video is still to be fetched from; `None` once it is in storage.
    async fn source(&self, job: JobId) -> Result<Option<Source>, ActivityError> {
        if let Some(url) = self.db.import_url(job).await.map_err(database_down)? {
            return Ok(Some(Source::Link(url)));
        }
        if let Some(path) = self.db.host_import(job).await.map_err(database_down)? {
            return Ok(Some(Source::HostFile(path)));
        }
        let bucket = self.db.bucket_import(job).await.map_err(database_down)?;
        Ok(bucket.map(|(connection, key)| Source::Bucket(connection.map(Box::new), key)))
    }

    /// The most bytes the video may have: the user's size limit, or less when their storage
    /// quota leaves less room now.
    async fn limit(
        &self,
        user: audiomill_domain::UserId,
        plan: &ImportPlan,
    ) -> Result<u64, ActivityError> {
        let Some(quota) = plan.quota.storage_bytes else {
            return Ok(plan.max_bytes);
        };
        let now = audiomill_store::time::now_millis();
        let usage = self.db.usage(user, now).await.map_err(database_down)?;
        Ok(plan
            .max_bytes
            .min(quota.saturating_sub(usage.storage_bytes)))
    }

    /// The failure an import ends with, once what it stored is removed.
    async fn stopped(
        &self,
        job: JobId,
        key: &ObjectKey,
        server: &str,
        stop: Stop,
    ) -> ActivityError {
        self.discard(key).await;
        tracing::warn!(%job, host = server, ?stop, "import stopped");
        let outcome = match stop {
            Stop::Unreachable(_) | Stop::Storage(_) => "unreachable",
            Stop::Refused(_) | Stop::OverQuota { .. } => "refused",
        };
        metrics::counter!("audiomill_imports_total", "outcome" => outcome).increment(1);
        match stop {
            Stop::Refused(why) => fatal(FailureKind::ImportRefused, why),
            Stop::OverQuota { limit, used } => fatal(
                FailureKind::ImportRefused,
                format!(
                    "The video is larger than the {} your storage quota leaves ({} of {} used).",
                    megabytes(limit.saturating_sub(used)),
                    megabytes(used),
                    megabytes(limit)
                ),
            ),
            Stop::Storage(error) => storage_down(error),
            Stop::Unreachable(why) => ActivityError::application(
                ApplicationFailure::builder(why)
                    .type_name(FailureKind::ImportUnreachable.name().to_owned())
                    .build(),
            ),
        }
    }

    async fn discard(&self, key: &ObjectKey) {
        if let Err(error) = self.objects.delete(key).await {
            tracing::warn!(%error, %key, "could not remove a stopped import");
        }
    }

    /// Opens the job's video where it is: the response of its link (redirects followed, each
    /// checked), the object of a connection's bucket, or a file of a watched folder.
    async fn open(&self, source: &Source) -> Result<Opened, Stop> {
        match source {
            Source::Link(url) => {
                let response = self.fetcher.follow(url).await?;
                let server = url_host(response.url());
                let media_type = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|value| value.to_str().ok())
                    .map(|value| {
                        value
                            .split(';')
                            .next()
                            .unwrap_or_default()
                            .trim()
                            .to_owned()
                    });
                let (said, idle) = (server.clone(), self.settings.idle_timeout);
                Ok(Opened {
                    from_link: true,
                    length: response.content_length(),
                    media_type,
                    body: response
                        .bytes_stream()
                        .map_err(move |error| request_failure(&said, &error, idle))
                        .boxed(),
                    server,
                })
            }
            Source::Bucket(connection, key) => {
                let bucket = self
                    .access
                    .open(connection.as_deref())
                    .await
                    .map_err(stop_for)?;
                let (length, body) = bucket.get(key).await.map_err(stop_for)?;
                Ok(Opened {
                    from_link: false,
                    server: bucket.host().to_owned(),
                    length,
                    media_type: None,
                    body: body.boxed(),
                })
            }
            Source::HostFile(path) => {
                let (length, body) = self.folders.open(path).await.map_err(Stop::Refused)?;
                Ok(Opened {
                    from_link: false,
                    server: "The server's folder".to_owned(),
                    length: Some(length),
                    media_type: None,
                    body: body.boxed(),
                })
            }
        }
    }

    /// Streams the opened video into storage at `key`, under `limit`; its size.
    async fn store_opened(
        &self,
        opened: Opened,
        key: &ObjectKey,
        limit: u64,
        received: &AtomicU64,
        total: &AtomicU64,
    ) -> Result<u64, Stop> {
        if let Some(length) = opened.length {
            if length > limit {
                return Err(too_large(limit, Some(length)));
            }
            total.store(length, Ordering::Relaxed);
        }
        let server = opened.server;
        let min_rate = self.settings.min_bytes_per_second;
        let body = checked_body(opened.body, limit, received, min_rate);
        match self.objects.put_stream(key, Box::pin(body)).await {
            Ok(size) => Ok(size),
            Err(PutError::Source(BodyStop::NotVideo)) => {
                Err(not_video(opened.media_type.as_deref(), opened.from_link))
            }
            Err(PutError::Source(BodyStop::Empty)) => {
                Err(Stop::Refused(format!("{server} sent an empty file.")))
            }
            Err(PutError::Source(BodyStop::TooLarge)) => Err(too_large(limit, None)),
            Err(PutError::Source(BodyStop::TooSlow)) => Err(Stop::Unreachable(format!(
                "{server} sent the video too slowly (under {} KiB/s).",
                min_rate / 1024
            ))),
            Err(PutError::Source(BodyStop::Broken(why))) => Err(Stop::Unreachable(why)),
            Err(PutError::Storage(error)) => Err(Stop::Storage(error)),
        }
    }
}

/// Where a job's video is to be fetched from.
enum Source {
    Link(ImportUrl),
    /// A connection's bucket (`None`: the connection was deleted since) and the object's key.
    Bucket(Option<Box<Connection>>, String),
    /// A file of a watched folder of the host.
    HostFile(PathBuf),
}

/// A video opened where it is, not yet read.
struct Opened {
    /// Whether it comes from a link (else from a bucket or a folder), for sentences.
    from_link: bool,
    /// Who sends it, for sentences.
    server: String,
    length: Option<u64>,
    media_type: Option<String>,
    body: BoxStream<'static, Result<Bytes, String>>,
}

/// What trouble with a user's bucket means for the import.
fn stop_for(trouble: BucketTrouble) -> Stop {
    match trouble {
        BucketTrouble::Refused(why) => Stop::Refused(why),
        BucketTrouble::Unreachable(why) => Stop::Unreachable(why),
    }
}
