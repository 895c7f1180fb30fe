//! `export_mp3`: a job's MP3, on the worker holding it, written to the user's own storage
//! before Audiomill stores its copy: a connection's bucket at the key its template makes, or
//! a presigned PUT URL. What trying again cannot mend (keys or bucket refused, the
//! connection deleted, an address that may not be reached) fails the job with a sentence;
//! an outage is tried again.

use crate::{
    buckets::ConnectionAccess,
    failures::{database_down, fatal},
    import::{Fetcher, Stop},
    scratch::WorkDir,
};
use audiomill_domain::contract::{ExportMp3Input, ExportedMp3, FailureKind, activity};
use audiomill_store::{BucketTrouble, Database, Export};
use std::{path::Path, sync::Arc, time::Duration};
use temporalio_common::error::ApplicationFailure;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

#[derive(Clone)]
pub struct ExportActivities {
    db: Database,
    work_dir: WorkDir,
    access: ConnectionAccess,
    fetcher: Arc<Fetcher>,
}

#[activities]
impl ExportActivities {
    /// Writes the job's MP3 where it asked, and notes where.
    #[activity(definition = activity::ExportMp3)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn export_mp3(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ExportMp3Input,
    ) -> Result<ExportedMp3, ActivityError> {
        let Some(job) = self.db.job(input.job_id).await.map_err(database_down)? else {
            return Err(fatal(
                FailureKind::SourceMissing,
                "The job no longer exists.",
            ));
        };
        let format = job.options.format;
        let path = self.work_dir.output_file(input.job_id, format);
        if tokio::fs::metadata(&path).await.is_err() {
            return Err(fatal(
                FailureKind::SourceNotLocal,
                format!("The {} is not on this worker.", format.label()),
            ));
        }
        let Some(sealer) = &self.access.sealer else {
            return Err(refused(
                "This server has no CONNECTION_SECRET_KEY, so it cannot write to your storage.",
            ));
        };
        let export = self.db.export_of(job.id, sealer).await.map_err(|_| {
            refused(
                "Where to write the MP3 cannot be read with this server's CONNECTION_SECRET_KEY.",
            )
        })?;
        let written_at = match export {
            None => {
                return Ok(ExportedMp3 {
                    written_at: String::new(),
                });
            }
            Some(Export::Connection {
                connection_id,
                template,
            }) => {
                let connection = self
                    .db
                    .connection(connection_id)
                    .await
                    .map_err(database_down)?;
                let bucket = self
                    .access
                    .open(connection.as_ref())
                    .await
                    .map_err(trouble)?;
                let prefix = connection.map(|c| c.prefix).unwrap_or_default();
                let stem = stem(&job.original_filename);
                let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
                let key = format!(
                    "{prefix}{}",
                    template.render(&stem, &job.id.to_string(), &date, format.extension())
                );
                bucket
                    .put_file(&key, &path, format.content_type())
                    .await
                    .map_err(trouble)?;
                key
            }
            Some(Export::PutUrl(url)) => {
                self.fetcher.put_file(&url, &path).await.map_err(stopped)?;
                url.redacted()
            }
        };
        self.db
            .record_export(job.id, &written_at)
            .await
            .map_err(database_down)?;
        tracing::info!(written_at, "MP3 exported");
        metrics::counter!("audiomill_exports_total").increment(1);
        Ok(ExportedMp3 { written_at })
    }
}

impl ExportActivities {
    pub fn new(
        db: Database,
        work_dir: WorkDir,
        access: ConnectionAccess,
        idle_timeout: Duration,
    ) -> Self {
        let fetcher = Fetcher::new(access.allow_private, idle_timeout);
        Self {
            db,
            work_dir,
            access,
            fetcher: Arc::new(fetcher),
        }
    }
}

/// A video's name without its extension, as the MP3 is named (`audio` when nothing is left).
fn stem(original: &str) -> String {
    let last = original.rsplit(['/', '\\']).next().unwrap_or_default();
    let stem = Path::new(last)
        .file_stem()
        .map(|s| s.to_string_lossy().trim().to_owned())
        .unwrap_or_default();
    if stem.is_empty() {
        "audio".into()
    } else {
        stem
    }
}

fn refused(why: impl Into<String>) -> ActivityError {
    fatal(FailureKind::ExportRefused, why)
}

fn unreachable(why: String) -> ActivityError {
    tracing::warn!(why, "export attempt failed; Temporal will retry it");
    ActivityError::application(
        ApplicationFailure::builder(why)
            .type_name(FailureKind::ExportUnreachable.name().to_owned())
            .build(),
    )
}

fn trouble(trouble: BucketTrouble) -> ActivityError {
    match trouble {
        BucketTrouble::Refused(why) => refused(why),
        BucketTrouble::Unreachable(why) => unreachable(why),
    }
}

fn stopped(stop: Stop) -> ActivityError {
    match stop {
        Stop::Refused(why) => refused(why),
        Stop::Unreachable(why) => unreachable(why),
        other => unreachable(format!("{other:?}")),
    }
}
