//! What a caller may still keep and start, found before an upload's body is read, and the
//! quota refusals in the terms both ways of uploading answer with.

use super::refusal::{UploadAnswer, UploadError};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
};
use audiomill_domain::UserId;
use audiomill_domain::lifecycle::{Quota, next_utc_day};
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
pub async fn allowance(gw: &Gateway, user_id: UserId) -> Result<Allowance, UploadError> {
    let down = UploadError::from;
    let user = gw
        .db
        .user_by_id(user_id)
        .await
        .map_err(down)?
        .ok_or(UploadError::NoAccount)?;
    let usage = gw.db.usage(user_id, now_millis()).await.map_err(down)?;
    let allowance = Allowance {
        quota: user.quota.over(gw.quota),
        usage,
    };
    match allowance.exhausted() {
        Some(over) => Err(UploadError::OverQuota(over)),
        None => Ok(allowance),
    }
}

/// The sentence of an upload whose account is gone.
pub const NO_ACCOUNT: &str = "This account no longer exists.";

/// An upload over one of the caller's quotas, as every way of uploading answers it: storage
/// (413, no `retry_after`) or jobs per day (429), with the quota's figures for its headers.
pub(crate) struct QuotaRefusal {
    pub message: String,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the day's count starts again (jobs per day only).
    pub retry_after: Option<u64>,
}

impl From<OverQuota> for QuotaRefusal {
    fn from(over: OverQuota) -> Self {
        match over {
            OverQuota::Storage { limit, used } => {
                let remaining = limit.saturating_sub(used);
                QuotaRefusal {
                    message: format!(
                        "Your storage quota is {} and {} of it is left, too little for this \
                         upload; delete jobs you no longer need (or wait for them to expire). \
                         Nothing was kept.",
                        megabytes(limit),
                        megabytes(remaining)
                    ),
                    limit,
                    remaining,
                    retry_after: None,
                }
            }
            OverQuota::JobsPerDay { limit, used } => {
                let now = now_millis();
                let reset = next_utc_day(now);
                QuotaRefusal {
                    message: format!(
                        "You have started {used} jobs today, as many as your quota of {limit} a \
                         day allows; the count starts again at {} (UTC midnight). Nothing was kept.",
                        crate::params::rfc3339(reset)
                    ),
                    limit,
                    remaining: limit.saturating_sub(used),
                    retry_after: Some(((reset - now) as u64).div_ceil(1000)),
                }
            }
        }
    }
}

/// Bytes as people read a quota: MB with one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

impl From<QuotaRefusal> for UploadAnswer {
    fn from(refusal: QuotaRefusal) -> Self {
        let (limit, remaining) = (Some(refusal.limit), Some(refusal.remaining));
        match refusal.retry_after {
            None => Self::TooLarge(
                ErrorBody::new(ErrorCode::PayloadTooLarge, refusal.message),
                limit,
                remaining,
            ),
            Some(seconds) => Self::TooMany(
                ErrorBody::new(ErrorCode::TooManyRequests, refusal.message),
                limit,
                remaining,
                Some(seconds),
            ),
        }
    }
}
