//! How long what a job leaves behind is kept, and how much one user may keep and start.

use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 60 * 60 * 1000;

/// The milliseconds in a day, the period of the jobs-per-day quota (UTC days).
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The most jobs one batch may hold, however its files arrive.
pub const BATCH_MAX_JOBS: u64 = 1000;

/// How long a job's objects are kept once it has ended (`RETENTION_HOURS`,
/// `RETENTION_SOURCE_HOURS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The MP3 and the job itself, in hours after the job ended.
    pub job_hours: u32,
    /// The uploaded video, in hours after the job ended: 0 removes it as soon as the job ends
    /// (for a completed job, once its MP3 is stored).
    pub source_hours: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            job_hours: 7 * 24,
            source_hours: 0,
        }
    }
}

impl Retention {
    /// When the MP3 and the job of a job that ended at `ended_at` expire (Unix ms).
    pub fn job_expiry(&self, ended_at: i64) -> i64 {
        ended_at + i64::from(self.job_hours) * HOUR_MS
    }

    /// When the uploaded video of a job that ended at `ended_at` expires (Unix ms).
    pub fn source_expiry(&self, ended_at: i64) -> i64 {
        ended_at + i64::from(self.source_hours) * HOUR_MS
    }
}

/// A user's limits. `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    /// Bytes kept in storage for the user's jobs (uploaded videos and MP3s not yet removed).
    pub storage_bytes: Option<u64>,
    /// Jobs started in one UTC day.
    pub jobs_per_day: Option<u64>,
}

/// The UTC day (days since the Unix epoch) of a time in Unix ms.
pub fn utc_day(at_ms: i64) -> i64 {
    at_ms.div_euclid(DAY_MS)
}

/// When the UTC day after the one of `at_ms` begins (Unix ms): when a day's job count resets.
pub fn next_utc_day(at_ms: i64) -> i64 {
    (utc_day(at_ms) + 1) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_count_from_the_ending() {
        let retention = Retention {
            job_hours: 2,
            source_hours: 1,
        };
        assert_eq!(retention.job_expiry(1_000), 1_000 + 2 * HOUR_MS);
        assert_eq!(retention.source_expiry(1_000), 1_000 + HOUR_MS);
        let default = Retention::default();
        assert_eq!(
            default.source_expiry(5),
            5,
            "the video goes when the job ends"
        );
        assert_eq!(default.job_expiry(0), 7 * DAY_MS);
    }

    #[test]
    fn days_are_utc_days() {
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(DAY_MS - 1), 0);
        assert_eq!(utc_day(DAY_MS), 1);
        assert_eq!(next_utc_day(DAY_MS + 5), 2 * DAY_MS);
        assert_eq!(next_utc_day(0), DAY_MS);
    }
}
