//! The activities of one conversion, in the order `ConvertVideo` runs them: `validate_token`
//! (the login still open), `fetch_source` (the job held by this worker, its login checked again,
//! the upload copied to local scratch), `transcode` (in process, in an isolated child, with
//! heartbeated progress), or for a long source `transcode_segment` per part and
//! `join_segments` (see [`crate::in_parts`]), then `store_mp3`, `send_email` and
//! `record_ending`; `forget_job` lets the worker drop what it held. Each failure is sorted
//! here into retryable (an outage) or final (the media, the input), with a sentence for people.

use crate::{
    failures::{
        capitalize, database_down, fatal, mail_down, storage_down, transcode_failure,
        worker_trouble,
    },
    held::HeldJobs,
    isolated::{self, Converted, Transcoder},
    mailer::{Mailer, Notification},
    progress::{Milestones, ProgressTeller},
    scratch::WorkDir,
    transcode::{MediaLimits, SegmentSettings, SourceLocation, TranscodeError, TranscodeReport},
};
use audiomill_domain::{
    JobId, ObjectKey,
    contract::{
        EmailOutcome, FailureKind, FetchSourceInput, FetchedSource, ForgetJobInput, JobEnding,
        JoinSegmentsInput, RecordEndingInput, SendEmailInput, StepProgress, StoreMp3Input,
        StoredMp3, TranscodeInput, TranscodeOutput, TranscodeSegmentInput, TranscodedSegment,
        ValidateTokenInput, activity,
    },
    lifecycle::Retention,
    link::LinkSigner,
    output::AudioFormat,
    webhook::WebhookEvent,
};
use audiomill_store::{Database, ObjectStore, StoreError};
use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::Duration,
};
use temporalio_common::error::ApplicationFailure;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio::sync::Semaphore;

/// How often long activities report progress; well inside their heartbeat timeouts.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);

/// Jobs a worker holds beyond its transcode limit: their sources are fetched while the
/// transcodes run, so the next transcode starts as soon as one ends.
const PREFETCHED_JOBS: usize = 1;

/// A held job that no step has touched for this long was abandoned: with room on its worker,
/// its next step starts within moments, so its workflow went on elsewhere or ended.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);

/// What a worker needs to know about itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Scratch space for sources and MP3s in flight; only this worker uses it.
    pub work_dir: WorkDir,
    /// How transcodes run: a child process of this worker's own executable.
    pub transcoder: Transcoder,
    pub media_limits: MediaLimits,
    /// The task queue only this worker polls (see `FetchedSource`).
    pub host_task_queue: String,
    /// Signs the download links in e-mails.
    pub links: LinkSigner,
    /// How many transcodes run here at once.
    pub max_transcodes: usize,
    /// How long a job's objects are kept once it ended (the expiry written when it ends).
    pub retention: Retention,
    /// When a long source is converted in parts; `None`: never.
    pub segments: Option<SegmentSettings>,
}

/// The activities, with the clients they use. Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct ConvertActivities {
    db: Database,
    pub(crate) objects: ObjectStore,
    mailer: Mailer,
    pub(crate) settings: Arc<WorkerSettings>,
    pub(crate) held: Arc<HeldJobs>,
    pub(crate) transcode_slots: Arc<Semaphore>,
    /// Starts `job.progress` deliveries; none until the worker sets it.
    progress_teller: Option<ProgressTeller>,
}

#[activities]
impl ConvertActivities {
    /// Refuses to go on when the user was disabled or the login that started the job was
    /// revoked (logout, refresh-token replay) since the upload.
    #[activity(definition = activity::ValidateToken)]
    #[tracing::instrument(skip_all, fields(user_id = %input.user_id))]
    pub async fn validate_token(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ValidateTokenInput,
    ) -> Result<(), ActivityError> {
        let active = self
            .db
            .session_is_active(input.user_id, &input.session_id)
            .await;
        login_open(active)
    }

    /// Takes the job onto this worker, once it has room, and copies the uploaded video here
    /// (when its login is still open).
    #[activity(definition = activity::FetchSource)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn fetch_source(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: FetchSourceInput,
    ) -> Result<FetchedSource, ActivityError> {
        let job = input.job_id;
        let waiting = AtomicBool::new(true);
        let fetch = async {
            self.held.hold(job).await;
            waiting.store(false, Ordering::Relaxed);
            let _working = self.held.working(job);
            // A job may wait here long after its start: its login is checked again now.
            self.check_login(job).await?;
            // Read by status pages only: a job left unmarked looks queued in its batch.
            if let Err(error) = self.db.mark_job_taken(job).await {
                tracing::warn!(%error, "could not note that the job was taken");
            }
            self.copy_source(&input).await
        };
        let progress = || StepProgress {
            waiting: waiting.load(Ordering::Relaxed),
            percent: 0,
            parts: None,
        };
        let outcome = keep_alive(&ctx, fetch, progress).await;
        if !matches!(outcome, Some(Ok(_))) {
            // Its retry may run on another worker: free the room and the disk here.
            self.forget(job).await;
        }
        outcome.unwrap_or_else(|| Err(ActivityError::cancelled()))
    }

    /// Converts the fetched video to MP3 in a child process, heartbeating its percentage.
    #[activity(definition = activity::Transcode)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn transcode(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: TranscodeInput,
    ) -> Result<TranscodeOutput, ActivityError> {
        let job = input.job_id;
        let _working = self.held.working(job);
        let source = self.source_path(job);
        if tokio::fs::metadata(&source).await.is_err() {
            // Another worker fetched it, or this one restarted and cleaned up: the workflow
            // fetches again on whichever worker is alive.
            return Err(fatal(
                FailureKind::SourceNotLocal,
                "The source is not on this worker.",
            ));
        }
        // The job is held here already; wait for the CPU.
        let waiting = || StepProgress {
            waiting: true,
            percent: 0,
            parts: None,
        };
        let Some(slot) = keep_alive(&ctx, self.transcode_slots.acquire(), waiting).await else {
            self.forget(job).await;
            return Err(ActivityError::cancelled());
        };
        let _slot = slot.expect("the semaphore is never closed");

        // Cancelled: dropping the run kills the child at once.
        let started = std::time::Instant::now();
        let milestones = self.milestones(job).await;
        let output = self.output_path(job, input.options.format);
        let request = isolated::Job {
            file_name: input.file_name,
            input: SourceLocation::File(source),
            output: output.clone(),
            options: input.options,
            limits: self.settings.media_limits,
            memory_mb: self.settings.transcoder.memory_mb,
            segments: self.settings.segments.filter(|_| input.segments),
            part: None,
        };
        let Some(result) = self
            .convert_in_child(&ctx, &request, None, milestones.as_ref())
            .await
        else {
            self.forget(job).await;
            tracing::info!("transcode cancelled");
            return Err(ActivityError::cancelled());
        };
        let report = match result {
            Ok(Converted::Mp3(report)) => {
                self.db
                    .note_source(job, report.copied, &report.tracks)
                    .await
                    .map_err(database_down)?;
                report
            }
            Ok(Converted::Planned(plan)) => {
                tracing::info!(parts = plan.parts(), "the source is converted in parts");
                return Ok(TranscodeOutput {
                    duration_ms: 0,
                    plan: Some(plan),
                    progress_wanted: milestones.is_some(),
                });
            }
            Err(error) => return Err(self.transcode_failed(&ctx, job, &output, error).await),
        };
        transcoded(&ctx, &report, milestones.as_ref(), started).await;
        Ok(TranscodeOutput {
            duration_ms: report.duration_ms,
            plan: None,
            progress_wanted: milestones.is_some(),
        })
    }

    /// Converts one part of a long source, on any worker with a free transcode slot, and puts
    /// it in object storage for the join (see [`crate::in_parts`]).
    #[activity(definition = activity::TranscodeSegment)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id, part = input.part))]
    pub async fn transcode_segment(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: TranscodeSegmentInput,
    ) -> Result<TranscodedSegment, ActivityError> {
        self.convert_part(&ctx, input).await
    }

    /// Joins a long source's parts into the job's MP3, on the worker holding the job.
    #[activity(definition = activity::JoinSegments)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn join_segments(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: JoinSegmentsInput,
    ) -> Result<TranscodeOutput, ActivityError> {
        self.join_parts(input).await
    }

    /// The job is over on this worker: what is left of it here goes (parts of a job it does
    /// not hold; all of a job it holds, when the job ended in its parts).
    #[activity(definition = activity::ForgetJob)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn forget_job(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ForgetJobInput,
    ) -> Result<(), ActivityError> {
        self.forget(input.job_id).await;
        Ok(())
    }

    /// Uploads the MP3, records it on the job, and clears this worker's scratch files.
    #[activity(definition = activity::StoreMp3)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn store_mp3(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: StoreMp3Input,
    ) -> Result<StoredMp3, ActivityError> {
        let mp3_path = self.output_path(input.job_id, input.format);
        let _working = self.held.working(input.job_id);
        let key = ObjectKey::output(input.job_id, input.format.extension());
        if tokio::fs::metadata(&mp3_path).await.is_err() {
            return Err(fatal(
                FailureKind::SourceNotLocal,
                format!("The {} is not on this worker.", input.format.label()),
            ));
        }
        let size = self
            .objects
            .put_file(&key, &mp3_path)
            .await
            .map_err(storage_down)?;
        let completed_now = match self
            .db
            .record_mp3(input.job_id, &key, size, input.duration_ms)
            .await
        {
            Ok(completed_now) => completed_now,
            Err(StoreError::Conflict(_) | StoreError::NotFound) => {
                // Cancelled (or removed by its owner) while the MP3 was uploading: it must not
                // outlive the job.
                let _ = self.objects.delete(&key).await;
                self.forget(input.job_id).await;
                return Err(ActivityError::cancelled());
            }
            Err(error) => return Err(database_down(error)),
        };
        self.db
            .schedule_expiry(input.job_id, &self.settings.retention)
            .await
            .map_err(database_down)?;
        self.forget(input.job_id).await;
        if completed_now {
            metrics::counter!("audiomill_jobs_completed_total").increment(1);
            if let Some(created) = input.job_id.created_unix_millis() {
                let now = audiomill_store::time::now_millis() as u64;
                metrics::histogram!("audiomill_job_ready_seconds")
                    .record(now.saturating_sub(created) as f64 / 1000.0);
            }
        }
        let completion_wanted = self
            .wanted_by_endpoints(input.job_id, WebhookEvent::JobCompleted)
            .await
            .unwrap_or(true);
        Ok(StoredMp3 {
            mp3_key: key,
            mp3_size: size,
            completion_wanted,
        })
    }

    /// Tells the owner the MP3 is ready, unless they turned these e-mails off. At most one
    /// e-mail per job: the job row is claimed before sending and only released when the
    /// server certainly refused the message.
    #[activity(definition = activity::SendEmail)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn send_email(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SendEmailInput,
    ) -> Result<EmailOutcome, ActivityError> {
        let job = self
            .db
            .job(input.job_id)
            .await
            .map_err(database_down)?
            .ok_or_else(|| fatal(FailureKind::SourceMissing, "The job no longer exists."))?;
        let user = self
            .db
            .user_by_id(job.user_id)
            .await
            .map_err(database_down)?
            .ok_or_else(|| {
                fatal(
                    FailureKind::InvalidToken,
                    "The job's owner no longer exists.",
                )
            })?;
        if !user.completion_emails {
            tracing::info!(job_id = %job.id, "the owner turned completion e-mails off");
            return Ok(EmailOutcome::TurnedOff);
        }
        if !self
            .db
            .claim_notification(job.id)
            .await
            .map_err(database_down)?
        {
            return Ok(EmailOutcome::AlreadySent);
        }
        let link = self.settings.links.issue(job.id);
        let notification = Notification {
            job_id: job.id.to_string(),
            to: user.email.to_string(),
            original_filename: job.original_filename.clone(),
            download_url: link.url,
            link_expires_at: link.expires_at,
            mp3_size: job.mp3_size.unwrap_or_default(),
            duration_ms: job.duration_ms.unwrap_or_default(),
            format: job.options.format.label(),
        };
        if let Err(error) = self.mailer.send(&notification).await {
            let _ = self.db.release_notification(job.id).await;
            metrics::counter!("audiomill_emails_failed_total").increment(1);
            return Err(mail_down(error));
        }
        metrics::counter!("audiomill_emails_sent_total").increment(1);
        tracing::info!(job_id = %job.id, "notification sent");
        Ok(EmailOutcome::Sent)
    }

    /// Writes on the job's row that it failed or was cancelled, so statistics count it; the
    /// first attempt that records it counts it in the metrics, retries do not.
    #[activity(definition = activity::RecordEnding)]
    #[tracing::instrument(skip_all, fields(job_id = %input.job_id))]
    pub async fn record_ending(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RecordEndingInput,
    ) -> Result<(), ActivityError> {
        let recorded = self
            .db
            .record_ending(input.job_id, &input.ending)
            .await
            .map_err(database_down)?;
        self.db
            .schedule_expiry(input.job_id, &self.settings.retention)
            .await
            .map_err(database_down)?;
        if recorded {
            match &input.ending {
                JobEnding::Failed { failure_type } => {
                    let kind = FailureKind::of(Some(failure_type)).name();
                    tracing::info!(failure_type = kind, "job failed");
                    metrics::counter!("audiomill_jobs_failed_total", "type" => kind).increment(1);
                }
                JobEnding::Cancelled => {
                    tracing::info!("job cancelled");
                    metrics::counter!("audiomill_jobs_cancelled_total").increment(1);
                }
            }
        }
        Ok(())
    }
}

impl ConvertActivities {
    pub fn new(
        db: Database,
        objects: ObjectStore,
        mailer: Mailer,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            db,
            objects,
            mailer,
            held: Arc::new(HeldJobs::new(settings.max_transcodes + PREFETCHED_JOBS)),
            transcode_slots: Arc::new(Semaphore::new(settings.max_transcodes.max(1))),
            settings: Arc::new(settings),
            progress_teller: None,
        }
    }

    /// Tells `job.progress` milestones through `teller` (see [`ProgressTeller`]).
    pub fn with_progress_teller(mut self, teller: ProgressTeller) -> Self {
        self.progress_teller = Some(teller);
        self
    }

    /// Milestones to tell for `job`, when its owner has an endpoint that wants them. Looked up
    /// once per attempt; a database that does not answer means none (the job goes on).
    async fn milestones(&self, job: JobId) -> Option<Milestones> {
        let teller = self.progress_teller.clone()?;
        self.wanted_by_endpoints(job, WebhookEvent::JobProgress)
            .await?
            .then(|| Milestones::new(job, teller))
    }

    /// Whether an enabled endpoint that may be told of `job` wants `event`; `None` when the
    /// database cannot say.
    async fn wanted_by_endpoints(&self, job: JobId, event: WebhookEvent) -> Option<bool> {
        let job = self.db.job(job).await.ok().flatten()?;
        let endpoints = self.db.webhooks_for_job(&job).await.ok()?;
        Some(
            endpoints
                .iter()
                .any(|endpoint| endpoint.enabled && endpoint.events.contains(&event)),
        )
    }

    /// Runs the transcoder's child process on `request`, heartbeating its percentage (and
    /// `parts`, the job's count of them, when it converts one); `None` when the activity was
    /// cancelled (the child is killed then).
    pub(crate) async fn convert_in_child(
        &self,
        ctx: &ActivityContext,
        request: &isolated::Job,
        parts: Option<u32>,
        milestones: Option<&Milestones>,
    ) -> Option<Result<Converted, TranscodeError>> {
        let percent = AtomicU8::new(0);
        let work = self
            .settings
            .transcoder
            .run(request, |done| percent.store(done, Ordering::Relaxed));
        let progress = || {
            let percent = percent.load(Ordering::Relaxed);
            if let Some(milestones) = milestones {
                milestones.observe(percent);
            }
            StepProgress {
                percent,
                waiting: false,
                parts,
            }
        };
        keep_alive(ctx, work, progress).await
    }

    /// How many transcodes (whole or parts) run here at once.
    pub fn max_transcodes(&self) -> usize {
        self.settings.max_transcodes.max(1)
    }

    /// How many jobs this worker holds at once; its own task queue needs as many slots.
    pub fn max_held_jobs(&self) -> usize {
        self.settings.max_transcodes.max(1) + PREFETCHED_JOBS
    }

    /// Frees the room and removes the files of jobs whose workflow left this worker without
    /// saying so (cancelled between two steps, or moved on while this worker was cut off).
    /// The worker calls this now and then.
    pub async fn release_abandoned_jobs(&self) {
        for job in self.held.release_abandoned(ABANDONED_AFTER) {
            tracing::info!(job_id = %job, "releasing an abandoned job");
            let _ = tokio::fs::remove_dir_all(self.job_dir(job)).await;
        }
    }

    /// Refuses to go on with a job whose login was ended (or user disabled) meanwhile.
    async fn check_login(&self, job: JobId) -> Result<(), ActivityError> {
        login_open(self.db.job_login_is_active(job).await)
    }

    async fn copy_source(&self, input: &FetchSourceInput) -> Result<FetchedSource, ActivityError> {
        let dir = self.job_dir(input.job_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(worker_trouble)?;
        let local_path = self.source_path(input.job_id);
        let size = match self
            .objects
            .get_to_file(&input.source_key, &local_path)
            .await
        {
            Ok(size) => size,
            Err(StoreError::NotFound) => {
                return Err(fatal(
                    FailureKind::SourceMissing,
                    "The uploaded file is no longer in storage.",
                ));
            }
            Err(error) => return Err(storage_down(error)),
        };
        tracing::info!(job_id = %input.job_id, size, "source fetched");
        Ok(FetchedSource {
            task_queue: self.settings.host_task_queue.clone(),
            size,
            planned: None,
        })
    }

    /// The job is over on this worker: its room and its files go.
    pub(crate) async fn forget(&self, job: JobId) {
        let _ = tokio::fs::remove_dir_all(self.job_dir(job)).await;
        self.held.release(job);
    }

    /// A job's scratch directory (see [`WorkDir`]).
    pub(crate) fn job_dir(&self, job: JobId) -> PathBuf {
        self.settings.work_dir.job_dir(job)
    }

    /// The fetched video. Its type is found from its content, so the name has no extension.
    pub(crate) fn source_path(&self, job: JobId) -> PathBuf {
        self.job_dir(job).join("source")
    }

    pub(crate) fn output_path(&self, job: JobId, format: AudioFormat) -> PathBuf {
        self.settings.work_dir.output_file(job, format)
    }

    /// What a failed transcode means for the job. Media at fault fails it for good; a crash of
    /// the converter is retried once (a second crash on the same file is the file's fault).
    pub(crate) async fn transcode_failed(
        &self,
        ctx: &ActivityContext,
        job: JobId,
        output: &Path,
        error: TranscodeError,
    ) -> ActivityError {
        match error {
            TranscodeError::Cancelled => {
                self.forget(job).await;
                ActivityError::cancelled()
            }
            TranscodeError::Output(_) => {
                let _ = tokio::fs::remove_file(output).await;
                worker_trouble(error)
            }
            TranscodeError::Crashed(ref why) => {
                let _ = tokio::fs::remove_file(output).await;
                let attempt = ctx.info().attempt;
                tracing::warn!(attempt, why, "the converter failed");
                if attempt >= 2 {
                    self.forget(job).await;
                }
                ActivityError::application(
                    ApplicationFailure::builder(format!("{}.", capitalize(why)))
                        .type_name(FailureKind::TranscoderCrashed.name().to_owned())
                        .non_retryable(attempt >= 2)
                        .build(),
                )
            }
            media => {
                // The media itself is at fault: no retry follows, the job ends failed.
                self.forget(job).await;
                transcode_failure(media)
            }
        }
    }
}

/// Runs `work` while heartbeating `progress()`, so Temporal notices a dead worker and can
/// deliver a cancellation. `None` when the activity was cancelled (`work` is dropped).
/// Goes on only while the login that started the job is open (a database that cannot say is
/// an outage, retried).
fn login_open(active: Result<bool, StoreError>) -> Result<(), ActivityError> {
    if !active.map_err(database_down)? {
        return Err(fatal(
            FailureKind::InvalidToken,
            "The login that started this job was revoked or the account is disabled.",
        ));
    }
    Ok(())
}

pub(crate) async fn keep_alive<T, P>(
    ctx: &ActivityContext,
    work: impl Future<Output = T>,
    progress: impl Fn() -> P,
) -> Option<T>
where
    P: serde::Serialize + 'static,
{
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            _ = ticker.tick() => {
                let _ = ctx.record_heartbeat(progress()).await;
            }
            _ = ctx.cancelled() => return None,
        }
    }
}

/// A transcode done: its last heartbeat and milestone, and how much faster than real time it
/// ran (seconds of audio per second of work).
async fn transcoded(
    ctx: &ActivityContext,
    report: &TranscodeReport,
    milestones: Option<&Milestones>,
    started: std::time::Instant,
) {
    let _ = ctx
        .record_heartbeat(StepProgress {
            percent: 100,
            waiting: false,
            parts: None,
        })
        .await;
    if let Some(milestones) = milestones {
        milestones.observe(100);
    }
    tracing::info!(duration_ms = report.duration_ms, "transcoded");
    let wall = started.elapsed().as_secs_f64().max(0.001);
    metrics::histogram!("audiomill_transcode_speed_ratio")
        .record(report.duration_ms as f64 / 1000.0 / wall);
}
