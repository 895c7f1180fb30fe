//! `job.progress` webhooks: a transcode tells each of [`PROGRESS_MILESTONES`] once, as it
//! passes it, to the [`ProgressTeller`] the worker set, which starts that milestone's
//! delivery (a `DeliverWebhooks` run of its own, by the Temporal client the worker holds).
//! Fire and forget: a webhook never delays or fails the job.

use audiomill_domain::{JobId, webhook::PROGRESS_MILESTONES};
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// Starts telling that job `JobId`'s transcode passed the percentage; returns at once.
pub type ProgressTeller = Arc<dyn Fn(JobId, u8) + Send + Sync>;

/// The milestones one transcode has told.
pub(crate) struct Milestones {
    job: JobId,
    teller: ProgressTeller,
    /// How many of [`PROGRESS_MILESTONES`] were told, from the first.
    told: AtomicUsize,
}

impl Milestones {
    pub(crate) fn new(job: JobId, teller: ProgressTeller) -> Self {
        Self {
            job,
            teller,
            told: AtomicUsize::new(0),
        }
    }

    /// Tells every milestone up to `percent` not told yet, in order: a transcode that jumps
    /// from 10 to 80 percent between two looks tells 25, 50 and 75.
    pub(crate) fn observe(&self, percent: u8) {
        let passed = PROGRESS_MILESTONES
            .iter()
            .take_while(|&&milestone| percent >= milestone)
            .count();
        let before = self.told.fetch_max(passed, Ordering::Relaxed);
        for &milestone in PROGRESS_MILESTONES.get(before..passed).unwrap_or_default() {
            (self.teller)(self.job, milestone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn each_milestone_is_told_once_in_order() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let teller: ProgressTeller = {
            let told = told.clone();
            Arc::new(move |_, percent| told.lock().unwrap().push(percent))
        };
        let milestones = Milestones::new(JobId::generate(), teller);
        for percent in [0, 10, 24, 25, 30, 25, 49, 80, 75, 100, 100] {
            milestones.observe(percent);
        }
        assert_eq!(*told.lock().unwrap(), [25, 50, 75]);
    }

    #[test]
    fn a_jump_tells_every_milestone_passed() {
        let told = Arc::new(Mutex::new(Vec::new()));
        let teller: ProgressTeller = {
            let told = told.clone();
            Arc::new(move |_, percent| told.lock().unwrap().push(percent))
        };
        let milestones = Milestones::new(JobId::generate(), teller);
        milestones.observe(60);
        assert_eq!(*told.lock().unwrap(), [25, 50]);
        milestones.observe(100);
        assert_eq!(*told.lock().unwrap(), [25, 50, 75]);
    }
}
