//! How each step is run: its timeouts, the queue it runs on, and its retry policy. Retries
//! come from Temporal alone; media errors are typed non-retryable and fail at once.

use audiomill_domain::contract::{
    FETCH_TASK_QUEUE, FailureKind, SEGMENTS_TASK_QUEUE, webhook_failure,
};
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_sdk::{
    ActivityCancellationType, ActivityCloseTimeouts, ActivityOptions, LocalActivityOptions,
};

/// How long a webhook message is retried before it is given up: over a day, as receivers may
/// be down for maintenance that long.
const WEBHOOK_PATIENCE: Duration = Duration::from_secs(25 * 60 * 60);

/// Heartbeat deadline for the transcode. The SDK throttles heartbeats to about 0.8 of this, so
/// progress reaches the server every ~1.6 s, and a dead worker is noticed within 2 s.
const TRANSCODE_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(2);

/// Heartbeat deadline of `fetch_source`, which may wait a long time for a worker with room:
/// a worker that dies while the job waits on it is noticed within this.
const FETCH_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a task may wait on a worker's own queue before we conclude the worker is gone.
pub(crate) const HOST_QUEUE_PICKUP: Duration = Duration::from_secs(10);

/// How long a step keeps retrying through an outage of the database, storage or mail server
/// before the job gives up. Media errors are typed non-retryable and fail at once.
const OUTAGE_PATIENCE: Duration = Duration::from_secs(24 * 60 * 60);

/// Retries until `OUTAGE_PATIENCE` (set as the schedule-to-close timeout) runs out.
pub(crate) const UNTIL_PATIENCE_RUNS_OUT: u32 = 0;

/// Each attempt bounded by `attempt`, all of them together by `OUTAGE_PATIENCE`.
pub(crate) fn patient(attempt: Duration) -> ActivityCloseTimeouts {
    ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: OUTAGE_PATIENCE,
        start_to_close: attempt,
    }
}

pub(crate) fn retry(maximum_attempts: u32, maximum_interval: Duration) -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(maximum_interval)
        .maximum_attempts(maximum_attempts)
        .non_retryable_error_types(FailureKind::non_retryable())
        .build()
}

/// A short step that needs a dependency: each attempt is quick, attempts go on through an
/// outage (every 30 s at most) until the dependency is back.
pub(crate) fn through_outages(start_to_close: Duration) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(start_to_close))
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(30)))
        .build()
}

/// A short step run as a local activity, on the worker that runs the workflow task: no task
/// queue and no workflow task of its own. Retried through an outage like [`through_outages`].
pub(crate) fn local_through_outages(start_to_close: Duration) -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .start_to_close_timeout(start_to_close)
        .schedule_to_close_timeout(OUTAGE_PATIENCE)
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(30)))
        .build()
}

/// `fetch_source` runs on the fetch queue, where only workers with room take it, and can wait
/// there for hours when every worker is busy; once taken it heartbeats. Storage outages are
/// retried like any other step's.
pub(crate) fn fetch_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(Duration::from_secs(4 * 60 * 60)))
        .task_queue(FETCH_TASK_QUEUE.to_owned())
        .heartbeat_timeout(FETCH_HEARTBEAT_TIMEOUT)
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(30)))
        .build()
}

/// `import_source` runs on any worker and heartbeats as the bytes arrive; a server that
/// failed or was too slow is tried again a few times, a link at fault (404, too large, not a
/// video) is not. A cancelled job waits for the import to remove what it stored.
pub(crate) fn import_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
        schedule_to_close: Duration::from_secs(8 * 60 * 60),
        start_to_close: Duration::from_secs(4 * 60 * 60),
    })
    .heartbeat_timeout(FETCH_HEARTBEAT_TIMEOUT)
    .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
    .retry_policy(retry(4, Duration::from_secs(30)))
    .build()
}

/// `export_mp3` on the worker holding the MP3: the user's storage failing or slow is tried
/// again a few times, refused keys or a missing bucket are not; a worker that vanished shows
/// as a schedule-to-start timeout, as for `store_mp3`.
pub(crate) fn export_options(task_queue: &str) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60 * 60))
        .task_queue(task_queue.to_owned())
        .schedule_to_start_timeout(HOST_QUEUE_PICKUP)
        .retry_policy(retry(4, Duration::from_secs(30)))
        .build()
}

pub(crate) fn transcode_options(task_queue: &str) -> ActivityOptions {
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
pub(crate) fn segment_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(4 * 60 * 60))
        .task_queue(SEGMENTS_TASK_QUEUE.to_owned())
        .heartbeat_timeout(TRANSCODE_HEARTBEAT_TIMEOUT)
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(retry(5, Duration::from_secs(10)))
        .build()
}

/// `store_mp3` on the worker holding the MP3: retried through storage and database outages;
/// a worker that vanished shows as a schedule-to-start timeout (not retried: re-fetched).
pub(crate) fn on_host(task_queue: &str) -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(Duration::from_secs(30 * 60)))
        .task_queue(task_queue.to_owned())
        .schedule_to_start_timeout(HOST_QUEUE_PICKUP)
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(10)))
        .build()
}

/// A webhook message: each attempt bounded by the receiver's timeout (and the database's), then
/// retried with backoff from seconds to an hour for over a day. An address that may not be
/// reached is not retried.
pub(crate) fn delivery_options() -> ActivityOptions {
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
pub(crate) fn mail_options() -> ActivityOptions {
    ActivityOptions::with_close_timeouts(patient(Duration::from_secs(60)))
        .retry_policy(retry(UNTIL_PATIENCE_RUNS_OUT, Duration::from_secs(60)))
        .build()
}
