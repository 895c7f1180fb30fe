//! What a caller may still keep and start, found before an upload's body is read.

use super::refusal::{StartError, UploadError};
use crate::gateway::Gateway;
use audiomill_domain::UserId;
use audiomill_domain::lifecycle::Quota;
use audiomill_store::{OverQuota, Usage, time::now_millis};

/// What the caller may still keep and start, as found before the body is read. The quota is
/// checked again, exactly, as each job is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub quota: Quota,
    pub usage: Usage,
}

impl Allowance {
    /// Bytes the storage quota leaves; `None` without one.
    pub fn room(&self) -> Option<u64> {
        self.quota
            .storage_bytes
            .map(|limit| limit.saturating_sub(self.usage.storage_bytes))
    }

    /// The limit the caller is already at, if any: no upload can pass it.
    pub fn exhausted(&self) -> Option<OverQuota> {
        if let Some(limit) = self.quota.jobs_per_day
            && self.usage.jobs_today >= limit
        {
            return Some(OverQuota::JobsPerDay {
                limit,
                used: self.usage.jobs_today,
            });
        }
        match self.quota.storage_bytes {
            Some(limit) if self.usage.storage_bytes >= limit => Some(OverQuota::Storage {
                limit,
                used: self.usage.storage_bytes,
            }),
            _ => None,
        }
    }

    /// The refusal of a file cut off at the room the storage quota left.
    pub(crate) fn storage_refusal(&self) -> UploadError {
        UploadError::OverQuota(OverQuota::Storage {
            limit: self.quota.storage_bytes.unwrap_or_default(),
            used: self.usage.storage_bytes,
        })
    }
}

/// What `user_id` may still keep and start; refused at once when a quota is already used
/// up (or the account is gone), before anything of a body is read.
pub async fn allowance(gw: &Gateway, user_id: UserId) -> Result<Allowance, StartError> {
    let user = gw
        .db
        .user_by_id(user_id)
        .await?
        .ok_or(StartError::NoAccount)?;
    let usage = gw.db.usage(user_id, now_millis()).await?;
    let allowance = Allowance {
        quota: user.quota.over(gw.quota),
        usage,
    };
    match allowance.exhausted() {
        Some(over) => Err(StartError::OverQuota(over)),
        None => Ok(allowance),
    }
}
