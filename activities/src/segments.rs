//! The activities of a long source converted in parts (see `audiomill_domain::segment`).
//!
//! `transcode_segment` runs on the segments queue, which every worker polls with as many slots
//! as it has transcode slots, so parts spread over all workers with room. A part needs the
//! source: the worker holding the job has it; any other fetches a copy once for all the parts
//! it takes ([`SourceCopies`]). The parts converted on the holding worker stay on its disk; the
//! others' MP3s go to object storage (`parts/{job}/{i}.mp3`), where `store_mp3`, on the
//! holding worker, reads them to join all parts into the job's MP3 as it stores it (runs begun
//! before it did took `join_segments`, a step of its own). The copies go when the workflow says
//! so (`forget_job`) or, when it cannot, once unused for a while.

use crate::{
    convert::{
        ConvertActivities, fatal, keep_alive, storage_down, transcode_failure, worker_trouble,
    },
    isolated::{self, Converted},
    transcode::{
        TranscodeError,
        join::{Part, join},
    },
};
use audiomill_domain::{
    JobId, ObjectKey,
    contract::{
        JoinSegmentsInput, StepProgress, TranscodeOutput, TranscodeSegmentInput, TranscodedSegment,
        failure,
    },
    segment::SegmentPlan,
};
use audiomill_store::StoreError;
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Sources this worker fetched only for parts, with when a part last used each.
#[derive(Default)]
pub(crate) struct SourceCopies {
    jobs: Mutex<HashMap<JobId, Arc<tokio::sync::Mutex<Copy>>>>,
}

struct Copy {
    parts_running: usize,
    last_used: Instant,
}

impl SourceCopies {
    fn entry(&self, job: JobId) -> Arc<tokio::sync::Mutex<Copy>> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.entry(job)
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Copy {
                    parts_running: 0,
                    last_used: Instant::now(),
                }))
            })
            .clone()
    }

    /// Copies no part has used for `idle`, forgotten here (their files are the caller's to
    /// remove).
    pub(crate) fn idle(&self, idle: Duration) -> Vec<JobId> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let idle_jobs: Vec<JobId> = jobs
            .iter()
            .filter(|(_, copy)| {
                copy.try_lock()
                    .is_ok_and(|c| c.parts_running == 0 && c.last_used.elapsed() >= idle)
            })
            .map(|(job, _)| *job)
            .collect();
        for job in &idle_jobs {
            jobs.remove(job);
        }
        idle_jobs
    }

    fn remove(&self, job: JobId) {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job);
    }
}

/// Marks a part running on a copy until [`UsingCopy::done`] (or, should the part's future be
/// dropped, until dropped).
struct UsingCopy(Option<Arc<tokio::sync::Mutex<Copy>>>);

impl UsingCopy {
    /// The part is done with the copy: how many other parts still use it.
    async fn done(mut self) -> usize {
        match self.0.take() {
            Some(copy) => release(&copy).await,
            None => 0,
        }
    }
}

impl Drop for UsingCopy {
    fn drop(&mut self) {
        if let Some(copy) = self.0.take() {
            tokio::spawn(async move { release(&copy).await });
        }
    }
}

/// One part fewer uses `copy`: how many still do.
async fn release(copy: &tokio::sync::Mutex<Copy>) -> usize {
    let mut copy = copy.lock().await;
    copy.parts_running = copy.parts_running.saturating_sub(1);
    copy.last_used = Instant::now();
    copy.parts_running
}

impl ConvertActivities {
    /// See `transcode_segment`.
    pub(crate) async fn convert_part(
        &self,
        ctx: &ActivityContext,
        input: TranscodeSegmentInput,
    ) -> Result<TranscodedSegment, ActivityError> {
        let job = input.job_id;
        let parts = input.plan.parts() as u32;
        let waiting = || StepProgress {
            waiting: true,
            percent: 0,
            parts: Some(parts),
        };
        let Some(slot) = keep_alive(ctx, self.transcode_slots.acquire(), waiting).await else {
            return Err(ActivityError::cancelled());
        };
        let _slot = slot.expect("the semaphore is never closed");
        let _working = self.held.working(job);
        let Some(copy) = keep_alive(ctx, self.source_for_part(&input), waiting).await else {
            return Err(ActivityError::cancelled());
        };
        let using = copy?;

        let started = Instant::now();
        let output = self.part_path(job, input.part);
        let request = isolated::Job {
            file_name: input.file_name,
            input: self.source_path(job),
            output: output.clone(),
            options: input.options,
            limits: self.settings.media_limits,
            memory_mb: self.settings.transcoder.memory_mb,
            segments: None,
            part: Some((input.plan, input.part)),
        };
        let result = self
            .convert_in_child(ctx, &request, Some(parts), None)
            .await;
        // `over`: the job ends with this failure (cancelled, or the media is at fault).
        let (ended, over) = match result {
            Some(Ok(Converted::Mp3(report))) => (Ok(report), false),
            None | Some(Err(TranscodeError::Cancelled)) => (Err(ActivityError::cancelled()), true),
            Some(Ok(Converted::Planned(_))) => (
                Err(worker_trouble("the part was planned instead of converted")),
                false,
            ),
            Some(Err(TranscodeError::Crashed(why))) => (Err(worker_trouble(why)), false),
            Some(Err(TranscodeError::Output(why))) => (Err(worker_trouble(why)), false),
            Some(Err(media)) => (Err(transcode_failure(media)), true),
        };
        let others = match using {
            Some(using) => using.done().await,
            None => 0,
        };
        let report = match ended {
            Ok(report) => report,
            Err(error) => {
                let _ = tokio::fs::remove_file(&output).await;
                // The job ends: with the last of its parts here goes this worker's copy of
                // its source.
                if over && others == 0 && !self.held.holds(job) {
                    self.forget_copy(job).await;
                }
                return Err(error);
            }
        };
        if !self.held.holds(job) {
            // The join runs on the worker holding the job: it finds its own parts on its disk,
            // and other workers' in storage.
            let key = ObjectKey::part(job, input.part);
            let stored = self.objects.put_file(&key, &output).await;
            let _ = tokio::fs::remove_file(&output).await;
            stored.map_err(storage_down)?;
        }
        let _ = ctx
            .record_heartbeat(StepProgress {
                percent: 100,
                waiting: false,
                parts: Some(parts),
            })
            .await;
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "part converted");
        Ok(TranscodedSegment {
            task_queue: self.settings.host_task_queue.clone(),
            duration_ms: report.duration_ms,
        })
    }

    /// The source, for a part: the held job's, or a copy fetched once for all the job's parts
    /// this worker takes.
    async fn source_for_part(
        &self,
        input: &TranscodeSegmentInput,
    ) -> Result<Option<UsingCopy>, ActivityError> {
        let job = input.job_id;
        if self.held.holds(job) && tokio::fs::metadata(self.source_path(job)).await.is_ok() {
            return Ok(None);
        }
        let entry = self.copies.entry(job);
        let mut copy = entry.lock().await;
        let source = self.source_path(job);
        if tokio::fs::metadata(&source).await.is_err() {
            tokio::fs::create_dir_all(self.job_dir(job))
                .await
                .map_err(worker_trouble)?;
            let partial = source.with_extension("partial");
            match self.objects.get_to_file(&input.source_key, &partial).await {
                Ok(size) => tracing::info!(size, "source fetched for parts"),
                Err(StoreError::NotFound) => {
                    return Err(fatal(
                        failure::SOURCE_MISSING,
                        "The uploaded file is no longer in storage.",
                    ));
                }
                Err(error) => return Err(storage_down(error)),
            }
            tokio::fs::rename(&partial, &source)
                .await
                .map_err(worker_trouble)?;
        }
        copy.parts_running += 1;
        copy.last_used = Instant::now();
        drop(copy);
        Ok(Some(UsingCopy(Some(entry))))
    }

    /// See `join_segments`, the join as a step of its own that runs begun before `store_mp3`
    /// joined still take: the joined MP3 is written where a single pass writes its own.
    pub(crate) async fn join_parts(
        &self,
        input: JoinSegmentsInput,
    ) -> Result<TranscodeOutput, ActivityError> {
        let job = input.job_id;
        let _working = self.held.working(job);
        let joined = self.joined(job, &input.plan).await?;
        tokio::fs::write(self.mp3_path(job), &joined)
            .await
            .map_err(worker_trouble)?;
        self.drop_parts(job, &input.plan).await;
        Ok(TranscodeOutput {
            duration_ms: 0,
            plan: None,
            progress_wanted: false,
        })
    }

    /// The job's MP3 joined from its parts: those converted here from this worker's disk, the
    /// others' from object storage. Fails as `PARTS_UNJOINABLE` (no retry: one pass follows)
    /// when no join is clean; the parts stay until [`ConvertActivities::drop_parts`].
    pub(crate) async fn joined(
        &self,
        job: JobId,
        plan: &SegmentPlan,
    ) -> Result<Vec<u8>, ActivityError> {
        if tokio::fs::metadata(self.source_path(job)).await.is_err() {
            return Err(fatal(
                failure::SOURCE_NOT_LOCAL,
                "The source is not on this worker.",
            ));
        }
        let count = plan.parts() as u32;
        let mut files = Vec::with_capacity(count as usize);
        for part in 0..count {
            let path = self.part_path(job, part);
            if tokio::fs::metadata(&path).await.is_err() {
                match self
                    .objects
                    .get_to_file(&ObjectKey::part(job, part), &path)
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::NotFound) => {
                        // Removed meanwhile (the job ended): the parts are made again.
                        return Err(worker_trouble(format!("part {part} is missing")));
                    }
                    Err(error) => return Err(storage_down(error)),
                }
            }
            files.push(tokio::fs::read(&path).await.map_err(worker_trouble)?);
        }
        let parts: Vec<Part> = files
            .iter()
            .enumerate()
            .map(|(i, bytes)| Part {
                bytes,
                first_frame: plan.span(i).first_frame,
            })
            .collect();
        let joined = join(&parts, &plan.shares).map_err(|error| {
            tracing::warn!(%error, "the parts cannot be joined; one pass follows");
            ActivityError::application(
                ApplicationFailure::builder(error.to_string())
                    .type_name(failure::PARTS_UNJOINABLE.to_owned())
                    .non_retryable(true)
                    .build(),
            )
        })?;
        tracing::info!(parts = count, bytes = joined.len(), "parts joined");
        Ok(joined)
    }

    /// The parts are joined for good: their files here and their objects go (what is left,
    /// with storage down now, goes when the job ends: `discard_source`).
    pub(crate) async fn drop_parts(&self, job: JobId, plan: &SegmentPlan) {
        for part in 0..plan.parts() as u32 {
            let _ = tokio::fs::remove_file(self.part_path(job, part)).await;
            let _ = self.objects.delete(&ObjectKey::part(job, part)).await;
        }
    }

    /// The job is over on this worker: its copy of the source goes, and on the worker holding
    /// it (a job that ended in its parts), the job itself with all its files.
    pub(crate) async fn forget_copy(&self, job: JobId) {
        self.copies.remove(job);
        self.forget(job).await;
    }

    fn part_path(&self, job: JobId, part: u32) -> PathBuf {
        self.job_dir(job).join(format!("part-{part}.mp3"))
    }
}
