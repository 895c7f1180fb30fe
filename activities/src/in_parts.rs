//! The activities of a long source converted in parts (see `audiomill_domain::in_parts`).
//!
//! `transcode_segment` runs on the segments queue, which every worker polls with as many slots
//! as it has transcode slots, so parts spread over all workers with room. A part needs the
//! source: the worker holding the job has its copy; any other reads the upload where it is
//! stored, in place, and only as much of it as the part needs (the byte ranges the demuxer
//! seeks to). The parts converted on the holding worker stay on its disk; the others' MP3s go
//! to object storage (`parts/{job}/{i}.mp3`), where `join_segments`, on the holding worker,
//! reads them to join all parts into the job's MP3.

use crate::{
    convert::{ConvertActivities, keep_alive},
    failures::{fatal, storage_down, transcode_failure, worker_trouble},
    isolated::{self, Converted},
    transcode::{
        SourceLocation, TranscodeError, TranscodeReport,
        join::{JoinError, Part, Piece, join_pieces},
    },
};
use audiomill_domain::{
    JobId, ObjectKey,
    contract::{
        FailureKind, JoinSegmentsInput, StepProgress, TranscodeOutput, TranscodeSegmentInput,
        TranscodedSegment,
    },
    in_parts::SegmentPlan,
    output::AudioFormat,
};
use audiomill_store::{InPlace, StoreError, write_pieces};
use bytes::Bytes;
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};
use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// How long a part's URL of its source works: far longer than converting a part takes.
const PART_SOURCE_URL_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// What a part's run in the converter child means for the step: its report, or the failure
/// (`None`: the step was cancelled, and the child killed).
fn part_converted(
    result: Option<Result<Converted, TranscodeError>>,
) -> Result<TranscodeReport, ActivityError> {
    match result {
        Some(Ok(Converted::Mp3(report))) => Ok(report),
        None | Some(Err(TranscodeError::Cancelled)) => Err(ActivityError::cancelled()),
        Some(Ok(Converted::Planned(_))) => {
            Err(worker_trouble("the part was planned instead of converted"))
        }
        Some(Err(TranscodeError::Crashed(why) | TranscodeError::Output(why))) => {
            Err(worker_trouble(why))
        }
        Some(Err(media)) => Err(transcode_failure(media)),
    }
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
        let Some(source) = keep_alive(ctx, self.source_for_part(&input), waiting).await else {
            return Err(ActivityError::cancelled());
        };
        let source = source?;

        let started = Instant::now();
        // Held, and its files still here: its parts stay on this disk for the join. A held
        // job whose files vanished reads in place like any other; its join then finds the
        // source gone and the workflow fetches it again.
        let held = matches!(&source, SourceLocation::File(path) if *path == self.source_path(job));
        let output = if held {
            self.part_path(job, input.part)
        } else {
            // Beside the job directories, not in one: this worker has none for a job it does
            // not hold, and the MP3 goes to storage as soon as it is made.
            self.settings
                .work_dir
                .loose_file(&format!("{job}-part-{}.mp3", input.part))
        };
        let request = isolated::Job {
            file_name: input.file_name,
            input: source,
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
        let report = match part_converted(result) {
            Ok(report) => report,
            Err(error) => {
                let _ = tokio::fs::remove_file(&output).await;
                return Err(error);
            }
        };
        if !held {
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

    /// Where a part reads its source: the held job's copy, or else the upload in storage,
    /// read in place (only the part's share of it is read: measured faster, for a worker
    /// taking a few parts of a long source, than fetching all of it first; see
    /// `docs/benchmarks.md`).
    async fn source_for_part(
        &self,
        input: &TranscodeSegmentInput,
    ) -> Result<SourceLocation, ActivityError> {
        let job = input.job_id;
        let held = self.source_path(job);
        if self.held.holds(job) && tokio::fs::metadata(&held).await.is_ok() {
            return Ok(SourceLocation::File(held));
        }
        match self
            .objects
            .in_place(&input.source_key, PART_SOURCE_URL_LIFETIME)
            .await
        {
            Ok(InPlace::File(path)) => {
                tracing::info!("the part reads its source in place, from its file");
                Ok(SourceLocation::File(path))
            }
            Ok(InPlace::Url { url, size }) => {
                tracing::info!(size, "the part reads its source in place, from the bucket");
                Ok(SourceLocation::Url { url, size })
            }
            Err(StoreError::NotFound) => Err(fatal(
                FailureKind::SourceMissing,
                "The uploaded file is no longer in storage.",
            )),
            Err(error) => Err(storage_down(error)),
        }
    }

    /// See `join_segments`: the joined MP3 is written where a single pass writes its own, for
    /// `store_mp3` to store (no sync: it is scratch, and the store syncs its copy).
    pub(crate) async fn join_parts(
        &self,
        input: JoinSegmentsInput,
    ) -> Result<TranscodeOutput, ActivityError> {
        let job = input.job_id;
        let _working = self.held.working(job);
        let joined = self.joined(job, &input.plan).await?;
        let path = self.output_path(job, AudioFormat::Mp3);
        tokio::task::spawn_blocking(move || {
            write_pieces(&mut std::fs::File::create(path)?, &joined)
        })
        .await
        .map_err(|_| worker_trouble("the joined MP3 was not written"))?
        .map_err(worker_trouble)?;
        self.drop_parts(job, &input.plan).await;
        Ok(TranscodeOutput {
            duration_ms: 0,
            plan: None,
            progress_wanted: false,
        })
    }

    /// Part `part`'s MP3: from this worker's disk, else fetched there from object storage.
    async fn part_bytes(&self, job: JobId, part: u32) -> Result<Vec<u8>, ActivityError> {
        let path = self.part_path(job, part);
        if tokio::fs::metadata(&path).await.is_err() {
            match self
                .objects
                .get_to_file(&ObjectKey::part(job, part), &path)
                .await
            {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    // Scratch files that vanished: as after a lost worker, the workflow
                    // fetches the source again and converts the parts anew.
                    return Err(fatal(
                        FailureKind::SourceNotLocal,
                        format!("Part {part} is no longer on this worker."),
                    ));
                }
                Err(error) => return Err(storage_down(error)),
            }
        }
        tokio::fs::read(&path).await.map_err(worker_trouble)
    }

    /// The job's MP3 joined from its parts: those converted here from this worker's disk, the
    /// others' from object storage. Fails as `PARTS_UNJOINABLE` (no retry: one pass follows)
    /// when no join is clean; the parts stay until [`ConvertActivities::drop_parts`].
    pub(crate) async fn joined(
        &self,
        job: JobId,
        plan: &SegmentPlan,
    ) -> Result<Vec<Bytes>, ActivityError> {
        if tokio::fs::metadata(self.source_path(job)).await.is_err() {
            return Err(fatal(
                FailureKind::SourceNotLocal,
                "The source is not on this worker.",
            ));
        }
        let count = plan.parts() as u32;
        // All at once: the others' parts come from storage, and this disk reads in parallel.
        let files =
            futures::future::try_join_all((0..count).map(|part| self.part_bytes(job, part)))
                .await?;
        // Off the runtime's threads: an hour's join takes a while.
        let files: Vec<Bytes> = files.into_iter().map(Bytes::from).collect();
        let plan = plan.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let parts: Vec<Part> = files
                .iter()
                .enumerate()
                .map(|(i, bytes)| Part {
                    bytes,
                    first_frame: plan.span(i).first_frame,
                })
                .collect();
            let pieces = join_pieces(&parts, &plan.shares)?;
            Ok(pieces
                .into_iter()
                .map(|piece| match piece {
                    Piece::Part { part, range } => files[part].slice(range),
                    Piece::Bytes(bytes) => Bytes::from(bytes),
                })
                .collect::<Vec<_>>())
        })
        .await
        .map_err(|_| worker_trouble("the join did not finish"))?
        .map_err(|error: JoinError| {
            tracing::warn!(%error, "the parts cannot be joined; one pass follows");
            ActivityError::application(
                ApplicationFailure::builder(error.to_string())
                    .type_name(FailureKind::PartsUnjoinable.name().to_owned())
                    .non_retryable(true)
                    .build(),
            )
        })?;
        let bytes: usize = joined.iter().map(Bytes::len).sum();
        tracing::info!(parts = count, bytes, "parts joined");
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

    fn part_path(&self, job: JobId, part: u32) -> PathBuf {
        self.job_dir(job).join(format!("part-{part}.mp3"))
    }
}
