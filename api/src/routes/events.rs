//! `GET /jobs/{job_id}/events`: a job's progress as Server-Sent Events, from the gateway's
//! one watcher of the job (see [`crate::live`]).

use super::context::{ApiTags, BearerAuth, Context, ErrorJson, Scope};
use super::jobs::JobState;
use super::jobs::JobStep;
use crate::{
    error::{ErrorBody, ErrorCode},
    limits::{Full, Slot},
    live::{Moment, Watchers},
    metrics,
    params::ApiJobId,
};
use futures::{Stream, StreamExt, stream::BoxStream};
use poem::web::sse::Event;
use poem_openapi::{
    Object, OpenApi,
    param::{Header, Path},
    payload::EventStream,
    types::ToJSON,
};
use std::time::Duration;
use tokio::sync::watch;

/// `GET /jobs/{job_id}/events`.
pub struct EventsApi {
    pub(super) cx: Context,
}

/// How often an idle stream carries a comment, so proxies and clients keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One event of a job's stream (its `data`).
#[derive(Object)]
struct JobEvent {
    /// The event's `id` (not in its data).
    #[oai(skip)]
    id: String,
    /// The event's type (not in its data).
    #[oai(skip)]
    kind: &'static str,
    job_id: ApiJobId,
    status: JobState,
    /// The step running now; `null` between two steps.
    #[oai(nullable)]
    step: Option<JobStep>,
    /// 0-100.
    progress: u8,
    /// The current step's attempt, from 1; a `retry` event says when it grows.
    attempt: u32,
    /// Why the last attempt failed (on `retry`) or why the job failed; else `null`.
    #[oai(nullable)]
    error: Option<String>,
    /// Seconds until the transcode ends, from its measured speed; `null` outside it.
    #[oai(nullable)]
    eta_seconds: Option<u64>,
    /// Where the MP3 is, once the job has completed; else `null`.
    #[oai(nullable)]
    download_url: Option<String>,
}

api_response! {
    #[oai(bad_request_handler = "super::context::job_id_refusal")]
    enum EventsResponse {
        /// The job's events: `progress` when its step, percent or ETA moves, `retry` when a step
        /// is tried again, and `end` (completed, failed or cancelled) before the stream closes.
        /// Each event's `id` names the job's state: sent back as `Last-Event-ID`, nothing already
        /// seen is sent again. Idle streams carry a comment every 15 s.
        #[oai(status = 200)]
        Events(EventStream<BoxStream<'static, JobEvent>>),
        /// The job had ended and `Last-Event-ID` is its `end` event: nothing more will come
        /// (an EventSource stops reconnecting on 204).
        #[oai(status = 204)]
        Ended,
        @bad_job_id,
        @unauthorized,
        @forbidden,
        @job_not_found,
        /// The caller holds as many event streams open as one user may
        /// (`MAX_EVENT_STREAMS_PER_USER`), or this gateway as many as it serves
        /// (`MAX_EVENT_STREAMS`); `Retry-After` says when to try again.
        #[oai(status = 429)]
        TooManyStreams(ErrorJson, #[oai(header = "Retry-After")] u64),
        @unavailable,
    }
}

/// When a client refused a stream may try again: streams end when their jobs do.
const STREAM_RETRY_AFTER_SECONDS: u64 = 10;

#[OpenApi]
impl EventsApi {
    /// Follow a job live, as Server-Sent Events.
    #[oai(
        path = "/jobs/:job_id/events",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "streamJobEvents"
    )]
    async fn events(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        job_id: Path<ApiJobId>,
        /// The `id` of the last event received, when reconnecting.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> EventsResponse {
        let (caller, job) =
            or_refuse!(self.cx.caller_job(&auth, Scope::JobsRead, job_id.0.0).await);
        let slot = match self.cx.gw().event_streams.take(caller.user) {
            Ok(slot) => slot,
            Err(full) => return too_many_streams(full),
        };
        let mut moments = Watchers::follow(&self.cx.gateway(), job.id);
        let seen = last_event_id.0;
        // A job that has ended, whose end the client has seen: tell it to stop.
        if seen.is_some() {
            let _ = moments.wait_for(Option::is_some).await;
            let current = moments.borrow().clone();
            if let Some(moment) = current
                && moment.is_final()
                && seen.as_deref() == Some(moment.id().as_str())
            {
                return EventsResponse::Ended;
            }
        }
        let events = follow(moments, seen)
            .take_until(self.cx.gw().watchers.closed())
            .map(move |moment| event(job_id.0, moment));
        let stream = EventStream::new(counted(events, slot).boxed())
            .keep_alive(KEEP_ALIVE)
            .to_event(|event| {
                Event::message(event.to_json_string())
                    .event_type(event.kind)
                    .id(event.id)
            });
        EventsResponse::Events(stream)
    }
}

/// The moments a follower has not seen, each once, ending after the final one. A moment
/// that only moves the ETA is sent too (it changes what the client shows), under the same id.
fn follow(
    moments: watch::Receiver<Option<Moment>>,
    seen: Option<String>,
) -> impl Stream<Item = (Moment, Option<u32>)> + Send + 'static {
    struct Follower {
        moments: watch::Receiver<Option<Moment>>,
        last: Option<Moment>,
        seen: Option<String>,
        done: bool,
    }
    let start = Follower {
        moments,
        last: None,
        seen,
        done: false,
    };
    futures::stream::unfold(start, |mut follower| async move {
        loop {
            if follower.done {
                return None;
            }
            // Marks the current value seen; after the sender has gone (the job ended or
            // vanished) and its last value was read, the stream ends.
            let current = match follower.moments.wait_for(Option::is_some).await {
                Ok(current) => current.clone(),
                Err(_) => return None,
            };
            let moment = current.expect("waited for a moment");
            let repeated = follower.last.as_ref() == Some(&moment)
                || (follower.last.is_none() && follower.seen.as_deref() == Some(&moment.id()));
            if !repeated {
                let retried = follower
                    .last
                    .as_ref()
                    .map(|last| last.view.attempt)
                    .filter(|attempt| moment.view.attempt > *attempt)
                    .map(|_| moment.view.attempt);
                follower.done = moment.is_final();
                follower.last = Some(moment.clone());
                return Some(((moment, retried), follower));
            }
            if follower.moments.changed().await.is_err() {
                return None;
            }
        }
    })
}

fn event(job: ApiJobId, (moment, retried): (Moment, Option<u32>)) -> JobEvent {
    let kind = if moment.is_final() {
        "end"
    } else if retried.is_some() {
        "retry"
    } else {
        "progress"
    };
    JobEvent {
        id: moment.id(),
        kind,
        job_id: job,
        status: moment.view.status.into(),
        step: moment.view.step.map(JobStep::from),
        progress: moment.view.progress,
        attempt: moment.view.attempt,
        error: moment.view.error.clone(),
        eta_seconds: moment.eta_seconds,
        download_url: (moment.view.status == audiomill_domain::JobStatus::Completed)
            .then(|| format!("/download/{job}")),
    }
}

/// The refusal of a stream over a cap.
fn too_many_streams(full: Full) -> EventsResponse {
    let message = match full {
        Full::User(limit) => format!(
            "At most {limit} event streams may be open at once for one user; close one first."
        ),
        Full::Gateway(_) => {
            "This server follows as many jobs live as it can; try again shortly.".to_owned()
        }
    };
    EventsResponse::TooManyStreams(
        ErrorBody::new(ErrorCode::TooManyRequests, message),
        STREAM_RETRY_AFTER_SECONDS,
    )
}

/// Counts the stream among the open ones while it lives, holding its `slot`.
fn counted<T>(
    events: impl Stream<Item = T> + Send + 'static,
    slot: Slot,
) -> impl Stream<Item = T> + Send {
    struct Open;
    impl Drop for Open {
        fn drop(&mut self) {
            metrics::event_streams(-1.0);
        }
    }
    metrics::event_streams(1.0);
    let open = Open;
    events.map(move |event| {
        let _ = (&open, &slot);
        event
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::JobView;
    use audiomill_domain::{JobStatus, Step};

    fn moment(status: JobStatus, progress: u8, attempt: u32) -> Moment {
        Moment {
            view: JobView {
                status,
                step: Some(Step::Transcode),
                progress,
                attempt,
                completed_at: None,
                error: (attempt > 1).then(|| "Attempt 1 failed, retrying.".to_owned()),
            },
            eta_seconds: None,
        }
    }

    #[tokio::test]
    async fn a_follower_gets_each_new_state_once_retries_marked_and_ends_after_the_end() {
        let (sender, receiver) = watch::channel(Some(moment(JobStatus::Running, 10, 1)));
        let seen = moment(JobStatus::Running, 10, 1).id();
        let mut events = Box::pin(follow(receiver, Some(seen)));
        sender.send_replace(Some(moment(JobStatus::Running, 20, 1)));
        let (first, retried) = events.next().await.unwrap();
        assert_eq!(
            first.view.progress, 20,
            "the state named by Last-Event-ID is not sent"
        );
        assert_eq!(retried, None);
        // The same state again (a poll that saw no change) sends nothing.
        sender.send_replace(Some(moment(JobStatus::Running, 20, 1)));
        sender.send_replace(Some(moment(JobStatus::Running, 5, 2)));
        let (second, retried) = events.next().await.unwrap();
        assert_eq!((second.view.attempt, retried), (2, Some(2)));
        sender.send_replace(Some(moment(JobStatus::Completed, 100, 2)));
        let (last, _) = events.next().await.unwrap();
        assert!(last.is_final());
        assert!(
            events.next().await.is_none(),
            "the stream ends after the end"
        );
    }

    #[tokio::test]
    async fn a_follower_ends_when_the_watcher_goes() {
        let (sender, receiver) = watch::channel(None);
        let mut events = Box::pin(follow(receiver, None));
        drop(sender);
        assert!(events.next().await.is_none());
    }

    #[test]
    fn an_event_carries_its_state_as_id_and_the_download_once_completed() {
        let job = ApiJobId::example();
        let done = event(job, (moment(JobStatus::Completed, 100, 1), None));
        assert_eq!(done.kind, "end");
        assert_eq!(done.download_url, Some(format!("/download/{job}")));
        assert_eq!(done.id, moment(JobStatus::Completed, 100, 1).id());
        let json = done.to_json_string();
        assert!(
            json.contains("\"status\":\"completed\"") && !json.contains("\"kind\""),
            "{json}"
        );
        let retry = event(job, (moment(JobStatus::Running, 0, 2), Some(2)));
        assert_eq!((retry.kind, retry.download_url), ("retry", None));
    }
}
