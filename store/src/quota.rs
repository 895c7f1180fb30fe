//! A user's limits: what they keep and start, their own limits over the deployment's, and the
//! check an upload must pass.

use audiomill_domain::lifecycle::Quota;

/// What a user keeps and has started today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes of uploaded videos and MP3s not yet removed.
    pub storage_bytes: u64,
    /// Jobs started in the current UTC day.
    pub jobs_today: u64,
}

/// Which of a user's limits an upload would pass, and where the user stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverQuota {
    Storage { limit: u64, used: u64 },
    JobsPerDay { limit: u64, used: u64 },
}

/// Why a job was not recorded: a quota it would break, or a batch already full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRecorded {
    Over(OverQuota),
    /// The batch it names holds this many jobs already, the most one may.
    BatchFull {
        limit: u64,
    },
}

/// A user's own limits as an admin set them: `None` is the deployment's default, `Some(0)`
/// no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnQuota {
    pub storage_bytes: Option<u64>,
    pub jobs_per_day: Option<u64>,
}

impl OwnQuota {
    /// The limits that hold for the user, over the deployment's `defaults`.
    pub fn over(self, defaults: Quota) -> Quota {
        let pick = |own: Option<u64>, default: Option<u64>| match own {
            None => default,
            Some(0) => None,
            Some(limit) => Some(limit),
        };
        Quota {
            storage_bytes: pick(self.storage_bytes, defaults.storage_bytes),
            jobs_per_day: pick(self.jobs_per_day, defaults.jobs_per_day),
        }
    }
}

/// Refuses a job that `quota` does not allow: called inside the transaction that inserts it,
/// with the user's row locked.
pub(crate) fn check_quota(quota: &Quota, usage: Usage, new_bytes: u64) -> Result<(), OverQuota> {
    if let Some(limit) = quota.jobs_per_day
        && usage.jobs_today >= limit
    {
        return Err(OverQuota::JobsPerDay {
            limit,
            used: usage.jobs_today,
        });
    }
    if let Some(limit) = quota.storage_bytes
        && usage.storage_bytes + new_bytes > limit
    {
        return Err(OverQuota::Storage {
            limit,
            used: usage.storage_bytes,
        });
    }
    Ok(())
}
