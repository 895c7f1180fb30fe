//! `ConvertVideo`: one upload, one durable run.
//!
//! The workflow only decides; every side effect happens in an activity. It validates the token
//! while it fetches the source onto one worker (through the fetch queue, which only workers
//! with room take from; the fetch also plans whether a long source is converted in parts), then
//! runs `transcode` and `store_mp3` on that worker's own task queue, because only that worker
//! has the file. If that worker disappears (its queue stops being polled) or restarted and lost
//! the file, the workflow goes back to `fetch_source` on whichever worker is alive. A failed
//! notification never fails a job whose MP3 is stored. A cancelled job stops at its current
//! step (the transcode notices through its heartbeat and removes its files) and sends no
//! e-mail. Steps that need the database, storage or the mail server retry through their outages
//! for up to a day. A job that fails or is cancelled has that written on its row by
//! `record_ending` before the run ends, so statistics count every job however it ended.
//!
//! `DeliverWebhooks`: how a job ended, told to its owner's webhook endpoints. `ConvertVideo`
//! starts it as a child and does not wait for it (nor fail with it): deliveries are retried
//! for a day, long after the job itself has ended.
//!
//! `CleanExpired` (in [`cleanup`]): what retention no longer keeps, removed on a schedule.

mod cleanup;

pub use cleanup::CleanExpired;

use audiomill_domain::JobId;
use audiomill_domain::contract::{
    ConvertVideoInput, ConvertVideoOutput, DeliverWebhookInput, DeliverWebhooksInput,
    DeliverWebhooksOutput, DeliveryOutcome, DiscardSourceInput, FETCH_TASK_QUEUE, FetchSourceInput,
    FetchedSource, ForgetJobInput, JobEnding, JoinSegmentsInput, Planned, PrepareWebhooksInput,
    RecordEndingInput, SEGMENTS_TASK_QUEUE, SendEmailInput, StoreMp3Input, StoredMp3,
    TranscodeInput, TranscodeOutput, TranscodeSegmentInput, TranscodedSegment, ValidateTokenInput,
    WEBHOOKS_WORKFLOW_TYPE, WORKFLOW_TYPE, activity, failure, failures, webhook_failure,
};
use audiomill_domain::segment::{PartId, SegmentPlan};
use audiomill_domain::webhook::{PROGRESS_MILESTONES, WebhookEvent};
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityCloseTimeouts, ActivityExecutionError, ActivityOptions,
    ChildWorkflowOptions, ParentClosePolicy, WorkflowCancellationToken, WorkflowContext,
    WorkflowResult, WorkflowTermination,
};

/// Marks histories whose failed or cancelled runs record their ending; runs begun before it
/// replay without the step.
const RECORD_ENDING_PATCH: &str = "record-ending";

/// Marks histories whose runs start `DeliverWebhooks` when they end.
const WEBHOOKS_PATCH: &str = "webhooks";

/// Marks histories whose runs remove the uploaded video when they end (`discard_source`).
const RETENTION_PATCH: &str = "retention";

/// Marks histories whose runs may convert a long source in parts.
const SEGMENTS_PATCH: &str = "segments";

/// Marks histories whose runs join a long source's parts in `store_mp3` (before it, in
/// `join_segments`). Runs begun since [`JOIN_STEP_PATCH`] join in `join_segments` again.
const JOIN_IN_STORE_PATCH: &str = "join-in-store";

/// Marks histories whose runs join a long source's parts in `join_segments`, a step of its
/// own that the operator sees, before `store_mp3` stores the MP3 as after one pass.
const JOIN_STEP_PATCH: &str = "join-step";

/// Marks histories whose runs fetch the source while the token is validated, the fetch also
/// planning how the source is converted (before it, one step after the other, and the plan
/// made by `transcode`).
const FIRST_STEPS_AT_ONCE_PATCH: &str = "first-steps-at-once";

/// Marks histories whose parts have activity ids naming them ([`PartId`]); before it, the
/// SDK's sequence numbers.
const PART_IDS_PATCH: &str = "part-ids";

/// How long a webhook message is retried before it is given up: over a day, as receivers may
/// be down for maintenance that long.
const WEBHOOK_PATIENCE: Duration = Duration::from_secs(25 * 60 * 60);

/// How many times the workflow re-fetches the source after losing the worker that held it.
const MAX_WORKER_ROUNDS: u32 = 5;

/// Heartbeat deadline for the transcode. The SDK throttles heartbeats to about 0.8 of this, so
/// progress reaches the server every ~1.6 s, and a dead worker is noticed within 2 s.
const TRANSCODE_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// Heartbeat deadline of `fetch_source`, which may wait a long time for a worker with room:
/// a worker that dies while the job waits on it is noticed within this.
const FETCH_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a task may wait on a worker's own queue before we conclude the worker is gone.
const HOST_QUEUE_PICKUP: Duration = Duration::from_secs(10);

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
        // The most parts any round planned: what of them may be left in storage at the end
        // (the join removes them; a job that ended before its join leaves them).
        let mut parts = 0;
        match convert(ctx, &input, &mut parts).await {
            Ok(output) => {
                announce(ctx, input.job_id, WebhookEvent::JobCompleted).await;
                discard_source(ctx, input.job_id, parts).await;
                Ok(output)
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
    if !ctx.patched(WEBHOOKS_PATCH) {
        return;
    }
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

/// Starts a `DeliverWebhooks` child the job does not wait for: it outlives the job (abandoned
/// when the job's run closes), also when the job was cancelled, and its failures are its own.
/// The start is asked for when this is called (the SDK issues the command then); the future
/// returned waits for its answer. A run with this id already under way refuses it, and that
/// one delivers.
fn start_deliveries(
    ctx: &WorkflowContext<ConvertVideo>,
    workflow_id: String,
    input: DeliverWebhooksInput,
) -> impl Future<Output = ()> {
    let options = ChildWorkflowOptions::builder()
        .workflow_id(workflow_id)
        .parent_close_policy(ParentClosePolicy::Abandon)
        // Not the job's token: a cancelled job still announces that it was cancelled.
        .cancellation_token(WorkflowCancellationToken::new())
        .build();
    let starting = ctx.start_child_workflow(DeliverWebhooks::run, input, options);
    async move {
        let _ = starting.await;
    }
}

/// One job's webhook messages (or one replayed message), each delivered on its own: an
/// endpoint that is down delays only its own message.
#[workflow]
#[derive(Default)]
pub struct DeliverWebhooks;

#[workflow_methods]
impl DeliverWebhooks {
    #[run(name = WEBHOOKS_WORKFLOW_TYPE)]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: DeliverWebhooksInput,
    ) -> WorkflowResult<DeliverWebhooksOutput> {
        let prepare = match input {
            DeliverWebhooksInput::Event { job_id, event } => PrepareWebhooksInput {
                job_id,
                event,
                progress: None,
            },
            DeliverWebhooksInput::Progress { job_id, percent } => PrepareWebhooksInput {
                job_id,
                event: WebhookEvent::JobProgress,
                progress: Some(percent),
            },
            DeliverWebhooksInput::Replay { message_id } => {
                return deliver_all(ctx, vec![message_id], true).await;
            }
        };
        let prepared = ctx
            .execute_activity(
                activity::PrepareWebhooks,
                prepare,
                through_outages(Duration::from_secs(30)),
            )
            .await?;
        deliver_all(ctx, prepared, false).await
    }
}

/// Delivers each message at once, each retried on its own; how many were delivered.
async fn deliver_all(
    ctx: &mut WorkflowContext<DeliverWebhooks>,
    message_ids: Vec<String>,
    replay: bool,
) -> WorkflowResult<DeliverWebhooksOutput> {
    let deliveries = message_ids.into_iter().map(|message_id| {
        ctx.execute_activity(
            activity::DeliverWebhook,
            DeliverWebhookInput { message_id, replay },
            delivery_options(),
        )
    });
    let mut output = DeliverWebhooksOutput::default();
    for outcome in all(deliveries).await {
        match outcome {
            Ok(DeliveryOutcome::Delivered) => output.delivered += 1,
            Ok(DeliveryOutcome::EndpointGone | DeliveryOutcome::Skipped) | Err(_) => {
                output.undelivered += 1
            }
        }
    }
    Ok(output)
}

/// The job's steps, up to the first that ends it without an MP3.
async fn convert(
    ctx: &mut WorkflowContext<ConvertVideo>,
    input: &ConvertVideoInput,
    parts: &mut u32,
) -> Result<ConvertVideoOutput, ActivityExecutionError> {
    let at_once = ctx.patched(FIRST_STEPS_AT_ONCE_PATCH);
    let fetch = FetchSourceInput {
        job_id: input.job_id,
        source_key: input.source_key.clone(),
        plan_for: at_once.then(|| input.options.clone()),
    };
    let mut fetched = if at_once {
        Some(validated_and_fetched(ctx, input, fetch.clone()).await?)
    } else {
        ctx.execute_activity(
            activity::ValidateToken,
            validate_input(input),
            through_outages(Duration::from_secs(30)),
        )
        .await?;
        None
    };

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

    let notified = match ctx
        .execute_activity(
            activity::SendEmail,
            SendEmailInput {
                job_id: input.job_id,
            },
            mail_options(),
        )
        .await
    {
        Ok(_) => true,
        Err(error @ ActivityExecutionError::Cancelled(_)) => return Err(error),
        // The MP3 is stored and downloadable; the failure stays visible in the history.
        Err(_) => false,
    };

    Ok(ConvertVideoOutput {
        mp3_key: stored.mp3_key,
        mp3_size: stored.mp3_size,
        duration_ms,
        notified,
    })
}

/// Validates the token while the source is fetched, so that neither step waits for the other
/// (a job's first steps are a fixed cost to every job, however short). A login no longer valid
/// ends the job there, as it did when validation came first: the fetch stops, and a worker that
/// had fetched the source already lets it go. Nothing is converted before the token is valid.
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
    if !ctx.patched(RECORD_ENDING_PATCH) {
        return;
    }
    let ending = match error {
        ActivityExecutionError::Cancelled(_) => JobEnding::Cancelled,
        other => JobEnding::Failed {
            failure_type: other
                .failure()
                .map_or(failure::OTHER, failures::kind)
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
async fn discard_source(ctx: &mut WorkflowContext<ConvertVideo>, job_id: JobId, parts: u32) {
    if !ctx.patched(RETENTION_PATCH) {
        return;
    }
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
    let segments = ctx.patched(SEGMENTS_PATCH);
    let mut transcoded = match fetched.planned.take() {
        // Planned as it was fetched: the parts start now.
        Some(Planned::Parts {
            plan,
            progress_wanted,
        }) => TranscodeOutput {
            duration_ms: 0,
            plan: Some(plan),
            progress_wanted,
        },
        planned => {
            // Planned for one pass, or the transcode plans it (when the fetch could not).
            let segments = segments && planned.is_none();
            match transcode_on(ctx, input, &fetched.task_queue, segments, may_retry).await? {
                Some(transcoded) => transcoded,
                None => return Ok(None),
            }
        }
    };
    let mut part_workers = Vec::new();
    // The MP3 stored, and how long it is.
    let stored = 'stored: {
        let Some(plan) = transcoded.plan.take() else {
            break 'stored store_on(
                ctx,
                input.job_id,
                &fetched.task_queue,
                transcoded.duration_ms,
                None,
            )
            .await;
        };
        *parts = (*parts).max(plan.parts() as u32);
        let tell = transcoded.progress_wanted;
        let (converted, telling) = match convert_parts(ctx, input, &plan, round, tell).await {
            Ok(converted) => converted,
            Err(error) => {
                // The job ends in its parts: the worker holding it lets it go now.
                forget_copies(ctx, input.job_id, vec![fetched.task_queue.clone()]).await;
                return Err(error);
            }
        };
        part_workers = converted
            .iter()
            .map(|part| part.task_queue.clone())
            .collect();
        part_workers.sort();
        part_workers.dedup();
        part_workers.retain(|queue| *queue != fetched.task_queue);
        // The last part reaches to the end of the whole.
        let duration_ms = converted.last().map_or(0, |part| part.duration_ms);
        let joined = if !ctx.patched(JOIN_STEP_PATCH) && ctx.patched(JOIN_IN_STORE_PATCH) {
            // Joined as it is stored: the job is done when this step is.
            let storing = store_on(
                ctx,
                input.job_id,
                &fetched.task_queue,
                duration_ms,
                Some(plan),
            );
            all(telling).await;
            match storing.await {
                Err(error) if unjoinable(&error) => Err(error),
                stored => {
                    if let Err(error) = &stored
                        && !(may_retry && worker_lost(error))
                    {
                        // The job ends here: the worker holding it lets it go too.
                        part_workers.push(fetched.task_queue.clone());
                    }
                    break 'stored stored;
                }
            }
        } else {
            // Joined on the worker holding the job, where a single pass leaves its MP3.
            let join = JoinSegmentsInput {
                job_id: input.job_id,
                plan,
            };
            let joining =
                ctx.execute_activity(activity::JoinSegments, join, on_host(&fetched.task_queue));
            all(telling).await;
            joining.await.map(|_| ())
        };
        let duration_ms = match joined {
            Ok(()) => duration_ms,
            Err(error) if unjoinable(&error) => {
                // One pass on the worker holding the source, as for a short one.
                match transcode_on(ctx, input, &fetched.task_queue, false, may_retry).await? {
                    Some(transcoded) => transcoded.duration_ms,
                    None => return Ok(None),
                }
            }
            Err(error) if may_retry && worker_lost(&error) => return Ok(None),
            Err(error) => {
                part_workers.push(fetched.task_queue.clone());
                forget_copies(ctx, input.job_id, part_workers).await;
                return Err(error);
            }
        };
        store_on(ctx, input.job_id, &fetched.task_queue, duration_ms, None).await
    };
    forget_copies(ctx, input.job_id, part_workers).await;
    match stored {
        Ok(stored) => Ok(Some(stored)),
        Err(error) if may_retry && worker_lost(&error) => Ok(None),
        Err(error) => Err(error),
    }
}

/// `store_mp3` on the worker holding the job (joining the MP3 from its parts there, given
/// their `join` plan): the MP3 stored and its duration.
fn store_on<'a>(
    ctx: &'a WorkflowContext<ConvertVideo>,
    job_id: JobId,
    holder: &str,
    duration_ms: u64,
    join: Option<SegmentPlan>,
) -> impl Future<Output = Result<(StoredMp3, u64), ActivityExecutionError>> + 'a {
    let store = StoreMp3Input {
        job_id,
        duration_ms,
        join,
    };
    let storing = ctx.execute_activity(activity::StoreMp3, store, on_host(holder));
    async move { storing.await.map(|stored| (stored, duration_ms)) }
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
    let named = ctx.patched(PART_IDS_PATCH);
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
            if named {
                let id = PartId {
                    round,
                    part,
                    parts: plan.parts() as u32,
                };
                options.activity_id = Some(id.activity_id());
            }
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

/// Awaits every one of `futures` at once; their outputs in order. Each is polled with the
/// workflow's own waker, as the SDK requires: `join_all` wakes through a `FuturesUnordered`
/// of its own once it has more than 30.
async fn all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut running: Vec<_> = futures
        .into_iter()
        .enumerate()
        .map(|(index, future)| Box::pin(async move { (index, future.await) }))
        .collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    while !running.is_empty() {
        let ((index, output), _, rest) = futures::future::select_all(running).await;
        outputs[index] = Some(output);
        running = rest;
    }
    outputs.into_iter().flatten().collect()
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
        failures::application_type(failure) == Some(failure::PARTS_UNJOINABLE)
    })
}

/// The worker holding the files is gone or no longer has them.
fn worker_lost(error: &ActivityExecutionError) -> bool {
    let Some(failure) = error.failure() else {
        return false;
    };
    failures::is_timeout(failure)
        || failures::application_type(failure) == Some(failure::SOURCE_NOT_LOCAL)
}

/// How long a step keeps retrying through an outage of the database, storage or mail server
/// before the job gives up. Media errors are typed non-retryable and fail at once.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(24 * 60 * 60);

/// Retries until `OUTAGE_PATIENCE` (set as the schedule-to-close timeout) runs out.
const UNTIL_PATIENCE_RUNS_OUT: u32 = 0;

/// Each attempt bounded by `attempt`, all of them together by `OUTAGE_PATIENCE`.
fn patient(attempt: Duration) -> ActivityCloseTimeouts {
    ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: OUTAGE_PATIENCE,
        start_to_close: attempt,
    }
}

fn retry(maximum_attempts: u32, maximum_interval: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(maximum_interval)
        .maximum_attempts(maximum_attempts)
        .non_retryable_error_types(failure::NON_RETRYABLE)
        .build()
}

/// A short step that needs a dependency: each attempt is quick, attempts go on through an
/// outage (every 30 s at most) until the dependency is back.
pub(crate) fn through_outages(start_to_close: Duration) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(start_to_close))
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(30)))
        .build()
}

/// `fetch_source` runs on the fetch queue, where only workers with room take it, and can wait
/// there for hours when every worker is busy; once taken it heartbeats. Storage outages are
/// retried like any other step's.
fn fetch_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(Duration::from_secs(4 * 60 * 60)))
        .task_queue(FETCH_TASK_QUEUE.to_owned())
        .heartbeat_timeout(FETCH_HEARTBEAT_TIMEOUT)
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(30)))
        .build()
}

fn transcode_options(task_queue: &str) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(4 * 60 * 60))
        .task_queue(task_queue.to_owned())
        .schedule_to_start_timeout(HOST_QUEUE_PICKUP)
        .heartbeat_timeout(TRANSCODE_HEARTBEAT_TIMEOUT)
        // Wait for the transcode to stop and clean up before the run ends as cancelled.
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(retry(3, Duration::from_secs(10)))
        .build()
}

/// A part: on any worker with room (the segments queue), heartbeating like the transcode, so
/// a dead worker's part is noticed within seconds and runs again on another; a crash of the
/// converter is tried again, media at fault is not.
fn segment_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(4 * 60 * 60))
        .task_queue(SEGMENTS_TASK_QUEUE.to_owned())
        .heartbeat_timeout(TRANSCODE_HEARTBEAT_TIMEOUT)
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(retry(5, Duration::from_secs(10)))
        .build()
}

/// `store_mp3` on the worker holding the MP3: retried through storage and database outages;
/// a worker that vanished shows as a schedule-to-start timeout (not retried: re-fetched).
fn on_host(task_queue: &str) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(Duration::from_secs(30 * 60)))
        .task_queue(task_queue.to_owned())
        .schedule_to_start_timeout(HOST_QUEUE_PICKUP)
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(10)))
        .build()
}

/// A webhook message: each attempt bounded by the receiver's timeout (and the database's), then
/// retried with backoff from seconds to an hour for over a day. An address that may not be
/// reached is not retried.
fn delivery_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: WEBHOOK_PATIENCE,
        start_to_close: Duration::from_secs(60),
    })
    .retry_policy(
        RetryPolicy::builder()
            .initial_interval(Duration::from_secs(1))
            .backoff_coefficient(2.0)
            .maximum_interval(Duration::from_secs(60 * 60))
            .maximum_attempts(UNTIL_PATIENCE_RUNS_OUT)
            .non_retryable_error_types([webhook_failure::REFUSED])
            .build(),
    )
    .build()
}

/// The e-mail waits out a mail server outage; `/status` shows its failed attempts meanwhile.
fn mail_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(Duration::from_secs(60)))
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(60)))
        .build()
}
