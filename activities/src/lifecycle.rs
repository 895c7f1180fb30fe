//! The activities of retention: removing an uploaded video once its job no longer needs it
//! (`discard_source`, a step of `ConvertVideo`), and the cleanup's batches of what has
//! expired (`clean_expired`, of the scheduled `CleanExpired` workflow). Both are idempotent:
//! an object is deleted before its removal is recorded, and deleting what is gone succeeds, so
//! an attempt cut off half-way (a storage outage, a lost worker) is simply run again.

use crate::failures::{database_down, storage_down};
use audiomill_domain::contract::{CleanBatchInput, CleanupReport, DiscardSourceInput, activity};
use audiomill_store::{Database, ObjectStore, time};
use std::sync::Arc;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

#[derive(Clone)]
pub struct LifecycleActivities {
    db: Database,
    objects: ObjectStore,
}

impl LifecycleActivities {
    pub fn new(db: Database, objects: ObjectStore) -> Self {
        Self { db, objects }
    }
}

impl LifecycleActivities {
    /// Up to `limit` resumable uploads past their expiry: an unfinished one's bytes and row,
    /// a finished one's row (its object is its job's video).
    async fn clean_uploads(
        &self,
        input: &CleanBatchInput,
        report: &mut CleanupReport,
    ) -> Result<(), ActivityError> {
        let uploads = self
            .db
            .expired_resumables(input.as_of, input.limit)
            .await
            .map_err(database_down)?;
        report.more |= uploads.len() as u32 >= input.limit;
        for upload in uploads {
            self.objects
                .discard_unstarted(&upload)
                .await
                .map_err(storage_down)?;
            self.db
                .delete_resumable(upload.upload.id)
                .await
                .map_err(database_down)?;
            if upload.started_at.is_none() {
                report.uploads_removed += 1;
                report.objects_removed += 1;
            }
            report.rows_removed += 1;
        }
        Ok(())
    }
}

#[activities]
impl LifecycleActivities {
    /// Removes the job's uploaded video if its retention has run out (by default as soon as
    /// the job ended), and any parts left of it; `true` when the video was removed now.
    #[activity(definition = activity::DiscardSource)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn discard_source(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DiscardSourceInput,
    ) -> Result<bool, ActivityError> {
        // Parts of a conversion that ended before they were joined are of no further use.
        for part in 0..input.parts {
            let key = audiomill_domain::ObjectKey::part(input.job_id, part);
            self.objects.delete(&key).await.map_err(storage_down)?;
        }
        let due = self
            .db
            .source_due(input.job_id, time::now_millis())
            .await
            .map_err(database_down)?;
        let Some(key) = due else {
            return Ok(false);
        };
        self.objects.delete(&key).await.map_err(storage_down)?;
        self.db
            .mark_source_removed(input.job_id)
            .await
            .map_err(database_down)?;
        Ok(true)
    }

    /// One batch of the cleanup: up to `limit` uploaded videos past `RETENTION_SOURCE_HOURS`,
    /// then up to `limit` jobs past `RETENTION_HOURS` (their objects, then the rows that only
    /// served them), then up to `limit` resumable uploads past `RESUMABLE_EXPIRY_HOURS`, all
    /// judged at `as_of`.
    #[activity(definition = activity::CleanBatch)]
    #[tracing::instrument(skip_all, fields(as_of = input.as_of))]
    pub async fn clean_expired(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: CleanBatchInput,
    ) -> Result<CleanupReport, ActivityError> {
        let mut report = CleanupReport::default();
        let sources = self
            .db
            .due_sources(input.as_of, input.limit)
            .await
            .map_err(database_down)?;
        report.more |= sources.len() as u32 >= input.limit;
        for (job_id, key) in sources {
            self.objects.delete(&key).await.map_err(storage_down)?;
            self.db
                .mark_source_removed(job_id)
                .await
                .map_err(database_down)?;
            report.sources_removed += 1;
            report.objects_removed += 1;
        }
        let jobs = self
            .db
            .due_jobs(input.as_of, input.limit)
            .await
            .map_err(database_down)?;
        report.more |= jobs.len() as u32 >= input.limit;
        for job in jobs {
            for key in job.source_key.iter().chain(job.mp3_key.iter()) {
                self.objects.delete(key).await.map_err(storage_down)?;
                report.objects_removed += 1;
            }
            report.rows_removed += self.db.mark_expired(job.id).await.map_err(database_down)?;
            report.jobs_expired += 1;
        }
        self.clean_uploads(&input, &mut report).await?;
        if report.sources_removed + report.jobs_expired + report.uploads_removed > 0 {
            tracing::info!(
                sources = report.sources_removed,
                jobs = report.jobs_expired,
                uploads = report.uploads_removed,
                objects = report.objects_removed,
                rows = report.rows_removed,
                "removed what had expired"
            );
            metrics::counter!("audiomill_cleanup_objects_removed_total")
                .increment(report.objects_removed);
        }
        Ok(report)
    }
}
