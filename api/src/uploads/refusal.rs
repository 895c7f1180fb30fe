//! Why an upload is refused ([`UploadError`]) and the answer each refusal becomes
//! ([`UploadRefusal`]), shared by the form and tus; the quota's refusals among them.

use crate::error::{ErrorJson, store_part, unavailable};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::UploadLimits,
    uploads::framing::{self},
};
use audiomill_domain::lifecycle::next_utc_day;
use audiomill_domain::output::FieldError;
use audiomill_store::{OverQuota, StoreError, time::now_millis};

/// Why an upload was refused; each is one documented answer of `POST /upload`.
#[derive(Debug)]
pub enum UploadError {
    BadRequest(String),
    /// An output field's value, or how the fields go together.
    BadField(FieldError),
    UnsupportedMedia(String),
    TooLarge {
        limit_mb: u64,
    },
    /// A dependency (`what`) is down; `cause` is for the log only.
    Unavailable {
        what: &'static str,
        cause: String,
    },
    /// The body fell below the minimum upload rate.
    TooSlow,
    /// The caller's storage or jobs-per-day quota.
    OverQuota(OverQuota),
    /// The caller's account was removed after the token was issued.
    NoAccount,
}

impl UploadError {
    /// The reason label of the refusal in the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::BadField(_) => "form",
            Self::UnsupportedMedia(_) => "type",
            Self::TooLarge { .. } => "size",
            Self::Unavailable { .. } => "unavailable",
            Self::TooSlow => "slow",
            Self::OverQuota(_) => "quota",
            Self::NoAccount => "auth",
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub(crate) fn down(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }
}

impl From<StoreError> for UploadError {
    fn from(error: StoreError) -> Self {
        Self::down(store_part(&error), error)
    }
}

/// Why a stored upload's job could not start (a form's file, or a resumable upload once
/// whole): what the quotas, the batch, the account, the file's first bytes or an outage say.
#[derive(Debug)]
pub enum StartError {
    BatchFull {
        limit: u64,
    },
    UnsupportedMedia(String),
    OverQuota(OverQuota),
    NoAccount,
    /// A dependency (`what`) is down; `cause` is for the log only.
    Unavailable {
        what: &'static str,
        cause: String,
    },
}

impl StartError {
    /// The reason label of the refusal in the metrics (as [`UploadError::reason`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BatchFull { .. } => "form",
            Self::UnsupportedMedia(_) => "type",
            Self::OverQuota(_) => "quota",
            Self::NoAccount => "auth",
            Self::Unavailable { .. } => "unavailable",
        }
    }

    pub(crate) fn down(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }
}

impl From<StoreError> for StartError {
    fn from(error: StoreError) -> Self {
        Self::down(store_part(&error), error)
    }
}

impl From<StartError> for UploadError {
    fn from(error: StartError) -> Self {
        match error {
            StartError::BatchFull { limit } => batch_full(limit),
            StartError::UnsupportedMedia(message) => Self::UnsupportedMedia(message),
            StartError::OverQuota(over) => Self::OverQuota(over),
            StartError::NoAccount => Self::NoAccount,
            StartError::Unavailable { what, cause } => Self::Unavailable { what, cause },
        }
    }
}

/// A start's refusal as an answer: the part of [`UploadRefusal`] a start can give.
pub enum StartRefusal {
    BadRequest(ErrorJson),
    Unauthorized(ErrorJson),
    /// The storage quota, with its limit and remaining room.
    TooLarge(ErrorJson, Option<u64>, Option<u64>),
    UnsupportedMedia(ErrorJson),
    /// The jobs-per-day quota: its limit, what is left, and seconds until the count restarts.
    TooMany(ErrorJson, Option<u64>, Option<u64>, Option<u64>),
    Unavailable(ErrorJson),
}

impl From<StartError> for StartRefusal {
    fn from(error: StartError) -> Self {
        match error {
            StartError::BatchFull { limit } => Self::BadRequest(ErrorBody::new(
                ErrorCode::BadRequest,
                batch_full_message(limit),
            )),
            StartError::UnsupportedMedia(message) => {
                Self::UnsupportedMedia(ErrorBody::new(ErrorCode::UnsupportedMediaType, message))
            }
            StartError::OverQuota(over) => QuotaRefusal::from(over).into(),
            StartError::NoAccount => {
                Self::Unauthorized(ErrorBody::new(ErrorCode::Unauthorized, NO_ACCOUNT))
            }
            StartError::Unavailable { what, cause } => Self::Unavailable(unavailable(what, cause)),
        }
    }
}

impl From<StartRefusal> for UploadRefusal {
    fn from(refusal: StartRefusal) -> Self {
        match refusal {
            StartRefusal::BadRequest(body) => Self::BadRequest(body),
            StartRefusal::Unauthorized(body) => Self::Unauthorized(body),
            StartRefusal::TooLarge(body, limit, left) => Self::TooLarge(body, limit, left),
            StartRefusal::UnsupportedMedia(body) => Self::UnsupportedMedia(body),
            StartRefusal::TooMany(body, limit, left, after) => {
                Self::TooMany(body, limit, left, after)
            }
            StartRefusal::Unavailable(body) => Self::Unavailable(body),
        }
    }
}

/// An upload's refusal as an answer, in the terms both ways of uploading (a form, tus) share.
pub enum UploadRefusal {
    BadRequest(ErrorJson),
    Unauthorized(ErrorJson),
    /// Each way words it, as what it keeps of a slow body differs.
    TooSlow,
    /// With the storage quota's limit and remaining room, when the quota refused it.
    TooLarge(ErrorJson, Option<u64>, Option<u64>),
    UnsupportedMedia(ErrorJson),
    /// The jobs-per-day quota: its limit, what is left, and seconds until the count restarts.
    TooMany(ErrorJson, Option<u64>, Option<u64>, Option<u64>),
    Unavailable(ErrorJson),
}

impl From<UploadError> for UploadRefusal {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::BadRequest(message) => {
                Self::BadRequest(ErrorBody::new(ErrorCode::BadRequest, message))
            }
            UploadError::BadField(error) => {
                Self::BadRequest(ErrorBody::for_field(error.field, format!("{error}.")))
            }
            UploadError::UnsupportedMedia(message) => {
                Self::UnsupportedMedia(ErrorBody::new(ErrorCode::UnsupportedMediaType, message))
            }
            UploadError::TooLarge { limit_mb } => Self::TooLarge(
                ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    format!("The file is larger than the {limit_mb} MB limit."),
                ),
                None,
                None,
            ),
            UploadError::OverQuota(over) => StartRefusal::from(QuotaRefusal::from(over)).into(),
            UploadError::NoAccount => {
                Self::Unauthorized(ErrorBody::new(ErrorCode::Unauthorized, NO_ACCOUNT))
            }
            UploadError::Unavailable { what, cause } => Self::Unavailable(unavailable(what, cause)),
            UploadError::TooSlow => Self::TooSlow,
        }
    }
}

/// The refusal of a file for a batch that is full.
pub fn batch_full(limit: u64) -> UploadError {
    UploadError::BadRequest(batch_full_message(limit))
}

fn batch_full_message(limit: u64) -> String {
    format!(
        "This batch holds {limit} jobs, the most one may; send further files with another \
         batch_id."
    )
}

pub(crate) fn too_large(limits: &UploadLimits) -> UploadError {
    UploadError::TooLarge {
        limit_mb: limits.max_bytes / (1024 * 1024),
    }
}

/// The answer to a parser error: a size limit, or a malformed form.
pub(crate) fn parser_error(error: &multer::Error, limits: &UploadLimits) -> UploadError {
    match over_limit(error) {
        Some(Limit::File) => too_large(limits),
        Some(Limit::TextField) => UploadError::bad(format!(
            "Form fields other than `file` are limited to {} KiB.",
            framing::MAX_TEXT_FIELD / 1024
        )),
        None => UploadError::bad("The multipart body is malformed."),
    }
}

/// Which of the form's size limits the parser stopped at.
pub(crate) enum Limit {
    File,
    TextField,
}

pub(crate) fn over_limit(error: &multer::Error) -> Option<Limit> {
    match error {
        multer::Error::StreamSizeExceeded { .. } => Some(Limit::File),
        multer::Error::FieldSizeExceeded { field_name, .. } => {
            Some(if field_name.as_deref() == Some("file") {
                Limit::File
            } else {
                Limit::TextField
            })
        }
        _ => None,
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

impl From<QuotaRefusal> for StartRefusal {
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
