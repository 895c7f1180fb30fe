//! `ConvertVideo`: one upload, one durable run.
//!
//! It checks the token (a local activity), imports the video from its link into storage
//! when the job was given one (`import_source`), then fetches the source onto one worker (through
//! the fetch queue, which only workers with room take from), then runs `transcode` (which also
//! decides whether a long source is converted in parts, then the parts and `join_segments`) and
//! `store_mp3` on that worker's own task queue, because only that worker has the file. If that
//! worker disappears (its queue stops being polled) or lost the file, the workflow goes back to
//! `fetch_source` on whichever worker is alive. The e-mail goes out while the video is
//! discarded. A failed notification never fails a job whose MP3 is stored. A cancelled job
//! stops at its current step (the transcode notices through its heartbeat and removes its
//! files) and sends no e-mail. A job that fails or is cancelled has that written on its row by
//! `record_ending` before the run ends, so statistics count every job however it ended; then
//! its owner's endpoints are told, and its video discarded.

use crate::{
    all_at_once::all,
    deliver_webhooks::start_deliveries,
    options::{
        HOST_QUEUE_PICKUP, UNTIL_PATIENCE_RUNS_OUT, export_options, fetch_options, import_options,
        local_through_outages, mail_options, on_host, retry, segment_options, through_outages,
        transcode_options,
    },
};
use audiomill_domain::JobId;
use audiomill_domain::contract::{
    ConvertVideoInput, ConvertVideoOutput, DeliverWebhooksInput, DiscardSourceInput,
    ExportMp3Input, FailureKind, FetchSourceInput, FetchedSource, ForgetJobInput,
    ImportSourceInput, JobEnding, JoinSegmentsInput, Planned, RecordEndingInput, SendEmailInput,
    StoreMp3Input, StoredMp3, TranscodeInput, TranscodeOutput, TranscodeSegmentInput,
    TranscodedSegment, ValidateTokenInput, WORKFLOW_TYPE, activity, failures,
};
use audiomill_domain::in_parts::{PartId, SegmentPlan};
use audiomill_domain::webhook::{PROGRESS_MILESTONES, WebhookEvent};
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions,
    WorkflowCancellationToken, WorkflowContext, WorkflowResult, WorkflowTermination,
};

/// Runs that carry this marker check the token as a local activity before the fetch, and send
/// the e-mail while the source is removed: one activity and two workflow tasks fewer per job.
/// Runs recorded without it check the token beside the fetch and remove the source after the
/// e-mail, and replay that way.
pub(crate) const FEWER_ROUND_TRIPS: &str = "fewer-round-trips";

/// How many times the workflow re-fetches the source after losing the worker that held it.
const MAX_WORKER_ROUNDS: u32 = 5;

#[workflow]
#[derive(Default)]
pub struct ConvertVideo;

#[workflow_methods]
impl ConvertVideo {
    #[run(name = WORKFLOW_TYPE)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ConvertVideoInput,
    ) -> WorkflowResult<ConvertVideoOutput> {
        let lean = ctx.patched(FEWER_ROUND_TRIPS);
        // The most parts any round planned: what of them may be left in storage at the end
        // (the join removes them; a job that ended before its join leaves them).
        let mut parts = 0;
        match convert(ctx, &input, &mut parts, lean).await {
            Ok(converted) => {
                if converted.completion_wanted {
                    announce(ctx, input.job_id, WebhookEvent::JobCompleted).await;
                }
                if !converted.source_discarded {
                    discard_source(ctx, input.job_id, parts).await;
                }
                Ok(converted.output)
            }
            Err(error) => {
                record_ending(ctx, input.job_id, &error).await;
                let event = match error {
                    ActivityExecutionError::Cancelled(_) => WebhookEvent::JobCancelled,
                    _ => WebhookEvent::JobFailed,
                };
                announce(ctx, input.job_id, event).await;
                discard_source(ctx, input.job_id, parts).await;
                Err(end(error))
            }
        }
    }
}

/// Tells the owner's webhook endpoints how the job ended. The job is cancelled or not, the
/// announcement goes out.
async fn announce(ctx: &mut WorkflowContext<ConvertVideo>, job_id: JobId, event: WebhookEvent) {
    let input = DeliverWebhooksInput::Event { job_id, event };
    start_deliveries(ctx, format!("webhooks-{job_id}"), input).await;
}

/// Tells the owner's endpoints that want it that the job passed `percent`, under the id a
/// single pass's worker would give it, so each milestone is told once. The start is asked for
/// at once; the future returned only waits for the server's answer.
fn tell_progress(
    ctx: &WorkflowContext<ConvertVideo>,
    job_id: JobId,
    percent: u8,
) -> impl Future<Output = ()> {
    let input = DeliverWebhooksInput::Progress { job_id, percent };
    start_deliveries(ctx, format!("webhooks-{job_id}-progress-{percent}"), input)
}

/// A converted job.
struct Converted {
    output: ConvertVideoOutput,
    /// Whether an endpoint wants to be told of the completion.
    completion_wanted: bool,
    /// Whether the uploaded video was removed (beside the e-mail) already.
    source_discarded: bool,
}

/// The job's steps, up to the first that ends it without an MP3. `lean`: the token is checked
/// locally and the e-mail sent while the source is removed ([`FEWER_ROUND_TRIPS`]).
async fn convert(
    ctx: &mut WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    parts: &mut u32,
    lean: bool,
) -> Result<Converted, ActivityExecutionError> {
    let fetch = FetchSourceInput {
        job_id: input.job_id,
        source_key: input.source_key.clone(),
    };
    let first_fetch = if lean {
        checked_then_fetched(ctx, input, fetch.clone()).await?
    } else {
        validated_and_fetched(ctx, input, fetch.clone()).await?
    };
    let mut fetched = Some(first_fetch);

    let mut round = 0;
    let (stored, duration_ms) = loop {
        round += 1;
        let source = match fetched.take() {
            Some(source) => source,
            None => {
                ctx.execute_activity(activity::FetchSource, fetch.clone(), fetch_options())
                    .await?
            }
        };
        if let Some(done) = convert_on_one_worker(ctx, input, source, round, parts).await? {
            break done;
        }
    };

    let emailing = ctx.execute_activity(
        activity::SendEmail,
        SendEmailInput {
            job_id: input.job_id,
        },
        mail_options(),
    );
    let emailed = if lean {
        futures::join!(emailing, discard_source(ctx, input.job_id, *parts)).0
    } else {
        emailing.await
    };
    let notified = match emailed {
        Ok(_) => true,
        Err(error @ ActivityExecutionError::Cancelled(_)) => return Err(error),
        // The MP3 is stored and downloadable; the failure stays visible in the history.
        Err(_) => false,
    };

    let output = ConvertVideoOutput {
        mp3_key: stored.mp3_key,
        mp3_size: stored.mp3_size,
        duration_ms,
        notified,
    };
    Ok(Converted {
        output,
        completion_wanted: stored.completion_wanted,
        source_discarded: lean,
    })
}

/// The token checked as a local activity, then the source fetched: a job whose login is no
/// longer valid ends before anything is fetched. The check takes milliseconds on the worker
/// that runs the workflow task, so the fetch starts in the same task. A job from a link has
/// its video imported into storage in between.
async fn checked_then_fetched(
    ctx: &WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    fetch: FetchSourceInput,
) -> Result<FetchedSource, ActivityExecutionError> {
    ctx.execute_local_activity(
        activity::ValidateToken,
        validate_input(input),
        local_through_outages(Duration::from_secs(30)),
    )
    .await?;
    if let Some(plan) = input.import {
        let import = ImportSourceInput {
            job_id: input.job_id,
            plan,
        };
        ctx.execute_activity(activity::ImportSource, import, import_options())
            .await?;
    }
    ctx.execute_activity(activity::FetchSource, fetch, fetch_options())
        .await
}

/// Runs recorded without [`FEWER_ROUND_TRIPS`]: the token validated while the source is
/// fetched. A login no longer valid ends the job there: the fetch stops, and a worker that had
/// fetched the source already lets it go. Nothing is converted before the token is valid.
async fn validated_and_fetched(
    ctx: &WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    fetch: FetchSourceInput,
) -> Result<FetchedSource, ActivityExecutionError> {
    let stop_fetching = ctx.cancellation_token().child_token();
    let validating = ctx.execute_activity(
        activity::ValidateToken,
        validate_input(input),
        through_outages(Duration::from_secs(30)),
    );
    let mut options = fetch_options();
    options.cancellation_token = Some(stop_fetching.clone());
    // Stopped, the fetch says whether it ended holding the job, so that nothing is left held.
    options.cancellation_type = ActivityCancellationType::WaitCancellationCompleted;
    let fetching = ctx.execute_activity(activity::FetchSource, fetch, options);
    match validating.await {
        Ok(()) => fetching.await,
        Err(error) => {
            stop_fetching.cancel();
            if let Ok(fetched) = fetching.await {
                forget_copies(ctx, input.job_id, vec![fetched.task_queue]).await;
            }
            Err(error)
        }
    }
}

fn validate_input(input: &ConvertVideoInput) -> ValidateTokenInput {
    ValidateTokenInput {
        user_id: input.user_id,
        session_id: input.session_id.clone(),
    }
}

/// Writes how the job ended on its row. It runs outside the run's cancellation, since a
/// cancelled job is what it records, and retries through a database outage. A job whose MP3
/// was stored stays completed whatever ends its run later.
async fn record_ending(
    ctx: &mut WorkflowContext<ConvertVideo>,
    job_id: JobId,
    error: &ActivityExecutionError,
) {
    let ending = match error {
        ActivityExecutionError::Cancelled(_) => JobEnding::Cancelled,
        other => JobEnding::Failed {
            failure_type: other
                .failure()
                .map_or(FailureKind::Other.name(), failures::kind)
                .to_owned(),
        },
    };
    let mut options = through_outages(Duration::from_secs(30));
    options.cancellation_token = Some(WorkflowCancellationToken::new());
    // Only the patience running out ends it unrecorded; the run ends as it would anyway.
    let _ = ctx
        .execute_activity(
            activity::RecordEnding,
            RecordEndingInput { job_id, ending },
            options,
        )
        .await;
}

/// Removes the uploaded video once the job has ended, when its retention keeps it no longer
/// (`RETENTION_SOURCE_HOURS`, 0 by default). Outside the run's cancellation, like
/// `record_ending`, and for a few minutes at most: the run (which `/status` follows) does not
/// wait out a storage outage for it; what it could not remove, the scheduled cleanup does.
async fn discard_source(ctx: &WorkflowContext<ConvertVideo>, job_id: JobId, parts: u32) {
    let mut options =
        ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
            schedule_to_close: Duration::from_secs(5 * 60),
            start_to_close: Duration::from_secs(60),
        })
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(30)))
        .build();
    options.cancellation_token = Some(WorkflowCancellationToken::new());
    let _ = ctx
        .execute_activity(
            activity::DiscardSource,
            DiscardSourceInput { job_id, parts },
            options,
        )
        .await;
}

/// Round `round` (from 1) on one worker, the one that `fetched` the source: transcode and
/// store the MP3 there; a long source is converted in parts on any workers with room and joined
/// there. `None`: that worker was lost after the fetch (and rounds are left), so another round
/// may start on whichever worker is alive.
async fn convert_on_one_worker(
    ctx: &mut WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    mut fetched: FetchedSource,
    round: u32,
    parts: &mut u32,
) -> Result<Option<(StoredMp3, u64)>, ActivityExecutionError> {
    let may_retry = round < MAX_WORKER_ROUNDS;
    let holder = fetched.task_queue.clone();
    let duration_ms = match fetched.planned.take() {
        // Planned as it was fetched: the parts start now.
        Some(Planned::Parts {
            plan,
            progress_wanted,
        }) => {
            let transcoded = TranscodeOutput {
                duration_ms: 0,
                plan: Some(plan),
                progress_wanted,
            };
            in_parts(ctx, input, &holder, transcoded, round, parts).await?
        }
        // Planned for one pass, or the transcode plans it (when the fetch could not).
        planned => match transcode_on(ctx, input, &holder, planned.is_none(), may_retry).await? {
            Some(transcoded) if transcoded.plan.is_some() => {
                in_parts(ctx, input, &holder, transcoded, round, parts).await?
            }
            Some(transcoded) => Some(transcoded.duration_ms),
            None => None,
        },
    };
    let Some(duration_ms) = duration_ms else {
        return Ok(None);
    };
    match store_on(ctx, input, &holder, duration_ms).await {
        Ok(stored) => Ok(Some(stored)),
        Err(error) if may_retry && worker_lost(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The parts of `transcoded`'s plan converted on any workers with room and joined on the
/// worker holding the job (`holder`); the MP3's duration there, ready to be stored. `None`:
/// the holder was lost (and rounds are left). Parts that cannot be joined give way to one pass
/// on the holder.
async fn in_parts(
    ctx: &mut WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    holder: &str,
    mut transcoded: TranscodeOutput,
    round: u32,
    parts: &mut u32,
) -> Result<Option<u64>, ActivityExecutionError> {
    let may_retry = round < MAX_WORKER_ROUNDS;
    let plan = transcoded.plan.take().expect("a plan of parts");
    *parts = (*parts).max(plan.parts() as u32);
    let tell = transcoded.progress_wanted;
    let (converted, telling) = match convert_parts(ctx, input, &plan, round, tell).await {
        Ok(converted) => converted,
        Err(error) => {
            // The job ends in its parts: the worker holding it lets it go now.
            forget_copies(ctx, input.job_id, vec![holder.to_owned()]).await;
            return Err(error);
        }
    };
    let mut part_workers: Vec<String> = converted
        .iter()
        .map(|part| part.task_queue.clone())
        .filter(|queue| queue != holder)
        .collect();
    part_workers.sort();
    part_workers.dedup();
    // The last part reaches to the end of the whole.
    let duration_ms = converted.last().map_or(0, |part| part.duration_ms);
    let join = JoinSegmentsInput {
        job_id: input.job_id,
        plan,
    };
    let joining = ctx.execute_activity(activity::JoinSegments, join, on_host(holder));
    all(telling).await;
    let joined = joining.await;
    forget_copies(ctx, input.job_id, part_workers.clone()).await;
    match joined {
        Ok(_) => Ok(Some(duration_ms)),
        Err(error) if unjoinable(&error) => {
            // One pass on the worker holding the source, as for a short one.
            Ok(transcode_on(ctx, input, holder, false, may_retry)
                .await?
                .map(|transcoded| transcoded.duration_ms))
        }
        Err(error) if may_retry && worker_lost(&error) => Ok(None),
        Err(error) => {
            forget_copies(ctx, input.job_id, vec![holder.to_owned()]).await;
            Err(error)
        }
    }
}

/// `store_mp3` on the worker holding the MP3: the MP3 stored, and its duration. A job whose
/// MP3 also goes to the user's storage has it written there first (`export_mp3`), so a job
/// completed has every copy it asked for.
fn store_on<'a>(
    ctx: &'a WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    holder: &str,
    duration_ms: u64,
) -> impl Future<Output = Result<(StoredMp3, u64), ActivityExecutionError>> + 'a {
    let job_id = input.job_id;
    let exporting = input.export.then(|| {
        ctx.execute_activity(
            activity::ExportMp3,
            ExportMp3Input { job_id },
            export_options(holder),
        )
    });
    let store = StoreMp3Input {
        job_id,
        duration_ms,
        format: input.options.format,
    };
    let options = on_host(holder);
    async move {
        if let Some(exporting) = exporting {
            exporting.await?;
        }
        let stored = ctx
            .execute_activity(activity::StoreMp3, store, options)
            .await?;
        Ok((stored, duration_ms))
    }
}

/// `transcode` on the worker holding the source (only planning the parts of a long one when
/// `segments`); `None`: that worker was lost (and `may_retry`).
async fn transcode_on(
    ctx: &mut WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    task_queue: &str,
    segments: bool,
    may_retry: bool,
) -> Result<Option<TranscodeOutput>, ActivityExecutionError> {
    let transcode = TranscodeInput {
        job_id: input.job_id,
        options: input.options.clone(),
        file_name: input.original_filename.clone(),
        segments,
    };
    match ctx
        .execute_activity(
            activity::Transcode,
            transcode,
            transcode_options(task_queue),
        )
        .await
    {
        Ok(transcoded) => Ok(Some(transcoded)),
        Err(error) if may_retry && worker_lost(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Converts every part of `plan` at once (in `round`), each on whichever worker has room
/// (retried there if its worker dies). The first part that fails for good cancels the others, and its
/// failure is the job's; a cancelled job cancels them all.
///
/// With the parts it hands back the starts of the progress messages told as they finished
/// (when `tell`: the owner has an endpoint for them), still waiting for the server's answer:
/// the caller asks for its next step first, so that the join does not wait on them.
async fn convert_parts<'a>(
    ctx: &'a WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    plan: &SegmentPlan,
    round: u32,
    tell: bool,
) -> Result<(Vec<TranscodedSegment>, Vec<impl Future<Output = ()> + 'a>), ActivityExecutionError> {
    let token = ctx.cancellation_token().child_token();
    // `select_all` polls each part with the workflow's own waker, as the SDK requires
    // (`FuturesUnordered`, which `join_all` uses for many futures, wakes with its own).
    let mut running: Vec<_> = (0..plan.parts() as u32)
        .map(|part| {
            let convert = TranscodeSegmentInput {
                job_id: input.job_id,
                source_key: input.source_key.clone(),
                options: input.options.clone(),
                file_name: input.original_filename.clone(),
                plan: plan.clone(),
                part,
            };
            let mut options = segment_options();
            options.cancellation_token = Some(token.clone());
            let id = PartId {
                round,
                part,
                parts: plan.parts() as u32,
            };
            options.activity_id = Some(id.activity_id());
            let converting = ctx.execute_activity(activity::TranscodeSegment, convert, options);
            Box::pin(async move { (part, converting.await) })
        })
        .collect();
    let mut converted: Vec<Option<TranscodedSegment>> = vec![None; plan.parts()];
    let mut first_failure = None;
    let (mut done, mut told) = (0, 0);
    let mut telling = Vec::new();
    while !running.is_empty() {
        let ((part, outcome), _, rest) = futures::future::select_all(running).await;
        running = rest;
        match outcome {
            Ok(part_done) => {
                converted[part as usize] = Some(part_done);
                // `job.progress` as the parts pass each milestone (a single pass's transcode
                // tells its own).
                done += 1;
                let percent = (done * 100 / plan.parts()) as u8;
                while let Some(&milestone) = PROGRESS_MILESTONES.get(told)
                    && percent >= milestone
                    && first_failure.is_none()
                    && tell
                {
                    told += 1;
                    telling.push(tell_progress(ctx, input.job_id, milestone));
                }
            }
            Err(error) => {
                if first_failure.is_none() {
                    token.cancel();
                    first_failure = Some(error);
                }
            }
        }
    }
    match first_failure {
        Some(error) => {
            all(telling).await;
            Err(error)
        }
        None => Ok((converted.into_iter().flatten().collect(), telling)),
    }
}

/// Tells workers the job is over for them (`forget_job`, each on its own queue): those that
/// converted parts remove what is left of them there, the one holding the job lets it go. A
/// worker gone meanwhile has nothing left to remove.
async fn forget_copies(ctx: &WorkflowContext<ConvertVideo>, job_id: JobId, queues: Vec<String>) {
    let forgetting = queues.iter().map(|queue| {
        let mut options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .task_queue(queue.clone())
            .schedule_to_start_timeout(HOST_QUEUE_PICKUP)
            .retry_policy(retry(2, Duration::from_secs(5)))
            .build();
        options.cancellation_token = Some(WorkflowCancellationToken::new());
        ctx.execute_activity(activity::ForgetJob, ForgetJobInput { job_id }, options)
    });
    let _ = all(forgetting).await;
}

/// How a failed step ends the run: a cancelled step means the job was cancelled (status
/// `cancelled`), anything else fails it with the step's error.
fn end(error: ActivityExecutionError) -> WorkflowTermination {
    match error {
        ActivityExecutionError::Cancelled(_) => WorkflowTermination::cancelled(),
        other => other.into(),
    }
}

/// The parts found no frame to be joined at.
fn unjoinable(error: &ActivityExecutionError) -> bool {
    error.failure().is_some_and(|failure| {
        failures::application_type(failure) == Some(FailureKind::PartsUnjoinable.name())
    })
}

/// The worker holding the files is gone or no longer has them.
fn worker_lost(error: &ActivityExecutionError) -> bool {
    let Some(failure) = error.failure() else {
        return false;
    };
    failures::is_timeout(failure)
        || failures::application_type(failure) == Some(FailureKind::SourceNotLocal.name())
}
