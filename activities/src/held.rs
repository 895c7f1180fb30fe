//! The jobs a worker holds, and its limit on them.
//!
//! A job is held from the moment `fetch_source` starts copying its video to this worker until
//! its MP3 is stored (or it ends): its files are on this disk and only this worker can go on
//! with it. A worker takes a new job only while it holds fewer than its transcode limit, so
//! waiting work stays in Temporal, where whichever worker frees up first takes it, instead of
//! piling up behind a busy worker. The worker's own queue has as many slots as that limit, so
//! the next step of a held job never waits for a slot.

use audiomill_domain::JobId;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct HeldJobs {
    room: Arc<Semaphore>,
    jobs: Mutex<HashMap<JobId, Held>>,
}

struct Held {
    _room: OwnedSemaphorePermit,
    /// `None` while a step of the job runs here, else when the last one ended.
    idle_since: Option<Instant>,
}

impl HeldJobs {
    pub fn new(limit: usize) -> Self {
        Self {
            room: Arc::new(Semaphore::new(limit.max(1))),
            jobs: Mutex::default(),
        }
    }

    /// Waits until this worker has room, then holds `job`. A job already held here (a retried
    /// or repeated fetch) takes no more room.
    pub async fn hold(&self, job: JobId) {
        if let Some(held) = self.jobs().get_mut(&job) {
            held.idle_since = None;
            return;
        }
        let asked = Instant::now();
        let waiting = metrics::gauge!("audiomill_jobs_waiting_for_room");
        waiting.increment(1);
        let room = self.room.clone().acquire_owned().await;
        waiting.decrement(1);
        let room = room.expect("the semaphore is never closed");
        metrics::histogram!("audiomill_job_wait_seconds").record(asked.elapsed().as_secs_f64());
        // If another attempt for the same job got here first, this room goes back at once.
        let mut jobs = self.jobs();
        jobs.entry(job).or_insert(Held {
            _room: room,
            idle_since: None,
        });
        held_now(jobs.len());
    }

    /// Marks a step of `job` as running here until the guard is dropped.
    pub fn working(&self, job: JobId) -> Working<'_> {
        if let Some(held) = self.jobs().get_mut(&job) {
            held.idle_since = None;
        }
        Working { jobs: self, job }
    }

    /// Whether `job` is held here (its files are this worker's to keep).
    pub fn holds(&self, job: JobId) -> bool {
        self.jobs().contains_key(&job)
    }

    /// The job is over on this worker (stored, cancelled, failed for good).
    pub fn release(&self, job: JobId) {
        let mut jobs = self.jobs();
        jobs.remove(&job);
        held_now(jobs.len());
    }

    /// Releases and returns the jobs no step has touched for `idle`: their workflow went on
    /// elsewhere or ended (a job cancelled between two steps, say), so their files can go.
    pub fn release_abandoned(&self, idle: Duration) -> Vec<JobId> {
        let mut jobs = self.jobs();
        let abandoned: Vec<JobId> = jobs
            .iter()
            .filter(|(_, held)| held.idle_since.is_some_and(|since| since.elapsed() >= idle))
            .map(|(job, _)| *job)
            .collect();
        for job in &abandoned {
            jobs.remove(job);
        }
        held_now(jobs.len());
        abandoned
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.jobs().len()
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<JobId, Held>> {
        // A panic while holding this lock cannot leave the map half-changed: use it anyway.
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The jobs this worker holds now (a gauge: with several workers in one process, the last
/// one to change it speaks; in production each worker is a process of its own).
fn held_now(count: usize) {
    metrics::gauge!("audiomill_jobs_held").set(count as f64);
}

/// See [`HeldJobs::working`].
pub struct Working<'a> {
    jobs: &'a HeldJobs,
    job: JobId,
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        if let Some(held) = self.jobs.jobs().get_mut(&self.job) {
            held.idle_since = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_worker_waits_for_room() {
        let held = HeldJobs::new(1);
        let (first, second) = (JobId::generate(), JobId::generate());
        held.hold(first).await;
        held.hold(first).await; // the same job again takes no more room
        let waiting = tokio::time::timeout(Duration::from_millis(50), held.hold(second)).await;
        assert!(
            waiting.is_err(),
            "a second job must wait while the first is held"
        );
        held.release(first);
        tokio::time::timeout(Duration::from_secs(1), held.hold(second))
            .await
            .expect("room after the first job is released");
        assert_eq!(held.count(), 1);
    }

    #[tokio::test]
    async fn only_idle_jobs_are_abandoned() {
        let held = HeldJobs::new(2);
        let (busy, idle) = (JobId::generate(), JobId::generate());
        held.hold(busy).await;
        held.hold(idle).await;
        let _busy = held.working(busy);
        drop(held.working(idle));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            held.release_abandoned(Duration::from_millis(10)),
            vec![idle]
        );
        assert_eq!(held.count(), 1);
        assert!(held.release_abandoned(Duration::ZERO).is_empty());
    }
}
