//! A job's status: the job row for what is stored, Temporal's describe for what is running.
//! Describe works without any worker alive, unlike queries, so status always answers.

use audiomill_domain::{
    JobId, JobStatus, Step,
    contract::{FailureKind, StepProgress, failures},
    in_parts::PartId,
};
use audiomill_store::Job;
use audiomill_workflows::ConvertVideo;
use lru::LruCache;
use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};
use temporalio_client::{
    Client, HistoryEventFilterType, WorkflowDescribeOptions, WorkflowFetchHistoryOptions,
};
use temporalio_common::protos::temporal::api::{
    enums::v1::{PendingActivityState, WorkflowExecutionStatus},
    failure::v1::{Failure, failure::FailureInfo},
    history::v1::history_event::Attributes,
    workflow::v1::PendingActivityInfo,
};

/// What `/status` reports, before formatting.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub status: JobStatus,
    pub step: Option<Step>,
    pub progress: u8,
    pub attempt: u32,
    pub completed_at: Option<i64>,
    pub error: Option<String>,
}

/// Views of jobs, kept so that pollers do not each ask the engine. A closed run never changes,
/// so its view is kept until it makes room (the least recently asked-for first; views are
/// cheap to rebuild); a running job's view is shared for [`RUNNING_VIEW_AGE`], so any number
/// of pollers of one job, or of a batch, cost one describe per running job that often.
pub struct JobViews {
    closed: Mutex<LruCache<JobId, JobView>>,
    running: Mutex<LruCache<JobId, Arc<RunningView>>>,
}

/// A running job's last view and when it was taken; pollers that find it stale wait for the
/// one of them that describes the job again.
type RunningView = tokio::sync::Mutex<Option<(Instant, JobView)>>;

/// How many views of each kind are remembered.
const MAX_VIEWS: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");

/// How long a running job's view answers for it: progress moves in steps of seconds.
pub const RUNNING_VIEW_AGE: Duration = Duration::from_secs(1);

impl Default for JobViews {
    fn default() -> Self {
        Self {
            closed: Mutex::new(LruCache::new(MAX_VIEWS)),
            running: Mutex::new(LruCache::new(MAX_VIEWS)),
        }
    }
}

impl JobViews {
    /// The job's view: from memory when its workflow is known to have closed or was described
    /// a moment ago, from the engine otherwise.
    pub async fn job_view(&self, temporal: &Client, job: &Job) -> JobView {
        if let Some(view) = locked(&self.closed).get(&job.id) {
            return view.clone();
        }
        let slot = locked(&self.running)
            .get_or_insert(job.id, Default::default)
            .clone();
        let mut last = slot.lock().await;
        if let Some((at, view)) = last.as_ref()
            && at.elapsed() < RUNNING_VIEW_AGE
        {
            return view.clone();
        }
        if let Some(view) = locked(&self.closed).get(&job.id) {
            return view.clone();
        }
        let (view, closed) = describe(temporal, job).await;
        if closed {
            locked(&self.closed).put(job.id, view.clone());
            locked(&self.running).pop(&job.id);
        } else {
            *last = Some((Instant::now(), view.clone()));
        }
        view
    }

    /// The job's view as a batch shows it, asking the engine only of jobs a worker took and
    /// that have not ended, and of failures once: a job no worker took is queued, and one
    /// whose MP3 is recorded has completed, as its row says.
    pub async fn batch_view(&self, temporal: &Client, job: &Job) -> JobView {
        if row_tells_all(job) {
            return from_row_only(job);
        }
        self.job_view(temporal, job).await
    }

    /// Forgets a job (deleted, or about to be).
    pub fn forget(&self, job: JobId) {
        locked(&self.closed).pop(&job);
        locked(&self.running).pop(&job);
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The job's view, from Temporal now.
pub async fn job_view(temporal: &Client, job: &Job) -> JobView {
    describe(temporal, job).await.0
}

/// The job's view, and whether its workflow has closed (so the view is final).
async fn describe(temporal: &Client, job: &Job) -> (JobView, bool) {
    crate::metrics::job_described();
    let handle = temporal.get_workflow_handle::<ConvertVideo>(job.id.to_string());
    let described = match handle.describe(WorkflowDescribeOptions::default()).await {
        Ok(described) => described.into_raw(),
        Err(error) => {
            tracing::warn!(job_id = %job.id, %error, "describe failed; answering from the job row");
            return (from_row_only(job), false);
        }
    };
    let info = described.workflow_execution_info.unwrap_or_default();
    let status = WorkflowExecutionStatus::try_from(info.status)
        .unwrap_or(WorkflowExecutionStatus::Unspecified);
    let close_millis = info
        .close_time
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);

    let closed = matches!(
        status,
        WorkflowExecutionStatus::Completed
            | WorkflowExecutionStatus::Failed
            | WorkflowExecutionStatus::Canceled
            | WorkflowExecutionStatus::Terminated
            | WorkflowExecutionStatus::TimedOut
    );
    let view = match status {
        WorkflowExecutionStatus::Running => {
            running_view(job, &described.pending_activities, info.history_length)
        }
        WorkflowExecutionStatus::Completed => JobView {
            status: JobStatus::Completed,
            step: Some(Step::SendEmail),
            progress: 100,
            attempt: 1,
            completed_at: job.completed_at.or(close_millis),
            error: None,
        },
        WorkflowExecutionStatus::Failed => failed_view(temporal, job).await,
        WorkflowExecutionStatus::Canceled => {
            final_view(JobStatus::Cancelled, "The job was cancelled.")
        }
        WorkflowExecutionStatus::Terminated => {
            final_view(JobStatus::Failed, "The job was stopped by an operator.")
        }
        WorkflowExecutionStatus::TimedOut => {
            final_view(JobStatus::Failed, "The job took too long and was stopped.")
        }
        _ => from_row_only(job),
    };
    (view, closed)
}

/// A step's heartbeat details, if it sent any.
fn step_progress(activity: &PendingActivityInfo) -> Option<StepProgress> {
    activity
        .heartbeat_details
        .as_ref()
        .and_then(|d| d.payloads.first())
        .and_then(|p| serde_json::from_slice::<StepProgress>(&p.data).ok())
}

/// A long source's parts, as one transcode: the parts no longer pending are done, the others
/// count by their own percentage; `waiting` while none has started converting (or finished).
/// How many parts there are is in their activity ids (and in their heartbeats); without
/// either, the pending ones are all there is.
fn parts_progress(pending: &[PendingActivityInfo]) -> Option<StepProgress> {
    let parts: Vec<&PendingActivityInfo> = pending
        .iter()
        .filter(|a| {
            a.activity_type
                .as_ref()
                .is_some_and(|t| t.name == "transcode_segment")
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    let details: Vec<Option<StepProgress>> = parts.iter().map(|a| step_progress(a)).collect();
    let count = parts
        .iter()
        .find_map(|a| PartId::from_activity_id(&a.activity_id))
        .map(|id| id.parts)
        .or_else(|| details.iter().flatten().find_map(|d| d.parts))
        .map_or(parts.len(), |count| count as usize)
        .max(parts.len());
    let running: usize = details
        .iter()
        .map(|d| usize::from(d.map_or(0, |d| d.percent.min(100))))
        .sum();
    let finished = count - parts.len();
    let done = finished * 100 + running;
    Some(StepProgress {
        percent: (done / count) as u8,
        waiting: finished == 0 && details.iter().all(|d| d.is_none_or(|d| d.waiting)),
        parts: Some(count as u32),
    })
}

/// A running job: its current step, from the first pending activity and its heartbeats (all
/// the parts' of a long source). In runs that validate the token beside the fetch, the job is
/// at its first step until the token is validated; the token check as a local activity is
/// never pending.
fn running_view(job: &Job, pending: &[PendingActivityInfo], history_length: i64) -> JobView {
    let all = pending;
    let validating = all.iter().find(|a| {
        a.activity_type
            .as_ref()
            .is_some_and(|t| t.name == Step::ValidateToken.activity_name())
    });
    let pending = validating.or(all.first());
    let step = pending
        .and_then(|a| a.activity_type.as_ref())
        .and_then(|t| Step::from_activity_name(&t.name));
    let joining = pending
        .and_then(|a| a.activity_type.as_ref())
        .is_some_and(|t| t.name == "join_segments");
    let details = parts_progress(all).or_else(|| pending.and_then(step_progress));
    // A step still waiting for room on a worker has not really started, and neither has one
    // whose worker has not reported on it yet: a transcode is taken by its worker before a
    // slot is free, and says which it is in its first heartbeat, a moment later. The join
    // of the parts needs no slot.
    let waiting = match step {
        Some(Step::FetchSource | Step::Transcode) if !joining => details.is_none_or(|d| d.waiting),
        _ => false,
    };
    let started = pending.is_some_and(|a| a.state == PendingActivityState::Started as i32);
    let attempt = pending.map_or(1, |a| a.attempt.max(1) as u32);
    // The MP3 is stored and downloadable; only the e-mail is still on its way.
    let status = if job.completed_at.is_some() {
        JobStatus::Completed
    } else if waiting && attempt == 1 {
        // Accepted, but no worker has had room for it yet.
        JobStatus::Queued
    } else if started
        || attempt > 1
        // Past the first step (its schedule is the fifth event, or the seventh beside the
        // fetch and the marker of that order).
        || (history_length > 5 && validating.is_none())
    {
        JobStatus::Running
    } else {
        JobStatus::Queued
    };
    let progress = match step {
        _ if status == JobStatus::Completed => 100,
        Some(Step::Transcode) if joining => 99,
        Some(Step::Transcode) => details.map_or(0, |d| d.percent.min(99)),
        Some(Step::ExportMp3 | Step::StoreMp3 | Step::SendEmail) => 100,
        _ => 0,
    };
    let error = pending.and_then(|a| a.last_failure.as_ref()).map(|f| {
        format!(
            "Attempt {} failed, retrying. {}",
            attempt.saturating_sub(1).max(1),
            user_message(f)
        )
    });
    JobView {
        status,
        // Between two steps nothing is pending: no step is current then, except that a job
        // whose MP3 is stored is only waiting for its e-mail.
        step: step.or(job.completed_at.map(|_| Step::SendEmail)),
        progress,
        attempt,
        completed_at: job.completed_at,
        error,
    }
}

/// A failed job: the step and the sentence of the failure that ended it, from its history.
async fn failed_view(temporal: &Client, job: &Job) -> JobView {
    let failure = close_failure(temporal, job).await;
    let step = failure.as_ref().and_then(failed_step);
    let error = failure
        .as_ref()
        .map_or_else(|| "The conversion failed.".to_owned(), user_message);
    JobView {
        status: JobStatus::Failed,
        step,
        progress: 0,
        attempt: 1,
        // Nothing was completed: `completed_at` is the MP3's time only.
        completed_at: None,
        error: Some(error),
    }
}

fn final_view(status: JobStatus, message: &str) -> JobView {
    JobView {
        status,
        step: None,
        progress: 0,
        attempt: 1,
        completed_at: None,
        error: Some(message.to_owned()),
    }
}

/// When Temporal cannot be asked: what the job row alone tells.
/// Whether the job's row alone says where it stands: no worker took it yet (queued), or its
/// MP3 is recorded (completed).
fn row_tells_all(job: &Job) -> bool {
    job.completed_at.is_some() || (job.outcome.is_none() && job.taken_at.is_none())
}

fn from_row_only(job: &Job) -> JobView {
    match job.completed_at {
        Some(at) => JobView {
            status: JobStatus::Completed,
            step: Some(Step::SendEmail),
            progress: 100,
            attempt: 1,
            completed_at: Some(at),
            error: None,
        },
        None => JobView {
            status: JobStatus::Queued,
            step: None,
            progress: 0,
            attempt: 1,
            completed_at: None,
            error: None,
        },
    }
}

async fn close_failure(temporal: &Client, job: &Job) -> Option<Failure> {
    let handle = temporal.get_workflow_handle::<ConvertVideo>(job.id.to_string());
    let options = WorkflowFetchHistoryOptions::builder()
        .event_filter_type(HistoryEventFilterType::CloseEvent)
        .build();
    let events = handle.fetch_history(options).into_events().await.ok()?;
    events
        .into_iter()
        .rev()
        .find_map(|event| match event.attributes {
            Some(Attributes::WorkflowExecutionFailedEventAttributes(attrs)) => attrs.failure,
            _ => None,
        })
}

/// The activity a failure came from. A local activity's failure (the token check's) carries
/// no activity details: the kind of failure names its step.
fn failed_step(failure: &Failure) -> Option<Step> {
    let named = failures::chain(failure).find_map(|f| match &f.failure_info {
        Some(FailureInfo::ActivityFailureInfo(info)) => info
            .activity_type
            .as_ref()
            .and_then(|t| Step::from_activity_name(&t.name)),
        _ => None,
    });
    named.or_else(
        || match FailureKind::of(failures::application_type(failure)) {
            FailureKind::InvalidToken => Some(Step::ValidateToken),
            _ => None,
        },
    )
}

/// The sentence users see: the innermost cause's message when it was written for them (a
/// media or token failure), else a sentence chosen by the failure's type, so that no host
/// name or internal cause of an outage reaches a client.
fn user_message(failure: &Failure) -> String {
    let type_name = failures::application_type(failure);
    if let Some(sentence) = FailureKind::of(type_name).user_sentence() {
        return sentence.to_owned();
    }
    let message = failures::root_cause(failure).message.trim();
    if message.is_empty() {
        "The conversion failed.".to_owned()
    } else {
        message.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audiomill_domain::{ObjectKey, UserId};
    use temporalio_common::protos::temporal::api::common::v1::{ActivityType, Payload, Payloads};

    fn job() -> Job {
        let id = JobId::generate();
        Job {
            id,
            user_id: UserId::generate(),
            original_filename: "talk.mp4".into(),
            source_key: ObjectKey::source(id, "mp4"),
            source_size: 1,
            created_at: 0,
            mp3_key: None,
            mp3_size: None,
            duration_ms: None,
            completed_at: None,
            notified_at: None,
            outcome: None,
            failure_type: None,
            options: Default::default(),
            batch_id: None,
            expires_at: None,
            expired_at: None,
            taken_at: None,
            copied: false,
            audio_tracks: Vec::new(),
        }
    }

    fn pending(step: Step, started: bool) -> PendingActivityInfo {
        PendingActivityInfo {
            activity_type: Some(ActivityType {
                name: step.activity_name().into(),
            }),
            state: if started {
                PendingActivityState::Started
            } else {
                PendingActivityState::Scheduled
            } as i32,
            attempt: 1,
            ..Default::default()
        }
    }

    /// Part `part` of six, started or not, with the percentage it reported if any.
    fn part(part: u32, percent: Option<u8>) -> PendingActivityInfo {
        let progress = percent.map(|percent| StepProgress {
            percent,
            waiting: false,
            parts: Some(6),
        });
        PendingActivityInfo {
            activity_id: PartId {
                round: 1,
                part,
                parts: 6,
            }
            .activity_id(),
            activity_type: Some(ActivityType {
                name: "transcode_segment".into(),
            }),
            state: if percent.is_some() {
                PendingActivityState::Started
            } else {
                PendingActivityState::Scheduled
            } as i32,
            attempt: 1,
            heartbeat_details: progress.map(|p| Payloads {
                payloads: vec![Payload {
                    data: serde_json::to_vec(&p).unwrap(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }
    }

    /// A job's progress counts the parts already done, also at the moment when none of the
    /// pending ones has reported yet (two ended together, the next two just taken).
    #[test]
    fn the_parts_done_count_before_the_next_ones_report() {
        let first_two_running = [part(0, Some(50)), part(1, Some(50))]
            .into_iter()
            .chain((2..6).map(|p| part(p, None)))
            .collect::<Vec<_>>();
        let view = running_view(&job(), &first_two_running, 20);
        assert_eq!((view.step, view.progress), (Some(Step::Transcode), 16));

        let none_reported: Vec<_> = (2..6).map(|p| part(p, None)).collect();
        let view = running_view(&job(), &none_reported, 30);
        assert_eq!((view.step, view.progress), (Some(Step::Transcode), 33));
        assert_eq!(view.status, JobStatus::Running);

        let last_one = [part(5, Some(40))];
        let view = running_view(&job(), &last_one, 40);
        assert_eq!(view.progress, 90);

        // Joined: still the transcode, all but done.
        let mut joining = pending(Step::Transcode, true);
        joining.activity_type = Some(ActivityType {
            name: "join_segments".into(),
        });
        let view = running_view(&job(), &[joining], 50);
        assert_eq!((view.step, view.progress), (Some(Step::Transcode), 99));
        assert_eq!(view.status, JobStatus::Running);
    }

    /// The token is validated while the source is fetched: the job is at its first step until
    /// it is valid, queued until that step starts, whatever order describe lists them in.
    #[test]
    fn a_job_validating_while_it_fetches_is_at_its_first_step() {
        // Started, the marker of the order, the two schedules: seven events.
        let both = [
            pending(Step::FetchSource, true),
            pending(Step::ValidateToken, false),
        ];
        let view = running_view(&job(), &both, 7);
        assert_eq!(view.step, Some(Step::ValidateToken));
        assert_eq!(view.status, JobStatus::Queued);

        let both = [
            pending(Step::ValidateToken, true),
            pending(Step::FetchSource, false),
        ];
        let view = running_view(&job(), &both, 8);
        assert_eq!(view.step, Some(Step::ValidateToken));
        assert_eq!(view.status, JobStatus::Running);

        // Validated: the fetch waits for a worker with room.
        let fetching = [pending(Step::FetchSource, false)];
        let view = running_view(&job(), &fetching, 10);
        assert_eq!(view.step, Some(Step::FetchSource));
        assert_eq!(view.status, JobStatus::Queued);

        // Between two steps, past the first.
        let view = running_view(&job(), &[], 12);
        assert_eq!(view.status, JobStatus::Running);
        assert_eq!(view.step, None);
    }

    #[test]
    fn a_batch_asks_the_engine_only_of_jobs_a_worker_took_that_have_not_completed() {
        let queued = job();
        assert!(row_tells_all(&queued));
        assert_eq!(from_row_only(&queued).status, JobStatus::Queued);
        let taken = Job {
            taken_at: Some(1),
            copied: false,
            audio_tracks: Vec::new(),
            ..job()
        };
        assert!(
            !row_tells_all(&taken),
            "running: its step and progress are the engine's"
        );
        let completed = Job {
            taken_at: Some(1),
            copied: false,
            audio_tracks: Vec::new(),
            completed_at: Some(2),
            outcome: Some(JobStatus::Completed),
            ..job()
        };
        assert!(row_tells_all(&completed));
        assert_eq!(from_row_only(&completed).status, JobStatus::Completed);
        let failed = Job {
            outcome: Some(JobStatus::Failed),
            ..job()
        };
        assert!(
            !row_tells_all(&failed),
            "its sentence is in its history, read once"
        );
    }
}
