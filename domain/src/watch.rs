//! Watch folders: a `WatchFolder` run per watch scans its folder a page at a time
//! (`scan_watch`), and each object version it has not seen becomes one job. The job's id is
//! derived from the watch, the key and the version, so a scan tried again after any kill
//! names the same job, which the database records once and Temporal starts once.

use crate::{JobId, WatchId, contract::ConvertVideoInput};
use serde::{Deserialize, Serialize};

/// The workflow type of a watch's run; its workflow id is [`workflow_id`].
pub const WATCH_WORKFLOW_TYPE: &str = "WatchFolder";

/// Objects one scan lists at most.
pub const SCAN_PAGE: u32 = 100;

/// How long a watch waits before scanning again while as many of its jobs run as it allows.
pub const BUSY_WAIT_SECONDS: u64 = 3;

/// The workflow id of watch `watch`'s run.
pub fn workflow_id(watch: WatchId) -> String {
    format!("watch-{watch}")
}

/// The job that converts version `version` of object `key` of watch `watch`.
pub fn job_for(watch: WatchId, key: &str, version: &str) -> JobId {
    let mut seed = Vec::with_capacity(64 + key.len() + version.len());
    seed.extend_from_slice(b"watch\0");
    seed.extend_from_slice(watch.to_string().as_bytes());
    seed.push(0);
    seed.extend_from_slice(key.as_bytes());
    seed.push(0);
    seed.extend_from_slice(version.as_bytes());
    JobId::derived(&seed)
}

/// What a watch's run carries from one run to the next (continue-as-new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchFolderInput {
    pub watch_id: WatchId,
    /// Where the pass under way goes on: after this key (`None`: from the start).
    #[serde(default)]
    pub after: Option<String>,
    /// Jobs started whose start the database has not noted yet.
    #[serde(default)]
    pub started: Vec<JobId>,
}

/// `scan_watch`: the next page of the watch's folder, after `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanWatchInput {
    pub watch_id: WatchId,
    pub after: Option<String>,
    /// Jobs the run has started since the last scan, to note as started.
    #[serde(default)]
    pub started: Vec<JobId>,
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScanOutcome {
    /// The watch was deleted or paused: its run ends.
    Stopped,
    /// As many of its jobs run as the watch allows (or its user's jobs of the day are used
    /// up): scan again from `after` in `wait_seconds`.
    Held { wait_seconds: u64 },
    /// Jobs recorded and to start (the ones recorded earlier but not noted as started among
    /// them); the pass goes on after `next`, or, when `next` is `None`, is over and the
    /// next begins in `wait_seconds`.
    Page {
        jobs: Vec<ConvertVideoInput>,
        next: Option<String>,
        wait_seconds: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_of_an_object_names_one_job() {
        let watch = WatchId::generate();
        let job = job_for(watch, "in/a.mp4", "\"etag1\"");
        assert_eq!(job, job_for(watch, "in/a.mp4", "\"etag1\""));
        assert_ne!(job, job_for(watch, "in/a.mp4", "\"etag2\""));
        assert_ne!(job, job_for(watch, "in/b.mp4", "\"etag1\""));
        assert_ne!(job, job_for(WatchId::generate(), "in/a.mp4", "\"etag1\""));
        // Parts do not run into one another.
        assert_ne!(job_for(watch, "a", "bc"), job_for(watch, "ab", "c"));
        assert_eq!(JobId::parse(&job.to_string()), Ok(job));
    }
}
