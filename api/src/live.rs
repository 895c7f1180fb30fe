//! Live progress of jobs, for `GET /jobs/{job_id}/events`. A gateway watches each job once,
//! however many clients follow it: the first subscriber starts a watcher that reads the job's
//! view every [`POLL_EVERY`] and publishes it on a `watch` channel; every subscriber reads that
//! channel. A subscriber that stops reading holds one value (the latest), never a queue. The
//! watcher stops when the job ends or when its last subscriber has gone. When the gateway
//! shuts down, every stream ends at once (see [`Watchers::close`]).

use crate::{metrics, status::JobView};
use audiomill_domain::{JobId, JobStatus, Step};
use audiomill_store::StoreError;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How often a watched job's view is read.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// One moment of a job, as its followers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    pub view: JobView,
    /// Seconds until the transcode ends, from its measured speed; `None` outside it.
    pub eta_seconds: Option<u64>,
}

impl Moment {
    /// The job has ended as far as its followers care: the MP3 is ready, or never will be.
    pub fn is_final(&self) -> bool {
        matches!(
            self.view.status,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The event id: the same for the same state of the job in every gateway (the ETA
    /// aside), so a client resuming with `Last-Event-ID` is not sent what it has seen.
    pub fn id(&self) -> String {
        let step = self.view.step.map_or(0, Step::number);
        format!(
            "{}.{step}.{}.{}",
            self.view.status.as_str(),
            self.view.attempt,
            self.view.progress
        )
    }
}

/// Where a watcher reads a job's view: the gateway, which also holds its [`Watchers`].
pub trait JobViews: Send + Sync + 'static {
    fn watchers(&self) -> &Watchers;

    /// The job's view now; `None` once its record is gone.
    fn read_view(
        &self,
        job: JobId,
    ) -> impl Future<Output = Result<Option<JobView>, StoreError>> + Send;
}

/// The jobs this gateway is watching, each with its channel.
#[derive(Default)]
pub struct Watchers {
    watching: Mutex<HashMap<JobId, watch::Sender<Option<Moment>>>>,
    closing: CancellationToken,
}

impl Watchers {
    /// Ends every follower's stream: called when the gateway begins to shut down, so that
    /// followers reconnect (with `Last-Event-ID`) to a gateway that goes on, instead of
    /// holding this one's shutdown until its grace period runs out.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Resolves when [`Watchers::close`] is called.
    pub fn closed(&self) -> WaitForCancellationFutureOwned {
        self.closing.clone().cancelled_owned()
    }

    /// Follows `job`: a receiver of its moments (`None` until the first is read), sharing
    /// the job's watcher if there is one.
    pub fn follow<G: JobViews>(gw: &Arc<G>, job: JobId) -> watch::Receiver<Option<Moment>> {
        let mut watching = gw.watchers().lock();
        if let Some(sender) = watching.get(&job) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(None);
        watching.insert(job, sender.clone());
        metrics::job_watchers(watching.len());
        tokio::spawn(watch_job(gw.clone(), job, sender));
        receiver
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, watch::Sender<Option<Moment>>>> {
        self.watching
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stops watching `job` if nobody follows it any more (or `ended`). Decided under the
    /// lock that [`Watchers::follow`] takes, so a new follower never joins a watcher that is
    /// leaving.
    fn leave(&self, job: JobId, sender: &watch::Sender<Option<Moment>>, ended: bool) -> bool {
        let mut watching = self.lock();
        if !ended && sender.receiver_count() > 0 {
            return false;
        }
        if watching
            .get(&job)
            .is_some_and(|current| current.same_channel(sender))
        {
            watching.remove(&job);
        }
        metrics::job_watchers(watching.len());
        true
    }
}

/// Reads `job`'s view until it ends, its record is gone, or nobody follows it.
async fn watch_job<G: JobViews>(gw: Arc<G>, job: JobId, sender: watch::Sender<Option<Moment>>) {
    let mut eta = Eta::default();
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if gw.watchers().leave(job, &sender, false) {
            return;
        }
        // The row is read each time: it says when the MP3 was stored, and whether the job
        // still exists.
        let view = match gw.read_view(job).await {
            Ok(Some(view)) => view,
            Ok(None) => {
                gw.watchers().leave(job, &sender, true);
                return;
            }
            Err(error) => {
                tracing::warn!(%job, %error, "could not read a watched job; trying again");
                continue;
            }
        };
        metrics::job_watch_read();
        let moment = Moment {
            eta_seconds: eta.update(&view, Instant::now()),
            view,
        };
        let last = moment.is_final();
        sender.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&moment);
            *current = Some(moment);
            changed
        });
        if last {
            gw.watchers().leave(job, &sender, true);
            return;
        }
    }
}

/// The transcode's remaining time, from the progress it made since it was first seen.
#[derive(Default)]
struct Eta {
    /// When the transcode was first seen, at what percent, on which attempt.
    start: Option<(Instant, u8, u32)>,
}

impl Eta {
    fn update(&mut self, view: &JobView, now: Instant) -> Option<u64> {
        if view.step != Some(Step::Transcode) || view.status != JobStatus::Running {
            self.start = None;
            return None;
        }
        let (since, from, attempt) = *self.start.get_or_insert((now, view.progress, view.attempt));
        if attempt != view.attempt || view.progress < from {
            self.start = Some((now, view.progress, view.attempt));
            return None;
        }
        let done = f64::from(view.progress - from);
        if done < 1.0 {
            return None;
        }
        let per_percent = now.duration_since(since).as_secs_f64() / done;
        Some((per_percent * f64::from(100 - view.progress.min(100))).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcoding(progress: u8, attempt: u32) -> JobView {
        JobView {
            status: JobStatus::Running,
            step: Some(Step::Transcode),
            progress,
            attempt,
            completed_at: None,
            error: None,
        }
    }

    #[test]
    fn the_eta_follows_the_measured_speed_and_starts_over_on_a_retry() {
        let mut eta = Eta::default();
        let t0 = Instant::now();
        assert_eq!(eta.update(&transcoding(10, 1), t0), None, "no speed yet");
        let t1 = t0 + Duration::from_secs(20);
        // 20 s for 10 points: 2 s a point, 80 points left.
        assert_eq!(eta.update(&transcoding(20, 1), t1), Some(160));
        assert_eq!(eta.update(&transcoding(5, 2), t1), None, "a new attempt");
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(eta.update(&transcoding(55, 2), t2), Some(5));
        let storing = JobView {
            step: Some(Step::StoreMp3),
            ..transcoding(100, 1)
        };
        assert_eq!(eta.update(&storing, t2), None);
    }

    #[test]
    fn event_ids_name_the_state_not_the_eta() {
        let moment = |progress, eta_seconds| Moment {
            view: transcoding(progress, 1),
            eta_seconds,
        };
        assert_eq!(moment(40, Some(3)).id(), moment(40, Some(9)).id());
        assert_ne!(moment(40, None).id(), moment(41, None).id());
        assert_eq!(moment(40, None).id(), "running.3.1.40");
    }
}
