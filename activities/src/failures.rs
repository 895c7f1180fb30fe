//! How an activity's failures reach the workflow: typed by [`FailureKind`], non-retryable
//! when the file or the request is at fault, retried (by Temporal) when a dependency or the
//! worker itself had trouble, whose messages are for operators (users see a sentence chosen by
//! the type).

use crate::transcode::TranscodeError;
use audiomill_domain::contract::FailureKind;
use temporalio_common::error::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;

/// A failure that retrying cannot fix, with the typed name users and the workflow see.
pub(crate) fn fatal(kind: FailureKind, message: impl Into<String>) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message.into())
            .type_name(kind.name().to_owned())
            .non_retryable(true)
            .build(),
    )
}

/// A failure worth retrying (storage or database hiccups), typed by what was down. Its
/// message (with the cause) is for the logs and operators; `/status` shows users a sentence
/// chosen by its type.
fn retryable(kind: FailureKind, error: impl std::fmt::Display) -> ActivityError {
    tracing::warn!(%error, kind = kind.name(), "activity attempt failed; Temporal will retry it");
    ActivityError::application(
        ApplicationFailure::builder(error.to_string())
            .type_name(kind.name().to_owned())
            .build(),
    )
}

pub(crate) fn database_down(error: impl std::fmt::Display) -> ActivityError {
    retryable(FailureKind::DatabaseUnavailable, error)
}

pub(crate) fn storage_down(error: impl std::fmt::Display) -> ActivityError {
    retryable(FailureKind::StorageUnavailable, error)
}

pub(crate) fn mail_down(error: impl std::fmt::Display) -> ActivityError {
    retryable(FailureKind::MailUnavailable, error)
}

pub(crate) fn worker_trouble(error: impl std::fmt::Display) -> ActivityError {
    retryable(FailureKind::WorkerTrouble, error)
}

pub(crate) fn transcode_failure(error: TranscodeError) -> ActivityError {
    let kind = match &error {
        TranscodeError::Unsupported(_) => FailureKind::UnsupportedMedia,
        TranscodeError::NoAudioStream => FailureKind::NoAudioStream,
        TranscodeError::Corrupt(_) => FailureKind::CorruptMedia,
        TranscodeError::TooLong(_) => FailureKind::MediaTooLong,
        TranscodeError::Trim(_) => FailureKind::TrimOutOfRange,
        TranscodeError::Track(_) => FailureKind::NoSuchAudioTrack,
        TranscodeError::Cancelled => return ActivityError::cancelled(),
        TranscodeError::Output(_) | TranscodeError::Crashed(_) => {
            return worker_trouble(error);
        }
    };
    fatal(kind, format!("{}.", capitalize(&error.to_string())))
}

pub(crate) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
